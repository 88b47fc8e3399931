//! The skeleton every use case shares: permitted by its policy, one unit of work in the
//! caller's organization, the operation's own audit event in that unit of work, one commit.

use domain::{Action, AuditTarget, Operation};
use ports::{NewAuditEvent, StoreError, UnitOfWork};

use crate::{App, Caller, Denial, Refused};

impl App {
    /// A unit of work for `op` in the caller's organization, once its policy permits it.
    pub(crate) async fn begin_op<E>(
        &self,
        caller: &Caller,
        op: Operation,
    ) -> Result<Box<dyn UnitOfWork>, E>
    where
        E: From<Refused> + From<StoreError>,
    {
        let scope = self.permit_in(caller, op).await?;
        self.work_in(caller, &scope).await
    }

    /// A unit of work for reading (`action`) in the caller's organization.
    pub(crate) async fn begin_read<E>(
        &self,
        caller: &Caller,
        action: Action,
    ) -> Result<Box<dyn UnitOfWork>, E>
    where
        E: From<Refused> + From<StoreError>,
    {
        let scope = self.permit_action(caller, action).await?;
        self.work_in(caller, &scope).await
    }

    /// The unit of work of `scope`: the one the caller's credential was checked in, or else
    /// a new one whose first statement checks the credential again (a change's body arrives
    /// after its credential was checked, and the credential may have been revoked, or its
    /// user disabled, removed or demoted, meanwhile). A caller who is no longer who they were
    /// is refused, and nothing is done.
    pub(crate) async fn work_in<E>(
        &self,
        caller: &Caller,
        scope: &ports::TenantScope,
    ) -> Result<Box<dyn UnitOfWork>, E>
    where
        E: From<Refused> + From<StoreError>,
    {
        if let Some(work) = caller.take_work(scope) {
            return Ok(work);
        }
        let tenant = (scope.organization_id(), scope.user_id());
        match self.current::<E>(caller).await? {
            Some(work) if work.tenant() == tenant => return Ok(work),
            // The scope is the principal's, and the check found the same membership: a
            // transaction of another tenant (or none) is never used, and ends before the
            // refusal is recorded.
            other => drop(other),
        }
        Err(self.refuse(caller, Denial::StandingChanged).await.into())
    }

    /// Checks the caller's credential again ([`App::check_again`]), recording a refusal: the
    /// transaction it was checked in, if the caller has an organization.
    pub(crate) async fn current<E>(&self, caller: &Caller) -> Result<Option<Box<dyn UnitOfWork>>, E>
    where
        E: From<Refused> + From<StoreError>,
    {
        match self.check_again(caller).await? {
            Ok(work) => Ok(work),
            Err(denial) => Err(self.refuse(caller, denial).await.into()),
        }
    }

    /// Records the event `op` declares, by the caller about `target`, and commits: the change
    /// is kept with its event, or neither is.
    pub(crate) async fn finish<E>(
        &self,
        caller: &Caller,
        uow: Box<dyn UnitOfWork>,
        op: Operation,
        target: AuditTarget,
    ) -> Result<(), E>
    where
        E: From<StoreError>,
    {
        self.finish_with(caller, uow, op, target, Vec::new()).await
    }

    /// [`App::finish`], recording `also` (the events of the wider operations the request
    /// turned out to be, such as a secret written) after the event of `op`, in the same unit
    /// of work.
    pub(crate) async fn finish_with<E>(
        &self,
        caller: &Caller,
        uow: Box<dyn UnitOfWork>,
        op: Operation,
        target: AuditTarget,
        also: Vec<NewAuditEvent>,
    ) -> Result<(), E>
    where
        E: From<StoreError>,
    {
        uow.audit()
            .record(caller.event_on(op.policy().event, target))
            .await?;
        for event in also {
            uow.audit().record(event).await?;
        }
        uow.commit().await?;
        Ok(())
    }
}
