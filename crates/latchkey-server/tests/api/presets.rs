//! Provider presets: `GET /api/v1/providers`, connections started from a preset, and their connection
//! parameters.

use latchkey_core::{Clock, Timestamp};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Caller, TestApp, spawn_app};
use crate::provider::MockProvider;

/// Where `/oauth2/start/{link}` sends the browser, without following it.
async fn start_location(link: &str) -> String {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let response = client.get(link).send().await.expect("start");
    assert_eq!(response.status().as_u16(), 302);
    response.headers()["location"].to_str().expect("location").to_owned()
}

async fn create(app: &TestApp, caller: &Caller, body: Value) -> (u16, Value) {
    app.api(caller, Method::POST, "/api/v1/connections", Some(body)).await
}

#[tokio::test]
async fn the_providers_endpoint_lists_the_presets_to_api_keys() {
    let app = spawn_app().await;
    let alice = app.caller("alice", None).await;
    let (status, answer) = app.api(&alice, Method::GET, "/api/v1/providers", None).await;
    assert_eq!(status, 200, "{answer}");
    let providers = answer["providers"].as_array().expect("providers");
    assert!(providers.len() >= 25, "{} providers", providers.len());
    let find = |id: &str| providers.iter().find(|p| p["id"] == id).cloned().unwrap_or_else(|| panic!("{id}"));
    assert_eq!(find("github")["name"], "GitHub");
    assert!(find("github")["docs_url"].as_str().is_some_and(|u| u.starts_with("https://docs.github.com/")));
    let zendesk = find("zendesk");
    assert_eq!(zendesk["connection_params"][0]["name"], "subdomain");
    assert_eq!(zendesk["connection_params"][0]["required"], true);
    assert!(zendesk["connection_params"][0]["label"].as_str().is_some_and(|l| !l.is_empty()));
    assert_eq!(find("microsoft")["connection_params"][0]["default"], "common");
    assert_eq!(find("google")["scopes"], "openid email profile");

    let anonymous = reqwest::get(app.url("/api/v1/providers")).await.expect("request");
    assert_eq!(anonymous.status().as_u16(), 401);
    let (_, document) = app.api(&alice, Method::GET, "/api/v1/openapi.json", None).await;
    assert!(document["paths"]["/api/v1/providers"]["get"].is_object(), "the OpenAPI document lists it");
}

#[tokio::test]
async fn a_preset_connection_sends_the_presets_settings_to_the_provider() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    // The preset points at Google; the endpoints are overridden to the mock, everything else comes from the preset.
    let body = json!({"handle": "gmail", "provider": "google", "client_id": "client-1", "client_secret": "s",
        "authorization_url": provider.authorization_url(), "token_url": provider.token_url()});
    let (status, answer) = create(&app, &alice, body).await;
    assert_eq!(status, 201, "{answer}");
    let connection = &answer["connection"];
    assert_eq!(connection["provider"], "google");
    assert_eq!(connection["scopes"], "openid email profile");
    assert_eq!(connection["revocation_url"], "https://oauth2.googleapis.com/revoke");

    let link = answer["authorization_link"].as_str().expect("link");
    let (status, page) = app.follow(link).await;
    assert_eq!(status, 200, "{page}");
    let authorize = &provider.authorize_calls()[0];
    assert_eq!(authorize.get("access_type").map(String::as_str), Some("offline"));
    assert_eq!(authorize.get("prompt").map(String::as_str), Some("consent"));
    assert_eq!(authorize.get("scope").map(String::as_str), Some("openid email profile"));
    let (status, token) = app.token(&alice, "gmail").await;
    assert_eq!(status, 200, "{token}");
}

#[tokio::test]
async fn explicit_fields_override_the_preset() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    let body = json!({"handle": "drive", "provider": "google", "client_id": "client-1", "client_secret": "s",
        "authorization_url": provider.authorization_url(), "token_url": provider.token_url(),
        "scopes": "https://www.googleapis.com/auth/drive.readonly", "authorization_params": {"prompt": "select_account"}});
    let (status, answer) = create(&app, &alice, body).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["connection"]["authorization_params"], json!({"prompt": "select_account"}));
    assert_eq!(answer["connection"]["scopes"], "https://www.googleapis.com/auth/drive.readonly");
}

#[tokio::test]
async fn templated_presets_ask_for_their_connection_params() {
    let app = spawn_app().await;
    let alice = app.caller("alice", None).await;
    let base = json!({"handle": "support", "provider": "zendesk", "client_id": "c", "client_secret": "s"});
    let (status, answer) = create(&app, &alice, base.clone()).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["field"], "connection_params");
    assert!(answer["error"].as_str().is_some_and(|e| e.contains("subdomain") && e.contains("Zendesk")), "{answer}");

    let mut body = base;
    body["connection_params"] = json!({"subdomain": "acme"});
    let (status, answer) = create(&app, &alice, body).await;
    assert_eq!(status, 201, "{answer}");
    let location = start_location(answer["authorization_link"].as_str().expect("link")).await;
    assert!(location.starts_with("https://acme.zendesk.com/oauth/authorizations/new?"), "{location}");

    let bad =
        json!({"handle": "shop", "provider": "shopify", "client_id": "c", "connection_params": {"shop": "evil.com/x"}});
    let (status, answer) = create(&app, &alice, bad).await;
    assert_eq!((status, answer["field"].as_str()), (400, Some("connection_params")), "{answer}");
}

#[tokio::test]
async fn default_connection_params_fill_in_and_can_be_replaced() {
    let app = spawn_app().await;
    let alice = app.caller("alice", None).await;
    let body = json!({"handle": "entra", "provider": "microsoft", "client_id": "c", "client_secret": "s"});
    let (status, answer) = create(&app, &alice, body).await;
    assert_eq!(status, 201, "{answer}");
    let location = start_location(answer["authorization_link"].as_str().expect("link")).await;
    assert!(location.starts_with("https://login.microsoftonline.com/common/oauth2/v2.0/authorize?"), "{location}");

    let body = json!({"handle": "entra-org", "provider": "microsoft", "client_id": "c",
        "connection_params": {"tenant": "contoso.onmicrosoft.com"}});
    let (status, answer) = create(&app, &alice, body).await;
    assert_eq!(status, 201, "{answer}");
    let location = start_location(answer["authorization_link"].as_str().expect("link")).await;
    assert!(location.starts_with("https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/"), "{location}");
}

#[tokio::test]
async fn every_preset_makes_a_connection() {
    let app = spawn_app().await;
    let alice = app.caller("alice", None).await;
    let (_, answer) = app.api(&alice, Method::GET, "/api/v1/providers", None).await;
    for provider in answer["providers"].as_array().expect("providers") {
        let id = provider["id"].as_str().expect("id");
        let params: serde_json::Map<String, Value> = provider["connection_params"]
            .as_array()
            .expect("params")
            .iter()
            .filter(|p| p["required"] == true)
            .map(|p| (p["name"].as_str().expect("name").to_owned(), json!("acme")))
            .collect();
        let body = json!({"handle": format!("p-{id}"), "provider": id, "client_id": "c", "client_secret": "s",
            "connection_params": params});
        let (status, answer) = create(&app, &alice, body).await;
        assert_eq!(status, 201, "{id}: {answer}");
        assert_eq!(answer["connection"]["provider"], id);
    }
}

#[tokio::test]
async fn unknown_providers_are_refused_with_examples() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    let mut body = TestApp::connection_body("crm", &provider, "s");
    body["provider"] = json!("myspace");
    let (status, answer) = create(&app, &alice, body).await;
    assert_eq!((status, answer["field"].as_str()), (400, Some("provider")), "{answer}");
    let error = answer["error"].as_str().unwrap_or_default();
    assert!(error.contains("myspace") && error.contains("airtable") && error.contains("custom"), "{error}");
}

#[tokio::test]
async fn switching_a_connection_to_a_preset_keeps_the_client_id() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    app.create_connection(&alice, "crm", &provider, "s").await;
    let patch = json!({"provider": "github", "client_secret": "s"});
    let (status, answer) = app.api(&alice, Method::PATCH, "/api/v1/connections/crm", Some(patch)).await;
    assert_eq!(status, 200, "{answer}");
    let connection = &answer["connection"];
    assert_eq!(connection["provider"], "github");
    assert_eq!(connection["client_id"], "client-1");
    assert_eq!(connection["authorization_url"], "https://github.com/login/oauth/authorize");
    assert_eq!(connection["client_secret_set"], true);
}

#[tokio::test]
async fn the_shopify_preset_asks_for_an_expiring_token_with_comma_separated_scopes() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    // The shop's endpoints are replaced by the mock; the separator and the exchange parameter come from the preset.
    let body = json!({"handle": "shop", "provider": "shopify", "client_id": "client-1", "client_secret": "s",
        "authorization_url": provider.authorization_url(), "token_url": provider.token_url(),
        "scopes": "read_products write_orders"});
    let (status, answer) = create(&app, &alice, body).await;
    assert_eq!(status, 201, "{answer}");
    let (status, page) = app.follow(answer["authorization_link"].as_str().expect("link")).await;
    assert_eq!(status, 200, "{page}");
    let authorize = &provider.authorize_calls()[0];
    assert_eq!(authorize.get("scope").map(String::as_str), Some("read_products,write_orders"));
    let exchange = &provider.token_calls()[0];
    assert_eq!(exchange.param("grant_type"), Some("authorization_code"));
    assert_eq!(exchange.param("expiring"), Some("1"));
}

#[tokio::test]
async fn the_salesforce_preset_gives_a_lifetime_to_tokens_that_come_without_one() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "s").await;
    provider.set_expires_in(None);
    let alice = app.caller("alice", None).await;
    let body = json!({"handle": "crm", "provider": "salesforce", "client_id": "client-1", "client_secret": "s",
        "authorization_url": provider.authorization_url(), "token_url": provider.token_url()});
    let (status, answer) = create(&app, &alice, body).await;
    assert_eq!(status, 201, "{answer}");
    let (status, page) = app.follow(answer["authorization_link"].as_str().expect("link")).await;
    assert_eq!(status, 200, "{page}");
    let (status, token) = app.token(&alice, "crm").await;
    assert_eq!(status, 200, "{token}");
    // Without the preset's default lifetime the answer would carry no expiry and never be refreshed.
    let default = latchkey_server::presets::get("salesforce").and_then(|p| p.default_expires_in).expect("default");
    let expected = Timestamp(app.clock.now().secs() + i64::try_from(default).expect("seconds")).to_rfc3339();
    assert_eq!(token["expires_at"], expected, "{token}");
}

#[tokio::test]
async fn presets_with_a_device_endpoint_offer_and_run_the_device_flow() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    let (_, answer) = app.api(&alice, Method::GET, "/api/v1/providers", None).await;
    let providers = answer["providers"].as_array().expect("providers");
    let grants = |id: &str| providers.iter().find(|p| p["id"] == id).map(|p| p["grant_types"].clone());
    assert_eq!(grants("github"), Some(json!(["authorization_code", "device_code"])));
    assert_eq!(grants("zendesk"), Some(json!(["authorization_code"])));

    // The preset fills the device endpoint, with the connection's tenant.
    let body = json!({"handle": "entra", "provider": "microsoft", "client_id": "c",
        "connection_params": {"tenant": "contoso"}});
    let (status, answer) = create(&app, &alice, body).await;
    assert_eq!(status, 201, "{answer}");
    let stored = answer["connection"]["device_authorization_url"].as_str().expect("device endpoint").to_owned();
    assert!(stored.starts_with("https://login.microsoftonline.com/") && stored.ends_with("/devicecode"), "{stored}");

    // A preset without a device endpoint cannot run the device flow unless the connection names one.
    let body = json!({"handle": "desk", "provider": "zendesk", "client_id": "c", "grant_type": "device_code",
        "connection_params": {"subdomain": "acme"}});
    let (status, answer) = create(&app, &alice, body).await;
    assert_eq!((status, answer["field"].as_str()), (400, Some("device_authorization_url")), "{answer}");

    // With the endpoints pointed at the mock, a preset connection asking for the device grant runs it.
    let body = json!({"handle": "tv", "provider": "github", "client_id": "client-1", "client_secret": "s",
        "grant_type": "device_code", "token_url": provider.token_url(),
        "device_authorization_url": provider.device_authorization_url()});
    let (status, answer) = create(&app, &alice, body).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["connection"]["grant_type"], "device_code");
    assert_eq!(answer["device"]["user_code"], "WDJB-MJHT", "{answer}");
    assert!(answer.get("authorization_link").is_none(), "{answer}");
}
