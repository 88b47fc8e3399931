use chrono::{DateTime, Utc};
use domain::{Actor, Membership, OrganizationId, Role, UserId};

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
/// Contract: only authentication code builds a `Principal` — the HTTP extractors after
/// verifying a credential, and operator commands. A `Principal` is the only source of a
/// [`TenantScope`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    user_id: UserId,
    membership: Option<Membership>,
    method: AuthMethod,
    auth_time: Option<DateTime<Utc>>,
}

impl Principal {
    /// A principal whose credential has just been verified by `method`.
    pub fn authenticated(
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
    pub fn tenant_scope(&self) -> Option<TenantScope> {
        self.membership.map(|m| TenantScope {
            organization_id: m.organization_id,
            user_id: self.user_id,
            role: m.role,
        })
    }
}

/// The capability to touch one organization's data on behalf of one user.
///
/// It has no public constructor: it comes from [`Principal::tenant_scope`] only, so no raw
/// request input can become a tenant context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantScope {
    organization_id: OrganizationId,
    user_id: UserId,
    role: Role,
}

impl TenantScope {
    pub fn organization_id(&self) -> OrganizationId {
        self.organization_id
    }

    pub fn user_id(&self) -> UserId {
        self.user_id
    }

    pub fn role(&self) -> Role {
        self.role
    }
}

#[cfg(test)]
mod tests {
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
