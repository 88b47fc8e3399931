//! The credential cache: what the first statement of a read would find of its credential (an
//! access token's user, an API token's row, a browser session), kept in memory so that a
//! read costs one plain transaction, as current as [`ports::CREDENTIAL_STALENESS`] allows.
//!
//! It is kept current by the database's own record of changes: every change that can end or
//! narrow a credential records its transaction in `credential_changes` as part of that
//! transaction (the triggers of the migrations `credential_change_notices` and
//! `credential_change_log`). A heartbeat asks every [`HEARTBEAT_EVERY`], with the snapshot
//! the previous heartbeat saw, whether a recorded transaction has committed since; if one
//! has, the cache is emptied. How current the cache is, is measured, not assumed: a
//! heartbeat's snapshot is taken after it was sent, so when its answer arrives, every change
//! committed before it was sent has been seen. The cache answers only while its latest
//! answered heartbeat was sent less than [`CURRENT_FOR`] ago; a heartbeat that fails or
//! hangs makes it silent (every read asks the database) until one answers again, on a new
//! connection, and the first answer after a failure empties it.
//!
//! A fill races with a change: a read that found a credential live may be overtaken by the
//! change that ends it, which a heartbeat then sees before the read puts what it found in
//! the cache. Every fill therefore carries the generation (the count of emptyings) it
//! started under, and is dropped if the cache was emptied in between.
//!
//! Only credentials that were accepted are kept (a refusal is never cached), at most
//! [`MAX_ENTRIES`] (a full cache is emptied), none longer than [`MAX_AGE`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use ports::{Freshness, ResolvedApiToken, ResolvedUser, StoredSession};
use sea_orm::sqlx::postgres::{PgConnectOptions, PgConnection};
use sea_orm::sqlx::{self, Connection, Row};
use uuid::Uuid;

/// How often the heartbeat asks whether a credential changed.
pub const HEARTBEAT_EVERY: Duration = Duration::from_millis(200);
/// How long a heartbeat (connecting included) may take before its connection is dropped.
pub const BEAT_TIMEOUT: Duration = Duration::from_millis(1000);
/// How long after its latest heartbeat was sent the cache answers: within
/// [`ports::CREDENTIAL_STALENESS`], with room for the heartbeat's own way.
pub const CURRENT_FOR: Duration = Duration::from_millis(750);
/// The most credentials kept.
pub const MAX_ENTRIES: usize = 10_000;
/// The longest one is kept, change or not.
pub const MAX_AGE: Duration = Duration::from_secs(60);

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
    /// The count of emptyings.
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
        }
    }
}

/// How the cache stands, for tests and diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheState {
    /// Whether it answers now.
    pub current: bool,
    pub entries: usize,
    /// The count of emptyings.
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

    /// Keeps what a read that started under `ticket` found, unless the cache was emptied
    /// since.
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

    /// A heartbeat sent at `sent` answered: a change since the previous one empties the
    /// cache, which then answers for [`CURRENT_FOR`] from `sent`.
    fn beat(&self, sent: Instant, changed: bool) {
        if changed {
            self.forget_all();
        }
        let until = self
            .nanos(sent)
            .saturating_add(u64::try_from(CURRENT_FOR.as_nanos()).unwrap_or(u64::MAX));
        self.current_until.fetch_max(until, Ordering::AcqRel);
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

/// The heartbeat's `application_name`, to tell its connection from the others'.
pub const HEARTBEAT_APPLICATION: &str = "rhesis credential heartbeat";

/// The heartbeat's `statement_timeout`, in milliseconds: under [`BEAT_TIMEOUT`].
const STATEMENT_TIMEOUT_MS: &str = "900";

const ASK: &str = "SELECT seen, changed FROM app_credential_changes_since($1::pg_snapshot)";

/// Asks the database every [`HEARTBEAT_EVERY`], over a connection of its own (made as the
/// request pool's), whether a credential changed since the previous heartbeat, until
/// dropped. A heartbeat that fails or takes longer than [`BEAT_TIMEOUT`] drops its
/// connection (a hung one is never waited on again), makes the cache silent at once and
/// the next heartbeat starts over on a new connection.
pub(crate) async fn keep_current(cache: Arc<CredentialCache>, options: PgConnectOptions) {
    // The server ends a heartbeat's statement that outlasts its wait here, so a dropped
    // connection leaves no server process behind, waiting.
    let options = options
        .application_name(HEARTBEAT_APPLICATION)
        .options([("statement_timeout", STATEMENT_TIMEOUT_MS)]);
    let mut connection: Option<PgConnection> = None;
    // The snapshot the previous heartbeat saw; none after a failure.
    let mut seen: Option<String> = None;
    let mut failing = false;
    let mut tick = tokio::time::interval(HEARTBEAT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let sent = Instant::now();
        let asked = ask(&mut connection, &options, seen.as_deref());
        let failure = match tokio::time::timeout(BEAT_TIMEOUT, asked).await {
            Ok(Ok((now_seen, changed))) => {
                cache.beat(sent, changed);
                seen = Some(now_seen);
                if failing {
                    tracing::info!("credential cache: the heartbeat answers again");
                    failing = false;
                }
                continue;
            }
            Ok(Err(err)) => err.to_string(),
            Err(_) => String::from("no answer in time"),
        };
        connection = None;
        seen = None;
        cache.lapse();
        metrics::counter!(crate::metrics::CREDENTIAL_CACHE_LAPSES).increment(1);
        if !failing {
            tracing::warn!(error = %failure, "credential cache: the heartbeat failed, the cache is silent");
            failing = true;
        }
    }
}

/// One heartbeat: the snapshot of now, and whether a change committed since `seen`.
async fn ask(
    connection: &mut Option<PgConnection>,
    options: &PgConnectOptions,
    seen: Option<&str>,
) -> Result<(String, bool), sqlx::Error> {
    let connection = match connection {
        Some(open) => open,
        None => connection.insert(PgConnection::connect_with(options).await?),
    };
    let row = sqlx::query(ASK).bind(seen).fetch_one(connection).await?;
    Ok((row.try_get("seen")?, row.try_get("changed")?))
}
