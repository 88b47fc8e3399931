//! Projects, endpoints and models over HTTP: secrets are write-only and need a fresh login,
//! every change is in the audit log, and an action whose event cannot be written is not kept.

use chrono::Duration;
use ports::{Clock, SystemClock};
use sea_orm::ConnectionTrait;
use serde_json::json;

use crate::{TestUser, spawn_app};

fn org(user: &TestUser) -> String {
    user.membership.organization_id.as_uuid().to_string()
}

#[tokio::test]
async fn endpoint_credentials_are_write_only_and_need_a_fresh_login() {
    let app = spawn_app().await;
    let owner = app.owner("acme").await;
    let jwt = app.jwt(&owner);
    let now = SystemClock.now();
    let stale = app.jwt_at(&owner, now, now - Duration::hours(1));
    let token = "bearer-0123456789-abcdefghij-SECRET";
    let client_secret = "client-secret-0123456789-XYZ";
    app.secret(token);
    app.secret(client_secret);

    let body = json!({
        "name": "chatbot", "url": "https://bot.example/v1/chat", "method": "POST",
        "request_headers": {"X-Env": "staging"},
        "request_mapping": {"input": "{{ prompt }}"},
        "auth_type": "bearer_token", "auth_token": token,
    });
    let refused = app
        .call("POST", "/api/v1/endpoints", Some(&stale), Some(&body))
        .await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.problem_code(), "insufficient_user_authentication");
    assert_eq!(app.count("SELECT count(*) FROM endpoints").await, 0);

    let created = app
        .call("POST", "/api/v1/endpoints", Some(&jwt), Some(&body))
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    let e = created.json();
    assert_eq!(e["has_auth_token"], true);
    assert_eq!(e["auth_token_hint"], "bea...CRET");
    assert_eq!(e["has_client_secret"], false);
    assert_eq!(e["request_headers"]["x-env"], "staging");
    assert_eq!(e["request_mapping"]["input"], "{{ prompt }}");
    for field in ["auth_token", "client_secret", "last_token"] {
        assert!(e.get(field).is_none(), "{field} in {e}");
    }
    let id = e["id"].as_str().unwrap().to_owned();

    // Changing other fields needs no fresh login; writing or clearing a secret does.
    let path = format!("/api/v1/endpoints/{id}");
    let renamed = app
        .call(
            "PATCH",
            &path,
            Some(&stale),
            Some(&json!({"name": "bot", "description": "d"})),
        )
        .await;
    assert_eq!(renamed.status, 200);
    assert_eq!(renamed.json()["has_auth_token"], true, "kept");
    for change in [
        json!({"auth_token": null}),
        json!({"client_secret": client_secret}),
    ] {
        let reply = app.call("PATCH", &path, Some(&stale), Some(&change)).await;
        assert_eq!(reply.status, 401, "{change}");
    }
    let changed = app
        .call(
            "PATCH",
            &path,
            Some(&jwt),
            Some(&json!({"auth_token": null, "client_secret": client_secret,
                         "auth_type": "client_credentials", "client_id": "bot",
                         "token_url": "https://login.example/token"})),
        )
        .await;
    assert_eq!(changed.status, 200, "{changed:?}");
    let e = changed.json();
    assert_eq!(
        (e["has_auth_token"].clone(), e["has_client_secret"].clone()),
        (json!(false), json!(true))
    );

    let listed = app
        .call("GET", "/api/v1/endpoints?sort_by=name", Some(&jwt), None)
        .await;
    assert_eq!(listed.header("x-total-count"), Some("1"));
    let audit = format!(
        "SELECT count(*) FROM audit_events WHERE organization_id = '{}' AND action = 'secret.written'",
        org(&owner)
    );
    // auth_token at creation; auth_token cleared and client_secret set by the change.
    assert_eq!(app.count(&audit).await, 3);
    // The secrets are in the database, sealed (the adapters' tests open them).
    assert_eq!(
        app.count("SELECT count(*) FROM endpoints WHERE client_secret LIKE 'gAAAAA%'")
            .await,
        1
    );

    // Bad input names the field and keeps nothing.
    for (body, field) in [
        (json!({"name": "x", "url": "ftp://x.example"}), "url"),
        (
            json!({"name": "x", "url": "https://x.example", "method": "CONNECT"}),
            "method",
        ),
        (
            json!({"name": "x", "url": "https://x.example", "auth_type": "magic"}),
            "auth_type",
        ),
        (
            json!({"name": "x", "url": "https://x.example", "request_headers": {"X A": "b"}}),
            "request_headers",
        ),
        (
            json!({"name": "x", "url": "https://x.example", "request_headers": {"X-A": "b\r\nHost: evil"}}),
            "request_headers",
        ),
        (
            json!({"name": "x", "url": "https://x.example", "request_mapping": [1]}),
            "request_mapping",
        ),
        (
            json!({"name": "x", "url": "https://x.example", "auth_token": " "}),
            "auth_token",
        ),
        (
            json!({"name": "x", "url": "https://x.example", "project_id": uuid::Uuid::now_v7()}),
            "project",
        ),
    ] {
        let reply = app
            .call("POST", "/api/v1/endpoints", Some(&jwt), Some(&body))
            .await;
        assert_eq!(reply.status, 400, "{body}: {reply:?}");
        assert_eq!(reply.json()["field"], field, "{body}");
    }
    assert_eq!(app.count("SELECT count(*) FROM endpoints").await, 1);

    let deleted = app.call("DELETE", &path, Some(&jwt), None).await;
    assert_eq!(deleted.status, 204);
    assert_eq!(app.call("GET", &path, Some(&jwt), None).await.status, 404);
}

#[tokio::test]
async fn model_keys_are_write_only_and_need_a_fresh_login() {
    let app = spawn_app().await;
    let owner = app.owner("acme").await;
    let jwt = app.jwt(&owner);
    let key = "sk-proj-0123456789abcdefghijklmnop";
    app.secret(key);
    // An API token may not write a key at all (and is never fresh).
    let token = app.create_api_token(&jwt, "ci").await.json()["token_value"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = json!({"name": "GPT", "model_name": "gpt-4o", "provider": "openai", "key": key});
    let refused = app
        .call("POST", "/api/v1/models", Some(&token), Some(&body))
        .await;
    assert_eq!(refused.status, 403);
    let without_key = app
        .call(
            "POST",
            "/api/v1/models",
            Some(&token),
            Some(&json!({"name": "Local", "model_name": "llama", "provider": "ollama"})),
        )
        .await;
    assert_eq!(
        without_key.status, 201,
        "content writes work with an API token"
    );
    let created = app
        .call("POST", "/api/v1/models", Some(&jwt), Some(&body))
        .await;
    assert_eq!(created.status, 201);
    let m = created.json();
    assert_eq!(
        (m["has_key"].clone(), m["key_hint"].clone()),
        (json!(true), json!("sk-...mnop"))
    );
    assert!(m.get("key").is_none());
    let path = format!("/api/v1/models/{}", m["id"].as_str().unwrap());
    let cleared = app
        .call("PATCH", &path, Some(&jwt), Some(&json!({"key": null})))
        .await;
    assert_eq!(cleared.json()["has_key"], false);
    let list = app
        .call(
            "GET",
            "/api/v1/models?sort_by=name&sort_order=desc",
            Some(&jwt),
            None,
        )
        .await;
    let names: Vec<_> = list.pluck("name");
    assert_eq!(names, [json!("Local"), json!("GPT")]);
}

#[tokio::test]
async fn projects_are_listed_sorted_and_paged_and_every_change_is_audited() {
    let app = spawn_app().await;
    let owner = app.owner("acme").await;
    let jwt = app.jwt(&owner);
    for name in ["delta", "alpha", "charlie", "bravo"] {
        let reply = app
            .call(
                "POST",
                "/api/v1/projects",
                Some(&jwt),
                Some(&json!({"name": name})),
            )
            .await;
        assert_eq!(reply.status, 201);
        assert_eq!(reply.json()["created_by"], json!(owner.id.as_uuid()));
    }
    let page = app
        .call(
            "GET",
            "/api/v1/projects?sort_by=name&skip=1&limit=2",
            Some(&jwt),
            None,
        )
        .await;
    assert_eq!(page.header("x-total-count"), Some("4"));
    let names: Vec<_> = page.pluck("name");
    assert_eq!(names, [json!("bravo"), json!("charlie")]);

    let id = page.json()[0]["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/projects/{id}");
    let patched = app
        .call(
            "PATCH",
            &path,
            Some(&jwt),
            Some(&json!({"description": "b", "is_active": false})),
        )
        .await;
    assert_eq!(
        (
            patched.json()["description"].clone(),
            patched.json()["is_active"].clone()
        ),
        (json!("b"), json!(false))
    );
    let cleared = app
        .call(
            "PATCH",
            &path,
            Some(&jwt),
            Some(&json!({"description": null})),
        )
        .await;
    assert_eq!(cleared.json()["description"], json!(null));
    let refused = app
        .call("PATCH", &path, Some(&jwt), Some(&json!({"name": null})))
        .await;
    assert_eq!(
        (refused.status, refused.json()["field"].clone()),
        (400, json!("name"))
    );
    assert_eq!(
        app.call("DELETE", &path, Some(&jwt), None).await.status,
        204
    );
    assert_eq!(
        app.call("DELETE", &path, Some(&jwt), None).await.status,
        404
    );

    let actions = |action: &str| {
        format!(
            "SELECT count(*) FROM audit_events WHERE organization_id = '{}' AND action = '{action}' \
             AND actor_user_id = '{}' AND client_ip = '127.0.0.1' AND request_id IS NOT NULL",
            org(&owner),
            owner.id.as_uuid()
        )
    };
    assert_eq!(app.count(&actions("project.created")).await, 4);
    assert_eq!(
        app.count(&actions("project.updated")).await,
        2,
        "the refused change is not"
    );
    assert_eq!(app.count(&actions("project.deleted")).await, 1);
}

#[tokio::test]
async fn an_action_whose_audit_event_cannot_be_written_is_not_kept() {
    let app = spawn_app().await;
    let owner = app.owner("acme").await;
    let jwt = app.jwt(&owner);
    let admin = app.admin_pool().await;
    // The owner role makes the audit log refuse one kind of event.
    admin
        .execute_unprepared(
            "CREATE FUNCTION refuse_project_events() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 IF NEW.action = 'project.created' THEN
                     RAISE EXCEPTION 'audit log unavailable';
                 END IF;
                 RETURN NEW;
             END $$;
             CREATE TRIGGER refuse_project_events BEFORE INSERT ON audit_events
             FOR EACH ROW EXECUTE FUNCTION refuse_project_events();",
        )
        .await
        .unwrap();
    let reply = app
        .call(
            "POST",
            "/api/v1/projects",
            Some(&jwt),
            Some(&json!({"name": "ghost"})),
        )
        .await;
    assert_eq!(reply.status, 500);
    assert_eq!(reply.problem_code(), "internal_error");
    assert!(
        !reply.text.contains("audit log unavailable"),
        "{}",
        reply.text
    );
    assert_eq!(
        app.count("SELECT count(*) FROM projects").await,
        0,
        "both or neither"
    );
    // Other actions go on.
    let token = app.create_api_token(&jwt, "ci").await;
    assert_eq!(token.status, 201);
}
