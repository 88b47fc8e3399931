//! Security headers on every response: every operation of the OpenAPI document, answered
//! and refused, plus unknown routes, wrong methods, body errors and the documentation.

use serde_json::Value;

use crate::{Reply, TestApp, spawn_app};

fn assert_headers(reply: &Reply, what: &str) {
    let docs = what.contains(" /docs");
    let expected = [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("x-xss-protection", "0"),
        ("referrer-policy", "no-referrer"),
        ("cross-origin-opener-policy", "same-origin"),
        ("cross-origin-resource-policy", "same-origin"),
        ("cache-control", "no-store"),
        (
            "content-security-policy",
            if docs {
                api_http::DOCS_CSP
            } else {
                api_http::API_CSP
            },
        ),
    ];
    for (name, value) in expected {
        assert_eq!(
            reply.header(name),
            Some(value),
            "{name} on {what} ({})",
            reply.status
        );
    }
    assert!(
        reply
            .header("permissions-policy")
            .is_some_and(|p| p.contains("camera=()")),
        "{what}"
    );
    assert!(reply.header("server").is_none(), "{what}");
    assert!(
        reply.header("strict-transport-security").is_none(),
        "plain HTTP: {what}"
    );
}

async fn raw(
    app: &TestApp,
    method: &str,
    path: &str,
    token: Option<&str>,
    content_type: &str,
    body: Vec<u8>,
) -> Reply {
    let mut request = app
        .client
        .request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            app.url(path),
        )
        .header("content-type", content_type)
        .body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    app.send(request).await
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app = spawn_app().await;
    let owner = app.owner("acme").await;
    let jwt = app.jwt(&owner);
    let spec: Value = app.call("GET", "/openapi.json", None, None).await.json();
    let mut seen_statuses = std::collections::BTreeSet::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        let url = path
            .split('/')
            .map(|s| {
                if s.starts_with('{') {
                    "01890000-0000-7000-8000-000000000000"
                } else {
                    s
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        for (method, _) in item.as_object().unwrap() {
            let method = method.to_uppercase();
            // Anonymous: mostly refused.
            let reply = app.call(&method, &url, None, None).await;
            assert_headers(&reply, &format!("{method} {path} anonymous"));
            seen_statuses.insert(reply.status);
            if method == "GET" {
                let reply = app.call(&method, &url, Some(&jwt), None).await;
                assert_headers(&reply, &format!("{method} {path}"));
                seen_statuses.insert(reply.status);
            }
        }
    }
    let cases = [
        ("GET", "/nowhere", "application/json", b"".to_vec()),
        (
            "PUT",
            "/api/v1/projects",
            "application/json",
            b"{}".to_vec(),
        ),
        (
            "POST",
            "/api/v1/projects",
            "application/json",
            b"{\"name\":".to_vec(),
        ),
        ("POST", "/api/v1/projects", "text/plain", b"name".to_vec()),
        (
            "POST",
            "/api/v1/projects",
            "application/json",
            vec![b' '; api_http::DEFAULT_MAX_BODY_BYTES + 10],
        ),
        (
            "GET",
            "/api/v1/projects?limit=1000",
            "application/json",
            vec![],
        ),
        ("GET", "/docs", "text/html", vec![]),
        ("GET", "/docs/", "text/html", vec![]),
        ("GET", "/docs/swagger-ui.css", "text/css", vec![]),
    ];
    for (method, path, content_type, body) in cases {
        let reply = raw(&app, method, path, Some(&jwt), content_type, body).await;
        assert_headers(&reply, &format!("{method} {path}"));
        seen_statuses.insert(reply.status);
    }
    for status in [200, 307, 400, 401, 404, 405, 413, 415] {
        assert!(
            seen_statuses.contains(&status),
            "{status} in {seen_statuses:?}"
        );
    }
}

#[tokio::test]
async fn cors_grants_the_frontend_alone_and_never_a_wildcard() {
    let app = spawn_app().await;
    let owner = app.owner("acme").await;
    let jwt = app.jwt(&owner);
    let preflight = |origin: &str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/api/v1/projects"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
    };
    let granted = app.send(preflight(crate::FRONTEND)).await;
    assert_eq!(granted.status, 200, "{granted:?}");
    assert_eq!(
        granted.header("access-control-allow-origin"),
        Some(crate::FRONTEND)
    );
    assert_eq!(
        granted.header("access-control-allow-credentials"),
        Some("true")
    );
    let methods = granted
        .header("access-control-allow-methods")
        .unwrap()
        .to_owned();
    for method in ["GET", "POST", "PATCH", "DELETE"] {
        assert!(methods.contains(method), "{methods}");
    }
    let headers = granted
        .header("access-control-allow-headers")
        .unwrap()
        .to_lowercase();
    assert!(
        headers.contains("authorization") && headers.contains("content-type"),
        "{headers}"
    );
    assert_headers(&granted, "OPTIONS preflight");

    for foreign in [
        "https://evil.example",
        "https://app.example.com.evil.example",
        "http://app.example.com",
        "https://app.example.co",
        "null",
    ] {
        let refused = app.send(preflight(foreign)).await;
        assert!(
            refused.header("access-control-allow-origin").is_none(),
            "{foreign}"
        );
        assert!(refused.status >= 400, "{foreign}: {refused:?}");
        assert!(!refused.problem_code().is_empty(), "{foreign}");
        assert_headers(&refused, "OPTIONS refused preflight");
    }

    let request = |origin: &str| {
        app.client
            .get(app.url("/api/v1/projects"))
            .header("origin", origin)
            .bearer_auth(&jwt)
    };
    let allowed = app.send(request(crate::FRONTEND)).await;
    assert_eq!(allowed.status, 200);
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some(crate::FRONTEND)
    );
    let exposed = allowed
        .header("access-control-expose-headers")
        .unwrap()
        .to_lowercase();
    assert!(
        exposed.contains("x-total-count") && exposed.contains("x-request-id"),
        "{exposed}"
    );
    let foreign = app.send(request("https://evil.example")).await;
    assert!(foreign.header("access-control-allow-origin").is_none());
    assert!(foreign.header("access-control-allow-credentials").is_none());
    // An error response to the frontend still carries the grant, so the browser can read it.
    let error = app
        .send(
            app.client
                .get(app.url("/api/v1/projects/nope"))
                .header("origin", crate::FRONTEND)
                .bearer_auth(&jwt),
        )
        .await;
    assert_eq!(error.status, 404);
    assert_eq!(
        error.header("access-control-allow-origin"),
        Some(crate::FRONTEND)
    );
}

#[tokio::test]
async fn the_body_limit_is_configurable() {
    let app = crate::spawn_app_configured(server::config::Profile::Test, |args| {
        args.max_body_bytes = 2048;
    })
    .await;
    let owner = app.owner("acme").await;
    let jwt = app.jwt(&owner);
    let body = |len: usize| {
        format!(
            "{{\"name\": \"p\", \"description\": \"{}\"}}",
            "d".repeat(len)
        )
    };
    let big = raw(
        &app,
        "POST",
        "/api/v1/projects",
        Some(&jwt),
        "application/json",
        body(3000).into_bytes(),
    )
    .await;
    assert_eq!(
        (big.status, big.problem_code().as_str()),
        (413, "payload_too_large")
    );
    let small = raw(
        &app,
        "POST",
        "/api/v1/projects",
        Some(&jwt),
        "application/json",
        body(1500).into_bytes(),
    )
    .await;
    assert_eq!(small.status, 201, "{small:?}");
}

#[tokio::test]
async fn a_known_path_with_another_method_is_405_with_allow_and_an_unknown_one_404() {
    let app = crate::spawn_app().await;
    let owner = app.owner("acme").await;
    let jwt = app.jwt(&owner);
    for (method, path, allow) in [
        ("PUT", "/api/v1/projects", "GET, POST"),
        ("DELETE", "/api/v1/me", "GET"),
        (
            "POST",
            "/api/v1/projects/0190c7a2-0000-7000-8000-000000000000",
            "GET, PATCH, DELETE",
        ),
    ] {
        for token in [None, Some(jwt.as_str())] {
            let reply = app.call(method, path, token, None).await;
            assert_eq!(reply.status, 405, "{method} {path}");
            assert_eq!(reply.problem_code(), "method_not_allowed");
            assert_eq!(reply.header("allow"), Some(allow), "{method} {path}");
            assert_headers(&reply, &format!("{method} {path}"));
        }
    }
    for path in ["/api/v1/nothing", "/api/v1/projects/a/b", "/api"] {
        let reply = app.call("PUT", path, Some(&jwt), None).await;
        assert_eq!(reply.status, 404, "{path}");
        assert_eq!(reply.problem_code(), "not_found");
        assert_eq!(reply.header("allow"), None);
    }
}

#[tokio::test]
async fn the_request_head_limit_is_configurable() {
    let app = crate::spawn_app_configured(server::config::Profile::Test, |args| {
        args.max_header_bytes = 2048;
    })
    .await;
    let owner = app.owner("acme").await;
    let jwt = app.jwt(&owner);
    let with_header = |len: usize| {
        app.client
            .get(app.url("/api/v1/me"))
            .bearer_auth(&jwt)
            .header("x-padding", "p".repeat(len))
    };
    let reply = app.send(with_header(600)).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let reply = app.send(with_header(2100)).await;
    assert_eq!(reply.status, 431, "{reply:?}");
    assert_eq!(reply.problem_code(), "request_header_fields_too_large");
    assert_headers(&reply, "431");
    // A long target counts too.
    let long = format!("/api/v1/projects?sort_by={}", "x".repeat(2100));
    let reply = app.call("GET", &long, Some(&jwt), None).await;
    assert_eq!(reply.status, 431);
}
