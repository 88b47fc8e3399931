//! Who am I, the development login, and logout (revocation of the presented access token).

use actix_web::http::header::{CACHE_CONTROL, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use app::AuthMethod;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use app::login::{IssuedToken, LocalLoginError};
use app::session::LogoutError;
use secrecy::ExposeSecret;

use crate::auth::{Caller, Credential, RequestMeta};
use crate::{ApiError, AppState, ErrorCode};

pub(crate) fn routes(cfg: &mut ServiceConfig<'_>, development: bool) {
    cfg.service(me).service(logout);
    if development {
        cfg.service(local_login);
    }
}

/// The authenticated caller.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Me {
    user_id: Uuid,
    /// `null` until the user founds or joins an organization.
    organization_id: Option<Uuid>,
    role: Option<String>,
    /// `jwt`, `api_token` or `session`.
    authenticated_by: &'static str,
    /// When the user last logged in interactively (not known for API tokens).
    auth_time: Option<DateTime<Utc>>,
}

/// An access token, returned by a login.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AccessToken {
    access_token: String,
    /// Always `Bearer`.
    token_type: &'static str,
    /// Seconds until it expires.
    expires_in: i64,
}

impl AccessToken {
    pub(crate) fn bearer(access_token: String, lifetime: chrono::Duration) -> Self {
        Self {
            access_token,
            token_type: "Bearer",
            expires_in: lifetime.num_seconds(),
        }
    }
}

/// Where to end the session at the identity provider too.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LoggedOut {
    /// Open this in the browser to log out at the identity provider as well; `null` when
    /// the provider offers no logout.
    logout_url: Option<String>,
}

/// The caller, as the presented credential proves them.
#[utoipa::path(
    tag = "session",
    security(("bearer" = [])),
    responses(
        (status = 200, body = Me),
        (status = 401, description = "No valid credential", body = crate::error::Problem)
    )
)]
#[get("/api/v1/me")]
pub(crate) async fn me(caller: Caller) -> web::Json<Me> {
    describe(&caller)
}

/// The caller as [`Me`] describes them.
pub(crate) fn describe(caller: &Caller) -> web::Json<Me> {
    let principal = caller.principal();
    let membership = principal.membership();
    web::Json(Me {
        user_id: *principal.user_id().as_uuid(),
        organization_id: membership.map(|m| *m.organization_id.as_uuid()),
        role: membership.map(|m| m.role.as_str().to_owned()),
        authenticated_by: match principal.method() {
            AuthMethod::Jwt => "jwt",
            AuthMethod::ApiToken => "api_token",
            AuthMethod::Session => "session",
            AuthMethod::Operator => "operator",
        },
        auth_time: principal.auth_time(),
    })
}

/// Logs out: the presented access token is revoked (refused from now on), with every token
/// minted from the same browser session, or the browser session is deleted server-side and
/// its cookie cleared. API tokens are revoked through their own route.
#[utoipa::path(
    tag = "session",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "The access token is revoked"),
        (status = 200, description = "The session is deleted", body = LoggedOut),
        (status = 400, description = "The credential is not an access token", body = crate::error::Problem),
        (status = 401, description = "No valid credential", body = crate::error::Problem)
    )
)]
#[post("/auth/logout")]
pub(crate) async fn logout(req: HttpRequest, caller: Caller) -> Result<HttpResponse, ApiError> {
    use actix_session::SessionExt;
    let session = req.get_session();
    let by_session = caller.credential() == Credential::Session;
    let minted_from = if by_session {
        crate::sessions::minted_from(&session)
    } else {
        None
    };
    let state = caller.state();
    let logged_out = state.app.logout(caller.app(), minted_from).await;
    // A session logout ends the session even when its audit event could not be written.
    if by_session && !matches!(logged_out, Err(LogoutError::Refused(_))) {
        session.purge();
    }
    logged_out?;
    if !by_session {
        return Ok(HttpResponse::NoContent().finish());
    }
    let logout_url = match &state.login {
        Some(login) => login.provider.logout_url(&login.frontend_url).await,
        None => None,
    };
    Ok(HttpResponse::Ok()
        .insert_header(("clear-site-data", "\"cookies\", \"storage\""))
        .insert_header((CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .json(LoggedOut { logout_url }))
}

impl From<LogoutError> for ApiError {
    fn from(err: LogoutError) -> Self {
        match err {
            LogoutError::Refused(refused) => refused.into(),
            LogoutError::NotLoggedIn => {
                ApiError::new(ErrorCode::InvalidRequest).with_field("authorization")
            }
            LogoutError::Store(err) => err.into(),
        }
    }
}

/// Development profile only: an access token for the seeded administrator, without an
/// identity provider. The route does not exist in any other profile.
#[utoipa::path(
    tag = "session",
    responses(
        (status = 200, body = AccessToken),
        (status = 404, description = "Not the development profile, or nothing seeded", body = crate::error::Problem)
    )
)]
#[post("/auth/local-login")]
pub(crate) async fn local_login(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let Some(subject) = state.auth.dev_login_subject.as_deref() else {
        return Err(ApiError::new(ErrorCode::NotFound));
    };
    let issued = state
        .app
        .local_login(subject, &RequestMeta::of(&req).origin())
        .await?;
    Ok(token_response(issued))
}

impl From<LocalLoginError> for ApiError {
    fn from(err: LocalLoginError) -> Self {
        match err {
            LocalLoginError::NotFound => ApiError::new(ErrorCode::NotFound),
            LocalLoginError::Issue(err) => ApiError::with_cause(ErrorCode::Internal, err),
            LocalLoginError::Store(err) => err.into(),
        }
    }
}

/// An access token just issued, never cached.
pub(crate) fn token_response(issued: IssuedToken) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .json(AccessToken::bearer(
            issued.token.expose_secret().to_owned(),
            issued.lifetime,
        ))
}
