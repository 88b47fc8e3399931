//! The session lookup also answers with its user's organization and role, from the users row
//! it reads already (for `is_active`): a browser session's first statement then makes one
//! SECURITY DEFINER call instead of two (before, the subject lookup was joined to it for the
//! membership).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

const UP: &str = r#"
DROP FUNCTION app_session_load(bytea, interval);
CREATE FUNCTION app_session_load(p_id_hash bytea, p_idle interval)
RETURNS TABLE (user_id uuid, auth_time timestamptz, data text, created_at timestamptz,
               last_seen_at timestamptz, expires_at timestamptz, ended text,
               organization_id uuid, role text, is_active boolean)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_idle interval := LEAST(p_idle, interval '1440 minutes');
    v_found record;
    v_exists boolean;
BEGIN
    PERFORM pg_catalog.set_config('app.identity_resolution', 'on', true);
    SELECT s.user_id AS uid, s.auth_time AS at, s.data::text AS state,
           s.created_at AS created, s.last_seen_at AS seen, s.expires_at AS ends,
           CASE WHEN s.expires_at <= pg_catalog.now() THEN 'absolute'
                WHEN s.last_seen_at + v_idle <= pg_catalog.now() THEN 'idle'
                WHEN u.is_active IS NOT TRUE THEN 'user_inactive'
           END AS why,
           u.organization_id AS org, u.role AS held, coalesce(u.is_active, false) AS active
    INTO v_found
    FROM public.sessions AS s
    LEFT JOIN public.users AS u ON u.id = s.user_id
    WHERE s.id_hash = p_id_hash;
    v_exists := FOUND;
    IF v_exists AND v_found.why IS NOT NULL THEN
        -- The same conditions again: a use written meanwhile keeps the session.
        DELETE FROM public.sessions AS s
        WHERE s.id_hash = p_id_hash
          AND (s.expires_at <= pg_catalog.now()
               OR s.last_seen_at + v_idle <= pg_catalog.now()
               OR NOT EXISTS (SELECT 1 FROM public.users AS u
                              WHERE u.id = s.user_id AND u.is_active));
    END IF;
    PERFORM pg_catalog.set_config('app.identity_resolution', '', true);
    IF v_exists THEN
        user_id := v_found.uid;
        auth_time := v_found.at;
        data := v_found.state;
        created_at := v_found.created;
        last_seen_at := v_found.seen;
        expires_at := v_found.ends;
        ended := v_found.why;
        organization_id := v_found.org;
        role := v_found.held;
        is_active := v_found.active;
        RETURN NEXT;
    END IF;
END
$$;
REVOKE ALL ON FUNCTION app_session_load(bytea, interval) FROM PUBLIC;
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run_script(manager, UP).await?;
        crate::grant_execute_to_app(manager, "app_session_load(bytea, interval)").await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run_script(manager, "DROP FUNCTION app_session_load(bytea, interval);").await?;
        crate::run_script(
            manager,
            crate::m20261208_000001_session_lookup_and_touch::LOAD,
        )
        .await?;
        crate::run_script(
            manager,
            "REVOKE ALL ON FUNCTION app_session_load(bytea, interval) FROM PUBLIC;",
        )
        .await?;
        crate::grant_execute_to_app(manager, "app_session_load(bytea, interval)").await
    }
}
