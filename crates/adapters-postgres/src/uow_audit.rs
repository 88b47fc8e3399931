//! The audit log in PostgreSQL: appended inside the unit of work (both or neither), chained
//! per organization. Appends of one organization are serialized by a transaction-scoped
//! advisory lock, so concurrent units of work chain one after the other instead of forking.
//!
//! Every event appended here is linked by an HMAC under the audit chain key, which the
//! database never sees (`hash_version` 2). Events written before the chain was keyed carry
//! plain SHA-256 links (`hash_version` 1); verification accepts those only before a chain's
//! first keyed event, so rewriting a keyed event as an unkeyed one breaks the chain.
//!
//! Events of no organization form the system chain, which the application role reaches only
//! through the `app_system_audit_*` functions (see the migration that creates them).

use async_trait::async_trait;
use crypto::{AUDIT_GENESIS, AuditChainKey, AuditLink};
use domain::{AuditEvent, AuditEventId, OrganizationId, UserId};
use ports::{AuditFilter, AuditLog, AuditStore, ChainVerdict, NewAuditEvent, Page, StoreError};
use sea_orm::{ConnectionTrait, DbBackend, FromQueryResult, Statement, TransactionTrait, Value};
use uuid::Uuid;

use crate::PgStore;
use crate::error::{corrupt, map_db_err};
use crate::uow::{PgUnitOfWork, set_tenant};

const TABLE: &str = "audit_events";

/// Serializes appends per organization until the transaction ends.
const LOCK: &str = "SELECT pg_advisory_xact_lock($1)";
const LAST: &str = "SELECT seq, hash FROM audit_events WHERE organization_id = $1 \
                    ORDER BY seq DESC LIMIT 1";
const INSERT: &str = "INSERT INTO audit_events (id, organization_id, seq, occurred_at, \
                      actor_user_id, action, target_type, target_id, outcome, reason, \
                      client_ip, request_id, occurrences, prev_hash, hash, hash_version) \
                      VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, CAST($11 AS inet), $12, \
                              $13, $14, $15, $16)";
const SYSTEM_HEAD: &str = "SELECT seq, hash FROM app_system_audit_head()";
/// INSERT's values but the organization.
const SYSTEM_APPEND: &str = "SELECT app_system_audit_append($1, $2, $3, $4, $5, $6, $7, $8, $9, \
                             CAST($10 AS inet), $11, $12, $13, $14, $15)";
const CHAIN_PAGE: &str = "SELECT id, organization_id, seq, occurred_at, actor_user_id, action, \
                          target_type, target_id, outcome, reason, \
                          host(client_ip) AS client_ip, request_id, occurrences, prev_hash, hash, \
                          hash_version FROM audit_events WHERE organization_id = $1 AND seq > $2 \
                          ORDER BY seq LIMIT $3";
const SYSTEM_PAGE: &str = "SELECT id, organization_id, seq, occurred_at, actor_user_id, action, \
                           target_type, target_id, outcome, reason, client_ip, request_id, \
                           occurrences, prev_hash, hash, hash_version \
                           FROM app_system_audit_events($1, $2)";
const NEWEST: &str = "SELECT id, organization_id, seq, occurred_at, actor_user_id, action, \
                      target_type, target_id, outcome, reason, host(client_ip) AS client_ip, \
                      request_id, occurrences, prev_hash, hash, hash_version FROM audit_events \
                      WHERE organization_id = $1 ORDER BY seq DESC LIMIT 1";
const EVENT_HASH: &str =
    "SELECT seq, hash FROM audit_events WHERE organization_id = $1 AND seq = $2";
const LIST: &str = "SELECT id, organization_id, seq, occurred_at, actor_user_id, action, \
                    target_type, target_id, outcome, reason, host(client_ip) AS client_ip, \
                    request_id, occurrences, prev_hash, hash, hash_version, \
                    count(*) OVER () AS page_total FROM audit_events \
                    WHERE organization_id = $1 \
                      AND ($2::timestamptz IS NULL OR occurred_at >= $2) \
                      AND ($3::timestamptz IS NULL OR occurred_at < $3) \
                      AND ($4::uuid IS NULL OR actor_user_id = $4) \
                      AND ($5::text IS NULL OR action = $5) \
                    ORDER BY seq DESC OFFSET $6 LIMIT $7";
/// The size of the selection when a page past its end has no row to carry it.
const COUNT: &str = "SELECT count(*) AS total FROM audit_events \
                     WHERE organization_id = $1 \
                       AND ($2::timestamptz IS NULL OR occurred_at >= $2) \
                       AND ($3::timestamptz IS NULL OR occurred_at < $3) \
                       AND ($4::uuid IS NULL OR actor_user_id = $4) \
                       AND ($5::text IS NULL OR action = $5)";

#[derive(Debug, FromQueryResult)]
struct Row {
    id: Uuid,
    organization_id: Option<Uuid>,
    seq: i64,
    occurred_at: chrono::DateTime<chrono::Utc>,
    actor_user_id: Option<Uuid>,
    action: String,
    target_type: Option<String>,
    target_id: Option<String>,
    outcome: String,
    reason: Option<String>,
    client_ip: Option<String>,
    request_id: Option<String>,
    occurrences: i32,
    prev_hash: Vec<u8>,
    hash: Vec<u8>,
    hash_version: i16,
}

impl Row {
    /// The event and how its hash links it; `None` when the row does not map (corrupt).
    fn linked(self) -> Option<(AuditEvent, AuditLink)> {
        let link = AuditLink::from_version(self.hash_version)?;
        AuditEvent::try_from(self).ok().map(|event| (event, link))
    }
}

impl TryFrom<Row> for AuditEvent {
    type Error = StoreError;

    fn try_from(r: Row) -> Result<Self, StoreError> {
        let bad = |column| corrupt(TABLE, column, r.id);
        Ok(Self {
            id: AuditEventId::from_uuid(r.id),
            organization_id: r.organization_id.map(OrganizationId::from_uuid),
            seq: u64::try_from(r.seq).map_err(|_| bad("seq"))?,
            occurred_at: r.occurred_at,
            actor: r.actor_user_id.map(UserId::from_uuid),
            action: r.action.parse().map_err(|_| bad("action"))?,
            target_type: r.target_type,
            target_id: r.target_id,
            outcome: r.outcome.parse().map_err(|_| bad("outcome"))?,
            reason: r.reason,
            client_ip: r
                .client_ip
                .map(|ip| ip.parse())
                .transpose()
                .map_err(|_| bad("client_ip"))?,
            request_id: r.request_id,
            occurrences: u32::try_from(r.occurrences)
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| bad("occurrences"))?,
            prev_hash: r
                .prev_hash
                .as_slice()
                .try_into()
                .map_err(|_| bad("prev_hash"))?,
            hash: r.hash.as_slice().try_into().map_err(|_| bad("hash"))?,
        })
    }
}

/// One chain of the log: an organization's, or the system chain of events of none.
#[derive(Debug, Clone, Copy)]
enum Chain {
    Organization(Uuid),
    System,
}

impl Chain {
    fn of(organization: Option<OrganizationId>) -> Self {
        organization.map_or(Self::System, |o| Self::Organization(*o.as_uuid()))
    }

    fn organization(self) -> Option<Uuid> {
        match self {
            Self::Organization(org) => Some(org),
            Self::System => None,
        }
    }
}

/// The advisory-lock key of an organization: its id's first 8 bytes.
fn lock_key(org: Uuid) -> i64 {
    let bytes = org.as_bytes();
    i64::from_be_bytes([
        bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
    ])
}

fn statement(sql: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

/// The last position and hash of `chain`, holding its lock until the transaction ends.
async fn head(conn: &impl ConnectionTrait, chain: Chain) -> Result<(u64, [u8; 32]), StoreError> {
    let last = match chain {
        Chain::Organization(org) => {
            conn.execute_raw(statement(LOCK, vec![lock_key(org).into()]))
                .await
                .map_err(map_db_err)?;
            conn.query_one_raw(statement(LAST, vec![org.into()])).await
        }
        Chain::System => conn.query_one_raw(statement(SYSTEM_HEAD, vec![])).await,
    }
    .map_err(map_db_err)?;
    let place = chain.organization().unwrap_or_default();
    let Some(row) = last else {
        return Ok((0, AUDIT_GENESIS));
    };
    let seq: i64 = row.try_get("", "seq").map_err(map_db_err)?;
    let hash: Vec<u8> = row.try_get("", "hash").map_err(map_db_err)?;
    Ok((
        u64::try_from(seq).map_err(|_| corrupt(TABLE, "seq", place))?,
        hash.as_slice()
            .try_into()
            .map_err(|_| corrupt(TABLE, "hash", place))?,
    ))
}

/// Appends `new` to `chain` at `now`, inside the caller's transaction, linked under `key`.
async fn append(
    conn: &impl ConnectionTrait,
    key: &AuditChainKey,
    chain: Chain,
    new: NewAuditEvent,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<AuditEvent, StoreError> {
    let (last_seq, prev_hash) = head(conn, chain).await?;
    let org = chain.organization();
    let mut event = AuditEvent {
        id: AuditEventId::from_uuid(Uuid::now_v7()),
        organization_id: org.map(OrganizationId::from_uuid),
        seq: last_seq + 1,
        // Microsecond precision, as stored: the hash must be recomputable from the row.
        occurred_at: chrono::DateTime::from_timestamp_micros(
            new.occurred_at.unwrap_or(now).timestamp_micros(),
        )
        .unwrap_or_default(),
        actor: new.actor,
        action: new.action,
        target_type: new.target.as_ref().map(|t| t.kind().to_owned()),
        target_id: new.target.as_ref().and_then(domain::AuditTarget::id),
        outcome: new.outcome,
        reason: new.reason,
        client_ip: new.client_ip,
        request_id: new.request_id,
        // What the column holds: at least 1, at most `integer`'s largest value.
        occurrences: new.occurrences.clamp(1, i32::MAX.unsigned_abs()),
        prev_hash,
        hash: [0; 32],
    };
    event.hash = key.link(&prev_hash, &event);
    let mut values: Vec<Value> = vec![
        (*event.id.as_uuid()).into(),
        org.into(),
        i64::try_from(event.seq)
            .map_err(|_| corrupt(TABLE, "seq", org.unwrap_or_default()))?
            .into(),
        event.occurred_at.into(),
        event.actor.map(|a| *a.as_uuid()).into(),
        event.action.as_str().to_owned().into(),
        event.target_type.clone().into(),
        event.target_id.clone().into(),
        event.outcome.as_str().to_owned().into(),
        event.reason.clone().into(),
        event.client_ip.map(|ip| ip.to_string()).into(),
        event.request_id.clone().into(),
        i32::try_from(event.occurrences).unwrap_or(i32::MAX).into(),
        event.prev_hash.to_vec().into(),
        event.hash.to_vec().into(),
        AuditLink::Keyed.version().into(),
    ];
    let sql = match chain {
        Chain::Organization(_) => INSERT,
        Chain::System => {
            values.remove(1);
            SYSTEM_APPEND
        }
    };
    conn.execute_raw(statement(sql, values))
        .await
        .map_err(map_db_err)?;
    Ok(event)
}

/// Appends `new` to `organization`'s chain inside the caller's transaction.
pub(crate) async fn append_in(
    conn: &impl ConnectionTrait,
    key: &AuditChainKey,
    organization: OrganizationId,
    new: NewAuditEvent,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<AuditEvent, StoreError> {
    append(
        conn,
        key,
        Chain::Organization(*organization.as_uuid()),
        new,
        now,
    )
    .await
    .inspect_err(|_| count_append_failure("organization"))
}

fn count_append_failure(chain: &'static str) {
    metrics::counter!(crate::metrics::AUDIT_APPEND_FAILURES, "chain" => chain).increment(1);
}

/// Appends `new` to the system chain inside the caller's transaction.
pub(crate) async fn append_system(
    conn: &impl ConnectionTrait,
    key: &AuditChainKey,
    new: NewAuditEvent,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<AuditEvent, StoreError> {
    append(conn, key, Chain::System, new, now)
        .await
        .inspect_err(|_| count_append_failure("system"))
}

/// Up to `limit` events of `chain` after position `after`, in order.
async fn page(
    conn: &impl ConnectionTrait,
    chain: Chain,
    after: u64,
    limit: i32,
) -> Result<Vec<Row>, StoreError> {
    let after = i64::try_from(after).unwrap_or(i64::MAX);
    let page = match chain {
        Chain::Organization(org) => {
            statement(CHAIN_PAGE, vec![org.into(), after.into(), limit.into()])
        }
        Chain::System => statement(SYSTEM_PAGE, vec![after.into(), limit.into()]),
    };
    Row::find_by_statement(page)
        .all(conn)
        .await
        .map_err(map_db_err)
}

/// Walks `chain` from its first event and reports the first break: an event that does not
/// follow the one before, whose hash its link under `key` does not give, or an unkeyed event
/// after a keyed one (a keyed event rewritten without the key).
async fn verify(
    conn: &impl ConnectionTrait,
    key: &AuditChainKey,
    chain: Chain,
) -> Result<ChainVerdict, StoreError> {
    let (mut expected_seq, mut prev) = (1_u64, AUDIT_GENESIS);
    let mut unkeyed = 0_u64;
    let mut keyed_seen = false;
    loop {
        let rows = page(conn, chain, expected_seq - 1, 1000).await?;
        if rows.is_empty() {
            return Ok(ChainVerdict::Intact {
                events: expected_seq - 1,
                unkeyed,
            });
        }
        for row in rows {
            let Some((event, link)) = row.linked() else {
                return Ok(ChainVerdict::Broken { seq: expected_seq });
            };
            let downgraded = link == AuditLink::Unkeyed && keyed_seen;
            if event.seq != expected_seq
                || event.prev_hash != prev
                || downgraded
                || key.hash(link, &prev, &event) != event.hash
            {
                return Ok(ChainVerdict::Broken {
                    seq: expected_seq.min(event.seq),
                });
            }
            match link {
                AuditLink::Unkeyed => unkeyed += 1,
                AuditLink::Keyed => keyed_seen = true,
            }
            prev = event.hash;
            expected_seq += 1;
        }
    }
}

/// The hash of event `seq` of `chain`, if the chain has that event.
async fn event_hash(
    conn: &impl ConnectionTrait,
    chain: Chain,
    seq: u64,
) -> Result<Option<[u8; 32]>, StoreError> {
    let place = chain.organization().unwrap_or_default();
    let Some(before) = seq.checked_sub(1) else {
        return Ok(None);
    };
    let hash = match chain {
        Chain::Organization(org) => {
            let at = i64::try_from(seq).map_err(|_| corrupt(TABLE, "seq", place))?;
            conn.query_one_raw(statement(EVENT_HASH, vec![org.into(), at.into()]))
                .await
                .map_err(map_db_err)?
                .map(|row| row.try_get::<Vec<u8>>("", "hash"))
                .transpose()
                .map_err(map_db_err)?
        }
        Chain::System => page(conn, chain, before, 1)
            .await?
            .into_iter()
            .find(|row| u64::try_from(row.seq).ok() == Some(seq))
            .map(|row| row.hash),
    };
    hash.map(|h| {
        h.as_slice()
            .try_into()
            .map_err(|_| corrupt(TABLE, "hash", place))
    })
    .transpose()
}

impl PgUnitOfWork {
    fn filter_values(&self, f: &AuditFilter) -> Vec<Value> {
        vec![
            self.org().into(),
            f.since.into(),
            f.until.into(),
            f.actor.map(|a| *a.as_uuid()).into(),
            f.action.map(|a| a.as_str().to_owned()).into(),
        ]
    }
}

#[async_trait]
impl AuditStore for PgUnitOfWork {
    async fn record(&self, new: NewAuditEvent) -> Result<AuditEvent, StoreError> {
        append(
            &self.txn,
            &self.audit_key,
            Chain::Organization(self.org()),
            new,
            self.now(),
        )
        .await
        .map_err(|e| self.aborted_by(e))
    }

    async fn list(
        &self,
        filter: AuditFilter,
        skip: u64,
        limit: u64,
    ) -> Result<Page<AuditEvent>, StoreError> {
        let mut values = self.filter_values(&filter);
        values.push(i64::try_from(skip).unwrap_or(i64::MAX).into());
        values.push(i64::try_from(limit).unwrap_or(i64::MAX).into());
        let rows = self
            .txn
            .query_all_raw(statement(LIST, values))
            .await
            .map_err(|e| self.abort(e))?;
        let mut total = None;
        let mut items = Vec::with_capacity(rows.len());
        for row in &rows {
            total = Some(
                row.try_get::<i64>("", "page_total")
                    .map_err(|e| self.abort(e))?,
            );
            let row = Row::from_query_result(row, "").map_err(|e| self.abort(e))?;
            items.push(AuditEvent::try_from(row)?);
        }
        let total = match total {
            Some(total) => total,
            None if skip == 0 => 0,
            None => self
                .txn
                .query_one_raw(statement(COUNT, self.filter_values(&filter)))
                .await
                .map_err(|e| self.abort(e))?
                .map(|row| row.try_get::<i64>("", "total"))
                .transpose()
                .map_err(|e| self.abort(e))?
                .unwrap_or(0),
        };
        Ok(Page {
            items,
            total: u64::try_from(total).unwrap_or(0),
        })
    }

    async fn verify(&self) -> Result<ChainVerdict, StoreError> {
        verify(&self.txn, &self.audit_key, Chain::Organization(self.org()))
            .await
            .map_err(|e| self.aborted_by(e))
    }
}

#[async_trait]
impl AuditLog for PgStore {
    async fn unscoped_record(
        &self,
        organization: Option<OrganizationId>,
        event: NewAuditEvent,
    ) -> Result<AuditEvent, StoreError> {
        let chain = Chain::of(organization);
        let txn = self.pool().begin().await.map_err(map_db_err)?;
        // The organization's chain is written under its row-level security, as the
        // application role; no user is in scope.
        set_tenant(&txn, chain.organization(), None).await?;
        let event = append(&txn, self.audit_key(), chain, event, self.clock().now()).await?;
        txn.commit().await.map_err(map_db_err)?;
        Ok(event)
    }

    async fn unscoped_verify(
        &self,
        organization: Option<OrganizationId>,
    ) -> Result<ChainVerdict, StoreError> {
        let chain = Chain::of(organization);
        let txn = self.pool().begin().await.map_err(map_db_err)?;
        set_tenant(&txn, chain.organization(), None).await?;
        verify(&txn, self.audit_key(), chain).await
    }
}

/// The position and hash of a chain's newest event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditHead {
    pub seq: u64,
    pub hash: [u8; 32],
}

impl PgStore {
    /// The newest event of `organization`'s chain (the system chain for `None`), if any.
    /// Crosses tenants: for the operator's witnesses of the chain heads.
    pub async fn unscoped_audit_head(
        &self,
        organization: Option<OrganizationId>,
    ) -> Result<Option<AuditHead>, StoreError> {
        let chain = Chain::of(organization);
        let txn = self.pool().begin().await.map_err(map_db_err)?;
        set_tenant(&txn, chain.organization(), None).await?;
        // Takes the chain's append lock until this read-only transaction ends.
        let (seq, hash) = head(&txn, chain).await?;
        txn.commit().await.map_err(map_db_err)?;
        Ok((seq > 0).then_some(AuditHead { seq, hash }))
    }

    /// Whether `key` gives the link of the newest event of `organization`'s chain (the
    /// system chain for `None`): `None` when the chain is empty or its newest event is
    /// unkeyed. A server with another key would append events that never verify. Crosses
    /// tenants: for the startup check.
    pub async fn unscoped_audit_key_fits(
        &self,
        organization: Option<OrganizationId>,
    ) -> Result<Option<bool>, StoreError> {
        let chain = Chain::of(organization);
        let txn = self.pool().begin().await.map_err(map_db_err)?;
        set_tenant(&txn, chain.organization(), None).await?;
        let newest = match chain {
            Chain::Organization(org) => Row::find_by_statement(statement(NEWEST, vec![org.into()]))
                .one(&txn)
                .await
                .map_err(map_db_err)?,
            Chain::System => {
                let (seq, _) = head(&txn, chain).await?;
                match seq.checked_sub(1) {
                    Some(before) => page(&txn, chain, before, 1).await?.into_iter().next(),
                    None => None,
                }
            }
        };
        txn.commit().await.map_err(map_db_err)?;
        Ok(match newest.map(Row::linked) {
            None => None,
            Some(Some((event, AuditLink::Keyed))) => {
                Some(self.audit_key().link(&event.prev_hash, &event) == event.hash)
            }
            Some(Some((_, AuditLink::Unkeyed))) => None,
            Some(None) => Some(false),
        })
    }

    /// The hash of event `seq` of `organization`'s chain (the system chain for `None`), or
    /// `None` when the chain has no such event. Crosses tenants: for checking a witnessed head.
    pub async fn unscoped_audit_event_hash(
        &self,
        organization: Option<OrganizationId>,
        seq: u64,
    ) -> Result<Option<[u8; 32]>, StoreError> {
        let chain = Chain::of(organization);
        let txn = self.pool().begin().await.map_err(map_db_err)?;
        set_tenant(&txn, chain.organization(), None).await?;
        let hash = event_hash(&txn, chain, seq).await?;
        txn.commit().await.map_err(map_db_err)?;
        Ok(hash)
    }
}
