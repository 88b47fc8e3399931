//! The audit log over HTTP: events with who, what, where from and the request id; filters;
//! and tampering in the database found by the verify route and the operator command.

use domain::Role;
use sea_orm::ConnectionTrait;
use serde_json::json;

use crate::{serve_args, spawn_app};

#[tokio::test]
async fn events_carry_actor_target_address_and_request_id_and_filter() {
    let app = spawn_app().await;
    let owner = app.owner("acme").await;
    let member = app.member(&owner, Role::Member).await;
    let jwt = app.jwt(&owner);
    let created = app.create_api_token(&jwt, "ci").await;
    let request_id = created.header("x-request-id").unwrap().to_owned();
    let token_id = created.json()["id"].as_str().unwrap().to_owned();
    app.call(
        "POST",
        "/api/v1/projects",
        Some(&app.jwt(&member)),
        Some(&json!({"name": "p"})),
    )
    .await;

    let reply = app
        .call(
            "GET",
            "/api/v1/audit-events?action=token.created",
            Some(&jwt),
            None,
        )
        .await;
    assert_eq!(reply.header("x-total-count"), Some("1"));
    let event = &reply.json()[0];
    assert_eq!(event["actor_id"], json!(owner.id.as_uuid()));
    assert_eq!(event["target_type"], "api_token");
    assert_eq!(event["target_id"], token_id.as_str());
    assert_eq!(event["outcome"], "success");
    assert_eq!(event["client_ip"], "127.0.0.1");
    assert_eq!(event["request_id"], request_id.as_str());
    assert_eq!(event["hash"].as_str().unwrap().len(), 64);

    let by_member = app
        .call(
            "GET",
            &format!("/api/v1/audit-events?actor_id={}", member.id.as_uuid()),
            Some(&jwt),
            None,
        )
        .await;
    let actions: Vec<_> = by_member.pluck("action");
    assert_eq!(actions, [json!("project.created")]);
    let future = app
        .call(
            "GET",
            "/api/v1/audit-events?since=2999-01-01T00:00:00Z",
            Some(&jwt),
            None,
        )
        .await;
    assert_eq!(future.header("x-total-count"), Some("0"));
    let all = app
        .call("GET", "/api/v1/audit-events?limit=100", Some(&jwt), None)
        .await;
    let seqs: Vec<u64> = all
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    let mut expected = seqs.clone();
    expected.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(seqs, expected, "newest first");
    for (query, field) in [("action=token.stolen", "action"), ("limit=101", "limit")] {
        let reply = app
            .call(
                "GET",
                &format!("/api/v1/audit-events?{query}"),
                Some(&jwt),
                None,
            )
            .await;
        assert_eq!(
            (reply.status, reply.json()["field"].clone()),
            (400, json!(field)),
            "{query}"
        );
    }
    let reply = app
        .call(
            "GET",
            "/api/v1/audit-events?since=yesterday",
            Some(&jwt),
            None,
        )
        .await;
    assert_eq!(reply.status, 400);
}

#[tokio::test]
async fn tampering_is_named_by_the_verify_route_and_the_operator_command() {
    let app = spawn_app().await;
    let owner = app.owner("acme").await;
    let other = app.owner("globex").await;
    let jwt = app.jwt(&owner);
    for name in ["a", "b", "c"] {
        app.call(
            "POST",
            "/api/v1/projects",
            Some(&jwt),
            Some(&json!({"name": name})),
        )
        .await;
    }
    // Refused credentials land in the system chain.
    for _ in 0..2 {
        app.call("GET", "/api/v1/me", Some("not-a-token"), None)
            .await;
    }
    let verify = app
        .call("GET", "/api/v1/audit-events/verify", Some(&jwt), None)
        .await;
    assert_eq!(
        verify.json(),
        json!({"intact": true, "events": 4, "first_broken_seq": null})
    );
    let args = serve_args(server::config::Profile::Test, app.db.app_url());
    let summary = server::audit_verify(&args).await.unwrap();
    assert!(summary.contains("3 chains"), "{summary}");

    // The owner role edits an event of the first organization.
    let admin = app.db.admin_pool().await;
    admin
        .execute_unprepared(&format!(
            "UPDATE audit_events SET actor_user_id = NULL WHERE organization_id = '{}' AND seq = 3",
            owner.membership.organization_id.as_uuid()
        ))
        .await
        .unwrap();
    let verify = app
        .call("GET", "/api/v1/audit-events/verify", Some(&jwt), None)
        .await;
    assert_eq!(
        verify.json(),
        json!({"intact": false, "events": 2, "first_broken_seq": 3})
    );
    let other_verify = app
        .call(
            "GET",
            "/api/v1/audit-events/verify",
            Some(&app.jwt(&other)),
            None,
        )
        .await;
    assert_eq!(other_verify.json()["intact"], true);
    let err = server::audit_verify(&args).await.unwrap_err().to_string();
    assert!(
        err.contains(&format!(
            "organization {} at event 3",
            owner.membership.organization_id.as_uuid()
        )),
        "{err}"
    );
    assert!(
        !err.contains(&other.membership.organization_id.as_uuid().to_string()),
        "{err}"
    );

    // And a deleted event of the system chain.
    admin
        .execute_unprepared("DELETE FROM audit_events WHERE organization_id IS NULL AND seq = 1")
        .await
        .unwrap();
    let err = server::audit_verify(&args).await.unwrap_err().to_string();
    assert!(err.contains("the system chain at event 1"), "{err}");
}
