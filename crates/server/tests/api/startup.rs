//! The server checks the database role it connects as, and production refuses an unfit one.

use migration::MigratorTrait;
use server::config::Profile;
use server::{Application, StartupError};
use test_support::TestDatabase;

use crate::serve_args;

#[tokio::test]
async fn production_refuses_the_owner_role_and_a_superuser() {
    let db = TestDatabase::new().await;
    let owner = Application::build(&serve_args(Profile::Production, db.owner_url())).await;
    match owner {
        Err(StartupError::UnsafeDatabaseRole { role, problems }) => {
            assert_eq!(role, db.owner_role());
            assert!(problems.contains("owns tables"), "{problems}");
        }
        other => panic!("the owner role must be refused, got {other:?}"),
    }

    let admin_url = {
        let mut url = url::Url::parse(&std::env::var("TEST_DATABASE_ADMIN_URL").unwrap()).unwrap();
        url.set_path(&format!("/{}", db.name));
        url.to_string()
    };
    match Application::build(&serve_args(Profile::Production, admin_url)).await {
        Err(StartupError::UnsafeDatabaseRole { problems, .. }) => {
            assert!(problems.contains("superuser"), "{problems}");
            assert!(problems.contains("BYPASSRLS"), "{problems}");
        }
        other => panic!("a superuser must be refused, got {other:?}"),
    }

    // The same roles only warn outside production; the application role passes everywhere.
    assert!(
        Application::build(&serve_args(Profile::Development, db.owner_url()))
            .await
            .is_ok()
    );
    assert!(
        Application::build(&serve_args(Profile::Production, db.app_url()))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn seeding_is_for_development_only_and_idempotent() {
    let db = TestDatabase::new().await;
    let production = serve_args(Profile::Production, db.app_url());
    assert!(matches!(
        server::seed_dev(&production).await,
        Err(StartupError::DevelopmentOnly("seed-dev"))
    ));
    let development = serve_args(Profile::Development, db.app_url());
    let first = server::seed_dev(&development).await.unwrap();
    assert!(first.contains("created"), "{first}");
    let second = server::seed_dev(&development).await.unwrap();
    assert!(second.contains("present"), "{second}");
}

fn migrate_args(
    action: server::config::MigrateAction,
    profile: Profile,
    owner_url: String,
) -> server::config::MigrateArgs {
    server::config::MigrateArgs {
        action,
        migration_database_url: Some(secrecy::SecretString::from(owner_url)),
        migration_database_url_file: None,
        database: serve_args(profile, String::new()).database,
        profile,
    }
}

#[tokio::test]
async fn migrations_revert_and_apply_again_and_report_their_status() {
    use server::config::MigrateAction;
    let db = TestDatabase::new().await;
    let status = server::migrate(&migrate_args(
        MigrateAction::Status,
        Profile::Test,
        db.owner_url(),
    ))
    .await
    .unwrap();
    assert_eq!(
        status.lines().filter(|l| l.starts_with("applied")).count(),
        migration::Migrator::migrations().len(),
        "{status}"
    );
    assert!(!status.contains("pending"), "{status}");

    // Every down migration works: revert everything and apply it again.
    let fresh = migrate_args(MigrateAction::Fresh, Profile::Test, db.owner_url());
    server::migrate(&fresh).await.unwrap();
    server::migrate(&migrate_args(
        MigrateAction::Down,
        Profile::Test,
        db.owner_url(),
    ))
    .await
    .unwrap();
    let status = server::migrate(&migrate_args(
        MigrateAction::Status,
        Profile::Test,
        db.owner_url(),
    ))
    .await
    .unwrap();
    assert_eq!(
        status.lines().filter(|l| l.starts_with("pending")).count(),
        1,
        "{status}"
    );
    server::migrate(&migrate_args(
        MigrateAction::Up,
        Profile::Test,
        db.owner_url(),
    ))
    .await
    .unwrap();
    // The schema after all that still serves, as the application role.
    assert!(
        Application::build(&serve_args(Profile::Production, db.app_url()))
            .await
            .is_ok()
    );

    // Never in production.
    let production = migrate_args(MigrateAction::Fresh, Profile::Production, db.owner_url());
    assert!(matches!(
        server::migrate(&production).await,
        Err(StartupError::DevelopmentOnly("migrate fresh"))
    ));
}

/// Browser login half-configured, or over plain HTTP in production, stops the start with a
/// message that names the variable; the client secret also comes from a file.
#[tokio::test]
async fn browser_login_settings_are_checked_at_startup() {
    use server::config::ConfigError;
    let db = TestDatabase::new().await;
    let with_login = |profile: Profile, issuer: &str| {
        let mut args = serve_args(profile, db.app_url());
        args.login.oidc_issuer_url = Some(issuer.to_owned());
        args.login.oidc_client_id = Some("client".to_owned());
        args.login.public_url = Some("https://api.example.com".to_owned());
        args
    };
    let message = |result: Result<Application, StartupError>| match result {
        Err(StartupError::Config(err)) => err.to_string(),
        other => panic!("expected a configuration error, got {other:?}"),
    };
    let args = with_login(Profile::Test, "https://idp.example.com");
    assert_eq!(
        message(Application::build(&args).await),
        "AUTH0_CLIENT_SECRET is required (or AUTH0_CLIENT_SECRET_FILE)"
    );
    let mut args = with_login(Profile::Test, "https://idp.example.com");
    args.login.public_url = None;
    args.login.oidc_client_secret = Some("a-client-secret".to_owned().into());
    assert_eq!(
        message(Application::build(&args).await),
        "PUBLIC_URL is required for browser login"
    );
    let dir = std::env::temp_dir().join(format!("rh-login-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("secret");
    std::fs::write(&file, "a-client-secret-from-a-file\n").unwrap();
    let mut args = with_login(Profile::Production, "http://idp.example.com");
    args.login.oidc_client_secret_file = Some(file.clone());
    match Application::build(&args).await {
        Err(StartupError::Config(ConfigError::Login(text))) => {
            assert!(text.contains("https"), "{text}");
        }
        other => panic!("plain-HTTP login must be refused in production, got {other:?}"),
    }
    // The file's secret is read (a provider is not contacted at startup).
    let mut args = with_login(Profile::Test, "http://127.0.0.1:9");
    args.login.oidc_client_secret_file = Some(file);
    assert!(Application::build(&args).await.is_ok());
    std::fs::remove_dir_all(dir).unwrap();
}
