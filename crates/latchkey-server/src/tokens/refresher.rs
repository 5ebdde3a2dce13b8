//! The background refresher: wakes at an interval, claims the connections whose scheduled refresh time has come
//! in batches (each claim leases its rows to this process, so replicas never take the same ones) and refreshes
//! them through the token service, a bounded number at a time in total, per user and per provider host, so that
//! idle connections stay alive without a burst against any one provider, and one user's slow providers hold at
//! most that user's share of the slots.

use std::sync::Arc;
use std::time::Duration;

use latchkey_core::Clock;
use latchkey_core::model::ConnectionId;
use latchkey_core::store::Store;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::TokenService;
use crate::fairness::{Gate, Pass, host_key};

/// How many connections one claim takes at most. A full batch is followed by another claim at once, so a
/// backlog drains without waiting for the next tick.
const BATCH: u32 = 100;
/// How many batches one tick claims at most, so that rows that fail before any write (and so stay due) cannot
/// keep a tick going forever.
const MAX_BATCHES_PER_TICK: usize = 50;

/// Runs until `shutdown` is cancelled. Refreshes already started when shutdown comes are finished first.
pub async fn run_refresher(
    store: Arc<dyn Store>,
    tokens: TokenService,
    clock: Arc<dyn Clock>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let tuning = tokens.policy().tuning;
    let gate = Gate::new(tuning.concurrency, tuning.concurrency_per_user, tuning.concurrency_per_host);
    let mut running = JoinSet::new();
    tracing::debug!(interval_secs = interval.as_secs(), "background refresher started");
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(interval) => {}
        }
        while running.try_join_next().is_some() {}
        housekeeping(store.as_ref(), clock.now()).await;
        drain(&store, &tokens, &gate, &mut running, &shutdown).await;
    }
    while running.join_next().await.is_some() {}
    tracing::debug!("background refresher stopped");
}

/// Claims due connections and starts the refreshes whose share of the gate is free, without waiting for them;
/// claims whose user, host or process share is taken are given back for a later tick. Claims again at once
/// while a batch was full and all of it started, so that a backlog drains without waiting for the next tick.
async fn drain(
    store: &Arc<dyn Store>,
    tokens: &TokenService,
    gate: &Gate,
    running: &mut JoinSet<()>,
    shutdown: &CancellationToken,
) {
    for _ in 0..MAX_BATCHES_PER_TICK {
        // A whole batch even when fewer slots are free: users take turns in the claim, so every user with due
        // connections is in it, and those that do not fit are given back at once.
        if shutdown.is_cancelled() || gate.free() == 0 {
            return;
        }
        let claimed = match tokens.claim_due(BATCH).await {
            Ok(claimed) => claimed,
            Err(err) => {
                tracing::warn!(error = %err, "the refresher could not claim due connections");
                return;
            }
        };
        let full = claimed.len() == usize::try_from(BATCH).unwrap_or(usize::MAX);
        if claimed.is_empty() {
            return;
        }
        tracing::debug!(count = claimed.len(), "refreshing due connections");
        let mut deferred = false;
        for id in claimed {
            let pass = match store.connection_by_id(&id).await {
                Ok(Some(connection)) => gate.try_enter(connection.user_id.as_str(), &provider_host(&connection)),
                Ok(None) => continue,
                Err(err) => {
                    tracing::warn!(connection = %id, error = %err, "the refresher could not read a connection");
                    None
                }
            };
            match pass {
                Some(pass) => {
                    running.spawn(refresh_one(tokens.clone(), id, pass));
                }
                None => {
                    deferred = true;
                    let _ = tokens.release(&id).await;
                }
            }
        }
        if !full || deferred {
            return;
        }
    }
}

/// Refreshes one claimed connection, holding its share of the gate until done.
async fn refresh_one(tokens: TokenService, id: ConnectionId, _pass: Pass) {
    if let Err(err) = tokens.refresh_if_due(&id).await {
        tracing::debug!(connection = %id, error = %err, "background refresh did not succeed");
    }
}

/// The host the connection's refresh request goes to (the key of its concurrency limit).
fn provider_host(connection: &latchkey_core::model::Connection) -> String {
    connection.settings.resolved().map(|settings| host_key(settings.refresh_endpoint())).unwrap_or_default()
}

/// Removes expired authorization flows and sessions.
async fn housekeeping(store: &dyn Store, now: latchkey_core::Timestamp) {
    if let Err(err) = store.delete_expired_flows(now).await {
        tracing::warn!(error = %err, "could not delete expired authorization flows");
    }
    if let Err(err) = store.delete_expired_sessions(now).await {
        tracing::warn!(error = %err, "could not delete expired sessions");
    }
}
