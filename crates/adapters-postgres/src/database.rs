//! The connection pool, opaque: the ORM stays inside the adapter.

use std::path::PathBuf;
use std::time::Duration;

use sea_orm::sqlx::postgres::{PgConnectOptions, PgSslMode};
use sea_orm::{ConnectOptions, DatabaseConnection, DbErr};

/// Pool settings.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    /// The CA certificates (PEM) the server's certificate must chain to, instead of the
    /// URL's `sslrootcert`.
    pub root_cert: Option<PathBuf>,
    /// PostgreSQL's `statement_timeout` for every connection: a statement that runs longer
    /// (waiting on a lock, say) is cancelled and the request answered 503.
    pub statement_timeout: Option<Duration>,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
            root_cert: None,
            statement_timeout: None,
        }
    }
}

/// A pool's connections at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolState {
    pub in_use: u32,
    pub idle: u32,
    pub max: u32,
}

/// How a connection string reaches its server, as the driver reads it (with the
/// environment's `PGSSLMODE`, `PGHOST`, ... where the URL is silent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A Unix domain socket: no network between the server and the database.
    UnixSocket,
    /// TCP, with the URL's `sslmode`.
    Tcp(TlsMode),
}

/// `sslmode`, as libpq names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl TlsMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Allow => "allow",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }
}

/// A connection string refused before the driver sees it. Its text is never repeated, not
/// even a parameter's name: it may hold a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidUrl {
    #[error("not a URL")]
    NotAUrl,
    #[error("the scheme is not postgres:// or postgresql://")]
    Scheme,
    #[error("a query parameter the driver does not know (see docs/operations.md)")]
    UnknownParameter,
    #[error("a value the driver does not take")]
    Value,
}

/// The query parameters the driver reads (any other it would ignore, logging its value).
const PARAMETERS: [&str; 18] = [
    "sslmode",
    "ssl-mode",
    "sslrootcert",
    "ssl-root-cert",
    "ssl-ca",
    "sslcert",
    "ssl-cert",
    "sslkey",
    "ssl-key",
    "statement-cache-capacity",
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "application_name",
    "options",
];

/// `url` as the driver reads it, refused when it names another scheme (the ORM would repeat
/// the whole string, password included, in its error) or a parameter the driver would
/// ignore (logging its value).
fn options(url: &str) -> Result<PgConnectOptions, InvalidUrl> {
    let parsed = url::Url::parse(url).map_err(|_| InvalidUrl::NotAUrl)?;
    if !matches!(parsed.scheme(), "postgres" | "postgresql") {
        return Err(InvalidUrl::Scheme);
    }
    let known = |key: &str| PARAMETERS.contains(&key) || key.starts_with("options[");
    if !parsed.query_pairs().all(|(key, _)| known(&key)) {
        return Err(InvalidUrl::UnknownParameter);
    }
    url.parse().map_err(|_| InvalidUrl::Value)
}

/// How `url` reaches its server.
pub fn transport(url: &str) -> Result<Transport, InvalidUrl> {
    let options = options(url)?;
    if options.get_socket().is_some() || options.get_host().starts_with('/') {
        return Ok(Transport::UnixSocket);
    }
    Ok(Transport::Tcp(match options.get_ssl_mode() {
        PgSslMode::Disable => TlsMode::Disable,
        PgSslMode::Allow => TlsMode::Allow,
        PgSslMode::Prefer => TlsMode::Prefer,
        PgSslMode::Require => TlsMode::Require,
        PgSslMode::VerifyCa => TlsMode::VerifyCa,
        PgSslMode::VerifyFull => TlsMode::VerifyFull,
    }))
}

/// A pool of connections to the application's database, as [`connect`] opened it. Clones
/// share the pool.
#[derive(Clone)]
pub struct Database {
    pool: DatabaseConnection,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database").finish_non_exhaustive()
    }
}

/// Why the pool could not be opened. Its text and sources are ours or the driver's (for a
/// URL [`transport`] takes); a URL's password is never among them.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    #[error(transparent)]
    Url(#[from] InvalidUrl),
    #[error(transparent)]
    Driver(DbErr),
}

/// Opens a connection pool. Statement logging is off: bound values may be secrets.
pub async fn connect(url: &str, options: PoolOptions) -> Result<Database, DatabaseError> {
    self::options(url)?;
    let mut opt = ConnectOptions::new(url.to_owned());
    opt.max_connections(options.max_connections)
        .min_connections(0)
        .acquire_timeout(options.acquire_timeout)
        .connect_timeout(options.acquire_timeout)
        .sqlx_logging(false);
    let (root_cert, statement_timeout) = (options.root_cert, options.statement_timeout);
    opt.map_sqlx_postgres_opts(move |mut pg| {
        if let Some(root_cert) = &root_cert {
            pg = pg.ssl_root_cert(root_cert);
        }
        if let Some(timeout) = statement_timeout {
            // Milliseconds, PostgreSQL's unit for a bare number.
            pg = pg.options([("statement_timeout", timeout.as_millis())]);
        }
        pg
    });
    let pool = sea_orm::Database::connect(opt)
        .await
        .map_err(DatabaseError::Driver)?;
    Ok(Database { pool })
}

impl Database {
    /// Calls `f` with the text of every statement this pool runs from now on (with `$1`, `$2`
    /// placeholders: the statement text only, never its bound values), replacing any earlier
    /// `f`. For tests and diagnostics: clones made afterwards share `f`, earlier clones do not.
    pub fn on_statement(&mut self, f: impl Fn(&str) + Send + Sync + 'static) {
        self.pool
            .set_metric_callback(move |info| f(&info.statement.sql));
    }

    pub(crate) fn pool(&self) -> &DatabaseConnection {
        &self.pool
    }

    /// The pool's connections now; `None` once it is closed.
    pub fn pool_state(&self) -> Option<PoolState> {
        // Every `Database` is a PostgreSQL pool: [`connect`] makes no other.
        let pool = self.pool.get_postgres_connection_pool();
        if pool.is_closed() {
            return None;
        }
        let idle = u32::try_from(pool.num_idle()).unwrap_or(u32::MAX);
        Some(PoolState {
            in_use: pool.size().saturating_sub(idle),
            idle,
            max: pool.options().get_max_connections(),
        })
    }

    /// Closes the pool (every clone shares it): waits for the connections in use to come
    /// back, then closes them all; later uses fail as unavailable.
    pub async fn close(&self) -> Result<(), DatabaseError> {
        self.pool
            .close_by_ref()
            .await
            .map_err(DatabaseError::Driver)
    }
}
