//! A list costs one statement: the page and the size of the whole selection come together.

use std::sync::{Arc, Mutex};

use adapters_postgres::{PgStore, PoolOptions, SecretColumns};
use domain::Name;
use ports::{NewProject, PageRequest, ProjectSort, Sort, SortDirection, UnitOfWorkFactory};
use secrecy::SecretString;

use crate::{AUDIT_KEY, audit_key, tenant};

/// A store whose connection writes down every statement it runs.
async fn recording_store(db: &test_support::TestDatabase) -> (PgStore, Arc<Mutex<Vec<String>>>) {
    let mut conn = adapters_postgres::connect(&db.app_url(), PoolOptions::default())
        .await
        .unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    conn.on_statement(move |sql| log.lock().unwrap().push(sql.to_owned()));
    let ring = crypto::KeyRing::parse(
        "DB_ENCRYPTION_KEY",
        &SecretString::from(test_support::random_fernet_key()),
    )
    .unwrap();
    let clock: Arc<dyn ports::Clock> = Arc::new(ports::SystemClock);
    let secrets = SecretColumns::new(crypto::FieldCipher::new(ring, None), Arc::clone(&clock));
    let store = PgStore::new(
        conn,
        clock,
        Arc::new(secrets),
        Arc::new(audit_key(AUDIT_KEY)),
    );
    (store, seen)
}

fn by_name(skip: u64, limit: u64) -> PageRequest<ProjectSort> {
    PageRequest::new(
        skip,
        limit,
        Sort {
            field: ProjectSort::Name,
            direction: SortDirection::Ascending,
        },
    )
    .unwrap()
}

#[tokio::test]
async fn a_page_and_its_total_are_one_statement() {
    let db = test_support::TestDatabase::new().await;
    let (store, seen) = recording_store(&db).await;
    let a = tenant(&store, "a").await;
    let uow = store.begin(&a.scope()).await.unwrap();
    for n in 0..4 {
        uow.projects()
            .create(NewProject {
                name: Name::new(&format!("Extra {n}")).unwrap(),
                description: None,
                icon: None,
            })
            .await
            .unwrap();
    }
    uow.commit().await.unwrap();
    // One more organization's project, which no count of A's may include.
    tenant(&store, "b").await;

    let uow = store.begin(&a.scope()).await.unwrap();
    for (skip, limit, items, extra) in [
        // A full page, a last page cut short, and a page past the end (no row carries the
        // total: a second statement counts).
        (0, 2, 2, 0),
        (4, 2, 1, 0),
        (9, 2, 0, 1),
    ] {
        let before = seen.lock().unwrap().len();
        let page = uow.projects().list(by_name(skip, limit)).await.unwrap();
        let ran = seen.lock().unwrap()[before..].to_vec();
        assert_eq!(page.total, 5, "skip {skip}: {ran:?}");
        assert_eq!(page.items.len(), items, "skip {skip}");
        assert_eq!(ran.len(), 1 + extra, "skip {skip}: {ran:#?}");
    }
    // The audit log's pages too (the founding is its one event).
    for (skip, items, extra) in [(0, 1, 0), (5, 0, 1)] {
        let before = seen.lock().unwrap().len();
        let page = uow
            .audit()
            .list(ports::AuditFilter::default(), skip, 10)
            .await
            .unwrap();
        let ran = seen.lock().unwrap()[before..].to_vec();
        assert_eq!((page.total, page.items.len()), (1, items), "skip {skip}");
        assert_eq!(ran.len(), 1 + extra, "skip {skip}: {ran:#?}");
    }
    uow.commit().await.unwrap();

    // An empty list is one statement too, and counts nothing.
    let c = tenant(&store, "c").await;
    let uow = store.begin(&c.scope()).await.unwrap();
    let project = uow.projects().list(by_name(0, 10)).await.unwrap();
    assert_eq!(project.total, 1);
    uow.projects().soft_delete(c.project).await.unwrap();
    let before = seen.lock().unwrap().len();
    let empty = uow.projects().list(by_name(0, 10)).await.unwrap();
    assert_eq!((empty.total, empty.items.len()), (0, 0));
    assert_eq!(seen.lock().unwrap().len() - before, 1);
}
