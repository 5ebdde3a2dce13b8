//! The connection form beyond Custom OAuth 2.0: the preset picker and a preset's own form, the Advanced
//! section, client credentials and device code connections made from the UI, the light list and the page that
//! ends a flow run in the same tab.

use reqwest::StatusCode;
use reqwest::header::ACCEPT;
use serde_json::Value;

use super::helpers::{TestApp, secret, spawn_app, wait_for};
use super::provider::MockProvider;
use super::{Person, assert_csp_clean, element_text, location, log_in};

/// Posts the connection form as `app.js` does (`Accept: application/json`), with the person's token.
async fn post_json(person: &Person, app: &TestApp, path: &str, fields: &[(&str, String)]) -> (StatusCode, Value) {
    let mut form: Vec<(&str, String)> = vec![("csrf", person.csrf.clone())];
    form.extend(fields.iter().cloned());
    let response =
        person.browser.post(app.url(path)).header(ACCEPT, "application/json").form(&form).send().await.expect("post");
    let status = response.status();
    (status, response.json().await.expect("json"))
}

/// The connection as the API shows it.
async fn api_view(app: &TestApp, caller: &super::helpers::Caller, handle: &str) -> Value {
    let (status, body) = app.api(caller, reqwest::Method::GET, &format!("/api/v1/connections/{handle}"), None).await;
    assert_eq!(status, 200, "{body}");
    body["connection"].clone()
}

/// The status word of a row, from its `data-status`.
async fn row_status(person: &Person, app: &TestApp, handle: &str) -> String {
    let (_, row) = person.page(app, &format!("/connections/{handle}/row")).await;
    let marker = "data-status=\"";
    let start = row.find(marker).expect("a status") + marker.len();
    row[start..start + row[start..].find('"').expect("quote")].to_owned()
}

#[tokio::test]
async fn the_picker_lists_custom_first_then_the_presets_and_a_preset_asks_only_what_it_needs() {
    let app = spawn_app().await;
    let alice = app.caller("alice", None).await;
    let person = log_in(&app, "alice").await;

    let (_, form) = person.page(&app, "/connections/new").await;
    let picker = &form[form.find("<select id=\"provider\"").expect("the picker")..];
    let picker = &picker[..picker.find("</select>").expect("its end")];
    let options: Vec<&str> = picker
        .split("<option value=\"")
        .skip(1)
        .map(|o| &o[o.find('>').expect("tag") + 1..o.find('<').expect("end")])
        .collect();
    assert_eq!(options.first(), Some(&"Custom OAuth 2.0"), "{options:?}");
    assert!(options.len() > 25, "every preset is offered: {options:?}");
    let presets: Vec<String> = options[1..].iter().map(|o| o.to_lowercase()).collect();
    assert!(presets.windows(2).all(|w| w[0] <= w[1]), "presets by name: {presets:?}");
    assert!(options.contains(&"Zendesk") && options.contains(&"GitHub"), "{options:?}");
    assert!(form.contains("<form id=\"service-picker\" method=\"get\" action=\"/connections/new\""), "{form}");

    // Zendesk: its subdomain, no URLs, its default scopes, the redirect URL to copy.
    let (status, zendesk) = person.page(&app, "/connections/new?provider=zendesk").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        zendesk.contains(">Zendesk subdomain</label>") && zendesk.contains("name=\"param.subdomain\""),
        "{zendesk}"
    );
    assert!(!zendesk.contains(">Authorization URL</label>") && !zendesk.contains(">Token URL</label>"), "{zendesk}");
    assert!(!zendesk.contains("<summary>Advanced</summary>"), "a preset's form stays short: {zendesk}");
    assert!(zendesk.contains("id=\"scopes\" name=\"scopes\" type=\"text\" value=\"read\""), "{zendesk}");
    assert!(zendesk.contains(">Client Secret</label>") && zendesk.contains(&app.url("/oauth2/callback")));
    assert!(zendesk.contains("<option value=\"zendesk\" selected>Zendesk</option>"), "{zendesk}");
    assert!(zendesk.contains("<input type=\"hidden\" name=\"provider\" value=\"zendesk\">"), "{zendesk}");
    assert_csp_clean("a preset's form", &zendesk);
    assert_csp_clean("the form with its Advanced section", &form);

    // A missing subdomain is refused next to the parameters.
    let base = |handle: &str, subdomain: &str| -> Vec<(&'static str, String)> {
        vec![
            ("csrf", person.csrf.clone()),
            ("provider", "zendesk".to_owned()),
            ("client_id", "zd-client".to_owned()),
            ("client_secret", secret("zd")),
            ("param.subdomain", subdomain.to_owned()),
            ("name", "Support desk".to_owned()),
            ("handle", handle.to_owned()),
            ("scopes", "read write".to_owned()),
        ]
    };
    let refused = person.browser.post(app.url("/connections")).form(&base("desk", "")).send().await.expect("post");
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let page = refused.text().await.expect("page");
    assert!(
        page.contains("data-error-for=\"connection_params\" aria-live=\"polite\">The Zendesk preset needs"),
        "{page}"
    );
    assert!(page.contains(">Zendesk subdomain</label>"), "the preset's form again: {page}");

    // Saved: the preset's settings with the subdomain, and on to the provider (not followed: it is on the internet).
    let created = person.browser.post(app.url("/connections")).form(&base("desk", "acme")).send().await.expect("post");
    assert_eq!(created.status(), StatusCode::SEE_OTHER);
    let link = location(&created);
    assert!(link.starts_with(&app.url("/oauth2/start/")), "{link}");
    let view = api_view(&app, &alice, "desk").await;
    assert_eq!(view["provider"], "zendesk", "{view}");
    assert_eq!(view["scopes"], "read write", "{view}");
    assert_eq!(view["connection_params"]["subdomain"], "acme", "{view}");
    let start = super::browser().get(&link).send().await.expect("start");
    assert_eq!(start.status(), StatusCode::FOUND);
    let to = location(&start);
    assert!(to.starts_with("https://acme.zendesk.com/oauth/authorizations/new?"), "{to}");
    assert!(to.contains("client_id=zd-client"), "{to}");
    app.stop().await;
}

#[tokio::test]
async fn the_advanced_section_sets_every_option_and_shows_errors_next_to_their_field() {
    let app = spawn_app().await;
    let alice = app.caller("alice", None).await;
    let person = log_in(&app, "alice").await;
    let provider = MockProvider::start("client-1", "s").await;

    let (_, form) = person.page(&app, "/connections/new").await;
    assert!(form.contains("<details class=\"advanced\" data-advanced>"), "closed at first: {form}");
    for label in [
        "Grant type",
        "PKCE",
        "Client authentication",
        "Token request body",
        "Scope separator",
        "Extra authorization parameters",
        "Token response mapping",
        "Default lifetime (seconds)",
        "Refresh URL",
        "Revocation URL",
        "Redirect URI override",
        "Issuer (discovery)",
        "Connection parameters",
    ] {
        assert!(form.contains(&format!(">{label}</label>")), "{label}: {form}");
    }

    let fields = |handle: &str, extra: &[(&'static str, &str)]| -> Vec<(&'static str, String)> {
        let mut all = vec![
            ("provider", "custom".to_owned()),
            ("client_id", "client-1".to_owned()),
            ("client_secret", "s".to_owned()),
            ("authorization_url", provider.authorization_url()),
            ("token_url", provider.token_url()),
            ("name", "Quirky".to_owned()),
            ("handle", handle.to_owned()),
            ("scopes", "read write".to_owned()),
        ];
        all.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
        all
    };
    // A line without '=' is refused next to its field, and the section opens to show it.
    let mut bad = vec![("csrf", person.csrf.clone())];
    bad.extend(fields("quirky", &[("authorization_params", "access_type")]));
    let refused = person.browser.post(app.url("/connections")).form(&bad).send().await.expect("post");
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let page = refused.text().await.expect("page");
    assert!(page.contains("<details class=\"advanced\" data-advanced open>"), "{page}");
    assert!(page.contains("data-error-for=\"authorization_params\" aria-live=\"polite\">Line 1 has no"), "{page}");
    let (status, body) = post_json(&person, &app, "/connections", &fields("quirky", &[("pkce", "plain")])).await;
    assert_eq!((status, body["field"].as_str()), (StatusCode::BAD_REQUEST, Some("pkce")), "{body}");

    let advanced = [
        ("pkce", "off"),
        ("client_auth", "client_secret_basic"),
        ("refresh_client_auth", "client_secret_post"),
        ("token_request_format", "json"),
        ("scope_separator", ","),
        ("authorization_params", "access_type=offline\nprompt=consent"),
        ("token_params", "audience=https://api.example"),
        ("refresh_params", ""),
        ("token_response_map", "access_token=data.token"),
        ("default_expires_in", "7200"),
        ("keep_response_fields", "instance_url"),
        ("keep_callback_params", "realmId"),
        ("revocation_url", "https://provider.example/revoke"),
        ("redirect_uri", "http://127.0.0.1:9/elsewhere"),
    ];
    let (status, body) = post_json(&person, &app, "/connections", &fields("quirky", &advanced)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(body["authorization_link"].is_string(), "{body}");
    let view = api_view(&app, &alice, "quirky").await;
    for (key, want) in [
        ("pkce", "off"),
        ("client_auth", "client_secret_basic"),
        ("refresh_client_auth", "client_secret_post"),
        ("token_request_format", "json"),
        ("scope_separator", ","),
        ("revocation_url", "https://provider.example/revoke"),
        ("redirect_uri", "http://127.0.0.1:9/elsewhere"),
    ] {
        assert_eq!(view[key], want, "{key}: {view}");
    }
    assert_eq!(view["authorization_params"]["prompt"], "consent", "{view}");
    assert_eq!(view["token_params"]["audience"], "https://api.example", "{view}");
    assert_eq!(view["token_response_map"]["access_token"], "data.token", "{view}");
    assert_eq!(view["default_expires_in"], 7200, "{view}");
    assert_eq!(view["keep_response_fields"][0], "instance_url", "{view}");

    // The edit form shows them again, and saving it unchanged keeps them.
    let (_, edit) = person.page(&app, "/connections/quirky/edit").await;
    assert!(edit.contains("<option value=\"off\" selected>Off</option>"), "{edit}");
    assert!(edit.contains(">access_type=offline\nprompt=consent</textarea>"), "{edit}");
    assert!(edit.contains("value=\"http://127.0.0.1:9/elsewhere\""), "{edit}");
    assert!(edit.contains("id=\"service\" type=\"text\" value=\"Custom OAuth 2.0\" readonly"), "{edit}");
    let mut again = fields("quirky", &advanced);
    again.retain(|(k, _)| *k != "handle");
    let (status, body) = post_json(&person, &app, "/connections/quirky/edit", &again).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let after = api_view(&app, &alice, "quirky").await;
    for key in
        ["pkce", "client_auth", "token_request_format", "authorization_params", "token_response_map", "redirect_uri"]
    {
        assert_eq!(after[key], view[key], "{key} kept by an unchanged save");
    }
    // Clearing a URL on edit clears it.
    let mut cleared = again.clone();
    cleared.retain(|(k, _)| *k != "revocation_url");
    cleared.push(("revocation_url", String::new()));
    let (status, body) = post_json(&person, &app, "/connections/quirky/edit", &cleared).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(api_view(&app, &alice, "quirky").await["revocation_url"].is_null());
    app.stop().await;
}

#[tokio::test]
async fn a_client_credentials_connection_is_connected_when_saved_or_shows_why_not() {
    let app = spawn_app().await;
    let client_secret = secret("cc");
    let provider = MockProvider::start("client-1", &client_secret).await;
    app.caller("alice", None).await;
    let person = log_in(&app, "alice").await;
    let fields = |handle: &str, secret: &str| -> Vec<(&'static str, String)> {
        vec![
            ("provider", "custom".to_owned()),
            ("client_id", "client-1".to_owned()),
            ("client_secret", secret.to_owned()),
            ("authorization_url", String::new()),
            ("token_url", provider.token_url()),
            ("name", format!("Machine {handle}")),
            ("handle", handle.to_owned()),
            ("scopes", "read".to_owned()),
            ("grant_type", "client_credentials".to_owned()),
        ]
    };
    let (status, body) = post_json(&person, &app, "/connections", &fields("machine", &client_secret)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["next"], "/connections#c-machine", "no popup: {body}");
    assert!(body.get("authorization_link").is_none(), "{body}");
    assert_eq!(provider.token_calls().len(), 1, "the token was fetched while saving");
    assert_eq!(row_status(&person, &app, "machine").await, "connected");

    // Wrong credentials: the row says so, in words.
    let mut form = vec![("csrf", person.csrf.clone())];
    form.extend(fields("wrong", "not-the-secret"));
    let saved = person.browser.post(app.url("/connections")).form(&form).send().await.expect("post");
    assert_eq!(saved.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&saved), "/connections#c-wrong");
    let (_, row) = person.page(&app, "/connections/wrong/row").await;
    assert!(!row.contains("data-status=\"connected\""), "{row}");
    assert!(row.contains("invalid_client"), "the provider's refusal in words: {row}");
    assert!(!row.contains("not-the-secret"), "{row}");
    app.stop().await;
}

#[tokio::test]
async fn a_device_code_connection_shows_its_code_and_turns_connected() {
    let app = spawn_app().await;
    let client_secret = secret("dc");
    let provider = MockProvider::start("client-1", &client_secret).await;
    app.caller("alice", None).await;
    let person = log_in(&app, "alice").await;
    let fields = vec![
        ("provider", "custom".to_owned()),
        ("client_id", "client-1".to_owned()),
        ("client_secret", client_secret.clone()),
        ("authorization_url", String::new()),
        ("token_url", provider.token_url()),
        ("name", "Television".to_owned()),
        ("handle", "tv".to_owned()),
        ("scopes", "read".to_owned()),
        ("grant_type", "device_code".to_owned()),
        ("device_authorization_url", provider.device_authorization_url()),
    ];
    let (status, body) = post_json(&person, &app, "/connections", &fields).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["next"], "/connections/tv/device", "{body}");

    let (status, page) = person.page(&app, "/connections/tv/device").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(element_text(&page, "user-code"), "WDJB-MJHT");
    assert!(
        page.contains("<a href=\"https://provider.example/device\" target=\"_blank\" rel=\"noopener noreferrer\">"),
        "an https verification URI is a link: {page}"
    );
    assert!(page.contains("data-device-poll data-handle=\"tv\""), "app.js refreshes the row: {page}");
    assert!(page.contains("data-status=\"pending\""), "{page}");
    assert!(!page.contains(&provider.device_code()), "the device code is never shown");
    assert_csp_clean("the device page", &page);

    // Provider-supplied URIs are text, and links only when https (or http on loopback).
    let store = &app.state.store;
    let handle = latchkey_core::Handle::parse("tv").expect("handle");
    let alice = store.user_by_username("alice").await.expect("read").expect("alice");
    let connection = store.connection(&alice.id, &handle).await.expect("read").expect("tv");
    let mut flow = store.device_flow(&connection.id).await.expect("read").expect("a device flow");
    flow.verification_uri = "javascript:alert(1)//<b>bold</b>".to_owned();
    flow.verification_uri_complete = Some("http://provider.example/device?user_code=WDJB-MJHT".to_owned());
    store.put_device_flow(&flow).await.expect("stored");
    let (_, hostile) = person.page(&app, "/connections/tv/device").await;
    assert!(!hostile.contains("href=\"javascript:") && !hostile.contains("<b>bold"), "{hostile}");
    assert!(hostile.contains("<code>javascript:alert(1)//&lt;b&gt;bold&lt;/b&gt;</code>"), "shown as text: {hostile}");
    assert!(!hostile.contains("href=\"http://provider.example"), "plain http elsewhere is no link: {hostile}");

    // The poller asks the provider once the interval has passed on the server's clock; the row turns connected.
    app.clock.advance(2);
    wait_for("the device poller to store the token", async || row_status(&person, &app, "tv").await == "connected")
        .await;
    app.stop().await;
}

#[tokio::test]
async fn the_success_page_of_a_same_tab_flow_leads_back_to_the_list() {
    let app = spawn_app().await;
    let client_secret = secret("st");
    let provider = MockProvider::start("client-1", &client_secret).await;
    let alice = app.caller("alice", None).await;
    let link = app.create_connection(&alice, "crm", &provider, &client_secret).await;
    let (status, page) = app.follow(&link).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("is connected"), "{page}");
    assert!(!page.to_lowercase().contains("close this window"), "the tab may be the only one: {page}");
    assert!(page.contains("<a href=\"/connections\">Back to your connections</a>"), "{page}");
    app.stop().await;
}

#[tokio::test]
async fn a_preset_that_offers_the_device_flow_lets_the_person_choose_it() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    let person = log_in(&app, "alice").await;
    let (status, github) = person.page(&app, "/connections/new?provider=github").await;
    assert_eq!(status, StatusCode::OK);
    let select = &github[github.find("<select id=\"grant_type\" name=\"grant_type\"").expect("a grant choice")..];
    let select = &select[..select.find("</select>").expect("its end")];
    assert!(select.contains("<option value=\"authorization_code\" selected>"), "the browser flow first: {select}");
    assert!(select.contains("<option value=\"device_code\">"), "{select}");
    assert!(!select.contains("client_credentials"), "only what the preset offers: {select}");
    assert_csp_clean("a preset's form with a grant choice", &github);
    let (_, zendesk) = person.page(&app, "/connections/new?provider=zendesk").await;
    assert!(!zendesk.contains("name=\"grant_type\""), "no choice where there is none: {zendesk}");

    // The choice reaches the service: the preset's connection runs the device flow (its endpoints pointed at the
    // mock, since the real ones are on the internet).
    let fields = vec![
        ("provider", "github".to_owned()),
        ("client_id", "client-1".to_owned()),
        ("client_secret", "s".to_owned()),
        ("handle", "tv".to_owned()),
        ("scopes", "read:user".to_owned()),
        ("grant_type", "device_code".to_owned()),
        ("token_url", provider.token_url()),
        ("device_authorization_url", provider.device_authorization_url()),
    ];
    let (status, body) = post_json(&person, &app, "/connections", &fields).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["next"], "/connections/tv/device", "{body}");
    let view = api_view(&app, &alice, "tv").await;
    assert_eq!((view["provider"].as_str(), view["grant_type"].as_str()), (Some("github"), Some("device_code")));
}
