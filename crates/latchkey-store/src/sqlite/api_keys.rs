//! API keys: [`ApiKeyStore`] for SQLite.

use async_trait::async_trait;
use latchkey_core::model::{ApiKey, ApiKeyId, Digest, UserId};
use latchkey_core::store::ApiKeyStore;
use latchkey_core::{Result, Timestamp};

use super::SqliteStore;
use super::rows::{self, api_key_columns};
use crate::codec::handles_to_db;
use crate::error::storage;

#[async_trait]
impl ApiKeyStore for SqliteStore {
    async fn insert_api_key(&self, key: &ApiKey) -> Result<()> {
        let handles = handles_to_db(key.handles.as_deref())?;
        sqlx::query(
            "INSERT INTO api_keys (id, user_id, name, prefix, key_hash, handles, created_at, last_used_at, revoked_at, \
             expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(key.id.as_str())
        .bind(key.user_id.as_str())
        .bind(key.name.as_str())
        .bind(key.prefix.as_str())
        .bind(key.key_hash.0.as_slice())
        .bind(handles)
        .bind(key.created_at.secs())
        .bind(key.last_used_at.map(Timestamp::secs))
        .bind(key.revoked_at.map(Timestamp::secs))
        .bind(key.expires_at.map(Timestamp::secs))
        .execute(&self.pool)
        .await
        .map_err(storage("inserting an API key"))?;
        Ok(())
    }

    async fn api_key_by_hash(&self, hash: &Digest) -> Result<Option<ApiKey>> {
        let row = sqlx::query(concat!("SELECT ", api_key_columns!(), " FROM api_keys k WHERE k.key_hash = ?"))
            .bind(hash.0.as_slice())
            .fetch_optional(&self.pool)
            .await
            .map_err(storage("looking up an API key"))?;
        row.as_ref().map(rows::api_key).transpose()
    }

    async fn list_api_keys(&self, user: &UserId) -> Result<Vec<ApiKey>> {
        let found = sqlx::query(concat!(
            "SELECT ",
            api_key_columns!(),
            " FROM api_keys k WHERE k.user_id = ? ORDER BY k.created_at DESC, k.id"
        ))
        .bind(user.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(storage("listing a user's API keys"))?;
        found.iter().map(rows::api_key).collect()
    }

    async fn revoke_api_key(&self, user: &UserId, id: &ApiKeyId, now: Timestamp) -> Result<bool> {
        let done =
            sqlx::query("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND user_id = ? AND revoked_at IS NULL")
                .bind(now.secs())
                .bind(id.as_str())
                .bind(user.as_str())
                .execute(&self.pool)
                .await
                .map_err(storage("revoking an API key"))?;
        Ok(done.rows_affected() > 0)
    }

    async fn touch_api_key(&self, id: &ApiKeyId, now: Timestamp) -> Result<()> {
        sqlx::query("UPDATE api_keys SET last_used_at = ? WHERE id = ?")
            .bind(now.secs())
            .bind(id.as_str())
            .execute(&self.pool)
            .await
            .map_err(storage("recording the use of an API key"))?;
        Ok(())
    }
}
