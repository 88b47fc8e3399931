//! The database schema as sea-orm migrations, run as the owner role.
//!
//! Tables, row-level security, the identity-resolution functions and the application role's
//! grants. Migrations are named by date and purpose and are never edited once released.

pub use sea_orm_migration::prelude::*;

mod m20261201_000001_create_tables;
mod m20261201_000002_row_level_security;
mod m20261201_000003_identity_functions;
mod m20261201_000004_app_role_grants;
mod m20261202_000001_organization_ids;
mod m20261203_000001_api_token_lookup;
mod m20261204_000001_access_token_revocation;
mod m20261204_000002_system_audit_chain;
mod m20261205_000001_browser_login;
mod m20261206_000001_keyed_audit_chain;
mod m20261206_000002_session_token_revocation;
mod m20261206_000003_departed_users_read_only;
mod m20261206_000004_definer_functions_hardened;
mod m20261206_000005_keyed_audit_only;
mod m20261206_000006_identity_columns_owner_only;
mod m20261207_000001_invitations;
mod m20261207_000002_audit_occurrences;
mod m20261207_000003_session_time_from_database;
mod m20261208_000001_session_lookup_and_touch;
mod m20261208_000002_session_lookup_with_membership;
mod m20261209_000001_credential_change_notices;
mod m20261210_000001_credential_change_log;
mod m20261210_000002_credential_pruning_never_waits;
mod run;

pub use m20261201_000002_row_level_security::TENANT_TABLES;
pub use run::{Action, Cause, MigrationError, Status, run, status};

/// The environment variable naming the application's database role.
pub const APP_DB_ROLE_VAR: &str = "APP_DB_ROLE";
/// The application role's name when `APP_DB_ROLE` is not set.
pub const DEFAULT_APP_DB_ROLE: &str = "rh_app";

/// The application role's name, checked to be a plain lower-case SQL identifier so that it
/// can stand in a GRANT statement without quoting surprises.
pub fn app_role() -> Result<String, DbErr> {
    let role = std::env::var(APP_DB_ROLE_VAR).unwrap_or_else(|_| DEFAULT_APP_DB_ROLE.to_owned());
    if is_plain_identifier(&role) {
        Ok(role)
    } else {
        Err(DbErr::Custom(format!(
            "{APP_DB_ROLE_VAR} must be a lower-case SQL identifier (a-z, 0-9, _), at most 63 bytes"
        )))
    }
}

/// `[a-z_][a-z0-9_]{0,62}`: an identifier that needs no quoting.
pub fn is_plain_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z' | '_'))
        && name.len() <= 63
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
}

/// Runs a migration's SQL script (several statements, no parameters: scripts are constants).
pub(crate) async fn run_script(manager: &SchemaManager<'_>, sql: &str) -> Result<(), DbErr> {
    manager
        .get_connection()
        .execute_unprepared(sql)
        .await
        .map(drop)
}

/// Grants EXECUTE on `function` (its signature, a constant of ours) to the application role.
pub(crate) async fn grant_execute_to_app(
    manager: &SchemaManager<'_>,
    function: &str,
) -> Result<(), DbErr> {
    let role = app_role()?;
    run_script(
        manager,
        &format!("GRANT EXECUTE ON FUNCTION {function} TO {role};"),
    )
    .await
}

/// The ordered list of migrations.
#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261201_000001_create_tables::Migration),
            Box::new(m20261201_000002_row_level_security::Migration),
            Box::new(m20261201_000003_identity_functions::Migration),
            Box::new(m20261201_000004_app_role_grants::Migration),
            Box::new(m20261202_000001_organization_ids::Migration),
            Box::new(m20261203_000001_api_token_lookup::Migration),
            Box::new(m20261204_000001_access_token_revocation::Migration),
            Box::new(m20261204_000002_system_audit_chain::Migration),
            Box::new(m20261205_000001_browser_login::Migration),
            Box::new(m20261206_000001_keyed_audit_chain::Migration),
            Box::new(m20261206_000002_session_token_revocation::Migration),
            Box::new(m20261206_000003_departed_users_read_only::Migration),
            Box::new(m20261206_000004_definer_functions_hardened::Migration),
            Box::new(m20261206_000005_keyed_audit_only::Migration),
            Box::new(m20261206_000006_identity_columns_owner_only::Migration),
            Box::new(m20261207_000001_invitations::Migration),
            Box::new(m20261207_000002_audit_occurrences::Migration),
            Box::new(m20261207_000003_session_time_from_database::Migration),
            Box::new(m20261208_000001_session_lookup_and_touch::Migration),
            Box::new(m20261208_000002_session_lookup_with_membership::Migration),
            Box::new(m20261209_000001_credential_change_notices::Migration),
            Box::new(m20261210_000001_credential_change_log::Migration),
            Box::new(m20261210_000002_credential_pruning_never_waits::Migration),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_are_plain_identifiers() {
        assert!(is_plain_identifier("rh_app"));
        assert!(is_plain_identifier("_x9"));
        for bad in [
            "",
            "9app",
            "App",
            "rh-app",
            "rh app",
            "x\"; DROP TABLE users; --",
            &"a".repeat(64),
        ] {
            assert!(!is_plain_identifier(bad), "{bad:?}");
        }
    }
}
