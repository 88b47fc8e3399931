//! Tests of the whole server: real HTTP on a free port, real PostgreSQL, the application role.
//! One test binary for the crate.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests stop at the first surprise

mod audit;
mod auth;
mod binary;
mod blocks;
mod headers;
mod health;
mod invitations;
mod limits;
mod login;
mod matrix;
mod metrics;
mod permissions;
mod policy;
mod reencrypt;
mod replicas;
mod resources;
mod round_trips;
mod startup;
mod tokens;
mod transport;

use std::sync::{Arc, Mutex};

use adapters_postgres::{PgStore, SecretColumns};
use chrono::{DateTime, Utc};
use domain::{Email, Membership, Name, Role, UserId};
use ports::{
    Clock, IdentityDirectory, NewIdentity, NewOrganization, SystemClock, TenantScope,
    UnitOfWorkFactory,
};
use secrecy::SecretString;
use serde_json::Value;
use server::Application;
use server::config::{
    AuditArgs, AuthArgs, BlockArgs, BrowserArgs, DatabaseArgs, EncryptionArgs, LogFormat,
    LoginArgs, Profile, RateLimitArgs, ServeArgs, TlsArgs,
};
use test_support::TestDatabase;
use uuid::Uuid;

pub(crate) const ISSUER: &str = "rhesis-backend";
pub(crate) const AUDIENCE: &str = "rhesis-api";
/// The audit chain key of every server and store of the suite (one key, so that what a test
/// store appends and what a server verifies are one chain).
/// Random, as production requires (a phrase would be refused there).
pub(crate) const AUDIT_KEY: &str = "4kKVlXF8AQaSfcRkzthHqsXdZEJZOt-Xr3Dl4w4V48mo";

/// [`AUDIT_KEY`] as the stores take it.
pub(crate) fn audit_key() -> Arc<crypto::AuditChainKey> {
    Arc::new(
        crypto::AuditChainKey::new("AUDIT_CHAIN_KEY", &SecretString::from(AUDIT_KEY.to_owned()))
            .unwrap(),
    )
}

/// The frontend the test servers allow (CORS).
pub(crate) const FRONTEND: &str = "https://app.example.com";

pub(crate) struct TestApp {
    pub(crate) address: String,
    pub(crate) db: TestDatabase,
    pub(crate) client: reqwest::Client,
    /// The server's signing key.
    pub(crate) jwt_key: String,
    /// The store as the application role, for setting up tenants.
    pub(crate) store: PgStore,
    /// Every response received through [`TestApp::call`], headers and body as text.
    journal: Mutex<Vec<String>>,
    /// Secrets that no response after their registration may contain.
    secrets: Mutex<Vec<(usize, String)>>,
    /// What the server was started with, to start another on the same database.
    pub(crate) args: ServeArgs,
    /// The server's counted refusals: recorded before every look at the database or the
    /// audit routes, so a test sees each refusal as soon as it happened (the counting itself
    /// is proven by `audit::a_flood_of_refusals_is_counted_not_written_one_by_one`).
    pub(crate) refusals: Arc<api_http::RefusalLog>,
    /// The server's use cases, whose noted API token uses are written at the same moments.
    pub(crate) use_cases: app::App,
    /// The server's metrics listener, when `METRICS_BIND_ADDR` was set.
    pub(crate) metrics_address: Option<String>,
}

/// A response, read whole.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) text: String,
}

impl Reply {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }

    /// The values of `field` in each element of a JSON array body.
    pub(crate) fn pluck(&self, field: &str) -> Vec<Value> {
        self.json()
            .as_array()
            .map(|items| items.iter().map(|item| item[field].clone()).collect())
            .unwrap_or_default()
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `code` of a problem+json body, asserting that it is one.
    pub(crate) fn problem_code(&self) -> String {
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{self:?}"
        );
        self.json()["code"].as_str().unwrap_or_default().to_owned()
    }
}

impl Drop for TestApp {
    /// Every test that talks through `call` proves on its way out that no secret it
    /// registered came back in any later response, body or header.
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let journal = self.journal.lock().unwrap();
        for (since, secret) in self.secrets.lock().unwrap().iter() {
            for (n, response) in journal.iter().enumerate().skip(*since) {
                assert!(
                    !response.contains(secret.as_str()),
                    "response #{n} contains a secret: {response}"
                );
            }
        }
    }
}

/// A member of an organization, and what signs in as them.
#[derive(Debug, Clone)]
pub(crate) struct TestUser {
    pub(crate) id: UserId,
    pub(crate) membership: Membership,
}

impl TestUser {
    #[allow(clippy::disallowed_methods, reason = "a fixture's scope")]
    pub(crate) fn scope(&self) -> TenantScope {
        TenantScope::new(
            self.membership.organization_id,
            self.id,
            self.membership.role,
        )
    }
}

pub(crate) fn serve_args(profile: Profile, database_url: String) -> ServeArgs {
    serve_args_with_key(profile, database_url, test_support::random_fernet_key())
}

/// The private cluster's test CA (`cargo xtask test` names it).
pub(crate) fn database_ca() -> String {
    std::env::var("TEST_DATABASE_CA_CERT").unwrap_or_else(|_| {
        panic!("TEST_DATABASE_CA_CERT is not set: run the tests with `cargo xtask test`")
    })
}

/// `url` as production must reach the database: by the name on the private cluster's
/// certificate (`localhost`), over TLS that checks the certificate against the cluster's
/// test CA and the name (`sslmode=verify-full`).
pub(crate) fn verified(url: &str) -> String {
    let Ok(mut url) = url::Url::parse(url) else {
        return url.to_owned();
    };
    url.set_host(Some("localhost")).unwrap();
    url.query_pairs_mut()
        .append_pair("sslmode", "verify-full")
        .append_pair("sslrootcert", &database_ca());
    url.to_string()
}

/// Arguments for `profile` over `database_url`; in production the URL is [`verified`], as
/// production requires.
fn serve_args_with_key(profile: Profile, database_url: String, jwt_key: String) -> ServeArgs {
    let database_url = if profile == Profile::Production {
        verified(&database_url)
    } else {
        database_url
    };
    ServeArgs {
        profile,
        bind: "127.0.0.1:0".parse().unwrap(),
        workers: Some(1),
        max_body_bytes: 65_536,
        max_header_bytes: 16_384,
        shutdown_grace_seconds: 5,
        metrics_bind: None,
        database: DatabaseArgs {
            url: Some(SecretString::from(database_url)),
            url_file: None,
            max_connections: 4,
            acquire_timeout_ms: 3000,
            statement_timeout_ms: 30_000,
            ssl_root_cert: None,
        },
        encryption: EncryptionArgs {
            key: Some(SecretString::from(test_support::random_fernet_key())),
            key_file: None,
            plaintext_until: None,
            unbound_until: None,
        },
        auth: AuthArgs {
            jwt_key: Some(SecretString::from(jwt_key)),
            jwt_key_file: None,
            jwt_previous_key: None,
            jwt_previous_key_file: None,
            jwt_expire_minutes: 15,
            jwt_issuer: ISSUER.to_owned(),
            jwt_audience: AUDIENCE.to_owned(),
            fresh_auth_max_age: 600,
        },
        browser: BrowserArgs {
            frontend_url: Some(FRONTEND.to_owned()),
            cors_allowed_origins: vec![],
            trusted_proxies: vec![],
            forwarded_headers: api_http::ForwardedHeaders::XForwarded,
        },
        tls: TlsArgs::default(),
        // Generous: the suite's clients all come from 127.0.0.1. The limits have their own
        // tests with small budgets.
        limits: RateLimitArgs {
            per_ip_per_minute: 60_000,
            anonymous_per_minute: 60_000,
            auth_per_minute: 60_000,
            authenticated_per_minute: 60_000,
        },
        // Off: the suite's attacks all come from 127.0.0.1. The graduated response has its
        // own tests.
        blocks: BlockArgs {
            block_strikes: 0,
            block_strike_window_seconds: 600,
            block_first_seconds: 60,
            block_permanent_after: 5,
            block_memory_seconds: 86_400,
            block_strike_interval_ms: 1_000,
            block_refresh_ms: 5_000,
        },
        login: LoginArgs {
            auth0_domain: None,
            oidc_issuer_url: None,
            oidc_client_id: None,
            oidc_client_secret: None,
            oidc_client_secret_file: None,
            oidc_audience: None,
            oidc_organization: None,
            public_url: None,
            session_idle_minutes: 30,
            session_absolute_hours: 12,
        },
        audit: AuditArgs {
            chain_key: Some(SecretString::from(AUDIT_KEY.to_owned())),
            chain_key_file: None,
            head_log_seconds: 300,
            refusal_window_seconds: 60,
        },
        log_format: LogFormat::Json,
    }
}

/// A server on port 0 over a fresh database, connecting as the application role.
pub(crate) async fn spawn_app() -> TestApp {
    spawn_app_with(Profile::Test).await
}

pub(crate) async fn spawn_app_with(profile: Profile) -> TestApp {
    spawn_app_configured(profile, |_| {}).await
}

/// A server whose arguments `configure` may change first.
pub(crate) async fn spawn_app_configured(
    profile: Profile,
    configure: impl FnOnce(&mut ServeArgs),
) -> TestApp {
    spawn_app_clocked(profile, configure, Arc::new(SystemClock)).await
}

/// A server whose arguments `configure` may change first, reading time from `clock`.
pub(crate) async fn spawn_app_clocked(
    profile: Profile,
    configure: impl FnOnce(&mut ServeArgs),
    server_clock: Arc<dyn Clock>,
) -> TestApp {
    spawn_app_on(profile, configure, server_clock, None).await
}

/// As [`spawn_app_clocked`], serving on `listener` when one is given (a port the caller
/// had to know before the server started, held so that nobody else takes it meanwhile).
pub(crate) async fn spawn_app_on(
    profile: Profile,
    configure: impl FnOnce(&mut ServeArgs),
    server_clock: Arc<dyn Clock>,
    listener: Option<std::net::TcpListener>,
) -> TestApp {
    spawn_app_in(
        TestDatabase::new().await,
        profile,
        configure,
        server_clock,
        listener,
    )
    .await
}

/// A server over `db` whose arguments `configure` may change first.
pub(crate) async fn spawn_app_over(
    db: TestDatabase,
    profile: Profile,
    configure: impl FnOnce(&mut ServeArgs),
) -> TestApp {
    spawn_app_in(db, profile, configure, Arc::new(SystemClock), None).await
}

async fn spawn_app_in(
    db: TestDatabase,
    profile: Profile,
    configure: impl FnOnce(&mut ServeArgs),
    server_clock: Arc<dyn Clock>,
    listener: Option<std::net::TcpListener>,
) -> TestApp {
    if std::env::var_os("TEST_LOG").is_some() {
        server::telemetry::init(LogFormat::Pretty);
    }
    let jwt_key = test_support::random_fernet_key();
    let mut args = serve_args_with_key(profile, db.app_url(), jwt_key.clone());
    configure(&mut args);
    let (address, refusals, use_cases, metrics_address) = match listener {
        Some(listener) => start_server_on(&args, server_clock, listener).await,
        None => start_server(&args, server_clock).await,
    };
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let cipher = args.encryption.cipher().unwrap();
    let pool = adapters_postgres::PoolOptions {
        max_connections: 2,
        ..Default::default()
    };
    let store = PgStore::new(
        adapters_postgres::connect(&db.app_url(), pool)
            .await
            .unwrap(),
        Arc::clone(&clock),
        Arc::new(SecretColumns::new(cipher, clock)),
        audit_key(),
    );
    // The server's keys and the database password never appear in any response.
    let password = url::Url::parse(&db.app_url())
        .ok()
        .and_then(|u| u.password().map(str::to_owned));
    let encryption_key = args
        .encryption
        .key
        .as_ref()
        .map(|k| secrecy::ExposeSecret::expose_secret(k).to_owned());
    let secrets = [
        Some(jwt_key.clone()),
        encryption_key,
        password,
        Some(AUDIT_KEY.to_owned()),
    ]
    .into_iter()
    .flatten()
    .map(|s| (0, s))
    .collect();
    TestApp {
        address,
        db,
        client,
        jwt_key,
        store,
        journal: Mutex::new(Vec::new()),
        secrets: Mutex::new(secrets),
        args,
        refusals,
        use_cases,
        metrics_address,
    }
}

/// A free loopback port for a server started as its own process (one that nothing but a
/// bind by number can take meanwhile).
pub(crate) fn free_port() -> u16 {
    test_support::unallocated_port()
}

/// A running server's address, its counted refusals, its use cases and the address of its
/// metrics listener, if it has one.
pub(crate) type Running = (String, Arc<api_http::RefusalLog>, app::App, Option<String>);

/// Starts a server with `args` on a free port.
pub(crate) async fn start_server(args: &ServeArgs, clock: Arc<dyn Clock>) -> Running {
    let app = Application::build_with_clock(args, clock).await.unwrap();
    running(app)
}

/// As [`start_server`], serving on `listener`, bound by the caller beforehand.
pub(crate) async fn start_server_on(
    args: &ServeArgs,
    clock: Arc<dyn Clock>,
    listener: std::net::TcpListener,
) -> Running {
    let app = Application::build_listening(args, clock, listener)
        .await
        .unwrap();
    running(app)
}

fn running(app: Application) -> Running {
    let address = format!("http://127.0.0.1:{}", app.port());
    let (refusals, use_cases) = (app.refusals(), app.use_cases());
    let metrics = app
        .metrics_port()
        .map(|port| format!("http://127.0.0.1:{port}"));
    tokio::spawn(app.run_until_stopped());
    (address, refusals, use_cases, metrics)
}

impl TestApp {
    /// Records what the server counted or noted in memory (refusals, token and session
    /// uses) now.
    pub(crate) async fn record_deferred(&self) {
        self.refusals.flush(true).await;
        self.use_cases.record_token_uses().await;
        self.use_cases.record_session_touches().await;
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// The database as its superuser, once the counted refusals and noted token uses are
    /// recorded.
    pub(crate) async fn admin_pool(&self) -> sea_orm::DatabaseConnection {
        self.record_deferred().await;
        self.db.admin_pool().await
    }

    /// The single number an SQL query returns, run as the database superuser (to look at
    /// what the application role cannot).
    pub(crate) async fn count(&self, sql: &str) -> i64 {
        use sea_orm::ConnectionTrait;
        self.admin_pool()
            .await
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                sql.to_owned(),
            ))
            .await
            .unwrap()
            .unwrap()
            .try_get_by_index::<i64>(0)
            .unwrap()
    }

    /// The first column of every row an SQL query returns, as text, run as the database
    /// superuser.
    pub(crate) async fn strings(&self, sql: &str) -> Vec<String> {
        use sea_orm::ConnectionTrait;
        self.admin_pool()
            .await
            .query_all_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                sql.to_owned(),
            ))
            .await
            .unwrap()
            .iter()
            .map(|row| row.try_get_by_index::<String>(0).unwrap())
            .collect()
    }

    /// `POST /api/v1/tokens` named `name` with `jwt`; the token's value, when the reply has
    /// one, is registered as a secret.
    pub(crate) async fn create_api_token(&self, jwt: &str, name: &str) -> Reply {
        let body = serde_json::json!({ "name": name });
        let reply = self
            .call("POST", "/api/v1/tokens", Some(jwt), Some(&body))
            .await;
        if let Some(value) = reply.json()["token_value"].as_str() {
            self.secret(value);
        }
        reply
    }

    /// Registers a secret: no response from now on may contain it.
    pub(crate) fn secret(&self, value: &str) {
        let since = self.journal.lock().unwrap().len();
        self.secrets.lock().unwrap().push((since, value.to_owned()));
    }

    /// Sends `method path` with the bearer `token` and the JSON `body`, and journals the reply.
    pub(crate) async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        self.send(request).await
    }

    /// Sends a prepared request and journals the reply.
    pub(crate) async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let (client, request) = request.build_split();
        let request = request.unwrap();
        if request.url().path().starts_with("/api/v1/audit-events") {
            self.record_deferred().await;
        }
        let response = client.execute(request).await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let mut record = format!("{status}\n");
        for (name, value) in &headers {
            record.push_str(&format!(
                "{name}: {}\n",
                String::from_utf8_lossy(value.as_bytes())
            ));
        }
        record.push_str(&text);
        self.journal.lock().unwrap().push(record);
        Reply {
            status,
            headers,
            text,
        }
    }

    /// The server's token authority (same key, issuer and audience).
    pub(crate) fn authority(&self) -> crypto::JwtAuthority {
        crypto::JwtAuthority::new(
            &SecretString::from(self.jwt_key.clone()),
            None,
            ISSUER,
            AUDIENCE,
            chrono::Duration::minutes(15),
        )
        .unwrap()
    }

    /// An access token for `user`, issued at `now` for a login at `auth_time`.
    pub(crate) fn jwt_at(
        &self,
        user: &TestUser,
        now: DateTime<Utc>,
        auth_time: DateTime<Utc>,
    ) -> String {
        let token = self
            .authority()
            .issue(
                &crypto::Subject {
                    user: *user.id.as_uuid(),
                    organization: Some(*user.membership.organization_id.as_uuid()),
                    role: Some(user.membership.role.as_str().to_owned()),
                    auth_time,
                    session: None,
                },
                Uuid::now_v7(),
                now,
            )
            .unwrap();
        self.secret(&token);
        token
    }

    /// A fresh access token for `user` (logged in just now).
    pub(crate) fn jwt(&self, user: &TestUser) -> String {
        let now = SystemClock.now();
        self.jwt_at(user, now, now)
    }

    /// A new organization and its owner.
    pub(crate) async fn owner(&self, label: &str) -> TestUser {
        let resolved = self
            .store
            .unscoped_sign_in(NewIdentity {
                subject: format!("test|{label}-{}", Uuid::now_v7()),
                email: Email::new(&format!("{label}-{}@example.org", Uuid::now_v7())).unwrap(),
                email_verified: true,
                name: None,
            })
            .await
            .unwrap();
        let org = self
            .store
            .found_organization(
                resolved.user_id,
                NewOrganization::named(Name::new(label).unwrap()),
                ports::NewAuditEvent::by(
                    Some(resolved.user_id),
                    domain::AuditAction::OrganizationCreated,
                ),
            )
            .await
            .unwrap();
        TestUser {
            id: resolved.user_id,
            membership: Membership {
                organization_id: org.id,
                role: Role::Owner,
            },
        }
    }

    /// A new member of `owner`'s organization with `role`: signed in with a verified
    /// address, invited, and accepting (the one way in).
    pub(crate) async fn member(&self, owner: &TestUser, role: Role) -> TestUser {
        let email = Email::new(&format!("m-{}@example.org", Uuid::now_v7())).unwrap();
        let user = self
            .store
            .unscoped_sign_in(NewIdentity {
                subject: format!("test|member-{}", Uuid::now_v7()),
                email: email.clone(),
                email_verified: true,
                name: None,
            })
            .await
            .unwrap();
        let uow = self.store.begin(&owner.scope()).await.unwrap();
        let invitation = uow.invitations().create(email, role).await.unwrap();
        uow.commit().await.unwrap();
        self.store
            .accept_invitation(
                user.user_id,
                invitation.id,
                ports::NewAuditEvent::by(
                    Some(user.user_id),
                    domain::AuditAction::InvitationAccepted,
                ),
            )
            .await
            .unwrap();
        TestUser {
            id: user.user_id,
            membership: Membership {
                organization_id: owner.membership.organization_id,
                role,
            },
        }
    }
}
