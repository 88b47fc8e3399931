use domain::{OrganizationId, Role, UserId};

/// The capability to touch one organization's data on behalf of one user, with the role they
/// hold there.
///
/// Contract: it is built only from an authenticated principal (the application layer's
/// `Principal::tenant_scope`), so no raw request input becomes a tenant context. Clippy
/// (`disallowed-methods` in `clippy.toml`) refuses every other call of [`TenantScope::new`]
/// unless it is allowed on purpose, and the tidy check holds such allows in library code to
/// the application's principal module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantScope {
    organization_id: OrganizationId,
    user_id: UserId,
    role: Role,
}

impl TenantScope {
    /// The scope of `user_id`, who holds `role` in `organization_id`.
    pub fn new(organization_id: OrganizationId, user_id: UserId, role: Role) -> Self {
        Self {
            organization_id,
            user_id,
            role,
        }
    }

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
