//! Browser login through an OpenID Connect provider: the provider itself, the logins under
//! way between the redirect to the provider and the callback, and the server-side sessions.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use domain::UserId;
use secrecy::SecretString;

use crate::StoreError;

/// A login begun at the provider: where to send the browser, and what the callback needs.
/// `state`, `nonce` and `pkce_verifier` are fresh random values of at least 128 bits.
#[derive(Debug)]
pub struct LoginStart {
    pub authorize_url: String,
    pub state: SecretString,
    pub nonce: SecretString,
    pub pkce_verifier: SecretString,
}

/// What the callback hands back to the provider: the code, and what was kept of the start.
#[derive(Debug)]
pub struct LoginFinish {
    pub code: SecretString,
    pub nonce: SecretString,
    pub pkce_verifier: SecretString,
    /// The `max_age` the login asked for; the ID token's `auth_time` must honour it.
    pub max_age: Option<Duration>,
}

/// A person the provider vouched for in a verified ID token, completed from its UserInfo
/// answer about the same subject when the ID token leaves the e-mail out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedLogin {
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
    /// When the person last authenticated at the provider; `None` when the token does not say
    /// (such a login is never fresh).
    pub auth_time: Option<DateTime<Utc>>,
}

/// Why a login at the provider failed.
#[derive(Debug, thiserror::Error)]
pub enum IdentityProviderError {
    /// The provider cannot be reached or answers nonsense (discovery, keys, token endpoint).
    #[error("the identity provider is unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The provider refused the code, or its answer does not verify. `reason` is a stable
    /// word for the log and the audit log (`audience`, `nonce`, `signature`, `expired`, …).
    #[error("the identity provider's answer was refused: {reason}")]
    Refused { reason: &'static str },
}

/// An OpenID Connect provider (Auth0 or any other), by the authorization-code flow with PKCE.
#[async_trait]
pub trait IdentityProvider: Send + Sync + std::fmt::Debug {
    /// Starts a login, asking for a fresh authentication when `max_age` is given.
    async fn begin(&self, max_age: Option<Duration>) -> Result<LoginStart, IdentityProviderError>;

    /// Exchanges the code once and verifies the ID token: signature against the provider's
    /// keys (refreshed when a token names an unknown key), issuer, audience, expiry, nonce,
    /// `at_hash` when present, and `auth_time` against `max_age` when one was asked. When the
    /// ID token lacks the e-mail or its verification, asks the provider's UserInfo endpoint
    /// (when it has one): MUST refuse an answer about another subject (`userinfo_subject`) or
    /// one that does not parse or verify (`userinfo`), and MUST NOT report an e-mail verified
    /// unless the source that names it says so.
    async fn finish(&self, finish: LoginFinish) -> Result<VerifiedLogin, IdentityProviderError>;

    /// Where to send the browser to end its session at the provider too, coming back to
    /// `return_to`; `None` when the provider offers no logout.
    async fn logout_url(&self, return_to: &str) -> Option<String>;
}

/// A login under way, kept server-side between the redirect and the callback, found by the
/// hash of its `state` and taken once.
#[derive(Debug)]
pub struct PendingLogin {
    pub nonce: SecretString,
    pub pkce_verifier: SecretString,
    /// Where the browser goes after the login (an allowed frontend origin's URL).
    pub return_to: Option<String>,
    pub max_age: Option<Duration>,
    pub expires_at: DateTime<Utc>,
}

/// The logins under way.
#[async_trait]
pub trait LoginAttempts: Send + Sync + std::fmt::Debug {
    /// Keeps `login` under the SHA-256 of its state; the secrets sealed at rest.
    async fn keep(&self, state_hash: [u8; 32], login: PendingLogin) -> Result<(), StoreError>;

    /// Takes the login kept under `state_hash`, once: MUST return `None` for an unknown,
    /// already taken or expired one.
    async fn take(&self, state_hash: [u8; 32]) -> Result<Option<PendingLogin>, StoreError>;

    /// Forgets expired logins; how many.
    async fn purge(&self) -> Result<u64, StoreError>;
}

/// A browser session as stored: the cookie's id itself is never stored, only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    pub user: UserId,
    pub auth_time: Option<DateTime<Utc>>,
    /// The session's state as the session layer keeps it (a JSON object of strings).
    pub data: String,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    /// Unused for longer than the idle timeout.
    Idle,
    /// Past its absolute end.
    Absolute,
    /// Its user was disabled.
    UserInactive,
}

impl SessionEnd {
    /// The stable text recorded in the audit log.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Absolute => "absolute",
            Self::UserInactive => "user_inactive",
        }
    }
}

/// What a session id stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionLookup {
    Live(StoredSession),
    /// The session ended (and is now forgotten).
    Ended {
        user: UserId,
        why: SessionEnd,
    },
    /// No such session (never created, logged out, or forgotten already).
    Unknown,
}

/// How long sessions live: unused, and at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLifetime {
    pub idle: Duration,
    pub absolute: Duration,
}

/// Server-side browser sessions. Times come from the store's clock.
#[async_trait]
pub trait SessionStore: Send + Sync + std::fmt::Debug {
    /// Stores a new session of `user` under `id_hash`, ending `lifetime.absolute` from now.
    async fn create(
        &self,
        id_hash: [u8; 32],
        user: UserId,
        auth_time: Option<DateTime<Utc>>,
        data: String,
        lifetime: SessionLifetime,
    ) -> Result<(), StoreError>;

    /// The session under `id_hash`: MUST report it `Ended` (and forget it) when it is past
    /// its absolute end or unused for longer than `lifetime.idle`, or its user is disabled.
    async fn load(
        &self,
        id_hash: [u8; 32],
        lifetime: SessionLifetime,
    ) -> Result<SessionLookup, StoreError>;

    /// Replaces the state of a live session; `false` when there is none.
    async fn update(
        &self,
        id_hash: [u8; 32],
        auth_time: Option<DateTime<Utc>>,
        data: String,
    ) -> Result<bool, StoreError>;

    /// Marks the session used now, unless it has ended by `lifetime` (a use is written
    /// apart from the request that made it, and never brings an ended session back).
    async fn touch(&self, id_hash: [u8; 32], lifetime: SessionLifetime) -> Result<(), StoreError>;

    /// Deletes the session.
    async fn delete(&self, id_hash: [u8; 32]) -> Result<(), StoreError>;

    /// Forgets sessions past their end or unused for longer than `lifetime.idle`; how many.
    async fn purge(&self, lifetime: SessionLifetime) -> Result<u64, StoreError>;
}
