//! The device poller respects the poll lease: a flow that another replica is polling is left alone, however
//! due it is, until that replica reschedules it or its lease runs out.

use std::sync::Arc;

use latchkey_core::model::ConnectionId;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Caller, Options, TestApp, spawn_app, spawn_with, wait_for};
use crate::provider::MockProvider;

fn device_body(handle: &str, provider: &MockProvider) -> Value {
    json!({
        "handle": handle, "grant_type": "device_code", "token_url": provider.token_url(),
        "device_authorization_url": provider.device_authorization_url(), "client_id": "client-1",
        "client_secret": "cs", "scopes": "read",
    })
}

fn device_polls(provider: &MockProvider) -> usize {
    let grant = Some("urn:ietf:params:oauth:grant-type:device_code");
    provider.token_calls().iter().filter(|c| c.param("grant_type") == grant).count()
}

async fn status(app: &TestApp, caller: &Caller, handle: &str) -> Value {
    let (_, read) = app.api(caller, Method::GET, &format!("/api/v1/connections/{handle}"), None).await;
    read["connection"]["status"].clone()
}

async fn connection_id(app: &TestApp, caller: &Caller, handle: &str) -> ConnectionId {
    let handle = latchkey_core::Handle::parse(handle).expect("handle");
    app.state.store.connection(&caller.user.id, &handle).await.expect("read").expect("exists").id
}

#[tokio::test]
async fn a_device_flow_leased_by_another_replica_is_not_polled_until_the_lease_ends() {
    let app = spawn_app().await;
    let leased_provider = MockProvider::start("client-1", "cs").await;
    let free_provider = MockProvider::start("client-1", "cs").await;
    let alice = app.caller("alice", None).await;
    for (handle, provider) in [("leased", &leased_provider), ("free", &free_provider)] {
        let (code, answer) =
            app.api(&alice, Method::POST, "/api/v1/connections", Some(device_body(handle, provider))).await;
        assert_eq!(code, 201, "{answer}");
    }
    let leased = connection_id(&app, &alice, "leased").await;
    let free = connection_id(&app, &alice, "free").await;
    let store = Arc::clone(&app.state.store);
    let data = app.stop().await;

    // Another replica takes the lease of "leased" for five minutes once it is due; "free" is due a second later, so a
    // poller that ignored the lease would reach "leased" first.
    let flow = store.device_flow(&leased).await.expect("read").expect("flow");
    let at = flow.next_poll_at;
    assert!(store.claim_device_poll(&leased, "another-replica", at, at.plus_secs(300)).await.expect("claim"));
    let other = store.device_flow(&free).await.expect("read").expect("flow");
    store.reschedule_device_flow(&free, other.interval_secs, at.plus_secs(1)).await.expect("reschedule");
    drop(store);

    let app = spawn_with(Options { dir: Some(data), ..Options::default() }).await;
    app.clock.advance(5);
    wait_for("the free flow to be approved", async || status(&app, &alice, "free").await == "connected").await;
    assert_eq!(device_polls(&free_provider), 1);
    assert_eq!(device_polls(&leased_provider), 0, "the leased flow was polled behind its holder's back");
    assert_eq!(status(&app, &alice, "leased").await, "pending");

    // The holder died: once its lease has run out, this replica takes over.
    app.clock.advance(300);
    wait_for("the leased flow to be taken over", async || status(&app, &alice, "leased").await == "connected").await;
    assert_eq!(device_polls(&leased_provider), 1);
    app.stop().await;
}
