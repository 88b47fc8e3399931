//! Metrics: their own listener, the Prometheus text format, and label values from closed
//! sets only.

use openmetrics_parser::{MetricsExposition, PrometheusType, PrometheusValue, Sample};
use server::config::Profile;

use crate::spawn_app_configured;

type Exposition = MetricsExposition<PrometheusType, PrometheusValue>;

/// Scrapes `url` and parses what it answers (a parse error fails the test).
async fn scrape(url: &str) -> (String, Exposition) {
    let response = reqwest::get(url).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4"),
        "the Prometheus text format"
    );
    let text = response.text().await.unwrap();
    let parsed = openmetrics_parser::prometheus::parse_prometheus(&text)
        .unwrap_or_else(|e| panic!("not the Prometheus text format: {e:?}\n{text}"));
    (text, parsed)
}

/// The samples of `name` whose labels include `labels`.
fn samples<'a>(
    scrape: &'a Exposition,
    name: &str,
    labels: &[(&str, &str)],
) -> Vec<&'a Sample<PrometheusValue>> {
    scrape
        .families
        .get(name)
        .into_iter()
        .flat_map(|family| family.iter_samples())
        .filter(|sample| {
            let set = sample.get_labelset().unwrap();
            labels
                .iter()
                .all(|(k, v)| set.get_label_value(k) == Some(*v))
        })
        .collect()
}

/// The value of the counter or gauge `name` whose labels include `labels`.
fn value(scrape: &Exposition, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples(scrape, name, labels)
        .first()
        .and_then(|sample| match &sample.value {
            PrometheusValue::Counter(c) => Some(c.value.as_f64()),
            PrometheusValue::Gauge(n) | PrometheusValue::Unknown(n) => Some(n.as_f64()),
            _ => None,
        })
}

#[tokio::test]
async fn metrics_are_served_on_their_own_listener_in_the_prometheus_format() {
    let app = spawn_app_configured(Profile::Test, |args| {
        args.metrics_bind = Some("127.0.0.1:0".parse().unwrap());
        args.limits.auth_per_minute = 2;
    })
    .await;
    let metrics = app.metrics_address.clone().expect("a metrics listener");
    let owner = app.owner("metrics").await;
    let jwt = app.jwt(&owner);
    for _ in 0..2 {
        let listed = app
            .client
            .get(app.url("/api/v1/projects"))
            .bearer_auth(&jwt)
            .send()
            .await
            .unwrap();
        assert_eq!(listed.status(), 200);
    }
    // A concrete path, a made-up method and a made-up token: none becomes a label.
    let planted = uuid::Uuid::new_v4().to_string();
    let missing = app
        .client
        .get(app.url(&format!("/api/v1/projects/{planted}")))
        .bearer_auth(&jwt)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let brew = app
        .client
        .request(
            reqwest::Method::from_bytes(b"BREW").unwrap(),
            app.url(&format!("/nowhere/{planted}")),
        )
        .send()
        .await
        .unwrap();
    assert!(brew.status().is_client_error());
    let made_up = format!("rh-{}", planted.replace('-', ""));
    let refused = app
        .client
        .get(app.url("/api/v1/projects"))
        .bearer_auth(&made_up)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    // Over the authentication routes' budget of 2.
    let mut limited = 0;
    for _ in 0..3 {
        let answer = app.client.get(app.url("/auth/login")).send().await.unwrap();
        limited += usize::from(answer.status() == 429);
    }
    assert_eq!(limited, 1);

    // Not on the public port.
    let public = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(public.status(), 404);

    let (text, scrape) = scrape(&format!("{metrics}/metrics")).await;
    let ok = [
        ("method", "GET"),
        ("route", "/api/v1/projects"),
        ("status", "200"),
    ];
    assert!(value(&scrape, "rhesis_http_requests_total", &ok).unwrap() >= 2.0);
    let latency = samples(&scrape, "rhesis_http_request_duration_seconds", &ok);
    match latency.first().map(|sample| &sample.value) {
        Some(PrometheusValue::Histogram(histogram)) => {
            assert!(histogram.buckets.len() >= 10, "{histogram:?}");
            assert!(histogram.count.unwrap_or(0) >= 2, "{histogram:?}");
            let all = histogram.buckets.last().unwrap();
            assert!(all.upper_bound.is_infinite(), "{histogram:?}");
        }
        other => panic!("a latency histogram, not {other:?}"),
    }
    assert!(
        value(
            &scrape,
            "rhesis_http_requests_total",
            &[
                ("route", "/api/v1/projects/{project_id}"),
                ("status", "404")
            ]
        )
        .is_some(),
        "the route template, not the path: {text}"
    );
    assert!(
        value(
            &scrape,
            "rhesis_http_requests_total",
            &[("method", "OTHER"), ("route", "<unmatched>")]
        )
        .is_some(),
        "{text}"
    );
    assert!(
        !text.contains(&planted),
        "a request's own text became a label"
    );
    assert!(!text.contains("BREW"), "a made-up method became a label");
    assert!(
        value(
            &scrape,
            "rhesis_auth_refusals_total",
            &[("credential", "api_token"), ("reason", "malformed")]
        )
        .unwrap_or_else(|| panic!("{text}"))
            >= 1.0,
        "{text}"
    );
    assert!(
        value(
            &scrape,
            "rhesis_rate_limit_rejections_total",
            &[("budget", "auth_routes")]
        )
        .unwrap()
            >= 1.0
    );
    assert_eq!(
        value(&scrape, "rhesis_db_pool_max_connections", &[]),
        Some(4.0)
    );
    for state in ["in_use", "idle"] {
        assert!(
            value(&scrape, "rhesis_db_pool_connections", &[("state", state)]).is_some(),
            "{state}: {text}"
        );
    }
    for name in [
        "rhesis_db_pool_acquire_timeouts_total",
        "rhesis_blocked_requests_total",
        "rhesis_audit_append_failures_total",
    ] {
        assert!(value(&scrape, name, &[]).is_some(), "{name}: {text}");
    }
    assert_eq!(
        value(
            &scrape,
            "rhesis_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0)
    );
}
