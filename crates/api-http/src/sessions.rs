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
use app::SessionEntry;
use domain::UserId;
use ports::SessionLifetime;

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
}

impl std::fmt::Debug for SessionSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionSettings")
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

/// actix-session's storage over the PostgreSQL store. A session is loaded by the
/// authentication decision point ([`app::App::authenticate_session`]): one statement finds
/// it, reads its user as they are now and sets the tenant, and the decision waits in
/// [`entered`] for the request's [`crate::Caller`].
#[derive(Clone)]
pub(crate) struct PgSessions {
    store: Arc<dyn ports::SessionStore>,
    app: app::App,
    lifetime: SessionLifetime,
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
    pub(crate) fn new(settings: &SessionSettings, app: app::App) -> Self {
        Self {
            store: Arc::clone(&settings.store),
            app,
            lifetime: settings.lifetime,
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
        let origin = app::Origin {
            client_ip: None,
            request_id: crate::request_context::current_request_id(),
        };
        let entry = self
            .app
            .authenticate_session(
                id_hash(session_key),
                self.lifetime,
                entered::keep(),
                &origin,
            )
            .await;
        let entry = match entry {
            Ok(entry) => entry,
            Err(err @ ports::StoreError::Unavailable(_)) => {
                // No session to hand on, and the request is answered 503 inside the session
                // layer (`entered::refuse_if_unavailable`); an error here would be a bare 500.
                tracing::warn!(error = %err, "the session store is unavailable");
                entered::store_unavailable();
                return Ok(None);
            }
            Err(err) => return Err(LoadError::Other(StorageError::Store(err).into())),
        };
        let (data, decision) = match entry {
            SessionEntry::Live { data, decision } => (data, decision),
            SessionEntry::Unknown | SessionEntry::Ended => return Ok(None),
        };
        entered::stash(decision);
        serde_json::from_str(&data)
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
        if !updated {
            // Gone meanwhile (logged out, replaced or ended while this request ran): it stays
            // gone. Storing the state again, under any id, would log the browser back in;
            // the id it keeps names nothing, so its next request is logged out.
            tracing::info!("a session ended while a request changed it; its change is dropped");
        }
        Ok(session_key)
    }

    async fn update_ttl(
        &self,
        _session_key: &SessionKey,
        _ttl: &actix_web::cookie::time::Duration,
    ) -> Result<(), anyhow::Error> {
        // Use is noted when the session is loaded, and written apart
        // (`app::App::record_session_touches`).
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
    app: app::App,
) -> SessionMiddleware<PgSessions> {
    let absolute =
        actix_web::cookie::time::Duration::seconds(settings.lifetime.absolute.num_seconds());
    SessionMiddleware::builder(PgSessions::new(settings, app), settings.cookie_key.clone())
        .cookie_name(SESSION_COOKIE.to_owned())
        .cookie_secure(true)
        .cookie_http_only(true)
        .cookie_same_site(SameSite::Lax)
        .cookie_path("/".to_owned())
        .cookie_domain(None)
        .session_lifecycle(BrowserSession::default().state_ttl(absolute))
        .build()
}

/// The decision on the request's browser session, from where the session layer loads it to
/// where the request's [`crate::Caller`] is extracted: a task-local slot that
/// [`entered::scope`] opens around the session layer for each request.
pub(crate) mod entered {
    use std::cell::RefCell;

    use actix_web::ResponseError;
    use actix_web::body::{EitherBody, MessageBody};
    use actix_web::dev::{ServiceRequest, ServiceResponse};
    use actix_web::middleware::Next;

    use crate::{ApiError, ErrorCode};

    struct Slot {
        /// Whether the session's transaction is kept for the request's work.
        keep: bool,
        decision: Option<app::Decision>,
        /// Whether the session store was found unavailable (the database down).
        unavailable: bool,
    }

    tokio::task_local! {
        static SLOT: RefCell<Slot>;
    }

    /// Opens the slot for one request. The transaction a session was found in is kept only
    /// for a read of the API, whose handlers all take a `Caller` first; any other request
    /// (a login, a change, the documentation) lets it end at once, so nothing reaches the
    /// store while it is held.
    pub(crate) async fn scope(
        req: ServiceRequest,
        next: Next<impl MessageBody>,
    ) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
        let keep = crate::auth::is_safe(req.method()) && req.path().starts_with("/api/");
        let slot = RefCell::new(Slot {
            keep,
            decision: None,
            unavailable: false,
        });
        SLOT.scope(slot, next.call(req)).await
    }

    /// Inside the session layer: a request whose session could not be looked up because
    /// the store is unavailable (the database down) is answered 503 with `Retry-After`, as
    /// any other request then is, and reaches no handler (which would see no session).
    pub(crate) async fn refuse_if_unavailable(
        req: ServiceRequest,
        next: Next<impl MessageBody>,
    ) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
        if SLOT
            .try_with(|slot| slot.borrow().unavailable)
            .unwrap_or(false)
        {
            let answer = ApiError::new(ErrorCode::Unavailable).error_response();
            return Ok(req.into_response(answer).map_into_right_body());
        }
        Ok(next.call(req).await?.map_into_left_body())
    }

    /// Notes that the session store is unavailable: the request is answered 503.
    pub(super) fn store_unavailable() {
        let _ = SLOT.try_with(|slot| slot.borrow_mut().unavailable = true);
    }

    /// Whether the session's transaction is kept for the request's work.
    pub(super) fn keep() -> bool {
        SLOT.try_with(|slot| slot.borrow().keep).unwrap_or(false)
    }

    /// Leaves the decision on the request's session for its `Caller`.
    pub(super) fn stash(decision: app::Decision) {
        // Outside a request (no slot) the decision, and any transaction in it, just ends.
        let _ = SLOT.try_with(|slot| slot.borrow_mut().decision = Some(decision));
    }

    /// The decision on the request's session, if its session was loaded.
    pub(crate) fn take() -> Option<app::Decision> {
        SLOT.try_with(|slot| slot.borrow_mut().decision.take())
            .ok()
            .flatten()
    }
}
