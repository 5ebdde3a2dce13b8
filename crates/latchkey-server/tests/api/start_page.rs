//! An authorization link opened in a browser that is not its owner's: before any redirect to the provider (whose
//! authorization URL the owner chose), latchkey shows on its own host whose connection the consent would go to,
//! and continues only from that page. The owner's browser and plain HTTP clients go straight through.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{ACCEPT, HeaderMap, HeaderValue, LOCATION};
use reqwest::redirect::Policy;
use serde_json::Value;

use crate::helpers::{Caller, TestApp, spawn_app};
use crate::provider::MockProvider;

const PASSWORD: &str = "correct horse battery";

/// A browser: keeps cookies and sends what browsers send when they open a page.
fn navigating_browser(redirects: Policy) -> reqwest::Client {
    let mut headers = HeaderMap::new();
    headers.insert("sec-fetch-mode", HeaderValue::from_static("navigate"));
    headers.insert("sec-fetch-dest", HeaderValue::from_static("document"));
    headers.insert(ACCEPT, HeaderValue::from_static("text/html,application/xhtml+xml,*/*;q=0.8"));
    reqwest::Client::builder()
        .cookie_store(true)
        .default_headers(headers)
        .redirect(redirects)
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

fn plain_client() -> reqwest::Client {
    reqwest::Client::builder().redirect(Policy::none()).no_proxy().build().expect("client")
}

/// The value of the page's continue form's token.
fn confirm_token(page: &str) -> String {
    let marker = "name=\"confirm\" value=\"";
    let start = page.find(marker).expect("a continue form") + marker.len();
    page[start..start + page[start..].find('"').expect("quote")].to_owned()
}

fn provider_host(provider: &MockProvider) -> String {
    provider.base.trim_start_matches("http://").to_owned()
}

async fn status_of(app: &TestApp, caller: &Caller) -> Value {
    let (_, read) = app.api(caller, reqwest::Method::GET, "/api/v1/connections/crm", None).await;
    read["connection"]["status"].clone()
}

#[tokio::test]
async fn a_browser_without_the_owners_session_sees_whose_connection_it_would_authorize() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    let link = app.create_connection(&alice, "crm", &provider, "s").await;

    // A colleague opens the link alice sent: a page on latchkey's host, no redirect, nothing asked of the provider.
    let colleague = navigating_browser(Policy::limited(10));
    let opened = colleague.get(&link).send().await.expect("open link");
    assert_eq!(opened.status(), StatusCode::OK);
    assert_eq!(opened.url().as_str(), link, "no redirect");
    assert!(opened.headers().get(LOCATION).is_none());
    let page = opened.text().await.expect("page");
    assert!(page.contains("alice"), "the page names the owner: {page}");
    assert!(page.contains(&provider_host(&provider)), "and the provider's host: {page}");
    assert!(page.contains("Test crm") && page.contains("Continue to"), "{page}");
    assert!(!page.contains("<script>"), "no inline script: {page}");
    assert!(provider.authorize_calls().is_empty(), "nobody was sent to the provider yet");
    assert_eq!(status_of(&app, &alice).await, "pending");

    // Continuing goes to the provider and finishes the flow.
    let token = confirm_token(&page);
    let finished = colleague.post(&link).form(&[("confirm", token.as_str())]).send().await.expect("continue");
    assert_eq!(finished.status(), StatusCode::OK);
    let page = finished.text().await.expect("page");
    assert!(page.contains("Connected"), "{page}");
    assert_eq!(provider.authorize_calls().len(), 1);
    assert_eq!(status_of(&app, &alice).await, "connected");

    // The link was used: neither the page nor its button opens it again.
    let again = colleague.get(&link).send().await.expect("open again");
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    assert!(again.text().await.expect("page").contains("already used"));
    let replay = colleague.post(&link).form(&[("confirm", token.as_str())]).send().await.expect("replay");
    assert_eq!(replay.status(), StatusCode::FORBIDDEN, "the page's cookie went with its use");
    assert_eq!(provider.authorize_calls().len(), 1);
}

#[tokio::test]
async fn continuing_needs_the_cookie_of_the_page_latchkey_showed() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    let link = app.create_connection(&alice, "crm", &provider, "s").await;
    let shown = navigating_browser(Policy::none());
    let page = shown.get(&link).send().await.expect("open link").text().await.expect("page");
    let token = confirm_token(&page);

    // A form on another site posting to the link (it may know the link: its owner does) has no such cookie.
    let forged = navigating_browser(Policy::none());
    for attempt in [token.as_str(), "", "guess"] {
        let refused = forged.post(&link).form(&[("confirm", attempt)]).send().await.expect("forged continue");
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "token {attempt:?}");
        assert!(refused.headers().get(LOCATION).is_none());
    }
    let wrong = shown.post(&link).form(&[("confirm", "guess")]).send().await.expect("wrong token");
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    let elsewhere =
        shown.post(&link).header("origin", "https://elsewhere.example").form(&[("confirm", token.as_str())]);
    assert_eq!(elsewhere.send().await.expect("cross-site continue").status(), StatusCode::FORBIDDEN);
    assert!(provider.authorize_calls().is_empty());

    // The link is still unused: the page's own button goes on to the provider.
    let continued = shown.post(&link).form(&[("confirm", token.as_str())]).send().await.expect("continue");
    assert_eq!(continued.status(), StatusCode::SEE_OTHER);
    let location = continued.headers()[LOCATION].to_str().expect("ascii").to_owned();
    assert!(location.starts_with(&provider.authorization_url()), "{location}");
}

#[tokio::test]
async fn the_owners_browser_goes_straight_to_the_provider() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    let link = app.create_connection(&alice, "crm", &provider, "s").await;
    let browser = navigating_browser(Policy::none());
    let login = browser
        .post(app.url("/login"))
        .form(&[("username", "alice"), ("password", PASSWORD)])
        .send()
        .await
        .expect("log in");
    assert_eq!(login.status(), StatusCode::SEE_OTHER);

    let opened = browser.get(&link).send().await.expect("open link");
    assert_eq!(opened.status(), StatusCode::FOUND);
    let location = opened.headers()[LOCATION].to_str().expect("ascii");
    assert!(location.starts_with(&provider.authorization_url()), "{location}");

    // Another user's session is not the owner's: that browser is asked first.
    let bob_link = app.create_connection(&alice, "crm2", &provider, "s").await;
    let bob_browser = navigating_browser(Policy::none());
    app.caller("bob", None).await;
    let bob_login =
        bob_browser.post(app.url("/login")).form(&[("username", "bob"), ("password", PASSWORD)]).send().await;
    assert_eq!(bob_login.expect("log in").status(), StatusCode::SEE_OTHER);
    let asked = bob_browser.get(&bob_link).send().await.expect("open link");
    assert_eq!(asked.status(), StatusCode::OK);
    assert!(asked.text().await.expect("page").contains("alice"));
}

#[tokio::test]
async fn a_plain_http_client_still_gets_the_redirect() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    let link = app.create_connection(&alice, "crm", &provider, "s").await;
    let opened = plain_client().get(&link).send().await.expect("open link");
    assert_eq!(opened.status(), StatusCode::FOUND);
    let location = opened.headers()[LOCATION].to_str().expect("ascii");
    assert!(location.starts_with(&provider.authorization_url()), "{location}");
}

#[tokio::test]
async fn the_page_does_not_outlive_its_link() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    let link = app.create_connection(&alice, "crm", &provider, "s").await;
    let browser = navigating_browser(Policy::none());
    let page = browser.get(&link).send().await.expect("open link").text().await.expect("page");
    let token = confirm_token(&page);

    app.clock.advance(601);
    let late = browser.post(&link).form(&[("confirm", token.as_str())]).send().await.expect("continue late");
    assert_eq!(late.status(), StatusCode::BAD_REQUEST);
    assert!(late.text().await.expect("page").contains("expired"));
    let reopened = browser.get(&link).send().await.expect("open again");
    assert_eq!(reopened.status(), StatusCode::BAD_REQUEST);
    assert!(provider.authorize_calls().is_empty());
}
