//! Roles over HTTP: members, admins and owners on every administrative route; nobody raises
//! their own role, only owners touch owners, the last owner stays; refusals are 403 and
//! recorded. Organizations: founding, changing, leaving and deleting.

use chrono::Duration;
use domain::Role;
use ports::{Clock, SystemClock};
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};

use crate::{TestApp, TestUser, spawn_app};

async fn denied_count(app: &TestApp, user: &TestUser) -> i64 {
    app.count(&format!(
        "SELECT count(*) FROM audit_events WHERE action = 'access.denied' \
         AND actor_user_id = '{}' AND outcome = 'denied'",
        user.id.as_uuid()
    ))
    .await
}

async fn assert_forbidden(
    app: &TestApp,
    who: &TestUser,
    method: &str,
    path: &str,
    body: Option<Value>,
) {
    let before = denied_count(app, who).await;
    let reply = app
        .call(method, path, Some(&app.jwt(who)), body.as_ref())
        .await;
    assert_eq!(reply.status, 403, "{method} {path}: {reply:?}");
    assert_eq!(reply.problem_code(), "forbidden");
    assert_eq!(
        denied_count(app, who).await,
        before + 1,
        "{method} {path} recorded"
    );
}

fn role_of(reply: &crate::Reply) -> String {
    reply.json()["role"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn members_admins_and_owners_on_the_administrative_routes() {
    let app = spawn_app().await;
    let owner = app.owner("acme").await;
    let admin = app.member(&owner, Role::Admin).await;
    let member = app.member(&owner, Role::Member).await;
    let other = app.member(&owner, Role::Member).await;
    let user = |u: &TestUser| format!("/api/v1/users/{}", u.id.as_uuid());

    // Members: content yes, administration no.
    assert_eq!(
        app.call("GET", "/api/v1/users", Some(&app.jwt(&member)), None)
            .await
            .status,
        200
    );
    let member_refusals = [
        (
            "POST",
            "/api/v1/invitations".to_owned(),
            Some(json!({"email": "x@example.org"})),
        ),
        ("GET", "/api/v1/invitations".to_owned(), None),
        (
            "PATCH",
            "/api/v1/organizations/current".to_owned(),
            Some(json!({"name": "Mine"})),
        ),
        ("DELETE", "/api/v1/organizations/current".to_owned(), None),
        ("GET", "/api/v1/audit-events".to_owned(), None),
        ("GET", "/api/v1/audit-events/verify".to_owned(), None),
        ("PATCH", user(&other), Some(json!({"role": "member"}))),
        ("PATCH", user(&member), Some(json!({"role": "admin"}))),
        ("DELETE", user(&other), None),
    ];
    for (method, path, body) in member_refusals {
        assert_forbidden(&app, &member, method, &path, body).await;
    }

    // Admins: invite and manage members and admins, never owners, never themselves upward.
    let invited = app
        .call(
            "POST",
            "/api/v1/invitations",
            Some(&app.jwt(&admin)),
            Some(&json!({"email": "new@example.org", "role": "admin"})),
        )
        .await;
    assert_eq!(
        (invited.status, role_of(&invited)),
        (201, "admin".to_owned())
    );
    let again = app
        .call(
            "POST",
            "/api/v1/invitations",
            Some(&app.jwt(&admin)),
            Some(&json!({"email": "new@example.org"})),
        )
        .await;
    assert_eq!(
        (again.status, again.json()["field"].clone()),
        (409, json!("email")),
        "invited by this organization already"
    );
    let listed = app
        .call("GET", "/api/v1/invitations", Some(&app.jwt(&admin)), None)
        .await;
    assert_eq!(listed.pluck("email"), [json!("new@example.org")]);
    let withdrawn = app
        .call(
            "DELETE",
            &format!(
                "/api/v1/invitations/{}",
                invited.json()["id"].as_str().unwrap()
            ),
            Some(&app.jwt(&admin)),
            None,
        )
        .await;
    assert_eq!(withdrawn.status, 204);
    let admin_refusals = [
        (
            "POST",
            "/api/v1/invitations".to_owned(),
            Some(json!({"email": "boss@example.org", "role": "owner"})),
        ),
        ("PATCH", user(&admin), Some(json!({"role": "owner"}))),
        ("PATCH", user(&member), Some(json!({"role": "owner"}))),
        ("PATCH", user(&owner), Some(json!({"role": "member"}))),
        ("DELETE", user(&owner), None),
        ("DELETE", "/api/v1/organizations/current".to_owned(), None),
    ];
    for (method, path, body) in admin_refusals {
        assert_forbidden(&app, &admin, method, &path, body).await;
    }
    let promoted = app
        .call(
            "PATCH",
            &user(&member),
            Some(&app.jwt(&admin)),
            Some(&json!({"role": "admin"})),
        )
        .await;
    assert_eq!(role_of(&promoted), "admin");
    assert_eq!(
        app.call("GET", "/api/v1/audit-events", Some(&app.jwt(&admin)), None)
            .await
            .status,
        200
    );
    let renamed = app
        .call(
            "PATCH",
            "/api/v1/organizations/current",
            Some(&app.jwt(&admin)),
            Some(&json!({"display_name": "ACME Inc."})),
        )
        .await;
    assert_eq!(renamed.json()["display_name"], "ACME Inc.");
    let removed = app
        .call("DELETE", &user(&other), Some(&app.jwt(&admin)), None)
        .await;
    assert_eq!(removed.status, 204);
    assert_eq!(
        app.call("GET", "/api/v1/me", Some(&app.jwt(&other)), None)
            .await
            .status,
        401
    );

    // Owners: everything, except leaving the organization without an owner.
    assert_forbidden(
        &app,
        &owner,
        "PATCH",
        &user(&owner),
        Some(json!({"role": "admin"})),
    )
    .await;
    assert_forbidden(
        &app,
        &owner,
        "POST",
        "/api/v1/organizations/current/leave",
        None,
    )
    .await;
    let crowned = app
        .call(
            "PATCH",
            &user(&admin),
            Some(&app.jwt(&owner)),
            Some(&json!({"role": "owner"})),
        )
        .await;
    assert_eq!(role_of(&crowned), "owner");
    let stepped_down = app
        .call(
            "PATCH",
            &user(&owner),
            Some(&app.jwt(&owner)),
            Some(&json!({"role": "member"})),
        )
        .await;
    assert_eq!(role_of(&stepped_down), "member");
    // The role held now is what counts, whatever the token says.
    assert_forbidden(&app, &owner, "GET", "/api/v1/audit-events", None).await;

    // Role changes and removals need a fresh login.
    let now = SystemClock.now();
    let stale = app.jwt_at(&admin, now, now - Duration::hours(2));
    let reply = app
        .call(
            "PATCH",
            &user(&member),
            Some(&stale),
            Some(&json!({"role": "member"})),
        )
        .await;
    assert_eq!(reply.status, 401);
    let reply = app.call("DELETE", &user(&member), Some(&stale), None).await;
    assert_eq!(reply.status, 401);
    let bad = app
        .call(
            "PATCH",
            &user(&member),
            Some(&app.jwt(&admin)),
            Some(&json!({"role": "god"})),
        )
        .await;
    assert_eq!(
        (bad.status, bad.json()["field"].clone()),
        (400, json!("role"))
    );

    // The changes are in the audit log.
    let events = app
        .call(
            "GET",
            "/api/v1/audit-events?action=user.role_changed",
            Some(&app.jwt(&admin)),
            None,
        )
        .await;
    let reasons: Vec<_> = events.pluck("reason");
    assert_eq!(
        reasons,
        [
            json!("owner->member"),
            json!("admin->owner"),
            json!("member->admin")
        ]
    );
}

#[tokio::test]
async fn organizations_are_founded_left_and_deleted() {
    let app = spawn_app().await;
    // A user with no organization founds one and becomes its owner; a member cannot.
    let owner = app.owner("acme").await;
    let refused = app
        .call(
            "POST",
            "/api/v1/organizations",
            Some(&app.jwt(&owner)),
            Some(&json!({"name": "Second"})),
        )
        .await;
    assert_eq!(refused.status, 409);
    let member = app.member(&owner, Role::Member).await;
    let admin = app.member(&owner, Role::Admin).await;
    let left = app
        .call(
            "POST",
            "/api/v1/organizations/current/leave",
            Some(&app.jwt(&member)),
            None,
        )
        .await;
    assert_eq!(left.status, 204);
    assert_eq!(
        app.call("GET", "/api/v1/me", Some(&app.jwt(&member)), None)
            .await
            .status,
        401
    );

    let current = app
        .call(
            "GET",
            "/api/v1/organizations/current",
            Some(&app.jwt(&owner)),
            None,
        )
        .await;
    assert_eq!(current.json()["owner_id"], json!(owner.id.as_uuid()));

    // Deleting needs the owner and a fresh login, and takes everyone out.
    let now = SystemClock.now();
    let stale = app.jwt_at(&owner, now, now - Duration::hours(1));
    let reply = app
        .call(
            "DELETE",
            "/api/v1/organizations/current",
            Some(&stale),
            None,
        )
        .await;
    assert_eq!(reply.status, 401);
    let owner_jwt = app.jwt(&owner);
    let admin_jwt = app.jwt(&admin);
    let deleted = app
        .call(
            "DELETE",
            "/api/v1/organizations/current",
            Some(&owner_jwt),
            None,
        )
        .await;
    assert_eq!(deleted.status, 204);
    for jwt in [&owner_jwt, &admin_jwt] {
        assert_eq!(
            app.call("GET", "/api/v1/me", Some(jwt), None).await.status,
            401
        );
    }
    // Its log keeps the deletion.
    let admin_pool = app.admin_pool().await;
    let row = admin_pool
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            format!(
                "SELECT count(*) FROM audit_events WHERE organization_id = '{}' \
                 AND action = 'organization.deleted'",
                owner.membership.organization_id.as_uuid()
            ),
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.try_get_by_index::<i64>(0).unwrap(), 1);

    // A user without an organization founds a new one with a token issued before.
    let token_without_org = app
        .authority()
        .issue(
            &crypto::Subject {
                user: *owner.id.as_uuid(),
                organization: None,
                role: None,
                auth_time: now,
                session: None,
            },
            uuid::Uuid::now_v7(),
            now,
        )
        .unwrap();
    let me = app
        .call("GET", "/api/v1/me", Some(&token_without_org), None)
        .await;
    assert_eq!(
        (me.status, me.json()["organization_id"].clone()),
        (200, Value::Null)
    );
    assert_eq!(
        app.call("GET", "/api/v1/projects", Some(&token_without_org), None)
            .await
            .status,
        403,
        "no organization, no content"
    );
    let founded = app
        .call(
            "POST",
            "/api/v1/organizations",
            Some(&token_without_org),
            Some(&json!({"name": "Phoenix", "website": "https://phoenix.example"})),
        )
        .await;
    assert_eq!(founded.status, 201, "{founded:?}");
    let me = app
        .call("GET", "/api/v1/me", Some(&token_without_org), None)
        .await;
    assert_eq!(me.json()["organization_id"], founded.json()["id"]);
    assert_eq!(me.json()["role"], "owner");
    let first = app
        .call(
            "GET",
            "/api/v1/audit-events",
            Some(&token_without_org),
            None,
        )
        .await;
    assert_eq!(first.json()[0]["action"], "organization.created");
}

#[tokio::test]
async fn two_owners_stepping_down_at_once_leave_one_owner() {
    let app = spawn_app().await;
    let first = app.owner("acme").await;
    let second = app.member(&first, Role::Owner).await;
    let path = |u: &TestUser| format!("/api/v1/users/{}", u.id.as_uuid());
    for round in 0..3 {
        let (first_jwt, second_jwt) = (app.jwt(&first), app.jwt(&second));
        let (first_path, second_path) = (path(&first), path(&second));
        let step_down = json!({"role": "admin"});
        let (a, b) = tokio::join!(
            app.call("PATCH", &first_path, Some(&first_jwt), Some(&step_down)),
            app.call("PATCH", &second_path, Some(&second_jwt), Some(&step_down)),
        );
        let mut statuses = [a.status, b.status];
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 403], "round {round}");
        // Whoever stayed owner makes the other one owner again.
        let (owner, other) = if a.status == 403 {
            (&first, &second)
        } else {
            (&second, &first)
        };
        let restored = app
            .call(
                "PATCH",
                &path(other),
                Some(&app.jwt(owner)),
                Some(&json!({"role": "owner"})),
            )
            .await;
        assert_eq!(restored.status, 200, "round {round}");
    }
}
