//! The application layer, between the ports and the edges.
//!
//! One function per use case. Each takes an authenticated [`Caller`] and a command of domain
//! values, and owns the whole of its decision and its effect: the operation's declared
//! policy ([`domain::Operation::policy`]: standing, fresh login, API tokens), the unit of work,
//! the typed audit event, the commit. Each returns its own error enum, which the HTTP edge
//! maps to a response; the edge keeps only the translation of requests into commands.

mod caller;
mod policy;
pub mod projects;
mod work;

use std::sync::Arc;

use chrono::Duration;
use ports::{AuditLog, Clock, UnitOfWorkFactory};

pub use caller::{Caller, Credential, Origin};
pub use policy::{Denial, Refused};

/// What the use cases work with.
#[derive(Clone)]
pub struct App {
    units: Arc<dyn UnitOfWorkFactory>,
    audit_log: Arc<dyn AuditLog>,
    clock: Arc<dyn Clock>,
    fresh_login_max_age: Duration,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("fresh_login_max_age", &self.fresh_login_max_age)
            .finish_non_exhaustive()
    }
}

impl App {
    /// The use cases over `units`, recording refusals in `audit_log`; a login is fresh for
    /// `fresh_login_max_age` after it happened.
    pub fn new(
        units: Arc<dyn UnitOfWorkFactory>,
        audit_log: Arc<dyn AuditLog>,
        clock: Arc<dyn Clock>,
        fresh_login_max_age: Duration,
    ) -> Self {
        Self {
            units,
            audit_log,
            clock,
            fresh_login_max_age,
        }
    }

    /// How recent a login must be for an operation whose policy asks for a fresh one.
    pub fn fresh_login_max_age(&self) -> Duration {
        self.fresh_login_max_age
    }
}
