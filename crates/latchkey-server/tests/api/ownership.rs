//! Who may reach which connection: one user's key never reaches another user's handles through any endpoint,
//! a key limited to some handles reaches no others, and a key is accepted only in the `Authorization` header
//! and only while it is not revoked. Every refusal leaves the data as it was.

use latchkey_core::Clock;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Caller, TestApp, spawn_app, wait_for};
use crate::provider::MockProvider;

/// Every endpoint that acts on one handle, with the body it sends.
fn handle_endpoints(handle: &str) -> Vec<(Method, String, Option<Value>)> {
    let base = format!("/api/v1/connections/{handle}");
    vec![
        (Method::GET, base.clone(), None),
        (Method::GET, format!("{base}/token"), None),
        (Method::GET, format!("{base}/token?force_refresh=true"), None),
        (Method::PATCH, base.clone(), Some(json!({"name": "taken over", "client_id": "attacker"}))),
        (Method::POST, format!("{base}/authorize"), None),
        (Method::GET, format!("{base}/audit"), None),
        (Method::DELETE, base, None),
    ]
}

/// What another user could change or learn: the connection as its owner reads it, and its token.
async fn owners_view(app: &TestApp, owner: &Caller, handle: &str) -> (Value, Value) {
    let (status, connection) = app.api(owner, Method::GET, &format!("/api/v1/connections/{handle}"), None).await;
    assert_eq!(status, 200, "{connection}");
    let (status, token) = app.token(owner, handle).await;
    assert_eq!(status, 200, "{token}");
    (connection, token)
}

#[tokio::test]
async fn one_users_key_never_reaches_another_users_connections() {
    let app = spawn_app().await;
    let alices_provider = MockProvider::start("client-1", "a-secret").await;
    let bobs_provider = MockProvider::start("client-1", "b-secret").await;
    let alice = app.caller("alice", None).await;
    let bob = app.caller("bob", None).await;
    app.connect(&alice, "shared", &alices_provider, "a-secret").await;
    app.connect(&bob, "shared", &bobs_provider, "b-secret").await;
    app.connect(&bob, "bobs-crm", &bobs_provider, "b-secret").await;
    let before = (owners_view(&app, &bob, "shared").await, owners_view(&app, &bob, "bobs-crm").await);
    let bobs_calls = bobs_provider.token_calls().len();

    // Alice's list and her "shared" are hers alone.
    let (status, list) = app.api(&alice, Method::GET, "/api/v1/connections", None).await;
    assert_eq!(status, 200);
    let handles: Vec<&str> =
        list["connections"].as_array().expect("list").iter().filter_map(|c| c["handle"].as_str()).collect();
    assert_eq!(handles, ["shared"], "{list}");
    let (_, token) = app.token(&alice, "shared").await;
    assert!(token["token"].as_str().is_some_and(|t| t.contains(&alices_provider.tag())), "{token}");

    let unknown = handle_endpoints("nobody-has-it");
    for ((method, path, body), (_, unknown_path, _)) in handle_endpoints("bobs-crm").into_iter().zip(unknown) {
        let (status, answer) = app.api(&alice, method.clone(), &path, body.clone()).await;
        assert_eq!(status, 404, "{method} {path}: {answer}");
        assert_eq!(answer["code"], "not_found", "{method} {path}: {answer}");
        // Exactly what a handle nobody has gets: the answer does not tell that the handle exists.
        let (_, baseline) = app.api(&alice, method.clone(), &unknown_path, body).await;
        assert_eq!(answer.to_string().replace("bobs-crm", "nobody-has-it"), baseline.to_string(), "{method} {path}");
    }

    let after = (owners_view(&app, &bob, "shared").await, owners_view(&app, &bob, "bobs-crm").await);
    assert_eq!(after, before, "Bob's connections and tokens are as they were");
    assert_eq!(bobs_provider.token_calls().len(), bobs_calls, "no refresh was made for Alice");

    // Bob's API keys are out of reach too: not listed, not revocable.
    let bobs_key = app.state.store.list_api_keys(&bob.user.id).await.expect("keys")[0].id.to_string();
    let (status, keys) = app.api(&alice, Method::GET, "/api/v1/api-keys", None).await;
    assert_eq!(status, 200, "{keys}");
    assert!(!keys.to_string().contains(&bobs_key), "{keys}");
    let (status, answer) = app.api(&alice, Method::DELETE, &format!("/api/v1/api-keys/{bobs_key}"), None).await;
    assert_eq!(status, 404, "{answer}");
    assert_eq!(app.token(&bob, "bobs-crm").await.0, 200, "Bob's key still works");

    // Alice's audit records show her own refused attempts, nothing that Bob did. Token reads are written in
    // batches: once Bob's last read shows in his log, every earlier read of both is written too.
    let bobs_records = async || {
        let (_, audit) = app.api(&bob, Method::GET, "/api/v1/connections/bobs-crm/audit", None).await;
        audit["records"].as_array().map_or(0, |r| r.iter().filter(|r| r["action"] == "token_read").count())
    };
    wait_for("Bob's token reads to be written", async || bobs_records().await >= 3).await;
    let (status, audit) = app.api(&alice, Method::GET, "/api/v1/audit", None).await;
    assert_eq!(status, 200, "{audit}");
    let records = audit["records"].as_array().expect("records");
    for record in records {
        let foreign = record["handle"] == "bobs-crm" && record["outcome"] != "not_found";
        assert!(!foreign && record["action"] != "connection_delete", "{record}");
    }
    let own_reads = records.iter().filter(|r| r["action"] == "token_read" && r["outcome"] == "ok").count();
    assert_eq!(own_reads, 1, "Alice's one successful read, and no read of Bob's: {audit}");
    assert!(records.iter().any(|r| r["handle"] == "bobs-crm" && r["outcome"] == "not_found"), "{audit}");
    app.stop().await;
}

#[tokio::test]
async fn a_key_limited_to_some_handles_reaches_no_others() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "cs").await;
    let full = app.caller("carol", None).await;
    app.connect(&full, "allowed", &provider, "cs").await;
    app.connect(&full, "private", &provider, "cs").await;
    let now = app.clock.now();
    let handles = Some(vec![latchkey_core::Handle::parse("allowed").expect("handle")]);
    let (_, key) = latchkey_server::service::api_keys::create(app.state.store.as_ref(), &full.user, "ci", handles, now)
        .await
        .expect("limited key");
    let limited = Caller { user: full.user.clone(), key: key.expose().to_owned() };
    let before = owners_view(&app, &full, "private").await;
    let calls = provider.token_calls().len();

    let (_, list) = app.api(&limited, Method::GET, "/api/v1/connections", None).await;
    let handles: Vec<&str> =
        list["connections"].as_array().expect("list").iter().filter_map(|c| c["handle"].as_str()).collect();
    assert_eq!(handles, ["allowed"], "{list}");
    assert_eq!(app.token(&limited, "allowed").await.0, 200);
    for (method, path, body) in handle_endpoints("private") {
        let (status, answer) = app.api(&limited, method.clone(), &path, body).await;
        // 403 whether or not the handle exists: a limited key learns nothing about handles outside its list.
        assert_eq!(status, 403, "{method} {path}: {answer}");
        assert!(answer["error"].as_str().is_some_and(|e| !e.is_empty()), "{method} {path}: {answer}");
    }
    // A new connection under another handle is refused too.
    let body = TestApp::connection_body("sneaky", &provider, "cs");
    let (status, answer) = app.api(&limited, Method::POST, "/api/v1/connections", Some(body)).await;
    assert_eq!(status, 403, "a limited key creates nothing: {answer}");
    assert_eq!(owners_view(&app, &full, "private").await, before);
    assert_eq!(provider.token_calls().len(), calls, "no provider call for the refused requests");
    app.stop().await;
}

#[tokio::test]
async fn a_key_counts_only_in_the_authorization_header_and_only_until_revoked_or_expired() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "cs").await;
    let dave = app.caller("dave", None).await;
    app.connect(&dave, "crm", &provider, "cs").await;

    for name in ["api_key", "access_token", "key", "token", "apikey"] {
        let url = app.url(&format!("/api/v1/connections/crm/token?{name}={}", dave.key));
        let response = app.http.get(url).send().await.expect("request");
        assert_eq!(response.status().as_u16(), 401, "key in ?{name}=");
        let text = response.text().await.expect("body");
        assert!(!text.contains(&dave.key), "the key is not echoed: {text}");
    }
    let other_header = app.http.get(app.url("/api/v1/connections")).header("x-api-key", &dave.key).send().await;
    assert_eq!(other_header.expect("request").status().as_u16(), 401, "only Authorization counts");
    let basic = app.http.get(app.url("/api/v1/connections")).basic_auth(&dave.key, Some("")).send().await;
    assert_eq!(basic.expect("request").status().as_u16(), 401, "only the Bearer scheme counts");

    assert_eq!(app.token(&dave, "crm").await.0, 200);
    let key_id = app.state.store.list_api_keys(&dave.user.id).await.expect("keys")[0].id.clone();
    assert!(app.state.store.revoke_api_key(&dave.user.id, &key_id, app.clock.now()).await.expect("revoke"));
    for (method, path, body) in handle_endpoints("crm") {
        let (status, answer) = app.api(&dave, method.clone(), &path, body).await;
        assert_eq!(status, 401, "{method} {path}: {answer}");
    }
    let (status, _) = app.api(&dave, Method::GET, "/api/v1/connections", None).await;
    assert_eq!(status, 401);
    let connections = app.state.store.list_connections(&dave.user.id).await.expect("connections");
    assert_eq!(connections.len(), 1, "a revoked key deleted nothing");

    // A key given a lifetime works until it ends, and not a second longer.
    let now = app.clock.now();
    let (_, key) = latchkey_server::service::api_keys::create_expiring(
        app.state.store.as_ref(),
        &dave.user,
        "short-lived",
        None,
        Some(now.plus_secs(60)),
        now,
    )
    .await
    .expect("expiring key");
    let expiring = Caller { user: dave.user.clone(), key: key.expose().to_owned() };
    assert_eq!(app.token(&expiring, "crm").await.0, 200);
    app.clock.advance(61);
    for (method, path, body) in handle_endpoints("crm") {
        let (status, answer) = app.api(&expiring, method.clone(), &path, body).await;
        assert_eq!(status, 401, "{method} {path}: {answer}");
    }
    let connections = app.state.store.list_connections(&dave.user.id).await.expect("connections");
    assert_eq!(connections.len(), 1, "an expired key deleted nothing");
    app.stop().await;
}
