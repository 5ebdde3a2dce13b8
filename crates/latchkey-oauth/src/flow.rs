//! The Authorization Code grant (RFC 6749 §4.1) with PKCE (RFC 7636), token refresh (RFC 6749 §6) and token
//! revocation (RFC 7009).

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rand::RngCore as _;
use reqwest::Method;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};
use url::Url;
use url::form_urlencoded::{Serializer, byte_serialize};

use latchkey_core::Secret;
use latchkey_core::settings::{ClientAuth, OAuthSettings, TokenRequestFormat};

use crate::client::RequestBody;
use crate::error::{MAX_DESCRIPTION_CHARS, MAX_ERROR_CODE_CHARS, cap, redact, sanitize};
use crate::response::{TokenResponse, token_response_uncut};
use crate::{HttpClient, OAuthError};

/// A PKCE code verifier and its `S256` challenge (RFC 7636 §4.1, §4.2).
#[derive(Debug, Clone)]
pub struct PkcePair {
    /// The code verifier, kept by latchkey until the code exchange.
    pub verifier: Secret,
    /// `BASE64URL(SHA256(verifier))`, sent in the authorization request.
    pub challenge: String,
}

impl PkcePair {
    /// A fresh pair: 32 random bytes from the operating system, base64url-encoded without padding, make a
    /// 43-character verifier (RFC 7636 §4.1 recommends exactly this).
    #[must_use]
    pub fn generate() -> PkcePair {
        let mut bytes = [0_u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let verifier = URL_SAFE_NO_PAD.encode(bytes);
        bytes.fill(0);
        Self::from_verifier(Secret::new(verifier))
    }

    /// The pair for a known verifier, for example one stored with a flow.
    #[must_use]
    pub fn from_verifier(verifier: Secret) -> PkcePair {
        let challenge = Self::s256_challenge(verifier.expose());
        PkcePair { verifier, challenge }
    }

    /// The `S256` code challenge of `verifier`: `BASE64URL-ENCODE(SHA256(ASCII(verifier)))` (RFC 7636 §4.2).
    #[must_use]
    pub fn s256_challenge(verifier: &str) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
    }
}

/// Authorization-request parameters that `authorization_params` may not set: latchkey owns them.
pub const RESERVED_AUTHORIZATION_PARAMS: &[&str] =
    &["response_type", "client_id", "redirect_uri", "state", "code_challenge", "code_challenge_method"];

/// Token- and refresh-request parameters that `token_params` and `refresh_params` may not set: latchkey owns
/// them. (`client_id` is not among them: with `client_secret_basic` some providers want it in the body too.)
pub const RESERVED_TOKEN_PARAMS: &[&str] =
    &["grant_type", "code", "code_verifier", "redirect_uri", "refresh_token", "client_secret"];

/// Sets `key` to `value` in an ordered parameter list: the first existing pair is replaced, any others removed,
/// and a new pair is appended when there was none.
fn set_param(params: &mut Vec<(String, String)>, key: &str, value: &str) {
    match params.iter().position(|(k, _)| k == key) {
        Some(first) => {
            params[first].1 = value.to_owned();
            let mut index = 0;
            params.retain(|(k, _)| {
                let keep = index <= first || k != key;
                index += 1;
                keep
            });
        }
        None => params.push((key.to_owned(), value.to_owned())),
    }
}

/// The URL to send the person's browser to (RFC 6749 §4.1.1), with PKCE (RFC 7636 §4.3) when a challenge is
/// given.
///
/// The query of `settings.authorization_url` is kept; latchkey then sets `response_type=code`, `client_id`,
/// `redirect_uri`, `scope` (the scopes joined by the provider's separator; left out when there are none),
/// `state`, and `code_challenge` with `code_challenge_method=S256`. Last come `settings.authorization_params`,
/// which may add parameters or replace `scope` and the URL's own, but never the parameters latchkey owns
/// (`response_type`, `client_id`, `redirect_uri`, `state`, `code_challenge*`): those keys are ignored. A
/// parameter never appears twice.
///
/// # Errors
/// [`OAuthError::Refused`] when the authorization URL is not an absolute `http` or `https` URL.
pub fn authorization_request_url(
    settings: &OAuthSettings,
    redirect_uri: &str,
    state: &str,
    pkce_challenge: Option<&str>,
) -> Result<Url, OAuthError> {
    let mut url = Url::parse(&settings.authorization_url)
        .map_err(|err| OAuthError::Refused { message: format!("the authorization URL is not a valid URL ({err})") })?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(OAuthError::Refused {
            message: "the authorization URL must be an http or https URL with a host".to_owned(),
        });
    }
    let mut params: Vec<(String, String)> = url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    set_param(&mut params, "response_type", "code");
    set_param(&mut params, "client_id", &settings.client_id);
    set_param(&mut params, "redirect_uri", redirect_uri);
    let scope = settings.scope_param();
    if !scope.is_empty() {
        set_param(&mut params, "scope", &scope);
    }
    set_param(&mut params, "state", state);
    if let Some(challenge) = pkce_challenge {
        set_param(&mut params, "code_challenge", challenge);
        set_param(&mut params, "code_challenge_method", "S256");
    }
    for (key, value) in &settings.authorization_params {
        if !RESERVED_AUTHORIZATION_PARAMS.contains(&key.as_str()) {
            set_param(&mut params, key, value);
        }
    }
    url.query_pairs_mut().clear().extend_pairs(&params);
    Ok(url)
}

/// A sentence part for an error that the authorization endpoint sent back to the redirect URI (RFC 6749
/// §4.1.2.1): the sanitised `error` code, what it means when it is one of the RFC's, and the sanitised
/// `error_description`, for example "access_denied (the request was declined at the provider): User cancelled".
///
/// Both values arrive in the browser's query string, so they are untrusted: control characters are removed and
/// the code is capped at 100 characters, the description at 300.
#[must_use]
pub fn describe_provider_error(error: &str, description: Option<&str>) -> String {
    let code = sanitize(error.trim(), MAX_ERROR_CODE_CHARS);
    let code = if code.is_empty() { "unknown_error".to_owned() } else { code };
    let meaning = match code.as_str() {
        "access_denied" => Some("the request was declined at the provider"),
        "invalid_request" => {
            Some("the provider found the authorization request malformed: check the authorization URL")
        }
        "unauthorized_client" => Some("the client may not use the authorization code grant: check the client settings"),
        "unsupported_response_type" => Some("the provider does not offer the authorization code grant to this client"),
        "invalid_scope" => Some("the provider does not accept the requested scopes: check the scopes"),
        "server_error" => Some("the provider failed: try again"),
        "temporarily_unavailable" => Some("the provider is busy or down: try again later"),
        _ => None,
    };
    let mut out = code.clone();
    if let Some(meaning) = meaning {
        out = format!("{out} ({meaning})");
    }
    let description = description.map(|d| sanitize(d.trim(), MAX_DESCRIPTION_CHARS)).filter(|d| !d.is_empty());
    if let Some(description) = description {
        out = format!("{out}: {description}");
    }
    out
}

/// Exchanges an authorization code for tokens at `settings.token_url` (RFC 6749 §4.1.3, RFC 7636 §4.5).
///
/// Sends `grant_type=authorization_code`, `code`, `redirect_uri`, the client authentication of
/// `settings.client_auth`, `code_verifier` when given, then `settings.token_params` (which add parameters but
/// never replace one latchkey set).
///
/// # Errors
/// Any [`OAuthError`]; see [`crate::parse_token_response`] for how answers are judged.
pub async fn exchange_code(
    http: &HttpClient,
    settings: &OAuthSettings,
    client_secret: Option<&Secret>,
    code: &Secret,
    redirect_uri: &str,
    pkce_verifier: Option<&Secret>,
) -> Result<TokenResponse, OAuthError> {
    let mut request = TokenRequest::new(settings, client_secret);
    request.param("grant_type", "authorization_code");
    request.secret_param("code", code);
    request.param("redirect_uri", redirect_uri);
    request.client_auth(settings.client_auth);
    if let Some(verifier) = pkce_verifier {
        request.secret_param("code_verifier", verifier);
    }
    request.extra(&settings.token_params);
    request.send_for_tokens(http, &settings.token_url).await
}

/// Refreshes the access token at `settings.refresh_endpoint()` (RFC 6749 §6).
///
/// Sends `grant_type=refresh_token`, `refresh_token`, the client authentication of `settings.refresh_auth()`
/// (`refresh_client_auth` when set, for providers that want another method than for the code exchange), then
/// `settings.refresh_params`. `scope` is not sent, so the provider keeps the scope originally granted.
///
/// # Errors
/// Any [`OAuthError`]; [`OAuthError::needs_reauth`] tells when the refresh token is no longer accepted.
pub async fn refresh(
    http: &HttpClient,
    settings: &OAuthSettings,
    client_secret: Option<&Secret>,
    refresh_token: &Secret,
) -> Result<TokenResponse, OAuthError> {
    let mut request = TokenRequest::new(settings, client_secret);
    request.param("grant_type", "refresh_token");
    request.secret_param("refresh_token", refresh_token);
    request.client_auth(settings.refresh_auth());
    request.extra(&settings.refresh_params);
    request.send_for_tokens(http, settings.refresh_endpoint()).await
}

/// Revokes a token at `settings.revocation_url` (RFC 7009 §2.1): `token`, `token_type_hint` (left out when
/// empty) and the client authentication, in the connection's revocation body format (its token request format
/// unless set apart). Does nothing when no revocation
/// endpoint is configured.
///
/// # Errors
/// Any [`OAuthError`] for a non-2xx answer (RFC 7009 §2.2.1); a 2xx answer is success whatever its body, since
/// the RFC answers 200 even for tokens that were already invalid.
pub async fn revoke(
    http: &HttpClient,
    settings: &OAuthSettings,
    client_secret: Option<&Secret>,
    token: &Secret,
    token_type_hint: &str,
) -> Result<(), OAuthError> {
    let Some(endpoint) = settings.revocation_url.as_deref() else {
        return Ok(());
    };
    let mut request = TokenRequest::new(settings, client_secret);
    request.format = settings.revocation_format();
    request.secret_param("token", token);
    if !token_type_hint.is_empty() {
        request.param("token_type_hint", token_type_hint);
    }
    request.client_auth(settings.client_auth);
    let secrets = request.secrets.clone();
    let response = request.send(http, endpoint).await?;
    if (200..300).contains(&response.status) {
        return Ok(());
    }
    let err = token_response_uncut(response.status, response.content_type.as_deref(), &response.body, settings)
        .err()
        .unwrap_or_else(|| OAuthError::Rejected {
            status: response.status,
            error: format!("http_{}", response.status),
            description: None,
        });
    Err(finish_error(err, response.retry_after, &secrets))
}

/// Headers latchkey sets itself or that carry credentials, which a connection's `request_headers` may not name.
pub const RESERVED_REQUEST_HEADERS: &[&str] = &[
    "accept",
    "authorization",
    "connection",
    "content-length",
    "content-type",
    "cookie",
    "host",
    "proxy-authorization",
    "transfer-encoding",
    "user-agent",
];

/// Checks one extra header of a connection's `request_headers`: a valid HTTP header name that latchkey does not
/// set itself and that does not look like a credential, and a printable value of at most 200 characters.
///
/// # Errors
/// A sentence naming the header and what is wrong, never repeating the value.
pub fn check_request_header(name: &str, value: &str) -> Result<(), String> {
    let shown = name.escape_debug();
    if HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Err(format!("'{shown}' is not a valid HTTP header name"));
    }
    let lower = name.to_ascii_lowercase();
    if RESERVED_REQUEST_HEADERS.contains(&lower.as_str()) || lower.starts_with("proxy-") {
        return Err(format!("the header {shown} is set by latchkey itself"));
    }
    if latchkey_core::settings::is_secret_like(&lower.replace('-', "_")) || lower.contains("auth") {
        return Err(format!("the header {shown} looks like a credential, which request_headers never holds"));
    }
    if value.chars().count() > 200 || value.chars().any(char::is_control) || HeaderValue::from_str(value).is_err() {
        return Err(format!("the value of the header {shown} must be printable text of at most 200 characters"));
    }
    Ok(())
}

/// A request to a token, revocation or device authorization endpoint, as it is assembled.
pub(crate) struct TokenRequest<'a> {
    settings: &'a OAuthSettings,
    client_secret: Option<&'a Secret>,
    params: Vec<(String, String)>,
    /// The body encoding: the connection's token request format, or its revocation format for revocation.
    format: TokenRequestFormat,
    authorization: Option<HeaderValue>,
    /// Every secret in this request, to scrub from the provider's error text.
    pub(crate) secrets: Vec<Secret>,
}

impl<'a> TokenRequest<'a> {
    pub(crate) fn new(settings: &'a OAuthSettings, client_secret: Option<&'a Secret>) -> Self {
        let mut secrets: Vec<Secret> = client_secret.cloned().into_iter().collect();
        if let Some(secret) = client_secret {
            // A provider may echo the `Authorization: Basic` credentials it refuses, whichever way the client
            // authenticates: both spellings (RFC 6749 §2.3.1 form-encodes id and secret first; many do not).
            let id = &settings.client_id;
            let form = |text: &str| byte_serialize(text.as_bytes()).collect::<String>();
            secrets.push(Secret::new(STANDARD.encode(format!("{id}:{}", secret.expose()))));
            secrets.push(Secret::new(STANDARD.encode(format!("{}:{}", form(id), form(secret.expose())))));
        }
        let format = settings.token_request_format;
        Self { settings, client_secret, params: Vec::new(), format, authorization: None, secrets }
    }

    pub(crate) fn param(&mut self, key: &str, value: &str) {
        self.params.push((key.to_owned(), value.to_owned()));
    }

    pub(crate) fn secret_param(&mut self, key: &str, value: &Secret) {
        self.secrets.push(value.clone());
        self.param(key, value.expose());
    }

    /// Client authentication (RFC 6749 §2.3.1): `client_secret_post` puts the id and (when there is one) the
    /// secret in the body; `client_secret_basic` sends `Authorization: Basic` over the form-encoded id and
    /// secret, and keeps the id out of the body; `none` sends only the id (RFC 6749 §3.2.1, public clients).
    pub(crate) fn client_auth(&mut self, method: ClientAuth) {
        let settings = self.settings;
        match method {
            ClientAuth::ClientSecretPost => {
                self.param("client_id", &settings.client_id);
                if let Some(secret) = self.client_secret {
                    self.secret_param("client_secret", secret);
                }
            }
            ClientAuth::ClientSecretBasic => {
                let id: String = byte_serialize(settings.client_id.as_bytes()).collect();
                let secret: String =
                    self.client_secret.map(|s| byte_serialize(s.expose().as_bytes()).collect()).unwrap_or_default();
                let encoded = STANDARD.encode(format!("{id}:{secret}"));
                self.secrets.push(Secret::new(encoded.clone()));
                // Base64 output is always a valid header value.
                let mut value = HeaderValue::from_str(&format!("Basic {encoded}"))
                    .unwrap_or_else(|_| HeaderValue::from_static("Basic"));
                value.set_sensitive(true);
                self.authorization = Some(value);
            }
            ClientAuth::None => self.param("client_id", &settings.client_id),
        }
    }

    /// Adds the connection's extra parameters, skipping any key already in the request.
    pub(crate) fn extra(&mut self, extra: &std::collections::BTreeMap<String, String>) {
        for (key, value) in extra {
            if !self.params.iter().any(|(k, _)| k == key) {
                self.param(key, value);
            }
        }
    }

    fn body(&self) -> RequestBody {
        match self.format {
            TokenRequestFormat::Form => RequestBody {
                content_type: "application/x-www-form-urlencoded",
                bytes: Serializer::new(String::new()).extend_pairs(&self.params).finish().into_bytes(),
            },
            TokenRequestFormat::Json => {
                let object: Map<String, Value> =
                    self.params.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
                RequestBody { content_type: "application/json", bytes: Value::Object(object).to_string().into_bytes() }
            }
        }
    }

    pub(crate) async fn send(
        self,
        http: &HttpClient,
        endpoint: &str,
    ) -> Result<crate::client::RawResponse, OAuthError> {
        let mut headers = HeaderMap::new();
        for (name, value) in &self.settings.request_headers {
            // Checked when the settings were saved; a header that no longer passes is left out.
            if check_request_header(name, value).is_ok()
                && let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value))
            {
                headers.insert(name, value);
            }
        }
        if let Some(value) = self.authorization.clone() {
            headers.insert(AUTHORIZATION, value);
        }
        let body = self.body();
        http.execute(Method::POST, endpoint, headers, Some(body))
            .await
            .map_err(|err| finish_error(err, None, &self.secrets))
    }

    pub(crate) async fn send_for_tokens(self, http: &HttpClient, endpoint: &str) -> Result<TokenResponse, OAuthError> {
        let settings = self.settings;
        let secrets = self.secrets.clone();
        let response = self.send(http, endpoint).await?;
        token_response_uncut(response.status, response.content_type.as_deref(), &response.body, settings)
            .map_err(|err| finish_error(err, response.retry_after, &secrets))
    }
}

/// Adds the `Retry-After` to an [`OAuthError::Unavailable`] and scrubs every secret of the request from the
/// provider's text (some providers echo the code or token they refuse).
pub(crate) fn finish_error(
    err: OAuthError,
    retry_after: Option<std::time::Duration>,
    secrets: &[Secret],
) -> OAuthError {
    let secrets: Vec<&str> = secrets.iter().map(Secret::expose).collect();
    // Blank out first, then cut: a cut made first could leave the start of a secret that no longer matches.
    let err = match err {
        OAuthError::Rejected { status, error, description } => OAuthError::Rejected {
            status,
            error: redact(&error, &secrets),
            description: description.map(|d| redact(&d, &secrets)),
        },
        OAuthError::Unavailable { message, retry_after: existing } => {
            OAuthError::Unavailable { message: redact(&message, &secrets), retry_after: existing.or(retry_after) }
        }
        OAuthError::InvalidResponse { message } => OAuthError::InvalidResponse { message: redact(&message, &secrets) },
        OAuthError::Refused { message } => OAuthError::Refused { message: redact(&message, &secrets) },
    };
    cap(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_headers_are_plain_names_latchkey_does_not_set_and_never_credentials() {
        assert_eq!(check_request_header("Notion-Version", "2022-06-28"), Ok(()));
        for name in
            ["Authorization", "content-type", "Accept", "Host", "Cookie", "Proxy-Foo", "X-Api-Key", "X-Auth-User"]
        {
            assert!(check_request_header(name, "v").is_err(), "{name}");
        }
        assert!(check_request_header("Bad Name", "v").is_err());
        assert!(check_request_header("", "v").is_err());
        let err = check_request_header("X-Trace", "a\r\nInjected: 1").expect_err("control characters");
        assert!(!err.contains("Injected"), "the value is never repeated: {err}");
        assert!(check_request_header("X-Trace", &"v".repeat(201)).is_err());
    }

    #[test]
    fn rfc7636_appendix_b_vector() {
        assert_eq!(
            PkcePair::s256_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn set_param_replaces_and_deduplicates() {
        let mut params =
            vec![("a".to_owned(), "1".to_owned()), ("b".to_owned(), "2".to_owned()), ("a".to_owned(), "3".to_owned())];
        set_param(&mut params, "a", "x");
        set_param(&mut params, "c", "y");
        let keys: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(keys, [("a", "x"), ("b", "2"), ("c", "y")]);
    }

    #[test]
    fn authorization_errors_are_explained_and_sanitised() {
        assert_eq!(
            describe_provider_error("access_denied", Some("User cancelled")),
            "access_denied (the request was declined at the provider): User cancelled"
        );
        assert_eq!(describe_provider_error("custom_thing", None), "custom_thing");
        assert_eq!(describe_provider_error(" ", Some(" ")), "unknown_error");
        let long = "\u{1b}[2J".to_owned() + &"x".repeat(1000);
        let described = describe_provider_error("invalid_scope\n", Some(&long));
        assert!(!described.chars().any(char::is_control), "{described}");
        assert!(described.chars().count() < 450, "{described}");
    }

    #[test]
    fn echoed_secrets_are_scrubbed() {
        let err = finish_error(
            OAuthError::Rejected {
                status: 400,
                error: "invalid_grant".into(),
                description: Some("code abc123def is unknown".into()),
            },
            None,
            &[Secret::new("abc123def"), Secret::new("is")],
        );
        assert!(err.needs_reauth());
        assert_eq!(
            err.describe("https://x/t"),
            "the token endpoint https://x/t answered 400 invalid_grant: code [redacted] is unknown"
        );
    }
}
