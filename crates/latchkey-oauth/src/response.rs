//! Reading what a token endpoint answers: the successful response of RFC 6749 §5.1 and the error response of
//! §5.2, with the tolerance real providers need (form-encoded answers, `expires_in` as a string, `error` inside
//! an HTTP 200, `"ok": false`, unknown fields), and the connection's `token_response_map` for answers that put
//! the values elsewhere (`authed_user.access_token`, `data.token`, `accessToken`).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use latchkey_core::settings::OAuthSettings;
use latchkey_core::{Secret, Timestamp};

use crate::OAuthError;
use crate::error::{MAX_UNSCRUBBED_CHARS, cap, sanitize};

/// The longest value kept from a token response for `keep_response_fields`, in characters.
pub const MAX_KEPT_VALUE_CHARS: usize = 1000;

/// A successful token response (RFC 6749 §5.1). `Debug` shows no token: both tokens are [`Secret`]s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenResponse {
    /// The access token.
    pub access_token: Secret,
    /// The token type (RFC 6749 §7.1); `Bearer` when the provider sent none, and any spelling of "bearer" is
    /// written `Bearer`.
    pub token_type: String,
    /// The lifetime in seconds: the provider's `expires_in`, else (when it sent no absolute `expires_at` either)
    /// the connection's `default_expires_in`.
    pub expires_in: Option<u64>,
    /// The absolute expiry the provider sent at the mapped `expires_at` path, when it sent no `expires_in`.
    pub expires_at: Option<Timestamp>,
    /// The refresh token (RFC 6749 §6), when one was sent and is not empty.
    pub refresh_token: Option<Secret>,
    /// The granted scope (RFC 6749 §3.3), when the provider said; a JSON array of scopes is joined with spaces.
    pub scope: Option<String>,
    /// The values of the connection's `keep_response_fields` that the answer holds as text, numbers or booleans,
    /// keyed by their path; sanitised and capped. Never a token: paths of the access and refresh token are
    /// skipped.
    pub extra: BTreeMap<String, String>,
}

/// The fields of an answer, whichever way it was encoded.
enum Fields {
    Json(Map<String, Value>),
    Form(Vec<(String, String)>),
}

/// A value found at a path.
enum Found<'a> {
    Json(&'a Value),
    Text(&'a str),
}

impl Found<'_> {
    /// The value as text: strings as they are, numbers and booleans written out; null, objects, arrays → `None`.
    fn text(&self) -> Option<String> {
        match self {
            Found::Json(Value::String(s)) => Some(s.clone()),
            Found::Json(Value::Number(n)) => Some(n.to_string()),
            Found::Json(Value::Bool(b)) => Some(b.to_string()),
            Found::Json(_) => None,
            Found::Text(s) => Some((*s).to_owned()),
        }
    }

    /// The value if it is a string (a form value always is).
    fn string(&self) -> Option<&str> {
        match self {
            Found::Json(Value::String(s)) => Some(s),
            Found::Json(_) => None,
            Found::Text(s) => Some(s),
        }
    }

    /// Whether both values are the very same place in the answer: the same JSON node, or the same form pair.
    /// Paths are compared after they are resolved, not as text: `data.00` and `data.0` index the same array
    /// item, while in an object they name different keys.
    fn same_place(&self, other: &Found<'_>) -> bool {
        match (self, other) {
            (Found::Json(a), Found::Json(b)) => std::ptr::eq(*a, *b),
            (Found::Text(a), Found::Text(b)) => std::ptr::eq(*a, *b),
            _ => false,
        }
    }

    /// A number of seconds: a non-negative JSON number (fractions dropped) or a numeric string.
    fn seconds(&self) -> Option<u64> {
        match self {
            Found::Json(Value::Number(n)) => n
                .as_u64()
                .or_else(|| n.as_f64().filter(|f| f.is_finite() && *f >= 0.0 && *f < 1.0e15).map(|f| f.trunc() as u64)),
            Found::Json(Value::String(s)) => s.trim().parse::<u64>().ok(),
            Found::Json(_) => None,
            Found::Text(s) => s.trim().parse::<u64>().ok(),
        }
    }
}

/// The latest absolute expiry accepted: the end of year 9999.
const MAX_EXPIRES_AT: i64 = 253_402_300_799;

impl Fields {
    /// The value at a dotted path. In JSON each segment names an object key, or indexes an array when it is a
    /// number; in a form the whole path is one key.
    fn at(&self, path: &str) -> Option<Found<'_>> {
        match self {
            Self::Json(map) => {
                let mut segments = path.split('.');
                let mut current = map.get(segments.next()?)?;
                for segment in segments {
                    current = match current {
                        Value::Object(object) => object.get(segment)?,
                        Value::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
                        _ => return None,
                    };
                }
                Some(Found::Json(current))
            }
            Self::Form(pairs) => pairs.iter().find(|(k, _)| k == path).map(|(_, v)| Found::Text(v)),
        }
    }

    fn text(&self, path: &str) -> Option<String> {
        self.at(path)?.text()
    }

    /// Whether the field is present with a value other than null or the empty string.
    fn has(&self, path: &str) -> bool {
        match self.at(path) {
            None | Some(Found::Json(Value::Null)) => false,
            Some(Found::Json(Value::String(s))) => !s.is_empty(),
            Some(Found::Text(s)) => !s.is_empty(),
            Some(Found::Json(_)) => true,
        }
    }

    fn scope(&self, path: &str) -> Option<String> {
        match self.at(path)? {
            Found::Json(Value::Array(items)) => {
                Some(items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" "))
            }
            found => found.text(),
        }
        .filter(|s| !s.is_empty())
    }

    fn expires_in(&self, path: &str) -> Option<u64> {
        let found = self.at(path)?;
        if matches!(found, Found::Json(Value::Null)) {
            return None;
        }
        let parsed = found.seconds();
        if parsed.is_none() {
            tracing::debug!("ignoring an expires_in that is not a non-negative whole number of seconds");
        }
        parsed
    }

    /// An absolute expiry: seconds since the epoch (number or numeric string) or RFC 3339 text.
    fn expires_at(&self, path: &str) -> Option<Timestamp> {
        let found = self.at(path)?;
        let parsed = found
            .seconds()
            .and_then(|secs| i64::try_from(secs).ok())
            .filter(|secs| *secs <= MAX_EXPIRES_AT)
            .map(Timestamp)
            .or_else(|| found.string().and_then(Timestamp::parse_rfc3339));
        if parsed.is_none() {
            tracing::debug!("ignoring an expires_at that is neither epoch seconds nor RFC 3339");
        }
        parsed
    }

    /// `"ok": false` at the top of a JSON answer (Slack's way of saying it failed).
    fn says_not_ok(&self) -> bool {
        matches!(self, Self::Json(map) if map.get("ok") == Some(&Value::Bool(false)))
    }
}

fn is_form_content_type(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|ct| {
        ct.split(';').next().is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"))
    })
}

fn parse_form(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

/// Finds the fields in a body: a JSON object; or a form when the content type says so or when the body is not
/// JSON but reads as a form with the access token's key (`access_token` or its mapped path) or `error`.
fn read_fields(content_type: Option<&str>, body: &[u8], access_token_path: &str) -> Option<Fields> {
    if is_form_content_type(content_type) {
        return Some(Fields::Form(parse_form(body)));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Some(Fields::Json(map)),
        Ok(_) => None,
        Err(_) => {
            let pairs = parse_form(body);
            pairs
                .iter()
                .any(|(k, _)| k == "access_token" || k == access_token_path || k == "error")
                .then_some(Fields::Form(pairs))
        }
    }
}

/// The OAuth error response in `fields` (RFC 6749 §5.2), if there is one: an `error` field, or `"ok": false`.
fn oauth_error(status: u16, fields: &Fields) -> Option<OAuthError> {
    if !fields.has("error") {
        if fields.says_not_ok() {
            return Some(OAuthError::Rejected {
                status,
                error: "unrecognized_error".to_owned(),
                description: Some("the answer says \"ok\": false without an error code".to_owned()),
            });
        }
        return None;
    }
    let error = fields
        .text("error")
        .map(|e| sanitize(&e, MAX_UNSCRUBBED_CHARS))
        .filter(|e| !e.is_empty())
        // An `error` that is an object or an array: some providers nest their own format there.
        .unwrap_or_else(|| "unrecognized_error".to_owned());
    // Not cut to length yet: an echoed secret is blanked out first, then the text is cut ([`cap`]), so that no
    // part of a secret survives at the cut.
    let description =
        fields.text("error_description").map(|d| sanitize(&d, MAX_UNSCRUBBED_CHARS)).filter(|d| !d.trim().is_empty());
    Some(OAuthError::Rejected { status, error, description })
}

/// Reads a token endpoint's answer into a [`TokenResponse`] or says what it means (RFC 6749 §5.1, §5.2).
///
/// - 429 and 5xx: [`OAuthError::Unavailable`] (the caller fills `retry_after` from the `Retry-After` header,
///   which is not passed here);
/// - any status with an `error` field, 200 included, or with `"ok": false` at the top of a JSON answer:
///   [`OAuthError::Rejected`] with that code (`unrecognized_error` when there is none) and a sanitised
///   `error_description`;
/// - 3xx: [`OAuthError::InvalidResponse`], since redirects are never followed;
/// - another non-2xx status without an `error` field: [`OAuthError::Rejected`] with the error `http_<status>`
///   (for example `http_401`), so that callers see one shape for every refusal;
/// - 2xx without a non-empty string access token (at its mapped path), or with a body that is neither a JSON
///   object nor a form: [`OAuthError::InvalidResponse`].
///
/// Each value is read at its place in `settings.token_response_map` (its standard name when not mapped).
/// `expires_in` may be a number or a numeric string; anything else counts as absent. An absolute `expires_at`
/// is read only when mapped, and only when there is no `expires_in`. Without either, the lifetime falls back to
/// `settings.default_expires_in`. The values of `settings.keep_response_fields` that hold text, numbers or
/// booleans are copied into [`TokenResponse::extra`]. Unknown fields are ignored.
///
/// # Errors
/// As listed above. No error contains a token: the body is only ever quoted through `error` and
/// `error_description`.
pub fn parse_token_response(
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
    settings: &OAuthSettings,
) -> Result<TokenResponse, OAuthError> {
    token_response_uncut(status, content_type, body, settings).map_err(cap)
}

/// [`parse_token_response`] with the provider's `error` and `error_description` not yet cut to length: the
/// request's secrets are blanked out of them first (`flow::finish_error`), which then cuts them.
pub(crate) fn token_response_uncut(
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
    settings: &OAuthSettings,
) -> Result<TokenResponse, OAuthError> {
    if status == 429 {
        return Err(OAuthError::Unavailable {
            message: "answered 429 Too Many Requests".to_owned(),
            retry_after: None,
        });
    }
    if status >= 500 {
        return Err(OAuthError::Unavailable { message: format!("answered {status}"), retry_after: None });
    }
    let map = &settings.token_response_map;
    let path = |key: &'static str| map.path(key).unwrap_or(key);
    let fields = read_fields(content_type, body, path("access_token"));
    if let Some(err) = fields.as_ref().and_then(|f| oauth_error(status, f)) {
        return Err(err);
    }
    if (300..400).contains(&status) {
        return Err(OAuthError::InvalidResponse {
            message: format!("answered {status} with a redirect, which latchkey does not follow: check the URL"),
        });
    }
    if !(200..300).contains(&status) {
        return Err(OAuthError::Rejected { status, error: format!("http_{status}"), description: None });
    }
    let Some(fields) = fields else {
        let shown = content_type.map_or_else(|| "none".to_owned(), |ct| sanitize(ct, 100));
        return Err(OAuthError::InvalidResponse {
            message: format!(
                "answered {status} with a body that is neither a JSON object nor a form (content type: {shown})"
            ),
        });
    };
    let access_path = path("access_token");
    let access_token =
        fields.at(access_path).and_then(|f| f.string().map(str::to_owned)).filter(|t| !t.is_empty()).ok_or_else(
            || {
                let place = if access_path == "access_token" { String::new() } else { format!(" at {access_path}") };
                OAuthError::InvalidResponse { message: format!("answered {status} without an access_token{place}") }
            },
        )?;
    let token_type = match fields.text(path("token_type")).map(|t| sanitize(t.trim(), 100)) {
        None => "Bearer".to_owned(),
        Some(t) if t.is_empty() || t.eq_ignore_ascii_case("bearer") => "Bearer".to_owned(),
        Some(t) => t,
    };
    let refresh_path = path("refresh_token");
    let refresh_token =
        fields.at(refresh_path).and_then(|f| f.string().map(str::to_owned)).filter(|t| !t.is_empty()).map(Secret::new);
    let expires_in = fields.expires_in(path("expires_in"));
    let expires_at = match (expires_in, map.path("expires_at")) {
        (None, Some(at_path)) => fields.expires_at(at_path),
        _ => None,
    };
    let expires_in = match (expires_in, expires_at) {
        (None, None) => settings.default_expires_in,
        (given, _) => given,
    };
    let extra = kept_fields(
        &fields,
        settings,
        &[access_path, refresh_path],
        [Some(&access_token), refresh_token.as_ref().map(Secret::expose)],
    );
    Ok(TokenResponse {
        access_token: Secret::new(access_token),
        token_type,
        expires_in,
        expires_at,
        refresh_token,
        scope: fields.scope(path("scope")),
        extra,
    })
}

/// The values of `settings.keep_response_fields` in `fields`, never a token: a kept path that resolves to the
/// same place as a token's path (`token_paths`), however it is spelled, is skipped, and so is a value equal to a
/// token.
fn kept_fields(
    fields: &Fields,
    settings: &OAuthSettings,
    token_paths: &[&str],
    tokens: [Option<&str>; 2],
) -> BTreeMap<String, String> {
    let token_places: Vec<Found<'_>> = token_paths.iter().filter_map(|p| fields.at(p)).collect();
    settings
        .keep_response_fields
        .iter()
        .filter_map(|kept| {
            let found = fields.at(kept)?;
            if token_paths.contains(&kept.as_str()) || token_places.iter().any(|t| t.same_place(&found)) {
                return None;
            }
            let value = found.text()?;
            if tokens.iter().flatten().any(|token| *token == value) {
                return None;
            }
            Some((kept.clone(), sanitize(&value, MAX_KEPT_VALUE_CHARS)))
        })
        .collect()
}

/// The answer of a device authorization endpoint (RFC 8628 §3.2). `Debug` shows no device code: it is a
/// [`Secret`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceAuthorization {
    /// The code latchkey presents at the token endpoint while it polls; a secret.
    pub device_code: Secret,
    /// The code the person enters at the verification URI.
    pub user_code: String,
    /// Where the person goes to approve.
    pub verification_uri: String,
    /// The verification URI with the user code in it, when the provider sent one.
    pub verification_uri_complete: Option<String>,
    /// Seconds until the codes expire.
    pub expires_in: u64,
    /// The minimum seconds between polls, when the provider said (RFC 8628 §3.2 lets latchkey assume 5).
    pub interval: Option<u64>,
}

/// The longest user code or verification URI accepted, in characters.
const MAX_DEVICE_TEXT_CHARS: usize = 2000;

/// Reads a device authorization endpoint's answer (RFC 8628 §3.2, errors as RFC 6749 §5.2). Tolerates what
/// token responses get (a form answer, numbers as strings), and `verification_url`, the name some providers
/// use for `verification_uri`.
///
/// # Errors
/// 429 and 5xx: [`OAuthError::Unavailable`]; an `error` field or another non-2xx status:
/// [`OAuthError::Rejected`]; a 2xx answer without `device_code`, `user_code`, `verification_uri` or
/// `expires_in`: [`OAuthError::InvalidResponse`].
pub fn parse_device_authorization(
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<DeviceAuthorization, OAuthError> {
    device_authorization_uncut(status, content_type, body).map_err(cap)
}

/// [`parse_device_authorization`] with the provider's error text not yet cut to length (see
/// [`token_response_uncut`]).
pub(crate) fn device_authorization_uncut(
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<DeviceAuthorization, OAuthError> {
    if status == 429 {
        return Err(OAuthError::Unavailable {
            message: "answered 429 Too Many Requests".to_owned(),
            retry_after: None,
        });
    }
    if status >= 500 {
        return Err(OAuthError::Unavailable { message: format!("answered {status}"), retry_after: None });
    }
    let fields = read_fields(content_type, body, "device_code");
    if let Some(err) = fields.as_ref().and_then(|f| oauth_error(status, f)) {
        return Err(err);
    }
    if !(200..300).contains(&status) {
        return Err(OAuthError::Rejected { status, error: format!("http_{status}"), description: None });
    }
    let Some(fields) = fields else {
        return Err(OAuthError::InvalidResponse {
            message: format!("answered {status} with a body that is neither a JSON object nor a form"),
        });
    };
    let missing = |name: &str| OAuthError::InvalidResponse {
        message: format!("answered {status} without a {name}: this is not an RFC 8628 device authorization answer"),
    };
    let text =
        |path: &str| fields.at(path).and_then(|f| f.string().map(str::to_owned)).filter(|v| !v.trim().is_empty());
    let device_code = text("device_code").ok_or_else(|| missing("device_code"))?;
    let user_code =
        text("user_code").map(|c| sanitize(c.trim(), MAX_DEVICE_TEXT_CHARS)).ok_or_else(|| missing("user_code"))?;
    let verification_uri = text("verification_uri")
        .or_else(|| text("verification_url"))
        .map(|u| sanitize(u.trim(), MAX_DEVICE_TEXT_CHARS))
        .ok_or_else(|| missing("verification_uri"))?;
    let verification_uri_complete =
        text("verification_uri_complete").map(|u| sanitize(u.trim(), MAX_DEVICE_TEXT_CHARS));
    let expires_in = fields.at("expires_in").and_then(|f| f.seconds()).ok_or_else(|| missing("expires_in"))?;
    let interval = fields.at("interval").and_then(|f| f.seconds()).filter(|secs| *secs > 0);
    Ok(DeviceAuthorization {
        device_code: Secret::new(device_code),
        user_code,
        verification_uri,
        verification_uri_complete,
        expires_in,
        interval,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(default_expires_in: Option<u64>) -> OAuthSettings {
        let mut s: OAuthSettings = serde_json::from_value(serde_json::json!({
            "authorization_url": "https://p/a", "token_url": "https://p/t", "client_id": "id"
        }))
        .expect("settings");
        s.default_expires_in = default_expires_in;
        s
    }

    fn parse(status: u16, ct: Option<&str>, body: &str) -> Result<TokenResponse, OAuthError> {
        parse_token_response(status, ct, body.as_bytes(), &settings(Some(600)))
    }

    #[test]
    fn standard_json_answer() {
        let t = parse(
            200,
            Some("application/json"),
            r#"{"access_token":"at","token_type":"bearer","expires_in":3600,"refresh_token":"rt","scope":"a b","x":{"y":1}}"#,
        )
        .expect("parses");
        assert_eq!(t.access_token.expose(), "at");
        assert_eq!(t.token_type, "Bearer");
        assert_eq!(t.expires_in, Some(3600));
        assert_eq!(t.refresh_token.as_ref().map(Secret::expose), Some("rt"));
        assert_eq!(t.scope.as_deref(), Some("a b"));
    }

    #[test]
    fn lifetimes_in_every_shape() {
        let exp =
            |v: &str| parse(200, None, &format!(r#"{{"access_token":"a","expires_in":{v}}}"#)).map(|t| t.expires_in);
        assert_eq!(exp("\" 120 \"").ok(), Some(Some(120)));
        assert_eq!(exp("59.9").ok(), Some(Some(59)));
        assert_eq!(exp("-5").ok(), Some(Some(600)), "negative falls back to the default");
        assert_eq!(exp("\"soon\"").ok(), Some(Some(600)));
        assert_eq!(exp("null").ok(), Some(Some(600)));
        assert_eq!(exp("[1]").ok(), Some(Some(600)));
        let none = parse_token_response(200, None, br#"{"access_token":"a"}"#, &settings(None)).expect("ok");
        assert_eq!(none.expires_in, None);
    }

    #[test]
    fn form_answers_with_or_without_the_content_type() {
        let body = "access_token=a%2Bb&token_type=bearer&expires_in=60&refresh_token=&scope=repo";
        for ct in [Some("application/x-www-form-urlencoded; charset=utf-8"), Some("text/plain"), None] {
            let t = parse(200, ct, body).expect("parses");
            assert_eq!(t.access_token.expose(), "a+b");
            assert_eq!(t.expires_in, Some(60));
            assert!(t.refresh_token.is_none(), "empty refresh_token means none");
            assert_eq!(t.scope.as_deref(), Some("repo"));
        }
        let err = parse(200, Some("text/plain"), "error=bad_verification_code&error_description=The+code+is+wrong")
            .expect_err("error");
        assert_eq!(
            err,
            OAuthError::Rejected {
                status: 200,
                error: "bad_verification_code".into(),
                description: Some("The code is wrong".into())
            }
        );
    }

    #[test]
    fn scope_arrays_are_joined() {
        let t = parse(200, None, r#"{"access_token":"a","scope":["x","y"]}"#).expect("ok");
        assert_eq!(t.scope.as_deref(), Some("x y"));
    }

    #[test]
    fn errors_by_status_and_body() {
        let err =
            parse(400, None, r#"{"error":"invalid_grant","error_description":"Token\u0007 expired"}"#).expect_err("e");
        assert!(err.needs_reauth());
        assert_eq!(err.to_string(), "the provider answered 400 invalid_grant: Token expired");
        assert!(matches!(
            parse(200, None, r#"{"error":"invalid_scope","access_token":"a"}"#),
            Err(OAuthError::Rejected { status: 200, .. })
        ));
        assert!(
            matches!(parse(200, None, r#"{"error":{"code":1},"access_token":"a"}"#), Err(OAuthError::Rejected { ref error, .. }) if error == "unrecognized_error")
        );
        assert!(parse(200, None, r#"{"error":null,"access_token":"a"}"#).is_ok());
        assert!(parse(200, None, r#"{"error":"","access_token":"a"}"#).is_ok());
        assert!(matches!(parse(503, None, r#"{"error":"x"}"#), Err(OAuthError::Unavailable { .. })));
        assert!(matches!(parse(429, None, ""), Err(OAuthError::Unavailable { .. })));
        assert!(matches!(parse(302, None, ""), Err(OAuthError::InvalidResponse { .. })));
        assert_eq!(
            parse(401, Some("text/html"), "<html>no</html>").expect_err("e"),
            OAuthError::Rejected { status: 401, error: "http_401".into(), description: None }
        );
        for bad in [
            "<html>hi</html>",
            "",
            "[]",
            "\"at\"",
            r#"{"access_token":""}"#,
            r#"{"access_token":5}"#,
            r#"{"token":"a"}"#,
        ] {
            assert!(matches!(parse(200, None, bad), Err(OAuthError::InvalidResponse { .. })), "{bad}");
        }
    }

    #[test]
    fn descriptions_are_capped() {
        let long = "x".repeat(1000);
        let err =
            parse(400, None, &format!(r#"{{"error":"invalid_request","error_description":"{long}"}}"#)).expect_err("e");
        let OAuthError::Rejected { description: Some(d), .. } = err else { panic!("{err:?}") };
        assert_eq!(d.chars().count(), crate::error::MAX_DESCRIPTION_CHARS);
    }

    #[test]
    fn debug_hides_tokens() {
        let t = parse(200, None, r#"{"access_token":"at-SECRET","refresh_token":"rt-SECRET"}"#).expect("ok");
        let shown = format!("{t:?}");
        assert!(!shown.contains("SECRET"), "{shown}");
    }

    fn mapped(map: serde_json::Value, keep: &[&str]) -> OAuthSettings {
        let mut s = settings(None);
        s.token_response_map = serde_json::from_value(map).expect("map");
        s.keep_response_fields = keep.iter().map(|k| (*k).to_owned()).collect();
        s
    }

    #[test]
    fn nested_and_renamed_fields_follow_the_map() {
        let slack = mapped(
            serde_json::json!({"access_token": "authed_user.access_token", "refresh_token": "authed_user.refresh_token",
                "expires_in": "authed_user.expires_in", "token_type": "authed_user.token_type", "scope": "authed_user.scope"}),
            &["team.id", "authed_user.access_token", "authed_user.id"],
        );
        let body = r#"{"ok":true,"access_token":"xoxb-bot","token_type":"bot","team":{"id":"T1","name":"Acme"},
            "authed_user":{"id":"U1","access_token":"xoxp-user","refresh_token":"xoxe-1","expires_in":"43200",
            "token_type":"user","scope":"chat:write"}}"#;
        let t = parse_token_response(200, Some("application/json"), body.as_bytes(), &slack).expect("parses");
        assert_eq!(t.access_token.expose(), "xoxp-user");
        assert_eq!(t.refresh_token.as_ref().map(Secret::expose), Some("xoxe-1"));
        assert_eq!(t.expires_in, Some(43200));
        assert_eq!(t.token_type, "user");
        assert_eq!(t.scope.as_deref(), Some("chat:write"));
        assert_eq!(
            t.extra,
            BTreeMap::from([("authed_user.id".to_owned(), "U1".to_owned()), ("team.id".to_owned(), "T1".to_owned())]),
            "the token's own path is never kept"
        );

        let data = mapped(serde_json::json!({"access_token": "data.token", "refresh_token": "data.items.1"}), &[]);
        let t = parse_token_response(200, None, br#"{"data":{"token":"d-1","items":["x","r-1"]}}"#, &data).expect("ok");
        assert_eq!((t.access_token.expose(), t.refresh_token.as_ref().map(Secret::expose)), ("d-1", Some("r-1")));
        let err = parse_token_response(200, None, br#"{"access_token":"top"}"#, &data).expect_err("not at data.token");
        assert_eq!(
            err,
            OAuthError::InvalidResponse { message: "answered 200 without an access_token at data.token".into() }
        );

        let camel = mapped(serde_json::json!({"access_token": "accessToken", "expires_in": "expiresIn"}), &[]);
        let t = parse_token_response(
            200,
            Some("application/x-www-form-urlencoded"),
            b"accessToken=c-1&expiresIn=60",
            &camel,
        )
        .expect("form");
        assert_eq!((t.access_token.expose(), t.expires_in), ("c-1", Some(60)));
        let t = parse_token_response(200, Some("text/plain"), b"accessToken=c-2", &camel).expect("sniffed form");
        assert_eq!(t.access_token.expose(), "c-2");
    }

    #[test]
    fn absolute_expiry_in_every_shape() {
        let at = |value: serde_json::Value, default: Option<u64>| {
            let mut s = mapped(serde_json::json!({"expires_at": "expiry.at"}), &[]);
            s.default_expires_in = default;
            let body = serde_json::json!({"access_token": "a", "expiry": {"at": value}}).to_string();
            parse_token_response(200, None, body.as_bytes(), &s).map(|t| (t.expires_in, t.expires_at))
        };
        assert_eq!(at(serde_json::json!(1_800_000_000), Some(60)).ok(), Some((None, Some(Timestamp(1_800_000_000)))));
        assert_eq!(at(serde_json::json!("1800000000"), None).ok(), Some((None, Some(Timestamp(1_800_000_000)))));
        assert_eq!(at(serde_json::json!(1_800_000_000.9), None).ok(), Some((None, Some(Timestamp(1_800_000_000)))));
        assert_eq!(
            at(serde_json::json!("2027-01-15T09:00:00+01:00"), None).ok(),
            Some((None, Some(Timestamp(1_800_000_000))))
        );
        assert_eq!(at(serde_json::json!("tomorrow"), Some(60)).ok(), Some((Some(60), None)), "unreadable: default");
        assert_eq!(at(serde_json::json!(1e300), None).ok(), Some((None, None)));

        let mut s = mapped(serde_json::json!({"expires_at": "expires_at"}), &[]);
        s.default_expires_in = Some(60);
        let both = br#"{"access_token":"a","expires_in":120,"expires_at":1800000000}"#;
        let t = parse_token_response(200, None, both, &s).expect("ok");
        assert_eq!((t.expires_in, t.expires_at), (Some(120), None), "expires_in wins");
        let unmapped = parse_token_response(200, None, both, &settings(None)).expect("ok");
        assert_eq!(unmapped.expires_at, None, "expires_at is read only when mapped");
    }

    #[test]
    fn ok_false_is_a_rejection_with_or_without_an_error_code() {
        let err = parse(200, None, r#"{"ok":false,"error":"invalid_code"}"#).expect_err("e");
        assert_eq!(err, OAuthError::Rejected { status: 200, error: "invalid_code".into(), description: None });
        let err = parse(200, None, r#"{"ok":false,"access_token":"a"}"#).expect_err("e");
        assert!(matches!(err, OAuthError::Rejected { status: 200, ref error, .. } if error == "unrecognized_error"));
        assert!(parse(200, None, r#"{"ok":true,"access_token":"a"}"#).is_ok());
        assert!(parse(200, None, r#"{"ok":"false","access_token":"a"}"#).is_ok(), "only the boolean counts");
    }

    #[test]
    fn kept_values_are_scalars_sanitised_and_capped() {
        let s = mapped(serde_json::json!({}), &["instance_url", "nested", "n", "b", "long", "missing", "access_token"]);
        let long = "é".repeat(2000);
        let body = serde_json::json!({"access_token": "a", "instance_url": "https://acme.my.example.com\n",
            "nested": {"x": 1}, "n": 7, "b": true, "long": long})
        .to_string();
        let t = parse_token_response(200, None, body.as_bytes(), &s).expect("ok");
        assert_eq!(t.extra.get("instance_url").map(String::as_str), Some("https://acme.my.example.com"));
        assert_eq!(t.extra.get("n").map(String::as_str), Some("7"));
        assert_eq!(t.extra.get("b").map(String::as_str), Some("true"));
        assert_eq!(t.extra.get("long").map(|v| v.chars().count()), Some(MAX_KEPT_VALUE_CHARS));
        assert!(!t.extra.contains_key("nested") && !t.extra.contains_key("missing"));
        assert!(!t.extra.contains_key("access_token"));
    }

    #[test]
    fn a_kept_path_spelled_differently_never_reaches_a_token() {
        let s = mapped(
            serde_json::json!({"access_token": "data.0", "refresh_token": "data.1"}),
            &["data.00", "data.+0", "data.01", "data.0", "data.2", "copy"],
        );
        let body = r#"{"data":["at-1","rt-1","plain"],"copy":"at-1"}"#;
        let t = parse_token_response(200, None, body.as_bytes(), &s).expect("ok");
        assert_eq!(t.access_token.expose(), "at-1");
        assert_eq!(t.extra, BTreeMap::from([("data.2".to_owned(), "plain".to_owned())]), "{:?}", t.extra);

        // In an object, `0` and `00` are different keys: the other one is kept.
        let s = mapped(serde_json::json!({"access_token": "data.0"}), &["data.00"]);
        let t = parse_token_response(200, None, br#"{"data":{"0":"at-2","00":"team-7"}}"#, &s).expect("ok");
        assert_eq!(t.extra, BTreeMap::from([("data.00".to_owned(), "team-7".to_owned())]));
    }
}
