//! Errors at the HTTP edge. A client gets a stable code, a generic message and the request
//! id, as `application/problem+json` (RFC 9457); the cause goes to the log, once.

use std::fmt;

use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::request_context::current_request_id;

/// The stable codes of error responses. Clients may branch on these; they never change
/// meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    NotFound,
    Unavailable,
    Internal,
}

impl ErrorCode {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal_error",
        }
    }

    const fn status(self) -> StatusCode {
        match self {
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    const fn message(self) -> &'static str {
        match self {
            Self::NotFound => "The requested resource does not exist.",
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
}

impl ApiError {
    pub fn new(code: ErrorCode) -> Self {
        Self { code, cause: None }
    }

    /// An error with a cause for the log.
    pub fn with_cause(
        code: ErrorCode,
        cause: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            code,
            cause: Some(Box::new(cause)),
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
        let code = match &err {
            ports::StoreError::NotFound => ErrorCode::NotFound,
            ports::StoreError::Unavailable(_) => ErrorCode::Unavailable,
            _ => ErrorCode::Internal,
        };
        Self::with_cause(code, err)
    }
}

/// The body of an error response.
#[derive(Debug, Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'static str,
    status: u16,
    code: &'static str,
    detail: &'static str,
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
        let problem = Problem {
            kind: "about:blank",
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            code: self.code.as_str(),
            detail: self.code.message(),
            request_id: &request_id,
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
}

/// The default service: any unknown route.
pub(crate) async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(ErrorCode::NotFound))
}
