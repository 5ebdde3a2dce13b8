//! The grants without a browser: client credentials (RFC 6749 §4.4) and device authorization (RFC 8628),
//! against the mock provider on loopback.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use latchkey_core::Clock as _;

use crate::helpers::{Caller, TestApp, secret, spawn_app, wait_for};
use crate::provider::{Canned, MockProvider};

fn client_credentials_body(handle: &str, provider: &MockProvider, client_secret: &str) -> Value {
    json!({
        "handle": handle,
        "grant_type": "client_credentials",
        "token_url": provider.token_url(),
        "client_id": "client-1",
        "client_secret": client_secret,
        "scopes": "read write",
        "token_params": {"audience": "https://api.example"},
    })
}

async fn create(app: &TestApp, caller: &Caller, body: Value) -> Value {
    let (status, answer) = app.api(caller, Method::POST, "/api/v1/connections", Some(body)).await;
    assert_eq!(status, 201, "{answer}");
    answer
}

#[tokio::test]
async fn client_credentials_fetch_the_token_on_first_use_without_a_browser() {
    let app = spawn_app().await;
    let client_secret = secret("cc");
    let provider = MockProvider::start("client-1", &client_secret).await;
    let alice = app.caller("alice", None).await;

    let answer = create(&app, &alice, client_credentials_body("machine", &provider, &client_secret)).await;
    assert!(answer.get("authorization_link").is_none(), "no browser step: {answer}");
    assert!(answer.get("device").is_none(), "{answer}");
    assert_eq!(answer["connection"]["status"], "pending");
    assert_eq!(answer["connection"]["grant_type"], "client_credentials");
    assert!(provider.token_calls().is_empty(), "nothing is fetched before the first token request");

    let (status, body) = app.token(&alice, "machine").await;
    assert_eq!(status, 200, "{body}");
    let calls = provider.token_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].param("grant_type"), Some("client_credentials"));
    assert_eq!(calls[0].param("scope"), Some("read write"));
    assert_eq!(calls[0].param("audience"), Some("https://api.example"));
    assert_eq!(calls[0].param("client_secret"), Some(client_secret.as_str()));
    assert!(body["token"].as_str().is_some_and(|t| t.starts_with("at-")), "{body}");

    let (_, read) = app.api(&alice, Method::GET, "/api/v1/connections/machine", None).await;
    assert_eq!(read["connection"]["status"], "connected");
    assert_eq!(read["connection"]["has_refresh_token"], false);

    // Served from storage while fresh.
    let (status, again) = app.token(&alice, "machine").await;
    assert_eq!((status, &again["token"]), (200, &body["token"]));
    assert_eq!(provider.token_calls().len(), 1);

    // Nothing to authorize.
    let (status, refused) = app.api(&alice, Method::POST, "/api/v1/connections/machine/authorize", None).await;
    assert_eq!(status, 400, "{refused}");
    assert!(refused["error"].as_str().is_some_and(|e| e.contains("nothing to authorize")), "{refused}");
}

#[tokio::test]
async fn client_credentials_are_requested_again_when_the_token_is_due() {
    let app = spawn_app().await;
    let client_secret = secret("cc");
    let provider = MockProvider::start("client-1", &client_secret).await;
    let alice = app.caller("alice", None).await;
    create(&app, &alice, client_credentials_body("machine", &provider, &client_secret)).await;
    let (_, first) = app.token(&alice, "machine").await;

    app.clock.advance(3590);
    let (status, second) = app.token(&alice, "machine").await;
    assert_eq!(status, 200, "{second}");
    assert_ne!(first["token"], second["token"], "a new token once the old one is due");
    let calls = provider.token_calls();
    assert_eq!(calls.len(), 2);
    assert!(calls.iter().all(|c| c.param("grant_type") == Some("client_credentials")), "never a refresh grant");

    // forced
    let (status, third) =
        app.api(&alice, Method::GET, "/api/v1/connections/machine/token?force_refresh=true", None).await;
    assert_eq!(status, 200, "{third}");
    assert_ne!(third["token"], second["token"]);
    assert_eq!(provider.token_calls().len(), 3);
}

#[tokio::test]
async fn the_background_refresher_keeps_client_credentials_fresh() {
    let app = crate::helpers::spawn_with(crate::helpers::Options {
        refresher_interval: Duration::from_millis(50),
        ..crate::helpers::Options::default()
    })
    .await;
    let client_secret = secret("cc");
    let provider = MockProvider::start("client-1", &client_secret).await;
    let alice = app.caller("alice", None).await;
    create(&app, &alice, client_credentials_body("machine", &provider, &client_secret)).await;
    app.token(&alice, "machine").await;
    assert_eq!(provider.token_calls().len(), 1);

    app.clock.advance(3590);
    wait_for("the refresher to fetch a new token", async || provider.token_calls().len() == 2).await;
}

#[tokio::test]
async fn fifty_concurrent_requests_at_expiry_make_one_client_credentials_call() {
    let app = spawn_app().await;
    let client_secret = secret("cc");
    let provider = MockProvider::start("client-1", &client_secret).await;
    let alice = app.caller("alice", None).await;
    create(&app, &alice, client_credentials_body("machine", &provider, &client_secret)).await;
    app.token(&alice, "machine").await;
    app.clock.advance(3600);

    provider.hold_refreshes(true);
    let requests: Vec<_> = (0..50)
        .map(|_| {
            let client = app.http.clone();
            let url = app.url("/api/v1/connections/machine/token");
            let key = alice.key.clone();
            tokio::spawn(async move {
                let response = client.get(url).bearer_auth(key).send().await.expect("request");
                (response.status().as_u16(), response.json::<Value>().await.expect("json"))
            })
        })
        .collect();
    tokio::time::timeout(Duration::from_secs(10), provider.refresh_arrived()).await.expect("a token request arrives");
    // Let the others pile up behind the one in flight.
    tokio::time::sleep(Duration::from_millis(200)).await;
    provider.release();
    let mut tokens = std::collections::HashSet::new();
    for request in requests {
        let (status, body) = request.await.expect("task");
        assert_eq!(status, 200, "{body}");
        tokens.insert(body["token"].as_str().expect("token").to_owned());
    }
    assert_eq!(provider.token_calls().len(), 2, "the first fetch and exactly one more");
    assert_eq!(tokens.len(), 1, "all fifty got the same new token");
}

#[tokio::test]
async fn refused_client_credentials_ask_for_new_credentials() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "the-right-secret").await;
    let alice = app.caller("alice", None).await;
    create(&app, &alice, client_credentials_body("machine", &provider, "a-wrong-secret")).await;

    let (status, body) = app.token(&alice, "machine").await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "needs_reauth", "{body}");
    let message = body["error"].as_str().expect("message");
    assert!(message.contains("invalid_client") && message.contains("client ID and secret"), "{message}");
    assert!(!message.contains("a-wrong-secret"), "{message}");
    let (_, read) = app.api(&alice, Method::GET, "/api/v1/connections/machine", None).await;
    assert_eq!(read["connection"]["status"], "needs_reauth");

    // Fixing the secret is the reconnect: the next token request tries again.
    let (status, edited) = app
        .api(&alice, Method::PATCH, "/api/v1/connections/machine", Some(json!({"client_secret": "the-right-secret"})))
        .await;
    assert_eq!(status, 200, "{edited}");
    assert_eq!(edited["connection"]["status"], "pending");
    let (status, body) = app.token(&alice, "machine").await;
    assert_eq!(status, 200, "{body}");
}

fn device_body(handle: &str, provider: &MockProvider, client_secret: &str) -> Value {
    json!({
        "handle": handle,
        "grant_type": "device_code",
        "token_url": provider.token_url(),
        "device_authorization_url": provider.device_authorization_url(),
        "client_id": "client-1",
        "client_secret": client_secret,
        "scopes": "read",
    })
}

fn device_polls(provider: &MockProvider) -> usize {
    provider
        .token_calls()
        .iter()
        .filter(|c| c.param("grant_type") == Some("urn:ietf:params:oauth:grant-type:device_code"))
        .count()
}

/// Waits until the poller has acted on its last poll of `handle`: the flow is gone or its next poll lies ahead.
async fn settled(app: &TestApp, caller: &Caller, handle: &str) {
    let handle = latchkey_core::Handle::parse(handle).expect("handle");
    wait_for("the poller to reschedule", async || {
        let store = &app.state.store;
        let connection = store.connection(&caller.user.id, &handle).await.expect("read").expect("exists");
        let flow = store.device_flow(&connection.id).await.expect("read");
        flow.is_none_or(|f| f.next_poll_at > app.clock.now())
    })
    .await;
}

/// Advances the clock by `secs`, waits until the poller has made `polls` polls in all and has acted on the last.
async fn poll_after(app: &TestApp, caller: &Caller, provider: &MockProvider, secs: i64, polls: usize) {
    app.clock.advance(secs);
    wait_for(&format!("device poll {polls}"), async || device_polls(provider) >= polls).await;
    settled(app, caller, "tv").await;
}

async fn status_of(app: &TestApp, caller: &Caller, handle: &str) -> Value {
    let (_, read) = app.api(caller, Method::GET, &format!("/api/v1/connections/{handle}"), None).await;
    read["connection"].clone()
}

#[tokio::test]
async fn device_authorization_polls_until_approved_and_slows_down_when_asked() {
    let app = spawn_app().await;
    let client_secret = secret("device");
    let provider = MockProvider::start("client-1", &client_secret).await;
    let alice = app.caller("alice", None).await;

    let answer = create(&app, &alice, device_body("tv", &provider, &client_secret)).await;
    assert!(answer.get("authorization_link").is_none(), "{answer}");
    let device = &answer["device"];
    assert_eq!(device["user_code"], "WDJB-MJHT");
    assert_eq!(device["verification_uri"], "https://provider.example/device");
    assert_eq!(device["verification_uri_complete"], Value::Null);
    assert_eq!(device["interval"], 1);
    assert!(device["expires_at"].as_str().is_some_and(|t| t.ends_with('Z')), "{device}");
    assert!(!answer.to_string().contains(&provider.device_code()), "the device code is never shown");
    assert_eq!(answer["connection"]["status"], "pending");

    // The GET view shows the pending device information for the UI.
    let read = status_of(&app, &alice, "tv").await;
    assert_eq!(read["device"]["user_code"], "WDJB-MJHT");
    assert!(!read.to_string().contains(&provider.device_code()));

    provider.push_canned(Canned::json(400, json!({"error": "authorization_pending"})));
    provider.push_canned(Canned::json(400, json!({"error": "authorization_pending"})));
    provider.push_canned(Canned::json(400, json!({"error": "slow_down"})));
    poll_after(&app, &alice, &provider, 1, 1).await;
    poll_after(&app, &alice, &provider, 1, 2).await;
    poll_after(&app, &alice, &provider, 1, 3).await;
    // After slow_down the interval is 1 + 5 s: a second later nothing is asked yet.
    app.clock.advance(1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(device_polls(&provider), 3, "no poll before the longer interval has passed");
    let (_, listed) = app.api(&alice, Method::GET, "/api/v1/connections", None).await;
    assert_eq!(listed["connections"][0]["device"]["interval"], 6, "{listed}");
    poll_after(&app, &alice, &provider, 5, 4).await;

    wait_for("the connection to be connected", async || status_of(&app, &alice, "tv").await["status"] == "connected")
        .await;
    let read = status_of(&app, &alice, "tv").await;
    assert!(read.get("device").is_none(), "no device info once connected: {read}");
    let (status, body) = app.token(&alice, "tv").await;
    assert_eq!(status, 200, "{body}");
    assert!(body["token"].as_str().is_some_and(|t| t.starts_with("at-")));

    let polls = provider.token_calls();
    let polls: Vec<_> = polls
        .iter()
        .filter(|c| c.param("grant_type") == Some("urn:ietf:params:oauth:grant-type:device_code"))
        .collect();
    assert!(polls.iter().all(|c| c.param("device_code") == Some(provider.device_code().as_str())));
    // Polling stopped after success.
    app.clock.advance(60);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(device_polls(&provider), 4, "no poll after success");
}

#[tokio::test]
async fn a_denied_device_authorization_leaves_the_connection_pending_with_the_reason() {
    let app = spawn_app().await;
    let client_secret = secret("device");
    let provider = MockProvider::start("client-1", &client_secret).await;
    let alice = app.caller("alice", None).await;
    create(&app, &alice, device_body("tv", &provider, &client_secret)).await;

    provider.push_canned(Canned::json(400, json!({"error": "access_denied"})));
    poll_after(&app, &alice, &provider, 1, 1).await;
    let failed =
        async |word: &str| status_of(&app, &alice, "tv").await["last_error"].as_str().is_some_and(|e| e.contains(word));
    wait_for("the connection to fail", async || failed("denied").await).await;
    assert_eq!(status_of(&app, &alice, "tv").await["status"], "pending", "a failed authorization revives nothing");
    app.clock.advance(60);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(device_polls(&provider), 1, "polling stopped");

    // Starting again asks the provider for a new code.
    let (status, again) = app.api(&alice, Method::POST, "/api/v1/connections/tv/authorize", None).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["device"]["user_code"], "WDJB-MJHT");
}

#[tokio::test]
async fn an_expired_device_code_leaves_the_connection_pending_with_the_reason() {
    let app = spawn_app().await;
    let client_secret = secret("device");
    let provider = MockProvider::start("client-1", &client_secret).await;
    let alice = app.caller("alice", None).await;
    create(&app, &alice, device_body("tv", &provider, &client_secret)).await;

    provider.push_canned(Canned::json(400, json!({"error": "expired_token"})));
    poll_after(&app, &alice, &provider, 1, 1).await;
    let failed = async |handle: &str| {
        status_of(&app, &alice, handle).await["last_error"].as_str().is_some_and(|e| e.contains("expired"))
    };
    wait_for("the connection to fail", async || failed("tv").await).await;
    assert_eq!(status_of(&app, &alice, "tv").await["status"], "pending");

    // A code past its own expiry is not polled at all.
    create(&app, &alice, device_body("radio", &provider, &client_secret)).await;
    app.clock.advance(601);
    wait_for("the second connection to fail", async || failed("radio").await).await;
    assert_eq!(device_polls(&provider), 1, "the expired code was not sent");
}

#[tokio::test]
async fn device_polling_goes_on_after_a_restart() {
    let app = spawn_app().await;
    let client_secret = secret("device");
    let provider = MockProvider::start("client-1", &client_secret).await;
    let alice = app.caller("alice", None).await;
    create(&app, &alice, device_body("tv", &provider, &client_secret)).await;
    let dir = app.stop().await;

    let app =
        crate::helpers::spawn_with(crate::helpers::Options { dir: Some(dir), ..crate::helpers::Options::default() })
            .await;
    app.clock.advance(2);
    wait_for("the restarted server to finish the device flow", async || {
        status_of(&app, &alice, "tv").await["status"] == "connected"
    })
    .await;
    assert_eq!(device_polls(&provider), 1);
    let (status, body) = app.token(&alice, "tv").await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn the_openapi_document_describes_the_device_object() {
    let app = spawn_app().await;
    let document: Value =
        app.http.get(app.url("/api/v1/openapi.json")).send().await.expect("openapi").json().await.expect("json");
    let schemas = &document["components"]["schemas"];
    let envelope = &schemas["AuthorizingEnvelope"]["properties"];
    assert!(envelope.get("device").is_some(), "{envelope}");
    let device = &schemas["DeviceView"]["properties"];
    for field in ["user_code", "verification_uri", "verification_uri_complete", "expires_at", "interval"] {
        assert!(device.get(field).is_some(), "DeviceView lacks {field}: {document}");
    }
}
