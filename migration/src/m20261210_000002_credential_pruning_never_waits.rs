//! The heartbeat never waits on another transaction's locks. `app_credential_changes_since`
//! pruned the record of changes as whoever called it, inside the caller's transaction: a
//! caller that left that transaction open (the app role may call the function) held the
//! pruned rows and the marker, and every replica's next pruning heartbeat waited on them,
//! timed out, reconnected and left a server process waiting behind, until the database ran
//! out of connections. Pruning now takes a transaction-level advisory lock first, without
//! waiting, and is skipped when another transaction holds it; only the pruner writes the
//! rows and the marker, so nothing else waits either. (Whoever holds the lock for long
//! stops the pruning, and the record grows; the heartbeat reads it by index from its
//! previous snapshot's xmin on, so that costs space, not time.)

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

/// The advisory lock key of the pruner (an arbitrary constant of ours).
const PRUNER_LOCK: &str = "7236410915082251264";

const BEFORE: &str = r#"
CREATE OR REPLACE FUNCTION app_credential_changes_since(p_seen pg_snapshot)
RETURNS TABLE (seen text, changed boolean)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_pruned xid8;
BEGIN
    IF EXISTS (SELECT 1 FROM public.credential_changes AS c
               WHERE c.at < pg_catalog.now() - interval '1 hour') THEN
        WITH gone AS (
            DELETE FROM public.credential_changes AS c
            WHERE c.at < pg_catalog.now() - interval '1 hour'
            RETURNING c.xid
        )
        SELECT max(gone.xid) INTO v_pruned FROM gone;
        IF v_pruned IS NOT NULL THEN
            UPDATE public.credential_changes_pruned AS p SET below = v_pruned
            WHERE p.below < v_pruned;
        END IF;
    END IF;
    RETURN QUERY
    SELECT pg_catalog.pg_current_snapshot()::text,
           p_seen IS NULL
           OR (SELECT p.below FROM public.credential_changes_pruned AS p)
              >= pg_catalog.pg_snapshot_xmin(p_seen)
           OR EXISTS (SELECT 1 FROM public.credential_changes AS c
                      WHERE c.xid >= pg_catalog.pg_snapshot_xmin(p_seen)
                        AND NOT pg_catalog.pg_visible_in_snapshot(c.xid, p_seen));
END
$$;
"#;

const AFTER: &str = r#"
CREATE OR REPLACE FUNCTION app_credential_changes_since(p_seen pg_snapshot)
RETURNS TABLE (seen text, changed boolean)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_pruned xid8;
BEGIN
    -- One pruner at a time, and none waits: a caller that cannot take the lock at once
    -- leaves the pruning to whoever holds it.
    IF EXISTS (SELECT 1 FROM public.credential_changes AS c
               WHERE c.at < pg_catalog.now() - interval '1 hour')
       AND pg_catalog.pg_try_advisory_xact_lock(PRUNER_LOCK) THEN
        WITH gone AS (
            DELETE FROM public.credential_changes AS c
            WHERE c.at < pg_catalog.now() - interval '1 hour'
            RETURNING c.xid
        )
        SELECT max(gone.xid) INTO v_pruned FROM gone;
        IF v_pruned IS NOT NULL THEN
            UPDATE public.credential_changes_pruned AS p SET below = v_pruned
            WHERE p.below < v_pruned;
        END IF;
    END IF;
    RETURN QUERY
    SELECT pg_catalog.pg_current_snapshot()::text,
           p_seen IS NULL
           OR (SELECT p.below FROM public.credential_changes_pruned AS p)
              >= pg_catalog.pg_snapshot_xmin(p_seen)
           OR EXISTS (SELECT 1 FROM public.credential_changes AS c
                      WHERE c.xid >= pg_catalog.pg_snapshot_xmin(p_seen)
                        AND NOT pg_catalog.pg_visible_in_snapshot(c.xid, p_seen));
END
$$;
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run_script(manager, &AFTER.replace("PRUNER_LOCK", PRUNER_LOCK)).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run_script(manager, BEFORE).await
    }
}
