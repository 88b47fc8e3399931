//! How request bodies, paths and query strings that do not parse are answered: a 4xx
//! problem+json with a stable code, never the parser's text. The log gets what went wrong,
//! but never a parser message that quotes the request (a secret sent in the wrong field
//! would be quoted back).

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::middleware::Next;
use actix_web::{HttpRequest, web};

use crate::{ApiError, ErrorCode};

/// The largest JSON body accepted by default, in bytes.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;
/// The largest request head (target and headers) accepted by default, in bytes.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 16 * 1024;

/// Refuses a request whose target and headers, counted as on the wire, exceed the configured
/// size (431), before any other work. actix's own limits (128 KiB, 96 headers) stay behind it.
pub(crate) async fn header_limit(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let limit = req
        .app_data::<web::Data<crate::AppState>>()
        .map_or(DEFAULT_MAX_HEADER_BYTES, |s| s.max_header_bytes);
    let head = req.uri().to_string().len()
        + req
            .headers()
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 4)
            .sum::<usize>();
    if head > limit {
        tracing::info!(head, limit, "request head too large");
        return Ok(req.error_response(ApiError::new(ErrorCode::HeadersTooLarge)));
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

/// Why an extractor refused the request, for the log only.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Rejected(String);

pub(crate) fn json_config(max_body_bytes: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(max_body_bytes)
        .content_type_required(true)
        .error_handler(|err: JsonPayloadError, _req: &HttpRequest| {
            let code = match &err {
                JsonPayloadError::OverflowKnownLength { .. }
                | JsonPayloadError::Overflow { .. } => ErrorCode::PayloadTooLarge,
                JsonPayloadError::ContentType => ErrorCode::UnsupportedMediaType,
                _ => ErrorCode::InvalidRequest,
            };
            let cause = match &err {
                JsonPayloadError::Deserialize(e) => format!(
                    "the JSON body does not match: {:?} error at line {} column {}",
                    e.classify(),
                    e.line(),
                    e.column()
                ),
                _ => err.to_string(),
            };
            ApiError::with_cause(code, Rejected(cause)).into()
        })
}

/// A path that does not parse (an id that is no id) names no resource: 404.
pub(crate) fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err: PathError, _req: &HttpRequest| {
        ApiError::with_cause(ErrorCode::NotFound, Rejected(err.to_string())).into()
    })
}

pub(crate) fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|_err: QueryPayloadError, _req: &HttpRequest| {
        let cause = Rejected("the query string does not match its parameters".to_owned());
        ApiError::with_cause(ErrorCode::InvalidRequest, cause).into()
    })
}
