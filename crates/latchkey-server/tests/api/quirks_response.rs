//! Provider quirks of token answers: values in other places (`token_response_map`), form-encoded answers,
//! lifetimes as strings, absolute expiries, errors inside an HTTP 200, missing lifetimes, and values a connection
//! keeps from the answer and the callback.

use latchkey_core::{Clock, Timestamp};
use reqwest::Method;
use serde_json::json;

use crate::helpers::{Options, spawn_app, spawn_with};
use crate::quirky::{self, Answer, Quirky, assert_refused, body, connect, create, create_and_follow, standard};

#[tokio::test]
async fn a_token_nested_like_slacks_is_found_through_the_map() {
    let app = spawn_app().await;
    let provider = Quirky::start("client-1", "s").await;
    provider.shape(|i| {
        Answer::json(
            200,
            &json!({"ok": true, "access_token": "xoxb-the-bot-token", "token_type": "bot", "team": {"id": "T1"},
                "authed_user": {"id": "U1", "access_token": i.access, "refresh_token": i.refresh,
                    "expires_in": i.expires_in, "token_type": "user", "scope": "chat:write"}}),
        )
    });
    let alice = app.caller("alice", None).await;
    let map = json!({"access_token": "authed_user.access_token", "refresh_token": "authed_user.refresh_token",
        "expires_in": "authed_user.expires_in", "token_type": "authed_user.token_type", "scope": "authed_user.scope"});
    connect(&app, &alice, body("slack", &provider, "s", json!({"token_response_map": map}))).await;

    let (status, token) = app.token(&alice, "slack").await;
    assert_eq!(status, 200, "{token}");
    let tag = provider.tag();
    assert_eq!(token["token"], format!("at-{tag}-2"), "the user's token, not the bot's");
    assert_eq!(token["token_type"], "user");
    let expected = Timestamp(app.clock.now().secs() + 3600).to_rfc3339();
    assert_eq!(token["expires_at"], expected);
    let read = quirky::read(&app, &alice, "slack").await;
    assert_eq!(read["granted_scopes"], "chat:write");
    assert_eq!(read["token_response_map"], map);

    // The refresh answer has the same shape, and the mapped refresh token was the one stored.
    let (status, refreshed) = quirky::force_refresh(&app, &alice, "slack").await;
    assert_eq!(status, 200, "{refreshed}");
    assert_eq!(refreshed["token"], format!("at-{tag}-3"));
    let rt = format!("rt-{tag}-2");
    assert_eq!(provider.grants("refresh_token")[0].param("refresh_token"), Some(rt.as_str()));
}

#[tokio::test]
async fn tokens_under_data_or_in_camel_case_are_found() {
    let app = spawn_app().await;
    let alice = app.caller("alice", None).await;

    let data = Quirky::start("client-1", "s").await;
    data.shape(|i| Answer::json(200, &json!({"data": {"token": i.access, "refresh": i.refresh, "ttl": "1800"}})));
    let map = json!({"access_token": "data.token", "refresh_token": "data.refresh", "expires_in": "data.ttl"});
    connect(&app, &alice, body("data", &data, "s", json!({"token_response_map": map}))).await;
    let (_, token) = app.token(&alice, "data").await;
    assert_eq!(token["token"], format!("at-{}-2", data.tag()));
    assert_eq!(token["expires_at"], Timestamp(app.clock.now().secs() + 1800).to_rfc3339());
    assert_eq!(quirky::force_refresh(&app, &alice, "data").await.0, 200, "the refresh token was found too");

    let camel = Quirky::start("client-1", "s").await;
    camel.shape(|i| {
        Answer::json(
            200,
            &json!({"accessToken": i.access, "refreshToken": i.refresh, "expiresIn": i.expires_in, "tokenType": "Bearer"}),
        )
    });
    let map = json!({"access_token": "accessToken", "refresh_token": "refreshToken", "expires_in": "expiresIn",
        "token_type": "tokenType"});
    connect(&app, &alice, body("camel", &camel, "s", json!({"token_response_map": map}))).await;
    let (_, token) = app.token(&alice, "camel").await;
    assert_eq!(token["token"], format!("at-{}-2", camel.tag()));
    assert_eq!(quirky::force_refresh(&app, &alice, "camel").await.0, 200);

    // A map pointing where the provider puts nothing says where it looked.
    let elsewhere = json!({"token_response_map": {"access_token": "result.token"}});
    let (status, page) = create_and_follow(&app, &alice, body("wrong", &camel, "s", elsewhere)).await;
    assert_eq!(status, 502);
    assert!(page.contains("without an access_token at result.token"), "{page}");
}

#[tokio::test]
async fn the_map_is_checked_key_by_key() {
    let app = spawn_app().await;
    let provider = Quirky::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    for (map, needle) in [
        (json!({"token": "data.token"}), "unknown key 'token'"),
        (json!({"access_token": "data..token"}), "empty segment"),
        (json!({"scope": "a b"}), "whitespace"),
    ] {
        let refused = create(&app, &alice, body("bad", &provider, "s", json!({"token_response_map": map}))).await;
        assert_refused(&refused, "token_response_map", needle);
    }
}

#[tokio::test]
async fn form_answers_are_read_and_json_is_asked_for() {
    let app = spawn_app().await;
    let alice = app.caller("alice", None).await;

    // Answers a form unless asked for JSON: latchkey asks.
    let polite = Quirky::start("client-1", "s").await;
    polite.shape(|i| {
        if i.accept_json {
            standard(i)
        } else {
            Answer::form(&[("access_token", i.access.as_str()), ("token_type", "bearer")])
        }
    });
    connect(&app, &alice, body("polite", &polite, "s", json!({}))).await;
    let exchange = &polite.grants("authorization_code")[0];
    assert_eq!(exchange.header("accept"), Some("application/json"));
    assert!(quirky::read(&app, &alice, "polite").await["expires_at"].is_string(), "the JSON answer was used");

    // Always a form, lifetime as text: read all the same.
    let stubborn = Quirky::start("client-1", "s").await;
    stubborn.shape(|i| {
        let refresh = i.refresh.clone().unwrap_or_default();
        Answer::form(&[
            ("access_token", &i.access),
            ("refresh_token", &refresh),
            ("expires_in", "7200"),
            ("scope", "repo,gist"),
        ])
    });
    connect(&app, &alice, body("stubborn", &stubborn, "s", json!({}))).await;
    let (_, token) = app.token(&alice, "stubborn").await;
    assert_eq!(token["token"], format!("at-{}-2", stubborn.tag()));
    assert_eq!(token["expires_at"], Timestamp(app.clock.now().secs() + 7200).to_rfc3339());
    assert_eq!(quirky::read(&app, &alice, "stubborn").await["granted_scopes"], "repo,gist");
}

#[tokio::test]
async fn expires_in_as_a_numeric_string_sets_the_expiry() {
    let app = spawn_app().await;
    let provider = Quirky::start("client-1", "s").await;
    provider.shape(|i| {
        Answer::json(200, &json!({"access_token": i.access, "refresh_token": i.refresh, "expires_in": "3599"}))
    });
    let alice = app.caller("alice", None).await;
    connect(&app, &alice, body("crm", &provider, "s", json!({}))).await;
    let (_, token) = app.token(&alice, "crm").await;
    assert_eq!(token["expires_at"], Timestamp(app.clock.now().secs() + 3599).to_rfc3339());
}

#[tokio::test]
async fn an_absolute_expires_at_is_read_as_epoch_seconds_or_rfc3339() {
    let app = spawn_app().await;
    let alice = app.caller("alice", None).await;
    let at = app.clock.now().secs() + 7200;

    let epoch = Quirky::start("client-1", "s").await;
    epoch.expires_in(None).shape(move |i| {
        Answer::json(200, &json!({"access_token": i.access, "refresh_token": i.refresh, "expires_at": at}))
    });
    let map = json!({"token_response_map": {"expires_at": "expires_at"}});
    connect(&app, &alice, body("epoch", &epoch, "s", map)).await;
    let (_, token) = app.token(&alice, "epoch").await;
    assert_eq!(token["expires_at"], Timestamp(at).to_rfc3339());

    let rfc3339 = Quirky::start("client-1", "s").await;
    let text = Timestamp(at).to_rfc3339().replace('Z', "+00:00");
    rfc3339.expires_in(None).shape(move |i| {
        Answer::json(200, &json!({"access_token": i.access, "refresh_token": i.refresh, "session": {"expiry": text}}))
    });
    let map = json!({"token_response_map": {"expires_at": "session.expiry"}});
    connect(&app, &alice, body("rfc3339", &rfc3339, "s", map)).await;
    let (_, token) = app.token(&alice, "rfc3339").await;
    assert_eq!(token["expires_at"], Timestamp(at).to_rfc3339());

    // The absolute expiry drives the refresh like any other: due inside the last 5 minutes.
    app.clock.advance(7200 - 301);
    assert_eq!(app.token(&alice, "epoch").await.1["token"], format!("at-{}-2", epoch.tag()));
    assert!(epoch.grants("refresh_token").is_empty());
    app.clock.advance(1);
    let (status, fresh) = app.token(&alice, "epoch").await;
    assert_eq!(status, 200, "{fresh}");
    assert_eq!(epoch.grants("refresh_token").len(), 1);
}

#[tokio::test]
async fn an_error_inside_an_http_200_is_an_error() {
    let app = spawn_app().await;
    let provider = Quirky::start("client-1", "s").await;
    provider.shape(|_| Answer::json(200, &json!({"ok": false, "error": "invalid_code"})));
    let alice = app.caller("alice", None).await;

    let (status, page) = create_and_follow(&app, &alice, body("slack", &provider, "s", json!({}))).await;
    assert_eq!(status, 502);
    assert!(page.contains("invalid_code"), "{page}");
    let read = quirky::read(&app, &alice, "slack").await;
    assert_eq!(read["status"], "pending");
    assert!(read["last_error"].as_str().unwrap_or_default().contains("invalid_code"), "{read}");
    assert_eq!(app.token(&alice, "slack").await.1["code"], "not_connected");

    // The same on refresh: the stored token stays, the failure is recorded.
    provider.shape(standard);
    let (_, again) = app.api(&alice, Method::POST, "/api/v1/connections/slack/authorize", None).await;
    assert_eq!(app.follow(again["authorization_link"].as_str().expect("link")).await.0, 200);
    provider.shape(|_| Answer::json(200, &json!({"ok": false, "error": "invalid_refresh_token"})));
    let (status, answer) = quirky::force_refresh(&app, &alice, "slack").await;
    assert_eq!(status, 502, "{answer}");
    assert!(answer["error"].as_str().unwrap_or_default().contains("invalid_refresh_token"), "{answer}");
    assert_eq!(app.token(&alice, "slack").await.0, 200, "the stored token is still served");
}

#[tokio::test]
async fn default_expires_in_applies_only_when_the_provider_sends_no_lifetime() {
    let app =
        spawn_with(Options { refresher_interval: std::time::Duration::from_millis(50), ..Options::default() }).await;
    let alice = app.caller("alice", None).await;
    let now = app.clock.now().secs();

    let silent = Quirky::start("client-1", "s").await;
    silent.expires_in(None);
    connect(&app, &alice, body("assumed", &silent, "s", json!({"default_expires_in": 600}))).await;
    assert_eq!(app.token(&alice, "assumed").await.1["expires_at"], Timestamp(now + 600).to_rfc3339());

    let blind = Quirky::start("client-1", "s").await;
    blind.expires_in(None);
    connect(&app, &alice, body("unknown", &blind, "s", json!({}))).await;
    assert!(app.token(&alice, "unknown").await.1["expires_at"].is_null());

    let told = Quirky::start("client-1", "s").await;
    connect(&app, &alice, body("told", &told, "s", json!({"default_expires_in": 600}))).await;
    assert_eq!(app.token(&alice, "told").await.1["expires_at"], Timestamp(now + 3600).to_rfc3339());

    // With the assumed lifetime the token is due in its last tenth, and the background refresher takes it up in
    // the first half of that window (by 570 s); without a lifetime, never blindly.
    app.clock.advance(570);
    crate::helpers::wait_for("the background refresh of 'assumed'", async || {
        !silent.grants("refresh_token").is_empty()
    })
    .await;
    app.clock.advance(10 * 365 * 24 * 3600);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (status, token) = app.token(&alice, "unknown").await;
    assert_eq!(status, 200, "{token}");
    assert_eq!(token["token"], format!("at-{}-2", blind.tag()), "the same token, still served");
    assert!(blind.grants("refresh_token").is_empty(), "never refreshed blindly");
}

#[tokio::test]
async fn values_from_the_answer_and_the_callback_are_kept_and_shown() {
    let app = spawn_app().await;
    let provider = Quirky::start("client-1", "s").await;
    // Salesforce: instance_url and id beside the tokens, no lifetime. QuickBooks: realmId in the callback.
    provider.expires_in(None).callback_extra(&[("realmId", "4620816365"), ("noise", "x")]).shape(|i| {
        let instance = if i.grant_type == "refresh_token" {
            "https://acme-2.my.example.com"
        } else {
            "https://acme.my.example.com"
        };
        Answer::json(
            200,
            &json!({"access_token": i.access, "refresh_token": i.refresh, "instance_url": instance,
                "id": "https://login.example.com/id/00D/005", "issued_at": "1278448832702", "signature": "c2ln"}),
        )
    });
    let alice = app.caller("alice", None).await;
    let overrides = json!({"keep_response_fields": ["instance_url", "id"], "keep_callback_params": ["realmId"],
        "default_expires_in": 7200});
    connect(&app, &alice, body("sf", &provider, "s", overrides)).await;

    let expected = json!({"instance_url": "https://acme.my.example.com",
        "id": "https://login.example.com/id/00D/005", "realmId": "4620816365"});
    let read = quirky::read(&app, &alice, "sf").await;
    assert_eq!(read["extra"], expected);
    assert_eq!(read["keep_response_fields"], json!(["instance_url", "id"]));
    let (_, token) = app.token(&alice, "sf").await;
    assert_eq!(token["extra"], expected);

    // A refresh updates what it repeats and keeps the rest.
    let (status, refreshed) = quirky::force_refresh(&app, &alice, "sf").await;
    assert_eq!(status, 200, "{refreshed}");
    assert_eq!(refreshed["extra"]["instance_url"], "https://acme-2.my.example.com");
    assert_eq!(refreshed["extra"]["realmId"], "4620816365");
    assert_eq!(quirky::read(&app, &alice, "sf").await["extra"]["instance_url"], "https://acme-2.my.example.com");

    // Without kept values the token answer is exactly the contract's.
    let plain = Quirky::start("client-1", "s").await;
    connect(&app, &alice, body("plain", &plain, "s", json!({}))).await;
    let (_, token) = app.token(&alice, "plain").await;
    let keys: Vec<&String> = token.as_object().expect("object").keys().collect();
    assert_eq!(keys, ["expires_at", "token", "token_type"]);
    assert_eq!(quirky::read(&app, &alice, "plain").await["extra"], json!({}));
}

#[tokio::test]
async fn token_like_values_are_never_kept() {
    let app = spawn_app().await;
    let provider = Quirky::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    for (overrides, field, needle) in [
        (json!({"keep_response_fields": ["access_token"]}), "keep_response_fields", "access_token"),
        (json!({"keep_response_fields": ["authed_user.refresh_token"]}), "keep_response_fields", "refresh_token"),
        (json!({"keep_response_fields": ["id_token"]}), "keep_response_fields", "id_token"),
        (
            json!({"token_response_map": {"access_token": "data.value"}, "keep_response_fields": ["data.value"]}),
            "keep_response_fields",
            "data.value",
        ),
        (json!({"keep_response_fields": ["a..b"]}), "keep_response_fields", "empty segment"),
        (json!({"keep_callback_params": ["code"]}), "keep_callback_params", "code"),
        (json!({"keep_callback_params": ["state"]}), "keep_callback_params", "state"),
        (json!({"keep_callback_params": ["client_secret"]}), "keep_callback_params", "client_secret"),
    ] {
        let refused = create(&app, &alice, body("bad", &provider, "s", overrides)).await;
        assert_refused(&refused, field, needle);
    }
}
