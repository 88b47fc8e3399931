//! HTTPS enforcement and the client's address behind proxies: forwarded headers are believed
//! from trusted proxies only; in production plain HTTP is redirected (browsers) or refused.

use serde_json::json;

use crate::{TestApp, spawn_app_configured};
use api_http::ForwardedHeaders;
use server::config::Profile;

async fn production(trusted: &[&str]) -> TestApp {
    production_behind(trusted, ForwardedHeaders::XForwarded).await
}

async fn production_behind(trusted: &[&str], family: ForwardedHeaders) -> TestApp {
    let trusted: Vec<ipnet::IpNet> = trusted.iter().map(|t| t.parse().unwrap()).collect();
    spawn_app_configured(Profile::Production, |args| {
        args.browser.trusted_proxies = trusted;
        args.browser.forwarded_headers = family;
        args.login.public_url = Some("https://api.example.com".to_owned());
    })
    .await
}

async fn last_client_ip(app: &TestApp, action: &str) -> String {
    use sea_orm::ConnectionTrait;
    let admin = app.admin_pool().await;
    admin
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            format!(
                "SELECT host(client_ip) AS ip FROM audit_events WHERE action = '{action}' \
                 ORDER BY occurred_at DESC LIMIT 1"
            ),
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get::<String>("", "ip")
        .unwrap()
}

#[tokio::test]
async fn behind_a_trusted_proxy_https_and_the_client_address_are_believed() {
    let app = production(&["127.0.0.1/32"]).await;
    let owner = app.owner("acme").await;
    let jwt = app.jwt(&owner);
    let via_proxy = |path: &str| {
        app.client
            .post(app.url(path))
            .bearer_auth(&jwt)
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-for", "6.6.6.6, 198.51.100.7")
            .json(&json!({"name": "behind the proxy"}))
    };
    let reply = app.send(via_proxy("/api/v1/projects")).await;
    assert_eq!(reply.status, 201, "{reply:?}");
    assert_eq!(
        reply.header("strict-transport-security"),
        Some(api_http::HSTS),
        "HTTPS as the proxy says"
    );
    assert_eq!(
        last_client_ip(&app, "project.created").await,
        "198.51.100.7"
    );

    // The same proxy forwarding plain HTTP: an API call is refused, a browser redirected.
    let plain = app
        .send(
            app.client
                .get(app.url("/api/v1/projects?limit=5"))
                .bearer_auth(&jwt)
                .header("x-forwarded-proto", "http"),
        )
        .await;
    assert_eq!(
        (plain.status, plain.problem_code().as_str()),
        (403, "https_required")
    );
    assert!(plain.header("strict-transport-security").is_none());
    // The redirect goes to PUBLIC_URL, whatever host the request names (a phishing page's
    // host would otherwise be where a victim's browser is sent).
    for (name, value) in [
        ("host", "evil.example"),
        ("x-forwarded-host", "evil.example"),
        ("forwarded", "host=evil.example"),
    ] {
        let browser = app
            .send(
                app.client
                    .get(app.url("/docs/?x=1"))
                    .header("accept", "text/html,application/xhtml+xml")
                    .header(name, value),
            )
            .await;
        assert_eq!(browser.status, 308, "{name}");
        assert_eq!(
            browser.header("location"),
            Some("https://api.example.com/docs/?x=1"),
            "{name}"
        );
    }
    // Probes answer over plain HTTP.
    assert_eq!(
        app.call("GET", "/health/live", None, None).await.status,
        200
    );
}

/// The audit event of a made-up API token sent through the proxy with `headers`: the
/// refusal's recorded address and whether it was answered as HTTPS.
async fn refused_through_proxy(app: &TestApp, headers: &[(&str, &str)]) -> (u16, String) {
    let mut request = app
        .client
        .get(app.url("/api/v1/me"))
        .bearer_auth("rh-madeUpTokenThatNobodyOwns0123456789abcdefghij");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let reply = app.send(request).await;
    (
        reply.status,
        last_client_ip(app, "authentication.failed").await,
    )
}

#[tokio::test]
async fn a_client_written_header_of_the_other_family_is_ignored() {
    // The proxy writes X-Forwarded-*; the client adds its own Forwarded header, which such a
    // proxy passes through untouched. Neither its address nor its scheme counts.
    let app = production_behind(&["127.0.0.1/32"], ForwardedHeaders::XForwarded).await;
    let (status, ip) = refused_through_proxy(
        &app,
        &[
            ("forwarded", "for=9.9.9.9;proto=https"),
            ("x-forwarded-for", "198.51.100.7"),
            ("x-forwarded-proto", "https"),
        ],
    )
    .await;
    assert_eq!((status, ip.as_str()), (401, "198.51.100.7"));
    let plain = app
        .send(
            app.client
                .get(app.url("/api/v1/me"))
                .header("forwarded", "for=9.9.9.9;proto=https")
                .header("x-forwarded-for", "198.51.100.7"),
        )
        .await;
    assert_eq!(
        (plain.status, plain.problem_code().as_str()),
        (403, "https_required"),
        "the client's proto=https is not believed"
    );

    // The proxy writes Forwarded; the client's X-Forwarded-* are ignored, even where the
    // proxy's header says nothing of the scheme.
    let app = production_behind(&["127.0.0.1/32"], ForwardedHeaders::Forwarded).await;
    let (status, ip) = refused_through_proxy(
        &app,
        &[
            ("x-forwarded-for", "9.9.9.9"),
            ("x-forwarded-proto", "http"),
            ("forwarded", "for=198.51.100.8;proto=https"),
        ],
    )
    .await;
    assert_eq!((status, ip.as_str()), (401, "198.51.100.8"));
    let plain = app
        .send(
            app.client
                .get(app.url("/api/v1/me"))
                .header("x-forwarded-for", "9.9.9.9")
                .header("x-forwarded-proto", "https")
                .header("forwarded", "for=198.51.100.8"),
        )
        .await;
    assert_eq!(
        (plain.status, plain.problem_code().as_str()),
        (403, "https_required")
    );
}

#[tokio::test]
async fn forwarded_headers_from_anyone_else_are_ignored() {
    let app = production(&["10.0.0.0/8"]).await;
    let owner = app.owner("acme").await;
    let jwt = app.jwt(&owner);
    let spoofed = app
        .send(
            app.client
                .post(app.url("/api/v1/projects"))
                .bearer_auth(&jwt)
                .header("x-forwarded-proto", "https")
                .header("forwarded", "for=198.51.100.7;proto=https")
                .header("x-forwarded-for", "198.51.100.7")
                .json(&json!({"name": "spoofed"})),
        )
        .await;
    assert_eq!(
        (spoofed.status, spoofed.problem_code().as_str()),
        (403, "https_required")
    );
    // A refused credential from the same untrusted peer is recorded with its real address.
    let refused = app
        .send(
            app.client
                .get(app.url("/health/ready"))
                .header("x-forwarded-for", "198.51.100.7"),
        )
        .await;
    assert_eq!(refused.status, 200);
    let made_up = app
        .send(
            app.client
                .get(app.url("/api/v1/me"))
                .bearer_auth("rh-madeUpTokenThatNobodyOwns0123456789abcdefghij")
                .header("x-forwarded-for", "198.51.100.7"),
        )
        .await;
    assert_eq!(
        made_up.status, 403,
        "refused for plain HTTP before anything else"
    );
    // In the test profile (no HTTPS required) the spoofed header still does not count.
    let test_app = spawn_app_configured(Profile::Test, |_| {}).await;
    let reply = test_app
        .send(
            test_app
                .client
                .get(test_app.url("/api/v1/me"))
                .bearer_auth("rh-madeUpTokenThatNobodyOwns0123456789abcdefghij")
                .header("x-forwarded-for", "198.51.100.7"),
        )
        .await;
    assert_eq!(reply.status, 401);
    assert_eq!(
        last_client_ip(&test_app, "authentication.failed").await,
        "127.0.0.1"
    );
}

/// A self-signed certificate for localhost, written to two PEM files.
fn certificate(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf, String) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let pem = cert.cert.pem();
    let (cert_file, key_file) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_file, &pem).unwrap();
    std::fs::write(&key_file, cert.signing_key.serialize_pem()).unwrap();
    (cert_file, key_file, pem)
}

#[tokio::test]
async fn tls_is_served_here_and_plain_http_is_redirected_or_refused() {
    let dir = std::env::temp_dir().join(format!("rh-tls-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert_file, key_file, pem) = certificate(&dir);

    let db = test_support::TestDatabase::new().await;
    let mut args = crate::serve_args(Profile::Test, db.app_url());
    args.tls.tls_cert_file = Some(cert_file.clone());
    args.tls.tls_key_file = Some(key_file.clone());
    args.tls.http_bind = Some("127.0.0.1:0".parse().unwrap());
    args.login.public_url = Some("https://localhost".to_owned());
    let app = server::Application::build(&args).await.unwrap();
    let (https_port, http_port) = (app.port(), app.http_port().unwrap());
    tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    let secure = client
        .get(format!("https://localhost:{https_port}/api/v1/me"))
        .send()
        .await
        .unwrap();
    assert_eq!(secure.status(), 401, "served over TLS");
    assert_eq!(
        secure.headers()["strict-transport-security"],
        api_http::HSTS
    );
    let ready = client
        .get(format!("https://localhost:{https_port}/health/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);

    // The plain port: API calls refused, browsers sent to HTTPS, no HSTS over plain HTTP.
    let api = client
        .get(format!("http://127.0.0.1:{http_port}/api/v1/projects"))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 403);
    assert!(api.headers().get("strict-transport-security").is_none());
    let body: serde_json::Value = api.json().await.unwrap();
    assert_eq!(body["code"], "https_required");
    let browser = client
        .get(format!("http://127.0.0.1:{http_port}/docs/"))
        .header("accept", "text/html")
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(browser.status(), 308);
    assert_eq!(browser.headers()["location"], "https://localhost/docs/");
    // Plain HTTP on the TLS port gets nowhere.
    assert!(
        reqwest::Client::new()
            .get(format!("http://127.0.0.1:{https_port}/health/live"))
            .send()
            .await
            .map(|r| r.status() != 200)
            .unwrap_or(true)
    );

    // Half a configuration, or a key that is not the certificate's, is refused at startup.
    let mut half = crate::serve_args(Profile::Test, db.app_url());
    half.tls.tls_cert_file = Some(cert_file.clone());
    let err = server::Application::build(&half)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("configuration"), "{err}");
    let other = dir.join("other");
    std::fs::create_dir_all(&other).unwrap();
    let (_, other_key, _) = certificate(&other);
    let mut mismatched = crate::serve_args(Profile::Test, db.app_url());
    mismatched.tls.tls_cert_file = Some(cert_file);
    mismatched.tls.tls_key_file = Some(other_key);
    assert!(server::Application::build(&mismatched).await.is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The suite a client that prefers `offered` (in that order) gets from the server on `port`.
fn negotiated_suite(
    port: u16,
    pem: &str,
    offered: Vec<rustls::SupportedCipherSuite>,
    version: &'static rustls::SupportedProtocolVersion,
) -> rustls::CipherSuite {
    use rustls::pki_types::pem::PemObject;
    use std::io::Write;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).unwrap())
        .unwrap();
    let provider = rustls::crypto::CryptoProvider {
        cipher_suites: offered,
        ..rustls::crypto::ring::default_provider()
    };
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(provider))
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let connection = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let socket = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut stream = rustls::StreamOwned::new(connection, socket);
    stream
        .write_all(b"GET /health/live HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    stream.conn.negotiated_cipher_suite().unwrap().suite()
}

#[tokio::test]
async fn the_server_chooses_the_cipher_suite_not_the_client() {
    use rustls::crypto::ring::cipher_suite as suite;
    let dir = std::env::temp_dir().join(format!("rh-tls-order-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert_file, key_file, pem) = certificate(&dir);
    let db = test_support::TestDatabase::new().await;
    let mut args = crate::serve_args(Profile::Test, db.app_url());
    args.tls.tls_cert_file = Some(cert_file);
    args.tls.tls_key_file = Some(key_file);
    let app = server::Application::build(&args).await.unwrap();
    let port = app.port();
    tokio::spawn(app.run_until_stopped());

    // A client that lists the weakest of the allowed suites first gets the strongest.
    let (tls13, tls12) = tokio::task::spawn_blocking(move || {
        let tls13 = negotiated_suite(
            port,
            &pem,
            vec![
                suite::TLS13_CHACHA20_POLY1305_SHA256,
                suite::TLS13_AES_128_GCM_SHA256,
                suite::TLS13_AES_256_GCM_SHA384,
            ],
            &rustls::version::TLS13,
        );
        let tls12 = negotiated_suite(
            port,
            &pem,
            vec![
                suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
                suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
                suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            ],
            &rustls::version::TLS12,
        );
        (tls13, tls12)
    })
    .await
    .unwrap();
    assert_eq!(tls13, rustls::CipherSuite::TLS13_AES_256_GCM_SHA384);
    assert_eq!(
        tls12,
        rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// nginx's `$proxy_add_x_forwarded_for`, AWS ALB and Envoy append the address they saw to the
/// client's own `X-Forwarded-For`, on the same line. A client that puts one byte outside
/// visible ASCII in its own part (proxies pass it on; actix accepts it) must not make the whole
/// line unreadable: the request would count as the proxy's own, recorded under the proxy's
/// address, and a guesser blocked under its real address would keep guessing.
#[tokio::test]
async fn a_byte_outside_ascii_in_the_clients_part_does_not_make_the_proxy_the_client() {
    use reqwest::header::HeaderValue;
    let app = spawn_app_configured(Profile::Production, |args| {
        args.browser.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        args.login.public_url = Some("https://api.example.com".to_owned());
        // Two strikes block; every strike counts.
        args.blocks.block_strikes = 2;
        args.blocks.block_first_seconds = 600;
        args.blocks.block_permanent_after = 2;
        args.blocks.block_strike_interval_ms = 0;
        args.blocks.block_refresh_ms = 100;
    })
    .await;
    let guess = |n: u32, forwarded: HeaderValue| {
        let app = &app;
        async move {
            app.send(
                app.client
                    .get(app.url("/api/v1/me"))
                    .bearer_auth(format!("rh-{n:0>43}"))
                    .header("x-forwarded-proto", "https")
                    .header("x-forwarded-for", forwarded),
            )
            .await
        }
    };
    // The guesser at 198.51.100.66 guesses twice and is blocked.
    let plain = HeaderValue::from_static("198.51.100.66");
    assert_eq!(guess(1, plain.clone()).await.status, 401);
    let blocked = guess(2, plain).await;
    assert_eq!(
        (blocked.status, blocked.problem_code().as_str()),
        (403, "blocked")
    );
    // It writes `X-Forwarded-For: \xff` itself; the proxy appends the address it saw.
    let forged = HeaderValue::from_bytes(b"\xff, 198.51.100.66").unwrap();
    let again = guess(3, forged).await;
    let recorded = last_client_ip(&app, "authentication.failed").await;
    assert_eq!(
        (again.status, again.problem_code().as_str()),
        (403, "blocked"),
        "the blocked guesser guesses on, recorded as {recorded}: {again:?}"
    );
}
