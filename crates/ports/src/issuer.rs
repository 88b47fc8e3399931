use chrono::{DateTime, Duration, Utc};
use domain::{Membership, UserId};
use secrecy::SecretString;

/// Whom an access token speaks for, and since when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessTokenGrant {
    pub user: UserId,
    /// The organization and role at issue (the role counted is always the one held now).
    pub membership: Option<Membership>,
    /// When the user last authenticated interactively.
    pub auth_time: DateTime<Utc>,
    /// The browser session it is minted from, if any: the token ends with it.
    pub session: Option<uuid::Uuid>,
}

/// An access token could not be signed.
#[derive(Debug, thiserror::Error)]
#[error("the access token could not be signed")]
pub struct IssueError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// Signs the backend's access tokens.
pub trait AccessTokenIssuer: Send + Sync + std::fmt::Debug {
    /// An access token for `grant`, with id `jti`, issued at `now`.
    fn issue(
        &self,
        grant: &AccessTokenGrant,
        jti: uuid::Uuid,
        now: DateTime<Utc>,
    ) -> Result<SecretString, IssueError>;

    /// How long an issued token lives.
    fn lifetime(&self) -> Duration;
}
