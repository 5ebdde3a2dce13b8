//! How webhook and outbox rows become records, for both backends. Queries select webhooks under the `w_` prefix
//! and outbox events under `e_` (see [`WEBHOOK_COLUMNS`] and [`EVENT_COLUMNS`]).

use latchkey_core::model::UserId;
use latchkey_core::webhook::{AttemptOutcome, ClaimedEvent, DeliveryState, EventKind, Webhook, WebhookEvent};
use latchkey_core::{Result, Sealed, Timestamp};

use crate::codec::status_from_db;
use crate::error::corrupt;
use crate::rows::Columns;

/// The columns of `webhooks w`.
pub(crate) const WEBHOOK_COLUMNS: &str = "w.user_id AS w_user_id, w.url AS w_url, w.secret AS w_secret, \
     w.created_at AS w_created_at, w.updated_at AS w_updated_at";

/// The columns of `webhook_outbox e`.
pub(crate) const EVENT_COLUMNS: &str = "e.id AS e_id, e.user_id AS e_user_id, e.kind AS e_kind, \
     e.connection_id AS e_connection_id, e.handle AS e_handle, e.status AS e_status, \
     e.previous_status AS e_previous_status, e.message AS e_message, e.occurred_at AS e_occurred_at, \
     e.state AS e_state, e.attempts AS e_attempts, e.next_attempt_at AS e_next_attempt_at, \
     e.last_error AS e_last_error";

/// A webhook from `w_` columns.
pub(crate) fn webhook(row: &impl Columns) -> Result<Webhook> {
    Ok(Webhook {
        user_id: UserId(row.text("w_user_id")?),
        url: row.text("w_url")?,
        secret: Sealed(row.bytes("w_secret")?),
        created_at: Timestamp(row.integer("w_created_at")?),
        updated_at: Timestamp(row.integer("w_updated_at")?),
    })
}

/// An outbox event from `e_` columns.
pub(crate) fn event(row: &impl Columns) -> Result<WebhookEvent> {
    let kind = row.text("e_kind")?;
    let state = row.text("e_state")?;
    let status = |column| row.optional_text(column)?.as_deref().map(status_from_db).transpose();
    Ok(WebhookEvent {
        id: row.integer("e_id")?,
        user_id: UserId(row.text("e_user_id")?),
        kind: EventKind::parse(&kind).ok_or_else(|| corrupt("a webhook event's kind", &kind))?,
        connection_id: row.text("e_connection_id")?,
        handle: row.text("e_handle")?,
        status: status("e_status")?,
        previous_status: status("e_previous_status")?,
        message: row.optional_text("e_message")?,
        occurred_at: Timestamp(row.integer("e_occurred_at")?),
        state: DeliveryState::parse(&state).ok_or_else(|| corrupt("a webhook event's state", &state))?,
        attempts: row.integer("e_attempts")?,
        next_attempt_at: Timestamp(row.integer("e_next_attempt_at")?),
        last_error: row.optional_text("e_last_error")?,
    })
}

/// An event with its user's webhook (`w_` columns of a left join: NULL when the webhook is gone).
pub(crate) fn claimed(row: &impl Columns) -> Result<ClaimedEvent> {
    let webhook = match row.optional_text("w_user_id")? {
        Some(_) => Some(webhook(row)?),
        None => None,
    };
    Ok(ClaimedEvent { event: event(row)?, webhook })
}

/// The columns an attempt writes: state, next attempt time (kept when `None`), error and finish time.
pub(crate) fn outcome_values(outcome: &AttemptOutcome) -> (&'static str, Option<i64>, Option<&str>, Option<i64>) {
    match outcome {
        AttemptOutcome::Delivered { at } => (DeliveryState::Delivered.as_str(), None, None, Some(at.secs())),
        AttemptOutcome::Retry { error, retry_at } => {
            (DeliveryState::Pending.as_str(), Some(retry_at.secs()), Some(error.as_str()), None)
        }
        AttemptOutcome::Failed { error, at } => {
            (DeliveryState::Failed.as_str(), None, Some(error.as_str()), Some(at.secs()))
        }
    }
}
