//! A session's lookup deletes only a session that ended (before, every lookup also ran a
//! DELETE, matching nothing while the session lived), and marking a session used no longer
//! brings back one that has ended: the touch, written apart from the request that used the
//! session, skips a session idle or past its end by the time it is written (before, it set
//! `last_seen_at` to now whatever it was, so a session that went idle between its last use
//! and the write came back to life).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

/// The lookup as this migration makes it (`m20261208_000002` builds on it).
pub(crate) const LOAD: &str = r#"
CREATE OR REPLACE FUNCTION app_session_load(p_id_hash bytea, p_idle interval)
RETURNS TABLE (user_id uuid, auth_time timestamptz, data text, created_at timestamptz,
               last_seen_at timestamptz, expires_at timestamptz, ended text)
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
           END AS why
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
        RETURN NEXT;
    END IF;
END
$$;
"#;

const TOUCH: &str = r#"
CREATE FUNCTION app_session_touch(p_id_hash bytea, p_idle interval)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pg_catalog.set_config('app.identity_resolution', 'on', true);
    UPDATE public.sessions SET last_seen_at = pg_catalog.now()
    WHERE id_hash = p_id_hash AND last_seen_at < pg_catalog.now()
      AND last_seen_at + LEAST(p_idle, interval '1440 minutes') > pg_catalog.now()
      AND expires_at > pg_catalog.now();
    PERFORM pg_catalog.set_config('app.identity_resolution', '', true);
END
$$;
REVOKE ALL ON FUNCTION app_session_touch(bytea, interval) FROM PUBLIC;
DROP FUNCTION app_session_touch(bytea);
"#;

/// The functions as the session-time migration made them.
const DOWN: &str = r#"
CREATE OR REPLACE FUNCTION app_session_load(p_id_hash bytea, p_idle interval)
RETURNS TABLE (user_id uuid, auth_time timestamptz, data text, created_at timestamptz,
               last_seen_at timestamptz, expires_at timestamptz, ended text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_idle interval := LEAST(p_idle, interval '1440 minutes');
BEGIN
    PERFORM pg_catalog.set_config('app.identity_resolution', 'on', true);
    RETURN QUERY
        SELECT s.user_id, s.auth_time, s.data::text, s.created_at, s.last_seen_at,
               s.expires_at,
               CASE WHEN s.expires_at <= pg_catalog.now() THEN 'absolute'
                    WHEN s.last_seen_at + v_idle <= pg_catalog.now() THEN 'idle'
                    WHEN NOT EXISTS (SELECT 1 FROM public.users AS u
                                     WHERE u.id = s.user_id AND u.is_active)
                         THEN 'user_inactive'
               END
        FROM public.sessions AS s
        WHERE s.id_hash = p_id_hash;
    DELETE FROM public.sessions AS s
    WHERE s.id_hash = p_id_hash
      AND (s.expires_at <= pg_catalog.now()
           OR s.last_seen_at + v_idle <= pg_catalog.now()
           OR NOT EXISTS (SELECT 1 FROM public.users AS u
                          WHERE u.id = s.user_id AND u.is_active));
    PERFORM pg_catalog.set_config('app.identity_resolution', '', true);
END
$$;

CREATE FUNCTION app_session_touch(p_id_hash bytea)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pg_catalog.set_config('app.identity_resolution', 'on', true);
    UPDATE public.sessions SET last_seen_at = pg_catalog.now()
    WHERE id_hash = p_id_hash AND last_seen_at < pg_catalog.now();
    PERFORM pg_catalog.set_config('app.identity_resolution', '', true);
END
$$;
REVOKE ALL ON FUNCTION app_session_touch(bytea) FROM PUBLIC;
DROP FUNCTION app_session_touch(bytea, interval);
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run_script(manager, LOAD).await?;
        crate::run_script(manager, TOUCH).await?;
        crate::grant_execute_to_app(manager, "app_session_touch(bytea, interval)").await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run_script(manager, DOWN).await?;
        crate::grant_execute_to_app(manager, "app_session_touch(bytea)").await
    }
}
