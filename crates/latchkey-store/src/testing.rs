//! Fresh PostgreSQL databases for tests, one per test (cargo feature `testing`).
//!
//! A test asks for a [`TestDatabase`]: a new, empty database with a unique name (`latchkey_test_<32 hex digits>`)
//! on the PostgreSQL server that the admin URL names, dropped again when the value is dropped, also when the test
//! panics. Tests of another crate use it by enabling the feature in their dev-dependencies:
//!
//! ```toml
//! [dev-dependencies]
//! latchkey-store = { workspace = true, features = ["testing"] }
//! ```
//!
//! ```no_run
//! # async fn example() {
//! use latchkey_store::testing::TestDatabase;
//!
//! let Some(database) = TestDatabase::create().await else {
//!     return; // PostgreSQL is not reachable here; the reason was printed.
//! };
//! let store = database.open_store().await;
//! // … or hand `database.url()` to the server under test as its database URL.
//! # drop(store);
//! # }
//! ```
//!
//! Environment:
//! - `LATCHKEY_TEST_POSTGRES_URL`: the admin URL, a login that may create and drop databases (default
//!   `postgres://postgres@127.0.0.1:5432/postgres`, the machine's server with trust authentication). The test
//!   databases are made on the same server, as the same user.
//! - `LATCHKEY_REQUIRE_POSTGRES=1`: an unreachable server fails the test instead of skipping it (CI sets it).
//!
//! Dropping uses `DROP DATABASE … WITH (FORCE)`, which needs PostgreSQL 13 or later, so that pools still open in
//! the test do not keep the database alive.

use std::fmt;
use std::io::Write as _;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions as _, Connection as _, PgConnection};

use crate::PostgresStore;

/// The variable that names the admin URL.
pub const ADMIN_URL_VARIABLE: &str = "LATCHKEY_TEST_POSTGRES_URL";

/// The variable that turns "PostgreSQL is not reachable" from a skip into a failure when set to `1`.
pub const REQUIRE_VARIABLE: &str = "LATCHKEY_REQUIRE_POSTGRES";

/// The admin URL when [`ADMIN_URL_VARIABLE`] is not set.
pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// How long the admin connection may take before the server counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The admin URL in force: [`ADMIN_URL_VARIABLE`] or [`DEFAULT_ADMIN_URL`].
#[must_use]
pub fn admin_url() -> String {
    std::env::var(ADMIN_URL_VARIABLE)
        .ok()
        .filter(|url| !url.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_ADMIN_URL.to_owned())
}

/// Whether tests must fail rather than skip when PostgreSQL is not reachable ([`REQUIRE_VARIABLE`] is `1`).
#[must_use]
pub fn postgres_required() -> bool {
    std::env::var(REQUIRE_VARIABLE).is_ok_and(|value| value.trim() == "1")
}

/// A database created for one test and dropped with this value.
pub struct TestDatabase {
    name: String,
    url: String,
    admin: PgConnectOptions,
}

impl fmt::Debug for TestDatabase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URLs may hold a password.
        f.debug_struct("TestDatabase").field("name", &self.name).finish_non_exhaustive()
    }
}

impl TestDatabase {
    /// Creates a fresh, empty database.
    ///
    /// Returns `None`, after printing why to stderr, when the server cannot be reached and PostgreSQL is not
    /// required ([`postgres_required`]); the caller then returns early, skipping the test.
    ///
    /// # Panics
    /// When the server cannot be reached and PostgreSQL is required, when the admin URL is not a valid PostgreSQL
    /// URL, or when the server refuses to create the database.
    pub async fn create() -> Option<Self> {
        let admin_url = admin_url();
        let admin = PgConnectOptions::from_url(
            &url::Url::parse(&admin_url).unwrap_or_else(|err| panic!("{ADMIN_URL_VARIABLE} is not a valid URL: {err}")),
        )
        .unwrap_or_else(|err| panic!("{ADMIN_URL_VARIABLE} is not a valid PostgreSQL URL: {err}"));
        let server = format!("{}:{}", admin.get_host(), admin.get_port());

        let mut connection = match admin_connection(&admin).await {
            Ok(connection) => connection,
            Err(why) if !postgres_required() => {
                // Straight to stderr, not through the test harness's capture, so the skip is visible.
                let _ = writeln!(
                    std::io::stderr(),
                    "skipping a PostgreSQL test: the server at {server} is not reachable ({why}). Start PostgreSQL, \
                     point {ADMIN_URL_VARIABLE} at one, or set {REQUIRE_VARIABLE}=1 to make this a failure."
                );
                return None;
            }
            Err(why) => {
                panic!(
                    "PostgreSQL is required ({REQUIRE_VARIABLE}=1) but the server at {server} is not reachable: {why}"
                )
            }
        };

        let name = format!("latchkey_test_{}", latchkey_core::model::FlowId::random().as_str().replace('-', ""));
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut connection)
            .await
            .unwrap_or_else(|err| panic!("could not create the test database {name} on {server}: {err}"));
        let _ = connection.close().await;

        let mut url = url::Url::parse(&admin_url).expect("parsed above");
        url.set_path(&name);
        Some(Self { name, url: url.into(), admin })
    }

    /// The database URL of this database (the admin URL with the database name replaced).
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Opens a [`PostgresStore`] on this database, applying the migrations.
    ///
    /// # Panics
    /// When the store cannot be opened.
    pub async fn open_store(&self) -> PostgresStore {
        PostgresStore::open(&self.url)
            .await
            .unwrap_or_else(|err| panic!("could not open the test database {}: {err}", self.name))
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop may run inside a Tokio runtime (where blocking on a future panics) or outside one, so the drop runs
        // on a thread of its own with a small runtime, and this thread waits for it.
        let name = self.name.clone();
        let admin = self.admin.clone();
        let dropped = std::thread::spawn(move || {
            let runtime =
                tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|err| err.to_string())?;
            runtime.block_on(async move {
                let mut connection = admin_connection(&admin).await?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .execute(&mut connection)
                    .await
                    .map_err(|err| err.to_string())?;
                let _ = connection.close().await;
                Ok::<(), String>(())
            })
        })
        .join();
        let failure = match dropped {
            Ok(Ok(())) => return,
            Ok(Err(why)) => why,
            Err(_) => "the thread that drops it panicked".to_owned(),
        };
        let _ = writeln!(std::io::stderr(), "could not drop the test database {}: {failure}", self.name);
    }
}

/// A connection with the admin login, or why there is none.
async fn admin_connection(admin: &PgConnectOptions) -> Result<PgConnection, String> {
    match tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(admin)).await {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(err)) => Err(crate::error::describe(&err)),
        Err(_) => Err(format!("no answer within {} seconds", CONNECT_TIMEOUT.as_secs())),
    }
}
