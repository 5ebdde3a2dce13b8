//! Per-key rate limiting of the API: a generous token bucket per API key, so that one runaway script cannot
//! starve the others or hammer the database.

use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use latchkey_core::Error;
use latchkey_core::model::ApiKeyId;

/// The rate limiter of API keys.
pub struct ApiRateLimiter {
    limiter: DefaultKeyedRateLimiter<ApiKeyId>,
    clock: DefaultClock,
    per_second: NonZeroU32,
}

impl ApiRateLimiter {
    /// Allows each key `per_second` requests a second on average, in bursts of as many.
    #[must_use]
    pub fn new(per_second: NonZeroU32) -> Self {
        let quota = Quota::per_second(per_second).allow_burst(per_second);
        Self { limiter: RateLimiter::keyed(quota), clock: DefaultClock::default(), per_second }
    }

    /// Takes one request from the key's bucket.
    ///
    /// # Errors
    /// [`Error::RateLimited`] when the bucket is empty, saying when to come back.
    pub fn check(&self, key: &ApiKeyId, name: &str) -> Result<(), Error> {
        self.limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            let retry_after_secs = wait.as_secs().max(1);
            Error::RateLimited {
                message: format!(
                    "the API key '{name}' sent more than {} requests a second: slow down and retry in {retry_after_secs} s",
                    self.per_second
                ),
                retry_after_secs,
            }
        })
    }

    /// Forgets keys whose buckets are full again, so the table does not grow without bound.
    pub fn shrink(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_over_its_burst_is_told_when_to_come_back() {
        let limiter = ApiRateLimiter::new(NonZeroU32::new(3).expect("non-zero"));
        let key = ApiKeyId("k1".into());
        for _ in 0..3 {
            assert!(limiter.check(&key, "ci").is_ok());
        }
        let err = limiter.check(&key, "ci").expect_err("over the burst");
        assert_eq!(err.http_status(), 429);
        assert!(err.to_string().contains("'ci'"), "{err}");
        assert!(limiter.check(&ApiKeyId("k2".into()), "other").is_ok(), "keys have their own buckets");
    }
}
