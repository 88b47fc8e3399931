use chrono::{DateTime, Utc};

use crate::{Description, Name, OrganizationId, ProjectId, UserId};

/// A project groups the endpoints and tests of an organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    pub id: ProjectId,
    pub organization_id: OrganizationId,
    pub name: Name,
    pub description: Option<Description>,
    pub icon: Option<Name>,
    pub is_active: bool,
    pub owner_id: Option<UserId>,
    pub created_by: Option<UserId>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}
