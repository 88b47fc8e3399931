//! Every change that can end or narrow a credential is announced on the channel
//! `credential_changes` when its transaction commits: a user disabled, removed, moved to
//! another organization or given another role; an access token or browser session revoked; an
//! API token changed or deleted; a session changed or ended. Each replica's credential cache
//! listens and forgets what it holds (see `adapters_postgres::credential_cache`).
//!
//! The triggers are per row, so a statement that changes nothing announces nothing (the
//! session lookup deletes an ended session by a statement that usually matches no row; the
//! purges run every few seconds), and an update announces only when a column that carries
//! the credential takes another value: the columns a use writes (`last_used_at`,
//! `last_seen_at`) announce nothing, a use ends or narrows nothing. PostgreSQL folds the
//! identical notices of one transaction into one, so a bulk change announces once. They run
//! as whoever made the change (`pg_notify` needs no privilege) and fire for every role, the
//! owner's direct changes included; a truncation announces per statement.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

const UP: &str = r#"
CREATE FUNCTION app_announce_credential_change() RETURNS trigger
LANGUAGE plpgsql SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pg_catalog.pg_notify('credential_changes', TG_TABLE_NAME);
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION app_announce_credential_change() FROM PUBLIC;

CREATE TRIGGER users_credential_change
    AFTER UPDATE ON users FOR EACH ROW
    WHEN ((OLD.id, OLD.organization_id, OLD.role, OLD.is_active)
          IS DISTINCT FROM (NEW.id, NEW.organization_id, NEW.role, NEW.is_active))
    EXECUTE FUNCTION app_announce_credential_change();
CREATE TRIGGER users_credential_end
    AFTER DELETE ON users FOR EACH ROW EXECUTE FUNCTION app_announce_credential_change();
CREATE TRIGGER users_credential_truncate
    AFTER TRUNCATE ON users FOR EACH STATEMENT EXECUTE FUNCTION app_announce_credential_change();

CREATE TRIGGER revoked_access_tokens_credential_change
    AFTER INSERT ON revoked_access_tokens FOR EACH ROW
    EXECUTE FUNCTION app_announce_credential_change();

CREATE TRIGGER api_tokens_credential_change
    AFTER UPDATE ON api_tokens FOR EACH ROW
    WHEN ((OLD.id, OLD.organization_id, OLD.user_id, OLD.token, OLD.token_digest,
           OLD.expires_at, OLD.deleted_at)
          IS DISTINCT FROM (NEW.id, NEW.organization_id, NEW.user_id, NEW.token,
                            NEW.token_digest, NEW.expires_at, NEW.deleted_at))
    EXECUTE FUNCTION app_announce_credential_change();
CREATE TRIGGER api_tokens_credential_end
    AFTER DELETE ON api_tokens FOR EACH ROW EXECUTE FUNCTION app_announce_credential_change();
CREATE TRIGGER api_tokens_credential_truncate
    AFTER TRUNCATE ON api_tokens FOR EACH STATEMENT
    EXECUTE FUNCTION app_announce_credential_change();

CREATE TRIGGER sessions_credential_change
    AFTER UPDATE ON sessions FOR EACH ROW
    WHEN ((OLD.id_hash, OLD.user_id, OLD.data, OLD.auth_time, OLD.created_at, OLD.expires_at)
          IS DISTINCT FROM (NEW.id_hash, NEW.user_id, NEW.data, NEW.auth_time,
                            NEW.created_at, NEW.expires_at))
    EXECUTE FUNCTION app_announce_credential_change();
CREATE TRIGGER sessions_credential_end
    AFTER DELETE ON sessions FOR EACH ROW EXECUTE FUNCTION app_announce_credential_change();
CREATE TRIGGER sessions_credential_truncate
    AFTER TRUNCATE ON sessions FOR EACH STATEMENT
    EXECUTE FUNCTION app_announce_credential_change();
"#;

const DOWN: &str = r#"
DROP TRIGGER sessions_credential_truncate ON sessions;
DROP TRIGGER sessions_credential_end ON sessions;
DROP TRIGGER sessions_credential_change ON sessions;
DROP TRIGGER api_tokens_credential_truncate ON api_tokens;
DROP TRIGGER api_tokens_credential_end ON api_tokens;
DROP TRIGGER api_tokens_credential_change ON api_tokens;
DROP TRIGGER revoked_access_tokens_credential_change ON revoked_access_tokens;
DROP TRIGGER users_credential_truncate ON users;
DROP TRIGGER users_credential_end ON users;
DROP TRIGGER users_credential_change ON users;
DROP FUNCTION app_announce_credential_change();
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run_script(manager, UP).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run_script(manager, DOWN).await
    }
}
