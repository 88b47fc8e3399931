//! Cross-tenant identity resolution, and nothing more: SECURITY DEFINER functions with a
//! fixed search_path that return only the columns authentication needs. EXECUTE is revoked
//! from PUBLIC here and granted to the application role alone by the grants migration.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

const UP: &str = r#"
ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;

CREATE FUNCTION app_user_by_subject(p_subject text)
RETURNS TABLE (user_id uuid, organization_id uuid, role text, is_active boolean)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
BEGIN
    -- Opens the owner's identity-resolution policy for this one query; the setting is
    -- transaction-local and is closed again before returning (an error aborts the
    -- transaction, which discards it as well).
    PERFORM set_config('app.identity_resolution', 'on', true);
    RETURN QUERY
        SELECT u.id, u.organization_id, u.role, u.is_active
        FROM public.users AS u
        WHERE u.idp_subject = p_subject;
    PERFORM set_config('app.identity_resolution', '', true);
END
$$;

CREATE FUNCTION app_pending_invitation(p_email text)
RETURNS TABLE (user_id uuid, organization_id uuid, role text, is_active boolean)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
BEGIN
    PERFORM set_config('app.identity_resolution', 'on', true);
    RETURN QUERY
        SELECT u.id, u.organization_id, u.role, u.is_active
        FROM public.users AS u
        WHERE u.email = p_email
          AND u.idp_subject IS NULL
          AND u.organization_id IS NOT NULL;
    PERFORM set_config('app.identity_resolution', '', true);
END
$$;

REVOKE ALL ON FUNCTION app_user_by_subject(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION app_pending_invitation(text) FROM PUBLIC;
"#;

const DOWN: &str = r#"
DROP FUNCTION app_pending_invitation(text);
DROP FUNCTION app_user_by_subject(text);
ALTER DEFAULT PRIVILEGES GRANT EXECUTE ON FUNCTIONS TO PUBLIC;
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run_script(manager, UP).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run_script(manager, DOWN).await
    }
}
