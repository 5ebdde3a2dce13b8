//! Reading what a token endpoint answers: the successful response of RFC 6749 §5.1 and the error response of
//! §5.2, with the tolerance real providers need (form-encoded answers, `expires_in` as a string, `error` inside
//! an HTTP 200, unknown fields).

use serde_json::{Map, Value};

use latchkey_core::Secret;
use latchkey_core::settings::OAuthSettings;

use crate::OAuthError;
use crate::error::{MAX_DESCRIPTION_CHARS, MAX_ERROR_CODE_CHARS, sanitize};

/// A successful token response (RFC 6749 §5.1). `Debug` shows no token: both tokens are [`Secret`]s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenResponse {
    /// The access token.
    pub access_token: Secret,
    /// The token type (RFC 6749 §7.1); `Bearer` when the provider sent none, and any spelling of "bearer" is
    /// written `Bearer`.
    pub token_type: String,
    /// The lifetime in seconds: the provider's `expires_in`, else the connection's `default_expires_in`.
    pub expires_in: Option<u64>,
    /// The refresh token (RFC 6749 §6), when one was sent and is not empty.
    pub refresh_token: Option<Secret>,
    /// The granted scope (RFC 6749 §3.3), when the provider said; a JSON array of scopes is joined with spaces.
    pub scope: Option<String>,
}

/// The fields of an answer, whichever way it was encoded.
enum Fields {
    Json(Map<String, Value>),
    Form(Vec<(String, String)>),
}

impl Fields {
    /// A field as text: strings as they are, numbers and booleans written out; null, objects, arrays → `None`.
    fn text(&self, key: &str) -> Option<String> {
        match self {
            Self::Json(map) => match map.get(key)? {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                Value::Bool(b) => Some(b.to_string()),
                _ => None,
            },
            Self::Form(pairs) => pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()),
        }
    }

    /// Whether the field is present with a value other than null or the empty string.
    fn has(&self, key: &str) -> bool {
        match self {
            Self::Json(map) => match map.get(key) {
                None | Some(Value::Null) => false,
                Some(Value::String(s)) => !s.is_empty(),
                Some(_) => true,
            },
            Self::Form(pairs) => pairs.iter().any(|(k, v)| k == key && !v.is_empty()),
        }
    }

    fn scope(&self) -> Option<String> {
        match self {
            Self::Json(map) => match map.get("scope") {
                Some(Value::Array(items)) => {
                    let joined = items.iter().filter_map(Value::as_str).collect::<Vec<_>>();
                    Some(joined.join(" "))
                }
                _ => self.text("scope"),
            },
            Self::Form(_) => self.text("scope"),
        }
        .filter(|s| !s.is_empty())
    }

    fn expires_in(&self) -> Option<u64> {
        let parsed = match self {
            Self::Json(map) => match map.get("expires_in") {
                None | Some(Value::Null) => return None,
                Some(Value::Number(n)) => n.as_u64().or_else(|| {
                    n.as_f64().filter(|f| f.is_finite() && *f >= 0.0 && *f < 1.0e15).map(|f| f.trunc() as u64)
                }),
                Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
                Some(_) => None,
            },
            Self::Form(_) => self.text("expires_in")?.trim().parse::<u64>().ok(),
        };
        if parsed.is_none() {
            tracing::debug!("ignoring an expires_in that is not a non-negative whole number of seconds");
        }
        parsed
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
/// JSON but reads as a form with `access_token` or `error`.
fn read_fields(content_type: Option<&str>, body: &[u8]) -> Option<Fields> {
    if is_form_content_type(content_type) {
        return Some(Fields::Form(parse_form(body)));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Some(Fields::Json(map)),
        Ok(_) => None,
        Err(_) => {
            let pairs = parse_form(body);
            pairs.iter().any(|(k, _)| k == "access_token" || k == "error").then_some(Fields::Form(pairs))
        }
    }
}

/// The OAuth error response in `fields` (RFC 6749 §5.2), if there is one.
fn oauth_error(status: u16, fields: &Fields) -> Option<OAuthError> {
    if !fields.has("error") {
        return None;
    }
    let error = fields
        .text("error")
        .map(|e| sanitize(&e, MAX_ERROR_CODE_CHARS))
        .filter(|e| !e.is_empty())
        // An `error` that is an object or an array: some providers nest their own format there.
        .unwrap_or_else(|| "unrecognized_error".to_owned());
    let description =
        fields.text("error_description").map(|d| sanitize(&d, MAX_DESCRIPTION_CHARS)).filter(|d| !d.trim().is_empty());
    Some(OAuthError::Rejected { status, error, description })
}

/// Reads a token endpoint's answer into a [`TokenResponse`] or says what it means (RFC 6749 §5.1, §5.2).
///
/// - 429 and 5xx: [`OAuthError::Unavailable`] (the caller fills `retry_after` from the `Retry-After` header,
///   which is not passed here);
/// - any status with an `error` field, 200 included: [`OAuthError::Rejected`] with that code and a sanitised
///   `error_description`;
/// - 3xx: [`OAuthError::InvalidResponse`], since redirects are never followed;
/// - another non-2xx status without an `error` field: [`OAuthError::Rejected`] with the error `http_<status>`
///   (for example `http_401`), so that callers see one shape for every refusal;
/// - 2xx without a non-empty string `access_token`, or with a body that is neither a JSON object nor a form:
///   [`OAuthError::InvalidResponse`].
///
/// `expires_in` may be a number or a numeric string; anything else counts as absent, and an absent lifetime
/// falls back to `settings.default_expires_in`. Unknown fields are ignored.
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
    if status == 429 {
        return Err(OAuthError::Unavailable {
            message: "answered 429 Too Many Requests".to_owned(),
            retry_after: None,
        });
    }
    if status >= 500 {
        return Err(OAuthError::Unavailable { message: format!("answered {status}"), retry_after: None });
    }
    let fields = read_fields(content_type, body);
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
    let access_token = match &fields {
        Fields::Json(map) => map.get("access_token").and_then(Value::as_str).map(str::to_owned),
        Fields::Form(_) => fields.text("access_token"),
    }
    .filter(|t| !t.is_empty())
    .ok_or_else(|| OAuthError::InvalidResponse { message: format!("answered {status} without an access_token") })?;
    let token_type = match fields.text("token_type").map(|t| sanitize(t.trim(), 100)) {
        None => "Bearer".to_owned(),
        Some(t) if t.is_empty() || t.eq_ignore_ascii_case("bearer") => "Bearer".to_owned(),
        Some(t) => t,
    };
    let refresh_token = match &fields {
        Fields::Json(map) => map.get("refresh_token").and_then(Value::as_str).map(str::to_owned),
        Fields::Form(_) => fields.text("refresh_token"),
    }
    .filter(|t| !t.is_empty())
    .map(Secret::new);
    Ok(TokenResponse {
        access_token: Secret::new(access_token),
        token_type,
        expires_in: fields.expires_in().or(settings.default_expires_in),
        refresh_token,
        scope: fields.scope(),
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
        assert_eq!(d.chars().count(), MAX_DESCRIPTION_CHARS);
    }

    #[test]
    fn debug_hides_tokens() {
        let t = parse(200, None, r#"{"access_token":"at-SECRET","refresh_token":"rt-SECRET"}"#).expect("ok");
        let shown = format!("{t:?}");
        assert!(!shown.contains("SECRET"), "{shown}");
    }
}
