//! API tokens: shown once, sealed at rest with a digest for lookup, their owner's alone.

use domain::{Email, Membership, Name, Role};
use ports::{
    ApiTokenSort, AuthMethod, PageRequest, Principal, Sort, SortDirection, StoreError,
    UnitOfWorkFactory,
};
use secrecy::ExposeSecret;

use crate::{texts, world};

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
    let uow = w.store.begin(&w.a.scope()).await.unwrap();
    let colleague = uow
        .users()
        .invite(Email::new("colleague@a.example").unwrap(), Role::Admin)
        .await
        .unwrap();
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
    let other = Principal::authenticated(
        colleague.id,
        Some(Membership {
            organization_id: w.a.org,
            role: Role::Admin,
        }),
        AuthMethod::Operator,
        None,
    );
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
        w.store.connection(),
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
