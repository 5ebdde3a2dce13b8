//! The bound on password work: each argon2id check holds 19 MiB and a core for tens of milliseconds, so at most
//! as many run at once as there are cores (`LoginConfig::password_checks`). A log-in waits its turn for at most
//! `password_queue_wait`, then is answered "try again" instead of holding the server's memory hostage. Each
//! place has its own argon2 working memory ([`PasswordMemory`]), reused from check to check: allocating it afresh
//! each time made the allocator keep hundreds of MiB after a burst. The memory of password work is thus fixed
//! at the limit × 19 MiB, however many log-ins come.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use latchkey_crypto::PasswordMemory;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// No place for a password check came free in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

/// The gate every password check (log-in, set-up) passes, with gauges of what it let through.
pub struct PasswordChecks {
    places: Arc<Semaphore>,
    /// One working memory per place; a check takes one while it runs.
    memories: Arc<std::sync::Mutex<Vec<PasswordMemory>>>,
    limit: usize,
    queue_wait: Duration,
    running: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
    started: Arc<AtomicU64>,
    turned_away: AtomicU64,
}

impl PasswordChecks {
    /// At most `limit` checks at once; a check waits at most `queue_wait` for its place.
    #[must_use]
    pub fn new(limit: NonZeroUsize, queue_wait: Duration) -> Self {
        Self {
            places: Arc::new(Semaphore::new(limit.get())),
            memories: Arc::new(std::sync::Mutex::new((0..limit.get()).map(|_| PasswordMemory::default()).collect())),
            limit: limit.get(),
            queue_wait,
            running: Arc::new(AtomicUsize::new(0)),
            peak: Arc::new(AtomicUsize::new(0)),
            started: Arc::new(AtomicU64::new(0)),
            turned_away: AtomicU64::new(0),
        }
    }

    /// Runs `check` on a blocking thread once a place is free, with that place's working memory.
    ///
    /// The place is released by the blocking thread when `check` returns, not by the caller: a log-in whose
    /// client hangs up cancels its wait, but a check already running keeps its place until it ends, so the bound
    /// holds however requests end.
    ///
    /// # Errors
    /// [`Busy`] when no place came free within the queue wait.
    pub async fn run<T: Send + 'static>(
        &self,
        check: impl FnOnce(&mut PasswordMemory) -> T + Send + 'static,
    ) -> Result<T, Busy> {
        let place = match tokio::time::timeout(self.queue_wait, Arc::clone(&self.places).acquire_owned()).await {
            Ok(Ok(place)) => place,
            Ok(Err(_)) | Err(_) => {
                self.turned_away.fetch_add(1, Ordering::Relaxed);
                return Err(Busy);
            }
        };
        let running = Arc::clone(&self.running);
        let peak = Arc::clone(&self.peak);
        let started = Arc::clone(&self.started);
        let memories = Arc::clone(&self.memories);
        tokio::task::spawn_blocking(move || {
            started.fetch_add(1, Ordering::SeqCst);
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            // The place guarantees a free memory; the default (empty) only if a check panicked with one.
            let taken = memories.lock().unwrap_or_else(std::sync::PoisonError::into_inner).pop();
            let mut memory = taken.unwrap_or_default();
            let out = check(&mut memory);
            memories.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(memory);
            running.fetch_sub(1, Ordering::SeqCst);
            drop(place);
            out
        })
        .await
        .map_err(|_| Busy)
    }

    /// How many checks may run at once.
    #[must_use]
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// The working memory held by the places not running a check now, in KiB (at most the limit × 19 MiB).
    #[must_use]
    pub fn memory_kib(&self) -> usize {
        self.memories.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter().map(PasswordMemory::kib).sum()
    }

    /// How many checks are running now.
    #[must_use]
    pub fn running(&self) -> usize {
        self.running.load(Ordering::SeqCst)
    }

    /// The most checks that ever ran at once.
    #[must_use]
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }

    /// How many checks have started since the server started.
    #[must_use]
    pub fn started(&self) -> u64 {
        self.started.load(Ordering::SeqCst)
    }

    /// How many log-ins were answered "try again" because no place came free in time.
    #[must_use]
    pub fn turned_away(&self) -> u64 {
        self.turned_away.load(Ordering::Relaxed)
    }

    /// Takes a free place, as a check would, without running anything; `None` when none is free. Holding it keeps
    /// one check fewer from running (tests use it to fill the gate).
    #[must_use]
    pub fn occupy(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.places).try_acquire_owned().ok()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn never_more_checks_at_once_than_the_limit() {
        let checks = Arc::new(PasswordChecks::new(NonZeroUsize::new(2).expect("2"), Duration::from_secs(60)));
        // Each check blocks until the test lets it go, so every check that can start is running at once.
        let (release, gate) = mpsc::channel::<()>();
        let gate = Arc::new(std::sync::Mutex::new(gate));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let checks = Arc::clone(&checks);
            let gate = Arc::clone(&gate);
            tasks.push(tokio::spawn(async move {
                checks.run(move |_| gate.lock().expect("gate").recv().expect("released")).await
            }));
        }
        for released in 0..8 {
            let expected = 2.min(8 - released);
            // Bounded: the wait ends as soon as the expected number of checks runs.
            for _ in 0..6000 {
                if checks.running() == expected {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert_eq!(checks.running(), expected);
            assert!(checks.peak() <= 2, "{} checks ran at once", checks.peak());
            release.send(()).expect("a check waits");
        }
        for task in tasks {
            assert_eq!(task.await.expect("task"), Ok(()));
        }
        assert_eq!(checks.peak(), 2);
        assert_eq!(checks.running(), 0);
    }

    #[tokio::test]
    async fn a_check_that_finds_no_place_in_time_is_turned_away() {
        let checks = PasswordChecks::new(NonZeroUsize::MIN, Duration::from_millis(50));
        let held = checks.occupy().expect("a free place");
        assert!(checks.occupy().is_none());
        assert_eq!(checks.run(|_| 1).await, Err(Busy));
        assert_eq!(checks.turned_away(), 1);
        drop(held);
        assert_eq!(checks.run(|_| 2).await, Ok(2));
    }
}
