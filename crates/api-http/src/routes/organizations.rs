//! The caller's organization: founding one (for a user with none), reading, changing and
//! deleting it, and leaving it.

use actix_web::{HttpResponse, delete, get, patch, post, web};
use app::organizations::{
    DeleteOrganizationError, FoundOrganizationError, GetOrganizationError, LeaveOrganizationError,
    UpdateOrganizationError,
};
use chrono::{DateTime, Utc};
use domain::{Description, Email, HttpUrl, Name, Organization};
use ports::{NewOrganization, OrganizationPatch};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use super::{created, optional, patch_optional, patch_required, present, required};
use crate::auth::Caller;
use crate::error::Problem;
use crate::{ApiError, ErrorCode};

pub(crate) fn routes(cfg: &mut ServiceConfig<'_>) {
    cfg.service(create_organization)
        .service(get_organization)
        .service(update_organization)
        .service(delete_organization)
        .service(leave_organization);
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct OrganizationView {
    id: Uuid,
    name: String,
    display_name: Option<String>,
    description: Option<String>,
    website: Option<String>,
    logo_url: Option<String>,
    email: Option<String>,
    is_active: bool,
    max_users: Option<u32>,
    is_onboarding_complete: bool,
    owner_id: Option<Uuid>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<Organization> for OrganizationView {
    fn from(o: Organization) -> Self {
        let text = |v: Option<&str>| v.map(str::to_owned);
        Self {
            id: *o.id.as_uuid(),
            name: o.name.as_str().to_owned(),
            display_name: text(o.display_name.as_ref().map(Name::as_str)),
            description: text(o.description.as_ref().map(Description::as_str)),
            website: text(o.website.as_ref().map(HttpUrl::as_str)),
            logo_url: text(o.logo_url.as_ref().map(HttpUrl::as_str)),
            email: text(o.email.as_ref().map(Email::as_str)),
            is_active: o.is_active,
            max_users: o.max_users,
            is_onboarding_complete: o.is_onboarding_complete,
            owner_id: o.owner_id.map(|u| *u.as_uuid()),
            created_at: o.created_at,
            updated_at: o.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct OrganizationCreate {
    name: String,
    display_name: Option<String>,
    description: Option<String>,
    website: Option<String>,
    logo_url: Option<String>,
    email: Option<String>,
}

/// Absent fields are kept; `null` clears an optional one.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct OrganizationUpdate {
    #[serde(default, deserialize_with = "present")]
    name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    display_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    description: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    website: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    logo_url: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    email: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    is_onboarding_complete: Option<Option<bool>>,
}

/// Founds an organization; the caller, who must belong to none, becomes its owner.
#[utoipa::path(
    tag = "organizations",
    security(("bearer" = [])),
    request_body = OrganizationCreate,
    responses(
        (status = 201, body = OrganizationView),
        (status = 400, body = Problem),
        (status = 409, description = "The caller already belongs to an organization", body = Problem)
    )
)]
#[post("/api/v1/organizations")]
pub(crate) async fn create_organization(
    caller: Caller,
    body: crate::extract::Json<OrganizationCreate>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let new = NewOrganization {
        name: required("name", b.name.as_str(), Name::new)?,
        display_name: optional("display_name", b.display_name.as_deref(), Name::new)?,
        description: optional("description", b.description.as_deref(), Description::new)?,
        website: optional("website", b.website.as_deref(), HttpUrl::new)?,
        logo_url: optional("logo_url", b.logo_url.as_deref(), HttpUrl::new)?,
        email: optional("email", b.email.as_deref(), Email::new)?,
    };
    let organization = caller
        .use_cases()
        .found_organization(caller.app(), new)
        .await?;
    Ok(created(OrganizationView::from(organization)))
}

/// The caller's organization.
#[utoipa::path(
    tag = "organizations",
    security(("bearer" = [])),
    responses((status = 200, body = OrganizationView), (status = 403, body = Problem))
)]
#[get("/api/v1/organizations/current")]
pub(crate) async fn get_organization(
    caller: Caller,
) -> Result<web::Json<OrganizationView>, ApiError> {
    let organization = caller.use_cases().get_organization(caller.app()).await?;
    Ok(web::Json(organization.into()))
}

/// Changes the caller's organization (admins and owners).
#[utoipa::path(
    tag = "organizations",
    security(("bearer" = [])),
    request_body = OrganizationUpdate,
    responses(
        (status = 200, body = OrganizationView),
        (status = 400, body = Problem),
        (status = 403, body = Problem)
    )
)]
#[patch("/api/v1/organizations/current")]
pub(crate) async fn update_organization(
    caller: Caller,
    body: crate::extract::Json<OrganizationUpdate>,
) -> Result<web::Json<OrganizationView>, ApiError> {
    let b = body.into_inner();
    let patch = OrganizationPatch {
        name: patch_required("name", b.name, |v: String| Name::new(&v))?,
        display_name: patch_optional("display_name", b.display_name, |v: String| Name::new(&v))?,
        description: patch_optional("description", b.description, |v: String| {
            Description::new(&v)
        })?,
        website: patch_optional("website", b.website, |v: String| HttpUrl::new(&v))?,
        logo_url: patch_optional("logo_url", b.logo_url, |v: String| HttpUrl::new(&v))?,
        email: patch_optional("email", b.email, |v: String| Email::new(&v))?,
        is_onboarding_complete: patch_required(
            "is_onboarding_complete",
            b.is_onboarding_complete,
            Ok::<bool, std::convert::Infallible>,
        )?,
    };
    let organization = caller
        .use_cases()
        .update_organization(caller.app(), patch)
        .await?;
    Ok(web::Json(organization.into()))
}

/// Deletes the caller's organization (owners, with a fresh login). Every member leaves it.
#[utoipa::path(
    tag = "organizations",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No valid credential, or a login too old (step-up)", body = Problem),
        (status = 403, body = Problem)
    )
)]
#[delete("/api/v1/organizations/current")]
pub(crate) async fn delete_organization(caller: Caller) -> Result<HttpResponse, ApiError> {
    caller.use_cases().delete_organization(caller.app()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The caller leaves their organization (the last owner cannot).
#[utoipa::path(
    tag = "organizations",
    security(("bearer" = [])),
    responses((status = 204, description = "Left"), (status = 403, body = Problem))
)]
#[post("/api/v1/organizations/current/leave")]
pub(crate) async fn leave_organization(caller: Caller) -> Result<HttpResponse, ApiError> {
    caller.use_cases().leave_organization(caller.app()).await?;
    Ok(HttpResponse::NoContent().finish())
}

answers!(
    GetOrganizationError,
    UpdateOrganizationError,
    DeleteOrganizationError,
    LeaveOrganizationError
);

impl From<FoundOrganizationError> for ApiError {
    fn from(err: FoundOrganizationError) -> Self {
        match err {
            FoundOrganizationError::Refused(refused) => refused.into(),
            FoundOrganizationError::AlreadyMember => ApiError::with_cause(ErrorCode::Conflict, err),
            FoundOrganizationError::Store(err) => err.into(),
        }
    }
}
