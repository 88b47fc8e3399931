//! The caller's organization: founding one (for a user with none), reading, changing and
//! deleting it, and leaving it.

use domain::{Action, Actor, AuditOutcome, AuditTarget, Operation, Organization};
use ports::{FoundingError, NewOrganization, OrganizationPatch, StoreError};

use crate::errors::use_case_error;
use crate::{App, Caller, Denial, Refused};

/// Why an organization could not be founded.
#[derive(Debug, thiserror::Error)]
pub enum FoundOrganizationError {
    #[error(transparent)]
    Refused(#[from] Refused),
    /// The caller already belongs to an organization; a user belongs to at most one.
    #[error("the caller already belongs to an organization")]
    AlreadyMember,
    #[error(transparent)]
    Store(#[from] StoreError),
}

use_case_error!(
    /// Why the organization could not be read.
    GetOrganizationError
);
use_case_error!(
    /// Why the organization could not be changed.
    UpdateOrganizationError
);
use_case_error!(
    /// Why the organization could not be deleted.
    DeleteOrganizationError
);
use_case_error!(
    /// Why the caller could not leave (the last owner is refused).
    LeaveOrganizationError
);

impl App {
    /// Founds an organization whose owner is the caller, who must belong to none; its
    /// founding is the first event of its audit log.
    pub async fn found_organization(
        &self,
        caller: &Caller,
        new: NewOrganization,
    ) -> Result<Organization, FoundOrganizationError> {
        const OP: Operation = Operation::FoundOrganization;
        self.permit(caller, OP).await?;
        caller.release();
        // The credential once more, now that the request's body has been read: the change is
        // for who the caller still is.
        drop(self.current::<FoundOrganizationError>(caller).await?);
        if caller.principal().membership().is_some() {
            return Err(FoundOrganizationError::AlreadyMember);
        }
        let event = caller.event(OP.policy().event, AuditOutcome::Success);
        self.units
            .found_organization(caller.principal().user_id(), new, event)
            .await
            .map_err(|err| match err {
                FoundingError::AlreadyMember => FoundOrganizationError::AlreadyMember,
                FoundingError::Store(err) => FoundOrganizationError::Store(err),
            })
    }

    /// The caller's organization.
    pub async fn get_organization(
        &self,
        caller: &Caller,
    ) -> Result<Organization, GetOrganizationError> {
        let uow = self
            .begin_read::<GetOrganizationError>(caller, Action::ReadContent)
            .await?;
        Ok(uow.organizations().current().await?)
    }

    pub async fn update_organization(
        &self,
        caller: &Caller,
        patch: OrganizationPatch,
    ) -> Result<Organization, UpdateOrganizationError> {
        const OP: Operation = Operation::UpdateOrganization;
        let uow = self.begin_op::<UpdateOrganizationError>(caller, OP).await?;
        let organization = uow.organizations().update(patch).await?;
        let target = AuditTarget::Organization(organization.id);
        self.finish::<UpdateOrganizationError>(caller, uow, OP, target)
            .await?;
        Ok(organization)
    }

    /// Deletes the caller's organization; every member leaves it. The event is written
    /// before the deletion, in the same unit of work.
    pub async fn delete_organization(
        &self,
        caller: &Caller,
    ) -> Result<(), DeleteOrganizationError> {
        const OP: Operation = Operation::DeleteOrganization;
        let uow = self.begin_op::<DeleteOrganizationError>(caller, OP).await?;
        let (organization, _) = uow.tenant();
        uow.audit()
            .record(caller.event_on(OP.policy().event, AuditTarget::Organization(organization)))
            .await?;
        uow.organizations().soft_delete().await?;
        uow.commit().await?;
        Ok(())
    }

    /// The caller leaves their organization; the last owner cannot.
    pub async fn leave_organization(&self, caller: &Caller) -> Result<(), LeaveOrganizationError> {
        const OP: Operation = Operation::LeaveOrganization;
        let uow = self.begin_op::<LeaveOrganizationError>(caller, OP).await?;
        // `begin_op` has established the membership; a caller without one is refused there.
        let Some(membership) = caller.principal().membership() else {
            drop(uow);
            return Err(self.refuse(caller, Denial::NoOrganization).await.into());
        };
        let me = caller.principal().user_id();
        let owners = uow.users().count_owners().await?;
        let actor = Actor {
            user_id: me,
            role: membership.role,
        };
        if let Err(denied) = domain::authorize_remove_user(actor, me, membership.role, owners) {
            drop(uow);
            return Err(self.refuse(caller, Denial::Permission(denied)).await.into());
        }
        uow.users().remove(me).await?;
        self.finish(caller, uow, OP, AuditTarget::User(me)).await
    }
}
