//! The hash chain of an organization's audit log (or of the system chain, events of no
//! organization). Each event's link covers the previous event's hash and every field of the
//! event, each length-prefixed so that no two different events encode alike; editing,
//! inserting or deleting an event breaks the chain there.
//!
//! Links are keyed: an HMAC-SHA256 under the audit chain key ([`AuditChainKey`]), which lives
//! outside the database, so whoever can write the table cannot compute a link. Events written
//! before the chain was keyed carry an unkeyed link (plain SHA-256, [`unkeyed_audit_hash`]);
//! each event's [`AuditLink`] says which, and a verifier accepts unkeyed links only before the
//! first keyed one of a chain.

use domain::AuditEvent;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::digest::Update;
use sha2::{Digest, Sha256};

/// The `prev_hash` of an organization's first event.
pub const AUDIT_GENESIS: [u8; 32] = [0; 32];

/// The shortest audit chain key accepted, in bytes.
pub const MIN_AUDIT_KEY_BYTES: usize = 32;

/// The domain-separation label of unkeyed links.
const UNKEYED_LABEL: &[u8] = b"rh-audit-v1";
/// The domain-separation label of keyed links.
const KEYED_LABEL: &[u8] = b"rh-audit-v2-hmac-sha256";

/// How an event's hash links it to the one before; stored with the event as its version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditLink {
    /// Version 1: plain SHA-256, written before the chain was keyed. Anyone who can write the
    /// table can recompute it, so a verifier accepts it only before a chain's first keyed link.
    Unkeyed,
    /// Version 2: HMAC-SHA256 under the audit chain key.
    Keyed,
}

impl AuditLink {
    /// The version stored with the event.
    pub const fn version(self) -> i16 {
        match self {
            Self::Unkeyed => 1,
            Self::Keyed => 2,
        }
    }

    /// The link of a stored version; `None` for a version this code does not know.
    pub const fn from_version(version: i16) -> Option<Self> {
        match version {
            1 => Some(Self::Unkeyed),
            2 => Some(Self::Keyed),
            _ => None,
        }
    }
}

/// Why the audit chain key was refused. Messages name the variable, never the key.
#[derive(Debug, thiserror::Error)]
pub enum AuditKeyError {
    #[error("{var} must be at least {MIN_AUDIT_KEY_BYTES} bytes")]
    TooShort { var: &'static str },
    #[error(
        "{var} is guessable (too few distinct bytes, a sequence, a repeat or a common password): generate a random key"
    )]
    Guessable { var: &'static str },
}

/// The key of the audit chain's links. Its `Debug` output shows nothing of it.
#[derive(Clone)]
pub struct AuditChainKey {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for AuditChainKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditChainKey([REDACTED])")
    }
}

impl AuditChainKey {
    /// The key from the configured secret `var`: at least [`MIN_AUDIT_KEY_BYTES`] bytes.
    pub fn new(var: &'static str, secret: &SecretString) -> Result<Self, AuditKeyError> {
        let bytes = secret.expose_secret().as_bytes();
        if bytes.len() < MIN_AUDIT_KEY_BYTES {
            return Err(AuditKeyError::TooShort { var });
        }
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(bytes)
            .map_err(|_| AuditKeyError::TooShort { var })?;
        Ok(Self { mac })
    }

    /// Refuses, for production, a key with too little variety or one a person typed (the
    /// signing keys' rule: [`crate::too_uniform`], [`crate::guessable`]).
    pub fn check_variety(var: &'static str, secret: &SecretString) -> Result<(), AuditKeyError> {
        if crate::too_uniform(secret) || crate::guessable(secret) {
            return Err(AuditKeyError::Guessable { var });
        }
        Ok(())
    }

    /// The keyed link of `event` chained to `prev_hash` (the event's own `hash` and
    /// `prev_hash` fields are not read).
    pub fn link(&self, prev_hash: &[u8; 32], event: &AuditEvent) -> [u8; 32] {
        let mut mac = self.mac.clone();
        encode(&mut mac, KEYED_LABEL, prev_hash, event);
        mac.finalize().into_bytes().into()
    }

    /// The hash `event` must carry if it is linked by `link`.
    pub fn hash(&self, link: AuditLink, prev_hash: &[u8; 32], event: &AuditEvent) -> [u8; 32] {
        match link {
            AuditLink::Unkeyed => unkeyed_audit_hash(prev_hash, event),
            AuditLink::Keyed => self.link(prev_hash, event),
        }
    }
}

/// The unkeyed link of `event` chained to `prev_hash`: how events were hashed before the
/// chain was keyed (the event's own `hash` and `prev_hash` fields are not read).
pub fn unkeyed_audit_hash(prev_hash: &[u8; 32], event: &AuditEvent) -> [u8; 32] {
    let mut h = Sha256::new();
    encode(&mut h, UNKEYED_LABEL, prev_hash, event);
    h.finalize().into()
}

/// `hash` as lower-case hex, as logs and the API show it.
pub fn audit_hash_hex(hash: &[u8; 32]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(64);
    for byte in hash {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    text
}

/// A hash from 64 hex digits (either case); `None` for anything else.
pub fn parse_audit_hash(text: &str) -> Option<[u8; 32]> {
    let digits = text.as_bytes();
    if digits.len() != 64 {
        return None;
    }
    let value = |d: u8| {
        char::from(d)
            .to_digit(16)
            .and_then(|v| u8::try_from(v).ok())
    };
    let mut hash = [0_u8; 32];
    for (byte, pair) in hash.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = (value(pair[0])? << 4) | value(pair[1])?;
    }
    Some(hash)
}

fn field(h: &mut impl Update, bytes: &[u8]) {
    h.update(&(bytes.len() as u64).to_be_bytes());
    h.update(bytes);
}

fn optional(h: &mut impl Update, value: Option<&[u8]>) {
    match value {
        Some(bytes) => {
            h.update(&[1]);
            field(h, bytes);
        }
        None => h.update(&[0]),
    }
}

/// The encoding every link covers: the label, the previous hash and each field of the event.
fn encode(h: &mut impl Update, label: &[u8], prev_hash: &[u8; 32], event: &AuditEvent) {
    field(h, label);
    field(h, prev_hash);
    field(h, &event.seq.to_be_bytes());
    optional(
        h,
        event
            .organization_id
            .as_ref()
            .map(|o| o.as_uuid().as_bytes().as_slice()),
    );
    field(h, event.id.as_uuid().as_bytes());
    field(h, &event.occurred_at.timestamp_micros().to_be_bytes());
    optional(
        h,
        event
            .actor
            .as_ref()
            .map(|a| a.as_uuid().as_bytes().as_slice()),
    );
    field(h, event.action.as_str().as_bytes());
    optional(h, event.target_type.as_deref().map(str::as_bytes));
    optional(h, event.target_id.as_deref().map(str::as_bytes));
    field(h, event.outcome.as_str().as_bytes());
    optional(h, event.reason.as_deref().map(str::as_bytes));
    let ip = event.client_ip.map(|ip| ip.to_string());
    optional(h, ip.as_deref().map(str::as_bytes));
    optional(h, event.request_id.as_deref().map(str::as_bytes));
    // An event that stands for several occurrences says so; one that stands for one encodes
    // as events did before the count existed, so their links stay as they were.
    if event.occurrences != 1 {
        field(h, b"occurrences");
        field(h, &event.occurrences.to_be_bytes());
    }
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
            occurrences: 1,
            prev_hash: [9; 32],
            hash: [9; 32],
        }
    }

    fn key(text: &str) -> AuditChainKey {
        AuditChainKey::new("AUDIT_CHAIN_KEY", &SecretString::from(text.to_owned())).unwrap()
    }

    const KEY: &str = "an-audit-chain-key-of-at-least-32-bytes";

    #[test]
    fn every_field_and_the_previous_hash_count() {
        let key = key(KEY);
        type Link<'a> = Box<dyn Fn(&[u8; 32], &AuditEvent) -> [u8; 32] + 'a>;
        let links: [(&str, Link<'_>); 2] = [
            ("unkeyed", Box::new(unkeyed_audit_hash)),
            ("keyed", Box::new(|prev, e| key.link(prev, e))),
        ];
        for (name, link) in &links {
            let base = link(&AUDIT_GENESIS, &event());
            assert_eq!(
                base,
                link(&AUDIT_GENESIS, &event()),
                "{name}: deterministic"
            );
            let mut stored = event();
            stored.hash = [1; 32];
            stored.prev_hash = [2; 32];
            assert_eq!(
                base,
                link(&AUDIT_GENESIS, &stored),
                "{name}: own hash fields are not read"
            );
            assert_ne!(base, link(&[1; 32], &event()), "{name}: previous hash");
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
                |e| e.occurrences = 2,
                |e| e.occurrences = u32::MAX,
                // Moving bytes between adjacent fields must not collide.
                |e| {
                    e.target_type = Some("api_tokent".to_owned());
                    e.target_id = Some("1".to_owned());
                },
            ];
            for (n, change) in changes.iter().enumerate() {
                let mut changed = event();
                change(&mut changed);
                assert_ne!(base, link(&AUDIT_GENESIS, &changed), "{name}: change {n}");
            }
            let counted = |n| {
                let mut e = event();
                e.occurrences = n;
                link(&AUDIT_GENESIS, &e)
            };
            assert_ne!(counted(2), counted(3), "{name}: the count itself");
        }
    }

    #[test]
    fn unkeyed_links_are_those_written_before_the_chain_was_keyed() {
        // The SHA-256 of the `rh-audit-v1` encoding of `event()`, as stored by earlier
        // versions: events already in the database keep verifying.
        assert_eq!(
            audit_hash_hex(&unkeyed_audit_hash(&AUDIT_GENESIS, &event())),
            "ce487843ba8dd128fcac2aa7e29b1005cfb291ca0c5a90359d1b4522f6312967"
        );
    }

    #[test]
    fn another_key_gives_another_link_and_no_key_none_of_them() {
        let (one, two) = (key(KEY), key("another-audit-chain-key-of-32-bytes!"));
        let e = event();
        let keyed = one.link(&AUDIT_GENESIS, &e);
        assert_eq!(
            keyed,
            key(KEY).link(&AUDIT_GENESIS, &e),
            "the key alone decides"
        );
        assert_ne!(keyed, two.link(&AUDIT_GENESIS, &e), "another key");
        assert_ne!(
            keyed,
            unkeyed_audit_hash(&AUDIT_GENESIS, &e),
            "the unkeyed link"
        );
        assert_eq!(one.hash(AuditLink::Keyed, &AUDIT_GENESIS, &e), keyed);
        assert_eq!(
            one.hash(AuditLink::Unkeyed, &AUDIT_GENESIS, &e),
            unkeyed_audit_hash(&AUDIT_GENESIS, &e)
        );
        // Nor is the keyed link a plain hash of the key and the encoding.
        let mut naive = Sha256::new();
        Digest::update(&mut naive, KEY.as_bytes());
        encode(&mut naive, KEYED_LABEL, &AUDIT_GENESIS, &e);
        assert_ne!(keyed, <[u8; 32]>::from(naive.finalize()));
    }

    #[test]
    fn short_keys_are_refused_and_debug_output_hides_the_key() {
        let short = SecretString::from("k".repeat(MIN_AUDIT_KEY_BYTES - 1));
        let err = AuditChainKey::new("AUDIT_CHAIN_KEY", &short).unwrap_err();
        assert_eq!(err.to_string(), "AUDIT_CHAIN_KEY must be at least 32 bytes");
        assert!(!err.to_string().contains("kkk"));
        let shown = format!("{:?}", key(KEY));
        assert!(
            !shown.contains("an-audit") && shown.contains("REDACTED"),
            "{shown}"
        );
    }

    #[test]
    fn versions_and_hex_round_trip() {
        for link in [AuditLink::Unkeyed, AuditLink::Keyed] {
            assert_eq!(AuditLink::from_version(link.version()), Some(link));
        }
        assert_eq!(AuditLink::from_version(0), None);
        assert_eq!(AuditLink::from_version(3), None);
        let hash = unkeyed_audit_hash(&AUDIT_GENESIS, &event());
        assert_eq!(parse_audit_hash(&audit_hash_hex(&hash)), Some(hash));
        assert_eq!(
            parse_audit_hash(&audit_hash_hex(&hash).to_uppercase()),
            Some(hash)
        );
        for bad in ["", "00", &"0".repeat(63), &"0".repeat(65), &"g".repeat(64)] {
            assert_eq!(parse_audit_hash(bad), None, "{bad:?}");
        }
    }
}
