//! Running the migrations against a URL: the connection is the migration crate's own, so no
//! other crate hands it a pool of the ORM.

use std::time::Duration;

use sea_orm_migration::MigratorTrait;
use sea_orm_migration::sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbErr,
};

use crate::Migrator;

/// How long connecting (and waiting for the one connection) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What to do to the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Apply every pending migration.
    Up,
    /// Revert the last `n` applied migrations.
    Down(u32),
    /// Revert every applied migration, then apply them all again.
    Refresh,
}

/// The migrations by name, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub applied: Vec<String>,
    pub pending: Vec<String>,
}

/// Why a migration run failed. The text is the driver's or the migration's, never a URL's
/// password.
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error("could not connect to the database")]
    Connect(#[source] Cause),
    #[error("migration failed")]
    Run(#[source] Cause),
}

/// The database's own account of a failure (its text and its sources).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct Cause(DbErr);

/// Connects to `url` (one connection, statement logging off) and does `action`.
pub async fn run(url: &str, action: Action) -> Result<(), MigrationError> {
    let db = connect(url).await?;
    let done = match action {
        Action::Up => Migrator::up(&db, None).await,
        Action::Down(n) => Migrator::down(&db, Some(n)).await,
        Action::Refresh => Migrator::refresh(&db).await,
    };
    let done = match done {
        Ok(()) => db.execute_unprepared(RECORD_CHANGE).await.map(drop),
        failed => failed,
    };
    finish(db, done).await
}

/// After a migration run, a credential change is recorded for every replica's cache: a
/// migration may have changed how a credential is looked up, and what the caches hold was
/// found the old way.
const RECORD_CHANGE: &str = "DO $$ BEGIN \
     IF pg_catalog.to_regclass('public.credential_changes') IS NOT NULL THEN \
         INSERT INTO public.credential_changes (xid) VALUES (pg_catalog.pg_current_xact_id()) \
         ON CONFLICT (xid) DO NOTHING; \
     END IF; END $$";

/// Connects to `url` and reads which migrations are applied and which are pending.
pub async fn status(url: &str) -> Result<Status, MigrationError> {
    let db = connect(url).await?;
    let names = |migrations: Vec<sea_orm_migration::Migration>| {
        migrations.iter().map(|m| m.name().to_owned()).collect()
    };
    let read = async {
        Ok(Status {
            applied: names(Migrator::get_applied_migrations(&db).await?),
            pending: names(Migrator::get_pending_migrations(&db).await?),
        })
    }
    .await;
    finish(db, read).await
}

async fn connect(url: &str) -> Result<DatabaseConnection, MigrationError> {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(1)
        .min_connections(0)
        .acquire_timeout(CONNECT_TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT)
        .sqlx_logging(false);
    Database::connect(options)
        .await
        .map_err(|e| MigrationError::Connect(Cause(e)))
}

/// Closes `db`; the run's failure, if any, wins over the close's.
async fn finish<T>(db: DatabaseConnection, done: Result<T, DbErr>) -> Result<T, MigrationError> {
    let closed = db.close().await;
    let value = done.map_err(|e| MigrationError::Run(Cause(e)))?;
    closed.map_err(|e| MigrationError::Run(Cause(e)))?;
    Ok(value)
}
