//! `GET /api/v1/connections/{handle}/token`: the hot path. One indexed read finds the key and the connection
//! together; a fresh token then costs one AEAD open.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::header::{CACHE_CONTROL, PRAGMA};
use axum::http::request::Parts;
use axum::response::IntoResponse;
use latchkey_core::model::{ApiKey, Connection};
use latchkey_core::{Error, Handle, Timestamp};
use serde::Deserialize;

use super::error::{ApiResult, ErrorBody};
use super::extract::{bearer_key, check_key};
use super::views::TokenBody;
use crate::state::SharedState;
use crate::tokens::FreshToken;

/// Query of the token endpoint.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct TokenQuery {
    /// Refresh first even when the token is not due.
    #[serde(default)]
    pub force_refresh: bool,
}

/// A valid access token for the handle, refreshed first when it expires within the refresh window.
#[utoipa::path(get, path = "/api/v1/connections/{handle}/token", tag = "tokens", security(("api_key" = [])),
    params(("handle" = String, Path), TokenQuery),
    responses(
        (status = 200, body = TokenBody, description = "A valid access token; the response carries Cache-Control: no-store"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "not authorized yet, needs re-authorization, or expired without a refresh token"),
        (status = 502, body = ErrorBody, description = "the provider failed"),
        (status = 503, body = ErrorBody, description = "the audit log cannot be written: no token is handed out unrecorded")))]
pub async fn token(
    State(state): State<SharedState>,
    Path(raw): Path<String>,
    Query(query): Query<TokenQuery>,
    parts: Parts,
) -> ApiResult<impl IntoResponse> {
    let presented = bearer_key(&parts)?;
    let not_found = || Error::NotFound(format!("there is no connection with the handle '{}'", raw.escape_debug()));
    let hash = latchkey_crypto::tokens::digest(presented);
    let handle = Handle::parse(&raw).map_err(|_| not_found())?;
    let found = state.store.key_and_connection(&hash, &handle).await?;
    let (key, connection) = match found {
        Some((key, connection)) => (key, connection),
        None => {
            return Err(check_key(None, state.clock.now())
                .err()
                .unwrap_or_else(|| Error::Unauthorized(String::new()))
                .into());
        }
    };
    check_key(Some(&key), state.clock.now())?;
    state.audit.check_writable()?;
    let result = read_token(&state, &key, &handle, connection, query.force_refresh).await;
    // Fail closed: a token whose record finds no place in the audit buffer is not handed out. The place is
    // taken only now, so a read waiting on a slow provider holds none.
    let recorded =
        state.audit.record_token_read(&key.user_id, crate::audit::api_key_actor(&key), &handle, &result).await;
    let fresh = result?;
    recorded?;
    let body = TokenBody {
        token: fresh.token.expose().to_owned(),
        token_type: fresh.token_type,
        expires_at: fresh.expires_at.map(Timestamp::to_rfc3339),
        extra: fresh.extra,
    };
    Ok(([(CACHE_CONTROL, "no-store"), (PRAGMA, "no-cache")], Json(body)))
}

/// The token of `handle` for a valid `key`, after its rate limit and handle limits.
async fn read_token(
    state: &SharedState,
    key: &ApiKey,
    handle: &Handle,
    connection: Option<Connection>,
    force_refresh: bool,
) -> Result<FreshToken, Error> {
    state.api_limits.check(&key.id, &key.name)?;
    if !key.allows(handle) {
        return Err(Error::Forbidden(format!(
            "the API key '{}' may not read the handle '{handle}'; it is limited to other handles",
            key.name
        )));
    }
    crate::api::touch_key(state, key);
    let connection = connection.ok_or_else(|| {
        Error::NotFound(format!("there is no connection with the handle '{}'", handle.as_str().escape_debug()))
    })?;
    state.tokens.token(&connection, force_refresh, &crate::audit::api_key_actor(key)).await
}
