//! The HTTP edge's metrics, through the `metrics` facade. The composition root installs the
//! Prometheus recorder (`METRICS_BIND_ADDR`) and calls [`enable`]; until then nothing is
//! recorded and no label is built. Every label value comes from a closed set (method, route
//! template, status, reason, budget), so a client cannot grow the series.

use std::sync::atomic::{AtomicBool, Ordering};

use actix_web::http::Method;

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Requests answered, by method, route template and status.
pub const REQUESTS: &str = "rhesis_http_requests_total";
/// Their latency, in seconds, by the same labels.
pub const REQUEST_SECONDS: &str = "rhesis_http_request_duration_seconds";
/// Credentials refused, by kind of credential and reason.
pub const AUTH_REFUSALS: &str = "rhesis_auth_refusals_total";
/// Requests over a budget (429 or a block), by budget.
pub const RATE_LIMITED: &str = "rhesis_rate_limit_rejections_total";
/// Requests of a blocked client, refused before anything else.
pub const BLOCKED_REQUESTS: &str = "rhesis_blocked_requests_total";
/// Blocks in force, as this replica last read them.
pub const BLOCKS_ACTIVE: &str = "rhesis_blocks_active";

/// Turns recording on (the recorder is installed).
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// A method's label: the standard ones by name, any other as `OTHER`.
fn method_label(method: &Method) -> &'static str {
    const KNOWN: [(Method, &str); 9] = [
        (Method::GET, "GET"),
        (Method::HEAD, "HEAD"),
        (Method::POST, "POST"),
        (Method::PUT, "PUT"),
        (Method::PATCH, "PATCH"),
        (Method::DELETE, "DELETE"),
        (Method::OPTIONS, "OPTIONS"),
        (Method::TRACE, "TRACE"),
        (Method::CONNECT, "CONNECT"),
    ];
    KNOWN
        .iter()
        .find(|(known, _)| known == method)
        .map_or("OTHER", |(_, label)| label)
}

/// The route template of a request, when recording: the pattern it matched, or
/// `<unmatched>` (never the path itself).
pub(crate) fn route_of(request: &actix_web::dev::ServiceRequest) -> Option<String> {
    enabled().then(|| crate::request_context::route_template(request))
}

/// A request answered with `status` after `seconds`.
pub(crate) fn request(method: &Method, route: Option<String>, status: u16, seconds: f64) {
    let Some(route) = route else {
        return;
    };
    let labels = [
        ("method", method_label(method).to_owned()),
        ("route", route),
        ("status", status.to_string()),
    ];
    metrics::counter!(REQUESTS, &labels).increment(1);
    metrics::histogram!(REQUEST_SECONDS, &labels).record(seconds);
}

/// A credential refused.
pub(crate) fn refusal(credential: &'static str, reason: &'static str) {
    if enabled() {
        metrics::counter!(AUTH_REFUSALS, "credential" => credential, "reason" => reason)
            .increment(1);
    }
}

/// A request over `budget`.
pub(crate) fn rate_limited(budget: &'static str) {
    if enabled() {
        metrics::counter!(RATE_LIMITED, "budget" => budget).increment(1);
    }
}

/// A request of a blocked client.
pub(crate) fn blocked_request() {
    if enabled() {
        metrics::counter!(BLOCKED_REQUESTS).increment(1);
    }
}

/// The blocks in force after a read of the block list.
pub(crate) fn blocks_active(count: usize) {
    if enabled() {
        metrics::gauge!(BLOCKS_ACTIVE).set(count as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_outside_the_standard_ones_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::DELETE), "DELETE");
        let made_up = Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method_label(&made_up), "OTHER");
    }
}
