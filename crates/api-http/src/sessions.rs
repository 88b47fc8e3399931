//! Server-side browser sessions: actix-session's cookie handling over the PostgreSQL store
//! (`ports::SessionStore`). The cookie (`__Host-rh-session`: Secure, HttpOnly, SameSite=Lax,
//! Path=/, no Domain, encrypted) carries only a random 256-bit id; the store keeps its
//! SHA-256, never the id. A session ends when unused for the idle timeout or at its absolute
//! end, both enforced server-side; an unknown id is never adopted (a new one is drawn).

use std::collections::HashMap;
use std::sync::Arc;

use actix_session::storage::{LoadError, SaveError, SessionKey, SessionStore, UpdateError};
use actix_session::{SessionMiddleware, config::BrowserSession};
use actix_web::cookie::{Key, SameSite};
use chrono::Duration;
use domain::UserId;
use domain::{AuditAction, AuditOutcome};
use ports::{AuditLog, Clock, NewAuditEvent, SessionLifetime, SessionLookup};

/// The session cookie's name. `__Host-` makes browsers insist on Secure, Path=/ and no Domain.
pub const SESSION_COOKIE: &str = "__Host-rh-session";
/// The session state's keys.
pub const USER_KEY: &str = "user_id";
pub const AUTH_TIME_KEY: &str = "auth_time";
/// The id the session's minted access tokens carry as `sid` (not the cookie's id, which never
/// leaves the cookie and the store's hash).
pub(crate) const SID_KEY: &str = "sid";

/// The id by which the access tokens minted from `session` are known, if it minted any.
pub(crate) fn minted_from(session: &actix_session::Session) -> Option<uuid::Uuid> {
    session.get::<uuid::Uuid>(SID_KEY).ok().flatten()
}

/// How sessions are kept.
#[derive(Clone)]
pub struct SessionSettings {
    pub store: Arc<dyn ports::SessionStore>,
    pub lifetime: SessionLifetime,
    /// Encrypts the cookie (the id inside is random already; this keeps it opaque).
    pub cookie_key: Key,
    /// How often a session's last use is written at most.
    pub touch_every: Duration,
}

impl std::fmt::Debug for SessionSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionSettings")
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

/// actix-session's storage over the PostgreSQL store.
#[derive(Clone)]
pub(crate) struct PgSessions {
    store: Arc<dyn ports::SessionStore>,
    audit_log: Arc<dyn AuditLog>,
    lifetime: SessionLifetime,
    touch_every: Duration,
    clock: Arc<dyn Clock>,
}

fn id_hash(key: &SessionKey) -> [u8; 32] {
    crypto::token_digest(key.as_ref())
}

/// Why the session storage failed, inside actix-session's `anyhow` errors.
#[derive(Debug, thiserror::Error)]
enum StorageError {
    #[error("a session must name its user")]
    NoUser,
    #[error("the session state could not be written")]
    Data,
    #[error("the session store failed")]
    Store(#[source] ports::StoreError),
}

/// The user and `auth_time` a session's state names, and the state as stored.
fn parse_state(
    state: &HashMap<String, String>,
) -> Result<(UserId, Option<chrono::DateTime<chrono::Utc>>, String), StorageError> {
    let user: uuid::Uuid = state
        .get(USER_KEY)
        .and_then(|v| serde_json::from_str(v).ok())
        .ok_or(StorageError::NoUser)?;
    let auth_time = state
        .get(AUTH_TIME_KEY)
        .and_then(|v| serde_json::from_str::<i64>(v).ok())
        .and_then(|t| chrono::DateTime::from_timestamp(t, 0));
    let data = serde_json::to_string(state).map_err(|_| StorageError::Data)?;
    Ok((UserId::from_uuid(user), auth_time, data))
}

impl PgSessions {
    pub(crate) fn new(
        settings: &SessionSettings,
        clock: Arc<dyn Clock>,
        audit_log: Arc<dyn AuditLog>,
    ) -> Self {
        Self {
            store: Arc::clone(&settings.store),
            audit_log,
            lifetime: settings.lifetime,
            touch_every: settings.touch_every,
            clock,
        }
    }

    /// Stores `state` under a new random id (256 bits); the id.
    async fn create(&self, state: &HashMap<String, String>) -> Result<SessionKey, StorageError> {
        use base64::Engine;
        let (user, auth_time, data) = parse_state(state)?;
        let bytes: [u8; 32] = rand::random();
        let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let key = SessionKey::try_from(text).map_err(|_| StorageError::Data)?;
        self.store
            .create(id_hash(&key), user, auth_time, data, self.lifetime)
            .await
            .map_err(StorageError::Store)?;
        Ok(key)
    }
}

impl SessionStore for PgSessions {
    async fn load(
        &self,
        session_key: &SessionKey,
    ) -> Result<Option<HashMap<String, String>>, LoadError> {
        let hash = id_hash(session_key);
        let session = match self
            .store
            .load(hash, self.lifetime)
            .await
            .map_err(|e| LoadError::Other(StorageError::Store(e).into()))?
        {
            SessionLookup::Live(session) => session,
            SessionLookup::Unknown => return Ok(None),
            SessionLookup::Ended { user, why } => {
                tracing::info!(reason = why.as_str(), "a session ended");
                let event = NewAuditEvent {
                    target: Some(domain::AuditTarget::Session),
                    outcome: AuditOutcome::Failure,
                    reason: Some(why.as_str().to_owned()),
                    request_id: crate::request_context::current_request_id(),
                    ..NewAuditEvent::by(Some(user), AuditAction::SessionExpired)
                };
                if let Err(err) = self.audit_log.unscoped_record(None, event).await {
                    tracing::error!(error = %err, "the session's end could not be recorded");
                }
                return Ok(None);
            }
        };
        if self.clock.now() - session.last_seen_at >= self.touch_every {
            self.store
                .touch(hash)
                .await
                .map_err(|e| LoadError::Other(StorageError::Store(e).into()))?;
        }
        serde_json::from_str(&session.data)
            .map(Some)
            .map_err(|e| LoadError::Deserialization(e.into()))
    }

    async fn save(
        &self,
        session_state: HashMap<String, String>,
        _ttl: &actix_web::cookie::time::Duration,
    ) -> Result<SessionKey, SaveError> {
        self.create(&session_state)
            .await
            .map_err(|e| SaveError::Other(e.into()))
    }

    async fn update(
        &self,
        session_key: SessionKey,
        session_state: HashMap<String, String>,
        _ttl: &actix_web::cookie::time::Duration,
    ) -> Result<SessionKey, UpdateError> {
        let (_, auth_time, data) =
            parse_state(&session_state).map_err(|e| UpdateError::Other(e.into()))?;
        let updated = self
            .store
            .update(id_hash(&session_key), auth_time, data)
            .await
            .map_err(|e| UpdateError::Other(StorageError::Store(e).into()))?;
        if updated {
            return Ok(session_key);
        }
        // Gone meanwhile: the state goes under a new id, never under the old one.
        self.create(&session_state)
            .await
            .map_err(|e| UpdateError::Other(e.into()))
    }

    async fn update_ttl(
        &self,
        _session_key: &SessionKey,
        _ttl: &actix_web::cookie::time::Duration,
    ) -> Result<(), anyhow::Error> {
        // Use is recorded when the session is loaded (at most every `touch_every`).
        Ok(())
    }

    async fn delete(&self, session_key: &SessionKey) -> Result<(), anyhow::Error> {
        self.store
            .delete(id_hash(session_key))
            .await
            .map_err(|e| StorageError::Store(e).into())
    }
}

/// The session middleware: the cookie's attributes, over the PostgreSQL store.
pub(crate) fn middleware(
    settings: &SessionSettings,
    clock: Arc<dyn Clock>,
    audit_log: Arc<dyn AuditLog>,
) -> SessionMiddleware<PgSessions> {
    let absolute =
        actix_web::cookie::time::Duration::seconds(settings.lifetime.absolute.num_seconds());
    SessionMiddleware::builder(
        PgSessions::new(settings, clock, audit_log),
        settings.cookie_key.clone(),
    )
    .cookie_name(SESSION_COOKIE.to_owned())
    .cookie_secure(true)
    .cookie_http_only(true)
    .cookie_same_site(SameSite::Lax)
    .cookie_path("/".to_owned())
    .cookie_domain(None)
    .session_lifecycle(BrowserSession::default().state_ttl(absolute))
    .build()
}
