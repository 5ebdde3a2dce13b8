//! Webhook notifications as stored: a user's webhook (URL and sealed signing secret) and the events of the
//! outbox that a background task delivers.

use crate::model::{Status, UserId};
use crate::{Sealed, Timestamp};

/// A user's webhook. The signing secret is sealed; the URL holds no secret by rule (it is checked when saved).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub user_id: UserId,
    pub url: String,
    pub secret: Sealed,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// What happened to a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// Its status changed (for example `connected` to `needs_reauth`).
    StatusChanged,
    /// It was deleted.
    Deleted,
}

impl EventKind {
    /// The event type as receivers see it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::StatusChanged => "connection.status_changed",
            Self::Deleted => "connection.deleted",
        }
    }

    /// Parses [`EventKind::as_str`]'s spelling.
    #[must_use]
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "connection.status_changed" => Some(Self::StatusChanged),
            "connection.deleted" => Some(Self::Deleted),
            _ => None,
        }
    }
}

/// Where an event stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// Waiting for its next attempt.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Every attempt failed; no more are made.
    Failed,
}

impl DeliveryState {
    /// The stored spelling.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    /// Parses the stored spelling.
    #[must_use]
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "pending" => Some(Self::Pending),
            "delivered" => Some(Self::Delivered),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// One event of the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEvent {
    /// Increasing within one database; receivers use it to drop duplicates.
    pub id: i64,
    pub user_id: UserId,
    pub kind: EventKind,
    pub connection_id: String,
    pub handle: String,
    /// The new status; `None` for a deletion.
    pub status: Option<Status>,
    pub previous_status: Option<Status>,
    /// The connection's `last_error` at the change (never a secret: the API shows it too).
    pub message: Option<String>,
    pub occurred_at: Timestamp,
    pub state: DeliveryState,
    /// Attempts made so far.
    pub attempts: i64,
    pub next_attempt_at: Timestamp,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
}

/// A claimed event with the webhook it goes to (`None` when the user removed the webhook meanwhile).
#[derive(Debug, Clone)]
pub struct ClaimedEvent {
    pub event: WebhookEvent,
    pub webhook: Option<Webhook>,
}

/// The result of one delivery attempt, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The receiver answered 2xx.
    Delivered { at: Timestamp },
    /// It failed; try again at `retry_at`.
    Retry { error: String, retry_at: Timestamp },
    /// It failed for the last time.
    Failed { error: String, at: Timestamp },
}
