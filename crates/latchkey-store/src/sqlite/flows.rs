//! Authorization flows: [`FlowStore`] for SQLite.

use async_trait::async_trait;
use latchkey_core::model::{AuthFlow, Digest, FlowId, FlowStart};
use latchkey_core::store::FlowStore;
use latchkey_core::{Result, Sealed, Timestamp};

use super::SqliteStore;
use super::rows::{self, flow_columns};
use crate::error::storage;

#[async_trait]
impl FlowStore for SqliteStore {
    async fn insert_flow(&self, flow: &AuthFlow) -> Result<()> {
        sqlx::query(
            "INSERT INTO auth_flows (id, connection_id, link_hash, state_hash, browser_hash, pkce_verifier, \
             redirect_uri, created_at, expires_at, started_at, completed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(flow.id.as_str())
        .bind(flow.connection_id.as_str())
        .bind(flow.link_hash.0.as_slice())
        .bind(flow.state_hash.as_ref().map(|d| d.0.as_slice()))
        .bind(flow.browser_hash.as_ref().map(|d| d.0.as_slice()))
        .bind(flow.pkce_verifier.as_ref().map(Sealed::as_bytes))
        .bind(flow.redirect_uri.as_str())
        .bind(flow.created_at.secs())
        .bind(flow.expires_at.secs())
        .bind(flow.started_at.map(Timestamp::secs))
        .bind(flow.completed_at.map(Timestamp::secs))
        .execute(&self.pool)
        .await
        .map_err(storage("inserting an authorization flow"))?;
        Ok(())
    }

    async fn start_flow(&self, link_hash: &Digest, start: &FlowStart) -> Result<Option<AuthFlow>> {
        // One statement: SQLite makes every change of an UPDATE … RETURNING on its first step, so a second opening
        // of the same link finds started_at already set. A verifier in `start` replaces the one sealed when the
        // link was created; `None` keeps that one.
        let row = sqlx::query(concat!(
            "UPDATE auth_flows SET state_hash = ?1, browser_hash = ?2, \
             pkce_verifier = COALESCE(?3, pkce_verifier), started_at = ?4 \
             WHERE link_hash = ?5 AND started_at IS NULL AND expires_at > ?4 RETURNING ",
            flow_columns!()
        ))
        .bind(start.state_hash.0.as_slice())
        .bind(start.browser_hash.0.as_slice())
        .bind(start.pkce_verifier.as_ref().map(Sealed::as_bytes))
        .bind(start.now.secs())
        .bind(link_hash.0.as_slice())
        .fetch_optional(&self.pool)
        .await
        .map_err(storage("starting an authorization flow"))?;
        row.as_ref().map(rows::flow).transpose()
    }

    async fn flow_by_link(&self, link_hash: &Digest, now: Timestamp) -> Result<Option<AuthFlow>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            flow_columns!(),
            " FROM auth_flows WHERE link_hash = ?1 AND started_at IS NULL AND expires_at > ?2"
        ))
        .bind(link_hash.0.as_slice())
        .bind(now.secs())
        .fetch_optional(&self.pool)
        .await
        .map_err(storage("looking up an authorization flow by link"))?;
        row.as_ref().map(rows::flow).transpose()
    }

    async fn flow_by_state(&self, state_hash: &Digest) -> Result<Option<AuthFlow>> {
        let row = sqlx::query(concat!("SELECT ", flow_columns!(), " FROM auth_flows WHERE state_hash = ?"))
            .bind(state_hash.0.as_slice())
            .fetch_optional(&self.pool)
            .await
            .map_err(storage("looking up an authorization flow by state"))?;
        row.as_ref().map(rows::flow).transpose()
    }

    async fn complete_flow(&self, id: &FlowId, now: Timestamp) -> Result<bool> {
        let done = sqlx::query("UPDATE auth_flows SET completed_at = ? WHERE id = ? AND completed_at IS NULL")
            .bind(now.secs())
            .bind(id.as_str())
            .execute(&self.pool)
            .await
            .map_err(storage("completing an authorization flow"))?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_expired_flows(&self, now: Timestamp) -> Result<u64> {
        let done = sqlx::query("DELETE FROM auth_flows WHERE expires_at <= ?")
            .bind(now.secs())
            .execute(&self.pool)
            .await
            .map_err(storage("deleting expired authorization flows"))?;
        Ok(done.rows_affected())
    }
}
