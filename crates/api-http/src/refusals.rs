//! Refused credentials, failed logins and the graduated response's warnings, counted. Every
//! one is still logged, but the audit log gets one event per kind (organization, action,
//! reason, credential, user), client address and window (a minute by default), with the number
//! of times it happened, written by a background task when the window closes. The request
//! path only counts in memory: a flood of made-up tokens or failed logins from many addresses
//! no longer appends to the system chain once per request under its lock, on every replica.
//! (Blocks, which change what the server does, are still recorded in their own transaction.)
//!
//! Memory is bounded: past `max_kinds` distinct kinds in flight, a new kind is counted under
//! its organization, action and reason alone (no address, no credential), so a flood from
//! many addresses costs at most `max_kinds` events a window and a few more. What is counted
//! but not yet written is lost if the process dies (at most one window); a graceful stop
//! writes it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Duration, Utc};
use domain::{AuditAction, AuditOutcome, AuditTarget, OrganizationId, UserId};
use ports::{AuditLog, Clock, NewAuditEvent};

/// Distinct kinds of refusal counted at once by default.
pub const DEFAULT_MAX_KINDS: usize = 10_000;

/// What makes two refusals the same kind: everything but the request id and the moment.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Kind {
    window: i64,
    organization: Option<OrganizationId>,
    action: AuditAction,
    outcome: AuditOutcome,
    reason: Option<String>,
    target: Option<AuditTarget>,
    actor: Option<UserId>,
    client_ip: Option<IpAddr>,
}

impl Kind {
    fn of(window: i64, organization: Option<OrganizationId>, event: &NewAuditEvent) -> Self {
        Self {
            window,
            organization,
            action: event.action,
            outcome: event.outcome,
            reason: event.reason.clone(),
            target: event.target.clone(),
            actor: event.actor,
            // One client, one kind: an IPv6 client is its /64, as for the limits and blocks.
            client_ip: event.client_ip.map(domain::client_net),
        }
    }

    /// The kind that collects refusals once too many kinds are counted: no address, no
    /// credential, no user.
    fn overflow(self) -> Self {
        Self {
            target: self.target.clone().and_then(AuditTarget::without_id),
            actor: None,
            client_ip: None,
            ..self
        }
    }
}

#[derive(Debug)]
struct Counted {
    /// The first refusal of its kind in the window, as it would have been recorded.
    first: NewAuditEvent,
    /// When the first was counted, relative to the others: counts are recorded in that order.
    order: u64,
    occurrences: u32,
}

/// Refusals counted per kind and window, recorded by [`RefusalLog::flush`].
pub struct RefusalLog {
    audit_log: Arc<dyn AuditLog>,
    clock: Arc<dyn Clock>,
    window: Duration,
    max_kinds: usize,
    counted: Mutex<HashMap<Kind, Counted>>,
    noted: AtomicU64,
    /// One flush at a time: a stop's flush waits for the one under way.
    flushing: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for RefusalLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefusalLog")
            .field("window", &self.window)
            .field("max_kinds", &self.max_kinds)
            .finish_non_exhaustive()
    }
}

impl RefusalLog {
    /// Refusals counted over `window` (at least a second), at most `max_kinds` kinds with an
    /// address of their own at once.
    pub fn new(
        audit_log: Arc<dyn AuditLog>,
        clock: Arc<dyn Clock>,
        window: Duration,
        max_kinds: usize,
    ) -> Self {
        Self {
            audit_log,
            clock,
            window: window.max(Duration::seconds(1)),
            max_kinds,
            counted: Mutex::new(HashMap::new()),
            noted: AtomicU64::new(0),
            flushing: tokio::sync::Mutex::new(()),
        }
    }

    /// The window in force.
    pub fn window(&self) -> Duration {
        self.window
    }

    fn window_of(&self, at: DateTime<Utc>) -> i64 {
        at.timestamp_millis()
            .div_euclid(self.window.num_milliseconds().max(1))
    }

    fn counted(&self) -> MutexGuard<'_, HashMap<Kind, Counted>> {
        // A panic while counting leaves a map that is still a map.
        self.counted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts a refusal to be recorded in `organization`'s chain (the system chain for
    /// `None`). Touches memory only.
    pub fn note(&self, organization: Option<OrganizationId>, event: NewAuditEvent) {
        let now = self.clock.now();
        let window = self.window_of(now);
        let mut kind = Kind::of(window, organization, &event);
        let mut counted = self.counted();
        if !counted.contains_key(&kind) && counted.len() >= self.max_kinds {
            kind = kind.overflow();
        }
        let order = self.noted.fetch_add(1, Ordering::Relaxed);
        let first = || {
            let mut first = event.clone();
            first.actor = kind.actor;
            first.target = kind.target.clone();
            first.client_ip = kind.client_ip;
            // Recorded when its window ends, dated when it first happened.
            first.occurred_at = Some(now);
            first
        };
        counted
            .entry(kind.clone())
            .and_modify(|c| c.occurrences = c.occurrences.saturating_add(1))
            .or_insert_with(|| Counted {
                first: first(),
                order,
                occurrences: 1,
            });
    }

    /// How many kinds are being counted.
    pub fn pending(&self) -> usize {
        self.counted().len()
    }

    /// Records one event per kind whose window has closed (every kind with `all`, as at a
    /// stop), with its count; returns how many events were recorded.
    /// A count the store refused is kept for the next flush.
    pub async fn flush(&self, all: bool) -> usize {
        let _turn = self.flushing.lock().await;
        let current = self.window_of(self.clock.now());
        let mut due: Vec<(Kind, Counted)> = self
            .counted()
            .extract_if(|kind, _| all || kind.window < current)
            .collect();
        due.sort_by_key(|(_, counted)| counted.order);
        let mut recorded = 0;
        let mut kept = Vec::new();
        for (kind, counted) in due {
            let mut event = counted.first.clone();
            event.occurrences = counted.occurrences;
            match self
                .audit_log
                .unscoped_record(kind.organization, event)
                .await
            {
                Ok(_) => recorded += 1,
                Err(err) => {
                    tracing::error!(error = %err, occurrences = counted.occurrences,
                        "counted refusals could not be recorded; kept for the next try");
                    kept.push((kind, counted));
                }
            }
        }
        let mut counted = self.counted();
        for (mut kind, mut back) in kept {
            // Put back within the bound, as a new kind would be counted.
            if !counted.contains_key(&kind) && counted.len() >= self.max_kinds {
                kind = kind.overflow();
                back.first.actor = None;
                back.first.target = back.first.target.take().and_then(AuditTarget::without_id);
                back.first.client_ip = None;
            }
            counted
                .entry(kind)
                .and_modify(|c| {
                    c.occurrences = c.occurrences.saturating_add(back.occurrences);
                    if back.order < c.order {
                        c.order = back.order;
                        c.first = back.first.clone();
                    }
                })
                .or_insert(back);
        }
        recorded
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicI64;

    use ports::Clock as _;

    use async_trait::async_trait;
    use domain::AuditEvent;
    use ports::{ChainVerdict, StoreError};

    use super::*;

    /// An audit log that keeps what it is given, or refuses it while `down`.
    #[derive(Debug, Default)]
    struct Recorded(
        Mutex<Vec<(Option<OrganizationId>, NewAuditEvent)>>,
        std::sync::atomic::AtomicBool,
    );

    #[async_trait]
    impl AuditLog for Recorded {
        async fn unscoped_record(
            &self,
            organization: Option<OrganizationId>,
            event: NewAuditEvent,
        ) -> Result<AuditEvent, StoreError> {
            if self.1.load(Ordering::SeqCst) {
                return Err(StoreError::Unavailable("down".into()));
            }
            let stored = AuditEvent {
                id: domain::AuditEventId::from_uuid(uuid::Uuid::nil()),
                organization_id: organization,
                seq: 1,
                occurred_at: event.occurred_at.unwrap_or_default(),
                actor: event.actor,
                action: event.action,
                target_type: event.target.as_ref().map(|t| t.kind().to_owned()),
                target_id: event.target.as_ref().and_then(AuditTarget::id),
                outcome: event.outcome,
                reason: event.reason.clone(),
                client_ip: event.client_ip,
                request_id: event.request_id.clone(),
                occurrences: event.occurrences,
                prev_hash: [0; 32],
                hash: [0; 32],
            };
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push((organization, event));
            Ok(stored)
        }

        async fn unscoped_verify(
            &self,
            _: Option<OrganizationId>,
        ) -> Result<ChainVerdict, StoreError> {
            Err(StoreError::NotFound)
        }
    }

    #[derive(Debug)]
    struct Millis(AtomicI64);

    impl Clock for Millis {
        fn now(&self) -> DateTime<Utc> {
            DateTime::from_timestamp_millis(self.0.load(Ordering::SeqCst)).unwrap_or_default()
        }
    }

    fn refusal(ip: &str, reason: &str) -> NewAuditEvent {
        let mut event = NewAuditEvent::by(None, AuditAction::AuthenticationFailed);
        event.outcome = AuditOutcome::Failure;
        event.reason = Some(reason.to_owned());
        event.client_ip = ip.parse().ok();
        event.request_id = Some(format!("req-{ip}-{reason}"));
        event
    }

    fn log(max: usize) -> (Arc<Recorded>, Arc<Millis>, RefusalLog) {
        let recorded = Arc::new(Recorded::default());
        let clock = Arc::new(Millis(AtomicI64::new(1_800_000_000_000)));
        let log = RefusalLog::new(recorded.clone(), clock.clone(), Duration::minutes(1), max);
        (recorded, clock, log)
    }

    fn taken(recorded: &Recorded) -> Vec<(Option<String>, Option<IpAddr>, u32)> {
        let mut events: Vec<_> = recorded
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .drain(..)
            .map(|(_, e)| (e.reason, e.client_ip, e.occurrences))
            .collect();
        events.sort();
        events
    }

    #[tokio::test]
    async fn a_flood_is_one_event_per_reason_address_and_minute() {
        let (recorded, clock, log) = log(100);
        for _ in 0..500 {
            log.note(None, refusal("192.0.2.1", "unknown"));
        }
        log.note(None, refusal("192.0.2.1", "malformed"));
        log.note(None, refusal("192.0.2.2", "unknown"));
        assert_eq!(log.flush(false).await, 0, "nothing before the minute ends");
        clock.0.fetch_add(60_000, Ordering::SeqCst);
        log.note(None, refusal("192.0.2.1", "unknown"));
        log.flush(false).await;
        assert_eq!(
            taken(&recorded),
            [
                (Some("malformed".into()), "192.0.2.1".parse().ok(), 1),
                (Some("unknown".into()), "192.0.2.1".parse().ok(), 500),
                (Some("unknown".into()), "192.0.2.2".parse().ok(), 1),
            ]
        );
        assert_eq!(log.pending(), 1, "the next minute's count waits");
        log.flush(true).await;
        assert_eq!(
            taken(&recorded),
            [(Some("unknown".into()), "192.0.2.1".parse().ok(), 1)]
        );
    }

    #[tokio::test]
    async fn a_count_the_store_refuses_is_kept_for_the_next_flush() {
        let (recorded, _, log) = log(100);
        for _ in 0..7 {
            log.note(None, refusal("192.0.2.1", "unknown"));
        }
        recorded.1.store(true, Ordering::SeqCst);
        assert_eq!(log.flush(true).await, 0);
        assert_eq!(log.pending(), 1, "kept");
        log.note(None, refusal("192.0.2.1", "unknown"));
        recorded.1.store(false, Ordering::SeqCst);
        assert_eq!(log.flush(true).await, 1);
        assert_eq!(
            taken(&recorded),
            [(Some("unknown".into()), "192.0.2.1".parse().ok(), 8)]
        );
    }

    #[tokio::test]
    async fn an_ipv6_client_is_one_kind_whatever_its_low_bits() {
        let (recorded, _, log) = log(100);
        for n in 0..100_u32 {
            log.note(None, refusal(&format!("2001:db8:7:7::{n:x}"), "expired"));
        }
        assert_eq!(log.pending(), 1);
        log.flush(true).await;
        assert_eq!(
            taken(&recorded),
            [(Some("expired".into()), "2001:db8:7:7::".parse().ok(), 100)]
        );
    }

    #[tokio::test]
    async fn a_count_is_dated_by_its_first_occurrence() {
        let (recorded, clock, log) = log(100);
        let first = clock.now();
        log.note(None, refusal("192.0.2.1", "unknown"));
        clock.0.fetch_add(30_000, Ordering::SeqCst);
        log.note(None, refusal("192.0.2.1", "unknown"));
        log.flush(true).await;
        let events = recorded
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].1.occurred_at, Some(first));
        assert_eq!(events[0].1.occurrences, 2);
    }

    #[tokio::test]
    async fn many_addresses_are_bounded_by_the_kinds_counted() {
        let (recorded, _, log) = log(10);
        for n in 0..1_000_u32 {
            let ip = std::net::Ipv4Addr::from(0x0a00_0000 + n).to_string();
            log.note(None, refusal(&ip, "unknown"));
        }
        assert_eq!(
            log.pending(),
            11,
            "ten with their address, one for the rest"
        );
        log.flush(true).await;
        let events = taken(&recorded);
        assert_eq!(events.len(), 11);
        assert_eq!(
            events.iter().map(|e| e.2).sum::<u32>(),
            1_000,
            "every refusal counted"
        );
        assert_eq!(events[0], (Some("unknown".into()), None, 990));
    }

    /// A store that fails slowly while requests keep coming (found by review): each failing
    /// write sees one more refusal from a fresh address arrive, as concurrent requests do
    /// while `flush` awaits the store with the due kinds taken out of the map.
    #[derive(Debug, Default)]
    struct SlowDown(std::sync::OnceLock<std::sync::Weak<RefusalLog>>, AtomicU64);

    #[async_trait]
    impl AuditLog for SlowDown {
        async fn unscoped_record(
            &self,
            _: Option<OrganizationId>,
            _: NewAuditEvent,
        ) -> Result<AuditEvent, StoreError> {
            if let Some(log) = self.0.get().and_then(std::sync::Weak::upgrade) {
                let n = self.1.fetch_add(1, Ordering::SeqCst);
                let ip = std::net::Ipv4Addr::from(0x0b00_0000 + u32::try_from(n).unwrap_or(0));
                log.note(None, refusal(&ip.to_string(), "unknown"));
            }
            Err(StoreError::Unavailable("timeout".into()))
        }

        async fn unscoped_verify(
            &self,
            _: Option<OrganizationId>,
        ) -> Result<ChainVerdict, StoreError> {
            Err(StoreError::NotFound)
        }
    }

    #[tokio::test]
    async fn memory_stays_bounded_during_a_store_outage() {
        let store = Arc::new(SlowDown::default());
        let clock = Arc::new(Millis(AtomicI64::new(1_800_000_000_000)));
        let log = Arc::new(RefusalLog::new(
            store.clone(),
            clock.clone(),
            Duration::minutes(1),
            10,
        ));
        store.0.set(Arc::downgrade(&log)).unwrap();
        for n in 0..10_u32 {
            log.note(
                None,
                refusal(
                    &std::net::Ipv4Addr::from(0x0a00_0000 + n).to_string(),
                    "unknown",
                ),
            );
        }
        for _ in 0..10 {
            clock.0.fetch_add(60_000, Ordering::SeqCst);
            log.flush(false).await;
        }
        assert!(
            log.pending() <= 10 + 11,
            "max_kinds is 10, yet {} kinds are held after ten failing flushes",
            log.pending()
        );
    }
}
