//! The system chain of the audit log: events that belong to no organization (a failed
//! authentication with an unknown credential, a rate-limit block of an address), stored in
//! `audit_events` with a NULL organization and chained among themselves like an
//! organization's events.
//!
//! The application role cannot see or write these rows under row-level security (its policy
//! matches its own organization only). It appends through `app_system_audit_head` (which
//! takes the chain's lock and returns its head) and `app_system_audit_append` in one
//! transaction, and reads them back for verification through `app_system_audit_events`.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

const UP: &str = r#"
-- Why an outcome came about (`expired`, `revoked`), in a few words; covered by the hash.
ALTER TABLE audit_events ADD COLUMN reason text CHECK (length(reason) <= 200);
ALTER TABLE audit_events ALTER COLUMN organization_id DROP NOT NULL;
CREATE UNIQUE INDEX audit_events_system_seq ON audit_events (seq) WHERE organization_id IS NULL;

CREATE POLICY system_chain_read ON audit_events FOR SELECT TO CURRENT_USER
USING (organization_id IS NULL AND current_setting('app.system_audit', true) = 'on');
CREATE POLICY system_chain_append ON audit_events FOR INSERT TO CURRENT_USER
WITH CHECK (organization_id IS NULL AND current_setting('app.system_audit', true) = 'on');

-- The advisory-lock key of the system chain; organizations lock on their id's first 8 bytes.
CREATE FUNCTION app_system_audit_head()
RETURNS TABLE (seq bigint, hash bytea)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(0);
    PERFORM set_config('app.system_audit', 'on', true);
    RETURN QUERY
        SELECT a.seq, a.hash FROM public.audit_events AS a
        WHERE a.organization_id IS NULL
        ORDER BY a.seq DESC LIMIT 1;
    PERFORM set_config('app.system_audit', '', true);
END
$$;

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

REVOKE ALL ON FUNCTION app_system_audit_head() FROM PUBLIC;
REVOKE ALL ON FUNCTION app_system_audit_append(uuid, bigint, timestamptz, uuid, text, text,
    text, text, text, inet, text, bytea, bytea) FROM PUBLIC;
REVOKE ALL ON FUNCTION app_system_audit_events(bigint, integer) FROM PUBLIC;
"#;

const DOWN: &str = r#"
DROP FUNCTION app_system_audit_events(bigint, integer);
DROP FUNCTION app_system_audit_append(uuid, bigint, timestamptz, uuid, text, text, text, text,
    text, inet, text, bytea, bytea);
DROP FUNCTION app_system_audit_head();
DROP POLICY system_chain_append ON audit_events;
DROP POLICY system_chain_read ON audit_events;
DELETE FROM audit_events WHERE organization_id IS NULL;
DROP INDEX audit_events_system_seq;
ALTER TABLE audit_events ALTER COLUMN organization_id SET NOT NULL;
ALTER TABLE audit_events DROP COLUMN reason;
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run_script(manager, UP).await?;
        for function in [
            "app_system_audit_head()",
            "app_system_audit_append(uuid, bigint, timestamptz, uuid, text, text, text, text, \
             text, inet, text, bytea, bytea)",
            "app_system_audit_events(bigint, integer)",
        ] {
            crate::grant_execute_to_app(manager, function).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run_script(manager, DOWN).await
    }
}
