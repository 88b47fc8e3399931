//! `rhesis-server migrate`: migrations as the owner role.

use migration::{Migrator, MigratorTrait};
use secrecy::ExposeSecret;

use crate::StartupError;
use crate::config::{MigrateAction, MigrateArgs, Profile};

/// Runs the migration action and returns what to print.
pub async fn migrate(args: &MigrateArgs) -> Result<String, StartupError> {
    let url = args.url()?;
    let options = adapters_postgres::PoolOptions {
        max_connections: 1,
        ..Default::default()
    };
    let db = adapters_postgres::connect(url.expose_secret(), options)
        .await
        .map_err(StartupError::Database)?;
    let report = match args.action {
        MigrateAction::Up => {
            Migrator::up(&db, None)
                .await
                .map_err(StartupError::Migration)?;
            "migrations applied".to_owned()
        }
        MigrateAction::Down => {
            Migrator::down(&db, Some(1))
                .await
                .map_err(StartupError::Migration)?;
            "last migration reverted".to_owned()
        }
        MigrateAction::Fresh => {
            if args.profile == Profile::Production {
                return Err(StartupError::DevelopmentOnly("migrate fresh"));
            }
            Migrator::refresh(&db)
                .await
                .map_err(StartupError::Migration)?;
            "every migration reverted and applied again".to_owned()
        }
        MigrateAction::Status => {
            let applied = Migrator::get_applied_migrations(&db)
                .await
                .map_err(StartupError::Migration)?;
            let pending = Migrator::get_pending_migrations(&db)
                .await
                .map_err(StartupError::Migration)?;
            let mut text = String::new();
            for m in &applied {
                text.push_str(&format!("applied  {}\n", m.name()));
            }
            for m in &pending {
                text.push_str(&format!("pending  {}\n", m.name()));
            }
            text
        }
    };
    db.close().await.map_err(StartupError::Database)?;
    Ok(report)
}
