//! API tokens over HTTP: shown once, their owner's alone, created and refreshed only after a
//! fresh login, dead at once when refreshed or revoked.

use chrono::Duration;
use domain::Role;
use ports::{Clock, SystemClock};
use serde_json::{Value, json};

use crate::{TestApp, TestUser, spawn_app};

async fn create(app: &TestApp, jwt: &str, name: &str) -> (String, String) {
    let reply = app.create_api_token(jwt, name).await;
    assert_eq!(reply.status, 201, "{reply:?}");
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let body = reply.json();
    let value = body["token_value"].as_str().unwrap().to_owned();
    (body["id"].as_str().unwrap().to_owned(), value)
}

async fn audit_count(app: &TestApp, user: &TestUser, action: &str) -> i64 {
    app.count(&format!(
        "SELECT count(*) FROM audit_events WHERE organization_id = '{}' AND action = '{action}'",
        user.membership.organization_id.as_uuid()
    ))
    .await
}

#[tokio::test]
async fn a_token_lives_from_creation_through_refresh_to_revocation() {
    let app = spawn_app().await;
    let owner = app.owner("acme").await;
    let jwt = app.jwt(&owner);
    let (id, value) = create(&app, &jwt, "ci").await;
    assert!(value.starts_with("rh-"));

    let me = app.call("GET", "/api/v1/me", Some(&value), None).await;
    assert_eq!(me.json()["authenticated_by"], "api_token");

    // The use is written off the request path, within a second; now, here.
    app.record_deferred().await;
    let list = app.call("GET", "/api/v1/tokens", Some(&jwt), None).await;
    assert_eq!(list.status, 200);
    assert_eq!(list.header("x-total-count"), Some("1"));
    let listed = &list.json()[0];
    assert_eq!(listed["id"], id.as_str());
    assert!(listed.get("token_value").is_none());
    assert_eq!(listed["hint"].as_str().unwrap().len(), 10);
    assert!(
        listed["last_used_at"].is_string(),
        "the use above is recorded"
    );

    let renamed = app
        .call(
            "PATCH",
            &format!("/api/v1/tokens/{id}"),
            Some(&jwt),
            Some(&json!({"name": "deploy"})),
        )
        .await;
    assert_eq!(renamed.json()["name"], "deploy");
    let got = app
        .call("GET", &format!("/api/v1/tokens/{id}"), Some(&jwt), None)
        .await;
    assert_eq!(got.json()["name"], "deploy");

    let refreshed = app
        .call(
            "POST",
            &format!("/api/v1/tokens/{id}/refresh"),
            Some(&jwt),
            None,
        )
        .await;
    assert_eq!(refreshed.status, 200);
    assert_eq!(refreshed.header("cache-control"), Some("no-store"));
    let new_value = refreshed.json()["token_value"].as_str().unwrap().to_owned();
    app.secret(&new_value);
    assert_ne!(new_value, value);
    assert_eq!(
        app.call("GET", "/api/v1/me", Some(&value), None)
            .await
            .status,
        401
    );
    assert_eq!(
        app.call("GET", "/api/v1/me", Some(&new_value), None)
            .await
            .status,
        200
    );

    let revoked = app
        .call("DELETE", &format!("/api/v1/tokens/{id}"), Some(&jwt), None)
        .await;
    assert_eq!(revoked.status, 204);
    assert_eq!(
        app.call("GET", "/api/v1/me", Some(&new_value), None)
            .await
            .status,
        401
    );
    let gone = app
        .call("GET", &format!("/api/v1/tokens/{id}"), Some(&jwt), None)
        .await;
    assert_eq!(gone.status, 404);

    for action in [
        "token.created",
        "token.used",
        "token.refreshed",
        "token.revoked",
    ] {
        assert_eq!(audit_count(&app, &owner, action).await, 1, "{action}");
    }
}

#[tokio::test]
async fn creating_and_refreshing_need_a_fresh_login() {
    let app = spawn_app().await;
    let owner = app.owner("acme").await;
    let now = SystemClock.now();
    let stale = app.jwt_at(&owner, now, now - Duration::minutes(11));
    let (id, value) = create(&app, &app.jwt(&owner), "ci").await;
    for (case, token, path) in [
        ("stale create", stale.as_str(), "/api/v1/tokens".to_owned()),
        (
            "stale refresh",
            stale.as_str(),
            format!("/api/v1/tokens/{id}/refresh"),
        ),
    ] {
        let reply = app
            .call("POST", &path, Some(token), Some(&json!({"name": "x"})))
            .await;
        assert_eq!(reply.status, 401, "{case}");
        assert_eq!(
            reply.problem_code(),
            "insufficient_user_authentication",
            "{case}"
        );
        let challenge = reply.header("www-authenticate").unwrap();
        assert!(
            challenge.contains("error=\"insufficient_user_authentication\"")
                && challenge.contains("max_age=600"),
            "{case}: {challenge}"
        );
    }
    // An API token may do neither, however fresh: no step-up would help a program.
    for (case, path) in [
        ("API token create", "/api/v1/tokens".to_owned()),
        ("API token refresh", format!("/api/v1/tokens/{id}/refresh")),
    ] {
        let reply = app
            .call("POST", &path, Some(&value), Some(&json!({"name": "x"})))
            .await;
        assert_eq!(
            (reply.status, reply.problem_code().as_str()),
            (403, "forbidden"),
            "{case}"
        );
    }
    // Nothing was created or refreshed; each refusal is in the audit log.
    let list = app.call("GET", "/api/v1/tokens", Some(&stale), None).await;
    assert_eq!(
        list.header("x-total-count"),
        Some("1"),
        "stale logins may still read"
    );
    assert_eq!(
        app.call("GET", "/api/v1/me", Some(&value), None)
            .await
            .status,
        200
    );
    assert_eq!(audit_count(&app, &owner, "access.denied").await, 4);
    // A login just inside the window is fresh.
    let recent = app.jwt_at(&owner, now, now - Duration::minutes(9));
    create(&app, &recent, "recent").await;
}

#[tokio::test]
async fn nobody_reaches_another_users_tokens() {
    let app = spawn_app().await;
    let owner = app.owner("acme").await;
    let colleague = app.member(&owner, Role::Admin).await;
    let stranger = app.owner("globex").await;
    let (id, value) = create(&app, &app.jwt(&owner), "ci").await;
    for intruder in [&colleague, &stranger] {
        let jwt = app.jwt(intruder);
        for (method, path, body) in [
            ("GET", format!("/api/v1/tokens/{id}"), None),
            (
                "PATCH",
                format!("/api/v1/tokens/{id}"),
                Some(json!({"name": "mine"})),
            ),
            ("DELETE", format!("/api/v1/tokens/{id}"), None),
            ("POST", format!("/api/v1/tokens/{id}/refresh"), None),
        ] {
            let reply = app.call(method, &path, Some(&jwt), body.as_ref()).await;
            assert_eq!(reply.status, 404, "{method} {path}");
            assert_eq!(reply.problem_code(), "not_found");
        }
        let list = app.call("GET", "/api/v1/tokens", Some(&jwt), None).await;
        assert_eq!(list.json(), json!([]));
    }
    // The token is untouched.
    assert_eq!(
        app.call("GET", "/api/v1/me", Some(&value), None)
            .await
            .status,
        200
    );
    let got = app
        .call(
            "GET",
            &format!("/api/v1/tokens/{id}"),
            Some(&app.jwt(&owner)),
            None,
        )
        .await;
    assert_eq!(got.json()["name"], "ci");
}

#[tokio::test]
async fn bad_input_is_a_clear_4xx_never_a_500() {
    let app = spawn_app().await;
    let owner = app.owner("acme").await;
    let jwt = app.jwt(&owner);
    let json_cases: Vec<(&str, Value, &str)> = vec![
        ("missing name", json!({}), "invalid_request"),
        ("wrong type", json!({"name": 42}), "invalid_request"),
        (
            "unknown field",
            json!({"name": "a", "admin": true}),
            "invalid_request",
        ),
        ("empty name", json!({"name": "  "}), "invalid_request"),
        (
            "too long",
            json!({"name": "x".repeat(10_000)}),
            "invalid_request",
        ),
        (
            "expiry 0",
            json!({"name": "a", "expires_in_days": 0}),
            "invalid_request",
        ),
        (
            "expiry negative",
            json!({"name": "a", "expires_in_days": -1}),
            "invalid_request",
        ),
        ("not an object", json!(["name"]), "invalid_request"),
    ];
    for (case, body, code) in json_cases {
        let reply = app
            .call("POST", "/api/v1/tokens", Some(&jwt), Some(&body))
            .await;
        assert_eq!(reply.status, 400, "{case}: {reply:?}");
        assert_eq!(reply.problem_code(), code, "{case}");
        assert!(
            !reply.text.contains("serde") && !reply.text.contains("line 1"),
            "{case}"
        );
    }
    let raw = |content_type: &'static str, body: Vec<u8>| {
        app.client
            .post(app.url("/api/v1/tokens"))
            .bearer_auth(&jwt)
            .header("content-type", content_type)
            .body(body)
    };
    let reply = app
        .send(raw("application/json", b"{\"name\": ".to_vec()))
        .await;
    assert_eq!(
        (reply.status, reply.problem_code().as_str()),
        (400, "invalid_request")
    );
    let reply = app
        .send(raw("text/plain", b"{\"name\": \"a\"}".to_vec()))
        .await;
    assert_eq!(
        (reply.status, reply.problem_code().as_str()),
        (415, "unsupported_media_type")
    );
    let big = format!(
        "{{\"name\": \"{}\"}}",
        "a".repeat(api_http::DEFAULT_MAX_BODY_BYTES)
    );
    let reply = app.send(raw("application/json", big.into_bytes())).await;
    assert_eq!(
        (reply.status, reply.problem_code().as_str()),
        (413, "payload_too_large")
    );

    for (query, field) in [
        ("limit=1000", "limit"),
        ("limit=0", "limit"),
        ("skip=100000000", "skip"),
        ("sort_by=token", "sort_by"),
        ("sort_order=sideways", "sort_order"),
    ] {
        let reply = app
            .call("GET", &format!("/api/v1/tokens?{query}"), Some(&jwt), None)
            .await;
        assert_eq!(reply.status, 400, "{query}");
        assert_eq!(reply.json()["field"], field, "{query}");
    }
    for query in [
        "limit=lots",
        "skip=-1",
        "admin=true",
        "limit=99999999999999999999999",
    ] {
        let reply = app
            .call("GET", &format!("/api/v1/tokens?{query}"), Some(&jwt), None)
            .await;
        assert_eq!(
            (reply.status, reply.problem_code().as_str()),
            (400, "invalid_request"),
            "{query}"
        );
    }
    // An id that is no id names nothing.
    let reply = app
        .call("GET", "/api/v1/tokens/not-a-uuid", Some(&jwt), None)
        .await;
    assert_eq!(
        (reply.status, reply.problem_code().as_str()),
        (404, "not_found")
    );
    // Nothing was created by any of it.
    let list = app.call("GET", "/api/v1/tokens", Some(&jwt), None).await;
    assert_eq!(list.header("x-total-count"), Some("0"));
}
