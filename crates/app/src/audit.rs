//! The organization's audit log: reading it, and walking its hash chain.

use domain::{Action, AuditEvent};
use ports::{AuditFilter, ChainVerdict, Page};

use crate::errors::use_case_error;
use crate::{App, Caller};

use_case_error!(
    /// Why the audit log could not be read.
    ReadAuditLogError
);

impl App {
    /// The organization's events matching `filter`, newest first.
    pub async fn list_audit_events(
        &self,
        caller: &Caller,
        filter: AuditFilter,
        skip: u64,
        limit: u64,
    ) -> Result<Page<AuditEvent>, ReadAuditLogError> {
        let uow = self
            .begin_read::<ReadAuditLogError>(caller, Action::ReadAuditLog)
            .await?;
        Ok(uow.audit().list(filter, skip, limit).await?)
    }

    /// Walks the organization's hash chain and reports the first break, if any.
    pub async fn verify_audit_chain(
        &self,
        caller: &Caller,
    ) -> Result<ChainVerdict, ReadAuditLogError> {
        let uow = self
            .begin_read::<ReadAuditLogError>(caller, Action::ReadAuditLog)
            .await?;
        Ok(uow.audit().verify().await?)
    }
}
