//! Response compression: the UI's pages and assets are gzipped for a browser that accepts it and come out the
//! same once unzipped; a client that does not ask gets them plain; the JSON API (token answers) and the OAuth
//! callback page are never compressed.

use std::io::Read as _;
use std::time::Duration;

use reqwest::header::{ACCEPT_ENCODING, CONTENT_ENCODING, HeaderMap, HeaderValue, VARY};

use super::helpers::spawn_app;
use super::log_in;
use super::provider::MockProvider;

/// A browser that follows redirects, keeps cookies and says it accepts gzip (reqwest itself does not unzip).
fn gzip_browser() -> reqwest::Client {
    let mut headers = HeaderMap::new();
    headers.insert(ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
    reqwest::Client::builder()
        .cookie_store(true)
        .default_headers(headers)
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

fn encoding(response: &reqwest::Response) -> Option<String> {
    response.headers().get(CONTENT_ENCODING).map(|v| v.to_str().expect("ascii").to_owned())
}

fn gunzip(bytes: &[u8]) -> String {
    let mut text = String::new();
    flate2::read::GzDecoder::new(bytes).read_to_string(&mut text).expect("a gzip stream of UTF-8");
    text
}

#[tokio::test]
async fn pages_and_assets_are_gzipped_when_accepted_and_read_the_same() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "zip-secret").await;
    let caller = app.caller("alice", None).await;
    for i in 0..20 {
        app.connect(&caller, &format!("service-{i:02}"), &provider, "zip-secret").await;
    }
    let person = log_in(&app, "alice").await;

    for path in ["/connections", "/api-keys", "/assets/app.js", "/assets/app.css"] {
        let plain = person.browser.get(app.url(path)).send().await.expect("plain");
        assert_eq!(plain.status(), 200, "{path}");
        assert_eq!(encoding(&plain), None, "{path} was compressed for a client that did not ask");
        let plain = plain.text().await.expect("plain body");

        let zipped = person.browser.get(app.url(path)).header(ACCEPT_ENCODING, "gzip").send().await.expect("gzip");
        assert_eq!(zipped.status(), 200, "{path}");
        assert_eq!(encoding(&zipped).as_deref(), Some("gzip"), "{path} was not gzipped");
        let vary = zipped.headers().get(VARY).map(|v| v.to_str().expect("ascii").to_ascii_lowercase());
        assert!(vary.is_some_and(|v| v.contains("accept-encoding")), "{path} does not vary on Accept-Encoding");
        let bytes = zipped.bytes().await.expect("gzip body");
        assert!(bytes.len() < plain.len(), "{path}: {} bytes gzipped of {} plain", bytes.len(), plain.len());
        assert_eq!(gunzip(&bytes), plain, "{path} reads differently once unzipped");
    }
    // The list, where it matters most: its rows repeat, so it shrinks several times over.
    let list = person.browser.get(app.url("/connections")).header(ACCEPT_ENCODING, "gzip").send().await.expect("list");
    let bytes = list.bytes().await.expect("list body");
    let list = gunzip(&bytes);
    assert!(list.contains("service-19"), "the unzipped list lacks a row");
    assert!(bytes.len() * 4 < list.len(), "the list: {} bytes gzipped of {} plain", bytes.len(), list.len());
    app.stop().await;
}

#[tokio::test]
async fn token_answers_and_the_callback_page_are_never_compressed() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "zip-secret").await;
    let caller = app.caller("alice", None).await;
    let link = app.create_connection(&caller, "crm", &provider, "zip-secret").await;

    // The whole flow in a browser that accepts gzip: the callback page arrives plain.
    let callback = gzip_browser().get(&link).send().await.expect("follow the link");
    assert_eq!(callback.status(), 200);
    assert!(callback.url().path().starts_with("/oauth2/callback"), "ended at {}", callback.url());
    assert_eq!(encoding(&callback), None, "the callback page was compressed");
    let page = callback.text().await.expect("callback page");
    assert!(page.contains("Connected"), "{page}");

    let token = gzip_browser()
        .get(app.url("/api/v1/connections/crm/token"))
        .bearer_auth(&caller.key)
        .send()
        .await
        .expect("token");
    assert_eq!(token.status(), 200);
    assert_eq!(encoding(&token), None, "a token answer was compressed");
    let body: serde_json::Value = token.json().await.expect("token JSON");
    assert!(body["token"].as_str().is_some_and(|t| !t.is_empty()), "{body}");
    app.stop().await;
}
