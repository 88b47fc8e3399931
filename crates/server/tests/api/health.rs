//! Probes, request ids and problem+json errors.

use sea_orm::ConnectionTrait;
use serde_json::Value;

use crate::spawn_app;

fn request_id(response: &reqwest::Response) -> String {
    response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn liveness_and_readiness_answer() {
    let app = spawn_app().await;
    for path in ["/health/live", "/health/ready"] {
        let response = app
            .client
            .get(format!("{}{path}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert!(uuid::Uuid::parse_str(&request_id(&response)).is_ok());
    }
}

#[tokio::test]
async fn readiness_fails_when_the_database_is_gone() {
    let app = spawn_app().await;
    let url = format!("{}/health/ready", app.address);
    assert_eq!(app.client.get(&url).send().await.unwrap().status(), 200);

    let admin = app.db.server_admin_pool().await;
    admin
        .execute_unprepared(&format!("DROP DATABASE {} WITH (FORCE)", app.db.name))
        .await
        .unwrap_or_else(|e| panic!("dropping the database: {e}"));
    // Readiness is answered from a check at most a second old.
    let mut response = app.client.get(&url).send().await.unwrap();
    for _ in 0..30 {
        if response.status() != 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        response = app.client.get(&url).send().await.unwrap();
    }
    assert_eq!(response.status(), 503);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let id = request_id(&response);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "unavailable");
    assert_eq!(body["request_id"], id.as_str());
    let text = body.to_string();
    for internal in ["sqlx", "database", "postgres", "FATAL", "does not exist"] {
        assert!(
            !text.contains(internal),
            "internal text {internal:?} in {text}"
        );
    }
    // Liveness does not depend on the database.
    let live = app
        .client
        .get(format!("{}/health/live", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
}

#[tokio::test]
async fn unknown_routes_get_problem_json_with_the_request_id() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(format!("{}/no/such/route?token=rh-secret", app.address))
        .header("x-request-id", "chosen-by-client")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    assert_eq!(response.headers()["cache-control"], "no-store");
    let id = request_id(&response);
    assert_ne!(
        id, "chosen-by-client",
        "the server makes its own request ids"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "type": "about:blank",
            "title": "Not Found",
            "status": 404,
            "code": "not_found",
            "detail": "The requested resource does not exist.",
            "request_id": id,
        })
    );
}

#[tokio::test]
async fn every_request_gets_its_own_id() {
    let app = spawn_app().await;
    let mut ids = std::collections::BTreeSet::new();
    for _ in 0..5 {
        let response = app
            .client
            .get(format!("{}/health/live", app.address))
            .send()
            .await
            .unwrap();
        ids.insert(request_id(&response));
    }
    assert_eq!(ids.len(), 5);
}

#[tokio::test]
async fn the_api_describes_itself_and_serves_its_documentation_offline() {
    let app = spawn_app().await;
    let spec: Value = app
        .client
        .get(format!("{}/openapi.json", app.address))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(spec["openapi"], "3.1.0");
    assert!(spec["paths"]["/api/v1/tokens/{token_id}"]["delete"].is_object());
    assert!(spec["components"]["securitySchemes"]["bearer"].is_object());
    let bare = app
        .client
        .get(format!("{}/docs", app.address))
        .send()
        .await
        .unwrap();
    assert!(bare.status().is_redirection());
    assert_eq!(bare.headers()["location"], "/docs/");
    let docs = app
        .client
        .get(format!("{}/docs/", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(docs.status(), 200);
    assert!(
        docs.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(docs.text().await.unwrap().contains("swagger"));
}

/// While PostgreSQL is down, requests fail fast: 503 problem+json with `Retry-After`, after
/// at most about `DATABASE_ACQUIRE_TIMEOUT_MS`, never a hang, a 500 or a 401; when it is
/// back, the server serves again by itself. The cluster is stopped and started under load.
#[tokio::test]
async fn while_the_database_is_down_requests_fail_fast_and_the_server_recovers() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    const ACQUIRE_MS: u64 = 1_000;
    /// Far above the acquire timeout, far below the client's own.
    const FAST: Duration = Duration::from_secs(8);
    let cluster = test_support::OutageCluster::hold().await;
    let db = test_support::TestDatabase::on_outage_cluster().await;
    let app = crate::spawn_app_over(db, server::config::Profile::Test, |args| {
        args.database.acquire_timeout_ms = ACQUIRE_MS;
    })
    .await;
    let owner = app.owner("outage").await;
    let jwt = app.jwt(&owner);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let projects = app.url("/api/v1/projects");
    let ready = app.url("/health/ready");
    let first = client
        .get(&projects)
        .bearer_auth(&jwt)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    // A session cookie as the server seals them (its id names no session).
    let session_cookie = {
        let key = app.args.auth.session_cookie_key().unwrap();
        let mut jar = actix_web::cookie::CookieJar::new();
        jar.private_mut(&key).add(actix_web::cookie::Cookie::new(
            api_http::SESSION_COOKIE,
            "x".repeat(43),
        ));
        let sealed = jar
            .get(api_http::SESSION_COOKIE)
            .unwrap()
            .value()
            .to_owned();
        format!("{}={sealed}", api_http::SESSION_COOKIE)
    };

    // The load: four clients asking without pause, each answer noted with how long it took.
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (client, url, jwt, stop) =
            (client.clone(), projects.clone(), jwt.clone(), stop.clone());
        load.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let response = client.get(&url).bearer_auth(&jwt).send().await;
                let took = started.elapsed();
                let answer = response.map(|r| {
                    let retry_after = r.headers().get("retry-after").cloned();
                    let kind = r.headers().get("content-type").cloned();
                    (r.status().as_u16(), retry_after, kind)
                });
                answers.push((answer.map_err(|e| e.to_string()), took));
            }
            answers
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    cluster.stop();
    let down_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let probe = client.get(&ready).send().await.unwrap();
    assert_eq!(
        probe.status(),
        503,
        "readiness fails while the database is down"
    );
    let refused = client
        .get(&projects)
        .bearer_auth(&jwt)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "5");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["code"], "unavailable", "{body}");
    // A browser's request: its session cookie sends the session layer to the store first.
    for path in ["/auth/me", "/api/v1/projects"] {
        let answer = client
            .get(app.url(path))
            .header("cookie", &session_cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 503, "{path} with a session cookie");
        assert_eq!(answer.headers()["retry-after"], "5", "{path}");
        assert_eq!(
            answer.headers()["content-type"],
            "application/problem+json",
            "{path}"
        );
    }
    let down_for = down_at.elapsed();

    cluster.start();
    let back_at = Instant::now();
    let recovered = loop {
        let status = client
            .get(&projects)
            .bearer_auth(&jwt)
            .send()
            .await
            .unwrap()
            .status();
        if status == 200 {
            break back_at.elapsed();
        }
        assert!(
            back_at.elapsed() < Duration::from_secs(30),
            "the server did not recover: {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut answers = Vec::new();
    for task in load {
        answers.extend(task.await.unwrap());
    }

    let mut unavailable = 0;
    for (answer, took) in &answers {
        let (status, retry_after, kind) = answer
            .as_ref()
            .unwrap_or_else(|e| panic!("a request failed without an answer: {e}"));
        assert!(*took < FAST, "an answer took {took:?}: {status}");
        match status {
            200 => {}
            503 => {
                unavailable += 1;
                assert_eq!(retry_after.as_ref().map(|v| v.as_bytes()), Some(&b"5"[..]));
                assert_eq!(
                    kind.as_ref().map(|v| v.as_bytes()),
                    Some(&b"application/problem+json"[..])
                );
            }
            other => panic!("an answer of {other} while the database was down or back"),
        }
    }
    assert!(
        unavailable > 0,
        "the load met the outage ({down_for:?} down, {recovered:?} to recover)"
    );
    assert_eq!(
        client.get(&ready).send().await.unwrap().status(),
        200,
        "ready again"
    );
}

/// A statement stuck on a lock is cut at `DATABASE_STATEMENT_TIMEOUT_MS`: the request gets
/// 503 with `Retry-After`, not a wait without end, and the server serves again once the lock
/// is gone.
#[tokio::test]
async fn a_statement_stuck_on_a_lock_is_cut_at_the_statement_timeout() {
    use sea_orm::TransactionTrait;
    use std::time::{Duration, Instant};
    let app = crate::spawn_app_configured(server::config::Profile::Test, |args| {
        args.database.statement_timeout_ms = 1_000;
    })
    .await;
    let owner = app.owner("locked").await;
    let jwt = app.jwt(&owner);
    let list = || {
        app.client
            .get(app.url("/api/v1/projects"))
            .bearer_auth(&jwt)
            .timeout(Duration::from_secs(60))
            .send()
    };
    assert_eq!(list().await.unwrap().status(), 200);

    let admin = app.db.admin_pool().await;
    let holder = admin.begin().await.unwrap();
    holder
        .execute_unprepared("LOCK TABLE projects IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let started = Instant::now();
    let stuck = list().await.unwrap();
    let waited = started.elapsed();
    assert_eq!(stuck.status(), 503);
    assert_eq!(stuck.headers()["retry-after"], "5");
    assert!(waited < Duration::from_secs(30), "cut after {waited:?}");
    holder.rollback().await.unwrap();
    assert_eq!(list().await.unwrap().status(), 200);
}
