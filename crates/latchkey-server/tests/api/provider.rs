//! A mock OAuth 2.0 provider on 127.0.0.1 that a test controls: it consents at once, issues distinctive tokens,
//! checks what a real provider checks (client secret, redirect URI, PKCE verifier, refresh token), records every
//! request, and misbehaves on demand.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// One request the token endpoint received.
#[derive(Debug, Clone)]
pub struct TokenCall {
    pub params: HashMap<String, String>,
    pub accept: Option<String>,
    pub content_type: Option<String>,
    /// When the request arrived.
    #[allow(dead_code, reason = "read by the cluster tests (tests/cluster.rs), which share this file")]
    pub at: std::time::Instant,
}

impl TokenCall {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
}

/// A canned answer of the token endpoint.
#[derive(Debug, Clone)]
pub struct Canned {
    pub status: u16,
    pub body: String,
    pub content_type: &'static str,
    pub retry_after: Option<u64>,
    pub location: Option<String>,
}

impl Canned {
    pub fn json(status: u16, body: serde_json::Value) -> Self {
        Self { status, body: body.to_string(), content_type: "application/json", retry_after: None, location: None }
    }

    pub fn text(status: u16, body: &str) -> Self {
        Self { status, body: body.to_owned(), content_type: "text/html", retry_after: None, location: None }
    }

    /// A 302 towards `location`.
    pub fn redirect(location: &str) -> Self {
        Self { location: Some(location.to_owned()), ..Self::text(302, "") }
    }

    /// A 429 asking to come back after `seconds`.
    pub fn too_many_requests(seconds: u64) -> Self {
        Self { retry_after: Some(seconds), ..Self::text(429, "slow down") }
    }
}

#[derive(Default)]
struct Inner {
    client_id: String,
    client_secret: String,
    /// code → (redirect_uri, code_challenge)
    codes: HashMap<String, (String, Option<String>)>,
    valid_refresh_tokens: HashSet<String>,
    token_calls: Vec<TokenCall>,
    authorize_calls: Vec<HashMap<String, String>>,
    canned: VecDeque<Canned>,
    counter: u64,
    expires_in: Option<u64>,
    rotate_refresh_tokens: bool,
    issue_refresh_token: bool,
    deny_authorization: bool,
    hold_refresh: bool,
    hold_device_polls: bool,
    /// Token requests waiting in a hold right now.
    held: usize,
    /// Invalidate a presented refresh token as soon as the request arrives (as if the provider had rotated it
    /// and its answer were lost).
    consume_on_arrival: bool,
    tag: String,
}

/// The mock provider's handle for the test.
#[derive(Clone)]
pub struct MockProvider {
    pub base: String,
    inner: Arc<Mutex<Inner>>,
    released: Arc<Notify>,
    arrived: Arc<Notify>,
}

impl MockProvider {
    /// Starts a provider that knows one client.
    pub async fn start(client_id: &str, client_secret: &str) -> Self {
        let tag = uuid::Uuid::new_v4().simple().to_string();
        let inner = Inner {
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            expires_in: Some(3600),
            issue_refresh_token: true,
            tag,
            ..Inner::default()
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind mock provider");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let provider = Self {
            base,
            inner: Arc::new(Mutex::new(inner)),
            released: Arc::new(Notify::new()),
            arrived: Arc::new(Notify::new()),
        };
        let app = Router::new()
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .route("/device", post(device))
            .with_state(provider.clone());
        tokio::spawn(async move {
            axum::serve(listener, app).await.expect("mock provider serves");
        });
        provider
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.inner.lock().expect("provider lock"))
    }

    pub fn authorization_url(&self) -> String {
        format!("{}/authorize", self.base)
    }

    pub fn token_url(&self) -> String {
        format!("{}/token", self.base)
    }

    /// The RFC 8628 device authorization endpoint: answers a device code for the known client, interval 1 s.
    pub fn device_authorization_url(&self) -> String {
        format!("{}/device", self.base)
    }

    /// The device code this provider hands out (a secret: it must never appear in latchkey's answers).
    pub fn device_code(&self) -> String {
        self.with(|i| format!("dc-{}", i.tag))
    }

    pub fn set_expires_in(&self, value: Option<u64>) {
        self.with(|i| i.expires_in = value);
    }

    pub fn set_rotate_refresh_tokens(&self, on: bool) {
        self.with(|i| i.rotate_refresh_tokens = on);
    }

    pub fn set_issue_refresh_token(&self, on: bool) {
        self.with(|i| i.issue_refresh_token = on);
    }

    pub fn set_deny_authorization(&self, on: bool) {
        self.with(|i| i.deny_authorization = on);
    }

    pub fn set_client_secret(&self, secret: &str) {
        self.with(|i| i.client_secret = secret.to_owned());
    }

    /// Answers the next token requests with these, in order, before behaving normally again.
    pub fn push_canned(&self, canned: Canned) {
        self.with(|i| i.canned.push_back(canned));
    }

    /// Makes refresh requests wait until [`MockProvider::release`].
    pub fn hold_refreshes(&self, on: bool) {
        self.with(|i| i.hold_refresh = on);
    }

    /// Lets new refresh requests through again, while those already held stay held until
    /// [`MockProvider::release`].
    #[allow(dead_code, reason = "used by the cluster tests (tests/cluster.rs), which share this file")]
    pub fn stop_holding(&self) {
        self.with(|i| i.hold_refresh = false);
    }

    /// Makes a presented refresh token invalid the moment its request arrives, before any hold.
    #[allow(dead_code, reason = "used by the cluster tests (tests/cluster.rs), which share this file")]
    pub fn set_consume_on_arrival(&self, on: bool) {
        self.with(|i| i.consume_on_arrival = on);
    }

    /// Makes device-code polls wait until [`MockProvider::release`], like a token endpoint that hangs.
    #[allow(dead_code, reason = "used by the fairness tests, not by the cluster tests that share this file")]
    pub fn hold_device_polls(&self, on: bool) {
        self.with(|i| i.hold_device_polls = on);
    }

    /// How many token requests are waiting in a hold right now.
    #[allow(dead_code, reason = "used by the fairness tests, not by the cluster tests that share this file")]
    pub fn held(&self) -> usize {
        self.with(|i| i.held)
    }

    pub fn release(&self) {
        self.with(|i| {
            i.hold_refresh = false;
            i.hold_device_polls = false;
        });
        self.released.notify_waiters();
    }

    /// Waits until a refresh request has arrived (bounded by the test's own timeout).
    pub async fn refresh_arrived(&self) {
        let arrived = self.arrived.notified();
        if self.refresh_calls().is_empty() {
            arrived.await;
        }
    }

    /// Forgets every refresh token (as after a revocation on the provider's side).
    pub fn revoke_all(&self) {
        self.with(|i| i.valid_refresh_tokens.clear());
    }

    pub fn token_calls(&self) -> Vec<TokenCall> {
        self.with(|i| i.token_calls.clone())
    }

    pub fn refresh_calls(&self) -> Vec<TokenCall> {
        self.token_calls()
            .into_iter()
            .filter(|c| matches!(c.param("grant_type"), Some("refresh_token" | "client_credentials")))
            .collect()
    }

    pub fn authorize_calls(&self) -> Vec<HashMap<String, String>> {
        self.with(|i| i.authorize_calls.clone())
    }

    /// Every token this provider issued so far, for searching logs and files.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.with(|i| {
            let n = i.counter;
            (1..=n).flat_map(|k| [format!("at-{}-{k}", i.tag), format!("rt-{}-{k}", i.tag)]).collect()
        })
    }

    pub fn tag(&self) -> String {
        self.with(|i| i.tag.clone())
    }
}

async fn authorize(State(provider): State<MockProvider>, Query(query): Query<HashMap<String, String>>) -> Response {
    let (deny, code) = provider.with(|i| {
        i.authorize_calls.push(query.clone());
        i.counter += 1;
        let code = format!("code-{}-{}", i.tag, i.counter);
        i.codes.insert(
            code.clone(),
            (query.get("redirect_uri").cloned().unwrap_or_default(), query.get("code_challenge").cloned()),
        );
        (i.deny_authorization, code)
    });
    let redirect_uri = query.get("redirect_uri").cloned().unwrap_or_default();
    let state = query.get("state").cloned().unwrap_or_default();
    let mut target = url::Url::parse(&redirect_uri).expect("redirect_uri is a URL");
    if deny {
        target
            .query_pairs_mut()
            .append_pair("error", "access_denied")
            .append_pair("error_description", "The person said no")
            .append_pair("state", &state);
    } else {
        target.query_pairs_mut().append_pair("code", &code).append_pair("state", &state);
    }
    Redirect::to(target.as_str()).into_response()
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (status, Json(json!({"error": error, "error_description": description}))).into_response()
}

async fn token(
    State(provider): State<MockProvider>,
    headers: HeaderMap,
    Form(params): Form<HashMap<String, String>>,
) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let call = TokenCall {
        params: params.clone(),
        accept: header("accept"),
        content_type: header("content-type"),
        at: std::time::Instant::now(),
    };
    // Client credentials renew like a refresh, so they are held and counted alike.
    let is_refresh =
        matches!(params.get("grant_type").map(String::as_str), Some("refresh_token" | "client_credentials"));
    let is_device_poll = params.get("grant_type").is_some_and(|g| g == "urn:ietf:params:oauth:grant-type:device_code");
    let holding = move |i: &Inner| (is_refresh && i.hold_refresh) || (is_device_poll && i.hold_device_polls);
    let (canned, hold) = provider.with(|i| {
        i.token_calls.push(call);
        if i.consume_on_arrival
            && let Some(presented) = params.get("refresh_token")
        {
            i.valid_refresh_tokens.remove(presented);
        }
        (i.canned.pop_front(), holding(i))
    });
    if is_refresh {
        provider.arrived.notify_waiters();
    }
    if hold {
        let released = provider.released.notified();
        let _held = Held::new(&provider);
        if provider.with(|i| holding(i)) {
            released.await;
        }
    }
    if let Some(canned) = canned {
        let status = StatusCode::from_u16(canned.status).expect("status");
        let mut response = (status, [("content-type", canned.content_type)], canned.body).into_response();
        if let Some(seconds) = canned.retry_after {
            response.headers_mut().insert("retry-after", seconds.into());
        }
        if let Some(location) = canned.location {
            response.headers_mut().insert("location", location.parse().expect("location"));
        }
        return response;
    }
    provider.with(|i| {
        if params.get("client_id") != Some(&i.client_id) || params.get("client_secret") != Some(&i.client_secret) {
            return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "Client authentication failed");
        }
        match params.get("grant_type").map(String::as_str) {
            Some("authorization_code") => {
                let code = params.get("code").cloned().unwrap_or_default();
                let Some((redirect_uri, challenge)) = i.codes.remove(&code) else {
                    return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "Unknown or used code");
                };
                if params.get("redirect_uri") != Some(&redirect_uri) {
                    return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "redirect_uri mismatch");
                }
                if let Some(challenge) = challenge {
                    let verifier = params.get("code_verifier").cloned().unwrap_or_default();
                    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
                    if computed != challenge {
                        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "PKCE verification failed");
                    }
                }
                issue(i, true)
            }
            Some("refresh_token") => {
                let presented = params.get("refresh_token").cloned().unwrap_or_default();
                if !i.valid_refresh_tokens.contains(&presented) {
                    return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "The refresh token is invalid");
                }
                if i.rotate_refresh_tokens {
                    i.valid_refresh_tokens.remove(&presented);
                }
                let with_refresh = i.rotate_refresh_tokens;
                issue(i, with_refresh)
            }
            Some("client_credentials") => issue(i, false),
            Some("urn:ietf:params:oauth:grant-type:device_code") => {
                if params.get("device_code") != Some(&format!("dc-{}", i.tag)) {
                    return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "Unknown device code");
                }
                issue(i, true)
            }
            _ => oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "Unsupported grant"),
        }
    })
}

/// Counts a request as held while it lives (also when the client gives up and the request is dropped).
struct Held(MockProvider);

impl Held {
    fn new(provider: &MockProvider) -> Self {
        provider.with(|i| i.held += 1);
        Self(provider.clone())
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.0.with(|i| i.held -= 1);
    }
}

fn issue(i: &mut Inner, with_refresh_token: bool) -> Response {
    i.counter += 1;
    let access = format!("at-{}-{}", i.tag, i.counter);
    let mut body = json!({"access_token": access, "token_type": "bearer", "scope": "read", "unknown_field": 1});
    if let Some(expires_in) = i.expires_in {
        body["expires_in"] = json!(expires_in);
    }
    if with_refresh_token && i.issue_refresh_token {
        let refresh = format!("rt-{}-{}", i.tag, i.counter);
        i.valid_refresh_tokens.insert(refresh.clone());
        body["refresh_token"] = json!(refresh);
    }
    (StatusCode::OK, Json(body)).into_response()
}

async fn device(State(provider): State<MockProvider>, Form(params): Form<HashMap<String, String>>) -> Response {
    provider.with(|i| {
        if params.get("client_id") != Some(&i.client_id) {
            return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "Unknown client");
        }
        let body = json!({
            "device_code": format!("dc-{}", i.tag),
            "user_code": "WDJB-MJHT",
            "verification_uri": "https://provider.example/device",
            "expires_in": 600,
            "interval": 1,
        });
        (StatusCode::OK, Json(body)).into_response()
    })
}
