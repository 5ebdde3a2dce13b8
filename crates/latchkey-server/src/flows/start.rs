//! `GET /oauth2/start/{link}`: opens a single-use authorization link. Records a fresh `state` (256 random bits)
//! and a browser-binding cookie, then redirects to the provider's authorization endpoint.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::header::{CACHE_CONTROL, LOCATION, SET_COOKIE};
use axum::response::{IntoResponse, Response};
use latchkey_core::model::FlowStart;
use latchkey_core::{Error, Result};
use latchkey_crypto::tokens::{digest, random_token};
use latchkey_oauth::PkcePair;

use super::cookie;
use crate::pages;
use crate::sealing;
use crate::state::SharedState;

/// Opens the link.
pub async fn start(State(state): State<SharedState>, Path(link): Path<String>) -> Response {
    match redirect(&state, &link).await {
        Ok(response) => response,
        Err(err) => pages::flow_failure(&state, None, &err),
    }
}

async fn redirect(state: &SharedState, link: &str) -> Result<Response> {
    let now = state.clock.now();
    let state_token = random_token(32);
    let browser = random_token(32);
    let start =
        FlowStart { state_hash: digest(&state_token), browser_hash: digest(&browser), pkce_verifier: None, now };
    let flow = state.store.start_flow(&digest(link), &start).await?.ok_or_else(|| {
        Error::bad_request(
            "this authorization link is unknown, expired or already used: start the authorization again from your connection list",
        )
    })?;
    let connection = state
        .store
        .connection_by_id(&flow.connection_id)
        .await?
        .ok_or_else(|| Error::NotFound("the connection of this authorization link was deleted".to_owned()))?;
    let challenge = flow
        .pkce_verifier
        .as_ref()
        .map(|sealed| {
            sealing::open_verifier(&state.keyring, &flow.id, sealed).map(|v| PkcePair::s256_challenge(v.expose()))
        })
        .transpose()?;
    let settings = connection.settings.resolved()?;
    let url =
        latchkey_oauth::authorization_request_url(&settings, &flow.redirect_uri, &state_token, challenge.as_deref())
            .map_err(|e| {
                Error::bad_request(format!("the authorization URL of '{}' is not usable: {e}", connection.handle))
            })?;
    let max_age = u64::try_from((flow.expires_at.secs() - now.secs()).max(1)).unwrap_or(600);
    let name = cookie::name(&state.config, &start.state_hash);
    tracing::info!(handle = %connection.handle, "authorization started; redirecting to the provider");
    Ok((
        StatusCode::FOUND,
        [
            (LOCATION, url.to_string()),
            (SET_COOKIE, cookie::set(&state.config, &name, &browser, max_age)),
            (CACHE_CONTROL, "no-store".to_owned()),
        ],
    )
        .into_response())
}
