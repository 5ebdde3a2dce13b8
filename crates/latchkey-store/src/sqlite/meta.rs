//! Named values of the installation: [`MetaStore`] for SQLite.

use async_trait::async_trait;
use latchkey_core::Result;
use latchkey_core::store::MetaStore;

use super::SqliteStore;
use crate::error::storage;

#[async_trait]
impl MetaStore for SqliteStore {
    async fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        sqlx::query_scalar("SELECT value FROM meta WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(storage("reading a value of the installation"))
    }

    async fn put_meta(&self, key: &str, value: &[u8]) -> Result<()> {
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await
        .map_err(storage("writing a value of the installation"))?;
        Ok(())
    }
}
