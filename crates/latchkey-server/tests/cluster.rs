//! Three `latchkey serve` processes sharing one fresh PostgreSQL database and one master key, as replicas behind a
//! load balancer would, with the mock provider in this test process on 127.0.0.1. The processes use the real
//! clock, so the provider hands out tokens that are due at once (a lifetime below the refresh window) instead of
//! the tests waiting for expiry.
//!
//! Skipped, with a printed reason, when PostgreSQL is not reachable, unless `LATCHKEY_REQUIRE_POSTGRES=1`.

#[path = "api/provider.rs"]
#[allow(dead_code, reason = "shared with the API tests; this binary uses part of it")]
mod provider;

use std::collections::HashSet;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use latchkey_store::testing::TestDatabase;
use provider::{Canned, MockProvider};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_latchkey");
/// The longest any single step may take.
const STEP: Duration = Duration::from_secs(60);
/// The refresh window the replicas use; the mock's short tokens live less than this, so they are due at once.
const WINDOW_SECS: u64 = 120;
/// A token lifetime inside the window.
const DUE_AT_ONCE: u64 = 60;
/// A token lifetime well outside the window: not due again during a test.
const LONG: u64 = 3600;

/// One `latchkey serve` process. Dropping it kills the process (SIGKILL).
struct Replica {
    child: Child,
    url: String,
    /// The process's log lines, for the message of a failing assertion.
    logs: Arc<Mutex<Vec<String>>>,
}

impl Replica {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// Kills the process with SIGKILL and waits until it is gone.
    async fn kill(&mut self) {
        self.child.start_kill().expect("SIGKILL");
        tokio::time::timeout(STEP, self.child.wait()).await.expect("the process ends").expect("status");
    }

    fn logs(&self) -> String {
        self.logs.lock().expect("logs").join("\n")
    }
}

/// What the replicas of one test share: the database, the master key, a working folder, an API key.
struct Cluster {
    database: TestDatabase,
    master_key: String,
    dir: tempfile::TempDir,
    replicas: Vec<Replica>,
    key: String,
    http: reqwest::Client,
}

/// How the replicas are started.
struct Flags {
    refresher_interval_secs: u64,
    lease_secs: u64,
}

impl Default for Flags {
    fn default() -> Self {
        // The background refresher stays out of the way unless a test asks for it.
        Self { refresher_interval_secs: 3600, lease_secs: 60 }
    }
}

fn latchkey(cluster_dir: &std::path::Path, database: &TestDatabase, master_key: &str) -> Command {
    let mut command = Command::new(BIN);
    command
        .current_dir(cluster_dir)
        .env_remove("LATCHKEY_PUBLIC_URL")
        .env_remove("LATCHKEY_LISTEN")
        .env_remove("LATCHKEY_METRICS_TOKEN")
        .env("LATCHKEY_DATABASE_URL", database.url())
        .env("LATCHKEY_MASTER_KEY", master_key)
        .env("LATCHKEY_ALLOW_PRIVATE_NETWORKS", "true")
        .kill_on_drop(true);
    command
}

impl Cluster {
    /// A fresh database with user `alice` and an API key of hers, created with the CLI, and three replicas.
    /// `None` when PostgreSQL is not reachable (and not required).
    async fn start(flags: Flags) -> Option<Self> {
        let database = TestDatabase::create().await?;
        let master_key = latchkey_crypto::MasterKey::generate().to_base64().to_string();
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cluster = Self { database, master_key, dir, replicas: Vec::new(), key: String::new(), http: browser() };
        cluster.cli(&["users", "create", "alice", "--password-stdin"], "a long enough password\n").await;
        cluster.key = cluster.cli(&["api-keys", "create", "alice", "--name", "cluster"], "").await;
        for _ in 0..3 {
            let replica = cluster.serve(&flags).await;
            cluster.replicas.push(replica);
        }
        Some(cluster)
    }

    /// Runs a CLI command against the shared database and returns its standard output.
    async fn cli(&self, args: &[&str], stdin: &str) -> String {
        let mut child = latchkey(self.dir.path(), &self.database, &self.master_key)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn latchkey");
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(stdin.as_bytes()).await.expect("write stdin");
        drop(pipe);
        let output = tokio::time::timeout(STEP, child.wait_with_output()).await.expect("finishes").expect("output");
        assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// Starts `latchkey serve` on a free loopback port and waits until it listens.
    async fn serve(&self, flags: &Flags) -> Replica {
        let mut child = latchkey(self.dir.path(), &self.database, &self.master_key)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(["--refresh-window-secs", &WINDOW_SECS.to_string()])
            .args(["--refresher-interval-secs", &flags.refresher_interval_secs.to_string()])
            .args(["--refresh-lease-secs", &flags.lease_secs.to_string()])
            .args(["--refresh-backoff-base-secs", "1", "--refresh-backoff-max-secs", "4"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn serve");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let mut stderr = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let kept = Arc::clone(&logs);
        tokio::spawn(async move {
            while let Ok(Some(line)) = stderr.next_line().await {
                kept.lock().expect("logs").push(line);
            }
        });
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let url = tokio::time::timeout(STEP, async {
            while let Some(line) = stdout.next_line().await.expect("read stdout") {
                if let Some(url) = line.strip_prefix("latchkey is running at ") {
                    return url.trim_end_matches('/').to_owned();
                }
            }
            panic!("serve exited before it was running: {}", logs.lock().expect("logs").join("\n"));
        })
        .await
        .expect("serve starts");
        tokio::spawn(async move { while let Ok(Some(_)) = stdout.next_line().await {} });
        Replica { child, url, logs }
    }

    /// Creates connection `handle` on replica `on` and authorizes it through the real flow.
    async fn connect(&self, on: usize, handle: &str, provider: &MockProvider) {
        let link = self.create(on, handle, provider).await;
        let page = self.http.get(&link).send().await.expect("follow the link");
        assert_eq!(page.status().as_u16(), 200, "{}", page.text().await.unwrap_or_default());
    }

    /// Creates connection `handle` on replica `on` and returns its authorization link.
    async fn create(&self, on: usize, handle: &str, provider: &MockProvider) -> String {
        let body = json!({
            "handle": handle, "name": handle, "provider": "custom",
            "authorization_url": provider.authorization_url(), "token_url": provider.token_url(),
            "client_id": "client-1", "client_secret": "s", "scopes": "read",
        });
        let (status, answer) =
            self.call(reqwest::Method::POST, &self.replicas[on].url("/api/v1/connections"), Some(body)).await;
        assert_eq!(status, 201, "{answer}");
        answer["authorization_link"].as_str().expect("link").to_owned()
    }

    async fn call(&self, method: reqwest::Method, url: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self.http.request(method, url).bearer_auth(&self.key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// Asks replica `on` for the token of `handle`.
    async fn token(&self, on: usize, handle: &str) -> (u16, Value) {
        let url = self.replicas[on].url(&format!("/api/v1/connections/{handle}/token"));
        self.call(reqwest::Method::GET, &url, None).await
    }

    /// The connection as replica `on` shows it.
    async fn read(&self, on: usize, handle: &str) -> Value {
        let url = self.replicas[on].url(&format!("/api/v1/connections/{handle}"));
        let (status, body) = self.call(reqwest::Method::GET, &url, None).await;
        assert_eq!(status, 200, "{body}");
        body["connection"].clone()
    }

    /// A token request to replica `on` running in the background.
    fn token_later(&self, on: usize, handle: &str) -> tokio::task::JoinHandle<Result<(u16, Value), String>> {
        let request =
            self.http.get(self.replicas[on].url(&format!("/api/v1/connections/{handle}/token"))).bearer_auth(&self.key);
        tokio::spawn(async move {
            let response = request.send().await.map_err(|e| e.to_string())?;
            let status = response.status().as_u16();
            Ok((status, response.json::<Value>().await.map_err(|e| e.to_string())?))
        })
    }

    fn logs(&self) -> String {
        self.replicas.iter().enumerate().map(|(n, r)| format!("--- replica {n}\n{}", r.logs())).collect()
    }
}

/// A client that follows redirects and keeps cookies, as a browser would.
fn browser() -> reqwest::Client {
    reqwest::Client::builder().cookie_store(true).no_proxy().timeout(Duration::from_secs(120)).build().expect("client")
}

/// Polls `check` until it holds, for at most `limit`.
async fn wait_for(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A provider whose first token is due at once, and whose next tokens are not.
async fn provider_due_at_once(rotate: bool) -> MockProvider {
    let provider = MockProvider::start("client-1", "s").await;
    provider.set_rotate_refresh_tokens(rotate);
    provider.set_expires_in(Some(DUE_AT_ONCE));
    provider
}

#[tokio::test]
async fn callers_on_three_replicas_at_expiry_cause_one_refresh() {
    let Some(cluster) = Cluster::start(Flags::default()).await else { return };
    let provider = provider_due_at_once(true).await;
    cluster.connect(0, "crm", &provider).await;
    provider.set_expires_in(Some(LONG));
    provider.hold_refreshes(true);
    let requests: Vec<_> = (0..150).map(|n| cluster.token_later(n % 3, "crm")).collect();
    tokio::time::timeout(STEP, provider.refresh_arrived()).await.expect("a refresh arrives");
    provider.release();

    let mut tokens = HashSet::new();
    for request in requests {
        let (status, body) = request.await.expect("task").expect("answer");
        assert_eq!(status, 200, "{body}");
        tokens.insert(body["token"].as_str().expect("token").to_owned());
    }
    assert_eq!(provider.refresh_calls().len(), 1, "exactly one provider call across the replicas");
    assert_eq!(tokens.len(), 1, "all 150 callers got the same token: {tokens:?}");
    assert_eq!(tokens.into_iter().next(), Some(format!("at-{}-3", provider.tag())), "the refreshed one");
}

#[tokio::test]
async fn a_flow_started_on_one_replica_finishes_on_another() {
    let Some(cluster) = Cluster::start(Flags::default()).await else { return };
    let provider = MockProvider::start("client-1", "s").await;
    let link = cluster.create(0, "crm", &provider).await;
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .expect("client");
    let location = |response: reqwest::Response| {
        assert!(response.status().is_redirection(), "{}", response.status());
        url::Url::parse(response.headers()["location"].to_str().expect("location")).expect("url")
    };
    let at_provider = location(browser.get(&link).send().await.expect("start"));
    let mut callback = location(browser.get(at_provider.as_str()).send().await.expect("consent"));
    assert!(callback.as_str().starts_with(&cluster.replicas[0].url("/oauth2/callback")), "{callback}");
    // The load balancer sends the provider's redirect to another replica.
    let other = url::Url::parse(&cluster.replicas[1].url).expect("url");
    callback.set_port(other.port()).expect("port");
    let page = browser.get(callback).send().await.expect("callback");
    assert_eq!(page.status().as_u16(), 200, "{}", page.text().await.unwrap_or_default());

    let (status, on_third) = cluster.token(2, "crm").await;
    assert_eq!(status, 200, "{on_third}");
    assert_eq!(on_third["token"], format!("at-{}-2", provider.tag()));
    assert_eq!(cluster.token(0, "crm").await.1["token"], on_third["token"]);
}

#[tokio::test]
async fn a_replica_killed_during_a_refresh_leaves_the_connection_usable() {
    let Some(mut cluster) = Cluster::start(Flags { lease_secs: 3, ..Flags::default() }).await else { return };
    let provider = provider_due_at_once(false).await;
    cluster.connect(0, "crm", &provider).await;
    provider.set_expires_in(Some(LONG));
    provider.hold_refreshes(true);
    let doomed = cluster.token_later(0, "crm");
    tokio::time::timeout(STEP, provider.refresh_arrived()).await.expect("a refresh arrives");
    cluster.replicas[0].kill().await;
    assert!(doomed.await.expect("task").is_err(), "the killed replica never answered");
    provider.stop_holding();

    // Once the dead replica's lease has run out, another replica refreshes with the same refresh token.
    let (status, body) = cluster.token(1, "crm").await;
    assert_eq!(status, 200, "{body}\n{}", cluster.logs());
    let calls = provider.refresh_calls();
    assert_eq!(calls.len(), 2, "the lost attempt and the one that worked");
    assert_eq!(calls[0].param("refresh_token"), calls[1].param("refresh_token"));
    assert_eq!(cluster.read(2, "crm").await["status"], "connected");
    assert_eq!(cluster.token(2, "crm").await.1["token"], body["token"]);
    assert_eq!(provider.refresh_calls().len(), 2, "no further provider call");
    provider.release();
}

#[tokio::test]
async fn a_rotation_lost_with_a_killed_replica_means_needs_reauth_once() {
    let Some(mut cluster) = Cluster::start(Flags { lease_secs: 3, refresher_interval_secs: 1 }).await else {
        return;
    };
    let provider = provider_due_at_once(true).await;
    cluster.connect(0, "crm", &provider).await;
    provider.set_expires_in(Some(LONG));
    // The provider rotates the refresh token when the request arrives; the answer dies with the replica.
    provider.set_consume_on_arrival(true);
    provider.hold_refreshes(true);
    let doomed = cluster.token_later(0, "crm");
    tokio::time::timeout(STEP, provider.refresh_arrived()).await.expect("a refresh arrives");
    cluster.replicas[0].kill().await;
    assert!(doomed.await.expect("task").is_err(), "the killed replica never answered");
    provider.stop_holding();

    let (status, body) = cluster.token(1, "crm").await;
    assert_eq!(status, 409, "{body}\n{}", cluster.logs());
    assert_eq!(body["code"], "needs_reauth");
    let message = body["error"].as_str().expect("error");
    assert!(message.contains("'crm'") && message.contains("reconnect"), "{message}");
    let connection = cluster.read(2, "crm").await;
    assert_eq!(connection["status"], "needs_reauth");
    assert!(connection["last_error"].as_str().unwrap_or_default().contains("invalid_grant"), "{connection}");

    // No retry loop: neither callers nor the background refreshers (running every second) call again.
    for on in [1, 2, 1, 2] {
        assert_eq!(cluster.token(on, "crm").await.0, 409);
    }
    let before = provider.refresh_calls().len();
    assert_eq!(before, 2, "the lost attempt and the refused one");
    // Three refresher ticks on both live replicas: still nothing.
    let seen = cluster.read(1, "crm").await["updated_at"].clone();
    let watched = tokio::time::Instant::now();
    while watched.elapsed() < Duration::from_secs(3) {
        assert_eq!(provider.token_calls().len(), before + 1, "no retry loop (the +1 is the authorization)");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(cluster.read(1, "crm").await["updated_at"], seen);
    provider.release();
}

#[tokio::test]
async fn a_provider_outage_backs_off_and_recovers_without_needs_reauth() {
    let Some(cluster) = Cluster::start(Flags { refresher_interval_secs: 1, ..Flags::default() }).await else {
        return;
    };
    let provider = provider_due_at_once(true).await;
    cluster.connect(0, "crm", &provider).await;
    provider.set_expires_in(Some(LONG));
    for _ in 0..5 {
        provider.push_canned(Canned::text(503, "maintenance"));
    }
    // The background refreshers of all three replicas take the due token up; each 503 pushes the next attempt
    // back (1, 2, 4, 4, 4 seconds with these flags), and the schedule is in the database, so no replica jumps it.
    wait_for("the sixth refresh attempt", Duration::from_secs(120), async || provider.refresh_calls().len() >= 6).await;
    wait_for("the refreshed token to be stored", STEP, async || cluster.read(1, "crm").await["status"] == "connected")
        .await;
    let calls = provider.refresh_calls();
    assert_eq!(calls.len(), 6, "five failures and one success, no extra attempt\n{}", cluster.logs());
    let gaps: Vec<Duration> = calls.windows(2).map(|w| w[1].at.duration_since(w[0].at)).collect();
    // Timestamps are whole seconds, so a wait of n seconds may end up to one second early.
    for (gap, scheduled) in gaps.iter().zip([1u64, 2, 4, 4, 4]) {
        assert!(*gap >= Duration::from_secs(scheduled - 1), "gaps {gaps:?} shorter than the backoff");
    }
    assert!(gaps[4] > gaps[0], "the backoff grew: {gaps:?}");
    assert!(gaps.iter().skip(2).all(|gap| *gap >= Duration::from_secs(3)), "{gaps:?}");

    let connection = cluster.read(2, "crm").await;
    assert_eq!(connection["status"], "connected", "{connection}");
    assert!(connection["last_error"].is_null(), "{connection}");
    let (status, body) = cluster.token(0, "crm").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token"], format!("at-{}-3", provider.tag()), "the token the recovered provider issued");
}

#[tokio::test]
async fn invalid_grant_after_a_siblings_rotation_is_no_false_needs_reauth() {
    let Some(cluster) = Cluster::start(Flags { lease_secs: 2, ..Flags::default() }).await else { return };
    let provider = provider_due_at_once(true).await;
    cluster.connect(0, "crm", &provider).await;
    provider.set_expires_in(Some(LONG));
    // Replica 1's refresh is held at the provider until its lease runs out ...
    provider.hold_refreshes(true);
    let slow = cluster.token_later(1, "crm");
    tokio::time::timeout(STEP, provider.refresh_arrived()).await.expect("a refresh arrives");
    provider.stop_holding();
    // ... so replica 2 takes over and rotates the refresh token.
    let (status, fresh) = cluster.token(2, "crm").await;
    assert_eq!(status, 200, "{fresh}\n{}", cluster.logs());
    // Now replica 1's request goes on, with the refresh token its sibling has used up: invalid_grant.
    provider.release();
    let (status, late) = slow.await.expect("task").expect("answer");
    assert_eq!(status, 200, "{late}\n{}", cluster.logs());
    assert_eq!(late["token"], fresh["token"], "replica 1 re-read the row and answered its sibling's token");

    let calls = provider.refresh_calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].param("refresh_token"), calls[1].param("refresh_token"), "both presented the same one");
    let connection = cluster.read(0, "crm").await;
    assert_eq!(connection["status"], "connected", "no false needs_reauth: {connection}");
    assert_eq!(cluster.token(0, "crm").await.1["token"], fresh["token"]);
}
