//! The skeleton every use case shares: permitted by its policy, one unit of work in the
//! caller's organization, the operation's own audit event in that unit of work, one commit.

use domain::{Action, AuditTarget, Operation};
use ports::{NewAuditEvent, StoreError, UnitOfWork};

use crate::{App, Caller, Refused};

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

    /// The unit of work of `scope`: the one the caller's credential was checked in, or a new
    /// one.
    pub(crate) async fn work_in<E>(
        &self,
        caller: &Caller,
        scope: &ports::TenantScope,
    ) -> Result<Box<dyn UnitOfWork>, E>
    where
        E: From<StoreError>,
    {
        match caller.take_work(scope) {
            Some(work) => Ok(work),
            None => Ok(self.units.begin(scope).await?),
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
