//! Types that hold secret values. Their `Debug` and `Display` never show the content.

use std::fmt;

use zeroize::Zeroizing;

/// A secret in plain text (client secret, access token, refresh token, password, API key).
///
/// The memory is wiped on drop; `Debug` prints `[redacted]`. The only way to the content is [`Secret::expose`],
/// which makes every place that reads a secret easy to find.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wraps a secret value.
    #[must_use]
    pub fn new(value: impl Into<String>) -> Self {
        Self(Zeroizing::new(value.into()))
    }

    /// The secret's content. Call it only where the value must leave latchkey (a provider request, the token
    /// endpoint's answer) or be sealed.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is the empty string.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    /// Reads a secret from a JSON string (for example a `client_secret` in a request body).
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::new)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A value sealed by `latchkey-crypto`: opaque bytes that record the key id and carry the ciphertext.
///
/// Storage keeps and returns these bytes unchanged and never looks inside.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed(pub Vec<u8>);

impl Sealed {
    /// The sealed bytes, as stored.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sealed({} bytes)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_secret() {
        let secret = Secret::new("hunter2-very-secret");
        assert_eq!(format!("{secret:?}"), "[redacted]");
        assert_eq!(format!("{secret}"), "[redacted]");
        assert_eq!(format!("{:?}", Some(secret.clone())), "Some([redacted])");
        assert_eq!(secret.expose(), "hunter2-very-secret");
    }

    #[test]
    fn deserialises_from_a_string_and_stays_redacted() {
        let secret: Secret = serde_json::from_str("\"from-json\"").expect("parses");
        assert_eq!(secret.expose(), "from-json");
        assert_eq!(format!("{secret:?}"), "[redacted]");
    }

    #[test]
    fn sealed_debug_shows_only_the_length() {
        let sealed = Sealed(b"ciphertext".to_vec());
        assert_eq!(format!("{sealed:?}"), "Sealed(10 bytes)");
    }
}
