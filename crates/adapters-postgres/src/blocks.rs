//! The graduated response's strikes and blocks in `client_blocks`, shared by every replica.
//! A strike locks its key's row, so strikes from several replicas count one after the other;
//! the row and the audit event of its outcome are written in one transaction.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::{BlockKey, BlockPolicy, BlockState, ClientRecord, StrikeVerdict};
use ports::{BlockContext, BlockEntry, BlockList, StoreError};
use sea_orm::{ConnectionTrait, DbBackend, FromQueryResult, Statement, TransactionTrait, Value};

use crate::PgStore;
use crate::error::map_db_err;
use crate::uow_audit::append_system;

const ENSURE: &str = "INSERT INTO client_blocks (key, window_started_at, updated_at) \
                      VALUES ($1, $2, $2) ON CONFLICT (key) DO NOTHING";
const LOCK_ROW: &str = "SELECT key, strikes, window_started_at, block_count, blocked_until, \
                        permanent, reason, updated_at FROM client_blocks WHERE key = $1 \
                        FOR UPDATE";
const STORE: &str = "UPDATE client_blocks SET strikes = $2, window_started_at = $3, \
                     block_count = $4, blocked_until = $5, permanent = $6, \
                     reason = COALESCE($7, reason), updated_at = $8 WHERE key = $1";
const ACTIVE: &str = "SELECT key, strikes, window_started_at, block_count, blocked_until, \
                      permanent, reason, updated_at FROM client_blocks \
                      WHERE permanent OR blocked_until > $1";
const ALL: &str = "SELECT key, strikes, window_started_at, block_count, blocked_until, \
                   permanent, reason, updated_at FROM client_blocks ORDER BY updated_at DESC";
const LIFT: &str = "DELETE FROM client_blocks WHERE key = $1";
const PURGE: &str = "DELETE FROM client_blocks WHERE NOT permanent AND window_started_at <= $1 \
                     AND (blocked_until IS NULL OR blocked_until <= $2)";

#[derive(Debug, FromQueryResult)]
struct Row {
    key: String,
    strikes: i32,
    window_started_at: DateTime<Utc>,
    block_count: i32,
    blocked_until: Option<DateTime<Utc>>,
    permanent: bool,
    reason: Option<String>,
    updated_at: DateTime<Utc>,
}

impl Row {
    fn record(&self) -> ClientRecord {
        ClientRecord {
            strikes: u32::try_from(self.strikes).unwrap_or(0),
            window_started_at: self.window_started_at,
            block_count: u32::try_from(self.block_count).unwrap_or(0),
            blocked_until: self.blocked_until,
            permanent: self.permanent,
        }
    }

    /// The entry, or `None` for a key this version cannot read (skipped, not fatal: the
    /// table is written by operators too).
    fn entry(self) -> Option<BlockEntry> {
        let record = self.record();
        Some(BlockEntry {
            key: self.key.parse().ok()?,
            record,
            reason: self.reason,
            updated_at: self.updated_at,
        })
    }
}

fn statement(sql: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

fn count(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Writes `record` to `key`'s row, locked by the caller.
async fn store(
    conn: &impl ConnectionTrait,
    key: &BlockKey,
    record: &ClientRecord,
    reason: Option<String>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    conn.execute_raw(statement(
        STORE,
        vec![
            key.to_string().into(),
            count(record.strikes).into(),
            record.window_started_at.into(),
            count(record.block_count).into(),
            record.blocked_until.into(),
            record.permanent.into(),
            reason.into(),
            now.into(),
        ],
    ))
    .await
    .map_err(map_db_err)?;
    Ok(())
}

/// `key`'s row, created clean if missing, locked until the transaction ends.
async fn lock(
    conn: &impl ConnectionTrait,
    key: &BlockKey,
    now: DateTime<Utc>,
) -> Result<ClientRecord, StoreError> {
    let key = key.to_string();
    conn.execute_raw(statement(ENSURE, vec![key.clone().into(), now.into()]))
        .await
        .map_err(map_db_err)?;
    let row = Row::find_by_statement(statement(LOCK_ROW, vec![key.into()]))
        .one(conn)
        .await
        .map_err(map_db_err)?;
    Ok(row.map_or_else(|| ClientRecord::clean(now), |r| r.record()))
}

async fn rows(conn: &impl ConnectionTrait, st: Statement) -> Result<Vec<BlockEntry>, StoreError> {
    let rows = Row::find_by_statement(st)
        .all(conn)
        .await
        .map_err(map_db_err)?;
    Ok(rows.into_iter().filter_map(Row::entry).collect())
}

#[async_trait]
impl BlockList for PgStore {
    async fn strike(
        &self,
        key: &BlockKey,
        policy: &BlockPolicy,
        context: &BlockContext,
    ) -> Result<StrikeVerdict, StoreError> {
        let now = self.clock().now();
        let txn = self.pool().begin().await.map_err(map_db_err)?;
        let (record, verdict) = lock(&txn, key, now).await?.strike(key, now, policy);
        match verdict {
            // The warning's event is counted by the caller, off the request path: a flood of
            // addresses would otherwise append to the system chain, under its lock, per address.
            StrikeVerdict::Warning { .. } => store(&txn, key, &record, None, now).await?,
            StrikeVerdict::NewBlock(_) => {
                store(&txn, key, &record, Some("strikes".into()), now).await?;
                if let Some(event) = context.strike_event(key, verdict) {
                    append_system(&txn, self.audit_key(), event, now).await?;
                }
            }
            StrikeVerdict::Blocked(_) => {}
        }
        txn.commit().await.map_err(map_db_err)?;
        Ok(verdict)
    }

    async fn active(&self) -> Result<Vec<(BlockKey, BlockState)>, StoreError> {
        let now = self.clock().now();
        let entries = rows(self.pool(), statement(ACTIVE, vec![now.into()])).await?;
        Ok(entries
            .into_iter()
            .filter_map(|e| Some((e.key, e.record.block_at(now)?)))
            .collect())
    }

    async fn entries(&self) -> Result<Vec<BlockEntry>, StoreError> {
        rows(self.pool(), statement(ALL, vec![])).await
    }

    async fn block(
        &self,
        key: &BlockKey,
        state: BlockState,
        reason: &str,
        context: &BlockContext,
    ) -> Result<(), StoreError> {
        let now = self.clock().now();
        let txn = self.pool().begin().await.map_err(map_db_err)?;
        let mut record = lock(&txn, key, now).await?;
        record.block_count = record.block_count.saturating_add(1);
        match state {
            BlockState::Until(until) => {
                record.blocked_until = Some(until);
                record.permanent = false;
            }
            BlockState::Permanent => record.permanent = true,
        }
        let stored = ports::operator_reason(reason);
        store(&txn, key, &record, Some(stored), now).await?;
        append_system(
            &txn,
            self.audit_key(),
            context.block_event(key, state, reason),
            now,
        )
        .await?;
        txn.commit().await.map_err(map_db_err)
    }

    async fn lift(
        &self,
        key: &BlockKey,
        reason: &str,
        context: &BlockContext,
    ) -> Result<bool, StoreError> {
        let now = self.clock().now();
        let txn = self.pool().begin().await.map_err(map_db_err)?;
        let lifted = txn
            .execute_raw(statement(LIFT, vec![key.to_string().into()]))
            .await
            .map_err(map_db_err)?
            .rows_affected()
            > 0;
        if lifted {
            append_system(&txn, self.audit_key(), context.lift_event(key, reason), now).await?;
        }
        txn.commit().await.map_err(map_db_err)?;
        Ok(lifted)
    }

    async fn purge(&self, policy: &BlockPolicy) -> Result<u64, StoreError> {
        let now = self.clock().now();
        let done = self
            .pool()
            .execute_raw(statement(
                PURGE,
                vec![
                    (now - policy.strike_window).into(),
                    (now - policy.block_memory).into(),
                ],
            ))
            .await
            .map_err(map_db_err)?;
        Ok(done.rows_affected())
    }
}
