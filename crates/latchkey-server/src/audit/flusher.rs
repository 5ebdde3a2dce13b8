//! The background task that empties the audit buffer: every [`FLUSH_INTERVAL`], or as soon as [`BATCH_SIZE`]
//! records wait, it writes them with one multi-row insert. A batch that fails stays in memory and is tried again
//! at the next interval; until one succeeds, the log is marked unwritable and token reads are refused.
//!
//! In memory there are at most [`BUFFER_CAPACITY`] records in the channel plus one batch of [`BATCH_SIZE`] being
//! written (the task takes no new records while a batch is waiting), which bounds what a hard crash can lose.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use latchkey_core::audit::AuditRecord;
use latchkey_core::store::Store;
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

#[cfg(doc)]
use super::BUFFER_CAPACITY;
use super::{BATCH_SIZE, FLUSH_INTERVAL, Shares};

/// How many failed writes in a row shutdown waits through before it gives the buffered records up (and logs them
/// as lost).
const SHUTDOWN_ATTEMPTS: u32 = 25;

/// What the flusher frees after a written batch: the places of its users' shares, and a wake-up for the reads
/// waiting for a place.
pub(super) struct Freed {
    pub(super) shares: Arc<Shares>,
    pub(super) written: Arc<tokio::sync::Notify>,
}

impl Freed {
    pub(super) fn give_back(&self, records: &[AuditRecord]) {
        self.shares.give_back(records);
        self.written.notify_waiters();
    }
}

/// Runs until `stop` is cancelled and everything buffered has been written (or given up, at shutdown).
pub(super) async fn run(
    store: Arc<dyn Store>,
    mut receiver: mpsc::Receiver<AuditRecord>,
    writable: Arc<AtomicBool>,
    freed: Freed,
    stop: CancellationToken,
) {
    let mut batch: Vec<AuditRecord> = Vec::with_capacity(BATCH_SIZE);
    let mut tick = tokio::time::interval(FLUSH_INTERVAL);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut stopping = false;
    let mut failed_at_shutdown = 0;
    loop {
        let room = BATCH_SIZE.saturating_sub(batch.len());
        tokio::select! {
            () = stop.cancelled(), if !stopping => {
                // No new records from here on; those already reserved still arrive, then `recv_many` gives 0.
                receiver.close();
                stopping = true;
            }
            received = receiver.recv_many(&mut batch, room), if room > 0 => {
                if received == 0 {
                    break;
                }
                if batch.len() >= BATCH_SIZE {
                    flush(store.as_ref(), &mut batch, &writable, &freed).await;
                }
            }
            _ = tick.tick() => {
                if !batch.is_empty() && !flush(store.as_ref(), &mut batch, &writable, &freed).await && stopping {
                    failed_at_shutdown += 1;
                    if failed_at_shutdown >= SHUTDOWN_ATTEMPTS {
                        break;
                    }
                }
            }
        }
    }
    if !batch.is_empty() && !flush(store.as_ref(), &mut batch, &writable, &freed).await {
        let lost = batch.len() + receiver.len();
        tracing::error!(lost, "audit records could not be written before shutdown and are lost");
    }
}

/// Writes the batch; on success empties it and marks the log writable, on failure keeps it and marks the log
/// unwritable. Returns whether it was written.
async fn flush(store: &dyn Store, batch: &mut Vec<AuditRecord>, writable: &AtomicBool, freed: &Freed) -> bool {
    match store.insert_audit_records(batch).await {
        Ok(()) => {
            freed.give_back(batch);
            batch.clear();
            if !writable.swap(true, Ordering::AcqRel) {
                tracing::info!("the audit log is writable again; token reads are served");
            }
            true
        }
        Err(err) => {
            if writable.swap(false, Ordering::AcqRel) {
                tracing::error!(error = %err, waiting = batch.len(), "cannot write the audit log; token reads are refused until it works again");
            } else {
                tracing::debug!(error = %err, waiting = batch.len(), "the audit log is still not writable");
            }
            false
        }
    }
}
