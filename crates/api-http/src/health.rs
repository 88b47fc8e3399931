//! Liveness and readiness probes. Readiness is answered from a database check at most a
//! second old, so however often probes (or anyone) ask, the database sees one round trip per
//! second at most.

use std::sync::Arc;

use actix_web::{HttpResponse, get, web};
use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use ports::{Clock, HealthCheck, StoreError};
use serde_json::json;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::{ApiError, AppState, ErrorCode};

/// How old a readiness answer may be.
const READINESS_TTL: Duration = Duration::seconds(1);

/// A [`HealthCheck`] that asks the one it wraps at most once per second: concurrent callers
/// wait for the one check under way, later ones get its answer until it is a second old.
#[derive(Debug)]
pub struct CachedHealth {
    inner: Arc<dyn HealthCheck>,
    clock: Arc<dyn Clock>,
    last: tokio::sync::Mutex<Option<(DateTime<Utc>, bool)>>,
}

impl CachedHealth {
    pub fn new(inner: Arc<dyn HealthCheck>, clock: Arc<dyn Clock>) -> Self {
        Self {
            inner,
            clock,
            last: tokio::sync::Mutex::new(None),
        }
    }
}

/// A failed check, as remembered: the cause was logged when it happened.
#[derive(Debug, thiserror::Error)]
#[error("the last readiness check failed")]
struct NotReady;

#[async_trait]
impl HealthCheck for CachedHealth {
    async fn ready(&self) -> Result<(), StoreError> {
        let mut last = self.last.lock().await;
        let now = self.clock.now();
        let ok = match *last {
            Some((at, ok)) if now - at < READINESS_TTL && now >= at => ok,
            _ => {
                let ok = match self.inner.ready().await {
                    Ok(()) => true,
                    Err(err) => {
                        tracing::warn!(error = %err, "the readiness check failed");
                        false
                    }
                };
                *last = Some((self.clock.now(), ok));
                ok
            }
        };
        if ok {
            Ok(())
        } else {
            Err(StoreError::Unavailable(Box::new(NotReady)))
        }
    }
}

pub(crate) fn routes(cfg: &mut ServiceConfig<'_>) {
    cfg.service(live).service(ready);
}

/// The process is up and serving HTTP.
#[utoipa::path(tag = "health", responses((status = 200, description = "Serving")))]
#[get("/health/live")]
pub(crate) async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// The service can do its work: its database answers.
#[utoipa::path(
    tag = "health",
    responses(
        (status = 200, description = "Ready"),
        (status = 503, description = "The database does not answer", body = crate::error::Problem)
    )
)]
#[get("/health/ready")]
pub(crate) async fn ready(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state
        .health
        .ready()
        .await
        .map_err(|e| ApiError::with_cause(ErrorCode::Unavailable, e))?;
    Ok(HttpResponse::Ok().json(json!({ "status": "ready" })))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    /// A database stand-in that counts the checks it answers.
    #[derive(Debug, Default)]
    struct Counting {
        checks: AtomicU32,
        down: std::sync::atomic::AtomicBool,
    }

    #[async_trait]
    impl HealthCheck for Counting {
        async fn ready(&self) -> Result<(), StoreError> {
            self.checks.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            if self.down.load(Ordering::SeqCst) {
                Err(StoreError::Unavailable(Box::new(NotReady)))
            } else {
                Ok(())
            }
        }
    }

    #[derive(Debug)]
    struct Fixed(std::sync::Mutex<DateTime<Utc>>);

    impl Clock for Fixed {
        fn now(&self) -> DateTime<Utc> {
            *self.0.lock().unwrap()
        }
    }

    #[tokio::test]
    async fn a_flood_of_probes_costs_one_check_a_second() {
        let db = Arc::new(Counting::default());
        let clock = Arc::new(Fixed(std::sync::Mutex::new(DateTime::UNIX_EPOCH)));
        let cached = Arc::new(CachedHealth::new(db.clone(), clock.clone()));
        let probes: Vec<_> = (0..500)
            .map(|_| {
                let cached = Arc::clone(&cached);
                tokio::spawn(async move { cached.ready().await.is_ok() })
            })
            .collect();
        for probe in probes {
            assert!(probe.await.unwrap());
        }
        assert_eq!(db.checks.load(Ordering::SeqCst), 1);
        // A second later the database is down: the next probe asks again and is told.
        db.down.store(true, Ordering::SeqCst);
        *clock.0.lock().unwrap() += Duration::milliseconds(999);
        assert!(cached.ready().await.is_ok(), "still the last answer");
        *clock.0.lock().unwrap() += Duration::milliseconds(1);
        assert!(cached.ready().await.is_err());
        assert!(cached.ready().await.is_err());
        assert_eq!(db.checks.load(Ordering::SeqCst), 2);
    }
}
