//! Refused credentials are counted, not written one by one: the server records one event per
//! kind of refusal, address and minute, with the number of times it happened
//! (`occurrences`, hashed into the event's link when more than 1). A flood of made-up tokens
//! or of failed logins from many addresses is then a bounded number of appends, written off the
//! request path, instead of one append per request to the system chain under its lock.
//!
//! The system chain's append and read functions carry the count too.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

const OLD_APPEND: &str = "app_system_audit_append(uuid, bigint, timestamptz, uuid, text, text, \
                          text, text, text, inet, text, bytea, bytea, smallint)";
const NEW_APPEND: &str = "app_system_audit_append(uuid, bigint, timestamptz, uuid, text, text, \
                          text, text, text, inet, text, integer, bytea, bytea, smallint)";
const EVENTS: &str = "app_system_audit_events(bigint, integer)";

const UP: &str = r#"
ALTER TABLE audit_events ADD COLUMN occurrences integer NOT NULL DEFAULT 1
    CHECK (occurrences >= 1);

DROP FUNCTION app_system_audit_append(uuid, bigint, timestamptz, uuid, text, text, text, text,
    text, inet, text, bytea, bytea, smallint);
CREATE FUNCTION app_system_audit_append(
    p_id uuid, p_seq bigint, p_occurred_at timestamptz, p_actor uuid, p_action text,
    p_target_type text, p_target_id text, p_outcome text, p_reason text, p_client_ip inet,
    p_request_id text, p_occurrences integer, p_prev_hash bytea, p_hash bytea,
    p_hash_version smallint)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    head_seq bigint;
    head_hash bytea;
BEGIN
    PERFORM pg_catalog.pg_advisory_xact_lock(0);
    PERFORM pg_catalog.set_config('app.system_audit', 'on', true);
    SELECT a.seq, a.hash INTO head_seq, head_hash FROM public.audit_events AS a
    WHERE a.organization_id IS NULL ORDER BY a.seq DESC LIMIT 1;
    IF p_seq <> COALESCE(head_seq, 0) + 1
       OR (head_hash IS NOT NULL AND p_prev_hash <> head_hash) THEN
        RAISE EXCEPTION 'the system audit chain moved on';
    END IF;
    INSERT INTO public.audit_events (id, organization_id, seq, occurred_at, actor_user_id,
        action, target_type, target_id, outcome, reason, client_ip, request_id, occurrences,
        prev_hash, hash, hash_version)
    VALUES (p_id, NULL, p_seq, p_occurred_at, p_actor, p_action, p_target_type, p_target_id,
        p_outcome, p_reason, p_client_ip, p_request_id, p_occurrences, p_prev_hash, p_hash,
        p_hash_version);
    PERFORM pg_catalog.set_config('app.system_audit', '', true);
END
$$;

DROP FUNCTION app_system_audit_events(bigint, integer);
CREATE FUNCTION app_system_audit_events(p_after bigint, p_limit integer)
RETURNS TABLE (id uuid, organization_id uuid, seq bigint, occurred_at timestamptz,
               actor_user_id uuid, action text, target_type text, target_id text,
               outcome text, reason text, client_ip text, request_id text, occurrences integer,
               prev_hash bytea, hash bytea, hash_version smallint)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pg_catalog.set_config('app.system_audit', 'on', true);
    RETURN QUERY
        SELECT a.id, a.organization_id, a.seq, a.occurred_at, a.actor_user_id, a.action,
               a.target_type, a.target_id, a.outcome, a.reason, pg_catalog.host(a.client_ip),
               a.request_id, a.occurrences, a.prev_hash, a.hash, a.hash_version
        FROM public.audit_events AS a
        WHERE a.organization_id IS NULL AND a.seq > p_after
        ORDER BY a.seq LIMIT LEAST(GREATEST(p_limit, 0), 1000);
    PERFORM pg_catalog.set_config('app.system_audit', '', true);
END
$$;

REVOKE ALL ON FUNCTION app_system_audit_append(uuid, bigint, timestamptz, uuid, text, text,
    text, text, text, inet, text, integer, bytea, bytea, smallint) FROM PUBLIC;
REVOKE ALL ON FUNCTION app_system_audit_events(bigint, integer) FROM PUBLIC;
"#;

/// Back to one event per refusal: the functions as the keyed chain made them (with the
/// hardened search path), and no count. Counted events stay but no longer verify.
const DOWN: &str = r#"
DROP FUNCTION app_system_audit_events(bigint, integer);
CREATE FUNCTION app_system_audit_events(p_after bigint, p_limit integer)
RETURNS TABLE (id uuid, organization_id uuid, seq bigint, occurred_at timestamptz,
               actor_user_id uuid, action text, target_type text, target_id text,
               outcome text, reason text, client_ip text, request_id text, prev_hash bytea,
               hash bytea, hash_version smallint)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pg_catalog.set_config('app.system_audit', 'on', true);
    RETURN QUERY
        SELECT a.id, a.organization_id, a.seq, a.occurred_at, a.actor_user_id, a.action,
               a.target_type, a.target_id, a.outcome, a.reason, pg_catalog.host(a.client_ip),
               a.request_id, a.prev_hash, a.hash, a.hash_version
        FROM public.audit_events AS a
        WHERE a.organization_id IS NULL AND a.seq > p_after
        ORDER BY a.seq LIMIT LEAST(GREATEST(p_limit, 0), 1000);
    PERFORM pg_catalog.set_config('app.system_audit', '', true);
END
$$;

DROP FUNCTION app_system_audit_append(uuid, bigint, timestamptz, uuid, text, text, text, text,
    text, inet, text, integer, bytea, bytea, smallint);
CREATE FUNCTION app_system_audit_append(
    p_id uuid, p_seq bigint, p_occurred_at timestamptz, p_actor uuid, p_action text,
    p_target_type text, p_target_id text, p_outcome text, p_reason text, p_client_ip inet,
    p_request_id text, p_prev_hash bytea, p_hash bytea, p_hash_version smallint)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    head_seq bigint;
    head_hash bytea;
BEGIN
    PERFORM pg_catalog.pg_advisory_xact_lock(0);
    PERFORM pg_catalog.set_config('app.system_audit', 'on', true);
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
    PERFORM pg_catalog.set_config('app.system_audit', '', true);
END
$$;

REVOKE ALL ON FUNCTION app_system_audit_append(uuid, bigint, timestamptz, uuid, text, text,
    text, text, text, inet, text, bytea, bytea, smallint) FROM PUBLIC;
REVOKE ALL ON FUNCTION app_system_audit_events(bigint, integer) FROM PUBLIC;

ALTER TABLE audit_events DROP COLUMN occurrences;
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run_script(manager, UP).await?;
        crate::grant_execute_to_app(manager, NEW_APPEND).await?;
        crate::grant_execute_to_app(manager, EVENTS).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run_script(manager, DOWN).await?;
        crate::grant_execute_to_app(manager, OLD_APPEND).await?;
        crate::grant_execute_to_app(manager, EVENTS).await
    }
}
