//! Rate limits per client address, in front of authentication (actix-governor): one budget
//! for every request of an address, a smaller one for requests without a credential, and the
//! smallest for the login routes under `/auth/`. The limiters are built once and shared by
//! every worker; a refusal is a 429 with `Retry-After`. The health probes are exempt. After
//! authentication each credential has a budget of its own (`Limiters::check_principal`), so
//! two principals behind one address do not share one.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use actix_governor::governor::middleware::NoOpMiddleware;
use actix_governor::{GovernorConfig, GovernorConfigBuilder, KeyExtractor};
use actix_web::dev::ServiceRequest;
use actix_web::http::header::AUTHORIZATION;

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

/// The budget of each authenticated principal, keyed by credential.
pub(crate) type PrincipalLimiter = actix_governor::governor::DefaultKeyedRateLimiter<String>;

/// Which requests a limiter counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tier {
    PerIp,
    Anonymous,
    AuthRoutes,
    /// A tier switched off: counts nothing.
    Off,
}

/// The client address for the tier's requests; `None`, which is exempt, for the others.
#[derive(Debug, Clone)]
pub(crate) struct ClientKey {
    tier: Tier,
}

impl KeyExtractor for ClientKey {
    type Key = Option<IpAddr>;
    type KeyExtractionError = actix_governor::SimpleKeyExtractionError<&'static str>;

    fn extract(&self, req: &ServiceRequest) -> Result<Self::Key, Self::KeyExtractionError> {
        let path = req.path();
        if path.starts_with("/health/") {
            return Ok(None);
        }
        let counted = match self.tier {
            Tier::PerIp => true,
            Tier::Anonymous => !req.headers().contains_key(AUTHORIZATION),
            Tier::AuthRoutes => path.starts_with("/auth/"),
            Tier::Off => false,
        };
        Ok(counted
            .then(|| crate::transport::of(req).client_ip)
            .flatten())
    }

    fn whitelisted_keys(&self) -> Vec<Self::Key> {
        vec![None]
    }
}

/// A limiter's shared configuration.
pub(crate) type Limiter = GovernorConfig<ClientKey, NoOpMiddleware>;

/// The limiters of the three tiers, built once and shared by every worker.
#[derive(Clone)]
pub struct Limiters {
    pub(crate) per_ip: Arc<Limiter>,
    pub(crate) anonymous: Arc<Limiter>,
    pub(crate) auth_routes: Arc<Limiter>,
    pub(crate) principal: Option<Arc<PrincipalLimiter>>,
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
pub const MAX_PER_MINUTE: u32 = 60_000;

/// A limiter of `tier` at `per_minute` (a full minute's budget may come at once), or one that
/// counts nothing.
fn limiter(tier: Tier, per_minute: Option<NonZeroU32>) -> Result<Arc<Limiter>, InvalidRateLimit> {
    let (tier, per_minute) = match per_minute {
        Some(n) if n.get() <= MAX_PER_MINUTE => (tier, n.get()),
        Some(_) => return Err(InvalidRateLimit),
        None => (Tier::Off, 1),
    };
    let mut builder = GovernorConfigBuilder::default();
    builder
        .period(Duration::from_secs(60) / per_minute)
        .burst_size(per_minute);
    builder
        .key_extractor(ClientKey { tier })
        .finish()
        .map(Arc::new)
        .ok_or(InvalidRateLimit)
}

impl Limiters {
    pub fn new(limits: RateLimits) -> Result<Self, InvalidRateLimit> {
        let principal = match limits.authenticated {
            Some(n) if n.get() > MAX_PER_MINUTE => return Err(InvalidRateLimit),
            Some(n) => Some(Arc::new(PrincipalLimiter::keyed(
                actix_governor::governor::Quota::per_minute(n),
            ))),
            None => None,
        };
        Ok(Self {
            per_ip: limiter(Tier::PerIp, limits.per_ip)?,
            anonymous: limiter(Tier::Anonymous, limits.anonymous)?,
            auth_routes: limiter(Tier::AuthRoutes, limits.auth_routes)?,
            principal,
        })
    }

    /// Counts a request of an authenticated credential; the seconds to wait when it is over
    /// its budget.
    pub(crate) fn check_principal(&self, credential: String) -> Result<(), u64> {
        use actix_governor::governor::clock::{Clock, DefaultClock};
        let Some(limiter) = &self.principal else {
            return Ok(());
        };
        limiter.check_key(&credential).map_err(|not_until| {
            not_until
                .wait_time_from(DefaultClock::default().now())
                .as_secs()
                .max(1)
        })
    }

    /// Forgets addresses whose budget is full again, so a flood of distinct addresses does
    /// not keep memory once it is over. Call it periodically.
    pub fn forget_idle(&self) {
        for tier in [&self.per_ip, &self.anonymous, &self.auth_routes] {
            tier.limiter().retain_recent();
            tier.limiter().shrink_to_fit();
        }
        if let Some(principal) = &self.principal {
            principal.retain_recent();
            principal.shrink_to_fit();
        }
    }
}
