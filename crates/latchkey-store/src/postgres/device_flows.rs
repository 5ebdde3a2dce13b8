//! Device authorizations in progress (RFC 8628): [`DeviceFlowStore`] for PostgreSQL.

use async_trait::async_trait;
use latchkey_core::model::{ConnectionId, DeviceFlow};
use latchkey_core::store::DeviceFlowStore;
use latchkey_core::{Result, Timestamp};

use super::PostgresStore;
use crate::error::storage;
use crate::rows;

/// The columns of `device_flows`, under the `d_` prefix.
const COLUMNS: &str = "connection_id AS d_connection_id, device_code AS d_device_code, user_code AS d_user_code, \
     verification_uri AS d_verification_uri, verification_uri_complete AS d_verification_uri_complete, \
     expires_at AS d_expires_at, interval_secs AS d_interval_secs, next_poll_at AS d_next_poll_at, \
     created_at AS d_created_at";

#[async_trait]
impl DeviceFlowStore for PostgresStore {
    async fn put_device_flow(&self, flow: &DeviceFlow) -> Result<()> {
        sqlx::query(
            "INSERT INTO device_flows (connection_id, device_code, user_code, verification_uri, \
             verification_uri_complete, expires_at, interval_secs, next_poll_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (connection_id) DO UPDATE SET device_code = excluded.device_code, \
             user_code = excluded.user_code, verification_uri = excluded.verification_uri, \
             verification_uri_complete = excluded.verification_uri_complete, expires_at = excluded.expires_at, \
             interval_secs = excluded.interval_secs, next_poll_at = excluded.next_poll_at, \
             created_at = excluded.created_at, poll_owner = NULL, poll_lease_until = 0",
        )
        .bind(flow.connection_id.as_str())
        .bind(flow.device_code.as_bytes())
        .bind(flow.user_code.as_str())
        .bind(flow.verification_uri.as_str())
        .bind(flow.verification_uri_complete.as_deref())
        .bind(flow.expires_at.secs())
        .bind(flow.interval_secs)
        .bind(flow.next_poll_at.secs())
        .bind(flow.created_at.secs())
        .execute(&self.pool)
        .await
        .map_err(storage("storing a device authorization"))?;
        Ok(())
    }

    async fn device_flow(&self, connection: &ConnectionId) -> Result<Option<DeviceFlow>> {
        let query = format!("SELECT {COLUMNS} FROM device_flows WHERE connection_id = $1");
        let row = sqlx::query(&query)
            .bind(connection.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(storage("reading a device authorization"))?;
        row.as_ref().map(rows::device_flow).transpose()
    }

    async fn device_flows_due(&self, now: Timestamp, limit: u32) -> Result<Vec<DeviceFlow>> {
        let query = format!(
            "SELECT {COLUMNS} FROM device_flows WHERE connection_id IN (SELECT due.connection_id FROM (\
             SELECT d.connection_id, d.next_poll_at, \
             row_number() OVER (PARTITION BY c.user_id ORDER BY d.next_poll_at, d.connection_id) AS turn \
             FROM device_flows d JOIN connections c ON c.id = d.connection_id \
             WHERE d.next_poll_at <= $1 AND d.poll_lease_until <= $1) due \
             ORDER BY due.turn, due.next_poll_at, due.connection_id LIMIT $2) \
             ORDER BY next_poll_at, connection_id"
        );
        let found = sqlx::query(&query)
            .bind(now.secs())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(storage("finding device authorizations due for a poll"))?;
        found.iter().map(rows::device_flow).collect()
    }

    async fn reschedule_device_flow(
        &self,
        connection: &ConnectionId,
        interval_secs: i64,
        next_poll_at: Timestamp,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE device_flows SET interval_secs = $1, next_poll_at = $2, poll_owner = NULL, \
             poll_lease_until = 0 WHERE connection_id = $3",
        )
        .bind(interval_secs)
        .bind(next_poll_at.secs())
        .bind(connection.as_str())
        .execute(&self.pool)
        .await
        .map_err(storage("rescheduling a device authorization"))?;
        Ok(())
    }

    async fn claim_device_poll(
        &self,
        connection: &ConnectionId,
        owner: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE device_flows SET poll_owner = $1, poll_lease_until = $2 \
             WHERE connection_id = $3 AND next_poll_at <= $4 AND poll_lease_until <= $4",
        )
        .bind(owner)
        .bind(until.secs())
        .bind(connection.as_str())
        .bind(now.secs())
        .execute(&self.pool)
        .await
        .map_err(storage("claiming a device authorization's poll"))?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_device_flow(&self, connection: &ConnectionId) -> Result<()> {
        sqlx::query("DELETE FROM device_flows WHERE connection_id = $1")
            .bind(connection.as_str())
            .execute(&self.pool)
            .await
            .map_err(storage("deleting a device authorization"))?;
        Ok(())
    }
}
