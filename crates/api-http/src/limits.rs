//! Request budgets (governor's GCRA limiters, as actix-governor ships them), built once and
//! shared by every worker: per client address one budget for every request, a smaller one for
//! requests without a credential and the smallest for the login routes under `/auth/`; after
//! authentication a budget per credential, so two principals behind one address do not share
//! one.
//!
//! The admission middleware (`admission.rs`) asks these limiters itself rather than stacking
//! actix-governor's middleware: stacked under `App::wrap`, that middleware cannot report the
//! remaining budget (its header variant needs an `Unpin` inner future, which `App::wrap`'s
//! opaque types do not promise), and a refusal must also count as a strike of the graduated
//! response.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use actix_governor::governor::clock::{Clock, DefaultClock};
use actix_governor::governor::middleware::StateInformationMiddleware;
use actix_governor::governor::{DefaultKeyedRateLimiter, Quota};

/// Requests per minute of each tier; `None` switches a tier off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// Every request of one address.
    pub per_ip: Option<NonZeroU32>,
    /// Requests of one address without an `Authorization` header.
    pub anonymous: Option<NonZeroU32>,
    /// Requests of one address to `/auth/…`.
    pub auth_routes: Option<NonZeroU32>,
    /// Requests of one credential (an API token, or a user's access tokens), after
    /// authentication.
    pub authenticated: Option<NonZeroU32>,
}

type Limiter<K> = DefaultKeyedRateLimiter<K, StateInformationMiddleware>;

/// What is left of the tightest budget that counted a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Budget {
    pub(crate) limit: u32,
    pub(crate) remaining: u32,
}

impl Budget {
    /// The tighter of two budgets.
    pub(crate) fn min(self, other: Option<Self>) -> Self {
        match other {
            Some(other) if other.remaining < self.remaining => other,
            _ => self,
        }
    }
}

/// A request over a budget: when to come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OverBudget {
    pub(crate) retry_after_secs: u64,
    /// Which budget: `address`, `anonymous`, `auth_routes` or `credential`.
    pub(crate) budget: &'static str,
}

/// The limiters of every tier, built once and shared by every worker.
#[derive(Clone)]
pub struct Limiters {
    per_ip: Option<Arc<Limiter<IpAddr>>>,
    anonymous: Option<Arc<Limiter<IpAddr>>>,
    auth_routes: Option<Arc<Limiter<IpAddr>>>,
    principal: Option<Arc<Limiter<String>>>,
}

impl std::fmt::Debug for Limiters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiters").finish_non_exhaustive()
    }
}

/// A rate that no limiter can be built with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a rate limit must be between 1 and {MAX_PER_MINUTE} requests per minute")]
pub struct InvalidRateLimit;

/// The highest rate a limiter takes, per minute.
pub const MAX_PER_MINUTE: u32 = 6_000_000;

/// A limiter of `per_minute` (a full minute's budget may come at once), or none.
fn limiter<K: std::hash::Hash + Eq + Clone>(
    per_minute: Option<NonZeroU32>,
) -> Result<Option<Arc<Limiter<K>>>, InvalidRateLimit> {
    match per_minute {
        Some(n) if n.get() > MAX_PER_MINUTE => Err(InvalidRateLimit),
        Some(n) => Ok(Some(Arc::new(
            DefaultKeyedRateLimiter::<K>::keyed(Quota::per_minute(n))
                .with_middleware::<StateInformationMiddleware>(),
        ))),
        None => Ok(None),
    }
}

/// Counts a request of `key` against `limiter`.
fn check<K: std::hash::Hash + Eq + Clone>(
    limiter: &Limiter<K>,
    key: &K,
    budget: &'static str,
) -> Result<Budget, OverBudget> {
    match limiter.check_key(key) {
        Ok(snapshot) => Ok(Budget {
            limit: snapshot.quota().burst_size().get(),
            remaining: snapshot.remaining_burst_capacity(),
        }),
        Err(not_until) => Err(OverBudget {
            retry_after_secs: not_until
                .wait_time_from(DefaultClock::default().now())
                .as_secs()
                .max(1),
            budget,
        }),
    }
}

impl Limiters {
    pub fn new(limits: RateLimits) -> Result<Self, InvalidRateLimit> {
        Ok(Self {
            per_ip: limiter(limits.per_ip)?,
            anonymous: limiter(limits.anonymous)?,
            auth_routes: limiter(limits.auth_routes)?,
            principal: limiter(limits.authenticated)?,
        })
    }

    /// Counts a request of the client at `address` (already reduced to its block key's
    /// address) in every tier it belongs to; the tightest budget left, or when to come back.
    pub(crate) fn check_address(
        &self,
        address: IpAddr,
        anonymous: bool,
        auth_route: bool,
    ) -> Result<Option<Budget>, OverBudget> {
        let tiers = [
            (self.per_ip.as_ref(), true, "address"),
            (self.anonymous.as_ref(), anonymous, "anonymous"),
            (self.auth_routes.as_ref(), auth_route, "auth_routes"),
        ];
        let mut tightest: Option<Budget> = None;
        for (limiter, counted, budget) in tiers {
            if let (Some(limiter), true) = (limiter, counted) {
                tightest = Some(check(limiter, &address, budget)?.min(tightest));
            }
        }
        Ok(tightest)
    }

    /// Counts a request of an authenticated credential.
    pub(crate) fn check_principal(&self, credential: &str) -> Result<Option<Budget>, OverBudget> {
        self.principal
            .as_ref()
            .map(|limiter| check(limiter, &credential.to_owned(), "credential"))
            .transpose()
    }

    /// Forgets the keys whose budget is full again, so a flood of distinct addresses does not
    /// keep memory once it is over. Call it periodically.
    pub fn forget_idle(&self) {
        for tier in [&self.per_ip, &self.anonymous, &self.auth_routes]
            .into_iter()
            .flatten()
        {
            tier.retain_recent();
            tier.shrink_to_fit();
        }
        if let Some(principal) = &self.principal {
            principal.retain_recent();
            principal.shrink_to_fit();
        }
    }

    /// How many keys the limiters remember.
    pub fn remembered(&self) -> usize {
        [&self.per_ip, &self.anonymous, &self.auth_routes]
            .into_iter()
            .flatten()
            .map(|tier| tier.len())
            .sum::<usize>()
            + self.principal.as_ref().map_or(0, |p| p.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_minute: u32) -> RateLimits {
        let n = NonZeroU32::new(per_minute);
        RateLimits {
            per_ip: n,
            anonymous: n,
            auth_routes: n,
            authenticated: n,
        }
    }

    #[test]
    fn the_tightest_budget_is_reported_and_a_spent_one_refuses() {
        let limiters = Limiters::new(RateLimits {
            per_ip: NonZeroU32::new(10),
            anonymous: NonZeroU32::new(3),
            auth_routes: None,
            authenticated: None,
        })
        .unwrap();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(
            limiters.check_address(ip, false, false),
            Ok(Some(Budget {
                limit: 10,
                remaining: 9
            }))
        );
        for remaining in [2, 1, 0] {
            assert_eq!(
                limiters.check_address(ip, true, true),
                Ok(Some(Budget {
                    limit: 3,
                    remaining
                }))
            );
        }
        let over = limiters.check_address(ip, true, false).unwrap_err();
        assert!((1..=20).contains(&over.retry_after_secs), "{over:?}");
        assert_eq!(limiters.check_principal("token:x"), Ok(None));
    }

    #[test]
    fn rates_above_the_maximum_are_refused() {
        assert!(Limiters::new(limits(MAX_PER_MINUTE)).is_ok());
        assert_eq!(
            Limiters::new(limits(MAX_PER_MINUTE + 1)).err(),
            Some(InvalidRateLimit)
        );
    }

    #[test]
    fn a_flood_of_distinct_addresses_is_forgotten_once_over() {
        // At the highest rate a key's budget is whole again 10 µs after its request.
        let limiters = Limiters::new(limits(MAX_PER_MINUTE)).unwrap();
        for n in 0..50_000_u32 {
            let ip = IpAddr::from(n.to_be_bytes());
            assert!(limiters.check_address(ip, true, true).is_ok());
            assert!(limiters.check_principal(&format!("token:{n}")).is_ok());
        }
        assert_eq!(limiters.remembered(), 200_000);
        std::thread::sleep(std::time::Duration::from_millis(20));
        limiters.forget_idle();
        assert_eq!(limiters.remembered(), 0);
    }
}
