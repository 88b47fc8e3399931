//! Members of the caller's organization: listing, changing roles and removing (inviting is
//! in `invitations`).
//! Nobody raises their own role, only owners touch owners, the last owner stays; changing a
//! role and removing a member need a fresh login.

use actix_web::{HttpResponse, delete, get, patch, web};
use app::users::{ChangeRoleError, GetUserError, ListUsersError, RemoveUserError};
use chrono::{DateTime, Utc};
use domain::{Name, Role, User, UserId};
use ports::UserSort;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use super::list::{ListQuery, SortKey, page_response};
use super::required;
use crate::ApiError;
use crate::auth::Caller;
use crate::error::Problem;

pub(crate) fn routes(cfg: &mut ServiceConfig<'_>) {
    cfg.service(list_users)
        .service(get_user)
        .service(change_role)
        .service(remove_user);
}

impl SortKey for UserSort {
    const KEYS: &'static [(&'static str, Self)] = &[
        ("created_at", Self::CreatedAt),
        ("email", Self::Email),
        ("name", Self::Name),
    ];
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UserView {
    id: Uuid,
    email: String,
    name: Option<String>,
    given_name: Option<String>,
    family_name: Option<String>,
    picture: Option<String>,
    is_active: bool,
    is_verified: bool,
    organization_id: Option<Uuid>,
    /// owner, admin or member.
    role: Option<&'static str>,
    last_login_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        let name = |n: Option<Name>| n.map(|n| n.as_str().to_owned());
        Self {
            id: *u.id.as_uuid(),
            email: u.email.as_str().to_owned(),
            name: name(u.name),
            given_name: name(u.given_name),
            family_name: name(u.family_name),
            picture: u.picture.map(|p| p.as_str().to_owned()),
            is_active: u.is_active,
            is_verified: u.is_verified,
            organization_id: u.membership.map(|m| *m.organization_id.as_uuid()),
            role: u.membership.map(|m| m.role.as_str()),
            last_login_at: u.last_login_at,
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RoleChange {
    /// owner, admin or member.
    role: String,
}

/// The organization's members. Sort by `created_at` (default), `email` or `name`.
#[utoipa::path(
    tag = "users",
    security(("bearer" = [])),
    params(ListQuery),
    responses((status = 200, body = Vec<UserView>), (status = 400, body = Problem))
)]
#[get("/api/v1/users")]
pub(crate) async fn list_users(
    caller: Caller,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = query.page::<UserSort>()?;
    let users = caller.use_cases().list_users(caller.app(), page).await?;
    Ok(page_response(users, UserView::from))
}

#[utoipa::path(
    tag = "users",
    security(("bearer" = [])),
    responses((status = 200, body = UserView), (status = 404, body = Problem))
)]
#[get("/api/v1/users/{user_id}")]
pub(crate) async fn get_user(
    caller: Caller,
    user_id: web::Path<Uuid>,
) -> Result<web::Json<UserView>, ApiError> {
    let id = UserId::from_uuid(user_id.into_inner());
    let user = caller.use_cases().get_user(caller.app(), id).await?;
    Ok(web::Json(user.into()))
}

/// Changes a member's role (fresh login). Nobody raises their own role; admins manage
/// members and admins; only owners touch owners; the last owner stays one.
#[utoipa::path(
    tag = "users",
    security(("bearer" = [])),
    request_body = RoleChange,
    responses(
        (status = 200, body = UserView),
        (status = 400, body = Problem),
        (status = 401, description = "No valid credential, or a login too old (step-up)", body = Problem),
        (status = 403, body = Problem),
        (status = 404, body = Problem)
    )
)]
#[patch("/api/v1/users/{user_id}")]
pub(crate) async fn change_role(
    caller: Caller,
    user_id: web::Path<Uuid>,
    body: crate::extract::Json<RoleChange>,
) -> Result<web::Json<UserView>, ApiError> {
    let new = required("role", body.role.as_str(), str::parse::<Role>)?;
    let target = UserId::from_uuid(user_id.into_inner());
    let user = caller
        .use_cases()
        .change_role(caller.app(), target, new)
        .await?;
    Ok(web::Json(user.into()))
}

/// Removes a member from the organization (fresh login). Admins remove members and
/// admins; only owners remove owners; the last owner stays.
#[utoipa::path(
    tag = "users",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "No valid credential, or a login too old (step-up)", body = Problem),
        (status = 403, body = Problem),
        (status = 404, body = Problem)
    )
)]
#[delete("/api/v1/users/{user_id}")]
pub(crate) async fn remove_user(
    caller: Caller,
    user_id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let target = UserId::from_uuid(user_id.into_inner());
    caller.use_cases().remove_user(caller.app(), target).await?;
    Ok(HttpResponse::NoContent().finish())
}

answers!(ListUsersError);
answers!(not_found: GetUserError, ChangeRoleError, RemoveUserError);
