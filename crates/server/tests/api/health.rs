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
