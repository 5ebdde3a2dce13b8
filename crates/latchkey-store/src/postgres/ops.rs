//! Readiness and the counts behind the metrics: [`OpsStore`] for PostgreSQL.

use async_trait::async_trait;
use latchkey_core::model::Status;
use latchkey_core::store::OpsStore;
use latchkey_core::{Result, Timestamp};

use super::{MIGRATOR, PostgresStore};
use crate::codec::{count_from_db, status_from_db};
use crate::error::storage;

#[async_trait]
impl OpsStore for PostgresStore {
    async fn readiness(&self) -> Result<()> {
        let applied: Vec<i64> =
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
                .fetch_all(&self.pool)
                .await
                .map_err(storage("reading which migrations are applied"))?;
        crate::missing_migrations(&MIGRATOR, &applied)
    }

    async fn count_connections_by_status(&self) -> Result<Vec<(Status, u64)>> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT status, COUNT(*) FROM connections GROUP BY status ORDER BY status")
                .fetch_all(&self.pool)
                .await
                .map_err(storage("counting connections by status"))?;
        rows.into_iter().map(|(status, count)| Ok((status_from_db(&status)?, count_from_db(count)?))).collect()
    }

    async fn count_connections_due(&self, now: Timestamp) -> Result<u64> {
        // The same conditions as `connections_due`.
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM connections \
             WHERE refresh_at <= $1 AND (refresh_token IS NOT NULL OR grant_type = 'client_credentials') \
             AND status IN ('connected', 'error') \
             AND (retry_after IS NULL OR retry_after <= $1) AND (lease_until IS NULL OR lease_until <= $1)",
        )
        .bind(now.secs())
        .fetch_one(&self.pool)
        .await
        .map_err(storage("counting connections due for refresh"))?;
        count_from_db(count)
    }
}
