//! Invitations per organization (A6): what an organization learns by inviting is the same
//! whether or not the address belongs to anyone elsewhere, and a person in another
//! organization is moved by no invitation; they may decline it.

use domain::Role;
use serde_json::{Value, json};

use crate::{TestApp, TestUser, spawn_app};

async fn email_of(app: &TestApp, user: &TestUser) -> String {
    app.strings(&format!(
        "SELECT email FROM users WHERE id = '{}'",
        user.id.as_uuid()
    ))
    .await
    .remove(0)
}

/// The reply's fields apart from the ones that differ by nature (id, address, times).
fn shape(reply: &crate::Reply) -> (u16, Vec<String>, Value, Value) {
    let body = reply.json();
    let mut keys: Vec<String> = body.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    (
        reply.status,
        keys,
        body["role"].clone(),
        body["organization_id"].clone(),
    )
}

#[tokio::test]
async fn an_invitation_answers_the_same_whether_the_address_exists_elsewhere() {
    let app = spawn_app().await;
    let a = app.owner("a").await;
    let a_member = app.member(&a, Role::Member).await;
    let b = app.owner("b").await;
    let b_jwt = app.jwt(&b);
    let invite = |email: String| {
        let (app, b_jwt) = (&app, b_jwt.clone());
        async move {
            app.call(
                "POST",
                "/api/v1/invitations",
                Some(&b_jwt),
                Some(&json!({"email": email, "role": "admin"})),
            )
            .await
        }
    };
    // The attack: B probes addresses that are A's owner's, A's member's, and nobody's.
    let unknown = invite("nobody-anywhere@example.org".to_owned()).await;
    assert_eq!(unknown.status, 201, "{unknown:?}");
    let mut replies = Vec::new();
    for user in [&a, &a_member] {
        let reply = invite(email_of(&app, user).await).await;
        assert_eq!(shape(&reply), shape(&unknown), "{reply:?}");
        replies.push(reply);
    }
    // A's people stay A's: nothing of theirs changed, and B's list shows only B's invitations.
    for user in [&a, &a_member] {
        let me = app
            .call("GET", "/api/v1/me", Some(&app.jwt(user)), None)
            .await;
        assert_eq!(
            me.json()["organization_id"],
            json!(a.membership.organization_id.as_uuid())
        );
    }
    let listed = app
        .call("GET", "/api/v1/invitations", Some(&b_jwt), None)
        .await;
    assert_eq!(listed.header("x-total-count"), Some("3"));

    // A's member sees B's invitation (their address is verified) but accepting it moves
    // nobody: a user belongs to one organization. Declining removes it, and B's log says so.
    let member_jwt = app.jwt(&a_member);
    let theirs = app
        .call("GET", "/api/v1/me/invitations", Some(&member_jwt), None)
        .await;
    assert_eq!(theirs.pluck("id"), [replies[1].json()["id"].clone()]);
    assert_eq!(theirs.json()[0]["role"], "admin");
    let path = |verb: &str| {
        format!(
            "/api/v1/me/invitations/{}/{verb}",
            replies[1].json()["id"].as_str().unwrap()
        )
    };
    let accepted = app
        .call("POST", &path("accept"), Some(&member_jwt), None)
        .await;
    assert_eq!(accepted.status, 409, "{accepted:?}");
    let declined = app
        .call("POST", &path("decline"), Some(&member_jwt), None)
        .await;
    assert_eq!(declined.status, 204, "{declined:?}");
    assert_eq!(
        app.strings(&format!(
            "SELECT action FROM audit_events WHERE organization_id = '{}' \
             AND (action LIKE 'invitation.%' OR action = 'user.invited') ORDER BY seq",
            b.membership.organization_id.as_uuid()
        ))
        .await,
        [
            "user.invited",
            "user.invited",
            "user.invited",
            "invitation.declined"
        ]
    );
    // Another person's invitation is not theirs to answer: 404, as for one that never was.
    let others = format!(
        "/api/v1/me/invitations/{}/decline",
        replies[0].json()["id"].as_str().unwrap()
    );
    assert_eq!(
        app.call("POST", &others, Some(&member_jwt), None)
            .await
            .status,
        404
    );
}

/// Migrates back to the schema before invitations (and whatever came after it).
async fn before_invitations(owner_db: &sea_orm::DatabaseConnection) {
    use migration::MigratorTrait;
    let migrations = migration::Migrator::migrations();
    let invitations = migrations
        .iter()
        .position(|m| m.name() == "m20261207_000001_invitations")
        .unwrap();
    let steps = u32::try_from(migrations.len() - invitations).unwrap();
    migration::Migrator::down(owner_db, Some(steps))
        .await
        .unwrap();
}

/// The `user.invited` events of the earlier schema, by `inviter`, one for each invited row
/// (its target), as raw rows at the end of the organization's chain (their links are not the
/// point here).
fn invited_events(org: &str, inviter: &uuid::Uuid, invited: &[uuid::Uuid]) -> String {
    invited
        .iter()
        .enumerate()
        .map(|(n, target)| {
            format!(
                "INSERT INTO audit_events (id, organization_id, seq, occurred_at, action, \
                 outcome, actor_user_id, target_type, target_id, prev_hash, hash, hash_version) \
                 VALUES (gen_random_uuid(), '{org}', {}, now(), 'user.invited', 'success', \
                 '{inviter}', 'user', '{target}', sha256(''::bytea), sha256('x'::bytea), 2);",
                100_000 + n
            )
        })
        .collect()
}

/// The schema before invitations kept an invited person as a user row without a subject,
/// already in the organization. The migration carries each over as an invitation (the role
/// kept, 14 days to answer) and takes the placeholder out of the organization: removed, or
/// kept as a departed user where something refers to it. The invited person then joins by
/// accepting, as anyone invited now.
#[tokio::test]
async fn invited_rows_of_the_earlier_schema_become_invitations() {
    use migration::MigratorTrait;
    use ports::{IdentityDirectory, UnitOfWorkFactory};

    let app = spawn_app().await;
    let a = app.owner("a").await;
    let org = a.membership.organization_id.as_uuid().to_string();
    let owner_db = sea_orm::Database::connect(app.db.owner_url())
        .await
        .unwrap();
    before_invitations(&owner_db).await;
    let admin = app.admin_pool().await;
    let (plain, kept) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    sea_orm::ConnectionTrait::execute_unprepared(
        &admin,
        &format!(
            "INSERT INTO users (id, email, is_active, is_verified, organization_id, role, \
             settings, created_at, updated_at) VALUES \
             ('{plain}', 'old@example.org', true, false, '{org}', 'admin', '{{}}', now(), now()), \
             ('{kept}', 'kept@example.org', true, false, '{org}', 'member', '{{}}', now(), now());
             INSERT INTO projects (id, organization_id, name, owner_id, created_at, updated_at) \
             VALUES (gen_random_uuid(), '{org}', 'owned by an invitee', '{kept}', now(), now());
             {}",
            invited_events(&org, a.id.as_uuid(), &[plain, kept])
        ),
    )
    .await
    .unwrap();
    migration::Migrator::up(&owner_db, None).await.unwrap();

    assert_eq!(
        app.strings(&format!(
            "SELECT concat_ws(' ', email, role, (expires_at > now() + interval '13 days')::text) \
             FROM invitations WHERE organization_id = '{org}' ORDER BY email"
        ))
        .await,
        ["kept@example.org member true", "old@example.org admin true"]
    );
    assert_eq!(
        app.strings(&format!(
            "SELECT concat_ws(' ', email, coalesce(organization_id::text, '-'), \
             left_organization_id::text) FROM users WHERE id IN ('{plain}', '{kept}')"
        ))
        .await,
        [format!("kept@example.org - {org}")],
        "the placeholder a project refers to stays, out of the organization; the other is gone"
    );
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM invitations WHERE organization_id = '{org}' \
             AND invited_by = '{}'",
            a.id.as_uuid()
        ))
        .await,
        2,
        "the inviter, from the audit log"
    );

    // The invited person signs in (verified) and joins by accepting.
    let user = app
        .store
        .unscoped_sign_in(ports::NewIdentity {
            subject: "idp|old".to_owned(),
            email: domain::Email::new("old@example.org").unwrap(),
            email_verified: true,
            name: None,
        })
        .await
        .unwrap();
    assert!(user.membership.is_none());
    let pending = app
        .store
        .unscoped_invitations_for(user.user_id)
        .await
        .unwrap();
    assert_eq!(pending.len(), 1);
    let joined = app
        .store
        .accept_invitation(
            user.user_id,
            pending[0].id,
            ports::NewAuditEvent::by(Some(user.user_id), domain::AuditAction::InvitationAccepted),
        )
        .await
        .unwrap();
    assert_eq!(
        (joined.organization_id, joined.role),
        (a.membership.organization_id, Role::Admin)
    );
}

/// `who` accepts, through the store, the invitation stored for `email` (found by its id, as
/// a client that learned the id would send it).
async fn accept_invited(
    app: &TestApp,
    who: domain::UserId,
    email: &str,
) -> Result<domain::Membership, ports::InvitationError> {
    use ports::UnitOfWorkFactory;
    let id = app
        .strings(&format!(
            "SELECT id::text FROM invitations WHERE email = '{email}'"
        ))
        .await
        .remove(0);
    app.store
        .accept_invitation(
            who,
            domain::InvitationId::from_uuid(id.parse().unwrap()),
            ports::NewAuditEvent::by(Some(who), domain::AuditAction::InvitationAccepted),
        )
        .await
}

/// A signed-in person with a verified address and no organization.
async fn newcomer(app: &TestApp, email: &str) -> domain::UserId {
    use ports::IdentityDirectory;
    let user = app
        .store
        .unscoped_sign_in(ports::NewIdentity {
            subject: format!("idp|{email}"),
            email: domain::Email::new(email).unwrap(),
            email_verified: true,
            name: None,
        })
        .await
        .unwrap();
    user.user_id
}

/// The attack: an owner about to be demoted or removed first invites their own other
/// account as owner (or admin), to come back in later. An invitation hands out only what
/// its inviter still may: it dies with the inviter's authority.
#[tokio::test]
async fn an_invitation_dies_with_its_inviters_authority() {
    use ports::{IdentityDirectory, InvitationError};

    let app = spawn_app().await;
    let owner = app.owner("a").await;
    let insider = app.member(&owner, Role::Owner).await;
    let invite = |email: &'static str, role: &'static str| {
        let (app, jwt) = (&app, app.jwt(&insider));
        async move {
            let reply = app
                .call(
                    "POST",
                    "/api/v1/invitations",
                    Some(&jwt),
                    Some(&json!({"email": email, "role": role})),
                )
                .await;
            assert_eq!(reply.status, 201, "{reply:?}");
            reply
        }
    };
    invite("alt-owner@evil.example", "owner").await;
    invite("alt-admin@evil.example", "admin").await;
    let insider_path = format!("/api/v1/users/{}", insider.id.as_uuid());
    let visible = |email: &'static str| {
        let app = &app;
        async move {
            let who = newcomer(app, email).await;
            let pending = app.store.unscoped_invitations_for(who).await.unwrap();
            (who, pending)
        }
    };
    let (_, both) = visible("alt-owner@evil.example").await;
    assert_eq!(both.len(), 1, "backed while the insider is an owner");

    // Demoted to admin: the owner's invitation is dead, the admin's stands.
    let demoted = app
        .call(
            "PATCH",
            &insider_path,
            Some(&app.jwt(&owner)),
            Some(&json!({"role": "admin"})),
        )
        .await;
    assert_eq!(demoted.status, 200, "{demoted:?}");
    let (alt_owner, pending) = visible("alt-owner@evil.example").await;
    assert!(pending.is_empty(), "{pending:?}");
    let (_, pending) = visible("alt-admin@evil.example").await;
    assert_eq!(pending.len(), 1);
    assert!(matches!(
        accept_invited(&app, alt_owner, "alt-owner@evil.example").await,
        Err(InvitationError::NotFound)
    ));

    // Removed: nothing they invited is backed any more.
    let removed = app
        .call("DELETE", &insider_path, Some(&app.jwt(&owner)), None)
        .await;
    assert_eq!(removed.status, 204, "{removed:?}");
    let (alt_admin, pending) = visible("alt-admin@evil.example").await;
    assert!(pending.is_empty(), "{pending:?}");
    assert!(matches!(
        accept_invited(&app, alt_admin, "alt-admin@evil.example").await,
        Err(InvitationError::NotFound)
    ));
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM users WHERE organization_id = '{}'",
            owner.membership.organization_id.as_uuid()
        ))
        .await,
        1,
        "only the real owner is left"
    );
}

/// The attack (found by review): an insider invites their own other account as owner before
/// the upgrade, is removed after it, and the carried-over invitation would stand if it named
/// no inviter. The migration takes the inviter from the audit log, so the invitation dies with
/// the insider's standing; an invitation whose inviter is unknown hands out nothing.
#[tokio::test]
async fn an_invitation_carried_over_by_the_migration_dies_with_its_inviter() {
    use migration::MigratorTrait;
    use ports::IdentityDirectory;

    let app = spawn_app().await;
    let owner = app.owner("a").await;
    let insider = app.member(&owner, Role::Owner).await;
    let org = owner.membership.organization_id.as_uuid().to_string();
    let owner_db = sea_orm::Database::connect(app.db.owner_url())
        .await
        .unwrap();
    before_invitations(&owner_db).await;
    let (alt, orphan) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    sea_orm::ConnectionTrait::execute_unprepared(
        &app.db.admin_pool().await,
        &format!(
            "INSERT INTO users (id, email, is_active, is_verified, organization_id, role, \
             settings, created_at, updated_at) VALUES \
             ('{alt}', 'alt-owner@evil.example', true, false, '{org}', 'owner', '{{}}', \
              now(), now()), \
             ('{orphan}', 'orphan@example.org', true, false, '{org}', 'admin', '{{}}', \
              now(), now()); {}",
            invited_events(&org, insider.id.as_uuid(), &[alt])
        ),
    )
    .await
    .unwrap();
    migration::Migrator::up(&owner_db, None).await.unwrap();
    let removed = app
        .call(
            "DELETE",
            &format!("/api/v1/users/{}", insider.id.as_uuid()),
            Some(&app.jwt(&owner)),
            None,
        )
        .await;
    assert_eq!(removed.status, 204, "{removed:?}");
    for email in ["alt-owner@evil.example", "orphan@example.org"] {
        let who = newcomer(&app, email).await;
        assert!(
            app.store
                .unscoped_invitations_for(who)
                .await
                .unwrap()
                .is_empty(),
            "{email}"
        );
        let accepted = accept_invited(&app, who, email).await;
        assert!(
            matches!(accepted, Err(ports::InvitationError::NotFound)),
            "{email}: {accepted:?}"
        );
    }
}
