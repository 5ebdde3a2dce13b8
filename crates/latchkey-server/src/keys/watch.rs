//! A running server re-reads the key file when it changes (checked every second by its modification time and
//! size) and on `SIGHUP`, so that after `latchkey keys rotate` it seals new values with the new key. Keys it
//! held stay in its ring, so nothing it could open before becomes unreadable.

use std::path::Path;
use std::time::{Duration, SystemTime};

use latchkey_crypto::keyfile::KeySource;
use tokio_util::sync::CancellationToken;

use crate::state::SharedState;

/// How often the key file's modification time and size are looked at.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Watches the key file until `shutdown`; returns at once for keys from the environment, which cannot change
/// while the server runs.
pub async fn watch_key_file(state: SharedState, shutdown: CancellationToken) {
    let KeySource::File(path) = state.config.key_source.clone() else { return };
    let mut seen = stamp(&path);
    let mut hangup = hangup_signal();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(CHECK_EVERY) => {
                let now = stamp(&path);
                if now == seen {
                    continue;
                }
                seen = now;
            }
            () = next_hangup(&mut hangup) => tracing::info!("SIGHUP: reading the master key file again"),
        }
        if let Err(err) = state.keyring.reload() {
            tracing::warn!(path = %path.display(), error = %err, "could not read the master key file again; the keys in memory stay in use");
        }
    }
}

/// The key file's modification time and size, or `None` when it cannot be read.
fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let metadata = std::fs::metadata(path).ok()?;
    Some((metadata.modified().ok()?, metadata.len()))
}

#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = ();

#[cfg(unix)]
fn hangup_signal() -> Hangup {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
}

#[cfg(not(unix))]
fn hangup_signal() -> Hangup {}

#[cfg(unix)]
async fn next_hangup(signal: &mut Hangup) {
    match signal {
        Some(signal) => {
            if signal.recv().await.is_none() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

#[cfg(not(unix))]
async fn next_hangup(_signal: &mut Hangup) {
    std::future::pending().await
}
