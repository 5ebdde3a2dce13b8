//! Operations: readiness (`GET /readyz`), Prometheus metrics (`GET /metrics`, optionally behind a bearer token),
//! the settings of both and of graceful shutdown.
//!
//! | method and path | what it does |
//! | --- | --- |
//! | `GET /readyz` | 200 `ok` when the database answers and its schema is up to date; 503 with the reason otherwise |
//! | `GET /metrics` | the metrics in the Prometheus text format; with `--metrics-token`, only for that bearer token |

mod metrics;
pub mod shutdown;

use std::time::Duration;

use anyhow::bail;
use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use clap::Args;
use latchkey_core::Secret;
use subtle::ConstantTimeEq;

pub use metrics::Metrics;

use crate::state::SharedState;

/// The route whose answers the token request counter counts.
const TOKEN_ROUTE: &str = "/api/v1/connections/{handle}/token";

/// Operations flags (`--metrics-token`, `--shutdown-grace-secs`).
#[derive(Debug, Clone, Args)]
pub struct OpsFlags {
    /// A bearer token that `GET /metrics` requires. Unset: /metrics is open to whoever reaches the listener.
    #[arg(long, env = "LATCHKEY_METRICS_TOKEN", global = true, hide_env_values = true)]
    pub metrics_token: Option<String>,

    /// On SIGTERM or Ctrl-C, how long requests and refreshes in flight may take to finish, in seconds.
    #[arg(long, env = "LATCHKEY_SHUTDOWN_GRACE_SECS", default_value_t = 30, global = true)]
    pub shutdown_grace_secs: u64,
}

impl Default for OpsFlags {
    fn default() -> Self {
        Self { metrics_token: None, shutdown_grace_secs: 30 }
    }
}

impl OpsFlags {
    /// The validated settings.
    ///
    /// # Errors
    /// A message naming the flag that is wrong.
    pub fn config(&self) -> anyhow::Result<OpsConfig> {
        let metrics_token = match self.metrics_token.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(token) if token.len() < 16 => bail!("--metrics-token must be at least 16 characters long"),
            Some(token) => Some(Secret::new(token)),
        };
        Ok(OpsConfig {
            metrics_token,
            shutdown_grace: Duration::from_secs(self.shutdown_grace_secs),
            ..OpsConfig::default()
        })
    }
}

/// Operations settings after validation.
#[derive(Debug, Clone)]
pub struct OpsConfig {
    /// The bearer token `/metrics` requires, if any.
    pub metrics_token: Option<Secret>,
    /// How long shutdown waits for requests and refreshes in flight.
    pub shutdown_grace: Duration,
    /// How often the webhook sender looks for events to deliver; one second, shorter in tests.
    pub webhook_tick: Duration,
}

impl Default for OpsConfig {
    fn default() -> Self {
        Self { metrics_token: None, shutdown_grace: Duration::from_secs(30), webhook_tick: Duration::from_secs(1) }
    }
}

/// The operations routes.
pub fn routes() -> Router<SharedState> {
    Router::new().route("/readyz", get(readyz)).route("/metrics", get(metrics))
}

/// `GET /readyz`: 200 when the database answers and every migration is applied, else 503 with the reason.
async fn readyz(State(state): State<SharedState>) -> Response {
    if state.shutdown.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    }
    match state.store.readiness().await {
        Ok(()) => (StatusCode::OK, "ok").into_response(),
        Err(err) => {
            tracing::warn!(error = %err, "readiness check failed");
            let reason = match err {
                latchkey_core::Error::Storage(message) if message.contains("schema is not up to date") => message,
                _ => "the database does not answer".to_owned(),
            };
            (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {reason}")).into_response()
        }
    }
}

/// `GET /metrics`: the Prometheus text exposition.
async fn metrics(State(state): State<SharedState>, headers: axum::http::HeaderMap) -> Response {
    if let Some(expected) = &state.config.ops.metrics_token {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if !bool::from(presented.as_bytes().ct_eq(expected.expose().as_bytes())) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))],
                "the metrics need the bearer token set with --metrics-token",
            )
                .into_response();
        }
    }
    let now = state.clock.now();
    let counts = async {
        let by_status = state.store.count_connections_by_status().await?;
        let backlog = state.store.count_connections_due(now).await?;
        Ok((by_status, backlog))
    }
    .await;
    let text = state.tokens.metrics().render(counts);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}

/// Counts the token endpoint's answers by outcome (the "token request ends" hook, kept out of the handler).
pub async fn count_token_requests(State(state): State<SharedState>, request: Request, next: Next) -> Response {
    let is_token = request.extensions().get::<MatchedPath>().is_some_and(|p| p.as_str() == TOKEN_ROUTE);
    let response = next.run(request).await;
    if is_token {
        state.tokens.metrics().token_request_finished(response.status().as_u16());
    }
    response
}
