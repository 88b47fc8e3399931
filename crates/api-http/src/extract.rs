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

/// Whether a NUL character hides in a JSON value, in a key or a string, at any depth.
fn nul_in(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(items) => items.iter().any(nul_in),
        serde_json::Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || nul_in(v)),
        _ => false,
    }
}

/// The first top-level field of a JSON body that holds a NUL character anywhere.
fn field_with_nul(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::Object(map) => map
            .iter()
            .find(|(k, v)| k.contains('\0') || nul_in(v))
            .map(|(k, _)| k.replace('\0', "")),
        other => nul_in(other).then(String::new),
    }
}

/// A JSON request body of type `T`, read with the application's JSON settings (size limit,
/// content type, problem+json errors), that holds no NUL character anywhere, in a key or a
/// string: PostgreSQL stores none in `text` or `jsonb`, and no field of the API has a use for
/// one. Such a body is a 400 naming the field, checked before the body is typed, so no route
/// can forget it.
#[derive(Debug)]
pub(crate) struct Json<T>(pub(crate) T);

impl<T> Json<T> {
    pub(crate) fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for Json<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: serde::de::DeserializeOwned + 'static> actix_web::FromRequest for Json<T> {
    type Error = actix_web::Error;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let value = web::Json::<serde_json::Value>::from_request(req, payload);
        Box::pin(async move {
            let value = value.await?.into_inner();
            if let Some(field) = field_with_nul(&value) {
                let cause = Rejected("a NUL character in the body".to_owned());
                return Err(ApiError::with_cause(ErrorCode::InvalidRequest, cause)
                    .with_field(field)
                    .into());
            }
            serde_json::from_value(value).map(Json).map_err(|err| {
                // The category only: the message can quote the request.
                let cause = Rejected(format!(
                    "the JSON body does not match: {:?}",
                    err.classify()
                ));
                ApiError::with_cause(ErrorCode::InvalidRequest, cause).into()
            })
        })
    }
}

/// Refuses a query string with a NUL character in a name or a value (after percent-decoding):
/// 400 naming the parameter, before any route reads it.
pub(crate) async fn query_without_nul(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let bad = url::form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(name, value)| name.contains('\0') || value.contains('\0'))
        .map(|(name, _)| name.replace('\0', ""));
    if let Some(name) = bad {
        let cause = Rejected("a NUL character in the query string".to_owned());
        let error = ApiError::with_cause(ErrorCode::InvalidRequest, cause).with_field(name);
        return Ok(req.error_response(error));
    }
    Ok(next.call(req).await?.map_into_boxed_body())
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
