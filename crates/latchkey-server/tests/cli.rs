//! The `latchkey` binary as a person and a script use it: set-up link on first start, `users create`,
//! `api-keys create`, `token`, a wrong key refused, and debug logs of a whole flow that never show a secret.

#[path = "api/provider.rs"]
#[allow(dead_code, reason = "shared with the API tests; this binary uses part of it")]
mod provider;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use provider::MockProvider;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_latchkey");

fn latchkey(dir: &Path) -> Command {
    let mut command = Command::new(BIN);
    command
        .current_dir(dir)
        .env_remove("LATCHKEY_MASTER_KEY")
        .env_remove("LATCHKEY_DATABASE_URL")
        .env_remove("LATCHKEY_PUBLIC_URL")
        .env_remove("LATCHKEY_LISTEN")
        .env("LATCHKEY_ALLOW_PRIVATE_NETWORKS", "true")
        .kill_on_drop(true);
    command
}

async fn run(dir: &Path, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut command = latchkey(dir);
    command.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().expect("spawn latchkey");
    if let Some(input) = stdin {
        use tokio::io::AsyncWriteExt;
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(input.as_bytes()).await.expect("write stdin");
    }
    drop(child.stdin.take());
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("latchkey finishes")
        .expect("output");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

struct Server {
    child: Child,
    url: String,
    first_lines: Vec<String>,
}

/// Starts `latchkey serve` on a free port and reads what it prints until it says where it runs.
async fn serve(dir: &Path, log: &str) -> Server {
    serve_with(latchkey(dir), log).await
}

/// Starts `command` as `latchkey serve` on a free port, as [`serve`] does.
async fn serve_with(mut command: Command, log: &str) -> Server {
    command
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("LATCHKEY_LOG", log)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("spawn serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut first_lines = Vec::new();
    let url = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.expect("read stdout") {
            first_lines.push(line.clone());
            if let Some(url) = line.strip_prefix("latchkey is running at ") {
                return url.trim_end_matches('/').to_owned();
            }
        }
        panic!("serve exited early");
    })
    .await
    .expect("serve starts");
    // Give the set-up line (printed right after) a moment to arrive, bounded.
    if let Ok(Ok(Some(line))) = tokio::time::timeout(Duration::from_secs(2), lines.next_line()).await {
        first_lines.push(line);
    }
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Server { child, url, first_lines }
}

impl Server {
    /// Stops the server with SIGTERM and returns everything it logged.
    async fn stop(mut self) -> String {
        let pid = self.child.id().expect("pid");
        let _ = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
        let mut stderr = self.child.stderr.take().expect("stderr");
        let mut logs = String::new();
        tokio::time::timeout(Duration::from_secs(30), stderr.read_to_string(&mut logs)).await.expect("logs end").ok();
        let status =
            tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await.expect("exits").expect("status");
        assert!(status.success(), "serve exits cleanly on SIGTERM: {status:?}\n{logs}");
        logs
    }
}

#[tokio::test]
async fn first_start_prints_a_set_up_link_and_makes_a_private_key_file() {
    let dir = tempfile::tempdir().expect("dir");
    let server = serve(dir.path(), "info").await;
    let setup = server.first_lines.iter().find(|l| l.contains("/setup/")).cloned();
    let url = server.url.clone();
    let logs = server.stop().await;
    let setup = setup.expect("a set-up link is printed");
    assert!(setup.contains(&format!("{url}/setup/")), "{setup}");
    assert!(logs.contains("master.key"), "the log says where the new key is: {logs}");
    let key_file = dir.path().join("latchkey-data/master.key");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key_file).expect("key file").permissions());
    assert_eq!(mode & 0o777, 0o600);
    assert!(dir.path().join("latchkey-data/latchkey.db").exists());
}

#[tokio::test]
async fn a_wrong_master_key_stops_the_binary_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("dir");
    let (ok, _, err) =
        run(dir.path(), &["users", "create", "alice", "--password-stdin"], Some("a long password\n")).await;
    assert!(ok, "{err}");
    let wrong = latchkey_crypto::MasterKey::generate();
    let mut command = latchkey(dir.path());
    command.args(["serve", "--listen", "127.0.0.1:0"]).env("LATCHKEY_MASTER_KEY", wrong.to_base64().as_str());
    let output = tokio::time::timeout(Duration::from_secs(60), command.output()).await.expect("exits").expect("output");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("master key"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test]
async fn users_and_keys_from_the_command_line_refuse_bad_input() {
    let dir = tempfile::tempdir().expect("dir");
    let (ok, _, err) = run(dir.path(), &["users", "create", "alice", "--password-stdin"], Some("short\n")).await;
    assert!(!ok);
    assert!(err.contains("too short"), "{err}");
    let (ok, _, err) = run(dir.path(), &["api-keys", "create", "nobody"], None).await;
    assert!(!ok);
    assert!(err.contains("no user 'nobody'"), "{err}");
    let (ok, _, err) = run(dir.path(), &["api-keys", "create", "nobody", "--handles", "Bad Handle"], None).await;
    assert!(!ok);
    assert!(err.contains("--handles"), "{err}");
}

#[tokio::test]
async fn a_whole_flow_with_debug_logs_never_logs_a_secret() {
    let dir = tempfile::tempdir().expect("dir");
    let password = format!("pw-SECRET-{}", uuid::Uuid::new_v4().simple());
    let (ok, _, err) =
        run(dir.path(), &["users", "create", "alice", "--admin", "--password-stdin"], Some(&format!("{password}\n")))
            .await;
    assert!(ok, "{err}");
    let (ok, key, err) = run(dir.path(), &["api-keys", "create", "alice", "--name", "ci"], None).await;
    assert!(ok, "{err}");
    let key = key.trim().to_owned();
    assert!(key.starts_with("lk_") && !key.contains('\n'), "the key alone on stdout: {key:?}");

    let client_secret = format!("cs-SECRET-{}", uuid::Uuid::new_v4().simple());
    let provider = MockProvider::start("client-1", &client_secret).await;
    provider.set_rotate_refresh_tokens(true);
    let server = serve(dir.path(), "debug").await;
    let http = reqwest::Client::builder().cookie_store(true).no_proxy().build().expect("client");
    let created: serde_json::Value = http
        .post(format!("{}/api/v1/connections", server.url))
        .bearer_auth(&key)
        .json(&json!({
            "handle": "crm", "name": "CRM", "authorization_url": provider.authorization_url(),
            "token_url": provider.token_url(), "client_id": "client-1", "client_secret": client_secret, "scopes": "read"
        }))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let link = created["authorization_link"].as_str().expect("link").to_owned();
    let page = http.get(&link).send().await.expect("follow");
    assert_eq!(page.status().as_u16(), 200);
    let forced = http
        .get(format!("{}/api/v1/connections/crm/token?force_refresh=true", server.url))
        .bearer_auth(&key)
        .send()
        .await
        .expect("token");
    assert_eq!(forced.status().as_u16(), 200);

    // `latchkey token` prints the token alone.
    let mut command = latchkey(dir.path());
    command.args(["token", "crm"]).env("LATCHKEY_URL", &server.url).env("LATCHKEY_API_KEY", &key);
    let output = command.output().await.expect("token command");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let printed = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    assert!(printed.starts_with("at-") && !printed.contains(' '), "{printed}");
    // ...and fails clearly for an unknown handle.
    let mut command = latchkey(dir.path());
    command.args(["token", "nope"]).env("LATCHKEY_URL", &server.url).env("LATCHKEY_API_KEY", &key);
    let output = command.output().await.expect("token command");
    assert!(!output.status.success());
    assert!(output.stdout.is_empty());
    assert!(String::from_utf8_lossy(&output.stderr).contains("no connection with the handle 'nope'"));

    let logs = server.stop().await;
    assert!(logs.contains("DEBUG"), "debug logging was on");
    let link_secret = link.rsplit('/').next().expect("link token").to_owned();
    let mut secrets = provider.issued_tokens();
    secrets.extend([client_secret, key, password, link_secret]);
    secrets.push(format!("code-{}", provider.tag()));
    for call in provider.authorize_calls() {
        secrets.push(call["state"].clone());
    }
    for secret in &secrets {
        assert!(!logs.contains(secret.as_str()), "the log shows {secret}:\n{logs}");
    }
    assert!(secrets.iter().any(|s| s.starts_with("rt-")), "the search covered refresh tokens");
}

#[tokio::test]
async fn proxy_settings_in_the_environment_are_ignored_by_outbound_requests() {
    // A proxy that counts who connects to it and serves no one.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let proxy = format!("http://{}", listener.local_addr().expect("address"));
    let reached = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = std::sync::Arc::clone(&reached);
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(socket);
        }
    });

    let dir = tempfile::tempdir().expect("dir");
    let (ok, _, err) =
        run(dir.path(), &["users", "create", "alice", "--password-stdin"], Some("correct horse battery\n")).await;
    assert!(ok, "{err}");
    let (ok, key, err) = run(dir.path(), &["api-keys", "create", "alice", "--name", "ci"], None).await;
    assert!(ok, "{err}");
    let key = key.trim().to_owned();
    let provider = MockProvider::start("client-1", "cs").await;

    let mut command = latchkey(dir.path());
    for name in ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"] {
        command.env(name, &proxy);
    }
    command.env_remove("NO_PROXY").env_remove("no_proxy");
    let server = serve_with(command, "info").await;
    let http = reqwest::Client::builder().cookie_store(true).no_proxy().build().expect("client");
    let created: serde_json::Value = http
        .post(format!("{}/api/v1/connections", server.url))
        .bearer_auth(&key)
        .json(&json!({"handle": "crm", "authorization_url": provider.authorization_url(),
            "token_url": provider.token_url(), "client_id": "client-1", "client_secret": "cs"}))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let link = created["authorization_link"].as_str().expect("link").to_owned();
    let page = http.get(&link).send().await.expect("follow");
    assert_eq!(page.status().as_u16(), 200, "{}", page.text().await.unwrap_or_default());
    assert_eq!(provider.token_calls().len(), 1, "the code went straight to the provider");
    assert_eq!(reached.load(std::sync::atomic::Ordering::SeqCst), 0, "nothing went through the proxy");
    server.stop().await;
}

/// The subcommands listed under "Commands:" in a help text (without `help` itself).
fn subcommands_in(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|line| !line.starts_with("Commands:"))
        .skip(1)
        .take_while(|line| !line.trim().is_empty())
        .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
        .filter(|name| name != "help")
        .collect()
}

#[tokio::test]
async fn help_of_every_command_hides_the_values_of_settings_that_may_hold_secrets() {
    let dir = tempfile::tempdir().expect("dir");
    let sentinel = format!("SENTINEL{}", uuid::Uuid::new_v4().simple());
    let values = [
        ("LATCHKEY_DATABASE_URL", format!("postgres://latchkey:{sentinel}@127.0.0.1:9/latchkey")),
        ("LATCHKEY_METRICS_TOKEN", format!("{sentinel}-metrics-token")),
        ("LATCHKEY_URL", format!("http://user:{sentinel}@127.0.0.1:9")),
        ("LATCHKEY_PUBLIC_URL", format!("http://user:{sentinel}@127.0.0.1:9")),
    ];
    let help = |path: Vec<String>| {
        let mut command = latchkey(dir.path());
        command.args(&path).arg("--help");
        for (name, value) in &values {
            command.env(name, value);
        }
        async move {
            let output =
                tokio::time::timeout(Duration::from_secs(60), command.output()).await.expect("exits").expect("output");
            assert!(output.status.success(), "{path:?} --help failed");
            let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
            (path, text)
        }
    };
    let mut pending = vec![Vec::new()];
    let mut checked = Vec::new();
    // Bounded: the command tree is a few levels deep.
    while let Some(path) = pending.pop() {
        assert!(checked.len() < 100, "more commands than expected: {checked:?}");
        let (path, text) = help(path).await;
        assert!(!text.contains(&sentinel), "`latchkey {} --help` shows a secret setting's value", path.join(" "));
        for sub in subcommands_in(&text) {
            let mut deeper = path.clone();
            deeper.push(sub);
            pending.push(deeper);
        }
        checked.push(path.join(" "));
    }
    for command in ["serve", "users create", "api-keys create", "token", "keys rotate"] {
        assert!(checked.iter().any(|c| c == command), "{command} was not checked: {checked:?}");
    }
}
