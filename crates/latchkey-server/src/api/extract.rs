//! Request extractors of the API: the caller's API key, and JSON bodies whose rejections use the error envelope.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use latchkey_core::model::{ApiKey, User};
use latchkey_core::{Error, Handle, Timestamp};
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::state::SharedState;

/// Reads the API key from `Authorization: Bearer <key>` (and nowhere else).
///
/// # Errors
/// `Unauthorized` when the header is missing or not a bearer credential.
pub fn bearer_key(parts: &Parts) -> Result<&str, Error> {
    if key_in_query(parts.uri.query()) {
        return Err(Error::Unauthorized(
            "API keys are accepted only in the Authorization header, never in the URL (where logs and proxies keep \
             them): send 'Authorization: Bearer <key>' and revoke the key that was sent in the URL"
                .to_owned(),
        ));
    }
    let header = parts
        .headers
        .get(AUTHORIZATION)
        .ok_or_else(|| Error::Unauthorized("no API key: send it as 'Authorization: Bearer <key>'".to_owned()))?;
    let value =
        header.to_str().map_err(|_| Error::Unauthorized("the Authorization header is not valid text".to_owned()))?;
    let (scheme, key) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") || key.trim().is_empty() {
        return Err(Error::Unauthorized("the Authorization header must be 'Bearer <API key>'".to_owned()));
    }
    Ok(key.trim())
}

/// Whether a query string carries something that looks like a credential.
fn key_in_query(query: Option<&str>) -> bool {
    const NAMES: [&str; 5] = ["api_key", "apikey", "key", "access_token", "token"];
    query.is_some_and(|q| {
        q.split('&')
            .filter_map(|pair| pair.split('=').next())
            .any(|name| NAMES.contains(&name.to_ascii_lowercase().as_str()))
    })
}

/// Refuses a missing, unknown, revoked or (at `now`) expired key.
///
/// # Errors
/// `Unauthorized`.
pub fn check_key(key: Option<&ApiKey>, now: Timestamp) -> Result<&ApiKey, Error> {
    match key {
        Some(key) if key.revoked_at.is_some() => {
            Err(Error::Unauthorized("this API key was revoked: create a new one".to_owned()))
        }
        Some(ApiKey { expires_at: Some(at), .. }) if now >= *at => {
            Err(Error::Unauthorized(format!("this API key expired at {}: create a new one", at.to_rfc3339())))
        }
        Some(key) => Ok(key),
        None => Err(Error::Unauthorized("the API key is not valid".to_owned())),
    }
}

/// The authenticated caller of an API request.
pub struct ApiCaller {
    pub key: ApiKey,
    pub user: User,
}

impl ApiCaller {
    /// Who this caller is in the audit log.
    #[must_use]
    pub fn actor(&self) -> latchkey_core::audit::Actor {
        crate::audit::api_key_actor(&self.key)
    }

    /// Refuses handles outside the key's limits.
    ///
    /// # Errors
    /// `Forbidden`.
    pub fn require(&self, handle: &Handle) -> Result<(), Error> {
        if self.key.allows(handle) {
            Ok(())
        } else {
            Err(Error::Forbidden(format!(
                "the API key '{}' may not use the handle '{handle}'; it is limited to other handles",
                self.key.name
            )))
        }
    }
}

impl ApiCaller {
    /// Refuses keys limited to some handles: such a key reads its connections and their tokens, and nothing it
    /// does can change where a connection's credentials go (docs/decisions.md, "What a key limited to handles
    /// may do"). `what` completes "so it cannot ...".
    ///
    /// # Errors
    /// `Forbidden`.
    pub fn require_unlimited(&self, what: &str) -> Result<(), Error> {
        if self.key.handles.is_some() {
            return Err(Error::Forbidden(format!(
                "the API key '{}' is limited to some handles, so it cannot {what}: use a key without handle limits, \
                 the web UI or the latchkey command line",
                self.key.name
            )));
        }
        Ok(())
    }
}

impl FromRequestParts<SharedState> for ApiCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> Result<Self, Self::Rejection> {
        let presented = bearer_key(parts)?;
        let hash = latchkey_crypto::tokens::digest(presented);
        let stored = state.store.api_key_by_hash(&hash).await?;
        let key = check_key(stored.as_ref(), state.clock.now())?.clone();
        state.api_limits.check(&key.id, &key.name)?;
        let user = state
            .store
            .user_by_id(&key.user_id)
            .await?
            .ok_or_else(|| Error::Unauthorized("the API key's user no longer exists".to_owned()))?;
        crate::api::touch_key(state, &key);
        Ok(Self { key, user })
    }
}

/// A JSON body; a malformed one is a 400 in the error envelope.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(ApiError(Error::bad_request(describe_rejection(&rejection)))),
        }
    }
}

fn describe_rejection(rejection: &JsonRejection) -> String {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => {
            "the request body must be JSON, sent with 'Content-Type: application/json'".to_owned()
        }
        JsonRejection::JsonDataError(e) => format!("the JSON body does not fit: {}", e.body_text()),
        JsonRejection::JsonSyntaxError(e) => format!("the body is not valid JSON: {}", e.body_text()),
        other => format!("the request body could not be read: {}", other.body_text()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_the_query_are_spotted() {
        assert!(key_in_query(Some("api_key=lk_x")));
        assert!(key_in_query(Some("force_refresh=true&access_token=x")));
        assert!(key_in_query(Some("Key=x")));
        assert!(!key_in_query(Some("force_refresh=true")));
        assert!(!key_in_query(None));
    }
}
