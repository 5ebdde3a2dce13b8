//! One user's hanging endpoints do not hold up anybody else's background work: while a user's webhook receiver
//! or provider holds every request it gets (and never answers until the test lets go), another user's webhook
//! event, device poll and background refresh still go out. And a user's outbox of undelivered events is bounded.
//!
//! The hanging side never answers by itself, so the other user's work can only arrive because it did not queue
//! behind it (before, it waited for the 30 s request timeout of every request ahead of it). Each test lets the
//! hanging side go before it ends.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use latchkey_core::Clock;
use latchkey_core::model::{FailureWrite, Status};
use latchkey_core::webhook::DeliveryState;
use latchkey_server::tokens::RefreshTuning;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::helpers::{Caller, Options, TestApp, spawn_app, spawn_with, wait_for};
use crate::provider::MockProvider;

/// A webhook receiver on 127.0.0.1 that records each delivery and, while closed, holds it without answering.
struct Hook {
    url: String,
    inner: Arc<HookInner>,
}

struct HookInner {
    bodies: Mutex<Vec<String>>,
    held: AtomicUsize,
    open: watch::Sender<bool>,
}

/// Counts a delivery as held while its request lives.
struct Holding(Arc<HookInner>);

impl Drop for Holding {
    fn drop(&mut self) {
        self.0.held.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Hook {
    /// A receiver that answers 200 at once (`open`) or holds every delivery until [`Hook::release`].
    async fn start(open: bool) -> Self {
        let inner =
            Arc::new(HookInner { bodies: Mutex::default(), held: AtomicUsize::new(0), open: watch::Sender::new(open) });
        let app = Router::new().route("/hook", post(receive)).with_state(Arc::clone(&inner));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move { axum::serve(listener, app).await.expect("receiver") });
        Self { url: format!("http://127.0.0.1:{port}/hook"), inner }
    }

    fn bodies(&self) -> Vec<Value> {
        let bodies = self.inner.bodies.lock().expect("bodies").clone();
        bodies.iter().map(|b| serde_json::from_str(b).expect("JSON")).collect()
    }

    fn held(&self) -> usize {
        self.inner.held.load(Ordering::SeqCst)
    }

    /// Answers the held deliveries and every later one.
    fn release(&self) {
        self.inner.open.send_replace(true);
    }
}

async fn receive(State(inner): State<Arc<HookInner>>, body: String) -> StatusCode {
    inner.bodies.lock().expect("bodies").push(body);
    let mut open = inner.open.subscribe();
    if !*open.borrow_and_update() {
        inner.held.fetch_add(1, Ordering::SeqCst);
        let _holding = Holding(Arc::clone(&inner));
        let _ = open.wait_for(|open| *open).await;
    }
    StatusCode::OK
}

async fn set_webhook(app: &TestApp, caller: &Caller, url: &str) {
    let (status, body) = app.api(caller, Method::PUT, "/api/v1/webhook", Some(json!({ "url": url }))).await;
    assert_eq!(status, 200, "{body}");
}

fn handles(bodies: &[Value]) -> Vec<String> {
    bodies.iter().map(|b| b["connection"]["handle"].as_str().unwrap_or_default().to_owned()).collect()
}

#[tokio::test]
async fn a_hanging_webhook_receiver_does_not_delay_another_users_event() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "s").await;
    let hanging = Hook::start(false).await;
    let alice = app.caller("alice", None).await;
    set_webhook(&app, &alice, &hanging.url).await;
    for n in 0..3 {
        app.connect(&alice, &format!("alice-{n}"), &provider, "s").await;
    }
    wait_for("alice's receiver to hold her first event", async || hanging.held() >= 1).await;

    let answering = Hook::start(true).await;
    let bob = app.caller("bob", None).await;
    set_webhook(&app, &bob, &answering.url).await;
    app.connect(&bob, "bob-crm", &provider, "s").await;
    wait_for("bob's event while alice's receiver hangs", async || handles(&answering.bodies()) == ["bob-crm"]).await;
    assert!(hanging.held() <= 1, "one event of a user in flight at a time");
    assert_eq!(handles(&hanging.bodies()), ["alice-0"], "alice's later events wait behind her first");

    hanging.release();
    wait_for("alice's events, in order", async || hanging.bodies().len() >= 3).await;
    assert_eq!(handles(&hanging.bodies())[..3], ["alice-0", "alice-1", "alice-2"], "{:#?}", hanging.bodies());
    app.stop().await;
}

fn device_body(handle: &str, provider: &MockProvider) -> Value {
    json!({
        "handle": handle, "grant_type": "device_code", "token_url": provider.token_url(),
        "device_authorization_url": provider.device_authorization_url(), "client_id": "client-1",
        "client_secret": "cs", "scopes": "read",
    })
}

async fn status(app: &TestApp, caller: &Caller, handle: &str) -> Value {
    let (_, read) = app.api(caller, Method::GET, &format!("/api/v1/connections/{handle}"), None).await;
    read["connection"]["status"].clone()
}

#[tokio::test]
async fn a_hanging_token_endpoint_does_not_delay_another_users_device_poll() {
    let app = spawn_app().await;
    let hanging = MockProvider::start("client-1", "cs").await;
    hanging.hold_device_polls(true);
    let alice = app.caller("alice", None).await;
    for n in 0..3 {
        let body = device_body(&format!("alice-{n}"), &hanging);
        let (code, answer) = app.api(&alice, Method::POST, "/api/v1/connections", Some(body)).await;
        assert_eq!(code, 201, "{answer}");
    }
    app.clock.advance(2);
    wait_for("alice's polls to hang", async || hanging.held() >= 1).await;

    let answering = MockProvider::start("client-1", "cs").await;
    let bob = app.caller("bob", None).await;
    let (code, answer) = app.api(&bob, Method::POST, "/api/v1/connections", Some(device_body("tv", &answering))).await;
    assert_eq!(code, 201, "{answer}");
    app.clock.advance(2);
    wait_for("bob's device flow approved while alice's polls hang", async || {
        status(&app, &bob, "tv").await == "connected"
    })
    .await;
    assert!(hanging.held() <= 2, "at most two polls of one user at once, not {}", hanging.held());
    for n in 0..3 {
        assert_eq!(status(&app, &alice, &format!("alice-{n}")).await, "pending");
    }

    hanging.release();
    app.clock.advance(2);
    for n in 0..3 {
        let handle = format!("alice-{n}");
        wait_for("alice's flows approved", async || {
            if status(&app, &alice, &handle).await == "connected" {
                return true;
            }
            // A poll that gave up meanwhile is due again a little later.
            app.clock.advance(2);
            false
        })
        .await;
    }
    app.stop().await;
}

#[tokio::test]
async fn a_users_slow_providers_do_not_take_every_background_refresh_slot() {
    let tuning =
        RefreshTuning { concurrency: 2, concurrency_per_user: 1, concurrency_per_host: 4, ..RefreshTuning::default() };
    let options =
        Options { refresher_interval: Duration::from_millis(50), refresh_tuning: tuning, ..Options::default() };
    let app = spawn_with(options).await;
    let alice = app.caller("alice", None).await;
    let mut hanging = Vec::new();
    for n in 0..3 {
        let provider = MockProvider::start("client-1", "s").await;
        for k in 0..2 {
            app.connect(&alice, &format!("alice-{n}-{k}"), &provider, "s").await;
        }
        provider.hold_refreshes(true);
        hanging.push(provider);
    }
    // Bob connects later, so that all of alice's six refreshes come before his in the schedule.
    app.clock.advance(400);
    let answering = MockProvider::start("client-1", "s").await;
    let bob = app.caller("bob", None).await;
    app.connect(&bob, "crm", &answering, "s").await;
    let held = || hanging.iter().map(MockProvider::held).sum::<usize>();

    app.clock.advance(3500);
    wait_for("one of alice's refreshes to hang", async || held() >= 1).await;
    wait_for("bob's refresh while alice's hang", async || !answering.refresh_calls().is_empty()).await;
    assert!(held() <= 1, "alice holds one slot, not {}", held());

    for provider in &hanging {
        provider.release();
    }
    app.stop().await;
}

#[tokio::test]
async fn a_users_outbox_holds_at_most_a_thousand_undelivered_events() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "s").await;
    let hanging = Hook::start(false).await;
    let (alice, bob) = (app.caller("alice", None).await, app.caller("bob", None).await);
    set_webhook(&app, &alice, &hanging.url).await;
    app.connect(&alice, "crm", &provider, "s").await;
    let answering = Hook::start(true).await;
    set_webhook(&app, &bob, &answering.url).await;
    app.connect(&bob, "crm", &provider, "s").await;

    // 1000 more status changes of alice's connection, written as the refresher would write them.
    let handle = latchkey_core::Handle::parse("crm").expect("handle");
    let store = &app.state.store;
    let connection = store.connection(&alice.user.id, &handle).await.expect("read").expect("exists");
    let change = async |n: usize| {
        let status = if n.is_multiple_of(2) { Status::Error } else { Status::NeedsReauth };
        let write = FailureWrite {
            status,
            last_error: format!("change {n}"),
            failure_count: 0,
            retry_after: None,
            now: app.clock.now(),
        };
        store.record_failure(&connection.id, &write).await.expect("status change");
    };
    for n in 0..1000 {
        change(n).await;
    }
    let events = store.webhook_events(&alice.user.id, 2000).await.expect("events");
    let pending = events.iter().filter(|e| e.state == DeliveryState::Pending).count();
    assert_eq!(pending, 1000, "the first event and 999 changes are queued");
    assert_eq!(events[0].message.as_deref(), Some("change 998"), "the 1001st event was refused");

    // Bob's events are his own: alice's full outbox does not refuse them.
    wait_for("bob's first event", async || answering.bodies().len() == 1).await;
    let (code, _) = app.api(&bob, Method::DELETE, "/api/v1/connections/crm", None).await;
    assert_eq!(code, 204);
    wait_for("bob's deletion event", async || answering.bodies().len() == 2).await;

    // Once alice's outbox has room again (removing the webhook drops what is undelivered), events queue again.
    assert_eq!(app.api(&alice, Method::DELETE, "/api/v1/webhook", None).await.0, 204);
    set_webhook(&app, &alice, &hanging.url).await;
    change(1000).await;
    let events = store.webhook_events(&alice.user.id, 1).await.expect("events");
    assert_eq!(events[0].message.as_deref(), Some("change 1000"));
    hanging.release();
    app.stop().await;
}
