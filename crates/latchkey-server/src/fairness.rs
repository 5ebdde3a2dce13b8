//! Fair shares of background work: the webhook sender, the device poller and the refresher run their outbound
//! requests concurrently, each under a [`Gate`] that bounds how many run at once in total, per user and per
//! destination host. A job that finds its share taken is not started (and not waited for): its claim is given
//! back and a later pass picks it up, so one user's hanging endpoints hold at most their own share and never a
//! slot another user's job needs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How many idle per-key entries a gate keeps before it forgets the idle ones.
const PRUNE_ABOVE: usize = 256;

/// Bounds on concurrent jobs: in total, per user and per destination host.
pub struct Gate {
    total: Arc<Semaphore>,
    per_user: usize,
    per_host: usize,
    users: Mutex<HashMap<String, Arc<Semaphore>>>,
    hosts: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// The slots one running job holds; dropping it gives them back.
#[must_use = "the job's slots are given back when the pass is dropped"]
pub struct Pass {
    _permits: [OwnedSemaphorePermit; 3],
}

impl Gate {
    /// A gate for at most `total` jobs at once, `per_user` of one user and `per_host` to one host (each at
    /// least 1).
    #[must_use]
    pub fn new(total: usize, per_user: usize, per_host: usize) -> Self {
        Self {
            total: Arc::new(Semaphore::new(total.max(1))),
            per_user: per_user.max(1),
            per_host: per_host.max(1),
            users: Mutex::default(),
            hosts: Mutex::default(),
        }
    }

    /// How many more jobs could start now, as far as the total bound goes.
    #[must_use]
    pub fn free(&self) -> usize {
        self.total.available_permits()
    }

    /// Slots for a job of `user` towards `host`, or `None` when any of the three bounds is reached. Never waits.
    #[must_use]
    pub fn try_enter(&self, user: &str, host: &str) -> Option<Pass> {
        let user = Self::slot(&self.users, user, self.per_user).try_acquire_owned().ok()?;
        let host = Self::slot(&self.hosts, host, self.per_host).try_acquire_owned().ok()?;
        let total = Arc::clone(&self.total).try_acquire_owned().ok()?;
        Some(Pass { _permits: [user, host, total] })
    }

    fn slot(map: &Mutex<HashMap<String, Arc<Semaphore>>>, key: &str, size: usize) -> Arc<Semaphore> {
        let mut map = map.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() > PRUNE_ABOVE {
            // An entry nobody holds a permit of is idle: forgetting it loses nothing.
            map.retain(|_, semaphore| Arc::strong_count(semaphore) > 1 || semaphore.available_permits() < size);
        }
        Arc::clone(map.entry(key.to_owned()).or_insert_with(|| Arc::new(Semaphore::new(size))))
    }
}

/// The `host:port` a URL points at, the key of the per-host bound; empty for a URL that does not parse.
#[must_use]
pub fn host_key(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .and_then(|url| url.host_str().map(|host| format!("{host}:{}", url.port_or_known_default().unwrap_or(0))))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_bound_holds_on_its_own() {
        let gate = Gate::new(3, 2, 2);
        let a1 = gate.try_enter("a", "slow:443").expect("first of a");
        let a2 = gate.try_enter("a", "slow:443").expect("second of a");
        assert!(gate.try_enter("a", "other:443").is_none(), "a third job of one user is not started");
        assert!(gate.try_enter("b", "slow:443").is_none(), "nor a third job to one host");
        let b = gate.try_enter("b", "other:443").expect("another user towards another host starts");
        assert!(gate.try_enter("c", "fresh:443").is_none(), "nor a fourth job in all");
        assert_eq!(gate.free(), 0);
        drop((a1, a2, b));
        assert_eq!(gate.free(), 3, "dropping the passes gives every slot back");
        assert!(gate.try_enter("a", "slow:443").is_some(), "and a's share is free again");
    }
}
