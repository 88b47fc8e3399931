use chrono::{DateTime, Utc};

use crate::{Email, Name, OrganizationId, Role, UserId};

/// A user's place in an organization. A user belongs to at most one organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Membership {
    pub organization_id: OrganizationId,
    pub role: Role,
}

/// A person who signs in through the identity provider. No password exists anywhere:
/// authentication is the provider's, and the user is linked by the provider's subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub email: Email,
    pub name: Option<Name>,
    pub given_name: Option<Name>,
    pub family_name: Option<Name>,
    pub picture: Option<crate::HttpUrl>,
    pub is_active: bool,
    pub is_verified: bool,
    /// The identity provider's `sub` claim; `None` for an invited user who has not signed in yet.
    pub idp_subject: Option<String>,
    /// `None` before onboarding (a user who signed in but has created or joined no organization).
    pub membership: Option<Membership>,
    pub last_login_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}
