//! The credential cache: what a change made through this store ends is forgotten at its
//! commit, not when its notice comes back; what anyone else changes is forgotten when its
//! notice arrives; a listener cut off makes the cache fall silent.

use std::time::{Duration, Instant};

use domain::{Name, Role};
use ports::{Claim, Freshness, IdentityDirectory, UnitOfWorkFactory};
use sea_orm::ConnectionTrait;
use uuid::Uuid;

use crate::{World, world};

/// Starts `w.store`'s listener and waits until its cache answers.
async fn listening(w: &World) -> tokio::task::JoinHandle<()> {
    let task = tokio::spawn(w.store.keep_credentials_current());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !w.store.credential_cache().state().current {
        assert!(Instant::now() < deadline, "the cache never became current");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    task
}

fn claim(w: &World, jti: Uuid) -> Claim {
    Claim::AccessToken {
        user: w.a.principal.user_id(),
        jti,
        sid: None,
    }
}

/// Whether a read of the access token `jti` is let in (the cache's answer, when it has one).
async fn access_let_in(w: &World, jti: Uuid) -> bool {
    w.store
        .begin_claimed(claim(w, jti), Freshness::Recent)
        .await
        .unwrap()
        .work
        .is_some()
}

/// Waits until `w.store`'s cache holds nothing.
async fn until_empty(w: &World, within: Duration) {
    let deadline = Instant::now() + within;
    while w.store.credential_cache().state().entries > 0 {
        assert!(
            Instant::now() < deadline,
            "the cache still holds a credential"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_credential_changed_through_this_store_is_forgotten_at_its_commit() {
    let w = world().await;
    let task = listening(&w).await;
    let uow = w.store.begin(&w.a.scope()).await.unwrap();
    let (token, value) = uow
        .api_tokens()
        .create(Name::new("ci").unwrap(), None)
        .await
        .unwrap();
    uow.commit().await.unwrap();
    let jti = Uuid::now_v7();
    for _ in 0..2 {
        assert!(access_let_in(&w, jti).await);
        let entered = w.store.begin_api_token(&value, Freshness::Recent).await;
        assert!(entered.unwrap().is_ok());
    }
    assert_eq!(w.store.credential_cache().state().entries, 2);
    // The listener is stopped: what the cache forgets now, it forgets by itself. It stays
    // current for a moment after its last heartbeat.
    task.abort();

    // An API token revoked: forgotten when the commit returns.
    let uow = w.store.begin(&w.a.scope()).await.unwrap();
    uow.api_tokens().revoke_own(token.id).await.unwrap();
    uow.commit().await.unwrap();
    assert_eq!(w.store.credential_cache().state().entries, 0);
    let entered = w.store.begin_api_token(&value, Freshness::Recent).await;
    assert!(entered.unwrap().is_err(), "a revoked token let in");

    // An access token revoked (a logout).
    let task = listening(&w).await;
    assert!(access_let_in(&w, jti).await);
    assert!(access_let_in(&w, jti).await);
    assert_eq!(w.store.credential_cache().state().entries, 1);
    task.abort();
    let expires = ports::Clock::now(&ports::SystemClock) + chrono::Duration::minutes(15);
    let user = w.a.principal.user_id();
    w.store
        .unscoped_revoke_access_token(jti, user, expires)
        .await
        .unwrap();
    assert_eq!(w.store.credential_cache().state().entries, 0);
    assert!(
        !access_let_in(&w, jti).await,
        "a revoked access token let in"
    );

    // A demotion.
    let colleague = crate::joined(&w.store, &w.a, "colleague@a.example", Role::Admin).await;
    let task = listening(&w).await;
    let other = Uuid::now_v7();
    assert!(access_let_in(&w, other).await);
    assert_eq!(w.store.credential_cache().state().entries, 1);
    task.abort();
    let uow = w.store.begin(&w.a.scope()).await.unwrap();
    uow.users().set_role(colleague, Role::Member).await.unwrap();
    uow.commit().await.unwrap();
    assert_eq!(w.store.credential_cache().state().entries, 0);
}

#[tokio::test]
async fn a_change_made_elsewhere_is_forgotten_and_a_listener_cut_off_falls_silent() {
    let w = world().await;
    let task = listening(&w).await;
    let jti = Uuid::now_v7();
    assert!(access_let_in(&w, jti).await);
    assert_eq!(w.store.credential_cache().state().entries, 1);

    // A change this store did not make: the database's owner demotes the user.
    let admin = w.db.admin_pool().await;
    let user = w.a.principal.user_id();
    admin
        .execute_unprepared(&format!(
            "UPDATE users SET role = 'member' WHERE id = '{user}'"
        ))
        .await
        .unwrap();
    until_empty(&w, ports::CREDENTIAL_STALENESS).await;
    let entered = w
        .store
        .begin_claimed(claim(&w, jti), Freshness::Recent)
        .await
        .unwrap();
    let role = entered.subject.unwrap().user.membership.unwrap().role;
    assert_eq!(role, Role::Member);

    // A use written (`last_seen_at`, `last_used_at`) or a statement that changes nothing
    // announces nothing: the cache keeps what it holds.
    assert!(access_let_in(&w, jti).await);
    let generation = w.store.credential_cache().state().generation;
    admin
        .execute_unprepared(
            "UPDATE api_tokens SET last_used_at = now(); UPDATE sessions SET last_seen_at = now(); \
             DELETE FROM sessions WHERE false; UPDATE users SET last_login_at = now()",
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(w.store.credential_cache().state().generation, generation);

    // The listener's connection cut off: the cache empties and stops answering until it
    // listens again.
    assert!(access_let_in(&w, jti).await);
    assert_eq!(w.store.credential_cache().state().entries, 1);
    admin
        .execute_unprepared(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid()",
        )
        .await
        .unwrap();
    until_empty(&w, ports::CREDENTIAL_STALENESS).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !w.store.credential_cache().state().current {
        assert!(Instant::now() < deadline, "the cache never answered again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(access_let_in(&w, jti).await);
    task.abort();
}
