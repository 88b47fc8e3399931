//! Tests of the whole server: real HTTP on a free port, real PostgreSQL, the application role.
//! One test binary for the crate.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests stop at the first surprise

mod binary;
mod health;
mod reencrypt;
mod startup;

use secrecy::SecretString;
use server::Application;
use server::config::{DatabaseArgs, EncryptionArgs, LogFormat, Profile, ServeArgs};
use test_support::TestDatabase;

pub(crate) struct TestApp {
    pub(crate) address: String,
    pub(crate) db: TestDatabase,
    pub(crate) client: reqwest::Client,
}

pub(crate) fn serve_args(profile: Profile, database_url: String) -> ServeArgs {
    ServeArgs {
        profile,
        bind: "127.0.0.1:0".parse().unwrap(),
        workers: Some(1),
        database: DatabaseArgs {
            url: Some(SecretString::from(database_url)),
            url_file: None,
            max_connections: 4,
        },
        encryption: EncryptionArgs {
            key: Some(SecretString::from(test_support::random_fernet_key())),
            key_file: None,
            plaintext_until: None,
        },
        log_format: LogFormat::Json,
    }
}

/// A server on port 0 over a fresh database, connecting as the application role.
pub(crate) async fn spawn_app() -> TestApp {
    if std::env::var_os("TEST_LOG").is_some() {
        server::telemetry::init(LogFormat::Pretty);
    }
    let db = TestDatabase::new().await;
    let app = Application::build(&serve_args(Profile::Test, db.app_url()))
        .await
        .unwrap();
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    TestApp {
        address,
        db,
        client,
    }
}
