//! The graduated response to clients that keep breaking the rules (fail2ban's model): each
//! violation is a strike against the client's key; the first strikes of a window are warnings;
//! past a threshold the key is blocked for a while, each block twice as long as the one before;
//! after enough blocks the key is blocked for good.
//!
//! Only evidence of guessing can lead to a permanent block: credentials sent and refused as
//! made up, forged or malformed, which no foreign web page can make a browser send (it cannot
//! set an `Authorization` header across origins). What such a page can cause a victim's
//! browser to send (requests over an address's budget, failed login callbacks) counts in a
//! ledger of its own per address, [`BlockKey::Traffic`], whose blocks stay temporary and no
//! longer than the longest temporary block of the guessing ledger.

use std::fmt;
use std::net::IpAddr;

use chrono::{DateTime, Duration, Utc};

/// Whom a strike or block is against: a client address (an IPv6 address stands for its /64,
/// which one client controls entirely), or an authenticated credential.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BlockKey {
    /// A client address, for credentials it guessed.
    Address(IpAddr),
    /// A client address, for traffic that a foreign page could have caused (never banned).
    Traffic(IpAddr),
    /// An API token's id, a user's id or a user's browser sessions, as `token:<uuid>` /
    /// `user:<uuid>` / `session:<uuid>`.
    Principal(String),
}

/// How a session's key begins.
const SESSION_PREFIX: &str = "session:";

/// Text that names no block key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "a block key is `ip:<address>`, `traffic:<address>`, `token:<uuid>`, `user:<uuid>` or `session:<uuid>`"
)]
pub struct BlockKeyError;

impl BlockKey {
    /// The guessing key of a client address: IPv4 as it is, IPv6 as its /64 network address.
    pub fn address(ip: IpAddr) -> Self {
        Self::Address(client_net(ip))
    }

    /// The traffic key of a client address (as [`BlockKey::address`]).
    pub fn traffic(ip: IpAddr) -> Self {
        Self::Traffic(client_net(ip))
    }

    /// Whether strikes against this key may end in a permanent block.
    pub fn may_be_banned(&self) -> bool {
        match self {
            Self::Traffic(_) => false,
            Self::Principal(p) => !p.starts_with(SESSION_PREFIX),
            Self::Address(_) => true,
        }
    }

    /// The key of an API token.
    pub fn token(id: crate::ApiTokenId) -> Self {
        Self::Principal(format!("token:{id}"))
    }

    /// The key of a user's access tokens.
    pub fn user(id: crate::UserId) -> Self {
        Self::Principal(format!("user:{id}"))
    }

    /// The key of a user's browser sessions: what a foreign page can make the browser send (a
    /// top-level navigation carries the `SameSite=Lax` cookie), so never banned.
    pub fn session(id: crate::UserId) -> Self {
        Self::Principal(format!("{SESSION_PREFIX}{id}"))
    }
}

/// The address that stands for a client: IPv4 as it is, IPv6 as its /64 (which one client
/// controls entirely), as the limits, the blocks and the counted refusals take it.
pub fn client_net(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1_u128 << 64) - 1)).into()),
        },
    }
}

impl fmt::Display for BlockKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Address(ip) => write!(f, "ip:{ip}"),
            Self::Traffic(ip) => write!(f, "traffic:{ip}"),
            Self::Principal(p) => f.write_str(p),
        }
    }
}

impl std::str::FromStr for BlockKey {
    type Err = BlockKeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(ip) = s.strip_prefix("ip:") {
            return ip.parse().map(Self::address).map_err(|_| BlockKeyError);
        }
        if let Some(ip) = s.strip_prefix("traffic:") {
            return ip.parse().map(Self::traffic).map_err(|_| BlockKeyError);
        }
        if let Some(id) = s.strip_prefix("token:") {
            return id.parse().map(Self::token).map_err(|_| BlockKeyError);
        }
        if let Some(id) = s.strip_prefix("user:") {
            return id.parse().map(Self::user).map_err(|_| BlockKeyError);
        }
        if let Some(id) = s.strip_prefix(SESSION_PREFIX) {
            return id.parse().map(Self::session).map_err(|_| BlockKeyError);
        }
        Err(BlockKeyError)
    }
}

/// The rules of the graduated response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockPolicy {
    /// Strikes within `strike_window` that block the key (the ones before are warnings).
    pub strikes_to_block: u32,
    pub strike_window: Duration,
    /// How long the first block lasts; each further one lasts twice the one before.
    pub first_block: Duration,
    /// Temporary blocks after which the next one is permanent, counted while each begins
    /// within `block_memory` of the end of the one before.
    pub blocks_to_ban: u32,
    pub block_memory: Duration,
}

/// The longest temporary block: doubling stops here.
const LONGEST_BLOCK: Duration = Duration::days(365);

impl BlockPolicy {
    /// How long the `n`th block (from 1) lasts.
    pub fn block_length(&self, n: u32) -> Duration {
        let factor = 1_i32
            .checked_shl(n.saturating_sub(1).min(30))
            .unwrap_or(i32::MAX);
        self.first_block
            .checked_mul(factor)
            .map_or(LONGEST_BLOCK, |d| d.min(LONGEST_BLOCK))
    }
}

/// What is stored of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRecord {
    pub strikes: u32,
    pub window_started_at: DateTime<Utc>,
    pub block_count: u32,
    pub blocked_until: Option<DateTime<Utc>>,
    pub permanent: bool,
}

impl ClientRecord {
    /// A key with nothing against it.
    pub const fn clean(now: DateTime<Utc>) -> Self {
        Self {
            strikes: 0,
            window_started_at: now,
            block_count: 0,
            blocked_until: None,
            permanent: false,
        }
    }

    /// The block in force at `now`, if any.
    pub fn block_at(&self, now: DateTime<Utc>) -> Option<BlockState> {
        if self.permanent {
            return Some(BlockState::Permanent);
        }
        self.blocked_until
            .filter(|until| *until > now)
            .map(BlockState::Until)
    }

    /// Counts one strike against `key` at `now`: the record to store and what the client is
    /// told. A key that may not be banned ([`BlockKey::may_be_banned`]) gets temporary blocks
    /// only, none longer than the last temporary block before a ban.
    #[must_use]
    pub fn strike(
        &self,
        key: &BlockKey,
        now: DateTime<Utc>,
        policy: &BlockPolicy,
    ) -> (Self, StrikeVerdict) {
        if let Some(state) = self.block_at(now) {
            return (self.clone(), StrikeVerdict::Blocked(state));
        }
        let mut next = self.clone();
        if next
            .blocked_until
            .is_some_and(|until| until + policy.block_memory <= now)
        {
            next.block_count = 0;
            next.blocked_until = None;
        }
        if next.window_started_at + policy.strike_window <= now {
            next.strikes = 0;
            next.window_started_at = now;
        }
        next.strikes = next.strikes.saturating_add(1);
        if next.strikes < policy.strikes_to_block.max(1) {
            let verdict = StrikeVerdict::Warning {
                strike: next.strikes,
                strikes_to_block: policy.strikes_to_block,
            };
            return (next, verdict);
        }
        next.strikes = 0;
        next.window_started_at = now;
        next.block_count = next.block_count.saturating_add(1);
        if !key.may_be_banned() {
            next.block_count = next.block_count.min(policy.blocks_to_ban.max(1));
        } else if next.block_count > policy.blocks_to_ban {
            next.permanent = true;
            return (next, StrikeVerdict::NewBlock(BlockState::Permanent));
        }
        let until = now + policy.block_length(next.block_count);
        next.blocked_until = Some(until);
        (next, StrikeVerdict::NewBlock(BlockState::Until(until)))
    }

    /// Whether the record carries nothing the policy still remembers at `now`, so it may be
    /// forgotten.
    pub fn is_stale(&self, now: DateTime<Utc>, policy: &BlockPolicy) -> bool {
        !self.permanent
            && self.window_started_at + policy.strike_window <= now
            && self
                .blocked_until
                .is_none_or(|until| until + policy.block_memory <= now)
    }
}

/// A block in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockState {
    Until(DateTime<Utc>),
    Permanent,
}

/// The answer to a strike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrikeVerdict {
    /// Not blocked yet: this was strike `strike` of `strikes_to_block`.
    Warning { strike: u32, strikes_to_block: u32 },
    /// This strike blocked the key.
    NewBlock(BlockState),
    /// The key was blocked already.
    Blocked(BlockState),
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn policy() -> BlockPolicy {
        BlockPolicy {
            strikes_to_block: 3,
            strike_window: Duration::minutes(10),
            first_block: Duration::minutes(1),
            blocks_to_ban: 2,
            block_memory: Duration::hours(24),
        }
    }

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn ip() -> BlockKey {
        BlockKey::address("203.0.113.7".parse().unwrap())
    }

    #[test]
    fn traffic_a_foreign_page_can_cause_is_never_banned() {
        let p = policy();
        let key = BlockKey::traffic("203.0.113.7".parse().unwrap());
        let mut now = t0();
        let mut record = ClientRecord::clean(now);
        let mut lengths = Vec::new();
        for _ in 0..10 {
            for _ in 0..3 {
                record = record.strike(&key, now, &p).0;
            }
            let until = record.blocked_until.unwrap();
            lengths.push((until - now).num_minutes());
            assert!(!record.permanent);
            now = until + Duration::seconds(1);
        }
        // Doubling up to the longest temporary block of the guessing ledger, then no further.
        assert_eq!(lengths, [1, 2, 2, 2, 2, 2, 2, 2, 2, 2]);
        assert_eq!(record.block_at(now), None);
    }

    #[test]
    fn warnings_then_doubling_blocks_then_a_permanent_one() {
        let p = policy();
        let mut now = t0();
        let mut record = ClientRecord::clean(now);
        let mut verdicts = Vec::new();
        for _ in 0..3 {
            for _ in 0..3 {
                let (next, verdict) = record.strike(&ip(), now, &p);
                record = next;
                verdicts.push(verdict);
            }
            // Wait out the block.
            now = record.blocked_until.unwrap_or(now) + Duration::seconds(1);
        }
        let block_starts = [t0(), t0() + Duration::seconds(61)];
        assert_eq!(
            verdicts,
            [
                StrikeVerdict::Warning {
                    strike: 1,
                    strikes_to_block: 3
                },
                StrikeVerdict::Warning {
                    strike: 2,
                    strikes_to_block: 3
                },
                StrikeVerdict::NewBlock(BlockState::Until(block_starts[0] + Duration::minutes(1))),
                StrikeVerdict::Warning {
                    strike: 1,
                    strikes_to_block: 3
                },
                StrikeVerdict::Warning {
                    strike: 2,
                    strikes_to_block: 3
                },
                StrikeVerdict::NewBlock(BlockState::Until(block_starts[1] + Duration::minutes(2))),
                StrikeVerdict::Warning {
                    strike: 1,
                    strikes_to_block: 3
                },
                StrikeVerdict::Warning {
                    strike: 2,
                    strikes_to_block: 3
                },
                StrikeVerdict::NewBlock(BlockState::Permanent),
            ]
        );
        assert_eq!(
            record.block_at(now + Duration::days(3650)),
            Some(BlockState::Permanent)
        );
        assert!(!record.is_stale(now + Duration::days(3650), &p));
    }

    #[test]
    fn a_blocked_key_stays_blocked_and_strikes_do_not_extend_it() {
        let p = policy();
        let record = ClientRecord {
            blocked_until: Some(t0() + Duration::minutes(1)),
            block_count: 1,
            ..ClientRecord::clean(t0())
        };
        let (next, verdict) = record.strike(&ip(), t0() + Duration::seconds(30), &p);
        assert_eq!(next, record);
        assert_eq!(
            verdict,
            StrikeVerdict::Blocked(BlockState::Until(t0() + Duration::minutes(1)))
        );
    }

    #[test]
    fn strikes_and_blocks_are_forgotten_after_their_windows() {
        let p = policy();
        let mut record = ClientRecord::clean(t0());
        record = record.strike(&ip(), t0(), &p).0;
        record = record.strike(&ip(), t0(), &p).0;
        // The window has passed: this is a first strike again.
        let later = t0() + Duration::minutes(11);
        let (next, verdict) = record.strike(&ip(), later, &p);
        assert_eq!(
            verdict,
            StrikeVerdict::Warning {
                strike: 1,
                strikes_to_block: 3
            }
        );
        // A block long past is forgotten: the next block is a first one again.
        let old_block = ClientRecord {
            block_count: 2,
            blocked_until: Some(t0()),
            ..next
        };
        let much_later = t0() + Duration::hours(25);
        let mut record = old_block;
        let mut last = None;
        for _ in 0..3 {
            let (r, v) = record.strike(&ip(), much_later, &p);
            record = r;
            last = Some(v);
        }
        assert_eq!(
            last,
            Some(StrikeVerdict::NewBlock(BlockState::Until(
                much_later + Duration::minutes(1)
            )))
        );
        assert!(record.is_stale(much_later + Duration::hours(25), &p));
        assert!(!record.is_stale(much_later + Duration::minutes(5), &p));
    }

    #[test]
    fn block_lengths_double_and_stop_at_a_year() {
        let p = policy();
        assert_eq!(p.block_length(1), Duration::minutes(1));
        assert_eq!(p.block_length(2), Duration::minutes(2));
        assert_eq!(p.block_length(4), Duration::minutes(8));
        assert_eq!(p.block_length(u32::MAX), LONGEST_BLOCK);
    }

    #[test]
    fn keys_parse_and_ipv6_clients_are_their_64() {
        let a: BlockKey = "ip:2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: BlockKey = "ip:2001:db8:1:2:bbbb::9".parse().unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "ip:2001:db8:1:2::");
        let mapped: BlockKey = "ip:::ffff:203.0.113.7".parse().unwrap();
        assert_eq!(mapped.to_string(), "ip:203.0.113.7");
        let token: BlockKey = "token:6f9619ff-8b86-d011-b42d-00c04fc964ff"
            .parse()
            .unwrap();
        assert_eq!(
            token.to_string(),
            "token:6f9619ff-8b86-d011-b42d-00c04fc964ff"
        );
        let traffic: BlockKey = "traffic:2001:db8:1:2:aaaa::1".parse().unwrap();
        assert_eq!(traffic.to_string(), "traffic:2001:db8:1:2::");
        assert_ne!(traffic, a);
        assert!(a.may_be_banned() && !traffic.may_be_banned() && token.may_be_banned());
        let session: BlockKey = "session:6f9619ff-8b86-d011-b42d-00c04fc964ff"
            .parse()
            .unwrap();
        assert_eq!(
            session.to_string(),
            "session:6f9619ff-8b86-d011-b42d-00c04fc964ff"
        );
        let user: BlockKey = "user:6f9619ff-8b86-d011-b42d-00c04fc964ff".parse().unwrap();
        assert!(!session.may_be_banned() && user.may_be_banned());
        for bad in [
            "",
            "ip:",
            "ip:300.1.1.1",
            "token:x",
            "user:",
            "session:",
            "203.0.113.7",
            "other:1",
        ] {
            assert_eq!(bad.parse::<BlockKey>(), Err(BlockKeyError), "{bad}");
        }
    }
}
