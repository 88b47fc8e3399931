//! The credential cache: what a change made through this store ends is forgotten at its
//! commit, not at the next heartbeat; what anyone else changes is forgotten at the next
//! heartbeat, however it was made; a heartbeat cut off or hung makes the cache fall silent
//! until one answers again.

use std::time::{Duration, Instant};

use domain::{Name, Role};
use ports::{Claim, Freshness, IdentityDirectory, UnitOfWorkFactory};
use sea_orm::ConnectionTrait;
use sea_orm::sqlx::Connection;
use uuid::Uuid;

use crate::{World, world};

/// Starts `w.store`'s heartbeat and waits until its cache answers.
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
    // The heartbeat is stopped: what the cache forgets now, it forgets by itself. It stays
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

/// The process id of `w.store`'s heartbeat connection, once it has one.
async fn heartbeat_backend(admin: &sea_orm::DatabaseConnection, other_than: i32) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pids = crate::texts(
            admin,
            &format!(
                "SELECT pid::text FROM pg_stat_activity WHERE application_name = '{}' \
                 AND datname = current_database() AND pid <> {other_than}",
                adapters_postgres::credential_cache::HEARTBEAT_APPLICATION
            ),
        )
        .await;
        if let Some(Some(pid)) = pids.first() {
            return pid.parse().unwrap();
        }
        assert!(Instant::now() < deadline, "no heartbeat connection");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `w.store`'s cache answers.
async fn until_current(w: &World, within: Duration) {
    let deadline = Instant::now() + within;
    while !w.store.credential_cache().state().current {
        assert!(Instant::now() < deadline, "the cache never answered again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs `sql` as the database's superuser and waits until the cache, holding one
/// credential, is emptied by the next heartbeat.
async fn forgotten_after(w: &World, admin: &sea_orm::DatabaseConnection, sql: &str) {
    let jti = Uuid::now_v7();
    assert!(access_let_in(w, jti).await);
    assert!(w.store.credential_cache().state().entries > 0);
    admin.execute_unprepared(sql).await.unwrap();
    until_empty(w, ports::CREDENTIAL_STALENESS).await;
}

#[tokio::test]
async fn a_change_made_elsewhere_is_forgotten_and_a_heartbeat_cut_off_falls_silent() {
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

    // A use written (`last_seen_at` forward, `last_used_at`) or a statement that changes
    // nothing records nothing: the cache keeps what it holds.
    assert!(access_let_in(&w, jti).await);
    let generation = w.store.credential_cache().state().generation;
    admin
        .execute_unprepared(
            "UPDATE api_tokens SET last_used_at = now(); \
             UPDATE sessions SET last_seen_at = last_seen_at + interval '1 second'; \
             DELETE FROM sessions WHERE false; UPDATE users SET last_login_at = now()",
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(w.store.credential_cache().state().generation, generation);

    // The heartbeat's connection cut off: the cache empties and stops answering until a
    // heartbeat answers again, on a new connection.
    assert!(access_let_in(&w, jti).await);
    assert_eq!(w.store.credential_cache().state().entries, 1);
    let pid = heartbeat_backend(&admin, 0).await;
    admin
        .execute_unprepared(&format!("SELECT pg_terminate_backend({pid})"))
        .await
        .unwrap();
    until_empty(&w, ports::CREDENTIAL_STALENESS).await;
    until_current(&w, Duration::from_secs(10)).await;
    assert!(access_let_in(&w, jti).await);
    task.abort();
}

#[tokio::test]
async fn the_changes_that_were_not_announced_before_are_forgotten_too() {
    let w = world().await;
    let task = listening(&w).await;
    let admin = w.db.admin_pool().await;
    // A session to move back, and a revocation to change.
    let lifetime = ports::SessionLifetime {
        idle: chrono::Duration::minutes(30),
        absolute: chrono::Duration::hours(8),
    };
    ports::SessionStore::create(
        &w.store,
        [9; 32],
        w.a.principal.user_id(),
        None,
        "{}".to_owned(),
        lifetime,
    )
    .await
    .unwrap();
    let expires = ports::Clock::now(&ports::SystemClock) + chrono::Duration::minutes(15);
    let revoked = Uuid::now_v7();
    w.store
        .unscoped_revoke_access_token(revoked, w.a.principal.user_id(), expires)
        .await
        .unwrap();

    // An update of a revocation (its user, say): before, only inserts were announced.
    forgotten_after(
        &w,
        &admin,
        &format!(
            "UPDATE revoked_access_tokens SET expires_at = expires_at + interval '1 minute' \
             WHERE jti = '{revoked}'"
        ),
    )
    .await;
    // A session's last use moved back, which ends it for idleness sooner.
    forgotten_after(
        &w,
        &admin,
        &format!(
            "UPDATE sessions SET last_seen_at = last_seen_at - interval '1 hour' \
             WHERE user_id = '{}'",
            w.a.principal.user_id()
        ),
    )
    .await;
    // A change made in replication mode (as a restore or a logical replica applies it),
    // which skips the triggers that are not `ALWAYS`.
    forgotten_after(
        &w,
        &admin,
        &format!(
            "SET session_replication_role = replica; \
             UPDATE users SET is_active = false WHERE id = '{}'; \
             SET session_replication_role = origin",
            w.a.principal.user_id()
        ),
    )
    .await;
    task.abort();
}

#[tokio::test]
async fn a_change_takes_nothing_from_the_notification_queue_and_the_app_role_cannot_hold_it_up() {
    // A notification queue that any role can fill (listen, never read) made every
    // transaction that notified fail at its commit: a change records itself in a table
    // instead, so nothing is notified, and a listener hears nothing of it.
    let w = world().await;
    let task = listening(&w).await;
    let mut listener = sea_orm::sqlx::postgres::PgListener::connect(&w.db.app_url())
        .await
        .unwrap();
    listener.listen("credential_changes").await.unwrap();
    let admin = w.db.admin_pool().await;
    forgotten_after(
        &w,
        &admin,
        &format!(
            "UPDATE users SET role = 'member' WHERE id = '{}'",
            w.a.principal.user_id()
        ),
    )
    .await;
    let heard = tokio::time::timeout(Duration::from_millis(500), listener.recv()).await;
    assert!(heard.is_err(), "a change was notified: {heard:?}");

    // The app role can neither write, read nor lock the record of changes (a lock held
    // would make every change wait), nor change how it is kept.
    let app = w.db.app_pool(1).await;
    for sql in [
        "INSERT INTO credential_changes (xid) VALUES (pg_current_xact_id())",
        "DELETE FROM credential_changes",
        "SELECT * FROM credential_changes FOR UPDATE",
        "BEGIN; LOCK TABLE credential_changes IN ACCESS EXCLUSIVE MODE; ROLLBACK",
        "UPDATE credential_changes_pruned SET below = '0'",
        "ALTER TABLE users DISABLE TRIGGER users_credential_change",
        "SET session_replication_role = replica",
    ] {
        let refused = app.execute_unprepared(sql).await;
        assert!(refused.is_err(), "the app role may: {sql}");
        let _ = app.execute_unprepared("ROLLBACK").await;
    }
    task.abort();
}

#[tokio::test]
async fn a_hung_heartbeat_connection_is_dropped_and_the_cache_answers_again() {
    // A connection that stops answering without closing (a half-open socket, a stalled
    // server process): the heartbeat gives up on it and answers on a new one, while the old
    // one still hangs. The backend of the heartbeat is stopped (SIGSTOP) to make one; the
    // test needs the database on this machine, as `cargo xtask test` runs it.
    let w = world().await;
    let task = listening(&w).await;
    let admin = w.db.admin_pool().await;
    let hung = heartbeat_backend(&admin, 0).await;
    let stopped = Stopped::new(hung);
    let deadline = Instant::now() + Duration::from_secs(5);
    while w.store.credential_cache().state().current {
        assert!(
            Instant::now() < deadline,
            "a hung heartbeat kept the cache answering"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    until_current(&w, Duration::from_secs(10)).await;
    let fresh = heartbeat_backend(&admin, hung).await;
    drop(stopped);
    assert_ne!(fresh, hung, "the cache answered over the hung connection");
    task.abort();
}

/// A server process stopped with SIGSTOP, resumed when dropped (a test that fails midway
/// must not leave a backend that nothing, not even `DROP DATABASE … WITH (FORCE)`, ends).
struct Stopped(i32);

impl Stopped {
    fn new(pid: i32) -> Self {
        Self::signal(pid, "-STOP");
        Self(pid)
    }

    fn signal(pid: i32, name: &str) {
        let status = std::process::Command::new("kill")
            .args([name, &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill {name} {pid}");
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-CONT", &self.0.to_string()])
            .status();
    }
}

#[tokio::test]
async fn a_caller_that_keeps_the_pruning_open_holds_up_no_heartbeat() {
    // The app role may ask whether credentials changed; it pruned as it asked, and a caller
    // that left its transaction open held the pruned rows: every replica's next pruning
    // heartbeat waited on them and the cache fell silent.
    let w = world().await;
    let admin = w.db.admin_pool().await;
    // Records more than an hour old, to prune (their ids lie ahead of any transaction of
    // the test: this database counts every heartbeat as a change from here on).
    let old_record = "INSERT INTO credential_changes (xid, at) \
                      VALUES ((pg_current_xact_id()::text::bigint + 1000000)::text::xid8, \
                              now() - interval '2 hours')";
    admin.execute_unprepared(old_record).await.unwrap();
    let mut holder = sea_orm::sqlx::postgres::PgConnection::connect(&w.db.app_url())
        .await
        .unwrap();
    sea_orm::sqlx::query("BEGIN")
        .execute(&mut holder)
        .await
        .unwrap();
    sea_orm::sqlx::query("SELECT * FROM app_credential_changes_since(NULL)")
        .execute(&mut holder)
        .await
        .unwrap();
    // The heartbeat starts now, so the first caller did the pruning. Another record to
    // prune, while the first caller's transaction stays open.
    let task = listening(&w).await;
    admin
        .execute_unprepared(&old_record.replace("1000000", "2000000"))
        .await
        .unwrap();
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        assert!(
            w.store.credential_cache().state().current,
            "a caller's open transaction held up the heartbeat"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sea_orm::sqlx::query("ROLLBACK")
        .execute(&mut holder)
        .await
        .unwrap();
    task.abort();
}
