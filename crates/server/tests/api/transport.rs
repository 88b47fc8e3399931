//! HTTPS enforcement and the client's address behind proxies: forwarded headers are believed
//! from trusted proxies only; in production plain HTTP is redirected (browsers) or refused.

use serde_json::json;

use crate::{TestApp, spawn_app_configured};
use server::config::Profile;

async fn production(trusted: &[&str]) -> TestApp {
    let trusted: Vec<ipnet::IpNet> = trusted.iter().map(|t| t.parse().unwrap()).collect();
    spawn_app_configured(Profile::Production, |args| {
        args.browser.trusted_proxies = trusted;
    })
    .await
}

async fn last_client_ip(app: &TestApp, action: &str) -> String {
    use sea_orm::ConnectionTrait;
    let admin = app.db.admin_pool().await;
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
    let browser = app
        .send(
            app.client
                .get(app.url("/docs/"))
                .header("accept", "text/html,application/xhtml+xml")
                .header("host", "api.example.com"),
        )
        .await;
    assert_eq!(browser.status, 308);
    assert_eq!(
        browser.header("location"),
        Some("https://api.example.com/docs/")
    );
    // Probes answer over plain HTTP.
    assert_eq!(
        app.call("GET", "/health/live", None, None).await.status,
        200
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
