//! Time as latchkey sees it: whole seconds since the Unix epoch, read from an injectable clock so that expiry and
//! refresh are tested without sleeping.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A point in time, in whole seconds since 1970-01-01T00:00:00Z.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Seconds since the epoch.
    #[must_use]
    pub fn secs(self) -> i64 {
        self.0
    }

    /// This point moved by `secs` seconds (negative moves back). Saturates instead of overflowing.
    #[must_use]
    pub fn plus_secs(self, secs: i64) -> Self {
        Self(self.0.saturating_add(secs))
    }

    /// The timestamp as RFC 3339 text in UTC, for example `2026-11-29T05:31:46Z`.
    #[must_use]
    pub fn to_rfc3339(self) -> String {
        OffsetDateTime::from_unix_timestamp(self.0)
            .ok()
            .and_then(|t| t.format(&Rfc3339).ok())
            .unwrap_or_else(|| self.0.to_string())
    }

    /// Reads RFC 3339 text with any offset, for example `2026-11-29T05:31:46Z` or `2026-11-29T07:31:46+02:00`;
    /// fractions of a second are dropped. `None` when the text is not RFC 3339.
    #[must_use]
    pub fn parse_rfc3339(text: &str) -> Option<Self> {
        OffsetDateTime::parse(text.trim(), &Rfc3339).ok().map(|t| Self(t.unix_timestamp()))
    }
}

/// The source of the current time. The server holds one as `Arc<dyn Clock>`.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The operating system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let secs =
            SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        Timestamp(secs)
    }
}

/// A clock that only moves when told to; for tests.
#[derive(Debug)]
pub struct ManualClock {
    now: AtomicI64,
}

impl ManualClock {
    /// A clock standing at `start`.
    #[must_use]
    pub fn new(start: Timestamp) -> Self {
        Self { now: AtomicI64::new(start.0) }
    }

    /// A clock standing at the system's current time.
    #[must_use]
    pub fn starting_now() -> Self {
        Self::new(SystemClock.now())
    }

    /// Moves the clock forward by `secs` seconds.
    pub fn advance(&self, secs: i64) {
        self.now.fetch_add(secs, Ordering::SeqCst);
    }

    /// Sets the clock to `at`.
    pub fn set(&self, at: Timestamp) {
        self.now.store(at.0, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.now.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339_in_utc() {
        assert_eq!(Timestamp(0).to_rfc3339(), "1970-01-01T00:00:00Z");
        assert_eq!(Timestamp(1_800_000_000).to_rfc3339(), "2027-01-15T08:00:00Z");
    }

    #[test]
    fn parses_rfc3339_with_offsets_and_fractions() {
        assert_eq!(Timestamp::parse_rfc3339("2027-01-15T08:00:00Z"), Some(Timestamp(1_800_000_000)));
        assert_eq!(Timestamp::parse_rfc3339(" 2027-01-15T10:00:00.75+02:00 "), Some(Timestamp(1_800_000_000)));
        assert_eq!(Timestamp::parse_rfc3339("2027-01-15"), None);
        assert_eq!(Timestamp::parse_rfc3339("1800000000"), None);
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(Timestamp(100));
        assert_eq!(clock.now(), Timestamp(100));
        clock.advance(50);
        assert_eq!(clock.now(), Timestamp(150));
        clock.set(Timestamp(7));
        assert_eq!(clock.now(), Timestamp(7));
    }
}
