//! Authentication over HTTP: every forged, stale or revoked credential gets a 401 with a
//! `WWW-Authenticate` challenge and a body that says nothing of why; the reason is in the
//! audit log, in the organization's chain when the credential names one.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Duration;
use domain::{Name, Role};
use ports::{Clock, SystemClock, UnitOfWorkFactory};
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{AUDIENCE, ISSUER, Reply, TestApp, TestUser, spawn_app, spawn_app_with};

async fn me(app: &TestApp, authorization: Option<&str>) -> Reply {
    let mut request = app.client.get(app.url("/api/v1/me"));
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    app.send(request).await
}

async fn me_with(app: &TestApp, token: &str) -> Reply {
    me(app, Some(&format!("Bearer {token}"))).await
}

/// Asserts that `token`, whose credential was just changed outside the server, is refused
/// (a generic 401) within `ports::CREDENTIAL_STALENESS`.
async fn refused_within_the_bound(app: &TestApp, token: &str, case: &str) {
    let changed = std::time::Instant::now();
    loop {
        let reply = me_with(app, token).await;
        if reply.status != 200 {
            assert_refused(reply, case).await;
            return;
        }
        assert!(
            changed.elapsed() < ports::CREDENTIAL_STALENESS,
            "{case}: still accepted after the bound"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Asserts a generic 401 with a Bearer challenge, and returns the body's text.
async fn assert_refused(response: Reply, case: &str) -> String {
    assert_eq!(response.status, 401, "{case}");
    let challenge = response.header("www-authenticate").unwrap().to_owned();
    assert!(
        challenge.starts_with("Bearer realm=\"rhesis\""),
        "{case}: {challenge}"
    );
    assert_eq!(response.problem_code(), "unauthenticated", "{case}");
    let body = response.json();
    let text = body.to_string();
    for reason in [
        "expired",
        "signature",
        "revoked",
        "unknown",
        "algorithm",
        "audience",
        "issuer",
    ] {
        assert!(!text.to_lowercase().contains(reason), "{case}: {text}");
    }
    text
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// Claims as the server issues them, for `user`, valid now.
fn claims(user: &TestUser) -> Value {
    let now = SystemClock.now().timestamp();
    json!({
        "sub": user.id.as_uuid(),
        "org": user.membership.organization_id.as_uuid(),
        "role": user.membership.role.as_str(),
        "iat": now, "nbf": now, "exp": now + 600,
        "iss": ISSUER, "aud": AUDIENCE,
        "jti": Uuid::now_v7(),
        "auth_time": now,
        "typ": "access",
    })
}

/// A token with `claims`, HS256-signed with `key` under the header `kid`.
fn sign(claims: &Value, key: &str, kid: &str) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(
        &header,
        claims,
        &jsonwebtoken::EncodingKey::from_secret(key.as_bytes()).unwrap(),
    )
    .unwrap()
}

async fn audit_reasons(app: &TestApp, chain: &str) -> Vec<String> {
    let admin = app.admin_pool().await;
    let rows = admin
        .query_all_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            format!(
                "SELECT reason, occurrences FROM audit_events WHERE {chain} \
                 AND action = 'authentication.failed' ORDER BY occurred_at, seq"
            ),
        ))
        .await
        .unwrap();
    // A counted event stands for its occurrences: each refusal is one reason here.
    rows.iter()
        .flat_map(|r| {
            let reason = r
                .try_get::<Option<String>>("", "reason")
                .unwrap()
                .unwrap_or_default();
            let occurrences = r.try_get::<i32>("", "occurrences").unwrap();
            std::iter::repeat_n(reason, usize::try_from(occurrences).unwrap())
        })
        .collect()
}

#[tokio::test]
async fn a_valid_access_token_authenticates_with_the_current_role() {
    let app = spawn_app().await;
    let owner = app.owner("acme").await;
    let response = me_with(&app, &app.jwt(&owner)).await;
    assert_eq!(response.status, 200);
    let body: Value = response.json();
    assert_eq!(body["user_id"], json!(owner.id.as_uuid()));
    assert_eq!(
        body["organization_id"],
        json!(owner.membership.organization_id.as_uuid())
    );
    assert_eq!(body["role"], "owner");
    assert_eq!(body["authenticated_by"], "jwt");

    // A token issued while the user was an admin carries the role they hold now.
    let member = app.member(&owner, Role::Admin).await;
    let token = app.jwt(&member);
    let uow = app.store.begin(&owner.scope()).await.unwrap();
    uow.users().set_role(member.id, Role::Member).await.unwrap();
    uow.commit().await.unwrap();
    let body: Value = me_with(&app, &token).await.json();
    assert_eq!(body["role"], "member");
}

#[tokio::test]
async fn forged_and_stale_access_tokens_are_refused() {
    let app = spawn_app().await;
    let owner = app.owner("acme").await;
    let good = app.jwt(&owner);
    let kid = jsonwebtoken::decode_header(&good).unwrap().kid.unwrap();
    let now = SystemClock.now();

    let mut cases: Vec<(&str, String)> = Vec::new();
    // The signature of a valid token, altered.
    let (head, signature) = good.rsplit_once('.').unwrap();
    let flipped = if signature.starts_with('A') { "B" } else { "A" };
    cases.push((
        "tampered signature",
        format!("{head}.{flipped}{}", &signature[1..]),
    ));
    // The claims of a valid token, altered (another organization), signature kept.
    let mut other_org = claims(&owner);
    other_org["org"] = json!(Uuid::now_v7());
    let forged = sign(&other_org, &app.jwt_key, &kid);
    let (_, forged_claims_and_sig) = forged.split_once('.').unwrap();
    let (forged_claims, _) = forged_claims_and_sig.split_once('.').unwrap();
    let (good_head, _) = good.split_once('.').unwrap();
    cases.push((
        "tampered claims",
        format!("{good_head}.{forged_claims}.{signature}"),
    ));
    // alg: none, with and without a signature.
    let none_head = b64(&json!({"alg": "none", "typ": "JWT", "kid": kid}));
    cases.push(("alg none", format!("{none_head}.{}.", b64(&claims(&owner)))));
    cases.push((
        "alg none signed",
        format!("{none_head}.{}.{signature}", b64(&claims(&owner))),
    ));
    // HS256 with another key, under the server's kid and under no kid.
    cases.push((
        "other key",
        sign(
            &claims(&owner),
            "another-key-of-at-least-thirty-two-bytes",
            &kid,
        ),
    ));
    cases.push(("no kid", {
        let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        jsonwebtoken::encode(
            &header,
            &claims(&owner),
            &jsonwebtoken::EncodingKey::from_secret(app.jwt_key.as_bytes()).unwrap(),
        )
        .unwrap()
    }));
    // An RS256 header over our claims (algorithm confusion).
    let rs_head = b64(&json!({"alg": "RS256", "typ": "JWT", "kid": kid}));
    cases.push((
        "RS256 header",
        format!("{rs_head}.{}.{signature}", b64(&claims(&owner))),
    ));
    // Time.
    cases.push((
        "expired",
        app.jwt_at(&owner, now - Duration::hours(1), now - Duration::hours(1)),
    ));
    cases.push((
        "not yet valid",
        app.jwt_at(&owner, now + Duration::hours(1), now),
    ));
    // Issuer, audience, type and required claims, correctly signed.
    for (case, field, value) in [
        ("wrong iss", "iss", json!("someone-else")),
        ("wrong aud", "aud", json!("another-api")),
        ("wrong typ", "typ", json!("refresh")),
    ] {
        let mut c = claims(&owner);
        c[field] = value;
        cases.push((case, sign(&c, &app.jwt_key, &kid)));
    }
    for missing in ["exp", "nbf", "iss", "aud", "sub", "jti", "auth_time", "typ"] {
        let mut c = claims(&owner);
        c.as_object_mut().unwrap().remove(missing);
        cases.push((missing, sign(&c, &app.jwt_key, &kid)));
    }
    cases.push(("garbage", "not-a-token".to_owned()));

    let mut seen = std::collections::BTreeSet::new();
    for (case, token) in &cases {
        assert!(seen.insert(token.clone()), "{case} repeats another case");
        assert_refused(me_with(&app, token).await, case).await;
    }
    // The valid token still works: nothing above was refused for a reason of the setup.
    assert_eq!(me_with(&app, &good).await.status, 200);

    // Each refusal is in the system chain (the credential proved nothing), with its reason.
    let reasons = audit_reasons(&app, "organization_id IS NULL").await;
    assert_eq!(reasons.len(), cases.len(), "{reasons:?}");
    for reason in [
        "bad_signature",
        "invalid",
        "expired",
        "not_yet_valid",
        "malformed",
    ] {
        assert!(
            reasons.iter().any(|r| r == reason),
            "{reason} in {reasons:?}"
        );
    }
}

#[tokio::test]
async fn malformed_authorization_headers_are_refused() {
    let app = spawn_app().await;
    // No credential: a plain challenge, no error attribute, nothing recorded.
    let response = me(&app, None).await;
    assert_eq!(
        response.header("www-authenticate").unwrap(),
        "Bearer realm=\"rhesis\""
    );
    assert_refused(response, "missing").await;
    for value in [
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer ",
        "bearer",
        "Token abc",
    ] {
        assert_refused(me(&app, Some(value)).await, value).await;
    }
    assert_eq!(
        audit_reasons(&app, "organization_id IS NULL").await.len(),
        5
    );
}

#[tokio::test]
async fn logout_revokes_the_token_and_disabling_or_removing_the_user_ends_theirs() {
    let app = spawn_app().await;
    let owner = app.owner("acme").await;
    let org = *owner.membership.organization_id.as_uuid();
    let token = app.jwt(&owner);
    let other = app.jwt(&owner);
    assert_eq!(me_with(&app, &token).await.status, 200);
    let logout = app.call("POST", "/auth/logout", Some(&token), None).await;
    assert_eq!(logout.status, 204);
    assert_refused(me_with(&app, &token).await, "revoked").await;
    // Logging out again with the revoked token is refused too.
    let again = app.call("POST", "/auth/logout", Some(&token), None).await;
    assert_eq!(again.status, 401);
    // Only that token: another session of the same user goes on.
    assert_eq!(me_with(&app, &other).await.status, 200);

    // A member removed from the organization, and a disabled user, are refused within the
    // credential cache's bound (the removal is made through a store of the test's, the
    // disabling by the owner's SQL: for the server both are changes made elsewhere).
    let member = app.member(&owner, Role::Member).await;
    let member_token = app.jwt(&member);
    assert_eq!(me_with(&app, &member_token).await.status, 200);
    let uow = app.store.begin(&owner.scope()).await.unwrap();
    uow.users().remove(member.id).await.unwrap();
    uow.commit().await.unwrap();
    refused_within_the_bound(&app, &member_token, "removed").await;

    let admin = app.admin_pool().await;
    admin
        .execute_unprepared(&format!(
            "UPDATE users SET is_active = false WHERE id = '{}'",
            owner.id.as_uuid()
        ))
        .await
        .unwrap();
    refused_within_the_bound(&app, &other, "disabled").await;

    // These refusals name the organization the tokens were issued for.
    let reasons = audit_reasons(&app, &format!("organization_id = '{org}'")).await;
    assert_eq!(
        reasons,
        ["revoked", "revoked", "left_organization", "user_inactive"]
    );
}

#[tokio::test]
async fn api_tokens_authenticate_and_their_first_use_is_recorded_once() {
    let app = spawn_app().await;
    let owner = app.owner("acme").await;
    let org = *owner.membership.organization_id.as_uuid();
    let uow = app.store.begin(&owner.scope()).await.unwrap();
    let (token, value) = uow
        .api_tokens()
        .create(Name::new("ci").unwrap(), None)
        .await
        .unwrap();
    let (_, expired) = uow
        .api_tokens()
        .create(
            Name::new("old").unwrap(),
            Some(SystemClock.now() - Duration::minutes(1)),
        )
        .await
        .unwrap();
    uow.commit().await.unwrap();
    use secrecy::ExposeSecret;

    for _ in 0..3 {
        let response = me_with(&app, value.expose_secret()).await;
        assert_eq!(response.status, 200);
        let body: Value = response.json();
        assert_eq!(body["authenticated_by"], "api_token");
        assert_eq!(body["auth_time"], Value::Null);
    }
    let used = app
        .count(&format!(
            "SELECT count(*) FROM audit_events WHERE organization_id = '{org}' \
             AND action = 'token.used' AND target_id = '{}'",
            token.id
        ))
        .await;
    assert_eq!(used, 1, "first use recorded once");
    let last_used = app
        .count(&format!(
            "SELECT count(*) FROM api_tokens WHERE id = '{}' AND last_used_at IS NOT NULL",
            token.id
        ))
        .await;
    assert_eq!(last_used, 1);

    assert_refused(
        me_with(&app, expired.expose_secret()).await,
        "expired token",
    )
    .await;
    let unknown = crypto::ApiTokenValue::from_random_bytes(&[7; 32]).into_secret();
    assert_refused(
        me_with(&app, unknown.expose_secret()).await,
        "unknown token",
    )
    .await;
    assert_refused(me_with(&app, "rh-short").await, "malformed token").await;
    assert_eq!(
        audit_reasons(&app, &format!("organization_id = '{org}'")).await,
        ["expired"]
    );
    assert_eq!(
        audit_reasons(&app, "organization_id IS NULL").await,
        ["unknown", "malformed"]
    );

    // An API token cannot log out (it is revoked through its own route).
    let logout = app
        .client
        .post(app.url("/auth/logout"))
        .bearer_auth(value.expose_secret())
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 403);
}

#[tokio::test]
async fn the_development_login_exists_in_development_only() {
    let app = spawn_app().await;
    let response = app.call("POST", "/auth/local-login", None, None).await;
    assert_eq!(response.status, 404, "test profile");
    let spec: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(spec["paths"].get("/auth/local-login").is_none());
    assert!(spec["paths"].get("/api/v1/me").is_some());

    let dev = spawn_app_with(server::config::Profile::Development).await;
    let none_seeded = dev.call("POST", "/auth/local-login", None, None).await;
    assert_eq!(none_seeded.status, 404, "nothing seeded yet");
    let args = crate::serve_args(server::config::Profile::Development, dev.db.app_url());
    server::seed_dev(&args).await.unwrap();
    let response = dev.call("POST", "/auth/local-login", None, None).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("cache-control").unwrap(), "no-store");
    let body: Value = response.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    let token = body["access_token"].as_str().unwrap();
    dev.secret(token);
    let me: Value = me_with(&dev, token).await.json();
    assert_eq!(me["role"], "owner");
    let logins = dev
        .count(
            "SELECT count(*) FROM audit_events WHERE action = 'authentication.succeeded' \
         AND reason = 'local_login' AND organization_id IS NOT NULL",
        )
        .await;
    assert_eq!(logins, 1);
}
