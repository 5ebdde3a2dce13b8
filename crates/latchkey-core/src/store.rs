//! The storage interface. `latchkey-store` implements it for SQLite (and later PostgreSQL); the server holds it
//! as `Arc<dyn Store>`. Every method is one statement or one transaction, so a crash never leaves a half-written
//! record. Implementations map their driver's errors to [`Error::Storage`], and a unique-key violation to
//! [`Error::Conflict`].
//!
//! [`Error::Storage`]: crate::Error::Storage
//! [`Error::Conflict`]: crate::Error::Conflict

use async_trait::async_trait;

use crate::audit::{AuditEntry, AuditQuery, AuditRecord};
use crate::model::{
    ApiKey, ApiKeyId, AuthFlow, Connection, ConnectionConfig, ConnectionId, ConnectionSummary, DeviceFlow, Digest,
    FailureWrite, FlowStart, Session, TokenWrite, User, UserId,
};
use crate::sealed_columns::SealedValueStore;
use crate::{Handle, Result, Timestamp};

/// Users and their passwords.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Inserts a user. A taken username is `Conflict { code: "username_taken" }`.
    async fn insert_user(&self, user: &User) -> Result<()>;
    /// The user with this username.
    async fn user_by_username(&self, username: &str) -> Result<Option<User>>;
    /// The user with this id.
    async fn user_by_id(&self, id: &UserId) -> Result<Option<User>>;
    /// How many users exist (zero means first-run set-up is open).
    async fn count_users(&self) -> Result<u64>;
}

/// API keys, looked up by the digest of the key.
#[async_trait]
pub trait ApiKeyStore: Send + Sync {
    /// Inserts a key.
    async fn insert_api_key(&self, key: &ApiKey) -> Result<()>;
    /// The key with this digest, revoked or not.
    async fn api_key_by_hash(&self, hash: &Digest) -> Result<Option<ApiKey>>;
    /// The user's keys, newest first.
    async fn list_api_keys(&self, user: &UserId) -> Result<Vec<ApiKey>>;
    /// Marks the user's key revoked; false when no such unrevoked key exists.
    async fn revoke_api_key(&self, user: &UserId, id: &ApiKeyId, now: Timestamp) -> Result<bool>;
    /// Records that the key was used.
    async fn touch_api_key(&self, id: &ApiKeyId, now: Timestamp) -> Result<()>;
}

/// Connections and their tokens.
#[async_trait]
pub trait ConnectionStore: Send + Sync {
    /// Inserts a new connection. A handle the user already has is `Conflict { code: "handle_taken" }`.
    async fn insert_connection(&self, connection: &Connection) -> Result<()>;
    /// The user's connection with this handle.
    async fn connection(&self, user: &UserId, handle: &Handle) -> Result<Option<Connection>>;
    /// The connection with this id.
    async fn connection_by_id(&self, id: &ConnectionId) -> Result<Option<Connection>>;
    /// The user's connections, ordered by handle.
    async fn list_connections(&self, user: &UserId) -> Result<Vec<Connection>>;
    /// The user's connections as the web UI's list shows them, ordered by handle. The default reads whole
    /// connections; a backend may read only the columns a summary needs.
    async fn list_connection_summaries(&self, user: &UserId) -> Result<Vec<ConnectionSummary>> {
        Ok(self.list_connections(user).await?.iter().map(ConnectionSummary::of).collect())
    }
    /// The token hot path in one indexed read: the API key with this digest and, when it exists, its user's
    /// connection with this handle.
    async fn key_and_connection(
        &self,
        key_hash: &Digest,
        handle: &Handle,
    ) -> Result<Option<(ApiKey, Option<Connection>)>>;
    /// Replaces name, provider and settings, and the client secret when `config.client_secret` is `Some`.
    async fn update_connection_config(
        &self,
        id: &ConnectionId,
        config: &ConnectionConfig,
        now: Timestamp,
    ) -> Result<()>;
    /// Replaces name, provider, settings and the client secret (`None` removes it), and, in the same
    /// transaction, discards everything obtained under the old settings: the tokens and kept values, the refresh
    /// schedule, lease and backoff (`token_version` + 1, so an in-flight refresh cannot store its result), and
    /// the connection's unfinished browser and device authorizations. Status `pending` with `last_error`.
    /// Used when the settings that decide where credentials go have changed.
    async fn reset_connection(
        &self,
        id: &ConnectionId,
        config: &ConnectionConfig,
        last_error: &str,
        now: Timestamp,
    ) -> Result<()>;
    /// Sets the status and its message without touching tokens (for example `pending` after an edit).
    async fn set_status(
        &self,
        id: &ConnectionId,
        status: crate::model::Status,
        last_error: Option<&str>,
        now: Timestamp,
    ) -> Result<()>;
    /// Deletes the connection and its flows; false when it did not exist.
    async fn delete_connection(&self, id: &ConnectionId) -> Result<bool>;
    /// Stores new tokens in one write: status `connected`, no error, no backoff, `token_version` + 1, refresh
    /// lease released. Returns false (and writes nothing) when `expected_version` is set and no longer current.
    async fn save_tokens(&self, id: &ConnectionId, write: &TokenWrite) -> Result<bool>;
    /// Records a failed exchange or refresh and releases the refresh lease; the stored tokens stay.
    async fn record_failure(&self, id: &ConnectionId, write: &FailureWrite) -> Result<()>;
    /// Takes the refresh lease for `owner` until `until`, if nobody else holds an unexpired one.
    async fn claim_refresh(&self, id: &ConnectionId, owner: &str, now: Timestamp, until: Timestamp) -> Result<bool>;
    /// Gives up the lease if `owner` holds it.
    async fn release_refresh(&self, id: &ConnectionId, owner: &str) -> Result<()>;
    /// Connections whose `refresh_at` has come, that hold a refresh token (or use the `client_credentials` grant,
    /// which renews without one), are `connected` or `error`, and are not in backoff; at most `limit`, most
    /// urgent first.
    async fn connections_due(&self, now: Timestamp, limit: u32) -> Result<Vec<ConnectionId>>;
    /// Claims up to `limit` of the connections `connections_due` would list, taking their refresh lease for
    /// `owner` until `until` in the same statement, and returns their ids, most urgent first. Users take turns
    /// in the pick (each user's most urgent, then each user's next, ...), so that one user's many due connections
    /// cannot fill a claim. Replicas claiming at the same time get disjoint sets.
    async fn claim_due_refreshes(
        &self,
        owner: &str,
        now: Timestamp,
        until: Timestamp,
        limit: u32,
    ) -> Result<Vec<ConnectionId>>;
    /// Takes the connection off the refresher's schedule (`refresh_at` cleared), after repeated permanent
    /// failures; the next saved token schedules it again.
    async fn stop_refreshing(&self, id: &ConnectionId) -> Result<()>;
}

/// Authorization flows.
#[async_trait]
pub trait FlowStore: Send + Sync {
    /// Inserts a flow with its link digest.
    async fn insert_flow(&self, flow: &AuthFlow) -> Result<()>;
    /// Opens the link once: for an unexpired, unstarted flow with this link digest, records `start` and returns
    /// the flow as updated. `None` when the link is unknown, expired or already used.
    async fn start_flow(&self, link_hash: &Digest, start: &FlowStart) -> Result<Option<AuthFlow>>;
    /// The flow with this link digest if the link would still open (unexpired at `now`, not started), without
    /// opening it.
    async fn flow_by_link(&self, link_hash: &Digest, now: Timestamp) -> Result<Option<AuthFlow>>;
    /// The flow with this state digest, in whatever stage.
    async fn flow_by_state(&self, state_hash: &Digest) -> Result<Option<AuthFlow>>;
    /// Marks the flow completed; false when it already was (the callback runs at most once).
    async fn complete_flow(&self, id: &crate::model::FlowId, now: Timestamp) -> Result<bool>;
    /// Deletes flows that expired before `now`; returns how many.
    async fn delete_expired_flows(&self, now: Timestamp) -> Result<u64>;
}

/// Device authorizations in progress (RFC 8628), kept in the database so that polling survives a restart.
#[async_trait]
pub trait DeviceFlowStore: Send + Sync {
    /// Stores the device flow of its connection, replacing any earlier one (and its poll lease).
    async fn put_device_flow(&self, flow: &DeviceFlow) -> Result<()>;
    /// The device flow of a connection.
    async fn device_flow(&self, connection: &ConnectionId) -> Result<Option<DeviceFlow>>;
    /// The device flows whose next poll has come (`next_poll_at <= now`) and whose poll lease is free or expired,
    /// at most `limit`, chosen by turns between users (each user's earliest, then each user's second, ...) so that
    /// one user's many flows cannot fill the list; listed earliest first.
    async fn device_flows_due(&self, now: Timestamp, limit: u32) -> Result<Vec<DeviceFlow>>;
    /// Takes the poll lease of a connection's device flow for `owner` until `until`, when the flow is due
    /// (`next_poll_at <= now`) and nobody holds an unexpired lease; false otherwise. Of several pollers (in one
    /// process or several replicas) claiming at once, exactly one wins, so a device code is never polled twice
    /// at the same time.
    async fn claim_device_poll(
        &self,
        connection: &ConnectionId,
        owner: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool>;
    /// Records the interval and the time of the next poll, and releases the poll lease.
    async fn reschedule_device_flow(
        &self,
        connection: &ConnectionId,
        interval_secs: i64,
        next_poll_at: Timestamp,
    ) -> Result<()>;
    /// Deletes the device flow of a connection (approved, denied or expired).
    async fn delete_device_flow(&self, connection: &ConnectionId) -> Result<()>;
}

/// Browser sessions and the one-time set-up link.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Inserts a session.
    async fn insert_session(&self, session: &Session) -> Result<()>;
    /// The unexpired session with this digest and its user.
    async fn session(&self, id_hash: &Digest, now: Timestamp) -> Result<Option<(Session, User)>>;
    /// Ends a session.
    async fn delete_session(&self, id_hash: &Digest) -> Result<()>;
    /// Deletes expired sessions; returns how many.
    async fn delete_expired_sessions(&self, now: Timestamp) -> Result<u64>;
    /// Replaces any set-up token with this one.
    async fn put_setup_token(&self, hash: &Digest, expires_at: Timestamp) -> Result<()>;
    /// Whether an unexpired set-up token with this digest exists.
    async fn setup_token_valid(&self, hash: &Digest, now: Timestamp) -> Result<bool>;
    /// Creates the first user if the set-up token is valid and no user exists yet, consuming the token, in one
    /// transaction. Returns false (and writes nothing) otherwise.
    async fn complete_setup(&self, hash: &Digest, user: &User, now: Timestamp) -> Result<bool>;
}

/// Small named values of the installation (for example the sealed key check).
#[async_trait]
pub trait MetaStore: Send + Sync {
    /// The value under `key`.
    async fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// Sets `key` to `value`.
    async fn put_meta(&self, key: &str, value: &[u8]) -> Result<()>;
}

/// The audit log: append-only records of token reads, refreshes and changes.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends the records in one transaction with one multi-row insert: all of them are written, or none.
    async fn insert_audit_records(&self, records: &[AuditRecord]) -> Result<()>;
    /// The records that `query` selects, newest first.
    async fn audit_records(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>>;
}

/// What operations ask of the database: readiness and the counts that metrics report.
#[async_trait]
pub trait OpsStore: Send + Sync {
    /// Ok when the database answers and every migration this build knows is applied; otherwise an error that
    /// says which.
    async fn readiness(&self) -> Result<()>;
    /// How many connections have each status, in one grouped count; statuses without connections are left out.
    async fn count_connections_by_status(&self) -> Result<Vec<(crate::model::Status, u64)>>;
    /// How many connections `connections_due` would find at `now`, without a limit.
    async fn count_connections_due(&self, now: Timestamp) -> Result<u64>;
}

/// Webhooks and their outbox. Events are queued by the backend itself in the statement that changes a status or
/// deletes a connection, for users that have a webhook.
#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Sets the user's webhook, replacing URL and secret.
    async fn put_webhook(&self, webhook: &crate::webhook::Webhook) -> Result<()>;
    /// The user's webhook.
    async fn webhook(&self, user: &UserId) -> Result<Option<crate::webhook::Webhook>>;
    /// Removes the user's webhook and drops their undelivered events; false when there was none.
    async fn delete_webhook(&self, user: &UserId) -> Result<bool>;
    /// Claims up to `limit` pending events whose attempt time has come and that no live lease holds, for `owner`
    /// until `until`; each with its user's webhook. At most one event per user is in flight: a user with a live
    /// lease on an event gets none, any other user only their oldest due one, so that one user's backlog cannot
    /// fill a claim and each user's events go out in order.
    async fn claim_webhook_events(
        &self,
        owner: &str,
        now: Timestamp,
        until: Timestamp,
        limit: u32,
    ) -> Result<Vec<crate::webhook::ClaimedEvent>>;
    /// Records an attempt of an event `owner` claimed and releases the lease; false when the lease was lost.
    async fn finish_webhook_event(
        &self,
        id: i64,
        owner: &str,
        outcome: &crate::webhook::AttemptOutcome,
    ) -> Result<bool>;
    /// Gives back the lease `owner` holds on an event without recording an attempt (it was not sent).
    async fn release_webhook_event(&self, id: i64, owner: &str) -> Result<()>;
    /// The user's most recent events, newest first.
    async fn webhook_events(&self, user: &UserId, limit: u32) -> Result<Vec<crate::webhook::WebhookEvent>>;
}

/// Everything latchkey stores, behind one object.
#[async_trait]
pub trait Store:
    UserStore
    + ApiKeyStore
    + ConnectionStore
    + FlowStore
    + DeviceFlowStore
    + SessionStore
    + MetaStore
    + AuditStore
    + OpsStore
    + WebhookStore
    + SealedValueStore
{
    /// A cheap round trip to the database, for health checks.
    async fn ping(&self) -> Result<()>;
    /// The backend's name, for logs: `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;
}
