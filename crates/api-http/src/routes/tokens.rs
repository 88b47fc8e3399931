//! The caller's own API tokens. The value is in the response to creation and refresh only;
//! creating and refreshing need a fresh login, and nobody reaches another user's tokens.

use actix_web::http::header::{CACHE_CONTROL, HeaderValue};
use actix_web::{HttpResponse, delete, get, patch, post, web};
use app::tokens::{
    CreateApiTokenError, GetApiTokenError, ListApiTokensError, RefreshApiTokenError,
    RenameApiTokenError, RevokeApiTokenError,
};
use chrono::{DateTime, Duration, Utc};
use domain::{ApiToken, ApiTokenId, Name};
use ports::ApiTokenSort;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use super::invalid;
use super::list::{ListQuery, SortKey, page_response};
use crate::ApiError;
use crate::auth::Caller;
use crate::error::Problem;

pub(crate) fn routes(cfg: &mut ServiceConfig<'_>) {
    cfg.service(create_token)
        .service(list_tokens)
        .service(get_token)
        .service(rename_token)
        .service(revoke_token)
        .service(refresh_token);
}

impl SortKey for ApiTokenSort {
    const KEYS: &'static [(&'static str, Self)] =
        &[("created_at", Self::CreatedAt), ("name", Self::Name)];
}

/// An API token as its owner sees it: never the value, only a hint.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TokenView {
    id: Uuid,
    name: String,
    /// The first 3 and last 4 characters of the value.
    hint: String,
    expires_at: Option<DateTime<Utc>>,
    last_used_at: Option<DateTime<Utc>>,
    last_refreshed_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
}

impl From<ApiToken> for TokenView {
    fn from(t: ApiToken) -> Self {
        Self {
            id: *t.id.as_uuid(),
            name: t.name.as_str().to_owned(),
            hint: t.hint.as_str().to_owned(),
            expires_at: t.expires_at,
            last_used_at: t.last_used_at,
            last_refreshed_at: t.last_refreshed_at,
            created_at: t.created_at,
        }
    }
}

/// A token and its value, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TokenWithValue {
    #[serde(flatten)]
    token: TokenView,
    /// The token's value (`rh-…`). It is never shown again.
    token_value: String,
}

fn with_value(token: ApiToken, value: &SecretString, created: bool) -> HttpResponse {
    let body = TokenWithValue {
        token: token.into(),
        token_value: value.expose_secret().to_owned(),
    };
    let mut response = if created {
        HttpResponse::Created()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .json(body)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewToken {
    name: String,
    /// Days until the token expires, 1 to 3650; it never expires without.
    expires_in_days: Option<u32>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokenRename {
    name: String,
}

/// Creates an API token. Needs a fresh login; the value is in this response only.
#[utoipa::path(
    tag = "tokens",
    security(("bearer" = [])),
    request_body = NewToken,
    responses(
        (status = 201, body = TokenWithValue),
        (status = 400, body = Problem),
        (status = 401, description = "No valid credential, or a login too old (step-up)", body = Problem)
    )
)]
#[post("/api/v1/tokens")]
pub(crate) async fn create_token(
    caller: Caller,
    body: crate::extract::Json<NewToken>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let name = Name::new(&body.name).map_err(|_| invalid("name"))?;
    let expires_in = match body.expires_in_days {
        None => None,
        Some(days @ 1..=3650) => Some(Duration::days(days.into())),
        Some(_) => return Err(invalid("expires_in_days")),
    };
    let (token, value) = caller
        .use_cases()
        .create_api_token(caller.app(), name, expires_in)
        .await?;
    Ok(with_value(token, &value, true))
}

/// The caller's own tokens. Sort by `created_at` (default) or `name`.
#[utoipa::path(
    tag = "tokens",
    security(("bearer" = [])),
    params(ListQuery),
    responses((status = 200, body = Vec<TokenView>), (status = 400, body = Problem))
)]
#[get("/api/v1/tokens")]
pub(crate) async fn list_tokens(
    caller: Caller,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = query.page::<ApiTokenSort>()?;
    let tokens = caller
        .use_cases()
        .list_api_tokens(caller.app(), page)
        .await?;
    Ok(page_response(tokens, TokenView::from))
}

/// One of the caller's tokens.
#[utoipa::path(
    tag = "tokens",
    security(("bearer" = [])),
    responses((status = 200, body = TokenView), (status = 404, body = Problem))
)]
#[get("/api/v1/tokens/{token_id}")]
pub(crate) async fn get_token(
    caller: Caller,
    token_id: web::Path<Uuid>,
) -> Result<web::Json<TokenView>, ApiError> {
    let id = ApiTokenId::from_uuid(token_id.into_inner());
    let token = caller.use_cases().get_api_token(caller.app(), id).await?;
    Ok(web::Json(token.into()))
}

/// Renames one of the caller's tokens.
#[utoipa::path(
    tag = "tokens",
    security(("bearer" = [])),
    request_body = TokenRename,
    responses((status = 200, body = TokenView), (status = 400, body = Problem), (status = 404, body = Problem))
)]
#[patch("/api/v1/tokens/{token_id}")]
pub(crate) async fn rename_token(
    caller: Caller,
    token_id: web::Path<Uuid>,
    body: crate::extract::Json<TokenRename>,
) -> Result<web::Json<TokenView>, ApiError> {
    let name = Name::new(&body.name).map_err(|_| invalid("name"))?;
    let id = ApiTokenId::from_uuid(token_id.into_inner());
    let token = caller
        .use_cases()
        .rename_api_token(caller.app(), id, name)
        .await?;
    Ok(web::Json(token.into()))
}

/// Revokes one of the caller's tokens: it stops working at once.
#[utoipa::path(
    tag = "tokens",
    security(("bearer" = [])),
    responses((status = 204, description = "Revoked"), (status = 404, body = Problem))
)]
#[delete("/api/v1/tokens/{token_id}")]
pub(crate) async fn revoke_token(
    caller: Caller,
    token_id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let id = ApiTokenId::from_uuid(token_id.into_inner());
    caller
        .use_cases()
        .revoke_api_token(caller.app(), id)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Gives one of the caller's tokens a new value (in this response only); the old value stops
/// working at once. Needs a fresh login.
#[utoipa::path(
    tag = "tokens",
    security(("bearer" = [])),
    responses(
        (status = 200, body = TokenWithValue),
        (status = 401, description = "No valid credential, or a login too old (step-up)", body = Problem),
        (status = 404, body = Problem)
    )
)]
#[post("/api/v1/tokens/{token_id}/refresh")]
pub(crate) async fn refresh_token(
    caller: Caller,
    token_id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let id = ApiTokenId::from_uuid(token_id.into_inner());
    let (token, value) = caller
        .use_cases()
        .refresh_api_token(caller.app(), id)
        .await?;
    Ok(with_value(token, &value, false))
}

answers!(CreateApiTokenError, ListApiTokensError);
answers!(
    not_found: GetApiTokenError,
    RenameApiTokenError,
    RevokeApiTokenError,
    RefreshApiTokenError
);
