//! The outbound guard seen from outside: with private networks not allowed, loopback targets in their many
//! spellings, and names that resolve to private addresses, are refused with a clear message naming the field when
//! a connection is saved, and never contacted; the allow-list opens what it names and no more.

use std::sync::Arc;

use reqwest::Method;
use serde_json::json;

use crate::helpers::{NameMap, Options, TestApp, spawn_with};
use crate::provider::MockProvider;

fn guarded() -> Options {
    Options { allow_private_networks: false, ..Options::default() }
}

async fn create_with_token_url(
    app: &TestApp,
    caller: &crate::helpers::Caller,
    handle: &str,
    token_url: &str,
) -> (u16, serde_json::Value) {
    let body = json!({
        "handle": handle, "authorization_url": "https://provider.example/authorize",
        "token_url": token_url, "client_id": "c", "client_secret": "s",
    });
    app.api(caller, Method::POST, "/api/v1/connections", Some(body)).await
}

#[tokio::test]
async fn loopback_token_urls_in_every_spelling_are_refused_at_save() {
    let app = spawn_with(guarded()).await;
    let provider = MockProvider::start("client-1", "s").await;
    let port = url::Url::parse(&provider.base).expect("url").port().expect("port");
    let alice = app.caller("alice", None).await;
    let spellings = [
        format!("http://127.0.0.1:{port}/token"),
        format!("http://[::1]:{port}/token"),
        format!("http://2130706433:{port}/token"),
        format!("http://0x7f.1:{port}/token"),
        format!("http://127.1:{port}/token"),
        format!("https://127.0.0.1:{port}/token"),
        format!("https://[::1]:{port}/token"),
        format!("https://2130706433:{port}/token"),
        format!("https://0x7f.1:{port}/token"),
        format!("https://127.1:{port}/token"),
        format!("https://[::ffff:127.0.0.1]:{port}/token"),
        "https://169.254.169.254/latest/meta-data".to_owned(),
        "https://[::ffff:169.254.169.254]/token".to_owned(),
        format!("http://localhost.:{port}/token"),
    ];
    for (i, url) in spellings.iter().enumerate() {
        let (status, body) = create_with_token_url(&app, &alice, &format!("c{i}"), url).await;
        assert_eq!(status, 400, "{url}: {body}");
        assert_eq!(body["field"], "token_url", "{url}: {body}");
        // The message names the setting that would open the address, or says it is a metadata endpoint.
        let message = body["error"].as_str().unwrap_or_default();
        let needle = if url.contains("169.254.169.254") { "metadata" } else { "--allow-private-networks" };
        assert!(message.contains(needle), "{url}: {message}");
    }
    assert!(provider.token_calls().is_empty());
}

#[tokio::test]
async fn a_name_resolving_to_a_private_address_is_refused_at_save_naming_the_field() {
    let names = NameMap::loopback().with("idp.corp.example", &["10.1.2.3"]).with("public.example", &["93.184.216.34"]);
    let app = spawn_with(Options { lookup: Arc::new(names), ..guarded() }).await;
    let alice = app.caller("alice", None).await;
    let base = json!({
        "authorization_url": "https://public.example/authorize", "token_url": "https://public.example/token",
        "client_id": "c", "client_secret": "s",
    });
    let cases = [
        ("token_url", "https://idp.corp.example/token", "resolves to 10.1.2.3"),
        ("token_url", "https://localhost/token", "resolves to 127.0.0.1"),
        ("token_url", "https://LOCALHOST./token", "resolves to 127.0.0.1"),
        ("refresh_url", "https://idp.corp.example/refresh", "resolves to 10.1.2.3"),
        ("revocation_url", "https://idp.corp.example/revoke", "resolves to 10.1.2.3"),
        ("authorization_url", "http://public.example/authorize", "https"),
        ("authorization_url", "javascript:alert(1)", "https"),
    ];
    for (i, (field, url, reason)) in cases.iter().enumerate() {
        let mut body = base.clone();
        body["handle"] = json!(format!("n{i}"));
        body[*field] = json!(url);
        let (status, answer) = app.api(&alice, Method::POST, "/api/v1/connections", Some(body)).await;
        assert_eq!(status, 400, "{field}={url}: {answer}");
        assert_eq!(answer["field"], *field, "{field}={url}: {answer}");
        let message = answer["error"].as_str().unwrap_or_default();
        assert!(message.contains(reason), "{field}={url}: {message}");
    }
    let device = json!({
        "handle": "dev", "grant_type": "device_code", "token_url": "https://public.example/token",
        "device_authorization_url": "https://idp.corp.example/device", "client_id": "c",
    });
    let (status, answer) = app.api(&alice, Method::POST, "/api/v1/connections", Some(device)).await;
    assert_eq!((status, &answer["field"]), (400, &json!("device_authorization_url")), "{answer}");
    let (_, list) = app.api(&alice, Method::GET, "/api/v1/connections", None).await;
    assert_eq!(list["connections"].as_array().map(Vec::len), Some(0), "nothing was saved: {list}");

    // The browser visits the authorization URL: an https address inside the network is fine there.
    let mut inside = base.clone();
    inside["handle"] = json!("inside");
    inside["authorization_url"] = json!("https://idp.corp.example/authorize");
    let (status, answer) = app.api(&alice, Method::POST, "/api/v1/connections", Some(inside)).await;
    assert_eq!(status, 201, "{answer}");

    // An edit goes through the same check, and a refused edit changes nothing.
    let patch = json!({"token_url": "https://idp.corp.example/token"});
    let (status, answer) = app.api(&alice, Method::PATCH, "/api/v1/connections/inside", Some(patch)).await;
    assert_eq!((status, &answer["field"]), (400, &json!("token_url")), "{answer}");
    let (_, stored) = app.api(&alice, Method::GET, "/api/v1/connections/inside", None).await;
    assert_eq!(stored["connection"]["token_url"], "https://public.example/token", "{stored}");
}

/// Answers a public address for the first lookup of each name, and loopback afterwards (DNS rebinding).
#[derive(Default)]
struct Rebinding(std::sync::Mutex<std::collections::HashSet<String>>);

impl latchkey_oauth::Lookup for Rebinding {
    fn lookup(&self, host: String) -> latchkey_oauth::LookupFuture {
        let first = self.0.lock().expect("lock").insert(host);
        let ip: std::net::IpAddr = if first { [93, 184, 216, 34].into() } else { [127, 0, 0, 1].into() };
        Box::pin(async move { Ok(vec![ip]) })
    }
}

#[tokio::test]
async fn a_name_that_turns_to_loopback_after_the_save_is_refused_when_latchkey_connects() {
    let app = spawn_with(Options { lookup: Arc::new(Rebinding::default()), ..guarded() }).await;
    let provider = MockProvider::start("client-1", "s").await;
    let port = url::Url::parse(&provider.base).expect("url").port().expect("port");
    let alice = app.caller("alice", None).await;
    let body = json!({
        "handle": "sneaky", "authorization_url": "https://rebind.example/authorize",
        "token_url": format!("https://rebind.example:{port}/token"), "client_id": "client-1", "client_secret": "s",
    });
    let (status, created) = app.api(&alice, Method::POST, "/api/v1/connections", Some(body)).await;
    assert_eq!(status, 201, "the name passed the save check with a public address: {created}");
    let link = created["authorization_link"].as_str().expect("link");
    let start = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let response = start.get(link).send().await.expect("start");
    let location = response.headers()["location"].to_str().expect("location").to_owned();
    let state = crate::helpers::state_in(&location);
    let cookie = response.headers()["set-cookie"].to_str().expect("cookie").split(';').next().expect("pair").to_owned();
    let callback = start
        .get(app.url(&format!("/oauth2/callback?code=abc&state={state}")))
        .header("cookie", cookie)
        .send()
        .await
        .expect("callback");
    assert_eq!(callback.status().as_u16(), 502);
    let page = callback.text().await.expect("page");
    assert!(page.contains("resolves to 127.0.0.1"), "{page}");
    assert!(provider.token_calls().is_empty(), "the exchange never left latchkey");
}

#[tokio::test]
async fn allow_listing_loopback_opens_it_but_not_the_metadata_address() {
    let names = NameMap::loopback().with("metadata.example", &["169.254.169.254"]);
    let options = Options {
        outbound_allow: latchkey_oauth::AllowList::parse("127.0.0.1").expect("list"),
        lookup: Arc::new(names),
        ..guarded()
    };
    let app = spawn_with(options).await;
    let provider = MockProvider::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    app.connect(&alice, "allowed", &provider, "s").await;
    assert_eq!(app.token(&alice, "allowed").await.0, 200);
    for url in [
        "https://169.254.169.254/token",
        "https://10.0.0.1/token",
        "http://[::1]/token",
        "https://metadata.example/token",
    ] {
        let (status, body) = create_with_token_url(&app, &alice, "closed", url).await;
        assert_eq!(status, 400, "{url}: {body}");
        assert_eq!(body["field"], "token_url", "{url}: {body}");
    }
}

/// A loopback listener that counts the connections made to it and answers none of them.
async fn counting_listener() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = Arc::clone(&count);
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(socket);
        }
    });
    (format!("http://{address}"), count)
}

#[tokio::test]
async fn a_redirect_from_the_token_endpoint_is_not_followed() {
    // The guard lets both the provider and the redirect's target through, so only the refusal to follow
    // redirects keeps latchkey from going there; the target is on loopback, so nothing leaves even if it did.
    let options = Options { outbound_allow: latchkey_oauth::AllowList::parse("127.0.0.1").expect("list"), ..guarded() };
    let app = spawn_with(options).await;
    let provider = MockProvider::start("client-1", "s").await;
    let (elsewhere, reached) = counting_listener().await;
    let alice = app.caller("alice", None).await;
    provider.push_canned(crate::provider::Canned::redirect(&format!("{elsewhere}/latest/meta-data")));
    let link = app.create_connection(&alice, "bouncy", &provider, "s").await;
    let (status, page) = app.follow(&link).await;
    assert_eq!(status, 502, "{page}");
    assert!(page.contains("redirect"), "{page}");
    assert_eq!(provider.token_calls().len(), 1, "the provider was asked once");
    assert_eq!(reached.load(std::sync::atomic::Ordering::SeqCst), 0, "the redirect's target was never contacted");
    let (_, read) = app.api(&alice, Method::GET, "/api/v1/connections/bouncy", None).await;
    assert_eq!(read["connection"]["status"], "pending", "nothing was stored from the redirect: {read}");
}
