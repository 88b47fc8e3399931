//! Repositories of endpoints and models: the resources with secret columns. Secrets are
//! sealed to their row on write; reads show a slot (set, hint); only the `unseal_…` methods
//! return plaintext.

use async_trait::async_trait;
use crypto::SealContext;
use domain::{Endpoint, EndpointId, Model, ModelId, ProjectId};
use ports::{
    EndpointCredentials, EndpointPatch, EndpointSort, EndpointStore, ModelPatch, ModelSort,
    ModelStore, NewEndpoint, NewModel, Page, PageRequest, Patch, SecretPatch, StoreError,
};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue, ActiveValue::Set, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, Select,
};
use secrecy::SecretString;
use uuid::Uuid;

use crate::entities::{endpoints, models};
use crate::mapping::{headers_to_json, json_from_text};
use crate::secret_columns::{Sealed, hint_of};
use crate::uow::PgUnitOfWork;

const ENDPOINTS: &str = "endpoints";
const MODELS: &str = "models";

impl PgUnitOfWork {
    fn place(&self, table: &'static str, column: &'static str, row: Uuid) -> SealContext {
        SealContext {
            table,
            column,
            row_id: row,
            organization_id: self.org(),
        }
    }

    /// A new value for a secret column and its hint.
    fn seal_new(
        &self,
        table: &'static str,
        column: &'static str,
        row: Uuid,
        secret: Option<&SecretString>,
    ) -> (Option<Sealed>, Option<String>) {
        match secret {
            Some(secret) => (
                Some(self.secrets.seal(&self.place(table, column, row), secret)),
                Some(hint_of(secret)),
            ),
            None => (None, None),
        }
    }

    /// Applies a write to a secret column (and its hint) of an active model.
    fn patch_secret(
        &self,
        patch: SecretPatch,
        (table, column, row): (&'static str, &'static str, Uuid),
        sealed: &mut ActiveValue<Option<Sealed>>,
        hint: &mut ActiveValue<Option<String>>,
    ) {
        match patch {
            SecretPatch::Keep => {}
            SecretPatch::Clear => {
                *sealed = Set(None);
                *hint = Set(None);
            }
            SecretPatch::Set(secret) => {
                let (value, new_hint) = self.seal_new(table, column, row, Some(&secret));
                *sealed = Set(value);
                *hint = Set(new_hint);
            }
        }
    }

    fn unseal(
        &self,
        table: &'static str,
        column: &'static str,
        row: Uuid,
        stored: Option<&Sealed>,
    ) -> Result<Option<SecretString>, StoreError> {
        stored
            .map(|s| self.secrets.open(&self.place(table, column, row), s))
            .transpose()
    }

    /// A project referenced by an endpoint must be a live project of this organization.
    async fn check_project(&self, project: Option<ProjectId>) -> Result<(), StoreError> {
        if let Some(project) = project {
            self.project_row(project).await.map_err(|e| match e {
                StoreError::NotFound => StoreError::MissingReference { what: "project" },
                other => other,
            })?;
        }
        Ok(())
    }

    fn live_endpoints(&self) -> Select<endpoints::Entity> {
        endpoints::Entity::find()
            .filter(endpoints::Column::OrganizationId.eq(self.org()))
            .filter(endpoints::Column::DeletedAt.is_null())
    }

    async fn endpoint_row(&self, id: EndpointId) -> Result<endpoints::Model, StoreError> {
        self.live_endpoints()
            .filter(endpoints::Column::Id.eq(*id.as_uuid()))
            .one(&self.txn)
            .await
            .map_err(|e| self.abort(e))?
            .ok_or(StoreError::NotFound)
    }

    fn live_models(&self) -> Select<models::Entity> {
        models::Entity::find()
            .filter(models::Column::OrganizationId.eq(self.org()))
            .filter(models::Column::DeletedAt.is_null())
    }

    async fn model_row(&self, id: ModelId) -> Result<models::Model, StoreError> {
        self.live_models()
            .filter(models::Column::Id.eq(*id.as_uuid()))
            .one(&self.txn)
            .await
            .map_err(|e| self.abort(e))?
            .ok_or(StoreError::NotFound)
    }
}

fn set_if<T, U: Into<sea_orm::Value>>(
    patch: Patch<T>,
    slot: &mut ActiveValue<U>,
    convert: impl FnOnce(T) -> U,
) {
    if let Patch::Set(value) = patch {
        *slot = Set(convert(value));
    }
}

#[async_trait]
impl EndpointStore for PgUnitOfWork {
    async fn create(&self, new: NewEndpoint) -> Result<Endpoint, StoreError> {
        self.check_project(new.project_id).await?;
        let id = Uuid::now_v7();
        let now = self.now();
        let (auth_token, auth_token_hint) =
            self.seal_new(ENDPOINTS, "auth_token", id, new.auth_token.as_ref());
        let (client_secret, client_secret_hint) =
            self.seal_new(ENDPOINTS, "client_secret", id, new.client_secret.as_ref());
        let row = endpoints::ActiveModel {
            id: Set(id),
            organization_id: Set(self.org()),
            project_id: Set(new.project_id.map(|p| *p.as_uuid())),
            name: Set(new.name.as_str().to_owned()),
            description: Set(new.description.map(|d| d.as_str().to_owned())),
            url: Set(new.url.as_str().to_owned()),
            method: Set(new.method.as_str().to_owned()),
            protocol: Set(new.protocol.as_str().to_owned()),
            request_headers: Set(headers_to_json(&new.request_headers)),
            request_mapping: Set(json_from_text(
                new.request_mapping.as_deref(),
                "request_mapping",
            )?),
            response_mapping: Set(json_from_text(
                new.response_mapping.as_deref(),
                "response_mapping",
            )?),
            auth_type: Set(new.auth_type.as_str().to_owned()),
            client_id: Set(new.client_id),
            token_url: Set(new.token_url.map(|u| u.as_str().to_owned())),
            scopes: Set(new.scopes),
            audience: Set(new.audience),
            auth_token: Set(auth_token),
            client_secret: Set(client_secret),
            last_token: Set(None),
            auth_token_hint: Set(auth_token_hint),
            client_secret_hint: Set(client_secret_hint),
            last_token_hint: Set(None),
            last_token_expires_at: Set(None),
            created_by: Set(Some(*self.user.as_uuid())),
            created_at: Set(now),
            updated_at: Set(now),
            deleted_at: Set(None),
        };
        self.insert_row(row).await
    }

    async fn get(&self, id: EndpointId) -> Result<Endpoint, StoreError> {
        self.endpoint_row(id).await?.try_into()
    }

    async fn list(&self, page: PageRequest<EndpointSort>) -> Result<Page<Endpoint>, StoreError> {
        let column = match page.sort().field {
            EndpointSort::Name => endpoints::Column::Name,
            EndpointSort::CreatedAt => endpoints::Column::CreatedAt,
            EndpointSort::UpdatedAt => endpoints::Column::UpdatedAt,
        };
        let direction = page.sort().direction;
        self.fetch_page(
            self.live_endpoints(),
            column,
            endpoints::Column::Id,
            &page,
            direction,
        )
        .await
    }

    async fn update(&self, id: EndpointId, patch: EndpointPatch) -> Result<Endpoint, StoreError> {
        let row = self.endpoint_row(id).await?;
        if let Patch::Set(project) = patch.project_id {
            self.check_project(project).await?;
        }
        let key = *id.as_uuid();
        let mut am = row.into_active_model();
        set_if(patch.project_id, &mut am.project_id, |p| {
            p.map(|p| *p.as_uuid())
        });
        set_if(patch.name, &mut am.name, |n| n.as_str().to_owned());
        set_if(patch.description, &mut am.description, |d| {
            d.map(|d| d.as_str().to_owned())
        });
        set_if(patch.url, &mut am.url, |u| u.as_str().to_owned());
        set_if(patch.method, &mut am.method, |m| m.as_str().to_owned());
        set_if(patch.request_headers, &mut am.request_headers, |h| {
            headers_to_json(&h)
        });
        set_if(patch.auth_type, &mut am.auth_type, |a| {
            a.as_str().to_owned()
        });
        set_if(patch.client_id, &mut am.client_id, |c| c);
        set_if(patch.token_url, &mut am.token_url, |u| {
            u.map(|u| u.as_str().to_owned())
        });
        set_if(patch.scopes, &mut am.scopes, |s| s);
        set_if(patch.audience, &mut am.audience, |a| a);
        set_if(
            patch.last_token_expires_at,
            &mut am.last_token_expires_at,
            |t| t,
        );
        let place = |column| (ENDPOINTS, column, key);
        self.patch_secret(
            patch.auth_token,
            place("auth_token"),
            &mut am.auth_token,
            &mut am.auth_token_hint,
        );
        self.patch_secret(
            patch.client_secret,
            place("client_secret"),
            &mut am.client_secret,
            &mut am.client_secret_hint,
        );
        self.patch_secret(
            patch.last_token,
            place("last_token"),
            &mut am.last_token,
            &mut am.last_token_hint,
        );
        am.updated_at = Set(self.now());
        self.update_row(am).await
    }

    async fn soft_delete(&self, id: EndpointId) -> Result<(), StoreError> {
        let update = endpoints::Entity::update_many()
            .col_expr(endpoints::Column::DeletedAt, Expr::value(self.now()))
            .filter(endpoints::Column::Id.eq(*id.as_uuid()))
            .filter(endpoints::Column::OrganizationId.eq(self.org()))
            .filter(endpoints::Column::DeletedAt.is_null());
        self.update_existing(update).await
    }

    async fn unseal_credentials(&self, id: EndpointId) -> Result<EndpointCredentials, StoreError> {
        let row = self.endpoint_row(id).await?;
        Ok(EndpointCredentials {
            auth_token: self.unseal(ENDPOINTS, "auth_token", row.id, row.auth_token.as_ref())?,
            client_secret: self.unseal(
                ENDPOINTS,
                "client_secret",
                row.id,
                row.client_secret.as_ref(),
            )?,
            last_token: self.unseal(ENDPOINTS, "last_token", row.id, row.last_token.as_ref())?,
        })
    }
}

#[async_trait]
impl ModelStore for PgUnitOfWork {
    async fn create(&self, new: NewModel) -> Result<Model, StoreError> {
        let id = Uuid::now_v7();
        let now = self.now();
        let (key, key_hint) = self.seal_new(MODELS, "key", id, new.key.as_ref());
        let row = models::ActiveModel {
            id: Set(id),
            organization_id: Set(self.org()),
            name: Set(new.name.as_str().to_owned()),
            description: Set(new.description.map(|d| d.as_str().to_owned())),
            model_name: Set(new.model_name.as_str().to_owned()),
            provider: Set(new.provider.as_str().to_owned()),
            endpoint: Set(new.endpoint.map(|u| u.as_str().to_owned())),
            request_headers: Set(headers_to_json(&new.request_headers)),
            key: Set(key),
            key_hint: Set(key_hint),
            created_by: Set(Some(*self.user.as_uuid())),
            created_at: Set(now),
            updated_at: Set(now),
            deleted_at: Set(None),
        };
        self.insert_row(row).await
    }

    async fn get(&self, id: ModelId) -> Result<Model, StoreError> {
        self.model_row(id).await?.try_into()
    }

    async fn list(&self, page: PageRequest<ModelSort>) -> Result<Page<Model>, StoreError> {
        let column = match page.sort().field {
            ModelSort::Name => models::Column::Name,
            ModelSort::CreatedAt => models::Column::CreatedAt,
        };
        let direction = page.sort().direction;
        self.fetch_page(
            self.live_models(),
            column,
            models::Column::Id,
            &page,
            direction,
        )
        .await
    }

    async fn update(&self, id: ModelId, patch: ModelPatch) -> Result<Model, StoreError> {
        let row = self.model_row(id).await?;
        let key = *id.as_uuid();
        let mut am = row.into_active_model();
        set_if(patch.name, &mut am.name, |n| n.as_str().to_owned());
        set_if(patch.description, &mut am.description, |d| {
            d.map(|d| d.as_str().to_owned())
        });
        set_if(patch.model_name, &mut am.model_name, |n| {
            n.as_str().to_owned()
        });
        set_if(patch.provider, &mut am.provider, |n| n.as_str().to_owned());
        set_if(patch.endpoint, &mut am.endpoint, |u| {
            u.map(|u| u.as_str().to_owned())
        });
        set_if(patch.request_headers, &mut am.request_headers, |h| {
            headers_to_json(&h)
        });
        self.patch_secret(
            patch.key,
            (MODELS, "key", key),
            &mut am.key,
            &mut am.key_hint,
        );
        am.updated_at = Set(self.now());
        self.update_row(am).await
    }

    async fn soft_delete(&self, id: ModelId) -> Result<(), StoreError> {
        let update = models::Entity::update_many()
            .col_expr(models::Column::DeletedAt, Expr::value(self.now()))
            .filter(models::Column::Id.eq(*id.as_uuid()))
            .filter(models::Column::OrganizationId.eq(self.org()))
            .filter(models::Column::DeletedAt.is_null());
        self.update_existing(update).await
    }

    async fn unseal_key(&self, id: ModelId) -> Result<Option<SecretString>, StoreError> {
        let row = self.model_row(id).await?;
        self.unseal(MODELS, "key", row.id, row.key.as_ref())
    }
}
