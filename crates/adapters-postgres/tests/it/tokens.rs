//! API tokens: shown once, sealed at rest with a digest for lookup, their owner's alone.

use domain::{Membership, Name, Role};
use ports::{ApiTokenSort, PageRequest, Sort, SortDirection, StoreError, UnitOfWorkFactory};
use secrecy::ExposeSecret;

use crate::{World, texts, world};

/// Why the store refuses `value`, or `None` when it authenticates.
async fn refusal(w: &World, value: &secrecy::SecretString) -> Option<ports::RefusalReason> {
    resolve(&w.store, value).await.err().map(|r| r.reason)
}

/// What the store says of a presented token, the transaction it was found in let go.
async fn resolve(
    store: &adapters_postgres::PgStore,
    value: &secrecy::SecretString,
) -> Result<ports::ResolvedApiToken, ports::Refusal> {
    store
        .begin_api_token(value, ports::Freshness::Current)
        .await
        .unwrap()
        .map(|entered| entered.token)
}

fn page() -> PageRequest<ApiTokenSort> {
    PageRequest::new(
        0,
        100,
        Sort {
            field: ApiTokenSort::Name,
            direction: SortDirection::Ascending,
        },
    )
    .unwrap()
}

#[tokio::test]
async fn tokens_are_shown_once_sealed_at_rest_and_private_to_their_owner() {
    let w = world().await;
    let colleague = crate::joined(&w.store, &w.a, "colleague@a.example", Role::Admin).await;
    let uow = w.store.begin(&w.a.scope()).await.unwrap();
    let (token, value) = uow
        .api_tokens()
        .create(Name::new("ci").unwrap(), None)
        .await
        .unwrap();
    uow.commit().await.unwrap();
    let value = value.expose_secret().to_owned();
    assert!(crypto::ApiTokenValue::is_well_formed(&value), "{value}");
    assert_eq!(
        token.hint.as_str(),
        format!("rh-...{}", &value[value.len() - 4..])
    );
    assert!(!format!("{token:?}").contains(&value[3..]));

    // At rest: a Fernet token, the digest of the value, the hint; the value nowhere.
    let admin = w.db.admin_pool().await;
    let row = texts(
        &admin,
        &format!(
            "SELECT token || ' ' || encode(token_digest, 'hex') || ' ' || row_to_json(t)::text
             FROM api_tokens t WHERE id = '{}'",
            token.id
        ),
    )
    .await;
    let row = row[0].clone().unwrap();
    let (sealed, rest) = row.split_once(' ').unwrap();
    let (digest, json) = rest.split_once(' ').unwrap();
    assert!(crypto::looks_like_fernet_token(sealed));
    let expected: String = crypto::token_digest(&value)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(digest, expected);
    assert!(
        !json.contains(&value),
        "the token value is stored in the clear"
    );

    // Another member of the same organization neither sees nor touches it.
    let other = crate::Member::new(colleague, w.a.org, Role::Admin);
    let uow = w.store.begin(&other.tenant_scope().unwrap()).await.unwrap();
    assert_eq!(uow.api_tokens().list_own(page()).await.unwrap().total, 0);
    assert!(matches!(
        uow.api_tokens().get_own(token.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        uow.api_tokens().refresh_own(token.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        uow.api_tokens().revoke_own(token.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        uow.api_tokens()
            .rename_own(token.id, Name::new("mine").unwrap())
            .await,
        Err(StoreError::NotFound)
    ));
    drop(uow);

    // Refresh: a new value, a new digest; the old digest is gone at once.
    let uow = w.store.begin(&w.a.scope()).await.unwrap();
    let (refreshed, new_value) = uow.api_tokens().refresh_own(token.id).await.unwrap();
    assert_ne!(new_value.expose_secret(), value);
    assert!(refreshed.last_refreshed_at.is_some());
    let renamed = uow
        .api_tokens()
        .rename_own(token.id, Name::new("deploy").unwrap())
        .await
        .unwrap();
    assert_eq!(renamed.name.as_str(), "deploy");
    uow.commit().await.unwrap();
    let digests = texts(&admin, "SELECT encode(token_digest, 'hex') FROM api_tokens").await;
    assert_eq!(digests.len(), 1);
    assert_ne!(digests[0].as_deref(), Some(expected.as_str()));

    // Revoke: gone from every read.
    let uow = w.store.begin(&w.a.scope()).await.unwrap();
    uow.api_tokens().revoke_own(token.id).await.unwrap();
    assert!(matches!(
        uow.api_tokens().get_own(token.id).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(uow.api_tokens().list_own(page()).await.unwrap().total, 0);
    uow.commit().await.unwrap();

    // Re-encryption sees the sealed token as a current value of the ring.
    let report = adapters_postgres::unscoped_reencrypt(
        w.store.database(),
        w.store.secrets(),
        adapters_postgres::ReencryptOptions {
            batch_size: 10,
            dry_run: true,
        },
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!((report.scanned, report.already_current), (1, 1));
    assert!(report.failures.is_empty());
}

#[tokio::test]
async fn api_tokens_authenticate_only_while_live_owned_and_untampered() {
    use chrono::Duration;
    use ports::{Clock, RefusalReason, SystemClock};
    use secrecy::SecretString;

    let w = world().await;
    let uow = w.store.begin(&w.a.scope()).await.unwrap();
    let (live, live_value) = uow
        .api_tokens()
        .create(Name::new("live").unwrap(), None)
        .await
        .unwrap();
    let past = SystemClock.now() - Duration::minutes(1);
    let (_, expired_value) = uow
        .api_tokens()
        .create(Name::new("old").unwrap(), Some(past))
        .await
        .unwrap();
    let (other, other_value) = uow
        .api_tokens()
        .create(Name::new("other").unwrap(), None)
        .await
        .unwrap();
    uow.commit().await.unwrap();

    let resolved = resolve(&w.store, &live_value).await.unwrap();
    assert_eq!(resolved.token_id, live.id);
    assert_eq!(resolved.user.user_id, w.a.principal.user_id());
    assert_eq!(
        resolved.user.membership,
        Some(Membership {
            organization_id: w.a.org,
            role: Role::Owner
        })
    );

    // The transaction the token was found in is its organization's: the first statement set
    // the tenant, and the token's own rows are what it reaches.
    let entered = w
        .store
        .begin_api_token(&live_value, ports::Freshness::Current)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(entered.work.tenant(), (w.a.org, w.a.principal.user_id()));
    let projects = entered
        .work
        .projects()
        .list(
            PageRequest::new(
                0,
                10,
                Sort {
                    field: ports::ProjectSort::CreatedAt,
                    direction: SortDirection::Ascending,
                },
            )
            .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(projects.total, 1);
    assert_eq!(projects.items[0].id, w.a.project);
    drop(entered);

    // A refusal names whose token it was, so that the audit event lands in its organization.
    let expired = resolve(&w.store, &expired_value).await.unwrap_err();
    assert_eq!(expired.organization, Some(w.a.org));
    assert_eq!(expired.user, Some(w.a.principal.user_id()));
    assert!(expired.token.is_some());
    let refused = |value: &str| SecretString::from(value.to_owned());
    assert_eq!(
        refusal(&w, &expired_value).await,
        Some(RefusalReason::Expired),
        "expired"
    );
    assert_eq!(
        refusal(&w, &refused("rh-nonsense")).await,
        Some(RefusalReason::Malformed),
        "malformed"
    );
    let unknown = crypto::ApiTokenValue::from_random_bytes(&[3; 32]).into_secret();
    assert_eq!(
        refusal(&w, &unknown).await,
        Some(RefusalReason::Unknown),
        "unknown"
    );

    // A sealed value moved onto another token's row does not authenticate as that row.
    let admin = w.db.admin_pool().await;
    use sea_orm::ConnectionTrait;
    admin
        .execute_unprepared(&format!(
            "UPDATE api_tokens SET token = (SELECT token FROM api_tokens WHERE id = '{}')
             WHERE id = '{}'",
            live.id, other.id
        ))
        .await
        .unwrap();
    assert_eq!(
        refusal(&w, &other_value).await,
        Some(RefusalReason::Unopenable),
        "moved value"
    );

    // Refresh kills the old value at once; revoke kills the token.
    let uow = w.store.begin(&w.a.scope()).await.unwrap();
    let (_, fresh) = uow.api_tokens().refresh_own(live.id).await.unwrap();
    uow.commit().await.unwrap();
    assert_eq!(
        refusal(&w, &live_value).await,
        Some(RefusalReason::Unknown),
        "refreshed away"
    );
    assert_eq!(refusal(&w, &fresh).await, None);
    let uow = w.store.begin(&w.a.scope()).await.unwrap();
    uow.api_tokens().revoke_own(live.id).await.unwrap();
    uow.commit().await.unwrap();
    assert_eq!(
        refusal(&w, &fresh).await,
        Some(RefusalReason::Unknown),
        "revoked"
    );

    // A token of a user who left the organization is dead.
    let colleague = crate::joined(&w.store, &w.a, "c@a.example", Role::Member).await;
    let member = crate::Member::new(colleague, w.a.org, Role::Member);
    let uow = w
        .store
        .begin(&member.tenant_scope().unwrap())
        .await
        .unwrap();
    let (_, member_value) = uow
        .api_tokens()
        .create(Name::new("m").unwrap(), None)
        .await
        .unwrap();
    uow.commit().await.unwrap();
    assert_eq!(refusal(&w, &member_value).await, None);
    let uow = w.store.begin(&w.a.scope()).await.unwrap();
    uow.users().remove(colleague).await.unwrap();
    uow.commit().await.unwrap();
    assert_eq!(
        refusal(&w, &member_value).await,
        Some(RefusalReason::LeftOrganization),
        "owner left"
    );
}

#[tokio::test]
async fn token_use_is_recorded_at_most_once_per_resolution() {
    use chrono::Duration;

    let w = world().await;
    let uow = w.store.begin(&w.a.scope()).await.unwrap();
    let (token, value) = uow
        .api_tokens()
        .create(Name::new("busy").unwrap(), None)
        .await
        .unwrap();
    uow.commit().await.unwrap();
    let last_used = |w: &World| {
        let value = value.clone();
        let store = w.store.clone();
        async move { resolve(&store, &value).await.unwrap().last_used_at }
    };
    assert_eq!(last_used(&w).await, None);

    let touch = |resolution: Duration| {
        let store = w.store.clone();
        let scope = w.a.scope();
        async move {
            let uow = store.begin(&scope).await.unwrap();
            let first = uow
                .api_tokens()
                .touch_own(token.id, resolution)
                .await
                .unwrap();
            uow.commit().await.unwrap();
            first
        }
    };
    assert!(touch(Duration::minutes(5)).await, "first use");
    let first_seen = last_used(&w).await.expect("recorded");
    assert!(!touch(Duration::minutes(5)).await, "not first");
    assert_eq!(last_used(&w).await, Some(first_seen), "throttled: no write");
    assert!(!touch(Duration::zero()).await, "not first");
    assert!(
        last_used(&w).await.unwrap() > first_seen,
        "written once due"
    );

    // Another member cannot touch (or learn of) the owner's token.
    let uow = w.store.begin(&w.b.scope()).await.unwrap();
    assert!(matches!(
        uow.api_tokens().touch_own(token.id, Duration::zero()).await,
        Err(StoreError::NotFound)
    ));
}
