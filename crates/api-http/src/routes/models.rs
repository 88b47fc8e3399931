//! Models (an LLM provider's model and its API key) of the caller's organization. The key is
//! write-only; writing it needs a fresh login and is recorded in the audit log.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, delete, get, patch, post, web};
use app::models::{
    CreateModelError, DeleteModelError, GetModelError, ListModelsError, UpdateModelError,
};
use chrono::{DateTime, Utc};
use domain::{Description, HttpUrl, Model, ModelId, Name, RequestHeaders};
use ports::{ModelPatch, ModelSort, NewModel};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use super::list::{ListQuery, SortKey, page_response};
use super::{
    created, invalid, optional, patch_optional, patch_required, present, required, secret_patch,
    secret_value, slot,
};
use crate::ApiError;
use crate::auth::Caller;
use crate::error::Problem;

pub(crate) fn routes(cfg: &mut ServiceConfig<'_>) {
    cfg.service(create_model)
        .service(list_models)
        .service(get_model)
        .service(update_model)
        .service(delete_model);
}

impl SortKey for ModelSort {
    const KEYS: &'static [(&'static str, Self)] =
        &[("created_at", Self::CreatedAt), ("name", Self::Name)];
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ModelView {
    id: Uuid,
    organization_id: Uuid,
    name: String,
    description: Option<String>,
    model_name: String,
    provider: String,
    endpoint: Option<String>,
    request_headers: BTreeMap<String, String>,
    has_key: bool,
    key_hint: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<Model> for ModelView {
    fn from(m: Model) -> Self {
        let (has_key, key_hint) = slot(&m.key);
        Self {
            id: *m.id.as_uuid(),
            organization_id: *m.organization_id.as_uuid(),
            name: m.name.as_str().to_owned(),
            description: m.description.map(|d| d.as_str().to_owned()),
            model_name: m.model_name.as_str().to_owned(),
            provider: m.provider.as_str().to_owned(),
            endpoint: m.endpoint.map(|u| u.as_str().to_owned()),
            request_headers: m
                .request_headers
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            has_key,
            key_hint,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ModelCreate {
    name: String,
    description: Option<String>,
    /// The provider's name of the model (`gpt-4o`, ...).
    model_name: String,
    provider: String,
    endpoint: Option<String>,
    #[serde(default)]
    request_headers: BTreeMap<String, String>,
    /// The provider API key. Write-only; needs a fresh login.
    key: Option<String>,
}

/// Absent fields are kept; `null` clears an optional one (or the key).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ModelUpdate {
    #[serde(default, deserialize_with = "present")]
    name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    description: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    model_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    provider: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    endpoint: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    request_headers: Option<Option<BTreeMap<String, String>>>,
    /// Write-only; `null` clears it. Needs a fresh login.
    #[serde(default, deserialize_with = "present")]
    key: Option<Option<String>>,
}

/// Creates a model. Writing `key` needs a fresh login.
#[utoipa::path(
    tag = "models",
    security(("bearer" = [])),
    request_body = ModelCreate,
    responses(
        (status = 201, body = ModelView),
        (status = 400, body = Problem),
        (status = 401, description = "No valid credential, or a login too old (step-up)", body = Problem)
    )
)]
#[post("/api/v1/models")]
pub(crate) async fn create_model(
    caller: Caller,
    body: crate::extract::Json<ModelCreate>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let new = NewModel {
        name: required("name", b.name.as_str(), Name::new)?,
        description: optional("description", b.description.as_deref(), Description::new)?,
        model_name: required("model_name", b.model_name.as_str(), Name::new)?,
        provider: required("provider", b.provider.as_str(), Name::new)?,
        endpoint: optional("endpoint", b.endpoint.as_deref(), HttpUrl::new)?,
        request_headers: RequestHeaders::new(b.request_headers)
            .map_err(|_| invalid("request_headers"))?,
        key: b.key.map(|v| secret_value("key", v)).transpose()?,
    };
    let model = caller.use_cases().create_model(caller.app(), new).await?;
    Ok(created(ModelView::from(model)))
}

/// The organization's models. Sort by `created_at` (default) or `name`.
#[utoipa::path(
    tag = "models",
    security(("bearer" = [])),
    params(ListQuery),
    responses((status = 200, body = Vec<ModelView>), (status = 400, body = Problem))
)]
#[get("/api/v1/models")]
pub(crate) async fn list_models(
    caller: Caller,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = query.page::<ModelSort>()?;
    let page = caller.use_cases().list_models(caller.app(), page).await?;
    Ok(page_response(page, ModelView::from))
}

#[utoipa::path(
    tag = "models",
    security(("bearer" = [])),
    responses((status = 200, body = ModelView), (status = 404, body = Problem))
)]
#[get("/api/v1/models/{model_id}")]
pub(crate) async fn get_model(
    caller: Caller,
    model_id: web::Path<Uuid>,
) -> Result<web::Json<ModelView>, ApiError> {
    let id = ModelId::from_uuid(model_id.into_inner());
    let model = caller.use_cases().get_model(caller.app(), id).await?;
    Ok(web::Json(model.into()))
}

/// Changes a model. Writing or clearing `key` needs a fresh login.
#[utoipa::path(
    tag = "models",
    security(("bearer" = [])),
    request_body = ModelUpdate,
    responses(
        (status = 200, body = ModelView),
        (status = 400, body = Problem),
        (status = 401, description = "No valid credential, or a login too old (step-up)", body = Problem),
        (status = 404, body = Problem)
    )
)]
#[patch("/api/v1/models/{model_id}")]
pub(crate) async fn update_model(
    caller: Caller,
    model_id: web::Path<Uuid>,
    body: crate::extract::Json<ModelUpdate>,
) -> Result<web::Json<ModelView>, ApiError> {
    let b = body.into_inner();
    let patch = ModelPatch {
        name: patch_required("name", b.name, |v: String| Name::new(&v))?,
        description: patch_optional("description", b.description, |v: String| {
            Description::new(&v)
        })?,
        model_name: patch_required("model_name", b.model_name, |v: String| Name::new(&v))?,
        provider: patch_required("provider", b.provider, |v: String| Name::new(&v))?,
        endpoint: patch_optional("endpoint", b.endpoint, |v: String| HttpUrl::new(&v))?,
        request_headers: patch_required("request_headers", b.request_headers, RequestHeaders::new)?,
        key: secret_patch("key", b.key)?,
    };
    let id = ModelId::from_uuid(model_id.into_inner());
    let model = caller
        .use_cases()
        .update_model(caller.app(), id, patch)
        .await?;
    Ok(web::Json(model.into()))
}

#[utoipa::path(
    tag = "models",
    security(("bearer" = [])),
    responses((status = 204, description = "Deleted"), (status = 404, body = Problem))
)]
#[delete("/api/v1/models/{model_id}")]
pub(crate) async fn delete_model(
    caller: Caller,
    model_id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let id = ModelId::from_uuid(model_id.into_inner());
    caller.use_cases().delete_model(caller.app(), id).await?;
    Ok(HttpResponse::NoContent().finish())
}

answers!(CreateModelError, ListModelsError);
answers!(not_found: GetModelError, UpdateModelError, DeleteModelError);
