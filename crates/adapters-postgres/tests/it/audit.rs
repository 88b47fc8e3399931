//! The audit log: written with the action (both or neither), chained per organization, and
//! any edit, insertion or deletion made directly in the database is found by verification.

use std::sync::Arc;

use domain::{AuditAction, AuditOutcome};
use ports::{AuditFilter, ChainVerdict, NewAuditEvent, UnitOfWorkFactory};
use sea_orm::ConnectionTrait;

use crate::{Tenant, World, world};

fn event(tenant: &Tenant, action: AuditAction, target: &str) -> NewAuditEvent {
    NewAuditEvent {
        actor: Some(tenant.principal.user_id()),
        action,
        target_type: Some("project".to_owned()),
        target_id: Some(target.to_owned()),
        outcome: AuditOutcome::Success,
        reason: None,
        client_ip: Some("198.51.100.7".parse().unwrap()),
        request_id: Some(format!("req-{target}")),
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
        ChainVerdict::Intact { events: 2 }
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
        ChainVerdict::Intact { events: 1 }
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
    assert_eq!(verdict(&w, &w.a).await, ChainVerdict::Intact { events: 13 });
}

#[tokio::test]
async fn tampering_in_the_database_is_found_at_the_first_bad_event() {
    let w = world().await;
    record(&w, &w.a, 5).await;
    record(&w, &w.b, 2).await;
    assert_eq!(verdict(&w, &w.a).await, ChainVerdict::Intact { events: 6 });
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
        ChainVerdict::Intact { events: 6 },
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
    assert_eq!(verdict(&w, &w.b).await, ChainVerdict::Intact { events: 3 });

    // An edit whose hash is recomputed correctly still breaks the link to the next event.
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
    let rehashed = crypto::audit_chain_hash(&first.prev_hash, &first);
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
        target_type: None,
        target_id: None,
        outcome: AuditOutcome::Failure,
        reason: Some(reason.to_owned()),
        client_ip: Some("203.0.113.9".parse().unwrap()),
        request_id: Some("req-x".to_owned()),
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
    assert_eq!(verdict(&w, &w.a).await, ChainVerdict::Intact { events: 4 });
    assert_eq!(
        w.store.unscoped_verify(Some(w.a.org)).await.unwrap(),
        ChainVerdict::Intact { events: 4 }
    );
    assert_eq!(
        w.store.unscoped_verify(None).await.unwrap(),
        ChainVerdict::Intact { events: 3 }
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
