//! Logging in: a person the identity provider vouched for becomes a user with a browser
//! session; a session mints short-lived access tokens for the single-page app; the
//! development login issues one for the seeded administrator. Each decides here and records
//! its event; the edge keeps the provider's protocol and the cookies.

use chrono::Duration;
use domain::{AuditAction, AuditOutcome, AuditTarget, Email, Name, Operation, UserId};
use ports::{AccessTokenGrant, IssueError, NewIdentity, ResolvedUser, StoreError, VerifiedLogin};
use secrecy::SecretString;
use uuid::Uuid;

use crate::{App, AuthMethod, Caller, Origin, Refused};

/// An access token just issued.
#[derive(Debug)]
pub struct IssuedToken {
    pub token: SecretString,
    pub jti: Uuid,
    pub lifetime: Duration,
    /// The browser session it was minted from (a new id when the session had none yet).
    pub session: Option<Uuid>,
}

/// The browser session a login replaces in the same browser: the access tokens minted from
/// it end with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplacedSession {
    pub sid: Uuid,
    pub user: UserId,
}

/// Why a provider's login does not become a session.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// Refused, for the reason the audit log records (never told to the client).
    #[error("login refused: {0}")]
    Refused(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a session could not mint an access token.
#[derive(Debug, thiserror::Error)]
pub enum MintSessionTokenError {
    #[error(transparent)]
    Refused(#[from] Refused),
    /// Only a browser session mints; a bearer credential is already a token.
    #[error("not a browser session")]
    NotASession,
    #[error(transparent)]
    Issue(#[from] IssueError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why the development login issued nothing.
#[derive(Debug, thiserror::Error)]
pub enum LocalLoginError {
    /// Nobody active has the development administrator's subject (nothing seeded).
    #[error("no such user")]
    NotFound,
    #[error(transparent)]
    Issue(#[from] IssueError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl App {
    /// The person `who` (the provider has verified the login; `step_up` if it was asked for
    /// a fresh one) signs in: the user of their subject, registered at a first login, active.
    /// A login joins no organization: invitations are accepted explicitly. The tokens minted
    /// from the session it `replaces` end, and the login is recorded.
    pub async fn sign_in(
        &self,
        who: &VerifiedLogin,
        step_up: bool,
        replaces: Option<ReplacedSession>,
        origin: &Origin,
    ) -> Result<ResolvedUser, SignInError> {
        let user = self.link(who).await?;
        if !user.is_active {
            return Err(SignInError::Refused("user_inactive"));
        }
        if let Some(old) = replaces {
            let until = self.clock.now() + self.issuer.lifetime();
            self.identity
                .unscoped_revoke_session_tokens(old.sid, old.user, until)
                .await?;
        }
        let mut event = origin.event(
            Some(user.user_id),
            AuditAction::AuthenticationSucceeded,
            AuditOutcome::Success,
        );
        event.target = Some(AuditTarget::Session);
        event.reason = Some(if step_up { "oidc_step_up" } else { "oidc" }.to_owned());
        let organization = user.membership.map(|m| m.organization_id);
        self.audit_log.unscoped_record(organization, event).await?;
        Ok(user)
    }

    /// The user the provider's person is, with the address and its verification as the
    /// provider says them now.
    async fn link(&self, who: &VerifiedLogin) -> Result<ResolvedUser, SignInError> {
        let Some(email) = who.email.as_deref().and_then(|e| Email::new(e).ok()) else {
            // Without a usable address only a returning user is known, and the address stored
            // for them is no longer one the provider vouches for.
            return self
                .identity
                .unscoped_sign_in_unaddressed(&who.subject)
                .await?
                .ok_or(SignInError::Refused("no_email"));
        };
        let name = who.name.as_deref().and_then(|n| Name::new(n).ok());
        let identity = NewIdentity {
            subject: who.subject.clone(),
            email,
            email_verified: who.email_verified,
            name,
        };
        match self.identity.unscoped_sign_in(identity).await {
            Ok(user) => Ok(user),
            // Another user holds the address, verified: a second identity with the same
            // verified address is not made (the provider's word for both cannot be right).
            Err(StoreError::Duplicate { .. }) => Err(SignInError::Refused("email_taken")),
            Err(err) => Err(err.into()),
        }
    }

    /// A short-lived access token for the caller's browser session, carrying its login time
    /// and its id (`session`, or a new one when it has none yet): logging the session out
    /// ends the token too.
    pub async fn mint_session_token(
        &self,
        caller: &Caller,
        session: Option<Uuid>,
    ) -> Result<IssuedToken, MintSessionTokenError> {
        const OP: Operation = Operation::MintSessionToken;
        self.permit(caller, OP).await?;
        caller.release();
        let principal = caller.principal();
        if principal.method() != AuthMethod::Session {
            return Err(MintSessionTokenError::NotASession);
        }
        let grant = AccessTokenGrant {
            user: principal.user_id(),
            membership: principal.membership(),
            // A session without a login time is never fresh.
            auth_time: principal
                .auth_time()
                .unwrap_or(chrono::DateTime::UNIX_EPOCH),
            session: Some(session.unwrap_or_else(Uuid::new_v4)),
        };
        self.issue(OP, &grant, caller.origin()).await
    }

    /// Development only (the edge offers it in that profile alone): an access token for the
    /// active user of `subject`, as if they had just logged in.
    pub async fn local_login(
        &self,
        subject: &str,
        origin: &Origin,
    ) -> Result<IssuedToken, LocalLoginError> {
        let user = self
            .identity
            .unscoped_user_by_subject(subject)
            .await?
            .filter(|u| u.is_active)
            .ok_or(LocalLoginError::NotFound)?;
        let grant = AccessTokenGrant {
            user: user.user_id,
            membership: user.membership,
            auth_time: self.clock.now(),
            session: None,
        };
        self.issue(Operation::LocalLogin, &grant, origin).await
    }

    /// Issues an access token for `grant` as `op` declares: its event, in the grant's
    /// organization, names the token's id.
    async fn issue<E>(
        &self,
        op: Operation,
        grant: &AccessTokenGrant,
        origin: &Origin,
    ) -> Result<IssuedToken, E>
    where
        E: From<IssueError> + From<StoreError>,
    {
        let jti = Uuid::now_v7();
        let token = self.issuer.issue(grant, jti, self.clock.now())?;
        let mut event = origin.event(Some(grant.user), op.policy().event, AuditOutcome::Success);
        event.target = Some(AuditTarget::AccessToken(Some(jti)));
        event.reason = Some(op.name().to_owned());
        let organization = grant.membership.map(|m| m.organization_id);
        self.audit_log.unscoped_record(organization, event).await?;
        Ok(IssuedToken {
            token,
            jti,
            lifetime: self.issuer.lifetime(),
            session: grant.session,
        })
    }

    /// When the last access token issued now would expire: revocations are kept until then.
    pub fn issued_now_expire_at(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now() + self.issuer.lifetime()
    }
}
