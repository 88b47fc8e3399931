use chrono::{DateTime, Utc};

use crate::{Email, InvitationId, OrganizationId, Role, UserId};

/// An organization's invitation of an e-mail address, as the organization sees it. It grants
/// nothing by itself: the person joins only by accepting it, after a login in which the
/// identity provider verified this very address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    pub id: InvitationId,
    pub organization_id: OrganizationId,
    pub email: Email,
    /// The role the person gets on accepting.
    pub role: Role,
    pub invited_by: Option<UserId>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// An invitation as the invited person sees it: which organization asks, and for which role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingInvitation {
    pub id: InvitationId,
    pub organization_id: OrganizationId,
    pub organization_name: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}
