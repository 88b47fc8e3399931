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
mod session_touches;
mod token_uses;
pub mod tokens;
pub mod users;
mod work;

use std::sync::Arc;

use chrono::Duration;
use ports::{
    AccessTokenIssuer, AuditLog, Clock, IdentityDirectory, SessionStore, UnitOfWorkFactory,
};

pub use authenticate::{AccessTokenClaims, Authenticated, Decision, SessionEntry};
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
    /// How often a browser session's last use is written at most.
    pub session_touch_resolution: Duration,
}

/// The ports the use cases work through.
#[derive(Debug, Clone)]
pub struct Ports {
    pub units: Arc<dyn UnitOfWorkFactory>,
    pub identity: Arc<dyn IdentityDirectory>,
    pub audit_log: Arc<dyn AuditLog>,
    pub issuer: Arc<dyn AccessTokenIssuer>,
    pub sessions: Arc<dyn SessionStore>,
}

impl Ports {
    /// Every store port from one store, and `issuer`.
    pub fn of<S>(store: Arc<S>, issuer: Arc<dyn AccessTokenIssuer>) -> Self
    where
        S: UnitOfWorkFactory + IdentityDirectory + AuditLog + SessionStore + 'static,
    {
        Self {
            units: store.clone(),
            identity: store.clone(),
            audit_log: store.clone(),
            issuer,
            sessions: store,
        }
    }
}

/// What the use cases work with.
#[derive(Clone)]
pub struct App {
    units: Arc<dyn UnitOfWorkFactory>,
    identity: Arc<dyn IdentityDirectory>,
    audit_log: Arc<dyn AuditLog>,
    issuer: Arc<dyn AccessTokenIssuer>,
    sessions: Arc<dyn SessionStore>,
    clock: Arc<dyn Clock>,
    fresh_login_max_age: Duration,
    token_use_resolution: Duration,
    session_touch_resolution: Duration,
    token_uses: Arc<token_uses::TokenUses>,
    session_touches: Arc<session_touches::SessionTouches>,
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
    /// refusals in `audit_log`, signing access tokens with `issuer` and writing browser
    /// sessions' use to `sessions`.
    pub fn new(ports: Ports, clock: Arc<dyn Clock>, settings: Settings) -> Self {
        Self {
            units: ports.units,
            identity: ports.identity,
            audit_log: ports.audit_log,
            issuer: ports.issuer,
            sessions: ports.sessions,
            clock,
            fresh_login_max_age: settings.fresh_login_max_age,
            token_use_resolution: settings.token_use_resolution,
            session_touch_resolution: settings.session_touch_resolution,
            token_uses: Arc::default(),
            session_touches: Arc::default(),
        }
    }

    /// How recent a login must be for an operation whose policy asks for a fresh one.
    pub fn fresh_login_max_age(&self) -> Duration {
        self.fresh_login_max_age
    }
}
