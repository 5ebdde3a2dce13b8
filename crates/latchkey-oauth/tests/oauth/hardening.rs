//! The outbound guard, redirects, timeouts and the secrecy of tokens.

use std::time::Duration;

use latchkey_core::Secret;
use latchkey_oauth::{HttpClient, OAuthError, OutboundPolicy, exchange_code, refresh};

use crate::mock::{Canned, MockProvider, local_client};

#[tokio::test]
async fn redirects_from_the_token_endpoint_are_not_followed() {
    let provider = MockProvider::start().await;
    provider.on("/token", Canned::raw(302, None, "").header("location", &provider.url("/elsewhere")));
    provider.on("/elsewhere", Canned::tokens());
    let err =
        exchange_code(&local_client(), &provider.settings(), None, &Secret::new("c"), "http://127.0.0.1:9/cb", None)
            .await
            .expect_err("a redirect is not an answer");
    assert!(matches!(&err, OAuthError::InvalidResponse { message } if message.contains("302")), "{err:?}");
    assert_eq!(provider.requests_to("/token").len(), 1);
    assert!(provider.requests_to("/elsewhere").is_empty(), "the redirect target got a request");
}

#[tokio::test]
async fn a_slow_endpoint_times_out() {
    let provider = MockProvider::start().await;
    provider.on("/token", Canned::tokens().delay(Duration::from_secs(5)));
    let client = HttpClient::new(OutboundPolicy {
        allow_private_networks: true,
        request_timeout: Duration::from_millis(300),
        ..OutboundPolicy::default()
    })
    .expect("client");
    // The answer would come after 5 s; the error's own words say which limit ended the wait.
    let err = refresh(&client, &provider.settings(), None, &Secret::new("rt")).await.expect_err("timeout");
    assert!(err.is_retryable(), "{err:?}");
    assert_eq!(
        err.describe(&provider.url("/token")),
        format!("the token endpoint {} did not answer within 300 ms", provider.url("/token"))
    );
}

#[tokio::test]
async fn a_closed_port_is_unavailable() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    let mut settings = MockProvider::start().await.settings();
    settings.token_url = format!("http://127.0.0.1:{port}/token");
    let err = refresh(&local_client(), &settings, None, &Secret::new("rt")).await.expect_err("refused");
    assert!(
        matches!(&err, OAuthError::Unavailable { message, .. } if message.starts_with("could not be reached")),
        "{err:?}"
    );
}

fn guarded_client() -> HttpClient {
    let client = HttpClient::new(OutboundPolicy::default()).expect("client");
    assert!(!client.policy().allow_private_networks);
    client
}

#[tokio::test]
async fn private_addresses_are_refused_before_any_connection() {
    let provider = MockProvider::start().await;
    provider.on("/token", Canned::tokens());
    let port = provider.port();
    for token_url in [
        format!("http://127.0.0.1:{port}/token"),
        format!("https://127.0.0.1:{port}/token"),
        format!("https://[::ffff:127.0.0.1]:{port}/token"),
        // A host name that resolves to loopback: refused by the resolver, at connect time.
        format!("https://localhost:{port}/token"),
    ] {
        let mut settings = provider.settings();
        settings.token_url = token_url.clone();
        let err = refresh(&guarded_client(), &settings, None, &Secret::new("rt")).await.expect_err(&token_url);
        assert!(matches!(err, OAuthError::Refused { .. }), "{token_url}: {err:?}");
        assert!(!err.is_retryable());
    }
    assert!(provider.requests().is_empty(), "the provider saw {:?}", provider.requests());
}

#[tokio::test]
async fn the_resolver_refusal_says_why() {
    let mut settings = MockProvider::start().await.settings();
    settings.token_url = "https://localhost:1/token".to_owned();
    let err = refresh(&guarded_client(), &settings, None, &Secret::new("rt")).await.expect_err("refused");
    let text = err.describe(&settings.token_url);
    assert!(text.contains("localhost resolves to"), "{text}");
    assert!(text.contains("--allow-private-networks"), "{text}");
}

#[tokio::test]
async fn token_responses_do_not_show_their_tokens() {
    let provider = MockProvider::start().await;
    provider.on(
        "/token",
        Canned::json(200, &serde_json::json!({"access_token": "AT-VISIBLE", "refresh_token": "RT-VISIBLE"})),
    );
    let tokens = exchange_code(&local_client(), &provider.settings(), None, &Secret::new("c"), "http://x/cb", None)
        .await
        .expect("tokens");
    let shown = format!("{tokens:?}");
    assert!(!shown.contains("AT-VISIBLE") && !shown.contains("RT-VISIBLE"), "{shown}");
    assert!(shown.contains("[redacted]"), "{shown}");
}

#[tokio::test]
async fn errors_never_repeat_a_secret_of_the_request() {
    let provider = MockProvider::start().await;
    let secrets = ["CLIENT-SECRET-42", "REFRESH-TOKEN-42"];
    provider.on(
        "/token",
        Canned::json(
            400,
            &serde_json::json!({"error": "invalid_grant",
                "error_description": format!("refresh token {} for client secret {} is revoked", secrets[1], secrets[0])}),
        ),
    );
    let mut settings = provider.settings();
    settings.token_url = format!("{}?api_key=QUERY-SECRET", settings.token_url);
    let err = refresh(&local_client(), &settings, Some(&Secret::new(secrets[0])), &Secret::new(secrets[1]))
        .await
        .expect_err("rejected");
    assert!(err.needs_reauth());
    let described = err.describe(&settings.token_url);
    for text in [described.clone(), err.to_string(), format!("{err:?}")] {
        for secret in secrets.iter().chain(&["QUERY-SECRET"]) {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }
    assert!(described.contains("refresh token [redacted] for client secret [redacted] is revoked"), "{described}");
}

#[tokio::test]
async fn a_host_that_never_completes_the_connection_hits_the_connect_timeout() {
    // A listener that never accepts, its queue filled: further connection attempts get no answer at all.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
    let listener = socket.listen(1).expect("listen");
    let address = listener.local_addr().expect("addr");
    let mut queued = Vec::new();
    for _ in 0..64 {
        match tokio::time::timeout(Duration::from_millis(300), tokio::net::TcpStream::connect(address)).await {
            Ok(stream) => queued.push(stream.expect("connect")),
            Err(_) => break,
        }
    }
    assert!(queued.len() < 64, "the listener's queue never filled");

    let mut settings = MockProvider::start().await.settings();
    settings.token_url = format!("http://{address}/token");
    let client = HttpClient::new(OutboundPolicy {
        allow_private_networks: true,
        connect_timeout: Duration::from_millis(300),
        request_timeout: Duration::from_secs(20),
        ..OutboundPolicy::default()
    })
    .expect("client");
    let err = refresh(&client, &settings, None, &Secret::new("rt")).await.expect_err("no connection");
    assert!(err.is_retryable(), "{err:?}");
    assert_eq!(
        err.describe(&settings.token_url),
        format!("the token endpoint {} could not be reached within 300 ms", settings.token_url)
    );
    drop((queued, listener));
}

/// Refreshes against a provider that answers 400 with `description`, and returns every way the error is shown.
async fn shown_error(
    description: &str,
    settings_change: impl FnOnce(&mut latchkey_core::settings::OAuthSettings),
) -> Vec<String> {
    let provider = MockProvider::start().await;
    provider.on(
        "/token",
        Canned::json(400, &serde_json::json!({"error": "invalid_client", "error_description": description})),
    );
    let mut settings = provider.settings();
    settings_change(&mut settings);
    let err = refresh(&local_client(), &settings, Some(&Secret::new(CLIENT_SECRET)), &Secret::new(REFRESH_TOKEN))
        .await
        .expect_err("rejected");
    assert_eq!(provider.requests_to("/token").len(), 1);
    vec![err.describe(&settings.token_url), err.to_string(), format!("{err:?}")]
}

const CLIENT_SECRET: &str = "cs/Secret+with spaces~and@signs";
const REFRESH_TOKEN: &str = "rt-Straddling-The-Cut-0123456789";

fn assert_no_trace_of_secrets(shown: &[String]) {
    for text in shown {
        for secret in [CLIENT_SECRET, REFRESH_TOKEN] {
            // Not even a part: any 8 characters in a row of the secret.
            let chars: Vec<char> = secret.chars().collect();
            for piece in chars.windows(8) {
                let piece: String = piece.iter().collect();
                assert!(!text.contains(&piece), "a piece of a secret ({} chars) in {text}", piece.len());
            }
        }
    }
}

#[tokio::test]
async fn a_secret_straddling_the_length_cut_leaves_no_part_behind() {
    // The description is cut to 300 characters; the refresh token starts 10 characters before the cut.
    let description = format!("{}{REFRESH_TOKEN} is not valid", "x".repeat(290));
    let shown = shown_error(&description, |_| {}).await;
    assert_no_trace_of_secrets(&shown);
    assert!(shown[0].contains(&"x".repeat(290)), "the text before the secret stays: {}", shown[0]);
}

#[tokio::test]
async fn url_encoded_echoes_of_a_secret_are_blanked() {
    let plus: String = url::form_urlencoded::byte_serialize(CLIENT_SECRET.as_bytes()).collect();
    let percent = plus.replace('+', "%20").replace("%7E", "~");
    // Lower-case hex digits in the escapes only.
    let lower = percent.split('%').enumerate().fold(String::new(), |mut out, (n, part)| {
        if n > 0 {
            out.push('%');
            out.push_str(&part[..2].to_ascii_lowercase());
            out.push_str(&part[2..]);
        } else {
            out.push_str(part);
        }
        out
    });
    assert_ne!(lower, percent);
    let description = format!("client_secret={plus} (also {percent}, {lower}) refused");
    let shown = shown_error(&description, |_| {}).await;
    assert_no_trace_of_secrets(&shown);
    for text in &shown {
        for echo in [&plus, &percent, &lower] {
            assert!(!text.contains(echo.as_str()), "{text}");
        }
    }
    assert!(shown[0].contains("client_secret=[redacted] (also [redacted], [redacted]) refused"), "{}", shown[0]);
}

#[tokio::test]
async fn basic_encoded_echoes_of_the_client_credentials_are_blanked() {
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::STANDARD.encode(format!("client-1:{CLIENT_SECRET}"));
    let form: String = url::form_urlencoded::byte_serialize(CLIENT_SECRET.as_bytes()).collect();
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("client-1:{form}"));
    assert_ne!(raw, encoded);
    for client_auth in
        [latchkey_core::settings::ClientAuth::ClientSecretBasic, latchkey_core::settings::ClientAuth::ClientSecretPost]
    {
        let description = format!("Authorization: Basic {raw} / Basic {encoded} refused");
        let shown = shown_error(&description, |s| s.client_auth = client_auth).await;
        for text in &shown {
            assert!(!text.contains(&raw) && !text.contains(&encoded), "{text}");
        }
        assert!(shown[0].contains("Basic [redacted] / Basic [redacted] refused"), "{}", shown[0]);
    }
}
