use chrono::{DateTime, Utc};

use crate::{ApiTokenId, Name, OrganizationId, SecretHint, UserId};

/// A user's API token, as its owner may see it after creation: never the value, only the hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    pub id: ApiTokenId,
    pub organization_id: OrganizationId,
    pub user_id: UserId,
    pub name: Name,
    pub hint: SecretHint,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub last_refreshed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl ApiToken {
    /// Whether the token is past its expiry at `now`. A token without expiry never expires.
    pub fn is_expired_at(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|at| now >= at)
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};
    use uuid::Uuid;

    use super::*;

    #[test]
    fn expiry_is_inclusive_and_optional() {
        let now = Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap();
        let token = |expires_at| ApiToken {
            id: ApiTokenId::from_uuid(Uuid::from_u128(1)),
            organization_id: OrganizationId::from_uuid(Uuid::from_u128(2)),
            user_id: UserId::from_uuid(Uuid::from_u128(3)),
            name: Name::new("ci").unwrap(),
            hint: SecretHint::of("rh-0123456789abcdefghijklmnop"),
            expires_at,
            last_used_at: None,
            last_refreshed_at: None,
            created_at: now,
        };
        assert!(!token(None).is_expired_at(now));
        assert!(!token(Some(now + Duration::seconds(1))).is_expired_at(now));
        assert!(
            token(Some(now)).is_expired_at(now),
            "expired at the instant itself"
        );
        assert!(token(Some(now - Duration::seconds(1))).is_expired_at(now));
    }
}
