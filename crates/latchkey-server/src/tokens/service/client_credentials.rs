//! Connections on the client credentials grant (RFC 6749 §4.4): there is no refresh token, so the token is fetched,
//! and renewed, by repeating the grant, through the same single-flight path and lease as a refresh.

use latchkey_core::audit::Actor;
use latchkey_core::model::{Connection, FailureWrite, Status, TokenWrite};
use latchkey_core::{Error, Result, Timestamp};

use super::{FreshToken, Inner, Seen, TokenService};
use crate::sealing::{self, Column};
use crate::tokens::policy::is_expired;

impl TokenService {
    /// The token of a client credentials connection (RFC 6749 §4.4): fetched on first use, when due and when
    /// forced, through the same single-flight path as a refresh; there is no refresh token, the grant is simply
    /// repeated.
    pub(super) async fn client_credentials_token(
        &self,
        connection: &Connection,
        force: bool,
        by: &Actor,
    ) -> Result<FreshToken> {
        let handle = &connection.handle;
        if connection.status == Status::NeedsReauth {
            let why = connection.last_error.clone().unwrap_or_else(|| {
                format!("the provider refused the client credentials of '{handle}': edit '{handle}' with the right client ID and secret")
            });
            return Err(Error::NeedsReauth(why));
        }
        let now = self.inner.clock.now();
        let usable = connection.tokens.as_ref().filter(|_| connection.status != Status::Pending);
        if let Some(tokens) = usable
            && !force
            && !self.inner.policy.is_due(tokens, now)
        {
            return self.inner.fresh(connection, tokens);
        }
        if let Some(at) = connection.retry_after.filter(|at| *at > now) {
            if force {
                return Err(super::forced_during_backoff(connection, at, now));
            }
            if let Some(tokens) = usable.filter(|t| !is_expired(t, now)) {
                return self.inner.fresh(connection, tokens);
            }
            let last = connection.last_error.as_deref().unwrap_or("the last token request failed");
            let at = connection.retry_after.map(Timestamp::to_rfc3339).unwrap_or_default();
            return Err(Error::Provider {
                message: format!("no valid token for '{handle}': {last}; latchkey tries again at {at}"),
                retryable: true,
            });
        }
        let seen = Seen { version: connection.token_version, failures: connection.failure_count };
        match self.refresh(&connection.id, Some(seen), by).await {
            Ok(fresh) => Ok(fresh),
            Err(err) if err.is_retryable() && !force && usable.is_some_and(|t| !is_expired(t, now)) => {
                tracing::warn!(handle = %handle, error = %err, "token request failed; serving the still-valid token");
                usable.map_or(Err(err), |t| self.inner.fresh(connection, t))
            }
            Err(err) => Err(err),
        }
    }
}

impl Inner {
    /// Repeats the client credentials grant for a connection whose lease this process holds.
    pub(super) async fn fetch_client_credentials(&self, connection: &Connection) -> Result<FreshToken> {
        let id = &connection.id;
        let handle = &connection.handle;
        let client_secret = connection
            .client_secret
            .as_ref()
            .map(|s| sealing::open(&self.keyring, id, Column::ClientSecret, s))
            .transpose()?;
        let settings = connection.settings.resolved()?;
        tracing::debug!(handle = %handle, "requesting a token with the client credentials");
        let answer = latchkey_oauth::client_credentials(&self.http, &settings, client_secret.as_ref()).await;
        let now = self.clock.now();
        match answer {
            Ok(mut response) => {
                // RFC 6749 §4.4.3: no refresh token here; the grant is repeated instead.
                response.refresh_token = None;
                let (stored, _) = self.tokens_from_response(id, &response, None, now);
                // Renewed by repeating the grant, so scheduled like a refreshable token.
                let refresh_at = self.policy.scheduled_at(id, now, stored.expires_at);
                let write =
                    TokenWrite { tokens: stored, refresh_at, now, expected_version: Some(connection.token_version) };
                if self.store.save_tokens(id, &write).await? {
                    tracing::info!(handle = %handle, "access token fetched with the client credentials");
                    return Ok(FreshToken {
                        token: response.access_token.clone(),
                        token_type: write.tokens.token_type,
                        expires_at: write.tokens.expires_at,
                        extra: write.tokens.extra,
                    });
                }
                tracing::warn!(handle = %handle, "a concurrent token request landed first; using its token");
                let current = self.load(id).await?;
                let tokens = current.tokens.as_ref().ok_or_else(|| Error::Internal("tokens vanished".into()))?;
                self.fresh(&current, tokens)
            }
            Err(err) if err.needs_reauth() => {
                let described = err.describe(&settings.token_url);
                let message = format!(
                    "the provider refused the client credentials of '{handle}' ({described}): edit '{handle}' with the right client ID and secret (for this grant, reconnecting means fixing the credentials)"
                );
                let write = FailureWrite {
                    status: Status::NeedsReauth,
                    last_error: message.clone(),
                    failure_count: connection.failure_count + 1,
                    retry_after: None,
                    now,
                };
                self.store.record_failure(id, &write).await?;
                tracing::warn!(handle = %handle, error = %described, "client credentials refused; connection needs new credentials");
                Err(Error::NeedsReauth(message))
            }
            Err(err) => self.refresh_failed(connection, &settings.token_url, &err, now).await,
        }
    }
}
