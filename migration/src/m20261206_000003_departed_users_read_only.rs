//! A user who left an organization (or was removed from it) stays readable to it, for its
//! audit trail, but is no longer its to change: the single policy on `users` let the former
//! organization update the departed row, `idp_subject` and `email` included, and so take over
//! the identity of someone who is no longer its member. The policy is split by command: reads
//! as before; updates only of the organization's current members and of oneself; inserts only
//! into the organization or of oneself.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

const ORG: &str = "(SELECT NULLIF(current_setting('app.current_organization', true), '')::uuid)";
const USER: &str = "(SELECT NULLIF(current_setting('app.current_user', true), '')::uuid)";

fn up_sql() -> String {
    format!(
        "DROP POLICY tenant_isolation ON users;
CREATE POLICY tenant_read ON users FOR SELECT
USING (
    organization_id = {ORG}
    OR id = {USER}
    OR (organization_id IS NULL AND left_organization_id = {ORG})
);
CREATE POLICY tenant_insert ON users FOR INSERT
WITH CHECK (
    organization_id = {ORG}
    OR (organization_id IS NULL AND id = {USER})
);
-- The old row must be a current member or oneself; the new one stays in the organization or
-- leaves it (removal, or leaving), never enters another.
CREATE POLICY tenant_update ON users FOR UPDATE
USING (organization_id = {ORG} OR id = {USER})
WITH CHECK (
    organization_id = {ORG}
    OR (organization_id IS NULL AND (left_organization_id = {ORG} OR id = {USER}))
);
"
    )
}

fn down_sql() -> String {
    format!(
        "DROP POLICY tenant_update ON users;
DROP POLICY tenant_insert ON users;
DROP POLICY tenant_read ON users;
CREATE POLICY tenant_isolation ON users
USING (
    organization_id = {ORG}
    OR id = {USER}
    OR (organization_id IS NULL AND left_organization_id = {ORG})
)
WITH CHECK (
    organization_id = {ORG}
    OR (organization_id IS NULL AND (left_organization_id = {ORG} OR id = {USER}))
);
"
    )
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run_script(manager, &up_sql()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run_script(manager, &down_sql()).await
    }
}
