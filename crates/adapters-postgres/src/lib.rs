//! PostgreSQL adapters of the ports.
//!
//! Every tenant operation runs in a [`ports::UnitOfWork`]: one transaction that first sets
//! `app.current_organization` and `app.current_user` with `set_config(..., true)`, so the
//! database's row-level security policies confine it to one organization. Queries also
//! filter on the organization explicitly, as defence in depth; the policies are what
//! isolates tenants even when a query forgets.

mod blocks;
pub mod credential_cache;
mod database;
mod entities;
mod error;
mod login;
mod mapping;
pub mod metrics;
mod reencrypt;
mod secret_columns;
mod uow;
mod uow_audit;
mod uow_invitations;
mod uow_secrets;
mod uow_tokens;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use async_trait::async_trait;
use domain::{
    InvitationId, Membership, Organization, OrganizationId, PendingInvitation, Role, UserId,
};
use ports::{
    AccessTokenSubject, Claim, Clock, Entered, EnteredToken, FoundingError, Freshness, HealthCheck,
    IdentityDirectory, InvitationError, NewIdentity, NewOrganization, Refusal, RefusalReason,
    ResolvedApiToken, ResolvedUser, StoreError, TenantScope, UnitOfWork, UnitOfWorkFactory,
};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection,
    DbBackend, EntityTrait, FromQueryResult, QueryFilter, Statement, TransactionTrait,
};
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use crate::credential_cache::{CredentialCache, Found, Key};
use crate::entities::{organizations, users};
use crate::error::{corrupt, map_db_err};
use crate::uow::{PgUnitOfWork, set_tenant};

pub use database::{
    Database, DatabaseError, InvalidUrl, PoolOptions, PoolState, TlsMode, Transport, connect,
    transport,
};
pub use reencrypt::{
    Failure, ProgressEvent, ReencryptOptions, ReencryptReport, SECRET_COLUMNS, SecretColumn,
    SelfCheckFailure, unscoped_organization_ids, unscoped_reencrypt, unscoped_self_check,
};
pub use secret_columns::{SecretColumns, UnsealError};
pub use uow_audit::AuditHead;

/// The PostgreSQL implementation of the store ports.
#[derive(Clone)]
pub struct PgStore {
    db: Database,
    clock: Arc<dyn Clock>,
    secrets: Arc<SecretColumns>,
    audit_key: Arc<crypto::AuditChainKey>,
    credentials: Arc<CredentialCache>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").finish_non_exhaustive()
    }
}

impl PgStore {
    /// A store over `db`; the audit log's links are keyed with `audit_key`.
    pub fn new(
        db: Database,
        clock: Arc<dyn Clock>,
        secrets: Arc<SecretColumns>,
        audit_key: Arc<crypto::AuditChainKey>,
    ) -> Self {
        Self {
            db,
            clock,
            secrets,
            audit_key,
            credentials: Arc::default(),
        }
    }

    /// Keeps the credential cache current (see [`credential_cache`]) until dropped: run it
    /// as a task of its own. Without it the cache never answers, and every credential is
    /// checked in the database.
    pub fn keep_credentials_current(
        &self,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let options = self.pool().get_postgres_connection_pool().connect_options();
        credential_cache::keep_current(Arc::clone(&self.credentials), (*options).clone())
    }

    /// The credential cache, as it stands.
    pub fn credential_cache(&self) -> &CredentialCache {
        &self.credentials
    }

    pub(crate) fn audit_key(&self) -> &crypto::AuditChainKey {
        &self.audit_key
    }

    pub(crate) fn clock(&self) -> &dyn Clock {
        self.clock.as_ref()
    }

    /// The secret columns' cipher and counters.
    pub fn secrets(&self) -> &SecretColumns {
        &self.secrets
    }

    /// The underlying pool, for the composition root (role inspection, operator commands).
    pub fn database(&self) -> &Database {
        &self.db
    }

    pub(crate) fn pool(&self) -> &DatabaseConnection {
        self.db.pool()
    }

    /// A unit of work of a new transaction, its tenant set to `organization` and `user`.
    pub(crate) async fn enter(
        &self,
        organization: OrganizationId,
        user: UserId,
    ) -> Result<Box<dyn UnitOfWork>, StoreError> {
        let txn = self.pool().begin().await.map_err(map_db_err)?;
        set_tenant(&txn, Some(*organization.as_uuid()), Some(*user.as_uuid())).await?;
        Ok(Box::new(self.unit(txn, organization, user)))
    }

    /// The unit of work of `txn`, whose tenant is already set to `organization` and `user`.
    pub(crate) fn unit(
        &self,
        txn: sea_orm::DatabaseTransaction,
        organization: OrganizationId,
        user: UserId,
    ) -> PgUnitOfWork {
        PgUnitOfWork {
            txn,
            organization,
            user,
            clock: Arc::clone(&self.clock),
            secrets: Arc::clone(&self.secrets),
            audit_key: Arc::clone(&self.audit_key),
            aborted: AtomicBool::new(false),
            credentials: Arc::clone(&self.credentials),
            changes_credentials: AtomicBool::new(false),
        }
    }
}

#[async_trait]
impl UnitOfWorkFactory for PgStore {
    async fn begin(&self, scope: &TenantScope) -> Result<Box<dyn UnitOfWork>, StoreError> {
        self.enter(scope.organization_id(), scope.user_id()).await
    }

    async fn begin_claimed(
        &self,
        claim: Claim,
        freshness: Freshness,
    ) -> Result<Entered, StoreError> {
        let Claim::AccessToken { user, jti, sid } = claim;
        let key = Key::Access {
            user: *user.as_uuid(),
            jti,
            sid,
        };
        if let Some(Found::User(known)) = self.credentials.answer(&key, freshness)
            && let Some(m) = known.membership
        {
            return Ok(Entered {
                work: Some(self.enter(m.organization_id, known.user_id).await?),
                subject: Some(AccessTokenSubject {
                    user: known,
                    revoked: false,
                }),
            });
        }
        let ticket = self.credentials.ticket();
        let txn = self.pool().begin().await.map_err(map_db_err)?;
        // One statement: the check, and the tenant it allows (none unless the user is active
        // and the token unrevoked). The settings are transaction-local, as in `set_tenant`.
        let stmt = Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT s.user_id, s.organization_id, s.role, s.is_active, s.revoked, \
                    set_config('app.current_organization', \
                               CASE WHEN s.is_active AND NOT s.revoked \
                                    THEN coalesce(s.organization_id::text, '') ELSE '' END, \
                               true) AS tenant, \
                    set_config('app.current_user', s.user_id::text, true) AS acting \
             FROM app_access_token_subject($1, $2, $3) s",
            [(*user.as_uuid()).into(), jti.into(), sid.into()],
        );
        let Some(row) = SubjectRow::find_by_statement(stmt)
            .one(&txn)
            .await
            .map_err(map_db_err)?
        else {
            return Ok(Entered {
                subject: None,
                work: None,
            });
        };
        let revoked = row.revoked;
        let resolved: ResolvedUser = ResolvedRow {
            user_id: row.user_id,
            organization_id: row.organization_id,
            role: row.role,
            is_active: row.is_active,
        }
        .try_into()?;
        let work: Option<Box<dyn UnitOfWork>> = match resolved.membership {
            Some(m) if resolved.is_active && !revoked => {
                self.credentials
                    .fill(ticket, key, Found::User(resolved.clone()));
                Some(Box::new(self.unit(
                    txn,
                    m.organization_id,
                    resolved.user_id,
                )))
            }
            _ => None,
        };
        Ok(Entered {
            subject: Some(AccessTokenSubject {
                user: resolved,
                revoked,
            }),
            work,
        })
    }

    async fn begin_session(
        &self,
        id_hash: [u8; 32],
        lifetime: ports::SessionLifetime,
        freshness: Freshness,
    ) -> Result<ports::EnteredSession, StoreError> {
        self.enter_session(id_hash, lifetime, freshness).await
    }

    async fn begin_api_token(
        &self,
        presented: &SecretString,
        freshness: Freshness,
    ) -> Result<Result<EnteredToken, Refusal>, StoreError> {
        let value = presented.expose_secret();
        if !crypto::ApiTokenValue::is_well_formed(value) {
            return Ok(Err(Refusal::anonymous(RefusalReason::Malformed)));
        }
        let digest = crypto::token_digest(value);
        let key = Key::ApiToken(digest);
        // An expired one is refused by the database's answer below.
        if let Some(Found::ApiToken { token, expires_at }) =
            self.credentials.answer(&key, freshness)
            && expires_at.is_none_or(|at| self.clock.now() < at)
            && let Some(m) = token.user.membership
        {
            let work = self.enter(m.organization_id, token.user.user_id).await?;
            return Ok(Ok(EnteredToken { token, work }));
        }
        let ticket = self.credentials.ticket();
        let digest = digest.to_vec();
        let txn = self.pool().begin().await.map_err(map_db_err)?;
        // One statement: the row, and the tenant it names (none unless its owner is active
        // and still in the token's organization). What the row proves is judged below; a
        // refusal drops the transaction.
        let stmt = Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT t.token_id, t.organization_id, t.user_id, t.sealed, t.expires_at, \
                    t.last_used_at, t.role, t.user_active, \
                    set_config('app.current_organization', \
                               CASE WHEN t.user_active AND t.role IS NOT NULL \
                                    THEN t.organization_id::text ELSE '' END, \
                               true) AS tenant, \
                    set_config('app.current_user', t.user_id::text, true) AS acting \
             FROM app_api_token_by_digest($1) t",
            [digest.into()],
        );
        let Some(row) = TokenRow::find_by_statement(stmt)
            .one(&txn)
            .await
            .map_err(map_db_err)?
        else {
            return Ok(Err(Refusal::anonymous(RefusalReason::Unknown)));
        };
        let token = match self.judge_token(&row, value)? {
            Ok(token) => token,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let expires_at = row.expires_at;
        self.credentials.fill(
            ticket,
            key,
            Found::ApiToken {
                token: token.clone(),
                expires_at,
            },
        );
        Ok(Ok(EnteredToken {
            token,
            work: Box::new(self.unit(
                txn,
                OrganizationId::from_uuid(row.organization_id),
                UserId::from_uuid(row.user_id),
            )),
        }))
    }

    async fn found_organization(
        &self,
        founder: UserId,
        new: NewOrganization,
        event: ports::NewAuditEvent,
    ) -> Result<Organization, FoundingError> {
        let org_id = Uuid::now_v7();
        let user_id = *founder.as_uuid();
        let now = self.clock.now();
        let txn = self.pool().begin().await.map_err(map_db_err)?;
        set_tenant(&txn, Some(org_id), Some(user_id)).await?;
        let row = organizations::ActiveModel {
            id: Set(org_id),
            name: Set(new.name.as_str().to_owned()),
            display_name: Set(new.display_name.map(|v| v.as_str().to_owned())),
            description: Set(new.description.map(|v| v.as_str().to_owned())),
            website: Set(new.website.map(|v| v.as_str().to_owned())),
            logo_url: Set(new.logo_url.map(|v| v.as_str().to_owned())),
            email: Set(new.email.map(|v| v.as_str().to_owned())),
            is_active: Set(true),
            max_users: Set(None),
            is_onboarding_complete: Set(false),
            owner_id: Set(Some(user_id)),
            created_at: Set(now),
            updated_at: Set(now),
            deleted_at: Set(None),
        };
        let organization: Organization = row.insert(&txn).await.map_err(map_db_err)?.try_into()?;
        // Only an active user without an organization becomes its owner: the database
        // decides (a user disabled since their credential was checked founds nothing).
        let joined = users::Entity::update_many()
            .col_expr(
                users::Column::OrganizationId,
                sea_orm::sea_query::Expr::value(org_id),
            )
            .col_expr(
                users::Column::Role,
                sea_orm::sea_query::Expr::value(Role::Owner.as_str()),
            )
            .col_expr(
                users::Column::UpdatedAt,
                sea_orm::sea_query::Expr::value(now),
            )
            .filter(users::Column::Id.eq(user_id))
            .filter(users::Column::IsActive.eq(true))
            .filter(users::Column::OrganizationId.is_null())
            .exec(&txn)
            .await
            .map_err(map_db_err)?;
        if joined.rows_affected != 1 {
            return Err(FoundingError::AlreadyMember);
        }
        uow_audit::append_in(&txn, &self.audit_key, organization.id, event, now).await?;
        txn.commit().await.map_err(map_db_err)?;
        Ok(organization)
    }

    async fn accept_invitation(
        &self,
        invitee: UserId,
        invitation: InvitationId,
        event: ports::NewAuditEvent,
    ) -> Result<Membership, InvitationError> {
        let user = *invitee.as_uuid();
        let txn = self.pool().begin().await.map_err(map_db_err)?;
        let stmt = Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT organization_id, role, outcome FROM app_accept_invitation($1, $2)",
            [user.into(), (*invitation.as_uuid()).into()],
        );
        let answer = AcceptRow::find_by_statement(stmt)
            .one(&txn)
            .await
            .map_err(map_db_err)?;
        let (org, role) = match answer {
            Some(AcceptRow {
                organization_id: Some(org),
                role: Some(role),
                outcome,
            }) if outcome == "joined" => (org, role),
            Some(AcceptRow { outcome, .. }) if outcome == "already_member" => {
                return Err(InvitationError::AlreadyMember);
            }
            Some(AcceptRow { outcome, .. }) if outcome == "full" => {
                return Err(InvitationError::Full);
            }
            _ => return Err(InvitationError::NotFound),
        };
        let role: Role = role
            .parse()
            .map_err(|_| corrupt("invitations", "role", *invitation.as_uuid()))?;
        let organization_id = self.record_answer(txn, org, user, event).await?;
        Ok(Membership {
            organization_id,
            role,
        })
    }

    async fn decline_invitation(
        &self,
        invitee: UserId,
        invitation: InvitationId,
        event: ports::NewAuditEvent,
    ) -> Result<OrganizationId, InvitationError> {
        let user = *invitee.as_uuid();
        let txn = self.pool().begin().await.map_err(map_db_err)?;
        let stmt = Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT organization_id FROM app_decline_invitation($1, $2)",
            [user.into(), (*invitation.as_uuid()).into()],
        );
        let Some(row) = txn.query_one_raw(stmt).await.map_err(map_db_err)? else {
            return Err(InvitationError::NotFound);
        };
        let org: Uuid = row.try_get("", "organization_id").map_err(map_db_err)?;
        Ok(self.record_answer(txn, org, user, event).await?)
    }
}

#[derive(FromQueryResult)]
struct AcceptRow {
    organization_id: Option<Uuid>,
    role: Option<String>,
    outcome: String,
}

#[derive(FromQueryResult)]
struct PendingRow {
    invitation_id: Uuid,
    organization_id: Uuid,
    organization_name: String,
    role: String,
    created_at: chrono::DateTime<chrono::Utc>,
    expires_at: chrono::DateTime<chrono::Utc>,
}

impl PgStore {
    /// What the token row found by the digest of `value` says: the token and its owner, or
    /// why it is refused. Opening the sealed value also proves it was sealed for this very
    /// row and organization.
    fn judge_token(
        &self,
        row: &TokenRow,
        value: &str,
    ) -> Result<Result<ResolvedApiToken, Refusal>, StoreError> {
        let refusal = |reason| Refusal {
            reason,
            user: Some(UserId::from_uuid(row.user_id)),
            organization: Some(OrganizationId::from_uuid(row.organization_id)),
            token: Some(domain::ApiTokenId::from_uuid(row.token_id)),
        };
        let place = crypto::SealContext {
            table: "api_tokens",
            column: "token",
            row_id: row.token_id,
            organization_id: row.organization_id,
        };
        // Opening also proves the row's value was sealed for this very row and organization.
        let Ok(stored) = self
            .secrets
            .open(&place, &secret_columns::Sealed(row.sealed.clone()))
        else {
            return Ok(Err(refusal(RefusalReason::Unopenable)));
        };
        if !crypto::constant_time_eq(stored.expose_secret(), value) {
            tracing::warn!(security_event = "api_token_mismatch", token = %row.token_id,
                "API token refused: the stored value differs from the digest's");
            return Ok(Err(refusal(RefusalReason::BadSignature)));
        }
        if row.expires_at.is_some_and(|at| self.clock.now() >= at) {
            return Ok(Err(refusal(RefusalReason::Expired)));
        }
        if !row.user_active {
            let reason = if row.role.is_none() {
                RefusalReason::LeftOrganization
            } else {
                RefusalReason::UserInactive
            };
            return Ok(Err(refusal(reason)));
        }
        let Some(role) = row.role.as_deref() else {
            return Ok(Err(refusal(RefusalReason::LeftOrganization)));
        };
        let role = role
            .parse()
            .map_err(|_| corrupt("users", "role", row.user_id))?;
        Ok(Ok(ResolvedApiToken {
            token_id: domain::ApiTokenId::from_uuid(row.token_id),
            user: ResolvedUser {
                user_id: UserId::from_uuid(row.user_id),
                membership: Some(Membership {
                    organization_id: OrganizationId::from_uuid(row.organization_id),
                    role,
                }),
                is_active: true,
            },
            last_used_at: row.last_used_at,
        }))
    }
}

#[derive(FromQueryResult)]
struct TokenRow {
    token_id: Uuid,
    organization_id: Uuid,
    user_id: Uuid,
    sealed: String,
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
    last_used_at: Option<chrono::DateTime<chrono::Utc>>,
    role: Option<String>,
    user_active: bool,
}

#[derive(FromQueryResult)]
struct SubjectRow {
    user_id: Uuid,
    organization_id: Option<Uuid>,
    role: Option<String>,
    is_active: bool,
    revoked: bool,
}

#[derive(Debug, FromQueryResult)]
struct ResolvedRow {
    user_id: Uuid,
    organization_id: Option<Uuid>,
    role: Option<String>,
    is_active: bool,
}

impl TryFrom<ResolvedRow> for ResolvedUser {
    type Error = StoreError;

    fn try_from(row: ResolvedRow) -> Result<Self, StoreError> {
        let membership = match (row.organization_id, row.role) {
            (Some(org), Some(role)) => Some(Membership {
                organization_id: OrganizationId::from_uuid(org),
                role: role
                    .parse()
                    .map_err(|_| corrupt("users", "role", row.user_id))?,
            }),
            (None, None) => None,
            _ => return Err(corrupt("users", "role", row.user_id)),
        };
        Ok(Self {
            user_id: UserId::from_uuid(row.user_id),
            membership,
            is_active: row.is_active,
        })
    }
}

impl PgStore {
    /// Records the answer to an invitation of `org` in that organization's chain, in the
    /// answer's transaction, and commits both.
    async fn record_answer(
        &self,
        txn: sea_orm::DatabaseTransaction,
        org: Uuid,
        user: Uuid,
        event: ports::NewAuditEvent,
    ) -> Result<OrganizationId, StoreError> {
        let organization_id = OrganizationId::from_uuid(org);
        set_tenant(&txn, Some(org), Some(user)).await?;
        uow_audit::append_in(
            &txn,
            &self.audit_key,
            organization_id,
            event,
            self.clock.now(),
        )
        .await?;
        txn.commit().await.map_err(map_db_err)?;
        Ok(organization_id)
    }

    async fn resolve(
        &self,
        sql: &str,
        args: Vec<sea_orm::Value>,
    ) -> Result<Option<ResolvedUser>, StoreError> {
        let stmt = Statement::from_sql_and_values(DbBackend::Postgres, sql, args);
        ResolvedRow::find_by_statement(stmt)
            .one(self.pool())
            .await
            .map_err(map_db_err)?
            .map(ResolvedUser::try_from)
            .transpose()
    }
}

#[async_trait]
impl IdentityDirectory for PgStore {
    async fn unscoped_user_by_subject(
        &self,
        subject: &str,
    ) -> Result<Option<ResolvedUser>, StoreError> {
        self.resolve(
            "SELECT user_id, organization_id, role, is_active FROM app_user_by_subject($1)",
            vec![subject.into()],
        )
        .await
    }

    async fn unscoped_invitations_for(
        &self,
        user: UserId,
    ) -> Result<Vec<PendingInvitation>, StoreError> {
        let stmt = Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT invitation_id, organization_id, organization_name, role, created_at, \
                    expires_at FROM app_my_invitations($1)",
            [(*user.as_uuid()).into()],
        );
        PendingRow::find_by_statement(stmt)
            .all(self.pool())
            .await
            .map_err(map_db_err)?
            .into_iter()
            .map(|row| {
                Ok(PendingInvitation {
                    id: InvitationId::from_uuid(row.invitation_id),
                    organization_id: OrganizationId::from_uuid(row.organization_id),
                    organization_name: row.organization_name,
                    role: row
                        .role
                        .parse()
                        .map_err(|_| corrupt("invitations", "role", row.invitation_id))?,
                    created_at: row.created_at,
                    expires_at: row.expires_at,
                })
            })
            .collect()
    }

    async fn unscoped_revoke_access_token(
        &self,
        jti: Uuid,
        user: UserId,
        expires_at: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), StoreError> {
        let stmt = Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT app_revoke_access_token($1, $2, $3)",
            [jti.into(), (*user.as_uuid()).into(), expires_at.into()],
        );
        self.pool().execute_raw(stmt).await.map_err(map_db_err)?;
        self.credentials.forget_all();
        Ok(())
    }

    async fn unscoped_revoke_session_tokens(
        &self,
        sid: Uuid,
        user: UserId,
        until: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), StoreError> {
        // Session ids and token ids are both random uuids: one revocation list holds both.
        self.unscoped_revoke_access_token(sid, user, until).await
    }

    async fn unscoped_sign_in_unaddressed(
        &self,
        subject: &str,
    ) -> Result<Option<ResolvedUser>, StoreError> {
        self.resolve(
            "SELECT user_id, organization_id, role, is_active FROM app_sign_in_unaddressed($1)",
            vec![subject.into()],
        )
        .await
    }

    async fn unscoped_sign_in(&self, identity: NewIdentity) -> Result<ResolvedUser, StoreError> {
        self.resolve(
            "SELECT user_id, organization_id, role, is_active FROM app_sign_in($1, $2, $3, $4, $5)",
            vec![
                Uuid::now_v7().into(),
                identity.subject.into(),
                identity.email.as_str().into(),
                identity.email_verified.into(),
                identity.name.map(|n| n.as_str().to_owned()).into(),
            ],
        )
        .await?
        .ok_or(StoreError::NotFound)
    }
}

#[async_trait]
impl HealthCheck for PgStore {
    async fn ready(&self) -> Result<(), StoreError> {
        self.pool()
            .execute_unprepared("SELECT 1")
            .await
            .map(drop)
            .map_err(map_db_err)
    }
}

/// What the database says about the role the application connects as.
#[derive(Debug, Clone, PartialEq, Eq, FromQueryResult)]
pub struct RoleReport {
    pub role: String,
    pub is_superuser: bool,
    pub bypasses_rls: bool,
    pub can_create_db: bool,
    pub can_create_role: bool,
    /// Tables, views and sequences of the current database that the role owns.
    pub owned_relations: i64,
    /// Other roles this one is a member of (directly or through others) that are superusers,
    /// bypass row-level security or own relations: their powers are a `SET ROLE` away.
    pub powerful_memberships: i64,
    /// Whether the role may create objects in the `public` schema (a function or a table of
    /// its own would shadow or sidestep the migrations' objects).
    pub can_create_in_schema: bool,
    /// Whether the role may create schemas in the database.
    pub can_create_in_database: bool,
    /// Whether the role may open replication connections (which stream every row, past
    /// every policy).
    pub replication: bool,
    /// PostgreSQL's predefined `pg_*` roles this one is a member of (writing every table,
    /// reading server files, running programs, ...): none is needed to serve.
    pub predefined_memberships: i64,
}

impl RoleReport {
    /// The reasons this role is unfit to run the application; empty when it is least-privilege.
    pub fn problems(&self) -> Vec<&'static str> {
        let mut problems = Vec::new();
        if self.is_superuser {
            problems.push("is a superuser");
        }
        if self.bypasses_rls {
            problems.push("bypasses row-level security (BYPASSRLS)");
        }
        if self.can_create_db {
            problems.push("may create databases (CREATEDB)");
        }
        if self.can_create_role {
            problems.push("may create roles (CREATEROLE)");
        }
        if self.owned_relations > 0 {
            problems.push("owns tables (owners are exempt from policies unless FORCEd)");
        }
        if self.powerful_memberships > 0 {
            problems.push(
                "is a member of a role that is a superuser, bypasses row-level security or owns \
                 tables",
            );
        }
        if self.can_create_in_schema {
            problems.push("may CREATE in the public schema");
        }
        if self.can_create_in_database {
            problems.push("may CREATE schemas in the database");
        }
        if self.replication {
            problems.push("may replicate (REPLICATION streams every row past the policies)");
        }
        if self.predefined_memberships > 0 {
            problems.push(
                "is a member of a predefined pg_* role (e.g. pg_write_all_data, \
                 pg_execute_server_program)",
            );
        }
        problems
    }
}

/// Reads the attributes of the role `db` connects as.
pub async fn inspect_role(db: &Database) -> Result<RoleReport, StoreError> {
    let stmt = Statement::from_string(
        DbBackend::Postgres,
        "SELECT r.rolname::text AS role, r.rolsuper AS is_superuser, \
                r.rolbypassrls AS bypasses_rls, r.rolcreatedb AS can_create_db, \
                r.rolcreaterole AS can_create_role, \
                (SELECT count(*) FROM pg_catalog.pg_class c WHERE c.relowner = r.oid \
                   AND c.relkind IN ('r', 'p', 'v', 'm', 'S')) AS owned_relations, \
                (SELECT count(*) FROM pg_catalog.pg_roles m WHERE m.oid <> r.oid \
                   AND pg_catalog.pg_has_role(r.oid, m.oid, 'MEMBER') \
                   AND (m.rolsuper OR m.rolbypassrls OR EXISTS ( \
                     SELECT 1 FROM pg_catalog.pg_class c WHERE c.relowner = m.oid \
                       AND c.relkind IN ('r', 'p', 'v', 'm', 'S') \
                       AND c.relnamespace = 'public'::pg_catalog.regnamespace))) \
                  AS powerful_memberships, \
                pg_catalog.has_schema_privilege(r.oid, 'public', 'CREATE') \
                  AS can_create_in_schema, \
                pg_catalog.has_database_privilege(r.oid, pg_catalog.current_database(), 'CREATE') \
                  AS can_create_in_database, \
                r.rolreplication AS replication, \
                (SELECT count(*) FROM pg_catalog.pg_roles m WHERE m.oid <> r.oid \
                   AND m.rolname LIKE 'pg\\_%' \
                   AND pg_catalog.pg_has_role(r.oid, m.oid, 'MEMBER')) AS predefined_memberships \
         FROM pg_catalog.pg_roles r WHERE r.rolname = current_user",
    );
    RoleReport::find_by_statement(stmt)
        .one(db.pool())
        .await
        .map_err(map_db_err)?
        .ok_or(StoreError::NotFound)
}

/// What a statement outside any unit of work sees on a connection of the pool: the tenant
/// settings and how many rows of three tenant tables are visible.
#[derive(Debug, Clone, Default, PartialEq, Eq, FromQueryResult)]
pub struct SessionReport {
    /// `app.current_organization`, empty when unset.
    pub organization_setting: String,
    /// `app.current_user`, empty when unset.
    pub user_setting: String,
    pub visible_organizations: i64,
    pub visible_projects: i64,
    pub visible_users: i64,
}

/// Reads what a statement of `db` sees outside any unit of work. The settings are
/// transaction-local and the policies fail closed, so every field must be empty or zero
/// ([`SessionReport::default`]); anything else is a tenant carried over through the pool. For
/// tests and diagnostics.
pub async fn inspect_session(db: &Database) -> Result<SessionReport, StoreError> {
    let stmt = Statement::from_string(
        DbBackend::Postgres,
        "SELECT coalesce(current_setting('app.current_organization', true), '') \
                  AS organization_setting, \
                coalesce(current_setting('app.current_user', true), '') AS user_setting, \
                (SELECT count(*) FROM organizations) AS visible_organizations, \
                (SELECT count(*) FROM projects) AS visible_projects, \
                (SELECT count(*) FROM users) AS visible_users",
    );
    SessionReport::find_by_statement(stmt)
        .one(db.pool())
        .await
        .map_err(map_db_err)?
        .ok_or(StoreError::NotFound)
}
