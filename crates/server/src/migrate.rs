//! `rhesis-server migrate`: migrations as the owner role.

use std::path::Path;

use migration::Action;
use secrecy::{ExposeSecret, SecretString};

use crate::StartupError;
use crate::config::{MigrateAction, MigrateArgs, Profile};

/// Runs the migration action and returns what to print.
pub async fn migrate(args: &MigrateArgs) -> Result<String, StartupError> {
    let url = with_root_cert(args.url()?, args.database.ssl_root_cert.as_deref())?;
    let url = url.expose_secret();
    crate::check_database_url(args.profile, args.url_variable(), url)?;
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

/// `url` with `sslrootcert` naming `root_cert` (`DATABASE_SSL_ROOT_CERT`) in place of any CA
/// the URL names itself, as `serve` takes it; `url` itself without the variable or when it
/// is not a URL (the check that follows refuses it).
fn with_root_cert(
    url: SecretString,
    root_cert: Option<&Path>,
) -> Result<SecretString, StartupError> {
    let Some(root_cert) = root_cert else {
        return Ok(url);
    };
    let root_cert = root_cert.to_str().ok_or(crate::config::ConfigError::Tls {
        var: "DATABASE_SSL_ROOT_CERT",
        problem: "is not a UTF-8 path",
    })?;
    let Ok(mut parsed) = url::Url::parse(url.expose_secret()) else {
        return Ok(url);
    };
    let kept: Vec<(String, String)> = parsed
        .query_pairs()
        .filter(|(key, _)| !crate::config::ROOT_CERT_PARAMETERS.contains(&key.as_ref()))
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
        .collect();
    parsed
        .query_pairs_mut()
        .clear()
        .extend_pairs(kept)
        .append_pair("sslrootcert", root_cert);
    Ok(SecretString::from(String::from(parsed)))
}
