//! Who asks, by which credential, and from where.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use domain::{ApiTokenId, AuditAction, AuditOutcome, AuditTarget};
use ports::{Claim, NewAuditEvent, TenantScope, UnitOfWork};
use secrecy::SecretString;
use uuid::Uuid;

use crate::{AuthMethod, Authenticated, Principal};

/// The credential a request presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// One of the backend's access tokens, with what revoking it needs.
    Jwt {
        jti: Uuid,
        expires_at: DateTime<Utc>,
        /// The browser session it was minted from, if any.
        sid: Option<Uuid>,
    },
    ApiToken {
        id: ApiTokenId,
    },
    /// The browser session cookie.
    Session,
}

/// Where a request came from, for the audit log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    pub client_ip: Option<IpAddr>,
    pub request_id: Option<String>,
}

impl Origin {
    /// An event of this request by `actor`.
    pub fn event(
        &self,
        actor: Option<domain::UserId>,
        action: AuditAction,
        outcome: AuditOutcome,
    ) -> NewAuditEvent {
        NewAuditEvent {
            outcome,
            client_ip: self.client_ip,
            request_id: self.request_id.clone(),
            ..NewAuditEvent::by(actor, action)
        }
    }
}

/// How a credential is checked again: a change's body is read after its credential was
/// checked, so its work checks the credential once more, in the first statement of its own
/// transaction.
#[derive(Clone)]
pub(crate) enum Again {
    Claim(Claim),
    ApiToken(Arc<SecretString>),
    /// A browser session: found again by its id, so one logged out, replaced or ended since
    /// is refused, not only one whose user changed.
    Session {
        id_hash: [u8; 32],
        lifetime: ports::SessionLifetime,
    },
}

/// The transaction in which a credential was checked, kept for the request's work (one
/// transaction for both) until a use case takes it or the caller lets it go; and how to check
/// the credential again when it is gone. Only the authentication decision point makes one.
#[derive(Clone)]
pub struct Work {
    kept: Arc<Mutex<Option<Box<dyn UnitOfWork>>>>,
    again: Again,
}

impl Work {
    /// Keeps `uow` for the request, whose credential `again` checks once more.
    pub(crate) fn of(uow: Option<Box<dyn UnitOfWork>>, again: Again) -> Self {
        Self {
            kept: Arc::new(Mutex::new(uow)),
            again,
        }
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Box<dyn UnitOfWork>>> {
        self.kept.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl std::fmt::Debug for Work {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tenant = self.slot().as_ref().map(|w| w.tenant());
        f.debug_tuple("Work").field(&tenant).finish_non_exhaustive()
    }
}

/// An authenticated caller: the principal its credential proved, the credential, and where
/// the request came from.
#[derive(Debug, Clone)]
pub struct Caller {
    principal: Principal,
    credential: Credential,
    origin: Origin,
    work: Work,
}

impl Caller {
    /// The caller an accepted credential proved, for a request from `origin`.
    pub fn new(accepted: Authenticated, origin: Origin) -> Self {
        let Authenticated {
            principal,
            credential,
            work,
        } = accepted;
        Self {
            principal,
            credential,
            origin,
            work,
        }
    }

    /// Ends the transaction the credential was checked in, if it is still kept (rolled back:
    /// it changed nothing). Anything that reaches the store outside it lets it go first, so a
    /// request never holds two connections.
    pub fn release(&self) {
        drop(self.work.slot().take());
    }

    /// The kept transaction, if there is one and it is `scope`'s tenant (it always is: both
    /// come from the same row; a mismatch is let go, never used).
    pub(crate) fn take_work(&self, scope: &TenantScope) -> Option<Box<dyn UnitOfWork>> {
        let work = self.work.slot().take()?;
        (work.tenant() == (scope.organization_id(), scope.user_id())).then_some(work)
    }

    /// How the caller's credential is checked again.
    pub(crate) fn again(&self) -> &Again {
        &self.work.again
    }

    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    pub fn credential(&self) -> Credential {
        self.credential
    }

    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// How the caller authenticated.
    pub fn method(&self) -> AuthMethod {
        self.principal.method()
    }

    /// An event by this caller.
    pub fn event(&self, action: AuditAction, outcome: AuditOutcome) -> NewAuditEvent {
        self.origin
            .event(Some(self.principal.user_id()), action, outcome)
    }

    /// A successful event by this caller about `target`.
    pub fn event_on(&self, action: AuditAction, target: AuditTarget) -> NewAuditEvent {
        self.event(action, AuditOutcome::Success).on(target)
    }
}
