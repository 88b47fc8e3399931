//! Every SECURITY DEFINER function resolves names through `pg_catalog` and `pg_temp` only
//! (its tables are named with their schema), so no object a role can create in `public` is
//! ever picked up in the owner's name. And the revocation of an access token takes its time
//! from the database: a caller that passed a time of its choosing could have made every
//! revocation look expired and purged it.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

/// Sets `search_path` on every SECURITY DEFINER function of the `public` schema.
fn search_path(path: &str) -> String {
    format!(
        "DO $do$
DECLARE f regprocedure;
BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
             WHERE p.pronamespace = 'public'::regnamespace AND p.prosecdef
    LOOP
        EXECUTE pg_catalog.format('ALTER FUNCTION %s SET search_path = {path}', f);
    END LOOP;
END
$do$;"
    )
}

const UP: &str = r#"
CREATE FUNCTION app_revoke_access_token(p_jti uuid, p_user uuid, p_expires_at timestamptz)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
AS $$
BEGIN
    PERFORM pg_catalog.set_config('app.identity_resolution', 'on', true);
    INSERT INTO public.revoked_access_tokens (jti, user_id, expires_at, revoked_at)
    VALUES (p_jti, p_user, p_expires_at, pg_catalog.now())
    ON CONFLICT (jti) DO NOTHING;
    -- A revocation outlives its token by a day (clock skew, leeway), then goes.
    DELETE FROM public.revoked_access_tokens
    WHERE expires_at < pg_catalog.now() - interval '1 day';
    PERFORM pg_catalog.set_config('app.identity_resolution', '', true);
END
$$;
REVOKE ALL ON FUNCTION app_revoke_access_token(uuid, uuid, timestamptz) FROM PUBLIC;
DROP FUNCTION app_revoke_access_token(uuid, uuid, timestamptz, timestamptz);
"#;

const DOWN: &str = r#"
CREATE FUNCTION app_revoke_access_token(p_jti uuid, p_user uuid, p_expires_at timestamptz,
                                        p_now timestamptz)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
BEGIN
    PERFORM set_config('app.identity_resolution', 'on', true);
    INSERT INTO public.revoked_access_tokens (jti, user_id, expires_at, revoked_at)
    VALUES (p_jti, p_user, p_expires_at, p_now)
    ON CONFLICT (jti) DO NOTHING;
    DELETE FROM public.revoked_access_tokens WHERE expires_at < p_now - interval '1 day';
    PERFORM set_config('app.identity_resolution', '', true);
END
$$;
REVOKE ALL ON FUNCTION app_revoke_access_token(uuid, uuid, timestamptz, timestamptz) FROM PUBLIC;
DROP FUNCTION app_revoke_access_token(uuid, uuid, timestamptz);
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run_script(manager, UP).await?;
        crate::grant_execute_to_app(manager, "app_revoke_access_token(uuid, uuid, timestamptz)")
            .await?;
        crate::run_script(manager, &search_path("pg_catalog, pg_temp")).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run_script(manager, &search_path("public, pg_temp")).await?;
        crate::run_script(manager, DOWN).await?;
        crate::grant_execute_to_app(
            manager,
            "app_revoke_access_token(uuid, uuid, timestamptz, timestamptz)",
        )
        .await
    }
}
