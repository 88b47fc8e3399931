//! Credential changes are recorded in the database instead of announced through its
//! notification queue: a change that ends or narrows a credential adds its transaction's id to
//! `credential_changes` (once per transaction), and each replica's heartbeat asks, with the
//! snapshot its previous heartbeat saw, whether a transaction it could not see then has
//! committed since (`app_credential_changes_since`).
//!
//! The notification queue is one per cluster and any role that can connect can fill it (listen
//! and never read): a full queue fails every transaction that notifies at its commit, so a
//! revocation, a logout or a disabling would have failed with it. A row in a table of its own
//! commits with the change or not at all, and no other role can hold it up: the app role has
//! no privilege on the table, writes it only through the trigger function (which runs as the
//! owner) and reads it only through the heartbeat function. Rows are inserted, never updated,
//! so concurrent changes take no lock in common.
//!
//! The triggers fire `ALWAYS`: also under `session_replication_role = replica`. What the
//! first migration of this kind left out is recorded too: an update of a revocation, and a
//! session's last use moved back (which ends it for idleness sooner).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

/// The triggers, by table, that record a change.
const TRIGGERS: [(&str, &str); 11] = [
    ("users", "users_credential_change"),
    ("users", "users_credential_end"),
    ("users", "users_credential_truncate"),
    (
        "revoked_access_tokens",
        "revoked_access_tokens_credential_change",
    ),
    (
        "revoked_access_tokens",
        "revoked_access_tokens_credential_update",
    ),
    ("api_tokens", "api_tokens_credential_change"),
    ("api_tokens", "api_tokens_credential_end"),
    ("api_tokens", "api_tokens_credential_truncate"),
    ("sessions", "sessions_credential_change"),
    ("sessions", "sessions_credential_end"),
    ("sessions", "sessions_credential_truncate"),
];

const UP: &str = r#"
CREATE TABLE credential_changes (
    xid xid8 PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX credential_changes_at ON credential_changes (at);
-- The highest transaction id whose record was pruned: a heartbeat whose previous snapshot
-- could not see it has lost what it needed to compare, and starts over.
CREATE TABLE credential_changes_pruned (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    below xid8 NOT NULL
);
INSERT INTO credential_changes_pruned (below) VALUES ('0'::xid8);
REVOKE ALL ON credential_changes, credential_changes_pruned FROM PUBLIC;

CREATE OR REPLACE FUNCTION app_announce_credential_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO public.credential_changes (xid) VALUES (pg_catalog.pg_current_xact_id())
    ON CONFLICT (xid) DO NOTHING;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION app_announce_credential_change() FROM PUBLIC;

-- Whether a transaction that recorded a change has committed since `p_seen` was taken, and
-- the snapshot of now to ask with next time; records older than an hour are pruned. One
-- statement answers, so the rows it reads and the snapshot it returns are the same
-- snapshot's. A NULL `p_seen` (the first heartbeat) counts as a change.
CREATE FUNCTION app_credential_changes_since(p_seen pg_snapshot)
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
REVOKE ALL ON FUNCTION app_credential_changes_since(pg_snapshot) FROM PUBLIC;

CREATE TRIGGER revoked_access_tokens_credential_update
    AFTER UPDATE ON revoked_access_tokens FOR EACH ROW
    WHEN (OLD.* IS DISTINCT FROM NEW.*)
    EXECUTE FUNCTION app_announce_credential_change();

DROP TRIGGER sessions_credential_change ON sessions;
CREATE TRIGGER sessions_credential_change
    AFTER UPDATE ON sessions FOR EACH ROW
    WHEN ((OLD.id_hash, OLD.user_id, OLD.data, OLD.auth_time, OLD.created_at, OLD.expires_at)
          IS DISTINCT FROM (NEW.id_hash, NEW.user_id, NEW.data, NEW.auth_time,
                            NEW.created_at, NEW.expires_at)
          OR NEW.last_seen_at < OLD.last_seen_at)
    EXECUTE FUNCTION app_announce_credential_change();
"#;

const DOWN: &str = r#"
DROP TRIGGER sessions_credential_change ON sessions;
CREATE TRIGGER sessions_credential_change
    AFTER UPDATE ON sessions FOR EACH ROW
    WHEN ((OLD.id_hash, OLD.user_id, OLD.data, OLD.auth_time, OLD.created_at, OLD.expires_at)
          IS DISTINCT FROM (NEW.id_hash, NEW.user_id, NEW.data, NEW.auth_time,
                            NEW.created_at, NEW.expires_at))
    EXECUTE FUNCTION app_announce_credential_change();
DROP TRIGGER revoked_access_tokens_credential_update ON revoked_access_tokens;
DROP FUNCTION app_credential_changes_since(pg_snapshot);
CREATE OR REPLACE FUNCTION app_announce_credential_change() RETURNS trigger
LANGUAGE plpgsql SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pg_catalog.pg_notify('credential_changes', TG_TABLE_NAME);
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION app_announce_credential_change() FROM PUBLIC;
DROP TABLE credential_changes_pruned;
DROP TABLE credential_changes;
"#;

/// `ALTER TABLE … ENABLE ALWAYS|REPLICA? TRIGGER …` for every recording trigger.
fn enable(mode: &str) -> String {
    TRIGGERS
        .iter()
        .map(|(table, trigger)| format!("ALTER TABLE {table} ENABLE {mode} TRIGGER {trigger};\n"))
        .collect()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run_script(manager, UP).await?;
        crate::run_script(manager, &enable("ALWAYS")).await?;
        crate::grant_execute_to_app(manager, "app_credential_changes_since(pg_snapshot)").await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run_script(manager, &enable("")).await?;
        crate::run_script(manager, DOWN).await
    }
}
