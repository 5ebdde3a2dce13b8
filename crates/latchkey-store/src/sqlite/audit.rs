//! The audit log: [`AuditStore`] for SQLite.

use async_trait::async_trait;
use latchkey_core::Result;
use latchkey_core::audit::{AuditEntry, AuditQuery, AuditRecord};
use latchkey_core::store::AuditStore;
use sqlx::{QueryBuilder, Sqlite};

use super::SqliteStore;
use crate::error::storage;
use crate::rows;

/// The columns of `audit_log`, under the `a_` prefix.
const COLUMNS: &str = "id AS a_id, at AS a_at, user_id AS a_user_id, actor AS a_actor, api_key_id AS a_api_key_id, \
     api_key_prefix AS a_api_key_prefix, action AS a_action, handle AS a_handle, subject_key AS a_subject_key, \
     outcome AS a_outcome";

#[async_trait]
impl AuditStore for SqliteStore {
    async fn insert_audit_records(&self, records: &[AuditRecord]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let mut builder: QueryBuilder<'_, Sqlite> = QueryBuilder::new(
            "INSERT INTO audit_log (at, user_id, actor, api_key_id, api_key_prefix, action, handle, subject_key, \
             outcome) ",
        );
        builder.push_values(records, |mut row, record| {
            let key = record.actor.api_key();
            row.push_bind(record.at.secs())
                .push_bind(record.user_id.as_str())
                .push_bind(record.actor.kind())
                .push_bind(key.map(|(id, _)| id.as_str()))
                .push_bind(key.map(|(_, prefix)| prefix))
                .push_bind(record.action.as_str())
                .push_bind(record.handle.as_ref().map(|h| h.as_str()))
                .push_bind(record.subject_key.as_deref())
                .push_bind(record.outcome.as_str());
        });
        // One statement is one transaction in SQLite: the batch is written whole or not at all.
        builder.build().execute(&self.pool).await.map_err(storage("writing audit records"))?;
        Ok(())
    }

    async fn audit_records(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
        let mut builder: QueryBuilder<'_, Sqlite> = QueryBuilder::new(format!("SELECT {COLUMNS} FROM audit_log "));
        builder.push("WHERE user_id = ").push_bind(query.user_id.as_str());
        if let Some(handle) = &query.handle {
            builder.push(" AND handle = ").push_bind(handle.as_str());
        }
        if let Some(before) = query.before {
            builder.push(" AND id < ").push_bind(before);
        }
        builder.push(" ORDER BY id DESC LIMIT ").push_bind(i64::from(query.limit));
        let found = builder.build().fetch_all(&self.pool).await.map_err(storage("reading the audit log"))?;
        found.iter().map(rows::audit_entry).collect()
    }
}
