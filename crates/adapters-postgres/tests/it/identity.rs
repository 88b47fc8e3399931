//! Identity resolution crosses tenants only through the narrow SECURITY DEFINER functions.

use domain::Email;
use ports::{IdentityDirectory, NewIdentity, StoreError, UnitOfWorkFactory};

use crate::{count, texts, world};

/// The identity functions and their arguments and output columns: nothing of the tenant's
/// data beyond what signing in and answering one's own invitations need.
const FUNCTIONS: [(&str, &str); 7] = [
    (
        "app_user_by_subject",
        "p_subject,user_id,organization_id,role,is_active",
    ),
    (
        "app_sign_in",
        "p_id,p_subject,p_email,p_verified,p_name,user_id,organization_id,role,is_active",
    ),
    (
        "app_sign_in_unaddressed",
        "p_subject,user_id,organization_id,role,is_active",
    ),
    ("app_organization_is_new", "p_org,p_user"),
    (
        "app_my_invitations",
        "p_user,invitation_id,organization_id,organization_name,role,created_at,expires_at",
    ),
    (
        "app_accept_invitation",
        "p_user,p_invitation,organization_id,role,outcome",
    ),
    (
        "app_decline_invitation",
        "p_user,p_invitation,organization_id,role",
    ),
];

#[tokio::test]
async fn the_functions_return_only_what_they_must_and_public_cannot_call_them() {
    let w = world().await;
    let admin = w.db.admin_pool().await;
    for (function, arguments) in FUNCTIONS {
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
        // Exactly these arguments and output columns.
        let columns = texts(
            &admin,
            &format!(
                "SELECT array_to_string(proargnames, ',') FROM pg_proc WHERE proname = '{function}'"
            ),
        )
        .await;
        assert_eq!(columns, vec![Some(arguments.to_owned())], "{function}");
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

    // A sign-in is by subject: the same subject is the same user, whose address follows the
    // provider's; a verified address is one user's, an unverified one is nobody's claim.
    let signed = |subject: &str, email: &str, verified: bool| NewIdentity {
        subject: subject.to_owned(),
        email: Email::new(email).unwrap(),
        email_verified: verified,
        name: None,
    };
    let again = w
        .store
        .unscoped_sign_in(signed("auth0|a", "renamed@a.example", true))
        .await
        .unwrap();
    assert_eq!(again.user_id, w.a.principal.user_id());
    assert_eq!(again.membership.unwrap().organization_id, w.a.org);
    assert!(matches!(
        w.store
            .unscoped_sign_in(signed("auth0|fresh", "owner@b.example", true))
            .await,
        Err(StoreError::Duplicate {
            what: "users.email"
        })
    ));
    let unverified = w
        .store
        .unscoped_sign_in(signed("auth0|fresh", "owner@b.example", false))
        .await
        .unwrap();
    assert_ne!(unverified.user_id, w.b.principal.user_id());
    assert!(unverified.membership.is_none());
    let another = w
        .store
        .unscoped_sign_in(signed("auth0|other", "owner@b.example", false))
        .await
        .unwrap();
    assert_ne!(another.user_id, unverified.user_id);
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
            "app_accept_invitation",
            "app_access_token_subject",
            "app_announce_credential_change",
            "app_api_token_by_digest",
            "app_credential_changes_since",
            "app_decline_invitation",
            "app_end_sessions_of_changed_user",
            "app_my_invitations",
            "app_organization_ids",
            "app_organization_is_new",
            "app_revoke_access_token",
            "app_session_create",
            "app_session_delete",
            "app_session_load",
            "app_session_touch",
            "app_session_update",
            "app_sessions_purge",
            "app_sign_in",
            "app_sign_in_unaddressed",
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
        &w.db.app_pool(1).await,
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
    let subject_of = |user, jti| {
        let store = w.store.clone();
        async move {
            let claim = ports::Claim::AccessToken {
                user,
                jti,
                sid: None,
            };
            store
                .begin_claimed(claim, ports::Freshness::Current)
                .await
                .unwrap()
                .subject
        }
    };
    let subject = subject_of(user, jti).await.unwrap();
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
        &w.db.app_pool(1).await,
        &far_future.replace("{user}", &user.to_string()),
    )
    .await;
    assert!(error.contains("does not exist"), "{error}");
    // Revoking twice is harmless.
    w.store
        .unscoped_revoke_access_token(jti, user, expires)
        .await
        .unwrap();
    assert!(subject_of(user, jti).await.unwrap().revoked);
    assert!(
        !subject_of(user, other_jti).await.unwrap().revoked,
        "only that token"
    );

    // Unknown users resolve to nothing.
    let unknown = domain::UserId::from_uuid(Uuid::now_v7());
    assert!(subject_of(unknown, jti).await.is_none());

    // Revocations of long-expired tokens are purged by the next revocation.
    let long_ago = SystemClock.now() - Duration::days(3);
    w.store
        .unscoped_revoke_access_token(other_jti, user, long_ago)
        .await
        .unwrap();
    assert!(
        !subject_of(user, other_jti).await.unwrap().revoked,
        "purged once expired"
    );
    assert!(subject_of(user, jti).await.unwrap().revoked);

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

/// No SECURITY DEFINER function takes "now" from its caller: a caller-chosen time could keep an
/// idle or expired session alive, stamp it as just used, or make revocations look expired. The
/// only times and durations passed in are facts the caller holds, or bounded configuration,
/// each named here with its reason.
#[tokio::test]
async fn no_security_definer_function_takes_the_time_from_its_caller() {
    let w = world().await;
    let admin = w.db.admin_pool().await;
    let timed = texts(
        &admin,
        "SELECT p.proname || '(' || a.name || ')' FROM pg_proc p,
                unnest(p.proargnames, p.proargtypes::oid[]) AS a(name, type)
         WHERE p.pronamespace = 'public'::regnamespace AND p.prosecdef
           AND a.type IN ('timestamptz'::regtype, 'timestamp'::regtype, 'date'::regtype,
                          'interval'::regtype)
         ORDER BY 1",
    )
    .await;
    assert_eq!(
        timed,
        [
            // When the access token expires: how long its revocation must be kept.
            "app_revoke_access_token(p_expires_at)",
            // The configured lifetimes, held to the largest the configuration accepts
            // (`the_caller_cannot_make_a_session_outlive_the_configured_bounds`).
            "app_session_create(p_absolute)",
            // When the person authenticated at the provider (the ID token's `auth_time`).
            "app_session_create(p_auth_time)",
            "app_session_load(p_idle)",
            // The configured idle timeout, held to the same bound: a use written after the
            // session went idle does not bring it back.
            "app_session_touch(p_idle)",
            "app_session_update(p_auth_time)",
            "app_sessions_purge(p_idle)",
            // The event's time, which its keyed link covers (computed by the server, which
            // holds the key).
            "app_system_audit_append(p_occurred_at)",
        ]
        .map(|f| Some(f.to_owned()))
    );
}

/// The attack (found by review): the idle timeout and the absolute lifetime are the caller's
/// arguments, so raw SQL of the application role could create a session of a hundred years
/// and load it with an idle timeout of a hundred years. The functions hold both to the largest
/// the configuration accepts (a day idle, 30 days in all).
#[tokio::test]
async fn the_caller_cannot_make_a_session_outlive_the_configured_bounds() {
    use sea_orm::ConnectionTrait;
    let w = world().await;
    let user = w.a.principal.user_id();
    let app = w.db.app_pool(1).await;
    let hash = format!("\\x{}", "ab".repeat(32));
    app.execute_unprepared(&format!(
        "SELECT app_session_create('{hash}'::bytea, '{user}', now(), '{{}}'::jsonb, \
         interval '100 years')"
    ))
    .await
    .unwrap();
    let admin = w.db.admin_pool().await;
    assert_eq!(
        count(
            &admin,
            "SELECT count(*) FROM sessions WHERE expires_at - created_at = interval '720 hours'"
        )
        .await,
        1,
        "the absolute end held to 30 days"
    );
    // A day and a minute without use, as the database sees it.
    admin
        .execute_unprepared(
            "UPDATE sessions SET created_at = created_at - interval '1441 minutes', \
             last_seen_at = last_seen_at - interval '1441 minutes'",
        )
        .await
        .unwrap();
    let ended = texts(
        &app,
        &format!(
            "SELECT coalesce(ended, 'alive') FROM app_session_load('{hash}'::bytea, \
             interval '100 years')"
        ),
    )
    .await;
    assert_eq!(ended, [Some("idle".to_owned())]);
}
