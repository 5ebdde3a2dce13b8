//! The API keys of the calling key's user, under `/api/v1/api-keys`:
//!
//! | method and path | what it does |
//! | --- | --- |
//! | `GET /api/v1/api-keys` | `{"api_keys": [...]}`, newest first, with status `active`, `expired` or `revoked` |
//! | `POST /api/v1/api-keys` | `{"name", "handles"?, "expires_in_days"?}` → 201 `{"api_key": {...}, "key": "lk_..."}`, the only time the key is shown |
//! | `DELETE /api/v1/api-keys/{id}` | revokes it; 204 |
//!
//! Only a key without handle limits manages keys, and a key that expires may create only keys that expire no
//! later than itself, so no key can mint one with more reach than its own.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use latchkey_core::audit::Action;
use latchkey_core::model::{ApiKey, ApiKeyId};
use latchkey_core::{Error, Handle, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use super::error::{ApiResult, ErrorBody};
use super::extract::{ApiCaller, ApiJson};
use crate::service::api_keys as service;
use crate::state::SharedState;

/// An API key as the API shows it: never the key, only its first characters.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyView {
    pub id: String,
    pub name: String,
    /// The first characters of the key.
    pub prefix: String,
    /// The handles it may use; null for all.
    pub handles: Option<Vec<String>>,
    /// `active`, `expired` or `revoked`.
    pub status: String,
    /// RFC 3339.
    pub created_at: String,
    pub last_used_at: Option<String>,
    /// When it stops working; null when it does not expire.
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
}

impl ApiKeyView {
    fn of(key: &ApiKey, now: Timestamp) -> Self {
        let status = if key.revoked_at.is_some() {
            "revoked"
        } else if key.is_expired(now) {
            "expired"
        } else {
            "active"
        };
        Self {
            id: key.id.to_string(),
            name: key.name.clone(),
            prefix: key.prefix.clone(),
            handles: key.handles.as_ref().map(|hs| hs.iter().map(ToString::to_string).collect()),
            status: status.to_owned(),
            created_at: key.created_at.to_rfc3339(),
            last_used_at: key.last_used_at.map(Timestamp::to_rfc3339),
            expires_at: key.expires_at.map(Timestamp::to_rfc3339),
            revoked_at: key.revoked_at.map(Timestamp::to_rfc3339),
        }
    }
}

/// `{"api_keys": [...]}`
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyList {
    pub api_keys: Vec<ApiKeyView>,
}

/// The answer to creating a key: the only time the key itself is shown.
#[derive(Serialize, ToSchema)]
pub struct CreatedApiKey {
    pub api_key: ApiKeyView,
    /// The key, for `Authorization: Bearer`; only its digest is stored.
    pub key: String,
}

/// The body of `POST /api/v1/api-keys`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyInput {
    /// What uses the key, for example `nightly-sync`.
    pub name: String,
    /// Limit the key to these handles; omitted or null for all.
    #[serde(default)]
    pub handles: Option<Vec<String>>,
    /// Days until the key stops working (1 to 3650); omitted or null for a key that does not expire.
    #[serde(default)]
    pub expires_in_days: Option<u32>,
}

/// The caller's user's keys, newest first.
#[utoipa::path(get, path = "/api/v1/api-keys", tag = "api-keys", security(("api_key" = [])),
    responses((status = 200, body = ApiKeyList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list(State(state): State<SharedState>, caller: ApiCaller) -> ApiResult<Json<ApiKeyList>> {
    caller.require_unlimited("manage API keys")?;
    let now = state.clock.now();
    let keys = state.store.list_api_keys(&caller.user.id).await?;
    Ok(Json(ApiKeyList { api_keys: keys.iter().map(|k| ApiKeyView::of(k, now)).collect() }))
}

/// Creates a key, optionally limited to handles and expiring; the key is in this answer only.
#[utoipa::path(post, path = "/api/v1/api-keys", tag = "api-keys", security(("api_key" = [])), request_body = ApiKeyInput,
    responses((status = 201, body = CreatedApiKey, description = "Created; the answer carries Cache-Control: no-store"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn create(
    State(state): State<SharedState>,
    caller: ApiCaller,
    ApiJson(input): ApiJson<ApiKeyInput>,
) -> ApiResult<impl IntoResponse> {
    caller.require_unlimited("manage API keys")?;
    let now = state.clock.now();
    let name = service::clean_name(&input.name)?;
    let handles = match input.handles {
        None => None,
        Some(list) => Some(
            list.iter()
                .map(|h| {
                    Handle::parse(h)
                        .map_err(|_| Error::invalid("handles", format!("'{}' is not a handle", h.escape_debug())))
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let expires_at = service::expiry_in_days(input.expires_in_days, now)?;
    if let Some(limit) = caller.key.expires_at
        && expires_at.is_none_or(|at| at > limit)
    {
        return Err(Error::Forbidden(format!(
            "the API key '{}' expires at {}, so the keys it creates must expire by then too: give a smaller \
             expires_in_days",
            caller.key.name,
            limit.to_rfc3339()
        ))
        .into());
    }
    let (record, key) =
        service::create_expiring(state.store.as_ref(), &caller.user, &name, handles, expires_at, now).await?;
    state.audit.api_key_change(&caller.user.id, &caller.actor(), Action::ApiKeyCreate, &record.prefix, true).await;
    let body = CreatedApiKey { api_key: ApiKeyView::of(&record, now), key: key.expose().to_owned() };
    Ok((StatusCode::CREATED, [(axum::http::header::CACHE_CONTROL, "no-store")], Json(body)))
}

/// Revokes one of the user's keys; it is refused from then on.
#[utoipa::path(delete, path = "/api/v1/api-keys/{id}", tag = "api-keys", security(("api_key" = [])),
    params(("id" = String, Path, description = "the key's id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke(
    State(state): State<SharedState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_unlimited("manage API keys")?;
    let keys = state.store.list_api_keys(&caller.user.id).await?;
    let prefix = keys.iter().find(|k| k.id.as_str() == id).map(|k| k.prefix.clone()).unwrap_or_default();
    let revoked = state.store.revoke_api_key(&caller.user.id, &ApiKeyId(id), state.clock.now()).await?;
    state.audit.api_key_change(&caller.user.id, &caller.actor(), Action::ApiKeyRevoke, &prefix, revoked).await;
    if revoked {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Error::NotFound("you have no such API key, or it is already revoked".to_owned()).into())
    }
}

/// The OpenAPI description of these routes, merged into the API's document.
#[derive(OpenApi)]
#[openapi(paths(list, create, revoke), components(schemas(ApiKeyView, ApiKeyList, CreatedApiKey, ApiKeyInput)))]
pub struct ApiKeyDoc;

/// The routes.
pub fn routes() -> axum::Router<SharedState> {
    axum::Router::new()
        .route("/api/v1/api-keys", axum::routing::get(list).post(create))
        .route("/api/v1/api-keys/{id}", axum::routing::delete(revoke))
}
