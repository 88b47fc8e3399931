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
use domain::{AuditAction, AuditOutcome, OrganizationId, UserId};
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
    target_type: Option<String>,
    target_id: Option<String>,
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
            target_type: event.target_type.clone(),
            target_id: event.target_id.clone(),
            actor: event.actor,
            client_ip: event.client_ip,
        }
    }

    /// The kind that collects refusals once too many kinds are counted: no address, no
    /// credential, no user.
    fn overflow(self) -> Self {
        Self {
            target_id: None,
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
        let window = self.window_of(self.clock.now());
        let mut kind = Kind::of(window, organization, &event);
        let mut counted = self.counted();
        if !counted.contains_key(&kind) && counted.len() >= self.max_kinds {
            kind = kind.overflow();
        }
        let order = self.noted.fetch_add(1, Ordering::Relaxed);
        let first = || {
            let mut first = event.clone();
            first.actor = kind.actor;
            first.target_id = kind.target_id.clone();
            first.client_ip = kind.client_ip;
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
    pub async fn flush(&self, all: bool) -> usize {
        let current = self.window_of(self.clock.now());
        let mut due: Vec<(Kind, Counted)> = self
            .counted()
            .extract_if(|kind, _| all || kind.window < current)
            .collect();
        due.sort_by_key(|(_, counted)| counted.order);
        let mut recorded = 0;
        for (kind, counted) in due {
            let mut event = counted.first;
            event.occurrences = counted.occurrences;
            match self
                .audit_log
                .unscoped_record(kind.organization, event)
                .await
            {
                Ok(_) => recorded += 1,
                Err(err) => tracing::error!(error = %err, occurrences = counted.occurrences,
                    "counted refusals could not be recorded"),
            }
        }
        recorded
    }

    /// Flushes closed windows every `tick`, forever.
    pub async fn run(self: Arc<Self>, tick: std::time::Duration) {
        let mut every = tokio::time::interval(tick);
        loop {
            every.tick().await;
            self.flush(false).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicI64;

    use async_trait::async_trait;
    use domain::AuditEvent;
    use ports::{ChainVerdict, StoreError};

    use super::*;

    #[derive(Debug, Default)]
    struct Recorded(Mutex<Vec<(Option<OrganizationId>, NewAuditEvent)>>);

    #[async_trait]
    impl AuditLog for Recorded {
        async fn unscoped_record(
            &self,
            organization: Option<OrganizationId>,
            event: NewAuditEvent,
        ) -> Result<AuditEvent, StoreError> {
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push((organization, event));
            Err(StoreError::NotFound)
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
}
