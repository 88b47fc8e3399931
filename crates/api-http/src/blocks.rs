//! The graduated response at the edge: the blocks in force, cached in memory and refreshed
//! from the shared store every few seconds so every replica sees them, and the strikes that
//! limit violations and guessed credentials count.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use actix_governor::governor::{DefaultKeyedRateLimiter, Quota};
use chrono::{DateTime, Utc};
use domain::{BlockKey, BlockPolicy, BlockState, StrikeVerdict};
use ports::{BlockContext, BlockList, StoreError};

/// How the graduated response is tuned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockSettings {
    pub policy: BlockPolicy,
    /// Strikes against one key closer together than this count once, so a flood of
    /// refused requests costs the store one write per key and interval.
    pub strike_interval: Duration,
}

struct Inner {
    list: Arc<dyn BlockList>,
    /// `None`: no strikes are counted; the operator's blocks still hold.
    settings: Option<BlockSettings>,
    cache: RwLock<HashMap<BlockKey, BlockState>>,
    /// One strike per key and interval; `None` counts every strike.
    gate: Option<DefaultKeyedRateLimiter<BlockKey>>,
    /// Where warnings are counted, to be recorded once per kind and window.
    warnings: Arc<crate::RefusalLog>,
}

/// The blocks in force and the strikes against clients; cheap to clone.
#[derive(Clone)]
pub struct Blocker {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Blocker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Blocker")
            .field("strikes", &self.inner.settings.is_some())
            .finish_non_exhaustive()
    }
}

impl Blocker {
    /// The blocks kept in `list`, and the graduated response under `settings` (`None`
    /// counts no strikes; blocks the operator sets still hold).
    pub fn new(
        list: Arc<dyn BlockList>,
        settings: Option<BlockSettings>,
        warnings: Arc<crate::RefusalLog>,
    ) -> Self {
        let gate = settings
            .and_then(|s| Quota::with_period(s.strike_interval))
            .map(DefaultKeyedRateLimiter::keyed);
        Self {
            inner: Arc::new(Inner {
                list,
                settings,
                cache: RwLock::new(HashMap::new()),
                gate,
                warnings,
            }),
        }
    }

    /// The block of `key` in force at `now`, as last seen in the store.
    pub(crate) fn blocked(&self, key: &BlockKey, now: DateTime<Utc>) -> Option<BlockState> {
        let cache = self
            .inner
            .cache
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        match cache.get(key)? {
            BlockState::Until(until) if *until <= now => None,
            state => Some(*state),
        }
    }

    /// Counts a strike against `key`: `None` when the graduated response is off, when a
    /// strike of the same key was counted within the interval, or when the store failed
    /// (logged; the client is then only refused, not blocked).
    pub(crate) async fn strike(
        &self,
        key: &BlockKey,
        context: BlockContext,
    ) -> Option<StrikeVerdict> {
        let inner = &self.inner;
        let settings = inner.settings.as_ref()?;
        if let Some(gate) = &inner.gate
            && gate.check_key(key).is_err()
        {
            return None;
        }
        let verdict = match inner.list.strike(key, &settings.policy, &context).await {
            Ok(verdict) => verdict,
            Err(err) => {
                tracing::error!(error = %err, "a strike could not be recorded");
                return None;
            }
        };
        match verdict {
            StrikeVerdict::Warning { strike, .. } => {
                tracing::warn!(security_event = "client_warned", key = %key, strike,
                    "a client broke a limit");
                if let Some(event) = context.strike_event(key, verdict) {
                    inner.warnings.note(None, event);
                }
            }
            StrikeVerdict::NewBlock(state) | StrikeVerdict::Blocked(state) => {
                tracing::warn!(security_event = "client_blocked", key = %key,
                    block = %ports::describe_block(state), "a client is blocked");
                inner
                    .cache
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(key.clone(), state);
            }
        }
        Some(verdict)
    }

    /// Replaces the cache with the blocks in force in the store; how many there are.
    pub async fn refresh(&self) -> Result<usize, StoreError> {
        let inner = &self.inner;
        let active: HashMap<_, _> = inner.list.active().await?.into_iter().collect();
        let count = active.len();
        *inner.cache.write().unwrap_or_else(PoisonError::into_inner) = active;
        crate::metrics::blocks_active(count);
        Ok(count)
    }

    /// Forgets the records the policy no longer remembers, and the strike gate's idle keys.
    pub async fn purge(&self) -> Result<u64, StoreError> {
        let inner = &self.inner;
        if let Some(gate) = &inner.gate {
            gate.retain_recent();
            gate.shrink_to_fit();
        }
        match &inner.settings {
            Some(settings) => inner.list.purge(&settings.policy).await,
            None => Ok(0),
        }
    }
}
