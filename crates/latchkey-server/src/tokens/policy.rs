//! When a token is due for refresh, and how long to wait after a failure.

use std::time::Duration;

use latchkey_core::Timestamp;
use latchkey_core::model::StoredTokens;

/// The longest default refresh window: 5 minutes.
const MAX_DEFAULT_WINDOW_SECS: i64 = 300;
/// The first wait after a failed refresh.
const BACKOFF_BASE_SECS: i64 = 30;
/// The longest wait between attempts.
const BACKOFF_MAX_SECS: i64 = 3600;

/// The refresh window and the backoff schedule.
#[derive(Debug, Clone, Copy)]
pub struct RefreshPolicy {
    /// A fixed window, or `None` for the default: 5 minutes or a tenth of the lifetime, whichever is shorter.
    pub window: Option<Duration>,
}

impl RefreshPolicy {
    /// How many seconds before `expires_at` a token with this lifetime is refreshed.
    #[must_use]
    pub fn window_secs(&self, obtained_at: Timestamp, expires_at: Timestamp) -> i64 {
        match self.window {
            Some(window) => i64::try_from(window.as_secs()).unwrap_or(i64::MAX),
            None => {
                let lifetime = (expires_at.secs() - obtained_at.secs()).max(0);
                (lifetime / 10).min(MAX_DEFAULT_WINDOW_SECS)
            }
        }
    }

    /// When a token obtained at `obtained_at` and expiring at `expires_at` should be refreshed.
    #[must_use]
    pub fn refresh_at(&self, obtained_at: Timestamp, expires_at: Option<Timestamp>) -> Option<Timestamp> {
        expires_at.map(|expires| expires.plus_secs(-self.window_secs(obtained_at, expires)))
    }

    /// Whether the token should be refreshed before it is served at `now`.
    #[must_use]
    pub fn is_due(&self, tokens: &StoredTokens, now: Timestamp) -> bool {
        self.refresh_at(tokens.obtained_at, tokens.expires_at).is_some_and(|at| now >= at)
    }

    /// Seconds to wait before the next attempt after `failures` consecutive failures, at least what the provider
    /// asked for with `Retry-After`.
    #[must_use]
    pub fn backoff_secs(failures: i64, retry_after: Option<Duration>) -> i64 {
        let exponent = u32::try_from((failures - 1).clamp(0, 16)).unwrap_or(16);
        let ours = BACKOFF_BASE_SECS.saturating_mul(1_i64 << exponent).min(BACKOFF_MAX_SECS);
        let theirs = retry_after.map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(BACKOFF_MAX_SECS));
        ours.max(theirs.min(BACKOFF_MAX_SECS * 24))
    }
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

    #[test]
    fn default_window_is_five_minutes_or_a_tenth_of_the_lifetime() {
        let policy = RefreshPolicy { window: None };
        assert_eq!(policy.window_secs(Timestamp(0), Timestamp(3600)), 300);
        assert_eq!(policy.window_secs(Timestamp(0), Timestamp(600)), 60);
        assert!(!policy.is_due(&tokens(0, Some(600)), Timestamp(539)));
        assert!(policy.is_due(&tokens(0, Some(600)), Timestamp(540)));
        assert!(!policy.is_due(&tokens(0, None), Timestamp(1_000_000)));
    }

    #[test]
    fn a_configured_window_wins() {
        let policy = RefreshPolicy { window: Some(Duration::from_secs(30)) };
        assert_eq!(policy.refresh_at(Timestamp(0), Some(Timestamp(3600))), Some(Timestamp(3570)));
    }

    #[test]
    fn backoff_doubles_up_to_an_hour_and_honours_retry_after() {
        assert_eq!(RefreshPolicy::backoff_secs(1, None), 30);
        assert_eq!(RefreshPolicy::backoff_secs(2, None), 60);
        assert_eq!(RefreshPolicy::backoff_secs(3, None), 120);
        assert_eq!(RefreshPolicy::backoff_secs(50, None), 3600);
        assert_eq!(RefreshPolicy::backoff_secs(1, Some(Duration::from_secs(90))), 90);
    }
}
