//! Endpoints (LLM applications under test) of the caller's organization. Their credentials
//! are write-only: responses say whether each is set and show a hint, never a value; writing
//! one needs a fresh login and is recorded in the audit log.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, delete, get, patch, post, web};
use app::endpoints::{
    CreateEndpointError, DeleteEndpointError, GetEndpointError, ListEndpointsError,
    UpdateEndpointError,
};
use chrono::{DateTime, Utc};
use domain::{
    AuthType, Description, Endpoint, EndpointId, EndpointProtocol, HttpMethod, HttpUrl, Name,
    ProjectId, RequestHeaders,
};
use ports::{EndpointPatch, EndpointSort, NewEndpoint, Patch, SecretPatch};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use super::list::{ListQuery, SortKey, page_response};
use super::{
    created, invalid, optional, patch_optional, patch_required, present, required, secret_patch,
    secret_value, slot,
};
use crate::auth::Caller;
use crate::error::Problem;
use crate::{ApiError, ErrorCode};

pub(crate) fn routes(cfg: &mut ServiceConfig<'_>) {
    cfg.service(create_endpoint)
        .service(list_endpoints)
        .service(get_endpoint)
        .service(update_endpoint)
        .service(delete_endpoint);
}

impl SortKey for EndpointSort {
    const KEYS: &'static [(&'static str, Self)] = &[
        ("created_at", Self::CreatedAt),
        ("name", Self::Name),
        ("updated_at", Self::UpdatedAt),
    ];
}

fn headers(field: &'static str, map: BTreeMap<String, String>) -> Result<RequestHeaders, ApiError> {
    RequestHeaders::new(map).map_err(|_| invalid(field))
}

/// JSON templates must be objects.
fn mapping(field: &'static str, value: serde_json::Value) -> Result<String, ApiError> {
    if value.is_object() {
        Ok(value.to_string())
    } else {
        Err(invalid(field))
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct EndpointView {
    id: Uuid,
    organization_id: Uuid,
    project_id: Option<Uuid>,
    name: String,
    description: Option<String>,
    url: String,
    /// GET, POST, PUT, PATCH or DELETE.
    method: &'static str,
    /// REST or WebSocket.
    protocol: &'static str,
    request_headers: BTreeMap<String, String>,
    #[schema(value_type = Option<Object>)]
    request_mapping: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    response_mapping: Option<serde_json::Value>,
    /// none, bearer_token or client_credentials.
    auth_type: &'static str,
    client_id: Option<String>,
    token_url: Option<String>,
    scopes: Vec<String>,
    audience: Option<String>,
    has_auth_token: bool,
    auth_token_hint: Option<String>,
    has_client_secret: bool,
    client_secret_hint: Option<String>,
    has_last_token: bool,
    last_token_expires_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<Endpoint> for EndpointView {
    fn from(e: Endpoint) -> Self {
        let (has_auth_token, auth_token_hint) = slot(&e.auth_token);
        let (has_client_secret, client_secret_hint) = slot(&e.client_secret);
        let json = |text: Option<String>| text.and_then(|t| serde_json::from_str(&t).ok());
        Self {
            id: *e.id.as_uuid(),
            organization_id: *e.organization_id.as_uuid(),
            project_id: e.project_id.map(|p| *p.as_uuid()),
            name: e.name.as_str().to_owned(),
            description: e.description.map(|d| d.as_str().to_owned()),
            url: e.url.as_str().to_owned(),
            method: e.method.as_str(),
            protocol: e.protocol.as_str(),
            request_headers: e
                .request_headers
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            request_mapping: json(e.request_mapping),
            response_mapping: json(e.response_mapping),
            auth_type: e.auth_type.as_str(),
            client_id: e.client_id,
            token_url: e.token_url.map(|u| u.as_str().to_owned()),
            scopes: e.scopes,
            audience: e.audience,
            has_auth_token,
            auth_token_hint,
            has_client_secret,
            client_secret_hint,
            has_last_token: e.last_token.is_set(),
            last_token_expires_at: e.last_token_expires_at,
            created_at: e.created_at,
            updated_at: e.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EndpointCreate {
    project_id: Option<Uuid>,
    name: String,
    description: Option<String>,
    url: String,
    /// GET, POST (default), PUT, PATCH or DELETE.
    method: Option<String>,
    /// REST (default) or WebSocket.
    protocol: Option<String>,
    #[serde(default)]
    request_headers: BTreeMap<String, String>,
    #[schema(value_type = Option<Object>)]
    request_mapping: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    response_mapping: Option<serde_json::Value>,
    /// none (default), bearer_token or client_credentials.
    auth_type: Option<String>,
    client_id: Option<String>,
    token_url: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
    audience: Option<String>,
    /// Write-only. Needs a fresh login.
    auth_token: Option<String>,
    /// Write-only. Needs a fresh login.
    client_secret: Option<String>,
}

/// Absent fields are kept; `null` clears an optional one (or a secret).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EndpointUpdate {
    #[serde(default, deserialize_with = "present")]
    project_id: Option<Option<Uuid>>,
    #[serde(default, deserialize_with = "present")]
    name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    description: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    url: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    method: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    request_headers: Option<Option<BTreeMap<String, String>>>,
    #[serde(default, deserialize_with = "present")]
    auth_type: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    client_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    token_url: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    scopes: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "present")]
    audience: Option<Option<String>>,
    /// Write-only; `null` clears it. Needs a fresh login.
    #[serde(default, deserialize_with = "present")]
    auth_token: Option<Option<String>>,
    /// Write-only; `null` clears it. Needs a fresh login.
    #[serde(default, deserialize_with = "present")]
    client_secret: Option<Option<String>>,
}

/// A short free text (a client id, an audience).
fn text(value: String) -> Result<String, ()> {
    if value.len() > 1024 || value.trim().is_empty() {
        return Err(());
    }
    Ok(value)
}

fn scopes(values: Vec<String>) -> Result<Vec<String>, ApiError> {
    if values.len() > 50 || values.iter().any(|s| s.is_empty() || s.len() > 200) {
        return Err(invalid("scopes"));
    }
    Ok(values)
}

/// Creates an endpoint. Writing `auth_token` or `client_secret` needs a fresh login.
#[utoipa::path(
    tag = "endpoints",
    security(("bearer" = [])),
    request_body = EndpointCreate,
    responses(
        (status = 201, body = EndpointView),
        (status = 400, body = Problem),
        (status = 401, description = "No valid credential, or a login too old (step-up)", body = Problem)
    )
)]
#[post("/api/v1/endpoints")]
pub(crate) async fn create_endpoint(
    caller: Caller,
    body: crate::extract::Json<EndpointCreate>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let new = NewEndpoint {
        project_id: b.project_id.map(ProjectId::from_uuid),
        name: required("name", b.name.as_str(), Name::new)?,
        description: optional("description", b.description.as_deref(), Description::new)?,
        url: required("url", b.url.as_str(), HttpUrl::new)?,
        method: optional("method", b.method.as_deref(), str::parse::<HttpMethod>)?
            .unwrap_or(HttpMethod::Post),
        protocol: optional(
            "protocol",
            b.protocol.as_deref(),
            str::parse::<EndpointProtocol>,
        )?
        .unwrap_or(EndpointProtocol::Rest),
        request_headers: headers("request_headers", b.request_headers)?,
        request_mapping: b
            .request_mapping
            .map(|v| mapping("request_mapping", v))
            .transpose()?,
        response_mapping: b
            .response_mapping
            .map(|v| mapping("response_mapping", v))
            .transpose()?,
        auth_type: optional("auth_type", b.auth_type.as_deref(), str::parse::<AuthType>)?
            .unwrap_or(AuthType::None),
        client_id: optional("client_id", b.client_id, text)?,
        token_url: optional("token_url", b.token_url.as_deref(), HttpUrl::new)?,
        scopes: scopes(b.scopes)?,
        audience: optional("audience", b.audience, text)?,
        auth_token: b
            .auth_token
            .map(|v| secret_value("auth_token", v))
            .transpose()?,
        client_secret: b
            .client_secret
            .map(|v| secret_value("client_secret", v))
            .transpose()?,
    };
    let endpoint = caller
        .use_cases()
        .create_endpoint(caller.app(), new)
        .await?;
    Ok(created(EndpointView::from(endpoint)))
}

/// The organization's endpoints. Sort by `created_at` (default), `name` or `updated_at`.
#[utoipa::path(
    tag = "endpoints",
    security(("bearer" = [])),
    params(ListQuery),
    responses((status = 200, body = Vec<EndpointView>), (status = 400, body = Problem))
)]
#[get("/api/v1/endpoints")]
pub(crate) async fn list_endpoints(
    caller: Caller,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = query.page::<EndpointSort>()?;
    let page = caller
        .use_cases()
        .list_endpoints(caller.app(), page)
        .await?;
    Ok(page_response(page, EndpointView::from))
}

#[utoipa::path(
    tag = "endpoints",
    security(("bearer" = [])),
    responses((status = 200, body = EndpointView), (status = 404, body = Problem))
)]
#[get("/api/v1/endpoints/{endpoint_id}")]
pub(crate) async fn get_endpoint(
    caller: Caller,
    endpoint_id: web::Path<Uuid>,
) -> Result<web::Json<EndpointView>, ApiError> {
    let id = EndpointId::from_uuid(endpoint_id.into_inner());
    let endpoint = caller.use_cases().get_endpoint(caller.app(), id).await?;
    Ok(web::Json(endpoint.into()))
}

/// Changes an endpoint. Writing or clearing `auth_token` or `client_secret` needs a fresh
/// login.
#[utoipa::path(
    tag = "endpoints",
    security(("bearer" = [])),
    request_body = EndpointUpdate,
    responses(
        (status = 200, body = EndpointView),
        (status = 400, body = Problem),
        (status = 401, description = "No valid credential, or a login too old (step-up)", body = Problem),
        (status = 404, body = Problem)
    )
)]
#[patch("/api/v1/endpoints/{endpoint_id}")]
pub(crate) async fn update_endpoint(
    caller: Caller,
    endpoint_id: web::Path<Uuid>,
    body: crate::extract::Json<EndpointUpdate>,
) -> Result<web::Json<EndpointView>, ApiError> {
    let b = body.into_inner();
    let patch = EndpointPatch {
        project_id: match b.project_id {
            None => Patch::Keep,
            Some(p) => Patch::Set(p.map(ProjectId::from_uuid)),
        },
        name: patch_required("name", b.name, |v: String| Name::new(&v))?,
        description: patch_optional("description", b.description, |v: String| {
            Description::new(&v)
        })?,
        url: patch_required("url", b.url, |v: String| HttpUrl::new(&v))?,
        method: patch_required("method", b.method, |v: String| v.parse::<HttpMethod>())?,
        request_headers: patch_required("request_headers", b.request_headers, |m| {
            headers("request_headers", m)
        })?,
        auth_type: patch_required("auth_type", b.auth_type, |v: String| v.parse::<AuthType>())?,
        client_id: patch_optional("client_id", b.client_id, text)?,
        token_url: patch_optional("token_url", b.token_url, |v: String| HttpUrl::new(&v))?,
        scopes: patch_required("scopes", b.scopes, scopes)?,
        audience: patch_optional("audience", b.audience, text)?,
        auth_token: secret_patch("auth_token", b.auth_token)?,
        client_secret: secret_patch("client_secret", b.client_secret)?,
        last_token: SecretPatch::Keep,
        last_token_expires_at: Patch::Keep,
    };
    let id = EndpointId::from_uuid(endpoint_id.into_inner());
    let endpoint = caller
        .use_cases()
        .update_endpoint(caller.app(), id, patch)
        .await?;
    Ok(web::Json(endpoint.into()))
}

#[utoipa::path(
    tag = "endpoints",
    security(("bearer" = [])),
    responses((status = 204, description = "Deleted"), (status = 404, body = Problem))
)]
#[delete("/api/v1/endpoints/{endpoint_id}")]
pub(crate) async fn delete_endpoint(
    caller: Caller,
    endpoint_id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let id = EndpointId::from_uuid(endpoint_id.into_inner());
    caller.use_cases().delete_endpoint(caller.app(), id).await?;
    Ok(HttpResponse::NoContent().finish())
}

impl From<CreateEndpointError> for ApiError {
    fn from(err: CreateEndpointError) -> Self {
        match err {
            CreateEndpointError::Refused(refused) => refused.into(),
            CreateEndpointError::ProjectNotFound => project_not_found(),
            CreateEndpointError::Store(err) => err.into(),
        }
    }
}

impl From<UpdateEndpointError> for ApiError {
    fn from(err: UpdateEndpointError) -> Self {
        match err {
            UpdateEndpointError::Refused(refused) => refused.into(),
            UpdateEndpointError::NotFound => ApiError::new(ErrorCode::NotFound),
            UpdateEndpointError::ProjectNotFound => project_not_found(),
            UpdateEndpointError::Store(err) => err.into(),
        }
    }
}

answers!(ListEndpointsError);
answers!(not_found: GetEndpointError, DeleteEndpointError);

/// The 400 of a `project_id` that names no live project of the organization (the field is
/// `project`, as the store's missing reference has always been answered).
fn project_not_found() -> ApiError {
    ApiError::new(ErrorCode::InvalidRequest).with_field("project")
}
