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
