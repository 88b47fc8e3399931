//! Browser login against a real OpenID Connect provider (oidc-provider, run by Node): the
//! whole flow with the provider's login form, the session cookie's attributes, the attacks
//! that must fail, key rotation at the provider, the provider being down, session fixation,
//! session expiry by the database's clock (the tests move the stored times back), logout,
//! disabling, CSRF and step-up.

use std::sync::Arc;

use chrono::Duration;
use ports::{Clock, SystemClock};
use server::config::{Profile, ServeArgs};
use test_support::{ManualClock, OidcTestProvider};

use crate::{FRONTEND, Reply, TestApp, spawn_app_on};

const CLIENT_ID: &str = "rhesis-backend";
const CLIENT_SECRET: &str = "a-client-secret-for-the-login-tests-0123456789";

/// An account at the provider.
fn account(sub: &str, email: &str, verified: bool) -> serde_json::Value {
    serde_json::json!({ "sub": sub, "email": email, "email_verified": verified, "name": sub })
}

/// A browser for the provider's pages: keeps the provider's cookies (its login session),
/// follows no redirects.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A server wired to a provider, and a browser for the provider's pages.
struct World {
    app: TestApp,
    provider: OidcTestProvider,
    /// Keeps the provider's cookies (its login session), follows no redirects.
    browser: reqwest::Client,
    clock: Arc<ManualClock>,
}

async fn world_with(
    accounts: &[serde_json::Value],
    configure: impl FnOnce(&mut ServeArgs),
) -> World {
    // The provider must know the server's address before the server starts: the socket is
    // bound here and handed over, so no other test can take the port in between.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let public = format!("http://127.0.0.1:{port}");
    let clients = serde_json::json!([{
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "redirect_uris": [format!("{public}/auth/callback")],
        "post_logout_redirect_uris": [FRONTEND],
    }]);
    let provider = OidcTestProvider::start(
        &clients.to_string(),
        &serde_json::Value::from(accounts.to_vec()).to_string(),
        "key-1",
    );
    let issuer = provider.issuer();
    let clock = ManualClock::at(SystemClock.now());
    let app = spawn_app_on(
        Profile::Test,
        |args| {
            args.login.oidc_issuer_url = Some(issuer);
            args.login.oidc_client_id = Some(CLIENT_ID.to_owned());
            args.login.oidc_client_secret = Some(CLIENT_SECRET.to_owned().into());
            args.login.public_url = Some(public);
            configure(args);
        },
        clock.clone(),
        Some(listener),
    )
    .await;
    app.secret(CLIENT_SECRET);
    World {
        app,
        provider,
        browser: browser(),
        clock,
    }
}

async fn world(accounts: &[serde_json::Value]) -> World {
    world_with(accounts, |_| {}).await
}

/// The value of the cookie `name` that a reply sets, and the whole `Set-Cookie` line.
fn set_cookie(reply: &Reply, name: &str) -> Option<(String, String)> {
    reply
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|line| line.starts_with(&format!("{name}=")))
        .map(|line| {
            let value = line[name.len() + 1..]
                .split(';')
                .next()
                .unwrap_or_default()
                .to_owned();
            (value, line.to_owned())
        })
}

/// A login begun at the server: the provider's URL and the login cookie's value.
async fn begin(w: &World, query: &str) -> (String, String) {
    let reply = w
        .app
        .call("GET", &format!("/auth/login{query}"), None, None)
        .await;
    assert_eq!(reply.status, 303, "{reply:?}");
    let location = reply.header("location").unwrap().to_owned();
    let (state, line) = set_cookie(&reply, api_http::LOGIN_COOKIE).unwrap();
    for attribute in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(line.contains(attribute), "{attribute} in {line}");
    }
    (location, state)
}

/// At the provider: follows its redirects and fills its login form as `sub` when it asks,
/// until it sends the browser back to the server; that URL.
async fn at_provider(w: &World, authorize_url: &str, sub: &str) -> String {
    let issuer = w.provider.issuer();
    let mut url = authorize_url.to_owned();
    for _ in 0..10 {
        if !url.starts_with(&issuer) {
            return url;
        }
        let response = w.browser.get(&url).send().await.unwrap();
        if response.status().is_redirection() {
            let location = response.headers()["location"].to_str().unwrap().to_owned();
            url = if location.starts_with('/') {
                format!("{issuer}{location}")
            } else {
                location
            };
            continue;
        }
        let page = response.text().await.unwrap();
        let action = page
            .split("action=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_else(|| panic!("no form at {url}: {page}"))
            .to_owned();
        let response = w
            .browser
            .post(&action)
            .form(&[("prompt", "login"), ("login", sub), ("password", "any")])
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_redirection(),
            "{:?}",
            response.status()
        );
        url = response.headers()["location"].to_str().unwrap().to_owned();
    }
    panic!("the provider never sent the browser back");
}

/// Back at the server with the provider's answer and the login cookie.
async fn callback(w: &World, callback_url: &str, state_cookie: Option<&str>) -> Reply {
    callback_in_session(w, callback_url, state_cookie, None).await
}

/// As [`callback`], from a browser that holds the session cookie `session` already.
async fn callback_in_session(
    w: &World,
    callback_url: &str,
    state_cookie: Option<&str>,
    session: Option<&str>,
) -> Reply {
    let cookies: Vec<String> = [
        state_cookie.map(|state| format!("{}={state}", api_http::LOGIN_COOKIE)),
        session.map(|id| format!("{}={id}", api_http::SESSION_COOKIE)),
    ]
    .into_iter()
    .flatten()
    .collect();
    let mut request = w.app.client.get(callback_url);
    if !cookies.is_empty() {
        request = request.header("cookie", cookies.join("; "));
    }
    w.app.send(request).await
}

/// A whole login as `sub`; the callback's reply.
async fn login(w: &World, query: &str, sub: &str) -> Reply {
    let (authorize, state) = begin(w, query).await;
    let back = at_provider(w, &authorize, sub).await;
    callback(w, &back, Some(&state)).await
}

/// The session cookie a successful login set.
fn session_of(reply: &Reply) -> String {
    assert_eq!(reply.status, 303, "{reply:?}");
    set_cookie(reply, api_http::SESSION_COOKIE)
        .unwrap_or_else(|| panic!("no session cookie: {reply:?}"))
        .0
}

/// A request with the session cookie (and, for changes, the frontend's Origin).
async fn with_session(
    w: &World,
    method: &str,
    path: &str,
    session: &str,
    origin: Option<&str>,
) -> Reply {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = w
        .app
        .client
        .request(method, w.app.url(path))
        .header("cookie", format!("{}={session}", api_http::SESSION_COOKIE));
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    w.app.send(request).await
}

/// `reason` of every failed login in the audit log, in order.
async fn failures(app: &TestApp) -> Vec<String> {
    app.strings(
        "SELECT reason FROM audit_events WHERE action = 'authentication.failed' \
         AND target_type = 'login' ORDER BY occurred_at, seq",
    )
    .await
}

/// Sets a test mode at the provider (`/__test/next-id-token`, `/__test/next-userinfo`).
async fn provider_mode(w: &World, hook: &str, mode: serde_json::Value) {
    let set = w
        .browser
        .post(format!("{}/__test/{hook}", w.provider.issuer()))
        .body(mode.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 204, "{hook}");
}

/// How many UserInfo requests the provider has answered.
async fn userinfo_calls(w: &World) -> u64 {
    let reply: serde_json::Value = w
        .browser
        .get(format!("{}/__test/userinfo-calls", w.provider.issuer()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    reply["calls"].as_u64().unwrap()
}

/// `email`, `is_verified` and `name` of the user linked to `subject`.
async fn stored_user(app: &TestApp, subject: &str) -> Vec<String> {
    app.strings(&format!(
        "SELECT concat_ws(' ', email, is_verified::text, name) FROM users \
         WHERE idp_subject = '{subject}'"
    ))
    .await
}

#[tokio::test]
async fn a_browser_logs_in_and_its_session_works_on_the_api() {
    let w = world(&[account("alice", "alice@example.org", true)]).await;
    // A cookie planted before the login (session fixation) is not the one after.
    let planted = "planted-session-id";
    let return_to = format!("{FRONTEND}/projects?tab=1");
    let (authorize, state) = begin(&w, &format!("?return_to={}", urlencode(&return_to))).await;
    let back = at_provider(&w, &authorize, "alice").await;
    let reply = callback_in_session(&w, &back, Some(&state), Some(planted)).await;
    assert_eq!(reply.status, 303, "{reply:?}");
    assert_eq!(reply.header("location"), Some(return_to.as_str()));
    let (session, line) = set_cookie(&reply, api_http::SESSION_COOKIE).unwrap();
    assert_ne!(session, planted);
    for attribute in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(line.contains(attribute), "{attribute} in {line}");
    }
    assert!(!line.to_ascii_lowercase().contains("domain="), "{line}");
    // The login cookie is cleared.
    let (_, cleared) = set_cookie(&reply, api_http::LOGIN_COOKIE).unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");

    let me = with_session(&w, "GET", "/auth/me", &session, None).await;
    assert_eq!(me.status, 200, "{me:?}");
    assert_eq!(me.json()["authenticated_by"], "session");
    let user_id = me.json()["user_id"].as_str().unwrap().to_owned();
    assert!(
        me.json()["organization_id"].is_null(),
        "a first login joins nothing"
    );

    // A session token for the single-page app works as a bearer token.
    let token = with_session(&w, "POST", "/auth/session-token", &session, Some(FRONTEND)).await;
    assert_eq!(token.status, 200, "{token:?}");
    let jwt = token.json()["access_token"].as_str().unwrap().to_owned();
    w.app.secret(&jwt);
    let me = w.app.call("GET", "/api/v1/me", Some(&jwt), None).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.json()["user_id"], user_id.as_str());
    assert!(!me.json()["auth_time"].is_null());

    // The table holds the id's hash only: no stored value works as a cookie.
    let admin = w.app.admin_pool().await;
    let stored = {
        use sea_orm::ConnectionTrait;
        admin
            .query_all_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                "SELECT encode(id_hash, 'hex') AS h, encode(id_hash, 'base64') AS b, data::text AS d \
                 FROM sessions"
                    .to_owned(),
            ))
            .await
            .unwrap()
    };
    assert_eq!(stored.len(), 1);
    for column in ["h", "b", "d"] {
        let value: String = stored[0].try_get("", column).unwrap();
        assert!(!value.contains(&session) && !session.contains(&value));
        let reply = with_session(&w, "GET", "/auth/me", &value, None).await;
        assert_eq!(reply.status, 401, "{column} used as a cookie");
    }
    assert_eq!(
        w.app
            .count(&format!(
                "SELECT count(*) FROM audit_events WHERE action = 'authentication.succeeded' \
                 AND reason = 'oidc' AND actor_user_id = '{user_id}'"
            ))
            .await,
        1
    );
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[tokio::test]
async fn forged_replayed_and_misdirected_logins_fail() {
    let w = world(&[account("alice", "alice@example.org", true)]).await;
    // No login cookie, or one for another login.
    let (authorize, state) = begin(&w, "").await;
    let back = at_provider(&w, &authorize, "alice").await;
    assert_eq!(callback(&w, &back, None).await.status, 401);
    let (_, other_state) = begin(&w, "").await;
    assert_eq!(callback(&w, &back, Some(&other_state)).await.status, 401);
    // The right one works once; the same callback again is refused.
    session_of(&callback(&w, &back, Some(&state)).await);
    assert_eq!(callback(&w, &back, Some(&state)).await.status, 401);
    // The used code under a new login's state: the provider refuses it.
    let (_, fresh_state) = begin(&w, "").await;
    let code = url::Url::parse(&back)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let replayed = format!(
        "{}/auth/callback?code={code}&state={fresh_state}",
        w.app.address
    );
    assert_eq!(
        callback(&w, &replayed, Some(&fresh_state)).await.status,
        401
    );
    // A provider error comes back as a failure.
    let error = format!(
        "{}/auth/callback?error=access_denied&state={state}",
        w.app.address
    );
    assert_eq!(callback(&w, &error, Some(&state)).await.status, 401);
    assert_eq!(
        failures(&w.app).await,
        [
            "state_missing",
            "state_mismatch",
            "state_unknown_or_used",
            "code",
            "provider_error"
        ]
    );
}

#[tokio::test]
async fn id_tokens_that_do_not_verify_are_refused() {
    let w = world(&[account("alice", "alice@example.org", true)]).await;
    let provider_test = format!("{}/__test/next-id-token", w.provider.issuer());
    for (mode, query, reason) in [
        ("wrong_audience", "", "audience"),
        ("expired", "", "expired"),
        ("wrong_nonce", "", "nonce"),
        ("wrong_at_hash", "", "at_hash"),
        ("old_auth_time", "?max_age=60", "auth_time"),
        ("tampered", "", "signature"),
        ("unsigned", "", "signature"),
    ] {
        let (authorize, state) = begin(&w, query).await;
        let back = at_provider(&w, &authorize, "alice").await;
        let set = w
            .browser
            .post(&provider_test)
            .body(serde_json::json!({ "mode": mode }).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(set.status(), 204);
        let reply = callback(&w, &back, Some(&state)).await;
        assert_eq!(reply.status, 401, "{mode}: {reply:?}");
        assert_eq!(reply.problem_code(), "unauthenticated");
        assert!(
            set_cookie(&reply, api_http::SESSION_COOKIE).is_none(),
            "{mode}"
        );
        assert_eq!(
            failures(&w.app).await.last().map(String::as_str),
            Some(reason),
            "{mode}"
        );
    }
    assert_eq!(w.app.count("SELECT count(*) FROM sessions").await, 0);
    // The same login without tampering works.
    session_of(&login(&w, "", "alice").await);
}

/// `/auth/login?return_to=…`.
async fn login_to(w: &World, return_to: &str) -> Reply {
    let path = format!("/auth/login?return_to={}", urlencode(return_to));
    w.app.call("GET", &path, None, None).await
}

#[tokio::test]
async fn return_to_must_be_an_allowed_origin_exactly() {
    let w = world(&[]).await;
    for target in [
        "https://evil.example/",
        "https://app.example.com.evil.example/",
        "https://app.example.com@evil.example/",
        "http://app.example.com/",
        "https://app.example.com:8443/",
        "//evil.example/",
        "/relative",
        "javascript:alert(1)",
        "https://evil.example/?https://app.example.com",
    ] {
        let reply = login_to(&w, target).await;
        assert_eq!(reply.status, 400, "{target}: {reply:?}");
        assert_eq!(reply.json()["field"], "return_to", "{target}");
    }
    assert_eq!(login_to(&w, FRONTEND).await.status, 303);
    assert_eq!(
        login_to(&w, &format!("{FRONTEND}/a/b?c=d")).await.status,
        303
    );
}

/// An organization that invites `bob@example.org` as a member; the invitation's reply.
async fn invite_bob(w: &World) -> Reply {
    let owner = w.app.owner("acme").await;
    let jwt = w.app.jwt(&owner);
    let invited = w
        .app
        .call(
            "POST",
            "/api/v1/invitations",
            Some(&jwt),
            Some(&serde_json::json!({ "email": "bob@example.org", "role": "member" })),
        )
        .await;
    assert_eq!(invited.status, 201, "{invited:?}");
    invited
}

/// The invitations the session's user sees, and their answer to `invitation` (`accept` or
/// `decline`) sent as the frontend sends it.
async fn answer(w: &World, session: &str, invitation: &Reply, verb: &str) -> Reply {
    let path = format!(
        "/api/v1/me/invitations/{}/{verb}",
        invitation.json()["id"].as_str().unwrap()
    );
    with_session(w, "POST", &path, session, Some(FRONTEND)).await
}

/// The ids of the invitations the session's user sees.
async fn pending_for(w: &World, session: &str) -> Vec<serde_json::Value> {
    let reply = with_session(w, "GET", "/api/v1/me/invitations", session, None).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    reply.pluck("id")
}

/// Mallory's provider account carries bob's address, unverified: she signs up, but sees and
/// claims nothing, and squats nothing. Bob, verified, logs in: he joins nothing until he
/// accepts, and then joins with the invited role.
#[tokio::test]
async fn an_unverified_address_claims_nothing_and_nobody_joins_without_accepting() {
    let w = world(&[
        account("mallory", "bob@example.org", false),
        account("bob", "bob@example.org", true),
    ])
    .await;
    let invited = invite_bob(&w).await;
    let mallory = session_of(&login(&w, "", "mallory").await);
    let me = with_session(&w, "GET", "/auth/me", &mallory, None).await;
    assert_eq!(me.json()["organization_id"], serde_json::Value::Null);
    assert!(pending_for(&w, &mallory).await.is_empty());
    let taken = answer(&w, &mallory, &invited, "accept").await;
    assert_eq!(taken.status, 404, "{taken:?}");
    assert_eq!(answer(&w, &mallory, &invited, "decline").await.status, 404);
    assert_eq!(
        stored_user(&w.app, "mallory").await,
        ["bob@example.org false mallory"]
    );

    // The provider's browser session is mallory's; a fresh browser signs in as bob.
    let w = World {
        browser: browser(),
        ..w
    };
    let bob = session_of(&login(&w, "", "bob").await);
    let me = with_session(&w, "GET", "/auth/me", &bob, None).await;
    assert_eq!(
        me.json()["organization_id"],
        serde_json::Value::Null,
        "{me:?}"
    );
    assert_ne!(me.json()["user_id"], serde_json::Value::Null);
    assert_eq!(pending_for(&w, &bob).await, [invited.json()["id"].clone()]);
    let joined = answer(&w, &bob, &invited, "accept").await;
    assert_eq!(joined.status, 200, "{joined:?}");
    assert_eq!(
        joined.json()["organization_id"],
        invited.json()["organization_id"]
    );
    assert_eq!(joined.json()["role"], "member");
    let me = with_session(&w, "GET", "/auth/me", &bob, None).await;
    assert_eq!(
        me.json()["organization_id"],
        invited.json()["organization_id"]
    );
    assert_eq!(me.json()["role"], "member");
    assert!(pending_for(&w, &bob).await.is_empty(), "used up");
    assert_eq!(answer(&w, &bob, &invited, "accept").await.status, 404);
    assert!(failures(&w.app).await.is_empty());
}

#[tokio::test]
async fn a_key_rotation_at_the_provider_needs_no_restart() {
    let mut w = world(&[account("alice", "alice@example.org", true)]).await;
    session_of(&login(&w, "", "alice").await);
    w.provider.restart("key-2");
    w.browser = browser();
    session_of(&login(&w, "", "alice").await);
}

#[tokio::test]
async fn the_provider_down_stops_logins_only() {
    let mut w = world(&[account("alice", "alice@example.org", true)]).await;
    w.provider.stop();
    let reply = w.app.call("GET", "/auth/login", None, None).await;
    assert_eq!(reply.status, 503, "{reply:?}");
    assert_eq!(reply.problem_code(), "unavailable");
    let owner = w.app.owner("acme").await;
    let jwt = w.app.jwt(&owner);
    assert_eq!(
        w.app
            .call("GET", "/api/v1/me", Some(&jwt), None)
            .await
            .status,
        200
    );
}

/// Time passing for every stored session (they live by the database's clock, which a test
/// cannot move, so their times are moved back instead).
async fn age_sessions(app: &TestApp, by: Duration) {
    use sea_orm::ConnectionTrait;
    let seconds = by.num_seconds();
    app.admin_pool()
        .await
        .execute_unprepared(&format!(
            "UPDATE sessions SET created_at = created_at - interval '{seconds} seconds', \
             last_seen_at = last_seen_at - interval '{seconds} seconds', \
             expires_at = expires_at - interval '{seconds} seconds'"
        ))
        .await
        .unwrap();
    // A change made outside the server: its credential cache forgets it within the bound.
    tokio::time::sleep(ports::CREDENTIAL_STALENESS).await;
}

#[tokio::test]
async fn sessions_end_when_idle_at_their_end_at_logout_and_when_the_user_is_disabled() {
    let w = world_with(&[account("alice", "alice@example.org", true)], |args| {
        args.login.session_idle_minutes = 30;
        args.login.session_absolute_hours = 2;
    })
    .await;
    let me = |session: String| {
        let w = &w;
        async move {
            with_session(w, "GET", "/auth/me", &session, None)
                .await
                .status
        }
    };
    // Sessions live by the database's clock: time passes for them as their stored times
    // move back. Idle: used every 20 minutes it lives; left alone for 31 it ends.
    let first = session_of(&login(&w, "", "alice").await);
    for _ in 0..3 {
        age_sessions(&w.app, Duration::minutes(20)).await;
        assert_eq!(me(first.clone()).await, 200);
    }
    // Absolute: 2 hours after the login, however used.
    for _ in 0..2 {
        age_sessions(&w.app, Duration::minutes(20)).await;
        assert_eq!(me(first.clone()).await, 200);
    }
    age_sessions(&w.app, Duration::minutes(19)).await;
    assert_eq!(me(first.clone()).await, 200, "1 h 59 min after the login");
    age_sessions(&w.app, Duration::minutes(1)).await;
    assert_eq!(me(first.clone()).await, 401, "past its absolute end");

    let second = session_of(&login(&w, "", "alice").await);
    age_sessions(&w.app, Duration::minutes(31)).await;
    assert_eq!(me(second).await, 401, "idle");

    // Logout deletes the session: the old cookie is useless.
    let third = session_of(&login(&w, "", "alice").await);
    let out = with_session(&w, "POST", "/auth/logout", &third, Some(FRONTEND)).await;
    assert_eq!(out.status, 200, "{out:?}");
    assert!(out.header("clear-site-data").unwrap().contains("cookies"));
    let logout_url = out.json()["logout_url"].as_str().unwrap().to_owned();
    assert!(
        logout_url.starts_with(&format!("{}/session/end", w.provider.issuer())),
        "{logout_url}"
    );
    assert_eq!(me(third).await, 401, "after logout");

    // Disabling the user ends their live session.
    let fourth = session_of(&login(&w, "", "alice").await);
    assert_eq!(me(fourth.clone()).await, 200);
    {
        use sea_orm::ConnectionTrait;
        w.app
            .db
            .admin_pool()
            .await
            .execute_unprepared("UPDATE users SET is_active = false WHERE idp_subject = 'alice'")
            .await
            .unwrap();
        tokio::time::sleep(ports::CREDENTIAL_STALENESS).await;
    }
    assert_eq!(me(fourth).await, 401, "disabled");
    let logged_out = w
        .app
        .count("SELECT count(*) FROM audit_events WHERE action = 'authentication.logged_out'")
        .await;
    assert_eq!(logged_out, 1);
    for (reason, n) in [("absolute", 1), ("idle", 1)] {
        let ended = w
            .app
            .count(&format!(
                "SELECT count(*) FROM audit_events WHERE action = 'session.expired' \
                 AND reason = '{reason}'"
            ))
            .await;
        assert_eq!(ended, n, "{reason}");
    }
}

#[tokio::test]
async fn cookie_authenticated_changes_need_the_frontend_origin() {
    let w = world(&[account("alice", "alice@example.org", true)]).await;
    let session = session_of(&login(&w, "", "alice").await);
    let found = |origin: Option<&'static str>, referer: Option<&'static str>| {
        let w = &w;
        let session = session.clone();
        async move {
            let mut request = w
                .app
                .client
                .post(w.app.url("/api/v1/organizations"))
                .header("cookie", format!("{}={session}", api_http::SESSION_COOKIE))
                .json(&serde_json::json!({ "name": "Acme" }));
            if let Some(origin) = origin {
                request = request.header("origin", origin);
            }
            if let Some(referer) = referer {
                request = request.header("referer", referer);
            }
            w.app.send(request).await
        }
    };
    for (origin, referer) in [
        (Some("https://evil.example"), None),
        (Some("null"), None),
        (None, None),
        (None, Some("https://evil.example/app.example.com")),
        (Some("https://app.example.com.evil.example"), None),
    ] {
        let reply = found(origin, referer).await;
        assert_eq!(reply.status, 403, "{origin:?} {referer:?}: {reply:?}");
        assert_eq!(reply.problem_code(), "forbidden");
    }
    assert_eq!(w.app.count("SELECT count(*) FROM organizations").await, 0);
    let reply = found(None, Some("https://app.example.com/settings")).await;
    assert_eq!(reply.status, 201, "{reply:?}");
    // Reads need no origin.
    assert_eq!(
        with_session(&w, "GET", "/auth/me", &session, None)
            .await
            .status,
        200
    );
    assert_eq!(
        w.app
            .count("SELECT sum(occurrences)::bigint FROM audit_events WHERE reason = 'csrf_origin'")
            .await,
        5
    );
}

#[tokio::test]
async fn a_step_up_login_refreshes_the_sessions_auth_time() {
    let w = world(&[account("alice", "alice@example.org", true)]).await;
    let session = session_of(&login(&w, "", "alice").await);
    let before = with_session(&w, "GET", "/auth/me", &session, None)
        .await
        .json()["auth_time"]
        .clone();
    // Later, a sensitive operation wants a fresh login: max_age=0 makes the provider ask
    // again even though its own session lives.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (authorize, state) = begin(&w, "?max_age=0").await;
    assert!(authorize.contains("max_age=0"), "{authorize}");
    let back = at_provider(&w, &authorize, "alice").await;
    let reply = callback_in_session(&w, &back, Some(&state), Some(&session)).await;
    let stepped = session_of(&reply);
    assert_ne!(stepped, session, "a new id at every login");
    let after = with_session(&w, "GET", "/auth/me", &stepped, None)
        .await
        .json()["auth_time"]
        .clone();
    assert_ne!(before, after);
    assert_eq!(
        w.app
            .count("SELECT count(*) FROM audit_events WHERE reason = 'oidc_step_up'")
            .await,
        1
    );
}

/// As the frontend would send it: a JSON body with the session cookie and the frontend's Origin.
async fn from_frontend(
    w: &World,
    method: reqwest::Method,
    path: &str,
    session: &str,
    body: serde_json::Value,
) -> Reply {
    let request = w
        .app
        .client
        .request(method, w.app.url(path))
        .header("cookie", format!("{}={session}", api_http::SESSION_COOKIE))
        .header("origin", crate::FRONTEND)
        .json(&body);
    w.app.send(request).await
}

#[tokio::test]
async fn a_login_that_does_not_say_when_it_happened_is_never_fresh() {
    let w = world(&[account("alice", "alice@example.org", true)]).await;
    // The provider's ID token carries no auth_time (a silent SSO login may well not).
    let set = w
        .browser
        .post(format!("{}/__test/next-id-token", w.provider.issuer()))
        .body(serde_json::json!({ "mode": "no_auth_time" }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 204);
    let session = session_of(&login(&w, "", "alice").await);
    let me = with_session(&w, "GET", "/auth/me", &session, None).await;
    assert_eq!(me.json()["auth_time"], serde_json::Value::Null, "{me:?}");
    let post = reqwest::Method::POST;
    let founded = from_frontend(
        &w,
        post.clone(),
        "/api/v1/organizations",
        &session,
        serde_json::json!({ "name": "Acme" }),
    )
    .await;
    assert_eq!(founded.status, 201, "{founded:?}");
    // Creating an API token needs a fresh login: refused, with the step-up challenge, from the
    // session and from an access token minted from it alike.
    let token = from_frontend(
        &w,
        post.clone(),
        "/api/v1/tokens",
        &session,
        serde_json::json!({ "name": "ci" }),
    )
    .await;
    assert_eq!(
        (token.status, token.problem_code().as_str()),
        (401, "insufficient_user_authentication"),
        "{token:?}"
    );
    let minted = from_frontend(
        &w,
        post.clone(),
        "/auth/session-token",
        &session,
        serde_json::json!({}),
    )
    .await;
    assert_eq!(minted.status, 200, "{minted:?}");
    let jwt = minted.json()["access_token"].as_str().unwrap().to_owned();
    w.app.secret(&jwt);
    let token = w
        .app
        .call(
            "POST",
            "/api/v1/tokens",
            Some(&jwt),
            Some(&serde_json::json!({"name": "ci"})),
        )
        .await;
    assert_eq!(token.status, 401, "{token:?}");
    // The same person, with a login that says when: fresh.
    let session = session_of(&login(&w, "", "alice").await);
    let token = from_frontend(
        &w,
        post,
        "/api/v1/tokens",
        &session,
        serde_json::json!({ "name": "ci" }),
    )
    .await;
    assert_eq!(token.status, 201, "{token:?}");
    w.app.secret(token.json()["token_value"].as_str().unwrap());
}

#[tokio::test]
async fn logging_out_a_session_revokes_the_access_tokens_minted_from_it() {
    let w = world(&[account("alice", "alice@example.org", true)]).await;
    let session = session_of(&login(&w, "", "alice").await);
    let other_session = session_of(&login(&w, "", "alice").await);
    let mint = |session: String| {
        let w = &w;
        async move {
            let reply = from_frontend(
                w,
                reqwest::Method::POST,
                "/auth/session-token",
                &session,
                serde_json::json!({}),
            )
            .await;
            assert_eq!(reply.status, 200, "{reply:?}");
            let jwt = reply.json()["access_token"].as_str().unwrap().to_owned();
            w.app.secret(&jwt);
            jwt
        }
    };
    let (first, second) = (mint(session.clone()).await, mint(session.clone()).await);
    let elsewhere = mint(other_session.clone()).await;
    for jwt in [&first, &second, &elsewhere] {
        assert_eq!(
            w.app
                .call("GET", "/api/v1/me", Some(jwt), None)
                .await
                .status,
            200
        );
    }
    let out = from_frontend(
        &w,
        reqwest::Method::POST,
        "/auth/logout",
        &session,
        serde_json::json!({}),
    )
    .await;
    assert_eq!(out.status, 200, "{out:?}");
    // Both tokens of the ended session are refused at once; the other session's is not.
    for jwt in [&first, &second] {
        let reply = w.app.call("GET", "/api/v1/me", Some(jwt), None).await;
        assert_eq!(reply.status, 401, "{reply:?}");
    }
    assert_eq!(
        w.app
            .call("GET", "/api/v1/me", Some(&elsewhere), None)
            .await
            .status,
        200
    );
    assert_eq!(
        w.app
            .count(
                "SELECT sum(occurrences)::bigint FROM audit_events \
                 WHERE action = 'authentication.failed' AND reason = 'revoked'"
            )
            .await,
        2
    );

    // A new login in the same browser (a step-up, say) replaces the session, and the tokens
    // minted from the one it replaces end with it: the next logout cannot miss them.
    let before = mint(other_session.clone()).await;
    let (authorize, state) = begin(&w, "?max_age=0").await;
    let back = at_provider(&w, &authorize, "alice").await;
    let stepped =
        session_of(&callback_in_session(&w, &back, Some(&state), Some(&other_session)).await);
    for jwt in [&elsewhere, &before] {
        let reply = w.app.call("GET", "/api/v1/me", Some(jwt), None).await;
        assert_eq!(reply.status, 401, "{reply:?}");
    }
    let after = mint(stepped.clone()).await;
    assert_eq!(
        w.app
            .call("GET", "/api/v1/me", Some(&after), None)
            .await
            .status,
        200
    );

    // Logging out with one of a session's tokens (as a frontend holding only the token does)
    // ends every token minted from that session, not just the one presented.
    let sibling = mint(stepped).await;
    let out = w.app.call("POST", "/auth/logout", Some(&after), None).await;
    assert_eq!(out.status, 204, "{out:?}");
    for jwt in [&after, &sibling] {
        let reply = w.app.call("GET", "/api/v1/me", Some(jwt), None).await;
        assert_eq!(reply.status, 401, "{reply:?}");
    }
}

#[tokio::test]
async fn auth0_organizations_and_audience_are_asked_for_and_checked() {
    let w = world_with(
        &[
            serde_json::json!({ "sub": "alice", "email": "alice@example.org",
                                "email_verified": true, "org_id": "org_acme" }),
            serde_json::json!({ "sub": "eve", "email": "eve@example.org",
                                "email_verified": true, "org_id": "org_other" }),
        ],
        |args| {
            args.login.oidc_organization = Some("org_acme".to_owned());
            args.login.oidc_audience = Some("https://api.example.com".to_owned());
        },
    )
    .await;
    let (authorize, _) = begin(&w, "").await;
    let query: Vec<(String, String)> = url::Url::parse(&authorize)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    for (key, value) in [
        ("organization", "org_acme"),
        ("audience", "https://api.example.com"),
        ("code_challenge_method", "S256"),
        ("response_type", "code"),
    ] {
        assert!(
            query.iter().any(|(k, v)| k == key && v == value),
            "{key}={value} in {authorize}"
        );
    }
    session_of(&login(&w, "", "alice").await);
    let w = World {
        browser: browser(),
        ..w
    };
    let reply = login(&w, "", "eve").await;
    assert_eq!(reply.status, 401, "{reply:?}");
    assert_eq!(failures(&w.app).await, ["organization"]);
}

#[tokio::test]
async fn failed_callbacks_are_strikes_against_the_address() {
    let w = world_with(&[account("alice", "alice@example.org", true)], |args| {
        args.blocks.block_strikes = 2;
        args.blocks.block_strike_interval_ms = 0;
    })
    .await;
    let (authorize, state) = begin(&w, "").await;
    let back = at_provider(&w, &authorize, "alice").await;
    // A cancelled login at the provider is not a strike.
    let cancelled = format!(
        "{}/auth/callback?error=access_denied&state={state}",
        w.app.address
    );
    let reply = callback(&w, &cancelled, Some(&state)).await;
    assert_eq!(
        (reply.status, reply.header("x-ratelimit-warning")),
        (401, None)
    );
    // Forged state: a warning, then the address is blocked, whatever it asks for next.
    let reply = callback(&w, &back, Some("forged-state")).await;
    assert_eq!(reply.status, 401);
    assert!(
        reply
            .header("x-ratelimit-warning")
            .unwrap()
            .starts_with("strike 1 of 2")
    );
    let reply = callback(&w, &back, Some("forged-again")).await;
    assert_eq!(
        (reply.status, reply.problem_code().as_str()),
        (403, "blocked")
    );
    let reply = callback(&w, &back, Some(&state)).await;
    assert_eq!(reply.status, 403, "blocked before any work");
}

#[tokio::test]
async fn a_foreign_page_cannot_get_its_visitors_banned_but_a_guesser_is() {
    let w = world_with(&[], |args| {
        // Two strikes block; two blocks, and the next is permanent; every strike counts.
        args.blocks.block_strikes = 2;
        args.blocks.block_first_seconds = 60;
        args.blocks.block_permanent_after = 2;
        args.blocks.block_strike_interval_ms = 0;
        args.limits.anonymous_per_minute = 5;
        args.browser.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let (app, clock) = (&w.app, &w.clock);
    let owner = app.owner("acme").await;
    let victim = "198.51.100.10";
    let from = |ip: &'static str, request: reqwest::RequestBuilder| async move {
        app.send(request.header("x-forwarded-for", ip)).await
    };
    // An hour of a page that loads <img src=".../auth/callback"> and another image of the API
    // every five seconds in the victim's browser: no login cookie, no credential.
    let mut refused = 0;
    for _ in 0..720 {
        for path in ["/auth/callback?code=x&state=y", "/api/v1/projects"] {
            let reply = from(victim, app.client.get(app.url(path))).await;
            assert!(
                reply.status == 401 || reply.status == 429 || reply.status == 403,
                "{reply:?}"
            );
            if reply.status == 403 {
                assert_eq!(reply.problem_code(), "blocked");
                let retry: i64 = reply.header("retry-after").unwrap().parse().unwrap();
                assert!((1..=120).contains(&retry), "a temporary block: {reply:?}");
                refused += 1;
            }
        }
        clock.advance(Duration::seconds(5));
    }
    assert!(
        refused > 100,
        "the attack did get the victim blocked for a while"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM client_blocks WHERE permanent")
            .await,
        0
    );
    // Once the page is closed and the last block over, the victim's own requests pass.
    clock.advance(Duration::seconds(121));
    let jwt = app.jwt_at(&owner, clock.now(), clock.now());
    let mine = from(
        victim,
        app.client.get(app.url("/api/v1/me")).bearer_auth(&jwt),
    )
    .await;
    assert_eq!(mine.status, 200, "{mine:?}");

    // A client that guesses credentials itself is banned after two blocks.
    let guesser = "203.0.113.66";
    let mut n = 0;
    let mut guess = || {
        n += 1;
        let token = format!("rh-{n:0>43}");
        from(
            guesser,
            app.client.get(app.url("/api/v1/me")).bearer_auth(token),
        )
    };
    for block in [Some("60"), Some("120"), None] {
        assert_eq!(guess().await.status, 401);
        let blocked = guess().await;
        assert_eq!(
            (blocked.status, blocked.header("retry-after")),
            (403, block),
            "{blocked:?}"
        );
        let length: i64 = block.map_or(0, |b| b.parse().unwrap());
        clock.advance(Duration::seconds(length + 1));
    }
    assert_eq!(
        app.strings("SELECT key FROM client_blocks WHERE permanent")
            .await,
        ["ip:203.0.113.66"]
    );
}

#[tokio::test]
async fn a_newcomer_whose_email_only_userinfo_names_signs_up() {
    // The provider follows OpenID Connect Core 5.4: in the code flow the ID token carries the
    // subject, the e-mail and name are at the UserInfo endpoint.
    let w = world(&[account("carol", "carol@example.org", true)]).await;
    let session = session_of(&login(&w, "", "carol").await);
    let me = with_session(&w, "GET", "/auth/me", &session, None).await;
    assert_eq!(me.status, 200, "{me:?}");
    assert_eq!(
        stored_user(&w.app, "carol").await,
        ["carol@example.org true carol"]
    );
    assert_eq!(userinfo_calls(&w).await, 1);
    assert!(failures(&w.app).await.is_empty());
}

#[tokio::test]
async fn a_userinfo_answer_about_someone_else_is_refused() {
    // Bob is invited; mallory's login gets a UserInfo answer about bob (his verified e-mail):
    // taken at its word, it would hand mallory bob's invitation.
    let w = world(&[
        account("mallory", "mallory@example.org", true),
        account("bob", "bob@example.org", true),
    ])
    .await;
    let invited = invite_bob(&w).await;
    for (mode, reason) in [
        (
            serde_json::json!({ "mode": "as_account", "sub": "bob" }),
            "userinfo_subject",
        ),
        (serde_json::json!({ "mode": "malformed" }), "userinfo"),
    ] {
        let (authorize, state) = begin(&w, "").await;
        let back = at_provider(&w, &authorize, "mallory").await;
        provider_mode(&w, "next-userinfo", mode.clone()).await;
        let reply = callback(&w, &back, Some(&state)).await;
        assert_eq!(reply.status, 401, "{mode}: {reply:?}");
        assert_eq!(reply.problem_code(), "unauthenticated");
        assert!(
            set_cookie(&reply, api_http::SESSION_COOKIE).is_none(),
            "{mode}"
        );
        assert_eq!(
            failures(&w.app).await.last().map(String::as_str),
            Some(reason),
            "{mode}"
        );
    }
    assert_eq!(userinfo_calls(&w).await, 2);
    assert_eq!(w.app.count("SELECT count(*) FROM sessions").await, 0);
    assert!(stored_user(&w.app, "mallory").await.is_empty());
    assert!(stored_user(&w.app, "bob").await.is_empty(), "still invited");
    // Bob, in a browser of his own, gets his invitation.
    let w = World {
        browser: browser(),
        ..w
    };
    let session = session_of(&login(&w, "", "bob").await);
    assert_eq!(
        pending_for(&w, &session).await,
        [invited.json()["id"].clone()]
    );
    assert_eq!(answer(&w, &session, &invited, "accept").await.status, 200);
    let me = with_session(&w, "GET", "/auth/me", &session, None).await;
    assert_eq!(me.json()["role"], "member");
}

#[tokio::test]
async fn an_id_token_that_carries_the_email_spares_the_userinfo_request() {
    let w = world(&[account("alice", "alice@example.org", true)]).await;
    // As Auth0 sends it: the e-mail and its verification in the ID token itself.
    provider_mode(
        &w,
        "next-id-token",
        serde_json::json!({ "mode": "with_email" }),
    )
    .await;
    session_of(&login(&w, "", "alice").await);
    assert_eq!(userinfo_calls(&w).await, 0);
    assert_eq!(
        stored_user(&w.app, "alice").await,
        ["alice@example.org true alice"]
    );
    // Without them in the ID token, UserInfo is asked.
    session_of(&login(&w, "", "alice").await);
    assert_eq!(userinfo_calls(&w).await, 1);
}

/// The attack (found by review): Mallory's provider account once carried
/// `shared@corp.example`, verified (a role address, a reassigned one). The provider no longer
/// vouches for it: her account has no address any more. A login without a usable address
/// used to leave the stored one verified, so when Corp invites the address for its new holder,
/// Mallory would see and accept the invitation. Such a login now keeps the address but no
/// longer counts it as verified.
#[tokio::test]
async fn a_login_without_an_address_no_longer_vouches_for_the_old_one() {
    let mut w = world(&[account("mallory", "shared@corp.example", true)]).await;
    session_of(&login(&w, "", "mallory").await);
    assert_eq!(
        stored_user(&w.app, "mallory").await,
        ["shared@corp.example true mallory"]
    );
    // Later, at the provider: the address is no longer on Mallory's account.
    w.provider.restart_with_accounts(
        &serde_json::json!([{ "sub": "mallory", "name": "mallory" }]).to_string(),
        "key-later",
    );
    w.browser = browser();
    let owner = w.app.owner("corp").await;
    let invited = w
        .app
        .call(
            "POST",
            "/api/v1/invitations",
            Some(&w.app.jwt(&owner)),
            Some(&serde_json::json!({ "email": "shared@corp.example", "role": "admin" })),
        )
        .await;
    assert_eq!(invited.status, 201, "{invited:?}");
    let session = session_of(&login(&w, "", "mallory").await);
    assert_eq!(
        stored_user(&w.app, "mallory").await,
        ["shared@corp.example false mallory"]
    );
    assert!(pending_for(&w, &session).await.is_empty());
    assert_eq!(answer(&w, &session, &invited, "accept").await.status, 404);
}

/// The attack (from the last review): a foreign page opens the API again and again in the
/// victim's browser (a top-level navigation carries the `SameSite=Lax` session cookie), each
/// time past the signed-in user's budget. Over-budget requests of a session strike a ledger of
/// its own that never bans: the victim is held back for a while, never shut out for good,
/// while a program's access token over its budget still is banned.
#[tokio::test]
async fn a_foreign_page_cannot_get_a_signed_in_visitor_banned() {
    let w = world_with(&[account("alice", "alice@example.org", true)], |args| {
        // Two strikes block; two blocks, and the next is permanent; every strike counts.
        args.blocks.block_strikes = 2;
        args.blocks.block_first_seconds = 60;
        args.blocks.block_permanent_after = 2;
        args.blocks.block_strike_interval_ms = 0;
        args.limits.authenticated_per_minute = 3;
        args.login.session_idle_minutes = 24 * 60;
        args.login.session_absolute_hours = 24;
    })
    .await;
    let session = session_of(&login(&w, "", "alice").await);
    let mut held_back = 0;
    for _ in 0..60 {
        for _ in 0..5 {
            let reply = with_session(&w, "GET", "/auth/me", &session, None).await;
            assert!([200, 403, 429].contains(&reply.status), "{reply:?}");
            if reply.status == 403 {
                assert_eq!(reply.problem_code(), "blocked");
                assert!(
                    reply.header("retry-after").is_some(),
                    "temporary: {reply:?}"
                );
                held_back += 1;
            }
        }
        w.clock.advance(Duration::seconds(61));
    }
    assert!(held_back > 10, "the page did hold the victim back");
    assert_eq!(
        w.app
            .count("SELECT count(*) FROM client_blocks WHERE permanent")
            .await,
        0
    );
    // The same flood with a program's access token ends in a ban.
    let owner = w.app.owner("acme").await;
    let mut banned = false;
    for _ in 0..10 {
        let jwt = w.app.jwt_at(&owner, w.clock.now(), w.clock.now());
        for _ in 0..5 {
            let reply = w.app.call("GET", "/api/v1/me", Some(&jwt), None).await;
            banned |= reply.status == 403 && reply.header("retry-after").is_none();
        }
        w.clock.advance(Duration::seconds(121));
    }
    assert!(
        banned,
        "an access token over its budget, again and again, is banned"
    );
}

/// The attack (found by review): a user's access tokens are banned, and whoever holds the
/// browser session's cookie carries on with it (the session has a ledger of its own, which
/// never bans). A session answers to its user's blocks too.
#[tokio::test]
async fn a_banned_users_session_cookie_is_refused_too() {
    let w = world_with(&[account("alice", "alice@example.org", true)], |args| {
        args.blocks.block_refresh_ms = 100;
    })
    .await;
    let session = session_of(&login(&w, "", "alice").await);
    let me = with_session(&w, "GET", "/auth/me", &session, None).await;
    assert_eq!(me.status, 200);
    let user: uuid::Uuid = me.json()["user_id"].as_str().unwrap().parse().unwrap();
    let key = domain::BlockKey::user(domain::UserId::from_uuid(user));
    ports::BlockList::block(
        &w.app.store,
        &key,
        domain::BlockState::Permanent,
        "leaked token",
        &ports::BlockContext::default(),
    )
    .await
    .unwrap();
    let mut status = 200;
    for _ in 0..100 {
        status = with_session(&w, "GET", "/auth/me", &session, None)
            .await
            .status;
        if status == 403 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(status, 403, "the banned user's cookie still works");
}

/// A browser session's request takes one connection at a time, whatever it does: with a
/// pool of one, a session whose transaction was kept while anything else reached the store
/// (the login, a change, the session layer writing its state, a read's own work) would wait
/// for itself until the pool gave up.
#[tokio::test]
async fn a_session_request_never_holds_two_connections() {
    let w = world_with(&[account("alice", "alice@example.org", true)], |args| {
        args.database.max_connections = 1;
    })
    .await;
    let session = session_of(&login(&w, "", "alice").await);
    let me = with_session(&w, "GET", "/api/v1/me", &session, None).await;
    assert_eq!(me.status, 200, "{me:?}");
    let body = serde_json::json!({ "name": "acme" });
    let request = w
        .app
        .client
        .post(w.app.url("/api/v1/organizations"))
        .header("cookie", format!("{}={session}", api_http::SESSION_COOKIE))
        .header("origin", FRONTEND)
        .json(&body);
    let founded = w.app.send(request).await;
    assert_eq!(founded.status, 201, "{founded:?}");
    for path in [
        "/api/v1/projects",
        "/api/v1/organizations/current",
        "/auth/me",
    ] {
        let reply = with_session(&w, "GET", path, &session, None).await;
        assert_eq!(reply.status, 200, "{path}: {reply:?}");
    }
    // A read of a path that does not exist, and a preflight-free change.
    let missing = with_session(&w, "GET", "/api/v1/nothing", &session, None).await;
    assert_eq!(missing.status, 404, "{missing:?}");
    let token = with_session(&w, "POST", "/auth/session-token", &session, Some(FRONTEND)).await;
    assert_eq!(token.status, 200, "{token:?}");
    // A new login in the same browser: the callback reads the old session and replaces it.
    let (authorize, state) = begin(&w, "").await;
    let back = at_provider(&w, &authorize, "alice").await;
    let again = callback_in_session(&w, &back, Some(&state), Some(&session)).await;
    let session = session_of(&again);
    let out = with_session(&w, "POST", "/auth/logout", &session, Some(FRONTEND)).await;
    assert_eq!(out.status, 200, "{out:?}");
}

/// A session logged out while a request that changed its state was under way stays logged
/// out: its state is not stored again under a new id (which would log the browser back in).
#[tokio::test]
async fn a_session_logged_out_during_a_request_that_changed_it_is_not_brought_back() {
    use sea_orm::ConnectionTrait;
    let w = world(&[account("alice", "alice@example.org", true)]).await;
    let session = session_of(&login(&w, "", "alice").await);
    // A session without an id for its tokens yet: the first token minted from it gives it
    // one, so that request changes the session's state.
    let stripped = "WITH d AS (UPDATE sessions SET data = data - 'sid' RETURNING 1) \
                    SELECT count(*) FROM d";
    assert_eq!(w.app.count(stripped).await, 1);
    // The logout lands while the token is minted: as soon as its issue is recorded.
    w.app
        .admin_pool()
        .await
        .execute_unprepared(
            "CREATE FUNCTION test_log_out_everyone() RETURNS trigger LANGUAGE plpgsql \
             SECURITY DEFINER AS $$ BEGIN DELETE FROM public.sessions; RETURN NULL; END $$; \
             CREATE TRIGGER test_log_out_at_issue AFTER INSERT ON audit_events FOR EACH ROW \
             WHEN (NEW.target_type = 'access_token') EXECUTE FUNCTION test_log_out_everyone();",
        )
        .await
        .unwrap();
    let reply = from_frontend(
        &w,
        reqwest::Method::POST,
        "/auth/session-token",
        &session,
        serde_json::json!({}),
    )
    .await;
    assert_eq!(
        w.app.count("SELECT count(*) FROM sessions").await,
        0,
        "{reply:?}"
    );
    let mut cookies = vec![session];
    cookies.extend(set_cookie(&reply, api_http::SESSION_COOKIE).map(|(value, _)| value));
    for cookie in cookies.iter().filter(|c| !c.is_empty()) {
        let me = with_session(&w, "GET", "/auth/me", cookie, None).await;
        assert_eq!(me.status, 401, "{me:?}");
    }
}
