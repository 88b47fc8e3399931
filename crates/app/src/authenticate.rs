//! The one decision point of authentication: what a credential claims, checked against what
//! the store says of its user now, becomes a [`Principal`] or a refusal. The edge reads the
//! credential off the request (and checks a JWT's signature and times); the decision, and
//! everything it reads, is here.

use chrono::{DateTime, Utc};
use domain::{AuditAction, AuditOutcome, OrganizationId, UserId};
use ports::{Claim, Refusal, RefusalReason, StoreError};
use secrecy::SecretString;
use uuid::Uuid;

use crate::{App, AuthMethod, Credential, Origin, Principal, Work};

/// What a verified access token says: its signature, issuer, audience and times checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessTokenClaims {
    pub user: UserId,
    /// The organization it was issued for, if the user had one then.
    pub issued_for: Option<OrganizationId>,
    pub jti: Uuid,
    /// The browser session it was minted from, if any.
    pub sid: Option<Uuid>,
    /// When its user logged in interactively, if it says.
    pub auth_time: Option<DateTime<Utc>>,
    pub expires_at: DateTime<Utc>,
}

/// A credential that was accepted: the principal it proves, the credential, and the
/// transaction it was checked in (kept for the request's work, when there is one).
#[derive(Debug)]
pub struct Authenticated {
    pub principal: Principal,
    pub credential: Credential,
    pub work: Work,
}

/// The decision: accepted, or refused for a reason (for the log and the audit log).
pub type Decision = Result<Authenticated, Refusal>;

impl App {
    /// An access token whose claims verified: accepted while it is not revoked, its user is
    /// active, and (if it was issued for an organization) the user is still in that one.
    /// The role is the one the user holds now, not the one the token was issued with.
    ///
    /// With `keep`, the check is the first statement of the transaction the request's work
    /// then uses (one transaction for both); without, that transaction ends at once.
    pub async fn authenticate_access_token(
        &self,
        claims: &AccessTokenClaims,
        keep: bool,
    ) -> Result<Decision, StoreError> {
        let refusal = |reason| Refusal {
            reason,
            user: Some(claims.user),
            organization: claims.issued_for,
            token: None,
        };
        let entered = self
            .units
            .begin_claimed(Claim::AccessToken {
                user: claims.user,
                jti: claims.jti,
                sid: claims.sid,
            })
            .await?;
        let user = match entered.subject {
            None => return Ok(Err(refusal(RefusalReason::UserInactive))),
            Some(s) if s.revoked => return Ok(Err(refusal(RefusalReason::Revoked))),
            Some(s) if !s.user.is_active => return Ok(Err(refusal(RefusalReason::UserInactive))),
            // A token issued for an organization works in that organization only. A token
            // issued before the user had one (they founded or joined it since) follows the
            // membership.
            Some(s)
                if claims.issued_for.is_some()
                    && s.user.membership.map(|m| m.organization_id) != claims.issued_for =>
            {
                return Ok(Err(refusal(RefusalReason::LeftOrganization)));
            }
            Some(s) => s.user,
        };
        Ok(Ok(Authenticated {
            principal: Principal::authenticated(
                claims.user,
                user.membership,
                AuthMethod::Jwt,
                claims.auth_time,
            ),
            credential: Credential::Jwt {
                jti: claims.jti,
                expires_at: claims.expires_at,
                sid: claims.sid,
            },
            work: Work::of(entered.work.filter(|_| keep)),
        }))
    }

    /// The user of a live browser session (the session was found by its cookie): accepted
    /// while the user is active. `keep` as for [`App::authenticate_access_token`].
    pub async fn authenticate_session_user(
        &self,
        user: UserId,
        auth_time: Option<DateTime<Utc>>,
        keep: bool,
    ) -> Result<Decision, StoreError> {
        let entered = self
            .units
            .begin_claimed(Claim::SessionUser { user })
            .await?;
        let Some(current) = entered.subject.map(|s| s.user).filter(|u| u.is_active) else {
            return Ok(Err(Refusal {
                user: Some(user),
                ..Refusal::anonymous(RefusalReason::UserInactive)
            }));
        };
        Ok(Ok(Authenticated {
            principal: Principal::authenticated(
                user,
                current.membership,
                AuthMethod::Session,
                auth_time,
            ),
            credential: Credential::Session,
            work: Work::of(entered.work.filter(|_| keep)),
        }))
    }

    /// An `rh-` API token as presented: accepted if the store finds it live and its user
    /// active, in the first statement of the transaction the request's work then uses (with
    /// `keep`). Its use is noted for [`App::record_token_uses`] when the recorded one is
    /// older than the configured resolution: it adds no round trip to the request.
    pub async fn authenticate_api_token(
        &self,
        presented: &SecretString,
        origin: &Origin,
        keep: bool,
    ) -> Result<Decision, StoreError> {
        let entered = match self.units.begin_api_token(presented).await? {
            Ok(entered) => entered,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let resolved = entered.token;
        let principal = Principal::authenticated(
            resolved.user.user_id,
            resolved.user.membership,
            AuthMethod::ApiToken,
            None,
        );
        let now = self.clock.now();
        if resolved
            .last_used_at
            .is_none_or(|at| now - at >= self.token_use_resolution)
            && let Some(scope) = principal.tenant_scope()
        {
            let event = origin.event(
                Some(principal.user_id()),
                AuditAction::TokenUsed,
                AuditOutcome::Success,
            );
            self.token_uses.note(resolved.token_id, scope, event);
        }
        let work = keep.then_some(entered.work);
        Ok(Ok(Authenticated {
            principal,
            credential: Credential::ApiToken {
                id: resolved.token_id,
            },
            work: Work::of(work),
        }))
    }
}
