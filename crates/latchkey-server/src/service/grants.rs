//! What follows saving a connection, by grant: an authorization link for the code flow; nothing for client
//! credentials (the first token request fetches the token); a device authorization (RFC 8628 §3.1) for the
//! device flow, whose codes are stored for the poller (`tokens/device.rs`) and shown to the person.

use latchkey_core::model::{Connection, DeviceFlow};
use latchkey_core::settings::GrantType;
use latchkey_core::{Error, Result};
use latchkey_oauth::OAuthError;

use super::connections::new_authorization_link;
use crate::sealing::{self, Column};
use crate::state::AppState;

/// The poll interval when the provider names none (RFC 8628 §3.2).
pub const DEFAULT_DEVICE_INTERVAL_SECS: i64 = 5;

/// The next step of a connection just saved or asked to reconnect: the authorization link for the code flow,
/// or an empty string when the grant needs no browser (client credentials) or started a device authorization,
/// which is then in the store ([`latchkey_core::store::DeviceFlowStore::device_flow`]).
///
/// # Errors
/// Storage failures; for the device flow, the device authorization endpoint's refusal (`Invalid`, or
/// `NeedsReauth` for wrong client credentials) or failure (`Provider`, 502).
pub async fn next_step(state: &AppState, connection: &Connection) -> Result<String> {
    match connection.settings.grant_type {
        GrantType::AuthorizationCode => new_authorization_link(state, connection).await,
        GrantType::ClientCredentials => Ok(String::new()),
        GrantType::DeviceCode => start_device(state, connection).await.map(|_| String::new()),
    }
}

/// Refuses `POST .../authorize` for a client credentials connection: there is nobody to ask.
///
/// # Errors
/// `Invalid` naming `grant_type` for a client credentials connection.
pub fn check_authorizable(connection: &Connection) -> Result<()> {
    if connection.settings.grant_type == GrantType::ClientCredentials {
        let handle = &connection.handle;
        return Err(Error::invalid(
            "grant_type",
            format!(
                "'{handle}' uses the client_credentials grant: there is nothing to authorize. Its token is fetched on \
                 the next token request; if the provider refused the client credentials, edit the connection with the \
                 right client ID and secret"
            ),
        ));
    }
    Ok(())
}

/// Starts a device authorization for `connection` and stores it (replacing any earlier one), with its device
/// code sealed.
///
/// # Errors
/// As [`next_step`].
pub async fn start_device(state: &AppState, connection: &Connection) -> Result<DeviceFlow> {
    let handle = &connection.handle;
    let settings = connection.settings.resolved()?;
    let client_secret = connection
        .client_secret
        .as_ref()
        .map(|s| sealing::open(&state.keyring, &connection.id, Column::ClientSecret, s))
        .transpose()?;
    let endpoint = settings.device_authorization_url.clone().unwrap_or_default();
    let answer = latchkey_oauth::start_device_authorization(&state.http, &settings, client_secret.as_ref())
        .await
        .map_err(|err| {
            let described = err.describe_at("the device authorization endpoint", &endpoint);
            tracing::warn!(handle = %handle, error = %described, "device authorization failed");
            match err {
                OAuthError::Unavailable { .. } | OAuthError::InvalidResponse { .. } => {
                    Error::Provider { message: described, retryable: err.is_retryable() }
                }
                _ if err.needs_reauth() => {
                    Error::invalid("client_id", format!("{described}: check the client ID and secret of '{handle}'"))
                }
                _ => Error::Provider { message: described, retryable: false },
            }
        })?;
    let now = state.clock.now();
    let interval = answer
        .interval
        .and_then(|secs| i64::try_from(secs).ok())
        .map_or(DEFAULT_DEVICE_INTERVAL_SECS, |secs| secs.clamp(1, 3600));
    let flow = DeviceFlow {
        connection_id: connection.id.clone(),
        device_code: sealing::seal_device_code(&state.keyring, &connection.id, &answer.device_code),
        user_code: answer.user_code,
        verification_uri: answer.verification_uri,
        verification_uri_complete: answer.verification_uri_complete,
        expires_at: now.plus_secs(i64::try_from(answer.expires_in).unwrap_or(i64::MAX / 2)),
        interval_secs: interval,
        next_poll_at: now.plus_secs(interval),
        created_at: now,
    };
    state.store.put_device_flow(&flow).await?;
    tracing::info!(handle = %handle, interval_secs = interval, "device authorization started; polling the provider");
    Ok(flow)
}
