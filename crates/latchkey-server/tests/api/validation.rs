//! Input checks, editing, and who may see what.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{TestApp, spawn_app};
use crate::provider::MockProvider;

#[tokio::test]
async fn bad_handles_get_clear_400s() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    let long = "x".repeat(65);
    let cases = [("MyHandle", "uppercase"), ("my handle", "space"), (long.as_str(), "65 characters"), ("", "empty")];
    for (handle, reason) in cases {
        let body = TestApp::connection_body(handle, &provider, "s");
        let (status, answer) = app.api(&alice, Method::POST, "/api/v1/connections", Some(body)).await;
        assert_eq!(status, 400, "{handle:?}: {answer}");
        assert_eq!(answer["code"], "invalid_request");
        assert_eq!(answer["field"], "handle");
        assert!(answer["error"].as_str().unwrap_or_default().contains(reason), "{handle:?}: {answer}");
    }
    app.create_connection(&alice, "crm", &provider, "s").await;
    let duplicate = TestApp::connection_body("crm", &provider, "s");
    let (status, answer) = app.api(&alice, Method::POST, "/api/v1/connections", Some(duplicate)).await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer["error"].as_str().unwrap_or_default().contains("already"), "{answer}");
}

#[tokio::test]
async fn other_bad_input_is_named() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    let mut body = TestApp::connection_body("crm", &provider, "s");
    body["token_url"] = json!("not a url");
    let (status, answer) = app.api(&alice, Method::POST, "/api/v1/connections", Some(body)).await;
    assert_eq!((status, answer["field"].as_str()), (400, Some("token_url")), "{answer}");

    let mut body = TestApp::connection_body("crm", &provider, "s");
    body.as_object_mut().expect("object").remove("client_id");
    let (status, answer) = app.api(&alice, Method::POST, "/api/v1/connections", Some(body)).await;
    assert_eq!((status, answer["field"].as_str()), (400, Some("client_id")), "{answer}");

    let mut body = TestApp::connection_body("crm", &provider, "s");
    body["colour"] = json!("blue");
    let (status, answer) = app.api(&alice, Method::POST, "/api/v1/connections", Some(body)).await;
    assert_eq!(status, 400);
    assert!(answer["error"].as_str().unwrap_or_default().contains("colour"), "{answer}");

    let response = app
        .http
        .post(app.url("/api/v1/connections"))
        .bearer_auth(&alice.key)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 400);
    let answer: serde_json::Value = response.json().await.expect("json");
    assert_eq!(answer["code"], "invalid_request");
}

#[tokio::test]
async fn patch_keeps_the_secret_unless_given_and_never_changes_the_handle() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "first-secret").await;
    let alice = app.caller("alice", None).await;
    app.connect(&alice, "crm", &provider, "first-secret").await;

    let (status, answer) =
        app.api(&alice, Method::PATCH, "/api/v1/connections/crm", Some(json!({"name": "Renamed"}))).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["connection"]["name"], "Renamed");
    assert_eq!(answer["connection"]["client_secret_set"], true);
    let link = answer["authorization_link"].as_str().expect("a fresh authorization link");
    assert_eq!(app.follow(link).await.0, 200, "the stored secret still works");
    assert_eq!(
        provider.token_calls().last().and_then(|c| c.param("client_secret").map(str::to_owned)).as_deref(),
        Some("first-secret")
    );

    provider.set_client_secret("second-secret");
    let (status, answer) = app
        .api(&alice, Method::PATCH, "/api/v1/connections/crm", Some(json!({"client_secret": "second-secret"})))
        .await;
    assert_eq!(status, 200, "{answer}");
    let link = answer["authorization_link"].as_str().expect("link");
    assert_eq!(app.follow(link).await.0, 200, "the new secret is used");
    assert_eq!(
        provider.token_calls().last().and_then(|c| c.param("client_secret").map(str::to_owned)).as_deref(),
        Some("second-secret")
    );

    let (status, answer) =
        app.api(&alice, Method::PATCH, "/api/v1/connections/crm", Some(json!({"handle": "other"}))).await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer["error"].as_str().unwrap_or_default().contains("cannot be changed"), "{answer}");
}

#[tokio::test]
async fn changing_the_token_url_requires_a_new_authorization() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "s").await;
    let elsewhere = MockProvider::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    app.connect(&alice, "crm", &provider, "s").await;
    let (status, _) = app
        .api(
            &alice,
            Method::PATCH,
            "/api/v1/connections/crm",
            Some(json!({"token_url": elsewhere.token_url(), "client_secret": "s"})),
        )
        .await;
    assert_eq!(status, 200);
    app.clock.advance(3600);
    let (status, body) = app.token(&alice, "crm").await;
    assert_eq!(status, 409, "{body}");
    assert!(elsewhere.token_calls().is_empty(), "the old refresh token never went to the new URL");
}

#[tokio::test]
async fn delete_removes_the_connection() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    app.connect(&alice, "crm", &provider, "s").await;
    let (status, _) = app.api(&alice, Method::DELETE, "/api/v1/connections/crm", None).await;
    assert_eq!(status, 204);
    let (status, body) = app.token(&alice, "crm").await;
    assert_eq!(status, 404, "{body}");
    let (status, _) = app.api(&alice, Method::DELETE, "/api/v1/connections/crm", None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn one_user_never_sees_another_users_connection() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    let bob = app.caller("bob", None).await;
    app.connect(&alice, "crm", &provider, "s").await;
    for (method, path) in [
        (Method::GET, "/api/v1/connections/crm"),
        (Method::GET, "/api/v1/connections/crm/token"),
        (Method::PATCH, "/api/v1/connections/crm"),
        (Method::POST, "/api/v1/connections/crm/authorize"),
        (Method::DELETE, "/api/v1/connections/crm"),
    ] {
        let body = (method == Method::PATCH).then(|| json!({"name": "mine now"}));
        let (status, answer) = app.api(&bob, method.clone(), path, body).await;
        assert_eq!(status, 404, "{method} {path}: {answer}");
    }
    let (_, list) = app.api(&bob, Method::GET, "/api/v1/connections", None).await;
    assert_eq!(list["connections"], json!([]));
    // Bob may use the same handle for his own connection.
    app.create_connection(&bob, "crm", &provider, "s").await;
    assert_eq!(app.token(&alice, "crm").await.0, 200);
}

#[tokio::test]
async fn a_key_limited_to_some_handles_gets_403_on_others() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    app.connect(&alice, "x", &provider, "s").await;
    app.connect(&alice, "y", &provider, "s").await;
    let limited = crate::helpers::Caller {
        user: alice.user.clone(),
        key: {
            let now = latchkey_core::Clock::now(app.clock.as_ref());
            let handles = Some(vec![latchkey_core::Handle::parse("x").expect("handle")]);
            let (_, key) = latchkey_server::service::api_keys::create(
                app.state.store.as_ref(),
                &alice.user,
                "x only",
                handles,
                now,
            )
            .await
            .expect("key");
            key.expose().to_owned()
        },
    };
    assert_eq!(app.token(&limited, "x").await.0, 200);
    let (status, body) = app.token(&limited, "y").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["code"], "forbidden");
    let (status, _) = app.token(&limited, "does-not-exist").await;
    assert_eq!(status, 403, "a limited key learns nothing about other handles");
    let (_, list) = app.api(&limited, Method::GET, "/api/v1/connections", None).await;
    assert_eq!(list["connections"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn missing_or_bad_keys_get_401() {
    let app = spawn_app().await;
    let response = app.http.get(app.url("/api/v1/connections/crm/token")).send().await.expect("request");
    assert_eq!(response.status().as_u16(), 401);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["code"], "unauthorized");
    let bogus = crate::helpers::Caller { user: app.caller("carol", None).await.user, key: "lk_not-a-key".into() };
    assert_eq!(app.token(&bogus, "crm").await.0, 401);
    assert_eq!(app.api(&bogus, Method::GET, "/api/v1/connections", None).await.0, 401);
}

#[tokio::test]
async fn health_and_openapi_answer() {
    let app = spawn_app().await;
    let health = app.http.get(app.url("/healthz")).send().await.expect("healthz");
    assert_eq!(health.status().as_u16(), 200);
    let doc: serde_json::Value =
        app.http.get(app.url("/api/v1/openapi.json")).send().await.expect("openapi").json().await.expect("json");
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with('3')));
    for path in ["/api/v1/connections", "/api/v1/connections/{handle}", "/api/v1/connections/{handle}/token"] {
        assert!(doc["paths"][path].is_object(), "{path} documented");
    }
}

#[tokio::test]
async fn a_key_in_the_query_string_is_refused() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    app.connect(&alice, "crm", &provider, "s").await;
    let url = app.url(&format!("/api/v1/connections/crm/token?api_key={}", alice.key));
    let response = app.http.get(&url).send().await.expect("request");
    assert_eq!(response.status().as_u16(), 401);
    let body: serde_json::Value = response.json().await.expect("json");
    assert!(body["error"].as_str().unwrap_or_default().contains("Authorization header"), "{body}");
    // Even together with a valid header, a key in the URL is refused.
    let response = app.http.get(&url).bearer_auth(&alice.key).send().await.expect("request");
    assert_eq!(response.status().as_u16(), 401);
}

#[tokio::test]
async fn a_key_over_its_rate_limit_gets_429_with_retry_after() {
    let options = crate::helpers::Options {
        api_rate_limit: std::num::NonZeroU32::new(5).expect("non-zero"),
        ..crate::helpers::Options::default()
    };
    let app = crate::helpers::spawn_with(options).await;
    let alice = app.caller("alice", None).await;
    let bob = app.caller("bob", None).await;
    // The burst of 5 always passes; after it, requests are refused until the bucket refills, however fast or
    // slow they are sent (bounded: at most 5 more a second get through).
    let mut statuses = Vec::new();
    for _ in 0..50 {
        let response =
            app.http.get(app.url("/api/v1/connections")).bearer_auth(&alice.key).send().await.expect("request");
        statuses.push(response.status().as_u16());
        if response.status().as_u16() == 429 {
            assert!(response.headers().contains_key("retry-after"));
            break;
        }
    }
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    assert!(statuses.len() > 5 && statuses[..5].iter().all(|s| *s == 200), "the burst passes: {statuses:?}");
    assert_eq!(app.api(&bob, Method::GET, "/api/v1/connections", None).await.0, 200, "bob has his own bucket");
}
