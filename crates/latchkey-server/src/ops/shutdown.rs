//! Graceful shutdown: once the shutdown token is cancelled (SIGTERM or Ctrl-C), the listener stops accepting,
//! requests in flight finish, the background loops end after their current pass, and refreshes already running
//! (including those whose caller went away, which run in tracked tasks) finish, all within one grace period.
//! What is still running when it ends is abandoned: a refresh's lease expires and another replica takes over.

use std::future::Future;
use std::time::Duration;

use anyhow::Context;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Runs `server` until it fails or `shutdown` is cancelled, then drains everything within `grace`.
///
/// # Errors
/// The HTTP server failing.
pub async fn serve_and_drain<F>(
    server: F,
    background: Vec<JoinHandle<()>>,
    refreshes: &TaskTracker,
    shutdown: &CancellationToken,
    grace: Duration,
) -> anyhow::Result<()>
where
    F: Future<Output = std::io::Result<()>> + Send + 'static,
{
    let mut serving = tokio::spawn(server);
    let finished = tokio::select! {
        joined = &mut serving => Some(joined),
        () = shutdown.cancelled() => None,
    };
    // The server also stops by itself once shutdown is asked for (it watches the same signal), possibly before
    // this select notices the signal: only a stop without the signal is the server's own.
    if let Some(joined) = &finished
        && !shutdown.is_cancelled()
    {
        shutdown.cancel();
        tracing::warn!(ok = matches!(joined, Ok(Ok(()))), "the HTTP server stopped by itself; stopping the rest");
        return finished.map_or(Ok(()), server_result);
    }
    let deadline = tokio::time::Instant::now() + grace;
    tracing::info!(grace_secs = grace.as_secs(), "shutting down: no new connections; finishing what is in flight");
    let served = match finished {
        Some(joined) => server_result(joined),
        None => match tokio::time::timeout_at(deadline, &mut serving).await {
            Ok(joined) => server_result(joined),
            Err(_) => {
                tracing::warn!("the grace period ended with requests still in flight; they are cut off");
                serving.abort();
                Ok(())
            }
        },
    };
    refreshes.close();
    let rest = async {
        for task in background {
            let _ = task.await;
        }
        refreshes.wait().await;
    };
    if tokio::time::timeout_at(deadline, rest).await.is_err() {
        tracing::warn!(
            refreshes = refreshes.len(),
            "the grace period ended with refreshes still running; their leases will expire and another replica \
             (or the next start) takes over"
        );
    } else {
        tracing::info!("shutdown complete");
    }
    served
}

fn server_result(joined: Result<std::io::Result<()>, tokio::task::JoinError>) -> anyhow::Result<()> {
    joined.context("the HTTP server task failed")?.context("the HTTP server failed")
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    /// The server may notice the shutdown signal and stop before `serve_and_drain` does; the refreshes still
    /// running must be waited for all the same. (Which side notices first is left to chance, hence the rounds.)
    #[tokio::test]
    async fn a_server_that_stops_first_on_the_signal_still_lets_refreshes_finish() {
        for round in 0..20 {
            let shutdown = CancellationToken::new();
            let refreshes = TaskTracker::new();
            let (release, released) = tokio::sync::oneshot::channel::<()>();
            let finished = Arc::new(AtomicBool::new(false));
            let done = Arc::clone(&finished);
            refreshes.spawn(async move {
                let _ = released.await;
                done.store(true, Ordering::SeqCst);
            });
            let signal = shutdown.clone();
            let server = async move {
                signal.cancel();
                Ok(())
            };
            let draining = serve_and_drain(server, Vec::new(), &refreshes, &shutdown, Duration::from_secs(60));
            let releasing = async {
                for _ in 0..10 {
                    tokio::task::yield_now().await;
                }
                let _ = release.send(());
            };
            let (served, ()) = tokio::join!(draining, releasing);
            served.expect("a clean stop");
            assert!(finished.load(Ordering::SeqCst), "round {round}: returned before the refresh finished");
        }
    }
}
