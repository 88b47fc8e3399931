//! Revocation of the backend's access tokens (JWTs). A JWT names its user and its `jti`; at
//! every request one narrow SECURITY DEFINER function returns the user's current membership
//! and whether that `jti` was revoked, so a revoked token, a disabled user's token and the
//! token of a user who left the organization stop working at once. Revocations are kept until
//! the token would have expired anyway, then purged.
//!
//! The table is not tenant data and the application role has no privilege on it: it is read
//! and written only through the two functions here.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

const UP: &str = r#"
CREATE TABLE revoked_access_tokens (
    jti         uuid PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users (id),
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz NOT NULL
);
CREATE INDEX revoked_access_tokens_expiry ON revoked_access_tokens (expires_at);

ALTER TABLE revoked_access_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE revoked_access_tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY identity_resolution ON revoked_access_tokens FOR ALL TO CURRENT_USER
USING (current_setting('app.identity_resolution', true) = 'on')
WITH CHECK (current_setting('app.identity_resolution', true) = 'on');

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
    -- A revocation outlives its token by a day (clock skew, leeway), then goes.
    DELETE FROM public.revoked_access_tokens WHERE expires_at < p_now - interval '1 day';
    PERFORM set_config('app.identity_resolution', '', true);
END
$$;

REVOKE ALL ON FUNCTION app_access_token_subject(uuid, uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION app_revoke_access_token(uuid, uuid, timestamptz, timestamptz) FROM PUBLIC;
"#;

const DOWN: &str = r#"
DROP FUNCTION app_revoke_access_token(uuid, uuid, timestamptz, timestamptz);
DROP FUNCTION app_access_token_subject(uuid, uuid);
DROP TABLE revoked_access_tokens;
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run_script(manager, UP).await?;
        crate::grant_execute_to_app(manager, "app_access_token_subject(uuid, uuid)").await?;
        crate::grant_execute_to_app(
            manager,
            "app_revoke_access_token(uuid, uuid, timestamptz, timestamptz)",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run_script(manager, DOWN).await
    }
}
