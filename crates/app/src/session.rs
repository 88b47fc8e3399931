//! Logging out: what the presented credential opened ends, and the audit log says so.

use domain::{AuditOutcome, AuditTarget, Operation};
use ports::StoreError;
use uuid::Uuid;

use crate::{App, Caller, Credential, Refused};

/// Why a logout did not happen.
#[derive(Debug, thiserror::Error)]
pub enum LogoutError {
    #[error(transparent)]
    Refused(#[from] Refused),
    /// An API token is revoked through its own use case, not by logging out with it.
    #[error("the credential is not one a logout ends")]
    NotLoggedIn,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl App {
    /// Logs the caller out. An access token is revoked (refused from now on) and, when it
    /// was minted from a browser session, every token minted from that session with it; a
    /// browser session's minted tokens are revoked (`session` is its id, when it has minted
    /// any; the edge then deletes the session). Revocations are kept until the last token
    /// minted now would expire.
    pub async fn logout(&self, caller: &Caller, session: Option<Uuid>) -> Result<(), LogoutError> {
        const OP: Operation = Operation::Logout;
        self.permit(caller, OP).await?;
        caller.release();
        let user = caller.principal().user_id();
        let (target, sid) = match caller.credential() {
            Credential::Jwt {
                jti,
                expires_at,
                sid,
            } => {
                self.identity
                    .unscoped_revoke_access_token(jti, user, expires_at)
                    .await?;
                (AuditTarget::AccessToken(Some(jti)), sid)
            }
            Credential::Session => (AuditTarget::Session, session),
            Credential::ApiToken { .. } => return Err(LogoutError::NotLoggedIn),
        };
        if let Some(sid) = sid {
            let minted_until = self.issued_now_expire_at();
            self.identity
                .unscoped_revoke_session_tokens(sid, user, minted_until)
                .await?;
        }
        let mut event = caller.event(OP.policy().event, AuditOutcome::Success);
        event.target = Some(target);
        let organization = caller.principal().membership().map(|m| m.organization_id);
        self.audit_log.unscoped_record(organization, event).await?;
        Ok(())
    }
}
