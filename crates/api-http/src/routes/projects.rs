//! Projects of the caller's organization.

use actix_web::{HttpResponse, delete, get, patch, post, web};
use app::projects::{
    CreateProjectError, DeleteProjectError, GetProjectError, ListProjectsError, UpdateProjectError,
};
use chrono::{DateTime, Utc};
use domain::{Description, Name, Project, ProjectId, UserId};
use ports::{NewProject, Patch, ProjectPatch, ProjectSort};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use super::list::{ListQuery, SortKey, page_response};
use super::{created, optional, patch_optional, patch_required, present, required};
use crate::auth::Caller;
use crate::error::Problem;
use crate::{ApiError, ErrorCode};

pub(crate) fn routes(cfg: &mut ServiceConfig<'_>) {
    cfg.service(create_project)
        .service(list_projects)
        .service(get_project)
        .service(update_project)
        .service(delete_project);
}

impl SortKey for ProjectSort {
    const KEYS: &'static [(&'static str, Self)] = &[
        ("created_at", Self::CreatedAt),
        ("name", Self::Name),
        ("updated_at", Self::UpdatedAt),
    ];
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ProjectView {
    id: Uuid,
    organization_id: Uuid,
    name: String,
    description: Option<String>,
    icon: Option<String>,
    is_active: bool,
    owner_id: Option<Uuid>,
    created_by: Option<Uuid>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<Project> for ProjectView {
    fn from(p: Project) -> Self {
        Self {
            id: *p.id.as_uuid(),
            organization_id: *p.organization_id.as_uuid(),
            name: p.name.as_str().to_owned(),
            description: p.description.map(|d| d.as_str().to_owned()),
            icon: p.icon.map(|i| i.as_str().to_owned()),
            is_active: p.is_active,
            owner_id: p.owner_id.map(|u| *u.as_uuid()),
            created_by: p.created_by.map(|u| *u.as_uuid()),
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProjectCreate {
    name: String,
    description: Option<String>,
    icon: Option<String>,
}

/// Absent fields are kept; `null` clears an optional one.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProjectUpdate {
    #[serde(default, deserialize_with = "present")]
    name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    description: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    icon: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    is_active: Option<Option<bool>>,
    /// A member of the organization, or `null`.
    #[serde(default, deserialize_with = "present")]
    owner_id: Option<Option<Uuid>>,
}

fn ok<T>(value: T) -> Result<T, std::convert::Infallible> {
    Ok(value)
}

/// Creates a project owned by the caller.
#[utoipa::path(
    tag = "projects",
    security(("bearer" = [])),
    request_body = ProjectCreate,
    responses((status = 201, body = ProjectView), (status = 400, body = Problem))
)]
#[post("/api/v1/projects")]
pub(crate) async fn create_project(
    caller: Caller,
    body: crate::extract::Json<ProjectCreate>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let new = NewProject {
        name: required("name", body.name.as_str(), Name::new)?,
        description: optional("description", body.description.as_deref(), Description::new)?,
        icon: optional("icon", body.icon.as_deref(), Name::new)?,
    };
    let project = caller.use_cases().create_project(caller.app(), new).await?;
    Ok(created(ProjectView::from(project)))
}

/// The organization's projects. Sort by `created_at` (default), `name` or `updated_at`.
#[utoipa::path(
    tag = "projects",
    security(("bearer" = [])),
    params(ListQuery),
    responses((status = 200, body = Vec<ProjectView>), (status = 400, body = Problem))
)]
#[get("/api/v1/projects")]
pub(crate) async fn list_projects(
    caller: Caller,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = query.page::<ProjectSort>()?;
    let page = caller.use_cases().list_projects(caller.app(), page).await?;
    Ok(page_response(page, ProjectView::from))
}

#[utoipa::path(
    tag = "projects",
    security(("bearer" = [])),
    responses((status = 200, body = ProjectView), (status = 404, body = Problem))
)]
#[get("/api/v1/projects/{project_id}")]
pub(crate) async fn get_project(
    caller: Caller,
    project_id: web::Path<Uuid>,
) -> Result<web::Json<ProjectView>, ApiError> {
    let id = ProjectId::from_uuid(project_id.into_inner());
    let project = caller.use_cases().get_project(caller.app(), id).await?;
    Ok(web::Json(project.into()))
}

#[utoipa::path(
    tag = "projects",
    security(("bearer" = [])),
    request_body = ProjectUpdate,
    responses(
        (status = 200, body = ProjectView),
        (status = 400, body = Problem),
        (status = 404, body = Problem)
    )
)]
#[patch("/api/v1/projects/{project_id}")]
pub(crate) async fn update_project(
    caller: Caller,
    project_id: web::Path<Uuid>,
    body: crate::extract::Json<ProjectUpdate>,
) -> Result<web::Json<ProjectView>, ApiError> {
    let body = body.into_inner();
    let patch = ProjectPatch {
        name: patch_required("name", body.name, |n: String| Name::new(&n))?,
        description: patch_optional("description", body.description, |d: String| {
            Description::new(&d)
        })?,
        icon: patch_optional("icon", body.icon, |i: String| Name::new(&i))?,
        is_active: patch_required("is_active", body.is_active, ok)?,
        owner_id: match body.owner_id {
            None => Patch::Keep,
            Some(owner) => Patch::Set(owner.map(UserId::from_uuid)),
        },
    };
    let id = ProjectId::from_uuid(project_id.into_inner());
    let project = caller
        .use_cases()
        .update_project(caller.app(), id, patch)
        .await?;
    Ok(web::Json(project.into()))
}

#[utoipa::path(
    tag = "projects",
    security(("bearer" = [])),
    responses((status = 204, description = "Deleted"), (status = 404, body = Problem))
)]
#[delete("/api/v1/projects/{project_id}")]
pub(crate) async fn delete_project(
    caller: Caller,
    project_id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let id = ProjectId::from_uuid(project_id.into_inner());
    caller.use_cases().delete_project(caller.app(), id).await?;
    Ok(HttpResponse::NoContent().finish())
}

answers!(CreateProjectError, ListProjectsError);
answers!(not_found: GetProjectError, DeleteProjectError);

impl From<UpdateProjectError> for ApiError {
    fn from(err: UpdateProjectError) -> Self {
        match err {
            UpdateProjectError::Refused(refused) => refused.into(),
            UpdateProjectError::NotFound => ApiError::new(ErrorCode::NotFound),
            UpdateProjectError::OwnerNotMember => {
                ApiError::new(ErrorCode::InvalidRequest).with_field("owner_id")
            }
            UpdateProjectError::Store(err) => err.into(),
        }
    }
}
