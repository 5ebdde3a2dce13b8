//! Doors an attacker would try on the web UI: forging the UI's forms from another site, and smuggling markup into
//! the pages through a provider's answers (guessing passwords is in `log_in_limits.rs`). Each test fails if its
//! door reopens.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{ORIGIN, RETRY_AFTER};
use reqwest::{Method, StatusCode};

use crate::helpers::{Caller, NameMap, Options, TestApp, spawn_app, spawn_with};
use crate::provider::{Canned, MockProvider};
use crate::quirky::{self, Answer, Quirky, body, connect};

/// The password `TestApp::caller` gives its users.
pub const PASSWORD: &str = "correct horse battery";

/// A browser that keeps cookies, stops at redirects, and connects from `from` (any 127.x address reaches the
/// server on 127.0.0.1).
pub fn browser_from(from: IpAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .local_address(from)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

pub fn loopback(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

pub async fn try_login(app: &TestApp, from: IpAddr, username: &str, password: &str) -> reqwest::Response {
    browser_from(from)
        .post(app.url("/login"))
        .form(&[("username", username), ("password", password)])
        .send()
        .await
        .expect("log in")
}

/// A logged-in person with the anti-forgery token of their pages.
struct Person {
    browser: reqwest::Client,
    csrf: String,
}

async fn log_in(app: &TestApp, username: &str) -> Person {
    let browser = browser_from(loopback(1));
    let response = try_login_with(&browser, app, username).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let page = browser.get(app.url("/connections")).send().await.expect("list").text().await.expect("page");
    let marker = "name=\"csrf\" value=\"";
    let start = page.find(marker).expect("a csrf field") + marker.len();
    let csrf = page[start..start + page[start..].find('"').expect("quote")].to_owned();
    Person { browser, csrf }
}

async fn try_login_with(browser: &reqwest::Client, app: &TestApp, username: &str) -> reqwest::Response {
    browser.post(app.url("/login")).form(&[("username", username), ("password", PASSWORD)]).send().await.expect("post")
}

/// What a forged form could change: the connection as the API reads it, and the user's API keys.
async fn snapshot(app: &TestApp, caller: &Caller) -> (serde_json::Value, Vec<(String, bool)>) {
    let (status, connection) = app.api(caller, Method::GET, "/api/v1/connections/crm", None).await;
    assert_eq!(status, 200, "{connection}");
    let keys = app.state.store.list_api_keys(&caller.user.id).await.expect("keys");
    let mut keys: Vec<_> = keys.into_iter().map(|k| (k.id.to_string(), k.revoked_at.is_some())).collect();
    keys.sort();
    (connection, keys)
}

#[tokio::test]
async fn forged_forms_from_another_site_change_nothing() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "cs").await;
    let alice = app.caller("alice", None).await;
    app.connect(&alice, "crm", &provider, "cs").await;
    let person = log_in(&app, "alice").await;
    let key_id = app.state.store.list_api_keys(&alice.user.id).await.expect("keys")[0].id.to_string();
    let before = snapshot(&app, &alice).await;

    let edit = vec![
        ("provider", "custom".to_owned()),
        ("client_id", "attacker".to_owned()),
        ("authorization_url", provider.authorization_url()),
        ("token_url", provider.token_url()),
        ("name", "Hijacked".to_owned()),
        ("handle", "crm".to_owned()),
        ("scopes", "admin".to_owned()),
    ];
    let forms: Vec<(String, Vec<(&str, String)>)> = vec![
        ("/connections/crm/edit".to_owned(), edit),
        ("/connections/crm/reconnect".to_owned(), vec![]),
        ("/connections/crm/delete".to_owned(), vec![("confirmed", "yes".to_owned())]),
        ("/api-keys".to_owned(), vec![("name", "attacker".to_owned()), ("handles", String::new())]),
        (format!("/api-keys/{key_id}/revoke"), vec![("confirmed", "yes".to_owned())]),
        (
            "/settings/notifications".to_owned(),
            vec![("url", "http://127.0.0.1:9/hook".to_owned()), ("action", "save".to_owned())],
        ),
        ("/logout".to_owned(), vec![]),
    ];
    for (path, fields) in &forms {
        // Without the token (what a foreign page can send), with a wrong one, and with the right one from a
        // foreign origin (as if it had leaked).
        let attempts =
            [(None, None), (Some("forged"), None), (Some(person.csrf.as_str()), Some("https://evil.example"))];
        for (token, origin) in attempts {
            let mut form = fields.clone();
            if let Some(token) = token {
                form.push(("csrf", token.to_owned()));
            }
            let mut request = person.browser.post(app.url(path)).form(&form);
            if let Some(origin) = origin {
                request = request.header(ORIGIN, origin);
            }
            let answer = request.send().await.expect("post");
            assert_eq!(answer.status(), StatusCode::FORBIDDEN, "{path} token={token:?} origin={origin:?}");
        }
        // A cross-site fetch without Origin is refused by Fetch Metadata alone.
        let mut form = fields.clone();
        form.push(("csrf", person.csrf.clone()));
        let answer = person
            .browser
            .post(app.url(path))
            .header("sec-fetch-site", "cross-site")
            .form(&form)
            .send()
            .await
            .expect("post");
        assert_eq!(answer.status(), StatusCode::FORBIDDEN, "{path} cross-site");
    }
    assert_eq!(snapshot(&app, &alice).await, before, "no forged form changed anything");
    assert!(app.state.store.webhook(&alice.user.id).await.expect("webhook").is_none(), "no webhook was set");
    assert_eq!(app.token(&alice, "crm").await.0, 200, "the key still works");
    let still = person.browser.get(app.url("/connections")).send().await.expect("list");
    assert_eq!(still.status(), StatusCode::OK, "the session was not ended by a forged logout");
    assert!(provider.authorize_calls().len() <= 1, "no new authorization was started");
    app.stop().await;
}

/// Starts the authorization of `link` by hand and returns the callback's `state` with the browser that holds
/// the binding cookie.
async fn start_flow(link: &str) -> (reqwest::Client, String) {
    let browser = browser_from(loopback(1));
    let response = browser.get(link).send().await.expect("start");
    assert_eq!(response.status(), StatusCode::FOUND);
    let location = response.headers()["location"].to_str().expect("location").to_owned();
    let state = crate::helpers::state_in(&location);
    (browser, state)
}

#[tokio::test]
async fn markup_from_the_provider_on_the_callback_page_is_inert() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "cs").await;
    let alice = app.caller("alice", None).await;
    let payload = "<script>alert(1)</script><img src=x onerror=alert(2)>";

    // An error in the redirect back from the provider.
    let link = app.create_connection(&alice, "refused", &provider, "cs").await;
    let (browser, state) = start_flow(&link).await;
    let callback = browser
        .get(app.url("/oauth2/callback"))
        .query(&[("state", state.as_str()), ("error", "access_denied"), ("error_description", payload)])
        .send()
        .await
        .expect("callback");
    let page = callback.text().await.expect("page");
    assert!(page.contains("access_denied"), "the page says what happened: {page}");
    assert!(!page.contains("<script>alert") && !page.contains("<img"), "{page}");

    // An error in the token endpoint's answer.
    let link = app.create_connection(&alice, "failing", &provider, "cs").await;
    provider
        .push_canned(Canned::json(400, serde_json::json!({"error": "invalid_grant", "error_description": payload})));
    let (status, page) = app.follow(&link).await;
    assert_eq!(status, 502, "{page}");
    assert!(page.contains("invalid_grant"), "{page}");
    assert!(!page.contains("<script>alert") && !page.contains("<img"), "{page}");

    // Whatever the last error says, the list shows it as text.
    let person = log_in(&app, "alice").await;
    let list = person.browser.get(app.url("/connections")).send().await.expect("list").text().await.expect("page");
    assert!(!list.contains("<script>alert") && !list.contains("<img"), "{list}");
    app.stop().await;
}

#[tokio::test]
async fn kept_values_are_stored_without_control_characters() {
    let app = spawn_app().await;
    let provider = Quirky::start("client-1", "s").await;
    provider.expires_in(None).callback_extra(&[("realmId", "46\u{1b}[2J20\u{7}")]).shape(|i| {
        Answer::json(
            200,
            &serde_json::json!({"access_token": i.access, "refresh_token": i.refresh,
                "instance_url": "https://acme\u{0}.example.com\r\nX-Injected: 1", "count": 7}),
        )
    });
    let alice = app.caller("alice", None).await;
    let overrides =
        serde_json::json!({"keep_response_fields": ["instance_url", "count"], "keep_callback_params": ["realmId"]});
    connect(&app, &alice, body("kept", &provider, "s", overrides)).await;

    let expected = serde_json::json!({"instance_url": "https://acme.example.comX-Injected: 1", "count": "7",
        "realmId": "46[2J20"});
    assert_eq!(quirky::read(&app, &alice, "kept").await["extra"], expected);
    let (_, token) = app.token(&alice, "kept").await;
    assert_eq!(token["extra"], expected);
    let connections = app.state.store.list_connections(&alice.user.id).await.expect("connections");
    let stored = connections[0].tokens.as_ref().expect("tokens");
    for (name, value) in &stored.extra {
        assert!(!name.chars().chain(value.chars()).any(char::is_control), "{name}: {value:?}");
    }
    app.stop().await;
}

#[tokio::test]
async fn the_connection_form_refuses_a_token_url_that_resolves_inside_the_network() {
    let names = NameMap::loopback().with("idp.corp.example", &["10.1.2.3"]);
    let options = Options { allow_private_networks: false, lookup: Arc::new(names), ..Options::default() };
    let app = spawn_with(options).await;
    let alice = app.caller("alice", None).await;
    let person = log_in(&app, "alice").await;
    let form = [
        ("csrf", person.csrf.as_str()),
        ("provider", "custom"),
        ("client_id", "client-1"),
        ("client_secret", "cs"),
        ("authorization_url", "https://idp.corp.example/authorize"),
        ("token_url", "https://idp.corp.example/token"),
        ("name", "Inside"),
        ("handle", "inside"),
        ("scopes", "read"),
    ];
    let answer = person.browser.post(app.url("/connections")).form(&form).send().await.expect("post");
    assert_eq!(answer.status(), StatusCode::BAD_REQUEST);
    let page = answer.text().await.expect("page");
    let note = page.split("data-error-for=\"token_url\"").nth(1).unwrap_or_default();
    assert!(note.split("</").next().unwrap_or_default().contains("resolves to 10.1.2.3"), "{page}");
    let (_, list) = app.api(&alice, Method::GET, "/api/v1/connections", None).await;
    assert_eq!(list["connections"].as_array().map(Vec::len), Some(0), "nothing saved: {list}");
    app.stop().await;
}

/// Logs in with a browser that keeps no cookies and returns the session cookie (`name=value`) it was given.
async fn session_cookie(app: &TestApp, username: &str) -> String {
    let bare =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).no_proxy().build().expect("client");
    let response = try_login_with(&bare, app, username).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let set_cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().expect("ascii").to_owned())
        .find(|v| v.starts_with("latchkey_session="))
        .expect("a session cookie");
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax"), "{set_cookie}");
    set_cookie.split(';').next().expect("name=value").to_owned()
}

/// Opens the connection list presenting only `cookie`: the page when the session is alive, `None` when sent to
/// the log-in page.
async fn list_with(app: &TestApp, cookie: &str) -> Option<String> {
    let bare =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).no_proxy().build().expect("client");
    let response = bare.get(app.url("/connections")).header("cookie", cookie).send().await.expect("list");
    if response.status().is_redirection() {
        assert_eq!(response.headers()["location"], "/login");
        return None;
    }
    assert_eq!(response.status(), StatusCode::OK);
    Some(response.text().await.expect("page"))
}

#[tokio::test]
async fn a_session_ended_by_logging_out_cannot_be_replayed() {
    let app = spawn_app().await;
    app.caller("alice", None).await;
    let cookie = session_cookie(&app, "alice").await;
    let page = list_with(&app, &cookie).await.expect("logged in");
    let marker = "name=\"csrf\" value=\"";
    let start = page.find(marker).expect("a csrf field") + marker.len();
    let csrf = &page[start..start + page[start..].find('"').expect("quote")];

    let bare =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).no_proxy().build().expect("client");
    let logout =
        bare.post(app.url("/logout")).header("cookie", &cookie).form(&[("csrf", csrf)]).send().await.expect("post");
    assert_eq!(logout.status(), StatusCode::SEE_OTHER);
    // A copy of the cookie kept from before (by another tab, or someone who took it) no longer works.
    assert!(list_with(&app, &cookie).await.is_none(), "the session ended on the server, not only in the browser");
    app.stop().await;
}

#[tokio::test]
async fn a_session_expires_after_twelve_hours() {
    let app = spawn_app().await;
    app.caller("alice", None).await;
    let cookie = session_cookie(&app, "alice").await;
    app.clock.advance(12 * 3600 - 60);
    assert!(list_with(&app, &cookie).await.is_some(), "still alive a minute before the end");
    app.clock.advance(61);
    assert!(list_with(&app, &cookie).await.is_none(), "expired");
    app.stop().await;
}

/// Whether a property of that name holds a credential.
fn names_a_secret(name: &str) -> bool {
    let secrets = ["token", "access_token", "refresh_token", "id_token", "client_secret", "secret", "key", "api_key"];
    secrets.contains(&name) || ["password", "code_verifier", "device_code", "signing_secret"].contains(&name)
}

/// Whether `text` looks like a credential someone could use: an API key, a JWT, or a long run of random-looking
/// characters.
fn looks_like_a_credential(text: &str) -> bool {
    let long_random = text.len() >= 20
        && text.chars().all(|c| c.is_ascii_alphanumeric() || "-_.~+/=".contains(c))
        && text.chars().any(|c| c.is_ascii_digit())
        && text.chars().any(|c| c.is_ascii_uppercase());
    (text.starts_with("lk_") && text.len() > 12) || text.starts_with("eyJ") || long_random
}

/// Every example in `value` as (where, property name it describes, example).
fn examples<'a>(value: &'a serde_json::Value, at: String, property: &str, out: &mut Vec<(String, String, &'a str)>) {
    match value {
        serde_json::Value::Object(map) => {
            for (name, inner) in map {
                let here = format!("{at}/{name}");
                if name == "example" || name == "examples" || name == "default" {
                    let mut strings = Vec::new();
                    strings_in(inner, &mut strings);
                    out.extend(strings.into_iter().map(|s| (here.clone(), property.to_owned(), s)));
                } else if at.ends_with("/properties") {
                    examples(inner, here, name, out);
                } else {
                    examples(inner, here, property, out);
                }
            }
        }
        serde_json::Value::Array(items) => {
            for (n, inner) in items.iter().enumerate() {
                examples(inner, format!("{at}/{n}"), property, out);
            }
        }
        _ => {}
    }
}

fn strings_in<'a>(value: &'a serde_json::Value, out: &mut Vec<&'a str>) {
    match value {
        serde_json::Value::String(text) => out.push(text),
        serde_json::Value::Array(items) => items.iter().for_each(|v| strings_in(v, out)),
        serde_json::Value::Object(map) => map.values().for_each(|v| strings_in(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn the_openapi_examples_hold_no_credential() {
    let app = spawn_app().await;
    let document: serde_json::Value =
        app.http.get(app.url("/api/v1/openapi.json")).send().await.expect("openapi").json().await.expect("json");
    let mut found = Vec::new();
    examples(&document, String::new(), "", &mut found);
    assert!(found.len() >= 10, "the walk sees the examples: {found:?}");
    let shown = found.iter().find(|(_, property, _)| property == "token");
    let shown = shown.unwrap_or_else(|| panic!("the token's example: {found:#?}"));
    assert!(shown.2.starts_with('<') && shown.2.ends_with('>'), "{shown:?}");
    for (at, property, example) in &found {
        assert!(!looks_like_a_credential(example), "{at}: {example}");
        if names_a_secret(property) {
            assert!(
                example.starts_with('<') && example.ends_with('>'),
                "{at} ({property}) is a placeholder: {example}"
            );
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn each_key_has_its_own_rate_limit_even_for_one_user() {
    let options = Options { api_rate_limit: std::num::NonZeroU32::new(1).expect("non-zero"), ..Options::default() };
    let app = spawn_with(options).await;
    let provider = MockProvider::start("client-1", "cs").await;
    let alice = app.caller("alice", None).await;
    app.connect(&alice, "crm", &provider, "cs").await;

    // Spend the first key's bucket on the token endpoint (bounded: one request a second gets through at most).
    let mut refused = None;
    for _ in 0..20 {
        let response =
            app.http.get(app.url("/api/v1/connections/crm/token")).bearer_auth(&alice.key).send().await.expect("token");
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            refused = Some(response);
            break;
        }
        assert_eq!(response.status(), StatusCode::OK);
    }
    let refused = refused.expect("the first key was held back");
    assert!(refused.headers().contains_key(RETRY_AFTER));
    let body: serde_json::Value = refused.json().await.expect("json");
    assert!(body["error"].as_str().is_some_and(|e| e.contains("'test'")), "names the key: {body}");

    // A second key of the same user starts with a full bucket.
    let now = latchkey_core::Clock::now(app.clock.as_ref());
    let store = app.state.store.as_ref();
    let (_, second) =
        latchkey_server::service::api_keys::create(store, &alice.user, "second", None, now).await.expect("key");
    let second = Caller { user: alice.user.clone(), key: second.expose().to_owned() };
    let (status, token) = app.token(&second, "crm").await;
    assert_eq!(status, 200, "the other key is not held back: {token}");
    app.stop().await;
}

#[tokio::test]
async fn the_callback_page_keeps_its_address_private_cannot_be_framed_and_tells_only_this_origin() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "cs").await;
    let alice = app.caller("alice", None).await;
    let link = app.create_connection(&alice, "crm", &provider, "cs").await;
    let browser = browser_from(loopback(1));
    let mut next = link;
    let mut callback = None;
    for _ in 0..4 {
        let response = browser.get(&next).send().await.expect("step");
        if !response.status().is_redirection() {
            callback = Some(response);
            break;
        }
        next = response.headers()["location"].to_str().expect("location").to_owned();
    }
    let callback = callback.expect("the flow ends on the callback page");
    assert_eq!(callback.status(), StatusCode::OK);
    let header = |name: &str| callback.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert_eq!(header("referrer-policy"), "no-referrer", "the code in the address goes nowhere");
    let policy = header("content-security-policy");
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    let scripts = policy.split(';').find(|d| d.trim().starts_with("script-src")).expect("script-src").trim().to_owned();
    assert_eq!(scripts, "script-src 'self'", "no inline script: {policy}");
    let page = callback.text().await.expect("page");
    let origin = app.state.config.public_origin();
    assert!(page.contains(&format!("data-origin=\"{origin}\"")), "the message names this origin: {page}");
    assert!(page.contains("src=\"/assets/callback.js\"") && !page.contains("postMessage"), "{page}");
    app.stop().await;
}

#[tokio::test]
async fn changing_the_client_id_requires_a_new_authorization_and_spends_no_old_refresh_token() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "cs").await;
    let alice = app.caller("alice", None).await;
    app.connect(&alice, "crm", &provider, "cs").await;
    let body = serde_json::json!({"client_id": "client-2", "client_secret": "cs"});
    let (status, changed) = app.api(&alice, Method::PATCH, "/api/v1/connections/crm", Some(body)).await;
    assert_eq!(status, 200, "{changed}");
    for path in ["/api/v1/connections/crm/token", "/api/v1/connections/crm/token?force_refresh=true"] {
        let (status, body) = app.api(&alice, Method::GET, path, None).await;
        assert_eq!(status, 409, "{path}: {body}");
    }
    app.clock.advance(3600);
    let (status, body) = app.token(&alice, "crm").await;
    assert_eq!(status, 409, "{body}");
    assert!(provider.refresh_calls().is_empty(), "the refresh token of the old client id was never sent");
    app.stop().await;
}
