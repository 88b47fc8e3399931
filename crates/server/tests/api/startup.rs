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
    // Every run records a credential change, pending migrations or not: a migration may
    // change how credentials are looked up, and every replica's cache starts over.
    use sea_orm::ConnectionTrait;
    let admin = db.admin_pool().await;
    let recorded = async || -> i64 {
        admin
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                "SELECT count(*) AS n FROM credential_changes",
            ))
            .await
            .unwrap()
            .unwrap()
            .try_get("", "n")
            .unwrap()
    };
    let before = recorded().await;
    server::migrate(&migrate_args(
        MigrateAction::Up,
        Profile::Test,
        db.owner_url(),
    ))
    .await
    .unwrap();
    assert_eq!(
        recorded().await,
        before + 1,
        "a migration run recorded no change"
    );
    // The schema after all that still serves, as the application role.
    assert!(
        Application::build(&serve_args(Profile::Production, db.app_url()))
            .await
            .is_ok()
    );

    // Never in production.
    let production = migrate_args(
        MigrateAction::Fresh,
        Profile::Production,
        crate::verified(&db.owner_url()),
    );
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

/// The password of a connection string, which no error may repeat.
fn password_of(url: &str) -> String {
    url::Url::parse(url).unwrap().password().unwrap().to_owned()
}

/// The whole chain of an error's messages.
fn report(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// F3: production refuses a database connection that does not check the server's
/// certificate and name, before connecting, naming the variable and the mode; a Unix socket
/// is let through.
#[tokio::test]
async fn production_refuses_a_database_connection_that_is_not_verify_full() {
    let db = TestDatabase::new().await;
    let password = password_of(&db.app_url());
    for (query, mode) in [
        ("", "prefer"),
        ("?sslmode=disable", "disable"),
        ("?sslmode=prefer", "prefer"),
        ("?sslmode=require", "require"),
        ("?sslmode=verify-ca", "verify-ca"),
    ] {
        let mut args = serve_args(Profile::Test, format!("{}{query}", db.app_url()));
        args.profile = Profile::Production;
        match Application::build(&args).await {
            Err(err @ StartupError::UnverifiedDatabase { .. }) => {
                let text = report(&err);
                assert!(text.contains("DATABASE_URL"), "{text}");
                assert!(text.contains(&format!("sslmode={mode}")), "{text}");
                assert!(!text.contains(&password), "{text}");
            }
            other => panic!("{query:?} must be refused in production, got {other:?}"),
        }
        // Outside production the same URL is taken (verify-ca has no CA to check against).
        if mode != "verify-ca" {
            args.profile = Profile::Test;
            assert!(Application::build(&args).await.is_ok(), "{query:?}");
        }
    }

    // A Unix socket passes the check (there is none here: the connection itself fails).
    let mut socket = url::Url::parse(&db.app_url()).unwrap();
    socket
        .query_pairs_mut()
        .append_pair("host", "/nonexistent/socket-dir");
    let mut args = serve_args(Profile::Test, socket.to_string());
    args.profile = Profile::Production;
    args.database.acquire_timeout_ms = 500;
    match Application::build(&args).await {
        Err(StartupError::Database(_)) => {}
        other => panic!("a Unix socket is not refused by the check, got {other:?}"),
    }

    // `migrate` is held to the same rule in production.
    let migrate = |url: String, profile: Profile| server::config::MigrateArgs {
        action: server::config::MigrateAction::Status,
        migration_database_url: Some(secrecy::SecretString::from(url)),
        migration_database_url_file: None,
        database: serve_args(Profile::Test, db.app_url()).database,
        profile,
    };
    match server::migrate(&migrate(db.owner_url(), Profile::Production)).await {
        Err(StartupError::UnverifiedDatabase { var, mode }) => {
            assert_eq!((var, mode), ("MIGRATION_DATABASE_URL", "prefer"));
        }
        other => panic!("migrate must refuse it in production, got {other:?}"),
    }
    let status = server::migrate(&migrate(
        crate::verified(&db.owner_url()),
        Profile::Production,
    ))
    .await
    .unwrap();
    assert!(status.contains("applied"), "{status}");
}

/// F3: with `sslmode=verify-full` the server connects to the private cluster over TLS (every
/// connection of its pool encrypted), with the CA from the URL or from
/// `DATABASE_SSL_ROOT_CERT`; a certificate for another name, or from a CA it does not
/// trust, is refused with an error naming the cause, never the password.
#[tokio::test]
async fn verify_full_connects_over_tls_and_refuses_a_wrong_name_or_an_untrusted_ca() {
    use sea_orm::{ConnectionTrait, Statement};
    let db = TestDatabase::new().await;
    let password = password_of(&db.app_url());

    // The CA in the URL, and the CA in DATABASE_SSL_ROOT_CERT.
    let in_url = serve_args(Profile::Production, db.app_url());
    let mut in_variable = serve_args(Profile::Test, db.app_url());
    {
        let mut url = url::Url::parse(&db.app_url()).unwrap();
        url.set_host(Some("localhost")).unwrap();
        url.query_pairs_mut().append_pair("sslmode", "verify-full");
        in_variable.database.url = Some(secrecy::SecretString::from(url.to_string()));
        in_variable.database.ssl_root_cert = Some(crate::database_ca().into());
        in_variable.profile = Profile::Production;
    }
    let admin = db.admin_pool().await;
    for args in [in_url, in_variable] {
        let (address, ..) =
            crate::start_server(&args, std::sync::Arc::new(ports::SystemClock)).await;
        let ready = reqwest::get(format!("{address}/health/ready"))
            .await
            .unwrap();
        assert_eq!(ready.status(), 200);
        let row = admin
            .query_one_raw(Statement::from_string(
                sea_orm::DatabaseBackend::Postgres,
                format!(
                    "SELECT count(*) FILTER (WHERE s.ssl) AS encrypted, count(*) AS total \
                     FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
                     WHERE a.datname = '{}' AND a.usename = '{}'",
                    db.name,
                    db.app_role()
                ),
            ))
            .await
            .unwrap()
            .unwrap();
        let encrypted: i64 = row.try_get("", "encrypted").unwrap();
        let total: i64 = row.try_get("", "total").unwrap();
        assert!(total > 0, "the server holds connections");
        assert_eq!(
            encrypted, total,
            "every connection of the server is encrypted"
        );
    }

    // The certificate names `localhost`, not the address.
    let mut wrong_name = url::Url::parse(&crate::verified(&db.app_url())).unwrap();
    wrong_name.set_host(Some("127.0.0.1")).unwrap();
    let mut args = serve_args(Profile::Test, wrong_name.to_string());
    args.profile = Profile::Production;
    let err = Application::build(&args).await.unwrap_err();
    let text = report(&err);
    assert!(matches!(err, StartupError::Database(_)), "{text}");
    assert!(
        text.to_lowercase().contains("name"),
        "the cause is named: {text}"
    );
    assert!(!text.contains(&password), "{text}");

    // A CA the server was not signed by.
    let other_ca = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = std::env::temp_dir().join(format!("rhesis-ca-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let other_ca_file = dir.join("other-ca.crt");
    std::fs::write(&other_ca_file, other_ca.cert.pem()).unwrap();
    let mut untrusted = url::Url::parse(&db.app_url()).unwrap();
    untrusted.set_host(Some("localhost")).unwrap();
    untrusted
        .query_pairs_mut()
        .append_pair("sslmode", "verify-full")
        .append_pair("sslrootcert", other_ca_file.to_str().unwrap());
    let mut args = serve_args(Profile::Test, untrusted.to_string());
    args.profile = Profile::Production;
    let err = Application::build(&args).await.unwrap_err();
    let text = report(&err);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(matches!(err, StartupError::Database(_)), "{text}");
    assert!(
        text.to_lowercase().contains("issuer"),
        "the cause is named: {text}"
    );
    assert!(!text.contains(&password), "{text}");
}

/// A connection string with another scheme, or a parameter the driver would ignore, is
/// refused before the driver sees it, naming the variable and nothing of the string: the
/// ORM would repeat an unknown scheme's whole URL in its error, password included, and the
/// driver logs an ignored parameter's value. A CA file that holds no certificate is refused
/// too, instead of checking the server against nothing of it.
#[tokio::test]
async fn connection_strings_that_would_leak_or_trust_nothing_are_refused() {
    let db = TestDatabase::new().await;
    for (url, secret) in [
        (
            "postgresql+psycopg://app:hun ter2@localhost/app?sslmode=verify-full",
            "ter2",
        ),
        (
            "postgres://app:p@ssw0rd@localhost/app?sslpassword=keypass",
            "keypass",
        ),
        ("postgres://app:s3cret@localhost/app?hunter2", "hunter2"),
    ] {
        let mut args = serve_args(Profile::Test, url.to_owned());
        args.database.acquire_timeout_ms = 500;
        let err = Application::build(&args).await.unwrap_err();
        let text = report(&err);
        assert!(
            matches!(
                err,
                StartupError::InvalidDatabaseUrl {
                    var: "DATABASE_URL",
                    ..
                }
            ),
            "{text}"
        );
        assert!(!text.contains(secret) && !text.contains("ssw0rd"), "{text}");

        let migrate = server::config::MigrateArgs {
            action: server::config::MigrateAction::Status,
            migration_database_url: Some(secrecy::SecretString::from(url.to_owned())),
            migration_database_url_file: None,
            database: serve_args(Profile::Test, db.app_url()).database,
            profile: Profile::Test,
        };
        let err = server::migrate(&migrate).await.unwrap_err();
        let text = report(&err);
        assert!(
            matches!(
                err,
                StartupError::InvalidDatabaseUrl {
                    var: "MIGRATION_DATABASE_URL",
                    ..
                }
            ),
            "{text}"
        );
        assert!(!text.contains(secret), "{text}");
    }

    // CA files that hold no certificate: empty, or a key only.
    let dir = std::env::temp_dir().join(format!("rhesis-ca-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let empty = dir.join("empty.crt");
    std::fs::write(&empty, "").unwrap();
    let key_only = dir.join("key.pem");
    std::fs::write(
        &key_only,
        rcgen::KeyPair::generate().unwrap().serialize_pem(),
    )
    .unwrap();
    for file in [&empty, &key_only] {
        let mut args = serve_args(Profile::Production, db.app_url());
        args.database.ssl_root_cert = Some(file.clone());
        let err = Application::build(&args).await.unwrap_err();
        assert!(report(&err).contains("DATABASE_SSL_ROOT_CERT"), "{err:?}");

        let mut url = url::Url::parse(&db.app_url()).unwrap();
        url.set_host(Some("localhost")).unwrap();
        url.query_pairs_mut()
            .append_pair("sslmode", "verify-full")
            .append_pair("sslrootcert", file.to_str().unwrap());
        let mut args = serve_args(Profile::Test, url.to_string());
        args.profile = Profile::Production;
        let err = Application::build(&args).await.unwrap_err();
        assert!(report(&err).contains("sslrootcert"), "{err:?}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// I5: each development setting that production refuses stops the start, naming its
/// variable (the same arguments without it start). Outside this test: the development login
/// (`auth::the_development_login_exists_in_development_only`), plain HTTP without a trusted
/// proxy (`transport::*`) and browser login over plain HTTP
/// (`browser_login_settings_are_checked_at_startup`).
#[tokio::test]
async fn production_refuses_each_development_setting_naming_its_variable() {
    use secrecy::SecretString;
    use server::config::ServeArgs;
    let db = TestDatabase::new().await;
    let production = || serve_args(Profile::Production, db.app_url());
    assert!(Application::build(&production()).await.is_ok());

    let secret = |text: &str| Some(SecretString::from(text.to_owned()));
    type Change = Box<dyn Fn(&mut ServeArgs)>;
    let cases: Vec<(&str, Change)> = vec![
        (
            "CORS_ALLOWED_ORIGINS",
            Box::new(|a| a.browser.cors_allowed_origins = vec!["*".to_owned()]),
        ),
        (
            "CORS_ALLOWED_ORIGINS",
            Box::new(|a| {
                a.browser.cors_allowed_origins = vec!["http://app.example.com".to_owned()]
            }),
        ),
        (
            "FRONTEND_URL",
            Box::new(|a| a.browser.frontend_url = Some("http://app.example.com".to_owned())),
        ),
        (
            "JWT_SECRET_KEY",
            Box::new(move |a| a.auth.jwt_key = secret("correct horse battery staple")),
        ),
        ("JWT_SECRET_KEY", Box::new(|a| a.auth.jwt_key = None)),
        ("AUDIT_CHAIN_KEY", Box::new(|a| a.audit.chain_key = None)),
        (
            "AUDIT_CHAIN_KEY",
            Box::new(move |a| a.audit.chain_key = secret("our-audit-chain-key-2026-production")),
        ),
        ("DB_ENCRYPTION_KEY", Box::new(|a| a.encryption.key = None)),
        (
            "DB_ENCRYPTION_PLAINTEXT_UNTIL",
            Box::new(|a| {
                a.encryption.plaintext_until = Some(ports::Clock::now(&ports::SystemClock));
            }),
        ),
        (
            "DATABASE_URL",
            Box::new(|a| {
                let url = a.database.url().unwrap();
                let plain = secrecy::ExposeSecret::expose_secret(&url)
                    .replace("sslmode=verify-full", "sslmode=disable");
                a.database.url = Some(SecretString::from(plain));
            }),
        ),
    ];
    for (var, change) in &cases {
        let mut args = production();
        change(&mut args);
        let err = Application::build(&args)
            .await
            .err()
            .unwrap_or_else(|| panic!("production started with a development {var}"));
        let text = report(&err);
        assert!(text.contains(var), "{var}: {text}");
    }

    // A role that bypasses row-level security (the owner's, a superuser's) is refused in
    // the name of DATABASE_URL too.
    let owner = Application::build(&serve_args(Profile::Production, db.owner_url()))
        .await
        .unwrap_err();
    assert!(
        report(&owner).contains("DATABASE_URL"),
        "{}",
        report(&owner)
    );
}
