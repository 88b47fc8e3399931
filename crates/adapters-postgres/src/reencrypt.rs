//! Online re-encryption of every secret column.
//!
//! Walks each organization (the narrow `app_organization_ids()` is the only cross-tenant
//! step) and, inside it and under its row-level security, each secret column in batches by
//! keyset pagination on the primary key — never OFFSET. Each batch is its own short
//! transaction. A value is rewritten only if it is not current (older key, bare legacy token,
//! legacy plaintext), and with a compare-and-set on the old value, so a concurrent write by the
//! application (always under the primary key) is never overwritten. Progress is derived from
//! the data: a run that stops anywhere is finished by running again, and a finished run finds
//! nothing left to do.

use std::collections::BTreeMap;

use crypto::{Provenance, SealContext};
use ports::StoreError;
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Order, Query};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, TransactionTrait};
use uuid::Uuid;

use crate::database::Database;
use crate::error::map_db_err;
use crate::secret_columns::{SecretColumns, hint_of};
use crate::uow::set_tenant;

/// A secret column and the column holding its hint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecretColumn {
    pub table: &'static str,
    pub column: &'static str,
    pub hint: &'static str,
}

/// Every secret column of the schema.
pub const SECRET_COLUMNS: [SecretColumn; 5] = [
    SecretColumn {
        table: "endpoints",
        column: "auth_token",
        hint: "auth_token_hint",
    },
    SecretColumn {
        table: "endpoints",
        column: "client_secret",
        hint: "client_secret_hint",
    },
    SecretColumn {
        table: "endpoints",
        column: "last_token",
        hint: "last_token_hint",
    },
    SecretColumn {
        table: "models",
        column: "key",
        hint: "key_hint",
    },
    SecretColumn {
        table: "api_tokens",
        column: "token",
        hint: "token_hint",
    },
];

/// How to run.
#[derive(Debug, Clone, Copy)]
pub struct ReencryptOptions {
    pub batch_size: u64,
    /// Count what would change, per key and kind, without writing.
    pub dry_run: bool,
}

/// A value that could not be opened, by place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub table: &'static str,
    pub column: &'static str,
    pub row: Uuid,
    pub reason: String,
}

/// What a run found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReencryptReport {
    pub scanned: u64,
    pub already_current: u64,
    /// Sealed values under an older key, sealed again under the primary key.
    pub reencrypted: u64,
    /// Bare legacy tokens rewritten into the bound form.
    pub rebound: u64,
    /// Legacy plaintext encrypted.
    pub plaintext_encrypted: u64,
    /// Values changed by the application between read and write (left as the app wrote them).
    pub changed_concurrently: u64,
    /// Values per key position (0 = primary) among those that opened.
    pub per_key: BTreeMap<usize, u64>,
    pub failures: Vec<Failure>,
}

/// A step of progress: one batch of one column of one organization done.
#[derive(Debug, Clone, Copy)]
pub struct ProgressEvent<'a> {
    pub organization_index: usize,
    pub organizations: usize,
    pub column: &'a SecretColumn,
    pub report: &'a ReencryptReport,
}

/// The ids of every organization (through the narrow SECURITY DEFINER function). Crosses
/// tenants: for operator commands only.
pub async fn unscoped_organization_ids(db: &Database) -> Result<Vec<Uuid>, StoreError> {
    let rows = db
        .pool()
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT app_organization_ids AS id FROM app_organization_ids()",
        ))
        .await
        .map_err(map_db_err)?;
    rows.iter()
        .map(|row| row.try_get::<Uuid>("", "id").map_err(map_db_err))
        .collect()
}

/// Re-encrypts every secret column of every organization; see the module documentation.
/// Crosses tenants (one organization at a time, each under its row-level security).
pub async fn unscoped_reencrypt(
    database: &Database,
    secrets: &SecretColumns,
    options: ReencryptOptions,
    mut progress: impl FnMut(ProgressEvent<'_>),
) -> Result<ReencryptReport, StoreError> {
    let mut report = ReencryptReport::default();
    let organizations = unscoped_organization_ids(database).await?;
    let db = database.pool();
    for (index, org) in organizations.iter().enumerate() {
        for column in &SECRET_COLUMNS {
            let mut after = Uuid::nil();
            loop {
                let (last, count) =
                    batch(db, secrets, options, *org, column, after, &mut report).await?;
                progress(ProgressEvent {
                    organization_index: index,
                    organizations: organizations.len(),
                    column,
                    report: &report,
                });
                match last {
                    Some(last) if count == options.batch_size => after = last,
                    _ => break,
                }
            }
        }
    }
    Ok(report)
}

/// One batch: rows of `org` with `id > after`, in id order. Returns the last id and the count.
async fn batch(
    db: &DatabaseConnection,
    secrets: &SecretColumns,
    options: ReencryptOptions,
    org: Uuid,
    column: &SecretColumn,
    after: Uuid,
    report: &mut ReencryptReport,
) -> Result<(Option<Uuid>, u64), StoreError> {
    let txn = db.begin().await.map_err(map_db_err)?;
    set_tenant(&txn, Some(org), None).await?;
    let select = Query::select()
        .column(Alias::new("id"))
        .column(Alias::new(column.column))
        .from(Alias::new(column.table))
        .and_where(Expr::col(Alias::new("organization_id")).eq(org))
        .and_where(Expr::col(Alias::new("id")).gt(after))
        .and_where(Expr::col(Alias::new(column.column)).is_not_null())
        .order_by(Alias::new("id"), Order::Asc)
        .limit(options.batch_size)
        .to_owned();
    let rows = txn.query_all(&select).await.map_err(map_db_err)?;
    let mut last = None;
    let now = secrets.now();
    for row in &rows {
        let id: Uuid = row.try_get("", "id").map_err(map_db_err)?;
        let stored: String = row.try_get("", column.column).map_err(map_db_err)?;
        last = Some(id);
        report.scanned += 1;
        let place = SealContext {
            table: column.table,
            column: column.column,
            row_id: id,
            organization_id: org,
        };
        let opened = match secrets.cipher().open(&place, &stored, now) {
            Ok(opened) => opened,
            Err(reason) => {
                report.failures.push(Failure {
                    table: column.table,
                    column: column.column,
                    row: id,
                    reason: reason.to_string(),
                });
                continue;
            }
        };
        let key = match opened.provenance {
            Provenance::Current => Some(0),
            Provenance::OlderKey(k) | Provenance::LegacyUnbound(k) => Some(k),
            Provenance::LegacyPlaintext => None,
        };
        if let Some(key) = key {
            *report.per_key.entry(key).or_default() += 1;
        }
        if opened.provenance.is_current() {
            report.already_current += 1;
            continue;
        }
        if !options.dry_run {
            let sealed = secrets.cipher().seal(&place, &opened.secret, now);
            let update = Query::update()
                .table(Alias::new(column.table))
                .value(Alias::new(column.column), sealed)
                .value(Alias::new(column.hint), hint_of(&opened.secret))
                .and_where(Expr::col(Alias::new("id")).eq(id))
                .and_where(Expr::col(Alias::new(column.column)).eq(stored))
                .to_owned();
            let written = txn.execute(&update).await.map_err(map_db_err)?;
            if written.rows_affected() == 0 {
                report.changed_concurrently += 1;
                continue;
            }
        }
        match opened.provenance {
            Provenance::OlderKey(_) => report.reencrypted += 1,
            Provenance::LegacyUnbound(_) => report.rebound += 1,
            Provenance::LegacyPlaintext => report.plaintext_encrypted += 1,
            Provenance::Current => {}
        }
    }
    txn.commit().await.map_err(map_db_err)?;
    Ok((last, rows.len() as u64))
}

/// A secret column whose sampled values do not open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelfCheckFailure {
    pub table: &'static str,
    pub column: &'static str,
    pub failed: u64,
    pub sampled: u64,
}

/// Opens a sample of each secret column (up to `per_org` values in each of up to
/// `organizations` organizations, the newest first) and reports the columns where a value
/// opens under no key. Values are never logged or returned.
pub async fn unscoped_self_check(
    database: &Database,
    secrets: &SecretColumns,
    organizations: usize,
    per_org: u64,
) -> Result<Vec<SelfCheckFailure>, StoreError> {
    let mut orgs = unscoped_organization_ids(database).await?;
    let db = database.pool();
    orgs.reverse();
    orgs.truncate(organizations);
    let now = secrets.now();
    let mut failures = Vec::new();
    for column in &SECRET_COLUMNS {
        let (mut failed, mut sampled) = (0, 0);
        for org in &orgs {
            let txn = db.begin().await.map_err(map_db_err)?;
            set_tenant(&txn, Some(*org), None).await?;
            let select = Query::select()
                .column(Alias::new("id"))
                .column(Alias::new(column.column))
                .from(Alias::new(column.table))
                .and_where(Expr::col(Alias::new("organization_id")).eq(*org))
                .and_where(Expr::col(Alias::new(column.column)).is_not_null())
                .order_by(Alias::new("id"), Order::Desc)
                .limit(per_org)
                .to_owned();
            let rows = txn.query_all(&select).await.map_err(map_db_err)?;
            txn.commit().await.map_err(map_db_err)?;
            for row in &rows {
                let id: Uuid = row.try_get("", "id").map_err(map_db_err)?;
                let stored: String = row.try_get("", column.column).map_err(map_db_err)?;
                let place = SealContext {
                    table: column.table,
                    column: column.column,
                    row_id: id,
                    organization_id: *org,
                };
                sampled += 1;
                if secrets.cipher().open(&place, &stored, now).is_err() {
                    failed += 1;
                }
            }
        }
        if failed > 0 {
            failures.push(SelfCheckFailure {
                table: column.table,
                column: column.column,
                failed,
                sampled,
            });
        }
    }
    Ok(failures)
}
