//! Log-in throttling: every log-in attempt takes one cell from a bucket of the client's address and one from a
//! bucket of the username tried, before any password work. A guessing run from one address, or against one
//! account from many addresses, is slowed to a trickle, and the argon2 work it costs the server stays bounded.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Attempts allowed in a burst, per address and per username.
const BURST: u32 = 10;
/// One more attempt is allowed every this long, per address and per username.
const REFILL: Duration = Duration::from_secs(6);
/// Usernames longer than this share their bucket with others of the same start (the table stays small).
const MAX_KEY_CHARS: usize = 64;

/// The log-in rate limiter of the web UI.
pub struct LoginLimiter {
    by_address: DefaultKeyedRateLimiter<IpAddr>,
    by_username: DefaultKeyedRateLimiter<String>,
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

impl LoginLimiter {
    /// Allows `burst` attempts at once and one more every 6 seconds, per address and per username.
    #[must_use]
    pub fn with_burst(burst: NonZeroU32) -> Self {
        Self::new(burst, REFILL)
    }

    /// Allows `burst` attempts at once and one more every `refill`, per address and per username.
    #[must_use]
    pub fn new(burst: NonZeroU32, refill: Duration) -> Self {
        let quota = Quota::with_period(refill).unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN)).allow_burst(burst);
        Self {
            by_address: RateLimiter::keyed(quota),
            by_username: RateLimiter::keyed(quota),
            clock: DefaultClock::default(),
        }
    }

    /// Takes one attempt from the address's bucket and one from the username's (compared without case and
    /// surrounding spaces).
    ///
    /// # Errors
    /// [`Throttled`] when either bucket is empty, with the wait and a sentence for the log-in page.
    pub fn check(&self, address: IpAddr, username: &str) -> Result<(), Throttled> {
        let now = self.clock.now();
        if let Err(not_until) = self.by_address.check_key(&address) {
            let secs = not_until.wait_time_from(now).as_secs().max(1);
            return Err(Throttled {
                retry_after_secs: secs,
                message: format!(
                    "Too many log-in attempts from your address. Wait {} and try again.",
                    seconds_in_words(secs)
                ),
            });
        }
        let key: String = username.trim().to_lowercase().chars().take(MAX_KEY_CHARS).collect();
        if let Err(not_until) = self.by_username.check_key(&key) {
            let secs = not_until.wait_time_from(now).as_secs().max(1);
            return Err(Throttled {
                retry_after_secs: secs,
                message: format!(
                    "Too many log-in attempts for this username. Wait {} and try again.",
                    seconds_in_words(secs)
                ),
            });
        }
        Ok(())
    }

    /// Forgets addresses and usernames whose buckets are full again.
    pub fn shrink(&self) {
        self.by_address.retain_recent();
        self.by_address.shrink_to_fit();
        self.by_username.retain_recent();
        self.by_username.shrink_to_fit();
    }
}

fn seconds_in_words(secs: u64) -> String {
    if secs == 1 { "1 second".to_owned() } else { format!("{secs} seconds") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(burst: u32) -> LoginLimiter {
        LoginLimiter::new(NonZeroU32::new(burst).expect("non-zero"), Duration::from_secs(60))
    }

    #[test]
    fn an_address_over_its_burst_is_throttled_whatever_the_username() {
        let limits = limiter(3);
        let from: IpAddr = "192.0.2.7".parse().expect("ip");
        for n in 0..3 {
            assert!(limits.check(from, &format!("user{n}")).is_ok());
        }
        let refused = limits.check(from, "user9").expect_err("over the burst");
        assert!(refused.retry_after_secs >= 1, "{refused:?}");
        assert!(refused.message.contains("from your address"), "{}", refused.message);
        assert!(limits.check("192.0.2.8".parse().expect("ip"), "user9").is_ok(), "addresses have their own buckets");
    }

    #[test]
    fn a_username_over_its_burst_is_throttled_from_every_address() {
        let limits = limiter(2);
        for (n, name) in ["alice", " ALICE "].iter().enumerate() {
            let from = IpAddr::from([198, 51, 100, u8::try_from(n).expect("small")]);
            assert!(limits.check(from, name).is_ok());
        }
        let refused = limits.check("198.51.100.50".parse().expect("ip"), "Alice").expect_err("same account");
        assert!(refused.message.contains("for this username"), "{}", refused.message);
    }
}
