//! Browser login's storage: a login under way is taken once and its secrets are sealed;
//! sessions end when unused, at their absolute end, when deleted, and when their user is
//! disabled or removed from the organization; an invitation is claimed once.

use chrono::Duration;
use domain::{Email, Role};
use ports::{
    IdentityDirectory, InvitationError, LoginAttempts, NewIdentity, PendingLogin, SessionEnd,
    SessionLifetime, SessionLookup, SessionStore, UnitOfWorkFactory,
};
use secrecy::{ExposeSecret, SecretString};

use crate::{clocked, count, t0, tenant, texts};

/// The session under `id` if it lives; how it ended otherwise (`None` if unknown).
async fn lookup(
    store: &adapters_postgres::PgStore,
    id: u8,
) -> Result<ports::StoredSession, Option<SessionEnd>> {
    match store.load([id; 32], LIFETIME).await.unwrap() {
        SessionLookup::Live(session) => Ok(session),
        SessionLookup::Ended { why, .. } => Err(Some(why)),
        SessionLookup::Unknown => Err(None),
    }
}

const LIFETIME: SessionLifetime = SessionLifetime {
    idle: Duration::minutes(30),
    absolute: Duration::hours(8),
};

#[tokio::test]
async fn a_login_under_way_is_taken_once_with_its_secrets_sealed() {
    let (db, clock, store) = clocked().await;
    let pending = |expires_at| PendingLogin {
        nonce: SecretString::from("the-nonce-0123456789abcdef".to_owned()),
        pkce_verifier: SecretString::from("the-verifier-0123456789abcdefghijklmnop".to_owned()),
        return_to: Some("https://app.example.com/projects".to_owned()),
        max_age: Some(Duration::seconds(0)),
        expires_at,
    };
    store
        .keep([1; 32], pending(t0() + Duration::minutes(10)))
        .await
        .unwrap();
    store
        .keep([2; 32], pending(t0() + Duration::minutes(10)))
        .await
        .unwrap();
    let admin = db.admin_pool().await;
    let stored = texts(&admin, "SELECT nonce || pkce_verifier FROM login_attempts").await;
    for text in stored.into_iter().flatten() {
        assert!(
            !text.contains("the-nonce") && !text.contains("the-verifier"),
            "{text}"
        );
    }
    let taken = store.take([1; 32]).await.unwrap().unwrap();
    assert_eq!(taken.nonce.expose_secret(), "the-nonce-0123456789abcdef");
    assert_eq!(
        taken.pkce_verifier.expose_secret(),
        "the-verifier-0123456789abcdefghijklmnop"
    );
    assert_eq!(
        taken.return_to.as_deref(),
        Some("https://app.example.com/projects")
    );
    assert_eq!(taken.max_age, Some(Duration::seconds(0)));
    assert!(store.take([1; 32]).await.unwrap().is_none(), "taken twice");
    assert!(store.take([3; 32]).await.unwrap().is_none(), "never kept");
    // Past its end a login is not handed out, and purging forgets it.
    clock.advance(Duration::minutes(11));
    store
        .keep([4; 32], pending(t0() + Duration::minutes(30)))
        .await
        .unwrap();
    assert_eq!(LoginAttempts::purge(&store).await.unwrap(), 1);
    assert!(store.take([2; 32]).await.unwrap().is_none());
    assert!(store.take([4; 32]).await.unwrap().is_some());
}

/// Time passing for every stored session: the sessions live by the database's clock, which a
/// test cannot move, so their times are moved back instead.
async fn age_sessions(db: &test_support::TestDatabase, by: Duration) {
    let seconds = by.num_seconds();
    sea_orm::ConnectionTrait::execute_unprepared(
        &db.admin_pool().await,
        &format!(
            "UPDATE sessions SET created_at = created_at - interval '{seconds} seconds', \
             last_seen_at = last_seen_at - interval '{seconds} seconds', \
             expires_at = expires_at - interval '{seconds} seconds'"
        ),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn sessions_end_when_idle_at_their_end_and_when_deleted() {
    let (db, _, store) = clocked().await;
    let acme = tenant(&store, "acme").await;
    let user = acme.principal.user_id();
    let data = r#"{"user_id":"x"}"#.to_owned();
    for id in 1..=3_u8 {
        store
            .create([id; 32], user, Some(t0()), data.clone(), LIFETIME)
            .await
            .unwrap();
    }
    let loaded = lookup(&store, 1).await.unwrap();
    assert_eq!((loaded.user, loaded.auth_time), (user, Some(t0())));
    assert_eq!(loaded.expires_at - loaded.created_at, Duration::hours(8));

    // Used every 20 minutes, session 1 lives on; session 2, left alone, ends after 30.
    for _ in 0..3 {
        age_sessions(&db, Duration::minutes(20)).await;
        store.touch([1; 32], LIFETIME).await.unwrap();
    }
    assert!(lookup(&store, 1).await.is_ok());
    // A use written after the session went idle (it is written apart from the request that
    // used the session) does not bring it back.
    store.touch([2; 32], LIFETIME).await.unwrap();
    assert_eq!(lookup(&store, 2).await.err(), Some(Some(SessionEnd::Idle)));
    assert_eq!(
        lookup(&store, 2).await.err(),
        Some(None),
        "forgotten once reported"
    );
    // However used, a session ends 8 hours after it began.
    for _ in 0..24 {
        age_sessions(&db, Duration::minutes(20)).await;
        store.touch([1; 32], LIFETIME).await.unwrap();
    }
    assert_eq!(
        lookup(&store, 1).await.err(),
        Some(Some(SessionEnd::Absolute))
    );

    // Update and delete.
    store
        .create([5; 32], user, None, data.clone(), LIFETIME)
        .await
        .unwrap();
    let later = Some(t0() + Duration::days(2));
    assert!(store.update([5; 32], later, "{}".to_owned()).await.unwrap());
    let loaded = lookup(&store, 5).await.unwrap();
    assert_eq!((loaded.auth_time, loaded.data.as_str()), (later, "{}"));
    store.delete([5; 32]).await.unwrap();
    assert_eq!(lookup(&store, 5).await.err(), Some(None));
    assert!(!store.update([5; 32], later, "{}".to_owned()).await.unwrap());
    // Session 3 (idle) is purged.
    assert_eq!(SessionStore::purge(&store, LIFETIME).await.unwrap(), 1);
    assert_eq!(
        count(&db.admin_pool().await, "SELECT count(*) FROM sessions").await,
        0
    );
}

#[tokio::test]
async fn disabling_or_removing_a_user_ends_their_sessions() {
    let db = test_support::TestDatabase::new().await;
    let store = crate::store_for(&db, 2).await;
    let acme = tenant(&store, "acme").await;
    let member = crate::joined(&store, &acme, "member@acme.example", Role::Member).await;
    let owner = acme.principal.user_id();
    store
        .create([1; 32], owner, None, "{}".to_owned(), LIFETIME)
        .await
        .unwrap();
    store
        .create([2; 32], member, None, "{}".to_owned(), LIFETIME)
        .await
        .unwrap();
    store
        .create([3; 32], owner, None, "{}".to_owned(), LIFETIME)
        .await
        .unwrap();

    let uow = store.begin(&acme.scope()).await.unwrap();
    uow.users().remove(member).await.unwrap();
    uow.commit().await.unwrap();
    assert_eq!(
        lookup(&store, 2).await.err(),
        Some(None),
        "removed: deleted at once"
    );
    assert!(lookup(&store, 1).await.is_ok());

    let admin = db.admin_pool().await;
    sea_orm::ConnectionTrait::execute_unprepared(
        &admin,
        &format!("UPDATE users SET is_active = false WHERE id = '{owner}'"),
    )
    .await
    .unwrap();
    assert_eq!(
        lookup(&store, 1).await.err(),
        Some(None),
        "disabled: deleted at once"
    );
    assert_eq!(count(&admin, "SELECT count(*) FROM sessions").await, 0);
}

fn identity(subject: &str, email: &str, verified: bool) -> NewIdentity {
    NewIdentity {
        subject: subject.to_owned(),
        email: Email::new(email).unwrap(),
        email_verified: verified,
        name: None,
    }
}

/// The invitation functions answer only for the invitee's own verified address, once, before
/// the invitation expires, and never move a member of another organization.
#[tokio::test]
async fn an_invitation_is_answered_once_and_only_by_its_verified_address() {
    let db = test_support::TestDatabase::new().await;
    let store = crate::store_for(&db, 2).await;
    let acme = tenant(&store, "acme").await;
    let globex = tenant(&store, "globex").await;
    let uow = store.begin(&acme.scope()).await.unwrap();
    let invitation = uow
        .invitations()
        .create(Email::new("new@acme.example").unwrap(), Role::Admin)
        .await
        .unwrap();
    uow.commit().await.unwrap();
    let event = |user: domain::UserId| {
        ports::NewAuditEvent::by(Some(user), domain::AuditAction::InvitationAccepted)
    };
    let declined = |user: domain::UserId| {
        ports::NewAuditEvent::by(Some(user), domain::AuditAction::InvitationDeclined)
    };

    // The same address, unverified, and a verified stranger: nothing to see or answer.
    let squatter = store
        .unscoped_sign_in(identity("idp|squatter", "new@acme.example", false))
        .await
        .unwrap();
    let stranger = store
        .unscoped_sign_in(identity("idp|stranger", "other@else.example", true))
        .await
        .unwrap();
    for user in [squatter.user_id, stranger.user_id] {
        assert!(
            store
                .unscoped_invitations_for(user)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(matches!(
            store
                .accept_invitation(user, invitation.id, event(user))
                .await,
            Err(InvitationError::NotFound)
        ));
        assert!(matches!(
            store
                .decline_invitation(user, invitation.id, declined(user))
                .await,
            Err(InvitationError::NotFound)
        ));
    }

    // The verified address sees it, accepts it once.
    let invitee = store
        .unscoped_sign_in(identity("idp|new", "new@acme.example", true))
        .await
        .unwrap();
    assert_ne!(invitee.user_id, squatter.user_id, "one user per subject");
    assert!(invitee.membership.is_none(), "a login joins nothing");
    let pending = store
        .unscoped_invitations_for(invitee.user_id)
        .await
        .unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].id, invitation.id);
    assert_eq!(pending[0].organization_id, acme.org);
    assert_eq!(pending[0].organization_name, "Organization acme");
    assert_eq!(pending[0].role, Role::Admin);
    let joined = store
        .accept_invitation(invitee.user_id, invitation.id, event(invitee.user_id))
        .await
        .unwrap();
    assert_eq!(
        (joined.organization_id, joined.role),
        (acme.org, Role::Admin)
    );
    assert!(matches!(
        store
            .accept_invitation(invitee.user_id, invitation.id, event(invitee.user_id))
            .await,
        Err(InvitationError::NotFound)
    ));
    let again = store
        .unscoped_user_by_subject("idp|new")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.membership, Some(joined));

    // Another organization's invitation does not move a member; it can be declined.
    let uow = store.begin(&globex.scope()).await.unwrap();
    let second = uow
        .invitations()
        .create(Email::new("new@acme.example").unwrap(), Role::Owner)
        .await
        .unwrap();
    let expiring = uow
        .invitations()
        .create(Email::new("other@else.example").unwrap(), Role::Member)
        .await
        .unwrap();
    uow.commit().await.unwrap();
    assert!(matches!(
        store
            .accept_invitation(invitee.user_id, second.id, event(invitee.user_id))
            .await,
        Err(InvitationError::AlreadyMember)
    ));
    assert_eq!(
        store
            .decline_invitation(invitee.user_id, second.id, declined(invitee.user_id))
            .await
            .unwrap(),
        globex.org
    );
    assert!(
        store
            .unscoped_invitations_for(invitee.user_id)
            .await
            .unwrap()
            .is_empty()
    );

    // An expired invitation is no longer there to accept.
    let admin = db.admin_pool().await;
    sea_orm::ConnectionTrait::execute_unprepared(
        &admin,
        &format!(
            "UPDATE invitations SET expires_at = now() - interval '1 second' \
             WHERE id = '{}'",
            expiring.id
        ),
    )
    .await
    .unwrap();
    assert!(
        store
            .unscoped_invitations_for(stranger.user_id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        store
            .accept_invitation(stranger.user_id, expiring.id, event(stranger.user_id))
            .await,
        Err(InvitationError::NotFound)
    ));
    // It is no longer the organization's either: not listed, and the address may be invited
    // again.
    let uow = store.begin(&globex.scope()).await.unwrap();
    let sort = ports::Sort {
        field: ports::InvitationSort::CreatedAt,
        direction: ports::SortDirection::Ascending,
    };
    let listed = uow
        .invitations()
        .list(ports::PageRequest::new(0, 10, sort).unwrap())
        .await
        .unwrap();
    assert_eq!(listed.total, 0);
    let again = uow
        .invitations()
        .create(Email::new("other@else.example").unwrap(), Role::Member)
        .await
        .unwrap();
    uow.commit().await.unwrap();
    assert_ne!(again.id, expiring.id);
    // Each answer is in the inviting organization's audit log, nothing for the refused ones.
    let answers = |org: domain::OrganizationId| {
        format!(
            "SELECT action FROM audit_events WHERE organization_id = '{org}' \
             AND action LIKE 'invitation.%' ORDER BY seq"
        )
    };
    assert_eq!(
        texts(&admin, &answers(acme.org)).await,
        [Some("invitation.accepted".to_owned())]
    );
    assert_eq!(
        texts(&admin, &answers(globex.org)).await,
        [Some("invitation.declined".to_owned())]
    );
}
