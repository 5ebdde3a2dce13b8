//! The JSON API of CONTRACT.md under `/api/v1`, authenticated by API keys.

mod api_keys;
mod audit;
mod connections;
pub mod error;
pub mod extract;
pub mod limits;
mod openapi;
mod providers;
mod token;
pub mod views;

use axum::Router;
use axum::routing::{get, post};
use latchkey_core::model::ApiKey;

use crate::state::SharedState;

/// How often a key's "last used" time is written at most, in seconds.
const TOUCH_EVERY_SECS: i64 = 60;

/// The API routes.
pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/api/v1/openapi.json", get(openapi::document))
        .route("/api/v1/connections", post(connections::create).get(connections::list))
        .route(
            "/api/v1/connections/{handle}",
            get(connections::get).patch(connections::update).delete(connections::delete),
        )
        .route("/api/v1/connections/{handle}/authorize", post(connections::authorize))
        .route("/api/v1/connections/{handle}/token", get(token::token))
        .route("/api/v1/connections/{handle}/audit", get(audit::connection_records))
        .route("/api/v1/audit", get(audit::user_records))
        .route("/api/v1/providers", get(providers::list))
        .merge(api_keys::routes())
}

/// Records that `key` was used, off the request's path and at most once a minute.
pub fn touch_key(state: &SharedState, key: &ApiKey) {
    let now = state.clock.now();
    if key.last_used_at.is_some_and(|at| now.secs() - at.secs() < TOUCH_EVERY_SECS) {
        return;
    }
    let state = state.clone();
    let id = key.id.clone();
    tokio::spawn(async move {
        if let Err(err) = state.store.touch_api_key(&id, now).await {
            tracing::debug!(error = %err, "could not record API key use");
        }
    });
}
