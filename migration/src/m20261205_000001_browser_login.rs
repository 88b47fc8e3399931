//! Browser login: the logins under way between the redirect to the identity provider and the
//! callback, and the functions through which the application reaches the sessions table.
//!
//! `login_attempts` is not tenant data: a row is found by the SHA-256 of the login's `state`
//! and taken once (DELETE … RETURNING). Sessions belong to their user (row-level security);
//! before a request is authenticated nobody is in scope, so sessions are created, found,
//! touched and deleted by the SHA-256 of their cookie's id through SECURITY DEFINER functions
//! here. A trigger ends a user's sessions when the user is disabled or leaves (or is removed
//! from) their organization. An invitation is claimed (the provider's subject linked to the
//! invited row) only through `app_claim_invitation`, which callers use with a verified e-mail.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

const UP: &str = r#"
CREATE TABLE login_attempts (
    state_hash     bytea PRIMARY KEY CHECK (length(state_hash) = 32),
    nonce          text NOT NULL,
    pkce_verifier  text NOT NULL,
    return_to      text,
    max_age_secs   integer,
    created_at     timestamptz NOT NULL,
    expires_at     timestamptz NOT NULL
);
CREATE INDEX login_attempts_expiry_idx ON login_attempts (expires_at);

CREATE POLICY session_resolution ON sessions FOR ALL TO CURRENT_USER
USING (current_setting('app.identity_resolution', true) = 'on')
WITH CHECK (current_setting('app.identity_resolution', true) = 'on');

CREATE FUNCTION app_session_create(p_id_hash bytea, p_user uuid, p_auth_time timestamptz,
                                   p_data jsonb, p_now timestamptz, p_expires_at timestamptz)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
BEGIN
    PERFORM set_config('app.identity_resolution', 'on', true);
    INSERT INTO public.sessions (id_hash, user_id, data, auth_time, created_at, last_seen_at,
                                 expires_at)
    VALUES (p_id_hash, p_user, p_data, p_auth_time, p_now, p_now, p_expires_at);
    PERFORM set_config('app.identity_resolution', '', true);
END
$$;

-- The session under p_id_hash, with why it ended if it did (`absolute`, `idle`,
-- `user_inactive`; NULL while it lives); an ended session is deleted as it is reported.
CREATE FUNCTION app_session_load(p_id_hash bytea, p_now timestamptz, p_idle interval)
RETURNS TABLE (user_id uuid, auth_time timestamptz, data text, created_at timestamptz,
               last_seen_at timestamptz, expires_at timestamptz, ended text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
BEGIN
    PERFORM set_config('app.identity_resolution', 'on', true);
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
    PERFORM set_config('app.identity_resolution', '', true);
END
$$;

CREATE FUNCTION app_session_update(p_id_hash bytea, p_auth_time timestamptz, p_data jsonb)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    updated boolean;
BEGIN
    PERFORM set_config('app.identity_resolution', 'on', true);
    UPDATE public.sessions SET auth_time = p_auth_time, data = p_data
    WHERE id_hash = p_id_hash;
    updated := FOUND;
    PERFORM set_config('app.identity_resolution', '', true);
    RETURN updated;
END
$$;

CREATE FUNCTION app_session_touch(p_id_hash bytea, p_now timestamptz)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
BEGIN
    PERFORM set_config('app.identity_resolution', 'on', true);
    UPDATE public.sessions SET last_seen_at = p_now
    WHERE id_hash = p_id_hash AND last_seen_at < p_now;
    PERFORM set_config('app.identity_resolution', '', true);
END
$$;

CREATE FUNCTION app_session_delete(p_id_hash bytea)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
BEGIN
    PERFORM set_config('app.identity_resolution', 'on', true);
    DELETE FROM public.sessions WHERE id_hash = p_id_hash;
    PERFORM set_config('app.identity_resolution', '', true);
END
$$;

CREATE FUNCTION app_sessions_purge(p_now timestamptz, p_idle interval)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    gone bigint;
BEGIN
    PERFORM set_config('app.identity_resolution', 'on', true);
    DELETE FROM public.sessions
    WHERE expires_at <= p_now OR last_seen_at + p_idle <= p_now;
    GET DIAGNOSTICS gone = ROW_COUNT;
    PERFORM set_config('app.identity_resolution', '', true);
    RETURN gone;
END
$$;

-- Disabling a user, or their leaving or removal from the organization, ends their sessions
-- (founding or joining one does not).
CREATE FUNCTION app_end_sessions_of_changed_user()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
BEGIN
    IF (OLD.is_active AND NOT NEW.is_active)
       OR (OLD.organization_id IS NOT NULL
           AND OLD.organization_id IS DISTINCT FROM NEW.organization_id) THEN
        PERFORM set_config('app.identity_resolution', 'on', true);
        DELETE FROM public.sessions WHERE user_id = NEW.id;
        PERFORM set_config('app.identity_resolution', '', true);
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER users_end_sessions AFTER UPDATE OF is_active, organization_id ON users
FOR EACH ROW EXECUTE FUNCTION app_end_sessions_of_changed_user();

-- The owner's identity-resolution policy on users reads; claiming an invitation also writes.
CREATE POLICY identity_claim ON users FOR UPDATE TO CURRENT_USER
USING (current_setting('app.identity_resolution', true) = 'on')
WITH CHECK (current_setting('app.identity_resolution', true) = 'on');

-- Links the provider's subject to a pending invitation of p_email (no subject yet, in an
-- organization); the caller MUST have the provider's word that the e-mail is verified.
CREATE FUNCTION app_claim_invitation(p_email text, p_subject text, p_now timestamptz)
RETURNS TABLE (user_id uuid, organization_id uuid, role text, is_active boolean)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
BEGIN
    PERFORM set_config('app.identity_resolution', 'on', true);
    RETURN QUERY
        UPDATE public.users AS u
        SET idp_subject = p_subject, is_verified = true, last_login_at = p_now,
            updated_at = p_now
        WHERE u.email = p_email
          AND u.idp_subject IS NULL
          AND u.organization_id IS NOT NULL
        RETURNING u.id, u.organization_id, u.role, u.is_active;
    PERFORM set_config('app.identity_resolution', '', true);
END
$$;

REVOKE ALL ON FUNCTION app_session_create(bytea, uuid, timestamptz, jsonb, timestamptz,
                                          timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION app_session_load(bytea, timestamptz, interval) FROM PUBLIC;
REVOKE ALL ON FUNCTION app_session_update(bytea, timestamptz, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION app_session_touch(bytea, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION app_session_delete(bytea) FROM PUBLIC;
REVOKE ALL ON FUNCTION app_sessions_purge(timestamptz, interval) FROM PUBLIC;
REVOKE ALL ON FUNCTION app_end_sessions_of_changed_user() FROM PUBLIC;
REVOKE ALL ON FUNCTION app_claim_invitation(text, text, timestamptz) FROM PUBLIC;
"#;

const DOWN: &str = r#"
DROP FUNCTION app_claim_invitation(text, text, timestamptz);
DROP POLICY identity_claim ON users;
DROP TRIGGER users_end_sessions ON users;
DROP FUNCTION app_end_sessions_of_changed_user();
DROP FUNCTION app_sessions_purge(timestamptz, interval);
DROP FUNCTION app_session_delete(bytea);
DROP FUNCTION app_session_touch(bytea, timestamptz);
DROP FUNCTION app_session_update(bytea, timestamptz, jsonb);
DROP FUNCTION app_session_load(bytea, timestamptz, interval);
DROP FUNCTION app_session_create(bytea, uuid, timestamptz, jsonb, timestamptz, timestamptz);
DROP POLICY session_resolution ON sessions;
DROP TABLE login_attempts;
"#;

/// The functions the application role may call.
const FUNCTIONS: [&str; 7] = [
    "app_session_create(bytea, uuid, timestamptz, jsonb, timestamptz, timestamptz)",
    "app_session_load(bytea, timestamptz, interval)",
    "app_session_update(bytea, timestamptz, jsonb)",
    "app_session_touch(bytea, timestamptz)",
    "app_session_delete(bytea)",
    "app_sessions_purge(timestamptz, interval)",
    "app_claim_invitation(text, text, timestamptz)",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run_script(manager, UP).await?;
        let role = crate::app_role()?;
        crate::run_script(
            manager,
            &format!("GRANT SELECT, INSERT, DELETE ON login_attempts TO {role};"),
        )
        .await?;
        for function in FUNCTIONS {
            crate::grant_execute_to_app(manager, function).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run_script(manager, DOWN).await
    }
}
