//! The one cross-tenant enumeration re-encryption and the startup self-check need: the ids of
//! all organizations, and nothing else. They then work inside each organization under its
//! row-level security, as the application role.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

const UP: &str = r#"
CREATE POLICY identity_resolution ON organizations FOR SELECT TO CURRENT_USER
USING (current_setting('app.identity_resolution', true) = 'on');

CREATE FUNCTION app_organization_ids()
RETURNS SETOF uuid
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
BEGIN
    PERFORM set_config('app.identity_resolution', 'on', true);
    RETURN QUERY SELECT o.id FROM public.organizations AS o ORDER BY o.id;
    PERFORM set_config('app.identity_resolution', '', true);
END
$$;

REVOKE ALL ON FUNCTION app_organization_ids() FROM PUBLIC;
"#;

const DOWN: &str = r#"
DROP FUNCTION app_organization_ids();
DROP POLICY identity_resolution ON organizations;
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run_script(manager, UP).await?;
        crate::grant_execute_to_app(manager, "app_organization_ids()").await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run_script(manager, DOWN).await
    }
}
