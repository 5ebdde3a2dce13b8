//! The background refresher: wakes at an interval, finds the connections whose refresh time has come and
//! refreshes them through the token service, so that idle connections stay alive.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use latchkey_core::Clock;
use latchkey_core::store::Store;
use tokio_util::sync::CancellationToken;

use super::TokenService;

/// How many connections one pass claims at most.
const BATCH: u32 = 100;
/// How many refreshes run at once.
const CONCURRENCY: usize = 4;

/// Runs until `shutdown` is cancelled. A refresh already started when shutdown comes is finished first.
pub async fn run_refresher(
    store: Arc<dyn Store>,
    tokens: TokenService,
    clock: Arc<dyn Clock>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    tracing::debug!(interval_secs = interval.as_secs(), "background refresher started");
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(interval) => {}
        }
        let now = clock.now();
        housekeeping(store.as_ref(), now).await;
        let due = match store.connections_due(now, BATCH).await {
            Ok(due) => due,
            Err(err) => {
                tracing::warn!(error = %err, "the refresher could not read due connections");
                continue;
            }
        };
        if due.is_empty() {
            continue;
        }
        tracing::debug!(count = due.len(), "refreshing due connections");
        futures::stream::iter(due)
            .for_each_concurrent(CONCURRENCY, |id| {
                let tokens = tokens.clone();
                async move {
                    if let Err(err) = tokens.refresh_if_due(&id).await {
                        tracing::debug!(connection = %id, error = %err, "background refresh did not succeed");
                    }
                }
            })
            .await;
    }
    tracing::debug!("background refresher stopped");
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
