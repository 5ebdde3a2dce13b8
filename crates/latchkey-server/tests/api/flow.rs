//! The Authorization Code flow from link to stored token, and every way the callback refuses.

use reqwest::Method;

use crate::helpers::{TestApp, browser, secret, spawn_app};
use crate::provider::{Canned, MockProvider};

#[tokio::test]
async fn a_person_connects_and_a_script_gets_the_token() {
    let app = spawn_app().await;
    let client_secret = secret("cs");
    let provider = MockProvider::start("client-1", &client_secret).await;
    let alice = app.caller("alice", None).await;

    let link = app.create_connection(&alice, "crm", &provider, &client_secret).await;
    assert!(link.starts_with(&app.url("/oauth2/start/")), "{link}");
    let (_, before) = app.api(&alice, Method::GET, "/api/v1/connections/crm", None).await;
    assert_eq!(before["connection"]["status"], "pending");

    let (status, page) = app.follow(&link).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("/assets/callback.js"), "the page tells its opener: {page}");

    // The authorization request carried what RFC 6749 §4.1.1 and RFC 7636 ask for.
    let authorize = &provider.authorize_calls()[0];
    assert_eq!(authorize["response_type"], "code");
    assert_eq!(authorize["client_id"], "client-1");
    assert_eq!(authorize["redirect_uri"], app.url("/oauth2/callback"));
    assert_eq!(authorize["scope"], "read write");
    assert_eq!(authorize["code_challenge_method"], "S256");
    assert!(authorize["state"].len() >= 22, "state has at least 128 bits");

    // The exchange was a form POST with the standard fields and Accept: application/json.
    let exchange = &provider.token_calls()[0];
    assert_eq!(exchange.param("grant_type"), Some("authorization_code"));
    assert_eq!(exchange.param("client_id"), Some("client-1"));
    assert_eq!(exchange.param("client_secret"), Some(client_secret.as_str()));
    assert_eq!(exchange.param("redirect_uri"), Some(app.url("/oauth2/callback").as_str()));
    assert!(exchange.param("code_verifier").is_some());
    assert_eq!(exchange.accept.as_deref(), Some("application/json"));
    assert!(exchange.content_type.as_deref().unwrap_or_default().starts_with("application/x-www-form-urlencoded"));

    let (status, body) = app.token(&alice, "crm").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token"], format!("at-{}-2", provider.tag()));
    assert_eq!(body["token_type"], "Bearer", "the provider said 'bearer'; latchkey answers the standard spelling");
    assert!(body["expires_at"].as_str().is_some_and(|s| s.ends_with('Z')), "{body}");

    let (_, read) = app.api(&alice, Method::GET, "/api/v1/connections/crm", None).await;
    let connection = &read["connection"];
    assert_eq!(connection["status"], "connected");
    assert_eq!(connection["client_secret_set"], true);
    for field in ["handle", "name", "provider", "scopes", "expires_at", "created_at", "updated_at"] {
        assert!(!connection[field].is_null(), "{field} missing in {connection}");
    }
    assert!(!read.to_string().contains(&client_secret), "the secret never comes back");
}

#[tokio::test]
async fn the_token_response_is_not_cached() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    app.connect(&alice, "crm", &provider, "s").await;
    let response =
        app.http.get(app.url("/api/v1/connections/crm/token")).bearer_auth(&alice.key).send().await.expect("token");
    assert_eq!(response.headers()["cache-control"], "no-store");
}

#[tokio::test]
async fn a_link_works_once() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    let link = app.create_connection(&alice, "crm", &provider, "s").await;
    assert_eq!(app.follow(&link).await.0, 200);
    let (status, page) = app.follow(&link).await;
    assert_eq!(status, 400);
    assert!(page.contains("already used"), "{page}");
    assert_eq!(provider.authorize_calls().len(), 1);
}

#[tokio::test]
async fn an_expired_link_is_refused() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    let link = app.create_connection(&alice, "crm", &provider, "s").await;
    app.clock.advance(601);
    let (status, page) = app.follow(&link).await;
    assert_eq!(status, 400);
    assert!(page.contains("expired"), "{page}");
    assert!(provider.authorize_calls().is_empty());
}

/// Opens the link without following redirects; returns the browser (with its cookie) and the provider URL.
async fn open_link(app: &TestApp, link: &str) -> (reqwest::Client, url::Url) {
    let _ = app;
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .expect("client");
    let response = client.get(link).send().await.expect("start");
    assert_eq!(response.status().as_u16(), 302);
    let location = response.headers()["location"].to_str().expect("location").to_owned();
    (client, url::Url::parse(&location).expect("provider url"))
}

fn state_of(url: &url::Url) -> String {
    url.query_pairs().find(|(k, _)| k == "state").map(|(_, v)| v.into_owned()).expect("state")
}

#[tokio::test]
async fn tampered_state_is_refused_before_any_provider_call() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    let link = app.create_connection(&alice, "crm", &provider, "s").await;
    let (client, provider_url) = open_link(&app, &link).await;
    let state = state_of(&provider_url);
    let callback = app.url("/oauth2/callback");

    let cases = [
        (format!("{callback}?code=abc"), "no state"),
        (format!("{callback}?code=abc&state="), "no state"),
        (format!("{callback}?code=abc&state={state}x"), "does not belong"),
        (format!("{callback}?code=abc&state=AAAA"), "does not belong"),
    ];
    for (url, expected) in cases {
        let response = client.get(&url).send().await.expect("callback");
        assert_eq!(response.status().as_u16(), 400, "{url}");
        let page = response.text().await.expect("page");
        assert!(page.contains(expected), "{url}: {page}");
    }
    // The right state from another browser (no binding cookie).
    let stranger = browser().get(format!("{callback}?code=abc&state={state}")).send().await.expect("callback");
    assert_eq!(stranger.status().as_u16(), 400);
    assert!(stranger.text().await.expect("page").contains("another browser"));
    assert!(provider.token_calls().is_empty(), "nothing reached the token endpoint");

    // The right browser still finishes, once.
    let ok = client.get(format!("{callback}?code=unknown-code&state={state}")).send().await.expect("callback");
    assert_eq!(ok.status().as_u16(), 502, "the provider refuses the made-up code");
    let reused = client.get(format!("{callback}?code=abc&state={state}")).send().await.expect("callback");
    assert_eq!(reused.status().as_u16(), 400);
    assert!(reused.text().await.expect("page").contains("already used"));
    assert_eq!(provider.token_calls().len(), 1);
}

#[tokio::test]
async fn a_state_that_expired_is_refused() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    let link = app.create_connection(&alice, "crm", &provider, "s").await;
    let (client, provider_url) = open_link(&app, &link).await;
    app.clock.advance(601);
    let url = format!("{}?code=abc&state={}", app.url("/oauth2/callback"), state_of(&provider_url));
    let response = client.get(url).send().await.expect("callback");
    assert_eq!(response.status().as_u16(), 400);
    assert!(response.text().await.expect("page").contains("expired"));
    assert!(provider.token_calls().is_empty());
}

#[tokio::test]
async fn provider_errors_show_on_the_page_and_in_last_error() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;

    provider.set_deny_authorization(true);
    let link = app.create_connection(&alice, "denied", &provider, "s").await;
    let (status, page) = app.follow(&link).await;
    assert_eq!(status, 502);
    assert!(page.contains("access_denied") && page.contains("The person said no"), "{page}");
    let (_, read) = app.api(&alice, Method::GET, "/api/v1/connections/denied", None).await;
    assert_eq!(read["connection"]["status"], "pending", "a failed first authorization leaves it pending");
    assert!(read["connection"]["last_error"].as_str().unwrap_or_default().contains("access_denied"));
    provider.set_deny_authorization(false);

    let answers = [
        (
            Canned::json(400, serde_json::json!({"error": "invalid_grant", "error_description": "Code expired"})),
            "invalid_grant",
        ),
        (Canned::text(200, "<html>not json</html>"), "token endpoint"),
        (Canned::text(503, "down"), "503"),
    ];
    for (i, (canned, expected)) in answers.into_iter().enumerate() {
        let handle = format!("bad-{i}");
        provider.push_canned(canned);
        let link = app.create_connection(&alice, &handle, &provider, "s").await;
        let (status, page) = app.follow(&link).await;
        assert_eq!(status, 502, "{page}");
        assert!(page.contains(expected), "{expected}: {page}");
        let (_, read) = app.api(&alice, Method::GET, &format!("/api/v1/connections/{handle}"), None).await;
        assert_eq!(read["connection"]["status"], "pending", "{read}");
        assert!(read["connection"]["expires_at"].is_null(), "nothing half-written: {read}");
        let (status, body) = app.token(&alice, &handle).await;
        assert_eq!(status, 409, "{body}");
        assert_eq!(body["code"], "not_connected");
    }
}

#[tokio::test]
async fn reconnecting_replaces_the_tokens() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    app.connect(&alice, "crm", &provider, "s").await;
    let (_, first) = app.token(&alice, "crm").await;
    let (status, body) = app.api(&alice, Method::POST, "/api/v1/connections/crm/authorize", None).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = app.follow(body["authorization_link"].as_str().expect("link")).await;
    assert_eq!(status, 200);
    let (_, second) = app.token(&alice, "crm").await;
    assert_ne!(first["token"], second["token"]);
}
