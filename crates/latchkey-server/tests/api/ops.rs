//! Operations: readiness against a real database that loses its schema or goes away, and the Prometheus
//! metrics after real token requests and refreshes against the mock provider.

use std::sync::Arc;

use clap::Parser;
use latchkey_core::{Clock, ManualClock};
use latchkey_server::config::Settings;
use latchkey_server::{Application, Config};
use latchkey_store::testing::{TestDatabase, admin_url};
use reqwest::Method;
use sqlx::Connection;
use tokio_util::sync::CancellationToken;

use crate::helpers::spawn_app;
use crate::provider::MockProvider;

/// The command line's settings, for a server started from flags as `latchkey serve` would be.
#[derive(Parser)]
struct Flags {
    #[command(flatten)]
    settings: Settings,
}

/// A server on its own port, built from these flags (besides listen address and key file).
struct Started {
    base: String,
    shutdown: CancellationToken,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

async fn start(database_url: Option<&str>, flags: &[&str]) -> Started {
    let dir = tempfile::tempdir().expect("dir");
    let sqlite = format!("sqlite://{}", dir.path().join("latchkey.db").display());
    let key = dir.path().join("master.key").display().to_string();
    let mut args = vec!["latchkey", "--listen", "127.0.0.1:0", "--master-key-file", key.as_str()];
    args.extend(["--database", database_url.unwrap_or(sqlite.as_str())]);
    args.extend_from_slice(flags);
    let settings = Flags::try_parse_from(args).expect("flags").settings;
    let config = Config::from_settings(&settings).expect("config");
    let app = Application::build(config, Arc::new(ManualClock::starting_now()) as Arc<dyn Clock>).await.expect("build");
    let base = format!("http://127.0.0.1:{}", app.port());
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(app.run(shutdown.clone()));
    Started { base, shutdown, server, _dir: dir }
}

impl Started {
    async fn stop(self) {
        self.shutdown.cancel();
        self.server.await.expect("joined").expect("the server stops cleanly");
    }
}

async fn get(url: &str, bearer: Option<&str>) -> (u16, String) {
    let mut request = reqwest::Client::new().get(url);
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("request");
    (response.status().as_u16(), response.text().await.expect("body"))
}

/// The value of one sample line of the exposition, for example `latchkey_refreshes_total{outcome="success"}`.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[tokio::test]
async fn readiness_fails_with_a_reason_when_a_migration_is_not_applied() {
    let app = spawn_app().await;
    assert_eq!(get(&app.url("/readyz"), None).await, (200, "ok".to_owned()));

    // Forget that the newest migration ran, as a database restored from an older backup would.
    let database_url = app.state.config.database_url.clone();
    if database_url.starts_with("sqlite") {
        let mut db = sqlx::SqliteConnection::connect(&database_url).await.expect("open the SQLite file");
        sqlx::query("DELETE FROM _sqlx_migrations WHERE version = 6").execute(&mut db).await.expect("delete");
    } else {
        let mut db = sqlx::PgConnection::connect(&database_url).await.expect("open the database");
        sqlx::query("DELETE FROM _sqlx_migrations WHERE version = 6").execute(&mut db).await.expect("delete");
    }
    let (status, body) = get(&app.url("/readyz"), None).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("schema is not up to date") && body.contains("the first is 6"), "{body}");
    // Liveness is another question: the process and its database still answer.
    assert_eq!(get(&app.url("/healthz"), None).await.0, 200);
}

#[tokio::test]
async fn readiness_fails_when_the_postgres_database_goes_away() {
    let Some(database) = TestDatabase::create().await else { return };
    let server = start(Some(database.url()), &[]).await;
    let base = server.base.clone();
    assert_eq!(get(&format!("{base}/readyz"), None).await, (200, "ok".to_owned()));

    let mut admin = sqlx::PgConnection::connect(&admin_url()).await.expect("admin connection");
    sqlx::query(&format!("DROP DATABASE \"{}\" WITH (FORCE)", database.name()))
        .execute(&mut admin)
        .await
        .expect("drop the database");
    let (status, body) = get(&format!("{base}/readyz"), None).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.starts_with("not ready: "), "{body}");
    assert!(!body.contains(database.name()) && !body.contains("postgres://"), "no internals: {body}");
    assert_eq!(get(&format!("{base}/healthz"), None).await.0, 503);

    server.stop().await;
}

#[tokio::test]
async fn metrics_count_token_requests_refreshes_and_connections() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    app.connect(&alice, "metrics-crm", &provider, "s").await;
    app.connect(&alice, "metrics-cal", &provider, "s").await;

    assert_eq!(app.token(&alice, "metrics-crm").await.0, 200);
    let forced = "/api/v1/connections/metrics-crm/token?force_refresh=true";
    assert_eq!(app.api(&alice, Method::GET, forced, None).await.0, 200, "a successful refresh");
    assert_eq!(app.token(&alice, "nope").await.0, 404);
    provider.revoke_all();
    let (status, body) = app.api(&alice, Method::GET, forced, None).await;
    assert_eq!(status, 409, "the provider refused the refresh token: {body}");
    // The other connection's token expires: the refresher would find it due.
    app.clock.advance(3600);

    let (status, text) = get(&app.url("/metrics"), None).await;
    assert_eq!(status, 200, "{text}");
    let value = |name: &str| sample(&text, name).unwrap_or_else(|| panic!("no {name} in:\n{text}"));
    assert_eq!(value(r#"latchkey_token_requests_total{outcome="success"}"#), 2.0);
    assert_eq!(value(r#"latchkey_token_requests_total{outcome="not_found"}"#), 1.0);
    assert_eq!(value(r#"latchkey_token_requests_total{outcome="conflict"}"#), 1.0);
    assert_eq!(value(r#"latchkey_refreshes_total{outcome="success"}"#), 1.0);
    assert_eq!(value(r#"latchkey_refreshes_total{outcome="needs_reauth"}"#), 1.0);
    assert_eq!(value("latchkey_refresh_duration_seconds_count"), 2.0);
    assert_eq!(value(r#"latchkey_connections{status="connected"}"#), 1.0);
    assert_eq!(value(r#"latchkey_connections{status="needs_reauth"}"#), 1.0);
    assert_eq!(value(r#"latchkey_connections{status="pending"}"#), 0.0);
    assert_eq!(value("latchkey_refresh_backlog"), 1.0);
    assert_eq!(value("latchkey_database_up"), 1.0);
    assert!(text.contains("# TYPE latchkey_refresh_duration_seconds histogram"), "{text}");

    // Labels are outcome and status words: no handle, name, URL, user or token.
    let port = url::Url::parse(&provider.token_url()).expect("url").port().expect("port").to_string();
    for private in ["metrics-crm", "metrics-cal", "alice", "127.0.0.1", port.as_str()] {
        assert!(!text.contains(private), "{private} in:\n{text}");
    }
    for token in provider.issued_tokens() {
        assert!(!text.contains(&token), "{token} in the metrics");
    }
}

#[tokio::test]
async fn a_metrics_token_keeps_metrics_private() {
    let token = "metrics-token-0123456789";
    let server = start(None, &["--metrics-token", token]).await;
    let at = |path: &str| format!("{}{path}", server.base);
    let (status, body) = get(&at("/metrics"), None).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("--metrics-token"), "{body}");
    assert_eq!(get(&at("/metrics"), Some("metrics-token-wrong-guess")).await.0, 401);
    let (status, text) = get(&at("/metrics"), Some(token)).await;
    assert_eq!(status, 200);
    assert!(text.contains("latchkey_database_up 1"), "{text}");
    // Readiness and liveness stay open for the load balancer.
    assert_eq!(get(&at("/readyz"), None).await.0, 200);
    server.stop().await;
}
