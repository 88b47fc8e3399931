use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::{Email, Membership, Name, OrganizationId, UserId};

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
    /// When the token was last seen, as recorded (updates are throttled).
    pub last_used_at: Option<DateTime<Utc>>,
}

/// What an access token's subject is now: their membership, and whether the token's `jti`
/// was revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessTokenSubject {
    pub user: ResolvedUser,
    pub revoked: bool,
}

/// Why a presented credential was refused. For the log and the audit log, never the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalReason {
    /// Not shaped like any credential of ours.
    Malformed,
    /// No such token (or a revoked API token, which is gone).
    Unknown,
    /// The signature does not verify, or the stored value differs from the presented one.
    BadSignature,
    /// A JWT with another algorithm, an unknown key, a wrong type, issuer or audience, or a
    /// missing claim.
    Invalid,
    Expired,
    NotYetValid,
    /// A JWT whose `jti` was revoked (logout).
    Revoked,
    /// The user is disabled, or no longer exists.
    UserInactive,
    /// The user is no longer in the organization the credential was issued for.
    LeftOrganization,
    /// A stored value that no key opens, or that was sealed for another place.
    Unopenable,
}

impl RefusalReason {
    /// The stable text recorded in the audit log.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Unknown => "unknown",
            Self::BadSignature => "bad_signature",
            Self::Invalid => "invalid",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::Revoked => "revoked",
            Self::UserInactive => "user_inactive",
            Self::LeftOrganization => "left_organization",
            Self::Unopenable => "unopenable",
        }
    }
}

/// A refused credential, with what is known of whose it was (to attribute the audit event).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub reason: RefusalReason,
    pub user: Option<UserId>,
    pub organization: Option<OrganizationId>,
    pub token: Option<domain::ApiTokenId>,
}

impl Refusal {
    /// A refusal that names nobody.
    pub const fn anonymous(reason: RefusalReason) -> Self {
        Self {
            reason,
            user: None,
            organization: None,
            token: None,
        }
    }
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

    /// The pending, unexpired invitations addressed to `user`'s e-mail address, in every
    /// organization; none while the identity provider has not verified that address.
    async fn unscoped_invitations_for(
        &self,
        user: UserId,
    ) -> Result<Vec<domain::PendingInvitation>, StoreError>;

    /// Revokes the access token `jti` of `user`; it is refused from now on. Revocations
    /// are kept until `expires_at` (plus a margin), then purged.
    async fn unscoped_revoke_access_token(
        &self,
        jti: uuid::Uuid,
        user: UserId,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Revokes every access token of `user` minted from the browser session `sid`; the last
    /// of them expires before `until`.
    async fn unscoped_revoke_session_tokens(
        &self,
        sid: uuid::Uuid,
        user: UserId,
        until: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// The user of the identity provider's subject, created (in no organization) at its
    /// first sign-in; its e-mail address and that address's verification are the provider's
    /// as of this sign-in. Claims nothing: invitations are accepted explicitly. MUST return
    /// `Duplicate { what: "users.email" }` when another user holds the address verified and
    /// the provider says it is verified for this one too.
    async fn unscoped_sign_in(&self, identity: NewIdentity) -> Result<ResolvedUser, StoreError>;

    /// The user of `subject`, signing in without an address the server can use: as they are,
    /// but their stored address no longer counts as verified (it is no longer the provider's
    /// word). `None` when nobody has the subject.
    async fn unscoped_sign_in_unaddressed(
        &self,
        subject: &str,
    ) -> Result<Option<ResolvedUser>, StoreError>;
}
