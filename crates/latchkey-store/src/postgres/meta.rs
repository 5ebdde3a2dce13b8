//! Named values of the installation: [`MetaStore`] for PostgreSQL.

use async_trait::async_trait;
use latchkey_core::Result;
use latchkey_core::store::MetaStore;

use super::PostgresStore;
use crate::error::storage;

#[async_trait]
impl MetaStore for PostgresStore {
    async fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(storage("reading a value of the installation"))
    }

    async fn put_meta(&self, key: &str, value: &[u8]) -> Result<()> {
        // One statement: two replicas writing the same key at once both succeed, the later one's value stays.
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await
        .map_err(storage("writing a value of the installation"))?;
        Ok(())
    }
}
