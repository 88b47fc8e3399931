//! Projects of the caller's organization.

use domain::{Action, AuditTarget, Operation, Project, ProjectId};
use ports::{NewProject, Page, PageRequest, ProjectPatch, ProjectSort, StoreError};

use crate::errors::use_case_error;
use crate::{App, Caller, Refused};

use_case_error!(
    /// Why a project could not be created.
    CreateProjectError
);
use_case_error!(
    /// Why the projects could not be listed.
    ListProjectsError
);
use_case_error!(
    /// Why a project could not be read.
    GetProjectError,
    not_found
);
use_case_error!(
    /// Why a project could not be deleted.
    DeleteProjectError,
    not_found
);

/// Why a project could not be changed.
#[derive(Debug, thiserror::Error)]
pub enum UpdateProjectError {
    #[error(transparent)]
    Refused(#[from] Refused),
    #[error("no such project")]
    NotFound,
    /// The new owner is not a member of the organization.
    #[error("the owner is not a member of the organization")]
    OwnerNotMember,
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for UpdateProjectError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => Self::NotFound,
            StoreError::MissingReference { what: "user" } => Self::OwnerNotMember,
            err => Self::Store(err),
        }
    }
}

impl App {
    /// Creates a project owned by the caller.
    pub async fn create_project(
        &self,
        caller: &Caller,
        new: NewProject,
    ) -> Result<Project, CreateProjectError> {
        const OP: Operation = Operation::CreateProject;
        let uow = self.begin_op::<CreateProjectError>(caller, OP).await?;
        let project = uow.projects().create(new).await?;
        self.finish::<CreateProjectError>(caller, uow, OP, AuditTarget::Project(project.id))
            .await?;
        Ok(project)
    }

    /// A page of the organization's projects, and how many there are.
    pub async fn list_projects(
        &self,
        caller: &Caller,
        page: PageRequest<ProjectSort>,
    ) -> Result<Page<Project>, ListProjectsError> {
        let uow = self
            .begin_read::<ListProjectsError>(caller, Action::ReadContent)
            .await?;
        Ok(uow.projects().list(page).await?)
    }

    pub async fn get_project(
        &self,
        caller: &Caller,
        id: ProjectId,
    ) -> Result<Project, GetProjectError> {
        let uow = self
            .begin_read::<GetProjectError>(caller, Action::ReadContent)
            .await?;
        Ok(uow.projects().get(id).await?)
    }

    pub async fn update_project(
        &self,
        caller: &Caller,
        id: ProjectId,
        patch: ProjectPatch,
    ) -> Result<Project, UpdateProjectError> {
        const OP: Operation = Operation::UpdateProject;
        let uow = self.begin_op::<UpdateProjectError>(caller, OP).await?;
        let project = uow.projects().update(id, patch).await?;
        self.finish::<UpdateProjectError>(caller, uow, OP, AuditTarget::Project(id))
            .await?;
        Ok(project)
    }

    /// Marks a project deleted: it disappears from every read.
    pub async fn delete_project(
        &self,
        caller: &Caller,
        id: ProjectId,
    ) -> Result<(), DeleteProjectError> {
        const OP: Operation = Operation::DeleteProject;
        let uow = self.begin_op::<DeleteProjectError>(caller, OP).await?;
        uow.projects().soft_delete(id).await?;
        self.finish(caller, uow, OP, AuditTarget::Project(id)).await
    }
}
