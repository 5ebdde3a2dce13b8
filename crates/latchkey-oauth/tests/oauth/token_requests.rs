//! What latchkey sends to token and revocation endpoints (RFC 6749 §2.3.1, §4.1.3, §6; RFC 7009 §2.1).

use std::collections::BTreeMap;

use latchkey_core::Secret;
use latchkey_core::settings::{ClientAuth, TokenRequestFormat};
use latchkey_oauth::{exchange_code, refresh, revoke};

use crate::mock::{Canned, MockProvider, local_client};

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

const REDIRECT: &str = "http://127.0.0.1:9/oauth2/callback";

#[tokio::test]
async fn code_exchange_with_client_secret_post_sends_the_standard_form() {
    let provider = MockProvider::start().await;
    provider.on("/token", Canned::tokens());
    let mut settings = provider.settings();
    settings.token_params = BTreeMap::from([
        ("audience".to_owned(), "https://api.example".to_owned()),
        ("grant_type".to_owned(), "password".to_owned()),
    ]);

    let tokens = exchange_code(
        &local_client(),
        &settings,
        Some(&Secret::new("s3cret value")),
        &Secret::new("code-1"),
        REDIRECT,
        Some(&Secret::new("verifier-1")),
    )
    .await
    .expect("tokens");
    assert_eq!(tokens.access_token.expose(), "at-1");

    let request = provider.only_request_to("/token");
    assert_eq!(request.method, "POST");
    assert_eq!(request.header("accept"), Some("application/json"));
    assert_eq!(request.header("content-type"), Some("application/x-www-form-urlencoded"));
    assert!(request.header("authorization").is_none());
    assert!(request.header("user-agent").is_some_and(|ua| ua.starts_with("latchkey/")));
    assert_eq!(
        request.form(),
        pairs(&[
            ("grant_type", "authorization_code"),
            ("code", "code-1"),
            ("redirect_uri", REDIRECT),
            ("client_id", "client-1"),
            ("client_secret", "s3cret value"),
            ("code_verifier", "verifier-1"),
            ("audience", "https://api.example"),
        ])
    );
}

#[tokio::test]
async fn client_secret_post_without_a_secret_sends_only_the_id() {
    let provider = MockProvider::start().await;
    provider.on("/token", Canned::tokens());
    let settings = provider.settings();
    exchange_code(&local_client(), &settings, None, &Secret::new("c"), REDIRECT, None).await.expect("tokens");
    assert_eq!(
        provider.only_request_to("/token").form(),
        pairs(&[
            ("grant_type", "authorization_code"),
            ("code", "c"),
            ("redirect_uri", REDIRECT),
            ("client_id", "client-1"),
        ])
    );
}

#[tokio::test]
async fn client_secret_basic_uses_the_form_encoded_pair_and_keeps_the_id_out_of_the_body() {
    let provider = MockProvider::start().await;
    provider.on("/token", Canned::tokens());
    let mut settings = provider.settings();
    settings.client_auth = ClientAuth::ClientSecretBasic;
    settings.client_id = "my client".to_owned();

    exchange_code(&local_client(), &settings, Some(&Secret::new("s3:cr/t+")), &Secret::new("code-1"), REDIRECT, None)
        .await
        .expect("tokens");

    let request = provider.only_request_to("/token");
    // RFC 6749 §2.3.1: both parts form-encoded, then joined by ':' and base64-encoded.
    use base64::Engine as _;
    let expected = base64::engine::general_purpose::STANDARD.encode("my+client:s3%3Acr%2Ft%2B");
    assert_eq!(request.header("authorization"), Some(format!("Basic {expected}").as_str()));
    assert_eq!(
        request.form(),
        pairs(&[("grant_type", "authorization_code"), ("code", "code-1"), ("redirect_uri", REDIRECT)])
    );
}

#[tokio::test]
async fn public_clients_with_a_json_body_send_only_the_id() {
    let provider = MockProvider::start().await;
    provider.on("/token", Canned::tokens());
    let mut settings = provider.settings();
    settings.client_auth = ClientAuth::None;
    settings.token_request_format = TokenRequestFormat::Json;

    exchange_code(
        &local_client(),
        &settings,
        Some(&Secret::new("ignored-secret")),
        &Secret::new("code-1"),
        REDIRECT,
        Some(&Secret::new("verifier-1")),
    )
    .await
    .expect("tokens");

    let request = provider.only_request_to("/token");
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("accept"), Some("application/json"));
    assert!(request.header("authorization").is_none());
    assert_eq!(
        request.json(),
        serde_json::json!({"grant_type": "authorization_code", "code": "code-1", "redirect_uri": REDIRECT,
            "client_id": "client-1", "code_verifier": "verifier-1"})
    );
}

#[tokio::test]
async fn basic_auth_with_a_json_body() {
    let provider = MockProvider::start().await;
    provider.on("/token", Canned::tokens());
    let mut settings = provider.settings();
    settings.client_auth = ClientAuth::ClientSecretBasic;
    settings.token_request_format = TokenRequestFormat::Json;
    exchange_code(&local_client(), &settings, Some(&Secret::new("pw")), &Secret::new("c"), REDIRECT, None)
        .await
        .expect("tokens");
    let request = provider.only_request_to("/token");
    assert!(request.header("authorization").is_some_and(|v| v.starts_with("Basic ")));
    assert_eq!(
        request.json(),
        serde_json::json!({"grant_type": "authorization_code", "code": "c", "redirect_uri": REDIRECT})
    );
}

#[tokio::test]
async fn refresh_sends_the_refresh_grant_without_scope_to_the_refresh_url() {
    let provider = MockProvider::start().await;
    provider.on("/refresh", Canned::tokens());
    let mut settings = provider.settings();
    settings.refresh_url = Some(provider.url("/refresh"));
    settings.refresh_params = BTreeMap::from([("resource".to_owned(), "api".to_owned())]);

    let tokens =
        refresh(&local_client(), &settings, Some(&Secret::new("pw")), &Secret::new("rt-0")).await.expect("tokens");
    assert_eq!(tokens.refresh_token.as_ref().map(Secret::expose), Some("rt-1"));

    assert!(provider.requests_to("/token").is_empty());
    let request = provider.only_request_to("/refresh");
    assert_eq!(request.header("accept"), Some("application/json"));
    assert_eq!(
        request.form(),
        pairs(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", "rt-0"),
            ("client_id", "client-1"),
            ("client_secret", "pw"),
            ("resource", "api"),
        ])
    );
}

#[tokio::test]
async fn refresh_goes_to_the_token_url_by_default() {
    let provider = MockProvider::start().await;
    provider.on("/token", Canned::tokens());
    refresh(&local_client(), &provider.settings(), None, &Secret::new("rt-0")).await.expect("tokens");
    assert_eq!(provider.only_request_to("/token").form()[0], ("grant_type".to_owned(), "refresh_token".to_owned()));
}

#[tokio::test]
async fn revoke_posts_the_token_with_its_hint() {
    let provider = MockProvider::start().await;
    provider.on("/revoke", Canned::raw(200, None, ""));
    let mut settings = provider.settings();
    settings.revocation_url = Some(provider.url("/revoke"));
    revoke(&local_client(), &settings, Some(&Secret::new("pw")), &Secret::new("rt-0"), "refresh_token")
        .await
        .expect("revoked");
    let request = provider.only_request_to("/revoke");
    assert_eq!(request.header("accept"), Some("application/json"));
    assert_eq!(
        request.form(),
        pairs(&[
            ("token", "rt-0"),
            ("token_type_hint", "refresh_token"),
            ("client_id", "client-1"),
            ("client_secret", "pw"),
        ])
    );
}

#[tokio::test]
async fn revoke_without_an_endpoint_does_nothing_and_reports_failures() {
    let provider = MockProvider::start().await;
    let mut settings = provider.settings();
    revoke(&local_client(), &settings, None, &Secret::new("t"), "").await.expect("nothing to do");
    assert!(provider.requests().is_empty());

    settings.revocation_url = Some(provider.url("/revoke"));
    provider.on("/revoke", Canned::raw(503, None, ""));
    let err = revoke(&local_client(), &settings, None, &Secret::new("t"), "").await.expect_err("503");
    assert!(err.is_retryable());
    provider.on("/revoke", Canned::json(400, &serde_json::json!({"error": "unsupported_token_type"})));
    let err = revoke(&local_client(), &settings, None, &Secret::new("t"), "").await.expect_err("400");
    assert!(
        err.describe_at("the revocation endpoint", &provider.url("/revoke")).contains("400 unsupported_token_type"),
        "{err}"
    );
    assert_eq!(provider.requests_to("/revoke")[0].form(), pairs(&[("token", "t"), ("client_id", "client-1")]));
}
