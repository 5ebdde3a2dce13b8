//! Connections and their tokens: [`ConnectionStore`] for PostgreSQL.
//!
//! Every method is a single statement. The refresh lease (`lease_owner`, `lease_until`) and the token version
//! (`token_version`) are checked in the `WHERE` clause of the write itself. When two replicas write the same row
//! at once, PostgreSQL makes the second wait for the first to commit and then evaluates the second's `WHERE`
//! again against the committed row: the second claim finds the lease taken, the second fenced save finds the
//! version moved, and both report false.

use async_trait::async_trait;
use latchkey_core::model::{
    ApiKey, Connection, ConnectionConfig, ConnectionId, ConnectionSummary, Digest, FailureWrite, Status, TokenWrite,
    UserId,
};
use latchkey_core::store::ConnectionStore;
use latchkey_core::{Error, Handle, Result, Sealed, Timestamp};

use super::PostgresStore;
use super::rows::{self, api_key_columns, connection_columns};
use crate::codec::{kept_values_to_db, settings_to_db};
use crate::error::{storage, unique_as_conflict};

/// The error when an update by id finds no row.
fn no_connection(id: &ConnectionId) -> Error {
    Error::NotFound(format!("there is no connection with id {id}"))
}

fn sealed_bytes(sealed: Option<&Sealed>) -> Option<&[u8]> {
    sealed.map(Sealed::as_bytes)
}

#[async_trait]
impl ConnectionStore for PostgresStore {
    async fn insert_connection(&self, connection: &Connection) -> Result<()> {
        let settings = settings_to_db(&connection.settings)?;
        let tokens = connection.tokens.as_ref();
        let kept_values = tokens.map(|t| kept_values_to_db(&t.extra)).transpose()?.flatten();
        sqlx::query(
            "INSERT INTO connections (id, user_id, handle, name, provider, settings, client_secret, status, \
             last_error, access_token, refresh_token, token_type, expires_at, obtained_at, granted_scope, \
             token_version, failure_count, retry_after, refresh_at, last_refreshed_at, lease_owner, lease_until, \
             created_at, updated_at, kept_values, grant_type) \
             VALUES ($1, $2, $3, $4, $5, $6::json, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, \
             $20, NULL, NULL, $21, $22, $23::json, $24)",
        )
        .bind(connection.id.as_str())
        .bind(connection.user_id.as_str())
        .bind(connection.handle.as_str())
        .bind(connection.name.as_str())
        .bind(connection.provider.as_str())
        .bind(settings)
        .bind(sealed_bytes(connection.client_secret.as_ref()))
        .bind(connection.status.as_str())
        .bind(connection.last_error.as_deref())
        .bind(tokens.map(|t| t.access_token.as_bytes()))
        .bind(tokens.and_then(|t| sealed_bytes(t.refresh_token.as_ref())))
        .bind(tokens.map(|t| t.token_type.as_str()))
        .bind(tokens.and_then(|t| t.expires_at).map(Timestamp::secs))
        .bind(tokens.map(|t| t.obtained_at.secs()))
        .bind(tokens.and_then(|t| t.scope.as_deref()))
        .bind(connection.token_version)
        .bind(connection.failure_count)
        .bind(connection.retry_after.map(Timestamp::secs))
        .bind(connection.refresh_at.map(Timestamp::secs))
        .bind(connection.last_refreshed_at.map(Timestamp::secs))
        .bind(connection.created_at.secs())
        .bind(connection.updated_at.secs())
        .bind(kept_values)
        .bind(connection.settings.grant_type.as_str())
        .execute(&self.pool)
        .await
        .map_err(unique_as_conflict("inserting a connection", "handle", || {
            Error::conflict(
                "handle_taken",
                format!("you already have a connection with the handle '{}': choose another handle", connection.handle),
            )
        }))?;
        Ok(())
    }

    async fn connection(&self, user: &UserId, handle: &Handle) -> Result<Option<Connection>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            connection_columns!(),
            " FROM connections c WHERE c.user_id = $1 AND c.handle = $2"
        ))
        .bind(user.as_str())
        .bind(handle.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(storage("looking up a connection by handle"))?;
        row.as_ref().map(rows::connection).transpose()
    }

    async fn connection_by_id(&self, id: &ConnectionId) -> Result<Option<Connection>> {
        let row = sqlx::query(concat!("SELECT ", connection_columns!(), " FROM connections c WHERE c.id = $1"))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(storage("looking up a connection by id"))?;
        row.as_ref().map(rows::connection).transpose()
    }

    async fn list_connections(&self, user: &UserId) -> Result<Vec<Connection>> {
        let found = sqlx::query(concat!(
            "SELECT ",
            connection_columns!(),
            " FROM connections c WHERE c.user_id = $1 ORDER BY c.handle"
        ))
        .bind(user.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(storage("listing a user's connections"))?;
        found.iter().map(rows::connection).collect()
    }

    async fn list_connection_summaries(&self, user: &UserId) -> Result<Vec<ConnectionSummary>> {
        // Only what the list shows: no sealed columns, and the scopes picked out of the settings by PostgreSQL.
        let found = sqlx::query(
            "SELECT handle AS c_handle, name AS c_name, provider AS c_provider, status AS c_status, \
             last_error AS c_last_error, settings->>'scopes' AS c_scopes, granted_scope AS c_granted_scope, \
             CASE WHEN access_token IS NULL THEN 0::bigint ELSE 1::bigint END AS c_has_tokens, \
             expires_at AS c_expires_at, last_refreshed_at AS c_last_refreshed_at, \
             settings->>'grant_type' AS c_grant_type \
             FROM connections WHERE user_id = $1 ORDER BY handle",
        )
        .bind(user.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(storage("listing a user's connections"))?;
        found.iter().map(crate::rows::connection_summary).collect()
    }

    async fn key_and_connection(
        &self,
        key_hash: &Digest,
        handle: &Handle,
    ) -> Result<Option<(ApiKey, Option<Connection>)>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            api_key_columns!(),
            ", ",
            connection_columns!(),
            " FROM api_keys k LEFT JOIN connections c ON c.user_id = k.user_id AND c.handle = $1 \
             WHERE k.key_hash = $2"
        ))
        .bind(handle.as_str())
        .bind(key_hash.0.as_slice())
        .fetch_optional(&self.pool)
        .await
        .map_err(storage("looking up an API key and its connection"))?;
        let Some(row) = row else {
            return Ok(None);
        };
        Ok(Some((rows::api_key(&row)?, rows::optional_connection(&row)?)))
    }

    async fn update_connection_config(
        &self,
        id: &ConnectionId,
        config: &ConnectionConfig,
        now: Timestamp,
    ) -> Result<()> {
        let settings = settings_to_db(&config.settings)?;
        let done = sqlx::query(
            "UPDATE connections SET name = $1, provider = $2, settings = $3::json, \
             client_secret = COALESCE($4, client_secret), updated_at = $5, grant_type = $7 WHERE id = $6",
        )
        .bind(config.name.as_str())
        .bind(config.provider.as_str())
        .bind(settings)
        .bind(sealed_bytes(config.client_secret.as_ref()))
        .bind(now.secs())
        .bind(id.as_str())
        .bind(config.settings.grant_type.as_str())
        .execute(&self.pool)
        .await
        .map_err(storage("updating the settings of a connection"))?;
        if done.rows_affected() == 0 {
            return Err(no_connection(id));
        }
        Ok(())
    }

    async fn reset_connection(
        &self,
        id: &ConnectionId,
        config: &ConnectionConfig,
        last_error: &str,
        now: Timestamp,
    ) -> Result<()> {
        let settings = settings_to_db(&config.settings)?;
        let what = "resetting a connection whose credential route changed";
        let mut tx = self.pool.begin().await.map_err(storage(what))?;
        let done = sqlx::query(
            "UPDATE connections SET name = $1, provider = $2, settings = $3::json, client_secret = $4, \
             grant_type = $5, updated_at = $6, status = 'pending', last_error = $7, \
             access_token = NULL, refresh_token = NULL, token_type = NULL, expires_at = NULL, obtained_at = NULL, \
             granted_scope = NULL, kept_values = NULL, refresh_at = NULL, failure_count = 0, retry_after = NULL, \
             lease_owner = NULL, lease_until = NULL, token_version = token_version + 1 WHERE id = $8",
        )
        .bind(config.name.as_str())
        .bind(config.provider.as_str())
        .bind(settings)
        .bind(sealed_bytes(config.client_secret.as_ref()))
        .bind(config.settings.grant_type.as_str())
        .bind(now.secs())
        .bind(last_error)
        .bind(id.as_str())
        .execute(&mut *tx)
        .await
        .map_err(storage(what))?;
        if done.rows_affected() == 0 {
            return Err(no_connection(id));
        }
        // The code of an authorization begun under the old settings must not reach the new token URL.
        for statement in
            ["DELETE FROM auth_flows WHERE connection_id = $1", "DELETE FROM device_flows WHERE connection_id = $1"]
        {
            sqlx::query(statement).bind(id.as_str()).execute(&mut *tx).await.map_err(storage(what))?;
        }
        tx.commit().await.map_err(storage(what))
    }

    async fn set_status(
        &self,
        id: &ConnectionId,
        status: Status,
        last_error: Option<&str>,
        now: Timestamp,
    ) -> Result<()> {
        let done = sqlx::query("UPDATE connections SET status = $1, last_error = $2, updated_at = $3 WHERE id = $4")
            .bind(status.as_str())
            .bind(last_error)
            .bind(now.secs())
            .bind(id.as_str())
            .execute(&self.pool)
            .await
            .map_err(storage("setting the status of a connection"))?;
        if done.rows_affected() == 0 {
            return Err(no_connection(id));
        }
        Ok(())
    }

    async fn delete_connection(&self, id: &ConnectionId) -> Result<bool> {
        // The connection's flows go with it: auth_flows.connection_id is ON DELETE CASCADE.
        let done = sqlx::query("DELETE FROM connections WHERE id = $1")
            .bind(id.as_str())
            .execute(&self.pool)
            .await
            .map_err(storage("deleting a connection"))?;
        Ok(done.rows_affected() > 0)
    }

    async fn save_tokens(&self, id: &ConnectionId, write: &TokenWrite) -> Result<bool> {
        // The new access token and the (possibly rotated) refresh token land in the same row write, committed
        // before this returns; the version guard is re-checked against the committed row if another replica's
        // save of the same version got there first.
        let tokens = &write.tokens;
        let done = sqlx::query(
            "UPDATE connections SET access_token = $1, refresh_token = $2, token_type = $3, expires_at = $4, \
             obtained_at = $5, granted_scope = $6, refresh_at = $7, status = 'connected', last_error = NULL, \
             failure_count = 0, retry_after = NULL, last_refreshed_at = $8, updated_at = $8, \
             token_version = token_version + 1, lease_owner = NULL, lease_until = NULL, kept_values = $11::json \
             WHERE id = $9 AND ($10::bigint IS NULL OR token_version = $10)",
        )
        .bind(tokens.access_token.as_bytes())
        .bind(sealed_bytes(tokens.refresh_token.as_ref()))
        .bind(tokens.token_type.as_str())
        .bind(tokens.expires_at.map(Timestamp::secs))
        .bind(tokens.obtained_at.secs())
        .bind(tokens.scope.as_deref())
        .bind(write.refresh_at.map(Timestamp::secs))
        .bind(write.now.secs())
        .bind(id.as_str())
        .bind(write.expected_version)
        .bind(kept_values_to_db(&tokens.extra)?)
        .execute(&self.pool)
        .await
        .map_err(storage("saving the tokens of a connection"))?;
        Ok(done.rows_affected() > 0)
    }

    async fn record_failure(&self, id: &ConnectionId, write: &FailureWrite) -> Result<()> {
        let done = sqlx::query(
            "UPDATE connections SET status = $1, last_error = $2, failure_count = $3, retry_after = $4, \
             updated_at = $5, lease_owner = NULL, lease_until = NULL WHERE id = $6",
        )
        .bind(write.status.as_str())
        .bind(write.last_error.as_str())
        .bind(write.failure_count)
        .bind(write.retry_after.map(Timestamp::secs))
        .bind(write.now.secs())
        .bind(id.as_str())
        .execute(&self.pool)
        .await
        .map_err(storage("recording a failure of a connection"))?;
        if done.rows_affected() == 0 {
            return Err(no_connection(id));
        }
        Ok(())
    }

    async fn claim_refresh(&self, id: &ConnectionId, owner: &str, now: Timestamp, until: Timestamp) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE connections SET lease_owner = $1, lease_until = $2 \
             WHERE id = $3 AND (lease_owner IS NULL OR lease_until IS NULL OR lease_until <= $4 OR lease_owner = $1)",
        )
        .bind(owner)
        .bind(until.secs())
        .bind(id.as_str())
        .bind(now.secs())
        .execute(&self.pool)
        .await
        .map_err(storage("claiming the refresh of a connection"))?;
        Ok(done.rows_affected() > 0)
    }

    async fn release_refresh(&self, id: &ConnectionId, owner: &str) -> Result<()> {
        sqlx::query("UPDATE connections SET lease_owner = NULL, lease_until = NULL WHERE id = $1 AND lease_owner = $2")
            .bind(id.as_str())
            .bind(owner)
            .execute(&self.pool)
            .await
            .map_err(storage("releasing the refresh of a connection"))?;
        Ok(())
    }

    async fn connections_due(&self, now: Timestamp, limit: u32) -> Result<Vec<ConnectionId>> {
        // A plain read, answered from the partial index `connections_due`. It takes no row locks: the lease that
        // keeps two replicas from refreshing one connection is `claim_refresh`'s guarded UPDATE, and a
        // `FOR UPDATE SKIP LOCKED` here would hold its locks only until this statement ends (see decisions.md).
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM connections \
             WHERE refresh_at <= $1 AND (refresh_token IS NOT NULL OR grant_type = 'client_credentials') \
             AND status IN ('connected', 'error') \
             AND (retry_after IS NULL OR retry_after <= $1) AND (lease_until IS NULL OR lease_until <= $1) \
             ORDER BY refresh_at, id LIMIT $2",
        )
        .bind(now.secs())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(storage("finding connections due for refresh"))?;
        Ok(ids.into_iter().map(ConnectionId).collect())
    }

    async fn claim_due_refreshes(
        &self,
        owner: &str,
        now: Timestamp,
        until: Timestamp,
        limit: u32,
    ) -> Result<Vec<ConnectionId>> {
        // The inner SELECT locks the rows it picks and skips those another replica's claim holds locked right
        // now; a row whose lease a committed claim took is re-checked against the committed version and fails the
        // lease condition. So concurrent claims come back with disjoint sets, and nobody waits for anybody. Users
        // take turns in the pick (each one's most urgent, then each one's next, ...), so one user's backlog cannot
        // fill a claim. Window functions cannot sit beside FOR UPDATE, so the turns come from a joined sub-select
        // and only `c` is locked; the limit stays beside SKIP LOCKED, so rows skipped make room for others.
        let mut ids: Vec<(String, Option<i64>)> = sqlx::query_as(
            "UPDATE connections SET lease_owner = $1, lease_until = $2 \
             WHERE id IN (SELECT c.id FROM connections c JOIN (SELECT id, \
             row_number() OVER (PARTITION BY user_id ORDER BY refresh_at, id) AS turn FROM connections \
             WHERE refresh_at <= $3 AND (refresh_token IS NOT NULL OR grant_type = 'client_credentials') \
             AND status IN ('connected', 'error') \
             AND (retry_after IS NULL OR retry_after <= $3) AND (lease_until IS NULL OR lease_until <= $3)) due \
             ON due.id = c.id \
             WHERE c.refresh_at <= $3 AND (c.refresh_token IS NOT NULL OR c.grant_type = 'client_credentials') \
             AND c.status IN ('connected', 'error') \
             AND (c.retry_after IS NULL OR c.retry_after <= $3) AND (c.lease_until IS NULL OR c.lease_until <= $3) \
             ORDER BY due.turn, c.refresh_at, c.id LIMIT $4 FOR UPDATE OF c SKIP LOCKED) \
             RETURNING id, refresh_at",
        )
        .bind(owner)
        .bind(until.secs())
        .bind(now.secs())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(storage("claiming connections due for refresh"))?;
        ids.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
        Ok(ids.into_iter().map(|(id, _)| ConnectionId(id)).collect())
    }

    async fn stop_refreshing(&self, id: &ConnectionId) -> Result<()> {
        sqlx::query("UPDATE connections SET refresh_at = NULL WHERE id = $1")
            .bind(id.as_str())
            .execute(&self.pool)
            .await
            .map_err(storage("taking a connection off the refresh schedule"))?;
        Ok(())
    }
}
