//! The background refresher: wakes at an interval, claims the connections whose scheduled refresh time has come
//! in batches (each claim leases its rows to this process, so replicas never take the same ones) and refreshes
//! them through the token service, a bounded number at a time in total and per provider host, so that idle
//! connections stay alive without a burst against any one provider.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use latchkey_core::Clock;
use latchkey_core::model::ConnectionId;
use latchkey_core::store::Store;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::TokenService;

/// How many connections one claim takes at most. A full batch is followed by another claim at once, so a
/// backlog drains without waiting for the next tick.
const BATCH: u32 = 100;
/// How many batches one tick claims at most, so that rows that fail before any write (and so stay due) cannot
/// keep a tick going forever.
const MAX_BATCHES_PER_TICK: usize = 50;

/// Runs until `shutdown` is cancelled. Refreshes already started when shutdown comes are finished first;
/// claimed connections not yet started are released for the other replicas.
pub async fn run_refresher(
    store: Arc<dyn Store>,
    tokens: TokenService,
    clock: Arc<dyn Clock>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let tuning = tokens.policy().tuning;
    let limits = Limits {
        total: Arc::new(Semaphore::new(tuning.concurrency.max(1))),
        per_host: tuning.concurrency_per_host.max(1),
        hosts: Arc::default(),
    };
    tracing::debug!(interval_secs = interval.as_secs(), "background refresher started");
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(interval) => {}
        }
        housekeeping(store.as_ref(), clock.now()).await;
        drain(&store, &tokens, &limits, &shutdown).await;
    }
    tracing::debug!("background refresher stopped");
}

/// The refresher's concurrency limits: one semaphore for the process, one per provider host.
struct Limits {
    total: Arc<Semaphore>,
    per_host: usize,
    hosts: Arc<Mutex<HashMap<String, Arc<Semaphore>>>>,
}

impl Limits {
    fn host(&self, host: &str) -> Arc<Semaphore> {
        let mut hosts = self.hosts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(hosts.entry(host.to_owned()).or_insert_with(|| Arc::new(Semaphore::new(self.per_host))))
    }
}

/// Claims and refreshes batches until no due connection is left (or shutdown).
async fn drain(store: &Arc<dyn Store>, tokens: &TokenService, limits: &Limits, shutdown: &CancellationToken) {
    for _ in 0..MAX_BATCHES_PER_TICK {
        if shutdown.is_cancelled() {
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
        let mut running = JoinSet::new();
        for id in claimed {
            let host = match store.connection_by_id(&id).await {
                Ok(Some(connection)) => provider_host(&connection),
                Ok(None) => continue,
                Err(err) => {
                    tracing::warn!(connection = %id, error = %err, "the refresher could not read a connection");
                    let _ = tokens.release(&id).await;
                    continue;
                }
            };
            running.spawn(refresh_one(
                tokens.clone(),
                id,
                limits.host(&host),
                Arc::clone(&limits.total),
                shutdown.clone(),
            ));
        }
        while running.join_next().await.is_some() {}
        if !full {
            return;
        }
    }
}

/// Waits for a slot for the connection's host, then for one of the process, then refreshes; unless shutdown
/// came meanwhile, in which case the claim is given back.
async fn refresh_one(
    tokens: TokenService,
    id: ConnectionId,
    host: Arc<Semaphore>,
    total: Arc<Semaphore>,
    shutdown: CancellationToken,
) {
    let permits = async {
        let host = host.acquire_owned().await.ok()?;
        let total = total.acquire_owned().await.ok()?;
        Some((host, total))
    };
    let permits = tokio::select! {
        () = shutdown.cancelled() => None,
        permits = permits => permits,
    };
    let Some(_permits) = permits.filter(|_| !shutdown.is_cancelled()) else {
        let _ = tokens.release(&id).await;
        return;
    };
    if let Err(err) = tokens.refresh_if_due(&id).await {
        tracing::debug!(connection = %id, error = %err, "background refresh did not succeed");
    }
}

/// The host the connection's refresh request goes to (the key of its concurrency limit).
fn provider_host(connection: &latchkey_core::model::Connection) -> String {
    connection
        .settings
        .resolved()
        .ok()
        .and_then(|settings| url::Url::parse(settings.refresh_endpoint()).ok())
        .and_then(|url| url.host_str().map(|host| format!("{host}:{}", url.port_or_known_default().unwrap_or(0))))
        .unwrap_or_default()
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
