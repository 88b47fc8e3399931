//! Members of the caller's organization. Nobody raises their own role, only owners touch
//! owners, the last owner stays; each decision is taken on what the unit of work that writes
//! has read.

use domain::{Action, Actor, AuditTarget, Operation, Role, User, UserId};
use ports::{Page, PageRequest, UnitOfWork, UserSort};

use crate::errors::use_case_error;
use crate::{App, Caller, Denial};

use_case_error!(
    /// Why the members could not be listed.
    ListUsersError
);
use_case_error!(
    /// Why a member could not be read.
    GetUserError,
    not_found
);
use_case_error!(
    /// Why a member's role could not be changed (a rule of the organization forbidding it is
    /// a refusal).
    ChangeRoleError,
    not_found
);
use_case_error!(
    /// Why a member could not be removed.
    RemoveUserError,
    not_found
);

/// What a decision about a member needs, read in the unit of work that will write: the
/// acting user, the target's current role, and the owners (held until the end).
struct MemberChange {
    uow: Box<dyn UnitOfWork>,
    actor: Actor,
    current: Role,
    owners: u64,
}

impl App {
    pub async fn list_users(
        &self,
        caller: &Caller,
        page: PageRequest<UserSort>,
    ) -> Result<Page<User>, ListUsersError> {
        let uow = self
            .begin_read::<ListUsersError>(caller, Action::ReadContent)
            .await?;
        Ok(uow.users().list(page).await?)
    }

    pub async fn get_user(&self, caller: &Caller, id: UserId) -> Result<User, GetUserError> {
        let uow = self
            .begin_read::<GetUserError>(caller, Action::ReadContent)
            .await?;
        Ok(uow.users().get(id).await?)
    }

    /// Opens the unit of work for `op` on `target`, once the policy permits it (the step-up
    /// answer is the same whether or not the target exists).
    async fn member_change<E>(
        &self,
        caller: &Caller,
        op: Operation,
        target: UserId,
    ) -> Result<MemberChange, E>
    where
        E: From<crate::Refused> + From<ports::StoreError>,
    {
        let uow = self.begin_op::<E>(caller, op).await?;
        let user = uow.users().get(target).await?;
        let (Some(actor), Some(membership)) = (caller.principal().actor(), user.membership) else {
            return Err(ports::StoreError::NotFound.into());
        };
        let owners = uow.users().count_owners().await?;
        Ok(MemberChange {
            uow,
            actor,
            current: membership.role,
            owners,
        })
    }

    /// Gives a member the role `new`. Admins manage members and admins; only owners touch
    /// owners; nobody raises their own role; the last owner stays one.
    pub async fn change_role(
        &self,
        caller: &Caller,
        target: UserId,
        new: Role,
    ) -> Result<User, ChangeRoleError> {
        const OP: Operation = Operation::ChangeRole;
        let MemberChange {
            uow,
            actor,
            current,
            owners,
        } = self
            .member_change::<ChangeRoleError>(caller, OP, target)
            .await?;
        if let Err(denied) = domain::authorize_role_change(actor, target, current, new, owners) {
            drop(uow);
            return Err(self.refuse(caller, Denial::Permission(denied)).await.into());
        }
        let user = uow.users().set_role(target, new).await?;
        let mut event = caller.event_on(OP.policy().event, AuditTarget::User(target));
        event.reason = Some(format!("{}->{}", current.as_str(), new.as_str()));
        uow.audit().record(event).await?;
        uow.commit().await?;
        Ok(user)
    }

    /// Removes a member from the organization. Admins remove members and admins; only owners
    /// remove owners; the last owner stays.
    pub async fn remove_user(
        &self,
        caller: &Caller,
        target: UserId,
    ) -> Result<(), RemoveUserError> {
        const OP: Operation = Operation::RemoveUser;
        let MemberChange {
            uow,
            actor,
            current,
            owners,
        } = self
            .member_change::<RemoveUserError>(caller, OP, target)
            .await?;
        if let Err(denied) = domain::authorize_remove_user(actor, target, current, owners) {
            drop(uow);
            return Err(self.refuse(caller, Denial::Permission(denied)).await.into());
        }
        uow.users().remove(target).await?;
        self.finish(caller, uow, OP, AuditTarget::User(target))
            .await
    }
}
