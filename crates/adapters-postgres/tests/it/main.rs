//! Integration tests of the PostgreSQL adapters against a real server, connecting as the
//! application role. One test binary for the crate (link time matters on small machines).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests stop at the first surprise

mod audit;
mod blocks;
mod cache;
mod identity;
mod isolation;
mod login;
mod pages;
mod pool;
mod schema;
mod secrets;
mod tokens;

use std::sync::Arc;

use adapters_postgres::{PgStore, PoolOptions, SecretColumns};
use domain::{Email, Membership, Name, OrganizationId, ProjectId, Role, UserId};
use ports::{
    IdentityDirectory, NewIdentity, NewOrganization, NewProject, SystemClock, TenantScope,
    UnitOfWorkFactory,
};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use secrecy::SecretString;
use test_support::TestDatabase;

/// A user and their membership, as the store set them up (the application layer's
/// `Principal` is not the adapter's to build).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Member {
    user: UserId,
    membership: Membership,
}

impl Member {
    pub(crate) fn new(user: UserId, organization_id: OrganizationId, role: Role) -> Self {
        Self {
            user,
            membership: Membership {
                organization_id,
                role,
            },
        }
    }

    pub(crate) fn user_id(&self) -> UserId {
        self.user
    }

    pub(crate) fn membership(&self) -> Option<Membership> {
        Some(self.membership)
    }

    #[allow(clippy::disallowed_methods, reason = "a fixture's scope")]
    pub(crate) fn tenant_scope(&self) -> Option<TenantScope> {
        let Membership {
            organization_id,
            role,
        } = self.membership;
        Some(TenantScope::new(organization_id, self.user, role))
    }
}

/// One organization with an owner and a project.
pub(crate) struct Tenant {
    pub(crate) principal: Member,
    pub(crate) org: OrganizationId,
    pub(crate) project: ProjectId,
}

impl Tenant {
    pub(crate) fn scope(&self) -> TenantScope {
        self.principal.tenant_scope().unwrap()
    }
}

/// Two organizations, A and B, in a fresh database.
pub(crate) struct World {
    pub(crate) db: TestDatabase,
    pub(crate) store: PgStore,
    pub(crate) a: Tenant,
    pub(crate) b: Tenant,
}

pub(crate) async fn store_for(db: &TestDatabase, max_connections: u32) -> PgStore {
    store_with(
        db,
        max_connections,
        &test_support::random_fernet_key(),
        None,
    )
    .await
}

/// A store over `db` whose secret columns use `keys` and the given plaintext window.
pub(crate) async fn store_with(
    db: &TestDatabase,
    max_connections: u32,
    keys: &str,
    plaintext_until: Option<chrono::DateTime<chrono::Utc>>,
) -> PgStore {
    let windows = Windows {
        plaintext_until,
        unbound_until: None,
    };
    store_clocked(db, max_connections, keys, windows, Arc::new(SystemClock)).await
}

/// The windows in which legacy values still open.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Windows {
    pub(crate) plaintext_until: Option<chrono::DateTime<chrono::Utc>>,
    pub(crate) unbound_until: Option<chrono::DateTime<chrono::Utc>>,
}

/// As [`store_with`], reading time from `clock`.
pub(crate) async fn store_clocked(
    db: &TestDatabase,
    max_connections: u32,
    keys: &str,
    windows: Windows,
    clock: Arc<dyn ports::Clock>,
) -> PgStore {
    let options = PoolOptions {
        max_connections,
        ..PoolOptions::default()
    };
    let conn = adapters_postgres::connect(&db.app_url(), options)
        .await
        .unwrap();
    let ring =
        crypto::KeyRing::parse("DB_ENCRYPTION_KEY", &SecretString::from(keys.to_owned())).unwrap();
    let cipher = crypto::FieldCipher::new(ring, windows.plaintext_until)
        .with_unbound_until(windows.unbound_until);
    let secrets = SecretColumns::new(cipher, Arc::clone(&clock));
    PgStore::new(
        conn,
        clock,
        Arc::new(secrets),
        Arc::new(audit_key(AUDIT_KEY)),
    )
}

/// The audit chain key of the stores of these tests.
pub(crate) const AUDIT_KEY: &str = "the-audit-chain-key-of-the-adapter-tests-0123456789";

/// An audit chain key from `text` (at least 32 bytes).
pub(crate) fn audit_key(text: &str) -> crypto::AuditChainKey {
    crypto::AuditChainKey::new("AUDIT_CHAIN_KEY", &SecretString::from(text.to_owned())).unwrap()
}

/// A fixed instant for tests that move a clock.
pub(crate) fn t0() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap()
}

/// A fresh database and a store over it whose clock shows [`t0`] until the test moves it.
pub(crate) async fn clocked() -> (TestDatabase, Arc<test_support::ManualClock>, PgStore) {
    let db = TestDatabase::new().await;
    let clock = test_support::ManualClock::at(t0());
    let store = store_clocked(
        &db,
        4,
        &test_support::random_fernet_key(),
        Windows::default(),
        clock.clone(),
    )
    .await;
    (db, clock, store)
}

pub(crate) async fn tenant(store: &PgStore, label: &str) -> Tenant {
    let user = store
        .unscoped_sign_in(NewIdentity {
            subject: format!("auth0|{label}"),
            email: Email::new(&format!("owner@{label}.example")).unwrap(),
            email_verified: true,
            name: Some(Name::new(&format!("Owner of {label}")).unwrap()),
        })
        .await
        .unwrap();
    let org = store
        .found_organization(
            user.user_id,
            NewOrganization::named(Name::new(&format!("Organization {label}")).unwrap()),
            ports::NewAuditEvent::by(Some(user.user_id), domain::AuditAction::OrganizationCreated),
        )
        .await
        .unwrap();
    let principal = Member::new(user.user_id, org.id, Role::Owner);
    let uow = store
        .begin(&principal.tenant_scope().unwrap())
        .await
        .unwrap();
    let project = uow
        .projects()
        .create(NewProject {
            name: Name::new(&format!("Project of {label}")).unwrap(),
            description: None,
            icon: None,
        })
        .await
        .unwrap();
    uow.commit().await.unwrap();
    Tenant {
        principal,
        org: org.id,
        project: project.id,
    }
}

/// A person who signs in with `email` (verified), is invited into `tenant`'s organization
/// with `role` and accepts: the one way into an organization.
pub(crate) async fn joined(store: &PgStore, tenant: &Tenant, email: &str, role: Role) -> UserId {
    let email = Email::new(email).unwrap();
    let user = store
        .unscoped_sign_in(NewIdentity {
            subject: format!("idp|{}", uuid::Uuid::now_v7()),
            email: email.clone(),
            email_verified: true,
            name: None,
        })
        .await
        .unwrap();
    let uow = store.begin(&tenant.scope()).await.unwrap();
    let invitation = uow.invitations().create(email, role).await.unwrap();
    uow.commit().await.unwrap();
    let joined = store
        .accept_invitation(
            user.user_id,
            invitation.id,
            ports::NewAuditEvent::by(Some(user.user_id), domain::AuditAction::InvitationAccepted),
        )
        .await
        .unwrap();
    assert_eq!(joined.organization_id, tenant.org);
    user.user_id
}

pub(crate) async fn world() -> World {
    let db = TestDatabase::new().await;
    let store = store_for(&db, 4).await;
    let a = tenant(&store, "a").await;
    let b = tenant(&store, "b").await;
    World { db, store, a, b }
}

/// Runs a query and returns the first column of every row as text.
pub(crate) async fn texts(conn: &impl ConnectionTrait, sql: &str) -> Vec<Option<String>> {
    conn.query_all_raw(Statement::from_string(DbBackend::Postgres, sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|row| row.try_get_by_index::<Option<String>>(0).unwrap())
        .collect()
}

/// Runs a query whose single row and column is a count.
pub(crate) async fn count(conn: &impl ConnectionTrait, sql: &str) -> i64 {
    conn.query_one_raw(Statement::from_string(DbBackend::Postgres, sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .unwrap()
        .try_get_by_index::<i64>(0)
        .unwrap()
}

/// The error text of a statement that must fail.
pub(crate) async fn fails(conn: &impl ConnectionTrait, sql: &str) -> String {
    match conn.execute_unprepared(sql).await {
        Ok(result) => panic!(
            "{sql} succeeded ({} rows) but must fail",
            result.rows_affected()
        ),
        Err(e) => e.to_string(),
    }
}

/// Inserts one row into each secret-bearing tenant table for `org`, as a superuser (the
/// adapters for those tables arrive later; the isolation must hold already).
pub(crate) async fn seed_other_tables(admin: &DatabaseConnection, tenant: &Tenant) {
    let org = tenant.org;
    let user = tenant.principal.user_id();
    let sql = format!(
        "INSERT INTO endpoints (id, organization_id, name, url, created_at, updated_at)
           VALUES (gen_random_uuid(), '{org}', 'e', 'https://x.example', now(), now());
         INSERT INTO models (id, organization_id, name, model_name, provider, created_at, updated_at)
           VALUES (gen_random_uuid(), '{org}', 'm', 'gpt', 'openai', now(), now());
         INSERT INTO api_tokens (id, organization_id, user_id, name, token, token_digest,
                                 token_hint, created_at, updated_at)
           VALUES (gen_random_uuid(), '{org}', '{user}', 't', 'sealed',
                   sha256(gen_random_uuid()::text::bytea), 'rh-...abcd', now(), now());
         INSERT INTO audit_events (id, organization_id, seq, occurred_at, action, outcome,
                                   prev_hash, hash, hash_version)
           VALUES (gen_random_uuid(), '{org}', 1000, now(), 'project.created', 'success',
                   sha256(''::bytea), sha256('x'::bytea), 2);
         INSERT INTO sessions (id_hash, user_id, created_at, last_seen_at, expires_at)
           VALUES (sha256(gen_random_uuid()::text::bytea), '{user}', now(), now(),
                   now() + interval '1 hour');"
    );
    admin.execute_unprepared(&sql).await.unwrap();
}
