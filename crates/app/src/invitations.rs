//! Invitations. An organization invites an address and sees only its own invitations; the
//! answer is the same whether or not the address belongs to anyone elsewhere. The invited
//! person, after a login in which the provider verified that address, accepts or declines:
//! nobody joins an organization otherwise.

use domain::{
    Action, AuditTarget, Email, Invitation, InvitationId, Membership, Operation, PendingInvitation,
    PermissionDenied, Role,
};
use ports::{
    InvitationError, InvitationSort, Page, PageRequest, Sort, SortDirection, StoreError, UserSort,
};

use crate::errors::use_case_error;
use crate::{App, Caller, Denial, Refused};

/// Why an address could not be invited.
#[derive(Debug, thiserror::Error)]
pub enum InviteUserError {
    #[error(transparent)]
    Refused(#[from] Refused),
    /// The organization has as many members as it may.
    #[error("the organization is full")]
    Full,
    #[error(transparent)]
    Store(#[from] StoreError),
}

use_case_error!(
    /// Why the organization's invitations could not be listed.
    ListInvitationsError
);
use_case_error!(
    /// Why an invitation could not be withdrawn.
    RevokeInvitationError,
    not_found
);
use_case_error!(
    /// Why the invitations addressed to the caller could not be read.
    MyInvitationsError
);

/// Why the caller could not answer an invitation addressed to them.
#[derive(Debug, thiserror::Error)]
pub enum AnswerInvitationError {
    #[error(transparent)]
    Refused(#[from] Refused),
    #[error(transparent)]
    Invitation(#[from] InvitationError),
}

impl From<StoreError> for AnswerInvitationError {
    fn from(err: StoreError) -> Self {
        Self::Invitation(InvitationError::Store(err))
    }
}

impl App {
    /// Invites `email` with `role` into the caller's organization; only an owner invites an
    /// owner, and a full organization invites nobody.
    pub async fn invite_user(
        &self,
        caller: &Caller,
        email: Email,
        role: Role,
    ) -> Result<Invitation, InviteUserError> {
        const OP: Operation = Operation::InviteUser;
        let scope = self.permit_in(caller, OP).await?;
        if role == Role::Owner && scope.role() != Role::Owner {
            let denial = Denial::Permission(PermissionDenied::OwnerProtected);
            return Err(self.refuse(caller, denial).await.into());
        }
        let uow = self.work_in::<InviteUserError>(caller, &scope).await?;
        let organization = uow.organizations().current().await?;
        let by_age = Sort {
            field: UserSort::CreatedAt,
            direction: SortDirection::Ascending,
        };
        let members = uow.users().list(PageRequest::first(by_age)).await?.total;
        if !organization.has_room_for_member(members) {
            return Err(InviteUserError::Full);
        }
        let invitation = uow.invitations().create(email, role).await?;
        let mut event = caller.event_on(OP.policy().event, AuditTarget::Invitation(invitation.id));
        event.reason = Some(role.as_str().to_owned());
        uow.audit().record(event).await?;
        uow.commit().await?;
        Ok(invitation)
    }

    /// The organization's pending invitations.
    pub async fn list_invitations(
        &self,
        caller: &Caller,
        page: PageRequest<InvitationSort>,
    ) -> Result<Page<Invitation>, ListInvitationsError> {
        let uow = self
            .begin_read::<ListInvitationsError>(caller, Action::ReadInvitations)
            .await?;
        Ok(uow.invitations().list(page).await?)
    }

    /// Withdraws a pending invitation of the caller's organization.
    pub async fn revoke_invitation(
        &self,
        caller: &Caller,
        id: InvitationId,
    ) -> Result<(), RevokeInvitationError> {
        const OP: Operation = Operation::RevokeInvitation;
        let uow = self.begin_op::<RevokeInvitationError>(caller, OP).await?;
        let gone = uow.invitations().revoke(id).await?;
        let mut event = caller.event_on(OP.policy().event, AuditTarget::Invitation(gone.id));
        event.reason = Some(gone.role.as_str().to_owned());
        uow.audit().record(event).await?;
        uow.commit().await?;
        Ok(())
    }

    /// The invitations addressed to the caller's verified address, in any organization.
    pub async fn my_invitations(
        &self,
        caller: &Caller,
    ) -> Result<Vec<PendingInvitation>, MyInvitationsError> {
        caller.release();
        Ok(self
            .identity
            .unscoped_invitations_for(caller.principal().user_id())
            .await?)
    }

    /// Accepts an invitation addressed to the caller: they join its organization with its
    /// role (a user belongs to one at most).
    pub async fn accept_invitation(
        &self,
        caller: &Caller,
        id: InvitationId,
    ) -> Result<Membership, AnswerInvitationError> {
        const OP: Operation = Operation::AcceptInvitation;
        self.permit(caller, OP).await?;
        caller.release();
        // The credential once more, now that the request's body has been read: the change is
        // for who the caller still is.
        drop(self.current::<AnswerInvitationError>(caller).await?);
        let event = caller.event_on(OP.policy().event, AuditTarget::Invitation(id));
        Ok(self
            .units
            .accept_invitation(caller.principal().user_id(), id, event)
            .await?)
    }

    /// Declines an invitation addressed to the caller: it is gone, and its organization's
    /// audit log says so.
    pub async fn decline_invitation(
        &self,
        caller: &Caller,
        id: InvitationId,
    ) -> Result<(), AnswerInvitationError> {
        const OP: Operation = Operation::DeclineInvitation;
        self.permit(caller, OP).await?;
        caller.release();
        // The credential once more, now that the request's body has been read: the change is
        // for who the caller still is.
        drop(self.current::<AnswerInvitationError>(caller).await?);
        let event = caller.event_on(OP.policy().event, AuditTarget::Invitation(id));
        self.units
            .decline_invitation(caller.principal().user_id(), id, event)
            .await?;
        Ok(())
    }
}
