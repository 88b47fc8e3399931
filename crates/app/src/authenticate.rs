//! The one decision point of authentication: what a credential claims, checked against what
//! the store says of its user now, becomes a [`Principal`] or a refusal. The edge reads the
//! credential off the request (and checks a JWT's signature and times); the decision, and
//! everything it reads, is here.

use chrono::{DateTime, Utc};
use domain::{AuditAction, AuditOutcome, OrganizationId, UserId};
use std::sync::Arc;

use ports::{
    AccessTokenSubject, Claim, Freshness, NewAuditEvent, Refusal, RefusalReason, ResolvedUser,
    SessionEnd, SessionLifetime, SessionLookup, StoreError, UnitOfWork,
};
use secrecy::SecretString;
use uuid::Uuid;

use crate::caller::Again;
use crate::{App, AuthMethod, Caller, Credential, Denial, Origin, Principal, Work};

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

/// What a browser session's cookie stands for.
#[derive(Debug)]
pub enum SessionEntry {
    /// No such session (never made, logged out, or forgotten already).
    Unknown,
    /// The session ended (idle, past its end, or its user disabled); recorded and forgotten.
    Ended,
    /// A live session: its state as the session layer keeps it, and the decision on its user.
    Live { data: String, decision: Decision },
}

#[allow(
    clippy::disallowed_methods,
    reason = "the decision point: principals from verified credentials"
)]
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
        let claim = Claim::AccessToken {
            user: claims.user,
            jti: claims.jti,
            sid: claims.sid,
        };
        let entered = self.units.begin_claimed(claim, freshness(keep)).await?;
        let user = match claimed_user(entered.subject) {
            Err(reason) => return Ok(Err(refusal(reason))),
            // A token issued for an organization works in that organization only. A token
            // issued before the user had one (they founded or joined it since) follows the
            // membership.
            Ok(user)
                if claims.issued_for.is_some()
                    && user.membership.map(|m| m.organization_id) != claims.issued_for =>
            {
                return Ok(Err(refusal(RefusalReason::LeftOrganization)));
            }
            Ok(user) => user,
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
            work: Work::of(entered.work.filter(|_| keep), Again::Claim(claim)),
        }))
    }

    /// The browser session under `id_hash` (the SHA-256 of its cookie's id), found in the
    /// first statement of the transaction the request's work then uses (with `keep`), which
    /// also reads its user as they are now. An ended session is recorded and forgotten. Its
    /// use is noted for [`App::record_session_touches`] when the recorded one is older than
    /// the configured resolution: it adds no round trip to the request.
    pub async fn authenticate_session(
        &self,
        id_hash: [u8; 32],
        lifetime: SessionLifetime,
        keep: bool,
        origin: &Origin,
    ) -> Result<SessionEntry, StoreError> {
        let entered = self
            .units
            .begin_session(id_hash, lifetime, freshness(keep))
            .await?;
        let session = match entered.lookup {
            SessionLookup::Live(session) => session,
            SessionLookup::Unknown => return Ok(SessionEntry::Unknown),
            SessionLookup::Ended { user, why } => {
                self.record_session_end(user, why, origin).await;
                return Ok(SessionEntry::Ended);
            }
        };
        if self.clock.now() - session.last_seen_at >= self.session_touch_resolution {
            self.session_touches.note(id_hash, lifetime);
        }
        let user = session.user;
        let decision = match entered.user.filter(|u| u.is_active && u.user_id == user) {
            Some(current) => Ok(Authenticated {
                principal: Principal::authenticated(
                    user,
                    current.membership,
                    AuthMethod::Session,
                    session.auth_time,
                ),
                credential: Credential::Session,
                work: Work::of(
                    entered.work.filter(|_| keep),
                    Again::Session { id_hash, lifetime },
                ),
            }),
            None => Err(Refusal {
                user: Some(user),
                ..Refusal::anonymous(RefusalReason::UserInactive)
            }),
        };
        Ok(SessionEntry::Live {
            data: session.data,
            decision,
        })
    }

    /// Records that a session ended (it is forgotten already).
    async fn record_session_end(&self, user: UserId, why: SessionEnd, origin: &Origin) {
        tracing::info!(reason = why.as_str(), "a session ended");
        let event = NewAuditEvent {
            target: Some(domain::AuditTarget::Session),
            reason: Some(why.as_str().to_owned()),
            ..origin.event(
                Some(user),
                AuditAction::SessionExpired,
                AuditOutcome::Failure,
            )
        };
        if let Err(err) = self.audit_log.unscoped_record(None, event).await {
            tracing::error!(error = %err, "the session's end could not be recorded");
        }
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
        let entered = match self
            .units
            .begin_api_token(presented, freshness(keep))
            .await?
        {
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
        let again = Again::ApiToken(Arc::new(presented.clone()));
        Ok(Ok(Authenticated {
            principal,
            credential: Credential::ApiToken {
                id: resolved.token_id,
            },
            work: Work::of(work, again),
        }))
    }

    /// The caller's credential checked again, as the store says it is now, in the first
    /// statement of a new transaction: that transaction (in the caller's organization; `None`
    /// for a caller without one), or why the caller is no longer who they were. The caller
    /// must still be exactly who their request was accepted as: the same user, active, in
    /// the same organization (else refused as the next request would be) with the same role
    /// (else [`Denial::StandingChanged`]: permitted to someone they no longer are), by a
    /// credential still live.
    pub(crate) async fn check_again(
        &self,
        caller: &Caller,
    ) -> Result<Result<Option<Box<dyn UnitOfWork>>, Denial>, StoreError> {
        let principal = caller.principal();
        let (user, work) = match caller.again() {
            Again::Claim(claim) => {
                let entered = self.units.begin_claimed(*claim, Freshness::Current).await?;
                match claimed_user(entered.subject) {
                    Ok(user) => (user, entered.work),
                    Err(reason) => return Ok(Err(Denial::Credential(reason))),
                }
            }
            Again::ApiToken(presented) => match self
                .units
                .begin_api_token(presented, Freshness::Current)
                .await?
            {
                Ok(entered)
                    if caller.credential()
                        == (Credential::ApiToken {
                            id: entered.token.token_id,
                        }) =>
                {
                    (entered.token.user, Some(entered.work))
                }
                Ok(_) => return Ok(Err(Denial::Credential(RefusalReason::Unknown))),
                Err(refusal) => return Ok(Err(Denial::Credential(refusal.reason))),
            },
            Again::Session { id_hash, lifetime } => {
                let entered = self
                    .units
                    .begin_session(*id_hash, *lifetime, Freshness::Current)
                    .await?;
                match entered.lookup {
                    SessionLookup::Live(session) => {
                        match entered
                            .user
                            .filter(|u| u.is_active && u.user_id == session.user)
                        {
                            Some(user) => (user, entered.work),
                            None => {
                                return Ok(Err(Denial::Credential(RefusalReason::UserInactive)));
                            }
                        }
                    }
                    SessionLookup::Unknown => {
                        return Ok(Err(Denial::Credential(RefusalReason::Unknown)));
                    }
                    SessionLookup::Ended { user, why } => {
                        self.record_session_end(user, why, caller.origin()).await;
                        return Ok(Err(Denial::Credential(RefusalReason::Expired)));
                    }
                }
            }
        };
        let organization = |m: Option<domain::Membership>| m.map(|m| m.organization_id);
        if user.user_id != principal.user_id()
            || organization(user.membership) != organization(principal.membership())
        {
            // As the next request would be refused.
            return Ok(Err(Denial::Credential(RefusalReason::LeftOrganization)));
        }
        if user.membership != principal.membership() {
            return Ok(Err(Denial::StandingChanged));
        }
        Ok(Ok(work))
    }
}

/// How current a credential check must be: a read's, whose work is the transaction the check
/// opens, may be answered as the store was a moment ago ([`ports::CREDENTIAL_STALENESS`]); a
/// change checks its credential again in its own work, as the store is then.
fn freshness(keep: bool) -> Freshness {
    if keep {
        Freshness::Recent
    } else {
        Freshness::Current
    }
}

/// The user a claim names, as the store says they are now: refused when they do not exist
/// or are disabled, or the credential was revoked.
fn claimed_user(subject: Option<AccessTokenSubject>) -> Result<ResolvedUser, RefusalReason> {
    match subject {
        None => Err(RefusalReason::UserInactive),
        Some(s) if s.revoked => Err(RefusalReason::Revoked),
        Some(s) if !s.user.is_active => Err(RefusalReason::UserInactive),
        Some(s) => Ok(s.user),
    }
}
