//! The application layer, between the ports and the edges.
//!
//! One function per use case. Each takes an authenticated [`Caller`] and a command of domain
//! values, and owns the whole of its decision and its effect: the operation's declared
//! policy ([`domain::Operation::policy`]: standing, fresh login, API tokens), the unit of work,
//! the typed audit event, the commit. Each returns its own error enum, which the HTTP edge
//! maps to a response; the edge keeps only the translation of requests into commands.

pub mod audit;
pub mod authenticate;
mod caller;
pub mod endpoints;
mod errors;
pub mod invitations;
pub mod login;
pub mod models;
pub mod organizations;
mod policy;
mod principal;
pub mod projects;
pub mod session;
mod token_uses;
pub mod tokens;
pub mod users;
mod work;

use std::sync::Arc;

use chrono::Duration;
use ports::{AccessTokenIssuer, AuditLog, Clock, IdentityDirectory, UnitOfWorkFactory};

pub use authenticate::{AccessTokenClaims, Authenticated, Decision};
pub use caller::{Caller, Credential, Origin, Work};
pub use policy::{Denial, Refused};
pub use principal::{AuthMethod, Principal};

/// How long a login counts as fresh, and how often a token's use is written down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// The oldest login an operation whose policy asks for a fresh one accepts.
    pub fresh_login_max_age: Duration,
    /// How often an API token's `last_used_at` (and its `token.used` event) is written at most.
    pub token_use_resolution: Duration,
}

/// What the use cases work with.
#[derive(Clone)]
pub struct App {
    units: Arc<dyn UnitOfWorkFactory>,
    identity: Arc<dyn IdentityDirectory>,
    audit_log: Arc<dyn AuditLog>,
    issuer: Arc<dyn AccessTokenIssuer>,
    clock: Arc<dyn Clock>,
    fresh_login_max_age: Duration,
    token_use_resolution: Duration,
    token_uses: Arc<token_uses::TokenUses>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("fresh_login_max_age", &self.fresh_login_max_age)
            .finish_non_exhaustive()
    }
}

impl App {
    /// The use cases over `units`, resolving credentials through `identity`, recording
    /// refusals in `audit_log` and signing access tokens with `issuer`.
    pub fn new(
        units: Arc<dyn UnitOfWorkFactory>,
        identity: Arc<dyn IdentityDirectory>,
        audit_log: Arc<dyn AuditLog>,
        issuer: Arc<dyn AccessTokenIssuer>,
        clock: Arc<dyn Clock>,
        settings: Settings,
    ) -> Self {
        Self {
            units,
            identity,
            audit_log,
            issuer,
            clock,
            fresh_login_max_age: settings.fresh_login_max_age,
            token_use_resolution: settings.token_use_resolution,
            token_uses: Arc::default(),
        }
    }

    /// How recent a login must be for an operation whose policy asks for a fresh one.
    pub fn fresh_login_max_age(&self) -> Duration {
        self.fresh_login_max_age
    }
}
