use chrono::{DateTime, Utc};

use crate::{Description, Email, HttpUrl, Name, OrganizationId, UserId};

/// An organization: the tenant. Every other resource but users belongs to exactly one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Organization {
    pub id: OrganizationId,
    pub name: Name,
    pub display_name: Option<Name>,
    pub description: Option<Description>,
    pub website: Option<HttpUrl>,
    pub logo_url: Option<HttpUrl>,
    pub email: Option<Email>,
    pub is_active: bool,
    /// The most members the organization may have; `None` is no limit.
    pub max_users: Option<u32>,
    pub is_onboarding_complete: bool,
    pub owner_id: Option<UserId>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Organization {
    /// Whether one more member fits under `max_users`, given the current member count.
    pub fn has_room_for_member(&self, current_members: u64) -> bool {
        self.max_users
            .is_none_or(|max| current_members < u64::from(max))
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use uuid::Uuid;

    use super::*;

    fn organization(max_users: Option<u32>) -> Organization {
        let at = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
        Organization {
            id: OrganizationId::from_uuid(Uuid::from_u128(1)),
            name: Name::new("Acme").unwrap(),
            display_name: None,
            description: None,
            website: None,
            logo_url: None,
            email: None,
            is_active: true,
            max_users,
            is_onboarding_complete: false,
            owner_id: None,
            created_at: at,
            updated_at: at,
        }
    }

    #[test]
    fn member_limit_counts_current_members() {
        assert!(organization(None).has_room_for_member(u64::MAX - 1));
        assert!(organization(Some(3)).has_room_for_member(2));
        assert!(!organization(Some(3)).has_room_for_member(3));
        assert!(!organization(Some(1)).has_room_for_member(5));
    }
}
