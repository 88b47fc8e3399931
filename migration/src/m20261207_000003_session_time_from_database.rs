//! The session functions take their time from the database (`now()`), never from the caller:
//! a caller that passed a time of its choosing could keep an idle or expired session alive
//! (an old `now` at load), or stamp a session as just used. The idle timeout and the absolute
//! lifetime stay parameters (configuration), held to the largest the configuration accepts
//! (`SESSION_IDLE_MINUTES` 1440, `SESSION_ABSOLUTE_HOURS` 720), so no caller makes a session
//! outlive those; the login's `auth_time` stays the provider's.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

const UP: &str = r#"
CREATE FUNCTION app_session_create(p_id_hash bytea, p_user uuid, p_auth_time timestamptz,
                                   p_data jsonb, p_absolute interval)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pg_catalog.set_config('app.identity_resolution', 'on', true);
    INSERT INTO public.sessions (id_hash, user_id, data, auth_time, created_at, last_seen_at,
                                 expires_at)
    VALUES (p_id_hash, p_user, p_data, p_auth_time, pg_catalog.now(), pg_catalog.now(),
            pg_catalog.now() + LEAST(p_absolute, interval '720 hours'));
    PERFORM pg_catalog.set_config('app.identity_resolution', '', true);
END
$$;

-- The session under p_id_hash, with why it ended if it did (`absolute`, `idle`,
-- `user_inactive`; NULL while it lives); an ended session is deleted as it is reported.
CREATE FUNCTION app_session_load(p_id_hash bytea, p_idle interval)
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

CREATE FUNCTION app_sessions_purge(p_idle interval)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    gone bigint;
BEGIN
    PERFORM pg_catalog.set_config('app.identity_resolution', 'on', true);
    DELETE FROM public.sessions
    WHERE expires_at <= pg_catalog.now()
       OR last_seen_at + LEAST(p_idle, interval '1440 minutes') <= pg_catalog.now();
    GET DIAGNOSTICS gone = ROW_COUNT;
    PERFORM pg_catalog.set_config('app.identity_resolution', '', true);
    RETURN gone;
END
$$;

REVOKE ALL ON FUNCTION app_session_create(bytea, uuid, timestamptz, jsonb, interval) FROM PUBLIC;
REVOKE ALL ON FUNCTION app_session_load(bytea, interval) FROM PUBLIC;
REVOKE ALL ON FUNCTION app_session_touch(bytea) FROM PUBLIC;
REVOKE ALL ON FUNCTION app_sessions_purge(interval) FROM PUBLIC;

DROP FUNCTION app_session_create(bytea, uuid, timestamptz, jsonb, timestamptz, timestamptz);
DROP FUNCTION app_session_load(bytea, timestamptz, interval);
DROP FUNCTION app_session_touch(bytea, timestamptz);
DROP FUNCTION app_sessions_purge(timestamptz, interval);
"#;

/// The caller-timed functions, as the browser-login migration made them (with the hardened
/// search path).
const DOWN: &str = r#"
CREATE FUNCTION app_session_create(p_id_hash bytea, p_user uuid, p_auth_time timestamptz,
                                   p_data jsonb, p_now timestamptz, p_expires_at timestamptz)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pg_catalog.set_config('app.identity_resolution', 'on', true);
    INSERT INTO public.sessions (id_hash, user_id, data, auth_time, created_at, last_seen_at,
                                 expires_at)
    VALUES (p_id_hash, p_user, p_data, p_auth_time, p_now, p_now, p_expires_at);
    PERFORM pg_catalog.set_config('app.identity_resolution', '', true);
END
$$;

CREATE FUNCTION app_session_load(p_id_hash bytea, p_now timestamptz, p_idle interval)
RETURNS TABLE (user_id uuid, auth_time timestamptz, data text, created_at timestamptz,
               last_seen_at timestamptz, expires_at timestamptz, ended text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pg_catalog.set_config('app.identity_resolution', 'on', true);
    RETURN QUERY
        SELECT s.user_id, s.auth_time, s.data::text, s.created_at, s.last_seen_at,
               s.expires_at,
               CASE WHEN s.expires_at <= p_now THEN 'absolute'
                    WHEN s.last_seen_at + p_idle <= p_now THEN 'idle'
                    WHEN NOT EXISTS (SELECT 1 FROM public.users AS u
                                     WHERE u.id = s.user_id AND u.is_active)
                         THEN 'user_inactive'
               END
        FROM public.sessions AS s
        WHERE s.id_hash = p_id_hash;
    DELETE FROM public.sessions AS s
    WHERE s.id_hash = p_id_hash
      AND (s.expires_at <= p_now
           OR s.last_seen_at + p_idle <= p_now
           OR NOT EXISTS (SELECT 1 FROM public.users AS u
                          WHERE u.id = s.user_id AND u.is_active));
    PERFORM pg_catalog.set_config('app.identity_resolution', '', true);
END
$$;

CREATE FUNCTION app_session_touch(p_id_hash bytea, p_now timestamptz)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pg_catalog.set_config('app.identity_resolution', 'on', true);
    UPDATE public.sessions SET last_seen_at = p_now
    WHERE id_hash = p_id_hash AND last_seen_at < p_now;
    PERFORM pg_catalog.set_config('app.identity_resolution', '', true);
END
$$;

CREATE FUNCTION app_sessions_purge(p_now timestamptz, p_idle interval)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    gone bigint;
BEGIN
    PERFORM pg_catalog.set_config('app.identity_resolution', 'on', true);
    DELETE FROM public.sessions
    WHERE expires_at <= p_now OR last_seen_at + p_idle <= p_now;
    GET DIAGNOSTICS gone = ROW_COUNT;
    PERFORM pg_catalog.set_config('app.identity_resolution', '', true);
    RETURN gone;
END
$$;

REVOKE ALL ON FUNCTION app_session_create(bytea, uuid, timestamptz, jsonb, timestamptz,
                                          timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION app_session_load(bytea, timestamptz, interval) FROM PUBLIC;
REVOKE ALL ON FUNCTION app_session_touch(bytea, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION app_sessions_purge(timestamptz, interval) FROM PUBLIC;

DROP FUNCTION app_session_create(bytea, uuid, timestamptz, jsonb, interval);
DROP FUNCTION app_session_load(bytea, interval);
DROP FUNCTION app_session_touch(bytea);
DROP FUNCTION app_sessions_purge(interval);
"#;

const NEW: [&str; 4] = [
    "app_session_create(bytea, uuid, timestamptz, jsonb, interval)",
    "app_session_load(bytea, interval)",
    "app_session_touch(bytea)",
    "app_sessions_purge(interval)",
];

const OLD: [&str; 4] = [
    "app_session_create(bytea, uuid, timestamptz, jsonb, timestamptz, timestamptz)",
    "app_session_load(bytea, timestamptz, interval)",
    "app_session_touch(bytea, timestamptz)",
    "app_sessions_purge(timestamptz, interval)",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run_script(manager, UP).await?;
        for function in NEW {
            crate::grant_execute_to_app(manager, function).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run_script(manager, DOWN).await?;
        for function in OLD {
            crate::grant_execute_to_app(manager, function).await?;
        }
        Ok(())
    }
}
