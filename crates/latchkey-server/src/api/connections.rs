//! `/api/v1/connections`: create, list, read, edit, delete and re-authorize connections.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use latchkey_core::settings::GrantType;
use latchkey_core::{Error, Handle};

use super::error::{ApiResult, ErrorBody};
use super::extract::{ApiCaller, ApiJson};
use super::views::{AuthorizingEnvelope, ConnectionEnvelope, ConnectionList, ConnectionView, DeviceView};
use crate::service::connections::{self, Authorizing, ConnectionInput};
use crate::state::SharedState;

fn view(state: &SharedState, connection: &latchkey_core::model::Connection) -> ConnectionView {
    ConnectionView::new(connection, connections::redirect_uri(state, &connection.settings))
}

/// The view with the device authorization under way, for `device_code` connections that have one.
async fn full_view(state: &SharedState, connection: &latchkey_core::model::Connection) -> ApiResult<ConnectionView> {
    let mut shown = view(state, connection);
    if connection.settings.grant_type == GrantType::DeviceCode {
        shown.device = state.store.device_flow(&connection.id).await?.as_ref().map(DeviceView::new);
    }
    Ok(shown)
}

async fn authorizing(state: &SharedState, done: &Authorizing) -> ApiResult<AuthorizingEnvelope> {
    let connection = full_view(state, &done.connection).await?;
    let (authorization_link, device) = match done.connection.settings.grant_type {
        GrantType::AuthorizationCode => (Some(done.authorization_link.clone()), None),
        GrantType::ClientCredentials => (None, None),
        GrantType::DeviceCode => {
            let device = state.store.device_flow(&done.connection.id).await?.as_ref().map(DeviceView::new);
            (None, device)
        }
    };
    Ok(AuthorizingEnvelope { connection, authorization_link, device })
}

fn parse_handle(raw: &str) -> Result<Handle, Error> {
    Handle::parse(raw)
        .map_err(|_| Error::NotFound(format!("there is no connection with the handle '{}'", raw.escape_debug())))
}

/// Creates a connection.
#[utoipa::path(post, path = "/api/v1/connections", tag = "connections", request_body = ConnectionInput,
    security(("api_key" = [])),
    responses((status = 201, body = AuthorizingEnvelope), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn create(
    State(state): State<SharedState>,
    caller: ApiCaller,
    ApiJson(input): ApiJson<ConnectionInput>,
) -> ApiResult<impl IntoResponse> {
    caller.require_unlimited("create connections")?;
    let done = connections::create(&state, &caller.user, &caller.actor(), input).await?;
    Ok((StatusCode::CREATED, Json(authorizing(&state, &done).await?)))
}

/// Lists the caller's connections (only the handles a limited key may use).
#[utoipa::path(get, path = "/api/v1/connections", tag = "connections", security(("api_key" = [])),
    responses((status = 200, body = ConnectionList), (status = 401, body = ErrorBody)))]
pub async fn list(State(state): State<SharedState>, caller: ApiCaller) -> ApiResult<Json<ConnectionList>> {
    let all = state.store.list_connections(&caller.user.id).await?;
    let mut connections = Vec::new();
    for connection in all.iter().filter(|c| caller.key.allows(&c.handle)) {
        connections.push(full_view(&state, connection).await?);
    }
    Ok(Json(ConnectionList { connections }))
}

/// Reads one connection.
#[utoipa::path(get, path = "/api/v1/connections/{handle}", tag = "connections", security(("api_key" = [])),
    params(("handle" = String, Path)),
    responses((status = 200, body = ConnectionEnvelope), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<SharedState>,
    caller: ApiCaller,
    Path(raw): Path<String>,
) -> ApiResult<Json<ConnectionEnvelope>> {
    let handle = parse_handle(&raw)?;
    caller.require(&handle)?;
    let connection = connections::find(&state, &caller.user, &handle).await?;
    Ok(Json(ConnectionEnvelope { connection: full_view(&state, &connection).await? }))
}

/// Edits a connection; a missing `client_secret` keeps the stored one; the handle cannot change.
#[utoipa::path(patch, path = "/api/v1/connections/{handle}", tag = "connections", security(("api_key" = [])),
    params(("handle" = String, Path)), request_body = ConnectionInput,
    responses((status = 200, body = AuthorizingEnvelope), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn update(
    State(state): State<SharedState>,
    caller: ApiCaller,
    Path(raw): Path<String>,
    ApiJson(input): ApiJson<ConnectionInput>,
) -> ApiResult<Json<AuthorizingEnvelope>> {
    let handle = parse_handle(&raw)?;
    caller.require(&handle)?;
    caller.require_unlimited("edit connections")?;
    let done = connections::update(&state, &caller.user, &caller.actor(), &handle, input).await?;
    Ok(Json(authorizing(&state, &done).await?))
}

/// Deletes a connection, revoking its tokens where the provider supports it.
#[utoipa::path(delete, path = "/api/v1/connections/{handle}", tag = "connections", security(("api_key" = [])),
    params(("handle" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<SharedState>,
    caller: ApiCaller,
    Path(raw): Path<String>,
) -> ApiResult<StatusCode> {
    let handle = parse_handle(&raw)?;
    caller.require(&handle)?;
    caller.require_unlimited("delete connections")?;
    connections::delete(&state, &caller.user, &caller.actor(), &handle).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A fresh authorization link to reconnect; for a `device_code` connection a new device authorization (the
/// `device` object); refused (400) for `client_credentials`, which has nothing to authorize.
#[utoipa::path(post, path = "/api/v1/connections/{handle}/authorize", tag = "connections", security(("api_key" = [])),
    params(("handle" = String, Path)),
    responses((status = 200, body = AuthorizingEnvelope), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn authorize(
    State(state): State<SharedState>,
    caller: ApiCaller,
    Path(raw): Path<String>,
) -> ApiResult<Json<AuthorizingEnvelope>> {
    let handle = parse_handle(&raw)?;
    caller.require(&handle)?;
    caller.require_unlimited("re-authorize connections")?;
    let done = connections::authorize(&state, &caller.user, &caller.actor(), &handle).await?;
    Ok(Json(authorizing(&state, &done).await?))
}
