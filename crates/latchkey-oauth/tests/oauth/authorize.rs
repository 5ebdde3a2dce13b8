//! The authorization request (RFC 6749 §4.1.1) and PKCE (RFC 7636).

use std::collections::BTreeMap;

use latchkey_core::Secret;
use latchkey_core::settings::OAuthSettings;
use latchkey_oauth::{OAuthError, PkcePair, authorization_request_url};

fn settings(authorization_url: &str) -> OAuthSettings {
    serde_json::from_value(serde_json::json!({
        "authorization_url": authorization_url,
        "token_url": "https://provider.example/token",
        "client_id": "client 1",
        "scopes": "read:data  write:data",
    }))
    .expect("settings")
}

fn pairs(url: &url::Url) -> Vec<(String, String)> {
    url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

fn pair(key: &str, value: &str) -> (String, String) {
    (key.to_owned(), value.to_owned())
}

#[test]
fn carries_every_parameter_and_keeps_the_existing_query() {
    let mut settings = settings("https://provider.example/oauth/authorize?tenant=acme&prompt=login");
    settings.authorization_params = BTreeMap::from([
        ("access_type".to_owned(), "offline".to_owned()),
        ("prompt".to_owned(), "consent".to_owned()),
        ("state".to_owned(), "attacker".to_owned()),
        ("client_id".to_owned(), "attacker".to_owned()),
        ("redirect_uri".to_owned(), "https://attacker.example/".to_owned()),
        ("response_type".to_owned(), "token".to_owned()),
        ("code_challenge".to_owned(), "attacker".to_owned()),
        ("code_challenge_method".to_owned(), "plain".to_owned()),
    ]);
    let url = authorization_request_url(
        &settings,
        "http://127.0.0.1:8080/oauth2/callback",
        "state-123",
        Some("challenge-abc"),
    )
    .expect("url");

    assert_eq!(url.scheme(), "https");
    assert_eq!(url.host_str(), Some("provider.example"));
    assert_eq!(url.path(), "/oauth/authorize");
    assert_eq!(
        pairs(&url),
        vec![
            pair("tenant", "acme"),
            pair("prompt", "consent"),
            pair("response_type", "code"),
            pair("client_id", "client 1"),
            pair("redirect_uri", "http://127.0.0.1:8080/oauth2/callback"),
            pair("scope", "read:data write:data"),
            pair("state", "state-123"),
            pair("code_challenge", "challenge-abc"),
            pair("code_challenge_method", "S256"),
            pair("access_type", "offline"),
        ]
    );
}

#[test]
fn leaves_out_empty_scope_and_absent_pkce() {
    let mut settings = settings("https://provider.example/authorize");
    settings.scopes = "   ".to_owned();
    let url = authorization_request_url(&settings, "https://l.example/cb", "s", None).expect("url");
    let keys: Vec<String> = pairs(&url).into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, ["response_type", "client_id", "redirect_uri", "state"]);
}

#[test]
fn joins_scopes_with_the_provider_separator() {
    let mut settings = settings("https://provider.example/authorize");
    settings.scope_separator = ",".to_owned();
    let url = authorization_request_url(&settings, "https://l.example/cb", "s", None).expect("url");
    assert!(pairs(&url).contains(&pair("scope", "read:data,write:data")));
    assert!(url.as_str().contains("scope=read%3Adata%2Cwrite%3Adata"), "{url}");
}

#[test]
fn refuses_urls_a_browser_must_not_be_sent_to() {
    for bad in ["not a url", "javascript:alert(1)", "/relative/authorize", "ftp://provider.example/a"] {
        let err = authorization_request_url(&settings(bad), "https://l.example/cb", "s", None).expect_err(bad);
        assert!(matches!(err, OAuthError::Refused { .. }), "{bad}: {err:?}");
    }
}

#[test]
fn pkce_challenge_matches_rfc7636_appendix_b() {
    let pair = PkcePair::from_verifier(Secret::new("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"));
    assert_eq!(pair.challenge, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
}

#[test]
fn generated_pkce_pairs_are_valid_and_fresh() {
    let first = PkcePair::generate();
    let second = PkcePair::generate();
    let verifier = first.verifier.expose();
    // RFC 7636 §4.1: 43 to 128 characters of [A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~".
    assert_eq!(verifier.len(), 43);
    assert!(verifier.chars().all(|c| c.is_ascii_alphanumeric() || "-._~".contains(c)), "{verifier}");
    assert_eq!(first.challenge, PkcePair::s256_challenge(verifier));
    assert_eq!(first.challenge.len(), 43);
    assert_ne!(first.verifier, second.verifier);
    assert!(!format!("{first:?}").contains(verifier));
}
