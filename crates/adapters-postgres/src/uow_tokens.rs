//! The caller's own API tokens: the value is sealed to its row, looked up by digest, shown once.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use crypto::{ApiTokenValue, SealContext};
use domain::{ApiToken, ApiTokenId, Name, OrganizationId, SecretHint, UserId};
use ports::{ApiTokenSort, ApiTokenStore, Page, PageRequest, StoreError};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, EntityTrait, IntoActiveModel,
    QueryFilter, Select,
};
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use crate::entities::api_tokens;
use crate::error::corrupt;
use crate::uow::PgUnitOfWork;

const TABLE: &str = "api_tokens";

impl TryFrom<api_tokens::Model> for ApiToken {
    type Error = StoreError;

    fn try_from(m: api_tokens::Model) -> Result<Self, StoreError> {
        Ok(Self {
            id: ApiTokenId::from_uuid(m.id),
            organization_id: OrganizationId::from_uuid(m.organization_id),
            user_id: UserId::from_uuid(m.user_id),
            name: Name::new(&m.name).map_err(|_| corrupt(TABLE, "name", m.id))?,
            hint: SecretHint::from_stored(m.token_hint),
            expires_at: m.expires_at,
            last_used_at: m.last_used_at,
            last_refreshed_at: m.last_refreshed_at,
            created_at: m.created_at,
        })
    }
}

impl PgUnitOfWork {
    fn own_tokens(&self) -> Select<api_tokens::Entity> {
        api_tokens::Entity::find()
            .filter(api_tokens::Column::OrganizationId.eq(self.org()))
            .filter(api_tokens::Column::UserId.eq(*self.user.as_uuid()))
            .filter(api_tokens::Column::DeletedAt.is_null())
    }

    async fn own_token_row(&self, id: ApiTokenId) -> Result<api_tokens::Model, StoreError> {
        self.own_tokens()
            .filter(api_tokens::Column::Id.eq(*id.as_uuid()))
            .one(&self.txn)
            .await
            .map_err(|e| self.abort(e))?
            .ok_or(StoreError::NotFound)
    }

    /// A new token value for row `id`: (sealed value, digest, hint, plaintext).
    fn new_token_value(
        &self,
        id: Uuid,
    ) -> (crate::secret_columns::Sealed, Vec<u8>, String, SecretString) {
        let value = ApiTokenValue::from_random_bytes(&rand::random::<[u8; 32]>());
        let place = SealContext {
            table: TABLE,
            column: "token",
            row_id: id,
            organization_id: self.org(),
        };
        let sealed = self.secrets.seal(&place, value.secret());
        let hint = SecretHint::of(value.secret().expose_secret())
            .as_str()
            .to_owned();
        (sealed, value.digest().to_vec(), hint, value.into_secret())
    }
}

#[async_trait]
impl ApiTokenStore for PgUnitOfWork {
    async fn create(
        &self,
        name: Name,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<(ApiToken, SecretString), StoreError> {
        let id = Uuid::now_v7();
        let now = self.now();
        let (sealed, digest, hint, plaintext) = self.new_token_value(id);
        let row = api_tokens::ActiveModel {
            id: Set(id),
            organization_id: Set(self.org()),
            user_id: Set(*self.user.as_uuid()),
            name: Set(name.as_str().to_owned()),
            token: Set(sealed),
            token_digest: Set(digest),
            token_hint: Set(hint),
            expires_at: Set(expires_at),
            last_used_at: Set(None),
            last_refreshed_at: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
            deleted_at: Set(None),
        };
        let token = row
            .insert(&self.txn)
            .await
            .map_err(|e| self.abort(e))?
            .try_into()?;
        Ok((token, plaintext))
    }

    async fn get_own(&self, id: ApiTokenId) -> Result<ApiToken, StoreError> {
        self.own_token_row(id).await?.try_into()
    }

    async fn list_own(
        &self,
        page: PageRequest<ApiTokenSort>,
    ) -> Result<Page<ApiToken>, StoreError> {
        let column = match page.sort().field {
            ApiTokenSort::Name => api_tokens::Column::Name,
            ApiTokenSort::CreatedAt => api_tokens::Column::CreatedAt,
        };
        let direction = page.sort().direction;
        self.fetch_page(
            self.own_tokens(),
            column,
            api_tokens::Column::Id,
            &page,
            direction,
        )
        .await
    }

    async fn rename_own(&self, id: ApiTokenId, name: Name) -> Result<ApiToken, StoreError> {
        let mut row = self.own_token_row(id).await?.into_active_model();
        row.name = Set(name.as_str().to_owned());
        row.updated_at = Set(self.now());
        self.update_row(row).await
    }

    async fn revoke_own(&self, id: ApiTokenId) -> Result<(), StoreError> {
        self.changes_credentials();
        let update = api_tokens::Entity::update_many()
            .col_expr(api_tokens::Column::DeletedAt, Expr::value(self.now()))
            .filter(api_tokens::Column::Id.eq(*id.as_uuid()))
            .filter(api_tokens::Column::OrganizationId.eq(self.org()))
            .filter(api_tokens::Column::UserId.eq(*self.user.as_uuid()))
            .filter(api_tokens::Column::DeletedAt.is_null());
        self.update_existing(update).await
    }

    async fn touch_own(&self, id: ApiTokenId, resolution: Duration) -> Result<bool, StoreError> {
        let previous = self.own_token_row(id).await?.last_used_at;
        let now = self.now();
        // A concurrent touch that committed first makes this one match no row: only one of
        // them reports the first use.
        let update = api_tokens::Entity::update_many()
            .col_expr(api_tokens::Column::LastUsedAt, Expr::value(now))
            .filter(api_tokens::Column::Id.eq(*id.as_uuid()))
            .filter(api_tokens::Column::OrganizationId.eq(self.org()))
            .filter(api_tokens::Column::UserId.eq(*self.user.as_uuid()))
            .filter(api_tokens::Column::DeletedAt.is_null())
            .filter(
                Condition::any()
                    .add(api_tokens::Column::LastUsedAt.is_null())
                    .add(api_tokens::Column::LastUsedAt.lt(now - resolution)),
            );
        let result = update.exec(&self.txn).await.map_err(|e| self.abort(e))?;
        Ok(result.rows_affected == 1 && previous.is_none())
    }

    async fn refresh_own(&self, id: ApiTokenId) -> Result<(ApiToken, SecretString), StoreError> {
        self.changes_credentials();
        let row = self.own_token_row(id).await?;
        let (sealed, digest, hint, plaintext) = self.new_token_value(row.id);
        let now = self.now();
        let mut row = row.into_active_model();
        row.token = Set(sealed);
        row.token_digest = Set(digest);
        row.token_hint = Set(hint);
        row.last_refreshed_at = Set(Some(now));
        row.updated_at = Set(now);
        let token = row
            .update(&self.txn)
            .await
            .map_err(|e| self.abort(e))?
            .try_into()?;
        Ok((token, plaintext))
    }
}
