//! Authorization server metadata (RFC 8414) and the OpenID Connect fallback, through a real HTTP exchange; and
//! the per-grant client authentication of refresh requests.

use latchkey_core::Secret;
use latchkey_core::settings::ClientAuth;
use latchkey_oauth::{OAuthError, ProviderMetadata, discover, exchange_code, refresh};

use crate::mock::{Canned, MockProvider, local_client};

fn document(provider: &MockProvider, issuer: &str) -> serde_json::Value {
    serde_json::json!({
        "issuer": issuer,
        "authorization_endpoint": provider.url("/authorize"),
        "token_endpoint": provider.url("/token"),
        "revocation_endpoint": provider.url("/revoke"),
        "device_authorization_endpoint": provider.url("/device"),
        "authorization_response_iss_parameter_supported": true,
        "grant_types_supported": ["authorization_code"],
    })
}

#[tokio::test]
async fn rfc8414_metadata_is_found_between_host_and_path() {
    let provider = MockProvider::start().await;
    let issuer = provider.url("/tenant/v1");
    provider.on("/.well-known/oauth-authorization-server/tenant/v1", Canned::json(200, &document(&provider, &issuer)));
    let metadata = discover(&local_client(), &issuer).await.expect("metadata");
    assert_eq!(
        metadata,
        ProviderMetadata {
            issuer: issuer.clone(),
            authorization_endpoint: Some(provider.url("/authorize")),
            token_endpoint: Some(provider.url("/token")),
            revocation_endpoint: Some(provider.url("/revoke")),
            device_authorization_endpoint: Some(provider.url("/device")),
            authorization_response_iss_parameter_supported: true,
        }
    );
    let asked = provider.requests();
    assert_eq!(asked.len(), 1);
    assert_eq!((asked[0].method.as_str(), asked[0].header("accept")), ("GET", Some("application/json")));
}

#[tokio::test]
async fn openid_configuration_is_tried_when_rfc8414_has_nothing() {
    let provider = MockProvider::start().await;
    let issuer = provider.url("/realms/acme");
    provider.on("/realms/acme/.well-known/openid-configuration", Canned::json(200, &document(&provider, &issuer)));
    let metadata = discover(&local_client(), &issuer).await.expect("metadata");
    assert_eq!(metadata.token_endpoint, Some(provider.url("/token")));
    let paths: Vec<String> = provider.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        ["/.well-known/oauth-authorization-server/realms/acme", "/realms/acme/.well-known/openid-configuration"]
    );
}

#[tokio::test]
async fn another_issuer_or_no_document_is_an_error() {
    let provider = MockProvider::start().await;
    let issuer = provider.url("/a");
    provider
        .on("/.well-known/oauth-authorization-server/a", Canned::json(200, &document(&provider, &provider.url("/b"))));
    let err = discover(&local_client(), &issuer).await.expect_err("mismatch");
    assert!(matches!(&err, OAuthError::InvalidResponse { message } if message.contains("not '")), "{err:?}");

    let err = discover(&local_client(), &provider.url("/nothing")).await.expect_err("nothing");
    assert!(matches!(&err, OAuthError::InvalidResponse { message } if message.contains("404")), "{err:?}");

    provider.on("/.well-known/oauth-authorization-server/down", Canned::raw(503, None, ""));
    provider.on("/down/.well-known/openid-configuration", Canned::raw(502, None, ""));
    provider.on("/.well-known/openid-configuration/down", Canned::raw(500, None, ""));
    let err = discover(&local_client(), &provider.url("/down")).await.expect_err("down");
    assert!(err.is_retryable(), "{err:?}");

    let mut bad = document(&provider, &provider.url("/bad"));
    bad["token_endpoint"] = serde_json::json!(7);
    provider.on("/.well-known/oauth-authorization-server/bad", Canned::json(200, &bad));
    let err = discover(&local_client(), &provider.url("/bad")).await.expect_err("bad endpoint");
    assert!(matches!(&err, OAuthError::InvalidResponse { message } if message.contains("token_endpoint")), "{err:?}");
}

#[tokio::test]
async fn refresh_client_auth_overrides_client_auth_for_refreshes_only() {
    let provider = MockProvider::start().await;
    provider.on("/token", Canned::tokens());
    let mut settings = provider.settings();
    settings.client_auth = ClientAuth::ClientSecretBasic;
    settings.refresh_client_auth = Some(ClientAuth::ClientSecretPost);
    let secret = Secret::new("cs-1");
    exchange_code(&local_client(), &settings, Some(&secret), &Secret::new("c"), "http://127.0.0.1:9/cb", None)
        .await
        .expect("exchange");
    refresh(&local_client(), &settings, Some(&secret), &Secret::new("rt")).await.expect("refresh");
    let calls = provider.requests_to("/token");
    assert!(calls[0].header("authorization").is_some_and(|h| h.starts_with("Basic ")));
    assert!(!calls[0].form().iter().any(|(k, _)| k == "client_secret"));
    assert!(calls[1].header("authorization").is_none());
    assert!(calls[1].form().contains(&("client_secret".to_owned(), "cs-1".to_owned())));
}
