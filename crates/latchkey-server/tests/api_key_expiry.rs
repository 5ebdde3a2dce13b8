//! API keys that expire: set from the JSON API, the web form and the service the CLI uses, refused with 401 and
//! a clear message once the manual clock passes their expiry, and shown as expired in the lists.

#[path = "api/helpers.rs"]
#[allow(dead_code, reason = "shared with the API tests; this file uses only part of it")]
mod helpers;
#[path = "api/provider.rs"]
#[allow(dead_code, reason = "shared with the API tests; this file uses only part of it")]
mod provider;

use std::time::Duration;

use helpers::{TestApp, spawn_app};
use latchkey_core::Clock as _;
use latchkey_server::service::api_keys;
use provider::MockProvider;
use reqwest::StatusCode;
use serde_json::{Value, json};

const DAY: i64 = 86_400;

async fn get(app: &TestApp, key: &str, path: &str) -> (StatusCode, Value) {
    let response = app.http.get(app.url(path)).bearer_auth(key).send().await.expect("request");
    let status = response.status();
    (status, response.json().await.unwrap_or_default())
}

#[tokio::test]
async fn an_expired_key_gets_401_with_a_clear_message() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    app.connect(&alice, "crm", &provider, "s").await;

    let now = app.clock.now();
    let expires_at = api_keys::expiry_in_days(Some(1), now).expect("one day");
    assert_eq!(expires_at, Some(now.plus_secs(DAY)));
    let (record, key) =
        api_keys::create_expiring(app.state.store.as_ref(), &alice.user, "short-lived", None, expires_at, now)
            .await
            .expect("created");
    let key = key.expose().to_owned();
    assert_eq!(record.expires_at, expires_at);

    assert_eq!(get(&app, &key, "/api/v1/connections/crm/token").await.0, StatusCode::OK);
    app.clock.advance(DAY - 1);
    assert_eq!(get(&app, &key, "/api/v1/connections/crm/token").await.0, StatusCode::OK, "valid to the last second");

    app.clock.advance(1);
    for path in ["/api/v1/connections/crm/token", "/api/v1/connections"] {
        let (status, body) = get(&app, &key, path).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {body}");
        let message = body["error"].as_str().unwrap_or_default();
        assert!(message.starts_with("this API key expired at ") && message.contains("create a new one"), "{body}");
        assert!(body.get("token").is_none(), "{body}");
    }
    // A key without an expiry goes on working.
    assert_eq!(app.token(&alice, "crm").await.0, 200);

    for bad in [Some(0), Some(api_keys::MAX_EXPIRY_DAYS + 1)] {
        let err = api_keys::expiry_in_days(bad, now).expect_err("refused");
        assert!(err.to_string().contains("expires after 1 to 3650 days"), "{err}");
    }
}

/// A browser that keeps cookies and stops at redirects.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

fn csrf_of(page: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = page.find(marker).expect("the page has a csrf field") + marker.len();
    let end = page[start..].find('"').expect("closing quote");
    page[start..start + end].to_owned()
}

fn new_key_of(page: &str) -> String {
    let marker = "id=\"new-key-value\">";
    let start = page.find(marker).expect("the new key is shown") + marker.len();
    let end = page[start..].find('<').expect("closing tag");
    page[start..start + end].to_owned()
}

async fn log_in(app: &TestApp, person: &reqwest::Client) {
    let login = person
        .post(app.url("/login"))
        .form(&[("username", "alice"), ("password", "correct horse battery")])
        .send()
        .await
        .expect("log in");
    assert_eq!(login.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn the_web_form_sets_an_expiry_and_the_list_shows_it() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    app.connect(&alice, "crm", &provider, "s").await;

    let person = browser();
    log_in(&app, &person).await;
    let page = person.get(app.url("/api-keys")).send().await.expect("page").text().await.expect("body");
    assert!(page.contains("<label for=\"key-expires\">Expires after (days)</label>"), "{page}");
    let csrf = csrf_of(&page);
    let post = |days: &'static str| {
        let form = [("csrf", csrf.clone()), ("name", "nightly".to_owned()), ("expires_in_days", days.to_owned())];
        let request = person.post(app.url("/api-keys")).form(&form);
        async move { request.send().await.expect("post") }
    };

    for bad in ["0", "abc", "4000"] {
        let refused = post(bad).await;
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "{bad}");
        let page = refused.text().await.expect("page");
        assert!(page.contains("data-error-for=\"expires_in_days\" aria-live=\"polite\">"), "{page}");
        assert!(page.contains("aria-invalid=\"true\""), "{page}");
    }
    assert_eq!(app.state.store.list_api_keys(&alice.user.id).await.expect("keys").len(), 1, "nothing stored");

    let created = post("2").await;
    assert_eq!(created.status(), StatusCode::OK);
    let key = new_key_of(&created.text().await.expect("page"));
    let stored = app.state.store.list_api_keys(&alice.user.id).await.expect("keys");
    let record = stored.iter().find(|k| k.name == "nightly").expect("stored");
    assert_eq!(record.expires_at, Some(app.clock.now().plus_secs(2 * DAY)));

    let list = person.get(app.url("/api-keys")).send().await.expect("page").text().await.expect("body");
    assert!(list.contains("<dt>Expires</dt>") && list.contains(">expires in "), "{list}");
    assert_eq!(get(&app, &key, "/api/v1/connections/crm/token").await.0, StatusCode::OK);

    app.clock.advance(2 * DAY);
    assert_eq!(get(&app, &key, "/api/v1/connections/crm/token").await.0, StatusCode::UNAUTHORIZED);
    // The session has expired too by now: log in again to see the list.
    log_in(&app, &person).await;
    let list = person.get(app.url("/api-keys")).send().await.expect("page").text().await.expect("body");
    assert!(list.contains("status-revoked\">Expired</span>") && list.contains(">expired "), "{list}");
}

async fn send(
    app: &TestApp,
    key: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = app.http.request(method, app.url(path)).bearer_auth(key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    (status, response.json().await.unwrap_or_default())
}

#[tokio::test]
async fn the_json_api_creates_expiring_keys_lists_and_revokes_them() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    app.connect(&alice, "crm", &provider, "s").await;
    let post = reqwest::Method::POST;

    let response = app
        .http
        .post(app.url("/api/v1/api-keys"))
        .bearer_auth(&alice.key)
        .json(&json!({"name": "ci", "handles": ["crm"], "expires_in_days": 1}))
        .send()
        .await
        .expect("create");
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let created: Value = response.json().await.expect("json");
    let key = created["key"].as_str().expect("the key").to_owned();
    assert!(key.starts_with("lk_"), "{created}");
    assert_eq!(created["api_key"]["status"], "active");
    assert_eq!(created["api_key"]["handles"], json!(["crm"]));
    assert_eq!(created["api_key"]["expires_at"], app.clock.now().plus_secs(DAY).to_rfc3339());

    // Refused input, each with the field named; nothing stored.
    for (body, field) in [
        (json!({"name": "x", "expires_in_days": 0}), "expires_in_days"),
        (json!({"name": " "}), "name"),
        (json!({"name": "x", "handles": ["Not A Handle"]}), "handles"),
    ] {
        let (status, answer) = send(&app, &alice.key, post.clone(), "/api/v1/api-keys", Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert_eq!(answer["field"], field, "{answer}");
    }
    let (status, _) =
        send(&app, &alice.key, post.clone(), "/api/v1/api-keys", Some(json!({"name": "x", "expires": 3}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "unknown fields are refused");

    // A key limited to handles cannot manage keys; an expiring key cannot mint one that outlives it.
    let (status, answer) = send(&app, &key, reqwest::Method::GET, "/api/v1/api-keys", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    let (_, open_ended) =
        send(&app, &alice.key, post.clone(), "/api/v1/api-keys", Some(json!({"name": "short", "expires_in_days": 2})))
            .await;
    let short = open_ended["key"].as_str().expect("key").to_owned();
    let (status, answer) = send(&app, &short, post.clone(), "/api/v1/api-keys", Some(json!({"name": "forever"}))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    assert!(answer["error"].as_str().unwrap_or_default().contains("must expire by then"), "{answer}");
    let (status, _) =
        send(&app, &short, post.clone(), "/api/v1/api-keys", Some(json!({"name": "shorter", "expires_in_days": 1})))
            .await;
    assert_eq!(status, StatusCode::CREATED);

    // Expired: 401, and the list says so.
    assert_eq!(get(&app, &key, "/api/v1/connections/crm/token").await.0, StatusCode::OK);
    app.clock.advance(DAY);
    let (status, answer) = get(&app, &key, "/api/v1/connections/crm/token").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
    let (status, list) = send(&app, &alice.key, reqwest::Method::GET, "/api/v1/api-keys", None).await;
    assert_eq!(status, StatusCode::OK);
    let keys = list["api_keys"].as_array().expect("a list");
    let ci = keys.iter().find(|k| k["name"] == "ci").expect("listed");
    assert_eq!(ci["status"], "expired");
    assert!(keys.iter().all(|k| k.get("key").is_none() && k.get("key_hash").is_none()), "{list}");

    // Revoked: 204, then 404, and the key is refused.
    let path = format!("/api/v1/api-keys/{}", open_ended["api_key"]["id"].as_str().expect("id"));
    assert_eq!(send(&app, &alice.key, reqwest::Method::DELETE, &path, None).await.0, StatusCode::NO_CONTENT);
    assert_eq!(send(&app, &alice.key, reqwest::Method::DELETE, &path, None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(get(&app, &short, "/api/v1/connections").await.0, StatusCode::UNAUTHORIZED);

    let (_, document) = send(&app, &alice.key, reqwest::Method::GET, "/api/v1/openapi.json", None).await;
    assert!(document["paths"]["/api/v1/api-keys"]["post"].is_object(), "described in the OpenAPI document");
}
