//! The credential cache: what the first statement of a read would find of its credential (an
//! access token's user, an API token's row, a browser session), kept in memory so that a read costs one plain
//! transaction, as current as [`ports::CREDENTIAL_STALENESS`] allows.
//!
//! It is kept current by PostgreSQL's notices: every change that can end or narrow a
//! credential announces itself on [`CHANNEL`] as it commits (the triggers of the migration
//! `credential_change_notices`), and any notice empties the cache. How current it is, is
//! measured, not assumed: the listener's own heartbeat goes round through the database every
//! [`HEARTBEAT_EVERY`], and PostgreSQL delivers notices in the order their transactions
//! committed, so when a heartbeat sent at `s` arrives, every change committed before `s` has
//! been heard. The cache answers only while its latest heartbeat was sent less than
//! [`CURRENT_FOR`] ago; a listener that lost its connection, silently or not, stops hearing
//! heartbeats and the cache falls silent (every read asks the database) until it hears one
//! again. After every (re)connection the cache is emptied, once the listener listens again.
//!
//! A fill races with a change: a read that found a credential live may be overtaken by the
//! change that ends it, whose notice then arrives before the read puts what it found in the
//! cache. Every fill therefore carries the generation (the count of notices) it started
//! under, and is dropped if a notice came in between.
//!
//! Only credentials that were accepted are kept (a refusal is never cached), at most
//! [`MAX_ENTRIES`] (a full cache is emptied), none longer than [`MAX_AGE`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use ports::{Freshness, ResolvedApiToken, ResolvedUser, StoredSession};
use sea_orm::sqlx;
use sea_orm::sqlx::postgres::{PgListener, PgPool, PgPoolOptions};
use uuid::Uuid;

/// The channel the credential changes are announced on.
pub(crate) const CHANNEL: &str = "credential_changes";
/// How often the listener's heartbeat goes round.
pub const HEARTBEAT_EVERY: Duration = Duration::from_millis(200);
/// How long after its latest heartbeat was sent the cache answers: within
/// [`ports::CREDENTIAL_STALENESS`], with room for the notice's own way.
pub const CURRENT_FOR: Duration = Duration::from_millis(750);
/// The most credentials kept.
pub const MAX_ENTRIES: usize = 10_000;
/// The longest one is kept, notice or not.
pub const MAX_AGE: Duration = Duration::from_secs(60);
/// How long the listener waits before it connects again after a failure.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// What a credential is kept under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Key {
    /// An access token: its user, `jti` and session.
    Access {
        user: Uuid,
        jti: Uuid,
        sid: Option<Uuid>,
    },
    /// An API token, by the digest of its whole value.
    ApiToken([u8; 32]),
    /// A browser session, by the digest of its cookie's id.
    Session([u8; 32]),
}

/// What a read found of an accepted credential.
#[derive(Debug, Clone)]
pub(crate) enum Found {
    /// An access token's user: active, unrevoked, in an organization.
    User(ResolvedUser),
    /// An API token that opened and matched, its owner active and in its organization.
    ApiToken {
        token: ResolvedApiToken,
        expires_at: Option<DateTime<Utc>>,
    },
    /// A live browser session, its user active and in an organization, and when it ends
    /// (idle, or at its end) unless used meanwhile.
    Session {
        session: StoredSession,
        user: ResolvedUser,
        until: Instant,
    },
}

#[derive(Debug)]
struct Entry {
    found: Found,
    filled: Instant,
}

#[derive(Debug, Default)]
struct Entries {
    /// The count of notices heard.
    generation: u64,
    map: HashMap<Key, Entry>,
}

/// The generation a read started under.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket(u64);

/// The cache of one process (every clone of the store shares it). Its `Debug` shows how it
/// stands, never what it holds (sessions' state among it).
pub struct CredentialCache {
    base: Instant,
    /// Nanoseconds after `base` until which the cache may answer; 0: it may not.
    current_until: AtomicU64,
    entries: RwLock<Entries>,
    /// This process's heartbeats, told from other replicas'.
    nonce: u64,
}

impl std::fmt::Debug for CredentialCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialCache")
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

impl Default for CredentialCache {
    fn default() -> Self {
        Self {
            base: Instant::now(),
            current_until: AtomicU64::new(0),
            entries: RwLock::default(),
            nonce: rand::random(),
        }
    }
}

/// How the cache stands, for tests and diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheState {
    /// Whether it answers now.
    pub current: bool,
    pub entries: usize,
    /// The count of notices heard.
    pub generation: u64,
}

impl CredentialCache {
    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX)
    }

    fn is_current(&self) -> bool {
        self.nanos(Instant::now()) < self.current_until.load(Ordering::Acquire)
    }

    /// The credential under `key`, for a check of `freshness`: only a
    /// [`Freshness::Recent`] one is answered, when the cache is current and holds it.
    pub(crate) fn answer(&self, key: &Key, freshness: Freshness) -> Option<Found> {
        if freshness != Freshness::Recent {
            return None;
        }
        let found = self.get(key);
        let answer = if found.is_some() { "hit" } else { "miss" };
        metrics::counter!(crate::metrics::CREDENTIAL_CACHE_ANSWERS, "answer" => answer)
            .increment(1);
        found
    }

    fn get(&self, key: &Key) -> Option<Found> {
        if !self.is_current() {
            return None;
        }
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        let entry = entries.map.get(key)?;
        (entry.filled.elapsed() < MAX_AGE).then(|| entry.found.clone())
    }

    /// The generation a read starts under: take it before the read's first statement.
    pub(crate) fn ticket(&self) -> Ticket {
        Ticket(
            self.entries
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .generation,
        )
    }

    /// Keeps what a read that started under `ticket` found, unless a notice came since.
    pub(crate) fn fill(&self, ticket: Ticket, key: Key, found: Found) {
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if entries.generation != ticket.0 {
            return;
        }
        if entries.map.len() >= MAX_ENTRIES && !entries.map.contains_key(&key) {
            entries.map.clear();
        }
        let filled = Instant::now();
        entries.map.insert(key, Entry { found, filled });
    }

    /// Forgets everything, and every read under way.
    pub(crate) fn forget_all(&self) {
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        entries.generation += 1;
        entries.map.clear();
    }

    /// Stops answering until the next heartbeat, and forgets everything.
    fn lapse(&self) {
        self.current_until.store(0, Ordering::Release);
        self.forget_all();
    }

    /// The payload of a heartbeat sent at `sent`.
    fn heartbeat(&self, sent: Instant) -> String {
        let mut payload = String::from("heartbeat:");
        payload.push_str(&self.nonce.to_string());
        payload.push(':');
        payload.push_str(&self.nanos(sent).to_string());
        payload
    }

    /// A notice heard: a heartbeat of ours makes the cache current for [`CURRENT_FOR`] from
    /// when it was sent; another replica's changes nothing; anything else empties the cache.
    pub(crate) fn heard(&self, payload: &str) {
        if let Some(beat) = payload.strip_prefix("heartbeat:") {
            let ours = beat
                .split_once(':')
                .filter(|(nonce, _)| *nonce == self.nonce.to_string())
                .and_then(|(_, sent)| sent.parse::<u64>().ok())
                // Anyone who can listen sees the nonce and could send a heartbeat of ours:
                // one dated after now was not sent by this process, and measures nothing.
                .filter(|sent| *sent <= self.nanos(Instant::now()));
            if let Some(sent) = ours {
                let until =
                    sent.saturating_add(u64::try_from(CURRENT_FOR.as_nanos()).unwrap_or(u64::MAX));
                self.current_until.fetch_max(until, Ordering::AcqRel);
            }
            return;
        }
        self.forget_all();
    }

    pub fn state(&self) -> CacheState {
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        CacheState {
            current: self.is_current(),
            entries: entries.map.len(),
            generation: entries.generation,
        }
    }
}

/// Listens for credential changes and sends the heartbeat, over two connections of their own
/// (a small pool made with the request pool's options), until dropped. Failures are logged
/// and the listener connects again; meanwhile the cache is silent.
pub(crate) async fn keep_current(cache: Arc<CredentialCache>, pool: PgPool) {
    tokio::join!(listen(&cache, &pool), beat(&cache, &pool));
}

/// The pool the listener and the heartbeat use: two connections, made as the request pool's.
pub(crate) fn side_pool(requests: &PgPool) -> PgPool {
    PgPoolOptions::new()
        .max_connections(2)
        .min_connections(0)
        .acquire_timeout(HEARTBEAT_EVERY * 5)
        .connect_lazy_with((*requests.connect_options()).clone())
}

async fn listen(cache: &CredentialCache, pool: &PgPool) {
    loop {
        match subscribe(pool).await {
            Ok(mut listener) => {
                // Listening now: anything changed from here on is heard.
                cache.forget_all();
                tracing::info!("credential cache: listening for changes");
                loop {
                    match listener.try_recv().await {
                        Ok(Some(notice)) => cache.heard(notice.payload()),
                        // The connection was lost. The listener would connect again at the
                        // next call, but what is filled before it listens again could miss
                        // a change: start over, emptying the cache once it listens.
                        Ok(None) => {
                            tracing::warn!("credential cache: the listener lost its connection");
                            break;
                        }
                        Err(err) => {
                            tracing::warn!(error = %err, "credential cache: the listener failed");
                            break;
                        }
                    }
                }
            }
            Err(err) => tracing::warn!(error = %err, "credential cache: cannot listen"),
        }
        metrics::counter!(crate::metrics::CREDENTIAL_CACHE_LAPSES).increment(1);
        cache.lapse();
        tokio::time::sleep(RETRY_AFTER).await;
    }
}

async fn subscribe(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.ignore_pool_close_event(true);
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

async fn beat(cache: &CredentialCache, pool: &PgPool) {
    let mut tick = tokio::time::interval(HEARTBEAT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let sent = Instant::now();
        let send = sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(cache.heartbeat(sent))
            .execute(pool);
        match tokio::time::timeout(HEARTBEAT_EVERY * 5, send).await {
            Ok(Ok(_)) => {}
            Ok(Err(err)) => tracing::debug!(error = %err, "credential cache: no heartbeat"),
            Err(_) => tracing::debug!("credential cache: the heartbeat timed out"),
        }
    }
}
