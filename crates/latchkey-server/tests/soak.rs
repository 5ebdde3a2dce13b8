//! The soak test: many connections with short-lived tokens kept alive by the background refresher alone, against
//! a mock provider on 127.0.0.1 that rotates refresh tokens (so a second refresh with the same token would show up
//! as `invalid_grant`) and notes every refresh that arrives after the token it replaces has expired.
//!
//! Not part of the default run. Started with
//!
//! ```text
//! cargo test --release -p latchkey-server --test soak -- --ignored --nocapture
//! ```
//!
//! and shrunk (or grown) with `LATCHKEY_SOAK_CONNECTIONS` (default 10000), `LATCHKEY_SOAK_SECS` (default 600) and
//! `LATCHKEY_SOAK_TOKEN_SECS` (the tokens' lifetime, default 60); `LATCHKEY_TEST_BACKEND=postgres` runs it on a
//! fresh PostgreSQL database. The server's clock follows the real one (a manual clock moved forward every 100 ms).

#[path = "api/helpers.rs"]
#[allow(dead_code, reason = "shared with the API tests; this binary uses part of it")]
mod helpers;
#[path = "api/provider.rs"]
#[allow(dead_code, reason = "shared with the API tests; this binary uses part of it")]
mod provider;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Form, Json, Router};
use futures::StreamExt;
use latchkey_core::model::{Status, TokenWrite};
use latchkey_core::{Clock, Handle, Secret};
use latchkey_oauth::TokenResponse;
use serde_json::json;

/// How long the refresher may take a token up before it expires: refreshes happen 30 to 15 seconds before.
const WINDOW: Duration = Duration::from_secs(30);

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(default)
}

/// A lean provider: every refresh token works once and is replaced; nothing else is checked.
#[derive(Clone)]
struct SoakProvider {
    base: String,
    lifetime: Duration,
    /// refresh token → when the access token issued with it expires.
    live: Arc<Mutex<HashMap<String, Instant>>>,
    counter: Arc<AtomicU64>,
    calls: Arc<AtomicU64>,
    refreshed: Arc<AtomicU64>,
    late: Arc<AtomicU64>,
    refused: Arc<AtomicU64>,
}

impl SoakProvider {
    async fn start(lifetime: Duration) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let provider = Self {
            base: format!("http://{}", listener.local_addr().expect("addr")),
            lifetime,
            live: Arc::default(),
            counter: Arc::default(),
            calls: Arc::default(),
            refreshed: Arc::default(),
            late: Arc::default(),
            refused: Arc::default(),
        };
        let app = Router::new().route("/token", post(refresh)).with_state(provider.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.expect("provider serves") });
        provider
    }

    /// A new token pair, remembered with its expiry.
    fn issue(&self) -> (String, String) {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let pair = (format!("soak-at-{n}"), format!("soak-rt-{n}"));
        self.live.lock().expect("live").insert(pair.1.clone(), Instant::now() + self.lifetime);
        pair
    }
}

async fn refresh(State(provider): State<SoakProvider>, Form(params): Form<HashMap<String, String>>) -> Response {
    provider.calls.fetch_add(1, Ordering::Relaxed);
    let presented = params.get("refresh_token").cloned().unwrap_or_default();
    let Some(expired_at) = provider.live.lock().expect("live").remove(&presented) else {
        provider.refused.fetch_add(1, Ordering::Relaxed);
        let body = json!({"error": "invalid_grant", "error_description": "unknown or used refresh token"});
        return (axum::http::StatusCode::BAD_REQUEST, Json(body)).into_response();
    };
    if Instant::now() > expired_at {
        provider.late.fetch_add(1, Ordering::Relaxed);
    }
    let (access, refresh) = provider.issue();
    provider.refreshed.fetch_add(1, Ordering::Relaxed);
    let body = json!({"access_token": access, "refresh_token": refresh, "token_type": "Bearer",
                      "expires_in": provider.lifetime.as_secs()});
    Json(body).into_response()
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "a soak test of several minutes; run it on purpose (see the file's documentation)"]
async fn connections_stay_alive_under_the_background_refresher() {
    let count = setting("LATCHKEY_SOAK_CONNECTIONS", 10_000);
    let duration = Duration::from_secs(setting("LATCHKEY_SOAK_SECS", 600));
    let lifetime = Duration::from_secs(setting("LATCHKEY_SOAK_TOKEN_SECS", 60));
    let provider = SoakProvider::start(lifetime).await;

    let options = helpers::Options {
        refresher_interval: Duration::from_secs(1),
        api_rate_limit: std::num::NonZeroU32::new(1_000_000).expect("non-zero"),
        refresh_window: Some(WINDOW),
        ..helpers::Options::default()
    };
    let app = helpers::spawn_with(options).await;
    let caller = app.caller("soak", None).await;

    // The server's clock follows the real one.
    let clock = Arc::clone(&app.clock);
    let (real_start, clock_start) = (Instant::now(), clock.now().secs());
    let follow = tokio::spawn(async move {
        loop {
            let target = clock_start + i64::try_from(real_start.elapsed().as_secs()).unwrap_or(0);
            let behind = target - clock.now().secs();
            if behind > 0 {
                clock.advance(behind);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });

    // All connections get their first token within a few seconds, as if issued together.
    let setup = Instant::now();
    let created = futures::stream::iter(0..count)
        .map(|n| {
            let (app, caller, provider) = (&app, &caller, &provider);
            async move {
                let handle = format!("soak-{n}");
                let body = json!({
                    "handle": handle, "name": handle, "provider": "custom",
                    "authorization_url": format!("{}/authorize", provider.base),
                    "token_url": format!("{}/token", provider.base),
                    "client_id": "soak", "client_secret": "soak-secret", "scopes": "read",
                });
                let (status, answer) = app.api(caller, reqwest::Method::POST, "/api/v1/connections", Some(body)).await;
                assert_eq!(status, 201, "{answer}");
                let store = &app.state.store;
                let parsed = Handle::parse(&handle).expect("handle");
                let connection = store.connection(&caller.user.id, &parsed).await.expect("read").expect("exists");
                let (access, refresh) = provider.issue();
                let response = TokenResponse {
                    access_token: Secret::new(access),
                    token_type: "Bearer".to_owned(),
                    expires_in: Some(lifetime.as_secs()),
                    expires_at: None,
                    refresh_token: Some(Secret::new(refresh)),
                    scope: None,
                    extra: BTreeMap::new(),
                };
                let now = app.clock.now();
                let (tokens, refresh_at) = app.state.tokens.tokens_from_response(&connection.id, &response, None, now);
                let write = TokenWrite { tokens, refresh_at, now, expected_version: None };
                assert!(store.save_tokens(&connection.id, &write).await.expect("save"));
            }
        })
        .buffer_unordered(32)
        .count()
        .await;
    println!("soak: {created} connections with {}-second tokens set up in {:.1?}", lifetime.as_secs(), setup.elapsed());

    let started = Instant::now();
    while started.elapsed() < duration {
        tokio::time::sleep(Duration::from_secs(10).min(duration.saturating_sub(started.elapsed()))).await;
        println!(
            "soak: {:>4}s  refreshes {}  late {}  refused {}",
            started.elapsed().as_secs(),
            provider.refreshed.load(Ordering::Relaxed),
            provider.late.load(Ordering::Relaxed),
            provider.refused.load(Ordering::Relaxed),
        );
    }
    // Stopped first, so that refreshes still in flight are finished and stored before anything is counted.
    let (store, server_clock) = (Arc::clone(&app.state.store), Arc::clone(&app.clock));
    // The data (on PostgreSQL, the database) lives as long as this value.
    let _data = app.stop().await;
    follow.abort();
    let end = server_clock.now();
    let connections = store.list_connections(&caller.user.id).await.expect("list");

    // Each stored refresh bumped the token version once, from 1 after the first token.
    let stored: i64 = connections.iter().map(|c| c.token_version - 1).sum();
    let expired_at_end = connections
        .iter()
        .filter(|c| {
            c.status != Status::Connected || c.tokens.as_ref().and_then(|t| t.expires_at).is_none_or(|at| at <= end)
        })
        .count();
    let calls = provider.calls.load(Ordering::Relaxed);
    let late = provider.late.load(Ordering::Relaxed);
    let refused = provider.refused.load(Ordering::Relaxed);
    #[expect(clippy::cast_precision_loss, reason = "a ratio for the report")]
    let per_refresh = if stored > 0 { calls as f64 / stored as f64 } else { f64::NAN };
    let missed = late + u64::try_from(expired_at_end).unwrap_or(u64::MAX);
    println!(
        "soak result: {count} connections, {}-second tokens, {} s: refreshes done {stored}, provider calls {calls}, \
         provider calls per refresh {per_refresh:.3}, missed expiries {missed} (late refreshes {late}, expired at the \
         end {expired_at_end}), refused refresh tokens {refused}",
        lifetime.as_secs(),
        duration.as_secs(),
    );
    assert_eq!(missed, 0, "no token may expire unrefreshed");
    assert_eq!(refused, 0, "no refresh token was presented twice");
    assert_eq!(i64::try_from(calls).unwrap_or(-1), stored, "one provider call per refresh");
    assert!(stored > 0, "refreshes happened");
}
