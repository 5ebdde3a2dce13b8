//! The audit log end to end: the real server on a loopback port with its database (a SQLite file, or PostgreSQL
//! with `LATCHKEY_TEST_BACKEND=postgres`), a mock provider on loopback, and the records read back through the API,
//! the web page and the database itself.

#[path = "api/helpers.rs"]
#[allow(dead_code, reason = "shared with the API tests; this file uses only part of it")]
mod helpers;
#[path = "api/provider.rs"]
#[allow(dead_code, reason = "shared with the API tests; this file uses only part of it")]
mod provider;

use std::time::Duration;

use helpers::{Caller, Options, TestApp, on_postgres, secret, spawn_app, spawn_with, wait_for};
use latchkey_core::audit::AuditQuery;
use provider::MockProvider;
use reqwest::Method;
use serde_json::{Value, json};

/// The records of `path` (an audit endpoint) as `caller` reads them.
async fn records(app: &TestApp, caller: &Caller, path: &str) -> Vec<Value> {
    let (status, body) = app.api(caller, Method::GET, path, None).await;
    assert_eq!(status, 200, "{path}: {body}");
    body["records"].as_array().cloned().unwrap_or_default()
}

/// Whether a record of `action` with `outcome` is among `records`.
fn has(records: &[Value], action: &str, outcome: &str) -> bool {
    records.iter().any(|r| r["action"] == action && r["outcome"] == outcome)
}

/// How many records of `action` with outcome `ok` are among `records`.
fn count_ok(records: &[Value], action: &str) -> usize {
    records.iter().filter(|r| r["action"] == action && r["outcome"] == "ok").count()
}

/// Runs `sql` on the server's database through a connection of its own, as an operator (or a fault) would.
async fn execute_directly(app: &TestApp, sql: &str) {
    if on_postgres() {
        let pool = sqlx::PgPool::connect(&app.database_url()).await.expect("open the database directly");
        sqlx::query(sql).execute(&pool).await.expect("statement");
        pool.close().await;
    } else {
        let pool = sqlx::SqlitePool::connect(&app.database_url()).await.expect("open the database directly");
        sqlx::query(sql).execute(&pool).await.expect("statement");
        pool.close().await;
    }
}

/// Every stored audit row as text, read directly from the database.
async fn stored_rows(app: &TestApp) -> Vec<String> {
    if on_postgres() {
        let pool = sqlx::PgPool::connect(&app.database_url()).await.expect("open the database directly");
        let rows = sqlx::query_scalar("SELECT a::text FROM audit_log a").fetch_all(&pool).await.expect("rows");
        pool.close().await;
        rows
    } else {
        let pool = sqlx::SqlitePool::connect(&app.database_url()).await.expect("open the database directly");
        let rows = sqlx::query_scalar(
            "SELECT concat_ws('|', id, at, user_id, actor, api_key_id, api_key_prefix, action, handle, subject_key, \
             outcome) FROM audit_log",
        )
        .fetch_all(&pool)
        .await
        .expect("rows");
        pool.close().await;
        rows
    }
}

#[tokio::test]
async fn a_token_read_is_recorded_and_readable_once_flushed() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    app.connect(&alice, "crm", &provider, "s").await;
    let (status, _) = app.token(&alice, "crm").await;
    assert_eq!(status, 200);

    let path = "/api/v1/connections/crm/audit";
    wait_for("the token read's record", async || has(&records(&app, &alice, path).await, "token_read", "ok")).await;
    let found = records(&app, &alice, path).await;
    let read = found.iter().find(|r| r["action"] == "token_read").expect("token_read");
    assert_eq!(read["actor"], "api_key");
    assert_eq!(read["api_key_prefix"], alice.key[..10]);
    assert_eq!(read["handle"], "crm");
    assert!(read["at"].as_str().is_some_and(|at| at.ends_with('Z')), "{read}");
    assert!(has(&found, "connection_create", "ok"), "{found:?}");
    let authorized = found.iter().find(|r| r["action"] == "connection_authorized").expect("authorized");
    assert_eq!((&authorized["actor"], &authorized["outcome"]), (&json!("authorization"), &json!("ok")));
    assert_eq!(found[0]["action"], "token_read", "newest first");

    // A read that fails is recorded with the error's code.
    let (status, _) = app.token(&alice, "calendar").await;
    assert_eq!(status, 404);
    wait_for("the failed read's record", async || {
        has(&records(&app, &alice, "/api/v1/audit").await, "token_read", "not_found")
    })
    .await;
}

#[tokio::test]
async fn refreshes_are_recorded_with_who_caused_them() {
    let options = Options { refresher_interval: Duration::from_millis(50), ..Options::default() };
    let app = spawn_with(options).await;
    let provider = MockProvider::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    app.connect(&alice, "crm", &provider, "s").await;

    let (status, _) = app.api(&alice, Method::GET, "/api/v1/connections/crm/token?force_refresh=true", None).await;
    assert_eq!(status, 200);
    let path = "/api/v1/connections/crm/audit";
    let refreshed_by = async |actor: &str| {
        records(&app, &alice, path).await.iter().any(|r| r["action"] == "token_refresh" && r["actor"] == actor)
    };
    assert!(refreshed_by("api_key").await, "a refresh a caller caused is written at once");
    let by_key = records(&app, &alice, path).await;
    let refresh = by_key.iter().find(|r| r["action"] == "token_refresh").expect("refresh");
    assert_eq!((&refresh["api_key_prefix"], &refresh["outcome"]), (&json!(alice.key[..10]), &json!("ok")));

    // Past the expiry the background refresher renews the token on its own.
    app.clock.advance(3600);
    wait_for("the refresher's refresh record", async || refreshed_by("refresher").await).await;
    assert_eq!(provider.refresh_calls().len(), 2);
}

#[tokio::test]
async fn failed_refreshes_and_authorizations_are_recorded_with_their_code() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    app.connect(&alice, "crm", &provider, "s").await;
    provider.push_canned(provider::Canned::json(503, json!({"error": "temporarily_unavailable"})));
    let forced = "/api/v1/connections/crm/token?force_refresh=true";
    assert_eq!(app.api(&alice, Method::GET, forced, None).await.0, 502);
    let found = records(&app, &alice, "/api/v1/connections/crm/audit").await;
    assert!(has(&found, "token_refresh", "provider_error"), "{found:?}");

    provider.set_deny_authorization(true);
    let link = app.create_connection(&alice, "calendar", &provider, "s").await;
    let (_, page) = app.follow(&link).await;
    assert!(!page.contains("Connected"), "{page}");
    let found = records(&app, &alice, "/api/v1/connections/calendar/audit").await;
    let ended = found.iter().find(|r| r["action"] == "connection_authorized").expect("the failed authorization");
    assert_eq!(ended["actor"], "authorization");
    assert_eq!(
        ended["outcome"], "provider_error",
        "a denied authorization is recorded as the provider's refusal: {ended}"
    );
}

#[tokio::test]
async fn api_keys_created_on_the_command_line_are_recorded() {
    let dir = tempfile::tempdir().expect("dir");
    let latchkey = |args: &[&str], input: &str| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_latchkey"));
        command
            .current_dir(dir.path())
            .args(args)
            .env_remove("LATCHKEY_MASTER_KEY")
            .env_remove("LATCHKEY_DATABASE_URL")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = command.spawn().expect("spawn latchkey");
        std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), input.as_bytes()).expect("stdin");
        let output = child.wait_with_output().expect("latchkey runs");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).expect("text").trim().to_owned()
    };
    latchkey(&["users", "create", "alice", "--password-stdin"], "a long enough password\n");
    let key = latchkey(&["api-keys", "create", "alice", "--name", "ci"], "");

    let url = format!("sqlite://{}", dir.path().join("latchkey-data/latchkey.db").display());
    let store = latchkey_store::connect(&url).await.expect("open the database");
    let alice = store.user_by_username("alice").await.expect("read").expect("alice");
    let query = AuditQuery { user_id: alice.id, handle: None, before: None, limit: 10 };
    let found = store.audit_records(&query).await.expect("records");
    assert_eq!(found.len(), 1, "{found:?}");
    let record = &found[0].record;
    assert_eq!(record.actor, latchkey_core::audit::Actor::CommandLine);
    assert_eq!(record.action, latchkey_core::audit::Action::ApiKeyCreate);
    assert_eq!(record.subject_key.as_deref(), Some(&key[..10]));
    assert_eq!(record.outcome, "ok");
}

#[tokio::test]
async fn connection_and_api_key_changes_are_recorded_and_outlive_the_connection() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    app.create_connection(&alice, "crm", &provider, "s").await;
    let edit = json!({"name": "Renamed"});
    assert_eq!(app.api(&alice, Method::PATCH, "/api/v1/connections/crm", Some(edit)).await.0, 200);
    assert_eq!(app.api(&alice, Method::POST, "/api/v1/connections/crm/authorize", None).await.0, 200);
    assert_eq!(app.api(&alice, Method::DELETE, "/api/v1/connections/crm", None).await.0, 204);

    // The connection is gone, its log is not.
    let found = records(&app, &alice, "/api/v1/connections/crm/audit").await;
    let actions: Vec<&str> = found.iter().filter_map(|r| r["action"].as_str()).collect();
    assert_eq!(actions, ["connection_delete", "connection_authorize", "connection_edit", "connection_create"]);
    assert!(found.iter().all(|r| r["actor"] == "api_key" && r["outcome"] == "ok"), "{found:?}");

    // A refused change is recorded with its code.
    let bad = json!({"handle": "other"});
    app.create_connection(&alice, "crm", &provider, "s").await;
    assert_eq!(app.api(&alice, Method::PATCH, "/api/v1/connections/crm", Some(bad)).await.0, 400);
    let found = records(&app, &alice, "/api/v1/connections/crm/audit").await;
    assert_eq!((&found[0]["action"], &found[0]["outcome"]), (&json!("connection_edit"), &json!("invalid_request")));

    // API keys created and revoked in the web UI.
    let person = log_in(&app, "alice").await;
    let created = person.post(&app, "/api-keys", &[("name", "ci"), ("handles", "")]).await;
    assert_eq!(created.status(), 200);
    let keys = app.state.store.list_api_keys(&alice.user.id).await.expect("keys");
    let ci = keys.iter().find(|k| k.name == "ci").expect("the new key");
    let revoked = person.post(&app, &format!("/api-keys/{}/revoke", ci.id), &[("confirmed", "yes")]).await;
    assert_eq!(revoked.status(), 303);
    let all = records(&app, &alice, "/api/v1/audit").await;
    for action in ["api_key_create", "api_key_revoke"] {
        let record = all.iter().find(|r| r["action"] == action).unwrap_or_else(|| panic!("{action}: {all:?}"));
        assert_eq!((&record["actor"], &record["subject_key"]), (&json!("web_session"), &json!(ci.prefix)));
    }
}

#[tokio::test]
async fn device_authorizations_are_recorded_when_they_end() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    let device = |handle: &str| {
        json!({"handle": handle, "grant_type": "device_code", "token_url": provider.token_url(),
            "device_authorization_url": provider.device_authorization_url(), "client_id": "client-1",
            "client_secret": "s", "scopes": "read"})
    };
    for handle in ["tv", "radio"] {
        let (status, body) = app.api(&alice, Method::POST, "/api/v1/connections", Some(device(handle))).await;
        assert_eq!(status, 201, "{body}");
    }
    // The first poll is denied (whichever flow it is for), the next one approved.
    provider.push_canned(provider::Canned::json(400, json!({"error": "access_denied"})));
    app.clock.advance(1);
    let finished = async || {
        let all = records(&app, &alice, "/api/v1/audit").await;
        let ended: Vec<Value> = all.into_iter().filter(|r| r["action"] == "connection_authorized").collect();
        ended
    };
    wait_for("both device authorizations to end", async || finished().await.len() == 2).await;
    let ended = finished().await;
    assert!(ended.iter().all(|r| r["actor"] == "authorization"), "{ended:?}");
    let mut outcomes: Vec<&str> = ended.iter().filter_map(|r| r["outcome"].as_str()).collect();
    outcomes.sort_unstable();
    assert_eq!(outcomes, ["ok", "provider_error"]);
}

#[tokio::test]
async fn other_users_keys_cannot_read_a_connections_log() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    let bob = app.caller("bob", None).await;
    app.connect(&alice, "crm", &provider, "s").await;
    assert_eq!(app.token(&alice, "crm").await.0, 200);

    let (status, body) = app.api(&bob, Method::GET, "/api/v1/connections/crm/audit", None).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")), "{body}");
    assert!(records(&app, &bob, "/api/v1/audit").await.is_empty(), "bob's log holds none of alice's records");

    let limited = app.caller("carol", Some(&["calendar"])).await;
    let (status, _) = app.api(&limited, Method::GET, "/api/v1/connections/crm/audit", None).await;
    assert_eq!(status, 403, "a key limited to other handles");
    assert_eq!(app.api(&limited, Method::GET, "/api/v1/audit", None).await.0, 403);
    let (status, body) = app.api(&alice, Method::GET, "/api/v1/connections/crm/audit?limit=0", None).await;
    assert_eq!((status, body["field"].as_str()), (400, Some("limit")), "{body}");
    let (status, _) = app.api(&alice, Method::GET, "/api/v1/connections/crm/audit?before=x", None).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn the_openapi_document_describes_the_audit_endpoints() {
    let app = spawn_app().await;
    let alice = app.caller("alice", None).await;
    let (status, document) = app.api(&alice, Method::GET, "/api/v1/openapi.json", None).await;
    assert_eq!(status, 200);
    for path in ["/api/v1/connections/{handle}/audit", "/api/v1/audit"] {
        assert!(document["paths"][path]["get"].is_object(), "{path} is described");
    }
    let token = &document["paths"]["/api/v1/connections/{handle}/token"]["get"]["responses"];
    assert!(token["503"].is_object(), "the token endpoint names its fail-closed answer");
    let record = &document["components"]["schemas"]["AuditRecordView"]["properties"];
    for field in ["id", "at", "action", "actor", "api_key_prefix", "handle", "outcome"] {
        assert!(record[field].is_object(), "AuditRecordView.{field}");
    }
}

#[tokio::test]
async fn pages_walk_the_log_newest_first() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    app.connect(&alice, "crm", &provider, "s").await;
    for _ in 0..5 {
        assert_eq!(app.token(&alice, "crm").await.0, 200);
    }
    let path = "/api/v1/connections/crm/audit";
    wait_for("five reads", async || count_ok(&records(&app, &alice, path).await, "token_read") == 5).await;
    let all = records(&app, &alice, path).await;
    let mut walked = Vec::new();
    let mut next = format!("{path}?limit=3");
    for _ in 0..10 {
        let (status, page) = app.api(&alice, Method::GET, &next, None).await;
        assert_eq!(status, 200, "{page}");
        walked.extend(page["records"].as_array().cloned().unwrap_or_default());
        match page["next_before"].as_i64() {
            Some(before) => next = format!("{path}?limit=3&before={before}"),
            None => break,
        }
    }
    assert_eq!(walked, all, "the pages hold every record once, in order");
}

#[tokio::test]
async fn records_hold_no_secret() {
    let app = spawn_app().await;
    let client_secret = secret("client");
    let provider = MockProvider::start("client-1", &client_secret).await;
    let alice = app.caller("alice", None).await;
    app.connect(&alice, "crm", &provider, &client_secret).await;
    assert_eq!(app.token(&alice, "crm").await.0, 200);
    let forced = "/api/v1/connections/crm/token?force_refresh=true";
    assert_eq!(app.api(&alice, Method::GET, forced, None).await.0, 200);
    let path = "/api/v1/connections/crm/audit";
    wait_for("the read's record", async || count_ok(&records(&app, &alice, path).await, "token_read") == 2).await;

    let mut secrets = provider.issued_tokens();
    assert!(secrets.len() >= 4, "access and refresh tokens were issued: {secrets:?}");
    secrets.push(client_secret);
    secrets.push(alice.key.clone());
    let answer = app.api(&alice, Method::GET, "/api/v1/audit", None).await.1.to_string();
    let rows = stored_rows(&app).await;
    assert!(rows.len() >= 5, "{rows:?}");
    for value in &secrets {
        assert!(!answer.contains(value.as_str()), "the API answer holds a secret");
        assert!(rows.iter().all(|row| !row.contains(value.as_str())), "a stored audit row holds a secret");
    }
    assert!(answer.contains(&alice.key[..10]), "the key's shown prefix is there: {answer}");
}

#[tokio::test]
async fn token_reads_fail_closed_while_the_audit_log_cannot_be_written() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    app.connect(&alice, "crm", &provider, "s").await;
    let mut served = 0;
    assert_eq!(app.token(&alice, "crm").await.0, 200);
    served += 1;

    execute_directly(&app, "ALTER TABLE audit_log RENAME TO audit_log_away").await;
    // Reads go on until the batch holding them fails; from then on they are refused.
    let mut refusal = Value::Null;
    wait_for("token reads to be refused", async || {
        let (status, body) = app.token(&alice, "crm").await;
        match status {
            200 => served += 1,
            503 => refusal = body,
            other => panic!("unexpected {other}: {body}"),
        }
        status == 503
    })
    .await;
    assert_eq!(refusal["code"], "unavailable", "{refusal}");
    assert!(refusal["error"].as_str().is_some_and(|e| e.starts_with("audit log unavailable")), "{refusal}");
    assert!(refusal.get("token").is_none());

    execute_directly(&app, "ALTER TABLE audit_log_away RENAME TO audit_log").await;
    wait_for("token reads to work again", async || {
        let ok = app.token(&alice, "crm").await.0 == 200;
        served += usize::from(ok);
        ok
    })
    .await;
    // Every token handed out is recorded, those served just before the failure included.
    let path = "/api/v1/connections/crm/audit?limit=500";
    wait_for("every served read's record", async || {
        count_ok(&records(&app, &alice, path).await, "token_read") == served
    })
    .await;
}

#[tokio::test]
async fn shutdown_writes_what_the_buffer_holds() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    app.connect(&alice, "crm", &provider, "s").await;
    for _ in 0..3 {
        assert_eq!(app.token(&alice, "crm").await.0, 200);
    }
    let user = alice.user.id.clone();
    let data = app.stop().await;

    let store = latchkey_store::connect(&data.database_url()).await.expect("reopen the database");
    let query = AuditQuery { user_id: user, handle: None, before: None, limit: 100 };
    let reads = store.audit_records(&query).await.expect("records");
    let reads = reads.iter().filter(|e| e.record.action == latchkey_core::audit::Action::TokenRead).count();
    assert_eq!(reads, 3, "the buffered reads were written at shutdown");
}

#[tokio::test]
async fn the_audit_page_lists_records_as_escaped_text() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    let mut body = TestApp::connection_body("crm", &provider, "s");
    body["name"] = json!("<script>alert('name')</script>");
    let (status, created) = app.api(&alice, Method::POST, "/api/v1/connections", Some(body)).await;
    assert_eq!(status, 201, "{created}");
    let link = created["authorization_link"].as_str().expect("link").to_owned();
    assert_eq!(app.follow(&link).await.0, 200);
    assert_eq!(app.token(&alice, "crm").await.0, 200);

    let person = log_in(&app, "alice").await;
    let list = person.get(&app, "/connections").await;
    assert!(list.contains("href=\"/connections/crm/audit\""), "the row links to its audit page");
    wait_for("the read on the page", async || person.get(&app, "/connections/crm/audit").await.contains("token read"))
        .await;
    let page = person.get(&app, "/connections/crm/audit").await;
    assert!(!page.contains("<script>alert"), "the name is not markup: {page}");
    assert!(page.contains("&lt;script&gt;alert(&#x27;name&#x27;)&lt;/script&gt;"), "{page}");
    assert!(page.contains(&format!("API key {}…", &alice.key[..10])), "{page}");
    assert!(page.contains("a few seconds ago"), "relative time: {page}");
    assert!(page.contains("connection created") && page.contains("authorization finished"), "{page}");

    let response = person.browser.get(app.url("/connections/crm/audit?before=x")).send().await.expect("page");
    assert_eq!(response.status(), 400, "a malformed page cursor");

    let bob = app.caller("bob", None).await;
    let bobs = log_in(&app, &bob.user.username).await;
    let response = bobs.browser.get(app.url("/connections/crm/audit")).send().await.expect("page");
    assert_eq!(response.status(), 404, "another user's handle is not found");
}

/// A person logged in to the web UI.
struct Person {
    browser: reqwest::Client,
    csrf: String,
}

impl Person {
    async fn get(&self, app: &TestApp, path: &str) -> String {
        let response = self.browser.get(app.url(path)).send().await.expect("page");
        assert_eq!(response.status(), 200, "{path}");
        response.text().await.expect("page")
    }

    async fn post(&self, app: &TestApp, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let mut form = vec![("csrf", self.csrf.as_str())];
        form.extend_from_slice(fields);
        self.browser
            .post(app.url(path))
            .header(reqwest::header::ORIGIN, app.address.as_str())
            .form(&form)
            .send()
            .await
            .expect("post")
    }
}

async fn log_in(app: &TestApp, username: &str) -> Person {
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .expect("client");
    let response = browser
        .post(app.url("/login"))
        .header(reqwest::header::ORIGIN, app.address.as_str())
        .form(&[("username", username), ("password", "correct horse battery")])
        .send()
        .await
        .expect("log in");
    assert_eq!(response.status(), 303, "log in");
    let page = browser.get(app.url("/connections")).send().await.expect("list").text().await.expect("page");
    let marker = "name=\"csrf\" value=\"";
    let start = page.find(marker).expect("a csrf field") + marker.len();
    let csrf = page[start..start + page[start..].find('"').expect("quote")].to_owned();
    Person { browser, csrf }
}
