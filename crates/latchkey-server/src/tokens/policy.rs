//! When a token is due for refresh, when the background refresher takes it up, and how long to wait after a
//! failure.

use std::time::Duration;

use latchkey_core::Timestamp;
use latchkey_core::model::{ConnectionId, StoredTokens};
use sha2::{Digest as _, Sha256};

/// The longest default refresh window: 5 minutes.
const MAX_DEFAULT_WINDOW_SECS: i64 = 300;

/// How refreshes are paced: the lease, the concurrency of the background refresher and the backoff schedule
/// (the `--refresh-*` flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshTuning {
    /// How long a refresh lease lasts; longer than the outbound request timeout, or a slow provider answer
    /// could let another replica refresh the same connection (its write would then be refused, not lost).
    pub lease: Duration,
    /// How many background refreshes one process runs at once.
    pub concurrency: usize,
    /// How many of those may go to the same provider host at once.
    pub concurrency_per_host: usize,
    /// How many of those may be one user's at once, so that a user with many slow providers cannot take every
    /// slot.
    pub concurrency_per_user: usize,
    /// The first wait after a failed refresh; it doubles with each further failure.
    pub backoff_base: Duration,
    /// The longest wait between attempts (a provider's `Retry-After` may ask for more).
    pub backoff_max: Duration,
    /// After this many failures in a row, the last of them permanent (not a 5xx, 429 or timeout), the refresher
    /// stops trying until the connection is edited or reconnected.
    pub stop_after_failures: i64,
}

impl Default for RefreshTuning {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(60),
            concurrency: 16,
            concurrency_per_host: 4,
            concurrency_per_user: 4,
            backoff_base: Duration::from_secs(30),
            backoff_max: Duration::from_secs(3600),
            stop_after_failures: 5,
        }
    }
}

/// The refresh window, the background schedule and the backoff schedule.
#[derive(Debug, Clone, Copy)]
pub struct RefreshPolicy {
    /// A fixed window, or `None` for the default: 5 minutes or a tenth of the lifetime, whichever is shorter.
    pub window: Option<Duration>,
    pub tuning: RefreshTuning,
}

impl RefreshPolicy {
    /// How many seconds before `expires_at` a token with this lifetime is refreshed.
    #[must_use]
    pub fn window_secs(&self, obtained_at: Timestamp, expires_at: Timestamp) -> i64 {
        match self.window {
            Some(window) => secs(window),
            None => {
                let lifetime = (expires_at.secs() - obtained_at.secs()).max(0);
                (lifetime / 10).min(MAX_DEFAULT_WINDOW_SECS)
            }
        }
    }

    /// When a token obtained at `obtained_at` and expiring at `expires_at` becomes due: a token request from
    /// then on refreshes it first.
    #[must_use]
    pub fn refresh_at(&self, obtained_at: Timestamp, expires_at: Option<Timestamp>) -> Option<Timestamp> {
        expires_at.map(|expires| expires.plus_secs(-self.window_secs(obtained_at, expires)))
    }

    /// When the background refresher takes connection `id` up: inside the first half of the refresh window, at
    /// an offset derived from the id. So a thousand tokens issued in the same second are refreshed over half a
    /// window rather than all at once, and each connection keeps its place from one refresh to the next.
    #[must_use]
    pub fn scheduled_at(
        &self,
        id: &ConnectionId,
        obtained_at: Timestamp,
        expires_at: Option<Timestamp>,
    ) -> Option<Timestamp> {
        let expires = expires_at?;
        let window = self.window_secs(obtained_at, expires);
        let spread = u64::try_from(window / 2).unwrap_or(0);
        let offset = if spread == 0 { 0 } else { stable_hash(id.as_str()) % spread };
        Some(expires.plus_secs(-window + i64::try_from(offset).unwrap_or(0)))
    }

    /// Whether the token should be refreshed before it is served at `now`.
    #[must_use]
    pub fn is_due(&self, tokens: &StoredTokens, now: Timestamp) -> bool {
        self.refresh_at(tokens.obtained_at, tokens.expires_at).is_some_and(|at| now >= at)
    }

    /// Seconds to wait before the next attempt after `failures` consecutive failures: the base doubled for each
    /// failure after the first, at most the maximum, and at least what the provider asked for with
    /// `Retry-After` (capped at a day).
    #[must_use]
    pub fn backoff_secs(&self, failures: i64, retry_after: Option<Duration>) -> i64 {
        let base = secs(self.tuning.backoff_base).max(1);
        let max = secs(self.tuning.backoff_max).max(base);
        let exponent = u32::try_from((failures - 1).clamp(0, 30)).unwrap_or(30);
        let ours = base.saturating_mul(1_i64 << exponent).min(max);
        let theirs = retry_after.map_or(0, secs);
        ours.max(theirs.min(24 * 3600))
    }
}

fn secs(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}

/// The first 8 bytes of SHA-256 of `text`: the same on every replica and across restarts.
fn stable_hash(text: &str) -> u64 {
    let digest = Sha256::digest(text.as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(bytes)
}

/// Whether a token has expired at `now`.
#[must_use]
pub fn is_expired(tokens: &StoredTokens, now: Timestamp) -> bool {
    tokens.expires_at.is_some_and(|at| now >= at)
}

#[cfg(test)]
mod tests {
    use latchkey_core::Sealed;

    use super::*;

    fn tokens(obtained: i64, expires: Option<i64>) -> StoredTokens {
        StoredTokens {
            access_token: Sealed(vec![]),
            refresh_token: None,
            token_type: "Bearer".into(),
            expires_at: expires.map(Timestamp),
            obtained_at: Timestamp(obtained),
            scope: None,
            extra: std::collections::BTreeMap::new(),
        }
    }

    fn policy(window: Option<u64>) -> RefreshPolicy {
        RefreshPolicy { window: window.map(Duration::from_secs), tuning: RefreshTuning::default() }
    }

    #[test]
    fn default_window_is_five_minutes_or_a_tenth_of_the_lifetime() {
        let policy = policy(None);
        assert_eq!(policy.window_secs(Timestamp(0), Timestamp(3600)), 300);
        assert_eq!(policy.window_secs(Timestamp(0), Timestamp(600)), 60);
        assert!(!policy.is_due(&tokens(0, Some(600)), Timestamp(539)));
        assert!(policy.is_due(&tokens(0, Some(600)), Timestamp(540)));
        assert!(!policy.is_due(&tokens(0, None), Timestamp(1_000_000)));
    }

    #[test]
    fn a_configured_window_wins() {
        let policy = policy(Some(30));
        assert_eq!(policy.refresh_at(Timestamp(0), Some(Timestamp(3600))), Some(Timestamp(3570)));
    }

    #[test]
    fn backoff_doubles_up_to_an_hour_and_honours_retry_after() {
        let policy = policy(None);
        assert_eq!(policy.backoff_secs(1, None), 30);
        assert_eq!(policy.backoff_secs(2, None), 60);
        assert_eq!(policy.backoff_secs(3, None), 120);
        assert_eq!(policy.backoff_secs(50, None), 3600);
        assert_eq!(policy.backoff_secs(1, Some(Duration::from_secs(90))), 90);
        assert_eq!(policy.backoff_secs(1, Some(Duration::from_secs(10 * 24 * 3600))), 24 * 3600);
    }

    #[test]
    fn backoff_follows_the_configured_base_and_maximum() {
        let tuning = RefreshTuning {
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(4),
            ..RefreshTuning::default()
        };
        let policy = RefreshPolicy { window: None, tuning };
        let waits: Vec<i64> = (1..=6).map(|n| policy.backoff_secs(n, None)).collect();
        assert_eq!(waits, [1, 2, 4, 4, 4, 4]);
    }

    #[test]
    fn the_background_schedule_spreads_tokens_over_the_first_half_of_the_window() {
        let policy = policy(None);
        // A 3600 s token: window 300 s, so the refresher takes it up between 3300 s and 3450 s.
        let mut offsets = std::collections::HashSet::new();
        for _ in 0..1000 {
            let id = ConnectionId::random();
            let at = policy.scheduled_at(&id, Timestamp(0), Some(Timestamp(3600))).expect("scheduled");
            assert!((3300..3450).contains(&at.secs()), "{at:?}");
            assert_eq!(policy.scheduled_at(&id, Timestamp(0), Some(Timestamp(3600))), Some(at), "stable");
            assert!(policy.is_due(&tokens(0, Some(3600)), at), "the refresher only takes up due tokens");
            offsets.insert(at.secs());
        }
        assert!(offsets.len() > 100, "a thousand connections spread over many seconds: {}", offsets.len());
        assert_eq!(policy.scheduled_at(&ConnectionId::random(), Timestamp(0), None), None, "no expiry, no schedule");
    }
}
