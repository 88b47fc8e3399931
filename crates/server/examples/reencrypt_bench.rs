//! Re-encryption throughput on a table of N rows (default 100,000), for
//! `cargo xtask bench crypto`. Needs the test database environment that xtask provides.
//! Prints one JSON object per line.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)] // a benchmark program

use std::sync::Arc;
use std::time::Instant;

use adapters_postgres::{PgStore, PoolOptions, ReencryptOptions, SecretColumns};
use chrono::DateTime;
use crypto::{FieldCipher, KeyRing, SealContext};
use sea_orm::ConnectionTrait;
use secrecy::SecretString;
use test_support::{TestDatabase, random_fernet_key};
use uuid::Uuid;

fn cipher(keys: &str) -> FieldCipher {
    FieldCipher::new(
        KeyRing::parse("K", &SecretString::from(keys.to_owned())).unwrap(),
        None,
    )
}

#[tokio::main]
async fn main() {
    let rows: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let organizations: u64 = 10;
    let db = TestDatabase::new().await;
    let admin = db.admin_pool().await;
    let (key1, key2) = (random_fernet_key(), random_fernet_key());
    let old = cipher(&key1);
    let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
    let secret = SecretString::from("sk-proj-0123456789abcdefghijklmnopqrstuv".to_owned());

    // Organizations, then models sealed under key 1, written in bulk as a superuser.
    let orgs: Vec<Uuid> = (0..organizations).map(|_| Uuid::now_v7()).collect();
    for org in &orgs {
        admin
            .execute_unprepared(&format!(
                "INSERT INTO organizations (id, name, created_at, updated_at)
                 VALUES ('{org}', 'bench', now(), now())"
            ))
            .await
            .unwrap();
    }
    let started = Instant::now();
    let mut values = Vec::with_capacity(1000);
    for i in 0..rows {
        let org = orgs[(i % organizations) as usize];
        let id = Uuid::now_v7();
        let place = SealContext {
            table: "models",
            column: "key",
            row_id: id,
            organization_id: org,
        };
        let sealed = old.seal(&place, &secret, now);
        values.push(format!(
            "('{id}', '{org}', 'm', 'gpt', 'openai', '{sealed}', 'sk-...stuv', now(), now())"
        ));
        if values.len() == 1000 || i + 1 == rows {
            admin
                .execute_unprepared(&format!(
                    "INSERT INTO models (id, organization_id, name, model_name, provider, key,
                     key_hint, created_at, updated_at) VALUES {}",
                    values.join(",")
                ))
                .await
                .unwrap();
            values.clear();
        }
    }
    eprintln!(
        "loaded {rows} rows in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let conn = adapters_postgres::connect(&db.app_url(), PoolOptions::default())
        .await
        .unwrap();
    let clock: Arc<dyn ports::Clock> = Arc::new(ports::SystemClock);
    let secrets = SecretColumns::new(cipher(&format!("{key2},{key1}")), Arc::clone(&clock));
    let audit_key =
        crypto::AuditChainKey::new("AUDIT_CHAIN_KEY", &SecretString::from(random_fernet_key()))
            .unwrap();
    let store = PgStore::new(conn, clock, Arc::new(secrets), Arc::new(audit_key));
    let options = ReencryptOptions {
        batch_size: 500,
        dry_run: false,
    };

    for (label, expect_rewritten) in [
        ("reencrypt rows (older key)", true),
        ("reencrypt rows (all current)", false),
    ] {
        let started = Instant::now();
        let report = adapters_postgres::unscoped_reencrypt(
            store.database(),
            store.secrets(),
            options,
            |_| {},
        )
        .await
        .unwrap();
        let seconds = started.elapsed().as_secs_f64();
        assert_eq!(report.scanned, rows);
        assert_eq!(report.reencrypted == rows, expect_rewritten);
        println!(
            "{{\"op\": \"{label}\", \"n\": {rows}, \"ops_per_sec\": {:.0}}}",
            rows as f64 / seconds
        );
    }
}
