//! Metrics in the Prometheus text format, on a listener of their own (`METRICS_BIND_ADDR`,
//! off unless set), never on the public port. The recorder is the `metrics` facade's,
//! installed once per process; the edge and the adapters record through the facade.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

use crate::StartupError;

/// The histogram buckets of request latency, in seconds.
const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];
/// How often the recorder drains its histogram buffers.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The build, as a gauge of 1 with its version.
pub const BUILD_INFO: &str = "rhesis_build_info";
/// The database pool's connections, by state (`in_use`, `idle`), read at each scrape.
pub const POOL_CONNECTIONS: &str = "rhesis_db_pool_connections";
/// The most connections the pool opens.
pub const POOL_MAX: &str = "rhesis_db_pool_max_connections";
/// Re-encryption's progress (the `reencrypt` command): organizations done and to do.
pub const REENCRYPT_ORGANIZATIONS: &str = "rhesis_reencrypt_organizations";
/// Re-encryption's values so far, by outcome.
pub const REENCRYPT_VALUES: &str = "rhesis_reencrypt_values";

static HANDLE: Mutex<Option<PrometheusHandle>> = Mutex::new(None);

/// The process's recorder, installed at the first call.
fn recorder() -> Result<PrometheusHandle, BuildError> {
    let mut installed = HANDLE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(handle) = installed.as_ref() {
        return Ok(handle.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(api_http::metrics::REQUEST_SECONDS.to_owned()),
            &LATENCY_BUCKETS,
        )?
        .install_recorder()?;
    api_http::metrics::enable();
    metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    // The counters of rare events, at zero from the start, so that an alert on them sees
    // a series before the first one.
    metrics::counter!(adapters_postgres::metrics::POOL_ACQUIRE_TIMEOUTS).absolute(0);
    metrics::counter!(api_http::metrics::BLOCKED_REQUESTS).absolute(0);
    for chain in ["organization", "system"] {
        metrics::counter!(adapters_postgres::metrics::AUDIT_APPEND_FAILURES, "chain" => chain)
            .absolute(0);
    }
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(UPKEEP_EVERY);
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    *installed = Some(handle.clone());
    Ok(handle)
}

/// The metrics listener, running.
pub(crate) struct MetricsListener {
    pub(crate) port: u16,
    pub(crate) server: actix_web::dev::ServerHandle,
}

/// Installs the recorder and serves `GET /metrics` on `addr` (one worker; the process's
/// signals stop the main server, which stops this one).
pub(crate) fn serve(
    addr: SocketAddr,
    database: Option<adapters_postgres::Database>,
) -> Result<MetricsListener, StartupError> {
    let handle = recorder().map_err(StartupError::Metrics)?;
    let scrape = web::Data::new((handle, database));
    let server = HttpServer::new(move || {
        App::new()
            .app_data(scrape.clone())
            .route("/metrics", web::get().to(render))
    })
    .workers(1)
    .disable_signals()
    .bind(addr)
    .map_err(StartupError::Bind)?;
    let port = server.addrs().first().map_or(0, |a| a.port());
    let server = server.run();
    let handle = server.handle();
    tokio::spawn(server);
    tracing::info!(port, "metrics listening");
    Ok(MetricsListener {
        port,
        server: handle,
    })
}

type Scrape = (PrometheusHandle, Option<adapters_postgres::Database>);

async fn render(scrape: web::Data<Scrape>) -> HttpResponse {
    let (handle, database) = scrape.get_ref();
    if let Some(pool) = database
        .as_ref()
        .and_then(adapters_postgres::Database::pool_state)
    {
        metrics::gauge!(POOL_CONNECTIONS, "state" => "in_use").set(f64::from(pool.in_use));
        metrics::gauge!(POOL_CONNECTIONS, "state" => "idle").set(f64::from(pool.idle));
        metrics::gauge!(POOL_MAX).set(f64::from(pool.max));
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(handle.render())
}

/// Re-encryption's progress after a batch.
pub(crate) fn reencrypt_progress(
    done: usize,
    organizations: usize,
    report: &adapters_postgres::ReencryptReport,
) {
    metrics::gauge!(REENCRYPT_ORGANIZATIONS, "state" => "done").set(done as f64);
    metrics::gauge!(REENCRYPT_ORGANIZATIONS, "state" => "total").set(organizations as f64);
    for (outcome, count) in [
        ("scanned", report.scanned),
        ("already_current", report.already_current),
        ("reencrypted", report.reencrypted),
        ("rebound", report.rebound),
        ("plaintext_encrypted", report.plaintext_encrypted),
        ("changed_concurrently", report.changed_concurrently),
        ("failed", report.failures.len() as u64),
    ] {
        metrics::gauge!(REENCRYPT_VALUES, "outcome" => outcome).set(count as f64);
    }
}
