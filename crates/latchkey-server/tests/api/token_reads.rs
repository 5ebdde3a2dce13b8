//! Token reads under pressure: one user's hanging provider holds no capacity that another user's reads need, and
//! no key can make latchkey call a provider that asked for a pause.

use std::time::Duration;

use latchkey_core::model::{FailureWrite, Status};
use latchkey_core::{Clock, Handle};
use serde_json::Value;

use crate::helpers::{Caller, TestApp, spawn_app, wait_for};
use crate::provider::{Canned, MockProvider};

/// More concurrent reads than the audit buffer of the first release had places (1024).
const FLOOD: usize = 1100;

async fn connection_id(app: &TestApp, caller: &Caller, handle: &str) -> latchkey_core::model::ConnectionId {
    let handle = Handle::parse(handle).expect("handle");
    app.state.store.connection(&caller.user.id, &handle).await.expect("read").expect("exists").id
}

/// Sends a token request; returns the status, the `Retry-After` header and the body.
async fn token_request(app: &TestApp, key: &str, path: &str) -> (u16, Option<String>, Value) {
    let response = app.http.get(app.url(path)).bearer_auth(key).send().await.expect("request");
    let status = response.status().as_u16();
    let retry_after = response.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
    (status, retry_after, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_users_hanging_provider_never_makes_another_users_token_reads_fail() {
    let app = spawn_app().await;
    let slow = MockProvider::start("client-1", "s").await;
    let fine = MockProvider::start("client-1", "s2").await;
    let mallory = app.caller("mallory", None).await;
    let second_key = app.limited_key(&mallory, &["crm"]).await;
    let alice = app.caller("alice", None).await;
    app.connect(&mallory, "crm", &slow, "s").await;
    app.connect(&alice, "crm", &fine, "s2").await;
    let id = connection_id(&app, &mallory, "crm").await;

    slow.hold_refreshes(true);
    let flood: Vec<_> = (0..FLOOD)
        .map(|i| {
            let client = app.http.clone();
            let url = app.url("/api/v1/connections/crm/token?force_refresh=true");
            let key = if i % 2 == 0 { mallory.key.clone() } else { second_key.key.clone() };
            tokio::spawn(async move {
                let response = client.get(url).bearer_auth(key).send().await.expect("request");
                let status = response.status().as_u16();
                (status, response.text().await.unwrap_or_default())
            })
        })
        .collect();
    // Every one of them is inside its token read, waiting on the provider.
    wait_for("every flooding read to wait on the provider", async || app.state.tokens.refresh_waiters(&id) >= FLOOD)
        .await;

    let (status, _, body) = token_request(&app, &alice.key, "/api/v1/connections/crm/token").await;
    assert_eq!(status, 200, "another user's read is served while the flood waits: {body}");
    let (status, _, body) = token_request(&app, &alice.key, "/api/v1/connections/crm/token?force_refresh=true").await;
    assert_eq!(status, 200, "and so is another user's refresh: {body}");

    slow.release();
    for request in flood {
        let (status, body) = tokio::time::timeout(Duration::from_secs(60), request).await.expect("ends").expect("task");
        assert!(
            status == 200 || (status == 503 && body.contains("audit log unavailable")),
            "a flooding read ends with its token or a 503 of its own: {status} {body}"
        );
    }
    assert_eq!(slow.refresh_calls().len(), 1, "one provider call for the whole flood");
    app.stop().await;
}

#[tokio::test]
async fn a_forced_refresh_waits_out_the_providers_pause() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    app.connect(&alice, "crm", &provider, "s").await;
    let forced = "/api/v1/connections/crm/token?force_refresh=true";

    provider.push_canned(Canned::too_many_requests(120));
    let (status, _, body) = token_request(&app, &alice.key, forced).await;
    assert_eq!(status, 502, "the provider asked for a pause: {body}");
    assert_eq!(provider.refresh_calls().len(), 1);

    for _ in 0..5 {
        let (status, retry_after, body) = token_request(&app, &alice.key, forced).await;
        assert_eq!(status, 429, "{body}");
        let wait: u64 = retry_after.expect("Retry-After").parse().expect("seconds");
        assert!((1..=120).contains(&wait), "{wait}");
        assert!(body["error"].as_str().unwrap_or_default().contains("'crm'"), "{body}");
    }
    assert_eq!(app.token(&alice, "crm").await.0, 200, "the stored token is still served");
    assert_eq!(provider.refresh_calls().len(), 1, "no forced request reached the provider during its pause");

    app.clock.advance(121);
    let (status, _, body) = token_request(&app, &alice.key, forced).await;
    assert_eq!(status, 200, "after the pause a forced refresh goes through: {body}");
    assert_eq!(provider.refresh_calls().len(), 2);
    app.stop().await;
}

#[tokio::test]
async fn a_forced_refresh_of_a_connection_whose_refreshes_stopped_calls_nobody() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    app.connect(&alice, "crm", &provider, "s").await;
    let id = connection_id(&app, &alice, "crm").await;
    // As the refresher leaves a connection after five permanent failures in a row.
    let failure = FailureWrite {
        status: Status::Error,
        last_error: "the token endpoint answered 400 invalid_request".to_owned(),
        failure_count: 5,
        retry_after: None,
        now: app.clock.now(),
    };
    app.state.store.record_failure(&id, &failure).await.expect("record_failure");
    app.state.store.stop_refreshing(&id).await.expect("stop_refreshing");

    let (status, _, body) = token_request(&app, &alice.key, "/api/v1/connections/crm/token?force_refresh=true").await;
    assert_eq!(status, 200, "the still-valid token: {body}");
    app.clock.advance(7200);
    let (status, _, body) = token_request(&app, &alice.key, "/api/v1/connections/crm/token?force_refresh=true").await;
    assert_eq!(status, 502, "{body}");
    assert!(body["error"].as_str().unwrap_or_default().contains("invalid_request"), "{body}");
    assert!(provider.refresh_calls().is_empty(), "the provider was not asked again");
    app.stop().await;
}
