//! The tamper-evident audit log of the scope's organization.

use std::net::IpAddr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::{AuditAction, AuditEvent, AuditOutcome, AuditTarget, OrganizationId, UserId};

use crate::{Page, StoreError};

/// An event to record. The store adds the id, time, position and hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditEvent {
    pub actor: Option<UserId>,
    pub action: AuditAction,
    pub target: Option<AuditTarget>,
    pub outcome: AuditOutcome,
    /// Why the outcome, in a few words (`expired`, `revoked`): never a secret.
    pub reason: Option<String>,
    pub client_ip: Option<IpAddr>,
    pub request_id: Option<String>,
    /// How many occurrences the event stands for (1 but for counted refusals).
    pub occurrences: u32,
    /// When it happened, if not now (a counted refusal: its first occurrence).
    pub occurred_at: Option<DateTime<Utc>>,
}

impl NewAuditEvent {
    /// An event of `action` by `actor` that succeeded, with nothing else known yet.
    pub fn by(actor: Option<UserId>, action: AuditAction) -> Self {
        Self {
            actor,
            action,
            target: None,
            outcome: AuditOutcome::Success,
            reason: None,
            client_ip: None,
            request_id: None,
            occurrences: 1,
            occurred_at: None,
        }
    }

    /// The same event about `target`.
    pub fn on(self, target: AuditTarget) -> Self {
        Self {
            target: Some(target),
            ..self
        }
    }
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
    /// Every event links to the one before and hashes to its stored hash. `unkeyed` events,
    /// written before the chain was keyed, open the chain; every later one is keyed.
    Intact { events: u64, unkeyed: u64 },
    /// The first event (by position) where the chain breaks: edited, inserted or removed, or
    /// an unkeyed event after a keyed one.
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

/// The audit log outside a unit of work: for events that happen before anyone is
/// authenticated (a refused credential) and for the operator's verification of every chain.
/// Each method crosses tenants and is named so.
#[async_trait]
pub trait AuditLog: Send + Sync + std::fmt::Debug {
    /// Appends an event to `organization`'s chain, or to the system chain for `None`, in a
    /// transaction of its own. Used for events that no unit of work carries: a refused
    /// credential (attributed to the organization it names, when it names one).
    async fn unscoped_record(
        &self,
        organization: Option<OrganizationId>,
        event: NewAuditEvent,
    ) -> Result<AuditEvent, StoreError>;
    /// Walks `organization`'s chain (or the system chain for `None`).
    async fn unscoped_verify(
        &self,
        organization: Option<OrganizationId>,
    ) -> Result<ChainVerdict, StoreError>;
}
