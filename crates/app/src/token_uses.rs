//! An API token's use, written down off the request path: `last_used_at` at most once per
//! resolution, and `token.used` at its first recorded use. A request notes the use in
//! memory; [`App::record_token_uses`] writes what was noted, a background task calling it
//! every second (and once more at a graceful stop). A process that dies loses at most the
//! uses noted since the last time, which the next use notes again.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use domain::{ApiTokenId, AuditTarget};
use ports::{NewAuditEvent, StoreError, TenantScope};

use crate::App;

/// A use waiting to be written: where, and the event its first recorded use would be.
#[derive(Debug, Clone)]
struct Noted {
    scope: TenantScope,
    event: NewAuditEvent,
}

/// The uses noted since they were last written, one per token (the first noted wins).
#[derive(Debug, Default)]
pub(crate) struct TokenUses(Mutex<HashMap<ApiTokenId, Noted>>);

impl TokenUses {
    fn noted(&self) -> MutexGuard<'_, HashMap<ApiTokenId, Noted>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn note(&self, token: ApiTokenId, scope: TenantScope, event: NewAuditEvent) {
        self.noted().entry(token).or_insert(Noted { scope, event });
    }
}

impl App {
    /// Writes the token uses noted so far; each token's in a unit of work of its own
    /// organization. A use the store could not be reached for is kept for the next call;
    /// one of a token revoked since is dropped. Returns how many were written.
    pub async fn record_token_uses(&self) -> usize {
        let noted: Vec<(ApiTokenId, Noted)> = self.token_uses.noted().drain().collect();
        let mut written = 0;
        for (token, use_) in noted {
            match self.record_token_use(token, &use_).await {
                Ok(()) => written += 1,
                // Revoked (or its owner gone) since it was used: nothing to write, ever.
                Err(StoreError::NotFound) => {}
                // Only a store that could not be reached is worth another try.
                Err(err @ StoreError::Unavailable(_)) => {
                    tracing::error!(error = %err, %token,
                        "a token's use could not be written; kept for the next try");
                    self.token_uses.noted().entry(token).or_insert(use_);
                }
                Err(err) => {
                    tracing::error!(error = %err, %token, "a token's use could not be written");
                }
            }
        }
        written
    }

    async fn record_token_use(&self, token: ApiTokenId, use_: &Noted) -> Result<(), StoreError> {
        let uow = self.units.begin(&use_.scope).await?;
        if uow
            .api_tokens()
            .touch_own(token, self.token_use_resolution)
            .await?
        {
            let event = use_.event.clone().on(AuditTarget::ApiToken(Some(token)));
            uow.audit().record(event).await?;
        }
        uow.commit().await
    }
}
