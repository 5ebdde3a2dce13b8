//! The SQLite backend: one database file in WAL mode, a small pool of connections, and the schema of
//! `migrations/sqlite` applied at open.
//!
//! SQLite has a single writer. Every write here is one statement, or one `BEGIN IMMEDIATE` transaction that takes
//! the write lock up front, and a busy timeout makes a second writer wait for the first instead of failing.
//! `synchronous=FULL` makes every commit durable before it returns: a refresh token that the provider has just
//! rotated exists nowhere else, so losing the last commit on power loss would lose the connection.

mod api_keys;
mod audit;
mod connections;
mod device_flows;
mod flows;
mod meta;
mod ops;
mod rows;
mod sealed;
mod sessions;
mod users;
mod webhooks;

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use latchkey_core::store::Store;
use latchkey_core::{Error, Result};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection as _, SqliteConnection, SqlitePool};

use crate::error::{describe, storage};

/// The schema, embedded at compile time and applied by [`SqliteStore::open`].
static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long a statement waits for another connection's write lock before it fails with "database is locked".
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections in the pool. Readers run in parallel under WAL; writers queue on the file lock anyway, so a few
/// are enough.
const POOL_SIZE: u32 = 4;

/// latchkey's storage in one SQLite database file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    path: PathBuf,
}

/// The connection settings that SQLite reports for a pooled connection; see [`SqliteStore::pragmas`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlitePragmas {
    /// `PRAGMA journal_mode`, for example `wal` (or `memory` for an in-memory database).
    pub journal_mode: String,
    /// `PRAGMA synchronous` by name: `off`, `normal`, `full` or `extra`.
    pub synchronous: String,
    /// `PRAGMA foreign_keys`: whether foreign keys (and so `ON DELETE CASCADE`) are enforced.
    pub foreign_keys: bool,
    /// `PRAGMA busy_timeout`, in milliseconds.
    pub busy_timeout_ms: i64,
}

impl SqliteStore {
    /// Opens (creating when missing, together with its parent directory) the database at `database_url` and
    /// brings its schema up to date.
    ///
    /// Accepts `sqlite://PATH`, `sqlite:PATH` and `sqlite::memory:` (an in-memory database for tests, held by a
    /// single connection). Every connection runs with `journal_mode=WAL`, `synchronous=FULL`, `foreign_keys=ON`
    /// and a busy timeout of 5 seconds.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a URL SQLite does not accept; [`Error::Storage`] when the directory or file cannot
    /// be created or opened, or a migration fails (for example when the database was written by a newer latchkey).
    pub async fn open(database_url: &str) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(database_url)
            .map_err(|err| Error::invalid("database_url", format!("the SQLite database URL is not valid: {err}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let in_memory = is_in_memory(database_url);
        let path = options.get_filename().to_path_buf();

        let directory = path.parent().filter(|parent| !in_memory && !parent.as_os_str().is_empty());
        if let Some(directory) = directory {
            tokio::fs::create_dir_all(directory).await.map_err(|err| {
                Error::Storage(format!(
                    "could not create the directory {} for the SQLite database: {err}",
                    directory.display()
                ))
            })?;
        }

        // A new file is switched to WAL by one connection alone first: the switch needs the file's exclusive lock,
        // and the pool's connections, opening together, would otherwise fail each other with "database is
        // locked" (the busy timeout does not cover it). Later connections find WAL already set.
        if !in_memory {
            let first = SqliteConnection::connect_with(&options).await.map_err(|err| {
                Error::Storage(format!("could not open the SQLite database at {}: {}", path.display(), describe(&err)))
            })?;
            let _ = first.close().await;
        }

        // Connections are kept for the life of the store: reopening costs more than an idle file handle, and an
        // in-memory database lives only as long as its connection.
        let pool = SqlitePoolOptions::new()
            .max_connections(if in_memory { 1 } else { POOL_SIZE })
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .map_err(|err| {
                Error::Storage(format!("could not open the SQLite database at {}: {}", path.display(), describe(&err)))
            })?;

        MIGRATOR.run(&pool).await.map_err(|err| {
            Error::Storage(format!(
                "could not bring the schema of the SQLite database at {} up to date: {err}",
                path.display()
            ))
        })?;

        let store = Self { pool, path };
        let pragmas = store.pragmas().await?;
        tracing::info!(
            path = %store.path.display(),
            journal_mode = %pragmas.journal_mode,
            synchronous = %pragmas.synchronous,
            "opened the SQLite database"
        );
        Ok(store)
    }

    /// The database file, as given in the URL.
    #[must_use]
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// What SQLite reports for the settings latchkey relies on, read from one pooled connection.
    ///
    /// # Errors
    /// [`Error::Storage`] when the database cannot be asked.
    pub async fn pragmas(&self) -> Result<SqlitePragmas> {
        let mut conn = self.pool.acquire().await.map_err(storage("reading the SQLite settings"))?;
        let journal_mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut *conn)
            .await
            .map_err(storage("reading the SQLite journal mode"))?;
        let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&mut *conn)
            .await
            .map_err(storage("reading the SQLite synchronous setting"))?;
        let foreign_keys: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(&mut *conn)
            .await
            .map_err(storage("reading the SQLite foreign-key setting"))?;
        let busy_timeout_ms: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
            .fetch_one(&mut *conn)
            .await
            .map_err(storage("reading the SQLite busy timeout"))?;
        let synchronous = match synchronous {
            0 => "off",
            1 => "normal",
            2 => "full",
            3 => "extra",
            _ => "unknown",
        };
        Ok(SqlitePragmas {
            journal_mode: journal_mode.to_ascii_lowercase(),
            synchronous: synchronous.to_owned(),
            foreign_keys: foreign_keys == 1,
            busy_timeout_ms,
        })
    }

    /// Closes every connection, waiting for statements in flight; later calls fail with a storage error.
    /// Call it on shutdown so that SQLite checkpoints the write-ahead log into the database file.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Whether the URL names an in-memory database rather than a file.
fn is_in_memory(database_url: &str) -> bool {
    let rest = database_url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
    let (database, params) = rest.split_once('?').unwrap_or((rest, ""));
    database == ":memory:" || params.split('&').any(|param| param == "mode=memory")
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(storage("checking that the database answers"))?;
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "sqlite"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_in_memory_urls() {
        assert!(is_in_memory("sqlite::memory:"));
        assert!(is_in_memory("sqlite://:memory:"));
        assert!(is_in_memory("sqlite://?mode=memory&cache=shared"));
        assert!(!is_in_memory("sqlite://data/latchkey.db"));
        assert!(!is_in_memory("sqlite:/var/lib/latchkey/latchkey.db?mode=rwc"));
    }
}
