//! The token service: answers "a valid access token for this connection", refreshing first when needed.
//!
//! Only one refresh per connection is in flight: within a process, callers share one spawned task (so a caller
//! that disconnects does not cancel it); across processes, a lease in the database decides who calls the
//! provider, and the write is fenced by the token version that refresh started from.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use latchkey_core::audit::Actor;
use latchkey_core::model::{Connection, ConnectionId, FailureWrite, Status, StoredTokens, TokenWrite};
use latchkey_core::settings::GrantType;
use latchkey_core::store::Store;
use latchkey_core::{Clock, Error, Result, Secret, Timestamp};
use latchkey_crypto::Keyring;
use latchkey_oauth::{HttpClient, OAuthError, TokenResponse};
use tokio_util::task::TaskTracker;

use super::policy::{RefreshPolicy, is_expired};
use crate::ops::Metrics;
use crate::sealing::{self, Column};

mod client_credentials;

/// How much longer than a lease a caller waits for another process's refresh before giving up.
const FOREIGN_REFRESH_GRACE: Duration = Duration::from_secs(10);
/// How often a caller looks whether another process's refresh has landed.
const FOREIGN_REFRESH_POLL: Duration = Duration::from_millis(100);

/// An access token ready to hand out.
#[derive(Debug, Clone)]
pub struct FreshToken {
    pub token: Secret,
    pub token_type: String,
    pub expires_at: Option<Timestamp>,
    /// The values the connection keeps from its authorization (`keep_response_fields`, `keep_callback_params`).
    pub extra: BTreeMap<String, String>,
}

type SharedRefresh = Shared<BoxFuture<'static, Result<FreshToken>>>;

/// What a caller saw of the connection before asking for a refresh.
#[derive(Debug, Clone, Copy)]
struct Seen {
    version: i64,
    failures: i64,
}

/// Serves and refreshes tokens. Cheap to clone.
#[derive(Clone)]
pub struct TokenService {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    keyring: Arc<Keyring>,
    http: HttpClient,
    clock: Arc<dyn Clock>,
    policy: RefreshPolicy,
    /// Identifies this process as a lease holder.
    owner: String,
    inflight: Mutex<HashMap<ConnectionId, SharedRefresh>>,
    /// Counts refreshes by outcome and times them.
    metrics: Metrics,
    /// The spawned refresh tasks, so that shutdown waits for them.
    tasks: TaskTracker,
}

impl TokenService {
    /// A token service over these parts.
    #[must_use]
    pub fn new(
        store: Arc<dyn Store>,
        keyring: Arc<Keyring>,
        http: HttpClient,
        clock: Arc<dyn Clock>,
        policy: RefreshPolicy,
    ) -> Self {
        let owner = format!("{}-{}", std::process::id(), uuid::Uuid::new_v4());
        let inflight = Mutex::default();
        let (metrics, tasks) = (Metrics::default(), TaskTracker::new());
        Self { inner: Arc::new(Inner { store, keyring, http, clock, policy, owner, inflight, metrics, tasks }) }
    }

    /// The metrics this service records (refreshes), shared with the rest of the server.
    #[must_use]
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The refresh tasks in flight; shutdown closes it and waits for them.
    #[must_use]
    pub fn tasks(&self) -> &TaskTracker {
        &self.inner.tasks
    }

    /// How many callers wait for the refresh of `id` in flight in this process (0 when none runs).
    #[must_use]
    pub fn refresh_waiters(&self, id: &ConnectionId) -> usize {
        let inflight = self.inner.inflight.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // The map holds one clone of the shared result; every waiting caller holds another.
        inflight.get(id).and_then(Shared::strong_count).map_or(0, |n| n.saturating_sub(1))
    }

    /// The refresh policy in force.
    #[must_use]
    pub fn policy(&self) -> RefreshPolicy {
        self.inner.policy
    }

    /// A valid access token of `connection`, refreshed first when it is due (or when `force` is set).
    ///
    /// A fresh token costs one AEAD open and no further database access.
    ///
    /// # Errors
    /// `Conflict` when the connection is not authorized or its token expired without a refresh token,
    /// `NeedsReauth` when the provider refused the refresh token, `Provider` when the provider failed and the
    /// stored token is no longer valid.
    pub async fn token(&self, connection: &Connection, force: bool, by: &Actor) -> Result<FreshToken> {
        if connection.settings.grant_type == GrantType::ClientCredentials {
            return self.client_credentials_token(connection, force, by).await;
        }
        let handle = &connection.handle;
        let tokens = match (&connection.status, &connection.tokens) {
            (Status::NeedsReauth, _) => {
                let why = connection.last_error.clone().unwrap_or_else(|| {
                    format!("the provider no longer accepts the authorization of '{handle}': reconnect '{handle}' in the latchkey UI")
                });
                return Err(Error::NeedsReauth(why));
            }
            (Status::Pending, _) | (_, None) => {
                return Err(Error::conflict(
                    "not_connected",
                    format!(
                        "'{handle}' is not authorized yet: open its authorization link, or reconnect it in the latchkey UI"
                    ),
                ));
            }
            (_, Some(tokens)) => tokens,
        };
        let now = self.inner.clock.now();
        if !force && !self.inner.policy.is_due(tokens, now) {
            return self.inner.fresh(connection, tokens);
        }
        if tokens.refresh_token.is_none() {
            if force {
                return Err(Error::conflict(
                    "no_refresh_token",
                    format!(
                        "'{handle}' cannot be refreshed: the provider issued no refresh token. Reconnect '{handle}' in the latchkey UI for a new token"
                    ),
                ));
            }
            if is_expired(tokens, now) {
                return Err(self.inner.expired_without_refresh_token(connection, tokens, now).await);
            }
            return self.inner.fresh(connection, tokens);
        }
        // Neither a forced refresh nor a due one calls a provider that asked for a pause or that refused five
        // times in a row: no API key can hammer it.
        if self.inner.refresh_stopped(connection) {
            if !is_expired(tokens, now) {
                return self.inner.fresh(connection, tokens);
            }
            let last = connection.last_error.clone().unwrap_or_else(|| format!("refreshing '{handle}' stopped"));
            return Err(Error::Provider { message: last, retryable: false });
        }
        if let Some(at) = connection.retry_after.filter(|at| *at > now) {
            if force {
                return Err(forced_during_backoff(connection, at, now));
            }
            if !is_expired(tokens, now) {
                return self.inner.fresh(connection, tokens);
            }
            let last = connection.last_error.as_deref().unwrap_or("the last refresh failed");
            let at = connection.retry_after.map(Timestamp::to_rfc3339).unwrap_or_default();
            return Err(Error::Provider {
                message: format!("the token of '{handle}' has expired and {last}; latchkey tries again at {at}"),
                retryable: true,
            });
        }
        let seen = Seen { version: connection.token_version, failures: connection.failure_count };
        match self.refresh(&connection.id, Some(seen), by).await {
            Ok(fresh) => Ok(fresh),
            // A passing provider failure while the stored token is still valid: hand that one out.
            Err(err) if err.is_retryable() && !force && !is_expired(tokens, now) => {
                tracing::warn!(handle = %handle, error = %err, "refresh failed; serving the still-valid token");
                self.inner.fresh(connection, tokens)
            }
            Err(err) => Err(err),
        }
    }

    /// Claims up to `limit` connections due for a background refresh, leased to this process (see
    /// [`latchkey_core::store::ConnectionStore::claim_due_refreshes`]).
    ///
    /// # Errors
    /// A storage failure.
    pub async fn claim_due(&self, limit: u32) -> Result<Vec<ConnectionId>> {
        let now = self.inner.clock.now();
        let until = now.plus_secs(self.inner.lease_secs());
        self.inner.store.claim_due_refreshes(&self.inner.owner, now, until, limit).await
    }

    /// Gives back the lease of a claimed connection that will not be refreshed after all (at shutdown).
    ///
    /// # Errors
    /// A storage failure.
    pub async fn release(&self, id: &ConnectionId) -> Result<()> {
        self.inner.store.release_refresh(id, &self.inner.owner).await
    }

    /// Refreshes the connection if it is still due (used by the background refresher).
    ///
    /// # Errors
    /// As [`TokenService::token`].
    pub async fn refresh_if_due(&self, id: &ConnectionId) -> Result<()> {
        self.refresh(id, None, &Actor::Refresher).await.map(|_| ())
    }

    /// Joins the refresh in flight for `id`, or starts one. `seen` is what the caller read; when the stored token
    /// version has moved past it, somebody else refreshed and no provider call is made. With `None`, the refresh
    /// happens only if the stored token is still due.
    async fn refresh(&self, id: &ConnectionId, seen: Option<Seen>, by: &Actor) -> Result<FreshToken> {
        let shared = {
            let mut inflight = self.inner.inflight.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(existing) = inflight.get(id) {
                existing.clone()
            } else {
                let inner = Arc::clone(&self.inner);
                let task_id = id.clone();
                let by = by.clone();
                let task = self.inner.tasks.spawn(async move {
                    let started = std::time::Instant::now();
                    let outcome = inner.refresh_once(&task_id, seen, &by).await;
                    inner.metrics.refresh_finished(&outcome, started.elapsed());
                    inner.inflight.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&task_id);
                    outcome
                });
                let shared = async move {
                    task.await.unwrap_or_else(|e| Err(Error::Internal(format!("the refresh task failed: {e}"))))
                }
                .boxed()
                .shared();
                inflight.insert(id.clone(), shared.clone());
                shared
            }
        };
        shared.await
    }

    /// Turns a token endpoint answer into the stored form, sealed for connection `id`.
    #[must_use]
    pub fn tokens_from_response(
        &self,
        id: &ConnectionId,
        response: &TokenResponse,
        previous: Option<&StoredTokens>,
        now: Timestamp,
    ) -> (StoredTokens, Option<Timestamp>) {
        self.inner.tokens_from_response(id, response, previous, now)
    }
}

/// The answer to a forced refresh while the connection is in backoff: 429 with `Retry-After` until the time the
/// provider (or latchkey's backoff) set.
fn forced_during_backoff(connection: &Connection, until: Timestamp, now: Timestamp) -> Error {
    let handle = &connection.handle;
    let last = connection.last_error.as_deref().unwrap_or("the last refresh failed");
    let retry_after_secs = u64::try_from(until.secs().saturating_sub(now.secs())).unwrap_or(1).max(1);
    Error::RateLimited {
        message: format!(
            "'{handle}' is not refreshed before {} ({last}): the provider is given that pause; retry in {retry_after_secs} s",
            until.to_rfc3339()
        ),
        retry_after_secs,
    }
}

impl Inner {
    fn lease_secs(&self) -> i64 {
        i64::try_from(self.policy.tuning.lease.as_secs()).unwrap_or(i64::MAX / 4).max(1)
    }

    /// Whether the refresher gave up on this connection after repeated permanent failures.
    fn refresh_stopped(&self, connection: &Connection) -> bool {
        connection.status == Status::Error
            && connection.refresh_at.is_none()
            && connection.failure_count >= self.policy.tuning.stop_after_failures
    }

    fn fresh(&self, connection: &Connection, tokens: &StoredTokens) -> Result<FreshToken> {
        let token = sealing::open(&self.keyring, &connection.id, Column::AccessToken, &tokens.access_token)?;
        Ok(FreshToken {
            token,
            token_type: tokens.token_type.clone(),
            expires_at: tokens.expires_at,
            extra: tokens.extra.clone(),
        })
    }

    async fn expired_without_refresh_token(
        &self,
        connection: &Connection,
        tokens: &StoredTokens,
        now: Timestamp,
    ) -> Error {
        let handle = &connection.handle;
        let at = tokens.expires_at.map(Timestamp::to_rfc3339).unwrap_or_default();
        let message = format!(
            "the access token of '{handle}' expired at {at} and the provider issued no refresh token: reconnect '{handle}' in the latchkey UI"
        );
        let write = FailureWrite {
            status: Status::NeedsReauth,
            last_error: message.clone(),
            failure_count: connection.failure_count,
            retry_after: None,
            now,
        };
        if let Err(e) = self.store.record_failure(&connection.id, &write).await {
            return e;
        }
        tracing::info!(handle = %handle, "token expired without a refresh token; connection needs re-authorization");
        Error::conflict("token_expired", message)
    }

    async fn load(&self, id: &ConnectionId) -> Result<Connection> {
        self.store
            .connection_by_id(id)
            .await?
            .ok_or_else(|| Error::NotFound("the connection was deleted while it was being refreshed".to_owned()))
    }

    /// Claims the lease (or waits for the process that holds it), then refreshes unless somebody already did.
    async fn refresh_once(&self, id: &ConnectionId, seen: Option<Seen>, by: &Actor) -> Result<FreshToken> {
        let deadline = tokio::time::Instant::now() + self.policy.tuning.lease + FOREIGN_REFRESH_GRACE;
        loop {
            let now = self.clock.now();
            if self.store.claim_refresh(id, &self.owner, now, now.plus_secs(self.lease_secs())).await? {
                break;
            }
            // Another process is refreshing: wait for its result to land.
            let current = self.load(id).await?;
            if let Some(result) = self.settled(&current, seen) {
                return result;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Provider {
                    message: format!(
                        "another latchkey process has been refreshing '{}' for too long; try again shortly",
                        current.handle
                    ),
                    retryable: true,
                });
            }
            tokio::time::sleep(FOREIGN_REFRESH_POLL).await;
        }
        let outcome = self.refresh_claimed(id, seen, by).await;
        if outcome.is_err() {
            // Failures release the lease in their write; this covers errors before any write.
            let _ = self.store.release_refresh(id, &self.owner).await;
        }
        outcome
    }

    /// `Some` when the stored row already answers this refresh: somebody refreshed since the caller looked (or,
    /// for a background refresh, the token is not due any more), or somebody's attempt since then failed.
    fn settled(&self, current: &Connection, seen: Option<Seen>) -> Option<Result<FreshToken>> {
        if let Some(tokens) = current.tokens.as_ref() {
            let refreshed = match seen {
                Some(seen) => current.token_version > seen.version,
                None => !self.policy.is_due(tokens, self.clock.now()),
            };
            if refreshed && current.status == Status::Connected {
                return Some(self.fresh(current, tokens));
            }
        }
        let last_error = || current.last_error.clone().unwrap_or_else(|| "the last refresh failed".to_owned());
        if current.status == Status::NeedsReauth {
            return Some(Err(Error::NeedsReauth(last_error())));
        }
        let failed_since = seen.is_none_or(|seen| current.failure_count > seen.failures);
        if failed_since && current.retry_after.is_some_and(|at| at > self.clock.now()) {
            return Some(Err(Error::Provider { message: last_error(), retryable: true }));
        }
        None
    }

    async fn refresh_claimed(&self, id: &ConnectionId, seen: Option<Seen>, by: &Actor) -> Result<FreshToken> {
        let connection = self.load(id).await?;
        if let Some(result) = self.settled(&connection, seen) {
            self.store.release_refresh(id, &self.owner).await?;
            return result;
        }
        let outcome = self.call_provider(&connection).await;
        crate::audit::record_refresh(self.store.as_ref(), &connection, by, &outcome, self.clock.as_ref()).await;
        outcome
    }

    /// Asks the provider for a new token for a connection whose refresh lease this process holds, and stores
    /// the answer (or the failure).
    async fn call_provider(&self, connection: &Connection) -> Result<FreshToken> {
        let id = &connection.id;
        let handle = connection.handle.clone();
        if connection.settings.grant_type == GrantType::ClientCredentials {
            return self.fetch_client_credentials(connection).await;
        }
        let Some(tokens) = connection.tokens.as_ref() else {
            return Err(Error::conflict("not_connected", format!("'{handle}' is not authorized yet")));
        };
        let Some(sealed_refresh) = tokens.refresh_token.as_ref() else {
            return Err(Error::conflict("no_refresh_token", format!("'{handle}' has no refresh token")));
        };
        let refresh_token = sealing::open(&self.keyring, id, Column::RefreshToken, sealed_refresh)?;
        let client_secret = connection
            .client_secret
            .as_ref()
            .map(|s| sealing::open(&self.keyring, id, Column::ClientSecret, s))
            .transpose()?;
        let settings = connection.settings.resolved()?;
        let endpoint = settings.refresh_endpoint().to_owned();
        tracing::debug!(handle = %handle, "refreshing the access token");
        let answer = latchkey_oauth::refresh(&self.http, &settings, client_secret.as_ref(), &refresh_token).await;
        let now = self.clock.now();
        match answer {
            Ok(response) => {
                let (stored, refresh_at) = self.tokens_from_response(id, &response, Some(tokens), now);
                let write =
                    TokenWrite { tokens: stored, refresh_at, now, expected_version: Some(connection.token_version) };
                if self.store.save_tokens(id, &write).await? {
                    tracing::info!(handle = %handle, rotated = response.refresh_token.is_some(), "access token refreshed");
                    return Ok(FreshToken {
                        token: response.access_token.clone(),
                        token_type: write.tokens.token_type,
                        expires_at: write.tokens.expires_at,
                        extra: write.tokens.extra,
                    });
                }
                // Somebody wrote in between (our lease had run out): theirs is the current token.
                tracing::warn!(handle = %handle, "a concurrent refresh landed first; using its token");
                let current = self.load(id).await?;
                let tokens = current.tokens.as_ref().ok_or_else(|| Error::Internal("tokens vanished".into()))?;
                self.fresh(&current, tokens)
            }
            Err(err) => self.refresh_failed(connection, &endpoint, &err, now).await,
        }
    }

    async fn refresh_failed(
        &self,
        connection: &Connection,
        endpoint: &str,
        err: &OAuthError,
        now: Timestamp,
    ) -> Result<FreshToken> {
        let handle = &connection.handle;
        let described = err.describe(endpoint);
        if err.needs_reauth() {
            // A sibling may have rotated the refresh token while we used the old one.
            if let Ok(current) = self.load(&connection.id).await
                && current.token_version > connection.token_version
                && let Some(Ok(fresh)) = self.settled(
                    &current,
                    Some(Seen { version: connection.token_version, failures: connection.failure_count }),
                )
            {
                let _ = self.store.release_refresh(&connection.id, &self.owner).await;
                tracing::info!(handle = %handle, "refresh token was rotated by a sibling; using its token");
                return Ok(fresh);
            }
            let message = format!(
                "the provider rejected the refresh token of '{handle}' ({described}): reconnect '{handle}' in the latchkey UI"
            );
            let write = FailureWrite {
                status: Status::NeedsReauth,
                last_error: message.clone(),
                failure_count: connection.failure_count + 1,
                retry_after: None,
                now,
            };
            self.store.record_failure(&connection.id, &write).await?;
            tracing::warn!(handle = %handle, error = %described, "refresh token rejected; connection needs re-authorization");
            return Err(Error::NeedsReauth(message));
        }
        let failures = connection.failure_count + 1;
        if !err.is_retryable() && failures >= self.policy.tuning.stop_after_failures {
            return self.stop_refreshing(connection, &described, failures, now).await;
        }
        let wait = self.policy.backoff_secs(failures, err.retry_after());
        let message = format!("refreshing '{handle}' failed: {described}");
        let write = FailureWrite {
            status: Status::Error,
            last_error: message.clone(),
            failure_count: failures,
            retry_after: Some(now.plus_secs(wait)),
            now,
        };
        self.store.record_failure(&connection.id, &write).await?;
        tracing::warn!(handle = %handle, error = %described, failures, retry_in_secs = wait, "refresh failed");
        Err(Error::Provider { message, retryable: err.is_retryable() })
    }

    /// Records the last of repeated permanent failures and takes the connection off the refresher's schedule:
    /// no retry loop against a provider that keeps refusing for a reason time will not fix.
    async fn stop_refreshing(
        &self,
        connection: &Connection,
        described: &str,
        failures: i64,
        now: Timestamp,
    ) -> Result<FreshToken> {
        let handle = &connection.handle;
        let message = format!(
            "refreshing '{handle}' failed {failures} times in a row (the last time: {described}); latchkey stopped trying: check the settings of '{handle}' and save them, or reconnect '{handle}' in the latchkey UI"
        );
        let write = FailureWrite {
            status: Status::Error,
            last_error: message.clone(),
            failure_count: failures,
            retry_after: None,
            now,
        };
        self.store.record_failure(&connection.id, &write).await?;
        self.store.stop_refreshing(&connection.id).await?;
        tracing::warn!(handle = %handle, error = %described, failures, "refresh keeps failing; refreshing stopped");
        Err(Error::Provider { message, retryable: false })
    }

    fn tokens_from_response(
        &self,
        id: &ConnectionId,
        response: &TokenResponse,
        previous: Option<&StoredTokens>,
        now: Timestamp,
    ) -> (StoredTokens, Option<Timestamp>) {
        super::stored::stored_tokens(&self.keyring, &self.policy, id, response, previous, now)
    }
}
