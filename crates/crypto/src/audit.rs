//! The hash chain of an organization's audit log (or of the system chain, events of no
//! organization). Each event's hash covers the previous
//! event's hash and every field of the event, each length-prefixed so that no two different
//! events encode alike; editing, inserting or deleting an event breaks the chain there.

use domain::AuditEvent;
use sha2::{Digest, Sha256};

/// The `prev_hash` of an organization's first event.
pub const AUDIT_GENESIS: [u8; 32] = [0; 32];

fn field(hasher: &mut Sha256, bytes: &[u8]) {
    hasher.update((bytes.len() as u64).to_be_bytes());
    hasher.update(bytes);
}

fn optional(hasher: &mut Sha256, value: Option<&[u8]>) {
    match value {
        Some(bytes) => {
            hasher.update([1]);
            field(hasher, bytes);
        }
        None => hasher.update([0]),
    }
}

/// The hash of `event` chained to `prev_hash` (the event's own `hash` and `prev_hash` fields
/// are not read).
pub fn audit_chain_hash(prev_hash: &[u8; 32], event: &AuditEvent) -> [u8; 32] {
    let mut h = Sha256::new();
    field(&mut h, b"rh-audit-v1");
    field(&mut h, prev_hash);
    field(&mut h, &event.seq.to_be_bytes());
    optional(
        &mut h,
        event
            .organization_id
            .as_ref()
            .map(|o| o.as_uuid().as_bytes().as_slice()),
    );
    field(&mut h, event.id.as_uuid().as_bytes());
    field(&mut h, &event.occurred_at.timestamp_micros().to_be_bytes());
    optional(
        &mut h,
        event
            .actor
            .as_ref()
            .map(|a| a.as_uuid().as_bytes().as_slice()),
    );
    field(&mut h, event.action.as_str().as_bytes());
    optional(&mut h, event.target_type.as_deref().map(str::as_bytes));
    optional(&mut h, event.target_id.as_deref().map(str::as_bytes));
    field(&mut h, event.outcome.as_str().as_bytes());
    optional(&mut h, event.reason.as_deref().map(str::as_bytes));
    let ip = event.client_ip.map(|ip| ip.to_string());
    optional(&mut h, ip.as_deref().map(str::as_bytes));
    optional(&mut h, event.request_id.as_deref().map(str::as_bytes));
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;
    use domain::{AuditAction, AuditEventId, AuditOutcome, OrganizationId, UserId};
    use uuid::Uuid;

    use super::*;

    fn event() -> AuditEvent {
        AuditEvent {
            id: AuditEventId::from_uuid(Uuid::from_u128(1)),
            organization_id: Some(OrganizationId::from_uuid(Uuid::from_u128(2))),
            seq: 1,
            occurred_at: DateTime::from_timestamp(1_800_000_000, 123_000).unwrap(),
            actor: Some(UserId::from_uuid(Uuid::from_u128(3))),
            action: AuditAction::TokenCreated,
            target_type: Some("api_token".to_owned()),
            target_id: Some("t1".to_owned()),
            outcome: AuditOutcome::Success,
            reason: None,
            client_ip: Some("192.0.2.1".parse().unwrap()),
            request_id: Some("r1".to_owned()),
            prev_hash: [9; 32],
            hash: [9; 32],
        }
    }

    #[test]
    fn every_field_and_the_previous_hash_count() {
        let base = audit_chain_hash(&AUDIT_GENESIS, &event());
        assert_eq!(
            base,
            audit_chain_hash(&AUDIT_GENESIS, &event()),
            "deterministic"
        );
        let mut stored = event();
        stored.hash = [1; 32];
        stored.prev_hash = [2; 32];
        assert_eq!(
            base,
            audit_chain_hash(&AUDIT_GENESIS, &stored),
            "own hash fields are not read"
        );
        assert_ne!(base, audit_chain_hash(&[1; 32], &event()), "previous hash");
        let changes: Vec<fn(&mut AuditEvent)> = vec![
            |e| e.seq = 2,
            |e| e.id = AuditEventId::from_uuid(Uuid::from_u128(9)),
            |e| e.organization_id = Some(OrganizationId::from_uuid(Uuid::from_u128(9))),
            |e| e.organization_id = None,
            |e| e.occurred_at += chrono::Duration::microseconds(1),
            |e| e.actor = None,
            |e| e.action = AuditAction::TokenRevoked,
            |e| e.target_type = None,
            |e| e.target_id = Some("t2".to_owned()),
            |e| e.outcome = AuditOutcome::Denied,
            |e| e.reason = Some("expired".to_owned()),
            |e| e.client_ip = None,
            |e| e.request_id = Some(String::new()),
            // Moving bytes between adjacent fields must not collide.
            |e| {
                e.target_type = Some("api_tokent".to_owned());
                e.target_id = Some("1".to_owned());
            },
        ];
        for (n, change) in changes.iter().enumerate() {
            let mut changed = event();
            change(&mut changed);
            assert_ne!(
                base,
                audit_chain_hash(&AUDIT_GENESIS, &changed),
                "change {n}"
            );
        }
    }
}
