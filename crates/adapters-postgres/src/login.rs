//! Browser login in PostgreSQL: the logins under way (`login_attempts`, the nonce and PKCE
//! verifier sealed like every secret column, taken once by DELETE … RETURNING) and the
//! server-side sessions, reached through the `app_session_*` functions by the SHA-256 of their
//! cookie's id (the id itself is never stored). Sessions live by the database's clock: the
//! functions read `now()` themselves; only the timeouts are passed.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use crypto::SealContext;
use domain::UserId;
use ports::{
    EnteredSession, Freshness, LoginAttempts, PendingLogin, ResolvedUser, SessionEnd,
    SessionLifetime, SessionLookup, SessionStore, StoreError, StoredSession, UnitOfWork,
};
use sea_orm::{ConnectionTrait, DbBackend, FromQueryResult, Statement, TransactionTrait, Value};
use uuid::Uuid;

use std::time::Instant;

use crate::PgStore;
use crate::credential_cache::{Found, Key};
use crate::error::map_db_err;
use crate::secret_columns::Sealed;

const TABLE: &str = "login_attempts";
const KEEP: &str = "INSERT INTO login_attempts (state_hash, nonce, pkce_verifier, return_to, \
                    max_age_secs, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)";
const TAKE: &str = "DELETE FROM login_attempts WHERE state_hash = $1 \
                    RETURNING nonce, pkce_verifier, return_to, max_age_secs, expires_at";
const PURGE_LOGINS: &str = "DELETE FROM login_attempts WHERE expires_at <= $1";
const CREATE: &str = "SELECT app_session_create($1, $2, $3, CAST($4 AS jsonb), \
                      make_interval(secs => $5))";
const LOAD: &str = "SELECT user_id, auth_time, data, created_at, last_seen_at, expires_at, \
                    ended FROM app_session_load($1, make_interval(secs => $2))";
/// The session and its user as they are now, and the tenant they allow, in one statement
/// (one lookup: it reads the user's row for the session's end already): the tenant is set
/// only for a live session of an active user.
const ENTER: &str = "SELECT l.user_id, l.auth_time, l.data, l.created_at, l.last_seen_at, \
                            l.expires_at, l.ended, l.organization_id, l.role, l.is_active, \
                            set_config('app.current_organization', \
                                       CASE WHEN l.ended IS NULL AND l.is_active \
                                            THEN coalesce(l.organization_id::text, '') \
                                            ELSE '' END, true) AS tenant, \
                            set_config('app.current_user', l.user_id::text, true) AS acting, \
                            extract(epoch FROM least(l.expires_at, l.last_seen_at + \
                                least(make_interval(secs => $2), interval '1440 minutes')) \
                                - pg_catalog.now())::float8 AS lives_for \
                     FROM app_session_load($1, make_interval(secs => $2)) l";
const UPDATE: &str = "SELECT app_session_update($1, $2, CAST($3 AS jsonb)) AS found";
const TOUCH: &str = "SELECT app_session_touch($1, make_interval(secs => $2))";
const DELETE: &str = "SELECT app_session_delete($1)";
const PURGE_SESSIONS: &str = "SELECT app_sessions_purge(make_interval(secs => $1)) AS gone";

fn statement(sql: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

/// Where a login's secrets are sealed: its row, named by the state's hash.
fn context(column: &'static str, state_hash: &[u8; 32]) -> SealContext {
    let mut id = [0_u8; 16];
    id.copy_from_slice(&state_hash[..16]);
    SealContext {
        table: TABLE,
        column,
        row_id: Uuid::from_bytes(id),
        organization_id: Uuid::nil(),
    }
}

fn seconds(d: Duration) -> f64 {
    // Whole milliseconds are all a session's timing needs.
    d.num_milliseconds() as f64 / 1000.0
}

#[derive(Debug, FromQueryResult)]
struct LoginRow {
    nonce: String,
    pkce_verifier: String,
    return_to: Option<String>,
    max_age_secs: Option<i32>,
    expires_at: DateTime<Utc>,
}

#[async_trait]
impl LoginAttempts for PgStore {
    async fn keep(&self, state_hash: [u8; 32], login: PendingLogin) -> Result<(), StoreError> {
        let secrets = self.secrets();
        let nonce = secrets.seal(&context("nonce", &state_hash), &login.nonce);
        let verifier = secrets.seal(&context("pkce_verifier", &state_hash), &login.pkce_verifier);
        let max_age = login
            .max_age
            .map(|m| i32::try_from(m.num_seconds()).unwrap_or(i32::MAX));
        self.pool()
            .execute_raw(statement(
                KEEP,
                vec![
                    state_hash.to_vec().into(),
                    nonce.0.into(),
                    verifier.0.into(),
                    login.return_to.into(),
                    max_age.into(),
                    self.clock().now().into(),
                    login.expires_at.into(),
                ],
            ))
            .await
            .map_err(map_db_err)?;
        Ok(())
    }

    async fn take(&self, state_hash: [u8; 32]) -> Result<Option<PendingLogin>, StoreError> {
        let Some(row) =
            LoginRow::find_by_statement(statement(TAKE, vec![state_hash.to_vec().into()]))
                .one(self.pool())
                .await
                .map_err(map_db_err)?
        else {
            return Ok(None);
        };
        if row.expires_at <= self.clock().now() {
            return Ok(None);
        }
        let secrets = self.secrets();
        Ok(Some(PendingLogin {
            nonce: secrets.open(&context("nonce", &state_hash), &Sealed(row.nonce))?,
            pkce_verifier: secrets.open(
                &context("pkce_verifier", &state_hash),
                &Sealed(row.pkce_verifier),
            )?,
            return_to: row.return_to,
            max_age: row.max_age_secs.map(|s| Duration::seconds(i64::from(s))),
            expires_at: row.expires_at,
        }))
    }

    async fn purge(&self) -> Result<u64, StoreError> {
        let done = self
            .pool()
            .execute_raw(statement(PURGE_LOGINS, vec![self.clock().now().into()]))
            .await
            .map_err(map_db_err)?;
        Ok(done.rows_affected())
    }
}

#[derive(Debug, FromQueryResult)]
struct SessionRow {
    user_id: Uuid,
    auth_time: Option<DateTime<Utc>>,
    data: String,
    created_at: DateTime<Utc>,
    last_seen_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    ended: Option<String>,
}

#[derive(Debug, FromQueryResult)]
struct EnteredRow {
    user_id: Uuid,
    auth_time: Option<DateTime<Utc>>,
    data: String,
    created_at: DateTime<Utc>,
    last_seen_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    ended: Option<String>,
    organization_id: Option<Uuid>,
    role: Option<String>,
    is_active: bool,
    /// Seconds until the session ends, idle or at its end, if not used meanwhile.
    lives_for: f64,
}

fn session_end(ended: &str) -> SessionEnd {
    match ended {
        "idle" => SessionEnd::Idle,
        "absolute" => SessionEnd::Absolute,
        _ => SessionEnd::UserInactive,
    }
}

impl PgStore {
    /// [`ports::UnitOfWorkFactory::begin_session`].
    pub(crate) async fn enter_session(
        &self,
        id_hash: [u8; 32],
        lifetime: SessionLifetime,
        freshness: Freshness,
    ) -> Result<EnteredSession, StoreError> {
        let key = Key::Session(id_hash);
        if let Some(Found::Session {
            session,
            user,
            until,
        }) = self.credentials.answer(&key, freshness)
            && Instant::now() < until
            && let Some(m) = user.membership
        {
            return Ok(EnteredSession {
                work: Some(self.enter(m.organization_id, user.user_id).await?),
                lookup: SessionLookup::Live(session),
                user: Some(user),
            });
        }
        let (ticket, asked) = (self.credentials.ticket(), Instant::now());
        let txn = self.pool().begin().await.map_err(map_db_err)?;
        let row = EnteredRow::find_by_statement(statement(
            ENTER,
            vec![id_hash.to_vec().into(), seconds(lifetime.idle).into()],
        ))
        .one(&txn)
        .await
        .map_err(map_db_err)?;
        let nothing = |lookup| EnteredSession {
            lookup,
            user: None,
            work: None,
        };
        let Some(r) = row else {
            return Ok(nothing(SessionLookup::Unknown));
        };
        let user = UserId::from_uuid(r.user_id);
        if let Some(ended) = r.ended.as_deref() {
            // The ended session was forgotten in this statement: that is kept.
            txn.commit().await.map_err(map_db_err)?;
            let why = session_end(ended);
            return Ok(nothing(SessionLookup::Ended { user, why }));
        }
        let resolved: ResolvedUser = crate::ResolvedRow {
            user_id: r.user_id,
            organization_id: r.organization_id,
            role: r.role,
            is_active: r.is_active,
        }
        .try_into()?;
        let session = StoredSession {
            user,
            auth_time: r.auth_time,
            data: r.data,
            created_at: r.created_at,
            last_seen_at: r.last_seen_at,
            expires_at: r.expires_at,
        };
        let work: Option<Box<dyn UnitOfWork>> = match resolved.membership {
            Some(m) if resolved.is_active => {
                // It lives on from when it was asked for, by this process's clock.
                let lives_for =
                    std::time::Duration::try_from_secs_f64(r.lives_for).unwrap_or_default();
                let found = Found::Session {
                    session: session.clone(),
                    user: resolved.clone(),
                    until: asked + lives_for,
                };
                self.credentials.fill(ticket, key, found);
                Some(Box::new(self.unit(txn, m.organization_id, user)))
            }
            _ => None,
        };
        Ok(EnteredSession {
            lookup: SessionLookup::Live(session),
            user: Some(resolved),
            work,
        })
    }
}

#[async_trait]
impl SessionStore for PgStore {
    async fn create(
        &self,
        id_hash: [u8; 32],
        user: UserId,
        auth_time: Option<DateTime<Utc>>,
        data: String,
        lifetime: SessionLifetime,
    ) -> Result<(), StoreError> {
        self.pool()
            .execute_raw(statement(
                CREATE,
                vec![
                    id_hash.to_vec().into(),
                    (*user.as_uuid()).into(),
                    auth_time.into(),
                    data.into(),
                    seconds(lifetime.absolute).into(),
                ],
            ))
            .await
            .map_err(map_db_err)?;
        Ok(())
    }

    async fn load(
        &self,
        id_hash: [u8; 32],
        lifetime: SessionLifetime,
    ) -> Result<SessionLookup, StoreError> {
        let row = SessionRow::find_by_statement(statement(
            LOAD,
            vec![id_hash.to_vec().into(), seconds(lifetime.idle).into()],
        ))
        .one(self.pool())
        .await
        .map_err(map_db_err)?;
        let Some(r) = row else {
            return Ok(SessionLookup::Unknown);
        };
        let user = UserId::from_uuid(r.user_id);
        let why = match r.ended.as_deref() {
            None => {
                return Ok(SessionLookup::Live(StoredSession {
                    user,
                    auth_time: r.auth_time,
                    data: r.data,
                    created_at: r.created_at,
                    last_seen_at: r.last_seen_at,
                    expires_at: r.expires_at,
                }));
            }
            Some(ended) => session_end(ended),
        };
        Ok(SessionLookup::Ended { user, why })
    }

    async fn update(
        &self,
        id_hash: [u8; 32],
        auth_time: Option<DateTime<Utc>>,
        data: String,
    ) -> Result<bool, StoreError> {
        let row = self
            .pool()
            .query_one_raw(statement(
                UPDATE,
                vec![id_hash.to_vec().into(), auth_time.into(), data.into()],
            ))
            .await
            .map_err(map_db_err)?;
        self.credentials.forget_all();
        Ok(row
            .map(|r| r.try_get::<bool>("", "found"))
            .transpose()
            .map_err(map_db_err)?
            .unwrap_or(false))
    }

    async fn touch(&self, id_hash: [u8; 32], lifetime: SessionLifetime) -> Result<(), StoreError> {
        self.pool()
            .execute_raw(statement(
                TOUCH,
                vec![id_hash.to_vec().into(), seconds(lifetime.idle).into()],
            ))
            .await
            .map_err(map_db_err)?;
        Ok(())
    }

    async fn delete(&self, id_hash: [u8; 32]) -> Result<(), StoreError> {
        self.pool()
            .execute_raw(statement(DELETE, vec![id_hash.to_vec().into()]))
            .await
            .map_err(map_db_err)?;
        self.credentials.forget_all();
        Ok(())
    }

    async fn purge(&self, lifetime: SessionLifetime) -> Result<u64, StoreError> {
        let row = self
            .pool()
            .query_one_raw(statement(
                PURGE_SESSIONS,
                vec![seconds(lifetime.idle).into()],
            ))
            .await
            .map_err(map_db_err)?;
        let gone: i64 = row
            .map(|r| r.try_get::<i64>("", "gone"))
            .transpose()
            .map_err(map_db_err)?
            .unwrap_or(0);
        Ok(u64::try_from(gone).unwrap_or(0))
    }
}
