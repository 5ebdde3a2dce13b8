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
    let early = tokio::select! {
        joined = &mut serving => Some(joined),
        () = shutdown.cancelled() => None,
    };
    if let Some(joined) = early {
        // The server stopped on its own: stop the rest too.
        shutdown.cancel();
        return joined.context("the HTTP server task failed")?.context("the HTTP server failed");
    }
    let deadline = tokio::time::Instant::now() + grace;
    tracing::info!(grace_secs = grace.as_secs(), "shutting down: no new connections; finishing what is in flight");
    let served = match tokio::time::timeout_at(deadline, &mut serving).await {
        Ok(joined) => joined.context("the HTTP server task failed")?.context("the HTTP server failed"),
        Err(_) => {
            tracing::warn!("the grace period ended with requests still in flight; they are cut off");
            serving.abort();
            Ok(())
        }
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
