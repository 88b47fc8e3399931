//! `rhesis-server migrate`: migrations as the owner role.

use std::path::Path;

use migration::Action;
use secrecy::{ExposeSecret, SecretString};

use crate::StartupError;
use crate::config::{MigrateAction, MigrateArgs, Profile};

/// Runs the migration action and returns what to print.
pub async fn migrate(args: &MigrateArgs) -> Result<String, StartupError> {
    let url = with_root_cert(args.url()?, args.database.ssl_root_cert.as_deref());
    let url = url.expose_secret();
    crate::refuse_unverified_database(args.profile, args.url_variable(), url)?;
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

/// `url` with `sslrootcert` naming `root_cert` (`DATABASE_SSL_ROOT_CERT`), unless the URL
/// names one itself or is not a URL.
fn with_root_cert(url: SecretString, root_cert: Option<&Path>) -> SecretString {
    let Some(root_cert) = root_cert.and_then(Path::to_str) else {
        return url;
    };
    let Ok(mut parsed) = url::Url::parse(url.expose_secret()) else {
        return url;
    };
    if parsed.query_pairs().any(|(name, _)| name == "sslrootcert") {
        return url;
    }
    parsed
        .query_pairs_mut()
        .append_pair("sslrootcert", root_cert);
    SecretString::from(String::from(parsed))
}
