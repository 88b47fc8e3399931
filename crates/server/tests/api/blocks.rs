//! The graduated response, with the server's clock in the test's hand: a limit violation is a
//! strike; the first strikes are warnings, then the client is blocked for a time that doubles
//! with each block, then for good; a permanent block outlives a restart; the operator's
//! command lifts it; every warning, block and lift is in the audit log's system chain.
//! Guessed credentials are strikes, expired ones are not; a credential over its budget is
//! blocked on its own, not its address.

use std::process::Command;

use chrono::Duration;
use ports::{AuditLog, ChainVerdict, Clock, SystemClock};
use secrecy::ExposeSecret;
use server::config::{BlockArgs, Profile, ServeArgs};
use test_support::ManualClock;

use crate::{Reply, TestApp, spawn_app_clocked, spawn_app_configured, start_server};

const BINARY: &str = env!("CARGO_BIN_EXE_rhesis-server");

/// Two strikes block; two blocks, and the next is permanent; every strike counts.
fn strict(args: &mut ServeArgs) {
    args.blocks = BlockArgs {
        block_strikes: 2,
        block_strike_window_seconds: 600,
        block_first_seconds: 60,
        block_permanent_after: 2,
        block_memory_seconds: 86_400,
        block_strike_interval_ms: 0,
        block_refresh_ms: 100,
    };
}

fn assert_warned(reply: &Reply, strike: u32, of: u32) {
    assert_eq!(reply.status, 429, "{reply:?}");
    assert_eq!(reply.problem_code(), "rate_limited");
    assert_eq!(
        reply.header("x-ratelimit-warning"),
        Some(format!("strike {strike} of {of}; further violations block this client").as_str())
    );
}

/// A guessed credential refused with a warning.
fn assert_warned_guess(reply: &Reply, strike: u32, of: u32) {
    assert_eq!(reply.status, 401, "{reply:?}");
    assert_eq!(
        reply.header("x-ratelimit-warning"),
        Some(format!("strike {strike} of {of}; further violations block this client").as_str())
    );
}

fn assert_blocked(reply: &Reply, retry_after: Option<&str>) {
    assert_eq!(reply.status, 403, "{reply:?}");
    assert_eq!(reply.problem_code(), "blocked");
    assert_eq!(reply.header("retry-after"), retry_after, "{reply:?}");
    assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
}

/// `action reason` of every event of the system chain, in order.
async fn system_chain(app: &TestApp) -> Vec<String> {
    app.strings(
        "SELECT concat_ws(' ', action, target_id, reason) FROM audit_events \
         WHERE organization_id IS NULL ORDER BY seq",
    )
    .await
}

/// Runs `rhesis-server blocks …` against the app's database, as an operator would.
fn operator(app: &TestApp, args: &[&str]) -> std::process::Output {
    Command::new(BINARY)
        .arg("blocks")
        .args(args)
        .env_clear()
        .env("APP_ENV", "test")
        .env("DATABASE_URL", app.db.app_url())
        .env(
            "DB_ENCRYPTION_KEY",
            app.args.encryption.key.as_ref().unwrap().expose_secret(),
        )
        .env("AUDIT_CHAIN_KEY", crate::AUDIT_KEY)
        .output()
        .unwrap()
}

#[tokio::test]
async fn warnings_then_doubling_blocks_then_a_permanent_one_that_outlives_a_restart() {
    let start = SystemClock.now();
    let clock = ManualClock::at(start);
    let app = spawn_app_clocked(
        Profile::Test,
        |args| {
            strict(args);
            args.limits.auth_per_minute = 1;
        },
        clock.clone(),
    )
    .await;
    let logout = || app.call("POST", "/auth/logout", None, None);
    assert_eq!(logout().await.status, 401, "within the budget");

    // Over the login routes' budget: a warning, then a block of a minute for the address,
    // whatever it asks for; the probes stay open.
    assert_warned(&logout().await, 1, 2);
    assert_blocked(&logout().await, Some("60"));
    assert_blocked(&app.call("GET", "/api/v1/me", None, None).await, Some("60"));
    assert_eq!(
        app.call("GET", "/health/live", None, None).await.status,
        200
    );

    // The block ends; the budget is still spent: a warning, then a block twice as long.
    clock.advance(Duration::seconds(61));
    assert_warned(&logout().await, 1, 2);
    assert_blocked(&logout().await, Some("120"));
    clock.advance(Duration::seconds(30));
    assert_blocked(&logout().await, Some("90"));

    // Traffic over a budget is what a foreign page can make a victim's browser send: its
    // blocks stop doubling at the longest temporary one and are never permanent.
    clock.advance(Duration::seconds(91));
    assert_warned(&logout().await, 1, 2);
    assert_blocked(&logout().await, Some("120"));

    // Guessed credentials are evidence of an attack of the client's own: after two blocks,
    // the third is for good.
    clock.advance(Duration::seconds(121));
    let guess = |n: u32| format!("rh-{n:0>43}");
    let me = |n: u32| {
        let app = &app;
        async move { app.call("GET", "/api/v1/me", Some(&guess(n)), None).await }
    };
    assert_warned_guess(&me(1).await, 1, 2);
    assert_blocked(&me(2).await, Some("60"));
    clock.advance(Duration::seconds(61));
    assert_warned_guess(&me(3).await, 1, 2);
    assert_blocked(&me(4).await, Some("120"));
    clock.advance(Duration::seconds(121));
    assert_warned_guess(&me(5).await, 1, 2);
    assert_blocked(&me(6).await, None);
    clock.advance(Duration::days(400));
    assert_blocked(&logout().await, None);

    // A new server on the same database refuses the address from its first request.
    let (restarted, ..) = start_server(&app.args, clock.clone()).await;
    let first = app
        .send(app.client.get(format!("{restarted}/api/v1/me")))
        .await;
    assert_blocked(&first, None);

    // The operator lifts it; the running server sees it at its next refresh.
    let output = operator(&app, &["list"]);
    let listed = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(
        listed.contains("ip:127.0.0.1\tblocked permanently\tstrikes 0\tblocks 3"),
        "{listed}"
    );
    let output = operator(&app, &["lift", "ip:127.0.0.1", "--reason", "ticket 42"]);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "ip:127.0.0.1: lifted"
    );
    let mut status = 0;
    for _ in 0..100 {
        status = app
            .send(app.client.get(format!("{restarted}/api/v1/me")))
            .await
            .status;
        if status != 403 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(status, 401, "lifted: the request reaches authentication");

    let t = |seconds: i64| {
        (start + Duration::seconds(seconds)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    let (traffic, key) = ("traffic:127.0.0.1", "ip:127.0.0.1");
    let chain: Vec<String> = system_chain(&app)
        .await
        .into_iter()
        .filter(|event| !event.starts_with("authentication.failed"))
        .collect();
    let expected = [
        format!("rate_limit.warning {traffic} strike 1 of 2"),
        format!("client.blocked {traffic} strikes; blocked until {}", t(60)),
        format!("rate_limit.warning {traffic} strike 1 of 2"),
        format!(
            "client.blocked {traffic} strikes; blocked until {}",
            t(61 + 120)
        ),
        format!("rate_limit.warning {traffic} strike 1 of 2"),
        format!(
            "client.blocked {traffic} strikes; blocked until {}",
            t(61 + 30 + 91 + 120)
        ),
        format!("rate_limit.warning {key} strike 1 of 2"),
        format!(
            "client.blocked {key} strikes; blocked until {}",
            t(303 + 60)
        ),
        format!("rate_limit.warning {key} strike 1 of 2"),
        format!(
            "client.blocked {key} strikes; blocked until {}",
            t(364 + 120)
        ),
        format!("rate_limit.warning {key} strike 1 of 2"),
        format!("client.blocked {key} strikes; blocked permanently"),
        format!("client.block_lifted {key} operator: ticket 42"),
    ];
    // Blocks and lifts are recorded in their own transactions, in order; warnings are counted
    // per key and minute and recorded when the minute ends (here when the test looks), in the
    // order they happened.
    let warning = |e: &&String| e.starts_with("rate_limit.warning");
    assert_eq!(
        chain.iter().filter(|e| !warning(e)).collect::<Vec<_>>(),
        expected.iter().filter(|e| !warning(e)).collect::<Vec<_>>()
    );
    assert_eq!(
        chain.iter().filter(warning).collect::<Vec<_>>(),
        expected.iter().filter(warning).collect::<Vec<_>>()
    );
    assert!(matches!(
        app.store.unscoped_verify(None).await.unwrap(),
        ChainVerdict::Intact { unkeyed: 0, .. }
    ));
}

#[tokio::test]
async fn guessed_credentials_are_strikes_and_expired_ones_are_not() {
    let app = spawn_app_configured(Profile::Test, |args| {
        strict(args);
        args.blocks.block_strikes = 3;
    })
    .await;
    let owner = app.owner("acme").await;
    let hour_ago = SystemClock.now() - Duration::hours(1);
    let expired = app.jwt_at(&owner, hour_ago, hour_ago);
    for _ in 0..5 {
        let reply = app.call("GET", "/api/v1/me", Some(&expired), None).await;
        assert_eq!(reply.status, 401);
        assert_eq!(reply.header("x-ratelimit-warning"), None);
    }
    let guess = |n: u32| format!("rh-{n:0>43}");
    for strike in 1..=2 {
        let reply = app
            .call("GET", "/api/v1/me", Some(&guess(strike)), None)
            .await;
        assert_eq!(reply.status, 401);
        assert_eq!(
            reply.header("x-ratelimit-warning"),
            Some(format!("strike {strike} of 3; further violations block this client").as_str())
        );
    }
    assert_blocked(
        &app.call("GET", "/api/v1/me", Some(&guess(3)), None).await,
        Some("60"),
    );
    // The address is blocked, whatever credential it brings now.
    assert_blocked(
        &app.call("GET", "/api/v1/me", Some(&app.jwt(&owner)), None)
            .await,
        Some("60"),
    );
}

#[tokio::test]
async fn a_credential_over_its_budget_is_blocked_and_its_address_is_not() {
    let app = spawn_app_configured(Profile::Test, |args| {
        strict(args);
        args.limits.authenticated_per_minute = 2;
    })
    .await;
    let owner = app.owner("acme").await;
    let other = app.owner("globex").await;
    let (jwt, other_jwt) = (app.jwt(&owner), app.jwt(&other));
    for remaining in ["1", "0"] {
        let reply = app.call("GET", "/api/v1/me", Some(&jwt), None).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("x-ratelimit-limit"), Some("2"));
        assert_eq!(reply.header("x-ratelimit-remaining"), Some(remaining));
    }
    assert_warned(&app.call("GET", "/api/v1/me", Some(&jwt), None).await, 1, 2);
    assert_blocked(
        &app.call("GET", "/api/v1/me", Some(&jwt), None).await,
        Some("60"),
    );
    let reply = app.call("GET", "/api/v1/me", Some(&other_jwt), None).await;
    assert_eq!(
        reply.status, 200,
        "another principal behind the same address"
    );
    let events = system_chain(&app).await;
    let key = format!("user:{}", owner.id);
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(
        events
            .iter()
            .any(|e| e.starts_with(&format!("client.blocked {key} strikes; blocked until"))),
        "{events:?}"
    );
    assert!(
        events.contains(&format!("rate_limit.warning {key} strike 1 of 2")),
        "{events:?}"
    );
}

#[tokio::test]
async fn the_operators_blocks_hold_with_the_graduated_response_off() {
    let app = spawn_app_configured(Profile::Test, |args| {
        args.blocks.block_strikes = 0;
        args.blocks.block_refresh_ms = 100;
    })
    .await;
    let owner = app.owner("acme").await;
    let jwt = app.jwt(&owner);
    let output = operator(
        &app,
        &[
            "add",
            "ip:127.0.0.1",
            "--minutes",
            "5",
            "--reason",
            "abuse report 17",
        ],
    );
    assert!(output.status.success(), "{output:?}");
    let mut reply = app.call("GET", "/api/v1/me", Some(&jwt), None).await;
    for _ in 0..100 {
        if reply.status == 403 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        reply = app.call("GET", "/api/v1/me", Some(&jwt), None).await;
    }
    assert_eq!(reply.status, 403, "{reply:?}");
    assert_eq!(reply.problem_code(), "blocked");
    let retry: u64 = reply.header("retry-after").unwrap().parse().unwrap();
    assert!((240..=300).contains(&retry), "{retry}");
    let events = system_chain(&app).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(
        events[0]
            .starts_with("client.blocked ip:127.0.0.1 operator: abuse report 17; blocked until"),
        "{events:?}"
    );
}
