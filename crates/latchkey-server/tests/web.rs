//! The web UI as a person uses it without JavaScript, and as `app.js` uses it: first-run set-up, log-in, the
//! list, the connection form, and the anti-forgery checks. The real server on a loopback port, a plain HTTP
//! client that keeps cookies and does not follow redirects, so each step's answer can be checked.

#[path = "api/helpers.rs"]
#[allow(dead_code, reason = "shared with the API tests; this file uses only part of it")]
mod helpers;
#[path = "api/provider.rs"]
#[allow(dead_code, reason = "shared with the API tests; this file uses only part of it")]
mod provider;

use std::time::Duration;

use helpers::{TestApp, secret, spawn_app};
use provider::MockProvider;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, LOCATION, ORIGIN, SET_COOKIE};

/// The password `TestApp::caller` gives its users.
const PASSWORD: &str = "correct horse battery";

/// A browser that keeps cookies but stops at every redirect.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// The value of the first hidden `csrf` field of a page.
fn csrf_of(page: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = page.find(marker).expect("the page has a csrf field") + marker.len();
    let end = page[start..].find('"').expect("closing quote");
    page[start..start + end].to_owned()
}

fn location(response: &reqwest::Response) -> String {
    response.headers().get(LOCATION).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

/// A person logged in through the form, with the anti-forgery token of their pages.
struct Person {
    browser: reqwest::Client,
    csrf: String,
}

async fn log_in(app: &TestApp, username: &str) -> Person {
    let browser = browser();
    let response = browser
        .post(app.url("/login"))
        .form(&[("username", username), ("password", PASSWORD)])
        .send()
        .await
        .expect("log in");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/connections");
    let page = browser.get(app.url("/connections")).send().await.expect("list").text().await.expect("page");
    Person { csrf: csrf_of(&page), browser }
}

fn form_fields<'a>(csrf: &'a str, provider: &MockProvider, handle: &'a str, secret: &'a str) -> Vec<(&'a str, String)> {
    vec![
        ("csrf", csrf.to_owned()),
        ("provider", "custom".to_owned()),
        ("client_id", "client-1".to_owned()),
        ("client_secret", secret.to_owned()),
        ("authorization_url", provider.authorization_url()),
        ("token_url", provider.token_url()),
        ("name", "My CRM".to_owned()),
        ("handle", handle.to_owned()),
        ("scopes", "read write".to_owned()),
    ]
}

#[tokio::test]
async fn the_set_up_link_creates_the_administrator_and_logs_in() {
    let app = spawn_app().await;
    let link = app.setup_link.clone().expect("a set-up link while no user exists");
    let browser = browser();

    let home = browser.get(app.url("/")).send().await.expect("home");
    assert_eq!(home.status(), StatusCode::OK);
    assert!(home.text().await.expect("page").contains("set-up link"), "the home page says set-up is pending");

    let form = browser.get(&link).send().await.expect("set-up page");
    assert_eq!(form.status(), StatusCode::OK);
    let page = form.text().await.expect("page");
    assert!(page.contains("<label for=\"username\">Username</label>"), "{page}");
    assert!(page.contains("<label for=\"password\">Password</label>"), "{page}");

    let short = browser.post(&link).form(&[("username", "admin"), ("password", "short")]).send().await.expect("post");
    assert_eq!(short.status(), StatusCode::BAD_REQUEST);
    assert!(short.text().await.expect("page").contains("too short"));

    let done = browser.post(&link).form(&[("username", "admin"), ("password", PASSWORD)]).send().await.expect("post");
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&done), "/connections");
    let cookie = done.headers().get(SET_COOKIE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert!(cookie.starts_with("latchkey_session=") && cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"));

    let list = browser.get(app.url("/connections")).send().await.expect("list");
    assert_eq!(list.status(), StatusCode::OK);
    let page = list.text().await.expect("page");
    assert!(page.contains("OAuth2 Tokens") && page.contains("admin"), "{page}");

    let admin = app.state.store.user_by_username("admin").await.expect("store").expect("the admin exists");
    assert!(admin.is_admin);

    let again = reqwest::Client::new().get(&link).send().await.expect("used link");
    assert_eq!(again.status(), StatusCode::GONE, "a used set-up link works no more");
    let home = browser.get(app.url("/")).send().await.expect("home");
    assert_eq!(location(&home), "/connections");
    app.stop().await;
}

#[tokio::test]
async fn a_wrong_password_shows_the_form_again_with_401() {
    let app = spawn_app().await;
    app.caller("alice", None).await;
    let response = browser()
        .post(app.url("/login"))
        .form(&[("username", "alice"), ("password", "not the password")])
        .send()
        .await
        .expect("log in");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().get(SET_COOKIE).is_none());
    let page = response.text().await.expect("page");
    assert!(page.contains("The username or password is wrong."), "{page}");
    assert!(page.contains("value=\"alice\""), "the username is kept: {page}");

    let anonymous = browser().get(app.url("/connections")).send().await.expect("list");
    assert_eq!(anonymous.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&anonymous), "/login");
    app.stop().await;
}

#[tokio::test]
async fn the_list_shows_name_handle_status_and_how_to_use_it() {
    let app = spawn_app().await;
    let client_secret = secret("cs");
    let provider = MockProvider::start("client-1", &client_secret).await;
    let alice = app.caller("alice", None).await;
    let person = log_in(&app, "alice").await;

    let empty = person.browser.get(app.url("/connections")).send().await.expect("list").text().await.expect("page");
    assert!(empty.contains("No connections yet") && empty.contains("Connect to Service"), "{empty}");

    app.connect(&alice, "crm", &provider, &client_secret).await;
    let page = person.browser.get(app.url("/connections")).send().await.expect("list").text().await.expect("page");
    assert!(page.contains("Test crm"), "the name: {page}");
    assert!(page.contains("<code>crm</code>"), "the handle: {page}");
    assert!(page.contains(">Connected<"), "the status in words: {page}");
    assert!(page.contains("/api/v1/connections/crm/token") && page.contains("latchkey token crm"), "{page}");
    assert!(!page.contains(&client_secret), "no secret on the page");
    for token in provider.issued_tokens() {
        assert!(!page.contains(&token), "no token on the page");
    }
    app.stop().await;
}

#[tokio::test]
async fn forms_without_the_anti_forgery_token_or_from_another_origin_are_refused() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    let person = log_in(&app, "alice").await;

    let mut fields = form_fields("", &provider, "crm", "s");
    fields.retain(|(k, _)| *k != "csrf");
    let missing = person.browser.post(app.url("/connections")).form(&fields).send().await.expect("post");
    assert_eq!(missing.status(), StatusCode::FORBIDDEN);
    assert!(missing.text().await.expect("page").contains("Reload the page"));

    let wrong = form_fields("not-the-token", &provider, "crm", "s");
    let refused = person.browser.post(app.url("/connections")).form(&wrong).send().await.expect("post");
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);

    let fields = form_fields(&person.csrf, &provider, "crm", "s");
    let foreign = person
        .browser
        .post(app.url("/connections"))
        .header(ORIGIN, "https://evil.example")
        .form(&fields)
        .send()
        .await
        .expect("post");
    assert_eq!(foreign.status(), StatusCode::FORBIDDEN);
    let foreign_login = browser()
        .post(app.url("/login"))
        .header(ORIGIN, "https://evil.example")
        .form(&[("username", "alice"), ("password", PASSWORD)])
        .send()
        .await
        .expect("post");
    assert_eq!(foreign_login.status(), StatusCode::FORBIDDEN);

    let (status, body) = app.api(&alice, reqwest::Method::GET, "/api/v1/connections", None).await;
    assert_eq!(status, 200);
    assert_eq!(body["connections"].as_array().map(Vec::len), Some(0), "nothing was created: {body}");

    let own_origin = app.state.config.public_origin();
    let same = person.browser.post(app.url("/connections")).header(ORIGIN, own_origin).form(&fields).send().await;
    assert_eq!(same.expect("post").status(), StatusCode::SEE_OTHER, "the server's own origin passes");

    let logout = person.browser.post(app.url("/logout")).form(&[("csrf", "wrong")]).send().await.expect("post");
    assert_eq!(logout.status(), StatusCode::FORBIDDEN);
    let logout = person.browser.post(app.url("/logout")).form(&[("csrf", &person.csrf)]).send().await.expect("post");
    assert_eq!(logout.status(), StatusCode::SEE_OTHER);
    let after = person.browser.get(app.url("/connections")).send().await.expect("list");
    assert_eq!(location(&after), "/login", "the session ended");
    app.stop().await;
}

#[tokio::test]
async fn the_form_creates_a_connection_and_leads_to_its_authorization_link() {
    let app = spawn_app().await;
    let client_secret = secret("cs");
    let provider = MockProvider::start("client-1", &client_secret).await;
    app.caller("alice", None).await;
    let person = log_in(&app, "alice").await;

    let form = person.browser.get(app.url("/connections/new")).send().await.expect("form").text().await.expect("page");
    for label in [
        "Service",
        "OAuth Redirect URL",
        "Client ID",
        "Client Secret",
        "Authorization URL",
        "Token URL",
        "OAuth Name",
        "Handle",
        "Scopes",
    ] {
        assert!(form.contains(&format!(">{label}</label>")), "label {label}: {form}");
    }
    assert!(form.contains("Custom OAuth 2.0") && form.contains("Generate and Authorize"));
    assert!(form.contains(&app.url("/oauth2/callback")), "the redirect URL to copy");

    // Without JavaScript: a 303 to the link, which the browser follows through the provider to the callback.
    let fields = form_fields(&person.csrf, &provider, "crm", &client_secret);
    let created = person.browser.post(app.url("/connections")).form(&fields).send().await.expect("create");
    assert_eq!(created.status(), StatusCode::SEE_OTHER);
    let link = location(&created);
    assert!(link.starts_with(&app.url("/oauth2/start/")), "{link}");
    let (status, page) = app.follow(&link).await;
    assert_eq!(status, 200, "{page}");

    // A refused field: the form again, 400, the values kept but not the secret, the error next to the field.
    let taken = person.browser.post(app.url("/connections")).form(&fields).send().await.expect("create");
    assert_eq!(taken.status(), StatusCode::BAD_REQUEST);
    let page = taken.text().await.expect("page");
    assert!(page.contains("data-error-for=\"handle\" aria-live=\"polite\">You already have a connection"), "{page}");
    assert!(page.contains(&provider.token_url()) && page.contains("value=\"My CRM\""), "values kept: {page}");
    assert!(!page.contains(&client_secret), "the secret is never sent back");

    // With JavaScript: JSON both ways.
    let fields = form_fields(&person.csrf, &provider, "crm-2", &client_secret);
    let json = person
        .browser
        .post(app.url("/connections"))
        .header(ACCEPT, "application/json")
        .form(&fields)
        .send()
        .await
        .expect("create");
    assert_eq!(json.status(), StatusCode::CREATED);
    let body: serde_json::Value = json.json().await.expect("json");
    assert!(body["authorization_link"].as_str().is_some_and(|l| l.starts_with(&app.url("/oauth2/start/"))));
    let mut bad = form_fields(&person.csrf, &provider, "Bad Handle", &client_secret);
    bad.retain(|(k, _)| *k != "token_url");
    let refused = person
        .browser
        .post(app.url("/connections"))
        .header(ACCEPT, "application/json")
        .form(&bad)
        .send()
        .await
        .expect("create");
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = refused.json().await.expect("json");
    assert_eq!(body["field"], "handle", "{body}");
    assert!(body["error"].as_str().is_some_and(|e| e.contains("uppercase")), "{body}");

    let list = person.browser.get(app.url("/connections")).send().await.expect("list").text().await.expect("page");
    assert!(list.contains(">Connected<") && list.contains("Pending authorization"), "{list}");
    app.stop().await;
}

#[tokio::test]
async fn the_edit_form_never_contains_the_stored_client_secret() {
    let app = spawn_app().await;
    let client_secret = secret("cs");
    let provider = MockProvider::start("client-1", &client_secret).await;
    let alice = app.caller("alice", None).await;
    app.connect(&alice, "crm", &provider, &client_secret).await;
    let person = log_in(&app, "alice").await;

    let response = person.browser.get(app.url("/connections/crm/edit")).send().await.expect("edit");
    assert_eq!(response.status(), StatusCode::OK);
    let page = response.text().await.expect("page");
    assert!(!page.contains(&client_secret), "{page}");
    assert!(page.contains("id=\"client_secret\" name=\"client_secret\" type=\"password\" value=\"\""), "{page}");
    assert!(page.contains("stored; leave empty to keep"), "{page}");
    assert!(page.contains(&provider.authorization_url()) && page.contains("value=\"client-1\""), "{page}");

    // Saving with the secret left empty keeps it and leads to a fresh authorization link.
    let mut fields = form_fields(&person.csrf, &provider, "crm", "");
    fields.retain(|(k, _)| *k != "handle");
    let saved = person.browser.post(app.url("/connections/crm/edit")).form(&fields).send().await.expect("save");
    assert_eq!(saved.status(), StatusCode::SEE_OTHER);
    assert!(location(&saved).starts_with(&app.url("/oauth2/start/")));
    let (status, page) = app.follow(&location(&saved)).await;
    assert_eq!(status, 200, "the stored secret still works: {page}");

    let reconnect = person
        .browser
        .post(app.url("/connections/crm/reconnect"))
        .header(ACCEPT, "application/json")
        .form(&[("csrf", &person.csrf)])
        .send()
        .await
        .expect("reconnect");
    assert_eq!(reconnect.status(), StatusCode::OK);

    let ask = person.browser.post(app.url("/connections/crm/delete")).form(&[("csrf", &person.csrf)]).send().await;
    let ask = ask.expect("delete without confirmation");
    assert_eq!(ask.status(), StatusCode::OK, "asks first");
    assert!(ask.text().await.expect("page").contains("name=\"confirmed\" value=\"yes\""));
    let deleted = person
        .browser
        .post(app.url("/connections/crm/delete"))
        .form(&[("csrf", person.csrf.as_str()), ("confirmed", "yes")])
        .send()
        .await
        .expect("delete");
    assert_eq!(deleted.status(), StatusCode::SEE_OTHER);
    let gone = person.browser.get(app.url("/connections/crm/edit")).send().await.expect("edit");
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    app.stop().await;
}
