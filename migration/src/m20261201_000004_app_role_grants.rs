//! The application role's privileges: DML on what it needs and nothing else. It owns nothing,
//! may not UPDATE or DELETE audit events, and deletes rows only where deletion is the design
//! (sessions, client blocks); tenant rows are soft-deleted.
//!
//! The role itself is created by a DBA (see docs/operations.md); its name comes from
//! `APP_DB_ROLE` (default `rh_app`).

use sea_orm_migration::prelude::*;

use crate::app_role;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let role = app_role()?;
        let sql = format!(
            r#"
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO {role};
GRANT SELECT, INSERT, UPDATE ON organizations, users, projects, endpoints, models, api_tokens
    TO {role};
GRANT SELECT, INSERT, UPDATE, DELETE ON sessions, client_blocks TO {role};
GRANT SELECT, INSERT ON audit_events TO {role};
GRANT EXECUTE ON FUNCTION app_user_by_subject(text), app_pending_invitation(text) TO {role};
"#
        );
        crate::run_script(manager, &sql).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let role = app_role()?;
        let sql = format!(
            r#"
REVOKE ALL ON organizations, users, projects, endpoints, models, api_tokens, sessions,
    client_blocks, audit_events FROM {role};
REVOKE ALL ON FUNCTION app_user_by_subject(text), app_pending_invitation(text) FROM {role};
REVOKE USAGE ON SCHEMA public FROM {role};
"#
        );
        crate::run_script(manager, &sql).await
    }
}
