//! Nothing leaks through the connection pool: the tenant settings are transaction-local, and
//! a unit of work that ends in any way — commit, rollback, or a future dropped mid-way —
//! leaves a connection that sees nothing.

use std::time::Duration;

use crate::{PgStore, store_for, tenant};
use domain::Name;
use ports::{NewProject, UnitOfWorkFactory};

/// The next use of the (single) pooled connection, with no tenant context of its own.
async fn assert_connection_is_clean(store: &PgStore, when: &str) {
    let seen = adapters_postgres::inspect_session(store.database())
        .await
        .unwrap();
    assert_eq!(
        seen.organization_setting, "",
        "{when}: organization setting"
    );
    assert_eq!(seen.user_setting, "", "{when}: user setting");
    assert_eq!(seen.visible_projects, 0, "{when}: projects visible");
    assert_eq!(seen.visible_users, 0, "{when}: users visible");
    assert_eq!(
        seen.visible_organizations, 0,
        "{when}: organizations visible"
    );
    assert_eq!(seen, adapters_postgres::SessionReport::default(), "{when}");
}

fn ghost() -> NewProject {
    NewProject {
        name: Name::new("ghost").unwrap(),
        description: None,
        icon: None,
    }
}

#[tokio::test]
async fn a_pool_of_one_connection_carries_no_tenant_over() {
    let db = test_support::TestDatabase::new().await;
    let store = store_for(&db, 1).await;
    let a = tenant(&store, "a").await;
    let scope = a.scope();

    let uow = store.begin(&scope).await.unwrap();
    uow.projects().create(ghost()).await.unwrap();
    uow.commit().await.unwrap();
    assert_connection_is_clean(&store, "after commit").await;

    let uow = store.begin(&scope).await.unwrap();
    uow.projects().create(ghost()).await.unwrap();
    drop(uow);
    assert_connection_is_clean(&store, "after rollback by drop").await;

    // A unit of work whose future is dropped while it holds the transaction.
    let held = async {
        let uow = store.begin(&scope).await.unwrap();
        uow.projects().create(ghost()).await.unwrap();
        std::future::pending::<()>().await;
    };
    assert!(
        tokio::time::timeout(Duration::from_millis(200), held)
            .await
            .is_err()
    );
    assert_connection_is_clean(&store, "after a future dropped holding the unit of work").await;

    // Futures cancelled at many points: during BEGIN, during set_config, during a query.
    for micros in (0..3000).step_by(150) {
        let work = async {
            let uow = store.begin(&scope).await?;
            uow.projects().create(ghost()).await?;
            uow.projects().get(a.project).await?;
            std::future::pending::<Result<(), ports::StoreError>>().await
        };
        let _ = tokio::time::timeout(Duration::from_micros(micros), work).await;
        assert_connection_is_clean(&store, &format!("after cancelling at {micros} µs")).await;
    }
}
