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
            vec![b' '; api_http::MAX_JSON_BODY_BYTES + 10],
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
    for status in [200, 307, 400, 401, 404, 413, 415] {
        assert!(
            seen_statuses.contains(&status),
            "{status} in {seen_statuses:?}"
        );
    }
}
