//! Graceful shutdown of the real binary: SIGTERM while a refresh is held open by the provider lets the request
//! in flight finish with the new token, stores the provider's answer, refuses new connections meanwhile, and exits
//! 0; a restart serves the stored token. A refresh whose caller went away is finished too. The debug log never
//! shows a token or the webhook signing secret.

#[path = "api/provider.rs"]
#[allow(dead_code, reason = "shared with the API tests; this binary uses part of it")]
mod provider;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use provider::MockProvider;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_latchkey");
/// The longest any single step may take.
const STEP: Duration = Duration::from_secs(60);

fn latchkey(dir: &Path) -> Command {
    let mut command = Command::new(BIN);
    command
        .current_dir(dir)
        .env_remove("LATCHKEY_MASTER_KEY")
        .env_remove("LATCHKEY_DATABASE_URL")
        .env_remove("LATCHKEY_PUBLIC_URL")
        .env_remove("LATCHKEY_LISTEN")
        .env_remove("LATCHKEY_METRICS_TOKEN")
        .env("LATCHKEY_ALLOW_PRIVATE_NETWORKS", "true")
        .kill_on_drop(true);
    command
}

/// Runs a CLI command and returns its standard output; panics with its standard error when it fails.
async fn run(dir: &Path, args: &[&str], stdin: &str) -> String {
    let mut child = latchkey(dir)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn latchkey");
    {
        use tokio::io::AsyncWriteExt;
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(stdin.as_bytes()).await.expect("write stdin");
    }
    let output = tokio::time::timeout(STEP, child.wait_with_output()).await.expect("finishes").expect("output");
    assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// `latchkey serve` on a free loopback port, with debug logs (read as they come, so that a full pipe never
/// blocks the server).
struct Server {
    child: Child,
    url: String,
    logs: tokio::task::JoinHandle<String>,
}

async fn serve(dir: &Path) -> Server {
    let mut child = latchkey(dir)
        .args(["serve", "--listen", "127.0.0.1:0", "--shutdown-grace-secs", "30"])
        .env("LATCHKEY_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let url = tokio::time::timeout(STEP, async {
        while let Some(line) = lines.next_line().await.expect("read stdout") {
            if let Some(url) = line.strip_prefix("latchkey is running at ") {
                return url.trim_end_matches('/').to_owned();
            }
        }
        panic!("serve exited before it was running");
    })
    .await
    .expect("serve starts");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let mut stderr = child.stderr.take().expect("stderr");
    let logs = tokio::spawn(async move {
        let mut logs = String::new();
        let _ = stderr.read_to_string(&mut logs).await;
        logs
    });
    Server { child, url, logs }
}

impl Server {
    fn terminate(&self) {
        let pid = self.child.id().expect("pid").to_string();
        let status = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
        assert!(status.success());
    }

    /// Waits for the exit and returns whether it was clean, with everything logged.
    async fn exit(mut self) -> (bool, String) {
        let status = tokio::time::timeout(STEP, self.child.wait()).await.expect("exits").expect("status");
        let logs = tokio::time::timeout(STEP, self.logs).await.expect("logs end").expect("logs read");
        (status.success(), logs)
    }
}

/// Polls until nothing accepts connections at the server's address any more (bounded).
async fn wait_until_refused(url: &str) {
    let address = url.trim_start_matches("http://").to_owned();
    let deadline = tokio::time::Instant::now() + STEP;
    while tokio::net::TcpStream::connect(&address).await.is_ok() {
        assert!(tokio::time::Instant::now() < deadline, "the listener still accepts after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn sigterm_lets_a_held_refresh_finish_and_exits_cleanly() {
    let dir = tempfile::tempdir().expect("dir");
    run(dir.path(), &["users", "create", "alice", "--password-stdin"], "a long enough password\n").await;
    let key = run(dir.path(), &["api-keys", "create", "alice"], "").await;
    let provider = MockProvider::start("client-1", "cs-SECRET-shutdown").await;
    provider.set_rotate_refresh_tokens(true);

    let server = serve(dir.path()).await;
    let http = reqwest::Client::builder().cookie_store(true).no_proxy().timeout(STEP).build().expect("client");
    let api = |path: &str| format!("{}{path}", server.url);
    // Some receivers put their credential in the webhook URL's path: it must not reach the logs either.
    let hook_path = format!("path-SECRET-{}", uuid::Uuid::new_v4().simple());
    let webhook: Value = http
        .put(api("/api/v1/webhook"))
        .bearer_auth(&key)
        .json(&json!({ "url": format!("http://127.0.0.1:9/hooks/{hook_path}") }))
        .send()
        .await
        .expect("set webhook")
        .json()
        .await
        .expect("json");
    let signing_secret = webhook["signing_secret"].as_str().expect("secret").to_owned();
    let created: Value = http
        .post(api("/api/v1/connections"))
        .bearer_auth(&key)
        .json(&json!({
            "handle": "crm", "name": "CRM", "authorization_url": provider.authorization_url(),
            "token_url": provider.token_url(), "client_id": "client-1", "client_secret": "cs-SECRET-shutdown",
            "scopes": "read"
        }))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let link = created["authorization_link"].as_str().expect("link");
    assert_eq!(http.get(link).send().await.expect("authorize").status().as_u16(), 200);

    // The connection's first status change was sent to the (unreachable) webhook at least once.
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        let events: Value = http
            .get(api("/api/v1/webhook/events"))
            .bearer_auth(&key)
            .send()
            .await
            .expect("events")
            .json()
            .await
            .expect("json");
        if events["events"][0]["attempts"].as_i64().unwrap_or(0) >= 1 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no delivery attempt: {events}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A token request whose refresh the provider holds open.
    provider.hold_refreshes(true);
    let request = http.get(api("/api/v1/connections/crm/token?force_refresh=true")).bearer_auth(&key).send();
    let in_flight = tokio::spawn(request);
    tokio::time::timeout(STEP, provider.refresh_arrived()).await.expect("the refresh reaches the provider");

    server.terminate();
    wait_until_refused(&server.url).await;
    provider.release();

    let response = tokio::time::timeout(STEP, in_flight).await.expect("answered").expect("joined").expect("response");
    assert_eq!(response.status().as_u16(), 200, "the request in flight finishes");
    let body: Value = response.json().await.expect("json");
    let refreshed = body["token"].as_str().expect("token").to_owned();
    let newest = provider.issued_tokens().into_iter().rfind(|t| t.starts_with("at-")).expect("issued");
    assert_eq!(refreshed, newest, "the answer carries the provider's new token");
    let (clean, logs) = server.exit().await;
    assert!(clean, "exit status 0 after SIGTERM:\n{logs}");
    assert!(logs.contains("shutting down"), "{logs}");

    // After a restart the stored token is the new one, served without asking the provider again.
    let calls = provider.refresh_calls().len();
    let restarted = serve(dir.path()).await;
    let again: Value = http
        .get(format!("{}/api/v1/connections/crm/token", restarted.url))
        .bearer_auth(&key)
        .send()
        .await
        .expect("token after restart")
        .json()
        .await
        .expect("json");
    assert_eq!(again["token"].as_str(), Some(refreshed.as_str()), "{again}");
    assert_eq!(provider.refresh_calls().len(), calls, "no refresh was needed");
    restarted.terminate();
    let (clean, more_logs) = restarted.exit().await;
    assert!(clean, "{more_logs}");

    let mut secrets = provider.issued_tokens();
    secrets.extend([signing_secret, key, "cs-SECRET-shutdown".to_owned(), hook_path]);
    assert!(logs.contains("127.0.0.1:9"), "the delivery attempt was logged (by host):\n{logs}");
    for secret in &secrets {
        assert!(!logs.contains(secret.as_str()) && !more_logs.contains(secret.as_str()), "a log shows {secret}");
    }
}

#[tokio::test]
async fn sigterm_waits_for_a_refresh_whose_caller_went_away() {
    let dir = tempfile::tempdir().expect("dir");
    run(dir.path(), &["users", "create", "alice", "--password-stdin"], "a long enough password\n").await;
    let key = run(dir.path(), &["api-keys", "create", "alice"], "").await;
    let provider = MockProvider::start("client-1", "s").await;
    provider.set_rotate_refresh_tokens(true);
    let server = serve(dir.path()).await;
    let http = reqwest::Client::builder().cookie_store(true).no_proxy().timeout(STEP).build().expect("client");
    let created: Value = http
        .post(format!("{}/api/v1/connections", server.url))
        .bearer_auth(&key)
        .json(&json!({
            "handle": "crm", "name": "CRM", "authorization_url": provider.authorization_url(),
            "token_url": provider.token_url(), "client_id": "client-1", "client_secret": "s", "scopes": "read"
        }))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let link = created["authorization_link"].as_str().expect("link");
    assert_eq!(http.get(link).send().await.expect("authorize").status().as_u16(), 200);

    provider.hold_refreshes(true);
    let url = format!("{}/api/v1/connections/crm/token?force_refresh=true", server.url);
    let caller = tokio::spawn(http.get(url).bearer_auth(&key).send());
    tokio::time::timeout(STEP, provider.refresh_arrived()).await.expect("the refresh reaches the provider");
    caller.abort();
    let _ = caller.await;

    server.terminate();
    wait_until_refused(&server.url).await;
    provider.release();
    let (clean, logs) = server.exit().await;
    assert!(clean, "{logs}");
    let newest = provider.issued_tokens().into_iter().rfind(|t| t.starts_with("at-")).expect("issued");

    let calls = provider.refresh_calls().len();
    let restarted = serve(dir.path()).await;
    let again: Value = http
        .get(format!("{}/api/v1/connections/crm/token", restarted.url))
        .bearer_auth(&key)
        .send()
        .await
        .expect("token after restart")
        .json()
        .await
        .expect("json");
    assert_eq!(again["token"].as_str(), Some(newest.as_str()), "the abandoned refresh was stored: {again}\n{logs}");
    assert_eq!(provider.refresh_calls().len(), calls);
    restarted.terminate();
    assert!(restarted.exit().await.0);
}

#[tokio::test]
async fn sigterm_right_after_the_start_line_exits_cleanly() {
    let dir = tempfile::tempdir().expect("dir");
    run(dir.path(), &["users", "create", "alice", "--password-stdin"], "a long enough password\n").await;
    // The signal comes the moment the server says it runs: the handler must already be in place by then.
    let server = serve(dir.path()).await;
    server.terminate();
    let (clean, logs) = server.exit().await;
    assert!(clean, "exit status 0 after an early SIGTERM:\n{logs}");
    assert!(logs.contains("shutting down"), "{logs}");
}
