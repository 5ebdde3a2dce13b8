//! The handle: the stable name by which scripts ask for a connection's token.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use crate::Error;

/// The longest handle accepted.
pub const MAX_HANDLE_LEN: usize = 64;

/// A connection's handle: 1 to 64 lowercase ASCII letters, digits and hyphens. Unique per user; never changes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Handle(String);

impl Handle {
    /// Checks `value` and wraps it, or says in words why it is not a handle.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the first rule `value` breaks.
    pub fn parse(value: &str) -> Result<Self, Error> {
        if value.is_empty() {
            return Err(Error::invalid(
                "handle",
                "the handle is empty: use 1 to 64 lowercase letters, digits and hyphens",
            ));
        }
        let len = value.chars().count();
        if len > MAX_HANDLE_LEN {
            return Err(Error::invalid(
                "handle",
                format!("the handle is {len} characters long; at most {MAX_HANDLE_LEN} are allowed"),
            ));
        }
        if let Some(bad) = value.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')) {
            let what = if bad.is_ascii_uppercase() {
                format!("uppercase letter '{bad}'")
            } else if bad.is_whitespace() {
                "a space".to_owned()
            } else {
                format!("'{}'", bad.escape_default())
            };
            return Err(Error::invalid(
                "handle",
                format!("the handle contains {what}; use only lowercase letters, digits and hyphens"),
            ));
        }
        Ok(Self(value.to_owned()))
    }

    /// The handle as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Handle {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Handle::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn accepts_the_documented_alphabet() {
        for ok in ["a", "my-custom-handle", "crm2", "0", "-", &"x".repeat(64)] {
            assert_eq!(Handle::parse(ok).map(|h| h.as_str().to_owned()).ok().as_deref(), Some(ok));
        }
    }

    #[test]
    fn refuses_with_a_reason() {
        let cases = [
            ("", "empty"),
            ("Crm", "uppercase letter 'C'"),
            ("my handle", "a space"),
            ("a_b", "'_'"),
            ("é", "'\\u{e9}'"),
        ];
        for (bad, reason) in cases {
            let err = Handle::parse(bad).expect_err(bad).to_string();
            assert!(err.contains(reason), "{bad:?}: {err}");
        }
        let err = Handle::parse(&"x".repeat(65)).expect_err("65").to_string();
        assert!(err.contains("65 characters"), "{err}");
    }

    proptest! {
        #[test]
        fn valid_iff_alphabet_and_length(s in "\\PC{0,70}") {
            let expected = !s.is_empty()
                && s.chars().count() <= 64
                && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            prop_assert_eq!(Handle::parse(&s).is_ok(), expected);
        }

        #[test]
        fn generated_handles_round_trip_through_json(s in "[a-z0-9-]{1,64}") {
            let handle = Handle::parse(&s).expect("valid by construction");
            let json = serde_json::to_string(&handle).expect("serialises");
            let back: Handle = serde_json::from_str(&json).expect("parses");
            prop_assert_eq!(back, handle);
        }
    }
}
