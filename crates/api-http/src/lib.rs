//! The HTTP edge: routes, middleware and the mapping of every error to problem+json.
//!
//! Handlers hold ports as `Arc<dyn …>` in [`AppState`], so this crate names no adapter. Every
//! route is registered through `utoipa-actix-web`, which refuses a handler without an
//! OpenAPI description: the document at `/openapi.json` lists every route there is.

mod admission;
mod auth;
mod blocks;
mod error;
mod extract;
mod headers;
mod health;
mod limits;
pub mod metrics;
mod refusals;
mod request_context;
mod routes;
mod sessions;
mod transport;

use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::middleware::from_fn;
use actix_web::{App, web};
use ports::{AuditLog, Clock, HealthCheck};
use tracing_actix_web::TracingLogger;
use utoipa::OpenApi;
use utoipa_actix_web::AppExt;
use utoipa_swagger_ui::SwaggerUi;

pub use auth::{AuthSettings, Caller, Credential, JwtIssuer};
pub use blocks::{BlockSettings, Blocker};
pub use error::{ApiError, ErrorCode};
pub use extract::{DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_HEADER_BYTES};
pub use headers::{API_CSP, DOCS_CSP, HSTS};
pub use health::CachedHealth;
pub use limits::{InvalidRateLimit, Limiters, MAX_PER_MINUTE, RateLimits};
pub use refusals::{DEFAULT_MAX_KINDS, RefusalLog};
pub use request_context::REQUEST_ID_HEADER;
pub use routes::login::{LOGIN_COOKIE, LoginSettings};
pub use sessions::{
    AUTH_TIME_KEY as SESSION_AUTH_TIME_KEY, SESSION_COOKIE, SessionSettings,
    USER_KEY as SESSION_USER_KEY,
};
pub use transport::{ForwardedHeaders, ProxySettings, Transport};

/// What the handlers need from the world.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The use cases.
    pub app: app::App,
    pub health: Arc<dyn HealthCheck>,
    /// Where the session middleware records the sessions it ends.
    pub audit_log: Arc<dyn AuditLog>,
    pub clock: Arc<dyn Clock>,
    pub auth: Arc<AuthSettings>,
    /// Origins (`scheme://host[:port]`) allowed to call the API from a browser, with
    /// credentials. Empty: no cross-origin access at all.
    pub cors_allowed_origins: Arc<[String]>,
    /// Trusted proxies and whether plain HTTP is refused.
    pub proxies: Arc<ProxySettings>,
    /// The largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// The largest request head (target and headers) accepted, in bytes.
    pub max_header_bytes: usize,
    /// Request budgets per client address and per credential.
    pub limiters: Limiters,
    /// The graduated response: blocks in force, strikes.
    pub blocker: Blocker,
    /// Refused credentials and failed logins, counted and recorded once a window.
    pub refusals: Arc<RefusalLog>,
    /// Browser sessions.
    pub sessions: SessionSettings,
    /// Browser login through the identity provider; `None` when none is configured (the
    /// login routes then answer 404).
    pub login: Option<Arc<LoginSettings>>,
}

/// The CORS layer: the configured origins only, with credentials; the methods and headers the
/// API uses; the headers clients need to read exposed.
fn cors(origins: &[String]) -> actix_cors::Cors {
    use actix_web::http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderName};
    let cors = actix_cors::Cors::default()
        .allowed_methods(["GET", "POST", "PATCH", "DELETE"])
        .allowed_headers([
            AUTHORIZATION,
            CONTENT_TYPE,
            ACCEPT,
            HeaderName::from_static(REQUEST_ID_HEADER),
        ])
        .expose_headers([
            HeaderName::from_static(routes::list::TOTAL_COUNT_HEADER),
            HeaderName::from_static(REQUEST_ID_HEADER),
            actix_web::http::header::RETRY_AFTER,
            actix_web::http::header::WWW_AUTHENTICATE,
            HeaderName::from_static(admission::LIMIT_HEADER),
            HeaderName::from_static(admission::REMAINING_HEADER),
            HeaderName::from_static(admission::WARNING_HEADER),
        ])
        .supports_credentials()
        .max_age(600);
    origins
        .iter()
        .fold(cors, |cors, origin| cors.allowed_origin(origin))
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Rhesis backend API",
        description = "The multi-tenant REST API of the LLM-testing platform. Programs \
                       authenticate with `Authorization: Bearer` and an access token (JWT) or \
                       an `rh-` API token."
    ),
    modifiers(&BearerScheme)
)]
struct ApiDoc;

/// Declares the `bearer` security scheme the operations refer to.
struct BearerScheme;

impl utoipa::Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi
            .components
            .get_or_insert_with(utoipa::openapi::Components::new);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An access token (JWT) or an `rh-` API token"))
                    .build(),
            ),
        );
    }
}

/// The application: every route and middleware, ready for an `HttpServer`.
pub fn app(
    state: AppState,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let development = state.auth.dev_login_subject.is_some();
    let cors = cors(&state.cors_allowed_origins);
    let json = extract::json_config(state.max_body_bytes);
    let sessions = sessions::middleware(&state.sessions, state.app.clone());
    let (app, api) = App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .app_data(web::Data::new(state))
        .app_data(json)
        .app_data(extract::path_config())
        .app_data(extract::query_config())
        .configure(health::routes)
        .configure(|cfg| routes::session::routes(cfg, development))
        .configure(routes::login::routes)
        .configure(routes::organizations::routes)
        .configure(routes::users::routes)
        .configure(routes::invitations::routes)
        .configure(routes::projects::routes)
        .configure(routes::endpoints::routes)
        .configure(routes::models::routes)
        .configure(routes::tokens::routes)
        .configure(routes::audit::routes)
        .split_for_parts();
    let known = web::Data::new(error::KnownRoutes::of(&api));
    app.app_data(known)
        .service(SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", api))
        .service(web::redirect("/docs", "/docs/"))
        .default_service(web::to(error::unmatched))
        // Inner to outer: query strings without NUL, a 503 for a request whose session the
        // store could not look up, the browser session (loaded only for a
        // request with its cookie, its decision left for the request's `Caller`),
        // CORS (which answers preflights itself), admission (blocks, the
        // budgets of the client address, strikes), the transport (client address, HTTPS
        // enforcement), the size of the request head, the request context (id header, task-local id, access log), error
        // bodies made problem+json, the security headers, all inside the root span that
        // TracingLogger opens for every request.
        .wrap(from_fn(extract::query_without_nul))
        .wrap(from_fn(sessions::entered::refuse_if_unavailable))
        .wrap(sessions)
        .wrap(from_fn(sessions::entered::scope))
        .wrap(cors)
        .wrap(from_fn(admission::admission))
        .wrap(from_fn(transport::transport))
        .wrap(from_fn(extract::header_limit))
        .wrap(from_fn(request_context::request_context))
        .wrap(from_fn(error::problem_json))
        .wrap(from_fn(headers::security_headers))
        .wrap(TracingLogger::<request_context::SafeRootSpan>::new())
}
