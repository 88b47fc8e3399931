//! Key rotation end to end: re-encryption under load, after a crash, and the startup check.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;

use adapters_postgres::{PgStore, PoolOptions, ReencryptOptions, SecretColumns};
use domain::{Email, ModelId, Name, RequestHeaders, Role};
use ports::{
    IdentityDirectory, ModelPatch, NewIdentity, NewModel, NewOrganization, SecretPatch,
    SystemClock, TenantScope, UnitOfWorkFactory,
};
use sea_orm::ConnectionTrait;
use secrecy::{ExposeSecret, SecretString};
use server::config::Profile;
use server::{Application, StartupError};
use test_support::{TestDatabase, random_fernet_key};

use crate::serve_args;

async fn store(db: &TestDatabase, keys: &str, window: bool) -> PgStore {
    let options = PoolOptions {
        max_connections: 4,
        ..PoolOptions::default()
    };
    let conn = adapters_postgres::connect(&db.app_url(), options)
        .await
        .unwrap();
    let ring = crypto::KeyRing::parse("K", &SecretString::from(keys.to_owned())).unwrap();
    let until = window.then_some(chrono::DateTime::<chrono::Utc>::MAX_UTC);
    let clock: Arc<dyn ports::Clock> = Arc::new(SystemClock);
    let cipher = crypto::FieldCipher::new(ring, until).with_unbound_until(until);
    let secrets = SecretColumns::new(cipher, Arc::clone(&clock));
    PgStore::new(conn, clock, Arc::new(secrets), crate::audit_key())
}

/// An organization with `models` models, each with the key `sk-<label>-<n>`.
#[allow(clippy::disallowed_methods, reason = "a fixture's scope")]
async fn organization(store: &PgStore, label: &str, models: usize) -> (TenantScope, Vec<ModelId>) {
    let user = store
        .unscoped_sign_in(NewIdentity {
            subject: format!("test|{label}"),
            email: Email::new(&format!("owner@{label}.example")).unwrap(),
            email_verified: true,
            name: None,
        })
        .await
        .unwrap();
    let name = Name::new(label).unwrap();
    let org = store
        .found_organization(
            user.user_id,
            NewOrganization::named(name),
            ports::NewAuditEvent::by(None, domain::AuditAction::OrganizationCreated),
        )
        .await
        .unwrap();
    let scope = TenantScope::new(org.id, user.user_id, Role::Owner);
    let uow = store.begin(&scope).await.unwrap();
    let mut ids = Vec::new();
    for n in 0..models {
        let model = uow
            .models()
            .create(NewModel {
                name: Name::new(&format!("model {n}")).unwrap(),
                description: None,
                model_name: Name::new("gpt").unwrap(),
                provider: Name::new("openai").unwrap(),
                endpoint: None,
                request_headers: RequestHeaders::default(),
                key: Some(SecretString::from(format!("sk-{label}-{n}"))),
            })
            .await
            .unwrap();
        ids.push(model.id);
    }
    uow.commit().await.unwrap();
    (scope, ids)
}

async fn keys_of(store: &PgStore, scope: &TenantScope, ids: &[ModelId]) -> Vec<String> {
    let uow = store.begin(scope).await.unwrap();
    let mut keys = Vec::new();
    for id in ids {
        keys.push(
            uow.models()
                .unseal_key(*id)
                .await
                .unwrap()
                .unwrap()
                .expose_secret()
                .to_owned(),
        );
    }
    keys
}

#[tokio::test]
async fn rotation_end_to_end_with_legacy_values() {
    let db = TestDatabase::new().await;
    let (key1, key2) = (random_fernet_key(), random_fernet_key());
    let old = store(&db, &key1, false).await;
    let (scope_a, models_a) = organization(&old, "a", 3).await;
    let (scope_b, models_b) = organization(&old, "b", 2).await;

    // Legacy values, written around the application: a bare Fernet token (as the Python
    // backend wrote them) and plaintext from before encryption.
    let bare = crypto::KeyRing::parse("K", &SecretString::from(key1.clone()))
        .unwrap()
        .encrypt_at(
            b"sk-a-1",
            chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
        );
    let admin = db.admin_pool().await;
    admin
        .execute_unprepared(&format!(
            "UPDATE models SET key = '{bare}' WHERE id = '{}';
             UPDATE models SET key = 'sk-a-2' WHERE id = '{}';",
            models_a[1], models_a[2]
        ))
        .await
        .unwrap();

    let rotated = store(&db, &format!("{key2},{key1}"), true).await;
    let dry = adapters_postgres::unscoped_reencrypt(
        rotated.database(),
        rotated.secrets(),
        ReencryptOptions {
            batch_size: 2,
            dry_run: true,
        },
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(dry.scanned, 5);
    assert_eq!(
        dry.per_key,
        BTreeMap::from([(1, 4)]),
        "four values under key #2, one plaintext"
    );
    assert_eq!(
        (dry.reencrypted, dry.rebound, dry.plaintext_encrypted),
        (3, 1, 1)
    );
    let untouched = store(&db, &key1, true).await;
    assert_eq!(
        keys_of(&untouched, &scope_a, &models_a).await,
        ["sk-a-0", "sk-a-1", "sk-a-2"]
    );

    let report = adapters_postgres::unscoped_reencrypt(
        rotated.database(),
        rotated.secrets(),
        ReencryptOptions {
            batch_size: 2,
            dry_run: false,
        },
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(
        (
            report.scanned,
            report.reencrypted,
            report.rebound,
            report.plaintext_encrypted
        ),
        (5, 3, 1, 1)
    );
    assert!(report.failures.is_empty(), "{:?}", report.failures);

    // The old key can go: key2 alone, without a plaintext window, reads everything.
    let new_only = store(&db, &key2, false).await;
    assert_eq!(
        keys_of(&new_only, &scope_a, &models_a).await,
        ["sk-a-0", "sk-a-1", "sk-a-2"]
    );
    assert_eq!(
        keys_of(&new_only, &scope_b, &models_b).await,
        ["sk-b-0", "sk-b-1"]
    );

    // Idempotent: a second run finds everything current.
    let again = adapters_postgres::unscoped_reencrypt(
        new_only.database(),
        new_only.secrets(),
        ReencryptOptions {
            batch_size: 2,
            dry_run: false,
        },
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(
        (again.scanned, again.already_current, again.reencrypted),
        (5, 5, 0)
    );
}

#[tokio::test]
async fn a_killed_run_is_finished_by_the_next_one() {
    let db = TestDatabase::new().await;
    let (key1, key2) = (random_fernet_key(), random_fernet_key());
    let old = store(&db, &key1, false).await;
    let (scope, models) = organization(&old, "a", 40).await;
    let expected: Vec<String> = (0..40).map(|n| format!("sk-a-{n}")).collect();

    // The real binary, one row per batch, killed after its first batches.
    let mut child = Command::new(env!("CARGO_BIN_EXE_rhesis-server"))
        .args(["reencrypt", "--batch-size", "1"])
        .env_clear()
        .env("APP_ENV", "test")
        .env("DATABASE_URL", db.app_url())
        .env("DB_ENCRYPTION_KEY", format!("{key2},{key1}"))
        .env("AUDIT_CHAIN_KEY", crate::AUDIT_KEY)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = 0;
    while seen < 5 {
        let line = lines
            .next()
            .expect("the run ended before it was killed")
            .unwrap();
        if line.contains("models.key: scanned") {
            seen += 1;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let rotated = store(&db, &format!("{key2},{key1}"), false).await;
    let midway = adapters_postgres::unscoped_reencrypt(
        rotated.database(),
        rotated.secrets(),
        ReencryptOptions {
            batch_size: 7,
            dry_run: true,
        },
        |_| {},
    )
    .await
    .unwrap();
    assert!(
        midway.already_current >= 4,
        "some rows were done before the kill: {midway:?}"
    );
    assert!(midway.reencrypted > 0, "and some were not: {midway:?}");

    let finished = adapters_postgres::unscoped_reencrypt(
        rotated.database(),
        rotated.secrets(),
        ReencryptOptions {
            batch_size: 7,
            dry_run: false,
        },
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(finished.already_current + finished.reencrypted, 40);
    assert!(finished.failures.is_empty());
    let new_only = store(&db, &key2, false).await;
    assert_eq!(
        keys_of(&new_only, &scope, &models).await,
        expected,
        "no plaintext changed"
    );
}

#[tokio::test]
async fn writes_during_a_run_are_never_lost() {
    let db = TestDatabase::new().await;
    let (key1, key2) = (random_fernet_key(), random_fernet_key());
    let old = store(&db, &key1, false).await;
    let (scope, models) = organization(&old, "a", 30).await;
    let rotated = Arc::new(store(&db, &format!("{key2},{key1}"), false).await);

    // A writer keeps changing keys (the application writes under the primary key) while the
    // re-encryption walks the same rows in small batches.
    let writer = {
        let (rotated, models) = (Arc::clone(&rotated), models.clone());
        tokio::spawn(async move {
            let mut last = BTreeMap::new();
            for round in 0..4 {
                for (n, id) in models
                    .iter()
                    .enumerate()
                    .filter(|(n, _)| n % 3 == round % 3)
                {
                    let value = format!("sk-new-{round}-{n}");
                    let uow = rotated.begin(&scope).await.unwrap();
                    let patch = ModelPatch {
                        key: SecretPatch::Set(SecretString::from(value.clone())),
                        ..Default::default()
                    };
                    uow.models().update(*id, patch).await.unwrap();
                    uow.commit().await.unwrap();
                    last.insert(n, value);
                }
            }
            last
        })
    };
    let report = adapters_postgres::unscoped_reencrypt(
        rotated.database(),
        rotated.secrets(),
        ReencryptOptions {
            batch_size: 3,
            dry_run: false,
        },
        |_| {},
    )
    .await
    .unwrap();
    let last = writer.await.unwrap();
    assert!(report.failures.is_empty());

    let new_only = store(&db, &key2, false).await;
    let keys = keys_of(&new_only, &scope, &models).await;
    for (n, key) in keys.iter().enumerate() {
        let expected = last.get(&n).cloned().unwrap_or_else(|| format!("sk-a-{n}"));
        assert_eq!(key, &expected, "model {n}");
    }
}

#[tokio::test]
async fn production_refuses_to_start_when_stored_secrets_do_not_open() {
    let db = TestDatabase::new().await;
    let written_with = random_fernet_key();
    let old = store(&db, &written_with, false).await;
    organization(&old, "a", 2).await;

    let mut args = serve_args(Profile::Production, db.app_url());
    args.encryption.key = Some(SecretString::from(random_fernet_key()));
    match Application::build(&args).await {
        Err(StartupError::UnopenableSecrets(columns)) => {
            assert!(columns.contains("models.key (2 of 2 sampled)"), "{columns}");
            assert!(!columns.contains("sk-a-"), "{columns}");
        }
        other => panic!("a wrong key must stop production, got {other:?}"),
    }
    // Development warns and starts.
    let mut dev = serve_args(Profile::Development, db.app_url());
    dev.encryption.key = args.encryption.key.clone();
    assert!(Application::build(&dev).await.is_ok());
    // The right key starts production.
    args.encryption.key = Some(SecretString::from(written_with));
    assert!(Application::build(&args).await.is_ok());
}
