//! A browser session's use, written down off the request path: its `last_seen_at` (which
//! the idle timeout counts from) at most once per resolution. A request notes the use in
//! memory; [`App::record_session_touches`] writes what was noted, the background task that
//! writes API tokens' uses calling it every second (and once more at a graceful stop).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use ports::{SessionLifetime, StoreError};

use crate::App;

/// The sessions used since their use was last written, by the SHA-256 of their id, with the
/// lifetime they were used under.
#[derive(Debug, Default)]
pub(crate) struct SessionTouches(Mutex<HashMap<[u8; 32], SessionLifetime>>);

impl SessionTouches {
    fn noted(&self) -> MutexGuard<'_, HashMap<[u8; 32], SessionLifetime>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn note(&self, id_hash: [u8; 32], lifetime: SessionLifetime) {
        self.noted().insert(id_hash, lifetime);
    }
}

impl App {
    /// Marks the sessions noted so far used (a session gone or ended since is nothing to
    /// mark). A use the store could not be reached for is kept for the next call. Returns
    /// how many were written.
    pub async fn record_session_touches(&self) -> usize {
        let noted: Vec<_> = self.session_touches.noted().drain().collect();
        let mut written = 0;
        for (id_hash, lifetime) in noted {
            match self.sessions.touch(id_hash, lifetime).await {
                Ok(()) => written += 1,
                Err(err @ StoreError::Unavailable(_)) => {
                    tracing::error!(error = %err,
                        "a session's use could not be written; kept for the next try");
                    self.session_touches.note(id_hash, lifetime);
                }
                Err(err) => tracing::error!(error = %err, "a session's use could not be written"),
            }
        }
        written
    }
}
