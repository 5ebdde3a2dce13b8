//! The audit log of the server: every token read, refresh, connection change and API key change becomes an
//! [`AuditRecord`] (who, which key, which handle, when, what, how it ended; never a secret).
//!
//! Token reads are the hot path, so their records go through a bounded in-memory buffer that a background task
//! ([`flusher`]) writes in batches. The rule is fail-closed: a token read first reserves its record's place in
//! the buffer, and when there is no place (the buffer is full) or the last batch could not be written, the read is
//! refused with 503 "audit log unavailable" instead of handing out a token nobody would know about. Reads work
//! again as soon as a batch is written. Every other change is rarer and is written directly.

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
pub const BUFFER_CAPACITY: usize = 1024;
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
}

/// A place in the buffer, reserved before a token is read; sending the record cannot fail.
pub struct Reserved<'a> {
    permit: mpsc::Permit<'a, AuditRecord>,
    record: AuditRecord,
}

impl Reserved<'_> {
    /// Puts the record, completed with how the read ended, into the buffer.
    pub fn finish<T>(self, result: &Result<T>) {
        let Self { permit, mut record } = self;
        record.outcome = outcome_of(result);
        permit.send(record);
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
        }
    }

    /// Starts the background task that writes the buffer in batches. When `stop` is cancelled it takes no more
    /// records, writes what is buffered and ends; await the handle to know the buffer is on disk. `None` when
    /// already started.
    pub fn start(&self, stop: CancellationToken) -> Option<JoinHandle<()>> {
        let receiver = self.receiver.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()?;
        let store = Arc::clone(&self.store);
        let writable = Arc::clone(&self.writable);
        Some(tokio::spawn(flusher::run(store, receiver, writable, stop)))
    }

    /// Reserves the place of the record of a token read on `handle` of `user`, by `by`, before the token is read.
    ///
    /// # Errors
    /// `Unavailable` when the last batch could not be written or the buffer is full (or closed at shutdown).
    pub fn reserve_token_read(&self, user: &UserId, by: Actor, handle: &Handle) -> Result<Reserved<'_>> {
        if !self.writable.load(Ordering::Acquire) {
            return Err(Error::Unavailable(UNAVAILABLE.to_owned()));
        }
        let permit = self.sender.try_reserve().map_err(|err| {
            tracing::warn!(reason = %err, "a token read was refused: the audit buffer takes no more records");
            Error::Unavailable(UNAVAILABLE.to_owned())
        })?;
        let record = self.record(user.clone(), by, Action::TokenRead, Some(handle.clone()));
        Ok(Reserved { permit, record })
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

    #[tokio::test]
    async fn a_full_buffer_refuses_token_reads_until_a_place_frees() {
        let store: Arc<dyn Store> =
            Arc::new(latchkey_store::SqliteStore::open("sqlite::memory:").await.expect("store"));
        let audit = AuditLog::new(store, Arc::new(ManualClock::starting_now()));
        let (user, handle) = (user(), Handle::parse("crm").expect("handle"));
        let mut held: Vec<Reserved<'_>> =
            (0..BUFFER_CAPACITY).map(|_| audit.reserve_token_read(&user, key(), &handle).expect("a place")).collect();
        let refused = audit.reserve_token_read(&user, key(), &handle).err().expect("the buffer is full");
        assert_eq!(refused.http_status(), 503);
        assert!(refused.to_string().starts_with("audit log unavailable"), "{refused}");

        held.pop().expect("one").finish(&Ok::<(), Error>(()));
        assert!(audit.reserve_token_read(&user, key(), &handle).is_err(), "a sent record still takes its place");
        drop(held);
        assert!(audit.reserve_token_read(&user, key(), &handle).is_ok(), "unused places are given back");
    }

    #[tokio::test]
    async fn an_unwritable_log_refuses_token_reads() {
        let store: Arc<dyn Store> =
            Arc::new(latchkey_store::SqliteStore::open("sqlite::memory:").await.expect("store"));
        let audit = AuditLog::new(store, Arc::new(ManualClock::starting_now()));
        audit.writable.store(false, Ordering::Release);
        let refused = audit.reserve_token_read(&user(), key(), &Handle::parse("crm").expect("handle")).err();
        assert_eq!(refused.map(|e| e.code()), Some("unavailable"));
    }
}
