//! What can go wrong when latchkey talks to a provider, in four kinds a caller can act on.
//!
//! No variant ever holds a secret: request bodies are never copied into errors, the provider's own text is
//! sanitised (control characters removed, length capped) and scrubbed of any secret latchkey sent in the same
//! request, and endpoint URLs are shown without their query string, fragment or user information.

use std::fmt::Write as _;
use std::time::Duration;

use url::Url;

/// The longest `error_description` kept from a provider, in characters.
pub(crate) const MAX_DESCRIPTION_CHARS: usize = 300;

/// The longest `error` code kept from a provider, in characters.
pub(crate) const MAX_ERROR_CODE_CHARS: usize = 100;

/// The longest provider text held before the request's secrets are blanked out of it and it is cut to
/// [`MAX_DESCRIPTION_CHARS`] or [`MAX_ERROR_CODE_CHARS`] (the body itself is capped by the client).
pub(crate) const MAX_UNSCRUBBED_CHARS: usize = 64 * 1024;

/// A failed conversation with a provider.
///
/// The messages of [`OAuthError::Unavailable`] and [`OAuthError::InvalidResponse`] are predicates written to
/// follow the endpoint's name ("did not answer within 30 s", "answered 200 without an access_token"), so that
/// [`OAuthError::describe`] can build a whole sentence; `Display` puts "the provider" in front of them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OAuthError {
    /// The provider answered with an OAuth error response (RFC 6749 §5.2), or with a client error status and no
    /// usable body (then `error` is `http_<status>`, for example `http_401`). `status` is the HTTP status, which
    /// may be 200 for providers that put `error` in a successful answer.
    #[error("the provider answered {status} {error}{}", description_suffix(description.as_deref()))]
    Rejected { status: u16, error: String, description: Option<String> },

    /// The provider could not be reached or asked to be tried later: 5xx, 429, a timeout, a refused or reset
    /// connection, a failed DNS lookup. `retry_after` carries the provider's `Retry-After` (seconds form).
    #[error("the provider {message}")]
    Unavailable { message: String, retry_after: Option<Duration> },

    /// The provider answered, but not with anything latchkey can use: neither JSON nor a form, no
    /// `access_token`, a body above the size cap, or a redirect (which latchkey never follows).
    #[error("the provider {message}")]
    InvalidResponse { message: String },

    /// latchkey refused to send the request: the URL is malformed, has an unsupported scheme, or points at (or
    /// resolves to) an address that the outbound guard forbids.
    #[error("latchkey refused the request: {message}")]
    Refused { message: String },
}

fn description_suffix(description: Option<&str>) -> String {
    description.map_or_else(String::new, |d| format!(": {d}"))
}

impl OAuthError {
    /// Whether a person must authorize again: the provider refused the grant or the client
    /// (`invalid_grant`, `invalid_client` or `unauthorized_client`, RFC 6749 §5.2).
    #[must_use]
    pub fn needs_reauth(&self) -> bool {
        matches!(
            self,
            Self::Rejected { error, .. }
                if matches!(error.as_str(), "invalid_grant" | "invalid_client" | "unauthorized_client")
        )
    }

    /// Whether the same request may succeed later ([`OAuthError::Unavailable`]).
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }

    /// How long the provider asked to wait before the next attempt, when it said so.
    #[must_use]
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Unavailable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// A sentence about this failure at the token endpoint `endpoint` (a URL; its query string, fragment and
    /// user information are left out), for example "the token endpoint https://x/token answered 400
    /// invalid_grant: Token expired".
    #[must_use]
    pub fn describe(&self, endpoint: &str) -> String {
        self.describe_at("the token endpoint", endpoint)
    }

    /// Like [`OAuthError::describe`] for another kind of endpoint: `label` names it ("the revocation
    /// endpoint"), `endpoint` is its URL.
    #[must_use]
    pub fn describe_at(&self, label: &str, endpoint: &str) -> String {
        let at = display_endpoint(endpoint);
        match self {
            Self::Rejected { status, error, description } => {
                format!("{label} {at} answered {status} {error}{}", description_suffix(description.as_deref()))
            }
            Self::Unavailable { message, .. } | Self::InvalidResponse { message } => {
                format!("{label} {at} {message}")
            }
            Self::Refused { message } => {
                format!("latchkey refused to send a request to {label} {at}: {message}")
            }
        }
    }
}

impl From<OAuthError> for latchkey_core::Error {
    /// Every provider failure becomes [`latchkey_core::Error::Provider`]; only [`OAuthError::Unavailable`] is
    /// retryable. Deciding that a connection needs re-authorization is the server's job (it knows the handle):
    /// it asks [`OAuthError::needs_reauth`] before converting.
    fn from(err: OAuthError) -> Self {
        let retryable = err.is_retryable();
        latchkey_core::Error::Provider { message: err.to_string(), retryable }
    }
}

/// An endpoint URL as it may appear in messages and logs: without query, fragment or user information.
pub(crate) fn display_endpoint(endpoint: &str) -> String {
    match Url::parse(endpoint) {
        Ok(mut url) => {
            url.set_query(None);
            url.set_fragment(None);
            // Both fail only for URLs that cannot carry credentials, which then have none to remove.
            let _ = url.set_username("");
            let _ = url.set_password(None);
            sanitize(url.as_str(), 500)
        }
        Err(_) => {
            let cut = endpoint.find(['?', '#']).unwrap_or(endpoint.len());
            let without_query = &endpoint[..cut];
            let without_userinfo = match (without_query.find("://"), without_query.rfind('@')) {
                (Some(scheme_end), Some(at)) if at > scheme_end => {
                    format!("{}{}", &without_query[..scheme_end + 3], &without_query[at + 1..])
                }
                _ => without_query.to_owned(),
            };
            sanitize(&without_userinfo, 500)
        }
    }
}

/// Untrusted text made safe to show: control characters removed, at most `max_chars` characters (a final
/// ellipsis marks a cut).
pub(crate) fn sanitize(text: &str, max_chars: usize) -> String {
    let kept: Vec<char> = text.chars().filter(|c| !c.is_control()).take(max_chars.saturating_add(1)).collect();
    if kept.len() <= max_chars {
        return kept.into_iter().collect();
    }
    let mut out: String = kept[..max_chars.saturating_sub(1)].iter().collect();
    out.push('…');
    out
}

/// Secrets shorter than this are not searched for in provider text: they would match ordinary words (and
/// error codes) and are too weak to be worth hiding.
const MIN_REDACTED_LEN: usize = 6;

/// The provider's `error` and `error_description` cut to their lengths ([`MAX_ERROR_CODE_CHARS`],
/// [`MAX_DESCRIPTION_CHARS`]). Call it only after the request's secrets are blanked out ([`redact`]).
pub(crate) fn cap(err: OAuthError) -> OAuthError {
    match err {
        OAuthError::Rejected { status, error, description } => OAuthError::Rejected {
            status,
            error: sanitize(&error, MAX_ERROR_CODE_CHARS),
            description: description.map(|d| sanitize(&d, MAX_DESCRIPTION_CHARS)),
        },
        other => other,
    }
}

/// The ways a secret sent in a request may come back in a provider's text: as it is, or URL-encoded (`+` or
/// `%20` for a space, upper- or lower-case hex, RFC 3986 unreserved characters kept or escaped).
fn spellings(secret: &str) -> Vec<String> {
    let unreserved = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~');
    let mut forms = vec![secret.to_owned(), url::form_urlencoded::byte_serialize(secret.as_bytes()).collect()];
    for upper in [true, false] {
        forms.push(percent_encode(secret, unreserved, upper));
        forms.push(percent_encode(secret, |b| b.is_ascii_alphanumeric(), upper));
        forms.push(percent_encode(secret, |b| unreserved(b) && b != b'~', upper).replace("%20", "+"));
    }
    forms.sort();
    forms.dedup();
    // Longest first, so that a longer spelling is not half-replaced through a shorter one it contains.
    forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
    forms
}

/// Percent-encodes every byte of `text` that `keep` does not keep, with upper- or lower-case hex digits.
fn percent_encode(text: &str, keep: impl Fn(u8) -> bool, upper: bool) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        if keep(byte) {
            out.push(char::from(byte));
        } else if upper {
            let _ = write!(out, "%{byte:02X}");
        } else {
            let _ = write!(out, "%{byte:02x}");
        }
    }
    out
}

/// `text` with every occurrence of each secret, in each of its URL-encoded spellings, replaced by `[redacted]`.
/// Secrets shorter than six characters are skipped. Call it before cutting the text to length.
pub(crate) fn redact(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_owned();
    for secret in secrets.iter().filter(|s| s.len() >= MIN_REDACTED_LEN) {
        for spelling in spellings(secret) {
            if out.contains(&spelling) {
                out = out.replace(&spelling, "[redacted]");
            }
        }
    }
    out
}

/// A duration in words for messages: whole seconds as "30 s", anything else in milliseconds as "300 ms".
pub(crate) fn human_duration(duration: Duration) -> String {
    let mut out = String::new();
    if duration.subsec_nanos() == 0 {
        let _ = write!(out, "{} s", duration.as_secs());
    } else {
        let _ = write!(out, "{} ms", duration.as_millis());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(error: &str) -> OAuthError {
        OAuthError::Rejected { status: 400, error: error.to_owned(), description: Some("Token expired".to_owned()) }
    }

    #[test]
    fn reauth_only_for_grant_and_client_errors() {
        assert!(rejected("invalid_grant").needs_reauth());
        assert!(rejected("invalid_client").needs_reauth());
        assert!(rejected("unauthorized_client").needs_reauth());
        assert!(!rejected("invalid_request").needs_reauth());
        assert!(!rejected("invalid_grant").is_retryable());
        let unavailable =
            OAuthError::Unavailable { message: "answered 503".into(), retry_after: Some(Duration::from_secs(3)) };
        assert!(!unavailable.needs_reauth());
        assert!(unavailable.is_retryable());
        assert_eq!(unavailable.retry_after(), Some(Duration::from_secs(3)));
    }

    #[test]
    fn describe_reads_as_a_sentence_without_the_query() {
        assert_eq!(
            rejected("invalid_grant").describe("https://x/token?tenant=a#frag"),
            "the token endpoint https://x/token answered 400 invalid_grant: Token expired"
        );
        let timeout = OAuthError::Unavailable {
            message: format!("did not answer within {}", human_duration(Duration::from_secs(30))),
            retry_after: None,
        };
        assert_eq!(
            timeout.describe("https://x/token"),
            "the token endpoint https://x/token did not answer within 30 s"
        );
        let refused = OAuthError::Refused { message: "nope".into() };
        assert_eq!(
            refused.describe_at("the revocation endpoint", "https://u:p@x/revoke?k=v"),
            "latchkey refused to send a request to the revocation endpoint https://x/revoke: nope"
        );
    }

    #[test]
    fn unparsable_endpoints_still_lose_query_and_credentials() {
        assert_eq!(display_endpoint("not a url?secret=1"), "not a url");
        assert_eq!(display_endpoint("zz://u:p@[bad/x?q"), "zz://[bad/x");
    }

    #[test]
    fn converts_to_a_provider_error() {
        let core: latchkey_core::Error = rejected("invalid_grant").into();
        assert_eq!(
            core,
            latchkey_core::Error::Provider {
                message: "the provider answered 400 invalid_grant: Token expired".into(),
                retryable: false
            }
        );
        let core: latchkey_core::Error =
            OAuthError::Unavailable { message: "answered 502".into(), retry_after: None }.into();
        assert!(core.is_retryable());
    }

    #[test]
    fn sanitize_strips_controls_and_caps() {
        assert_eq!(sanitize("a\u{1b}[31mb\nc", 10), "a[31mbc");
        assert_eq!(sanitize(&"é".repeat(400), 300).chars().count(), 300);
        assert!(sanitize(&"é".repeat(400), 300).ends_with('…'));
        assert_eq!(sanitize("abc", 3), "abc");
    }

    #[test]
    fn redact_removes_every_secret() {
        assert_eq!(
            redact("code abc123 is bad, abc123!", &["abc123", "", "bad"]),
            "code [redacted] is bad, [redacted]!"
        );
        assert_eq!(human_duration(Duration::from_millis(300)), "300 ms");
    }

    #[test]
    fn redact_removes_url_encoded_echoes() {
        let secret = "s3cr/t+v@l ue~x";
        for echo in ["s3cr%2Ft%2Bv%40l+ue%7Ex", "s3cr%2Ft%2Bv%40l%20ue~x", "s3cr%2ft%2bv%40l%20ue%7ex", secret] {
            let out = redact(&format!("bad client {echo}!"), &[secret]);
            assert_eq!(out, "bad client [redacted]!", "{echo}");
        }
    }
}
