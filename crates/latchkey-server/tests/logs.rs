//! Secrets stay out of everything: a whole life of a connection (set-up, log-in, API keys, create, authorize,
//! token read, forced refresh, delete, log-out) runs against the real server with every log of every crate
//! captured at TRACE level, and with every answer of latchkey kept. Each secret of the story (password, client
//! secret, authorization code, PKCE verifier, access and refresh tokens, API key, session cookie) must appear in
//! no log line, and in no answer except the one that hands it out on purpose (the token endpoint its access
//! token, the API-key page its key once, the log-in its cookie).
//!
//! A test binary of its own: the capturing subscriber is global to the process.

#[path = "api/helpers.rs"]
#[allow(dead_code, reason = "shared with the API tests; this file uses only part of it")]
mod helpers;
#[path = "api/provider.rs"]
#[allow(dead_code, reason = "shared with the API tests; this file uses only part of it")]
mod provider;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use helpers::{TestApp, secret, spawn_app};
use provider::MockProvider;
use reqwest::header::{LOCATION, SET_COOKIE};
use reqwest::{Method, StatusCode};

/// Everything written to the log, shared with the subscriber.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log lock").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log lock")).into_owned()
    }
}

/// Captures every event and span of every crate at TRACE level, as `RUST_LOG=trace` would show them.
fn capture_logs() -> Captured {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber of this binary");
    captured
}

/// One answer of latchkey: what was asked, and the status line, headers and body that came back.
struct Answer {
    what: String,
    text: String,
}

/// Every answer latchkey gave in the story.
#[derive(Default)]
struct Answers(Vec<Answer>);

impl Answers {
    async fn keep(
        &mut self,
        what: &str,
        response: reqwest::Response,
    ) -> (StatusCode, reqwest::header::HeaderMap, String) {
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.text().await.expect("body");
        let mut text = format!("{status}\n");
        for (name, value) in &headers {
            text.push_str(&format!("{name}: {}\n", String::from_utf8_lossy(value.as_bytes())));
        }
        text.push_str(&body);
        self.0.push(Answer { what: what.to_owned(), text });
        (status, headers, body)
    }
}

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// The value of the session cookie an answer sets.
fn session_of(headers: &reqwest::header::HeaderMap) -> String {
    let cookie = headers.get(SET_COOKIE).and_then(|v| v.to_str().ok()).expect("a session cookie");
    let value = cookie.split(';').next().and_then(|pair| pair.split_once('=')).map(|(_, v)| v).unwrap_or_default();
    assert!(value.len() >= 16, "{cookie}");
    value.to_owned()
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text.find(start).unwrap_or_else(|| panic!("no {start:?} in {text}")) + start.len();
    let to = text[from..].find(end).expect("end marker");
    &text[from..from + to]
}

#[tokio::test]
async fn no_secret_reaches_a_log_line_an_answer_or_the_metrics() {
    let logs = capture_logs();
    let app = spawn_app().await;
    let password = secret("password");
    let client_secret = secret("client");
    let provider = MockProvider::start("client-1", &client_secret).await;
    let person = browser();
    let mut answers = Answers::default();
    let mut cookies = Vec::new();

    // Set-up and log-in through the UI.
    let link = app.setup_link.clone().expect("set-up link");
    let done = person.post(&link).form(&[("username", "admin"), ("password", password.as_str())]).send().await;
    let (status, headers, _) = answers.keep("set-up", done.expect("set-up")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    cookies.push(("set-up session", session_of(&headers)));
    let logout_first = browser();
    let login = logout_first.post(app.url("/login")).form(&[("username", "admin"), ("password", password.as_str())]);
    let (status, headers, _) = answers.keep("log-in", login.send().await.expect("log in")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    cookies.push(("log-in session", session_of(&headers)));
    let wrong = browser().post(app.url("/login")).form(&[("username", "admin"), ("password", "not-the-password")]);
    answers.keep("wrong log-in", wrong.send().await.expect("log in")).await;

    // An API key, created in the UI and shown once.
    let (_, _, list) = answers.keep("list", person.get(app.url("/connections")).send().await.expect("list")).await;
    let csrf = between(&list, "name=\"csrf\" value=\"", "\"").to_owned();
    let form = [("csrf", csrf.as_str()), ("name", "script"), ("handles", "")];
    let created = person.post(app.url("/api-keys")).form(&form).send().await.expect("create key");
    let (status, _, page) = answers.keep("the new API key", created).await;
    assert_eq!(status, StatusCode::OK);
    let api_key = between(&page, "id=\"new-key-value\">", "<").to_owned();
    assert!(api_key.starts_with("lk_"), "{api_key}");
    let api = |method: Method, path: &str| app.http.request(method, app.url(path)).bearer_auth(&api_key);

    // A second key, created through the API with the first, shown once in that answer.
    let second = api(Method::POST, "/api/v1/api-keys").json(&serde_json::json!({"name": "second"})).send().await;
    let (status, _, body) = answers.keep("the second API key", second.expect("create key")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let second_key =
        serde_json::from_str::<serde_json::Value>(&body).expect("json")["key"].as_str().expect("the key").to_owned();
    answers.keep("/api/v1/api-keys", api(Method::GET, "/api/v1/api-keys").send().await.expect("keys")).await;

    // A connection, authorized through the provider like a browser would.
    let body = TestApp::connection_body("crm", &provider, &client_secret);
    let created = api(Method::POST, "/api/v1/connections").json(&body).send().await.expect("create");
    let (status, _, created) = answers.keep("create", created).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let link: serde_json::Value = serde_json::from_str(&created).expect("json");
    let link = link["authorization_link"].as_str().expect("link").to_owned();
    let (status, headers, _) = answers.keep("start", person.get(&link).send().await.expect("start")).await;
    assert_eq!(status, StatusCode::FOUND);
    let consent = headers[LOCATION].to_str().expect("location").to_owned();
    // The provider's own answer (which carries the code towards latchkey) is not latchkey's to keep quiet.
    let back = person.get(&consent).send().await.expect("provider");
    let callback = back.headers()[LOCATION].to_str().expect("callback").to_owned();
    let (status, _, page) = answers.keep("callback", person.get(&callback).send().await.expect("callback")).await;
    assert_eq!(status, StatusCode::OK, "{page}");

    // Token reads, a forced refresh, reads of the connection, the audit, the OpenAPI document and the metrics.
    for (what, path) in [
        ("token", "/api/v1/connections/crm/token"),
        ("forced refresh", "/api/v1/connections/crm/token?force_refresh=true"),
    ] {
        let (status, _, body) = answers.keep(what, api(Method::GET, path).send().await.expect(what)).await;
        assert_eq!(status, StatusCode::OK, "{what}: {body}");
    }
    for path in [
        "/api/v1/connections",
        "/api/v1/connections/crm",
        "/api/v1/connections/crm/audit",
        "/api/v1/audit",
        "/api/v1/openapi.json",
        "/connections",
        "/connections/crm/edit",
        "/api-keys",
    ] {
        let response = if path.starts_with("/api/") { api(Method::GET, path) } else { person.get(app.url(path)) };
        answers.keep(path, response.send().await.expect(path)).await;
    }
    let metrics = app.http.get(app.url("/metrics")).send().await.expect("metrics");
    answers.keep("/metrics", metrics).await;

    // Delete (with revocation where the provider has it), and log out.
    let (status, _, _) =
        answers.keep("delete", api(Method::DELETE, "/api/v1/connections/crm").send().await.expect("delete")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let logout = person.post(app.url("/logout")).form(&[("csrf", csrf.as_str())]).send().await.expect("log out");
    answers.keep("log-out", logout).await;

    // The secrets of the story, as the provider saw them.
    let calls = provider.token_calls();
    let sent = |name: &str| calls.iter().filter_map(|c| c.param(name).map(str::to_owned)).collect::<Vec<_>>();
    let codes = sent("code");
    let verifiers = sent("code_verifier");
    assert!(!codes.is_empty() && !verifiers.is_empty(), "the story exchanged a code with PKCE");
    assert!(!sent("refresh_token").is_empty(), "the story refreshed");
    let tag = provider.tag();
    let mut secrets: Vec<(&str, String)> = vec![
        ("password", password.clone()),
        ("client secret", client_secret.clone()),
        ("access token", format!("at-{tag}-")),
        ("refresh token", format!("rt-{tag}-")),
        ("authorization code", format!("code-{tag}-")),
        ("API key", api_key.clone()),
        ("second API key", second_key.clone()),
    ];
    secrets.extend(verifiers.into_iter().map(|v| ("PKCE verifier", v)));
    secrets.extend(cookies.iter().map(|(name, value)| (*name, value.clone())));

    let log = logs.text();
    assert!(log.contains("TRACE") && log.contains("DEBUG"), "the capture saw every level");
    for (name, value) in &secrets {
        if let Some(at) = log.find(value.as_str()) {
            let line = log[..at].rfind('\n').map_or(0, |i| i + 1);
            let end = log[at..].find('\n').map_or(log.len(), |i| at + i);
            panic!("the {name} is in the log: {}", &log[line..end]);
        }
    }
    for answer in &answers.0 {
        for (name, value) in &secrets {
            let on_purpose = match *name {
                "access token" => answer.what == "token" || answer.what == "forced refresh",
                "API key" => answer.what == "the new API key",
                "second API key" => answer.what == "the second API key",
                "set-up session" => answer.what == "set-up",
                "log-in session" => answer.what == "log-in",
                _ => false,
            };
            if on_purpose {
                // The search finds what it looks for: the value is where the contract puts it.
                assert!(answer.text.contains(value.as_str()), "no {name} in the answer to {}", answer.what);
            } else {
                assert!(
                    !answer.text.contains(value.as_str()),
                    "the {name} is in the answer to {}: {}",
                    answer.what,
                    answer.text
                );
            }
        }
    }
    app.stop().await;
}
