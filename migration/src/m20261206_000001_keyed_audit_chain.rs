//! The audit chain becomes keyed: each event records how its hash links it to the one before
//! (`hash_version`: 1, plain SHA-256, for the events written before; 2, HMAC-SHA256 under
//! `AUDIT_CHAIN_KEY`, which lives outside the database). Existing events keep version 1 and
//! keep verifying as such; a verifier accepts version 1 only before a chain's first version-2
//! event, so an event cannot be rewritten later as an unkeyed one.
//!
//! The key is never stored here: a migration cannot re-key old events, and does not try.
//! The system chain's append and read functions carry the version too. The application role
//! keeps SELECT and INSERT on `audit_events`, nothing more.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

/// The functions this migration replaces, as `m20261204_000002_system_audit_chain` made them.
const OLD_APPEND: &str = "app_system_audit_append(uuid, bigint, timestamptz, uuid, text, text, \
                          text, text, text, inet, text, bytea, bytea)";
const NEW_APPEND: &str = "app_system_audit_append(uuid, bigint, timestamptz, uuid, text, text, \
                          text, text, text, inet, text, bytea, bytea, smallint)";
const EVENTS: &str = "app_system_audit_events(bigint, integer)";

const UP: &str = r#"
-- Rows written before this migration (and any row that does not name it) are version 1.
ALTER TABLE audit_events ADD COLUMN hash_version smallint NOT NULL DEFAULT 1
    CHECK (hash_version IN (1, 2));

DROP FUNCTION app_system_audit_append(uuid, bigint, timestamptz, uuid, text, text, text, text,
    text, inet, text, bytea, bytea);
CREATE FUNCTION app_system_audit_append(
    p_id uuid, p_seq bigint, p_occurred_at timestamptz, p_actor uuid, p_action text,
    p_target_type text, p_target_id text, p_outcome text, p_reason text, p_client_ip inet,
    p_request_id text, p_prev_hash bytea, p_hash bytea, p_hash_version smallint)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    head_seq bigint;
    head_hash bytea;
BEGIN
    PERFORM pg_advisory_xact_lock(0);
    PERFORM set_config('app.system_audit', 'on', true);
    SELECT a.seq, a.hash INTO head_seq, head_hash FROM public.audit_events AS a
    WHERE a.organization_id IS NULL ORDER BY a.seq DESC LIMIT 1;
    IF p_seq <> COALESCE(head_seq, 0) + 1
       OR (head_hash IS NOT NULL AND p_prev_hash <> head_hash) THEN
        RAISE EXCEPTION 'the system audit chain moved on';
    END IF;
    INSERT INTO public.audit_events (id, organization_id, seq, occurred_at, actor_user_id,
        action, target_type, target_id, outcome, reason, client_ip, request_id, prev_hash,
        hash, hash_version)
    VALUES (p_id, NULL, p_seq, p_occurred_at, p_actor, p_action, p_target_type, p_target_id,
        p_outcome, p_reason, p_client_ip, p_request_id, p_prev_hash, p_hash, p_hash_version);
    PERFORM set_config('app.system_audit', '', true);
END
$$;

DROP FUNCTION app_system_audit_events(bigint, integer);
CREATE FUNCTION app_system_audit_events(p_after bigint, p_limit integer)
RETURNS TABLE (id uuid, organization_id uuid, seq bigint, occurred_at timestamptz,
               actor_user_id uuid, action text, target_type text, target_id text,
               outcome text, reason text, client_ip text, request_id text, prev_hash bytea,
               hash bytea, hash_version smallint)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
BEGIN
    PERFORM set_config('app.system_audit', 'on', true);
    RETURN QUERY
        SELECT a.id, a.organization_id, a.seq, a.occurred_at, a.actor_user_id, a.action,
               a.target_type, a.target_id, a.outcome, a.reason, host(a.client_ip), a.request_id,
               a.prev_hash, a.hash, a.hash_version
        FROM public.audit_events AS a
        WHERE a.organization_id IS NULL AND a.seq > p_after
        ORDER BY a.seq LIMIT LEAST(GREATEST(p_limit, 0), 1000);
    PERFORM set_config('app.system_audit', '', true);
END
$$;

REVOKE ALL ON FUNCTION app_system_audit_append(uuid, bigint, timestamptz, uuid, text, text,
    text, text, text, inet, text, bytea, bytea, smallint) FROM PUBLIC;
REVOKE ALL ON FUNCTION app_system_audit_events(bigint, integer) FROM PUBLIC;
"#;

/// Back to unkeyed links only: the functions as they were, and no version column. Keyed
/// events stay in the table but no longer verify without their version.
const DOWN: &str = r#"
DROP FUNCTION app_system_audit_events(bigint, integer);
CREATE FUNCTION app_system_audit_events(p_after bigint, p_limit integer)
RETURNS TABLE (id uuid, organization_id uuid, seq bigint, occurred_at timestamptz,
               actor_user_id uuid, action text, target_type text, target_id text,
               outcome text, reason text, client_ip text, request_id text, prev_hash bytea, hash bytea)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
BEGIN
    PERFORM set_config('app.system_audit', 'on', true);
    RETURN QUERY
        SELECT a.id, a.organization_id, a.seq, a.occurred_at, a.actor_user_id, a.action,
               a.target_type, a.target_id, a.outcome, a.reason, host(a.client_ip), a.request_id,
               a.prev_hash, a.hash
        FROM public.audit_events AS a
        WHERE a.organization_id IS NULL AND a.seq > p_after
        ORDER BY a.seq LIMIT LEAST(GREATEST(p_limit, 0), 1000);
    PERFORM set_config('app.system_audit', '', true);
END
$$;

DROP FUNCTION app_system_audit_append(uuid, bigint, timestamptz, uuid, text, text, text, text,
    text, inet, text, bytea, bytea, smallint);
CREATE FUNCTION app_system_audit_append(
    p_id uuid, p_seq bigint, p_occurred_at timestamptz, p_actor uuid, p_action text,
    p_target_type text, p_target_id text, p_outcome text, p_reason text, p_client_ip inet,
    p_request_id text, p_prev_hash bytea, p_hash bytea)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    head_seq bigint;
    head_hash bytea;
BEGIN
    PERFORM pg_advisory_xact_lock(0);
    PERFORM set_config('app.system_audit', 'on', true);
    SELECT a.seq, a.hash INTO head_seq, head_hash FROM public.audit_events AS a
    WHERE a.organization_id IS NULL ORDER BY a.seq DESC LIMIT 1;
    IF p_seq <> COALESCE(head_seq, 0) + 1
       OR (head_hash IS NOT NULL AND p_prev_hash <> head_hash) THEN
        RAISE EXCEPTION 'the system audit chain moved on';
    END IF;
    INSERT INTO public.audit_events (id, organization_id, seq, occurred_at, actor_user_id,
        action, target_type, target_id, outcome, reason, client_ip, request_id, prev_hash,
        hash)
    VALUES (p_id, NULL, p_seq, p_occurred_at, p_actor, p_action, p_target_type, p_target_id,
        p_outcome, p_reason, p_client_ip, p_request_id, p_prev_hash, p_hash);
    PERFORM set_config('app.system_audit', '', true);
END
$$;

REVOKE ALL ON FUNCTION app_system_audit_append(uuid, bigint, timestamptz, uuid, text, text,
    text, text, text, inet, text, bytea, bytea) FROM PUBLIC;
REVOKE ALL ON FUNCTION app_system_audit_events(bigint, integer) FROM PUBLIC;

ALTER TABLE audit_events DROP COLUMN hash_version;
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run_script(manager, UP).await?;
        for function in [NEW_APPEND, EVENTS] {
            crate::grant_execute_to_app(manager, function).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run_script(manager, DOWN).await?;
        for function in [OLD_APPEND, EVENTS] {
            crate::grant_execute_to_app(manager, function).await?;
        }
        Ok(())
    }
}
