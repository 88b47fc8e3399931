//! Authentication at the HTTP edge: `Authorization: Bearer` with one of the backend's JWTs or
//! an `rh-` API token becomes a [`Principal`], and only then a tenant scope.
//!
//! A refused credential gets a 401 with a `WWW-Authenticate: Bearer` challenge and a generic
//! body; why it was refused (expired, bad signature, revoked, unknown) goes to the log and to
//! the audit log, attributed to the organization the credential names when it names one, and
//! to the system chain otherwise.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use app::Principal;
use chrono::{DateTime, Duration};
use crypto::{JwtAuthority, JwtError};
use domain::{AuditAction, AuditOutcome, AuditTarget, BlockKey, OrganizationId, UserId};
use ports::{NewAuditEvent, Refusal, RefusalReason};
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use app::Denial;

use crate::{ApiError, AppState, ErrorCode, admission, request_context};

/// The realm of every challenge.
const REALM: &str = "rhesis";

/// How requests authenticate, and how fresh a login must be for sensitive operations.
pub struct AuthSettings {
    pub jwt: JwtAuthority,
    /// The oldest `auth_time` a sensitive operation accepts.
    pub fresh_auth_max_age: Duration,
    /// How often an API token's `last_used_at` is written at most.
    pub token_use_resolution: Duration,
    /// The identity-provider subject that `POST /auth/local-login` signs in as. `None`
    /// outside the development profile, where the route does not exist.
    pub dev_login_subject: Option<String>,
}

/// The backend's access tokens as the application layer signs them: HS256 JWTs under
/// [`AuthSettings::jwt`].
#[derive(Debug, Clone)]
pub struct JwtIssuer(pub Arc<AuthSettings>);

impl ports::AccessTokenIssuer for JwtIssuer {
    fn issue(
        &self,
        grant: &ports::AccessTokenGrant,
        jti: Uuid,
        now: DateTime<chrono::Utc>,
    ) -> Result<SecretString, ports::IssueError> {
        let subject = crypto::Subject {
            user: *grant.user.as_uuid(),
            organization: grant.membership.map(|m| *m.organization_id.as_uuid()),
            role: grant.membership.map(|m| m.role.as_str().to_owned()),
            auth_time: grant.auth_time,
            session: grant.session,
        };
        self.0
            .jwt
            .issue(&subject, jti, now)
            .map(SecretString::from)
            .map_err(|e| ports::IssueError(Box::new(e)))
    }

    fn lifetime(&self) -> Duration {
        self.0.jwt.lifetime()
    }
}

impl std::fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthSettings")
            .field("jwt", &self.jwt)
            .field("fresh_auth_max_age", &self.fresh_auth_max_age)
            .field("dev_login", &self.dev_login_subject.is_some())
            .finish_non_exhaustive()
    }
}

pub use app::Credential;

/// Where a request came from, for the audit log.
#[derive(Debug, Clone, Default)]
pub(crate) struct RequestMeta {
    pub(crate) client_ip: Option<IpAddr>,
    pub(crate) request_id: Option<String>,
}

impl RequestMeta {
    pub(crate) fn of(req: &HttpRequest) -> Self {
        let client_ip = req
            .extensions()
            .get::<crate::Transport>()
            .map_or_else(|| req.peer_addr().map(|a| a.ip()), |t| t.client_ip);
        Self {
            client_ip,
            request_id: request_context::current_request_id(),
        }
    }

    /// Where a strike of this request came from.
    pub(crate) fn block_context(&self, actor: Option<UserId>) -> ports::BlockContext {
        ports::BlockContext {
            actor,
            client_ip: self.client_ip,
            request_id: self.request_id.clone(),
        }
    }

    /// An event of this request.
    pub(crate) fn event(
        &self,
        actor: Option<UserId>,
        action: AuditAction,
        outcome: AuditOutcome,
    ) -> NewAuditEvent {
        self.origin().event(actor, action, outcome)
    }

    /// The same, as the application layer names it.
    pub(crate) fn origin(&self) -> app::Origin {
        app::Origin {
            client_ip: self.client_ip,
            request_id: self.request_id.clone(),
        }
    }
}

/// An authenticated caller: who, by which credential, and from where. Handlers that take a
/// `Caller` are closed to anonymous requests.
#[derive(Debug, Clone)]
pub struct Caller {
    inner: app::Caller,
    state: web::Data<AppState>,
}

/// The challenge of a request with no usable credential.
fn challenge(error: Option<&str>) -> String {
    match error {
        Some(error) => format!("Bearer realm=\"{REALM}\", error=\"{error}\""),
        None => format!("Bearer realm=\"{REALM}\""),
    }
}

impl From<app::Refused> for ApiError {
    /// 403, or 401 with an RFC 9470 step-up challenge for a login too old.
    fn from(refused: app::Refused) -> Self {
        match refused.denial {
            Denial::StaleLogin { max_age } => {
                let challenge = format!(
                    "Bearer realm=\"{REALM}\", error=\"insufficient_user_authentication\", \
                     error_description=\"A more recent authentication is required\", max_age={}",
                    max_age.num_seconds()
                );
                ApiError::new(ErrorCode::StepUpRequired).with_challenge(challenge)
            }
            Denial::Permission(denied) => ApiError::with_cause(ErrorCode::Forbidden, denied),
            Denial::ApiTokenNotAllowed | Denial::NoOrganization | Denial::StandingChanged => {
                ApiError::new(ErrorCode::Forbidden)
            }
            // Refused when the change's work began, as the next request would be.
            Denial::Credential(_) => ApiError::new(ErrorCode::Unauthenticated)
                .with_challenge(challenge(Some("invalid_token"))),
        }
    }
}

/// A 401 for a request without a credential.
fn unauthenticated() -> ApiError {
    ApiError::new(ErrorCode::Unauthenticated).with_challenge(challenge(None))
}

fn jwt_refusal(err: &JwtError) -> RefusalReason {
    match err {
        JwtError::Malformed => RefusalReason::Malformed,
        JwtError::Signature => RefusalReason::BadSignature,
        JwtError::Expired => RefusalReason::Expired,
        JwtError::NotYetValid => RefusalReason::NotYetValid,
        JwtError::Algorithm
        | JwtError::UnknownKey
        | JwtError::Claims
        | JwtError::IssuerOrAudience
        | JwtError::Type => RefusalReason::Invalid,
    }
}

/// Admits an authenticated credential: refused while it is blocked; counted against its
/// budget, and a request over the budget is a strike against it.
async fn admit(
    req: &HttpRequest,
    state: &AppState,
    meta: &RequestMeta,
    caller: &app::Caller,
) -> Result<(), ApiError> {
    let (principal, credential) = (caller.principal(), caller.credential());
    let key = match credential {
        Credential::ApiToken { id } => BlockKey::token(id),
        Credential::Jwt { .. } => BlockKey::user(principal.user_id()),
        // A foreign page can make the browser send the cookie: a ledger that never bans.
        Credential::Session => BlockKey::session(principal.user_id()),
    };
    let now = state.clock.now();
    // A session answers to its user's blocks too: a ban of the user's access tokens is not
    // escaped by presenting the cookie instead.
    let user_block = || match credential {
        Credential::Session => state
            .blocker
            .blocked(&BlockKey::user(principal.user_id()), now),
        _ => None,
    };
    if let Some(block) = state.blocker.blocked(&key, now).or_else(user_block) {
        return Err(admission::blocked(block, now));
    }
    match state.limiters.check_principal(&key.to_string()) {
        Ok(Some(budget)) => {
            req.extensions_mut()
                .insert(admission::CredentialBudget(budget));
            Ok(())
        }
        Ok(None) => Ok(()),
        Err(over) => {
            // The strike reaches the store: the credential's transaction ends first.
            caller.release();
            let verdict = state
                .blocker
                .strike(&key, meta.block_context(Some(principal.user_id())))
                .await;
            Err(admission::after_strike(
                verdict,
                admission::over_budget(over),
                now,
            ))
        }
    }
}

/// Whether a refusal looks like guessing (a made-up, forged or malformed credential), which
/// counts as a strike against the client address; an expired or revoked credential was
/// genuine once and does not.
const fn is_guess(reason: RefusalReason) -> bool {
    matches!(
        reason,
        RefusalReason::Malformed
            | RefusalReason::Unknown
            | RefusalReason::BadSignature
            | RefusalReason::Invalid
    )
}

/// Logs and records a refused credential and answers 401 (or 403 when the refusal blocked
/// the client).
async fn refuse(
    state: &AppState,
    meta: &RequestMeta,
    refusal: Refusal,
    target: AuditTarget,
) -> ApiError {
    tracing::info!(
        credential = target.kind(),
        reason = refusal.reason.as_str(),
        "credential refused"
    );
    crate::metrics::refusal(target.kind(), refusal.reason.as_str());
    let mut event = meta.event(
        refusal.user,
        AuditAction::AuthenticationFailed,
        AuditOutcome::Failure,
    );
    event.target = Some(target);
    event.reason = Some(refusal.reason.as_str().to_owned());
    state.refusals.note(refusal.organization, event);
    let error =
        ApiError::new(ErrorCode::Unauthenticated).with_challenge(challenge(Some("invalid_token")));
    match meta.client_ip {
        Some(ip) if is_guess(refusal.reason) => {
            let verdict = state
                .blocker
                .strike(&BlockKey::address(ip), meta.block_context(None))
                .await;
            admission::after_strike(verdict, error, state.clock.now())
        }
        _ => error,
    }
}

/// An accepted credential, or the refusal recorded and answered.
async fn decided(
    state: &AppState,
    meta: &RequestMeta,
    decision: app::Decision,
    target: AuditTarget,
) -> Result<app::Authenticated, ApiError> {
    match decision {
        Ok(accepted) => Ok(accepted),
        Err(refusal) => Err(refuse(state, meta, refusal, target).await),
    }
}

async fn by_api_token(
    state: &AppState,
    meta: &RequestMeta,
    presented: SecretString,
    keep: bool,
) -> Result<app::Authenticated, ApiError> {
    let decision = state
        .app
        .authenticate_api_token(&presented, &meta.origin(), keep)
        .await?;
    let target = AuditTarget::ApiToken(decision.as_ref().err().and_then(|r| r.token));
    decided(state, meta, decision, target).await
}

async fn by_jwt(
    state: &AppState,
    meta: &RequestMeta,
    token: &str,
    keep: bool,
) -> Result<app::Authenticated, ApiError> {
    let claims = match state.auth.jwt.verify(token, state.clock.now()) {
        Ok(claims) => claims,
        Err(err) => {
            let refusal = Refusal::anonymous(jwt_refusal(&err));
            return Err(refuse(state, meta, refusal, AuditTarget::AccessToken(None)).await);
        }
    };
    // From here the claims are ours (the signature verified): a refusal can name the user and
    // the organization the token was issued for.
    let claims = app::AccessTokenClaims {
        user: UserId::from_uuid(claims.sub),
        issued_for: claims.org.map(OrganizationId::from_uuid),
        jti: claims.jti,
        sid: claims.sid,
        auth_time: DateTime::from_timestamp(claims.auth_time, 0),
        expires_at: DateTime::from_timestamp(claims.exp, 0).unwrap_or_default(),
    };
    let decision = state.app.authenticate_access_token(&claims, keep).await?;
    let target = AuditTarget::AccessToken(Some(claims.jti));
    decided(state, meta, decision, target).await
}

/// Whether a method changes nothing (RFC 9110 safe methods).
pub(crate) fn is_safe(method: &actix_web::http::Method) -> bool {
    use actix_web::http::Method;
    [Method::GET, Method::HEAD, Method::OPTIONS, Method::TRACE].contains(method)
}

/// The origin (`scheme://host[:port]`) a request says it comes from: its `Origin`, else its
/// `Referer`'s origin.
fn request_origin(req: &HttpRequest) -> Option<String> {
    use actix_web::http::header::{ORIGIN, REFERER};
    if let Some(origin) = req.headers().get(ORIGIN) {
        return origin.to_str().ok().map(str::to_owned);
    }
    let referer = url::Url::parse(req.headers().get(REFERER)?.to_str().ok()?).ok()?;
    Some(referer.origin().ascii_serialization())
}

/// The principal of a request that carries the session cookie: the session's user as they are
/// now (a disabled user's session ends). A state-changing request must come from an allowed
/// frontend origin (the cookie goes along with any site's forms; bearer requests are not
/// cookie-bound and need no such check).
async fn by_session(
    req: &HttpRequest,
    state: &AppState,
    meta: &RequestMeta,
) -> Result<app::Authenticated, ApiError> {
    use actix_session::SessionExt;
    let session = req.get_session();
    let user = session
        .get::<Uuid>(crate::sessions::USER_KEY)
        .ok()
        .flatten()
        .map(UserId::from_uuid);
    let Some(user) = user else {
        return Err(unauthenticated());
    };
    // The session layer found the session and decided on its user in the same statement.
    // A session that names a user without that decision (one made in this very request, or
    // whose state changed since it was found) is not one the store vouched for: refused,
    // and any other user's decision is never used (its transaction ends here).
    let decision = match crate::sessions::entered::take() {
        Some(decision) if decided_for(&decision) == Some(user) => decision,
        _ => return Err(unauthenticated()),
    };
    let accepted = match decision {
        Ok(accepted) => accepted,
        Err(refusal) => {
            // A disabled user's session ends.
            session.purge();
            return Err(refuse(state, meta, refusal, AuditTarget::Session).await);
        }
    };
    if !is_safe(req.method()) {
        let origin = request_origin(req);
        let allowed = origin
            .as_deref()
            .is_some_and(|o| state.cors_allowed_origins.iter().any(|a| a == o));
        if !allowed {
            tracing::info!(
                security_event = "csrf_refused",
                "a cookie-authenticated change from a foreign origin"
            );
            let mut event = meta.event(Some(user), AuditAction::AccessDenied, AuditOutcome::Denied);
            event.reason = Some("csrf_origin".to_owned());
            // Counted like every refusal: a foreign page can send these as fast as it likes.
            let organization = accepted.principal.membership().map(|m| m.organization_id);
            state.refusals.note(organization, event);
            return Err(ApiError::new(ErrorCode::Forbidden));
        }
    }
    Ok(accepted)
}

/// The user a session decision is about.
fn decided_for(decision: &app::Decision) -> Option<UserId> {
    match decision {
        Ok(accepted) => Some(accepted.principal.user_id()),
        Err(refusal) => refusal.user,
    }
}

/// The bearer credential of a request, if the request has exactly one well-formed
/// `Authorization: Bearer` header.
fn bearer(req: &HttpRequest) -> Result<Option<SecretString>, ()> {
    let mut values = req.headers().get_all(AUTHORIZATION);
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(());
    }
    let text = value.to_str().map_err(drop)?;
    let (scheme, token) = text.split_once(' ').ok_or(())?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(());
    }
    Ok(Some(SecretString::from(token.to_owned())))
}

async fn authenticate(req: HttpRequest) -> Result<Caller, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ApiError::new(ErrorCode::Internal))?;
    let meta = RequestMeta::of(&req);
    // A read keeps the transaction its credential was checked in for its work (one
    // transaction for both). A change does not: its body is read after the credential, and
    // no connection is held while a client sends it; its work checks the credential again,
    // in the first statement of its own transaction (`app::App::work_in`).
    let keep = is_safe(req.method());
    let accepted = match bearer(&req) {
        Ok(Some(presented)) if presented.expose_secret().starts_with("rh-") => {
            by_api_token(&state, &meta, presented, keep).await?
        }
        Ok(Some(presented)) => by_jwt(&state, &meta, presented.expose_secret(), keep).await?,
        Ok(None) => by_session(&req, &state, &meta).await?,
        Err(()) => {
            let refusal = Refusal::anonymous(RefusalReason::Malformed);
            return Err(refuse(&state, &meta, refusal, AuditTarget::AuthorizationHeader).await);
        }
    };
    let user = accepted.principal.user_id();
    tracing::Span::current().record("principal", tracing::field::display(user));
    let inner = app::Caller::new(accepted, meta.origin());
    admit(&req, &state, &meta, &inner).await?;
    Ok(Caller { inner, state })
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        Box::pin(authenticate(req.clone()))
    }
}

impl Caller {
    pub fn principal(&self) -> &Principal {
        self.inner.principal()
    }

    pub fn credential(&self) -> Credential {
        self.inner.credential()
    }

    /// The caller as the use cases take it.
    pub fn app(&self) -> &app::Caller {
        &self.inner
    }

    /// The use cases, taking this caller (and the transaction its credential was checked
    /// in) as it is.
    pub(crate) fn use_cases(&self) -> &app::App {
        &self.state.app
    }

    /// Everything else the server has. Reaching past the use cases means reaching the store
    /// apart from the credential's transaction, which therefore ends here: a request never
    /// holds two connections.
    pub(crate) fn state(&self) -> &AppState {
        self.inner.release();
        &self.state
    }
}
