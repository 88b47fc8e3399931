//! Secret columns: sealed at rest, bound to their row and tenant, write-only at the port.

use chrono::{DateTime, Duration, Utc};
use domain::{AuthType, EndpointProtocol, HttpMethod, HttpUrl, Name, RequestHeaders, SecretSlot};
use std::sync::Arc;

use ports::{Clock, SystemClock};
use ports::{EndpointPatch, NewEndpoint, NewModel, SecretPatch, StoreError, UnitOfWorkFactory};
use sea_orm::ConnectionTrait;
use secrecy::{ExposeSecret, SecretString};

use crate::{Tenant, World, count, store_with, texts, world};

const AUTH_TOKEN: &str = "bearer-0123456789-endpoint-token-AAAA";
const CLIENT_SECRET: &str = "client-secret-0123456789-BBBB";
const MODEL_KEY: &str = "sk-provider-key-0123456789-CCCC";

fn now() -> DateTime<Utc> {
    SystemClock.now()
}

fn secret(s: &str) -> SecretString {
    SecretString::from(s.to_owned())
}

fn new_endpoint(name: &str) -> NewEndpoint {
    NewEndpoint {
        project_id: None,
        name: Name::new(name).unwrap(),
        description: None,
        url: HttpUrl::new("https://llm.example/v1/chat").unwrap(),
        method: HttpMethod::Post,
        protocol: EndpointProtocol::Rest,
        request_headers: RequestHeaders::new([("x-team", "qa")]).unwrap(),
        request_mapping: Some(r#"{"input": "{{ input }}"}"#.to_owned()),
        response_mapping: None,
        auth_type: AuthType::ClientCredentials,
        client_id: Some("client-1".to_owned()),
        token_url: Some(HttpUrl::new("https://idp.example/token").unwrap()),
        scopes: vec!["chat".to_owned()],
        audience: None,
        auth_token: Some(secret(AUTH_TOKEN)),
        client_secret: Some(secret(CLIENT_SECRET)),
    }
}

fn new_model(name: &str, key: &str) -> NewModel {
    NewModel {
        name: Name::new(name).unwrap(),
        description: None,
        model_name: Name::new("gpt-4o").unwrap(),
        provider: Name::new("openai").unwrap(),
        endpoint: None,
        request_headers: RequestHeaders::default(),
        key: Some(secret(key)),
    }
}

async fn endpoint_and_model(
    w: &World,
    tenant: &Tenant,
    suffix: &str,
) -> (domain::Endpoint, domain::Model) {
    let uow = w.store.begin(&tenant.scope()).await.unwrap();
    let endpoint = uow
        .endpoints()
        .create(new_endpoint(&format!("endpoint {suffix}")))
        .await
        .unwrap();
    let model = uow
        .models()
        .create(new_model(&format!("model {suffix}"), MODEL_KEY))
        .await
        .unwrap();
    uow.commit().await.unwrap();
    (endpoint, model)
}

#[tokio::test]
async fn secrets_are_write_only_and_unseal_on_the_named_path() {
    let w = world().await;
    let (endpoint, model) = endpoint_and_model(&w, &w.a, "a").await;
    assert!(
        matches!(&endpoint.auth_token, SecretSlot::Set { hint } if hint.as_str() == "bea...AAAA")
    );
    assert!(
        matches!(&endpoint.client_secret, SecretSlot::Set { hint } if hint.as_str() == "cli...BBBB")
    );
    assert_eq!(endpoint.last_token, SecretSlot::Unset);
    assert!(model.key.is_set());
    for shown in [format!("{endpoint:?}"), format!("{model:?}")] {
        for plain in [AUTH_TOKEN, CLIENT_SECRET, MODEL_KEY] {
            assert!(!shown.contains(plain), "a read shows a secret: {shown}");
        }
    }

    let uow = w.store.begin(&w.a.scope()).await.unwrap();
    let credentials = uow
        .endpoints()
        .unseal_credentials(endpoint.id)
        .await
        .unwrap();
    assert_eq!(credentials.auth_token.unwrap().expose_secret(), AUTH_TOKEN);
    assert_eq!(
        credentials.client_secret.unwrap().expose_secret(),
        CLIENT_SECRET
    );
    assert!(credentials.last_token.is_none());
    assert_eq!(
        uow.models()
            .unseal_key(model.id)
            .await
            .unwrap()
            .unwrap()
            .expose_secret(),
        MODEL_KEY
    );

    // Writes: replace one secret, clear another, cache a token.
    let patch = EndpointPatch {
        auth_token: SecretPatch::Set(secret("bearer-rotated-0123456789-DDDD")),
        client_secret: SecretPatch::Clear,
        last_token: SecretPatch::Set(secret("cached-access-token-0123456789-EEEE")),
        last_token_expires_at: ports::Patch::Set(Some(now() + Duration::minutes(5))),
        ..Default::default()
    };
    let updated = uow.endpoints().update(endpoint.id, patch).await.unwrap();
    assert_eq!(updated.client_secret, SecretSlot::Unset);
    assert!(updated.last_token.is_set());
    let credentials = uow
        .endpoints()
        .unseal_credentials(endpoint.id)
        .await
        .unwrap();
    assert_eq!(
        credentials.auth_token.unwrap().expose_secret(),
        "bearer-rotated-0123456789-DDDD"
    );
    assert!(credentials.client_secret.is_none());
    uow.commit().await.unwrap();

    // Another organization cannot reach them.
    let uow = w.store.begin(&w.b.scope()).await.unwrap();
    assert!(matches!(
        uow.endpoints().unseal_credentials(endpoint.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        uow.models().unseal_key(model.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        uow.endpoints().get(endpoint.id).await,
        Err(StoreError::NotFound)
    ));
}

#[tokio::test]
async fn the_raw_tables_hold_only_fernet_tokens() {
    let w = world().await;
    let (endpoint, model) = endpoint_and_model(&w, &w.a, "a").await;
    let uow = w.store.begin(&w.a.scope()).await.unwrap();
    let patch = EndpointPatch {
        last_token: SecretPatch::Set(secret("cached-access-token-0123456789-EEEE")),
        ..Default::default()
    };
    uow.endpoints().update(endpoint.id, patch).await.unwrap();
    uow.commit().await.unwrap();

    let admin = w.db.admin_pool().await;
    let sealed = texts(
        &admin,
        &format!(
            "SELECT auth_token FROM endpoints WHERE id = '{0}'
             UNION ALL SELECT client_secret FROM endpoints WHERE id = '{0}'
             UNION ALL SELECT last_token FROM endpoints WHERE id = '{0}'
             UNION ALL SELECT key FROM models WHERE id = '{1}'",
            endpoint.id, model.id
        ),
    )
    .await;
    assert_eq!(sealed.len(), 4);
    for value in sealed {
        let value = value.unwrap();
        assert!(
            crypto::looks_like_fernet_token(&value),
            "not a Fernet token: {value}"
        );
    }
    // No plaintext anywhere in the rows, whatever the column.
    let rows = texts(
        &admin,
        &format!(
            "SELECT row_to_json(e)::text FROM endpoints e WHERE id = '{}'
             UNION ALL SELECT row_to_json(m)::text FROM models m WHERE id = '{}'",
            endpoint.id, model.id
        ),
    )
    .await;
    for row in rows.into_iter().flatten() {
        for plain in [
            AUTH_TOKEN,
            CLIENT_SECRET,
            MODEL_KEY,
            "cached-access-token-0123456789-EEEE",
        ] {
            assert!(!row.contains(plain), "plaintext in a row: {row}");
        }
    }
}

#[tokio::test]
async fn a_sealed_value_moved_to_another_row_or_tenant_does_not_open() {
    let w = world().await;
    let (a_endpoint, a_model) = endpoint_and_model(&w, &w.a, "a1").await;
    let (a_other, _) = endpoint_and_model(&w, &w.a, "a2").await;
    let (_, b_model) = endpoint_and_model(&w, &w.b, "b").await;

    // As the owner would (a superuser here): copy A's model key into B's model, and A's
    // endpoint token into another endpoint of A.
    let admin = w.db.admin_pool().await;
    admin
        .execute_unprepared(&format!(
            "UPDATE models SET key = (SELECT key FROM models WHERE id = '{}') WHERE id = '{}';
             UPDATE endpoints SET auth_token = (SELECT auth_token FROM endpoints WHERE id = '{}')
             WHERE id = '{}';",
            a_model.id, b_model.id, a_endpoint.id, a_other.id
        ))
        .await
        .unwrap();

    let before = w.store.secrets().unopenable();
    let uow = w.store.begin(&w.b.scope()).await.unwrap();
    let error = uow.models().unseal_key(b_model.id).await.unwrap_err();
    let text = format!(
        "{error:?} {}",
        std::error::Error::source(&error)
            .map(ToString::to_string)
            .unwrap_or_default()
    );
    assert!(text.contains("does not open"), "{text}");
    assert!(
        !text.contains(MODEL_KEY),
        "the secret leaked into the error: {text}"
    );
    drop(uow);

    let uow = w.store.begin(&w.a.scope()).await.unwrap();
    assert!(
        uow.endpoints()
            .unseal_credentials(a_other.id)
            .await
            .is_err()
    );
    drop(uow);
    assert_eq!(
        w.store.secrets().unopenable(),
        before + 2,
        "each refusal is counted"
    );

    // The originals still open where they belong.
    let uow = w.store.begin(&w.a.scope()).await.unwrap();
    assert_eq!(
        uow.models()
            .unseal_key(a_model.id)
            .await
            .unwrap()
            .unwrap()
            .expose_secret(),
        MODEL_KEY
    );
    let credentials = uow
        .endpoints()
        .unseal_credentials(a_endpoint.id)
        .await
        .unwrap();
    assert_eq!(credentials.auth_token.unwrap().expose_secret(), AUTH_TOKEN);
}

#[tokio::test]
async fn legacy_plaintext_opens_only_inside_the_window_and_a_wrong_key_never() {
    let w = world().await;
    let (_, model) = endpoint_and_model(&w, &w.a, "a").await;
    let admin = w.db.admin_pool().await;
    admin
        .execute_unprepared(&format!(
            "UPDATE models SET key = 'sk-legacy-plain' WHERE id = '{}'",
            model.id
        ))
        .await
        .unwrap();
    let key = test_support::random_fernet_key();

    let window = store_with(&w.db, 2, &key, Some(now() + Duration::hours(1))).await;
    let uow = window.begin(&w.a.scope()).await.unwrap();
    let opened = uow.models().unseal_key(model.id).await.unwrap().unwrap();
    assert_eq!(opened.expose_secret(), "sk-legacy-plain");
    assert_eq!(window.secrets().legacy_plaintext_reads(), 1);
    drop(uow);

    for closed in [None, Some(now() - Duration::seconds(1))] {
        let store = store_with(&w.db, 2, &key, closed).await;
        let uow = store.begin(&w.a.scope()).await.unwrap();
        assert!(
            uow.models().unseal_key(model.id).await.is_err(),
            "window {closed:?}"
        );
    }

    // A value sealed under a key the ring does not hold is an error, window or not.
    let (_, sealed_model) = endpoint_and_model(&w, &w.a, "a2").await;
    let uow = window.begin(&w.a.scope()).await.unwrap();
    let result = uow.models().unseal_key(sealed_model.id).await;
    assert!(result.is_err(), "a wrong key must not read as plaintext");
    assert_eq!(window.secrets().legacy_plaintext_reads(), 1);
}

/// A model's key as `store` opens it in `tenant`'s organization.
async fn open(
    store: &adapters_postgres::PgStore,
    tenant: &Tenant,
    model: domain::ModelId,
) -> Result<Option<String>, StoreError> {
    let uow = store.begin(&tenant.scope()).await.unwrap();
    uow.models()
        .unseal_key(model)
        .await
        .map(|k| k.map(|k| k.expose_secret().to_owned()))
}

#[tokio::test]
async fn an_unbound_token_opens_only_inside_its_window_and_each_read_is_counted() {
    let w = world().await;
    let (_, mine) = endpoint_and_model(&w, &w.a, "a").await;
    let (_, theirs) = endpoint_and_model(&w, &w.b, "b").await;
    let key = test_support::random_fernet_key();
    // A bare Fernet token of a secret, as the Python backend wrote them: bound to no place,
    // so a copy into another organization's row opens there as well as here.
    let bare = crypto::KeyRing::parse("K", &SecretString::from(key.clone()))
        .unwrap()
        .encrypt_at(b"sk-bare-python", now());
    let admin = w.db.admin_pool().await;
    admin
        .execute_unprepared(&format!(
            "UPDATE models SET key = '{bare}' WHERE id IN ('{}', '{}')",
            mine.id, theirs.id
        ))
        .await
        .unwrap();
    // Outside a window (none, or one that has ended) it opens nowhere: refused and counted.
    for closed in [None, Some(now() - Duration::seconds(1))] {
        let windows = crate::Windows {
            plaintext_until: None,
            unbound_until: closed,
        };
        let store = crate::store_clocked(&w.db, 2, &key, windows, Arc::new(SystemClock)).await;
        assert!(open(&store, &w.a, mine.id).await.is_err(), "{closed:?}");
        assert!(open(&store, &w.b, theirs.id).await.is_err(), "{closed:?}");
        assert_eq!(store.secrets().legacy_unbound_reads(), 0);
        assert_eq!(store.secrets().unopenable(), 2);
    }
    // Inside the window it opens (the migration from the old backend), each read counted.
    let windows = crate::Windows {
        plaintext_until: None,
        unbound_until: Some(now() + Duration::hours(1)),
    };
    let store = crate::store_clocked(&w.db, 2, &key, windows, Arc::new(SystemClock)).await;
    assert_eq!(
        open(&store, &w.a, mine.id).await.unwrap().as_deref(),
        Some("sk-bare-python")
    );
    assert_eq!(store.secrets().legacy_unbound_reads(), 1);
}

#[tokio::test]
async fn endpoints_reference_projects_of_their_own_organization_only() {
    let w = world().await;
    let uow = w.store.begin(&w.a.scope()).await.unwrap();
    let foreign = NewEndpoint {
        project_id: Some(w.b.project),
        ..new_endpoint("x")
    };
    assert!(matches!(
        uow.endpoints().create(foreign).await,
        Err(StoreError::MissingReference { what: "project" })
    ));
    let own = NewEndpoint {
        project_id: Some(w.a.project),
        ..new_endpoint("y")
    };
    let endpoint = uow.endpoints().create(own).await.unwrap();
    assert_eq!(endpoint.project_id, Some(w.a.project));
    // Stored as jsonb: the same document, in its normal form.
    assert_eq!(
        endpoint.request_mapping.as_deref(),
        Some(r#"{"input":"{{ input }}"}"#)
    );
    let bad_json = NewEndpoint {
        request_mapping: Some("{not json".to_owned()),
        ..new_endpoint("z")
    };
    assert!(matches!(
        uow.endpoints().create(bad_json).await,
        Err(StoreError::InvalidInput {
            what: "request_mapping"
        })
    ));
    drop(uow);
    let admin = w.db.admin_pool().await;
    assert_eq!(
        count(&admin, "SELECT count(*) FROM endpoints").await,
        0,
        "nothing was committed"
    );
}
