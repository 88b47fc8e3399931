//! Request id and access log. Every request gets a fresh id (never one the client chose):
//! it is a field of the request's root span, so every log line of the request carries it,
//! it goes back in the `X-Request-Id` header, and error bodies quote it.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage};
use tracing::Span;
use tracing_actix_web::{RequestId, RootSpanBuilder};

/// The response header that carries the request id.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being handled, where one is being handled.
pub(crate) fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// The route template a request matched, or `<unmatched>`: never the concrete path, which
/// may carry codes or tokens (the span's `route`, the metrics' label).
pub(crate) fn route_template(request: &ServiceRequest) -> String {
    request
        .match_pattern()
        .unwrap_or_else(|| "<unmatched>".to_owned())
}

/// The root span of a request, with fields that can hold no secret: method, route template
/// (never the concrete path or query string, which may carry codes or tokens), the peer's
/// socket address (not a forwarded header a client can forge), request id, and once known
/// the client's address and the authenticated user's id.
#[derive(Debug)]
pub(crate) struct SafeRootSpan;

impl RootSpanBuilder for SafeRootSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let request_id = request
            .extensions()
            .get::<RequestId>()
            .map(ToString::to_string);
        let route = route_template(request);
        tracing::info_span!(
            "request",
            request_id = request_id.as_deref().unwrap_or(""),
            method = %request.method(),
            route = %route,
            peer = %request.peer_addr().map(|a| a.ip().to_string()).unwrap_or_default(),
            principal = tracing::field::Empty,
            client_ip = tracing::field::Empty,
        )
    }

    /// The status is a field of the request's access line ([`request_context`]), the last
    /// line of the request: recording it on the span as well would cost every request a
    /// rewrite of the span's fields for no line that shows it.
    fn on_request_end<B: MessageBody>(_span: Span, _outcome: &Result<ServiceResponse<B>, Error>) {}
}

/// Sets the task-local request id, adds the response header and writes the access log line.
pub(crate) async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let request_id = req
        .extensions()
        .get::<RequestId>()
        .map(ToString::to_string)
        .unwrap_or_default();
    let started = Instant::now();
    let (method, route) = (req.method().clone(), crate::metrics::route_of(&req));
    let mut response = REQUEST_ID.scope(request_id.clone(), next.call(req)).await?;
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(REQUEST_ID_HEADER), value);
    }
    let (status, seconds) = (response.status().as_u16(), started.elapsed().as_secs_f64());
    crate::metrics::request(&method, route, status, seconds);
    tracing::info!(status, latency_ms = seconds * 1000.0, "request completed");
    Ok(response)
}
