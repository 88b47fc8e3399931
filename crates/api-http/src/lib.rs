//! The HTTP edge: routes, middleware and the mapping of every error to problem+json.
//!
//! Handlers hold ports as `Arc<dyn …>` in [`AppState`], so this crate names no adapter.

mod error;
mod health;
mod request_context;

use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::middleware::from_fn;
use actix_web::{App, web};
use ports::HealthCheck;
use tracing_actix_web::TracingLogger;

pub use error::{ApiError, ErrorCode};
pub use request_context::REQUEST_ID_HEADER;

/// What the handlers need from the world.
#[derive(Debug, Clone)]
pub struct AppState {
    pub health: Arc<dyn HealthCheck>,
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
    App::new()
        .app_data(web::Data::new(state))
        .configure(health::routes)
        .default_service(web::to(error::not_found))
        // Inner to outer: the request context (id header, task-local id, access log) runs
        // inside the root span that TracingLogger opens for every request.
        .wrap(from_fn(request_context::request_context))
        .wrap(TracingLogger::<request_context::SafeRootSpan>::new())
}
