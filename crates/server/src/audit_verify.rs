//! `rhesis-server audit-verify`: walks the hash chain of every organization's audit log and
//! of the system chain, and fails naming each chain that is broken and its first bad event.
//! Connects as the application role, like `serve`.

use adapters_postgres::unscoped_organization_ids;
use domain::OrganizationId;
use ports::{AuditLog, ChainVerdict};

use crate::StartupError;
use crate::config::ServeArgs;

/// Verifies every chain; the summary when all are intact.
pub async fn audit_verify(args: &ServeArgs) -> Result<String, StartupError> {
    let (store, _) = crate::connect(args).await?;
    let organizations = unscoped_organization_ids(store.connection())
        .await
        .map_err(StartupError::Store)?;
    let chains = std::iter::once(None).chain(
        organizations
            .into_iter()
            .map(|id| Some(OrganizationId::from_uuid(id))),
    );
    let (mut intact, mut events, mut broken) = (0_usize, 0_u64, Vec::new());
    for organization in chains {
        match store
            .unscoped_verify(organization)
            .await
            .map_err(StartupError::Store)?
        {
            ChainVerdict::Intact { events: n } => {
                intact += 1;
                events += n;
            }
            ChainVerdict::Broken { seq } => {
                let chain = organization.map_or("the system chain".to_owned(), |o| {
                    format!("organization {o}")
                });
                tracing::error!(security_event = "audit_chain_broken", %chain, seq,
                    "the audit log was altered");
                broken.push(format!("{chain} at event {seq}"));
            }
        }
    }
    if broken.is_empty() {
        Ok(format!(
            "audit log intact: {intact} chains, {events} events"
        ))
    } else {
        Err(StartupError::AuditLogBroken(broken.join("; ")))
    }
}
