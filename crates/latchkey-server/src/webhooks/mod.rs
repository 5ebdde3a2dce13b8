//! Webhook notifications: each user may set a webhook URL; when one of their connections changes status or is
//! deleted, the database queues an event in its outbox (in the same statement as the change, see migration 0006)
//! and [`run_sender`] delivers it, signed ([`signature`]), through the guarded outbound client, retrying with
//! exponential backoff. The event shape and how to verify it are in docs/webhooks.md.
//!
//! The signing secret is generated here, shown once (in the answer that saves the webhook) and stored sealed,
//! bound to `webhooks.secret` of the user's row.

pub mod api;
mod delivery;
pub mod signature;

use latchkey_core::model::{User, UserId};
use latchkey_core::webhook::{Webhook, WebhookEvent};
use latchkey_core::{Error, Result, Sealed, Secret, Timestamp};
use latchkey_crypto::{Aad, Keyring};
use serde_json::json;

pub use delivery::run_sender;

use crate::state::SharedState;

/// The longest webhook URL accepted.
const MAX_URL_LEN: usize = 2000;

fn secret_aad(user: &UserId) -> Aad {
    Aad::new("webhooks", "secret", user.as_str())
}

/// Opens a webhook's signing secret.
///
/// # Errors
/// [`Error::Crypto`] when it does not open (wrong key or a value moved from another row).
pub fn open_secret(keyring: &Keyring, webhook: &Webhook) -> Result<Secret> {
    keyring.open_secret(&webhook.secret, &secret_aad(&webhook.user_id)).map_err(|e| {
        Error::Crypto(format!("the webhook signing secret of user {} could not be decrypted: {e}", webhook.user_id))
    })
}

fn seal_secret(keyring: &Keyring, user: &UserId, secret: &Secret) -> Sealed {
    keyring.seal_secret(secret, &secret_aad(user))
}

/// Checks a webhook URL as typed: an absolute `http(s)` URL without user name or password, that the outbound
/// guard lets through, for the URL and for the addresses its host name resolves to.
///
/// # Errors
/// `Invalid` (field `url`) saying what is wrong.
pub async fn check_url(state: &SharedState, text: &str) -> Result<url::Url> {
    let text = text.trim();
    let invalid = |message: String| Error::invalid("url", message);
    if text.is_empty() {
        return Err(invalid("the webhook URL is missing: give the https URL that should receive the events".into()));
    }
    if text.len() > MAX_URL_LEN {
        return Err(invalid(format!("the webhook URL is longer than {MAX_URL_LEN} characters")));
    }
    let url = url::Url::parse(text)
        .map_err(|e| invalid(format!("the webhook URL is not a valid absolute URL ({e}); give an https URL")))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "the webhook URL must not carry a user name or password: verify deliveries by their signature".into(),
        ));
    }
    if url.fragment().is_some() {
        return Err(invalid("the webhook URL must not have a #fragment".into()));
    }
    state
        .http
        .check_destination(&url)
        .await
        .map_err(|e| invalid(format!("latchkey may not send webhooks to this URL: {e}")))?;
    Ok(url)
}

/// Sets the user's webhook to `url` with a fresh signing secret, and returns the webhook and the secret (to show
/// once).
///
/// # Errors
/// `Invalid` for a URL that [`check_url`] refuses; a storage failure.
pub async fn save(state: &SharedState, user: &User, url: &str) -> Result<(Webhook, Secret)> {
    let url = check_url(state, url).await?;
    let now = state.clock.now();
    let secret = Secret::new(format!("whsec_{}", latchkey_crypto::tokens::random_token(32)));
    let created_at = state.store.webhook(&user.id).await?.map_or(now, |w| w.created_at);
    let webhook = Webhook {
        user_id: user.id.clone(),
        url: url.to_string(),
        secret: seal_secret(&state.keyring, &user.id, &secret),
        created_at,
        updated_at: now,
    };
    state.store.put_webhook(&webhook).await?;
    tracing::info!(user = %user.id, "webhook saved");
    Ok((webhook, secret))
}

/// The JSON body of an event, as delivered (docs/webhooks.md).
#[must_use]
pub fn event_body(event: &WebhookEvent) -> Vec<u8> {
    let body = json!({
        "id": event.id.to_string(),
        "type": event.kind.as_str(),
        "occurred_at": event.occurred_at.to_rfc3339(),
        "connection": {
            "handle": event.handle,
            "status": event.status.map(|s| s.as_str()),
            "previous_status": event.previous_status.map(|s| s.as_str()),
            "message": event.message,
        },
    });
    body.to_string().into_bytes()
}

/// When the attempt after `attempts` failed ones should be made: 10 s, doubling, at most an hour.
#[must_use]
pub fn retry_at(now: Timestamp, attempts: i64) -> Timestamp {
    let exponent = u32::try_from(attempts.saturating_sub(1).clamp(0, 20)).unwrap_or(20);
    let wait = 10_i64.saturating_mul(1_i64 << exponent).min(3600);
    now.plus_secs(wait)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_exponentially_up_to_an_hour() {
        let now = Timestamp(1000);
        let waits: Vec<i64> = (1..=10).map(|n| retry_at(now, n).secs() - 1000).collect();
        assert_eq!(waits, [10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600]);
    }
}
