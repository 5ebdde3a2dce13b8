//! Browser sessions: a random 256-bit id in an `HttpOnly; SameSite=Lax` cookie, stored only as its SHA-256
//! digest, valid for 12 hours. On https the cookie is `Secure` and carries the `__Host-` prefix, which pins it
//! to this host and path `/`.

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use latchkey_core::Result;
use latchkey_core::model::{Session, User};
use latchkey_crypto::tokens::{digest, random_token};

use super::reply;
use crate::state::{AppState, SharedState};

/// The cookie's name on plain http.
pub const COOKIE_NAME: &str = "latchkey_session";
/// The cookie's name on https: the `__Host-` prefix requires `Secure`, `Path=/` and no `Domain`.
pub const HTTPS_COOKIE_NAME: &str = "__Host-latchkey_session";
/// How long a session lasts, in seconds (12 hours).
pub const SESSION_TTL_SECS: i64 = 12 * 3600;

/// The session cookie's name for a server reached over https or not.
#[must_use]
pub fn cookie_name(https: bool) -> &'static str {
    if https { HTTPS_COOKIE_NAME } else { COOKIE_NAME }
}

/// The `Set-Cookie` value that stores the session id `value` for `max_age` seconds.
#[must_use]
pub fn set_cookie(https: bool, value: &str, max_age: i64) -> String {
    let secure = if https { "; Secure" } else { "" };
    let name = cookie_name(https);
    format!("{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}")
}

/// The `Set-Cookie` value that removes the session cookie.
#[must_use]
pub fn clear_cookie(https: bool) -> String {
    set_cookie(https, "", 0)
}

/// The first value of cookie `name` among the request's `Cookie` headers.
#[must_use]
pub fn read_cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// Starts a session for `user`: stores its digest and returns it with the `Set-Cookie` value that hands the id
/// to the browser.
///
/// # Errors
/// Storage failures.
pub async fn start(state: &AppState, user: &User) -> Result<(Session, String)> {
    let id = random_token(32);
    let now = state.clock.now();
    let session = Session {
        id_hash: digest(&id),
        user_id: user.id.clone(),
        csrf_token: random_token(32),
        created_at: now,
        expires_at: now.plus_secs(SESSION_TTL_SECS),
    };
    state.store.insert_session(&session).await?;
    if let Err(err) = state.store.delete_expired_sessions(now).await {
        tracing::debug!(error = %err, "could not delete expired sessions");
    }
    tracing::info!(user = %user.username, "logged in");
    Ok((session, set_cookie(state.config.is_https(), &id, SESSION_TTL_SECS)))
}

/// Starts a session for `user` and ends the one the request's cookie names, if any, so that logging in again
/// leaves no orphaned session behind.
///
/// # Errors
/// Storage failures.
pub async fn replace(state: &AppState, headers: &HeaderMap, user: &User) -> Result<(Session, String)> {
    if let Some(old) = read_cookie(headers, cookie_name(state.config.is_https())) {
        state.store.delete_session(&digest(old)).await?;
    }
    start(state, user).await
}

/// The unexpired session the request's cookie names, with its user.
///
/// # Errors
/// Storage failures.
pub async fn current(state: &AppState, headers: &HeaderMap) -> Result<Option<(Session, User)>> {
    let Some(id) = read_cookie(headers, cookie_name(state.config.is_https())) else { return Ok(None) };
    state.store.session(&digest(id), state.clock.now()).await
}

/// A logged-in person: the session and its user. Without one, pages redirect to `/login` and JSON requests
/// get a 401 error body.
pub struct WebUser {
    pub session: Session,
    pub user: User,
}

impl FromRequestParts<SharedState> for WebUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> Result<Self, Self::Rejection> {
        let json = reply::wants_json(&parts.headers);
        match current(state, &parts.headers).await {
            Ok(Some((session, user))) => Ok(Self { session, user }),
            Ok(None) => {
                let https = state.config.is_https();
                let stale = read_cookie(&parts.headers, cookie_name(https)).is_some();
                let mut response = if json {
                    reply::json_error(
                        axum::http::StatusCode::UNAUTHORIZED,
                        "your session has ended: reload the page and log in again",
                        None,
                    )
                } else {
                    Redirect::to("/login").into_response()
                };
                if stale && let Ok(value) = clear_cookie(https).parse() {
                    response.headers_mut().append(SET_COOKIE, value);
                }
                Err(response)
            }
            Err(err) => Err(reply::failure(&err, json, None)),
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn cookie_attributes_follow_the_scheme() {
        let plain = set_cookie(false, "abc", SESSION_TTL_SECS);
        assert_eq!(plain, "latchkey_session=abc; Path=/; Max-Age=43200; HttpOnly; SameSite=Lax");
        let https = set_cookie(true, "abc", SESSION_TTL_SECS);
        assert_eq!(https, "__Host-latchkey_session=abc; Path=/; Max-Age=43200; HttpOnly; SameSite=Lax; Secure");
        assert_eq!(clear_cookie(false), "latchkey_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax");
    }

    #[test]
    fn reads_the_named_cookie_among_others() {
        let mut headers = HeaderMap::new();
        headers.append(COOKIE, HeaderValue::from_static("theme=dark; latchkey_session_old=x"));
        headers.append(COOKIE, HeaderValue::from_static("latchkey_session=tok-123 ; other=1"));
        assert_eq!(read_cookie(&headers, COOKIE_NAME), Some("tok-123"));
        assert_eq!(read_cookie(&headers, HTTPS_COOKIE_NAME), None);
        assert_eq!(read_cookie(&headers, "theme"), Some("dark"));
    }

    #[test]
    fn an_empty_cookie_is_no_session() {
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, HeaderValue::from_static("latchkey_session="));
        assert_eq!(read_cookie(&headers, COOKIE_NAME), None);
        assert_eq!(read_cookie(&HeaderMap::new(), COOKIE_NAME), None);
    }
}
