//! `rhesis-server migrate`: migrations as the owner role.

use migration::Action;
use secrecy::ExposeSecret;

use crate::StartupError;
use crate::config::{MigrateAction, MigrateArgs, Profile};

/// Runs the migration action and returns what to print.
pub async fn migrate(args: &MigrateArgs) -> Result<String, StartupError> {
    let url = args.url()?;
    let url = url.expose_secret();
    let (action, done) = match args.action {
        MigrateAction::Up => (Action::Up, "migrations applied"),
        MigrateAction::Down => (Action::Down(1), "last migration reverted"),
        MigrateAction::Fresh => {
            if args.profile == Profile::Production {
                return Err(StartupError::DevelopmentOnly("migrate fresh"));
            }
            (
                Action::Refresh,
                "every migration reverted and applied again",
            )
        }
        MigrateAction::Status => {
            let status = migration::status(url).await?;
            let mut text = String::new();
            for name in &status.applied {
                text.push_str(&format!("applied  {name}\n"));
            }
            for name in &status.pending {
                text.push_str(&format!("pending  {name}\n"));
            }
            return Ok(text);
        }
    };
    migration::run(url, action).await?;
    Ok(done.to_owned())
}
