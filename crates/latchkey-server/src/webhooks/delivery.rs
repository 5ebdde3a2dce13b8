//! The webhook sender: wakes every tick, claims due events of the outbox (a lease, so that each event goes out
//! from one replica), POSTs each signed, and records the attempt: delivered on a 2xx, otherwise retried with
//! backoff until [`MAX_ATTEMPTS`], then failed.
//!
//! Deliveries run concurrently under a [`Gate`]: the claim itself takes at most one event per user (so a user's
//! events go out in order and a user's backlog cannot fill a claim), at most [`PER_HOST`] go to one receiver host
//! and at most [`CONCURRENCY`] run at once; an event that does not fit is given back for a later tick. A receiver
//! that hangs thus holds one delivery of its own user, never the others' events.

use latchkey_core::Timestamp;
use latchkey_core::webhook::{AttemptOutcome, ClaimedEvent};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{event_body, open_secret, retry_at, signature};
use crate::fairness::{Gate, Pass, host_key};
use crate::state::SharedState;

/// Attempts per event before it is marked failed (retries spread over about an hour and a half).
pub const MAX_ATTEMPTS: i64 = 10;
/// Deliveries in flight at once, in all.
const CONCURRENCY: usize = 32;
/// Events claimed per tick at most (those that do not fit under the bounds are given back at once).
const BATCH: u32 = 64;
/// Deliveries in flight at once towards one receiver host (several users may share a receiving service).
const PER_HOST: usize = 4;
/// How long a claim holds; longer than the outbound request timeout.
const LEASE_SECS: i64 = 60;

/// Runs until `shutdown` is cancelled; deliveries under way are finished first.
pub async fn run_sender(state: SharedState, shutdown: CancellationToken) {
    let owner = format!("webhooks-{}-{}", std::process::id(), uuid::Uuid::new_v4());
    let tick = state.config.ops.webhook_tick;
    // One per user is enforced by the claim, across replicas; the gate's user bound only backs it up.
    let gate = Gate::new(CONCURRENCY, 1, PER_HOST);
    let mut running = JoinSet::new();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(tick) => {}
        }
        while running.try_join_next().is_some() {}
        if gate.free() == 0 {
            continue;
        }
        let now = state.clock.now();
        let claimed = match state.store.claim_webhook_events(&owner, now, now.plus_secs(LEASE_SECS), BATCH).await {
            Ok(claimed) => claimed,
            Err(err) => {
                tracing::warn!(error = %err, "the webhook sender could not read the outbox");
                continue;
            }
        };
        for event in claimed {
            let host = event.webhook.as_ref().map(|w| host_key(&w.url)).unwrap_or_default();
            match gate.try_enter(event.event.user_id.as_str(), &host) {
                Some(pass) => {
                    running.spawn(deliver(state.clone(), owner.clone(), event, pass));
                }
                None => {
                    // Its receiver host (or the process) is busy: the next tick tries again.
                    if let Err(err) = state.store.release_webhook_event(event.event.id, &owner).await {
                        tracing::warn!(event = event.event.id, error = %err, "could not give back a webhook event");
                    }
                }
            }
        }
    }
    while running.join_next().await.is_some() {}
}

async fn deliver(state: SharedState, owner: String, claimed: ClaimedEvent, _pass: Pass) {
    let (state, owner) = (&state, owner.as_str());
    let event = &claimed.event;
    let now = state.clock.now();
    let attempt = event.attempts + 1;
    let failure = |error: String| {
        if attempt >= MAX_ATTEMPTS {
            AttemptOutcome::Failed { error, at: now }
        } else {
            AttemptOutcome::Retry { error, retry_at: retry_at(now, attempt) }
        }
    };
    let outcome = match &claimed.webhook {
        None => AttemptOutcome::Failed { error: "the webhook was removed".to_owned(), at: now },
        Some(webhook) => match open_secret(&state.keyring, webhook) {
            Err(err) => failure(err.to_string()),
            Ok(secret) => {
                let body = event_body(event);
                let header = signature::sign(&secret, now, &body);
                let id = event.id.to_string();
                match latchkey_oauth::post_webhook(&state.http, &webhook.url, &header, &id, body).await {
                    Ok(status) if (200..300).contains(&status) => AttemptOutcome::Delivered { at: now },
                    Ok(status) => failure(format!("the receiver answered HTTP {status}")),
                    Err(err) => failure(describe(&err)),
                }
            }
        },
    };
    record(state, owner, event.id, attempt, &outcome).await;
}

async fn record(state: &SharedState, owner: &str, id: i64, attempt: i64, outcome: &AttemptOutcome) {
    let word = match outcome {
        AttemptOutcome::Delivered { .. } => "delivered",
        AttemptOutcome::Retry { .. } => "retry",
        AttemptOutcome::Failed { .. } => "failed",
    };
    state.tokens.metrics().webhook_attempt(word);
    match outcome {
        AttemptOutcome::Delivered { .. } => tracing::debug!(event = id, attempt, "webhook delivered"),
        AttemptOutcome::Retry { error, retry_at } => {
            tracing::info!(event = id, attempt, error = %error, retry_at = %Timestamp::to_rfc3339(*retry_at), "webhook delivery failed; retrying later");
        }
        AttemptOutcome::Failed { error, .. } => {
            tracing::warn!(event = id, attempt, error = %error, "webhook delivery failed for the last time");
        }
    }
    match state.store.finish_webhook_event(id, owner, outcome).await {
        Ok(true) => {}
        Ok(false) => tracing::warn!(event = id, "a webhook event's claim expired before its attempt was recorded"),
        Err(err) => tracing::warn!(event = id, error = %err, "could not record a webhook delivery"),
    }
}

/// A failed attempt in words, naming the receiver (the client's messages are written about providers).
fn describe(err: &latchkey_oauth::OAuthError) -> String {
    use latchkey_oauth::OAuthError;
    match err {
        OAuthError::Unavailable { message, .. } | OAuthError::InvalidResponse { message } => {
            format!("the receiver {message}")
        }
        other => other.to_string(),
    }
}
