//! The audit log: written with the action (both or neither), chained per organization, and
//! any edit, insertion or deletion made directly in the database is found by verification.

use std::sync::Arc;

use domain::{AuditAction, AuditOutcome, AuditTarget, ProjectId};
use ports::{AuditFilter, ChainVerdict, NewAuditEvent, UnitOfWorkFactory};
use sea_orm::ConnectionTrait;

use crate::{Tenant, World, world};

/// An event about a project, told apart by its request id (`req-<label>`).
fn event(tenant: &Tenant, action: AuditAction, label: &str) -> NewAuditEvent {
    NewAuditEvent {
        actor: Some(tenant.principal.user_id()),
        action,
        target: Some(AuditTarget::Project(ProjectId::from_uuid(
            uuid::Uuid::new_v4(),
        ))),
        outcome: AuditOutcome::Success,
        reason: None,
        client_ip: Some("198.51.100.7".parse().unwrap()),
        request_id: Some(format!("req-{label}")),
        occurrences: 1,
        occurred_at: None,
    }
}

async fn record(w: &World, tenant: &Tenant, n: usize) {
    for i in 0..n {
        let uow = w.store.begin(&tenant.scope()).await.unwrap();
        uow.audit()
            .record(event(tenant, AuditAction::ProjectUpdated, &i.to_string()))
            .await
            .unwrap();
        uow.commit().await.unwrap();
    }
}

async fn verdict(w: &World, tenant: &Tenant) -> ChainVerdict {
    let uow = w.store.begin(&tenant.scope()).await.unwrap();
    uow.audit().verify().await.unwrap()
}

#[tokio::test]
async fn events_are_kept_with_their_action_or_not_at_all() {
    let w = world().await;
    let uow = w.store.begin(&w.a.scope()).await.unwrap();
    let stored = uow
        .audit()
        .record(event(&w.a, AuditAction::ProjectDeleted, "kept"))
        .await
        .unwrap();
    uow.commit().await.unwrap();
    // The founding of the organization is its first event.
    assert_eq!(stored.seq, 2);

    let uow = w.store.begin(&w.a.scope()).await.unwrap();
    uow.audit()
        .record(event(&w.a, AuditAction::ProjectDeleted, "rolled-back"))
        .await
        .unwrap();
    drop(uow);

    let uow = w.store.begin(&w.a.scope()).await.unwrap();
    let page = uow
        .audit()
        .list(AuditFilter::default(), 0, 50)
        .await
        .unwrap();
    assert_eq!(page.total, 2);
    let read = &page.items[0];
    assert_eq!(read, &stored, "read back exactly as recorded");
    let founding = &page.items[1];
    assert_eq!(founding.action, AuditAction::OrganizationCreated);
    assert_eq!((founding.seq, founding.prev_hash), (1, [0; 32]));
    assert_eq!(stored.prev_hash, founding.hash);
    assert_eq!(read.client_ip, Some("198.51.100.7".parse().unwrap()));
    assert_eq!(
        uow.audit().verify().await.unwrap(),
        ChainVerdict::Intact {
            events: 2,
            unkeyed: 0
        }
    );

    let only_deletes = AuditFilter {
        action: Some(AuditAction::ProjectDeleted),
        ..Default::default()
    };
    assert_eq!(
        uow.audit().list(only_deletes, 0, 50).await.unwrap().total,
        1
    );
    let other_action = AuditFilter {
        action: Some(AuditAction::TokenCreated),
        ..Default::default()
    };
    assert_eq!(
        uow.audit().list(other_action, 0, 50).await.unwrap().total,
        0
    );
    drop(uow);

    // B's log is B's alone.
    let uow = w.store.begin(&w.b.scope()).await.unwrap();
    assert_eq!(
        uow.audit()
            .list(AuditFilter::default(), 0, 50)
            .await
            .unwrap()
            .total,
        1
    );
    assert_eq!(
        uow.audit().verify().await.unwrap(),
        ChainVerdict::Intact {
            events: 1,
            unkeyed: 0
        }
    );
}

#[tokio::test]
async fn concurrent_units_of_work_chain_instead_of_forking() {
    let w = Arc::new(world().await);
    let mut handles = Vec::new();
    for i in 0..12 {
        let w = Arc::clone(&w);
        handles.push(tokio::spawn(async move {
            let uow = w.store.begin(&w.a.scope()).await.unwrap();
            uow.audit()
                .record(event(&w.a, AuditAction::ProjectUpdated, &i.to_string()))
                .await
                .unwrap();
            uow.commit().await.unwrap();
        }));
    }
    for handle in handles {
        handle.await.unwrap();
    }
    assert_eq!(
        verdict(&w, &w.a).await,
        ChainVerdict::Intact {
            events: 13,
            unkeyed: 0
        }
    );
}

#[tokio::test]
async fn tampering_in_the_database_is_found_at_the_first_bad_event() {
    let w = world().await;
    record(&w, &w.a, 5).await;
    record(&w, &w.b, 2).await;
    assert_eq!(
        verdict(&w, &w.a).await,
        ChainVerdict::Intact {
            events: 6,
            unkeyed: 0
        }
    );
    let admin = w.db.admin_pool().await;
    let org = w.a.org;

    // An edited field.
    admin
        .execute_unprepared(&format!(
            "UPDATE audit_events SET action = 'project.created' WHERE organization_id = '{org}' AND seq = 3"
        ))
        .await
        .unwrap();
    assert_eq!(verdict(&w, &w.a).await, ChainVerdict::Broken { seq: 3 });
    admin
        .execute_unprepared(&format!(
            "UPDATE audit_events SET action = 'project.updated' WHERE organization_id = '{org}' AND seq = 3"
        ))
        .await
        .unwrap();
    assert_eq!(
        verdict(&w, &w.a).await,
        ChainVerdict::Intact {
            events: 6,
            unkeyed: 0
        },
        "restored"
    );

    // A deleted event.
    admin
        .execute_unprepared(&format!(
            "DELETE FROM audit_events WHERE organization_id = '{org}' AND seq = 2"
        ))
        .await
        .unwrap();
    assert_eq!(verdict(&w, &w.a).await, ChainVerdict::Broken { seq: 2 });

    // B's chain is untouched by all this.
    assert_eq!(
        verdict(&w, &w.b).await,
        ChainVerdict::Intact {
            events: 3,
            unkeyed: 0
        }
    );

    // An edit whose hash is recomputed correctly (with the key) still breaks the link to the
    // next event.
    let uow = w.store.begin(&w.b.scope()).await.unwrap();
    let mut first = uow
        .audit()
        .list(AuditFilter::default(), 2, 1)
        .await
        .unwrap()
        .items
        .remove(0);
    drop(uow);
    assert_eq!(first.seq, 1);
    first.target_id = Some("forged".to_owned());
    let rehashed = crate::audit_key(crate::AUDIT_KEY).link(&first.prev_hash, &first);
    let hex: String = rehashed.iter().map(|b| format!("{b:02x}")).collect();
    admin
        .execute_unprepared(&format!(
            "UPDATE audit_events SET target_id = 'forged', hash = decode('{hex}', 'hex')
             WHERE organization_id = '{}' AND seq = 1",
            w.b.org
        ))
        .await
        .unwrap();
    assert_eq!(verdict(&w, &w.b).await, ChainVerdict::Broken { seq: 2 });
}

#[tokio::test]
async fn events_of_no_organization_chain_apart_and_the_app_role_cannot_read_them() {
    use ports::AuditLog;

    let w = world().await;
    let refused = |reason: &str| NewAuditEvent {
        actor: None,
        action: AuditAction::AuthenticationFailed,
        target: None,
        outcome: AuditOutcome::Failure,
        reason: Some(reason.to_owned()),
        client_ip: Some("203.0.113.9".parse().unwrap()),
        request_id: Some("req-x".to_owned()),
        occurrences: 1,
        occurred_at: None,
    };
    for reason in ["unknown", "malformed", "bad_signature"] {
        let event = w
            .store
            .unscoped_record(None, refused(reason))
            .await
            .unwrap();
        assert_eq!(event.organization_id, None);
    }
    // An event attributed to an organization lands in its chain, after its own events.
    record(&w, &w.a, 2).await;
    let event = w
        .store
        .unscoped_record(Some(w.a.org), refused("expired"))
        .await
        .unwrap();
    assert_eq!((event.organization_id, event.seq), (Some(w.a.org), 4));
    assert_eq!(
        verdict(&w, &w.a).await,
        ChainVerdict::Intact {
            events: 4,
            unkeyed: 0
        }
    );
    assert_eq!(
        w.store.unscoped_verify(Some(w.a.org)).await.unwrap(),
        ChainVerdict::Intact {
            events: 4,
            unkeyed: 0
        }
    );
    assert_eq!(
        w.store.unscoped_verify(None).await.unwrap(),
        ChainVerdict::Intact {
            events: 3,
            unkeyed: 0
        }
    );
    let uow = w.store.begin(&w.a.scope()).await.unwrap();
    let listed = uow
        .audit()
        .list(AuditFilter::default(), 0, 100)
        .await
        .unwrap();
    assert_eq!(listed.total, 4, "organizations never see the system chain");
    assert_eq!(listed.items[0].reason.as_deref(), Some("expired"));
    drop(uow);

    // The application role sees no system event and cannot write one around the functions.
    let app = w.db.app_pool(1).await;
    assert_eq!(
        crate::count(
            &app,
            "SELECT count(*) FROM audit_events WHERE organization_id IS NULL"
        )
        .await,
        0
    );
    let refused_insert = crate::fails(
        &app,
        "INSERT INTO audit_events (id, organization_id, seq, occurred_at, action, outcome, \
         prev_hash, hash) VALUES (gen_random_uuid(), NULL, 99, now(), 'x', 'failure', \
         decode(repeat('00', 32), 'hex'), decode(repeat('00', 32), 'hex'))",
    )
    .await;
    assert!(
        refused_insert.contains("row-level security"),
        "{refused_insert}"
    );

    // Tampering with the system chain is found too.
    let admin = w.db.admin_pool().await;
    admin
        .execute_unprepared(
            "UPDATE audit_events SET reason = 'fine' WHERE organization_id IS NULL AND seq = 2",
        )
        .await
        .unwrap();
    assert_eq!(
        w.store.unscoped_verify(None).await.unwrap(),
        ChainVerdict::Broken { seq: 2 }
    );
}

/// Runs `sql` as the database owner (a DBA, a restored backup), inside one transaction whose
/// tenant is `org` (the owner is subject to row-level security too, but may set it at will,
/// and may drop the constraint that refuses new unkeyed events).
async fn as_owner(w: &World, org: domain::OrganizationId, sql: &str) {
    let owner = sea_orm::Database::connect(w.db.owner_url()).await.unwrap();
    owner
        .execute_unprepared(&format!(
            "BEGIN; ALTER TABLE audit_events DROP CONSTRAINT IF EXISTS audit_events_keyed; \
             SELECT set_config('app.current_organization', '{org}', true); {sql}; COMMIT;"
        ))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Rewrites events `from..=until` of `tenant`'s chain, as the owner: each event linked by
/// `link` to the one before, `edit` applied first, and its `hash_version` set to `version`
/// (`DEFAULT`: what rows written before the key carry).
async fn rewrite(
    w: &World,
    tenant: &Tenant,
    (from, until): (u64, u64),
    link: &dyn Fn(&[u8; 32], &domain::AuditEvent) -> [u8; 32],
    version: &str,
    edit: &dyn Fn(&mut domain::AuditEvent),
) {
    let mut chain = events(w, tenant).await;
    let mut prev = chain
        .iter()
        .find(|e| e.seq == from - 1)
        .map_or([0; 32], |e| e.hash);
    let mut sql = String::new();
    for event in chain.iter_mut().filter(|e| (from..=until).contains(&e.seq)) {
        edit(event);
        event.prev_hash = prev;
        event.hash = link(&prev, event);
        prev = event.hash;
        sql.push_str(&format!(
            "UPDATE audit_events SET target_id = {}, prev_hash = decode('{}', 'hex'), \
             hash = decode('{}', 'hex'), hash_version = {version} \
             WHERE organization_id = '{}' AND seq = {};",
            event
                .target_id
                .as_deref()
                .map_or("NULL".to_owned(), |t| format!("'{t}'")),
            hex(&event.prev_hash),
            hex(&event.hash),
            tenant.org,
            event.seq
        ));
    }
    as_owner(w, tenant.org, sql.trim_end_matches(';')).await;
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every event of `tenant`'s chain, oldest first, as the application reads them.
async fn events(w: &World, tenant: &Tenant) -> Vec<domain::AuditEvent> {
    let uow = w.store.begin(&tenant.scope()).await.unwrap();
    let mut all = uow
        .audit()
        .list(AuditFilter::default(), 0, 1000)
        .await
        .unwrap()
        .items;
    all.reverse();
    all
}

#[tokio::test]
async fn an_owner_who_rewrites_an_event_and_rehashes_the_rest_is_found() {
    let w = world().await;
    record(&w, &w.a, 5).await;
    assert_eq!(
        verdict(&w, &w.a).await,
        ChainVerdict::Intact {
            events: 6,
            unkeyed: 0
        }
    );

    // The attacker edits event 3 and recomputes the plain SHA-256 chain over it and every
    // later event, exactly as the chain was computed before it was keyed.
    let mut chain = events(&w, &w.a).await;
    let mut prev = chain[1].hash;
    let mut sql = String::new();
    for event in chain.iter_mut().skip(2) {
        if event.seq == 3 {
            event.target_id = Some("forged".to_owned());
        }
        event.prev_hash = prev;
        event.hash = crypto::unkeyed_audit_hash(&prev, event);
        prev = event.hash;
        sql.push_str(&format!(
            "UPDATE audit_events SET target_id = '{}', prev_hash = decode('{}', 'hex'), \
             hash = decode('{}', 'hex') WHERE organization_id = '{}' AND seq = {};",
            event.target_id.as_deref().unwrap(),
            hex(&event.prev_hash),
            hex(&event.hash),
            w.a.org,
            event.seq
        ));
    }
    as_owner(&w, w.a.org, sql.trim_end_matches(';')).await;
    assert_eq!(
        events(&w, &w.a).await[2].target_id.as_deref(),
        Some("forged"),
        "the rewrite took"
    );
    assert_eq!(verdict(&w, &w.a).await, ChainVerdict::Broken { seq: 3 });
}

#[tokio::test]
async fn unkeyed_events_from_before_the_key_verify_and_a_downgrade_of_a_keyed_one_does_not() {
    use ports::AuditLog;

    let w = world().await;
    record(&w, &w.a, 2).await;
    // Events written before the chain was keyed: plain SHA-256 links, and the version every
    // row had when the migration added it.
    rewrite(
        &w,
        &w.a,
        (1, 3),
        &crypto::unkeyed_audit_hash,
        "DEFAULT",
        &|_| {},
    )
    .await;
    assert_eq!(
        verdict(&w, &w.a).await,
        ChainVerdict::Intact {
            events: 3,
            unkeyed: 3
        }
    );
    // New events are keyed and chain on.
    record(&w, &w.a, 2).await;
    assert_eq!(
        verdict(&w, &w.a).await,
        ChainVerdict::Intact {
            events: 5,
            unkeyed: 3
        }
    );
    let head = w
        .store
        .unscoped_audit_head(Some(w.a.org))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(head.seq, 5);
    assert_eq!(
        w.store
            .unscoped_audit_event_hash(Some(w.a.org), 5)
            .await
            .unwrap(),
        Some(head.hash)
    );

    // The owner rewrites an unkeyed event (and the unkeyed one after it): the first keyed
    // event's link covers the hash before it.
    let original = events(&w, &w.a)
        .await
        .into_iter()
        .find(|e| e.seq == 2)
        .unwrap()
        .target_id;
    let early = |e: &mut domain::AuditEvent| {
        if e.seq == 2 {
            e.target_id = Some("forged".to_owned());
        }
    };
    rewrite(&w, &w.a, (2, 3), &crypto::unkeyed_audit_hash, "1", &early).await;
    assert_eq!(verdict(&w, &w.a).await, ChainVerdict::Broken { seq: 4 });
    rewrite(&w, &w.a, (2, 3), &crypto::unkeyed_audit_hash, "1", &|e| {
        if e.seq == 2 {
            e.target_id.clone_from(&original);
        }
    })
    .await;
    assert_eq!(
        verdict(&w, &w.a).await,
        ChainVerdict::Intact {
            events: 5,
            unkeyed: 3
        },
        "restored"
    );

    // The owner rewrites the newest (keyed) event as an unkeyed one: an unkeyed link after a
    // keyed one is refused.
    let forge = |e: &mut domain::AuditEvent| {
        if e.seq == 5 {
            e.target_id = Some("forged".to_owned());
        }
    };
    rewrite(&w, &w.a, (5, 5), &crypto::unkeyed_audit_hash, "1", &forge).await;
    assert_eq!(verdict(&w, &w.a).await, ChainVerdict::Broken { seq: 5 });
    // Keeping the keyed mark does not help either: the key is not the attacker's.
    rewrite(&w, &w.a, (5, 5), &crypto::unkeyed_audit_hash, "2", &forge).await;
    assert_eq!(verdict(&w, &w.a).await, ChainVerdict::Broken { seq: 5 });
    // Rewriting every keyed event as unkeyed leaves a chain of unkeyed events only: the chain
    // alone cannot tell it from one written before the key (its unkeyed count grew, which the
    // verifier reports), but the witnessed head no longer holds.
    rewrite(&w, &w.a, (4, 5), &crypto::unkeyed_audit_hash, "1", &forge).await;
    assert_eq!(
        w.store.unscoped_verify(Some(w.a.org)).await.unwrap(),
        ChainVerdict::Intact {
            events: 5,
            unkeyed: 5
        }
    );
    assert_ne!(
        w.store
            .unscoped_audit_event_hash(Some(w.a.org), 5)
            .await
            .unwrap(),
        Some(head.hash)
    );
    assert_eq!(
        w.store
            .unscoped_audit_event_hash(Some(w.a.org), 6)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        w.store
            .unscoped_audit_event_hash(Some(w.a.org), 0)
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn another_key_verifies_no_keyed_chain() {
    use ports::AuditLog;

    let w = world().await;
    record(&w, &w.a, 2).await;
    w.store
        .unscoped_record(
            None,
            NewAuditEvent::by(None, AuditAction::AuthenticationFailed),
        )
        .await
        .unwrap();
    let options = adapters_postgres::PoolOptions {
        max_connections: 2,
        ..Default::default()
    };
    let conn = adapters_postgres::connect(&w.db.app_url(), options)
        .await
        .unwrap();
    let secrets = adapters_postgres::SecretColumns::new(
        crypto::FieldCipher::new(
            crypto::KeyRing::parse(
                "K",
                &secrecy::SecretString::from(test_support::random_fernet_key()),
            )
            .unwrap(),
            None,
        ),
        Arc::new(ports::SystemClock),
    );
    let wrong = adapters_postgres::PgStore::new(
        conn,
        Arc::new(ports::SystemClock),
        Arc::new(secrets),
        Arc::new(crate::audit_key(
            "another-audit-chain-key-of-at-least-32-bytes",
        )),
    );
    for org in [Some(w.a.org), Some(w.b.org), None] {
        assert_eq!(
            wrong.unscoped_verify(org).await.unwrap(),
            ChainVerdict::Broken { seq: 1 },
            "{org:?}"
        );
        assert!(matches!(
            w.store.unscoped_verify(org).await.unwrap(),
            ChainVerdict::Intact { .. }
        ));
    }
    // The system chain's head and events are reachable for the witnesses too.
    let head = w.store.unscoped_audit_head(None).await.unwrap().unwrap();
    assert_eq!(head.seq, 1);
    assert_eq!(
        w.store.unscoped_audit_event_hash(None, 1).await.unwrap(),
        Some(head.hash)
    );
    assert_eq!(
        w.store.unscoped_audit_event_hash(None, 2).await.unwrap(),
        None
    );
}
