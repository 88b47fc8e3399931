//! How a request reached the server: over TLS terminated here, or not.

use actix_web::dev::ServiceRequest;

/// Whether the request came over HTTPS. Only what the server itself knows counts: the
/// listener it arrived on. Forwarded headers are not believed here.
pub(crate) fn is_https(req: &ServiceRequest) -> bool {
    req.app_config().secure()
}
