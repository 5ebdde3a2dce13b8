//! Log-in throttling, before any password work (docs/decisions.md, "Log-in throttling"):
//!
//! - every address (an IPv6 /64, which one subscriber usually holds whole) has a bucket of `burst` attempts,
//!   refilled one every `refill`: a guessing run from one address, whatever usernames it tries, is slowed;
//! - every username has a bucket ten times as large that refills ten times as fast: guessing one account from
//!   many addresses is slowed too, but one address alone can never empty it;
//! - an address that logged in as a username before (in the last 30 days) tries that username from a bucket of
//!   its own, the size of an address's: strangers' attempts, on the username or from other addresses, never
//!   lock the owner out of it.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::client_address::unmap;

/// Attempts allowed in a burst, per address.
const BURST: u32 = 10;
/// One more attempt is allowed every this long, per address.
const REFILL: Duration = Duration::from_secs(6);
/// A username's bucket is this many times as large as an address's, and refills this many times as fast.
const USERNAME_FACTOR: u32 = 10;
/// Usernames longer than this share their bucket with others of the same start (the table stays small).
const MAX_KEY_CHARS: usize = 64;
/// How long a successful log-in makes its address known for the username.
const KNOWN_FOR: Duration = Duration::from_secs(30 * 24 * 3600);
/// The most address and username pairs remembered; past it the oldest is forgotten. Only successful log-ins add
/// to it, so a stranger cannot fill it.
const MAX_KNOWN: usize = 10_000;

/// The log-in rate limiter of the web UI.
pub struct LoginLimiter {
    by_address: DefaultKeyedRateLimiter<IpAddr>,
    by_username: DefaultKeyedRateLimiter<String>,
    by_known_pair: DefaultKeyedRateLimiter<(IpAddr, String)>,
    /// Address keys and usernames that logged in, with when.
    known: Mutex<HashMap<(IpAddr, String), Instant>>,
    clock: DefaultClock,
}

/// A refused attempt: which limit and how long to wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Throttled {
    pub retry_after_secs: u64,
    pub message: String,
}

impl Default for LoginLimiter {
    fn default() -> Self {
        Self::new(NonZeroU32::new(BURST).unwrap_or(NonZeroU32::MIN), REFILL)
    }
}

/// The bucket an address counts in: an IPv4 address itself (IPv4-mapped IPv6 as IPv4), an IPv6 address's /64.
#[must_use]
pub fn address_key(ip: IpAddr) -> IpAddr {
    match unmap(ip) {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
        v4 => v4,
    }
}

fn username_key(username: &str) -> String {
    username.trim().to_lowercase().chars().take(MAX_KEY_CHARS).collect()
}

impl LoginLimiter {
    /// Allows `burst` attempts at once and one more every 6 seconds per address.
    #[must_use]
    pub fn with_burst(burst: NonZeroU32) -> Self {
        Self::new(burst, REFILL)
    }

    /// Allows `burst` attempts at once and one more every `refill` per address (and per known address and
    /// username); ten times as many, refilled ten times as fast, per username.
    #[must_use]
    pub fn new(burst: NonZeroU32, refill: Duration) -> Self {
        let quota = |burst: NonZeroU32, refill: Duration| {
            Quota::with_period(refill.max(Duration::from_millis(1)))
                .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
                .allow_burst(burst)
        };
        let username_burst = burst.saturating_mul(NonZeroU32::new(USERNAME_FACTOR).unwrap_or(NonZeroU32::MIN));
        Self {
            by_address: RateLimiter::keyed(quota(burst, refill)),
            by_username: RateLimiter::keyed(quota(username_burst, refill / USERNAME_FACTOR)),
            by_known_pair: RateLimiter::keyed(quota(burst, refill)),
            known: Mutex::new(HashMap::new()),
            clock: DefaultClock::default(),
        }
    }

    /// Takes one attempt: from the address's and the username's buckets (compared without case and surrounding
    /// spaces), or, when this address logged in as this username before, from that pair's own bucket only.
    ///
    /// # Errors
    /// [`Throttled`] when a bucket is empty, with the wait and a sentence for the log-in page.
    pub fn check(&self, address: IpAddr, username: &str) -> Result<(), Throttled> {
        let now = self.clock.now();
        let address = address_key(address);
        let username = username_key(username);
        let refused = |not_until: governor::NotUntil<<DefaultClock as Clock>::Instant>, whose: &str| {
            let secs = not_until.wait_time_from(now).as_secs().max(1);
            Throttled {
                retry_after_secs: secs,
                message: format!("Too many log-in attempts {whose}. Wait {} and try again.", seconds_in_words(secs)),
            }
        };
        let pair = (address, username);
        if self.is_known(&pair) {
            return self.by_known_pair.check_key(&pair).map_err(|n| refused(n, "from your address"));
        }
        self.by_address.check_key(&pair.0).map_err(|n| refused(n, "from your address"))?;
        self.by_username.check_key(&pair.1).map_err(|n| refused(n, "for this username"))
    }

    /// Records a successful log-in: from now on this address tries this username from a bucket of its own.
    pub fn logged_in(&self, address: IpAddr, username: &str) {
        let pair = (address_key(address), username_key(username));
        let mut known = self.known.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        if known.len() >= MAX_KNOWN && !known.contains_key(&pair) {
            known.retain(|_, at| now.duration_since(*at) < KNOWN_FOR);
            if known.len() >= MAX_KNOWN
                && let Some(oldest) = known.iter().min_by_key(|(_, at)| **at).map(|(k, _)| k.clone())
            {
                known.remove(&oldest);
            }
        }
        known.insert(pair, now);
    }

    fn is_known(&self, pair: &(IpAddr, String)) -> bool {
        let known = self.known.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        known.get(pair).is_some_and(|at| at.elapsed() < KNOWN_FOR)
    }

    /// Forgets addresses and usernames whose buckets are full again, and known pairs that expired.
    pub fn shrink(&self) {
        self.by_address.retain_recent();
        self.by_address.shrink_to_fit();
        self.by_username.retain_recent();
        self.by_username.shrink_to_fit();
        self.by_known_pair.retain_recent();
        self.by_known_pair.shrink_to_fit();
        let mut known = self.known.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        known.retain(|_, at| at.elapsed() < KNOWN_FOR);
    }
}

fn seconds_in_words(secs: u64) -> String {
    if secs == 1 { "1 second".to_owned() } else { format!("{secs} seconds") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(burst: u32) -> LoginLimiter {
        LoginLimiter::new(NonZeroU32::new(burst).expect("non-zero"), Duration::from_secs(3600))
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect(text)
    }

    #[test]
    fn ipv6_addresses_count_by_their_64() {
        assert_eq!(address_key(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd")), ip("2001:db8:1:2::"));
        assert_eq!(address_key(ip("2001:db8:1:2::1")), address_key(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")));
        assert_ne!(address_key(ip("2001:db8:1:2::1")), address_key(ip("2001:db8:1:3::1")));
        assert_eq!(address_key(ip("192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(address_key(ip("::ffff:192.0.2.7")), ip("192.0.2.7"), "an IPv4 peer on a dual-stack listener");
        assert_ne!(address_key(ip("192.0.2.7")), address_key(ip("192.0.2.8")));
    }

    #[test]
    fn every_address_of_one_64_shares_one_bucket() {
        let limits = limiter(3);
        for n in 0..3u16 {
            let from = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 7, n, n, n, n));
            assert!(limits.check(from, &format!("user{n}")).is_ok());
        }
        let refused = limits.check(ip("2001:db8:0:7:dead:beef::1"), "user9").expect_err("same /64");
        assert!(refused.message.contains("from your address"), "{}", refused.message);
        assert!(limits.check(ip("2001:db8:0:8::1"), "user9").is_ok(), "the next /64 has its own bucket");
    }

    #[test]
    fn an_address_over_its_burst_is_throttled_whatever_the_username() {
        let limits = limiter(3);
        let from = ip("192.0.2.7");
        for n in 0..3 {
            assert!(limits.check(from, &format!("user{n}")).is_ok());
        }
        let refused = limits.check(from, "user9").expect_err("over the burst");
        assert!(refused.retry_after_secs >= 1, "{refused:?}");
        assert!(refused.message.contains("from your address"), "{}", refused.message);
        assert!(limits.check(ip("192.0.2.8"), "user9").is_ok(), "addresses have their own buckets");
    }

    #[test]
    fn a_username_takes_ten_bursts_from_all_addresses_together() {
        let limits = limiter(2);
        for n in 0..20u8 {
            let from = IpAddr::from([198, 51, 100, n / 2]);
            assert!(limits.check(from, if n % 2 == 0 { "alice" } else { " ALICE " }).is_ok(), "attempt {n}");
        }
        let refused = limits.check(ip("198.51.100.50"), "Alice").expect_err("same account");
        assert!(refused.message.contains("for this username"), "{}", refused.message);
    }

    #[test]
    fn the_owner_of_a_username_is_never_locked_out_from_an_address_they_logged_in_from() {
        let limits = limiter(2);
        let home = ip("203.0.113.5");
        limits.check(home, "alice").expect("first log-in");
        limits.logged_in(home, "alice");
        // Strangers empty the username's bucket from many addresses.
        for n in 0..40u8 {
            let _ = limits.check(IpAddr::from([198, 51, 100, n]), "alice");
        }
        assert!(limits.check(ip("198.51.100.200"), "alice").is_err(), "the username is throttled for strangers");
        assert!(limits.check(home, "Alice").is_ok(), "the owner's address has its own bucket");
        assert!(limits.check(home, "alice").is_ok());
        assert!(limits.check(home, "alice").is_err(), "which is not endless either");
    }

    #[test]
    fn usernames_have_buckets_of_their_own() {
        let limits = limiter(1);
        for n in 0..10u8 {
            assert!(limits.check(IpAddr::from([198, 51, 100, n]), "alice").is_ok(), "attempt {n}");
        }
        assert!(limits.check(ip("198.51.100.10"), "alice").is_err(), "alice's bucket is empty");
        assert!(limits.check(ip("198.51.100.11"), "bob").is_ok(), "bob's is not");
    }

    #[test]
    fn the_burst_given_is_the_burst_allowed() {
        let limits = LoginLimiter::with_burst(NonZeroU32::new(2).expect("non-zero"));
        let from = ip("192.0.2.7");
        assert!(limits.check(from, "alice").is_ok());
        assert!(limits.check(from, "alice").is_ok());
        assert!(limits.check(from, "alice").is_err(), "the third attempt at once");
    }

    #[test]
    fn waits_are_said_in_words() {
        assert_eq!(seconds_in_words(1), "1 second");
        assert_eq!(seconds_in_words(2), "2 seconds");
        assert_eq!(seconds_in_words(3600), "3600 seconds");
    }

    fn known_len(limits: &LoginLimiter) -> usize {
        limits.known.lock().expect("known pairs").len()
    }

    #[test]
    fn the_known_pairs_stay_bounded_and_a_log_in_again_forgets_nobody() {
        let limits = limiter(1);
        let address = |n: usize| IpAddr::from(u32::try_from(n).expect("small").to_be_bytes());
        for n in 0..MAX_KNOWN {
            limits.logged_in(address(n), "alice");
        }
        assert_eq!(known_len(&limits), MAX_KNOWN);

        limits.logged_in(address(7), "Alice");
        assert_eq!(known_len(&limits), MAX_KNOWN, "a pair known already takes no room");

        limits.logged_in(address(MAX_KNOWN), "alice");
        assert_eq!(known_len(&limits), MAX_KNOWN, "one more pair: the oldest goes");
        assert!(limits.is_known(&(address(MAX_KNOWN), "alice".to_owned())));
    }

    #[test]
    fn shrinking_keeps_the_pairs_that_logged_in_lately() {
        let limits = limiter(1);
        let home = ip("203.0.113.5");
        limits.logged_in(home, "alice");
        limits.shrink();
        assert_eq!(known_len(&limits), 1);
        assert!(limits.check(home, "alice").is_ok());
    }

    #[test]
    fn shrinking_forgets_buckets_that_are_full_again() {
        let limits = LoginLimiter::new(NonZeroU32::MIN, Duration::from_millis(1));
        assert!(limits.check(ip("192.0.2.7"), "alice").is_ok());
        assert_eq!(limits.by_address.len(), 1);
        // Far more than the 1 ms that refills the bucket; only the order of events matters here.
        std::thread::sleep(Duration::from_millis(20));
        limits.shrink();
        assert_eq!(limits.by_address.len(), 0);
        assert_eq!(limits.by_username.len(), 0);
    }
}
