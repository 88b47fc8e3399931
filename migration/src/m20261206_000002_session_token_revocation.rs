//! Access tokens minted from a browser session carry its `sid`; ending the session revokes
//! them all. The revocation list keeps session ids beside token ids (both random uuids), and
//! the subject lookup asks for either. The function now resolves names through `pg_catalog`
//! only, every table qualified.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

const UP: &str = r#"
COMMENT ON COLUMN revoked_access_tokens.jti IS
    'A revoked access token''s jti, or the sid of an ended browser session';

CREATE FUNCTION app_access_token_subject(p_user uuid, p_jti uuid, p_sid uuid)
RETURNS TABLE (user_id uuid, organization_id uuid, role text, is_active boolean,
               revoked boolean)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pg_catalog.set_config('app.identity_resolution', 'on', true);
    RETURN QUERY
        SELECT u.id, u.organization_id, u.role, u.is_active,
               EXISTS (SELECT 1 FROM public.revoked_access_tokens AS r
                       WHERE r.jti = p_jti OR r.jti = p_sid)
        FROM public.users AS u
        WHERE u.id = p_user;
    PERFORM pg_catalog.set_config('app.identity_resolution', '', true);
END
$$;
REVOKE ALL ON FUNCTION app_access_token_subject(uuid, uuid, uuid) FROM PUBLIC;
DROP FUNCTION app_access_token_subject(uuid, uuid);
"#;

const DOWN: &str = r#"
CREATE FUNCTION app_access_token_subject(p_user uuid, p_jti uuid)
RETURNS TABLE (user_id uuid, organization_id uuid, role text, is_active boolean,
               revoked boolean)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
BEGIN
    PERFORM set_config('app.identity_resolution', 'on', true);
    RETURN QUERY
        SELECT u.id, u.organization_id, u.role, u.is_active,
               EXISTS (SELECT 1 FROM public.revoked_access_tokens AS r WHERE r.jti = p_jti)
        FROM public.users AS u
        WHERE u.id = p_user;
    PERFORM set_config('app.identity_resolution', '', true);
END
$$;
REVOKE ALL ON FUNCTION app_access_token_subject(uuid, uuid) FROM PUBLIC;
DROP FUNCTION app_access_token_subject(uuid, uuid, uuid);
COMMENT ON COLUMN revoked_access_tokens.jti IS NULL;
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run_script(manager, UP).await?;
        crate::grant_execute_to_app(manager, "app_access_token_subject(uuid, uuid, uuid)").await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run_script(manager, DOWN).await?;
        crate::grant_execute_to_app(manager, "app_access_token_subject(uuid, uuid)").await
    }
}
