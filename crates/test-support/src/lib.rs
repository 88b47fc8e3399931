//! Test harness: a fresh PostgreSQL database per test, migrated by the owner role, reached by
//! the application role — the same roles and grants as production.
//!
//! `cargo xtask test` provides the connection strings (a private cluster, or the server named
//! by `DATABASE_ADMIN_URL`): `TEST_DATABASE_ADMIN_URL` (a superuser, to create databases),
//! `TEST_MIGRATION_DATABASE_URL` (the owner role) and `TEST_DATABASE_URL` (the application
//! role). Each test database is copied from a template migrated once per test process.
#![allow(clippy::expect_used, clippy::panic)] // a harness that cannot set up must stop the test

use migration::MigratorTrait;
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};
use tokio::sync::OnceCell;
use url::Url;
use uuid::Uuid;

/// Prefix of every database the harness creates; `cargo xtask test` drops leftovers.
pub const DATABASE_PREFIX: &str = "rhtest_";

static TEMPLATE: OnceCell<String> = OnceCell::const_new();
static OUTAGE_TEMPLATE: OnceCell<String> = OnceCell::const_new();

#[derive(Debug, Clone)]
struct Env {
    admin: Url,
    owner: Url,
    app: Url,
}

fn env_url(name: &str) -> Url {
    let value = std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests with `cargo xtask test`, which provides it")
    });
    Url::parse(&value).unwrap_or_else(|_| panic!("{name} is not a URL"))
}

impl Env {
    fn load() -> Self {
        Self::prefixed("TEST_")
    }

    /// The URLs named `{prefix}DATABASE_ADMIN_URL`, `{prefix}MIGRATION_DATABASE_URL` and
    /// `{prefix}DATABASE_URL`.
    fn prefixed(prefix: &str) -> Self {
        Self {
            admin: env_url(&format!("{prefix}DATABASE_ADMIN_URL")),
            owner: env_url(&format!("{prefix}MIGRATION_DATABASE_URL")),
            app: env_url(&format!("{prefix}DATABASE_URL")),
        }
    }
}

fn with_database(url: &Url, database: &str) -> Url {
    let mut url = url.clone();
    url.set_path(&format!("/{database}"));
    url
}

async fn connect(url: &Url, max_connections: u32) -> DatabaseConnection {
    let mut options = ConnectOptions::new(url.as_str().to_owned());
    options
        .max_connections(max_connections)
        .min_connections(0)
        .sqlx_logging(false);
    Database::connect(options)
        .await
        .expect("connecting to the test database server")
}

async fn admin_exec(env: &Env, sql: &str) {
    let admin = connect(&env.admin, 1).await;
    admin
        .execute_unprepared(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    admin.close().await.expect("closing the admin connection");
}

async fn create_template(env: &Env) -> String {
    let app_role = env.app.username();
    assert_eq!(
        migration::app_role().expect("APP_DB_ROLE"),
        app_role,
        "APP_DB_ROLE must name the role of TEST_DATABASE_URL"
    );
    let name = format!("{DATABASE_PREFIX}tmpl_{}", Uuid::new_v4().simple());
    admin_exec(
        env,
        &format!("CREATE DATABASE {name} OWNER {}", env.owner.username()),
    )
    .await;
    let owner = connect(&with_database(&env.owner, &name), 1).await;
    migration::Migrator::up(&owner, None)
        .await
        .expect("migrating the template database");
    owner.close().await.expect("closing the owner connection");
    name
}

/// A database of its own for one test.
#[derive(Debug)]
pub struct TestDatabase {
    pub name: String,
    env: Env,
}

impl TestDatabase {
    /// Creates a fresh, migrated database.
    pub async fn new() -> Self {
        Self::from_template(Env::load(), &TEMPLATE).await
    }

    /// Creates a fresh, migrated database on the outage cluster, the one
    /// [`OutageCluster`] stops and starts.
    pub async fn on_outage_cluster() -> Self {
        Self::from_template(Env::prefixed("TEST_OUTAGE_"), &OUTAGE_TEMPLATE).await
    }

    async fn from_template(env: Env, template: &OnceCell<String>) -> Self {
        let template = template.get_or_init(|| create_template(&env)).await;
        let name = format!("{DATABASE_PREFIX}{}", Uuid::new_v4().simple());
        admin_exec(
            &env,
            &format!(
                "CREATE DATABASE {name} TEMPLATE {template} OWNER {}",
                env.owner.username()
            ),
        )
        .await;
        Self { name, env }
    }

    /// Connection string of the application role (least privilege, subject to RLS).
    pub fn app_url(&self) -> String {
        with_database(&self.env.app, &self.name).to_string()
    }

    /// Connection string of the owner role (runs migrations; FORCEd under RLS too).
    pub fn owner_url(&self) -> String {
        with_database(&self.env.owner, &self.name).to_string()
    }

    /// Connection string of a superuser to this database (sees everything; for checks that
    /// must refuse it).
    pub fn admin_url(&self) -> String {
        with_database(&self.env.admin, &self.name).to_string()
    }

    /// The application role's name.
    pub fn app_role(&self) -> String {
        self.env.app.username().to_owned()
    }

    /// The owner role's name.
    pub fn owner_role(&self) -> String {
        self.env.owner.username().to_owned()
    }

    /// A pool of the application role with at most `max_connections` connections.
    pub async fn app_pool(&self, max_connections: u32) -> DatabaseConnection {
        connect(&with_database(&self.env.app, &self.name), max_connections).await
    }

    /// A superuser connection to the server's maintenance database, for acting on this
    /// database as a whole (dropping it, say).
    pub async fn server_admin_pool(&self) -> DatabaseConnection {
        connect(&self.env.admin, 1).await
    }

    /// A superuser connection to this database: sees everything, for setting up and checking.
    pub async fn admin_pool(&self) -> DatabaseConnection {
        connect(&with_database(&self.env.admin, &self.name), 2).await
    }
}

/// The private cluster that `cargo xtask test` starts for tests to stop and start (the
/// shared cluster serves every other test meanwhile). One test at a time holds it
/// ([`OutageCluster::hold`]).
#[derive(Debug)]
pub struct OutageCluster {
    data: String,
    pg_ctl: String,
    run_as: Option<String>,
    _held: tokio::sync::MutexGuard<'static, ()>,
}

static OUTAGE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

impl OutageCluster {
    /// The cluster named by `TEST_OUTAGE_PGDATA`, `TEST_OUTAGE_PG_CTL` and
    /// `TEST_OUTAGE_RUN_AS`, once no other test of the process holds it; running.
    pub async fn hold() -> Self {
        let held = OUTAGE.lock().await;
        let var = |name: &str| {
            std::env::var(name).unwrap_or_else(|_| {
                panic!(
                    "{name} is not set: run the tests with `cargo xtask test`, which provides it"
                )
            })
        };
        let cluster = Self {
            data: var("TEST_OUTAGE_PGDATA"),
            pg_ctl: var("TEST_OUTAGE_PG_CTL"),
            run_as: std::env::var("TEST_OUTAGE_RUN_AS").ok(),
            _held: held,
        };
        // A test that failed while it was stopped leaves it so.
        if !cluster.is_running() {
            cluster.start();
        }
        cluster
    }

    fn is_running(&self) -> bool {
        self.command(&["status"])
            .status()
            .is_ok_and(|s| s.success())
    }

    fn command(&self, args: &[&str]) -> std::process::Command {
        let mut command = match &self.run_as {
            Some(user) => {
                let mut command = std::process::Command::new("runuser");
                command.args(["-u", user, "--", &self.pg_ctl]);
                command
            }
            None => std::process::Command::new(&self.pg_ctl),
        };
        command
            .args(args)
            .args(["-D", &self.data])
            .stdout(std::process::Stdio::null());
        command
    }

    fn pg_ctl(&self, args: &[&str]) {
        let output = self.command(args).output().expect("running pg_ctl");
        assert!(
            output.status.success(),
            "pg_ctl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Stops the cluster (fast: open connections are cut, as in a crash of the server).
    pub fn stop(&self) {
        self.pg_ctl(&["stop", "-m", "fast", "-w"]);
    }

    /// Starts it again with its settings, waiting until it accepts connections.
    pub fn start(&self) {
        let log = format!("{}/server.log", self.data);
        self.pg_ctl(&["start", "-w", "-t", "60", "-l", &log]);
    }
}

/// A fresh Fernet key in Python's format (url-safe base64 of 32 random bytes).
pub fn random_fernet_key() -> String {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    bytes[..16].copy_from_slice(Uuid::new_v4().as_bytes());
    bytes[16..].copy_from_slice(Uuid::new_v4().as_bytes());
    base64::engine::general_purpose::URL_SAFE.encode(bytes)
}

/// A free loopback port below the kernel's ephemeral range, for a process that binds it
/// itself (a server started as its own process, a provider restarted on its port).
///
/// A port taken from port 0 and released may be handed to any later bind to port 0 or any
/// outgoing connection before its process binds it again; ports below the ephemeral range
/// are given to nobody who does not ask for them by number.
pub fn unallocated_port() -> u16 {
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let span = low.saturating_sub(10_000).max(1);
    for _ in 0..1000 {
        let pick = u16::from_le_bytes([Uuid::new_v4().as_bytes()[0], Uuid::new_v4().as_bytes()[1]]);
        let port = low - span + pick % span;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port below {low}");
}

/// A clock that stands still until a test moves it.
#[derive(Debug)]
pub struct ManualClock {
    now: std::sync::Mutex<chrono::DateTime<chrono::Utc>>,
}

impl ManualClock {
    /// A clock showing `now`.
    pub fn at(now: chrono::DateTime<chrono::Utc>) -> std::sync::Arc<Self> {
        std::sync::Arc::new(Self {
            now: std::sync::Mutex::new(now),
        })
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: chrono::Duration) {
        let mut now = self
            .now
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *now += by;
    }
}

impl ports::Clock for ManualClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        *self
            .now
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A real OpenID Connect provider (the npm package `oidc-provider`, run by Node from
/// `crates/test-support/oidc`, installed by `cargo xtask test`) on a free loopback port.
/// Sign in with an account's `sub` as login and any password.
#[derive(Debug)]
pub struct OidcTestProvider {
    port: u16,
    clients: String,
    accounts: String,
    child: Option<std::process::Child>,
}

impl OidcTestProvider {
    /// Starts the provider with `clients` and `accounts` (JSON arrays, see `provider.mjs`),
    /// signing with a new key named `kid`.
    pub fn start(clients: &str, accounts: &str, kid: &str) -> Self {
        let port = unallocated_port();
        let mut provider = Self {
            port,
            clients: clients.to_owned(),
            accounts: accounts.to_owned(),
            child: None,
        };
        provider.spawn(kid);
        provider
    }

    fn spawn(&mut self, kid: &str) {
        use std::io::BufRead;
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("oidc");
        let mut child = std::process::Command::new("node")
            .arg(dir.join("provider.mjs"))
            .current_dir(&dir)
            .env("PORT", self.port.to_string())
            .env("CLIENTS", &self.clients)
            .env("ACCOUNTS", &self.accounts)
            .env("KID", kid)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("starting node (run the tests with `cargo xtask test`, which installs the provider)");
        let stdout = child.stdout.take().expect("the provider's output");
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the provider's first line");
        assert!(
            line.contains("\"ready\":true"),
            "the provider did not start: {line:?}"
        );
        self.child = Some(child);
    }

    /// The issuer URL, exactly as the provider's tokens name it.
    pub fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops the provider (its port is then closed: the provider is down).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Restarts the provider on the same port with a new signing key `kid` (a key rotation;
    /// the provider's sessions and codes are forgotten).
    pub fn restart(&mut self, kid: &str) {
        self.stop();
        self.spawn(kid);
    }

    /// Restarts the provider on the same port with `accounts` as they are now (the same
    /// people as the provider describes them later) and a new signing key `kid`.
    pub fn restart_with_accounts(&mut self, accounts: &str, kid: &str) {
        self.accounts = accounts.to_owned();
        self.restart(kid);
    }
}

impl Drop for OidcTestProvider {
    fn drop(&mut self) {
        self.stop();
    }
}
