//! Liveness and readiness probes.

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::{ApiError, AppState, ErrorCode};

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/health/live", web::get().to(live))
        .route("/health/ready", web::get().to(ready));
}

/// The process is up and serving HTTP.
async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// The service can do its work: its database answers.
async fn ready(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state
        .health
        .ready()
        .await
        .map_err(|e| ApiError::with_cause(ErrorCode::Unavailable, e))?;
    Ok(HttpResponse::Ok().json(json!({ "status": "ready" })))
}
