//! How token endpoint answers are read (RFC 6749 §5.1, §5.2), end to end through a real HTTP exchange.

use std::time::Duration;

use latchkey_core::Secret;
use latchkey_core::settings::OAuthSettings;
use latchkey_oauth::{HttpClient, OAuthError, OutboundPolicy, TokenResponse, exchange_code};

use crate::mock::{Canned, MockProvider, local_client};

async fn exchange_with(
    provider: &MockProvider,
    settings: &OAuthSettings,
    client: &HttpClient,
) -> Result<TokenResponse, OAuthError> {
    exchange_code(
        client,
        settings,
        Some(&Secret::new("client-secret-1")),
        &Secret::new("code-1"),
        "http://127.0.0.1:9/cb",
        None,
    )
    .await
    .inspect(|_| assert_eq!(provider.requests_to("/token").len(), 1))
}

/// Exchanges a code with the provider answering `canned` on `/token`.
async fn answer(canned: Canned) -> Result<TokenResponse, OAuthError> {
    let provider = MockProvider::start().await;
    provider.on("/token", canned);
    exchange_with(&provider, &provider.settings(), &local_client()).await
}

#[tokio::test]
async fn json_answer_with_unknown_fields() {
    let tokens = answer(Canned::json(
        200,
        &serde_json::json!({"access_token": "at-9", "token_type": "bearer", "expires_in": 120,
            "refresh_token": "rt-9", "scope": "read", "id_token": "x.y.z", "extra": {"nested": [1, 2]}}),
    ))
    .await
    .expect("tokens");
    assert_eq!(tokens.access_token.expose(), "at-9");
    assert_eq!(tokens.token_type, "Bearer");
    assert_eq!(tokens.expires_in, Some(120));
    assert_eq!(tokens.refresh_token.as_ref().map(Secret::expose), Some("rt-9"));
    assert_eq!(tokens.scope.as_deref(), Some("read"));
}

#[tokio::test]
async fn expires_in_as_a_string_and_the_default_lifetime() {
    let tokens = answer(Canned::json(200, &serde_json::json!({"access_token": "a", "expires_in": "3599"})))
        .await
        .expect("tokens");
    assert_eq!(tokens.expires_in, Some(3599));
    assert_eq!(tokens.token_type, "Bearer");
    assert!(tokens.refresh_token.is_none());

    let provider = MockProvider::start().await;
    provider.on("/token", Canned::json(200, &serde_json::json!({"access_token": "a", "refresh_token": ""})));
    let mut settings = provider.settings();
    settings.default_expires_in = Some(900);
    let tokens = exchange_with(&provider, &settings, &local_client()).await.expect("tokens");
    assert_eq!(tokens.expires_in, Some(900));
    assert!(tokens.refresh_token.is_none(), "an empty refresh_token is none");
}

#[tokio::test]
async fn form_encoded_answer() {
    let tokens = answer(Canned::raw(
        200,
        Some("application/x-www-form-urlencoded"),
        "access_token=gho_abc&scope=repo%2Cgist&token_type=bearer",
    ))
    .await
    .expect("tokens");
    assert_eq!(tokens.access_token.expose(), "gho_abc");
    assert_eq!(tokens.scope.as_deref(), Some("repo,gist"));
}

#[tokio::test]
async fn error_inside_a_200_is_a_rejection() {
    let err = answer(Canned::json(
        200,
        &serde_json::json!({"error": "bad_verification_code", "error_description": "The code passed is incorrect or expired."}),
    ))
    .await
    .expect_err("rejected");
    assert_eq!(
        err,
        OAuthError::Rejected {
            status: 200,
            error: "bad_verification_code".into(),
            description: Some("The code passed is incorrect or expired.".into())
        }
    );
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn invalid_grant_needs_reauthorization() {
    let err =
        answer(Canned::json(400, &serde_json::json!({"error": "invalid_grant", "error_description": "Token expired"})))
            .await
            .expect_err("rejected");
    assert!(err.needs_reauth());
    assert!(!err.is_retryable());
    assert_eq!(
        err.describe("https://provider.example/token?x=1"),
        "the token endpoint https://provider.example/token answered 400 invalid_grant: Token expired"
    );
    let core: latchkey_core::Error = err.into();
    assert!(matches!(core, latchkey_core::Error::Provider { retryable: false, .. }));
}

#[tokio::test]
async fn server_errors_are_retryable() {
    let err = answer(Canned::raw(503, Some("text/html"), "<h1>down</h1>")).await.expect_err("503");
    assert!(err.is_retryable());
    assert!(!err.needs_reauth());
    assert_eq!(err.retry_after(), None);
    let core: latchkey_core::Error = err.into();
    assert!(core.is_retryable());
}

#[tokio::test]
async fn too_many_requests_carries_retry_after() {
    let err = answer(Canned::json(429, &serde_json::json!({"error": "slow_down"})).header("retry-after", "7"))
        .await
        .expect_err("429");
    assert!(err.is_retryable());
    assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
}

#[tokio::test]
async fn non_json_success_is_invalid() {
    let err = answer(Canned::raw(200, Some("text/html"), "<html>Welcome!</html>")).await.expect_err("html");
    assert!(matches!(err, OAuthError::InvalidResponse { .. }), "{err:?}");
    let err = answer(Canned::json(200, &serde_json::json!({"token": "a"}))).await.expect_err("no access_token");
    assert!(matches!(err, OAuthError::InvalidResponse { .. }), "{err:?}");
}

#[tokio::test]
async fn client_errors_without_an_oauth_body_are_rejections() {
    let err = answer(Canned::raw(401, None, "")).await.expect_err("401");
    assert_eq!(err, OAuthError::Rejected { status: 401, error: "http_401".into(), description: None });
}

fn capped_client(max_body_bytes: usize) -> HttpClient {
    HttpClient::new(OutboundPolicy { allow_private_networks: true, max_body_bytes, ..OutboundPolicy::default() })
        .expect("client")
}

#[tokio::test]
async fn bodies_above_the_cap_are_refused_with_or_without_content_length() {
    let padding = "x".repeat(4096);
    let body = serde_json::json!({"access_token": "a", "padding": padding}).to_string();
    for canned in [
        Canned::raw(200, Some("application/json"), body.clone()),
        Canned::raw(200, Some("application/json"), body.clone()).chunked(512),
    ] {
        let provider = MockProvider::start().await;
        provider.on("/token", canned);
        let err = exchange_with(&provider, &provider.settings(), &capped_client(1024)).await.expect_err("too large");
        assert!(
            matches!(&err, OAuthError::InvalidResponse { message } if message.contains("larger than 1024 bytes")),
            "{err:?}"
        );
    }

    // Just under the cap is fine, chunked or not.
    let provider = MockProvider::start().await;
    provider.on("/token", Canned::raw(200, Some("application/json"), body.clone()).chunked(100));
    exchange_with(&provider, &provider.settings(), &capped_client(body.len())).await.expect("fits");
}

#[tokio::test]
async fn the_default_cap_is_one_mebibyte() {
    let body = serde_json::json!({"access_token": "a", "padding": "x".repeat(1_100_000)}).to_string();
    let err = answer(Canned::raw(200, Some("application/json"), body).chunked(64 * 1024)).await.expect_err("too large");
    assert!(matches!(err, OAuthError::InvalidResponse { .. }), "{err:?}");
}
