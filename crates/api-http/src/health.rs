//! Liveness and readiness probes.

use actix_web::{HttpResponse, get, web};
use serde_json::json;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::{ApiError, AppState, ErrorCode};

pub(crate) fn routes(cfg: &mut ServiceConfig<'_>) {
    cfg.service(live).service(ready);
}

/// The process is up and serving HTTP.
#[utoipa::path(tag = "health", responses((status = 200, description = "Serving")))]
#[get("/health/live")]
pub(crate) async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// The service can do its work: its database answers.
#[utoipa::path(
    tag = "health",
    responses(
        (status = 200, description = "Ready"),
        (status = 503, description = "The database does not answer", body = crate::error::Problem)
    )
)]
#[get("/health/ready")]
pub(crate) async fn ready(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state
        .health
        .ready()
        .await
        .map_err(|e| ApiError::with_cause(ErrorCode::Unavailable, e))?;
    Ok(HttpResponse::Ok().json(json!({ "status": "ready" })))
}
