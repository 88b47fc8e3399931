//! Authentication by API token crosses tenants: the presented token names no organization.
//! One narrow SECURITY DEFINER function finds a live token by the SHA-256 digest of its value
//! and returns only what authentication needs — the sealed value (to compare in constant time
//! after opening), the expiry, the last use, and the owner's current membership. A token whose owner left
//! its organization, or is disabled, comes back marked so.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

const UP: &str = r#"
CREATE POLICY identity_resolution ON api_tokens FOR SELECT TO CURRENT_USER
USING (current_setting('app.identity_resolution', true) = 'on');

CREATE FUNCTION app_api_token_by_digest(p_digest bytea)
RETURNS TABLE (token_id uuid, organization_id uuid, user_id uuid, sealed text,
               expires_at timestamptz, last_used_at timestamptz, role text,
               user_active boolean)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
BEGIN
    PERFORM set_config('app.identity_resolution', 'on', true);
    RETURN QUERY
        SELECT t.id, t.organization_id, t.user_id, t.token, t.expires_at, t.last_used_at,
               -- The role only while the owner is still in the token's organization.
               CASE WHEN u.organization_id = t.organization_id THEN u.role END,
               u.is_active AND u.organization_id IS NOT DISTINCT FROM t.organization_id
        FROM public.api_tokens AS t
        JOIN public.users AS u ON u.id = t.user_id
        WHERE t.token_digest = p_digest
          AND t.deleted_at IS NULL;
    PERFORM set_config('app.identity_resolution', '', true);
END
$$;

REVOKE ALL ON FUNCTION app_api_token_by_digest(bytea) FROM PUBLIC;
"#;

const DOWN: &str = r#"
DROP FUNCTION app_api_token_by_digest(bytea);
DROP POLICY identity_resolution ON api_tokens;
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run_script(manager, UP).await?;
        crate::grant_execute_to_app(manager, "app_api_token_by_digest(bytea)").await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run_script(manager, DOWN).await
    }
}
