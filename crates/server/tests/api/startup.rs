//! The server checks the database role it connects as, and production refuses an unfit one.

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
