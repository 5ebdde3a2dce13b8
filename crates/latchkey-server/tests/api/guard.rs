//! The outbound guard seen from outside: with private networks not allowed, loopback targets in their many
//! spellings are refused with a clear message and never contacted; the allow-list opens what it names and no more.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{Options, TestApp, spawn_with};
use crate::provider::MockProvider;

fn guarded() -> Options {
    Options { allow_private_networks: false, ..Options::default() }
}

async fn create_with_token_url(
    app: &TestApp,
    caller: &crate::helpers::Caller,
    handle: &str,
    token_url: &str,
) -> (u16, serde_json::Value) {
    let body = json!({
        "handle": handle, "authorization_url": "https://provider.example/authorize",
        "token_url": token_url, "client_id": "c", "client_secret": "s",
    });
    app.api(caller, Method::POST, "/api/v1/connections", Some(body)).await
}

#[tokio::test]
async fn loopback_token_urls_in_every_spelling_are_refused_at_save() {
    let app = spawn_with(guarded()).await;
    let provider = MockProvider::start("client-1", "s").await;
    let port = url::Url::parse(&provider.base).expect("url").port().expect("port");
    let alice = app.caller("alice", None).await;
    let spellings = [
        format!("http://127.0.0.1:{port}/token"),
        format!("https://127.0.0.1:{port}/token"),
        format!("https://[::1]:{port}/token"),
        format!("https://2130706433:{port}/token"),
        format!("https://0x7f.1:{port}/token"),
        format!("https://127.1:{port}/token"),
        format!("https://[::ffff:127.0.0.1]:{port}/token"),
        "https://169.254.169.254/latest/meta-data".to_owned(),
        "https://[::ffff:169.254.169.254]/token".to_owned(),
        format!("http://localhost.:{port}/token"),
    ];
    for (i, url) in spellings.iter().enumerate() {
        let (status, body) = create_with_token_url(&app, &alice, &format!("c{i}"), url).await;
        assert_eq!(status, 400, "{url}: {body}");
        assert_eq!(body["field"], "token_url", "{url}: {body}");
        let message = body["error"].as_str().unwrap_or_default();
        assert!(
            message.contains("--allow-private-networks") || message.contains("https") || message.contains("metadata"),
            "{url}: {message}"
        );
    }
    assert!(provider.token_calls().is_empty());
}

#[tokio::test]
async fn a_name_resolving_to_loopback_is_refused_when_latchkey_connects() {
    let app = spawn_with(guarded()).await;
    let provider = MockProvider::start("client-1", "s").await;
    let port = url::Url::parse(&provider.base).expect("url").port().expect("port");
    let alice = app.caller("alice", None).await;
    let body = json!({
        "handle": "sneaky", "authorization_url": provider.authorization_url(),
        "token_url": format!("https://localhost:{port}/token"), "client_id": "client-1", "client_secret": "s",
    });
    let (status, created) = app.api(&alice, Method::POST, "/api/v1/connections", Some(body)).await;
    assert_eq!(status, 201, "a host name passes the save check: {created}");
    let (status, page) = app.follow(created["authorization_link"].as_str().expect("link")).await;
    assert_eq!(status, 502, "{page}");
    assert!(page.contains("resolves to 127.0.0.1") || page.contains("resolves to ::1"), "{page}");
    assert!(provider.token_calls().is_empty(), "the exchange never left latchkey");
}

#[tokio::test]
async fn allow_listing_loopback_opens_it_but_not_the_metadata_address() {
    let options = Options { outbound_allow: latchkey_oauth::AllowList::parse("127.0.0.1").expect("list"), ..guarded() };
    let app = spawn_with(options).await;
    let provider = MockProvider::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    app.connect(&alice, "allowed", &provider, "s").await;
    assert_eq!(app.token(&alice, "allowed").await.0, 200);
    for url in ["https://169.254.169.254/token", "https://10.0.0.1/token", "http://[::1]/token"] {
        let (status, body) = create_with_token_url(&app, &alice, "closed", url).await;
        assert_eq!(status, 400, "{url}: {body}");
    }
}

#[tokio::test]
async fn a_redirect_from_the_token_endpoint_is_not_followed() {
    let options = Options { outbound_allow: latchkey_oauth::AllowList::parse("127.0.0.1").expect("list"), ..guarded() };
    let app = spawn_with(options).await;
    let provider = MockProvider::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    provider.push_canned(crate::provider::Canned::redirect("http://169.254.169.254/latest/meta-data"));
    let link = app.create_connection(&alice, "bouncy", &provider, "s").await;
    let (status, page) = app.follow(&link).await;
    assert_eq!(status, 502, "{page}");
    assert!(page.contains("redirect"), "{page}");
}
