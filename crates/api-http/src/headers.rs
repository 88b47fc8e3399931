//! Security headers on every response: successes, errors of every kind (ours and actix's),
//! redirects and the documentation's assets. The documentation page gets the narrowest
//! Content-Security-Policy that Swagger UI works with; everything else is JSON and gets none
//! at all.

use actix_web::Error;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::error::InternalError;
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::middleware::Next;

/// The policy of JSON responses: nothing may load, nothing may frame them.
pub const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; \
                           form-action 'none'";
/// The policy of the Swagger UI pages: its own scripts, styles (it sets inline styles) and
/// images, requests to this origin only.
pub const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' \
                            'unsafe-inline'; img-src 'self' data:; font-src 'self'; \
                            connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
                            form-action 'none'";
/// `Strict-Transport-Security` on HTTPS responses: two years, subdomains included.
pub const HSTS: &str = "max-age=63072000; includeSubDomains";

const FIXED: [(&str, &str); 6] = [
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    // The legacy XSS auditor is itself exploitable; current guidance is to switch it off.
    ("x-xss-protection", "0"),
    ("referrer-policy", "no-referrer"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
];

const PERMISSIONS_POLICY: &str = "accelerometer=(), camera=(), geolocation=(), gyroscope=(), \
                                  magnetometer=(), microphone=(), payment=(), usb=(), \
                                  interest-cohort=()";

fn set(headers: &mut HeaderMap, name: &'static str, value: &'static str) {
    headers.insert(
        HeaderName::from_static(name),
        HeaderValue::from_static(value),
    );
}

/// Whether the request is for the documentation (its page and assets).
fn is_docs(path: &str) -> bool {
    path == "/docs" || path.starts_with("/docs/")
}

/// An error an inner layer did not turn into a response, already rendered with the headers.
#[derive(Debug)]
struct Rendered;

impl std::fmt::Display for Rendered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("error response")
    }
}

fn apply(headers: &mut HeaderMap, docs: bool, https: bool) {
    for (name, value) in FIXED {
        set(headers, name, value);
    }
    set(headers, "permissions-policy", PERMISSIONS_POLICY);
    set(
        headers,
        "content-security-policy",
        if docs { DOCS_CSP } else { API_CSP },
    );
    if https {
        set(headers, "strict-transport-security", HSTS);
    }
    // Responses carry tenant data, credentials or errors: no cache keeps any of them.
    set(headers, "cache-control", "no-store");
    headers.remove(header::SERVER);
    // The CORS layer marks credentials on every response; without an origin grant the mark
    // means nothing, and a response to a foreign origin should not carry it at all.
    if !headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN) {
        headers.remove(header::ACCESS_CONTROL_ALLOW_CREDENTIALS);
    }
}

/// Adds the headers to whatever the inner service answered, errors included.
pub(crate) async fn security_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let docs = is_docs(req.path());
    let https = crate::transport::is_https(&req);
    match next.call(req).await {
        Ok(mut response) => {
            apply(response.headers_mut(), docs, https);
            Ok(response)
        }
        // An error that no inner layer turned into a response: rendered here, with the
        // headers, and passed on as such.
        Err(err) => {
            let mut response = err.error_response();
            apply(response.headers_mut(), docs, https);
            Err(InternalError::from_response(Rendered, response).into())
        }
    }
}
