//! The errors a caller of latchkey can act on. Every crate turns its own failures (database, HTTP client,
//! cipher) into one of these at its border; the server maps each variant to the contract's status and code.
//!
//! Messages are sentences for a person: what happened and what to do. They never contain a secret.

/// Shorthand for results with latchkey's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, in terms a caller can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The input is not acceptable (HTTP 400). `field` names the offending field when there is one.
    #[error("{message}")]
    Invalid { field: Option<String>, message: String },

    /// No credentials, or credentials that are not valid (HTTP 401).
    #[error("{0}")]
    Unauthorized(String),

    /// Valid credentials that may not do this (HTTP 403).
    #[error("{0}")]
    Forbidden(String),

    /// The thing asked for does not exist, or belongs to someone else (HTTP 404).
    #[error("{0}")]
    NotFound(String),

    /// The request conflicts with the current state (HTTP 409). `code` is the machine word of the envelope,
    /// for example `handle_taken` or `token_expired`.
    #[error("{message}")]
    Conflict { code: &'static str, message: String },

    /// The provider refused the refresh token or the client; a person must reconnect (HTTP 409 `needs_reauth`).
    #[error("{0}")]
    NeedsReauth(String),

    /// Too many requests from one API key or client (HTTP 429); try again after `retry_after_secs`.
    #[error("{message}")]
    RateLimited { message: String, retry_after_secs: u64 },

    /// The provider failed or could not be reached (HTTP 502). `retryable` is true for 5xx, 429, timeouts and
    /// connection failures, where the same request may succeed later.
    #[error("{message}")]
    Provider { message: String, retryable: bool },

    /// latchkey cannot do this safely right now, and says so rather than doing it halfway (HTTP 503); for
    /// example a token read while the audit log cannot be written. The message is for the caller.
    #[error("{0}")]
    Unavailable(String),

    /// A sealed value failed to open: a wrong master key or a tampered or moved ciphertext.
    #[error("{0}")]
    Crypto(String),

    /// The database failed.
    #[error("{0}")]
    Storage(String),

    /// Anything else that is latchkey's own fault.
    #[error("{0}")]
    Internal(String),
}

impl Error {
    /// An [`Error::Invalid`] for a named field.
    #[must_use]
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::Invalid { field: Some(field.to_owned()), message: message.into() }
    }

    /// An [`Error::Invalid`] not tied to one field.
    #[must_use]
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::Invalid { field: None, message: message.into() }
    }

    /// An [`Error::Conflict`] with its machine word.
    #[must_use]
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::Conflict { code, message: message.into() }
    }

    /// The machine word of the contract's error envelope.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid { .. } => "invalid_request",
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::Conflict { code, .. } => code,
            Self::NeedsReauth(_) => "needs_reauth",
            Self::RateLimited { .. } => "rate_limited",
            Self::Provider { .. } => "provider_error",
            Self::Unavailable(_) => "unavailable",
            Self::Crypto(_) | Self::Storage(_) | Self::Internal(_) => "internal",
        }
    }

    /// The HTTP status that the contract gives this error.
    #[must_use]
    pub fn http_status(&self) -> u16 {
        match self {
            Self::Invalid { .. } => 400,
            Self::Unauthorized(_) => 401,
            Self::Forbidden(_) => 403,
            Self::NotFound(_) => 404,
            Self::Conflict { .. } | Self::NeedsReauth(_) => 409,
            Self::RateLimited { .. } => 429,
            Self::Provider { .. } => 502,
            Self::Unavailable(_) => 503,
            Self::Crypto(_) | Self::Storage(_) | Self::Internal(_) => 500,
        }
    }

    /// Whether the same request may succeed if tried again later.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Provider { retryable: true, .. } | Self::Storage(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_contract() {
        assert_eq!(Error::invalid("handle", "x").http_status(), 400);
        assert_eq!(Error::Unauthorized("x".into()).http_status(), 401);
        assert_eq!(Error::Forbidden("x".into()).http_status(), 403);
        assert_eq!(Error::NotFound("x".into()).http_status(), 404);
        assert_eq!(Error::conflict("handle_taken", "x").http_status(), 409);
        assert_eq!(Error::NeedsReauth("x".into()).code(), "needs_reauth");
        assert_eq!(Error::Provider { message: "x".into(), retryable: true }.http_status(), 502);
        assert_eq!(Error::Storage("x".into()).code(), "internal");
        assert_eq!(Error::Unavailable("x".into()).http_status(), 503);
    }
}
