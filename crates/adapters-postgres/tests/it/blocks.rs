//! The graduated response's records: strikes lead to doubling blocks and a permanent one,
//! strikes from several replicas are not lost, the operator's blocks and lifts, purging, and
//! an audit event in the system chain for every warning, block and lift.

use chrono::Duration;
use domain::{BlockKey, BlockPolicy, BlockState, StrikeVerdict};
use ports::{AuditLog, BlockContext, BlockList, ChainVerdict};
use test_support::TestDatabase;

use crate::{clocked, store_clocked, t0, texts};

fn policy() -> BlockPolicy {
    BlockPolicy {
        strikes_to_block: 2,
        strike_window: Duration::minutes(10),
        first_block: Duration::minutes(1),
        blocks_to_ban: 2,
        block_memory: Duration::hours(24),
    }
}

fn context() -> BlockContext {
    BlockContext {
        actor: None,
        client_ip: Some("203.0.113.9".parse().unwrap()),
        request_id: Some("req-1".to_owned()),
    }
}

/// The system chain's events, as `action reason` lines.
async fn system_events(db: &TestDatabase) -> Vec<String> {
    texts(
        &db.admin_pool().await,
        "SELECT action || ' ' || target_id || ' ' || reason FROM audit_events \
         WHERE organization_id IS NULL ORDER BY seq",
    )
    .await
    .into_iter()
    .map(Option::unwrap)
    .collect()
}

#[tokio::test]
async fn strikes_warn_then_block_for_doubling_times_then_for_good() {
    let (db, clock, store) = clocked().await;
    let key: BlockKey = "ip:203.0.113.9".parse().unwrap();
    let p = policy();
    let mut verdicts = Vec::new();
    for _ in 0..3 {
        for _ in 0..2 {
            verdicts.push(store.strike(&key, &p, &context()).await.unwrap());
        }
        // Striking a blocked key changes nothing.
        let blocked = store.strike(&key, &p, &context()).await.unwrap();
        assert!(matches!(blocked, StrikeVerdict::Blocked(_)), "{blocked:?}");
        assert_eq!(store.active().await.unwrap().len(), 1);
        clock.advance(Duration::minutes(5));
    }
    let warning = StrikeVerdict::Warning {
        strike: 1,
        strikes_to_block: 2,
    };
    assert_eq!(
        verdicts,
        [
            warning,
            StrikeVerdict::NewBlock(BlockState::Until(t0() + Duration::minutes(1))),
            warning,
            StrikeVerdict::NewBlock(BlockState::Until(t0() + Duration::minutes(7))),
            warning,
            StrikeVerdict::NewBlock(BlockState::Permanent),
        ]
    );
    // Still blocked long after; purging keeps a permanent block.
    clock.advance(Duration::days(400));
    assert_eq!(store.purge(&p).await.unwrap(), 0);
    assert_eq!(
        store.active().await.unwrap(),
        [(key.clone(), BlockState::Permanent)]
    );
    // Each block in its strike's transaction; warnings are the caller's to record (counted,
    // off the request path), so the store writes none.
    let events = system_events(&db).await;
    assert_eq!(
        events,
        [
            "client.blocked ip:203.0.113.9 strikes; blocked until 2027-01-15T08:01:00Z",
            "client.blocked ip:203.0.113.9 strikes; blocked until 2027-01-15T08:07:00Z",
            "client.blocked ip:203.0.113.9 strikes; blocked permanently",
        ]
    );
    assert_eq!(
        store.unscoped_verify(None).await.unwrap(),
        ChainVerdict::Intact {
            events: 3,
            unkeyed: 0
        }
    );
}

#[tokio::test]
async fn strikes_from_several_replicas_are_all_counted() {
    let (db, clock, store) = clocked().await;
    let other = store_clocked(
        &db,
        4,
        &test_support::random_fernet_key(),
        crate::Windows::default(),
        clock,
    )
    .await;
    let key: BlockKey = "user:6f9619ff-8b86-d011-b42d-00c04fc964ff".parse().unwrap();
    let p = BlockPolicy {
        strikes_to_block: 1000,
        ..policy()
    };
    let mut strikes = tokio::task::JoinSet::new();
    for i in 0..24 {
        let store = if i % 2 == 0 { &store } else { &other }.clone();
        let key = key.clone();
        strikes.spawn(async move { store.strike(&key, &p, &context()).await.unwrap() });
    }
    let mut seen: Vec<u32> = strikes
        .join_all()
        .await
        .into_iter()
        .map(|v| match v {
            StrikeVerdict::Warning { strike, .. } => strike,
            other => panic!("{other:?}"),
        })
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, (1..=24).collect::<Vec<_>>());
    let entries = store.entries().await.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].record.strikes, 24);
}

#[tokio::test]
async fn the_operator_blocks_and_lifts_and_stale_records_are_purged() {
    let (db, clock, store) = clocked().await;
    let p = policy();
    let banned: BlockKey = "ip:2001:db8::7".parse().unwrap();
    let striker: BlockKey = "ip:198.51.100.1".parse().unwrap();
    let operator = BlockContext::default();
    store
        .block(&banned, BlockState::Permanent, "abuse report 17", &operator)
        .await
        .unwrap();
    store.strike(&striker, &p, &context()).await.unwrap();
    let entries = store.entries().await.unwrap();
    assert_eq!(entries.len(), 2);
    let banned_entry = entries.iter().find(|e| e.key == banned).unwrap();
    assert!(banned_entry.record.permanent);
    assert_eq!(
        banned_entry.reason.as_deref(),
        Some("operator: abuse report 17")
    );
    // A strike against a banned key is refused without a new event.
    assert_eq!(
        store.strike(&banned, &p, &context()).await.unwrap(),
        StrikeVerdict::Blocked(BlockState::Permanent)
    );
    assert!(store.lift(&banned, "resolved", &operator).await.unwrap());
    assert!(!store.lift(&banned, "again", &operator).await.unwrap());
    assert!(store.active().await.unwrap().is_empty());
    // The striker's record is kept while its window lasts, then purged.
    assert_eq!(store.purge(&p).await.unwrap(), 0);
    clock.advance(Duration::minutes(10));
    assert_eq!(store.purge(&p).await.unwrap(), 1);
    assert!(store.entries().await.unwrap().is_empty());
    assert_eq!(
        system_events(&db).await,
        [
            "client.blocked ip:2001:db8:: operator: abuse report 17; blocked permanently",
            "client.block_lifted ip:2001:db8:: operator: resolved",
        ]
    );
}
