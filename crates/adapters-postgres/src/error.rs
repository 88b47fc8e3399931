//! Database errors mapped to the port's errors. Driver text stays inside `Unexpected`'s
//! source, which only the log sees.

use ports::StoreError;
use sea_orm::{DbErr, RuntimeErr};

/// A row read from the database broke a rule of the domain (for instance a name longer than
/// the domain allows). It means the data was written around the application.
#[derive(Debug, thiserror::Error)]
#[error("row {table}.{id} holds an invalid {column}")]
pub(crate) struct CorruptRow {
    pub(crate) table: &'static str,
    pub(crate) column: &'static str,
    pub(crate) id: uuid::Uuid,
}

pub(crate) fn corrupt(table: &'static str, column: &'static str, id: uuid::Uuid) -> StoreError {
    StoreError::Unexpected(Box::new(CorruptRow { table, column, id }))
}

/// Names of unique constraints, as the port reports them.
const UNIQUE_CONSTRAINTS: &[(&str, &str)] = &[
    ("users_email_key", "users.email"),
    ("users_verified_email_key", "users.email"),
    ("invitations_once_per_organization", "invitations.email"),
    ("users_idp_subject_key", "users.idp_subject"),
    ("organizations_pkey", "organizations.id"),
    ("projects_pkey", "projects.id"),
    ("users_pkey", "users.id"),
];

/// Names of foreign keys, as the port reports the missing reference.
const FOREIGN_KEYS: &[(&str, &str)] = &[
    ("projects_owner_id_fkey", "user"),
    ("projects_created_by_fkey", "user"),
    ("organizations_owner_fk", "user"),
];

/// SQLSTATEs that say the database is unavailable, not that the statement was wrong.
fn is_unavailable(code: &str) -> bool {
    code.starts_with("08")
        // admin_shutdown, crash_shutdown, cannot_connect_now, too_many_connections,
        // query_canceled (the statement timeout), lock_not_available
        || matches!(code, "57P01" | "57P02" | "57P03" | "53300" | "57014" | "55P03")
}

pub(crate) fn map_db_err(err: DbErr) -> StoreError {
    let timed_out = match &err {
        DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::Timeout) => true,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            matches!(&**e, sea_orm::sqlx::Error::PoolTimedOut)
        }
        _ => false,
    };
    if timed_out {
        metrics::counter!(crate::metrics::POOL_ACQUIRE_TIMEOUTS).increment(1);
    }
    let sqlx_error = match &err {
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => Some(e),
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => {
            return StoreError::Unavailable(Box::new(err));
        }
        _ => None,
    };
    if let Some(sea_orm::sqlx::Error::Database(db)) = sqlx_error.map(|e| &**e) {
        let constraint = db.constraint().unwrap_or_default();
        match db.code().as_deref() {
            // unique_violation
            Some("23505") => {
                let what = UNIQUE_CONSTRAINTS
                    .iter()
                    .find(|(name, _)| *name == constraint)
                    .map_or("value", |(_, what)| what);
                return StoreError::Duplicate { what };
            }
            // foreign_key_violation
            Some("23503") => {
                let what = FOREIGN_KEYS
                    .iter()
                    .find(|(name, _)| *name == constraint)
                    .map_or("row", |(_, what)| what);
                return StoreError::MissingReference { what };
            }
            // insufficient_privilege: a row-level security WITH CHECK refused the row
            Some("42501") => return StoreError::TenantViolation,
            // The server going away or not taking connections: a connection exception, a
            // shutdown or crash that ended the session, a server starting or stopping, too
            // many connections; or a statement cut at the statement timeout. The client may
            // come back; nothing it sent was wrong.
            Some(code) if is_unavailable(code) => return StoreError::Unavailable(Box::new(err)),
            _ => {}
        }
    }
    if let Some(e) = sqlx_error
        && matches!(
            &**e,
            sea_orm::sqlx::Error::Io(_)
                | sea_orm::sqlx::Error::PoolTimedOut
                | sea_orm::sqlx::Error::PoolClosed
                | sea_orm::sqlx::Error::WorkerCrashed
        )
    {
        return StoreError::Unavailable(Box::new(err));
    }
    StoreError::Unexpected(Box::new(err))
}
