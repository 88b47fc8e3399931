//! Rate limits per client address: each tier trips at its budget and not before, with a 429
//! problem+json and `Retry-After`; the probes are never limited.

use server::config::{Profile, RateLimitArgs};

use crate::{Reply, TestApp, spawn_app_configured};

async fn with_limits(per_ip: u32, anonymous: u32, auth: u32) -> TestApp {
    with_all_limits(per_ip, anonymous, auth, 60_000).await
}

async fn with_all_limits(per_ip: u32, anonymous: u32, auth: u32, principal: u32) -> TestApp {
    spawn_app_configured(Profile::Test, |args| {
        args.limits = RateLimitArgs {
            per_ip_per_minute: per_ip,
            anonymous_per_minute: anonymous,
            auth_per_minute: auth,
            authenticated_per_minute: principal,
        };
    })
    .await
}

fn assert_limited(reply: &Reply, what: &str) {
    assert_eq!(reply.status, 429, "{what}: {reply:?}");
    assert_eq!(reply.problem_code(), "rate_limited", "{what}");
    let retry: u64 = reply.header("retry-after").unwrap().parse().unwrap();
    assert!(retry <= 60, "{what}: retry after {retry}");
    assert_eq!(
        reply.header("x-content-type-options"),
        Some("nosniff"),
        "{what}"
    );
}

#[tokio::test]
async fn requests_without_credentials_have_the_smallest_general_budget() {
    let app = with_limits(1000, 5, 1000).await;
    let owner = app.owner("acme").await;
    let jwt = app.jwt(&owner);
    for n in 1..=5 {
        let reply = app.call("GET", "/api/v1/me", None, None).await;
        assert_eq!(reply.status, 401, "request {n} is within the budget");
    }
    assert_limited(
        &app.call("GET", "/api/v1/me", None, None).await,
        "6th anonymous",
    );
    // The same address with a credential, and the probes, go on.
    assert_eq!(
        app.call("GET", "/api/v1/me", Some(&jwt), None).await.status,
        200
    );
    for _ in 0..10 {
        assert_eq!(
            app.call("GET", "/health/live", None, None).await.status,
            200
        );
    }
}

#[tokio::test]
async fn the_login_routes_have_their_own_strict_budget() {
    let app = with_limits(1000, 1000, 3).await;
    for n in 1..=3 {
        let reply = app.call("POST", "/auth/logout", None, None).await;
        assert_eq!(reply.status, 401, "request {n} is within the budget");
    }
    assert_limited(
        &app.call("POST", "/auth/logout", None, None).await,
        "4th login-route request",
    );
    assert_eq!(
        app.call("GET", "/api/v1/me", None, None).await.status,
        401,
        "other routes are not affected"
    );
}

#[tokio::test]
async fn every_request_of_an_address_counts_against_its_budget() {
    let app = with_limits(10, 1000, 1000).await;
    let owner = app.owner("acme").await;
    let jwt = app.jwt(&owner);
    for n in 1..=10 {
        let reply = app.call("GET", "/api/v1/projects", Some(&jwt), None).await;
        assert_eq!(reply.status, 200, "request {n} is within the budget");
    }
    assert_limited(
        &app.call("GET", "/api/v1/projects", Some(&jwt), None).await,
        "11th request",
    );
    assert_eq!(
        app.call("GET", "/health/ready", None, None).await.status,
        200
    );
}

#[tokio::test]
async fn each_principal_has_its_own_budget_behind_one_address() {
    let app = with_all_limits(1000, 1000, 1000, 4).await;
    let owner = app.owner("acme").await;
    let colleague = app.member(&owner, domain::Role::Member).await;
    let (owner_jwt, colleague_jwt) = (app.jwt(&owner), app.jwt(&colleague));
    for n in 1..=4 {
        let reply = app
            .call("GET", "/api/v1/projects", Some(&owner_jwt), None)
            .await;
        assert_eq!(reply.status, 200, "owner request {n}");
    }
    assert_limited(
        &app.call("GET", "/api/v1/projects", Some(&owner_jwt), None)
            .await,
        "the owner's 5th",
    );
    // Another access token of the same user shares the user's budget.
    let again = app.jwt(&owner);
    assert_limited(
        &app.call("GET", "/api/v1/me", Some(&again), None).await,
        "same user",
    );
    // The colleague behind the same address has a budget of their own.
    for n in 1..=4 {
        let reply = app
            .call("GET", "/api/v1/projects", Some(&colleague_jwt), None)
            .await;
        assert_eq!(reply.status, 200, "colleague request {n}");
    }
    assert_limited(
        &app.call("GET", "/api/v1/projects", Some(&colleague_jwt), None)
            .await,
        "the colleague's 5th",
    );
}

#[tokio::test]
async fn responses_carry_the_tightest_budget_left_and_browsers_may_read_it() {
    let app = with_all_limits(100, 10, 3, 5).await;
    let owner = app.owner("acme").await;
    let jwt = app.jwt(&owner);
    let budget = |reply: &Reply| {
        (
            reply.header("x-ratelimit-limit").map(str::to_owned),
            reply.header("x-ratelimit-remaining").map(str::to_owned),
        )
    };
    let pair = |limit: &str, remaining: &str| (Some(limit.to_owned()), Some(remaining.to_owned()));
    // Without a credential the anonymous budget is the tightest; on a login route, that one.
    let reply = app.call("GET", "/api/v1/me", None, None).await;
    assert_eq!(budget(&reply), pair("10", "9"));
    let reply = app.call("POST", "/auth/logout", None, None).await;
    assert_eq!(budget(&reply), pair("3", "2"));
    // With a credential, the credential's own budget.
    let reply = app.call("GET", "/api/v1/me", Some(&jwt), None).await;
    assert_eq!(reply.status, 200);
    assert_eq!(budget(&reply), pair("5", "4"));
    // A refusal over the budget says when to come back, and the headers are exposed to the
    // frontend's scripts.
    let request = app
        .client
        .get(app.url("/api/v1/me"))
        .header("origin", crate::FRONTEND);
    let reply = app.send(request).await;
    let exposed = reply.header("access-control-expose-headers").unwrap();
    for header in [
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
        "x-ratelimit-warning",
        "retry-after",
    ] {
        assert!(exposed.contains(header), "{header} in {exposed}");
    }
    // Probes carry no budget: they are not counted.
    let reply = app.call("GET", "/health/live", None, None).await;
    assert_eq!(budget(&reply), (None, None));
}
