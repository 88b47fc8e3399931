//! Who a request (or an operator command) proved to be.

use chrono::{DateTime, Utc};
use domain::{Actor, Membership, UserId};
use ports::TenantScope;

/// How a principal proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// A browser session established through the identity provider.
    Session,
    /// A JWT issued by this backend.
    Jwt,
    /// A user's `rh-` API token.
    ApiToken,
    /// An operator command or the development seed, run by someone with database access.
    Operator,
}

/// An authenticated user, as the request (or operator command) proved them.
///
/// Only the authentication decision point ([`crate::authenticate`]) builds one from a
/// credential; [`Principal::operator`] is the named escape for commands run by someone who
/// holds the database anyway. A `Principal` is the only source of a [`TenantScope`] outside
/// tests (the tidy check holds `TenantScope::new` to this module).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    user_id: UserId,
    membership: Option<Membership>,
    method: AuthMethod,
    auth_time: Option<DateTime<Utc>>,
}

impl Principal {
    /// A principal whose credential has just been verified by `method`.
    pub(crate) fn authenticated(
        user_id: UserId,
        membership: Option<Membership>,
        method: AuthMethod,
        auth_time: Option<DateTime<Utc>>,
    ) -> Self {
        Self {
            user_id,
            membership,
            method,
            auth_time,
        }
    }

    /// The operator's escape: acting as `user_id` (with `membership`, as the store says it
    /// is) without a credential, for commands run with database access (the CLI, the
    /// development seed). Never for anything a request carries.
    #[allow(
        clippy::disallowed_methods,
        reason = "the escape is a principal of its own method"
    )]
    pub fn operator(user_id: UserId, membership: Option<Membership>) -> Self {
        Self::authenticated(user_id, membership, AuthMethod::Operator, None)
    }

    pub fn user_id(&self) -> UserId {
        self.user_id
    }

    pub fn membership(&self) -> Option<Membership> {
        self.membership
    }

    pub fn method(&self) -> AuthMethod {
        self.method
    }

    /// When the user last authenticated interactively, if known.
    pub fn auth_time(&self) -> Option<DateTime<Utc>> {
        self.auth_time
    }

    /// The principal as an actor for permission rules, if they belong to an organization.
    pub fn actor(&self) -> Option<Actor> {
        self.membership.map(|m| Actor {
            user_id: self.user_id,
            role: m.role,
        })
    }

    /// The scope of the principal's organization; `None` before onboarding.
    #[allow(
        clippy::disallowed_methods,
        reason = "the one source of a TenantScope outside tests"
    )]
    pub fn tenant_scope(&self) -> Option<TenantScope> {
        self.membership
            .map(|m| TenantScope::new(m.organization_id, self.user_id, m.role))
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, reason = "principals as fixtures")]
mod tests {
    use domain::{OrganizationId, Role};
    use uuid::Uuid;

    use super::*;

    #[test]
    fn only_members_get_a_scope() {
        let user = UserId::from_uuid(Uuid::from_u128(1));
        let org = OrganizationId::from_uuid(Uuid::from_u128(2));
        let lone = Principal::authenticated(user, None, AuthMethod::Jwt, None);
        assert_eq!(lone.tenant_scope(), None);
        assert_eq!(lone.actor(), None);

        let member = Principal::authenticated(
            user,
            Some(Membership {
                organization_id: org,
                role: Role::Admin,
            }),
            AuthMethod::ApiToken,
            None,
        );
        let scope = member.tenant_scope().unwrap();
        assert_eq!(scope.organization_id(), org);
        assert_eq!(scope.user_id(), user);
        assert_eq!(scope.role(), Role::Admin);
    }
}
