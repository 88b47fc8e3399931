//! The tamper-evident audit log of the scope's organization.

use std::net::IpAddr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::{AuditAction, AuditEvent, AuditOutcome, UserId};

use crate::{Page, StoreError};

/// An event to record. The store adds the id, time, position and hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditEvent {
    pub actor: Option<UserId>,
    pub action: AuditAction,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub outcome: AuditOutcome,
    pub client_ip: Option<IpAddr>,
    pub request_id: Option<String>,
}

/// Which events to list; every field narrows the list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub actor: Option<UserId>,
    pub action: Option<AuditAction>,
}

/// The result of walking an organization's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainVerdict {
    /// Every event links to the one before and hashes to its stored hash.
    Intact { events: u64 },
    /// The first event (by position) where the chain breaks: edited, inserted or removed.
    Broken { seq: u64 },
}

/// The audit log of the scope's organization: append-only, each event chained to the last.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends an event in this unit of work: it is kept if and only if the unit of work
    /// commits. Concurrent units of work of one organization MUST chain in some order, never
    /// fork or fail for it.
    async fn record(&self, event: NewAuditEvent) -> Result<AuditEvent, StoreError>;
    /// Events, newest first, `skip`/`limit` as given.
    async fn list(
        &self,
        filter: AuditFilter,
        skip: u64,
        limit: u64,
    ) -> Result<Page<AuditEvent>, StoreError>;
    /// Walks the whole chain and reports the first break, if any.
    async fn verify(&self) -> Result<ChainVerdict, StoreError>;
}
