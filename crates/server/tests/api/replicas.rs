//! Two server processes on one database. A replica answers reads from its credential cache,
//! yet what the other replica (or anyone with the database) changes of a credential it
//! refuses within `ports::CREDENTIAL_STALENESS`: a revoked access token or API token, a
//! demotion, a disabled user.

use std::future::Future;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sea_orm::ConnectionTrait;
use serde_json::Value;
use test_support::TestDatabase;

use crate::binary::{BINARY, JWT_KEY, local_login, wait_until_live};
use crate::{AUDIT_KEY, free_port};

/// A server process, killed when dropped.
struct Replica {
    child: Child,
    base: String,
    metrics: String,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn command(db: &TestDatabase, encryption_key: &str, subcommand: &str) -> Command {
    let mut command = Command::new(BINARY);
    command
        .arg(subcommand)
        .env_clear()
        .env("APP_ENV", "development")
        .env("JWT_SECRET_KEY", JWT_KEY)
        .env("AUDIT_CHAIN_KEY", AUDIT_KEY)
        .env("DATABASE_URL", db.app_url())
        .env("DB_ENCRYPTION_KEY", encryption_key)
        .env("HTTP_WORKERS", "1")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

async fn start(client: &reqwest::Client, db: &TestDatabase, encryption_key: &str) -> Replica {
    let (port, metrics_port) = (free_port(), free_port());
    let child = command(db, encryption_key, "serve")
        .env("BIND_ADDR", format!("127.0.0.1:{port}"))
        .env("METRICS_BIND_ADDR", format!("127.0.0.1:{metrics_port}"))
        .spawn()
        .unwrap();
    let replica = Replica {
        child,
        base: format!("http://127.0.0.1:{port}"),
        metrics: format!("http://127.0.0.1:{metrics_port}/metrics"),
    };
    wait_until_live(client, &replica.base).await;
    replica
}

/// How many reads the credential cache of the replica serving `metrics` answered.
async fn cache_hits(client: &reqwest::Client, metrics: &str) -> u64 {
    let text = client
        .get(metrics)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|l| l.starts_with("rhesis_credential_cache_answers_total{answer=\"hit\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .map_or(0, |n| n.parse().unwrap())
}

/// Sends `read` until the credential cache of the replica serving `metrics` answers it (the
/// cache answers once its first heartbeat was answered); every answer must be
/// `expected`.
pub(crate) async fn until_cached<F, Fut>(metrics: &str, read: F, expected: u16)
where
    F: Fn() -> Fut,
    Fut: Future<Output = u16>,
{
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let before = cache_hits(&client, metrics).await;
    loop {
        assert_eq!(read().await, expected);
        if cache_hits(&client, metrics).await > before {
            return;
        }
        assert!(Instant::now() < deadline, "the cache never answered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends `read` until it is answered `refused`, having been answered `accepted` until then:
/// the last one accepted must have been sent within the staleness bound after `changed` (when
/// the change was seen to be committed).
pub(crate) async fn refused_in_time<F, Fut>(changed: Instant, read: F, accepted: u16, refused: u16)
where
    F: Fn() -> Fut,
    Fut: Future<Output = u16>,
{
    let mut last_accepted = None;
    loop {
        let sent = Instant::now();
        let status = read().await;
        if status == refused {
            break;
        }
        assert_eq!(status, accepted);
        last_accepted = Some(sent);
        assert!(
            sent < changed + Duration::from_secs(5),
            "still accepted 5 s after the change"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    if let Some(sent) = last_accepted {
        let late = sent.saturating_duration_since(changed);
        assert!(
            late < ports::CREDENTIAL_STALENESS,
            "accepted {late:?} after the change"
        );
    }
}

#[tokio::test]
async fn the_other_replica_refuses_a_changed_credential_within_the_bound() {
    let db = TestDatabase::new().await;
    let encryption_key = test_support::random_fernet_key();
    let seeded = command(&db, &encryption_key, "seed-dev").output().unwrap();
    assert!(seeded.status.success());
    let client = reqwest::Client::new();
    let a = start(&client, &db, &encryption_key).await;
    let b = start(&client, &db, &encryption_key).await;
    let get = |replica: &Replica, path: &str, token: &str| {
        let request = client
            .get(format!("{}{path}", replica.base))
            .bearer_auth(token);
        async move { request.send().await.unwrap().status().as_u16() }
    };

    // An access token revoked on one replica (logged out).
    let jwt = local_login(&client, &a.base).await;
    until_cached(&b.metrics, || get(&b, "/api/v1/projects", &jwt), 200).await;
    let logout = client
        .post(format!("{}/auth/logout", a.base))
        .bearer_auth(&jwt)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 204);
    refused_in_time(
        Instant::now(),
        || get(&b, "/api/v1/projects", &jwt),
        200,
        401,
    )
    .await;

    // An API token deleted on one replica.
    let jwt = local_login(&client, &a.base).await;
    let created: Value = client
        .post(format!("{}/api/v1/tokens", a.base))
        .bearer_auth(&jwt)
        .json(&serde_json::json!({"name": "replicas"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let api_token = created["token_value"].as_str().unwrap().to_owned();
    let token_id = created["id"].as_str().unwrap().to_owned();
    until_cached(&b.metrics, || get(&b, "/api/v1/projects", &api_token), 200).await;
    let deleted = client
        .delete(format!("{}/api/v1/tokens/{token_id}", a.base))
        .bearer_auth(&jwt)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    refused_in_time(
        Instant::now(),
        || get(&b, "/api/v1/projects", &api_token),
        200,
        401,
    )
    .await;

    // A demotion and a disabling, made in the database by its owner: no replica made them.
    let me: Value = client
        .get(format!("{}/api/v1/me", b.base))
        .bearer_auth(&jwt)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let user = me["user_id"].as_str().unwrap().to_owned();
    let admin = db.admin_pool().await;
    let change = |sql: String| {
        let admin = &admin;
        async move {
            admin.execute_unprepared(&sql).await.unwrap();
            Instant::now()
        }
    };
    until_cached(&b.metrics, || get(&b, "/api/v1/audit-events", &jwt), 200).await;
    let changed = change(format!(
        "UPDATE users SET role = 'member' WHERE id = '{user}'"
    ))
    .await;
    refused_in_time(changed, || get(&b, "/api/v1/audit-events", &jwt), 200, 403).await;

    until_cached(&b.metrics, || get(&b, "/api/v1/projects", &jwt), 200).await;
    let changed = change(format!(
        "UPDATE users SET is_active = false WHERE id = '{user}'"
    ))
    .await;
    refused_in_time(changed, || get(&b, "/api/v1/projects", &jwt), 200, 401).await;
    drop(a);
}
