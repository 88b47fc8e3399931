//! The audit log over HTTP: events with who, what, where from and the request id; filters;
//! tampering in the database found by the verify route and the operator command; witnessed
//! chain heads logged by the server and checked by `audit-verify --head`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use domain::{AuditEvent, OrganizationId, Role};
use ports::{AuditFilter, UnitOfWorkFactory};
use sea_orm::ConnectionTrait;
use secrecy::SecretString;
use serde_json::{Value, json};
use server::HeadWitness;
use server::config::AuditVerifyArgs;
use test_support::TestDatabase;

use crate::{AUDIT_KEY, TestApp, TestUser, free_port, serve_args, spawn_app};
use server::config::Profile;
use server::{Application, StartupError};

const BINARY: &str = env!("CARGO_BIN_EXE_rhesis-server");

/// `audit-verify` as the operator runs it, with `args`' database and keys.
fn verify_args(serve: &server::config::ServeArgs, heads: &[&str]) -> AuditVerifyArgs {
    AuditVerifyArgs {
        serve: serve.clone(),
        heads: heads.iter().map(|h| h.parse().unwrap()).collect(),
    }
}

/// Runs `sql` as the database owner (a DBA, a restored backup) in one transaction whose
/// tenant is `org`: the owner is subject to row-level security too, but sets it at will, and
/// may drop the constraint that refuses new unkeyed events.
async fn as_owner(db: &TestDatabase, org: Option<OrganizationId>, sql: &str) {
    let owner = sea_orm::Database::connect(db.owner_url()).await.unwrap();
    let tenant = org.map_or(
        "SELECT set_config('app.system_audit', 'on', true)".to_owned(),
        |o| format!("SELECT set_config('app.current_organization', '{o}', true)"),
    );
    owner
        .execute_unprepared(&format!(
            "BEGIN; ALTER TABLE audit_events DROP CONSTRAINT IF EXISTS audit_events_keyed; \
             {tenant}; {sql}; COMMIT;"
        ))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The witness of `user`'s organization chain head, as the head log line prints it.
async fn witness(app: &TestApp, user: &TestUser) -> String {
    let org = user.membership.organization_id;
    let head = app
        .store
        .unscoped_audit_head(Some(org))
        .await
        .unwrap()
        .unwrap();
    format!("{org}:{}:{}", head.seq, hex(&head.hash))
}

#[tokio::test]
async fn events_carry_actor_target_address_and_request_id_and_filter() {
    let app = spawn_app().await;
    let owner = app.owner("acme").await;
    let member = app.member(&owner, Role::Member).await;
    let jwt = app.jwt(&owner);
    let created = app.create_api_token(&jwt, "ci").await;
    let request_id = created.header("x-request-id").unwrap().to_owned();
    let token_id = created.json()["id"].as_str().unwrap().to_owned();
    app.call(
        "POST",
        "/api/v1/projects",
        Some(&app.jwt(&member)),
        Some(&json!({"name": "p"})),
    )
    .await;

    let reply = app
        .call(
            "GET",
            "/api/v1/audit-events?action=token.created",
            Some(&jwt),
            None,
        )
        .await;
    assert_eq!(reply.header("x-total-count"), Some("1"));
    let event = &reply.json()[0];
    assert_eq!(event["actor_id"], json!(owner.id.as_uuid()));
    assert_eq!(event["target_type"], "api_token");
    assert_eq!(event["target_id"], token_id.as_str());
    assert_eq!(event["outcome"], "success");
    assert_eq!(event["client_ip"], "127.0.0.1");
    assert_eq!(event["request_id"], request_id.as_str());
    assert_eq!(event["hash"].as_str().unwrap().len(), 64);

    let by_member = app
        .call(
            "GET",
            &format!("/api/v1/audit-events?actor_id={}", member.id.as_uuid()),
            Some(&jwt),
            None,
        )
        .await;
    let actions: Vec<_> = by_member.pluck("action");
    assert_eq!(
        actions,
        [json!("project.created"), json!("invitation.accepted")],
        "newest first: the member joined by accepting, then created a project"
    );
    let future = app
        .call(
            "GET",
            "/api/v1/audit-events?since=2999-01-01T00:00:00Z",
            Some(&jwt),
            None,
        )
        .await;
    assert_eq!(future.header("x-total-count"), Some("0"));
    let all = app
        .call("GET", "/api/v1/audit-events?limit=100", Some(&jwt), None)
        .await;
    let seqs: Vec<u64> = all
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    let mut expected = seqs.clone();
    expected.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(seqs, expected, "newest first");
    for (query, field) in [("action=token.stolen", "action"), ("limit=101", "limit")] {
        let reply = app
            .call(
                "GET",
                &format!("/api/v1/audit-events?{query}"),
                Some(&jwt),
                None,
            )
            .await;
        assert_eq!(
            (reply.status, reply.json()["field"].clone()),
            (400, json!(field)),
            "{query}"
        );
    }
    let reply = app
        .call(
            "GET",
            "/api/v1/audit-events?since=yesterday",
            Some(&jwt),
            None,
        )
        .await;
    assert_eq!(reply.status, 400);
}

#[tokio::test]
async fn tampering_is_named_by_the_verify_route_and_the_operator_command() {
    let app = spawn_app().await;
    let owner = app.owner("acme").await;
    let other = app.owner("globex").await;
    let jwt = app.jwt(&owner);
    for name in ["a", "b", "c"] {
        app.call(
            "POST",
            "/api/v1/projects",
            Some(&jwt),
            Some(&json!({"name": name})),
        )
        .await;
    }
    // Refused credentials land in the system chain (two kinds: two events).
    for token in [
        "not-a-token",
        "rh-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ] {
        app.call("GET", "/api/v1/me", Some(token), None).await;
    }
    let verify = app
        .call("GET", "/api/v1/audit-events/verify", Some(&jwt), None)
        .await;
    assert_eq!(
        verify.json(),
        json!({"intact": true, "events": 4, "unkeyed_events": 0, "first_broken_seq": null})
    );
    let args = verify_args(
        &serve_args(server::config::Profile::Test, app.db.app_url()),
        &[],
    );
    let summary = server::audit_verify(&args).await.unwrap();
    assert!(summary.contains("3 chains"), "{summary}");

    // The owner role edits an event of the first organization.
    let admin = app.admin_pool().await;
    admin
        .execute_unprepared(&format!(
            "UPDATE audit_events SET actor_user_id = NULL WHERE organization_id = '{}' AND seq = 3",
            owner.membership.organization_id.as_uuid()
        ))
        .await
        .unwrap();
    let verify = app
        .call("GET", "/api/v1/audit-events/verify", Some(&jwt), None)
        .await;
    assert_eq!(
        verify.json(),
        json!({"intact": false, "events": 2, "unkeyed_events": null, "first_broken_seq": 3})
    );
    let other_verify = app
        .call(
            "GET",
            "/api/v1/audit-events/verify",
            Some(&app.jwt(&other)),
            None,
        )
        .await;
    assert_eq!(other_verify.json()["intact"], true);
    let err = server::audit_verify(&args).await.unwrap_err().to_string();
    assert!(
        err.contains(&format!(
            "organization {} at event 3",
            owner.membership.organization_id.as_uuid()
        )),
        "{err}"
    );
    assert!(
        !err.contains(&other.membership.organization_id.as_uuid().to_string()),
        "{err}"
    );

    // And a deleted event of the system chain.
    admin
        .execute_unprepared("DELETE FROM audit_events WHERE organization_id IS NULL AND seq = 1")
        .await
        .unwrap();
    let err = server::audit_verify(&args).await.unwrap_err().to_string();
    assert!(err.contains("the system chain at event 1"), "{err}");
}

/// Every event of `user`'s organization chain, oldest first.
async fn events(app: &TestApp, user: &TestUser) -> Vec<AuditEvent> {
    let uow = app.store.begin(&user.scope()).await.unwrap();
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
async fn a_witnessed_head_finds_a_cut_tail_and_a_chain_rewritten_without_the_key() {
    let app = spawn_app().await;
    let owner = app.owner("acme").await;
    let other = app.owner("globex").await;
    let org = owner.membership.organization_id;
    let jwt = app.jwt(&owner);
    for name in ["a", "b", "c"] {
        app.call(
            "POST",
            "/api/v1/projects",
            Some(&jwt),
            Some(&json!({"name": name})),
        )
        .await;
    }
    // The head as the server logs it, kept by an external log store.
    let head = witness(&app, &owner).await;
    assert!(head.starts_with(&format!("{org}:4:")), "{head}");
    let summary = server::audit_verify(&verify_args(&app.args, &[&head]))
        .await
        .unwrap();
    assert!(summary.contains("1 witnessed heads hold"), "{summary}");

    // A wrong key: every keyed chain is broken at its first event, named.
    let mut wrong = app.args.clone();
    wrong.audit.chain_key = Some(SecretString::from(
        // Another random key.
        "QhZ0n8c2vJ5bFq7Lr9Xt1Wm4Ky6Ps3Ud8Ea0Gi2Oj5N".to_owned(),
    ));
    let err = server::audit_verify(&verify_args(&wrong, &[]))
        .await
        .unwrap_err()
        .to_string();
    for org in [org, other.membership.organization_id] {
        assert!(
            err.contains(&format!("organization {org} at event 1")),
            "{err}"
        );
    }

    // The owner role rewrites the whole chain with unkeyed links (what it can compute without
    // the key), an edited event among them. The chain alone cannot tell: it verifies, its
    // events all reported as unkeyed. The witnessed head can.
    let mut chain = events(&app, &owner).await;
    let mut prev = [0; 32];
    let mut sql = String::new();
    for event in &mut chain {
        if event.seq == 2 {
            event.target_id = Some("forged".to_owned());
        }
        event.prev_hash = prev;
        event.hash = crypto::unkeyed_audit_hash(&prev, event);
        prev = event.hash;
        sql.push_str(&format!(
            "UPDATE audit_events SET target_id = {}, prev_hash = decode('{}', 'hex'), \
             hash = decode('{}', 'hex'), hash_version = 1 WHERE organization_id = '{org}' \
             AND seq = {};",
            event
                .target_id
                .as_deref()
                .map_or("NULL".to_owned(), |t| format!("'{t}'")),
            hex(&event.prev_hash),
            hex(&event.hash),
            event.seq
        ));
    }
    as_owner(&app.db, Some(org), sql.trim_end_matches(';')).await;
    let verify = app
        .call("GET", "/api/v1/audit-events/verify", Some(&jwt), None)
        .await;
    assert_eq!(
        verify.json(),
        json!({"intact": true, "events": 4, "unkeyed_events": 4, "first_broken_seq": null})
    );
    let summary = server::audit_verify(&verify_args(&app.args, &[]))
        .await
        .unwrap();
    assert!(summary.contains("(4 unkeyed"), "{summary}");
    let err = server::audit_verify(&verify_args(&app.args, &[&head]))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!(
            "organization {org}: event 4 differs from the witnessed head"
        )),
        "{err}"
    );

    // The owner cuts the newest events of the other organization's chain off. What is left
    // is a valid chain: only the witness finds the cut.
    let other_org = other.membership.organization_id;
    let other_head = witness(&app, &other).await;
    app.call(
        "POST",
        "/api/v1/projects",
        Some(&app.jwt(&other)),
        Some(&json!({"name": "late"})),
    )
    .await;
    let later_head = witness(&app, &other).await;
    assert!(
        later_head.starts_with(&format!("{other_org}:2:")),
        "{later_head}"
    );
    as_owner(
        &app.db,
        Some(other_org),
        &format!("DELETE FROM audit_events WHERE organization_id = '{other_org}' AND seq = 2"),
    )
    .await;
    let args = verify_args(&app.args, &[&other_head]);
    assert!(
        server::audit_verify(&args).await.is_ok(),
        "an older head still holds"
    );
    let err = server::audit_verify(&verify_args(&app.args, &[&other_head, &later_head]))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!(
            "organization {other_org} was cut: it ends at event 1, before the witnessed event 2"
        )),
        "{err}"
    );
}

/// Stops a server started with its standard error piped, and returns what it logged.
fn stop_and_read_log(mut child: std::process::Child) -> Vec<String> {
    child.kill().unwrap();
    let stderr = child.stderr.take().unwrap();
    let lines = BufReader::new(stderr)
        .lines()
        .map_while(Result::ok)
        .collect();
    child.wait().unwrap();
    lines
}

/// The real binary logs the chain heads; the operator command checks a logged head and fails,
/// naming the chain, once the owner role has cut the chain's tail.
#[tokio::test]
async fn the_server_logs_chain_heads_and_the_operator_command_finds_a_cut_tail() {
    let db = TestDatabase::new().await;
    let port = free_port();
    let encryption_key = test_support::random_fernet_key();
    let env = |command: &mut Command| {
        command
            .env_clear()
            .env("APP_ENV", "test")
            .env("DATABASE_URL", db.app_url())
            .env("DB_ENCRYPTION_KEY", &encryption_key)
            .env("AUDIT_CHAIN_KEY", AUDIT_KEY)
            .env("JWT_SECRET_KEY", test_support::random_fernet_key())
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .env("HTTP_WORKERS", "1")
            .env("AUDIT_HEAD_LOG_SECONDS", "1")
            .env("AUDIT_REFUSAL_WINDOW_SECONDS", "1")
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
    };
    let mut serve = Command::new(BINARY);
    serve.arg("serve");
    env(&mut serve);
    let child = serve.spawn().unwrap();
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while client
        .get(format!("{base}/health/live"))
        .send()
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "the server did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Refused credentials: events of the system chain (with the strikes they earn).
    for _ in 0..3 {
        let refused = client
            .get(format!("{base}/api/v1/me"))
            .bearer_auth("not-a-token")
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 401);
    }
    // Counted over a one-second window, then recorded as one event of the system chain.
    let admin = db.admin_pool().await;
    let deadline = Instant::now() + Duration::from_secs(15);
    let counted = loop {
        let row = admin
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                "SELECT coalesce(sum(occurrences), 0)::bigint AS n FROM audit_events \
                 WHERE organization_id IS NULL AND action = 'authentication.failed'",
            ))
            .await
            .unwrap()
            .unwrap();
        let n: i64 = row.try_get("", "n").unwrap();
        if n == 3 || Instant::now() > deadline {
            break n;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(counted, 3, "the three refusals, counted");
    // The newest event of the system chain, as stored.
    let newest = admin
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT seq, encode(hash, 'hex') AS h FROM audit_events \
             WHERE organization_id IS NULL ORDER BY seq DESC LIMIT 1",
        ))
        .await
        .unwrap()
        .unwrap();
    let seq: i64 = newest.try_get("", "seq").unwrap();
    let hash: String = newest.try_get("", "h").unwrap();
    assert!(seq >= 1, "{seq}");
    // At least one full interval after the newest event.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let lines = stop_and_read_log(child);
    let heads: Vec<Value> = lines
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|e| e["security_event"] == "audit_chain_head")
        .collect();
    let last = heads
        .iter()
        .rfind(|e| e["chain"] == "system")
        .unwrap_or_else(|| panic!("no head line in {lines:#?}"));
    assert_eq!(last["level"], "INFO", "{last}");
    assert_eq!(last["seq"], seq, "{last}");
    assert_eq!(last["hash"], hash.as_str(), "{last}");
    let logged = last["witness"].as_str().unwrap().to_owned();
    assert_eq!(logged, format!("system:{seq}:{hash}"));
    assert_eq!(
        heads.iter().filter(|e| e["seq"] == seq).count(),
        1,
        "a head that did not move is not logged again: {heads:#?}"
    );
    for line in &lines {
        assert!(!line.contains(AUDIT_KEY), "the key in the log: {line}");
    }

    let verify = |heads: &[&str]| {
        let mut command = Command::new(BINARY);
        command.arg("audit-verify");
        for head in heads {
            command.args(["--head", head]);
        }
        env(&mut command);
        command.output().unwrap()
    };
    let held = verify(&[&logged]);
    assert!(
        held.status.success(),
        "{}",
        String::from_utf8_lossy(&held.stderr)
    );
    assert!(String::from_utf8_lossy(&held.stdout).contains("1 witnessed heads hold"));

    // The owner role cuts every event but the first off (it lifts the forced row-level security
    // of its own table to do so, and puts it back).
    let owner = sea_orm::Database::connect(db.owner_url()).await.unwrap();
    owner
        .execute_unprepared(
            "ALTER TABLE audit_events NO FORCE ROW LEVEL SECURITY; \
             DELETE FROM audit_events WHERE organization_id IS NULL AND seq > 1; \
             ALTER TABLE audit_events FORCE ROW LEVEL SECURITY;",
        )
        .await
        .unwrap();
    let alone = verify(&[]);
    assert!(
        alone.status.success(),
        "the chain alone cannot tell: {}",
        String::from_utf8_lossy(&alone.stderr)
    );
    let cut = verify(&[&logged]);
    assert!(!cut.status.success());
    let stderr = String::from_utf8_lossy(&cut.stderr);
    assert!(
        stderr.contains(&format!(
            "the system chain was cut: it ends at event 1, before the witnessed event {seq}"
        )),
        "{stderr}"
    );
    let parsed: HeadWitness = logged.parse().unwrap();
    assert_eq!(parsed.to_string(), logged);
}

#[tokio::test]
async fn production_refuses_to_start_with_a_key_that_does_not_fit_the_log() {
    let app = spawn_app().await;
    let owner = app.owner("acme").await;
    let org = owner.membership.organization_id;
    let mut args = serve_args(Profile::Production, app.db.app_url());
    args.audit.chain_key = Some(SecretString::from(
        // Another random key.
        "QhZ0n8c2vJ5bFq7Lr9Xt1Wm4Ky6Ps3Ud8Ea0Gi2Oj5N".to_owned(),
    ));
    match Application::build(&args).await {
        Err(StartupError::WrongAuditKey(chains)) => {
            assert!(chains.contains(&format!("organization {org}")), "{chains}");
        }
        other => panic!("a key that does not fit must stop production, got {other:?}"),
    }
    // The test profile warns and starts.
    let mut test = args.clone();
    test.profile = Profile::Test;
    assert!(Application::build(&test).await.is_ok());
    // The right key starts production.
    args.audit.chain_key = Some(SecretString::from(AUDIT_KEY.to_owned()));
    assert!(Application::build(&args).await.is_ok());
}

/// An event as the code before the keyed chain wrote it: `unkeyed_audit_hash` over the
/// previous hash, and the statement that stored it.
fn unkeyed_event(
    organization: Option<OrganizationId>,
    seq: u64,
    prev_hash: [u8; 32],
    target: &str,
) -> (AuditEvent, String) {
    let mut event = AuditEvent {
        id: domain::AuditEventId::from_uuid(uuid::Uuid::now_v7()),
        organization_id: organization,
        seq,
        occurred_at: chrono::DateTime::from_timestamp_micros(
            ports::Clock::now(&ports::SystemClock).timestamp_micros(),
        )
        .unwrap(),
        actor: None,
        action: domain::AuditAction::AuthenticationFailed,
        target_type: Some("credential".to_owned()),
        target_id: Some(target.to_owned()),
        outcome: domain::AuditOutcome::Failure,
        reason: Some("unknown".to_owned()),
        client_ip: Some("192.0.2.7".parse().unwrap()),
        request_id: Some(format!("req-{target}")),
        occurrences: 1,
        prev_hash,
        hash: [0; 32],
    };
    event.hash = crypto::unkeyed_audit_hash(&prev_hash, &event);
    let values = format!(
        "'{}', {seq}, '{}', NULL, 'authentication.failed', 'credential', '{target}', \
         'failure', 'unknown', '192.0.2.7', 'req-{target}', decode('{}', 'hex'), \
         decode('{}', 'hex')",
        event.id.as_uuid(),
        event.occurred_at.to_rfc3339(),
        hex(&event.prev_hash),
        hex(&event.hash),
    );
    let sql = match organization {
        // The earlier INSERT of the application role, under its organization's policy.
        Some(org) => format!(
            "BEGIN; SELECT set_config('app.current_organization', '{org}', true); \
             INSERT INTO audit_events (id, seq, occurred_at, actor_user_id, action, target_type, \
             target_id, outcome, reason, client_ip, request_id, prev_hash, hash, \
             organization_id) VALUES ({values}, '{org}'); COMMIT;"
        ),
        // The earlier system-chain function, thirteen arguments.
        None => format!(
            "BEGIN; SELECT app_system_audit_head(); SELECT app_system_audit_append({values}); \
             COMMIT;"
        ),
    };
    (event, sql)
}

/// The schema and the chains as they were before the key: migrated back one step, the
/// events rewritten with the hashes the earlier code computed for them, one more appended in
/// each chain the earlier way; then migrated up again, as an upgrade does.
#[tokio::test]
async fn events_written_before_the_key_verify_as_unkeyed_and_new_ones_chain_on_keyed() {
    use migration::MigratorTrait;

    let app = spawn_app().await;
    let owner = app.owner("acme").await;
    let org = owner.membership.organization_id;
    let jwt = app.jwt(&owner);
    for name in ["a", "b"] {
        app.call(
            "POST",
            "/api/v1/projects",
            Some(&jwt),
            Some(&json!({"name": name})),
        )
        .await;
    }
    let chain = events(&app, &owner).await;
    assert_eq!(chain.len(), 3);

    let owner_db = sea_orm::Database::connect(app.db.owner_url())
        .await
        .unwrap();
    // Back to the schema before the keyed chain (and whatever came after it).
    let migrations = <migration::Migrator as migration::MigratorTrait>::migrations();
    let keyed = migrations
        .iter()
        .position(|m| m.name() == "m20261206_000001_keyed_audit_chain")
        .unwrap();
    let steps = u32::try_from(migrations.len() - keyed).unwrap();
    migration::Migrator::down(&owner_db, Some(steps))
        .await
        .unwrap();
    let mut prev = [0; 32];
    let mut sql = String::new();
    for event in &chain {
        let mut old = event.clone();
        old.prev_hash = prev;
        old.hash = crypto::unkeyed_audit_hash(&prev, &old);
        prev = old.hash;
        sql.push_str(&format!(
            "UPDATE audit_events SET prev_hash = decode('{}', 'hex'), hash = decode('{}', 'hex') \
             WHERE organization_id = '{org}' AND seq = {};",
            hex(&old.prev_hash),
            hex(&old.hash),
            old.seq
        ));
    }
    as_owner(&app.db, Some(org), sql.trim_end_matches(';')).await;
    let app_db = app.db.app_pool(1).await;
    let (_, insert) = unkeyed_event(Some(org), 4, prev, "org-4");
    app_db.execute_unprepared(&insert).await.unwrap();
    let (_, append) = unkeyed_event(None, 1, [0; 32], "system-1");
    app_db.execute_unprepared(&append).await.unwrap();
    migration::Migrator::up(&owner_db, None).await.unwrap();

    let verify = app
        .call("GET", "/api/v1/audit-events/verify", Some(&jwt), None)
        .await;
    assert_eq!(
        verify.json(),
        json!({"intact": true, "events": 4, "unkeyed_events": 4, "first_broken_seq": null})
    );
    // New events are keyed and chain on the unkeyed ones, in both chains.
    app.call(
        "POST",
        "/api/v1/projects",
        Some(&jwt),
        Some(&json!({"name": "c"})),
    )
    .await;
    app.call("GET", "/api/v1/me", Some("not-a-token"), None)
        .await;
    let verify = app
        .call("GET", "/api/v1/audit-events/verify", Some(&jwt), None)
        .await;
    assert_eq!(
        verify.json(),
        json!({"intact": true, "events": 5, "unkeyed_events": 4, "first_broken_seq": null})
    );
    let summary = server::audit_verify(&verify_args(&app.args, &[]))
        .await
        .unwrap();
    assert!(
        summary.contains("2 chains, 7 events (5 unkeyed"),
        "{summary}"
    );
}

#[tokio::test]
async fn a_date_before_what_postgresql_can_hold_is_a_bad_request_not_a_server_error() {
    let app = spawn_app().await;
    let owner = app.owner("acme").await;
    let jwt = app.jwt(&owner);
    // RFC 3339 relaxed, as chrono reads it: a signed year of five digits or a year before
    // 4713 BC parses, but PostgreSQL's timestamptz cannot hold it.
    for query in [
        "since=-5000-01-01T00:00:00Z",
        "until=-10000-01-01T00:00:00Z",
    ] {
        let reply = app
            .call(
                "GET",
                &format!("/api/v1/audit-events?{query}"),
                Some(&jwt),
                None,
            )
            .await;
        assert_eq!(reply.status, 400, "{query}: {reply:?}");
    }
}

/// Unkeyed links are history from before the key; a chain with no keyed event yet (every
/// chain quiet since the upgrade, the system chain of a new installation) must not take new
/// ones from whoever may INSERT, or the application role writes events that verify forever
/// as that history, without the key.
#[tokio::test]
async fn no_unkeyed_event_is_taken_after_the_upgrade_even_before_a_chains_first_keyed_one() {
    use ports::AuditLog;
    let app = spawn_app().await;
    let in_system_chain = app
        .count("SELECT count(*) FROM audit_events WHERE organization_id IS NULL")
        .await;
    assert_eq!(
        in_system_chain, 0,
        "a new installation's system chain is empty"
    );
    // The application role, with no key, appends a made-up event through its own function.
    let (event, _) = unkeyed_event(None, 1, [0; 32], "forged-1");
    let append = format!(
        "BEGIN; SELECT app_system_audit_head(); SELECT app_system_audit_append('{}', 1, '{}', \
         NULL, 'authentication.failed', 'credential', 'forged-1', 'failure', 'unknown', \
         '192.0.2.7', 'req-forged-1', 1, decode('{}', 'hex'), decode('{}', 'hex'), \
         1::smallint); COMMIT;",
        event.id.as_uuid(),
        event.occurred_at.to_rfc3339(),
        hex(&event.prev_hash),
        hex(&event.hash),
    );
    let refused = app
        .db
        .app_pool(1)
        .await
        .execute_unprepared(&append)
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("audit_events_keyed"), "{refused}");
    let verdict = app.store.unscoped_verify(None).await.unwrap();
    assert_eq!(
        verdict,
        ports::ChainVerdict::Intact {
            events: 0,
            unkeyed: 0
        },
        "nothing written without the key"
    );
}

/// The attack: a flood of made-up credentials from many addresses (through a trusted proxy),
/// each refusal of which used to be one append to the system chain under its lock, on the
/// request path. Now the requests only count: nothing is written until the minute ends, then
/// one event per reason and address, whose counts add up to every refusal, in a chain that
/// verifies. The guesses are strikes too: their warnings are counted the same way (the strike
/// itself is one row per address, not the chain).
#[tokio::test]
async fn a_flood_of_refusals_is_counted_not_written_one_by_one() {
    let clock = test_support::ManualClock::at(ports::Clock::now(&ports::SystemClock));
    let app = crate::spawn_app_clocked(
        server::config::Profile::Test,
        |args| {
            args.browser.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
            // Enough strikes that the flood is warned, never blocked.
            args.blocks.block_strikes = 100;
        },
        clock.clone(),
    )
    .await;
    let refused_events = || async {
        use sea_orm::ConnectionTrait;
        // Read past the harness, which records counted refusals before it looks.
        app.db
            .admin_pool()
            .await
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                "SELECT count(*)::bigint AS events, coalesce(sum(occurrences), 0)::bigint AS n \
                 FROM audit_events WHERE action = 'authentication.failed'",
            ))
            .await
            .unwrap()
            .map(|row| {
                (
                    row.try_get::<i64>("", "events").unwrap(),
                    row.try_get::<i64>("", "n").unwrap(),
                )
            })
            .unwrap()
    };
    for n in 0..200_u32 {
        let address = format!("198.51.100.{}", n % 50);
        let reply = app
            .send(
                app.client
                    .get(app.url("/api/v1/me"))
                    .bearer_auth(format!("not-a-token-{n}"))
                    .header("x-forwarded-for", address),
            )
            .await;
        assert_eq!(reply.status, 401, "{reply:?}");
    }
    let system_chain = || async {
        use sea_orm::ConnectionTrait;
        app.db
            .admin_pool()
            .await
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                "SELECT count(*)::bigint AS n FROM audit_events WHERE organization_id IS NULL",
            ))
            .await
            .unwrap()
            .map(|row| row.try_get::<i64>("", "n").unwrap())
            .unwrap()
    };
    assert_eq!(
        refused_events().await,
        (0, 0),
        "nothing written on the request path"
    );
    assert_eq!(system_chain().await, 0, "no warning either");
    let pending = app.refusals.pending();
    assert!(
        (100..=250).contains(&pending),
        "50 refusal kinds, and a warning kind per address and strike: {pending}"
    );
    assert_eq!(
        app.refusals.flush(false).await,
        0,
        "the minute has not ended"
    );

    clock.advance(chrono::Duration::seconds(61));
    // Recorded by this flush or by the server's own, whichever comes first.
    app.refusals.flush(false).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while refused_events().await != (50, 200) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        refused_events().await,
        (50, 200),
        "one event per address, every refusal counted"
    );
    let per_address = app
        .strings(
            "SELECT concat_ws(' ', host(client_ip), reason, occurrences) FROM audit_events \
             WHERE action = 'authentication.failed' AND client_ip = '198.51.100.7'",
        )
        .await;
    assert_eq!(per_address, ["198.51.100.7 malformed 4"]);
    let warnings = app
        .count(
            "SELECT count(*) FROM audit_events WHERE action = 'rate_limit.warning' \
             AND client_ip = '198.51.100.7'",
        )
        .await;
    assert!((1..=4).contains(&warnings), "{warnings}");
    let verdict = ports::AuditLog::unscoped_verify(&app.store, None)
        .await
        .unwrap();
    assert_eq!(
        verdict,
        ports::ChainVerdict::Intact {
            events: u64::try_from(system_chain().await).unwrap(),
            unkeyed: 0
        }
    );
}

/// The attacks (found by review) on counting, through the server:
/// - one IPv6 client (one /64, any home line) that varies the low 64 bits of its address was
///   a new kind per request, one append per request again and the table of kinds full;
/// - a flush the store refused lost its counts;
/// - a block is recorded at once, the refusals and warnings that led to it when their minute
///   ends: each counted event is dated by its first occurrence, so the log still says what
///   came first.
#[tokio::test]
async fn counting_holds_for_ipv6_clients_store_failures_and_the_order_of_events() {
    // At the start of a minute: the guesses below, a second apart, fall in one counting
    // window (a clock started near a minute's end put them in two).
    let now = ports::Clock::now(&ports::SystemClock);
    let minute = chrono::DurationRound::duration_trunc(now, chrono::Duration::minutes(1)).unwrap();
    let clock = test_support::ManualClock::at(minute);
    let app = crate::spawn_app_clocked(
        Profile::Test,
        |args| {
            args.browser.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
            args.blocks.block_strikes = 2;
            args.blocks.block_strike_interval_ms = 0;
        },
        clock.clone(),
    )
    .await;
    let owner = app.owner("acme").await;
    // Expired tokens are no strikes: nothing blocks this flood of one /64.
    let hour_ago = ports::Clock::now(&ports::SystemClock) - chrono::Duration::hours(1);
    let expired = app.jwt_at(&owner, hour_ago, hour_ago);
    for n in 0..100_u32 {
        let reply = app
            .send(
                app.client
                    .get(app.url("/api/v1/me"))
                    .bearer_auth(&expired)
                    .header("x-forwarded-for", format!("2001:db8:7:7::{n:x}")),
            )
            .await;
        assert_eq!(reply.status, 401, "{reply:?}");
    }
    assert_eq!(app.refusals.pending(), 1, "one client, one kind");

    // The store refuses appends for a moment: the count waits for the next flush.
    let admin = app.db.admin_pool().await;
    admin
        .execute_unprepared(
            "ALTER TABLE audit_events ADD CONSTRAINT store_down \
             CHECK (action <> 'authentication.failed') NOT VALID",
        )
        .await
        .unwrap();
    assert_eq!(app.refusals.flush(true).await, 0, "the store is down");
    admin
        .execute_unprepared("ALTER TABLE audit_events DROP CONSTRAINT store_down")
        .await
        .unwrap();
    assert_eq!(
        app.strings(
            "SELECT concat_ws(' ', host(client_ip), reason, occurrences) FROM audit_events \
             WHERE action = 'authentication.failed'"
        )
        .await,
        ["2001:db8:7:7:: expired 100"]
    );

    // Two guesses block the guesser; its refusals and warning are dated before the block.
    for n in 1..=2_u32 {
        clock.advance(chrono::Duration::seconds(1));
        app.send(
            app.client
                .get(app.url("/api/v1/me"))
                .bearer_auth(format!("rh-{n:0>43}"))
                .header("x-forwarded-for", "203.0.113.5"),
        )
        .await;
    }
    let dated = app
        .strings(
            "SELECT action FROM audit_events WHERE organization_id IS NULL \
             AND client_ip = '203.0.113.5' ORDER BY occurred_at, seq",
        )
        .await;
    assert_eq!(
        dated,
        [
            "authentication.failed",
            "rate_limit.warning",
            "client.blocked"
        ],
        "by the time each happened"
    );
}
