//! Who asks, by which credential, and from where.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use domain::{ApiTokenId, AuditAction, AuditOutcome, AuditTarget};
use ports::{AuthMethod, NewAuditEvent, Principal};
use uuid::Uuid;

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

/// An authenticated caller: the principal its credential proved, the credential, and where
/// the request came from.
#[derive(Debug, Clone)]
pub struct Caller {
    principal: Principal,
    credential: Credential,
    origin: Origin,
}

impl Caller {
    pub fn new(principal: Principal, credential: Credential, origin: Origin) -> Self {
        Self {
            principal,
            credential,
            origin,
        }
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
