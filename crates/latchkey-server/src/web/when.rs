//! Times as the pages show them: relative to the server's clock ("expires in 4 min", "refreshed 2 h ago"), with
//! the exact time for `<time datetime>` and its tooltip. Computed on the server, so a page needs no script to
//! read well and every browser shows the same words.

use latchkey_core::Timestamp;

/// A point in time as a page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct When {
    /// RFC 3339, for the `datetime` attribute.
    pub datetime: String,
    /// The exact time for people, for example `2026-01-05 14:03:12 UTC`.
    pub exact: String,
    /// The relative words, for example `expires in 4 min`.
    pub words: String,
}

impl When {
    fn new(at: Timestamp, words: String) -> Self {
        let datetime = at.to_rfc3339();
        let exact = format!("{} UTC", datetime.trim_end_matches('Z').replacen('T', " ", 1));
        Self { datetime, exact, words }
    }
}

/// A length of time in rounded-down words: "a few seconds", "1 min", "5 h", "3 days".
#[must_use]
pub fn span(secs: i64) -> String {
    let secs = secs.max(0);
    match secs {
        0..45 => "a few seconds".to_owned(),
        45..3600 => format!("{} min", (secs / 60).max(1)),
        3600..172_800 => format!("{} h", secs / 3600),
        _ => {
            let days = secs / 86_400;
            if days == 1 { "1 day".to_owned() } else { format!("{days} days") }
        }
    }
}

/// When a token expires, seen from `now`: "expires in 4 min" or "expired 2 h ago".
#[must_use]
pub fn expiry(now: Timestamp, at: Timestamp) -> When {
    let left = at.secs().saturating_sub(now.secs());
    let words = if left > 0 { format!("expires in {}", span(left)) } else { format!("expired {} ago", span(-left)) };
    When::new(at, words)
}

/// Something that happened at `at`, seen from `now`: "`verb` 2 h ago", or "2 h ago" for an empty `verb`. A
/// time slightly ahead of the clock (another replica's clock) reads as "a few seconds ago".
#[must_use]
pub fn ago(now: Timestamp, at: Timestamp, verb: &str) -> When {
    let span = span(now.secs().saturating_sub(at.secs()));
    let words = if verb.is_empty() { format!("{span} ago") } else { format!("{verb} {span} ago") };
    When::new(at, words)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp(1_800_000_000);

    #[test]
    fn spans_round_down_to_a_readable_unit() {
        assert_eq!(span(0), "a few seconds");
        assert_eq!(span(44), "a few seconds");
        assert_eq!(span(45), "1 min");
        assert_eq!(span(299), "4 min");
        assert_eq!(span(3599), "59 min");
        assert_eq!(span(3600), "1 h");
        assert_eq!(span(2 * 3600 + 1799), "2 h");
        assert_eq!(span(47 * 3600), "47 h");
        assert_eq!(span(2 * 86_400), "2 days");
        assert_eq!(span(-5), "a few seconds");
    }

    #[test]
    fn expiry_reads_forwards_and_backwards() {
        let soon = expiry(NOW, NOW.plus_secs(4 * 60 + 10));
        assert_eq!(soon.words, "expires in 4 min");
        assert_eq!(soon.datetime, "2027-01-15T08:04:10Z");
        assert_eq!(soon.exact, "2027-01-15 08:04:10 UTC");
        assert_eq!(expiry(NOW, NOW.plus_secs(-7200)).words, "expired 2 h ago");
        assert_eq!(expiry(NOW, NOW).words, "expired a few seconds ago");
    }

    #[test]
    fn past_events_say_how_long_ago() {
        assert_eq!(ago(NOW, NOW.plus_secs(-2 * 3600 - 60), "refreshed").words, "refreshed 2 h ago");
        assert_eq!(ago(NOW, NOW.plus_secs(30), "refreshed").words, "refreshed a few seconds ago");
        assert_eq!(ago(NOW, NOW.plus_secs(-3 * 86_400), "used").words, "used 3 days ago");
        assert_eq!(ago(NOW, NOW.plus_secs(-90), "").words, "1 min ago");
    }
}
