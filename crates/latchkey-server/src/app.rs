//! Building and running the application: open the database and keys, wire the state, bind the listener (port 0
//! in tests, which then read the port back), serve until shutdown, with the background refresher beside it.

use std::future::IntoFuture;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use latchkey_core::Clock;
use latchkey_oauth::{HttpClient, OutboundPolicy};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use crate::api::limits::ApiRateLimiter;
use crate::config::Config;
use crate::state::{AppState, SharedState};
use crate::tokens::{RefreshPolicy, TokenService, run_device_poller, run_refresher};
use crate::{api, assets, bootstrap, flows, setup, web};

/// The Content-Security-Policy of every response: no inline script, no framing.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/// A built application, bound to its port, not yet serving.
pub struct Application {
    listener: TcpListener,
    state: SharedState,
    setup_link: Option<String>,
}

impl Application {
    /// Opens the database and keys, prepares first-run set-up and binds the listen address.
    ///
    /// # Errors
    /// A database or key that cannot be opened, a wrong master key, or an address that cannot be bound.
    pub async fn build(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        Self::build_with_lookup(config, clock, Arc::new(latchkey_oauth::SystemLookup)).await
    }

    /// As [`Application::build`], with the name lookup of outbound requests given (tests map names to addresses
    /// without DNS).
    ///
    /// # Errors
    /// As [`Application::build`].
    pub async fn build_with_lookup(
        mut config: Config,
        clock: Arc<dyn Clock>,
        lookup: Arc<dyn latchkey_oauth::Lookup>,
    ) -> anyhow::Result<Self> {
        let (store, keyring) = bootstrap::open(&config.database_url, &config.key_source).await?;
        let policy = OutboundPolicy {
            allow_private_networks: config.allow_private_networks,
            allow_list: config.outbound_allow.clone(),
            ..OutboundPolicy::default()
        };
        let http = HttpClient::with_lookup(policy, lookup)
            .map_err(|e| anyhow::anyhow!("could not build the HTTP client: {e}"))?;
        let keyring = Arc::new(keyring);
        let tokens = TokenService::new(
            Arc::clone(&store),
            Arc::clone(&keyring),
            http.clone(),
            Arc::clone(&clock),
            RefreshPolicy { window: config.refresh_window, tuning: config.refresh_tuning },
        );
        let listener =
            TcpListener::bind(config.listen).await.with_context(|| format!("could not listen on {}", config.listen))?;
        let bound = listener.local_addr().context("the listener has no address")?;
        config.listen = bound;
        if config.public_url.port() == Some(0) {
            // Listening on port 0 without a public URL: the default public URL names the port actually bound.
            let _ = config.public_url.set_port(Some(bound.port()));
        }
        let api_limits = ApiRateLimiter::new(config.api_rate_limit);
        let login_limits = crate::web::login_limits::LoginLimiter::new(config.login.burst, config.login.refill);
        let password_checks = crate::service::password_checks::PasswordChecks::new(
            config.login.password_checks,
            config.login.password_queue_wait,
        );
        let audit = crate::audit::AuditLog::new(Arc::clone(&store), Arc::clone(&clock));
        let state = Arc::new(AppState {
            config,
            store,
            keyring,
            http,
            clock,
            tokens,
            api_limits,
            login_limits,
            password_checks,
            audit,
            shutdown: CancellationToken::new(),
        });
        let setup_link = setup::prepare(&state).await?;
        Ok(Self { listener, state, setup_link })
    }

    /// The port actually bound (useful with port 0).
    #[must_use]
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or_default()
    }

    /// The shared state, for tests that look behind the API.
    #[must_use]
    pub fn state(&self) -> SharedState {
        Arc::clone(&self.state)
    }

    /// The one-time set-up link, when no user exists yet.
    #[must_use]
    pub fn setup_link(&self) -> Option<&str> {
        self.setup_link.as_deref()
    }

    /// Serves until `shutdown` is cancelled; then stops accepting, lets requests and refreshes in flight finish
    /// within the shutdown grace period, and stops the background tasks (`ops::shutdown`).
    ///
    /// # Errors
    /// The server failing.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let state = self.state;
        let refresher = tokio::spawn(run_refresher(
            Arc::clone(&state.store),
            state.tokens.clone(),
            Arc::clone(&state.clock),
            state.config.refresher_interval,
            shutdown.clone(),
        ));
        let device_poller = tokio::spawn(run_device_poller(Arc::clone(&state), shutdown.clone()));
        let sweeper = tokio::spawn(sweep_rate_limits(Arc::clone(&state), shutdown.clone()));
        let app = router(Arc::clone(&state));
        let stop = shutdown.clone();
        let inner = state.shutdown.clone();
        // The peer address reaches handlers (log-in throttling is per client address).
        let server = axum::serve(self.listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>())
            .with_graceful_shutdown(async move {
                stop.cancelled().await;
                inner.cancel();
            })
            .into_future();
        let webhooks = tokio::spawn(crate::webhooks::run_sender(Arc::clone(&state), shutdown.clone()));
        let key_watcher = tokio::spawn(crate::keys::watch::watch_key_file(Arc::clone(&state), shutdown.clone()));
        let background = vec![refresher, device_poller, sweeper, webhooks, key_watcher];
        let grace = state.config.ops.shutdown_grace;
        let audit_stop = CancellationToken::new();
        let audit_flusher = state.audit.start(audit_stop.clone());
        let served =
            crate::ops::shutdown::serve_and_drain(server, background, state.tokens.tasks(), &shutdown, grace).await;
        // Requests and refreshes are done: write what the audit buffer still holds before returning.
        audit_stop.cancel();
        if let Some(flusher) = audit_flusher {
            let _ = flusher.await;
        }
        served
    }
}

/// Forgets idle API keys' and log-in rate-limit buckets once a minute.
async fn sweep_rate_limits(state: SharedState, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(std::time::Duration::from_secs(60)) => {
                state.api_limits.shrink();
                state.login_limits.shrink();
            }
        }
    }
}

/// All routes with the shared layers.
pub fn router(state: SharedState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .merge(api::routes())
        .merge(flows::routes())
        .merge(web::routes())
        .merge(assets::routes())
        .merge(crate::ops::routes())
        .merge(crate::webhooks::api::routes())
        .layer(axum::middleware::from_fn_with_state(Arc::clone(&state), crate::ops::count_token_requests))
        .layer(
            // Spans name the route pattern, never the raw path or query: links, codes and states are secrets.
            TraceLayer::new_for_http().make_span_with(|request: &Request| {
                let route = request.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str);
                tracing::debug_span!("request", method = %request.method(), route = %route)
            }),
        )
        .layer(SetResponseHeaderLayer::if_not_present(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP)))
        .layer(SetResponseHeaderLayer::overriding(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .layer(SetResponseHeaderLayer::if_not_present(header::REFERRER_POLICY, HeaderValue::from_static("same-origin")))
        .layer(SetResponseHeaderLayer::overriding(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .with_state(state)
}

/// `GET /healthz`: 200 when the server and its database answer.
async fn healthz(State(state): State<SharedState>) -> impl IntoResponse {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, "ok"),
        Err(err) => {
            tracing::warn!(error = %err, "health check: the database does not answer");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
    }
}
