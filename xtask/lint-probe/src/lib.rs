//! Not code to use. Each function calls what the principal rule (`clippy.toml`
//! `disallowed-methods`) keeps out of library code, under another name, as a mistake would.
//! `cargo xtask lint` runs clippy on this package with the gate's own flags and fails unless
//! clippy refuses every call: if the rule were switched off anywhere clippy looks (the
//! workspace's lints, a configuration file, the environment, the flags), the probe would pass
//! and the lint fails instead. The workspace's own clippy run leaves this package out.

use app::Principal as Who;
use domain::{Membership, OrganizationId, Role, UserId};
use ports::TenantScope as Scope;

/// A tenant scope made up, not taken from a principal.
pub fn made_up_scope(organization: OrganizationId, user: UserId) -> Scope {
    Scope::new(organization, user, Role::Owner)
}

/// The operator's principal, outside the operator's commands.
pub fn made_up_operator(user: UserId, membership: Option<Membership>) -> Who {
    Who::operator(user, membership)
}
