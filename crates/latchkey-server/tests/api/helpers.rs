//! Starts the real server on a random loopback port with a fresh database and a manual clock, and offers the
//! steps a test story needs: a user with an API key, a connection authorized through the real flow.
//!
//! The database is a SQLite file in a temporary folder, or, with `LATCHKEY_TEST_BACKEND=postgres`, a fresh
//! PostgreSQL database per server (shared by the servers a test starts on the same [`TestData`], as replicas).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use latchkey_core::model::User;
use latchkey_core::{Clock, ManualClock, Secret};
use latchkey_crypto::keyfile::KeySource;
use latchkey_server::service::{api_keys, users};
use latchkey_server::state::SharedState;
use latchkey_server::{Application, Config};
use latchkey_store::testing::TestDatabase;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::provider::MockProvider;

/// What a test may change about the server it starts.
#[derive(Clone)]
pub struct Options {
    pub refresher_interval: Duration,
    /// Another server's data: a replica (started while it runs) or a restart (after it stopped).
    pub dir: Option<Arc<TestData>>,
    pub key_source: Option<KeySource>,
    /// Off turns the outbound guard on, as in production.
    pub allow_private_networks: bool,
    pub outbound_allow: latchkey_oauth::AllowList,
    pub api_rate_limit: std::num::NonZeroU32,
    /// Lease, concurrency and backoff of refreshes.
    pub refresh_tuning: latchkey_server::tokens::RefreshTuning,
    /// A fixed refresh window (`--refresh-window-secs`); `None` for the default.
    pub refresh_window: Option<Duration>,
    /// How outbound requests resolve host names: no DNS in tests, `localhost` only unless a test adds names.
    pub lookup: Arc<dyn latchkey_oauth::Lookup>,
    /// Metrics token, shutdown grace and webhook tick (50 ms).
    pub ops: latchkey_server::ops::OpsConfig,
    /// Log-in throttling, trusted proxies and the bound on password checks.
    pub login: latchkey_server::config::LoginConfig,
}

/// A name lookup from a fixed table, so that no test asks a DNS server anything; unknown names fail to resolve.
#[derive(Default)]
pub struct NameMap(std::collections::HashMap<String, Vec<std::net::IpAddr>>);

impl NameMap {
    /// `localhost` as the system knows it.
    pub fn loopback() -> Self {
        Self::default().with("localhost", &["127.0.0.1", "::1"])
    }

    /// Adds a name and its addresses.
    pub fn with(mut self, name: &str, addresses: &[&str]) -> Self {
        let ips = addresses.iter().map(|a| a.parse().expect("address")).collect();
        self.0.insert(name.to_ascii_lowercase(), ips);
        self
    }
}

impl latchkey_oauth::Lookup for NameMap {
    fn lookup(&self, host: String) -> latchkey_oauth::LookupFuture {
        let found = self.0.get(&host.trim_end_matches('.').to_ascii_lowercase()).cloned();
        Box::pin(async move {
            found.ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, format!("no such host {host}")))
        })
    }
}

impl Default for Options {
    fn default() -> Self {
        // The refresher stays out of the way unless a test asks for it.
        Self {
            refresher_interval: Duration::from_secs(3600),
            dir: None,
            key_source: None,
            allow_private_networks: true,
            outbound_allow: latchkey_oauth::AllowList::default(),
            api_rate_limit: std::num::NonZeroU32::new(1000).expect("non-zero"),
            refresh_tuning: latchkey_server::tokens::RefreshTuning::default(),
            refresh_window: None,
            lookup: Arc::new(NameMap::loopback()),
            ops: latchkey_server::ops::OpsConfig {
                webhook_tick: Duration::from_millis(50),
                ..latchkey_server::ops::OpsConfig::default()
            },
            login: latchkey_server::config::LoginConfig::default(),
        }
    }
}

/// A running server.
pub struct TestApp {
    pub address: String,
    pub state: SharedState,
    pub clock: Arc<ManualClock>,
    pub dir: Arc<TestData>,
    pub setup_link: Option<String>,
    pub http: reqwest::Client,
    shutdown: CancellationToken,
    server: Option<tokio::task::JoinHandle<()>>,
}

/// The variable that picks the tests' database: `postgres` for PostgreSQL, anything else (or unset) for SQLite.
pub const BACKEND_VARIABLE: &str = "LATCHKEY_TEST_BACKEND";

/// Whether the tests run on PostgreSQL (`LATCHKEY_TEST_BACKEND=postgres`).
pub fn on_postgres() -> bool {
    std::env::var(BACKEND_VARIABLE).is_ok_and(|v| v.trim().eq_ignore_ascii_case("postgres"))
}

/// Where a test server keeps its data: a temporary folder (the key file, and the SQLite database) and, on
/// PostgreSQL, a fresh database dropped with this value.
pub struct TestData {
    folder: tempfile::TempDir,
    database: Option<TestDatabase>,
}

impl TestData {
    /// A new empty folder, and a new database when the tests run on PostgreSQL.
    ///
    /// # Panics
    /// On PostgreSQL, when the server is not reachable: asking for the backend by name makes it required.
    pub async fn create() -> Arc<Self> {
        let folder = tempfile::tempdir().expect("temp dir");
        let database = if on_postgres() {
            let database = TestDatabase::create().await;
            Some(database.unwrap_or_else(|| panic!("{BACKEND_VARIABLE}=postgres, but PostgreSQL is not reachable")))
        } else {
            None
        };
        Arc::new(Self { folder, database })
    }

    /// The temporary folder.
    pub fn path(&self) -> &Path {
        self.folder.path()
    }

    /// The database URL the servers on this data use.
    pub fn database_url(&self) -> String {
        match &self.database {
            Some(database) => database.url().to_owned(),
            None => format!("sqlite://{}", self.path().join("latchkey.db").display()),
        }
    }
}

pub fn config_for(data: &TestData, options: &Options) -> Config {
    let dir = data.path();
    Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        database_url: data.database_url(),
        // Port 0: the application puts the port it bound into the public URL.
        public_url: url::Url::parse("http://127.0.0.1:0").expect("url"),
        key_source: options.key_source.clone().unwrap_or_else(|| KeySource::File(dir.join("master.key"))),
        allow_private_networks: options.allow_private_networks,
        outbound_allow: options.outbound_allow.clone(),
        refresh_window: options.refresh_window,
        refresher_interval: options.refresher_interval,
        refresh_tuning: options.refresh_tuning,
        authorization_link_ttl: Duration::from_secs(600),
        api_rate_limit: options.api_rate_limit,
        login: options.login.clone(),
        device_poll_tick: Duration::from_millis(50),
        ops: options.ops.clone(),
    }
}

/// Starts a server with default options.
pub async fn spawn_app() -> TestApp {
    spawn_with(Options::default()).await
}

/// Starts a server.
pub async fn spawn_with(options: Options) -> TestApp {
    try_spawn(options).await.expect("the server starts")
}

/// Starts a server, or says why it would not start.
pub async fn try_spawn(options: Options) -> anyhow::Result<TestApp> {
    let dir = match options.dir.clone() {
        Some(dir) => dir,
        None => TestData::create().await,
    };
    let config = config_for(&dir, &options);
    let clock = Arc::new(ManualClock::starting_now());
    let lookup = Arc::clone(&options.lookup);
    let app = Application::build_with_lookup(config, Arc::clone(&clock) as Arc<dyn Clock>, lookup).await?;
    let state = app.state();
    let port = app.port();
    let setup_link = app.setup_link().map(str::to_owned);
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    let server = tokio::spawn(async move {
        app.run(stop).await.expect("server runs");
    });
    Ok(TestApp {
        address: format!("http://127.0.0.1:{port}"),
        state,
        clock,
        dir,
        setup_link,
        http: browser(),
        shutdown,
        server: Some(server),
    })
}

/// A client that follows redirects and keeps cookies, as a browser would.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::limited(10))
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// A client that keeps cookies and does not follow redirects, to walk a flow step by step.
pub fn manual_browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// A distinctive secret value, easy to search for in files and logs.
pub fn secret(label: &str) -> String {
    format!("{label}-SECRET-{}", uuid::Uuid::new_v4().simple())
}

/// A user and an API key of theirs.
pub struct Caller {
    pub user: User,
    pub key: String,
}

impl TestApp {
    /// Stops the server and waits for it.
    pub async fn stop(mut self) -> Arc<TestData> {
        self.shutdown.cancel();
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
        Arc::clone(&self.dir)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// The database URL of this server.
    pub fn database_url(&self) -> String {
        self.dir.database_url()
    }

    /// Creates a user with an API key (optionally limited to handles).
    pub async fn caller(&self, username: &str, handles: Option<&[&str]>) -> Caller {
        let now = self.clock.now();
        let user = users::new_user(username, &Secret::new("correct horse battery"), false, now).expect("user");
        users::create(self.state.store.as_ref(), &user).await.expect("user stored");
        let handles = handles.map(|hs| hs.iter().map(|h| latchkey_core::Handle::parse(h).expect("handle")).collect());
        let (_, key) = api_keys::create(self.state.store.as_ref(), &user, "test", handles, now).await.expect("api key");
        Caller { user, key: key.expose().to_owned() }
    }

    /// Another API key of `caller`'s user, limited to `handles`.
    pub async fn limited_key(&self, caller: &Caller, handles: &[&str]) -> Caller {
        let handles = handles.iter().map(|h| latchkey_core::Handle::parse(h).expect("handle")).collect();
        let (_, key) =
            api_keys::create(self.state.store.as_ref(), &caller.user, "limited", Some(handles), self.clock.now())
                .await
                .expect("api key");
        Caller { user: caller.user.clone(), key: key.expose().to_owned() }
    }

    /// Sends an API request with the caller's key.
    pub async fn api(&self, caller: &Caller, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self.http.request(method, self.url(path)).bearer_auth(&caller.key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// Asks for the token of `handle`.
    pub async fn token(&self, caller: &Caller, handle: &str) -> (u16, Value) {
        self.api(caller, reqwest::Method::GET, &format!("/api/v1/connections/{handle}/token"), None).await
    }

    /// The body of a connection pointing at `provider`.
    pub fn connection_body(handle: &str, provider: &MockProvider, client_secret: &str) -> Value {
        json!({
            "handle": handle,
            "name": format!("Test {handle}"),
            "provider": "custom",
            "authorization_url": provider.authorization_url(),
            "token_url": provider.token_url(),
            "client_id": "client-1",
            "client_secret": client_secret,
            "scopes": "read write",
        })
    }

    /// Creates a connection and returns its authorization link.
    pub async fn create_connection(
        &self,
        caller: &Caller,
        handle: &str,
        provider: &MockProvider,
        client_secret: &str,
    ) -> String {
        let body = Self::connection_body(handle, provider, client_secret);
        let (status, answer) = self.api(caller, reqwest::Method::POST, "/api/v1/connections", Some(body)).await;
        assert_eq!(status, 201, "create answered {answer}");
        answer["authorization_link"].as_str().expect("authorization_link").to_owned()
    }

    /// Follows an authorization link like a browser: start, provider consent, callback. Returns the final
    /// status and page.
    pub async fn follow(&self, link: &str) -> (u16, String) {
        let browser = browser();
        let response = browser.get(link).send().await.expect("follow link");
        let status = response.status().as_u16();
        (status, response.text().await.expect("page"))
    }

    /// Creates a connection and authorizes it; returns the caller-visible handle.
    pub async fn connect(&self, caller: &Caller, handle: &str, provider: &MockProvider, client_secret: &str) {
        let link = self.create_connection(caller, handle, provider, client_secret).await;
        let (status, page) = self.follow(&link).await;
        assert_eq!(status, 200, "callback page: {page}");
        assert!(page.contains("Connected"), "{page}");
    }
}

/// The `state` parameter of a redirect to a provider's authorization endpoint.
pub fn state_in(location: &str) -> String {
    url::Url::parse(location)
        .expect("provider url")
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .expect("state")
}

/// Polls `check` until it holds, for at most 60 seconds. The bound only catches a hung test: it returns as soon as
/// the condition holds, and on a busy machine a background pass (a tick, a claim, a provider call, a few
/// synchronous writes) can take far longer than it does when idle.
pub async fn wait_for(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
