//! A mock OAuth provider on 127.0.0.1:0: answers each path with a canned response and records every request it
//! receives, so tests can check both what latchkey sent and that it sent nothing at all.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use latchkey_core::settings::OAuthSettings;
use latchkey_oauth::{HttpClient, OutboundPolicy};

/// One request as the provider saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as form pairs, in order.
    pub fn form(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(&self.body).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
    }

    /// The body as a JSON value.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// What the provider answers on one path.
#[derive(Debug, Clone)]
pub struct Canned {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    delay: Option<Duration>,
    chunk_size: Option<usize>,
}

impl Canned {
    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        Self::raw(status, Some("application/json"), value.to_string().into_bytes())
    }

    pub fn raw(status: u16, content_type: Option<&str>, body: impl Into<Vec<u8>>) -> Self {
        let headers = content_type.map(|ct| vec![("content-type".to_owned(), ct.to_owned())]).unwrap_or_default();
        Self { status, headers, body: body.into(), delay: None, chunk_size: None }
    }

    /// The standard successful answer of RFC 6749 §5.1.
    pub fn tokens() -> Self {
        Self::json(
            200,
            &serde_json::json!({"access_token": "at-1", "token_type": "Bearer", "expires_in": 3600,
                "refresh_token": "rt-1", "scope": "read"}),
        )
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Waits this long before answering.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    /// Streams the body in chunks of this size, without a Content-Length.
    pub fn chunked(mut self, size: usize) -> Self {
        self.chunk_size = Some(size);
        self
    }
}

#[derive(Default)]
struct Shared {
    routes: Mutex<HashMap<String, Canned>>,
    recorded: Mutex<Vec<Recorded>>,
}

pub struct MockProvider {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl MockProvider {
    pub async fn start() -> Self {
        let shared = Arc::new(Shared::default());
        let app = Router::new().fallback(answer).with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        tokio::spawn(async move {
            axum::serve(listener, app).await.expect("mock provider runs");
        });
        Self { addr, shared }
    }

    pub fn on(&self, path: &str, canned: Canned) {
        self.shared.routes.lock().expect("routes").insert(path.to_owned(), canned);
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.recorded.lock().expect("recorded").clone()
    }

    pub fn requests_to(&self, path: &str) -> Vec<Recorded> {
        self.requests().into_iter().filter(|r| r.path == path).collect()
    }

    /// The single request made to `path`.
    pub fn only_request_to(&self, path: &str) -> Recorded {
        let mut requests = self.requests_to(path);
        assert_eq!(requests.len(), 1, "requests to {path}: {requests:?}");
        requests.remove(0)
    }

    /// Settings for a connection to this provider, with `/authorize` and `/token`.
    pub fn settings(&self) -> OAuthSettings {
        serde_json::from_value(serde_json::json!({
            "authorization_url": self.url("/authorize"),
            "token_url": self.url("/token"),
            "client_id": "client-1",
            "scopes": "read write",
        }))
        .expect("settings")
    }
}

/// A client that may talk to the mock on loopback.
pub fn local_client() -> HttpClient {
    HttpClient::new(OutboundPolicy { allow_private_networks: true, ..OutboundPolicy::default() }).expect("client")
}

async fn answer(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = to_bytes(body, 1 << 20).await.map(|b| b.to_vec()).unwrap_or_default();
    let path = parts.uri.path().to_owned();
    shared.recorded.lock().expect("recorded").push(Recorded {
        method: parts.method.to_string(),
        path: path.clone(),
        headers: parts.headers,
        body,
    });
    let canned = shared.routes.lock().expect("routes").get(&path).cloned();
    let Some(canned) = canned else {
        return Response::builder().status(StatusCode::NOT_FOUND).body(Body::empty()).expect("response");
    };
    if let Some(delay) = canned.delay {
        tokio::time::sleep(delay).await;
    }
    let mut builder = Response::builder().status(canned.status);
    for (name, value) in &canned.headers {
        builder = builder.header(name, value);
    }
    let body = match canned.chunk_size {
        None => Body::from(canned.body),
        Some(size) => {
            let chunks: Vec<Result<Bytes, Infallible>> =
                canned.body.chunks(size).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
            Body::from_stream(futures::stream::iter(chunks))
        }
    };
    builder.body(body).expect("response")
}
