//! The grants without a browser redirect: client credentials (RFC 6749 §4.4) and device authorization
//! (RFC 8628). Both reuse the token request of [`crate::flow`]: the connection's client authentication, body
//! format and extra token parameters, and its reading of token responses.

use latchkey_core::Secret;
use latchkey_core::settings::OAuthSettings;

use crate::flow::{TokenRequest, finish_error};
use crate::response::{DeviceAuthorization, TokenResponse, device_authorization_uncut};
use crate::{HttpClient, OAuthError};

/// The `grant_type` of a device access token request (RFC 8628 §3.4).
pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// Asks the token endpoint for a token with the client's own credentials (RFC 6749 §4.4.2).
///
/// Sends `grant_type=client_credentials`, `scope` (the scopes joined by the connection's separator; left out
/// when there are none), the client authentication of `settings.client_auth`, then `settings.token_params`. The
/// answer is read like any token response; a refresh token in it is ignored by the caller (RFC 6749 §4.4.3 says
/// none should be sent), which simply asks again.
///
/// # Errors
/// Any [`OAuthError`]; `invalid_client` means the credentials are wrong.
pub async fn client_credentials(
    http: &HttpClient,
    settings: &OAuthSettings,
    client_secret: Option<&Secret>,
) -> Result<TokenResponse, OAuthError> {
    let mut request = TokenRequest::new(settings, client_secret);
    request.param("grant_type", "client_credentials");
    let scope = settings.scope_param();
    if !scope.is_empty() {
        request.param("scope", &scope);
    }
    request.client_auth(settings.client_auth);
    request.extra(&settings.token_params);
    request.send_for_tokens(http, &settings.token_url).await
}

/// Starts a device authorization at `settings.device_authorization_url` (RFC 8628 §3.1): `client_id` (through
/// the client authentication of `settings.client_auth`) and `scope`, in the connection's body format.
///
/// # Errors
/// [`OAuthError::Refused`] when the connection has no device authorization endpoint; otherwise any
/// [`OAuthError`] (see [`parse_device_authorization`]).
pub async fn start_device_authorization(
    http: &HttpClient,
    settings: &OAuthSettings,
    client_secret: Option<&Secret>,
) -> Result<DeviceAuthorization, OAuthError> {
    let Some(endpoint) = settings.device_authorization_url.as_deref() else {
        return Err(OAuthError::Refused { message: "the connection has no device authorization URL".to_owned() });
    };
    let mut request = TokenRequest::new(settings, client_secret);
    request.client_auth(settings.client_auth);
    let scope = settings.scope_param();
    if !scope.is_empty() {
        request.param("scope", &scope);
    }
    let secrets = request.secrets.clone();
    let response = request.send(http, endpoint).await?;
    device_authorization_uncut(response.status, response.content_type.as_deref(), &response.body)
        .map_err(|err| finish_error(err, response.retry_after, &secrets))
}

/// What one poll of the token endpoint during a device authorization said (RFC 8628 §3.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DevicePoll {
    /// `authorization_pending`: the person has not answered yet; poll again after the interval.
    Pending,
    /// `slow_down`: poll again, with the interval 5 seconds longer from now on.
    SlowDown,
    /// `access_denied`: the person refused; stop.
    Denied,
    /// `expired_token`: the device code expired before the person answered; stop, a new authorization is needed.
    Expired,
    /// The person approved: the tokens.
    Tokens(TokenResponse),
    /// Anything else; [`OAuthError::is_retryable`] tells whether polling may go on.
    Failed(OAuthError),
}

impl DevicePoll {
    /// The meaning of a token endpoint's answer to a device access token request.
    #[must_use]
    pub fn from_answer(answer: Result<TokenResponse, OAuthError>) -> Self {
        match answer {
            Ok(tokens) => Self::Tokens(tokens),
            Err(OAuthError::Rejected { error, status, description }) => match error.as_str() {
                "authorization_pending" => Self::Pending,
                "slow_down" => Self::SlowDown,
                "access_denied" => Self::Denied,
                "expired_token" => Self::Expired,
                _ => Self::Failed(OAuthError::Rejected { status, error, description }),
            },
            Err(other) => Self::Failed(other),
        }
    }
}

/// Polls the token endpoint once for the tokens of a device authorization (RFC 8628 §3.4): `grant_type` of
/// [`DEVICE_CODE_GRANT`], `device_code`, the client authentication of `settings.client_auth`, then
/// `settings.token_params`.
pub async fn poll_device_token(
    http: &HttpClient,
    settings: &OAuthSettings,
    client_secret: Option<&Secret>,
    device_code: &Secret,
) -> DevicePoll {
    let mut request = TokenRequest::new(settings, client_secret);
    request.param("grant_type", DEVICE_CODE_GRANT);
    request.secret_param("device_code", device_code);
    request.client_auth(settings.client_auth);
    request.extra(&settings.token_params);
    DevicePoll::from_answer(request.send_for_tokens(http, &settings.token_url).await)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_device_authorization;

    fn rejected(error: &str) -> Result<TokenResponse, OAuthError> {
        Err(OAuthError::Rejected { status: 400, error: error.to_owned(), description: None })
    }

    #[test]
    fn poll_answers_map_to_what_the_poller_does() {
        assert_eq!(DevicePoll::from_answer(rejected("authorization_pending")), DevicePoll::Pending);
        assert_eq!(DevicePoll::from_answer(rejected("slow_down")), DevicePoll::SlowDown);
        assert_eq!(DevicePoll::from_answer(rejected("access_denied")), DevicePoll::Denied);
        assert_eq!(DevicePoll::from_answer(rejected("expired_token")), DevicePoll::Expired);
        assert!(matches!(
            DevicePoll::from_answer(rejected("invalid_client")),
            DevicePoll::Failed(OAuthError::Rejected { ref error, .. }) if error == "invalid_client"
        ));
        let unavailable = Err(OAuthError::Unavailable { message: "answered 503".into(), retry_after: None });
        assert!(matches!(DevicePoll::from_answer(unavailable), DevicePoll::Failed(e) if e.is_retryable()));
    }

    #[test]
    fn poll_answers_are_read_from_real_bodies() {
        let settings = OAuthSettings::default();
        let read = |status: u16, body: &str| {
            DevicePoll::from_answer(crate::parse_token_response(
                status,
                Some("application/json"),
                body.as_bytes(),
                &settings,
            ))
        };
        assert_eq!(read(400, r#"{"error":"authorization_pending"}"#), DevicePoll::Pending);
        assert_eq!(read(400, r#"{"error":"slow_down","error_description":"easy"}"#), DevicePoll::SlowDown);
        // Some providers answer 200 with the error in the body.
        assert_eq!(read(200, r#"{"error":"access_denied"}"#), DevicePoll::Denied);
        assert_eq!(read(400, r#"{"error":"expired_token"}"#), DevicePoll::Expired);
        let DevicePoll::Tokens(tokens) = read(200, r#"{"access_token":"at-1","expires_in":60}"#) else {
            panic!("a token answer is Tokens");
        };
        assert_eq!(tokens.access_token.expose(), "at-1");
    }

    #[test]
    fn device_authorization_answers_are_read() {
        let body = br#"{"device_code":"dc-secret","user_code":"WDJB-MJHT","verification_uri":"https://x/device",
            "verification_uri_complete":"https://x/device?user_code=WDJB-MJHT","expires_in":"1800","interval":5}"#;
        let answer = parse_device_authorization(200, Some("application/json"), body).expect("parses");
        assert_eq!(answer.device_code.expose(), "dc-secret");
        assert_eq!(answer.user_code, "WDJB-MJHT");
        assert_eq!(answer.verification_uri_complete.as_deref(), Some("https://x/device?user_code=WDJB-MJHT"));
        assert_eq!((answer.expires_in, answer.interval), (1800, Some(5)));
        assert!(!format!("{answer:?}").contains("dc-secret"), "the device code is redacted in Debug");

        let google = b"device_code=d&user_code=U&verification_url=https%3A%2F%2Fx%2Fdevice&expires_in=600";
        let answer =
            parse_device_authorization(200, Some("application/x-www-form-urlencoded"), google).expect("parses");
        assert_eq!((answer.verification_uri.as_str(), answer.interval), ("https://x/device", None));

        let missing = parse_device_authorization(200, Some("application/json"), br#"{"user_code":"U"}"#);
        assert!(matches!(missing, Err(OAuthError::InvalidResponse { .. })));
        let refused = parse_device_authorization(400, Some("application/json"), br#"{"error":"invalid_client"}"#);
        assert!(matches!(refused, Err(ref e) if e.needs_reauth()));
        assert!(parse_device_authorization(503, None, b"").is_err_and(|e| e.is_retryable()));
    }
}
