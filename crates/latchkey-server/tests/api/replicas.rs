//! Two servers sharing one database, as two replicas would: a flow started on one finishes on the other, and
//! callers on both at expiry cause one refresh.

use std::sync::Arc;
use std::time::Duration;

use crate::helpers::{Options, TestApp, spawn_app, spawn_with};
use crate::provider::MockProvider;

async fn pair() -> (TestApp, TestApp) {
    let first = spawn_app().await;
    let second = spawn_with(Options { dir: Some(Arc::clone(&first.dir)), ..Options::default() }).await;
    (first, second)
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .expect("client")
}

async fn location(client: &reqwest::Client, url: &str) -> url::Url {
    let response = client.get(url).send().await.expect("request");
    assert!(response.status().is_redirection(), "{url}");
    url::Url::parse(response.headers()["location"].to_str().expect("location")).expect("url")
}

#[tokio::test]
async fn a_flow_started_on_one_replica_finishes_on_another() {
    let (a, b) = pair().await;
    let provider = MockProvider::start("client-1", "s").await;
    let alice = a.caller("alice", None).await;
    let link = a.create_connection(&alice, "crm", &provider, "s").await;

    let browser = no_redirects();
    let at_provider = location(&browser, &link).await;
    let mut callback = location(&browser, at_provider.as_str()).await;
    assert!(callback.as_str().starts_with(&a.url("/oauth2/callback")));
    // The load balancer sends the provider's redirect to the other replica.
    let b_port = url::Url::parse(&b.address).expect("url").port();
    callback.set_port(b_port).expect("port");
    let response = browser.get(callback).send().await.expect("callback");
    assert_eq!(response.status().as_u16(), 200, "{}", response.text().await.unwrap_or_default());

    let (status, body) = b.token(&alice, "crm").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(a.token(&alice, "crm").await.1["token"], body["token"]);
}

#[tokio::test]
async fn callers_on_two_replicas_at_expiry_cause_one_refresh() {
    let (a, b) = pair().await;
    let provider = MockProvider::start("client-1", "s").await;
    provider.set_rotate_refresh_tokens(true);
    let alice = a.caller("alice", None).await;
    a.connect(&alice, "crm", &provider, "s").await;
    a.clock.advance(3600);
    b.clock.advance(3600);
    provider.hold_refreshes(true);
    let mut requests = Vec::new();
    for app in [&a, &b] {
        for _ in 0..10 {
            let client = app.http.clone();
            let url = app.url("/api/v1/connections/crm/token");
            let key = alice.key.clone();
            requests.push(tokio::spawn(async move {
                let response = client.get(url).bearer_auth(key).send().await.expect("request");
                (response.status().as_u16(), response.json::<serde_json::Value>().await.expect("json"))
            }));
        }
    }
    tokio::time::timeout(Duration::from_secs(10), provider.refresh_arrived()).await.expect("a refresh arrives");
    provider.release();
    let mut tokens = std::collections::HashSet::new();
    for request in requests {
        let (status, body) = request.await.expect("task");
        assert_eq!(status, 200, "{body}");
        tokens.insert(body["token"].as_str().expect("token").to_owned());
    }
    assert_eq!(provider.refresh_calls().len(), 1, "one replica called the provider");
    assert_eq!(tokens.len(), 1);
}

#[tokio::test]
async fn a_backoff_recorded_on_one_replica_holds_on_the_other() {
    let (a, b) = pair().await;
    let provider = MockProvider::start("client-1", "s").await;
    let alice = a.caller("alice", None).await;
    a.connect(&alice, "crm", &provider, "s").await;
    a.clock.advance(3600);
    b.clock.advance(3600);
    provider.push_canned(crate::provider::Canned::too_many_requests(120));
    let (status, body) = a.token(&alice, "crm").await;
    assert_eq!(status, 502, "{body}");

    // The next attempt time is in the database: the other replica waits too, without asking the provider.
    b.clock.advance(60);
    let (status, body) = b.token(&alice, "crm").await;
    assert_eq!(status, 502, "{body}");
    assert!(body["error"].as_str().unwrap_or_default().contains("tries again"), "{body}");
    assert_eq!(provider.refresh_calls().len(), 1);
    b.clock.advance(61);
    let (status, body) = b.token(&alice, "crm").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(provider.refresh_calls().len(), 2);
}
