//! Provider quirks of the requests latchkey sends: PKCE on and off, client authentication (per grant), JSON
//! token bodies, extra parameters, scope separators and a redirect URI override, each against a mock provider
//! that insists on the quirk the way the real providers do.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::Method;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::helpers::{secret, spawn_app};
use crate::quirky::{self, Auth, Pkce, Quirky, assert_refused, body, connect, create, create_and_follow};

/// A client that keeps cookies but does not follow redirects, to walk a flow step by step.
fn stepping_browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .expect("client")
}

/// Follows one redirect and returns its target.
async fn location(client: &reqwest::Client, url: &str) -> String {
    let response = client.get(url).send().await.expect("request");
    assert!(response.status().is_redirection(), "{url}");
    response.headers()["location"].to_str().expect("location").to_owned()
}

fn param(url: &str, name: &str) -> String {
    let url = url::Url::parse(url).expect("url");
    url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned()).expect(name)
}

#[tokio::test]
async fn pkce_s256_uses_a_fresh_sealed_32_byte_verifier_that_never_travels_in_the_url() {
    let app = spawn_app().await;
    let provider = Quirky::start("client-1", "s").await;
    provider.pkce(Pkce::Enforce);
    let alice = app.caller("alice", None).await;
    connect(&app, &alice, body("crm", &provider, "s", json!({}))).await;

    let authorize = &provider.calls("authorize")[0];
    let exchange = &provider.grants("authorization_code")[0];
    let verifier = exchange.param("code_verifier").expect("a code_verifier");
    let raw = URL_SAFE_NO_PAD.decode(verifier).expect("base64url without padding");
    assert_eq!(raw.len(), 32, "32 random bytes (RFC 7636 §4.1)");
    assert_eq!(authorize.param("code_challenge_method"), Some("S256"));
    assert_eq!(authorize.param("code_challenge"), Some(URL_SAFE_NO_PAD.encode(Sha256::digest(verifier)).as_str()));
    assert!(!authorize.raw_query.contains(verifier), "the verifier is not in the authorization URL");
    assert_ne!(authorize.param("state"), Some(verifier), "the verifier is not the state");

    // Stored sealed: the database holds it nowhere in clear.
    crate::storage::assert_stored_nowhere_in_clear(&app, &[verifier.to_owned()], "alice").await;

    // Another flow has another verifier.
    let (status, again) = app.api(&alice, Method::POST, "/api/v1/connections/crm/authorize", None).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(app.follow(again["authorization_link"].as_str().expect("link")).await.0, 200);
    let second = provider.grants("authorization_code")[1].param("code_verifier").expect("verifier").to_owned();
    assert_ne!(second, verifier);
}

#[tokio::test]
async fn a_pkce_enforcing_provider_refuses_a_verifier_of_another_flow_or_none_at_all() {
    let app = spawn_app().await;
    let provider = Quirky::start("client-1", "s").await;
    provider.pkce(Pkce::Enforce);
    let alice = app.caller("alice", None).await;
    let (status, created) = create(&app, &alice, body("crm", &provider, "s", json!({}))).await;
    assert_eq!(status, 201, "{created}");
    let (_, again) = app.api(&alice, Method::POST, "/api/v1/connections/crm/authorize", None).await;

    // One browser opens two flows; the code of the first comes back with the state of the second, so latchkey
    // sends the second flow's verifier for a code bound to the first flow's challenge.
    let browser = stepping_browser();
    let first = location(&browser, created["authorization_link"].as_str().expect("link")).await;
    let second = location(&browser, again["authorization_link"].as_str().expect("link")).await;
    let first_callback = location(&browser, &first).await;
    let crossed = format!(
        "{}?code={}&state={}",
        app.url("/oauth2/callback"),
        param(&first_callback, "code"),
        param(&second, "state")
    );
    let response = browser.get(&crossed).send().await.expect("callback");
    assert_eq!(response.status().as_u16(), 502);
    let page = response.text().await.expect("page");
    assert!(page.contains("PKCE verification failed"), "{page}");

    // With PKCE turned off, the enforcing provider refuses at once, and the page says why.
    let (status, _) = app.api(&alice, Method::PATCH, "/api/v1/connections/crm", Some(json!({"pkce": "off"}))).await;
    assert_eq!(status, 200);
    let (_, link) = app.api(&alice, Method::POST, "/api/v1/connections/crm/authorize", None).await;
    let (status, page) = app.follow(link["authorization_link"].as_str().expect("link")).await;
    assert_eq!(status, 502, "{page}");
    assert!(page.contains("PKCE with S256 is required"), "{page}");
    assert_eq!(provider.grants("authorization_code").len(), 1, "only the crossed exchange reached the provider");
}

#[tokio::test]
async fn pkce_off_sends_neither_challenge_nor_verifier() {
    let app = spawn_app().await;
    let provider = Quirky::start("client-1", "s").await;
    provider.pkce(Pkce::Refuse);
    let alice = app.caller("alice", None).await;

    // The default (S256) fails against a provider that refuses PKCE ...
    let (status, page) = create_and_follow(&app, &alice, body("default", &provider, "s", json!({}))).await;
    assert_eq!(status, 502);
    assert!(page.contains("PKCE is not supported"), "{page}");

    // ... and "pkce": "off" connects.
    connect(&app, &alice, body("crm", &provider, "s", json!({"pkce": "off"}))).await;
    let authorize = provider.calls("authorize").pop().expect("authorize");
    assert!(authorize.param("code_challenge").is_none() && authorize.param("code_challenge_method").is_none());
    let exchange = &provider.grants("authorization_code")[0];
    assert!(exchange.param("code_verifier").is_none(), "{:?}", exchange.params);
    assert_eq!(quirky::read(&app, &alice, "crm").await["pkce"], "off");
}

#[tokio::test]
async fn client_secret_basic_sends_the_form_encoded_credentials_in_the_header_only() {
    let app = spawn_app().await;
    let client_secret = format!("{}:/+% é", secret("cs"));
    let provider = Quirky::start("client 1", &client_secret).await;
    provider.auth(Auth::Basic, Auth::Basic);
    let alice = app.caller("alice", None).await;
    let overrides = |auth: &str| json!({"client_id": "client 1", "client_auth": auth});

    // The default, credentials in the body, is refused by this provider.
    let (status, page) =
        create_and_follow(&app, &alice, body("posting", &provider, &client_secret, overrides("client_secret_post")))
            .await;
    assert_eq!(status, 502);
    assert!(page.contains("invalid_client"), "{page}");

    connect(&app, &alice, body("crm", &provider, &client_secret, overrides("client_secret_basic"))).await;
    let (status, token) = quirky::force_refresh(&app, &alice, "crm").await;
    assert_eq!(status, 200, "{token}");
    for call in [provider.grants("authorization_code").pop(), provider.grants("refresh_token").pop()] {
        let call = call.expect("a call");
        assert!(call.header("authorization").is_some_and(|h| h.starts_with("Basic ")));
        assert!(call.param("client_secret").is_none(), "{:?}", call.params);
        assert!(call.param("client_id").is_none(), "the id travels in the header: {:?}", call.params);
    }
    assert_eq!(quirky::read(&app, &alice, "crm").await["client_auth"], "client_secret_basic");
}

#[tokio::test]
async fn refresh_client_auth_lets_the_refresh_authenticate_differently() {
    let app = spawn_app().await;
    let provider = Quirky::start("client-1", "s").await;
    provider.auth(Auth::Basic, Auth::Post);
    let alice = app.caller("alice", None).await;

    // Basic for both grants: the code exchange works, the refresh is refused.
    connect(&app, &alice, body("one-way", &provider, "s", json!({"client_auth": "client_secret_basic"}))).await;
    let (status, answer) = quirky::force_refresh(&app, &alice, "one-way").await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["code"], "needs_reauth");

    let overrides = json!({"client_auth": "client_secret_basic", "refresh_client_auth": "client_secret_post"});
    connect(&app, &alice, body("crm", &provider, "s", overrides)).await;
    let (status, token) = quirky::force_refresh(&app, &alice, "crm").await;
    assert_eq!(status, 200, "{token}");
    let refresh = provider.grants("refresh_token").pop().expect("refresh");
    assert_eq!((refresh.param("client_id"), refresh.param("client_secret")), (Some("client-1"), Some("s")));
    assert!(refresh.header("authorization").is_none());
    assert_eq!(quirky::read(&app, &alice, "crm").await["refresh_client_auth"], "client_secret_post");

    // An unknown method is named; "" goes back to following client_auth.
    let bad =
        app.api(&alice, Method::PATCH, "/api/v1/connections/crm", Some(json!({"refresh_client_auth": "basic"}))).await;
    assert_refused(&bad, "refresh_client_auth", "client_secret_basic");
    let (status, cleared) = app
        .api(
            &alice,
            Method::PATCH,
            "/api/v1/connections/crm",
            Some(json!({"refresh_client_auth": "", "client_secret": "s"})),
        )
        .await;
    assert_eq!(status, 200, "{cleared}");
    assert!(cleared["connection"]["refresh_client_auth"].is_null(), "{cleared}");
}

#[tokio::test]
async fn a_public_client_sends_its_id_and_no_secret() {
    let app = spawn_app().await;
    let provider = Quirky::start("public-app", "").await;
    provider.auth(Auth::None, Auth::None);
    let alice = app.caller("alice", None).await;
    let overrides = json!({"client_id": "public-app", "client_secret": null, "client_auth": "none"});
    connect(&app, &alice, body("crm", &provider, "", overrides)).await;
    assert_eq!(quirky::force_refresh(&app, &alice, "crm").await.0, 200);
    let read = quirky::read(&app, &alice, "crm").await;
    assert_eq!((read["client_auth"].as_str(), read["client_secret_set"].as_bool()), (Some("none"), Some(false)));
}

#[tokio::test]
async fn json_token_requests_reach_a_provider_that_refuses_forms() {
    let app = spawn_app().await;
    let provider = Quirky::start("client-1", "s").await;
    provider.json_only();
    let alice = app.caller("alice", None).await;

    let (status, page) = create_and_follow(&app, &alice, body("form", &provider, "s", json!({}))).await;
    assert_eq!(status, 502);
    assert!(page.contains("415"), "{page}");

    connect(&app, &alice, body("crm", &provider, "s", json!({"token_request_format": "json"}))).await;
    assert_eq!(quirky::force_refresh(&app, &alice, "crm").await.0, 200);
    for grant in ["authorization_code", "refresh_token"] {
        let call = provider.grants(grant).pop().expect(grant);
        assert_eq!(call.header("content-type"), Some("application/json"));
        let sent: serde_json::Value = serde_json::from_slice(&call.body).expect("a JSON body");
        assert_eq!(sent["grant_type"], grant);
        assert_eq!(sent["client_id"], "client-1");
    }
}

#[tokio::test]
async fn extra_parameters_go_to_their_own_request_only() {
    let app = spawn_app().await;
    let provider = Quirky::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    let overrides = json!({
        "authorization_params": {"access_type": "offline", "prompt": "consent", "user_scope": "chat:write"},
        "token_params": {"audience": "https://api.example.com"},
        "refresh_params": {"resource": "https://api.example.com/v2"},
    });
    connect(&app, &alice, body("crm", &provider, "s", overrides)).await;
    assert_eq!(quirky::force_refresh(&app, &alice, "crm").await.0, 200);

    let authorize = &provider.calls("authorize")[0];
    assert_eq!(authorize.param("access_type"), Some("offline"));
    assert_eq!(authorize.param("prompt"), Some("consent"));
    assert_eq!(authorize.param("user_scope"), Some("chat:write"));
    assert!(authorize.param("audience").is_none() && authorize.param("resource").is_none());
    let exchange = &provider.grants("authorization_code")[0];
    assert_eq!(exchange.param("audience"), Some("https://api.example.com"));
    assert!(exchange.param("resource").is_none() && exchange.param("access_type").is_none());
    let refresh = &provider.grants("refresh_token")[0];
    assert_eq!(refresh.param("resource"), Some("https://api.example.com/v2"));
    assert!(refresh.param("audience").is_none());

    // Parameters latchkey owns, or that would store a credential in the clear, are refused by name.
    for (field, name) in [
        ("authorization_params", "redirect_uri"),
        ("authorization_params", "state"),
        ("token_params", "grant_type"),
        ("token_params", "client_secret"),
        ("refresh_params", "refresh_token"),
        ("refresh_params", "api_key"),
    ] {
        let overrides = json!({ field: { name: "x" } });
        let refused = create(&app, &alice, body("bad", &provider, "s", overrides)).await;
        assert_refused(&refused, field, name);
    }
}

#[tokio::test]
async fn scopes_are_joined_with_the_separator_the_provider_wants() {
    let app = spawn_app().await;
    let provider = Quirky::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    // Joined, then encoded like every query value: a space travels as '+', a comma as %2C, a plus as %2B.
    for (handle, separator, decoded, raw) in [
        ("space", " ", "read write", "scope=read+write"),
        ("comma", ",", "read,write", "scope=read%2Cwrite"),
        ("plus", "+", "read+write", "scope=read%2Bwrite"),
    ] {
        connect(&app, &alice, body(handle, &provider, "s", json!({"scope_separator": separator}))).await;
        let authorize = provider.calls("authorize").pop().expect("authorize");
        assert_eq!(authorize.param("scope"), Some(decoded), "{handle}");
        assert!(authorize.raw_query.contains(raw), "{handle}: {}", authorize.raw_query);
        assert_eq!(quirky::read(&app, &alice, handle).await["scope_separator"], separator);
    }
    let refused = create(&app, &alice, body("bad", &provider, "s", json!({"scope_separator": "and"}))).await;
    assert_refused(&refused, "scope_separator", "non-alphanumeric");
}

#[tokio::test]
async fn a_redirect_uri_override_is_used_exactly_in_both_requests() {
    let app = spawn_app().await;
    let provider = Quirky::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    // Still latchkey's callback, but as a provider console registered it: with a query of its own.
    let redirect_uri = app.url("/oauth2/callback?tenant=acme");
    connect(&app, &alice, body("crm", &provider, "s", json!({"redirect_uri": redirect_uri}))).await;
    assert_eq!(provider.calls("authorize")[0].param("redirect_uri"), Some(redirect_uri.as_str()));
    assert_eq!(provider.grants("authorization_code")[0].param("redirect_uri"), Some(redirect_uri.as_str()));
    assert_eq!(quirky::read(&app, &alice, "crm").await["redirect_uri"], redirect_uri);

    // "" restores the default; a fragment is refused (RFC 6749 §3.1.2).
    let (status, cleared) =
        app.api(&alice, Method::PATCH, "/api/v1/connections/crm", Some(json!({"redirect_uri": ""}))).await;
    assert_eq!(status, 200, "{cleared}");
    assert_eq!(cleared["connection"]["redirect_uri"], app.url("/oauth2/callback"));
    let fragment = app
        .api(
            &alice,
            Method::PATCH,
            "/api/v1/connections/crm",
            Some(json!({"redirect_uri": format!("{redirect_uri}#x")})),
        )
        .await;
    assert_refused(&fragment, "redirect_uri", "fragment");
}
