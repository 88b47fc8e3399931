//! Identity resolution crosses tenants only through the narrow SECURITY DEFINER functions.

use domain::{Email, Role};
use ports::{IdentityDirectory, NewIdentity, StoreError, UnitOfWorkFactory};

use crate::{count, texts, world};

const FUNCTIONS: [&str; 2] = ["app_user_by_subject", "app_pending_invitation"];

#[tokio::test]
async fn the_functions_return_only_what_they_must_and_public_cannot_call_them() {
    let w = world().await;
    let admin = w.db.admin_pool().await;
    for function in FUNCTIONS {
        // SECURITY DEFINER with a fixed search_path.
        let config = texts(
            &admin,
            &format!(
                "SELECT array_to_string(proconfig, ',') FROM pg_proc
                 WHERE proname = '{function}' AND prosecdef"
            ),
        )
        .await;
        let config = config.first().cloned().flatten().unwrap_or_default();
        assert!(
            config.contains("search_path=pg_catalog, pg_temp"),
            "{function}: {config}"
        );
        // Exactly four output columns.
        let columns = texts(
            &admin,
            &format!(
                "SELECT array_to_string(proargnames, ',') FROM pg_proc WHERE proname = '{function}'"
            ),
        )
        .await;
        assert_eq!(
            columns,
            vec![Some(format!(
                "{},user_id,organization_id,role,is_active",
                if function == "app_user_by_subject" {
                    "p_subject"
                } else {
                    "p_email"
                }
            ))]
        );
        // Not executable by PUBLIC (a NULL ACL would mean the default: PUBLIC may execute).
        assert_eq!(
            count(
                &admin,
                &format!(
                    "SELECT count(*) FROM pg_proc p WHERE p.proname = '{function}'
                     AND (p.proacl IS NULL OR EXISTS (
                         SELECT 1 FROM aclexplode(p.proacl) a WHERE a.grantee = 0))"
                ),
            )
            .await,
            0,
            "{function} is executable by PUBLIC"
        );
        // Executable by the app role, not by the owner's other logins or anyone else.
        let grantees = texts(
            &admin,
            &format!(
                "SELECT r.rolname::text FROM pg_proc p, aclexplode(p.proacl) a
                 JOIN pg_roles r ON r.oid = a.grantee
                 WHERE p.proname = '{function}' AND a.privilege_type = 'EXECUTE'
                   AND r.oid <> p.proowner"
            ),
        )
        .await;
        assert_eq!(grantees, vec![Some(w.db.app_role())], "{function}");
    }
}

#[tokio::test]
async fn resolution_finds_users_across_organizations_and_nothing_else() {
    let w = world().await;
    // No tenant context at all: the lookup still resolves B's owner, with only its membership.
    let found = w
        .store
        .unscoped_user_by_subject("auth0|b")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.user_id, w.b.principal.user_id());
    assert_eq!(found.membership.unwrap().organization_id, w.b.org);
    assert!(found.is_active);
    assert!(
        w.store
            .unscoped_user_by_subject("auth0|nobody")
            .await
            .unwrap()
            .is_none()
    );
    // A subject that is SQL is just a string.
    assert!(
        w.store
            .unscoped_user_by_subject("' OR '1'='1")
            .await
            .unwrap()
            .is_none()
    );

    // Pending invitations only: a registered user is not one.
    let uow = w.store.begin(&w.a.scope()).await.unwrap();
    let email = Email::new("invitee@else.example").unwrap();
    let invited = uow
        .users()
        .invite(email.clone(), Role::Admin)
        .await
        .unwrap();
    uow.commit().await.unwrap();
    let pending = w
        .store
        .unscoped_pending_invitation(&email)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(pending.user_id, invited.id);
    assert_eq!(pending.membership.unwrap().role, Role::Admin);
    let registered = Email::new("owner@a.example").unwrap();
    assert!(
        w.store
            .unscoped_pending_invitation(&registered)
            .await
            .unwrap()
            .is_none()
    );

    // Registration refuses a taken subject or e-mail.
    let taken = |subject: &str, email: &str| NewIdentity {
        subject: subject.to_owned(),
        email: Email::new(email).unwrap(),
        email_verified: true,
        name: None,
    };
    assert!(matches!(
        w.store
            .unscoped_register(taken("auth0|a", "fresh@x.example"))
            .await,
        Err(StoreError::Duplicate {
            what: "users.idp_subject"
        })
    ));
    assert!(matches!(
        w.store
            .unscoped_register(taken("auth0|fresh", "owner@b.example"))
            .await,
        Err(StoreError::Duplicate {
            what: "users.email"
        })
    ));
}

/// Every SECURITY DEFINER function of the schema, including ones added later: a fixed
/// search_path, closed to PUBLIC, executable by the application role alone.
#[tokio::test]
async fn every_security_definer_function_is_closed_to_public() {
    let w = world().await;
    let admin = w.db.admin_pool().await;
    let functions = texts(
        &admin,
        "SELECT p.proname::text FROM pg_proc p
         WHERE p.pronamespace = 'public'::regnamespace AND p.prosecdef ORDER BY 1",
    )
    .await;
    assert_eq!(
        functions,
        [
            "app_access_token_subject",
            "app_api_token_by_digest",
            "app_claim_invitation",
            "app_end_sessions_of_changed_user",
            "app_organization_ids",
            "app_pending_invitation",
            "app_revoke_access_token",
            "app_session_create",
            "app_session_delete",
            "app_session_load",
            "app_session_touch",
            "app_session_update",
            "app_sessions_purge",
            "app_system_audit_append",
            "app_system_audit_events",
            "app_system_audit_head",
            "app_user_by_subject"
        ]
        .map(|f| Some(f.to_owned()))
    );
    for function in functions.into_iter().flatten() {
        let open_to_public = count(
            &admin,
            &format!(
                "SELECT count(*) FROM pg_proc p WHERE p.proname = '{function}'
                 AND (p.proacl IS NULL OR EXISTS (
                     SELECT 1 FROM aclexplode(p.proacl) a WHERE a.grantee = 0))"
            ),
        )
        .await;
        assert_eq!(open_to_public, 0, "{function} is executable by PUBLIC");
        let fixed_path = count(
            &admin,
            &format!(
                "SELECT count(*) FROM pg_proc WHERE proname = '{function}'
                 AND 'search_path=pg_catalog, pg_temp' = ANY (proconfig)"
            ),
        )
        .await;
        assert_eq!(
            fixed_path, 1,
            "{function} resolves names through more than pg_catalog and pg_temp"
        );
    }
    // The organization list gives ids and nothing else, whatever the caller's context.
    let ids = texts(
        w.store.connection(),
        "SELECT app_organization_ids::text FROM app_organization_ids()",
    )
    .await;
    let mut expected = vec![Some(w.a.org.to_string()), Some(w.b.org.to_string())];
    expected.sort();
    assert_eq!(ids, expected);
}

#[tokio::test]
async fn access_tokens_are_revoked_for_good_and_follow_their_user() {
    use chrono::Duration;
    use ports::{Clock, SystemClock};
    use uuid::Uuid;

    let w = world().await;
    let user = w.a.principal.user_id();
    let (jti, other_jti) = (Uuid::now_v7(), Uuid::now_v7());
    let subject = w
        .store
        .unscoped_access_token_subject(user, jti, None)
        .await
        .unwrap()
        .unwrap();
    assert!(!subject.revoked);
    assert_eq!(subject.user.membership, w.a.principal.membership());
    assert!(subject.user.is_active);

    let expires = SystemClock.now() + Duration::minutes(15);
    w.store
        .unscoped_revoke_access_token(jti, user, expires)
        .await
        .unwrap();
    // The purge of old revocations goes by the database's clock: a caller cannot pass a time
    // of its own that makes every revocation look expired.
    let far_future = "SELECT app_revoke_access_token(gen_random_uuid(), '{user}', now(), \
                      now() + interval '10 years')";
    let error = crate::fails(
        w.store.connection(),
        &far_future.replace("{user}", &user.to_string()),
    )
    .await;
    assert!(error.contains("does not exist"), "{error}");
    // Revoking twice is harmless.
    w.store
        .unscoped_revoke_access_token(jti, user, expires)
        .await
        .unwrap();
    let revoked = |jti| {
        let store = w.store.clone();
        async move {
            store
                .unscoped_access_token_subject(user, jti, None)
                .await
                .unwrap()
                .unwrap()
                .revoked
        }
    };
    assert!(revoked(jti).await);
    assert!(!revoked(other_jti).await, "only that token");

    // Unknown users resolve to nothing.
    assert!(
        w.store
            .unscoped_access_token_subject(domain::UserId::from_uuid(Uuid::now_v7()), jti, None)
            .await
            .unwrap()
            .is_none()
    );

    // Revocations of long-expired tokens are purged by the next revocation.
    let long_ago = SystemClock.now() - Duration::days(3);
    w.store
        .unscoped_revoke_access_token(other_jti, user, long_ago)
        .await
        .unwrap();
    assert!(!revoked(other_jti).await, "purged once expired");
    assert!(revoked(jti).await);

    // The application role cannot read or write revocations directly.
    let app = w.db.app_pool(1).await;
    let denied = crate::fails(&app, "SELECT count(*) FROM revoked_access_tokens").await;
    assert!(denied.contains("permission denied"), "{denied}");
    let admin = w.db.admin_pool().await;
    assert_eq!(
        count(&admin, "SELECT count(*) FROM revoked_access_tokens").await,
        1
    );
}
