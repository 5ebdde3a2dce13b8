//! Webhook notifications end to end: a receiver on loopback gets signed events when a connection's status
//! changes, a failing receiver gets the event again until it answers 200, a forbidden address is refused when
//! saved, and the signing secret is shown once only.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hmac::{Hmac, Mac};
use latchkey_core::Clock;
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::helpers::{Options, TestApp, spawn_app, spawn_with, wait_for};
use crate::provider::MockProvider;

/// One delivery as the receiver saw it.
#[derive(Debug, Clone)]
struct Delivery {
    signature: String,
    event_id: String,
    body: String,
}

#[derive(Default)]
struct Inbox {
    deliveries: Vec<Delivery>,
    /// Answer 500 to this many deliveries before answering 200.
    failures_left: usize,
}

/// A webhook receiver on 127.0.0.1.
struct Receiver {
    url: String,
    inbox: Arc<Mutex<Inbox>>,
}

impl Receiver {
    async fn start(failures: usize) -> Self {
        let inbox = Arc::new(Mutex::new(Inbox { failures_left: failures, ..Inbox::default() }));
        let app = Router::new().route("/hook", post(receive)).with_state(Arc::clone(&inbox));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move { axum::serve(listener, app).await.expect("receiver") });
        Self { url: format!("http://127.0.0.1:{port}/hook"), inbox }
    }

    fn deliveries(&self) -> Vec<Delivery> {
        self.inbox.lock().expect("inbox").deliveries.clone()
    }
}

async fn receive(State(inbox): State<Arc<Mutex<Inbox>>>, headers: HeaderMap, body: String) -> StatusCode {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let mut inbox = inbox.lock().expect("inbox");
    inbox.deliveries.push(Delivery {
        signature: header("latchkey-signature"),
        event_id: header("latchkey-event-id"),
        body,
    });
    if inbox.failures_left > 0 {
        inbox.failures_left -= 1;
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    }
}

/// Checks a signature the way a receiver following docs/webhooks.md would, with its own HMAC.
fn verify(secret: &str, delivery: &Delivery, now: i64) -> bool {
    let Some((t, v1)) = delivery.signature.split_once(',') else { return false };
    let (Some(t), Some(v1)) = (t.strip_prefix("t="), v1.strip_prefix("v1=")) else { return false };
    let Ok(t) = t.parse::<i64>() else { return false };
    if (now - t).abs() > 300 {
        return false;
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(format!("{t}.{}", delivery.body).as_bytes());
    hex::encode(mac.finalize().into_bytes()) == v1
}

async fn set_webhook(app: &TestApp, caller: &crate::helpers::Caller, url: &str) -> (u16, Value) {
    app.api(caller, Method::PUT, "/api/v1/webhook", Some(json!({ "url": url }))).await
}

#[tokio::test]
async fn a_status_change_reaches_the_receiver_signed() {
    let app = spawn_app().await;
    let receiver = Receiver::start(0).await;
    let provider = MockProvider::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    let (status, saved) = set_webhook(&app, &alice, &receiver.url).await;
    assert_eq!(status, 200, "{saved}");
    let secret = saved["signing_secret"].as_str().expect("secret shown once").to_owned();
    assert!(secret.starts_with("whsec_") && secret.len() > 40, "{secret}");
    assert_eq!(saved["webhook"]["url"], receiver.url);

    app.connect(&alice, "crm", &provider, "s").await;
    provider.revoke_all();
    let forced = "/api/v1/connections/crm/token?force_refresh=true";
    assert_eq!(app.api(&alice, Method::GET, forced, None).await.0, 409);
    wait_for("two deliveries", async || receiver.deliveries().len() >= 2).await;

    let deliveries = receiver.deliveries();
    let now = app.clock.now().secs();
    for delivery in &deliveries {
        assert!(verify(&secret, delivery, now), "the signature verifies: {delivery:?}");
        assert!(!verify("whsec_another", delivery, now), "and only with the right secret");
    }
    let events: Vec<Value> = deliveries.iter().map(|d| serde_json::from_str(&d.body).expect("JSON")).collect();
    assert_eq!(events[0]["type"], "connection.status_changed");
    assert_eq!(events[0]["connection"]["handle"], "crm");
    assert_eq!(events[0]["connection"]["previous_status"], "pending");
    assert_eq!(events[0]["connection"]["status"], "connected");
    assert_eq!(events[1]["connection"]["previous_status"], "connected");
    assert_eq!(events[1]["connection"]["status"], "needs_reauth");
    let message = events[1]["connection"]["message"].as_str().expect("why");
    assert!(message.contains("crm"), "{message}");
    assert_eq!(deliveries[1].event_id, events[1]["id"].as_str().expect("id"));
    assert!(events[1]["occurred_at"].as_str().is_some_and(|t| t.ends_with('Z')), "{}", events[1]);

    // Deleting the connection is an event too.
    assert_eq!(app.api(&alice, Method::DELETE, "/api/v1/connections/crm", None).await.0, 204);
    wait_for("the deletion event", async || receiver.deliveries().len() >= 3).await;
    let deleted: Value = serde_json::from_str(&receiver.deliveries()[2].body).expect("JSON");
    assert_eq!(deleted["type"], "connection.deleted");
    assert_eq!(deleted["connection"]["status"], Value::Null);

    // Nothing shows the secret again, and no delivery carries it.
    for path in ["/api/v1/webhook", "/api/v1/webhook/events"] {
        let (status, body) = app.api(&alice, Method::GET, path, None).await;
        assert_eq!(status, 200, "{body}");
        assert!(!body.to_string().contains(&secret), "{path}: {body}");
    }
    assert!(receiver.deliveries().iter().all(|d| !d.body.contains(&secret) && !d.signature.contains(&secret)));
    crate::storage::assert_stored_nowhere_in_clear(&app, std::slice::from_ref(&secret), "alice").await;
}

#[tokio::test]
async fn a_failing_receiver_gets_the_event_again_until_it_answers() {
    let app = spawn_app().await;
    let receiver = Receiver::start(2).await;
    let provider = MockProvider::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    assert_eq!(set_webhook(&app, &alice, &receiver.url).await.0, 200);
    app.connect(&alice, "crm", &provider, "s").await;

    wait_for("the first attempt", async || receiver.deliveries().len() == 1).await;
    let events = async || app.api(&alice, Method::GET, "/api/v1/webhook/events", None).await.1;
    wait_for("the failure to be recorded", async || events().await["events"][0]["attempts"] == 1).await;
    let first = events().await;
    assert_eq!(first["events"][0]["delivery"], "pending");
    assert!(first["events"][0]["last_error"].as_str().is_some_and(|e| e.contains("HTTP 500")), "{first}");
    // The next attempt waits for its backoff: 10 s, then 20 s.
    app.clock.advance(10);
    wait_for("the second attempt", async || receiver.deliveries().len() == 2).await;
    wait_for("the second failure to be recorded", async || events().await["events"][0]["attempts"] == 2).await;
    app.clock.advance(20);
    wait_for("the third attempt", async || receiver.deliveries().len() == 3).await;
    wait_for("the delivery to be recorded", async || events().await["events"][0]["delivery"] == "delivered").await;

    let listed = events().await;
    assert_eq!(listed["events"].as_array().map(Vec::len), Some(1), "one event: {listed}");
    assert_eq!(listed["events"][0]["attempts"], 3);
    let deliveries = receiver.deliveries();
    assert_eq!(deliveries.len(), 3, "delivered once, after two failures");
    assert!(deliveries.iter().all(|d| d.body == deliveries[0].body && d.event_id == deliveries[0].event_id));
}

#[tokio::test]
async fn a_webhook_aimed_at_a_forbidden_address_is_refused_when_saved() {
    let app = spawn_with(Options { allow_private_networks: false, ..Options::default() }).await;
    let alice = app.caller("alice", None).await;
    // `localhost` resolves to loopback through the tests' name table: refused at save, not only at delivery.
    for url in [
        "http://127.0.0.1:9/hook",
        "https://169.254.169.254/latest",
        "https://[::1]/hook",
        "https://10.0.0.8/",
        "https://localhost/hook",
    ] {
        let (status, body) = set_webhook(&app, &alice, url).await;
        assert_eq!(status, 400, "{url}: {body}");
        let error = body["error"].as_str().expect("error");
        assert!(error.contains("may not send webhooks to this URL"), "{url}: {error}");
    }
    for (url, why) in [
        ("not a url", "not a valid absolute URL"),
        ("https://user:pw@hooks.example/x", "user name or password"),
        ("ftp://hooks.example/x", "scheme"),
        ("", "missing"),
    ] {
        let (status, body) = set_webhook(&app, &alice, url).await;
        assert_eq!(status, 400, "{url}: {body}");
        assert!(body["error"].as_str().is_some_and(|e| e.contains(why)), "{url}: {body}");
    }
    let (_, read) = app.api(&alice, Method::GET, "/api/v1/webhook", None).await;
    assert_eq!(read["webhook"], Value::Null, "nothing was saved");

    // A key limited to some handles may not set the webhook of every connection.
    let limited = app.caller("bob", Some(&["crm"])).await;
    let (status, body) = set_webhook(&app, &limited, "https://hooks.example/x").await;
    assert_eq!(status, 403, "{body}");
}

#[tokio::test]
async fn saving_again_replaces_the_secret_and_removing_stops_events() {
    let app = spawn_app().await;
    let receiver = Receiver::start(0).await;
    let provider = MockProvider::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    let (_, first) = set_webhook(&app, &alice, &receiver.url).await;
    let (_, second) = set_webhook(&app, &alice, &receiver.url).await;
    assert_ne!(first["signing_secret"], second["signing_secret"]);
    assert_eq!(app.api(&alice, Method::DELETE, "/api/v1/webhook", None).await.0, 204);
    assert_eq!(app.api(&alice, Method::DELETE, "/api/v1/webhook", None).await.0, 404);
    app.connect(&alice, "crm", &provider, "s").await;
    let (_, listed) = app.api(&alice, Method::GET, "/api/v1/webhook/events", None).await;
    assert_eq!(listed["events"], json!([]), "no webhook, no events");
    assert!(receiver.deliveries().is_empty());
}

/// The value of the first hidden `csrf` field of a page.
fn csrf_of(page: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = page.find(marker).expect("the page has a csrf field") + marker.len();
    let end = page[start..].find('"').expect("closing quote");
    page[start..start + end].to_owned()
}

#[tokio::test]
async fn the_notifications_page_saves_a_webhook_and_shows_its_secret_once() {
    let app = spawn_app().await;
    let alice = app.caller("alice", None).await;
    let browser = crate::helpers::manual_browser();
    let login = browser
        .post(app.url("/login"))
        .form(&[("username", "alice"), ("password", "correct horse battery")])
        .send()
        .await
        .expect("log in");
    assert_eq!(login.status().as_u16(), 303);
    let page = browser.get(app.url("/settings/notifications")).send().await.expect("page").text().await.expect("html");
    assert!(page.contains(r#"<label for="webhook-url">Webhook URL</label>"#), "{page}");
    assert!(page.contains(r#"href="/settings/notifications" aria-current="page""#), "the nav shows where we are");
    assert!(page.contains("No webhook yet"), "{page}");
    let csrf = csrf_of(&page);
    let post = |fields: Vec<(&'static str, String)>| {
        browser.post(app.url("/settings/notifications")).header("origin", app.address.clone()).form(&fields).send()
    };

    let refused = post(vec![("csrf", csrf.clone()), ("url", "ftp://hooks.example/x".to_owned())]).await.expect("post");
    assert_eq!(refused.status().as_u16(), 400);
    let text = refused.text().await.expect("html");
    assert!(text.contains("is not supported") && text.contains(r#"aria-invalid="true""#), "{text}");

    let saved = post(vec![("csrf", csrf.clone()), ("url", "https://hooks.example/latchkey".to_owned())]).await;
    let text = saved.expect("post").text().await.expect("html");
    let start = text.find(r#"<code id="signing-secret">"#).expect("the secret is shown") + 26;
    let secret = &text[start..start + text[start..].find('<').expect("end")];
    assert!(secret.starts_with("whsec_"), "{secret}");
    let (_, read) = app.api(&alice, Method::GET, "/api/v1/webhook", None).await;
    assert_eq!(read["webhook"]["url"], "https://hooks.example/latchkey");

    let again = browser.get(app.url("/settings/notifications")).send().await.expect("page").text().await.expect("html");
    assert!(!again.contains(secret), "shown once only");
    assert!(again.contains("https://hooks.example/latchkey"), "{again}");

    let removed = post(vec![("csrf", csrf), ("action", "remove".to_owned())]).await.expect("post");
    assert_eq!(removed.status().as_u16(), 303);
    let (_, read) = app.api(&alice, Method::GET, "/api/v1/webhook", None).await;
    assert_eq!(read["webhook"], Value::Null);
}

#[tokio::test]
async fn the_openapi_document_describes_the_webhook_endpoints() {
    let app = spawn_app().await;
    let alice = app.caller("alice", None).await;
    let (status, document) = app.api(&alice, Method::GET, "/api/v1/openapi.json", None).await;
    assert_eq!(status, 200);
    let paths = &document["paths"];
    for (path, method) in [
        ("/api/v1/webhook", "get"),
        ("/api/v1/webhook", "put"),
        ("/api/v1/webhook", "delete"),
        ("/api/v1/webhook/events", "get"),
    ] {
        assert!(paths[path][method].is_object(), "{method} {path} is missing");
    }
    assert!(document["components"]["schemas"]["SavedWebhook"].is_object());
    assert!(paths["/api/v1/connections/{handle}/token"]["get"].is_object(), "the rest is still there");
}

#[tokio::test]
async fn two_replicas_deliver_each_event_once() {
    let a = spawn_app().await;
    let b = spawn_with(Options { dir: Some(Arc::clone(&a.dir)), ..Options::default() }).await;
    let receiver = Receiver::start(0).await;
    let provider = MockProvider::start("client-1", "s").await;
    let alice = a.caller("alice", None).await;
    assert_eq!(set_webhook(&a, &alice, &receiver.url).await.0, 200);
    for n in 0..6 {
        // Half the changes happen on each replica; both senders run.
        let app = if n % 2 == 0 { &a } else { &b };
        app.connect(&alice, &format!("crm-{n}"), &provider, "s").await;
    }
    let events = async || a.api(&alice, Method::GET, "/api/v1/webhook/events", None).await.1;
    wait_for("every event delivered", async || {
        let listed = events().await;
        let all = listed["events"].as_array().cloned().unwrap_or_default();
        all.len() == 6 && all.iter().all(|e| e["delivery"] == "delivered")
    })
    .await;
    let mut ids: Vec<String> = receiver.deliveries().into_iter().map(|d| d.event_id).collect();
    assert_eq!(ids.len(), 6, "each event was sent once: {ids:?}");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 6, "no event was sent twice");
}
