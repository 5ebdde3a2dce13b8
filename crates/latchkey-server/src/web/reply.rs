//! How web handlers answer: rendered pages (never cached), JSON for the script path (`Accept: application/json`),
//! errors in words, and the step to an authorization link.

use askama::Template;
use axum::Json;
use axum::http::header::{ACCEPT, CACHE_CONTROL};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use latchkey_core::Error;
use serde::Serialize;

use super::views::{MessagePage, Nav};

/// What a person sees instead of a 5xx's cause; the cause goes to the log.
pub const GENERIC_FAILURE: &str = "latchkey failed on its side; the server log has the details. Try again later.";

/// Whether the request comes from `app.js` and wants JSON instead of a page or a redirect.
#[must_use]
pub fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|media| media.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json")))
}

/// A rendered page with `status`; pages carry anti-forgery tokens and personal data, so they are never cached.
pub fn page(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(body) => (status, [(CACHE_CONTROL, "no-store")], Html(body)).into_response(),
        Err(err) => {
            tracing::error!(error = %err, "a web page failed to render");
            (StatusCode::INTERNAL_SERVER_ERROR, [(CACHE_CONTROL, "no-store")], GENERIC_FAILURE).into_response()
        }
    }
}

/// A page that only says something, with a link onwards.
pub fn message(status: StatusCode, nav: Option<Nav>, title: &str, text: &str, link: (&str, &str)) -> Response {
    let page_body = MessagePage {
        nav,
        title: title.to_owned(),
        message: text.to_owned(),
        link_href: link.0.to_owned(),
        link_text: link.1.to_owned(),
    };
    page(status, &page_body)
}

/// The body of a JSON error for `app.js`: the sentence and the form field at fault.
#[derive(Debug, Serialize)]
pub struct JsonError<'a> {
    pub error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<&'a str>,
}

/// `{"error": "...", "field": "..."}` with `status`.
pub fn json_error(status: StatusCode, error: &str, field: Option<&str>) -> Response {
    (status, [(CACHE_CONTROL, "no-store")], Json(JsonError { error, field })).into_response()
}

/// The status and the sentence a person sees for `err`. Server-side failures are logged and shown as a generic
/// sentence; a provider's failure (502) is the person's to act on and is shown as it is.
#[must_use]
pub fn describe(err: &Error) -> (StatusCode, String) {
    let status = StatusCode::from_u16(err.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status.is_server_error() && status != StatusCode::BAD_GATEWAY {
        tracing::error!(status = status.as_u16(), error = %err, "web request failed");
        (status, GENERIC_FAILURE.to_owned())
    } else {
        tracing::debug!(status = status.as_u16(), error = %err, "web request refused");
        (status, sentence(&err.to_string()))
    }
}

/// `text` with its first letter capitalised, as a sentence on a page starts.
#[must_use]
pub fn sentence(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The field an error names, if any.
#[must_use]
pub fn error_field(err: &Error) -> Option<&str> {
    match err {
        Error::Invalid { field, .. } => field.as_deref(),
        _ => None,
    }
}

/// `err` as JSON (for `app.js`) or as a page saying what went wrong.
pub fn failure(err: &Error, json: bool, nav: Option<Nav>) -> Response {
    let (status, text) = describe(err);
    if json {
        json_error(status, &text, error_field(err))
    } else {
        let title = if status.is_server_error() && status != StatusCode::BAD_GATEWAY {
            "Something went wrong"
        } else {
            "That did not work"
        };
        message(status, nav, title, &text, ("/connections", "Back to your connections"))
    }
}

#[derive(Serialize)]
struct Authorization<'a> {
    authorization_link: &'a str,
}

/// The next step after a connection was saved or asked to reconnect: `{"authorization_link": ...}` with
/// `status` for `app.js` (which opens it in the popup), or a 303 to the link for a plain form post.
pub fn authorize(json: bool, status: StatusCode, link: &str) -> Response {
    if json {
        (status, [(CACHE_CONTROL, "no-store")], Json(Authorization { authorization_link: link })).into_response()
    } else {
        Redirect::to(link).into_response()
    }
}

#[derive(Serialize)]
struct Next<'a> {
    next: &'a str,
}

/// The next page after a save that needs no popup: `{"next": ...}` with `status` for `app.js` (which goes
/// there), or a 303 there for a plain form post.
pub fn next(json: bool, status: StatusCode, path: &str) -> Response {
    if json {
        (status, [(CACHE_CONTROL, "no-store")], Json(Next { next: path })).into_response()
    } else {
        Redirect::to(path).into_response()
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn json_is_wanted_only_when_accepted() {
        let mut headers = HeaderMap::new();
        assert!(!wants_json(&headers));
        headers.insert(ACCEPT, HeaderValue::from_static("text/html,application/xhtml+xml,*/*;q=0.8"));
        assert!(!wants_json(&headers));
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        assert!(wants_json(&headers));
        headers.insert(ACCEPT, HeaderValue::from_static("text/plain, Application/JSON; q=0.9"));
        assert!(wants_json(&headers));
    }

    #[test]
    fn server_failures_never_show_their_cause() {
        let (status, text) = describe(&Error::Storage("disk I/O error at /var/db".into()));
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(text, GENERIC_FAILURE);
        let (status, text) =
            describe(&Error::Provider { message: "the provider answered 503".into(), retryable: true });
        assert_eq!(status, StatusCode::BAD_GATEWAY);
        assert_eq!(text, "The provider answered 503");
        let (status, _) = describe(&Error::invalid("handle", "bad"));
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn messages_start_as_sentences() {
        assert_eq!(sentence("you have no connection"), "You have no connection");
        assert_eq!(sentence("Already"), "Already");
        assert_eq!(sentence("épée"), "Épée");
        assert_eq!(sentence(""), "");
    }

    #[test]
    fn errors_name_their_field() {
        assert_eq!(error_field(&Error::invalid("token_url", "x")), Some("token_url"));
        assert_eq!(error_field(&Error::bad_request("x")), None);
        assert_eq!(error_field(&Error::NotFound("x".into())), None);
    }
}
