//! The web UI as a person uses it without JavaScript, and as `app.js` uses it: first-run set-up, log-in, the
//! list, the connection form, the handle check, API keys, escaping, and the anti-forgery checks. The real server
//! on a loopback port, a plain HTTP client that keeps cookies and does not follow redirects, so each step's
//! answer can be checked.

#[path = "web/compression.rs"]
mod compression;
#[path = "api/helpers.rs"]
#[allow(dead_code, reason = "shared with the API tests; this file uses only part of it")]
mod helpers;
#[path = "api/provider.rs"]
#[allow(dead_code, reason = "shared with the API tests; this file uses only part of it")]
mod provider;
#[path = "web/services.rs"]
mod services;

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

/// `text` with the five entities askama writes turned back into characters.
fn unescape(text: &str) -> String {
    text.replace("&#x27;", "'").replace("&quot;", "\"").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
}

/// The text of the element whose opening tag ends with `id="{id}">`.
fn element_text(page: &str, id: &str) -> String {
    let marker = format!("id=\"{id}\">");
    let start = page.find(&marker).unwrap_or_else(|| panic!("no element {id}: {page}")) + marker.len();
    let end = page[start..].find('<').expect("closing tag");
    unescape(&page[start..start + end])
}

/// The attribute names of every tag of `page`: a small scanner, enough for the server's own markup (user text
/// reaches pages only escaped, so a raw `<` always starts a tag).
fn attribute_names(page: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut rest = page;
    while let Some(open) = rest.find('<') {
        rest = &rest[open + 1..];
        if !rest.starts_with(|c: char| c.is_ascii_alphabetic()) {
            continue;
        }
        let tag_end = rest.find(|c: char| c.is_whitespace() || c == '>' || c == '/').unwrap_or(rest.len());
        let tag = rest[..tag_end].to_ascii_lowercase();
        let mut inside = &rest[tag_end..];
        loop {
            inside = inside.trim_start_matches(|c: char| c.is_whitespace() || c == '/');
            if inside.is_empty() || inside.starts_with('>') {
                break;
            }
            let name_end = inside.find(|c: char| c.is_whitespace() || c == '=' || c == '>').unwrap_or(inside.len());
            found.push((tag.clone(), inside[..name_end].to_ascii_lowercase()));
            inside = &inside[name_end..];
            if let Some(value) = inside.strip_prefix('=') {
                inside = match value.strip_prefix('"') {
                    Some(quoted) => &quoted[quoted.find('"').map_or(quoted.len(), |i| i + 1)..],
                    None => &value[value.find(|c: char| c.is_whitespace() || c == '>').unwrap_or(value.len())..],
                };
            }
        }
        rest = inside;
    }
    found
}

/// A page that a strict Content-Security-Policy can show whole: scripts only from files, no inline handlers or
/// styles.
fn assert_csp_clean(what: &str, page: &str) {
    let attributes = attribute_names(page);
    assert!(!attributes.is_empty(), "{what}: no tags found");
    for (tag, name) in &attributes {
        assert!(!name.starts_with("on"), "{what}: inline handler {name} on <{tag}>");
        assert_ne!(name, "style", "{what}: inline style on <{tag}>");
    }
    for (at, _) in page.match_indices("<script") {
        let tag = &page[at..at + page[at..].find('>').expect("tag end")];
        assert!(tag.contains(" src=\"/assets/"), "{what}: a script without src: {tag}");
        assert!(page[at + tag.len() + 1..].starts_with("</script>"), "{what}: a script with a body");
    }
    assert!(!page.contains("<style"), "{what}: an inline stylesheet");
}

fn location(response: &reqwest::Response) -> String {
    response.headers().get(LOCATION).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

/// A person logged in through the form, with the anti-forgery token of their pages.
struct Person {
    browser: reqwest::Client,
    csrf: String,
}

impl Person {
    /// The status and body of a page.
    async fn page(&self, app: &TestApp, path: &str) -> (StatusCode, String) {
        let response = self.browser.get(app.url(path)).send().await.expect("page");
        (response.status(), response.text().await.expect("body"))
    }

    /// Posts a form with this person's anti-forgery token.
    async fn post(&self, app: &TestApp, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let mut form = vec![("csrf", self.csrf.as_str())];
        form.extend_from_slice(fields);
        self.browser.post(app.url(path)).form(&form).send().await.expect("post")
    }

    /// What the handle check answers for `handle`.
    async fn check_handle(&self, app: &TestApp, handle: &str) -> serde_json::Value {
        let response = self
            .browser
            .get(app.url("/connections/handle-check"))
            .query(&[("handle", handle)])
            .header(ACCEPT, "application/json")
            .send()
            .await
            .expect("check");
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.expect("json")
    }
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
    // Not `no-referrer`: browsers would then post the form with `Origin: null`, which is refused.
    let policy = form.headers().get("referrer-policy").and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert_eq!(policy, "same-origin", "the set-up token stays on this site");
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
    // Ten minutes later by the server's clock: the token (one hour) expires in 50 minutes.
    app.clock.advance(600);
    let page = person.browser.get(app.url("/connections")).send().await.expect("list").text().await.expect("page");
    assert!(page.contains("Test crm"), "the name: {page}");
    assert!(page.contains("<code>crm</code>"), "the handle: {page}");
    assert!(page.contains(">Connected<"), "the status in words: {page}");
    assert!(page.contains("<dd>Custom OAuth 2.0</dd>"), "the provider: {page}");
    assert!(page.contains("<code>read write</code>"), "the scopes: {page}");
    assert!(page.contains(">expires in 50 min</time>"), "the expiry, relative: {page}");
    assert!(page.contains(">refreshed 10 min ago</time>"), "the last refresh, relative: {page}");
    assert!(page.contains("<time datetime=\"") && page.contains(" UTC\">"), "the exact times: {page}");
    // The snippets are rendered once, for a placeholder handle that app.js replaces with the row's when its "Use
    // it" opens; the JavaScript function once for the whole list. A thousand rows stay light.
    assert!(page.contains("<code>latchkey token crm</code>"), "the row's own command line: {page}");
    assert!(page.contains("<details class=\"usage\" data-usage><summary>Use it</summary>"), "{page}");
    assert!(page.contains("<template id=\"usage-template\">"), "{page}");
    assert_eq!(page.matches("async function getOAuthToken").count(), 1, "{page}");
    let js = element_text(&page, "js-function");
    assert!(js.starts_with("async function getOAuthToken(handle) {"), "{js}");
    assert!(js.contains("process.env.LATCHKEY_API_KEY"), "{js}");
    assert!(
        js.contains(&format!("fetch(\"{}\" + encodeURIComponent(handle)", app.url("/api/v1/connections/"))),
        "{js}"
    );
    assert_eq!(element_text(&page, "c-__handle__-js"), "const { token, error } = await getOAuthToken('__handle__')");
    let curl = element_text(&page, "c-__handle__-curl");
    assert!(curl.contains("Authorization: Bearer $LATCHKEY_API_KEY"), "{curl}");
    assert!(curl.contains(&app.url("/api/v1/connections/__handle__/token")), "{curl}");
    assert_eq!(element_text(&page, "c-__handle__-cli"), "latchkey token __handle__");
    assert!(page.contains("data-copy-target=\"js-function c-__handle__-js\""), "the JavaScript copy takes both");
    assert_eq!(page.matches("id=\"c-__handle__-curl\"").count(), 1, "once per list, not per row: {page}");
    assert!(!page.contains(&client_secret), "no secret on the page");
    for token in provider.issued_tokens() {
        assert!(!page.contains(&token), "no token on the page");
    }

    // The Settings area: both pages in the navigation, this one marked current.
    assert!(page.contains("<a href=\"/connections\" aria-current=\"page\">OAuth2 Tokens</a>"), "{page}");
    assert!(page.contains("<a href=\"/api-keys\">API Keys</a>") && page.contains(">Log out</button>"), "{page}");

    // One row on its own, for the script that updates the list in place.
    let (status, row) = person.page(&app, "/connections/crm/row").await;
    assert_eq!(status, StatusCode::OK);
    assert!(row.trim_start().starts_with("<li class=\"connection\" id=\"c-crm\"") && !row.contains("<html"), "{row}");
    assert!(row.contains(">Connected<") && row.contains(&format!("name=\"csrf\" value=\"{}\"", person.csrf)));
    let (status, _) = person.page(&app, "/connections/nope/row").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    app.stop().await;
}

#[tokio::test]
async fn each_status_is_explained_in_words() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "cs").await;
    let alice = app.caller("alice", None).await;
    app.create_connection(&alice, "waiting", &provider, "cs").await;
    provider.set_deny_authorization(true);
    let link = app.create_connection(&alice, "refused", &provider, "cs").await;
    let (status, page) = app.follow(&link).await;
    assert_eq!(status, 502, "the callback page says what the provider answered: {page}");
    let person = log_in(&app, "alice").await;

    // A connected connection whose refresh failed, as the refresher leaves it.
    provider.set_deny_authorization(false);
    app.connect(&alice, "broken", &provider, "cs").await;
    let broken = app.state.store.list_connections(&alice.user.id).await.expect("list");
    let broken = broken.iter().find(|c| c.handle.as_str() == "broken").expect("broken");
    let failure = latchkey_core::model::FailureWrite {
        status: latchkey_core::model::Status::Error,
        last_error: "the token endpoint answered 400 invalid_request".to_owned(),
        failure_count: 1,
        retry_after: None,
        now: latchkey_core::Clock::now(app.clock.as_ref()),
    };
    app.state.store.record_failure(&broken.id, &failure).await.expect("record_failure");

    let (_, page) = person.page(&app, "/connections").await;
    assert!(page.contains(">Pending authorization<") && page.contains("Not authorized yet"), "{page}");
    assert!(page.contains("<span class=\"muted\">no token yet</span>"), "{page}");
    let note_of = |handle: &str| {
        let row = page.split(&format!("id=\"c-{handle}\"")).nth(1).unwrap_or_default();
        (
            row.split("</tr>").next().unwrap_or_default().to_owned(),
            row.split("</p>").next().unwrap_or_default().to_owned(),
        )
    };
    let (row, note) = note_of("refused");
    assert!(row.contains(">Pending authorization<"), "a refused first authorization stays pending: {row}");
    assert!(note.contains("status-note problem") && note.contains("access_denied"), "last_error in words: {note}");
    let (row, note) = note_of("broken");
    assert!(row.contains(">Error<") && note.contains("invalid_request"), "{row}");
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

#[tokio::test]
async fn the_edit_form_asks_for_the_secret_again_when_it_would_go_elsewhere() {
    let app = spawn_app().await;
    let client_secret = secret("cs");
    let provider = MockProvider::start("client-1", &client_secret).await;
    let elsewhere = MockProvider::start("client-1", "other").await;
    let alice = app.caller("alice", None).await;
    app.connect(&alice, "crm", &provider, &client_secret).await;
    let person = log_in(&app, "alice").await;

    let mut fields = form_fields(&person.csrf, &provider, "crm", "");
    fields.retain(|(k, _)| *k != "handle");
    for field in &mut fields {
        if field.0 == "token_url" {
            field.1 = elsewhere.token_url();
        }
    }
    let refused = person.browser.post(app.url("/connections/crm/edit")).form(&fields).send().await.expect("save");
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let page = refused.text().await.expect("page");
    let error =
        page.split("id=\"client_secret-error\"").nth(1).and_then(|r| r.split("</p>").next()).unwrap_or_default();
    assert!(error.contains("token_url") && error.contains("client secret again"), "next to the field: {error}");
    let (_, read) = app.api(&alice, reqwest::Method::GET, "/api/v1/connections/crm", None).await;
    assert_eq!(read["connection"]["token_url"], provider.token_url(), "nothing was saved: {read}");
    assert_eq!(read["connection"]["status"], "connected");

    for field in &mut fields {
        if field.0 == "client_secret" {
            field.1 = "other".to_owned();
        }
    }
    let saved = person.browser.post(app.url("/connections/crm/edit")).form(&fields).send().await.expect("save");
    assert_eq!(saved.status(), StatusCode::SEE_OTHER);
    let (_, read) = app.api(&alice, reqwest::Method::GET, "/api/v1/connections/crm", None).await;
    assert_eq!(read["connection"]["status"], "pending", "{read}");
    assert!(elsewhere.token_calls().is_empty(), "nothing went to the new token URL before a new authorization");
    app.stop().await;
}

#[tokio::test]
async fn the_handle_check_says_why_a_handle_cannot_be_used() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "cs").await;
    let alice = app.caller("alice", None).await;
    app.create_connection(&alice, "crm", &provider, "cs").await;
    let person = log_in(&app, "alice").await;

    let long = "a".repeat(65);
    for (handle, why) in [
        ("Crm", "uppercase"),
        ("my crm", "space"),
        ("my_crm", "'_'"),
        (long.as_str(), "65 characters"),
        ("", "empty"),
        ("crm", "already"),
    ] {
        let answer = person.check_handle(&app, handle).await;
        assert_eq!(answer["ok"], false, "{handle}: {answer}");
        let message = answer["message"].as_str().unwrap_or_default();
        assert!(message.contains(why), "{handle}: {message}");
    }
    let free = person.check_handle(&app, "calendar").await;
    assert_eq!(free, serde_json::json!({"ok": true, "message": ""}));

    // Another person's handles are not theirs to see: "crm" is free for Bob.
    app.caller("bob", None).await;
    let bob = log_in(&app, "bob").await;
    assert_eq!(bob.check_handle(&app, "crm").await["ok"], true);

    let anonymous = browser()
        .get(app.url("/connections/handle-check?handle=crm"))
        .header(ACCEPT, "application/json")
        .send()
        .await
        .expect("check");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    app.stop().await;
}

#[tokio::test]
async fn an_api_key_is_shown_once_works_and_stops_working_when_revoked() {
    let app = spawn_app().await;
    let client_secret = secret("cs");
    let provider = MockProvider::start("client-1", &client_secret).await;
    let alice = app.caller("alice", None).await;
    app.connect(&alice, "crm", &provider, &client_secret).await;
    app.create_connection(&alice, "calendar", &provider, &client_secret).await;
    let person = log_in(&app, "alice").await;

    let (status, page) = person.page(&app, "/api-keys").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("<h1>API Keys</h1>") && page.contains("aria-current=\"page\">API Keys</a>"), "{page}");
    assert!(page.contains(">Name</label>") && page.contains(">Handles</label>"), "{page}");
    assert!(page.contains("Leave empty to allow all handles") && page.contains(">Create API Key</button>"));

    // Refused input: the form again, the error next to its field, nothing stored.
    let before = app.state.store.list_api_keys(&alice.user.id).await.expect("keys").len();
    let unnamed = person.post(&app, "/api-keys", &[("name", " "), ("handles", "")]).await;
    assert_eq!(unnamed.status(), StatusCode::BAD_REQUEST);
    let page = unnamed.text().await.expect("page");
    assert!(page.contains("data-error-for=\"name\" aria-live=\"polite\">The name is empty"), "{page}");
    let bad = person.post(&app, "/api-keys", &[("name", "ci"), ("handles", "crm, Calendar")]).await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let page = bad.text().await.expect("page");
    assert!(page.contains("data-error-for=\"handles\" aria-live=\"polite\">&#x27;Calendar&#x27; is not a handle"));
    assert!(page.contains("value=\"crm, Calendar\""), "the value is kept: {page}");
    assert_eq!(app.state.store.list_api_keys(&alice.user.id).await.expect("keys").len(), before);

    // Created: shown once, in the "New API key" region.
    let created = person.post(&app, "/api-keys", &[("name", "nightly-sync"), ("handles", "crm")]).await;
    assert_eq!(created.status(), StatusCode::OK);
    let page = created.text().await.expect("page");
    assert!(page.contains("<h2 id=\"new-key-title\">New API key</h2>") && page.contains("will not be"), "{page}");
    let key = element_text(&page, "new-key-value");
    assert!(key.starts_with("lk_") && key.len() > 40, "{key}");
    assert_eq!(page.matches(&key).count(), 1, "the key appears once, in its <code>");
    assert!(page.contains("data-copy-target=\"new-key-value\""), "with a Copy button");
    let (_, list) = person.page(&app, "/api-keys").await;
    assert!(!list.contains(&key) && !list.contains("New API key"), "never shown again: {list}");
    assert!(list.contains("nightly-sync") && list.contains(&format!("<code>{}…</code>", &key[..10])), "{list}");
    assert!(list.contains("<code>crm</code>") && list.contains(">all<"), "handles, or all: {list}");
    assert!(list.contains("<span class=\"muted\">never</span>"), "not used yet: {list}");
    let stored = app.state.store.list_api_keys(&alice.user.id).await.expect("keys");
    let record = stored.iter().find(|k| k.name == "nightly-sync").expect("stored");
    assert_eq!(record.key_hash, latchkey_crypto::tokens::digest(&key), "only the digest is stored");

    // The key works, within its handles.
    let use_key = |handle: &'static str| {
        let request = app.http.get(app.url(&format!("/api/v1/connections/{handle}/token"))).bearer_auth(&key);
        async move { request.send().await.expect("token").status() }
    };
    assert_eq!(use_key("crm").await, StatusCode::OK);
    assert_eq!(use_key("calendar").await, StatusCode::FORBIDDEN);
    let (_, list) = person.page(&app, "/api-keys").await;
    assert!(list.contains(">a few seconds ago</time>"), "last used: {list}");

    // Revoke: asked first without JavaScript, then refused at once.
    let path = format!("/api-keys/{}/revoke", record.id);
    let ask = person.post(&app, &path, &[]).await;
    assert_eq!(ask.status(), StatusCode::OK);
    let page = ask.text().await.expect("page");
    assert!(page.contains("Revoke “nightly-sync”?") && page.contains("name=\"confirmed\" value=\"yes\""), "{page}");
    assert_eq!(use_key("crm").await, StatusCode::OK, "not revoked before the confirmation");
    let revoked = person.post(&app, &path, &[("confirmed", "yes")]).await;
    assert_eq!(revoked.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&revoked), "/api-keys");
    assert_eq!(use_key("crm").await, StatusCode::UNAUTHORIZED);
    let (_, list) = person.page(&app, "/api-keys").await;
    assert!(list.contains(">Revoked<"), "{list}");
    let again = person.post(&app, &path, &[("confirmed", "yes")]).await;
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
    assert!(again.text().await.expect("page").contains("already revoked"));

    // Someone else's key cannot be revoked from here.
    let bobs = app.caller("bob", None).await;
    let bobs_id = app.state.store.list_api_keys(&bobs.user.id).await.expect("keys")[0].id.clone();
    let foreign = person.post(&app, &format!("/api-keys/{bobs_id}/revoke"), &[("confirmed", "yes")]).await;
    assert_eq!(foreign.status(), StatusCode::NOT_FOUND);
    let (status, _) = app.token(&bobs, "anything").await;
    assert_eq!(status, 404, "Bob's key still works: it is not refused, it finds no such handle");
    app.stop().await;
}

#[tokio::test]
async fn user_text_is_escaped_and_pages_need_no_inline_script() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "cs").await;
    let alice = app.caller("alice", None).await;
    let mut body = TestApp::connection_body("xss", &provider, "cs");
    body["name"] = serde_json::json!("<img src=x onerror=alert(1)>");
    let (status, answer) = app.api(&alice, reqwest::Method::POST, "/api/v1/connections", Some(body)).await;
    assert_eq!(status, 201, "{answer}");
    let person = log_in(&app, "alice").await;
    let created = person.post(&app, "/api-keys", &[("name", "<script>alert(2)</script>"), ("handles", "")]).await;
    let created = created.text().await.expect("page");

    let mut pages = vec![("the key just created", created)];
    for path in ["/connections", "/connections/new", "/connections/xss/edit", "/connections/xss/delete", "/api-keys"] {
        let (status, page) = person.page(&app, path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        pages.push((path, page));
    }
    let (_, login) = {
        let response = browser().get(app.url("/login")).send().await.expect("login");
        (response.status(), response.text().await.expect("page"))
    };
    pages.push(("/login", login));
    for (what, page) in &pages {
        assert!(!page.contains("<img"), "{what}: {page}");
        assert!(!page.contains("<script>alert"), "{what}: {page}");
        assert_csp_clean(what, page);
    }
    let escaped = "&lt;img src=x onerror=alert(1)&gt;";
    assert!(pages[1].1.contains(&format!("<h2 id=\"c-xss-name\">{escaped}</h2>")), "the list: {}", pages[1].1);
    assert!(pages[3].1.contains(&format!("value=\"{escaped}\"")), "the edit form: {}", pages[3].1);
    assert!(pages[5].1.contains("&lt;script&gt;alert(2)&lt;/script&gt;"), "the key name: {}", pages[5].1);

    let csp = person.browser.get(app.url("/connections")).send().await.expect("list");
    let policy = csp.headers().get("content-security-policy").and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert!(policy.contains("script-src 'self'") && policy.contains("style-src 'self'"), "{policy}");
    app.stop().await;
}
