//! Cross-site request forgery defences of the web UI's POSTs, in two layers:
//!
//! 1. [`SameOrigin`]: when the browser sends `Origin` (every current browser does on POST), it must be this
//!    server's public origin; without `Origin`, a `Sec-Fetch-Site: cross-site` is refused too.
//! 2. [`refusal`]: forms of a logged-in session carry a hidden `csrf` field equal to the session's random token,
//!    compared in constant time. Log-in and set-up have no session yet and rely on layer 1 and `SameSite`.

use axum::extract::FromRequestParts;
use axum::http::header::ORIGIN;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use latchkey_core::model::Session;
use latchkey_crypto::tokens::constant_time_eq;

use super::reply;
use crate::state::SharedState;

/// The name of the hidden form field that carries the token.
pub const FIELD: &str = "csrf";

/// Whether a request with these headers may change state on a server whose public origin is `public_origin`.
#[must_use]
pub fn origin_allowed(headers: &HeaderMap, public_origin: &str) -> bool {
    match headers.get(ORIGIN) {
        Some(origin) => origin.to_str().is_ok_and(|o| o == public_origin),
        None => headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) != Some("cross-site"),
    }
}

/// Whether `presented` is the session's anti-forgery token.
#[must_use]
pub fn token_matches(session: &Session, presented: &str) -> bool {
    !presented.is_empty() && constant_time_eq(session.csrf_token.as_bytes(), presented.as_bytes())
}

/// The refusal of a form whose `csrf` field is not the session's token: 403 with a page (or JSON) that says to
/// reload. `None` when the token matches.
#[must_use]
pub fn refusal(session: &Session, presented: &str, json: bool) -> Option<Response> {
    if token_matches(session, presented) {
        return None;
    }
    tracing::warn!("web form refused: missing or wrong anti-forgery token");
    let text = "This form is out of date or did not come from latchkey's own page. Reload the page and try again.";
    Some(if json {
        reply::json_error(StatusCode::FORBIDDEN, text, None)
    } else {
        reply::message(StatusCode::FORBIDDEN, None, "Form refused", text, ("/connections", "Back to your connections"))
    })
}

/// Passes requests whose `Origin` is this server's public origin (or that carry none); refuses the rest with 403.
pub struct SameOrigin;

impl FromRequestParts<SharedState> for SameOrigin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> Result<Self, Self::Rejection> {
        let public = state.config.public_origin();
        if origin_allowed(&parts.headers, &public) {
            return Ok(Self);
        }
        // The route pattern, never the path: set-up links carry their one-time token in the path.
        let route = parts.extensions.get::<axum::extract::MatchedPath>().map_or("unmatched", |m| m.as_str());
        tracing::warn!(route = %route, "web form refused: it came from another origin");
        let text = format!(
            "This form was sent from another site, or from an address other than {public}, so latchkey refused \
             it. Open latchkey at {public} and try again (or start the server with --public-url set to the \
             address you use)."
        );
        Err(if reply::wants_json(&parts.headers) {
            reply::json_error(StatusCode::FORBIDDEN, &text, None)
        } else {
            reply::message(StatusCode::FORBIDDEN, None, "Form refused", &text, ("/", "Go to latchkey"))
        })
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;
    use latchkey_core::Timestamp;
    use latchkey_core::model::{Digest, UserId};

    use super::*;

    const PUBLIC: &str = "http://127.0.0.1:8080";

    fn with(name: &'static str, value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn only_the_public_origin_passes() {
        assert!(origin_allowed(&with("origin", PUBLIC), PUBLIC));
        assert!(!origin_allowed(&with("origin", "https://evil.example"), PUBLIC));
        assert!(!origin_allowed(&with("origin", "http://localhost:8080"), PUBLIC));
        assert!(!origin_allowed(&with("origin", "null"), PUBLIC));
        assert!(!origin_allowed(&with("origin", "http://127.0.0.1:8080/"), PUBLIC));
    }

    #[test]
    fn a_missing_origin_passes_unless_marked_cross_site() {
        assert!(origin_allowed(&HeaderMap::new(), PUBLIC));
        assert!(origin_allowed(&with("sec-fetch-site", "same-origin"), PUBLIC));
        assert!(!origin_allowed(&with("sec-fetch-site", "cross-site"), PUBLIC));
    }

    #[test]
    fn the_token_must_match_exactly() {
        let session = Session {
            id_hash: Digest([0; 32]),
            user_id: UserId::random(),
            csrf_token: "token-abc".into(),
            created_at: Timestamp(0),
            expires_at: Timestamp(10),
        };
        assert!(token_matches(&session, "token-abc"));
        assert!(!token_matches(&session, "token-abd"));
        assert!(!token_matches(&session, "token-ab"));
        assert!(!token_matches(&session, ""));
        assert!(refusal(&session, "nope", false).is_some_and(|r| r.status() == StatusCode::FORBIDDEN));
        assert!(refusal(&session, "token-abc", true).is_none());
    }
}
