//! Webhooks and their outbox: [`WebhookStore`] for PostgreSQL. The outbox is filled by the triggers of migration
//! 0006. Replicas claim events with `FOR UPDATE SKIP LOCKED` inside the claiming `UPDATE`, so two replicas never
//! take the same event, and a lease frees the events of a replica that died.

use async_trait::async_trait;
use latchkey_core::model::UserId;
use latchkey_core::store::WebhookStore;
use latchkey_core::webhook::{AttemptOutcome, ClaimedEvent, Webhook, WebhookEvent};
use latchkey_core::{Result, Timestamp};

use super::PostgresStore;
use crate::error::storage;
use crate::webhook_rows::{self, EVENT_COLUMNS, WEBHOOK_COLUMNS, outcome_values};

#[async_trait]
impl WebhookStore for PostgresStore {
    async fn put_webhook(&self, webhook: &Webhook) -> Result<()> {
        sqlx::query(
            "INSERT INTO webhooks (user_id, url, secret, created_at, updated_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (user_id) DO UPDATE SET url = excluded.url, secret = excluded.secret, \
             updated_at = excluded.updated_at",
        )
        .bind(webhook.user_id.as_str())
        .bind(&webhook.url)
        .bind(webhook.secret.as_bytes())
        .bind(webhook.created_at.secs())
        .bind(webhook.updated_at.secs())
        .execute(&self.pool)
        .await
        .map_err(storage("saving a webhook"))?;
        Ok(())
    }

    async fn webhook(&self, user: &UserId) -> Result<Option<Webhook>> {
        let query = format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks w WHERE w.user_id = $1");
        let row = sqlx::query(&query)
            .bind(user.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(storage("reading a webhook"))?;
        row.as_ref().map(webhook_rows::webhook).transpose()
    }

    async fn delete_webhook(&self, user: &UserId) -> Result<bool> {
        let mut tx = self.pool.begin().await.map_err(storage("removing a webhook"))?;
        sqlx::query("DELETE FROM webhook_outbox WHERE user_id = $1 AND state = 'pending'")
            .bind(user.as_str())
            .execute(&mut *tx)
            .await
            .map_err(storage("dropping undelivered webhook events"))?;
        let deleted = sqlx::query("DELETE FROM webhooks WHERE user_id = $1")
            .bind(user.as_str())
            .execute(&mut *tx)
            .await
            .map_err(storage("removing a webhook"))?
            .rows_affected();
        tx.commit().await.map_err(storage("removing a webhook"))?;
        Ok(deleted > 0)
    }

    async fn claim_webhook_events(
        &self,
        owner: &str,
        now: Timestamp,
        until: Timestamp,
        limit: u32,
    ) -> Result<Vec<ClaimedEvent>> {
        // The ids this claim took: an earlier claim of the same owner may still hold others (deliveries run
        // concurrently), and with a clock that stands still even its lease time can be the same.
        let ids: Vec<i64> = sqlx::query_scalar(
            "UPDATE webhook_outbox SET lease_owner = $1, lease_until = $2 WHERE id IN (\
             SELECT id FROM webhook_outbox WHERE state = 'pending' AND next_attempt_at <= $3 \
             AND (lease_until IS NULL OR lease_until <= $3) \
             AND id IN (SELECT id FROM (SELECT e.id, \
             row_number() OVER (PARTITION BY e.user_id ORDER BY e.id) AS place \
             FROM webhook_outbox e WHERE e.state = 'pending' AND e.next_attempt_at <= $3 \
             AND (e.lease_until IS NULL OR e.lease_until <= $3) AND NOT EXISTS (SELECT 1 FROM webhook_outbox b \
             WHERE b.user_id = e.user_id AND b.state = 'pending' AND b.lease_until > $3)) oldest WHERE place = 1) \
             ORDER BY next_attempt_at, id LIMIT $4 FOR UPDATE SKIP LOCKED) RETURNING id",
        )
        .bind(owner)
        .bind(until.secs())
        .bind(now.secs())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(storage("claiming webhook events"))?;
        let query = format!(
            "SELECT {EVENT_COLUMNS}, {WEBHOOK_COLUMNS} FROM webhook_outbox e \
             LEFT JOIN webhooks w ON w.user_id = e.user_id \
             WHERE e.state = 'pending' AND e.lease_owner = $1 AND e.id = ANY($2) ORDER BY e.id"
        );
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(&query)
            .bind(owner)
            .bind(&ids)
            .fetch_all(&self.pool)
            .await
            .map_err(storage("reading claimed webhook events"))?;
        rows.iter().map(webhook_rows::claimed).collect()
    }

    async fn finish_webhook_event(&self, id: i64, owner: &str, outcome: &AttemptOutcome) -> Result<bool> {
        let (state, retry_at, error, finished_at) = outcome_values(outcome);
        let updated = sqlx::query(
            "UPDATE webhook_outbox SET state = $1, next_attempt_at = COALESCE($2, next_attempt_at), \
             last_error = $3, finished_at = $4, attempts = attempts + 1, lease_owner = NULL, lease_until = NULL \
             WHERE id = $5 AND lease_owner = $6 AND state = 'pending'",
        )
        .bind(state)
        .bind(retry_at)
        .bind(error)
        .bind(finished_at)
        .bind(id)
        .bind(owner)
        .execute(&self.pool)
        .await
        .map_err(storage("recording a webhook delivery"))?
        .rows_affected();
        Ok(updated == 1)
    }

    async fn release_webhook_event(&self, id: i64, owner: &str) -> Result<()> {
        sqlx::query(
            "UPDATE webhook_outbox SET lease_owner = NULL, lease_until = NULL WHERE id = $1 AND lease_owner = $2 \
             AND state = 'pending'",
        )
        .bind(id)
        .bind(owner)
        .execute(&self.pool)
        .await
        .map_err(storage("giving back a webhook event"))?;
        Ok(())
    }

    async fn webhook_events(&self, user: &UserId, limit: u32) -> Result<Vec<WebhookEvent>> {
        let query =
            format!("SELECT {EVENT_COLUMNS} FROM webhook_outbox e WHERE e.user_id = $1 ORDER BY e.id DESC LIMIT $2");
        let rows = sqlx::query(&query)
            .bind(user.as_str())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(storage("reading webhook events"))?;
        rows.iter().map(webhook_rows::event).collect()
    }
}
