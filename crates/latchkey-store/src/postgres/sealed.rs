//! Sealed values for key rotation: [`SealedValueStore`] for PostgreSQL. Table and column names come from
//! [`latchkey_core::sealed_columns::SEALED_COLUMNS`], fixed in the code, so they are written into the SQL text;
//! every value is bound.

use async_trait::async_trait;
use latchkey_core::sealed_columns::{KeyIdBytes, SealedCell, SealedColumn, SealedValueStore};
use latchkey_core::{Result, Sealed};
use sqlx::Row as _;

use super::PostgresStore;
use crate::error::storage;

#[async_trait]
impl SealedValueStore for PostgresStore {
    async fn sealed_values_not_under(
        &self,
        column: &SealedColumn,
        current_key: &[u8; 4],
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<SealedCell>> {
        let SealedColumn { table, column, row_id } = column;
        let sql = format!(
            "SELECT {row_id} AS row_id, {column} AS sealed FROM {table} \
             WHERE {column} IS NOT NULL AND substring({column} from 2 for 4) <> $1 AND ($2::text IS NULL OR {row_id} > $2) \
             ORDER BY {row_id} LIMIT $3"
        );
        let rows = sqlx::query(&sql)
            .bind(current_key.as_slice())
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(storage("reading sealed values to seal again"))?;
        rows.iter()
            .map(|row| {
                Ok(SealedCell {
                    row_id: row.try_get("row_id").map_err(storage("reading sealed values to seal again"))?,
                    sealed: Sealed(row.try_get("sealed").map_err(storage("reading sealed values to seal again"))?),
                })
            })
            .collect()
    }

    async fn replace_sealed_value(
        &self,
        column: &SealedColumn,
        row_id: &str,
        old: &Sealed,
        new: &Sealed,
    ) -> Result<bool> {
        let SealedColumn { table, column, row_id: id_column } = column;
        let sql = format!("UPDATE {table} SET {column} = $1 WHERE {id_column} = $2 AND {column} = $3");
        let done = sqlx::query(&sql)
            .bind(new.as_bytes())
            .bind(row_id)
            .bind(old.as_bytes())
            .execute(&self.pool)
            .await
            .map_err(storage("storing a value sealed again"))?;
        Ok(done.rows_affected() > 0)
    }

    async fn count_sealed_by_key(&self, column: &SealedColumn) -> Result<Vec<(KeyIdBytes, u64)>> {
        let SealedColumn { table, column, .. } = column;
        let sql = format!(
            "SELECT substring({column} from 2 for 4) AS key_id, count(*) AS n FROM {table} \
             WHERE {column} IS NOT NULL GROUP BY key_id ORDER BY key_id"
        );
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await.map_err(storage("counting sealed values by key"))?;
        rows.iter()
            .map(|row| {
                let key: Vec<u8> = row.try_get("key_id").map_err(storage("counting sealed values by key"))?;
                let count: i64 = row.try_get("n").map_err(storage("counting sealed values by key"))?;
                Ok((key, u64::try_from(count).unwrap_or(0)))
            })
            .collect()
    }
}
