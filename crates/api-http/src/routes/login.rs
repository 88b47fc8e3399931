//! Browser login through the OpenID Connect provider: `/auth/login` sends the browser to the
//! provider (PKCE, `state`, `nonce`; the login kept server-side under the state's hash, the
//! state itself in a short-lived `__Host-` cookie), `/auth/callback` takes the login once,
//! exchanges the code, links the user and opens a session under a new id; `/auth/me` and
//! `/auth/session-token` serve the single-page app.

use std::sync::Arc;

use actix_session::SessionExt;
use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::header::{CACHE_CONTROL, HeaderValue, LOCATION};
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use app::login::{MintSessionTokenError, ReplacedSession, SignInError};
use chrono::Duration;
use domain::{AuditAction, AuditOutcome, UserId};
use ports::{IdentityProvider, IdentityProviderError, LoginAttempts, LoginFinish, PendingLogin};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use crate::auth::{Caller, RequestMeta};
use crate::routes::session::AccessToken;
use crate::{ApiError, AppState, ErrorCode};

/// The cookie that carries a login's `state` from `/auth/login` to `/auth/callback`.
pub const LOGIN_COOKIE: &str = "__Host-rh-login";
/// How long a login may take at the provider.
const LOGIN_TTL: Duration = Duration::minutes(10);
/// The largest `max_age` a login may ask for: a day.
const MAX_AGE_LIMIT: u32 = 86_400;

/// The browser login: the provider and the logins under way.
#[derive(Clone)]
pub struct LoginSettings {
    pub provider: Arc<dyn IdentityProvider>,
    pub attempts: Arc<dyn LoginAttempts>,
    /// Where the browser goes after a login that named no `return_to`, and after logout.
    pub frontend_url: String,
}

impl std::fmt::Debug for LoginSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginSettings")
            .field("provider", &self.provider)
            .field("frontend_url", &self.frontend_url)
            .finish_non_exhaustive()
    }
}

pub(crate) fn routes(cfg: &mut ServiceConfig<'_>) {
    cfg.service(login)
        .service(callback)
        .service(auth_me)
        .service(session_token);
}

fn settings(state: &AppState) -> Result<&LoginSettings, ApiError> {
    state
        .login
        .as_deref()
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound))
}

fn unavailable(err: IdentityProviderError) -> ApiError {
    ApiError::with_cause(ErrorCode::Unavailable, err)
}

/// `return_to` if it is a URL on one of the allowed frontend origins, exactly.
fn allowed_return_to(state: &AppState, return_to: &str) -> Option<String> {
    let url = url::Url::parse(return_to).ok()?;
    if !matches!(url.scheme(), "https" | "http") || url.cannot_be_a_base() {
        return None;
    }
    let origin = url.origin().ascii_serialization();
    state
        .cors_allowed_origins
        .contains(&origin)
        .then(|| url.to_string())
}

#[derive(Debug, Deserialize, IntoParams)]
pub(crate) struct LoginQuery {
    /// Where to go after the login: a URL on an allowed frontend origin.
    return_to: Option<String>,
    /// Ask the provider for an authentication no older than this many seconds (step-up;
    /// 0 forces a new one).
    max_age: Option<u32>,
}

/// Sends the browser to the identity provider.
#[utoipa::path(
    tag = "session",
    params(LoginQuery),
    responses(
        (status = 303, description = "To the identity provider"),
        (status = 400, body = crate::error::Problem),
        (status = 503, description = "The identity provider is unavailable", body = crate::error::Problem)
    )
)]
#[get("/auth/login")]
pub(crate) async fn login(
    state: web::Data<AppState>,
    query: web::Query<LoginQuery>,
) -> Result<HttpResponse, ApiError> {
    let settings = settings(&state)?;
    let return_to = match &query.return_to {
        Some(r) => Some(allowed_return_to(&state, r).ok_or_else(|| {
            tracing::info!(
                security_event = "return_to_refused",
                "a login's return_to is not an allowed origin"
            );
            ApiError::new(ErrorCode::InvalidRequest).with_field("return_to")
        })?),
        None => None,
    };
    let max_age = match query.max_age {
        Some(seconds) if seconds <= MAX_AGE_LIMIT => Some(Duration::seconds(i64::from(seconds))),
        Some(_) => return Err(ApiError::new(ErrorCode::InvalidRequest).with_field("max_age")),
        None => None,
    };
    let start = settings
        .provider
        .begin(max_age)
        .await
        .map_err(unavailable)?;
    let expires_at = state.clock.now() + LOGIN_TTL;
    settings
        .attempts
        .keep(
            crypto::token_digest(start.state.expose_secret()),
            PendingLogin {
                nonce: start.nonce,
                pkce_verifier: start.pkce_verifier,
                return_to,
                max_age,
                expires_at,
            },
        )
        .await?;
    let cookie = Cookie::build(LOGIN_COOKIE, start.state.expose_secret().to_owned())
        .path("/")
        .secure(true)
        .http_only(true)
        .same_site(SameSite::Lax)
        .max_age(actix_web::cookie::time::Duration::seconds(
            LOGIN_TTL.num_seconds(),
        ))
        .finish();
    Ok(HttpResponse::SeeOther()
        .insert_header((LOCATION, start.authorize_url))
        .insert_header((CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .cookie(cookie)
        .finish())
}

#[derive(Debug, Deserialize, IntoParams)]
pub(crate) struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    /// Set by the provider when the login failed there.
    error: Option<String>,
}

/// Failures that are nobody's attack: the person cancelled at the provider, or the provider
/// or the store failed. Every other failed callback is a strike against the client address's
/// traffic ledger, which never bans: a foreign page can send a victim's browser to the
/// callback (an image, or a top-level navigation that carries the login cookie too).
const NOT_STRIKES: [&str; 3] = ["provider_error", "provider_unavailable", "store"];

/// Records a failed login and answers 401 (503 when the provider is down; 403 when the
/// failure blocked the client).
async fn failed(state: &AppState, meta: &RequestMeta, reason: &str, error: ApiError) -> ApiError {
    tracing::info!(reason, "a browser login failed");
    let mut event = meta.event(
        None,
        AuditAction::AuthenticationFailed,
        AuditOutcome::Failure,
    );
    event.target = Some(domain::AuditTarget::Login);
    event.reason = Some(reason.to_owned());
    state.refusals.note(None, event);
    match meta.client_ip {
        Some(ip) if !NOT_STRIKES.contains(&reason) => {
            let verdict = state
                .blocker
                .strike(&domain::BlockKey::traffic(ip), meta.block_context(None))
                .await;
            crate::admission::after_strike(verdict, error, state.clock.now())
        }
        _ => error,
    }
}

fn refused() -> ApiError {
    ApiError::new(ErrorCode::Unauthenticated)
}

/// The provider sends the browser back here.
#[utoipa::path(
    tag = "session",
    params(CallbackQuery),
    responses(
        (status = 303, description = "Logged in: to the frontend, with the session cookie"),
        (status = 401, description = "The login failed", body = crate::error::Problem),
        (status = 503, description = "The identity provider is unavailable", body = crate::error::Problem)
    )
)]
#[get("/auth/callback")]
pub(crate) async fn callback(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<CallbackQuery>,
) -> Result<HttpResponse, ApiError> {
    let settings = settings(&state)?;
    let meta = RequestMeta::of(&req);
    if query.error.is_some() {
        return Err(failed(&state, &meta, "provider_error", refused()).await);
    }
    let cookie = req.cookie(LOGIN_COOKIE);
    let (Some(cookie), Some(presented), Some(code)) = (cookie, &query.state, &query.code) else {
        return Err(failed(&state, &meta, "state_missing", refused()).await);
    };
    if !crypto::constant_time_eq(cookie.value(), presented) {
        return Err(failed(&state, &meta, "state_mismatch", refused()).await);
    }
    let Some(pending) = settings
        .attempts
        .take(crypto::token_digest(presented))
        .await?
    else {
        return Err(failed(&state, &meta, "state_unknown_or_used", refused()).await);
    };
    let step_up = pending.max_age.is_some();
    let who = match settings
        .provider
        .finish(LoginFinish {
            code: SecretString::from(code.clone()),
            nonce: pending.nonce,
            pkce_verifier: pending.pkce_verifier,
            max_age: pending.max_age,
        })
        .await
    {
        Ok(who) => who,
        Err(IdentityProviderError::Refused { reason }) => {
            return Err(failed(&state, &meta, reason, refused()).await);
        }
        Err(err) => {
            return Err(failed(&state, &meta, "provider_unavailable", unavailable(err)).await);
        }
    };
    // The browser's session before this login, if any: the tokens minted from it end.
    let session = req.get_session();
    let replaces = match (
        session.get::<Uuid>(crate::sessions::SID_KEY),
        session.get::<Uuid>(crate::sessions::USER_KEY),
    ) {
        (Ok(Some(sid)), Ok(Some(user))) => Some(ReplacedSession {
            sid,
            user: UserId::from_uuid(user),
        }),
        _ => None,
    };
    let user = match state
        .app
        .sign_in(&who, step_up, replaces, &meta.origin())
        .await
    {
        Ok(user) => user,
        Err(SignInError::Refused(reason)) => {
            return Err(failed(&state, &meta, reason, refused()).await);
        }
        Err(SignInError::Store(err)) => {
            return Err(failed(&state, &meta, "store", err.into()).await);
        }
    };
    // A new session id at every login: whatever id the browser had is not the one after.
    session.renew();
    session.clear();
    let inserted = session
        .insert(crate::sessions::USER_KEY, user.user_id.as_uuid())
        .and_then(|()| session.insert(crate::sessions::SID_KEY, Uuid::new_v4()))
        .and_then(|()| match who.auth_time {
            Some(at) => session.insert(crate::sessions::AUTH_TIME_KEY, at.timestamp()),
            None => Ok(()),
        });
    if let Err(err) = inserted {
        return Err(ApiError::with_cause(ErrorCode::Internal, err));
    }
    let mut gone = Cookie::build(LOGIN_COOKIE, "")
        .path("/")
        .secure(true)
        .http_only(true)
        .same_site(SameSite::Lax)
        .finish();
    gone.make_removal();
    let target = pending
        .return_to
        .unwrap_or_else(|| settings.frontend_url.clone());
    Ok(HttpResponse::SeeOther()
        .insert_header((LOCATION, target))
        .insert_header((CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .cookie(gone)
        .finish())
}

/// The logged-in browser's user (any credential works).
#[utoipa::path(
    tag = "session",
    responses(
        (status = 200, body = crate::routes::session::Me),
        (status = 401, description = "Not logged in", body = crate::error::Problem)
    )
)]
#[get("/auth/me")]
pub(crate) async fn auth_me(caller: Caller) -> web::Json<crate::routes::session::Me> {
    crate::routes::session::describe(&caller)
}

/// A short-lived access token for the single-page app, carrying the session's `auth_time`.
#[utoipa::path(
    tag = "session",
    responses(
        (status = 200, body = AccessToken),
        (status = 400, description = "Not a browser session", body = crate::error::Problem),
        (status = 401, description = "Not logged in", body = crate::error::Problem),
        (status = 403, description = "From a foreign origin", body = crate::error::Problem)
    )
)]
#[post("/auth/session-token")]
pub(crate) async fn session_token(
    req: HttpRequest,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let session = req.get_session();
    let known = session.get::<Uuid>(crate::sessions::SID_KEY).ok().flatten();
    let state = caller.state();
    let issued = state.app.mint_session_token(caller.app(), known).await?;
    // A session that had no id yet keeps the one its first token carries.
    if let Some(sid) = issued.session.filter(|sid| Some(*sid) != known) {
        session
            .insert(crate::sessions::SID_KEY, sid)
            .map_err(|e| ApiError::with_cause(ErrorCode::Internal, e))?;
    }
    Ok(crate::routes::session::token_response(issued))
}

impl From<MintSessionTokenError> for ApiError {
    fn from(err: MintSessionTokenError) -> Self {
        match err {
            MintSessionTokenError::Refused(refused) => refused.into(),
            MintSessionTokenError::NotASession => {
                ApiError::new(ErrorCode::InvalidRequest).with_field("authorization")
            }
            MintSessionTokenError::Issue(err) => ApiError::with_cause(ErrorCode::Internal, err),
            MintSessionTokenError::Store(err) => err.into(),
        }
    }
}
