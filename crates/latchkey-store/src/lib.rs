//! The storage of latchkey: implementations of [`latchkey_core::store::Store`] for SQLite and PostgreSQL, each
//! with its own migrations, and a conformance suite that every backend must pass.
//!
//! The server calls [`connect`] with the configured database URL and holds the result as `Arc<dyn Store>`;
//! the URL's scheme picks the backend. Database-driver errors never leave this crate: they become
//! [`latchkey_core::Error::Storage`] (or [`latchkey_core::Error::Conflict`] for a taken name) at the border.

mod codec;
pub mod conformance;
mod error;
pub mod postgres;
mod rows;
pub mod sqlite;
#[cfg(feature = "testing")]
pub mod testing;
mod webhook_rows;

use std::sync::Arc;

use latchkey_core::store::Store;
use latchkey_core::{Error, Result};

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// The schemes [`connect`] understands, for error messages.
const ACCEPTED_SCHEMES: &str = "sqlite:// (or sqlite:), postgres:// or postgresql://";

/// Opens the store that `database_url` names, creating and migrating it as needed.
///
/// - `sqlite://PATH` or `sqlite:PATH`: a [`SqliteStore`] on that file (created with its directory when missing);
/// - `postgres://…` or `postgresql://…`: a [`PostgresStore`] on that (existing) database, its tables created on
///   first use.
///
/// # Errors
/// [`Error::Invalid`] (field `database_url`) for a scheme latchkey does not support; whatever the backend's
/// `open` returns otherwise. Messages never repeat the URL, which may hold a password.
pub async fn connect(database_url: &str) -> Result<Arc<dyn Store>> {
    match Backend::from_url(database_url)? {
        Backend::Sqlite => Ok(Arc::new(SqliteStore::open(database_url).await?)),
        Backend::Postgres => Ok(Arc::new(PostgresStore::open(database_url).await?)),
    }
}

/// Ok when every migration of `migrator` is among `applied` (the versions recorded as successful); otherwise a
/// storage error naming the first missing one, for the readiness check.
pub(crate) fn missing_migrations(migrator: &sqlx::migrate::Migrator, applied: &[i64]) -> Result<()> {
    let missing: Vec<i64> = migrator.iter().map(|m| m.version).filter(|v| !applied.contains(v)).collect();
    match missing.first() {
        None => Ok(()),
        Some(first) => Err(Error::Storage(format!(
            "the database schema is not up to date: {} migration(s) not applied, the first is {first}; \
             restart latchkey to apply them",
            missing.len()
        ))),
    }
}

/// The database backends a URL can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend named by the URL's scheme (case-insensitive, as RFC 3986 §3.1 says schemes are).
    fn from_url(database_url: &str) -> Result<Self> {
        let Some((scheme, _)) = database_url.split_once(':') else {
            return Err(Error::invalid(
                "database_url",
                format!("the database URL has no scheme: it must start with {ACCEPTED_SCHEMES}"),
            ));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "sqlite" => Ok(Self::Sqlite),
            "postgres" | "postgresql" => Ok(Self::Postgres),
            other => {
                // Only the scheme is repeated: the rest of a URL may hold a password.
                let shown: String = other.chars().filter(char::is_ascii_alphanumeric).take(20).collect();
                Err(Error::invalid(
                    "database_url",
                    format!("the database URL scheme '{shown}' is not supported: use {ACCEPTED_SCHEMES}"),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheme_picks_the_backend() {
        assert_eq!(Backend::from_url("sqlite://data/latchkey.db"), Ok(Backend::Sqlite));
        assert_eq!(Backend::from_url("sqlite:latchkey.db"), Ok(Backend::Sqlite));
        assert_eq!(Backend::from_url("SQLite::memory:"), Ok(Backend::Sqlite));
        assert_eq!(Backend::from_url("postgres://u:p@127.0.0.1/db"), Ok(Backend::Postgres));
        assert_eq!(Backend::from_url("postgresql://127.0.0.1/db"), Ok(Backend::Postgres));
    }

    #[test]
    fn unknown_schemes_are_named_but_the_url_is_not_repeated() {
        let err = Backend::from_url("mysql://admin:hunter2@127.0.0.1/db").expect_err("mysql");
        let message = err.to_string();
        assert!(message.contains("'mysql'"), "{message}");
        assert!(message.contains("sqlite://") && message.contains("postgres://"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
        assert_eq!(err.code(), "invalid_request");

        let message = Backend::from_url("/var/lib/latchkey.db").expect_err("no scheme").to_string();
        assert!(message.contains("no scheme"), "{message}");
    }
}
