//! The PostgreSQL backend: a pool of connections to one database that several latchkey replicas may share, and
//! the schema of `migrations/postgres` applied at open.
//!
//! Every write is one statement whose `WHERE` clause carries its guard (the refresh lease, the token version, a
//! link or callback not used yet), or one transaction that first locks what it checks. Under PostgreSQL's default
//! `READ COMMITTED` isolation, a guarded `UPDATE` that meets a row another transaction is changing waits for that
//! transaction and then checks its guard again against the committed row, so of two replicas racing for the same
//! lease or version exactly one wins, with no retry loop.
//!
//! Migrations run under sqlx's migrator, which holds a PostgreSQL advisory lock (keyed by the database name) while
//! it checks and applies them: replicas that start together wait for the first, then find nothing left to do.
//!
//! The database URL may hold a password. It never appears in an error or a log line: messages name the host, port,
//! database and user only.

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

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use latchkey_core::store::Store;
use latchkey_core::{Error, Result};
use sqlx::ConnectOptions;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::error::{describe, storage};

/// The schema, embedded at compile time and applied by [`PostgresStore::open`].
static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// Connections in the pool of one replica. Statements are short, so a few connections serve many requests; ten
/// replicas stay well inside PostgreSQL's default limit of 100 connections.
const POOL_SIZE: u32 = 8;

/// How long a statement waits for a free pooled connection (or for a new connection to be made) before it fails.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// The query parameters of a PostgreSQL URL that latchkey passes on (those sqlx understands). Any other parameter
/// is refused, so that a misspelt `sslmode` does not silently connect without TLS.
const ACCEPTED_PARAMETERS: &[&str] = &[
    "sslmode",
    "ssl-mode",
    "sslrootcert",
    "ssl-root-cert",
    "ssl-ca",
    "sslcert",
    "ssl-cert",
    "sslkey",
    "ssl-key",
    "statement-cache-capacity",
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "application_name",
    "options",
];

/// latchkey's storage in one PostgreSQL database, shared by every replica.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    target: Target,
}

/// Where the store's database is, without the password: for messages and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    database: String,
    server: String,
    user: String,
}

impl Target {
    fn of(options: &PgConnectOptions) -> Self {
        let server = match options.get_socket() {
            Some(socket) => socket.display().to_string(),
            None => format!("{}:{}", options.get_host(), options.get_port()),
        };
        Self {
            database: options.get_database().unwrap_or(options.get_username()).to_owned(),
            server,
            user: options.get_username().to_owned(),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "'{}' on {} (user '{}')", self.database, self.server, self.user)
    }
}

impl PostgresStore {
    /// Connects to the database at `database_url` and brings its schema up to date.
    ///
    /// Accepts `postgres://` and `postgresql://` URLs with the parameters libpq's URLs use for TLS (`sslmode`,
    /// `sslrootcert`, `sslcert`, `sslkey`), `host`, `port`, `dbname`, `user`, `password`, `application_name` and
    /// `options`. The database must exist; its tables are created on first open. Several replicas may open the
    /// same database at the same time.
    ///
    /// # Errors
    /// [`Error::Invalid`] (field `database_url`) for a URL that is not a PostgreSQL URL latchkey accepts;
    /// [`Error::Storage`] when the server cannot be reached, refuses the login, has no such database, or a
    /// migration fails (for example when the database was written by a newer latchkey). No message repeats the
    /// password.
    pub async fn open(database_url: &str) -> Result<Self> {
        let options = connect_options(database_url)?;
        let target = Target::of(&options);

        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|err| open_error(&target, &err))?;

        MIGRATOR.run(&pool).await.map_err(|err| {
            Error::Storage(format!("could not bring the schema of the PostgreSQL database {target} up to date: {err}"))
        })?;

        tracing::info!(
            database = %target.database,
            server = %target.server,
            user = %target.user,
            "opened the PostgreSQL database"
        );
        Ok(Self { pool, target })
    }

    /// The database this store uses, as "'name' on host:port (user 'name')", without the password.
    #[must_use]
    pub fn describe_target(&self) -> String {
        self.target.to_string()
    }

    /// Closes every connection, waiting for statements in flight; later calls fail with a storage error.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The connection options of a PostgreSQL URL; errors never repeat the URL.
fn connect_options(database_url: &str) -> Result<PgConnectOptions> {
    let invalid =
        |why: String| Error::invalid("database_url", format!("the PostgreSQL database URL is not valid: {why}"));
    // The `url` crate's messages name what is wrong ("invalid port number"), never the input.
    let url = url::Url::parse(database_url).map_err(|err| invalid(err.to_string()))?;
    if !matches!(url.scheme(), "postgres" | "postgresql") {
        return Err(invalid("it must start with postgres:// or postgresql://".to_owned()));
    }
    for (key, _) in url.query_pairs() {
        let accepted =
            ACCEPTED_PARAMETERS.contains(&key.as_ref()) || (key.starts_with("options[") && key.ends_with(']'));
        if !accepted {
            // Only the parameter's name is repeated, cut short and printable: values may be secrets.
            let shown: String = key.chars().filter(|c| c.is_ascii_graphic()).take(40).collect();
            return Err(invalid(format!(
                "the parameter '{shown}' is not one latchkey understands; accepted are {}",
                ACCEPTED_PARAMETERS.join(", ")
            )));
        }
    }
    // sqlx's configuration errors name the parameter and, for `sslmode` and the port, the bad value; never the
    // password.
    PgConnectOptions::from_url(&url).map_err(|err| invalid(describe(&err)))
}

/// The error of a failed first connection, with advice where the cause is a common one.
fn open_error(target: &Target, err: &sqlx::Error) -> Error {
    if let sqlx::Error::Database(db) = err {
        // 3D000 invalid_catalog_name: the server answered, but has no such database.
        if db.code().as_deref() == Some("3D000") {
            return Error::Storage(format!(
                "the PostgreSQL database {target} does not exist: create it (for example `createdb {}`) or fix the \
                 database URL",
                target.database
            ));
        }
    }
    Error::Storage(format!("could not connect to the PostgreSQL database {target}: {}", describe(err)))
}

#[async_trait]
impl Store for PostgresStore {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(storage("checking that the database answers"))?;
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "postgres"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(url: &str) -> String {
        match connect_options(url) {
            Err(err @ Error::Invalid { .. }) => err.to_string(),
            other => panic!("{url}: expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn accepts_postgres_urls_and_names_the_target_without_the_password() {
        let options =
            connect_options("postgres://latchkey:hunter2@127.0.0.1:5433/broker?sslmode=disable").expect("a valid URL");
        let target = Target::of(&options);
        assert_eq!(target.to_string(), "'broker' on 127.0.0.1:5433 (user 'latchkey')");
        assert!(!format!("{target:?}").contains("hunter2"));

        let options =
            connect_options("postgresql://127.0.0.1/latchkey?application_name=latchkey&options[lock_timeout]=5s")
                .expect("a valid URL");
        assert_eq!(options.get_database(), Some("latchkey"));
    }

    #[test]
    fn refuses_unknown_parameters_without_repeating_values() {
        let text = message("postgres://u:hunter2@127.0.0.1/db?sslmdoe=require&x=hunter2");
        assert!(text.contains("'sslmdoe'"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[test]
    fn refuses_malformed_urls_without_repeating_them() {
        for url in ["postgres://u:hunter2@127.0.0.1:99999/db", "postgres://u:hunter2@[::1/db"] {
            let text = message(url);
            assert!(!text.contains("hunter2"), "{text}");
        }
        let text = message("postgres://u:hunter2@127.0.0.1/db?sslmode=sometimes");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(message("mysql://127.0.0.1/db").contains("postgres://"));
    }
}
