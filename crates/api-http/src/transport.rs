//! How a request reached the server: the client's address and whether it came over HTTPS.
//!
//! Only what the server itself knows counts, unless the peer is a configured trusted proxy:
//! then the one header family the operator names is believed — `X-Forwarded-For` /
//! `X-Forwarded-Proto` or `Forwarded` (RFC 7239) — and the client is the right-most address
//! in its chain that is not a trusted proxy: a client can prepend whatever it likes, but it
//! cannot get past the proxies that appended after it. The other family is the client's own
//! writing (a proxy passes it through untouched) and is never read. No forwarded host is read
//! at all: the redirect to HTTPS goes to `PUBLIC_URL`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use actix_web::HttpMessage;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::web;
use ipnet::IpNet;

use crate::{ApiError, AppState, ErrorCode};

/// The header family a trusted proxy writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ForwardedHeaders {
    /// `X-Forwarded-For` and `X-Forwarded-Proto` (nginx, most cloud load balancers).
    #[default]
    XForwarded,
    /// `Forwarded` (RFC 7239).
    Forwarded,
}

/// Which peers are proxies whose forwarded headers are believed, which headers they write,
/// and whether plain HTTP is refused.
#[derive(Debug, Clone, Default)]
pub struct ProxySettings {
    pub trusted_proxies: Vec<IpNet>,
    pub forwarded_headers: ForwardedHeaders,
    /// Refuse (API) or redirect (browser GET) requests that did not come over HTTPS; the
    /// health probes are exempt.
    pub require_https: bool,
    /// The server's public `https://` URL, where browsers on plain HTTP are sent; without
    /// one they are refused like API calls.
    pub public_url: Option<String>,
}

impl ProxySettings {
    fn trusts(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }
}

/// What the server concluded about a request's origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transport {
    pub client_ip: Option<IpAddr>,
    pub https: bool,
}

/// An address of a forwarded chain: `1.2.3.4`, `1.2.3.4:80`, `[::1]`, `"[::1]:80"`.
fn hop(text: &str) -> Option<IpAddr> {
    let text = text.trim().trim_matches('"');
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    text.strip_prefix('[')
        .and_then(|t| t.split_once(']'))
        .and_then(|(ip, _)| ip.parse().ok())
}

/// The values of one header, all occurrences in order, split at commas. The split is on the
/// raw bytes: a client's unreadable part (a byte outside ASCII) must not hide the parts the
/// proxies appended after it on the same line; it stands as an element that is no address.
fn list<'a>(headers: &'a HeaderMap, name: &header::HeaderName) -> Vec<&'a str> {
    headers
        .get_all(name)
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(|part| {
            std::str::from_utf8(part)
                .ok()
                .filter(|text| text.is_ascii())
                .map_or("?", str::trim)
        })
        .filter(|v| !v.is_empty())
        .collect()
}

/// `(for, proto)` of each element of the `Forwarded` header, in order.
fn forwarded(headers: &HeaderMap) -> Vec<(Option<&str>, Option<&str>)> {
    list(headers, &header::FORWARDED)
        .into_iter()
        .map(|element| {
            let mut pair = (None, None);
            for part in element.split(';') {
                if let Some((key, value)) = part.split_once('=') {
                    match key.trim().to_ascii_lowercase().as_str() {
                        "for" => pair.0 = Some(value.trim()),
                        "proto" => pair.1 = Some(value.trim().trim_matches('"')),
                        _ => {}
                    }
                }
            }
            pair
        })
        .collect()
}

/// Resolves the client address and scheme of a request that arrived from `peer` on a listener
/// that is (`secure`) or is not TLS.
pub(crate) fn resolve(
    settings: &ProxySettings,
    peer: Option<IpAddr>,
    secure: bool,
    headers: &HeaderMap,
) -> Transport {
    let direct = Transport {
        client_ip: peer,
        https: secure,
    };
    let Some(peer) = peer.filter(|p| settings.trusts(*p)) else {
        return direct;
    };
    let (chain, proto): (Vec<&str>, Option<&str>) = match settings.forwarded_headers {
        ForwardedHeaders::XForwarded => (
            list(headers, &header::HeaderName::from_static("x-forwarded-for")),
            list(
                headers,
                &header::HeaderName::from_static("x-forwarded-proto"),
            )
            .last()
            .copied(),
        ),
        ForwardedHeaders::Forwarded => {
            let elements = forwarded(headers);
            (
                elements.iter().filter_map(|(f, _)| *f).collect(),
                elements.last().and_then(|(_, p)| *p),
            )
        }
    };
    // Right to left: skip the trusted proxies; the first other address is the client. An
    // entry that is no address stops the walk at the last address known good.
    let mut client = peer;
    for entry in chain.iter().rev() {
        match hop(entry) {
            Some(ip) if settings.trusts(ip) => client = ip,
            Some(ip) => {
                client = ip;
                break;
            }
            None => break,
        }
    }
    Transport {
        client_ip: Some(client),
        https: secure || proto.is_some_and(|p| p.eq_ignore_ascii_case("https")),
    }
}

/// The proxy settings of the application (none without an application state).
fn settings(req: &ServiceRequest) -> Arc<ProxySettings> {
    req.app_data::<web::Data<AppState>>()
        .map(|state| Arc::clone(&state.proxies))
        .unwrap_or_default()
}

fn resolve_with(settings: &ProxySettings, req: &ServiceRequest) -> Transport {
    resolve(
        settings,
        req.peer_addr().map(|a| a.ip()),
        req.app_config().secure(),
        req.headers(),
    )
}

/// The transport of a request: the one the transport middleware recorded, else resolved from
/// its peer, listener and headers.
pub(crate) fn of(req: &ServiceRequest) -> Transport {
    if let Some(transport) = req.extensions().get::<Transport>() {
        return *transport;
    }
    resolve_with(&settings(req), req)
}

/// Whether the request came over HTTPS (directly, or through a trusted proxy).
pub(crate) fn is_https(req: &ServiceRequest) -> bool {
    of(req).https
}

/// Whether a GET looks like a browser navigation (it accepts HTML).
fn is_browser_get(req: &ServiceRequest) -> bool {
    req.method() == Method::GET
        && req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|accept| accept.contains("text/html"))
}

/// Records the transport on the request and its span, and enforces HTTPS where required:
/// a browser navigation is redirected to the same path under `PUBLIC_URL`, anything else
/// refused (and a browser too when no public URL is configured: nothing the request says
/// about its host is believed).
pub(crate) async fn transport(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    let settings = settings(&req);
    let transport = resolve_with(&settings, &req);
    if let Some(ip) = transport.client_ip {
        tracing::Span::current().record("client_ip", tracing::field::display(ip));
    }
    req.extensions_mut().insert(transport);
    let probe = req.path().starts_with("/health/");
    if settings.require_https && !transport.https && !probe {
        tracing::info!(
            security_event = "plain_http_refused",
            "a request over plain HTTP"
        );
        if let Some(public) = settings
            .public_url
            .as_deref()
            .filter(|_| is_browser_get(&req))
        {
            let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
            let target = format!("{}{path}", public.trim_end_matches('/'));
            if let Ok(location) = HeaderValue::from_str(&target) {
                let response = actix_web::HttpResponse::build(StatusCode::PERMANENT_REDIRECT)
                    .insert_header((header::LOCATION, location))
                    .finish();
                return Ok(req.into_response(response));
            }
        }
        let error: actix_web::Error = ApiError::new(ErrorCode::HttpsRequired).into();
        return Ok(req.error_response(error));
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                header::HeaderName::from_static(name),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn proxies() -> ProxySettings {
        ProxySettings {
            trusted_proxies: vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()],
            forwarded_headers: ForwardedHeaders::XForwarded,
            require_https: true,
            public_url: None,
        }
    }

    fn rfc7239_proxies() -> ProxySettings {
        ProxySettings {
            forwarded_headers: ForwardedHeaders::Forwarded,
            ..proxies()
        }
    }

    #[test]
    fn forwarded_headers_of_an_untrusted_peer_are_ignored() {
        let h = headers(&[
            ("x-forwarded-for", "1.1.1.1"),
            ("x-forwarded-proto", "https"),
            ("forwarded", "for=2.2.2.2;proto=https"),
        ]);
        let t = resolve(&proxies(), Some(ip("203.0.113.5")), false, &h);
        assert_eq!(
            t,
            Transport {
                client_ip: Some(ip("203.0.113.5")),
                https: false
            }
        );
    }

    #[test]
    fn the_client_is_the_right_most_untrusted_hop() {
        // The client forged 6.6.6.6; the proxies appended the real address, then their own.
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6, 198.51.100.7"),
            ("x-forwarded-for", "10.0.0.3"),
            ("x-forwarded-proto", "https"),
        ]);
        let t = resolve(&proxies(), Some(ip("10.0.0.2")), false, &h);
        assert_eq!(
            t,
            Transport {
                client_ip: Some(ip("198.51.100.7")),
                https: true
            }
        );
        // RFC 7239, with quoted IPv6 and ports.
        let h = headers(&[(
            "forwarded",
            r#"for=6.6.6.6, for="[2001:db8::7]:4711";proto=http, for=10.0.0.9;proto=https"#,
        )]);
        let t = resolve(&rfc7239_proxies(), Some(ip("::1")), false, &h);
        assert_eq!(
            t,
            Transport {
                client_ip: Some(ip("2001:db8::7")),
                https: true
            }
        );
        // Only trusted hops: the left-most one.
        let h = headers(&[("x-forwarded-for", "10.1.1.1, 10.2.2.2")]);
        let t = resolve(&proxies(), Some(ip("10.0.0.2")), true, &h);
        assert_eq!(t.client_ip, Some(ip("10.1.1.1")));
        assert!(t.https, "a TLS listener is HTTPS whatever the headers say");
        // Garbage stops the walk at the last good address.
        let h = headers(&[("x-forwarded-for", "1.2.3.4, bogus, 10.0.0.7")]);
        let t = resolve(&proxies(), Some(ip("10.0.0.2")), false, &h);
        assert_eq!(t.client_ip, Some(ip("10.0.0.7")));
        // A trusted proxy that says http is believed too.
        let h = headers(&[
            ("x-forwarded-for", "198.51.100.7"),
            ("x-forwarded-proto", "http"),
        ]);
        assert!(!resolve(&proxies(), Some(ip("10.0.0.2")), false, &h).https);
    }

    #[test]
    fn the_family_the_proxy_does_not_write_is_the_clients_and_ignored() {
        // An nginx-style proxy appended X-Forwarded-For; the client wrote its own Forwarded.
        let h = headers(&[
            ("forwarded", "for=9.9.9.9;proto=https"),
            ("x-forwarded-for", "198.51.100.7"),
        ]);
        let t = resolve(&proxies(), Some(ip("10.0.0.2")), false, &h);
        assert_eq!(
            t,
            Transport {
                client_ip: Some(ip("198.51.100.7")),
                https: false
            }
        );
        // A proxy that writes Forwarded: the client's X-Forwarded-* count for nothing, not even
        // when the proxy wrote no Forwarded header at all.
        let h = headers(&[
            ("x-forwarded-for", "9.9.9.9"),
            ("x-forwarded-proto", "https"),
        ]);
        let t = resolve(&rfc7239_proxies(), Some(ip("10.0.0.2")), false, &h);
        assert_eq!(
            t,
            Transport {
                client_ip: Some(ip("10.0.0.2")),
                https: false
            }
        );
        let h = headers(&[
            ("x-forwarded-for", "9.9.9.9"),
            ("x-forwarded-proto", "https"),
            ("forwarded", "for=198.51.100.8;proto=http"),
        ]);
        let t = resolve(&rfc7239_proxies(), Some(ip("10.0.0.2")), false, &h);
        assert_eq!(
            t,
            Transport {
                client_ip: Some(ip("198.51.100.8")),
                https: false
            }
        );
    }
}
