//! The strikes and blocks of the graduated response.

use std::net::IpAddr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::{
    AuditAction, AuditOutcome, BlockKey, BlockPolicy, BlockState, ClientRecord, StrikeVerdict,
    UserId,
};

use crate::{NewAuditEvent, StoreError};

/// A key's stored record, as the operator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockEntry {
    pub key: BlockKey,
    pub record: ClientRecord,
    /// Why the last block was set (`strikes`, or the operator's words).
    pub reason: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// Where a strike or an operator's action came from, for its audit event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockContext {
    /// The authenticated user a principal key belongs to.
    pub actor: Option<UserId>,
    pub client_ip: Option<IpAddr>,
    pub request_id: Option<String>,
}

impl BlockContext {
    fn event(&self, action: AuditAction, key: &BlockKey, reason: String) -> NewAuditEvent {
        NewAuditEvent {
            target: Some(domain::AuditTarget::Client(key.clone())),
            outcome: AuditOutcome::Denied,
            reason: Some(reason),
            client_ip: self.client_ip,
            request_id: self.request_id.clone(),
            ..NewAuditEvent::by(self.actor, action)
        }
    }

    /// The audit event of a strike's verdict: a warning or a new block. A strike against a
    /// key that was blocked already changes nothing and records nothing.
    pub fn strike_event(&self, key: &BlockKey, verdict: StrikeVerdict) -> Option<NewAuditEvent> {
        match verdict {
            StrikeVerdict::Warning {
                strike,
                strikes_to_block,
            } => Some(self.event(
                AuditAction::RateLimitWarning,
                key,
                format!("strike {strike} of {strikes_to_block}"),
            )),
            StrikeVerdict::NewBlock(state) => Some(self.event(
                AuditAction::ClientBlocked,
                key,
                format!("strikes; {}", describe(state)),
            )),
            StrikeVerdict::Blocked(_) => None,
        }
    }

    /// The audit event of an operator's block.
    pub fn block_event(&self, key: &BlockKey, state: BlockState, reason: &str) -> NewAuditEvent {
        self.event(
            AuditAction::ClientBlocked,
            key,
            format!("{}; {}", operator_reason(reason), describe(state)),
        )
    }

    /// The audit event of an operator lifting a key's block.
    pub fn lift_event(&self, key: &BlockKey, reason: &str) -> NewAuditEvent {
        NewAuditEvent {
            outcome: AuditOutcome::Success,
            ..self.event(AuditAction::ClientBlockLifted, key, operator_reason(reason))
        }
    }
}

/// The longest operator reason kept.
const REASON_MAX_CHARS: usize = 200;

/// The operator's reason for a block or a lift as stored and recorded: marked as theirs, and
/// cut to a bounded length.
pub fn operator_reason(reason: &str) -> String {
    let reason: String = reason.chars().take(REASON_MAX_CHARS).collect();
    format!("operator: {reason}")
}

/// A block in words, for the audit log and the operator.
pub fn describe(state: BlockState) -> String {
    match state {
        BlockState::Until(until) => format!(
            "blocked until {}",
            until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ),
        BlockState::Permanent => "blocked permanently".to_owned(),
    }
}

/// The strikes and blocks of the graduated response, shared by every replica. Keys are client
/// addresses and credentials, not tenant data. Every block and lift is recorded in the system
/// chain of the audit log, in the change's transaction; a warning is the caller's to record
/// (counted, off the request path). Times come from the store's clock.
#[async_trait]
pub trait BlockList: Send + Sync + std::fmt::Debug {
    /// Counts one strike against `key` under `policy`, atomically with any other replica's
    /// strike against the same key, stores the outcome and, for a new block, records its
    /// audit event in the same transaction.
    async fn strike(
        &self,
        key: &BlockKey,
        policy: &BlockPolicy,
        context: &BlockContext,
    ) -> Result<StrikeVerdict, StoreError>;

    /// Every block in force now.
    async fn active(&self) -> Result<Vec<(BlockKey, BlockState)>, StoreError>;

    /// Every stored record, blocked or not, the most recently changed first.
    async fn entries(&self) -> Result<Vec<BlockEntry>, StoreError>;

    /// Blocks `key` until the state's end (or for good), whatever its strikes, for the
    /// operator's `reason`.
    async fn block(
        &self,
        key: &BlockKey,
        state: BlockState,
        reason: &str,
        context: &BlockContext,
    ) -> Result<(), StoreError>;

    /// Lifts any block of `key` and forgets its strikes and past blocks, for the operator's
    /// `reason`. MUST return whether the key had a record (and record an event only then).
    async fn lift(
        &self,
        key: &BlockKey,
        reason: &str,
        context: &BlockContext,
    ) -> Result<bool, StoreError>;

    /// Forgets the records the policy no longer remembers; how many.
    async fn purge(&self, policy: &BlockPolicy) -> Result<u64, StoreError>;
}
