//! The one HTTP client that latchkey uses to reach providers, hardened for talking to URLs typed by users:
//! redirects off, no proxy, connect and request timeouts, a capped response body, and the outbound guard on every
//! URL and every resolved address.

use std::error::Error as StdError;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{Method, redirect};
use url::Url;

use crate::OAuthError;
use crate::error::{display_endpoint, human_duration, sanitize};
use crate::guard::{AllowList, ForbiddenAddress, GuardedResolver, Lookup, SystemLookup, check_url};

/// The longest `Retry-After` latchkey honours; a provider asking for more is retried after this long.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// What latchkey's outbound requests may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundPolicy {
    /// Allow loopback, private, link-local and reserved addresses, and plain `http` (for development and for
    /// providers inside the network). Off by default.
    pub allow_private_networks: bool,
    /// The longest wait for a TCP (and TLS) connection; 10 s by default.
    pub connect_timeout: Duration,
    /// The longest a whole request may take, body included; 30 s by default.
    pub request_timeout: Duration,
    /// The largest response body read; 1 MiB by default. A larger body is an error, not a truncation.
    pub max_body_bytes: usize,
    /// Hosts and networks opened beside (or instead of) `allow_private_networks`; empty by default.
    pub allow_list: AllowList,
}

impl Default for OutboundPolicy {
    fn default() -> Self {
        Self {
            allow_private_networks: false,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_body_bytes: 1024 * 1024,
            allow_list: AllowList::default(),
        }
    }
}

/// The HTTP client for provider requests. Cheap to clone (the connection pool is shared).
///
/// Built on `reqwest` with redirects off (RFC 6749 §3.2 and §10.15: a token request must not be replayed to
/// wherever a redirect points), no proxy, the policy's timeouts, the user agent `latchkey/<version>` and
/// [`crate::guard`]'s resolver.
#[derive(Clone)]
pub struct HttpClient {
    inner: reqwest::Client,
    policy: Arc<OutboundPolicy>,
    lookup: Arc<dyn Lookup>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient").field("policy", &self.policy).finish_non_exhaustive()
    }
}

/// The longest a save-time name lookup may take; a slower or failed lookup leaves the decision to connect time.
const SAVE_LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// A provider's answer, read in full (up to the cap).
#[derive(Debug)]
pub(crate) struct RawResponse {
    pub(crate) status: u16,
    pub(crate) content_type: Option<String>,
    pub(crate) retry_after: Option<Duration>,
    pub(crate) body: Vec<u8>,
}

/// A request body, already encoded, with its content type.
pub(crate) struct RequestBody {
    pub(crate) content_type: &'static str,
    pub(crate) bytes: Vec<u8>,
}

impl HttpClient {
    /// Builds the client for `policy`.
    ///
    /// # Errors
    /// [`OAuthError::Refused`] when the TLS backend cannot be initialised (latchkey then cannot talk to anyone).
    pub fn new(policy: OutboundPolicy) -> Result<Self, OAuthError> {
        Self::with_lookup(policy, Arc::new(SystemLookup))
    }

    /// Builds the client with its own name lookup (tests map names to addresses without DNS).
    ///
    /// # Errors
    /// As [`HttpClient::new`].
    pub fn with_lookup(policy: OutboundPolicy, lookup: Arc<dyn Lookup>) -> Result<Self, OAuthError> {
        let policy = Arc::new(policy);
        let resolver = GuardedResolver { policy: Arc::clone(&policy), lookup: Arc::clone(&lookup) };
        let builder = reqwest::Client::builder()
            .redirect(redirect::Policy::none())
            .no_proxy()
            .connect_timeout(policy.connect_timeout)
            .timeout(policy.request_timeout)
            .user_agent(concat!("latchkey/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(resolver));
        let inner = builder.build().map_err(|err| OAuthError::Refused {
            message: format!("the HTTP client could not be built: {}", root_cause(&err.without_url())),
        })?;
        Ok(Self { inner, policy, lookup })
    }

    /// Checks, without sending anything, whether latchkey may call `url`: [`check_url`], then every address the
    /// host name resolves to (through this client's lookup) against [`crate::decide`]. Used when a connection is
    /// saved, so that a refused endpoint is named at once. A lookup that fails or takes over 5 s passes: the
    /// same check runs again on the addresses actually dialled.
    ///
    /// # Errors
    /// [`OAuthError::Refused`] saying which rule the URL or its address breaks.
    pub async fn check_destination(&self, url: &Url) -> Result<(), OAuthError> {
        check_url(url, &self.policy)?;
        let Some(url::Host::Domain(host)) = url.host() else { return Ok(()) };
        let host = host.trim_end_matches('.').to_owned();
        let Ok(Ok(ips)) = tokio::time::timeout(SAVE_LOOKUP_TIMEOUT, self.lookup.lookup(host.clone())).await else {
            return Ok(());
        };
        for ip in ips {
            crate::decide(ip, Some(&host), &self.policy).map_err(|message| OAuthError::Refused { message })?;
        }
        Ok(())
    }

    /// The policy this client enforces.
    #[must_use]
    pub fn policy(&self) -> &OutboundPolicy {
        &self.policy
    }

    /// Sends one request to `endpoint` with `Accept: application/json` and reads the answer, whatever its status.
    ///
    /// The URL is checked by [`check_url`] first. Logs method, endpoint (without query), status and elapsed time
    /// at debug level; never headers or bodies.
    pub(crate) async fn execute(
        &self,
        method: Method,
        endpoint: &str,
        headers: HeaderMap,
        body: Option<RequestBody>,
    ) -> Result<RawResponse, OAuthError> {
        self.execute_shown_as(method, endpoint, display_endpoint(endpoint), headers, body).await
    }

    /// As [`HttpClient::execute`], with the logs naming the endpoint as `shown` (a webhook URL's path may itself
    /// be a credential, so its logs show only scheme and host).
    pub(crate) async fn execute_shown_as(
        &self,
        method: Method,
        endpoint: &str,
        shown: String,
        headers: HeaderMap,
        body: Option<RequestBody>,
    ) -> Result<RawResponse, OAuthError> {
        let url = Url::parse(endpoint)
            .map_err(|err| OAuthError::Refused { message: format!("the URL is not valid ({err})") })?;
        check_url(&url, &self.policy)?;

        let mut request = self
            .inner
            .request(method.clone(), url)
            .headers(headers)
            .header(ACCEPT, HeaderValue::from_static("application/json"));
        if let Some(body) = body {
            request = request.header(CONTENT_TYPE, HeaderValue::from_static(body.content_type)).body(body.bytes);
        }

        let started = Instant::now();
        let result = self.send_and_read(request).await;
        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        match &result {
            Ok(response) => tracing::debug!(
                method = %method, endpoint = %shown, status = response.status, elapsed_ms,
                "provider answered"
            ),
            Err(err) => tracing::debug!(
                method = %method, endpoint = %shown, elapsed_ms, error = %err,
                "provider request failed"
            ),
        }
        result
    }

    async fn send_and_read(&self, request: reqwest::RequestBuilder) -> Result<RawResponse, OAuthError> {
        let mut response = request.send().await.map_err(|err| self.transport_error(err))?;
        let status = response.status().as_u16();
        let headers = response.headers();
        let content_type = header_text(headers, CONTENT_TYPE.as_str());
        let retry_after = header_text(headers, RETRY_AFTER.as_str()).and_then(|v| parse_retry_after(&v));
        let cap = self.policy.max_body_bytes;
        let too_large = || OAuthError::InvalidResponse {
            message: format!("answered {status} with a body larger than {cap} bytes"),
        };
        let declared = header_text(headers, CONTENT_LENGTH.as_str()).and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > cap as u64) {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|err| self.transport_error(err))? {
            if body.len().saturating_add(chunk.len()) > cap {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(RawResponse { status, content_type, retry_after, body })
    }

    /// Turns a reqwest failure into an [`OAuthError`] without its URL (which may carry a query).
    fn transport_error(&self, err: reqwest::Error) -> OAuthError {
        let err = err.without_url();
        if let Some(refusal) = find_in_chain::<ForbiddenAddress>(&err) {
            return OAuthError::Refused { message: refusal.message.clone() };
        }
        let message = if err.is_timeout() && err.is_connect() {
            format!("could not be reached within {}", human_duration(self.policy.connect_timeout))
        } else if err.is_timeout() {
            format!("did not answer within {}", human_duration(self.policy.request_timeout))
        } else if err.is_connect() {
            format!("could not be reached ({})", root_cause(&err))
        } else if err.is_body() || err.is_decode() {
            format!("broke off its answer ({})", root_cause(&err))
        } else {
            format!("could not be asked ({})", root_cause(&err))
        };
        OAuthError::Unavailable { message, retry_after: None }
    }
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(|v| sanitize(v.trim(), 200))
}

/// A `Retry-After` in its delay-seconds form (RFC 9110 §10.2.3), capped at a day. The HTTP-date form is ignored.
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let secs: u64 = value.trim().parse().ok()?;
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

fn find_in_chain<'a, T: StdError + 'static>(err: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    let mut current: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        current = e.source();
    }
    None
}

/// The innermost cause of an error, for example "Connection refused (os error 111)", sanitised.
fn root_cause(err: &(dyn StdError + 'static)) -> String {
    let mut current = err;
    while let Some(next) = current.source() {
        current = next;
    }
    sanitize(&current.to_string(), 200)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documentation() {
        let policy = OutboundPolicy::default();
        assert!(!policy.allow_private_networks);
        assert_eq!(policy.connect_timeout, Duration::from_secs(10));
        assert_eq!(policy.request_timeout, Duration::from_secs(30));
        assert_eq!(policy.max_body_bytes, 1_048_576);
    }

    #[test]
    fn retry_after_takes_seconds_and_ignores_dates() {
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("0"), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("99999999"), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("-5"), None);
    }

    #[tokio::test]
    async fn refuses_bad_urls_before_sending() {
        let client = HttpClient::new(OutboundPolicy::default()).expect("client");
        for url in ["not a url", "https://127.0.0.1/token", "gopher://x/"] {
            let err = client.execute(Method::POST, url, HeaderMap::new(), None).await.expect_err(url);
            assert!(matches!(err, OAuthError::Refused { .. }), "{url}: {err:?}");
        }
    }
}
