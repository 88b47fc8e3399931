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
    let admin = app.admin_pool().await;
    let mut tables = BTreeMap::new();
    for (table, filter) in [
        ("organizations", "id"),
        ("users", "organization_id"),
        ("projects", "organization_id"),
        ("endpoints", "organization_id"),
        ("models", "organization_id"),
        ("api_tokens", "organization_id"),
        ("invitations", "organization_id"),
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
    let token_reply = app.create_api_token(&a_jwt, "A's token").await;
    let token = token_reply.json()["id"].as_str().unwrap().to_owned();
    let member = app.member(&a, Role::Member).await;
    // Pending, and addressed to nobody of B: B can neither withdraw nor answer it.
    let invitation = create("/api/v1/invitations", json!({"email": "invited@a.example"})).await;
    let ids: BTreeMap<&str, String> = BTreeMap::from([
        ("invitation_id", invitation),
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

/// An owner's app, a fresh access token of theirs and the id of their one project.
async fn owner_with_a_project() -> (TestApp, String, String) {
    let app = spawn_app().await;
    let owner = app.owner("a").await;
    let jwt = app.jwt(&owner);
    let project = app
        .call(
            "POST",
            "/api/v1/projects",
            Some(&jwt),
            Some(&json!({"name": "p"})),
        )
        .await
        .json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    (app, jwt, project)
}

/// A path of the document with every parameter replaced by `id`.
fn concrete(path: &str, id: &str) -> String {
    path.split('/')
        .map(|s| if s.starts_with('{') { id } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

/// Every operation of the document, fed malformed bodies and query strings by an owner with
/// a fresh login: always a 4xx problem+json, never a 500, never parser text.
#[tokio::test]
async fn no_route_answers_bad_input_with_a_server_error() {
    let (app, jwt, project) = owner_with_a_project().await;
    let spec = app.call("GET", "/openapi.json", None, None).await.json();
    let bodies: [(&str, Vec<u8>); 7] = [
        ("truncated", b"{\"name\": ".to_vec()),
        ("array", b"[]".to_vec()),
        ("null", b"null".to_vec()),
        (
            "wrong types",
            br#"{"name": 42, "email": [], "role": {}, "url": 1, "key": false}"#.to_vec(),
        ),
        ("unknown field", br#"{"zzz_unknown": true}"#.to_vec()),
        (
            "deep nesting",
            format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes(),
        ),
        ("not utf-8", vec![b'{', 0xff, 0xfe, b'}']),
    ];
    let mut operations = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        if !path.starts_with("/api/") {
            continue;
        }
        let url = concrete(path, &project);
        for (method, operation) in item.as_object().unwrap() {
            operations += 1;
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let has_body = operation.get("requestBody").is_some();
            let mut cases = Vec::new();
            if has_body {
                for (case, body) in &bodies {
                    cases.push((
                        *case,
                        app.client
                            .request(method.clone(), app.url(&url))
                            .bearer_auth(&jwt)
                            .header("content-type", "application/json")
                            .body(body.clone()),
                    ));
                }
            }
            // Lists take query strings; a GET is safe to repeat on every route.
            if method == reqwest::Method::GET {
                cases.push((
                    "bad query",
                    app.client
                        .request(
                            method.clone(),
                            app.url(&format!("{url}?limit=-1&skip=x&sort_by=%00")),
                        )
                        .bearer_auth(&jwt),
                ));
            }
            for (case, request) in cases {
                let reply = app.send(request).await;
                assert!(reply.status < 500, "{method} {path} {case}: {reply:?}");
                if reply.status >= 400 {
                    let code = reply.problem_code();
                    assert!(!code.is_empty(), "{method} {path} {case}");
                    for internal in ["serde", "line 1", "column", "expected", "sqlx"] {
                        assert!(
                            !reply.text.contains(internal),
                            "{method} {path} {case}: {}",
                            reply.text
                        );
                    }
                }
            }
        }
    }
    assert!(operations >= 30, "{operations}");
}

/// A value of the JSON type `schema` names that hides a NUL character, if the type can.
fn with_nul(schema: &Value) -> Option<Value> {
    let kind = schema["type"]
        .as_str()
        .or_else(|| schema["type"].as_array()?.iter().find_map(|t| t.as_str()));
    match kind {
        Some("string") => Some(json!("a\u{0}b")),
        Some("array") => Some(json!(["a\u{0}b"])),
        Some("object") => Some(json!({"a\u{0}b": 1})),
        _ => None,
    }
}

/// Every field of every request body of the document, and every query parameter, given a NUL
/// character: a 400 that names the field, never a 500 (PostgreSQL stores no NUL in `text` or
/// `jsonb`).
#[tokio::test]
async fn a_nul_character_in_any_field_is_a_400_naming_it() {
    let (app, jwt, project) = owner_with_a_project().await;
    // The schemathesis find: a NUL in a key of an endpoint's JSON template.
    let reply = app
        .call(
            "POST",
            "/api/v1/endpoints",
            Some(&jwt),
            Some(&json!({"name": "e", "url": "https://bot.example/chat",
                         "request_mapping": {"a\u{0}b": 1}})),
        )
        .await;
    assert_eq!(
        (reply.status, reply.problem_code().as_str()),
        (400, "invalid_request"),
        "{reply:?}"
    );
    assert_eq!(reply.json()["field"], "request_mapping");

    let spec = app.call("GET", "/openapi.json", None, None).await.json();
    let resolve = |schema: &Value| -> Value {
        match schema["$ref"].as_str() {
            Some(r) => {
                let name = r.rsplit('/').next().unwrap();
                spec["components"]["schemas"][name].clone()
            }
            None => schema.clone(),
        }
    };
    let (mut fields, mut parameters) = (0, 0);
    for (path, item) in spec["paths"].as_object().unwrap() {
        let url = concrete(path, &project);
        for (method, operation) in item.as_object().unwrap() {
            let method = method.to_uppercase();
            if let Some(body) =
                operation["requestBody"]["content"]["application/json"]["schema"].as_object()
            {
                let schema = resolve(&Value::Object(body.clone()));
                let properties = schema["properties"]
                    .as_object()
                    .cloned()
                    .unwrap_or_default();
                for (name, property) in &properties {
                    let Some(value) = with_nul(&resolve(property)) else {
                        continue;
                    };
                    let reply = app
                        .call(&method, &url, Some(&jwt), Some(&json!({ name: value })))
                        .await;
                    assert_eq!(reply.status, 400, "{method} {path} {name}: {reply:?}");
                    assert_eq!(reply.json()["field"], name.as_str(), "{method} {path}");
                    fields += 1;
                }
            }
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                if parameter["in"] != "query" {
                    continue;
                }
                let name = parameter["name"].as_str().unwrap();
                let reply = app
                    .call(&method, &format!("{url}?{name}=a%00b"), Some(&jwt), None)
                    .await;
                assert_eq!(reply.status, 400, "{method} {path} ?{name}: {reply:?}");
                assert_eq!(reply.json()["field"], name, "{method} {path}");
                parameters += 1;
            }
        }
    }
    assert!(fields >= 30, "{fields} body fields tried");
    assert!(parameters >= 8, "{parameters} query parameters tried");
}
