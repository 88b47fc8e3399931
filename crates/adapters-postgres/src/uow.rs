//! The unit of work: one transaction bound to one tenant, and the repositories inside it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::{Organization, OrganizationId, Project, ProjectId, Role, User, UserId};
use ports::{
    Clock, NewProject, OrganizationPatch, OrganizationSort, OrganizationStore, Page, PageRequest,
    ProjectPatch, ProjectSort, ProjectStore, SortDirection, StoreError, UnitOfWork, UserSort,
    UserStore,
};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction,
    DbBackend, EntityTrait, FromQueryResult, IntoActiveModel, Order, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, QueryTrait, Select, Statement,
};
use uuid::Uuid;

use crate::entities::{organizations, projects, users};
use crate::error::map_db_err;

/// Sets the tenant of the current transaction. Both settings are transaction-local
/// (`set_config(..., true)`): they end with COMMIT or ROLLBACK, so nothing carries over to
/// the next use of the pooled connection. Values are bound parameters, never SQL text.
pub(crate) async fn set_tenant(
    txn: &DatabaseTransaction,
    organization: Option<Uuid>,
    user: Option<Uuid>,
) -> Result<(), StoreError> {
    let text = |id: Option<Uuid>| id.map(|u| u.to_string()).unwrap_or_default();
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT set_config('app.current_organization', $1, true), \
                set_config('app.current_user', $2, true)",
        [text(organization).into(), text(user).into()],
    ))
    .await
    .map(drop)
    .map_err(map_db_err)
}

/// A unit of work in PostgreSQL. Dropping it without `commit` rolls the transaction back.
///
/// A statement that fails aborts a PostgreSQL transaction, and a COMMIT of an aborted
/// transaction silently rolls back. So the first database error marks the unit of work
/// aborted, and `commit` then reports an error instead of pretending to have committed.
pub(crate) struct PgUnitOfWork {
    pub(crate) txn: DatabaseTransaction,
    /// The tenant, as set in the transaction.
    pub(crate) organization: OrganizationId,
    pub(crate) user: UserId,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) secrets: Arc<crate::SecretColumns>,
    pub(crate) audit_key: Arc<crypto::AuditChainKey>,
    pub(crate) aborted: AtomicBool,
    /// This process's credential cache, emptied when a change of a credential commits here
    /// (the other replicas hear of it from the database).
    pub(crate) credentials: Arc<crate::credential_cache::CredentialCache>,
    /// Whether a credential was changed: a role, a membership, an API token.
    pub(crate) changes_credentials: AtomicBool,
}

/// `commit` of a unit of work in which a statement had failed.
#[derive(Debug, thiserror::Error)]
#[error("the unit of work was aborted by an earlier database error")]
pub(crate) struct Aborted;

impl std::fmt::Debug for PgUnitOfWork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgUnitOfWork")
            .field("organization", &self.organization)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl PgUnitOfWork {
    /// Marks this unit of work as changing a credential: its commit empties this process's
    /// credential cache at once.
    pub(crate) fn changes_credentials(&self) {
        self.changes_credentials.store(true, Ordering::SeqCst);
    }

    pub(crate) fn org(&self) -> Uuid {
        *self.organization.as_uuid()
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Runs an update that must reach at least one row of the tenant; `NotFound` otherwise.
    pub(crate) async fn update_existing<E: EntityTrait>(
        &self,
        update: sea_orm::UpdateMany<E>,
    ) -> Result<(), StoreError> {
        let result = update.exec(&self.txn).await.map_err(|e| self.abort(e))?;
        if result.rows_affected == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Inserts a row and maps it to its domain type.
    pub(crate) async fn insert_row<A, D>(&self, row: A) -> Result<D, StoreError>
    where
        A: ActiveModelTrait + sea_orm::ActiveModelBehavior + Send,
        <A::Entity as EntityTrait>::Model: IntoActiveModel<A>,
        D: TryFrom<<A::Entity as EntityTrait>::Model, Error = StoreError>,
    {
        row.insert(&self.txn)
            .await
            .map_err(|e| self.abort(e))?
            .try_into()
    }

    /// Writes the changed columns of a row and maps it to its domain type.
    pub(crate) async fn update_row<A, D>(&self, row: A) -> Result<D, StoreError>
    where
        A: ActiveModelTrait + sea_orm::ActiveModelBehavior + Send,
        <A::Entity as EntityTrait>::Model: IntoActiveModel<A>,
        D: TryFrom<<A::Entity as EntityTrait>::Model, Error = StoreError>,
    {
        row.update(&self.txn)
            .await
            .map_err(|e| self.abort(e))?
            .try_into()
    }

    /// Marks the transaction aborted by a store error that came from it.
    pub(crate) fn aborted_by(&self, err: StoreError) -> StoreError {
        self.aborted.store(true, Ordering::SeqCst);
        err
    }

    /// Maps a database error and marks the transaction aborted.
    pub(crate) fn abort(&self, err: sea_orm::DbErr) -> StoreError {
        self.aborted.store(true, Ordering::SeqCst);
        map_db_err(err)
    }
}

#[async_trait]
impl UnitOfWork for PgUnitOfWork {
    fn tenant(&self) -> (OrganizationId, UserId) {
        (self.organization, self.user)
    }

    fn organizations(&self) -> &dyn OrganizationStore {
        self
    }

    fn users(&self) -> &dyn UserStore {
        self
    }

    fn invitations(&self) -> &dyn ports::InvitationStore {
        self
    }

    fn projects(&self) -> &dyn ProjectStore {
        self
    }

    fn endpoints(&self) -> &dyn ports::EndpointStore {
        self
    }

    fn models(&self) -> &dyn ports::ModelStore {
        self
    }

    fn api_tokens(&self) -> &dyn ports::ApiTokenStore {
        self
    }

    fn audit(&self) -> &dyn ports::AuditStore {
        self
    }

    async fn commit(self: Box<Self>) -> Result<(), StoreError> {
        if self.aborted.load(Ordering::SeqCst) {
            self.txn.rollback().await.map_err(map_db_err)?;
            return Err(StoreError::Unexpected(Box::new(Aborted)));
        }
        self.txn.commit().await.map_err(map_db_err)?;
        if self.changes_credentials.load(Ordering::SeqCst) {
            self.credentials.forget_all();
        }
        Ok(())
    }
}

fn order(direction: SortDirection) -> Order {
    match direction {
        SortDirection::Ascending => Order::Asc,
        SortDirection::Descending => Order::Desc,
    }
}

/// The column that carries the size of the whole selection next to each row of a page.
const PAGE_TOTAL: &str = "page_total";

/// One page of `select`, ordered by `column` then by primary key (a stable order), and the
/// total count of the whole selection, in one statement: every row carries the count of the
/// whole selection (`COUNT(*) OVER ()`, computed before the limit). Only a page past the end,
/// which has no row to carry it, costs a second statement that counts.
impl PgUnitOfWork {
    pub(crate) async fn fetch_page<E, D>(
        &self,
        select: Select<E>,
        column: E::Column,
        id: E::Column,
        page: &PageRequest<impl Copy>,
        direction: SortDirection,
    ) -> Result<Page<D>, StoreError>
    where
        E: EntityTrait,
        E::Model: Sync,
        D: TryFrom<E::Model, Error = StoreError>,
    {
        let txn = &self.txn;
        let statement = select
            .clone()
            .column_as(Expr::cust("COUNT(*) OVER ()"), PAGE_TOTAL)
            .order_by(column, order(direction))
            .order_by(id, order(direction))
            .offset(page.skip())
            .limit(page.limit())
            .build(DbBackend::Postgres);
        let rows = txn
            .query_all_raw(statement)
            .await
            .map_err(|e| self.abort(e))?;
        let mut total = None;
        let mut items = Vec::with_capacity(rows.len());
        for row in &rows {
            let count: i64 = row.try_get("", PAGE_TOTAL).map_err(|e| self.abort(e))?;
            total = Some(count);
            let model = E::Model::from_query_result(row, "").map_err(|e| self.abort(e))?;
            items.push(D::try_from(model)?);
        }
        let total = match total {
            Some(count) => u64::try_from(count).unwrap_or_default(),
            None if page.skip() == 0 => 0,
            None => select.count(txn).await.map_err(|e| self.abort(e))?,
        };
        Ok(Page { items, total })
    }
}

// ---------------------------------------------------------------- organizations

impl PgUnitOfWork {
    async fn current_org_row(&self) -> Result<organizations::Model, StoreError> {
        organizations::Entity::find_by_id(self.org())
            .filter(organizations::Column::DeletedAt.is_null())
            .one(&self.txn)
            .await
            .map_err(|e| self.abort(e))?
            .ok_or(StoreError::NotFound)
    }
}

#[async_trait]
impl OrganizationStore for PgUnitOfWork {
    async fn current(&self) -> Result<Organization, StoreError> {
        self.current_org_row().await?.try_into()
    }

    async fn list(
        &self,
        page: PageRequest<OrganizationSort>,
    ) -> Result<Page<Organization>, StoreError> {
        let select = organizations::Entity::find()
            .filter(organizations::Column::Id.eq(self.org()))
            .filter(organizations::Column::DeletedAt.is_null());
        let column = match page.sort().field {
            OrganizationSort::Name => organizations::Column::Name,
            OrganizationSort::CreatedAt => organizations::Column::CreatedAt,
        };
        let direction = page.sort().direction;
        self.fetch_page(select, column, organizations::Column::Id, &page, direction)
            .await
    }

    async fn update(&self, patch: OrganizationPatch) -> Result<Organization, StoreError> {
        let current: Organization = self.current_org_row().await?.try_into()?;
        let mut next = current.clone();
        patch.name.apply_to(&mut next.name);
        patch.display_name.apply_to(&mut next.display_name);
        patch.description.apply_to(&mut next.description);
        patch.website.apply_to(&mut next.website);
        patch.logo_url.apply_to(&mut next.logo_url);
        patch.email.apply_to(&mut next.email);
        patch
            .is_onboarding_complete
            .apply_to(&mut next.is_onboarding_complete);
        let row = organizations::ActiveModel {
            id: Set(self.org()),
            name: Set(next.name.as_str().to_owned()),
            display_name: Set(next.display_name.map(|v| v.as_str().to_owned())),
            description: Set(next.description.map(|v| v.as_str().to_owned())),
            website: Set(next.website.map(|v| v.as_str().to_owned())),
            logo_url: Set(next.logo_url.map(|v| v.as_str().to_owned())),
            email: Set(next.email.map(|v| v.as_str().to_owned())),
            is_onboarding_complete: Set(next.is_onboarding_complete),
            updated_at: Set(self.now()),
            ..Default::default()
        };
        self.update_row(row).await
    }

    async fn soft_delete(&self) -> Result<(), StoreError> {
        self.changes_credentials();
        let update = organizations::Entity::update_many()
            .col_expr(organizations::Column::DeletedAt, Expr::value(self.now()))
            .filter(organizations::Column::Id.eq(self.org()))
            .filter(organizations::Column::DeletedAt.is_null());
        self.update_existing(update).await?;
        // Every member leaves with it: their access tokens and API tokens stop working.
        self.detach_members()
            .exec(&self.txn)
            .await
            .map_err(|e| self.abort(e))?;
        Ok(())
    }
}

// ---------------------------------------------------------------- users

impl PgUnitOfWork {
    pub(crate) fn members(&self) -> Select<users::Entity> {
        users::Entity::find().filter(users::Column::OrganizationId.eq(self.org()))
    }

    /// Takes the organization's members (narrowed further by the caller) out of it,
    /// remembering where they came from.
    fn detach_members(&self) -> sea_orm::UpdateMany<users::Entity> {
        users::Entity::update_many()
            .col_expr(
                users::Column::OrganizationId,
                Expr::value(Option::<Uuid>::None),
            )
            .col_expr(users::Column::Role, Expr::value(Option::<String>::None))
            .col_expr(users::Column::LeftOrganizationId, Expr::value(self.org()))
            .col_expr(users::Column::UpdatedAt, Expr::value(self.now()))
            .filter(users::Column::OrganizationId.eq(self.org()))
    }

    async fn member_row(&self, id: UserId) -> Result<users::Model, StoreError> {
        self.members()
            .filter(users::Column::Id.eq(*id.as_uuid()))
            .one(&self.txn)
            .await
            .map_err(|e| self.abort(e))?
            .ok_or(StoreError::NotFound)
    }
}

#[async_trait]
impl UserStore for PgUnitOfWork {
    async fn get(&self, id: UserId) -> Result<User, StoreError> {
        self.member_row(id).await?.try_into()
    }

    async fn list(&self, page: PageRequest<UserSort>) -> Result<Page<User>, StoreError> {
        let column = match page.sort().field {
            UserSort::Email => users::Column::Email,
            UserSort::Name => users::Column::Name,
            UserSort::CreatedAt => users::Column::CreatedAt,
        };
        let direction = page.sort().direction;
        self.fetch_page(self.members(), column, users::Column::Id, &page, direction)
            .await
    }

    async fn count_owners(&self) -> Result<u64, StoreError> {
        // FOR UPDATE: a concurrent unit of work that demotes or removes an owner waits, then
        // sees the owners as they are after it (READ COMMITTED re-checks locked rows).
        let owners = self
            .members()
            .select_only()
            .column(users::Column::Id)
            .filter(users::Column::Role.eq(Role::Owner.as_str()))
            .lock_exclusive()
            .into_tuple::<Uuid>()
            .all(&self.txn)
            .await
            .map_err(|e| self.abort(e))?;
        Ok(owners.len() as u64)
    }

    async fn set_role(&self, id: UserId, role: Role) -> Result<User, StoreError> {
        self.changes_credentials();
        let mut row = self.member_row(id).await?.into_active_model();
        row.role = Set(Some(role.as_str().to_owned()));
        row.updated_at = Set(self.now());
        self.update_row(row).await
    }

    async fn remove(&self, id: UserId) -> Result<(), StoreError> {
        self.changes_credentials();
        let update = self
            .detach_members()
            .filter(users::Column::Id.eq(*id.as_uuid()));
        self.update_existing(update).await
    }
}

// ---------------------------------------------------------------- projects

impl PgUnitOfWork {
    fn live_projects(&self) -> Select<projects::Entity> {
        projects::Entity::find()
            .filter(projects::Column::OrganizationId.eq(self.org()))
            .filter(projects::Column::DeletedAt.is_null())
    }

    pub(crate) async fn project_row(&self, id: ProjectId) -> Result<projects::Model, StoreError> {
        self.live_projects()
            .filter(projects::Column::Id.eq(*id.as_uuid()))
            .one(&self.txn)
            .await
            .map_err(|e| self.abort(e))?
            .ok_or(StoreError::NotFound)
    }
}

#[async_trait]
impl ProjectStore for PgUnitOfWork {
    async fn create(&self, new: NewProject) -> Result<Project, StoreError> {
        let now = self.now();
        let user = *self.user.as_uuid();
        let row = projects::ActiveModel {
            id: Set(Uuid::now_v7()),
            organization_id: Set(self.org()),
            name: Set(new.name.as_str().to_owned()),
            description: Set(new.description.map(|d| d.as_str().to_owned())),
            icon: Set(new.icon.map(|i| i.as_str().to_owned())),
            is_active: Set(true),
            owner_id: Set(Some(user)),
            created_by: Set(Some(user)),
            created_at: Set(now),
            updated_at: Set(now),
            deleted_at: Set(None),
        };
        self.insert_row(row).await
    }

    async fn get(&self, id: ProjectId) -> Result<Project, StoreError> {
        self.project_row(id).await?.try_into()
    }

    async fn list(&self, page: PageRequest<ProjectSort>) -> Result<Page<Project>, StoreError> {
        let column = match page.sort().field {
            ProjectSort::Name => projects::Column::Name,
            ProjectSort::CreatedAt => projects::Column::CreatedAt,
            ProjectSort::UpdatedAt => projects::Column::UpdatedAt,
        };
        let direction = page.sort().direction;
        let select = self.live_projects();
        self.fetch_page(select, column, projects::Column::Id, &page, direction)
            .await
    }

    async fn update(&self, id: ProjectId, patch: ProjectPatch) -> Result<Project, StoreError> {
        let current: Project = self.project_row(id).await?.try_into()?;
        if let ports::Patch::Set(Some(owner)) = patch.owner_id {
            // Foreign keys are checked without row-level security: the owner must be proven
            // a member of this organization here, or a project could point into another.
            self.member_row(owner).await.map_err(|e| match e {
                StoreError::NotFound => StoreError::MissingReference { what: "user" },
                other => other,
            })?;
        }
        let mut next = current;
        patch.name.apply_to(&mut next.name);
        patch.description.apply_to(&mut next.description);
        patch.icon.apply_to(&mut next.icon);
        patch.is_active.apply_to(&mut next.is_active);
        patch.owner_id.apply_to(&mut next.owner_id);
        let row = projects::ActiveModel {
            id: Set(*id.as_uuid()),
            name: Set(next.name.as_str().to_owned()),
            description: Set(next.description.map(|d| d.as_str().to_owned())),
            icon: Set(next.icon.map(|i| i.as_str().to_owned())),
            is_active: Set(next.is_active),
            owner_id: Set(next.owner_id.map(|o| *o.as_uuid())),
            updated_at: Set(self.now()),
            ..Default::default()
        };
        self.update_row(row).await
    }

    async fn soft_delete(&self, id: ProjectId) -> Result<(), StoreError> {
        let update = projects::Entity::update_many()
            .col_expr(projects::Column::DeletedAt, Expr::value(self.now()))
            .filter(projects::Column::Id.eq(*id.as_uuid()))
            .filter(projects::Column::OrganizationId.eq(self.org()))
            .filter(projects::Column::DeletedAt.is_null());
        self.update_existing(update).await
    }
}
