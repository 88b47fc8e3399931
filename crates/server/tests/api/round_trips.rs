//! What one request costs the database: a read checks its credential in the first statement
//! of the transaction its work then uses, and a request never holds two connections.

use std::sync::{Arc, Mutex};

use adapters_postgres::{PgStore, PoolOptions, SecretColumns};
use app::{AccessTokenClaims, App, Caller, Origin, Settings};
use chrono::Duration;
use domain::{AuditAction, Role};
use ports::{
    IdentityDirectory, PageRequest, ProjectSort, RefusalReason, Sort, SortDirection, SystemClock,
    UnitOfWorkFactory,
};
use server::config::Profile;
use uuid::Uuid;

use crate::{TestApp, TestUser, spawn_app, spawn_app_configured};

/// The use cases over `app`'s database, through a connection that writes down every
/// statement it runs.
async fn recording(app: &TestApp) -> (App, Arc<Mutex<Vec<String>>>) {
    let mut conn = adapters_postgres::connect(&app.db.app_url(), PoolOptions::default())
        .await
        .unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    conn.on_statement(move |sql| log.lock().unwrap().push(sql.to_owned()));
    let clock: Arc<dyn ports::Clock> = Arc::new(SystemClock);
    // The server's own keys: what it sealed, these open.
    let secrets = SecretColumns::new(app.args.encryption.cipher().unwrap(), Arc::clone(&clock));
    let audit = app.args.audit.key(Profile::Test).unwrap();
    let store = Arc::new(PgStore::new(
        conn,
        Arc::clone(&clock),
        Arc::new(secrets),
        Arc::new(audit),
    ));
    let settings = Settings {
        fresh_login_max_age: Duration::minutes(10),
        token_use_resolution: Duration::minutes(1),
        session_touch_resolution: Duration::minutes(1),
    };
    let issuer = api_http::JwtIssuer(Arc::new(server::auth_settings(&app.args).unwrap()));
    let app = App::new(app::Ports::of(store, Arc::new(issuer)), clock, settings);
    (app, seen)
}

fn claims_of(user: &TestUser) -> AccessTokenClaims {
    let now = ports::Clock::now(&SystemClock);
    AccessTokenClaims {
        user: user.id,
        issued_for: Some(user.membership.organization_id),
        jti: Uuid::now_v7(),
        sid: None,
        auth_time: Some(now),
        expires_at: now + Duration::minutes(5),
    }
}

fn first_page() -> PageRequest<ProjectSort> {
    PageRequest::new(
        0,
        50,
        Sort {
            field: ProjectSort::CreatedAt,
            direction: SortDirection::Ascending,
        },
    )
    .unwrap()
}

fn owner_scope(owner: &TestUser) -> ports::TenantScope {
    owner.scope()
}

/// The statements run since `from`.
fn since(seen: &Mutex<Vec<String>>, from: usize) -> Vec<String> {
    seen.lock().unwrap()[from..].to_vec()
}

/// Whether `sql` is a statement that sets the tenant on its own (a second transaction's).
fn sets_the_tenant_alone(sql: &str) -> bool {
    sql.trim_start()
        .starts_with("SELECT set_config('app.current_organization'")
}

#[tokio::test]
async fn a_read_checks_its_credential_in_the_first_statement_of_its_work() {
    let server = spawn_app().await;
    let owner = server.owner("acme").await;
    let (app, seen) = recording(&server).await;

    // Kept: the check is the work's first statement, and the page its second.
    let from = seen.lock().unwrap().len();
    let accepted = app
        .authenticate_access_token(&claims_of(&owner), true)
        .await
        .unwrap()
        .unwrap();
    let caller = Caller::new(accepted, Origin::default());
    let page = app.list_projects(&caller, first_page()).await.unwrap();
    assert_eq!(page.total, 0);
    let ran = since(&seen, from);
    let statements: Vec<_> = ran
        .iter()
        .filter(|sql| !matches!(sql.trim(), "BEGIN" | "COMMIT" | "ROLLBACK"))
        .collect();
    assert_eq!(statements.len(), 2, "{ran:#?}");
    assert!(
        statements[0].contains("app_access_token_subject")
            && statements[0].contains("set_config('app.current_organization'"),
        "{ran:#?}"
    );
    assert!(statements[1].contains("FROM \"projects\""), "{ran:#?}");
    assert!(
        !ran.iter().any(|sql| sets_the_tenant_alone(sql)),
        "{ran:#?}"
    );

    // Not kept (a change's credential, checked before its body was read): the work is a
    // transaction of its own, whose first statement checks the credential again.
    let accepted = app
        .authenticate_access_token(&claims_of(&owner), false)
        .await
        .unwrap()
        .unwrap();
    let caller = Caller::new(accepted, Origin::default());
    let from = seen.lock().unwrap().len();
    app.list_projects(&caller, first_page()).await.unwrap();
    let ran = since(&seen, from);
    let statements: Vec<_> = ran
        .iter()
        .filter(|sql| !matches!(sql.trim(), "BEGIN" | "COMMIT" | "ROLLBACK"))
        .collect();
    assert_eq!(statements.len(), 2, "{ran:#?}");
    assert!(
        statements[0].contains("app_access_token_subject")
            && statements[0].contains("set_config('app.current_organization'"),
        "{ran:#?}"
    );
    assert!(
        !ran.iter().any(|sql| sets_the_tenant_alone(sql)),
        "{ran:#?}"
    );
}

/// The attack on the budget: an API token's read paying a lookup of its own, then a
/// `last_used_at` write and its audit append, before its work. Now the token is found in the
/// first statement of the work's transaction, and its use is written apart, later.
#[tokio::test]
async fn an_api_token_read_is_one_transaction_and_its_use_is_written_apart() {
    let server = spawn_app().await;
    let owner = server.owner("acme").await;
    let uow = server.store.begin(&owner_scope(&owner)).await.unwrap();
    let (token, value) = uow
        .api_tokens()
        .create(domain::Name::new("ci").unwrap(), None)
        .await
        .unwrap();
    uow.commit().await.unwrap();
    let (app, seen) = recording(&server).await;

    let read = |keep| {
        let (app, value) = (&app, &value);
        async move {
            let accepted = app
                .authenticate_api_token(value, &Origin::default(), keep)
                .await
                .unwrap()
                .unwrap();
            let caller = Caller::new(accepted, Origin::default());
            app.list_projects(&caller, first_page()).await.unwrap();
        }
    };
    let from = seen.lock().unwrap().len();
    read(true).await;
    let ran = since(&seen, from);
    let statements: Vec<_> = ran
        .iter()
        .filter(|sql| !matches!(sql.trim(), "BEGIN" | "COMMIT" | "ROLLBACK"))
        .collect();
    assert_eq!(statements.len(), 2, "{ran:#?}");
    assert!(
        statements[0].contains("app_api_token_by_digest")
            && statements[0].contains("set_config('app.current_organization'"),
        "{ran:#?}"
    );
    assert!(statements[1].contains("FROM \"projects\""), "{ran:#?}");
    // A second transaction would set its tenant in a statement of its own.
    assert!(
        !ran.iter().any(|sql| sets_the_tenant_alone(sql)),
        "one transaction: {ran:#?}"
    );
    let used = format!(
        "SELECT count(*) FROM api_tokens WHERE id = '{}' AND last_used_at IS NOT NULL",
        token.id
    );
    let events = format!(
        "SELECT count(*) FROM audit_events WHERE action = 'token.used' AND target_id = '{}'",
        token.id
    );
    assert_eq!(server.count(&used).await, 0, "not written by the request");

    // Written apart: once, with its first-use event; a use within the resolution notes
    // nothing more.
    assert_eq!(app.record_token_uses().await, 1);
    assert_eq!(server.count(&used).await, 1);
    assert_eq!(server.count(&events).await, 1);
    read(true).await;
    read(false).await;
    assert_eq!(app.record_token_uses().await, 0);
    assert_eq!(server.count(&events).await, 1);
}

#[tokio::test]
async fn the_first_statement_refuses_what_has_changed_since_the_token_was_issued() {
    let server = spawn_app().await;
    let owner = server.owner("acme").await;
    let member = server.member(&owner, Role::Member).await;
    let (app, _) = recording(&server).await;
    let refused = |decision: app::Decision| decision.err().map(|r| r.reason);

    // A revoked token.
    let claims = claims_of(&member);
    server
        .store
        .unscoped_revoke_access_token(claims.jti, member.id, claims.expires_at)
        .await
        .unwrap();
    let decision = app.authenticate_access_token(&claims, true).await.unwrap();
    assert_eq!(refused(decision), Some(RefusalReason::Revoked));

    // A demotion is the role of the next request.
    let admin = server.member(&owner, Role::Admin).await;
    let claims = claims_of(&admin);
    let uow = server.store.begin(&owner_scope(&owner)).await.unwrap();
    uow.users().set_role(admin.id, Role::Member).await.unwrap();
    uow.commit().await.unwrap();
    let accepted = app
        .authenticate_access_token(&claims, true)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(accepted.principal.membership().unwrap().role, Role::Member);

    // A removed member.
    let claims = claims_of(&member);
    let uow = server.store.begin(&owner_scope(&owner)).await.unwrap();
    uow.users().remove(member.id).await.unwrap();
    uow.commit().await.unwrap();
    let decision = app.authenticate_access_token(&claims, true).await.unwrap();
    assert_eq!(refused(decision), Some(RefusalReason::LeftOrganization));
}

#[tokio::test]
async fn a_request_never_holds_two_connections() {
    // One connection for everything: a request that held its credential's transaction and
    // reached the store again would wait for itself until the pool gave up.
    let server = spawn_app_configured(Profile::Test, |args| {
        args.database.max_connections = 1;
    })
    .await;
    let owner = server.owner("acme").await;
    let member = server.member(&owner, Role::Member).await;
    let jwt = server.jwt(&member);

    // A refused read: its denial is recorded apart from the credential's transaction.
    let reply = server
        .call("GET", "/api/v1/audit-events", Some(&jwt), None)
        .await;
    assert_eq!(reply.status, 403, "{reply:?}");
    let denials = server
        .count(&format!(
            "SELECT count(*) FROM audit_events WHERE action = '{}' AND actor_user_id = '{}'",
            AuditAction::AccessDenied.as_str(),
            member.id
        ))
        .await;
    assert_eq!(denials, 1, "the denial was recorded");

    // A read that reaches the store past the use cases.
    let reply = server
        .call("GET", "/api/v1/me/invitations", Some(&jwt), None)
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");

    // And the reads that use it.
    for path in ["/api/v1/projects", "/api/v1/me", "/api/v1/users"] {
        let reply = server.call("GET", path, Some(&jwt), None).await;
        assert_eq!(reply.status, 200, "{path}: {reply:?}");
    }
}

/// A second server, its own process, on `server`'s database and keys.
struct Replica {
    child: std::process::Child,
    base: String,
    /// Its metrics listener's `/metrics`.
    metrics: String,
    client: reqwest::Client,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Replica {
    async fn start(server: &TestApp) -> Self {
        use secrecy::ExposeSecret;
        let (port, metrics_port) = (crate::free_port(), crate::free_port());
        let key = server.args.encryption.key.as_ref().unwrap();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_rhesis-server"))
            .arg("serve")
            .env_clear()
            .env("APP_ENV", "test")
            .env("JWT_SECRET_KEY", &server.jwt_key)
            .env("AUDIT_CHAIN_KEY", crate::AUDIT_KEY)
            .env("DB_ENCRYPTION_KEY", key.expose_secret())
            .env("DATABASE_URL", server.db.app_url())
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .env("METRICS_BIND_ADDR", format!("127.0.0.1:{metrics_port}"))
            .env("HTTP_WORKERS", "1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let replica = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            metrics: format!("http://127.0.0.1:{metrics_port}/metrics"),
            client: reqwest::Client::new(),
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while replica.get("/health/ready", None).await.0 != 200 {
            assert!(
                std::time::Instant::now() < deadline,
                "the replica did not come up"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        replica
    }

    /// Status and JSON body of `GET path`.
    async fn get(&self, path: &str, token: Option<&str>) -> (u16, serde_json::Value) {
        let mut request = self.client.get(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                (status, response.json().await.unwrap_or_default())
            }
            Err(_) => (0, serde_json::Value::Null),
        }
    }
}

/// A demotion and a removal made through the API of one server are refused by a replica
/// that answered the user from its credential cache until then, within
/// `ports::CREDENTIAL_STALENESS` (revocations and changes made in the database: `replicas`).
#[tokio::test]
async fn a_change_on_one_replica_is_refused_by_the_other_within_the_bound() {
    use crate::replicas::{refused_in_time, until_cached};
    use std::time::Instant;
    let server = spawn_app().await;
    let replica = Replica::start(&server).await;
    let owner = server.owner("acme").await;
    let owner_jwt = server.jwt(&owner);
    let admin = server.member(&owner, Role::Admin).await;
    let admin_jwt = server.jwt(&admin);
    let read = |path: &'static str| {
        let (replica, jwt) = (&replica, &admin_jwt);
        move || async move { replica.get(path, Some(jwt)).await.0 }
    };

    // A demotion on one is the role on the other.
    until_cached(&replica.metrics, read("/api/v1/audit-events"), 200).await;
    let path = format!("/api/v1/users/{}", admin.id);
    let body = serde_json::json!({"role": "member"});
    let reply = server
        .call("PATCH", &path, Some(&owner_jwt), Some(&body))
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    refused_in_time(Instant::now(), read("/api/v1/audit-events"), 200, 403).await;
    let (status, me) = replica.get("/api/v1/me", Some(&admin_jwt)).await;
    assert_eq!((status, me["role"].as_str()), (200, Some("member")));

    // A member removed on one is refused by the other.
    until_cached(&replica.metrics, read("/api/v1/projects"), 200).await;
    let reply = server.call("DELETE", &path, Some(&owner_jwt), None).await;
    assert_eq!(reply.status, 204, "{reply:?}");
    refused_in_time(Instant::now(), read("/api/v1/projects"), 200, 401).await;
}

/// A token used and then revoked before the background writer ran (a CI job that revokes its
/// token when done; or a token revoking itself, which `RevokeApiToken` allows) leaves its
/// noted use in the map for ever: `touch_own` answers `NotFound` for a revoked token,
/// `record_token_uses` keeps every failed use "for the next try", and the next try fails the
/// same way, every second, until the process stops. Each one costs a transaction per second
/// and an error line per second; they only accumulate.
#[tokio::test]
async fn a_noted_use_of_a_token_revoked_before_it_was_written_is_not_retried_for_ever() {
    let server = spawn_app().await;
    let owner = server.owner("acme").await;
    let uow = server.store.begin(&owner_scope(&owner)).await.unwrap();
    let (token, value) = uow
        .api_tokens()
        .create(domain::Name::new("ci").unwrap(), None)
        .await
        .unwrap();
    uow.commit().await.unwrap();
    let (app, seen) = recording(&server).await;

    // A read with the token: its use is noted in memory.
    app.authenticate_api_token(&value, &Origin::default(), false)
        .await
        .unwrap()
        .unwrap();
    // The token is revoked before the writer's next tick.
    let uow = server.store.begin(&owner_scope(&owner)).await.unwrap();
    uow.api_tokens().revoke_own(token.id).await.unwrap();
    uow.commit().await.unwrap();

    // The writer's tick: nothing to write, the token is gone.
    assert_eq!(app.record_token_uses().await, 0);
    // Every later tick should have nothing left to try.
    for _ in 0..3 {
        let from = seen.lock().unwrap().len();
        assert_eq!(app.record_token_uses().await, 0);
        let ran = seen.lock().unwrap()[from..].to_vec();
        assert!(
            ran.is_empty(),
            "the use of a revoked token is tried again at every tick, for ever: {ran:#?}"
        );
    }
}

/// Disables `user` as the operator would, in the database.
async fn disable(server: &TestApp, user: domain::UserId) {
    let disabled = server
        .count(&format!(
            "WITH d AS (UPDATE users SET is_active = false WHERE id = '{user}' RETURNING 1) \
             SELECT count(*) FROM d"
        ))
        .await;
    assert_eq!(disabled, 1);
}

/// The attack: a change is authenticated before its body is read, and its work begins once
/// the body is in. Whatever happened to the credential in between (revoked, its user
/// disabled, removed or demoted) must hold when the work begins: its first statement checks
/// the credential again, and a caller who is no longer who they were changes nothing.
#[tokio::test]
async fn a_change_checks_its_credential_again_in_the_first_statement_of_its_work() {
    use app::projects::CreateProjectError;
    use app::{Denial, Refused};
    let server = spawn_app().await;
    let owner = server.owner("acme").await;
    let (app, seen) = recording(&server).await;
    let new_project = |name: &str| ports::NewProject {
        name: domain::Name::new(name).unwrap(),
        description: None,
        icon: None,
    };
    // Accepted as a change's credential is: before its body, its transaction not kept.
    let change = |user: &TestUser| {
        let (app, claims) = (&app, claims_of(user));
        async move {
            let accepted = app
                .authenticate_access_token(&claims, false)
                .await
                .unwrap()
                .unwrap();
            (Caller::new(accepted, Origin::default()), claims)
        }
    };
    let denial = |result: Result<domain::Project, CreateProjectError>| match result {
        Err(CreateProjectError::Refused(Refused { denial })) => Some(denial),
        other => panic!("not refused: {other:?}"),
    };

    // Nothing changed: the work's first statement is the check, and the change is made.
    let (caller, _) = change(&owner).await;
    let from = seen.lock().unwrap().len();
    app.create_project(&caller, new_project("kept"))
        .await
        .unwrap();
    let ran = since(&seen, from);
    let first = ran.iter().find(|sql| sql.trim() != "BEGIN").unwrap();
    assert!(first.contains("app_access_token_subject"), "{ran:#?}");
    assert!(
        !ran.iter().any(|sql| sets_the_tenant_alone(sql)),
        "{ran:#?}"
    );

    // Revoked in between.
    let member = server.member(&owner, Role::Member).await;
    let (caller, claims) = change(&member).await;
    server
        .store
        .unscoped_revoke_access_token(claims.jti, member.id, claims.expires_at)
        .await
        .unwrap();
    let result = app.create_project(&caller, new_project("revoked")).await;
    assert_eq!(
        denial(result),
        Some(Denial::Credential(RefusalReason::Revoked))
    );

    // Disabled in between.
    let (caller, _) = change(&member).await;
    disable(&server, member.id).await;
    let result = app.create_project(&caller, new_project("disabled")).await;
    assert_eq!(
        denial(result),
        Some(Denial::Credential(RefusalReason::UserInactive))
    );

    // Removed in between.
    let other = server.member(&owner, Role::Member).await;
    let (caller, _) = change(&other).await;
    let uow = server.store.begin(&owner_scope(&owner)).await.unwrap();
    uow.users().remove(other.id).await.unwrap();
    uow.commit().await.unwrap();
    let result = app.create_project(&caller, new_project("removed")).await;
    assert_eq!(
        denial(result),
        Some(Denial::Credential(RefusalReason::LeftOrganization))
    );

    // Demoted in between: permitted to an admin, refused to the member they now are.
    let admin = server.member(&owner, Role::Admin).await;
    let (caller, _) = change(&admin).await;
    let uow = server.store.begin(&owner_scope(&owner)).await.unwrap();
    uow.users().set_role(admin.id, Role::Member).await.unwrap();
    uow.commit().await.unwrap();
    let result = app.create_project(&caller, new_project("demoted")).await;
    assert_eq!(denial(result), Some(Denial::StandingChanged));

    // An API token revoked in between.
    let uow = server.store.begin(&owner_scope(&owner)).await.unwrap();
    let (token, value) = uow
        .api_tokens()
        .create(domain::Name::new("ci").unwrap(), None)
        .await
        .unwrap();
    uow.commit().await.unwrap();
    let accepted = app
        .authenticate_api_token(&value, &Origin::default(), false)
        .await
        .unwrap()
        .unwrap();
    let caller = Caller::new(accepted, Origin::default());
    let uow = server.store.begin(&owner_scope(&owner)).await.unwrap();
    uow.api_tokens().revoke_own(token.id).await.unwrap();
    uow.commit().await.unwrap();
    let result = app
        .create_project(&caller, new_project("token-revoked"))
        .await;
    assert_eq!(
        denial(result),
        Some(Denial::Credential(RefusalReason::Unknown))
    );

    // Only the first change was made, and each refusal is in the audit log.
    assert_eq!(server.count("SELECT count(*) FROM projects").await, 1);
    let refusals = server
        .count(
            "SELECT count(*) FROM audit_events WHERE \
             (action = 'authentication.failed' \
              AND reason IN ('revoked', 'user_inactive', 'left_organization', 'unknown')) \
             OR (action = 'access.denied' AND reason = 'standing_changed')",
        )
        .await;
    assert_eq!(refusals, 5);
}

/// A user disabled between their credential's check and their founding founds nothing.
#[tokio::test]
async fn an_organization_is_not_founded_by_a_user_disabled_after_their_credential_was_checked() {
    let server = spawn_app().await;
    let (app, _) = recording(&server).await;
    let lone = server
        .store
        .unscoped_sign_in(ports::NewIdentity {
            subject: format!("test|lone-{}", Uuid::now_v7()),
            email: domain::Email::new(&format!("lone-{}@example.org", Uuid::now_v7())).unwrap(),
            email_verified: true,
            name: None,
        })
        .await
        .unwrap();
    let now = ports::Clock::now(&SystemClock);
    let claims = AccessTokenClaims {
        user: lone.user_id,
        issued_for: None,
        jti: Uuid::now_v7(),
        sid: None,
        auth_time: Some(now),
        expires_at: now + Duration::minutes(5),
    };
    let accepted = app
        .authenticate_access_token(&claims, false)
        .await
        .unwrap()
        .unwrap();
    let caller = Caller::new(accepted, Origin::default());
    disable(&server, lone.user_id).await;
    let new = ports::NewOrganization::named(domain::Name::new("late").unwrap());
    let result = app.found_organization(&caller, new).await;
    assert!(
        matches!(
            result,
            Err(app::organizations::FoundOrganizationError::Refused(
                app::Refused {
                    denial: app::Denial::Credential(RefusalReason::UserInactive)
                }
            ))
        ),
        "{result:?}"
    );
    assert_eq!(server.count("SELECT count(*) FROM organizations").await, 0);
    // And the store founds nothing for a disabled user, whoever asks.
    let new = ports::NewOrganization::named(domain::Name::new("late").unwrap());
    let event = ports::NewAuditEvent::by(Some(lone.user_id), AuditAction::OrganizationCreated);
    assert!(
        server
            .store
            .found_organization(lone.user_id, new, event)
            .await
            .is_err()
    );
    assert_eq!(server.count("SELECT count(*) FROM organizations").await, 0);
}

/// Sends `POST path` with `bearer` and `body`: the head and the first byte of the body now,
/// the rest by [`finish_slow_body`].
fn start_slow_body(server: &TestApp, path: &str, bearer: &str, body: &[u8]) -> std::net::TcpStream {
    use std::io::Write;
    let addr = server.address.trim_start_matches("http://").to_owned();
    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {bearer}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&body[..1]).unwrap();
    stream.flush().unwrap();
    stream
}

/// Sends the rest of `body` and reads the status line of the answer.
async fn finish_slow_body(mut stream: std::net::TcpStream, body: &[u8]) -> String {
    use std::io::{Read, Write};
    let rest = body[1..].to_vec();
    tokio::task::spawn_blocking(move || {
        stream.write_all(&rest).unwrap();
        stream.flush().unwrap();
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        response.lines().next().unwrap_or_default().to_owned()
    })
    .await
    .unwrap()
}

/// The same attack over HTTP: a client sends a change's head (its credential is checked),
/// holds its body back while the credential is revoked or its user removed, then sends it.
#[tokio::test]
async fn a_change_whose_body_arrives_after_its_credential_was_revoked_is_refused() {
    let server = spawn_app().await;
    let owner = server.owner("acme").await;
    let owner_jwt = server.jwt(&owner);

    // An API token, revoked while its request's body is on its way.
    let reply = server.create_api_token(&owner_jwt, "ci").await;
    assert_eq!(reply.status, 201, "{reply:?}");
    let token = reply.json()["token_value"].as_str().unwrap().to_owned();
    let id = reply.json()["id"].as_str().unwrap().to_owned();
    let body = br#"{"name":"after-revocation"}"#;
    let pending = start_slow_body(&server, "/api/v1/projects", &token, body);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let path = format!("/api/v1/tokens/{id}");
    let reply = server.call("DELETE", &path, Some(&owner_jwt), None).await;
    assert_eq!(reply.status, 204, "{reply:?}");
    let status = finish_slow_body(pending, body).await;
    assert!(status.contains(" 401 "), "{status}");

    // A member removed while their request's body is on its way.
    let member = server.member(&owner, Role::Member).await;
    let member_jwt = server.jwt(&member);
    let body = br#"{"name":"after-removal"}"#;
    let pending = start_slow_body(&server, "/api/v1/projects", &member_jwt, body);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let path = format!("/api/v1/users/{}", member.id);
    let reply = server.call("DELETE", &path, Some(&owner_jwt), None).await;
    assert_eq!(reply.status, 204, "{reply:?}");
    let status = finish_slow_body(pending, body).await;
    assert!(status.contains(" 401 "), "{status}");

    assert_eq!(server.count("SELECT count(*) FROM projects").await, 0);
}

/// The session path: the cookie's session is found, its user read as they are now and the
/// tenant set, in the first statement of the transaction the read then uses; its use is
/// noted and written apart.
#[tokio::test]
async fn a_session_read_is_one_transaction_and_its_use_is_written_apart() {
    use ports::{SessionLifetime, SessionStore};
    let server = spawn_app().await;
    let owner = server.owner("acme").await;
    let (app, seen) = recording(&server).await;
    let id_hash = [7_u8; 32];
    let lifetime = SessionLifetime {
        idle: Duration::minutes(30),
        absolute: Duration::hours(8),
    };
    let now = ports::Clock::now(&SystemClock);
    let data = format!(r#"{{"user_id":"\"{}\""}}"#, owner.id);
    server
        .store
        .create(id_hash, owner.id, Some(now), data.clone(), lifetime)
        .await
        .unwrap();
    // Last used two minutes ago: this use is one to write.
    server
        .count(
            "WITH d AS (UPDATE sessions SET last_seen_at = now() - interval '2 minutes' \
             RETURNING 1) SELECT count(*) FROM d",
        )
        .await;

    let from = seen.lock().unwrap().len();
    let entry = app
        .authenticate_session(id_hash, lifetime, true, &Origin::default())
        .await
        .unwrap();
    let app::SessionEntry::Live {
        data: kept,
        decision,
    } = entry
    else {
        panic!("not live: {entry:?}");
    };
    let parsed = |text: &str| serde_json::from_str::<serde_json::Value>(text).unwrap();
    assert_eq!(parsed(&kept), parsed(&data));
    let caller = Caller::new(decision.unwrap(), Origin::default());
    assert_eq!(caller.principal().membership(), Some(owner.membership));
    app.list_projects(&caller, first_page()).await.unwrap();
    let ran = since(&seen, from);
    let statements: Vec<_> = ran
        .iter()
        .filter(|sql| !matches!(sql.trim(), "BEGIN" | "COMMIT" | "ROLLBACK"))
        .collect();
    assert_eq!(statements.len(), 2, "{ran:#?}");
    assert!(
        statements[0].contains("app_session_load")
            && statements[0].contains("set_config('app.current_organization'"),
        "{ran:#?}"
    );
    assert!(statements[1].contains("FROM \"projects\""), "{ran:#?}");
    assert!(
        !ran.iter().any(|sql| sets_the_tenant_alone(sql)),
        "{ran:#?}"
    );
    let fresh = "SELECT count(*) FROM sessions WHERE last_seen_at > now() - interval '1 minute'";
    assert_eq!(server.count(fresh).await, 0, "not written by the request");
    assert_eq!(app.record_session_touches().await, 1);
    assert_eq!(server.count(fresh).await, 1);

    // An idle session ends in that first statement, and is forgotten for good (its
    // transaction keeps the deletion, though the read is refused).
    server
        .count(
            "WITH d AS (UPDATE sessions SET last_seen_at = now() - interval '31 minutes' \
             RETURNING 1) SELECT count(*) FROM d",
        )
        .await;
    let entry = app
        .authenticate_session(id_hash, lifetime, true, &Origin::default())
        .await
        .unwrap();
    assert!(matches!(entry, app::SessionEntry::Ended), "{entry:?}");
    assert_eq!(server.count("SELECT count(*) FROM sessions").await, 0);
}

/// A browser session's change checks its session again, not only its user: a session logged
/// out, replaced by a new login or ended while the change's body was on its way makes no
/// change. One still live does, with the session found again in the work's first statement.
#[tokio::test]
async fn a_change_by_a_session_that_ended_meanwhile_changes_nothing() {
    use app::projects::CreateProjectError;
    use app::{Denial, Refused};
    use ports::{SessionLifetime, SessionStore};
    let server = spawn_app().await;
    let owner = server.owner("acme").await;
    let (app, seen) = recording(&server).await;
    let lifetime = SessionLifetime {
        idle: Duration::minutes(30),
        absolute: Duration::hours(8),
    };
    let data = format!(r#"{{"user_id":"\"{}\""}}"#, owner.id);
    // A live session of the owner, accepted as a change's is: before its body, its
    // transaction not kept.
    let change = |id_hash: [u8; 32]| {
        let (app, store, data) = (&app, &server.store, data.clone());
        async move {
            let now = ports::Clock::now(&SystemClock);
            store
                .create(id_hash, owner.id, Some(now), data, lifetime)
                .await
                .unwrap();
            let entry = app
                .authenticate_session(id_hash, lifetime, false, &Origin::default())
                .await
                .unwrap();
            let app::SessionEntry::Live { decision, .. } = entry else {
                panic!("not live: {entry:?}");
            };
            Caller::new(decision.unwrap(), Origin::default())
        }
    };
    let new_project = |name: &str| ports::NewProject {
        name: domain::Name::new(name).unwrap(),
        description: None,
        icon: None,
    };
    let refused = |result: Result<domain::Project, CreateProjectError>| {
        assert!(
            matches!(
                result,
                Err(CreateProjectError::Refused(Refused {
                    denial: Denial::Credential(_)
                }))
            ),
            "not refused: {result:?}"
        );
    };

    // Still live: made, and the work's first statement finds the session again.
    let caller = change([1; 32]).await;
    let from = seen.lock().unwrap().len();
    app.create_project(&caller, new_project("kept"))
        .await
        .unwrap();
    let ran = since(&seen, from);
    let first = ran.iter().find(|sql| sql.trim() != "BEGIN").unwrap();
    assert!(first.contains("app_session_load"), "{ran:#?}");

    // Logged out in between.
    let caller = change([2; 32]).await;
    server.store.delete([2; 32]).await.unwrap();
    refused(app.create_project(&caller, new_project("logged-out")).await);

    // Replaced by a new login in between (the old id is gone, a new one lives).
    let caller = change([3; 32]).await;
    server.store.delete([3; 32]).await.unwrap();
    change([4; 32]).await;
    refused(app.create_project(&caller, new_project("replaced")).await);

    // Idle past its end in between: refused, and its end recorded.
    let caller = change([5; 32]).await;
    server
        .count(
            "WITH d AS (UPDATE sessions SET last_seen_at = now() - interval '31 minutes' \
             WHERE id_hash = decode(repeat('05', 32), 'hex') RETURNING 1) SELECT count(*) FROM d",
        )
        .await;
    refused(app.create_project(&caller, new_project("idle")).await);
    let ended = "SELECT count(*) FROM audit_events WHERE action = 'session.expired'";
    assert_eq!(server.count(ended).await, 1);

    assert_eq!(server.count("SELECT count(*) FROM projects").await, 1);
}
