//! A second mock provider, on 127.0.0.1, whose quirks a test switches on one by one, each behaving like the real
//! provider behaviour it stands for: PKCE enforced or refused, client authentication required in one way and
//! refused in the others (per grant), JSON-only token bodies, token answers in any shape (nested,
//! renamed, form-encoded, `"ok": false`), `iss` in the authorization response (RFC 9207), extra callback
//! parameters, metadata documents (RFC 8414) and a revocation endpoint (RFC 7009).
//!
//! Routes go by the last path segment (`…/authorize`, `…/token`, `…/refresh`, `…/revoke`), so templated URLs such
//! as `/{tenant}/token` reach it; metadata documents are served at exactly the paths a test registers.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};

use axum::Router;
use axum::body::{Bytes, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;

use crate::helpers::{Caller, TestApp};

/// What the authorization server does about PKCE (RFC 7636).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pkce {
    /// Requires `code_challenge` with `S256` and checks the verifier (a missing or wrong one is `invalid_grant`).
    Enforce,
    /// Refuses any PKCE parameter, as some older providers do.
    Refuse,
}

/// How the client must authenticate at the token endpoint; every other way is refused with `invalid_client`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// `Authorization: Basic` only; credentials in the body are refused.
    Basic,
    /// `client_id` and `client_secret` in the body only; an Authorization header is refused.
    Post,
    /// A public client: `client_id` in the body, no secret anywhere.
    None,
}

/// What the provider puts in `iss` of its authorization responses (RFC 9207).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Iss {
    Omit,
    Send(String),
}

/// Tokens the provider just issued, for a [`Shape`] to put into an answer.
#[derive(Debug, Clone)]
pub struct Issued {
    pub access: String,
    pub refresh: Option<String>,
    pub expires_in: Option<u64>,
    /// Whether the request asked for JSON (`Accept: application/json`).
    pub accept_json: bool,
    pub grant_type: String,
}

/// An answer: status, content type, body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl Answer {
    pub fn json(status: u16, value: &Value) -> Self {
        Self { status, content_type: "application/json", body: value.to_string() }
    }

    pub fn form(pairs: &[(&str, &str)]) -> Self {
        let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();
        Self { status: 200, content_type: "application/x-www-form-urlencoded", body }
    }
}

/// How successful token answers look.
pub type Shape = Arc<dyn Fn(&Issued) -> Answer + Send + Sync>;

/// The standard answer of RFC 6749 §5.1.
pub fn standard(issued: &Issued) -> Answer {
    let mut body = json!({"access_token": issued.access, "token_type": "Bearer"});
    if let Some(secs) = issued.expires_in {
        body["expires_in"] = json!(secs);
    }
    if let Some(refresh) = &issued.refresh {
        body["refresh_token"] = json!(refresh);
    }
    Answer::json(200, &body)
}

/// One request the provider received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    /// The raw query string (for authorization requests and metadata).
    pub raw_query: String,
    pub params: HashMap<String, String>,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Seen {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

struct Inner {
    client_id: String,
    client_secret: String,
    pkce: Option<Pkce>,
    exchange_auth: Auth,
    refresh_auth: Auth,
    /// Refuses form bodies at the token endpoint (415), reading only JSON.
    json_only: bool,
    iss: Iss,
    callback_extra: Vec<(String, String)>,
    shape: Shape,
    expires_in: Option<u64>,
    revoke_status: u16,
    /// Refuses form bodies at the revocation endpoint (415), as Intuit's does.
    revoke_json_only: bool,
    metadata: HashMap<String, Value>,
    /// code → (redirect_uri, code_challenge)
    codes: HashMap<String, (String, Option<String>)>,
    refresh_tokens: HashSet<String>,
    counter: u64,
    tag: String,
    seen: Vec<Seen>,
}

/// The test's handle on the provider.
#[derive(Clone)]
pub struct Quirky {
    pub base: String,
    inner: Arc<Mutex<Inner>>,
}

impl Quirky {
    /// A provider that behaves by the book (client_secret_post, form or JSON bodies, PKCE optional) until told
    /// otherwise.
    pub async fn start(client_id: &str, client_secret: &str) -> Self {
        let inner = Inner {
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            pkce: None,
            exchange_auth: Auth::Post,
            refresh_auth: Auth::Post,
            json_only: false,
            iss: Iss::Omit,
            callback_extra: Vec::new(),
            shape: Arc::new(standard),
            expires_in: Some(3600),
            revoke_status: 200,
            revoke_json_only: false,
            metadata: HashMap::new(),
            codes: HashMap::new(),
            refresh_tokens: HashSet::new(),
            counter: 0,
            tag: uuid::Uuid::new_v4().simple().to_string(),
            seen: Vec::new(),
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the quirky provider");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let provider = Self { base, inner: Arc::new(Mutex::new(inner)) };
        let app = Router::new().fallback(route).with_state(provider.clone());
        tokio::spawn(async move {
            axum::serve(listener, app).await.expect("the quirky provider serves");
        });
        provider
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.inner.lock().expect("provider lock"))
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn tag(&self) -> String {
        self.with(|i| i.tag.clone())
    }

    pub fn pkce(&self, rule: Pkce) -> &Self {
        self.with(|i| i.pkce = Some(rule));
        self
    }

    /// The client authentication required for the code exchange and for refreshes.
    pub fn auth(&self, exchange: Auth, refresh: Auth) -> &Self {
        self.with(|i| {
            i.exchange_auth = exchange;
            i.refresh_auth = refresh;
        });
        self
    }

    /// Reads only JSON token requests; a form body is refused with 415.
    pub fn json_only(&self) -> &Self {
        self.with(|i| i.json_only = true);
        self
    }

    pub fn iss(&self, iss: Iss) -> &Self {
        self.with(|i| i.iss = iss);
        self
    }

    /// Parameters added to every successful authorization response (QuickBooks' `realmId`).
    pub fn callback_extra(&self, pairs: &[(&str, &str)]) -> &Self {
        self.with(|i| i.callback_extra = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect());
        self
    }

    pub fn shape(&self, shape: impl Fn(&Issued) -> Answer + Send + Sync + 'static) -> &Self {
        self.with(|i| i.shape = Arc::new(shape));
        self
    }

    pub fn expires_in(&self, secs: Option<u64>) -> &Self {
        self.with(|i| i.expires_in = secs);
        self
    }

    pub fn revoke_status(&self, status: u16) -> &Self {
        self.with(|i| i.revoke_status = status);
        self
    }

    /// Reads only JSON revocation requests; a form body is refused with 415.
    pub fn revoke_json_only(&self) -> &Self {
        self.with(|i| i.revoke_json_only = true);
        self
    }

    /// Serves `document` at `path` (for example `/.well-known/oauth-authorization-server/tenant`).
    pub fn metadata(&self, path: &str, document: Value) -> &Self {
        self.with(|i| i.metadata.insert(path.to_owned(), document));
        self
    }

    /// Every request received, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.with(|i| i.seen.clone())
    }

    /// The requests whose path ends with `/{last}`.
    pub fn calls(&self, last: &str) -> Vec<Seen> {
        let suffix = format!("/{last}");
        self.seen().into_iter().filter(|s| s.path.ends_with(&suffix)).collect()
    }

    /// Token endpoint requests of one grant type.
    pub fn grants(&self, grant_type: &str) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.param("grant_type") == Some(grant_type)).collect()
    }

    /// Every token this provider issued so far.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.with(|i| {
            (1..=i.counter).flat_map(|k| [format!("at-{}-{k}", i.tag), format!("rt-{}-{k}", i.tag)]).collect()
        })
    }
}

fn oauth_error(status: u16, error: &str, description: &str) -> Answer {
    Answer::json(status, &json!({"error": error, "error_description": description}))
}

fn respond(answer: Answer) -> Response {
    let status = StatusCode::from_u16(answer.status).expect("status");
    (status, [("content-type", answer.content_type)], answer.body).into_response()
}

fn form_pairs(text: &str) -> HashMap<String, String> {
    url::form_urlencoded::parse(text.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

async fn route(State(provider): State<Quirky>, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    let raw_query = request.uri().query().unwrap_or_default().to_owned();
    let headers = request.headers().clone();
    let body = to_bytes(request.into_body(), 1 << 20).await.unwrap_or_else(|_| Bytes::new());
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let params = if path.ends_with("/authorize") || body.is_empty() {
        form_pairs(&raw_query)
    } else if content_type.starts_with("application/json") {
        serde_json::from_slice::<BTreeMap<String, String>>(&body).map(|m| m.into_iter().collect()).unwrap_or_default()
    } else {
        form_pairs(&String::from_utf8_lossy(&body))
    };
    let seen =
        Seen { path: path.clone(), raw_query, params: params.clone(), headers: headers.clone(), body: body.to_vec() };
    provider.with(|i| i.seen.push(seen));

    if let Some(document) = provider.with(|i| i.metadata.get(&path).cloned()) {
        return respond(Answer::json(200, &document));
    }
    if path.ends_with("/authorize") {
        return authorize(&provider, &params);
    }
    if path.ends_with("/revoke") {
        let status = provider.with(|i| i.revoke_status);
        if provider.with(|i| i.revoke_json_only) && !content_type.starts_with("application/json") {
            return respond(oauth_error(415, "invalid_request", "the revocation endpoint only reads JSON bodies"));
        }
        if let Err(refusal) = provider.with(|i| check_auth(i, i.exchange_auth, &headers, &params)) {
            return respond(refusal);
        }
        return respond(Answer::json(status, &json!({})));
    }
    if path.ends_with("/token") || path.ends_with("/refresh") {
        return respond(provider.with(|i| token(i, &headers, &content_type, &params)));
    }
    respond(Answer::json(404, &json!({"error": "not_found"})))
}

fn authorize(provider: &Quirky, query: &HashMap<String, String>) -> Response {
    let redirect_uri = query.get("redirect_uri").cloned().unwrap_or_default();
    let state = query.get("state").cloned().unwrap_or_default();
    let mut target = url::Url::parse(&redirect_uri).expect("redirect_uri is a URL");
    let refusal = provider.with(|i| match i.pkce {
        Some(Pkce::Enforce) if query.get("code_challenge_method").map(String::as_str) != Some("S256") => {
            Some("PKCE with S256 is required")
        }
        Some(Pkce::Refuse) if query.contains_key("code_challenge") => Some("PKCE is not supported"),
        _ => None,
    });
    if let Some(description) = refusal {
        target
            .query_pairs_mut()
            .append_pair("error", "invalid_request")
            .append_pair("error_description", description)
            .append_pair("state", &state);
        return Redirect::to(target.as_str()).into_response();
    }
    provider.with(|i| {
        i.counter += 1;
        let code = format!("code-{}-{}", i.tag, i.counter);
        i.codes.insert(code.clone(), (redirect_uri.clone(), query.get("code_challenge").cloned()));
        let mut pairs = target.query_pairs_mut();
        pairs.append_pair("code", &code).append_pair("state", &state);
        if let Iss::Send(iss) = &i.iss {
            pairs.append_pair("iss", iss);
        }
        for (k, v) in &i.callback_extra {
            pairs.append_pair(k, v);
        }
    });
    Redirect::to(target.as_str()).into_response()
}

/// The form-encoded id and secret of an `Authorization: Basic` header (RFC 6749 §2.3.1).
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get("authorization")?.to_str().ok()?.strip_prefix("Basic ")?;
    let decoded = String::from_utf8(STANDARD.decode(value).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unform = |s: &str| url::form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned());
    Some((unform(id)?, unform(secret)?))
}

fn check_auth(i: &Inner, rule: Auth, headers: &HeaderMap, params: &HashMap<String, String>) -> Result<(), Answer> {
    let refuse = |why: &str| Err(oauth_error(401, "invalid_client", why));
    let body_id = params.get("client_id");
    let body_secret = params.get("client_secret");
    let header = headers.get("authorization").is_some();
    match rule {
        Auth::Basic => {
            if body_secret.is_some() {
                return refuse("client credentials in the request body are not accepted");
            }
            match basic_credentials(headers) {
                Some((id, secret)) if id == i.client_id && secret == i.client_secret => Ok(()),
                _ => refuse("HTTP Basic client authentication is required"),
            }
        }
        Auth::Post => {
            if header {
                return refuse("the Authorization header is not accepted");
            }
            if body_id == Some(&i.client_id) && body_secret == Some(&i.client_secret) {
                Ok(())
            } else {
                refuse("client_id and client_secret are required in the body")
            }
        }
        Auth::None => {
            if header || body_secret.is_some() {
                return refuse("this is a public client: no secret");
            }
            if body_id == Some(&i.client_id) { Ok(()) } else { refuse("client_id is required") }
        }
    }
}

fn token(i: &mut Inner, headers: &HeaderMap, content_type: &str, params: &HashMap<String, String>) -> Answer {
    let is_json = content_type.starts_with("application/json");
    if i.json_only && !is_json {
        return oauth_error(415, "invalid_request", "the token endpoint only reads application/json bodies");
    }
    let grant_type = params.get("grant_type").cloned().unwrap_or_default();
    let rule = if grant_type == "refresh_token" { i.refresh_auth } else { i.exchange_auth };
    if let Err(refusal) = check_auth(i, rule, headers, params) {
        return refusal;
    }
    match grant_type.as_str() {
        "authorization_code" => {
            let code = params.get("code").cloned().unwrap_or_default();
            let Some((redirect_uri, challenge)) = i.codes.remove(&code) else {
                return oauth_error(400, "invalid_grant", "unknown or used code");
            };
            if params.get("redirect_uri") != Some(&redirect_uri) {
                return oauth_error(400, "invalid_grant", "redirect_uri does not match the authorization request");
            }
            let verifier = params.get("code_verifier");
            match (i.pkce, challenge) {
                (Some(Pkce::Refuse), _) if verifier.is_some() => {
                    return oauth_error(400, "invalid_request", "code_verifier is not supported");
                }
                (Some(Pkce::Enforce), Some(challenge)) => {
                    let Some(verifier) = verifier else {
                        return oauth_error(400, "invalid_grant", "code_verifier is required");
                    };
                    if URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) != challenge {
                        return oauth_error(400, "invalid_grant", "PKCE verification failed");
                    }
                }
                _ => {}
            }
            issue(i, headers, &grant_type)
        }
        "refresh_token" => {
            let presented = params.get("refresh_token").cloned().unwrap_or_default();
            if !i.refresh_tokens.contains(&presented) {
                return oauth_error(400, "invalid_grant", "unknown refresh token");
            }
            issue(i, headers, &grant_type)
        }
        _ => oauth_error(400, "unsupported_grant_type", "unsupported grant"),
    }
}

fn issue(i: &mut Inner, headers: &HeaderMap, grant_type: &str) -> Answer {
    i.counter += 1;
    let refresh = format!("rt-{}-{}", i.tag, i.counter);
    i.refresh_tokens.insert(refresh.clone());
    let accept = headers.get("accept").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let issued = Issued {
        access: format!("at-{}-{}", i.tag, i.counter),
        refresh: Some(refresh),
        expires_in: i.expires_in,
        accept_json: accept.contains("application/json"),
        grant_type: grant_type.to_owned(),
    };
    (i.shape)(&issued)
}

/// Log lines of the whole test binary at info level and above, for tests that check what latchkey reports.
pub fn captured_logs() -> String {
    static BUFFER: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    let buffer = BUFFER.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = Arc::clone(&buffer);
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("latchkey_server=info,latchkey_oauth=info"))
            .with_ansi(false)
            .with_writer(move || LogWriter(Arc::clone(&writer)))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber of these tests");
        buffer
    });
    String::from_utf8_lossy(&buffer.lock().expect("log buffer")).into_owned()
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The body of a connection to `provider` at `/authorize` and `/token`, with `overrides` merged in (a null value
/// removes a field).
pub fn body(handle: &str, provider: &Quirky, client_secret: &str, overrides: Value) -> Value {
    let mut body = json!({
        "handle": handle,
        "name": format!("Quirky {handle}"),
        "authorization_url": provider.url("/authorize"),
        "token_url": provider.url("/token"),
        "client_id": "client-1",
        "client_secret": client_secret,
        "scopes": "read write",
    });
    let object = body.as_object_mut().expect("object");
    for (key, value) in overrides.as_object().expect("overrides are an object") {
        if value.is_null() {
            object.remove(key);
        } else {
            object.insert(key.clone(), value.clone());
        }
    }
    body
}

/// Creates a connection from `body`; returns the status and answer.
pub async fn create(app: &TestApp, caller: &Caller, body: Value) -> (u16, Value) {
    app.api(caller, reqwest::Method::POST, "/api/v1/connections", Some(body)).await
}

/// Creates a connection from `body` and follows its link like a browser; returns the callback's status and page.
pub async fn create_and_follow(app: &TestApp, caller: &Caller, body: Value) -> (u16, String) {
    let (status, answer) = create(app, caller, body).await;
    assert_eq!(status, 201, "create answered {answer}");
    app.follow(answer["authorization_link"].as_str().expect("authorization_link")).await
}

/// Creates a connection from `body` and authorizes it, asserting that it ends up connected.
pub async fn connect(app: &TestApp, caller: &Caller, body: Value) {
    let handle = body["handle"].as_str().expect("handle").to_owned();
    let (status, page) = create_and_follow(app, caller, body).await;
    assert_eq!(status, 200, "callback page: {page}");
    let (_, read) = app.api(caller, reqwest::Method::GET, &format!("/api/v1/connections/{handle}"), None).await;
    assert_eq!(read["connection"]["status"], "connected", "{read}");
}

/// Reads a connection back.
pub async fn read(app: &TestApp, caller: &Caller, handle: &str) -> Value {
    let (status, read) = app.api(caller, reqwest::Method::GET, &format!("/api/v1/connections/{handle}"), None).await;
    assert_eq!(status, 200, "{read}");
    read["connection"].clone()
}

/// Asks for a forced refresh; returns the status and answer.
pub async fn force_refresh(app: &TestApp, caller: &Caller, handle: &str) -> (u16, Value) {
    app.api(caller, reqwest::Method::GET, &format!("/api/v1/connections/{handle}/token?force_refresh=true"), None).await
}

/// Asserts a 400 naming `field`, with `needle` in the message.
pub fn assert_refused(answer: &(u16, Value), field: &str, needle: &str) {
    let (status, body) = answer;
    assert_eq!(*status, 400, "{body}");
    assert_eq!(body["code"], "invalid_request", "{body}");
    assert_eq!(body["field"], field, "{body}");
    assert!(body["error"].as_str().unwrap_or_default().contains(needle), "{needle:?} not in {body}");
}
