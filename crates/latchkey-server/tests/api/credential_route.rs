//! A stored secret is only ever sent to the credential route in force when it was stored: an edit that moves
//! the token, refresh, revocation or device endpoint (or the issuer, the client id, the grant or the client
//! authentication) needs the client secret again, revokes and discards the old tokens, and leaves the
//! connection `pending` until a new authorization succeeds; a failed authorization never revives old tokens.
//! Each test points the edit at a second provider, `elsewhere`, and checks what reached it.

use latchkey_core::Clock;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Caller, TestApp, spawn_app};
use crate::quirky::{self, Quirky, body, connect, read};

/// The old refresh token and client secret, and everything `elsewhere` received, as text.
fn received(elsewhere: &Quirky) -> String {
    elsewhere
        .seen()
        .iter()
        .map(|seen| {
            let headers: Vec<String> =
                seen.headers.iter().map(|(k, v)| format!("{k}: {}", v.to_str().unwrap_or_default())).collect();
            format!("{} {} {} {}", seen.path, seen.raw_query, headers.join(" "), String::from_utf8_lossy(&seen.body))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Asserts that nothing `elsewhere` received carries the client secret `old-secret` (plainly or in a Basic
/// header) or any token that `real` issued.
fn assert_nothing_leaked(real: &Quirky, elsewhere: &Quirky) {
    use base64::Engine;
    let text = received(elsewhere);
    let basic = base64::engine::general_purpose::STANDARD.encode("client-1:old-secret");
    assert!(!text.contains("old-secret") && !text.contains(&basic), "the stored client secret left: {text}");
    for token in real.issued_tokens() {
        assert!(!text.contains(&token), "a stored token left for the new endpoint: {text}");
    }
}

async fn patch(app: &TestApp, caller: &Caller, handle: &str, edit: Value) -> (u16, Value) {
    app.api(caller, Method::PATCH, &format!("/api/v1/connections/{handle}"), Some(edit)).await
}

/// A connected `crm` at `real`, with a revocation endpoint there.
async fn connected(app: &TestApp, alice: &Caller, real: &Quirky) {
    connect(app, alice, body("crm", real, "old-secret", json!({"revocation_url": real.url("/revoke")}))).await;
}

#[tokio::test]
async fn a_new_revocation_url_needs_the_secret_and_the_old_tokens_are_revoked_where_they_were_issued() {
    let app = spawn_app().await;
    let real = Quirky::start("client-1", "old-secret").await;
    let elsewhere = Quirky::start("client-1", "new-secret").await;
    let alice = app.caller("alice", None).await;
    connected(&app, &alice, &real).await;

    let refused = patch(&app, &alice, "crm", json!({"revocation_url": elsewhere.url("/revoke")})).await;
    quirky::assert_refused(&refused, "client_secret", "revocation_url");
    assert_eq!(read(&app, &alice, "crm").await["revocation_url"], real.url("/revoke"), "nothing was saved");
    assert_eq!(read(&app, &alice, "crm").await["status"], "connected");

    let edit = json!({"revocation_url": elsewhere.url("/revoke"), "client_secret": "new-secret"});
    let (status, edited) = patch(&app, &alice, "crm", edit).await;
    assert_eq!(status, 200, "{edited}");
    assert_eq!(edited["connection"]["status"], "pending", "{edited}");
    assert!(edited["connection"]["expires_at"].is_null(), "the old tokens are gone: {edited}");
    let revoked = real.calls("revoke");
    assert_eq!(revoked.len(), 1, "the old tokens are revoked at the old endpoint");
    assert_eq!(revoked[0].param("client_secret"), Some("old-secret"), "with the secret stored beside them");
    assert_eq!(app.token(&alice, "crm").await.1["code"], "not_connected");

    let (status, _) = app.api(&alice, Method::DELETE, "/api/v1/connections/crm", None).await;
    assert_eq!(status, 204);
    assert!(elsewhere.calls("revoke").is_empty(), "no token is left to send to the new revocation URL");
    assert_nothing_leaked(&real, &elsewhere);
    app.stop().await;
}

#[tokio::test]
async fn switching_to_the_device_grant_elsewhere_needs_the_secret_before_anything_is_sent() {
    let app = spawn_app().await;
    let real = Quirky::start("client-1", "old-secret").await;
    let elsewhere = Quirky::start("client-1", "new-secret").await;
    let alice = app.caller("alice", None).await;
    connected(&app, &alice, &real).await;

    let edit = json!({"grant_type": "device_code", "device_authorization_url": elsewhere.url("/device")});
    let refused = patch(&app, &alice, "crm", edit).await;
    quirky::assert_refused(&refused, "client_secret", "grant_type");
    assert!(elsewhere.seen().is_empty(), "nothing reached the new device endpoint: {}", received(&elsewhere));
    let stored = read(&app, &alice, "crm").await;
    assert_eq!((&stored["grant_type"], &stored["status"]), (&json!("authorization_code"), &json!("connected")));
    assert_nothing_leaked(&real, &elsewhere);
    app.stop().await;
}

#[tokio::test]
async fn a_denied_authorization_after_a_token_url_change_never_revives_the_old_tokens() {
    let app = spawn_app().await;
    let real = Quirky::start("client-1", "old-secret").await;
    let elsewhere = Quirky::start("client-1", "new-secret").await;
    let alice = app.caller("alice", None).await;
    connected(&app, &alice, &real).await;

    let refused = patch(&app, &alice, "crm", json!({"token_url": elsewhere.url("/token")})).await;
    quirky::assert_refused(&refused, "client_secret", "token_url");

    let edit = json!({"token_url": elsewhere.url("/token"), "client_secret": "new-secret"});
    let (status, edited) = patch(&app, &alice, "crm", edit).await;
    assert_eq!(status, 200, "{edited}");
    let link = edited["authorization_link"].as_str().expect("link").to_owned();
    let (browser, state) = start(&link).await;
    let denied = browser
        .get(app.url("/oauth2/callback"))
        .query(&[("state", state.as_str()), ("error", "access_denied")])
        .send()
        .await
        .expect("callback");
    assert!(denied.text().await.expect("page").contains("access_denied"));

    let after = read(&app, &alice, "crm").await;
    assert_eq!(after["status"], "pending", "{after}");
    assert!(after["last_error"].as_str().unwrap_or_default().contains("access_denied"), "{after}");
    app.clock.advance(7200);
    assert_eq!(quirky::force_refresh(&app, &alice, "crm").await.1["code"], "not_connected");
    assert_eq!(app.token(&alice, "crm").await.1["code"], "not_connected");
    let now = app.clock.now();
    let claimed = app.state.store.claim_due_refreshes("test", now, now.plus_secs(60), 100).await.expect("claim");
    assert!(claimed.is_empty(), "the background refresher has nothing to refresh: {claimed:?}");
    assert!(elsewhere.seen().is_empty(), "{}", received(&elsewhere));
    assert_nothing_leaked(&real, &elsewhere);
    app.stop().await;
}

#[tokio::test]
async fn an_authorization_begun_before_the_change_cannot_finish_after_it() {
    let app = spawn_app().await;
    let real = Quirky::start("client-1", "old-secret").await;
    let elsewhere = Quirky::start("client-1", "new-secret").await;
    let alice = app.caller("alice", None).await;
    let (status, created) = quirky::create(&app, &alice, body("crm", &real, "old-secret", json!({}))).await;
    assert_eq!(status, 201, "{created}");
    let (browser, state) = start(created["authorization_link"].as_str().expect("link")).await;

    let edit = json!({"token_url": elsewhere.url("/token"), "client_secret": "new-secret"});
    assert_eq!(patch(&app, &alice, "crm", edit).await.0, 200);
    let late = browser
        .get(app.url("/oauth2/callback"))
        .query(&[("state", state.as_str()), ("code", "code-from-the-old-provider")])
        .send()
        .await
        .expect("callback");
    assert_eq!(late.status().as_u16(), 400);
    assert!(elsewhere.seen().is_empty(), "the old provider's code never reached the new token URL");
    assert_eq!(read(&app, &alice, "crm").await["status"], "pending");
    app.stop().await;
}

#[tokio::test]
async fn edits_that_keep_the_route_keep_secret_and_tokens_and_public_clients_need_no_secret() {
    let app = spawn_app().await;
    let real = Quirky::start("client-1", "old-secret").await;
    let alice = app.caller("alice", None).await;
    connected(&app, &alice, &real).await;

    let (status, edited) = patch(&app, &alice, "crm", json!({"name": "Renamed", "scopes": "read"})).await;
    assert_eq!(status, 200, "{edited}");
    assert_eq!(edited["connection"]["status"], "connected", "{edited}");
    assert_eq!(app.token(&alice, "crm").await.0, 200);
    assert!(real.calls("revoke").is_empty());

    // A public client sends no secret anywhere: the route may move without one, and the stored one is dropped.
    let public = Quirky::start("client-1", "").await;
    let edit = json!({"token_url": public.url("/token"), "client_auth": "none", "revocation_url": ""});
    let (status, edited) = patch(&app, &alice, "crm", edit).await;
    assert_eq!(status, 200, "{edited}");
    assert_eq!(edited["connection"]["status"], "pending");
    assert_eq!(edited["connection"]["client_secret_set"], false, "{edited}");
    assert_eq!(real.calls("revoke").len(), 1, "the old tokens were revoked at the old endpoint");
    app.stop().await;
}

#[tokio::test]
async fn a_key_limited_to_handles_reads_tokens_and_changes_nothing() {
    let app = spawn_app().await;
    let real = Quirky::start("client-1", "old-secret").await;
    let full = app.caller("carol", None).await;
    connected(&app, &full, &real).await;
    let limited = app.limited_key(&full, &["crm"]).await;
    let before = read(&app, &full, "crm").await;

    assert_eq!(app.token(&limited, "crm").await.0, 200);
    assert_eq!(app.api(&limited, Method::GET, "/api/v1/connections/crm", None).await.0, 200);
    let edit = json!({"revocation_url": "https://elsewhere.example/revoke", "client_secret": "x"});
    let attempts = [
        (Method::PATCH, "/api/v1/connections/crm", Some(edit)),
        (Method::DELETE, "/api/v1/connections/crm", None),
        (Method::POST, "/api/v1/connections/crm/authorize", None),
        (Method::POST, "/api/v1/connections", Some(body("crm-2", &real, "s", json!({})))),
    ];
    for (method, path, payload) in attempts {
        let (status, answer) = app.api(&limited, method.clone(), path, payload).await;
        assert_eq!(status, 403, "{method} {path}: {answer}");
        assert!(answer["error"].as_str().unwrap_or_default().contains("limited to some handles"), "{answer}");
    }
    assert_eq!(read(&app, &full, "crm").await, before, "nothing changed");
    assert!(real.calls("revoke").is_empty());
    app.stop().await;
}

/// Opens an authorization link without following the redirect; returns the browser (with its flow cookie) and
/// the `state` sent to the provider.
async fn start(link: &str) -> (reqwest::Client, String) {
    let browser = crate::helpers::manual_browser();
    let response = browser.get(link).send().await.expect("start");
    assert_eq!(response.status().as_u16(), 302);
    let location = response.headers()["location"].to_str().expect("location").to_owned();
    let state = crate::helpers::state_in(&location);
    (browser, state)
}
