use std::net::IpAddr;

use chrono::{DateTime, Utc};

use crate::{
    ApiTokenId, AuditEventId, BlockKey, EndpointId, InvitationId, ModelId, OrganizationId,
    ProjectId, UserId,
};

/// What happened. The stable text of each variant is what the log stores and filters on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditAction {
    AuthenticationSucceeded,
    AuthenticationFailed,
    LoggedOut,
    AccessDenied,
    OrganizationCreated,
    OrganizationUpdated,
    OrganizationDeleted,
    UserInvited,
    InvitationAccepted,
    InvitationDeclined,
    InvitationRevoked,
    UserRoleChanged,
    UserRemoved,
    UserLeft,
    ProjectCreated,
    ProjectUpdated,
    ProjectDeleted,
    EndpointCreated,
    EndpointUpdated,
    EndpointDeleted,
    ModelCreated,
    ModelUpdated,
    ModelDeleted,
    SecretWritten,
    TokenCreated,
    TokenUsed,
    TokenRefreshed,
    TokenRenamed,
    TokenRevoked,
    RateLimitWarning,
    ClientBlocked,
    ClientBlockLifted,
    SessionExpired,
}

impl AuditAction {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::AuthenticationSucceeded => "authentication.succeeded",
            Self::AuthenticationFailed => "authentication.failed",
            Self::LoggedOut => "authentication.logged_out",
            Self::AccessDenied => "access.denied",
            Self::OrganizationCreated => "organization.created",
            Self::OrganizationUpdated => "organization.updated",
            Self::OrganizationDeleted => "organization.deleted",
            Self::UserInvited => "user.invited",
            Self::InvitationAccepted => "invitation.accepted",
            Self::InvitationDeclined => "invitation.declined",
            Self::InvitationRevoked => "invitation.revoked",
            Self::UserRoleChanged => "user.role_changed",
            Self::UserRemoved => "user.removed",
            Self::UserLeft => "user.left",
            Self::ProjectCreated => "project.created",
            Self::ProjectUpdated => "project.updated",
            Self::ProjectDeleted => "project.deleted",
            Self::EndpointCreated => "endpoint.created",
            Self::EndpointUpdated => "endpoint.updated",
            Self::EndpointDeleted => "endpoint.deleted",
            Self::ModelCreated => "model.created",
            Self::ModelUpdated => "model.updated",
            Self::ModelDeleted => "model.deleted",
            Self::SecretWritten => "secret.written",
            Self::TokenCreated => "token.created",
            Self::TokenUsed => "token.used",
            Self::TokenRefreshed => "token.refreshed",
            Self::TokenRenamed => "token.renamed",
            Self::TokenRevoked => "token.revoked",
            Self::RateLimitWarning => "rate_limit.warning",
            Self::ClientBlocked => "client.blocked",
            Self::ClientBlockLifted => "client.block_lifted",
            Self::SessionExpired => "session.expired",
        }
    }
}

impl AuditAction {
    /// Every action, for parsing stored text back.
    pub const ALL: [Self; 33] = [
        Self::AuthenticationSucceeded,
        Self::AuthenticationFailed,
        Self::LoggedOut,
        Self::AccessDenied,
        Self::OrganizationCreated,
        Self::OrganizationUpdated,
        Self::OrganizationDeleted,
        Self::UserInvited,
        Self::InvitationAccepted,
        Self::InvitationDeclined,
        Self::InvitationRevoked,
        Self::UserRoleChanged,
        Self::UserRemoved,
        Self::UserLeft,
        Self::ProjectCreated,
        Self::ProjectUpdated,
        Self::ProjectDeleted,
        Self::EndpointCreated,
        Self::EndpointUpdated,
        Self::EndpointDeleted,
        Self::ModelCreated,
        Self::ModelUpdated,
        Self::ModelDeleted,
        Self::SecretWritten,
        Self::TokenCreated,
        Self::TokenUsed,
        Self::TokenRefreshed,
        Self::TokenRenamed,
        Self::TokenRevoked,
        Self::RateLimitWarning,
        Self::ClientBlocked,
        Self::ClientBlockLifted,
        Self::SessionExpired,
    ];
}

impl std::str::FromStr for AuditAction {
    type Err = crate::UnknownVariant;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or(crate::UnknownVariant("audit action"))
    }
}

impl std::str::FromStr for AuditOutcome {
    type Err = crate::UnknownVariant;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::Success, Self::Failure, Self::Denied]
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or(crate::UnknownVariant("audit outcome"))
    }
}

/// What an event is about. The log stores it as a kind (`project`) and an id; an event's
/// writer names it by type, so an id of one kind cannot be filed as another.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AuditTarget {
    Organization(OrganizationId),
    User(UserId),
    Invitation(InvitationId),
    Project(ProjectId),
    Endpoint(EndpointId),
    Model(ModelId),
    /// A user's API token; `None` for one presented but not found.
    ApiToken(Option<ApiTokenId>),
    /// One of the backend's access tokens, by its `jti` when it verified.
    AccessToken(Option<uuid::Uuid>),
    /// A browser session.
    Session,
    /// A browser login under way.
    Login,
    /// An `Authorization` header that names no credential.
    AuthorizationHeader,
    /// A client of the graduated response (an address, a credential, a user).
    Client(BlockKey),
}

impl AuditTarget {
    /// The kind, as the log stores it.
    pub const fn kind(&self) -> &'static str {
        match self {
            Self::Organization(_) => "organization",
            Self::User(_) => "user",
            Self::Invitation(_) => "invitation",
            Self::Project(_) => "project",
            Self::Endpoint(_) => "endpoint",
            Self::Model(_) => "model",
            Self::ApiToken(_) => "api_token",
            Self::AccessToken(_) => "access_token",
            Self::Session => "session",
            Self::Login => "login",
            Self::AuthorizationHeader => "authorization_header",
            Self::Client(_) => "client",
        }
    }

    /// The id, as the log stores it, if the target has one.
    pub fn id(&self) -> Option<String> {
        match self {
            Self::Organization(id) => Some(id.to_string()),
            Self::User(id) => Some(id.to_string()),
            Self::Invitation(id) => Some(id.to_string()),
            Self::Project(id) => Some(id.to_string()),
            Self::Endpoint(id) => Some(id.to_string()),
            Self::Model(id) => Some(id.to_string()),
            Self::ApiToken(id) => id.map(|id| id.to_string()),
            Self::AccessToken(jti) => jti.map(|jti| jti.to_string()),
            Self::Client(key) => Some(key.to_string()),
            Self::Session | Self::Login | Self::AuthorizationHeader => None,
        }
    }

    /// The same kind of credential with its id forgotten (refusals counted together once
    /// too many kinds are counted); `None` for a target that is nothing without its id.
    pub fn without_id(self) -> Option<Self> {
        match self {
            Self::ApiToken(_) => Some(Self::ApiToken(None)),
            Self::AccessToken(_) => Some(Self::AccessToken(None)),
            Self::Session | Self::Login | Self::AuthorizationHeader => Some(self),
            Self::Organization(_)
            | Self::User(_)
            | Self::Invitation(_)
            | Self::Project(_)
            | Self::Endpoint(_)
            | Self::Model(_)
            | Self::Client(_) => None,
        }
    }
}

/// Whether the action succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditOutcome {
    Success,
    Failure,
    Denied,
}

impl AuditOutcome {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Denied => "denied",
        }
    }
}

/// One entry of an organization's tamper-evident log. `hash` covers every other field and
/// `prev_hash`, so editing or removing an event breaks the chain at that point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub id: AuditEventId,
    /// `None` for the system chain: events that belong to no organization (a credential
    /// nobody owns, a blocked address).
    pub organization_id: Option<OrganizationId>,
    /// Position in the organization's chain, from 1.
    pub seq: u64,
    pub occurred_at: DateTime<Utc>,
    pub actor: Option<UserId>,
    pub action: AuditAction,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub outcome: AuditOutcome,
    /// Why the outcome, in a few words (`expired`, `revoked`): never a secret.
    pub reason: Option<String>,
    pub client_ip: Option<IpAddr>,
    pub request_id: Option<String>,
    /// How many occurrences the event stands for: 1, or more for refusals of one kind from
    /// one address counted over a minute and recorded once.
    pub occurrences: u32,
    pub prev_hash: [u8; 32],
    pub hash: [u8; 32],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_and_outcomes_round_trip_through_their_text() {
        for action in AuditAction::ALL {
            assert_eq!(action.as_str().parse::<AuditAction>(), Ok(action));
        }
        let texts: std::collections::BTreeSet<_> =
            AuditAction::ALL.iter().map(|a| a.as_str()).collect();
        assert_eq!(texts.len(), AuditAction::ALL.len(), "texts are unique");
        assert!("project.stolen".parse::<AuditAction>().is_err());
        for outcome in [
            AuditOutcome::Success,
            AuditOutcome::Failure,
            AuditOutcome::Denied,
        ] {
            assert_eq!(outcome.as_str().parse::<AuditOutcome>(), Ok(outcome));
        }
        assert!("maybe".parse::<AuditOutcome>().is_err());
    }
}
