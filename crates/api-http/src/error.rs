//! Errors at the HTTP edge. A client gets a stable code, a generic message and the request
//! id, as `application/problem+json` (RFC 9457); the cause goes to the log, once.

use std::fmt;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::ResourceDef;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{
    ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, HeaderName, HeaderValue, WWW_AUTHENTICATE,
};
use actix_web::middleware::Next;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use serde::Serialize;

use crate::request_context::{REQUEST_ID_HEADER, current_request_id};

/// The stable codes of error responses. Clients may branch on these; they never change
/// meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The request is malformed: bad JSON, a wrong type, an unknown field, a bad parameter.
    InvalidRequest,
    /// No credential, or one that is not valid.
    Unauthenticated,
    /// The credential is valid but too old for this operation (RFC 9470 step-up).
    StepUpRequired,
    /// The principal may not do this.
    Forbidden,
    NotFound,
    /// The route exists, not with this method.
    MethodNotAllowed,
    /// The request came over plain HTTP where HTTPS is required.
    HttpsRequired,
    /// The client is over its request budget; `Retry-After` says when to come back.
    RateLimited,
    /// The client is blocked by the graduated response, for a while (`Retry-After`) or for
    /// good.
    Blocked,
    /// The request conflicts with the current state (a duplicate, a member of an
    /// organization founding another).
    Conflict,
    PayloadTooLarge,
    /// The request target and headers are larger than configured.
    HeadersTooLarge,
    UnsupportedMediaType,
    Unavailable,
    Internal,
}

impl ErrorCode {
    /// The code of an error response some other layer made, by its status.
    pub fn for_status(status: StatusCode) -> Self {
        match status {
            StatusCode::UNAUTHORIZED => Self::Unauthenticated,
            StatusCode::FORBIDDEN => Self::Forbidden,
            StatusCode::NOT_FOUND => Self::NotFound,
            StatusCode::METHOD_NOT_ALLOWED => Self::MethodNotAllowed,
            StatusCode::CONFLICT => Self::Conflict,
            StatusCode::PAYLOAD_TOO_LARGE => Self::PayloadTooLarge,
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => Self::HeadersTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::UnsupportedMediaType,
            StatusCode::SERVICE_UNAVAILABLE => Self::Unavailable,
            StatusCode::TOO_MANY_REQUESTS => Self::RateLimited,
            s if s.is_server_error() => Self::Internal,
            _ => Self::InvalidRequest,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::Unauthenticated => "unauthenticated",
            Self::StepUpRequired => "insufficient_user_authentication",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::HttpsRequired => "https_required",
            Self::RateLimited => "rate_limited",
            Self::Blocked => "blocked",
            Self::Conflict => "conflict",
            Self::PayloadTooLarge => "payload_too_large",
            Self::HeadersTooLarge => "request_header_fields_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal_error",
        }
    }

    const fn status(self) -> StatusCode {
        match self {
            Self::InvalidRequest => StatusCode::BAD_REQUEST,
            Self::Unauthenticated | Self::StepUpRequired => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::HttpsRequired | Self::Blocked => StatusCode::FORBIDDEN,
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::Conflict => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    const fn message(self) -> &'static str {
        match self {
            Self::InvalidRequest => "The request is not valid.",
            Self::Unauthenticated => "Authentication is required.",
            Self::StepUpRequired => "A more recent authentication is required.",
            Self::Forbidden => "You are not allowed to do this.",
            Self::NotFound => "The requested resource does not exist.",
            Self::MethodNotAllowed => "The resource does not support this method.",
            Self::HttpsRequired => "This API is served over HTTPS only.",
            Self::RateLimited => "Too many requests; retry later.",
            Self::Blocked => "This client is blocked.",
            Self::Conflict => "The request conflicts with the current state.",
            Self::PayloadTooLarge => "The request body is too large.",
            Self::HeadersTooLarge => "The request headers are too large.",
            Self::UnsupportedMediaType => "The request body must be JSON.",
            Self::Unavailable => "The service is temporarily unavailable.",
            Self::Internal => "An internal error occurred.",
        }
    }
}

/// An error on its way to the client. Its `Display` is the generic message only; the cause,
/// if any, is logged when the response is made and never reaches the body.
pub struct ApiError {
    code: ErrorCode,
    cause: Option<Box<dyn std::error::Error + Send + Sync>>,
    /// A `WWW-Authenticate` challenge, for 401s.
    challenge: Option<String>,
    /// Which part of the request was wrong (a field or parameter name of the API, never a
    /// value), for 400s.
    field: Option<String>,
    /// Seconds until a rate-limited client may come back, for 429s.
    retry_after: Option<u64>,
    /// Further headers: the graduated response's warning, a 405's `Allow`.
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    pub fn new(code: ErrorCode) -> Self {
        Self {
            code,
            cause: None,
            challenge: None,
            field: None,
            retry_after: None,
            headers: Vec::new(),
        }
    }

    /// Adds a header; a value that is not a valid header value is left out.
    pub(crate) fn with_header(mut self, name: HeaderName, value: &str) -> Self {
        if let Ok(value) = HeaderValue::from_str(value) {
            self.headers.push((name, value));
        }
        self
    }

    /// Adds `Retry-After`.
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// Adds a `WWW-Authenticate` challenge.
    pub fn with_challenge(mut self, challenge: String) -> Self {
        self.challenge = Some(challenge);
        self
    }

    /// Names the field or parameter that was wrong (a name of the API, never a value).
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// An error with a cause for the log.
    pub fn with_cause(
        code: ErrorCode,
        cause: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            cause: Some(Box::new(cause)),
            ..Self::new(code)
        }
    }

    pub fn code(&self) -> ErrorCode {
        self.code
    }
}

impl fmt::Debug for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiError")
            .field("code", &self.code)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code.message())
    }
}

impl From<ports::StoreError> for ApiError {
    fn from(err: ports::StoreError) -> Self {
        let (code, field) = match &err {
            ports::StoreError::NotFound => (ErrorCode::NotFound, None),
            ports::StoreError::Duplicate { what } => (ErrorCode::Conflict, Some(*what)),
            ports::StoreError::MissingReference { what } => {
                (ErrorCode::InvalidRequest, Some(*what))
            }
            ports::StoreError::InvalidInput { what } => (ErrorCode::InvalidRequest, Some(*what)),
            ports::StoreError::Unavailable(_) => (ErrorCode::Unavailable, None),
            ports::StoreError::TenantViolation | ports::StoreError::Unexpected(_) => {
                (ErrorCode::Internal, None)
            }
        };
        let error = Self::with_cause(code, err);
        // The API's name for it: `users.email` is the `email` field.
        match field.and_then(|f| f.rsplit('.').next()) {
            Some(field) => error.with_field(field),
            None => error,
        }
    }
}

/// `Retry-After` of a 503 that names no other.
pub(crate) const UNAVAILABLE_RETRY_AFTER_SECONDS: u64 = 5;

/// The body of every error response (RFC 9457).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Problem<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'static str,
    status: u16,
    code: &'static str,
    detail: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    request_id: &'a str,
}

/// The full chain of causes, for the log.
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code.status()
    }

    fn error_response(&self) -> HttpResponse {
        let request_id = current_request_id().unwrap_or_default();
        let status = self.status_code();
        match &self.cause {
            Some(cause) if status.is_server_error() => {
                tracing::error!(code = self.code.as_str(), cause = %chain(cause.as_ref()), "request failed");
            }
            Some(cause) => {
                tracing::info!(code = self.code.as_str(), cause = %chain(cause.as_ref()), "request refused");
            }
            None => {}
        }
        let mut response = problem(status, self.code, self.field.as_deref(), &request_id);
        if let Some(challenge) = self
            .challenge
            .as_deref()
            .and_then(|c| HeaderValue::from_str(c).ok())
        {
            response.headers_mut().insert(WWW_AUTHENTICATE, challenge);
        }
        for (name, value) in &self.headers {
            response.headers_mut().insert(name.clone(), value.clone());
        }
        // A 503 always says when to come back: the database (or whatever is unavailable)
        // is given a few seconds to return before the client tries again.
        let retry_after = self.retry_after.or_else(|| {
            (self.code == ErrorCode::Unavailable).then_some(UNAVAILABLE_RETRY_AFTER_SECONDS)
        });
        if let Some(seconds) = retry_after {
            response.headers_mut().insert(
                actix_web::http::header::RETRY_AFTER,
                HeaderValue::from(seconds),
            );
        }
        response
    }
}

/// A problem+json response.
fn problem(
    status: StatusCode,
    code: ErrorCode,
    field: Option<&str>,
    request_id: &str,
) -> HttpResponse {
    let problem = Problem {
        kind: "about:blank",
        title: status.canonical_reason().unwrap_or("Error"),
        status: status.as_u16(),
        code: code.as_str(),
        detail: code.message(),
        field,
        request_id,
    };
    let body = serde_json::to_vec(&problem).unwrap_or_default();
    HttpResponse::build(status)
        .insert_header((
            CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        ))
        .insert_header((CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .body(body)
}

/// Turns every error response that is not problem+json yet (actix's own, the CORS layer's)
/// into one, keeping its status and its headers but for the body's.
pub(crate) async fn problem_json(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let response = next.call(req).await?;
    let status = response.status();
    let is_problem = response
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == b"application/problem+json");
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return Ok(response.map_into_left_body());
    }
    let request_id = response
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    tracing::info!(
        status = status.as_u16(),
        "error response rendered as problem+json"
    );
    let mut replacement = problem(status, ErrorCode::for_status(status), None, &request_id);
    for (name, value) in response.headers() {
        if name != CONTENT_TYPE && name != CONTENT_LENGTH {
            replacement
                .headers_mut()
                .insert(name.clone(), value.clone());
        }
    }
    Ok(response.into_response(replacement).map_into_right_body())
}

/// The API's paths (from its OpenAPI document) and the methods each has, so a request that no
/// route matched is told apart: a known path with another method is a 405 with `Allow`,
/// anything else a 404.
#[derive(Debug)]
pub(crate) struct KnownRoutes(Vec<(ResourceDef, String)>);

impl KnownRoutes {
    pub(crate) fn of(api: &utoipa::openapi::OpenApi) -> Self {
        let routes = api
            .paths
            .paths
            .iter()
            .map(|(path, item)| {
                let methods = [
                    ("GET", &item.get),
                    ("POST", &item.post),
                    ("PUT", &item.put),
                    ("PATCH", &item.patch),
                    ("DELETE", &item.delete),
                ]
                .into_iter()
                .filter_map(|(name, operation)| operation.as_ref().map(|_| name))
                .collect::<Vec<_>>()
                .join(", ");
                (ResourceDef::new(path.as_str()), methods)
            })
            .collect();
        Self(routes)
    }

    /// The methods of the route whose path template matches `path`.
    fn allowed(&self, path: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(def, _)| def.is_match(path))
            .map(|(_, allow)| allow.as_str())
    }
}

/// The default service: any request no route matched.
pub(crate) async fn unmatched(
    req: HttpRequest,
    known: web::Data<KnownRoutes>,
) -> Result<HttpResponse, ApiError> {
    match known.allowed(req.path()) {
        Some(allow) => Err(ApiError::new(ErrorCode::MethodNotAllowed).with_header(ALLOW, allow)),
        None => Err(ApiError::new(ErrorCode::NotFound)),
    }
}
