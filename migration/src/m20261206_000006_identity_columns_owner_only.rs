//! Who a user is (`email`, `idp_subject`, `is_verified`) is written only by the owner's narrow
//! functions (registration, claiming an invitation), never by the application role's own
//! UPDATE: otherwise an organization could rewrite the identity of a member in the very
//! statement that removes them, or of a departed user by naming them as the acting user.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

/// The columns of `users` the application role may still update.
const UPDATABLE: &str = "name, given_name, family_name, picture, is_active, organization_id, \
                         role, left_organization_id, last_login_at, settings, updated_at";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let role = crate::app_role()?;
        crate::run_script(
            manager,
            &format!(
                "REVOKE UPDATE ON users FROM {role};\n\
                 GRANT UPDATE ({UPDATABLE}) ON users TO {role};"
            ),
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let role = crate::app_role()?;
        crate::run_script(
            manager,
            &format!(
                "REVOKE UPDATE ({UPDATABLE}) ON users FROM {role};\n\
                 GRANT UPDATE ON users TO {role};"
            ),
        )
        .await
    }
}
