//! The audit log of the server: every token read, refresh, connection change and API key change becomes an
//! [`AuditRecord`] (who, which key, which handle, when, what, how it ended; never a secret).
//!
//! Token reads are the hot path, so their records go through a bounded in-memory buffer that a background task
//! ([`flusher`]) writes in batches. The rule is fail-closed: a token is handed out only once its record has a
//! place in the buffer; when there is none (the buffer is full, or the user already has [`USER_SHARE`] records
//! waiting) or the last batch could not be written, the read answers 503 "audit log unavailable" instead of
//! handing out a token nobody would know about. A record takes its place when the read is over, never while a
//! provider is asked, so a slow provider holds no shared capacity, and one user's flood of reads can fill only
//! their own share. Every other change is rarer and is written directly.

mod flusher;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use latchkey_core::audit::{Action, Actor, AuditRecord, outcome_of};
use latchkey_core::model::{ApiKey, Connection, UserId};
use latchkey_core::store::Store;
use latchkey_core::{Clock, Error, Handle, Result, Timestamp};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How many token-read records wait in memory at most.
pub const BUFFER_CAPACITY: usize = 2048;
/// How many of them may be one user's: a quarter, so that no user fills the buffer for the others.
pub const USER_SHARE: usize = BUFFER_CAPACITY / 4;
/// How long a finished token read waits for a place in the buffer (the flusher frees places with every batch)
/// before it answers 503.
pub const PLACE_WAIT: Duration = Duration::from_secs(2);
/// How many records one batch writes at most (one multi-row insert).
pub const BATCH_SIZE: usize = 256;
/// How often waiting records are written, unless a full batch is waiting sooner.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(200);

/// The message of a token read refused because its record could not be kept.
const UNAVAILABLE: &str = "audit log unavailable: latchkey hands out no token it cannot record; try again shortly \
                           (the server log says why the audit log cannot be written)";

/// The audit log: the buffer of token-read records and direct writes for everything else.
pub struct AuditLog {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    sender: mpsc::Sender<AuditRecord>,
    /// False from a failed batch until a batch is written again; token reads are refused meanwhile.
    writable: Arc<AtomicBool>,
    /// The buffer's receiving end, until the flusher takes it.
    receiver: std::sync::Mutex<Option<mpsc::Receiver<AuditRecord>>>,
    /// How many records of each user wait in the buffer or in the batch being written.
    shares: Arc<Shares>,
    /// Woken by the flusher after every written batch.
    written: Arc<tokio::sync::Notify>,
    /// [`PLACE_WAIT`], shorter in unit tests.
    place_wait: Duration,
}

/// Records waiting per user; a user without waiting records has no entry, so the map stays as small as the
/// number of users reading at once.
#[derive(Default)]
pub(crate) struct Shares(std::sync::Mutex<std::collections::HashMap<UserId, usize>>);

impl Shares {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<UserId, usize>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes one place of `user`'s share; false when the share is used up.
    fn take(&self, user: &UserId) -> bool {
        let mut shares = self.lock();
        let taken = shares.entry(user.clone()).or_default();
        if *taken >= USER_SHARE {
            return false;
        }
        *taken += 1;
        true
    }

    /// Gives back the places of written (or dropped) records.
    pub(crate) fn give_back(&self, records: &[AuditRecord]) {
        let mut shares = self.lock();
        for record in records {
            if let Some(taken) = shares.get_mut(&record.user_id) {
                *taken = taken.saturating_sub(1);
                if *taken == 0 {
                    shares.remove(&record.user_id);
                }
            }
        }
    }

    #[cfg(test)]
    fn waiting(&self, user: &UserId) -> usize {
        self.lock().get(user).copied().unwrap_or(0)
    }
}

impl AuditLog {
    /// An audit log writing to `store`; its flusher starts with [`AuditLog::start`].
    #[must_use]
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        let (sender, receiver) = mpsc::channel(BUFFER_CAPACITY);
        Self {
            store,
            clock,
            sender,
            writable: Arc::new(AtomicBool::new(true)),
            receiver: std::sync::Mutex::new(Some(receiver)),
            shares: Arc::default(),
            written: Arc::default(),
            place_wait: PLACE_WAIT,
        }
    }

    /// Starts the background task that writes the buffer in batches. When `stop` is cancelled it takes no more
    /// records, writes what is buffered and ends; await the handle to know the buffer is on disk. `None` when
    /// already started.
    pub fn start(&self, stop: CancellationToken) -> Option<JoinHandle<()>> {
        let receiver = self.receiver.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()?;
        let store = Arc::clone(&self.store);
        let writable = Arc::clone(&self.writable);
        let freed = flusher::Freed { shares: Arc::clone(&self.shares), written: Arc::clone(&self.written) };
        Some(tokio::spawn(flusher::run(store, receiver, writable, freed, stop)))
    }

    /// Whether token-read records can be written now; a read checks this before any work, so that a broken
    /// audit log costs no provider call.
    ///
    /// # Errors
    /// `Unavailable` when the last batch could not be written.
    pub fn check_writable(&self) -> Result<()> {
        if self.writable.load(Ordering::Acquire) { Ok(()) } else { Err(Error::Unavailable(UNAVAILABLE.to_owned())) }
    }

    /// Puts the record of a finished token read on `handle` of `user`, by `by`, into the buffer. The caller
    /// hands the token out only when this succeeds. When the buffer is full, or `user` already has
    /// [`USER_SHARE`] records waiting, it waits for the flusher to write a batch, for at most [`PLACE_WAIT`].
    ///
    /// # Errors
    /// `Unavailable` when the last batch could not be written, or no place came free in time (or the buffer is
    /// closed at shutdown).
    pub async fn record_token_read<T>(
        &self,
        user: &UserId,
        by: Actor,
        handle: &Handle,
        result: &Result<T>,
    ) -> Result<()> {
        let mut record = self.record(user.clone(), by, Action::TokenRead, Some(handle.clone()));
        record.outcome = outcome_of(result);
        let deadline = tokio::time::Instant::now() + self.place_wait;
        loop {
            // Registered before the attempt, so that a batch written in between is not missed.
            let written = self.written.notified();
            tokio::pin!(written);
            written.as_mut().enable();
            record = match self.try_place(record)? {
                None => return Ok(()),
                Some(record) => record,
            };
            if tokio::time::timeout_at(deadline, written).await.is_err() {
                tracing::warn!(user = %user, "a token read was refused: no place in the audit buffer came free in time");
                return Err(Error::Unavailable(format!(
                    "audit log unavailable: too many token reads are waiting to be recorded (at most {USER_SHARE} \
                     of one user's); slow down and try again shortly"
                )));
            }
        }
    }

    /// Puts `record` into the buffer if the log is writable and there is a place for it and in its user's share;
    /// gives it back when there is none.
    fn try_place(&self, record: AuditRecord) -> Result<Option<AuditRecord>> {
        self.check_writable()?;
        if !self.shares.take(&record.user_id) {
            return Ok(Some(record));
        }
        match self.sender.try_send(record) {
            Ok(()) => Ok(None),
            Err(mpsc::error::TrySendError::Full(record)) => {
                self.shares.give_back(std::slice::from_ref(&record));
                Ok(Some(record))
            }
            Err(mpsc::error::TrySendError::Closed(record)) => {
                self.shares.give_back(std::slice::from_ref(&record));
                Err(Error::Unavailable(UNAVAILABLE.to_owned()))
            }
        }
    }

    /// Records a change to a connection of `user` (create, edit, authorize, delete) and how it ended.
    pub async fn connection_change<T>(
        &self,
        user: &UserId,
        by: &Actor,
        action: Action,
        handle: &Handle,
        result: &Result<T>,
    ) {
        let mut record = self.record(user.clone(), by.clone(), action, Some(handle.clone()));
        record.outcome = outcome_of(result);
        self.write(record).await;
    }

    /// Records that an authorization of `connection` finished, connected or not.
    pub async fn authorization_finished<T>(&self, connection: &Connection, result: &Result<T>) {
        let action = Action::ConnectionAuthorized;
        self.connection_change(&connection.user_id, &Actor::Authorization, action, &connection.handle, result).await;
    }

    /// Records the creation or revocation of the API key with the shown prefix `prefix`, owned by `user`.
    pub async fn api_key_change(&self, user: &UserId, by: &Actor, action: Action, prefix: &str, ok: bool) {
        let mut record = self.record(user.clone(), by.clone(), action, None);
        record.subject_key = Some(prefix.to_owned());
        if !ok {
            "not_found".clone_into(&mut record.outcome);
        }
        self.write(record).await;
    }

    fn record(&self, user_id: UserId, actor: Actor, action: Action, handle: Option<Handle>) -> AuditRecord {
        AuditRecord {
            at: self.clock.now(),
            user_id,
            actor,
            action,
            handle,
            subject_key: None,
            outcome: "ok".to_owned(),
        }
    }

    /// Writes one record now; when that fails, hands it to the buffer so that the flusher keeps trying (and
    /// token reads stop until it succeeds).
    async fn write(&self, record: AuditRecord) {
        let Err(err) = self.store.insert_audit_records(std::slice::from_ref(&record)).await else {
            return;
        };
        tracing::warn!(error = %err, action = %record.action, "could not write an audit record; it waits in the buffer");
        if let Err(lost) = self.sender.try_send(record) {
            let record = lost.into_inner();
            tracing::error!(action = %record.action, user = %record.user_id, "an audit record was lost: the buffer is full or closed");
        }
    }
}

/// The actor of a request made with `key`.
#[must_use]
pub fn api_key_actor(key: &ApiKey) -> Actor {
    Actor::ApiKey { id: key.id.clone(), prefix: key.prefix.clone() }
}

/// Records a refresh (or a repeated client credentials grant) of `connection` that `by` caused, directly in
/// `store`: refreshes are rare next to token reads.
pub async fn record_refresh<T>(
    store: &dyn Store,
    connection: &Connection,
    by: &Actor,
    result: &Result<T>,
    clock: &dyn Clock,
) {
    let record = AuditRecord {
        at: clock.now(),
        user_id: connection.user_id.clone(),
        actor: by.clone(),
        action: Action::TokenRefresh,
        handle: Some(connection.handle.clone()),
        subject_key: None,
        outcome: outcome_of(result),
    };
    if let Err(err) = store.insert_audit_records(&[record]).await {
        tracing::error!(error = %err, handle = %connection.handle, "could not write the audit record of a refresh");
    }
}

/// Records that the command line created `key`, directly in `store` (the command line has no buffer).
///
/// # Errors
/// The store failing.
pub async fn record_api_key_created(store: &dyn Store, key: &ApiKey, at: Timestamp) -> Result<()> {
    let record = AuditRecord {
        at,
        user_id: key.user_id.clone(),
        actor: Actor::CommandLine,
        action: Action::ApiKeyCreate,
        handle: None,
        subject_key: Some(key.prefix.clone()),
        outcome: "ok".to_owned(),
    };
    store.insert_audit_records(&[record]).await
}

#[cfg(test)]
mod tests {
    use latchkey_core::ManualClock;
    use latchkey_core::model::ApiKeyId;

    use super::*;

    fn key() -> Actor {
        Actor::ApiKey { id: ApiKeyId("key-1".to_owned()), prefix: "lk_abcdefg".to_owned() }
    }

    fn user() -> UserId {
        UserId("user-1".to_owned())
    }

    const OK: Result<()> = Ok(());

    #[tokio::test]
    async fn one_user_fills_only_their_share_and_a_full_buffer_makes_everyone_wait() {
        let store: Arc<dyn Store> =
            Arc::new(latchkey_store::SqliteStore::open("sqlite::memory:").await.expect("store"));
        let mut audit = AuditLog::new(store, Arc::new(ManualClock::starting_now()));
        audit.place_wait = Duration::from_millis(20);
        let handle = Handle::parse("crm").expect("handle");
        let (flooder, other) = (user(), UserId("user-2".to_owned()));
        for _ in 0..USER_SHARE {
            audit.record_token_read(&flooder, key(), &handle, &OK).await.expect("a place");
        }
        // No flusher runs here: the next read of the flooder waits out its wait for a place and is refused.
        let refused = audit.record_token_read(&flooder, key(), &handle, &OK).await.expect_err("the share is used up");
        assert_eq!(refused.http_status(), 503);
        assert!(refused.to_string().starts_with("audit log unavailable"), "{refused}");
        audit.record_token_read(&other, key(), &handle, &OK).await.expect("another user still reads");
        assert_eq!(audit.shares.waiting(&flooder), USER_SHARE);

        // Many users together can still fill the buffer; then a read waits, and a refused one is not counted.
        let mut users = 3;
        while audit.sender.capacity() > 0 {
            let next = UserId(format!("user-{users}"));
            for _ in 0..USER_SHARE {
                if audit.sender.capacity() == 0 {
                    break;
                }
                audit.record_token_read(&next, key(), &handle, &OK).await.expect("a place");
            }
            users += 1;
        }
        let late = UserId(format!("user-{users}"));
        let refused = audit.record_token_read(&late, key(), &handle, &OK).await.err().map(|e| e.code());
        assert_eq!(refused, Some("unavailable"));
        assert_eq!(audit.shares.waiting(&late), 0, "a refused record takes no place");

        // A written batch frees places and wakes the waiting reads.
        let mut receiver = audit.receiver.lock().expect("lock").take().expect("receiver");
        audit.place_wait = Duration::from_secs(60);
        let waiting = audit.record_token_read(&flooder, key(), &handle, &OK);
        let flush = async {
            tokio::task::yield_now().await;
            let mut written = Vec::new();
            receiver.recv_many(&mut written, BUFFER_CAPACITY).await;
            flusher::Freed { shares: Arc::clone(&audit.shares), written: Arc::clone(&audit.written) }
                .give_back(&written);
        };
        let (placed, ()) = tokio::join!(waiting, flush);
        placed.expect("placed once a batch is written");
        assert_eq!(audit.shares.waiting(&flooder), 1, "only the new record waits");
        assert_eq!(audit.shares.lock().len(), 1, "no entry stays behind for users without waiting records");
    }

    #[tokio::test]
    async fn an_unwritable_log_refuses_token_reads() {
        let store: Arc<dyn Store> =
            Arc::new(latchkey_store::SqliteStore::open("sqlite::memory:").await.expect("store"));
        let audit = AuditLog::new(store, Arc::new(ManualClock::starting_now()));
        audit.writable.store(false, Ordering::Release);
        let refused = audit.record_token_read(&user(), key(), &Handle::parse("crm").expect("handle"), &OK).await.err();
        assert_eq!(refused.map(|e| e.code()), Some("unavailable"));
    }
}
