//! The connection pool, opaque: the ORM stays inside the adapter.

use std::time::Duration;

use sea_orm::{ConnectOptions, DatabaseConnection, DbErr};

/// Pool settings.
#[derive(Debug, Clone, Copy)]
pub struct PoolOptions {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
        }
    }
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

/// Why the pool could not be opened. Its text and sources are the driver's; a URL's password
/// is never among them.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct DatabaseError(DbErr);

/// Opens a connection pool. Statement logging is off: bound values may be secrets.
pub async fn connect(url: &str, options: PoolOptions) -> Result<Database, DatabaseError> {
    let mut opt = ConnectOptions::new(url.to_owned());
    opt.max_connections(options.max_connections)
        .min_connections(0)
        .acquire_timeout(options.acquire_timeout)
        .connect_timeout(options.acquire_timeout)
        .sqlx_logging(false);
    let pool = sea_orm::Database::connect(opt)
        .await
        .map_err(DatabaseError)?;
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

    /// Closes the pool (every clone shares it): waits for the connections in use to come
    /// back, then closes them all; later uses fail as unavailable.
    pub async fn close(&self) -> Result<(), DatabaseError> {
        self.pool.close_by_ref().await.map_err(DatabaseError)
    }
}
