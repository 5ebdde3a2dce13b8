//! The webhook of the API key's user, under `/api/v1/webhook`:
//!
//! | method and path | what it does |
//! | --- | --- |
//! | `GET /api/v1/webhook` | `{"webhook": {...} or null}` |
//! | `PUT /api/v1/webhook` | sets the URL with a fresh signing secret: `{"webhook": {...}, "signing_secret": "whsec_..."}`, the only time the secret is shown |
//! | `DELETE /api/v1/webhook` | removes it and its undelivered events; 204 |
//! | `GET /api/v1/webhook/events` | the 50 most recent events with their delivery state |
//!
//! A key limited to some handles may not change or read the webhook: its events cover every connection.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use latchkey_core::webhook::{Webhook, WebhookEvent};
use latchkey_core::{Error, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use crate::api::error::{ApiResult, ErrorBody};
use crate::api::extract::{ApiCaller, ApiJson};
use crate::state::SharedState;

/// How many events `GET /api/v1/webhook/events` lists.
const EVENTS_LISTED: u32 = 50;

/// A webhook as the API shows it (never its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookView {
    pub url: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339; when the URL and secret were last set.
    pub updated_at: String,
}

impl WebhookView {
    fn of(webhook: &Webhook) -> Self {
        Self {
            url: webhook.url.clone(),
            created_at: webhook.created_at.to_rfc3339(),
            updated_at: webhook.updated_at.to_rfc3339(),
        }
    }
}

/// `{"webhook": ...}`
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookEnvelope {
    pub webhook: Option<WebhookView>,
}

/// The answer to saving a webhook: the only time the signing secret is shown.
#[derive(Serialize, ToSchema)]
pub struct SavedWebhook {
    pub webhook: WebhookView,
    /// The HMAC-SHA256 key that signs deliveries (docs/webhooks.md); shown once.
    pub signing_secret: String,
}

/// The body of `PUT /api/v1/webhook`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookInput {
    /// Where events are POSTed: an https URL (plain http only where the outbound guard allows it).
    pub url: String,
}

/// One event and its delivery.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub handle: String,
    pub status: Option<String>,
    pub previous_status: Option<String>,
    pub occurred_at: String,
    /// `pending`, `delivered` or `failed`.
    pub delivery: String,
    pub attempts: i64,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
}

impl EventView {
    fn of(event: &WebhookEvent) -> Self {
        Self {
            id: event.id.to_string(),
            kind: event.kind.as_str().to_owned(),
            handle: event.handle.clone(),
            status: event.status.map(|s| s.as_str().to_owned()),
            previous_status: event.previous_status.map(|s| s.as_str().to_owned()),
            occurred_at: Timestamp::to_rfc3339(event.occurred_at),
            delivery: event.state.as_str().to_owned(),
            attempts: event.attempts,
            last_error: event.last_error.clone(),
        }
    }
}

/// `{"events": [...]}`, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventList {
    pub events: Vec<EventView>,
}

/// The user's webhook, if any.
#[utoipa::path(get, path = "/api/v1/webhook", tag = "webhook", security(("api_key" = [])),
    responses((status = 200, body = WebhookEnvelope), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn get(State(state): State<SharedState>, caller: ApiCaller) -> ApiResult<Json<WebhookEnvelope>> {
    caller.require_unlimited("manage the webhook, which concerns every connection")?;
    let webhook = state.store.webhook(&caller.user.id).await?;
    Ok(Json(WebhookEnvelope { webhook: webhook.as_ref().map(WebhookView::of) }))
}

/// Sets the webhook URL and generates a new signing secret, shown in this answer only.
#[utoipa::path(put, path = "/api/v1/webhook", tag = "webhook", security(("api_key" = [])), request_body = WebhookInput,
    responses((status = 200, body = SavedWebhook, description = "Saved; the answer carries Cache-Control: no-store"),
        (status = 400, body = ErrorBody, description = "a URL that is not valid or that the outbound guard refuses"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn put(
    State(state): State<SharedState>,
    caller: ApiCaller,
    ApiJson(input): ApiJson<WebhookInput>,
) -> ApiResult<impl axum::response::IntoResponse> {
    caller.require_unlimited("manage the webhook, which concerns every connection")?;
    let (webhook, secret) = super::save(&state, &caller.user, &input.url).await?;
    let body = SavedWebhook { webhook: WebhookView::of(&webhook), signing_secret: secret.expose().to_owned() };
    Ok(([(axum::http::header::CACHE_CONTROL, "no-store")], Json(body)))
}

/// Removes the webhook and its undelivered events.
#[utoipa::path(delete, path = "/api/v1/webhook", tag = "webhook", security(("api_key" = [])),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(State(state): State<SharedState>, caller: ApiCaller) -> ApiResult<StatusCode> {
    caller.require_unlimited("manage the webhook, which concerns every connection")?;
    if state.store.delete_webhook(&caller.user.id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Error::NotFound("there is no webhook to remove".to_owned()).into())
    }
}

/// The most recent events and their delivery state.
#[utoipa::path(get, path = "/api/v1/webhook/events", tag = "webhook", security(("api_key" = [])),
    responses((status = 200, body = EventList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn events(State(state): State<SharedState>, caller: ApiCaller) -> ApiResult<Json<EventList>> {
    caller.require_unlimited("manage the webhook, which concerns every connection")?;
    let events = state.store.webhook_events(&caller.user.id, EVENTS_LISTED).await?;
    Ok(Json(EventList { events: events.iter().map(EventView::of).collect() }))
}

/// The OpenAPI description of these routes, merged into the API's document.
#[derive(OpenApi)]
#[openapi(
    paths(get, put, delete, events),
    components(schemas(WebhookView, WebhookEnvelope, SavedWebhook, WebhookInput, EventView, EventList))
)]
pub struct WebhookDoc;

/// The routes.
pub fn routes() -> axum::Router<SharedState> {
    axum::Router::new()
        .route("/api/v1/webhook", axum::routing::get(get).put(put).delete(delete))
        .route("/api/v1/webhook/events", axum::routing::get(events))
}
