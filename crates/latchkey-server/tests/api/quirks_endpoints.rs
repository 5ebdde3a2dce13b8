//! Provider quirks of endpoints: a separate refresh URL, revocation on delete (RFC 7009), URL templates filled
//! per connection, and discovery from an issuer (RFC 8414, OpenID Connect) with the `iss` check of RFC 9207.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::spawn_app;
use crate::quirky::{self, Iss, Quirky, assert_refused, body, captured_logs, connect, create, create_and_follow};

#[tokio::test]
async fn refreshes_go_to_the_refresh_url() {
    let app = spawn_app().await;
    let provider = Quirky::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    connect(&app, &alice, body("crm", &provider, "s", json!({"refresh_url": provider.url("/oauth/refresh")}))).await;
    let (status, token) = quirky::force_refresh(&app, &alice, "crm").await;
    assert_eq!(status, 200, "{token}");
    let refresh = &provider.grants("refresh_token")[0];
    assert_eq!(refresh.path, "/oauth/refresh");
    assert!(provider.calls("token").iter().all(|c| c.param("grant_type") == Some("authorization_code")));
    assert_eq!(quirky::read(&app, &alice, "crm").await["refresh_url"], provider.url("/oauth/refresh"));
}

#[tokio::test]
async fn deleting_revokes_the_refresh_token_at_the_revocation_url() {
    let logs = captured_logs();
    drop(logs);
    let app = spawn_app().await;
    let provider = Quirky::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    connect(&app, &alice, body("revoked-crm", &provider, "s", json!({"revocation_url": provider.url("/revoke")})))
        .await;
    let (status, _) = app.api(&alice, Method::DELETE, "/api/v1/connections/revoked-crm", None).await;
    assert_eq!(status, 204);

    let revoke = &provider.calls("revoke")[0];
    let rt = format!("rt-{}-2", provider.tag());
    assert_eq!(revoke.param("token"), Some(rt.as_str()));
    assert_eq!(revoke.param("token_type_hint"), Some("refresh_token"));
    assert_eq!((revoke.param("client_id"), revoke.param("client_secret")), (Some("client-1"), Some("s")));
    assert!(captured_logs().lines().any(|l| l.contains("tokens revoked") && l.contains("revoked-crm")));
}

#[tokio::test]
async fn revocation_can_use_a_json_body_while_token_requests_stay_forms() {
    let app = spawn_app().await;
    let provider = Quirky::start("client-1", "s").await;
    provider.revoke_json_only();
    let alice = app.caller("alice", None).await;
    let bad = json!({"revocation_url": provider.url("/revoke"), "revocation_request_format": "oops"});
    let (status, answer) = create(&app, &alice, body("crm", &provider, "s", bad)).await;
    assert_eq!((status, answer["field"].as_str()), (400, Some("revocation_request_format")), "{answer}");
    let overrides = json!({"revocation_url": provider.url("/revoke"), "revocation_request_format": "json"});
    connect(&app, &alice, body("crm", &provider, "s", overrides)).await;
    let read = quirky::read(&app, &alice, "crm").await;
    assert_eq!(
        (read["token_request_format"].as_str(), read["revocation_request_format"].as_str()),
        (Some("form"), Some("json"))
    );
    let exchange = &provider.calls("token")[0];
    assert_eq!(exchange.header("content-type"), Some("application/x-www-form-urlencoded"));

    let (status, _) = app.api(&alice, Method::DELETE, "/api/v1/connections/crm", None).await;
    assert_eq!(status, 204);
    let revoke = &provider.calls("revoke")[0];
    assert_eq!(revoke.header("content-type"), Some("application/json"));
    let sent: Value = serde_json::from_slice(&revoke.body).expect("a JSON body");
    assert_eq!(sent["token"], format!("rt-{}-2", provider.tag()));
    assert_eq!(sent["client_id"], "client-1");

    // "" goes back to the token request format: the same provider then refuses the form.
    let overrides = json!({"revocation_url": provider.url("/revoke"), "revocation_request_format": ""});
    connect(&app, &alice, body("crm2", &provider, "s", overrides)).await;
    let read = quirky::read(&app, &alice, "crm2").await;
    assert_eq!(read["revocation_request_format"], Value::Null, "{read}");
    let (status, _) = app.api(&alice, Method::DELETE, "/api/v1/connections/crm2", None).await;
    assert_eq!(status, 204, "a refused revocation never blocks the delete");
    let last = provider.calls("revoke").pop().expect("a second revocation");
    assert_eq!(last.header("content-type"), Some("application/x-www-form-urlencoded"));
}

#[tokio::test]
async fn request_headers_reach_the_token_and_revocation_endpoints_and_credentials_are_refused() {
    let app = spawn_app().await;
    let provider = Quirky::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    for (headers, needle) in [
        (json!({"Authorization": "Bearer x"}), "latchkey itself"),
        (json!({"X-Api-Key": "k"}), "credential"),
        (json!({"Bad Name": "v"}), "not a valid"),
        (json!({"X-Trace": "a\r\nInjected: 1"}), "printable"),
    ] {
        let refused = create(&app, &alice, body("crm", &provider, "s", json!({"request_headers": headers}))).await;
        assert_refused(&refused, "request_headers", needle);
    }
    let overrides = json!({"revocation_url": provider.url("/revoke"), "refresh_url": provider.url("/refresh"),
        "request_headers": {"Notion-Version": "2022-06-28"}});
    connect(&app, &alice, body("crm", &provider, "s", overrides)).await;
    assert_eq!(quirky::read(&app, &alice, "crm").await["request_headers"], json!({"Notion-Version": "2022-06-28"}));
    let (status, _) = quirky::force_refresh(&app, &alice, "crm").await;
    assert_eq!(status, 200);
    let (status, _) = app.api(&alice, Method::DELETE, "/api/v1/connections/crm", None).await;
    assert_eq!(status, 204);
    for endpoint in ["token", "refresh", "revoke"] {
        let calls = provider.calls(endpoint);
        assert!(!calls.is_empty(), "{endpoint} was called");
        assert!(calls.iter().all(|c| c.header("notion-version") == Some("2022-06-28")), "{endpoint}");
    }
}

#[tokio::test]
async fn a_failed_revocation_is_logged_and_never_blocks_the_delete() {
    let _ = captured_logs();
    let app = spawn_app().await;
    let provider = Quirky::start("client-1", "s").await;
    provider.revoke_status(503);
    let alice = app.caller("alice", None).await;
    connect(&app, &alice, body("failing-revoke", &provider, "s", json!({"revocation_url": provider.url("/revoke")})))
        .await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let unreachable = json!({"revocation_url": format!("http://127.0.0.1:{closed}/revoke")});
    connect(&app, &alice, body("unreachable-revoke", &provider, "s", unreachable)).await;

    for handle in ["failing-revoke", "unreachable-revoke"] {
        let (status, answer) = app.api(&alice, Method::DELETE, &format!("/api/v1/connections/{handle}"), None).await;
        assert_eq!(status, 204, "{handle}: {answer}");
        let (status, _) = app.api(&alice, Method::GET, &format!("/api/v1/connections/{handle}"), None).await;
        assert_eq!(status, 404, "{handle} is gone");
        let logs = captured_logs();
        let line = logs
            .lines()
            .find(|l| l.contains("token revocation failed") && l.contains(handle))
            .unwrap_or_else(|| panic!("no warning for {handle} in:\n{logs}"));
        assert!(line.contains("WARN"), "{line}");
    }
    assert_eq!(provider.calls("revoke").len(), 1, "the failing endpoint was asked once");
    let logs = captured_logs();
    for token in provider.issued_tokens() {
        assert!(!logs.contains(&token), "a token in the log");
    }
}

#[tokio::test]
async fn url_templates_take_per_connection_values() {
    let app = spawn_app().await;
    let provider = Quirky::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    let templated = json!({
        "authorization_url": format!("{}/{{tenant}}/authorize", provider.base),
        "token_url": format!("{}/{{tenant}}/token", provider.base),
        "refresh_url": format!("{}/{{tenant}}/oauth/refresh", provider.base),
        "connection_params": {"tenant": "acme"},
    });
    connect(&app, &alice, body("crm", &provider, "s", templated)).await;
    assert_eq!(quirky::force_refresh(&app, &alice, "crm").await.0, 200);
    let paths: Vec<String> = provider.seen().into_iter().map(|s| s.path).collect();
    assert_eq!(paths, ["/acme/authorize", "/acme/token", "/acme/oauth/refresh"]);
    let read = quirky::read(&app, &alice, "crm").await;
    assert_eq!(read["token_url"], format!("{}/{{tenant}}/token", provider.base), "the template is what is stored");
    assert_eq!(read["connection_params"], json!({"tenant": "acme"}));

    // Another value is another token endpoint: the stored tokens wait for a new authorization.
    let (status, edited) = app
        .api(
            &alice,
            Method::PATCH,
            "/api/v1/connections/crm",
            Some(json!({"connection_params": {"tenant": "beta"}, "client_secret": "s"})),
        )
        .await;
    assert_eq!(status, 200, "{edited}");
    assert_eq!(edited["connection"]["status"], "pending");
    assert_eq!(app.follow(edited["authorization_link"].as_str().expect("link")).await.0, 200);
    assert_eq!(provider.seen().last().map(|s| s.path.clone()).as_deref(), Some("/beta/token"));

    // A host template, as presets use them.
    let host = json!({"authorization_url": "https://{subdomain}.example.com/oauth/authorize",
        "token_url": "https://{subdomain}.example.com/oauth/token", "connection_params": {"subdomain": "acme"}});
    let (status, created) = create(&app, &alice, body("hosted", &provider, "s", host)).await;
    assert_eq!(status, 201, "{created}");
}

#[tokio::test]
async fn placeholders_and_their_values_are_checked() {
    let app = spawn_app().await;
    let provider = Quirky::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    let host = |params: Value| {
        body(
            "bad",
            &provider,
            "s",
            json!({"token_url": "https://{subdomain}.example.com/oauth/token", "connection_params": params}),
        )
    };

    assert_refused(&create(&app, &alice, host(json!({}))).await, "token_url", "{subdomain}");
    assert_refused(
        &create(&app, &alice, host(json!({"subdomain": "acme", "region": "eu"}))).await,
        "connection_params",
        "connection_params.region is not used",
    );
    for value in ["evil.com/", "a?b", "a#b", "user@evil.com", "evil.com:8443", "a b", ".."] {
        let refused = create(&app, &alice, host(json!({ "subdomain": value }))).await;
        assert_refused(&refused, "connection_params", "connection_params.subdomain");
    }
    let unclosed = body("bad", &provider, "s", json!({"token_url": "https://{subdomain.example.com/token"}));
    assert_refused(&create(&app, &alice, unclosed).await, "token_url", "placeholder");
    assert!(provider.seen().is_empty(), "nothing was sent anywhere");
}

/// RFC 8414 metadata for `issuer`, its endpoints under `{base}{prefix}`.
fn metadata(provider: &Quirky, issuer: &str, prefix: &str, iss_supported: bool) -> Value {
    json!({
        "issuer": issuer,
        "authorization_endpoint": provider.url(&format!("{prefix}/authorize")),
        "token_endpoint": provider.url(&format!("{prefix}/token")),
        "revocation_endpoint": provider.url(&format!("{prefix}/revoke")),
        "response_types_supported": ["code"],
        "authorization_response_iss_parameter_supported": iss_supported,
    })
}

/// A connection body with an issuer and no endpoints.
fn by_issuer(handle: &str, provider: &Quirky, issuer: &str, extra: Value) -> Value {
    let mut overrides = json!({"issuer": issuer, "authorization_url": null, "token_url": null});
    for (k, v) in extra.as_object().expect("object") {
        overrides[k] = v.clone();
    }
    body(handle, provider, "s", overrides)
}

#[tokio::test]
async fn an_issuer_fills_the_endpoints_once_from_rfc8414_metadata() {
    let app = spawn_app().await;
    let provider = Quirky::start("client-1", "s").await;
    let issuer = provider.url("/tenants/acme");
    provider
        .metadata("/.well-known/oauth-authorization-server/tenants/acme", metadata(&provider, &issuer, "/acme", false));
    let alice = app.caller("alice", None).await;
    // The issuer may be a template too.
    let templated = format!("{}/tenants/{{tenant}}", provider.base);
    connect(&app, &alice, by_issuer("crm", &provider, &templated, json!({"connection_params": {"tenant": "acme"}})))
        .await;

    let read = quirky::read(&app, &alice, "crm").await;
    assert_eq!(read["authorization_url"], provider.url("/acme/authorize"));
    assert_eq!(read["token_url"], provider.url("/acme/token"));
    assert_eq!(read["revocation_url"], provider.url("/acme/revoke"));
    assert_eq!(read["discovered_endpoints"], json!(["authorization_url", "token_url", "revocation_url"]));
    assert_eq!(read["issuer"], templated);
    assert_eq!(read["iss_required"], false);

    assert_eq!(quirky::force_refresh(&app, &alice, "crm").await.0, 200);
    assert_eq!(app.token(&alice, "crm").await.0, 200);
    let (status, _) = app.api(&alice, Method::DELETE, "/api/v1/connections/crm", None).await;
    assert_eq!(status, 204);
    assert_eq!(provider.calls("revoke").len(), 1, "revoked at the discovered endpoint");
    let fetched = provider.seen().iter().filter(|s| s.path.starts_with("/.well-known/")).count();
    assert_eq!(fetched, 1, "metadata is fetched when saving, never on the token path");
}

#[tokio::test]
async fn openid_configuration_is_the_fallback_and_given_endpoints_win() {
    let app = spawn_app().await;
    let provider = Quirky::start("client-1", "s").await;
    let issuer = provider.url("/v2.0");
    provider.metadata("/v2.0/.well-known/openid-configuration", metadata(&provider, &issuer, "/oidc", false));
    let alice = app.caller("alice", None).await;
    let given = json!({"token_url": provider.url("/mine/token")});
    let (status, created) = create(&app, &alice, by_issuer("crm", &provider, &issuer, given)).await;
    assert_eq!(status, 201, "{created}");
    let connection = &created["connection"];
    assert_eq!(connection["authorization_url"], provider.url("/oidc/authorize"));
    assert_eq!(connection["token_url"], provider.url("/mine/token"), "a given endpoint is kept");
    assert_eq!(connection["discovered_endpoints"], json!(["authorization_url", "revocation_url"]));
    let asked: Vec<String> = provider.seen().into_iter().map(|s| s.path).collect();
    assert_eq!(asked, ["/.well-known/oauth-authorization-server/v2.0", "/v2.0/.well-known/openid-configuration"]);

    // Clearing the given token URL lets the metadata fill it.
    let (status, edited) = app
        .api(&alice, Method::PATCH, "/api/v1/connections/crm", Some(json!({"token_url": "", "client_secret": "s"})))
        .await;
    assert_eq!(status, 200, "{edited}");
    assert_eq!(edited["connection"]["token_url"], provider.url("/oidc/token"));
    assert_eq!(
        edited["connection"]["discovered_endpoints"],
        json!(["authorization_url", "token_url", "revocation_url"])
    );
}

#[tokio::test]
async fn metadata_of_another_issuer_is_refused() {
    let app = spawn_app().await;
    let provider = Quirky::start("client-1", "s").await;
    let issuer = provider.url("/acme");
    provider.metadata(
        "/.well-known/oauth-authorization-server/acme",
        metadata(&provider, &provider.url("/evil"), "", false),
    );
    let alice = app.caller("alice", None).await;
    let refused = create(&app, &alice, by_issuer("crm", &provider, &issuer, json!({}))).await;
    assert_refused(&refused, "issuer", "not '");
    // A trailing slash is another issuer: the comparison is exact.
    provider.metadata("/.well-known/oauth-authorization-server/acme", metadata(&provider, &issuer, "", false));
    let slash = create(&app, &alice, by_issuer("crm", &provider, &format!("{issuer}/"), json!({}))).await;
    assert_refused(&slash, "issuer", "exactly");
    let nowhere = create(&app, &alice, by_issuer("crm", &provider, &provider.url("/nobody"), json!({}))).await;
    assert_refused(&nowhere, "issuer", "404");
    assert_eq!(app.api(&alice, Method::GET, "/api/v1/connections/crm", None).await.0, 404);
}

#[tokio::test]
async fn an_advertised_iss_is_required_and_checked_before_the_code_is_used() {
    let app = spawn_app().await;
    let provider = Quirky::start("client-1", "s").await;
    let issuer = provider.url("/as");
    provider.metadata("/.well-known/oauth-authorization-server/as", metadata(&provider, &issuer, "/as", true));
    let alice = app.caller("alice", None).await;

    provider.iss(Iss::Send(issuer.clone()));
    connect(&app, &alice, by_issuer("good", &provider, &issuer, json!({}))).await;
    assert_eq!(quirky::read(&app, &alice, "good").await["iss_required"], true);
    assert_eq!(provider.grants("authorization_code").len(), 1);

    for (handle, iss, needle) in [
        ("missing", Iss::Omit, "although the metadata"),
        ("mixed-up", Iss::Send(provider.url("/evil")), "names the issuer"),
    ] {
        provider.iss(iss);
        let (status, page) = create_and_follow(&app, &alice, by_issuer(handle, &provider, &issuer, json!({}))).await;
        assert_eq!(status, 400, "{handle}: {page}");
        assert!(page.contains(needle), "{handle}: {page}");
        let read = quirky::read(&app, &alice, handle).await;
        assert_eq!(read["status"], "pending", "{read}");
        assert!(read["last_error"].as_str().is_some_and(|e| e.contains(needle)), "{read}");
    }
    assert_eq!(provider.grants("authorization_code").len(), 1, "no code reached the token endpoint");
}

#[tokio::test]
async fn a_wrong_iss_is_refused_even_when_not_advertised() {
    let app = spawn_app().await;
    let provider = Quirky::start("client-1", "s").await;
    let issuer = provider.url("/as");
    provider.metadata("/.well-known/oauth-authorization-server/as", metadata(&provider, &issuer, "/as", false));
    let alice = app.caller("alice", None).await;
    connect(&app, &alice, by_issuer("quiet", &provider, &issuer, json!({}))).await;
    provider.iss(Iss::Send(provider.url("/elsewhere")));
    let (status, page) = create_and_follow(&app, &alice, by_issuer("loud", &provider, &issuer, json!({}))).await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("RFC 9207"), "{page}");
    assert_eq!(provider.grants("authorization_code").len(), 1);
}

#[tokio::test]
async fn the_openapi_document_describes_the_quirk_fields() {
    let app = spawn_app().await;
    let doc: Value =
        app.http.get(app.url("/api/v1/openapi.json")).send().await.expect("openapi").json().await.expect("json");
    let schemas = &doc["components"]["schemas"];
    for field in [
        "refresh_client_auth",
        "token_response_map",
        "keep_response_fields",
        "keep_callback_params",
        "issuer",
        "device_authorization_url",
        "connection_params",
        "revocation_request_format",
        "request_headers",
    ] {
        let input = &schemas["ConnectionInput"]["properties"][field];
        assert!(input.is_object(), "ConnectionInput.{field} is documented");
        assert!(input["description"].as_str().is_some_and(|d| !d.is_empty()), "ConnectionInput.{field}: {input}");
        assert!(schemas["ConnectionView"]["properties"][field].is_object(), "ConnectionView.{field}");
    }
    let refresh_auth = schemas["ConnectionInput"]["properties"]["refresh_client_auth"]["description"].as_str();
    assert!(refresh_auth.is_some_and(|d| d.contains("client_secret_basic")), "{refresh_auth:?}");
    let map = schemas["ConnectionInput"]["properties"]["token_response_map"]["description"].as_str();
    assert!(map.is_some_and(|d| d.contains("expires_at")), "{map:?}");
    assert!(schemas["ConnectionView"]["properties"]["extra"].is_object());
    assert!(schemas["TokenBody"]["properties"]["extra"].is_object());
    let required = schemas["TokenBody"]["required"].as_array().cloned().unwrap_or_default();
    assert!(!required.contains(&json!("extra")), "extra is optional in the token answer");
}
