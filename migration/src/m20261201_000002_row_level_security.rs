//! Row-level security: the database isolates tenants on its own.
//!
//! Every tenant table gets ENABLE and FORCE (so even the owner is subject to the policies) and
//! a policy with USING and WITH CHECK on the transaction-local setting
//! `app.current_organization`. An unset or empty setting turns into NULL, which matches no
//! row: a connection without a tenant context sees nothing and writes nothing.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

/// Tables whose rows belong to one organization through `organization_id`.
pub const TENANT_TABLES: [&str; 5] = [
    "projects",
    "endpoints",
    "models",
    "api_tokens",
    "audit_events",
];

const ORG: &str = "(SELECT NULLIF(current_setting('app.current_organization', true), '')::uuid)";
const USER: &str = "(SELECT NULLIF(current_setting('app.current_user', true), '')::uuid)";

fn up_sql() -> String {
    let mut sql = String::new();
    for table in TENANT_TABLES {
        sql.push_str(&format!(
            "ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;\n\
             ALTER TABLE {table} FORCE ROW LEVEL SECURITY;\n\
             CREATE POLICY tenant_isolation ON {table}\n\
             USING (organization_id = {ORG})\n\
             WITH CHECK (organization_id = {ORG});\n"
        ));
    }
    sql.push_str(&format!(
        "ALTER TABLE organizations ENABLE ROW LEVEL SECURITY;
ALTER TABLE organizations FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON organizations
USING (id = {ORG})
WITH CHECK (id = {ORG});

-- A user is visible to their organization, to themselves (before onboarding they have no
-- organization), and to the organization they were removed from. PostgreSQL applies USING to
-- the new row of an UPDATE as well, so removing a member must leave the row visible to the
-- remover: `left_organization_id` records where the user came from. A row may be written into
-- the current organization, or out of it (removal by the organization, or leaving by the
-- user), never into another one.
ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;
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

-- Identity resolution (finding a user across organizations) is done only by the narrow
-- SECURITY DEFINER functions, which run as this role and switch this setting on for their
-- own duration. The policy applies to this role alone, never to the application's.
CREATE POLICY identity_resolution ON users FOR SELECT TO CURRENT_USER
USING (current_setting('app.identity_resolution', true) = 'on');

-- A session belongs to its user, whatever their organization.
ALTER TABLE sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE sessions FORCE ROW LEVEL SECURITY;
CREATE POLICY session_owner ON sessions
USING (user_id = {USER})
WITH CHECK (user_id = {USER});
"
    ));
    sql
}

fn down_sql() -> String {
    let mut sql = String::new();
    for table in TENANT_TABLES
        .iter()
        .chain(&["organizations", "users", "sessions"])
    {
        sql.push_str(&format!(
            "ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY;\n\
             ALTER TABLE {table} DISABLE ROW LEVEL SECURITY;\n"
        ));
    }
    sql.push_str(
        "DROP POLICY tenant_isolation ON projects;
DROP POLICY tenant_isolation ON endpoints;
DROP POLICY tenant_isolation ON models;
DROP POLICY tenant_isolation ON api_tokens;
DROP POLICY tenant_isolation ON audit_events;
DROP POLICY tenant_isolation ON organizations;
DROP POLICY tenant_isolation ON users;
DROP POLICY identity_resolution ON users;
DROP POLICY session_owner ON sessions;
",
    );
    sql
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
