//! Turning a token endpoint's answer into the stored form: sealed for its connection, with what the previous
//! tokens keep, and the time the background refresher takes it up.

use latchkey_core::Timestamp;
use latchkey_core::model::{ConnectionId, StoredTokens};
use latchkey_crypto::Keyring;
use latchkey_oauth::TokenResponse;

use super::policy::RefreshPolicy;
use crate::sealing::{self, Column};

/// The stored tokens for `response` on connection `id` at `now`, and their scheduled refresh time (none without a
/// refresh token, or without an expiry).
pub(super) fn stored_tokens(
    keyring: &Keyring,
    policy: &RefreshPolicy,
    id: &ConnectionId,
    response: &TokenResponse,
    previous: Option<&StoredTokens>,
    now: Timestamp,
) -> (StoredTokens, Option<Timestamp>) {
    let access_token = sealing::seal(keyring, id, Column::AccessToken, &response.access_token);
    let refresh_token = match &response.refresh_token {
        Some(new) => Some(sealing::seal(keyring, id, Column::RefreshToken, new)),
        None => previous.and_then(|p| p.refresh_token.clone()),
    };
    // A relative lifetime (or the connection's default) first; else the provider's absolute expiry.
    let expires_at = response
        .expires_in
        .map(|secs| now.plus_secs(i64::try_from(secs).unwrap_or(i64::MAX / 2)))
        .or(response.expires_at);
    let scope = response.scope.as_deref().map(printable).or_else(|| previous.and_then(|p| p.scope.clone()));
    // Kept values survive a refresh that does not repeat them; repeated ones are updated.
    let mut extra = previous.map(|p| p.extra.clone()).unwrap_or_default();
    extra.extend(response.extra.iter().map(|(k, v)| (printable(k), printable(v))));
    let stored = StoredTokens {
        access_token,
        refresh_token,
        token_type: printable(&response.token_type),
        expires_at,
        obtained_at: now,
        scope,
        extra,
    };
    let refresh_at = if stored.refresh_token.is_some() { policy.scheduled_at(id, now, expires_at) } else { None };
    (stored, refresh_at)
}

/// Provider-supplied text stored beside the tokens, without control characters (PostgreSQL text cannot hold NUL,
/// and nothing downstream expects them).
fn printable(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).collect()
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn stored_provider_text_loses_control_characters() {
        assert_eq!(printable("Bea\0rer\n"), "Bearer");
        assert_eq!(printable("read write"), "read write");
    }
}
