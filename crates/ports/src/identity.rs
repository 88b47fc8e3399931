use async_trait::async_trait;
use domain::{Email, Membership, Name, UserId};

use crate::StoreError;

/// The little that authentication needs to know about a user found across tenants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    pub user_id: UserId,
    pub membership: Option<Membership>,
    pub is_active: bool,
}

/// An API token that authenticated, and its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedApiToken {
    pub token_id: domain::ApiTokenId,
    pub user: ResolvedUser,
}

/// A person the identity provider vouched for, signing in for the first time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewIdentity {
    pub subject: String,
    pub email: Email,
    pub email_verified: bool,
    pub name: Option<Name>,
}

/// Identity resolution: the only lookups that cross tenants, each named `unscoped_…`.
///
/// Implementations MUST return only the columns of [`ResolvedUser`], and MUST NOT offer any
/// way to read tenant data through these methods.
#[async_trait]
pub trait IdentityDirectory: Send + Sync + std::fmt::Debug {
    /// The user linked to the identity provider's `subject`, in whatever organization.
    async fn unscoped_user_by_subject(
        &self,
        subject: &str,
    ) -> Result<Option<ResolvedUser>, StoreError>;

    /// A pending invitation (a user row with this e-mail that no identity has claimed yet).
    /// Callers MUST only use it with an e-mail the identity provider has verified.
    async fn unscoped_pending_invitation(
        &self,
        verified_email: &Email,
    ) -> Result<Option<ResolvedUser>, StoreError>;

    /// Authenticates a presented API token: well-formed, found by digest, opened in its row,
    /// equal in constant time, not expired, its owner active and still in the token's
    /// organization. MUST return `None` for anything else (the reason goes to the log).
    async fn unscoped_api_token(
        &self,
        presented: &secrecy::SecretString,
    ) -> Result<Option<ResolvedApiToken>, StoreError>;

    /// Creates a user with no organization for a first sign-in.
    /// MUST return `Duplicate` when the subject or the e-mail is already taken.
    async fn unscoped_register(&self, identity: NewIdentity) -> Result<ResolvedUser, StoreError>;
}
