//! The border between the database driver and latchkey: every `sqlx::Error` becomes a [`latchkey_core::Error`]
//! here, so that no driver type leaves this crate.
//!
//! Rules:
//! - a unique-key violation on the constraint a caller can act on becomes [`Error::Conflict`] with the code the
//!   storage traits document (`username_taken`, `handle_taken`);
//! - everything else becomes [`Error::Storage`] with a sentence naming the operation that failed and the driver's
//!   own description of the cause. Bound values never appear in these messages: the driver's messages name
//!   tables and columns, never the values that were written.

use latchkey_core::Error;
use sqlx::error::ErrorKind;

/// An error mapper for an operation that can fail only for database reasons. `action` completes the sentence
/// "the database failed while …", for example `"reading a connection"`.
pub(crate) fn storage(action: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
    move |err| storage_error(action, &err)
}

/// An error mapper for an insert whose unique key on `column` means "this name is already taken": a violation
/// of that key becomes the conflict that `conflict` builds; any other failure is a storage error.
///
/// The violated key is recognised by `column` appearing in the constraint's name (PostgreSQL, for example
/// `connections_user_id_handle_key`) or in the driver's message (SQLite, for example
/// `UNIQUE constraint failed: connections.user_id, connections.handle`).
pub(crate) fn unique_as_conflict(
    action: &'static str,
    column: &'static str,
    conflict: impl FnOnce() -> Error,
) -> impl FnOnce(sqlx::Error) -> Error {
    move |err| {
        if violated_unique_key(&err).is_some_and(|key| key.contains(column)) {
            conflict()
        } else {
            storage_error(action, &err)
        }
    }
}

/// A storage error for a value that was read but does not make sense (a corrupt or hand-edited row).
pub(crate) fn corrupt(what: &str, why: impl std::fmt::Display) -> Error {
    Error::Storage(format!("the database holds {what} that latchkey cannot read ({why}); was the row edited by hand?"))
}

/// The constraint (or, failing that, the message) of a unique-key violation; `None` for any other error.
fn violated_unique_key(err: &sqlx::Error) -> Option<String> {
    let sqlx::Error::Database(db) = err else {
        return None;
    };
    if db.kind() != ErrorKind::UniqueViolation {
        return None;
    }
    Some(db.constraint().map_or_else(|| db.message().to_owned(), str::to_owned))
}

fn storage_error(action: &'static str, err: &sqlx::Error) -> Error {
    Error::Storage(format!("the database failed while {action}: {}", describe(err)))
}

/// The cause of a driver error in words, without bound values.
pub(crate) fn describe(err: &sqlx::Error) -> String {
    match err {
        // The driver's own message ("database is locked", "UNIQUE constraint failed: users.id"), without the
        // "error returned from database" preamble of its Display.
        sqlx::Error::Database(db) => db.message().to_owned(),
        sqlx::Error::PoolTimedOut => "no database connection became free in time; the database may be overloaded \
                                      or locked by another process"
            .to_owned(),
        sqlx::Error::PoolClosed => "the database connection pool is closed (latchkey is shutting down)".to_owned(),
        other => other.to_string(),
    }
}
