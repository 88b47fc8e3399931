//! The cross-tenant matrix: every route of the OpenAPI document that takes an id answers 404
//! to another organization's owner for this organization's resource, and changes nothing.
//! Driven by the document, so a new route cannot be left out: a path parameter the matrix
//! does not know fails the test.

use std::collections::BTreeMap;

use domain::Role;
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};

use crate::{TestApp, TestUser, spawn_app};

/// Bodies for operations whose body has required fields; every other one gets `{}`.
fn body_for(method: &str, path: &str) -> Value {
    match (method, path) {
        ("patch", "/api/v1/users/{user_id}") => json!({"role": "member"}),
        ("patch", "/api/v1/tokens/{token_id}") => json!({"name": "renamed"}),
        _ => json!({}),
    }
}

/// Everything of `org` in every tenant table, as JSON text.
async fn snapshot(app: &TestApp, org: &TestUser) -> BTreeMap<&'static str, String> {
    let org = org.membership.organization_id.as_uuid().to_string();
    let admin = app.db.admin_pool().await;
    let mut tables = BTreeMap::new();
    for (table, filter) in [
        ("organizations", "id"),
        ("users", "organization_id"),
        ("projects", "organization_id"),
        ("endpoints", "organization_id"),
        ("models", "organization_id"),
        ("api_tokens", "organization_id"),
        ("audit_events", "organization_id"),
    ] {
        let row = admin
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                format!(
                    "SELECT coalesce(json_agg(t ORDER BY t.id)::text, '[]') AS rows \
                     FROM {table} t WHERE {filter} = '{org}'"
                ),
            ))
            .await
            .unwrap()
            .unwrap();
        tables.insert(table, row.try_get::<String>("", "rows").unwrap());
    }
    tables
}

#[tokio::test]
async fn another_organizations_resources_are_404_on_every_route_that_takes_an_id() {
    let app = spawn_app().await;
    let a = app.owner("a").await;
    let b = app.owner("b").await;
    let a_jwt = app.jwt(&a);
    let secret = "sk-matrix-endpoint-secret-0123456789";
    let key = "sk-matrix-model-key-0123456789";
    app.secret(secret);
    app.secret(key);

    let create = |path: &'static str, body: Value| {
        let app = &app;
        let a_jwt = a_jwt.clone();
        async move {
            let reply = app.call("POST", path, Some(&a_jwt), Some(&body)).await;
            assert_eq!(reply.status, 201, "{path}: {reply:?}");
            reply.json()["id"].as_str().unwrap().to_owned()
        }
    };
    let project = create("/api/v1/projects", json!({"name": "A's project"})).await;
    let endpoint = create(
        "/api/v1/endpoints",
        json!({"name": "A's endpoint", "url": "https://a.example/chat",
               "project_id": project, "auth_type": "bearer_token", "auth_token": secret}),
    )
    .await;
    let model = create(
        "/api/v1/models",
        json!({"name": "A's model", "model_name": "gpt-4o", "provider": "openai", "key": key}),
    )
    .await;
    let token_reply = app
        .call(
            "POST",
            "/api/v1/tokens",
            Some(&a_jwt),
            Some(&json!({"name": "A's token"})),
        )
        .await;
    let token = token_reply.json()["id"].as_str().unwrap().to_owned();
    let token_value = token_reply.json()["token_value"]
        .as_str()
        .unwrap()
        .to_owned();
    app.secret(&token_value);
    let member = app.member(&a, Role::Member).await;
    let ids: BTreeMap<&str, String> = BTreeMap::from([
        ("project_id", project),
        ("endpoint_id", endpoint),
        ("model_id", model),
        ("token_id", token),
        ("user_id", member.id.as_uuid().to_string()),
    ]);

    let before = snapshot(&app, &a).await;
    let spec = app.call("GET", "/openapi.json", None, None).await.json();
    let b_jwt = app.jwt(&b);
    let mut checked = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        let params: Vec<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        if params.is_empty() {
            continue;
        }
        for (method, _) in item.as_object().unwrap() {
            let mut url = path.clone();
            for param in &params {
                let id = ids.get(param).unwrap_or_else(|| {
                    panic!("{method} {path} takes {{{param}}}: add a resource of that kind to the matrix")
                });
                url = url.replace(&format!("{{{param}}}"), id);
            }
            let body = body_for(method, path);
            let reply = app
                .call(&method.to_uppercase(), &url, Some(&b_jwt), Some(&body))
                .await;
            assert_eq!(reply.status, 404, "{method} {path}: {reply:?}");
            assert_eq!(reply.problem_code(), "not_found", "{method} {path}");
            checked.push(format!("{method} {path}"));
        }
    }
    // Every kind of resource, read, changed and deleted.
    assert!(checked.len() >= 16, "{checked:#?}");
    for kind in ["projects", "endpoints", "models", "tokens", "users"] {
        for method in ["get", "patch", "delete"] {
            assert!(
                checked
                    .iter()
                    .any(|c| c.starts_with(method) && c.contains(kind)),
                "{method} {kind} in {checked:#?}"
            );
        }
    }
    assert_eq!(snapshot(&app, &a).await, before, "A's data is unchanged");

    // A itself still reaches all of it.
    for (param, path) in [
        ("project_id", "/api/v1/projects/"),
        ("endpoint_id", "/api/v1/endpoints/"),
        ("model_id", "/api/v1/models/"),
        ("token_id", "/api/v1/tokens/"),
        ("user_id", "/api/v1/users/"),
    ] {
        let reply = app
            .call("GET", &format!("{path}{}", ids[param]), Some(&a_jwt), None)
            .await;
        assert_eq!(reply.status, 200, "{path}");
    }
}
