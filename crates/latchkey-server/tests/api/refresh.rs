//! Keeping tokens fresh: at expiry, with rotation, under concurrency, when the provider refuses or fails.

use std::time::Duration;

use latchkey_core::Clock;
use reqwest::Method;

use crate::helpers::{Options, spawn_app, spawn_with, wait_for};
use crate::provider::{Canned, MockProvider};

#[tokio::test]
async fn a_token_inside_the_refresh_window_is_refreshed_first() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    app.connect(&alice, "crm", &provider, "s").await;
    let (_, first) = app.token(&alice, "crm").await;

    // 3600 s lifetime: the window is 5 minutes. At 3299 s it is not due yet; at 3300 s it is.
    app.clock.advance(3299);
    let (_, same) = app.token(&alice, "crm").await;
    assert_eq!(same["token"], first["token"]);
    assert!(provider.refresh_calls().is_empty());

    app.clock.advance(1);
    let (status, fresh) = app.token(&alice, "crm").await;
    assert_eq!(status, 200, "{fresh}");
    assert_ne!(fresh["token"], first["token"]);
    let refresh = &provider.refresh_calls()[0];
    assert_eq!(refresh.param("grant_type"), Some("refresh_token"));
    assert_eq!(refresh.param("refresh_token"), Some(format!("rt-{}-2", provider.tag()).as_str()));
    assert_eq!(refresh.param("client_id"), Some("client-1"));
    assert_eq!(refresh.param("client_secret"), Some("s"));
    let (_, read) = app.api(&alice, Method::GET, "/api/v1/connections/crm", None).await;
    assert!(read["connection"]["last_refreshed_at"].is_string(), "{read}");
}

#[tokio::test]
async fn force_refresh_refreshes_a_fresh_token() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    app.connect(&alice, "crm", &provider, "s").await;
    let (_, first) = app.token(&alice, "crm").await;
    let (status, forced) = app.api(&alice, Method::GET, "/api/v1/connections/crm/token?force_refresh=true", None).await;
    assert_eq!(status, 200, "{forced}");
    assert_ne!(forced["token"], first["token"]);
    assert_eq!(provider.refresh_calls().len(), 1);
}

#[tokio::test]
async fn a_rotated_refresh_token_replaces_the_old_one() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "s").await;
    provider.set_rotate_refresh_tokens(true);
    let alice = app.caller("alice", None).await;
    app.connect(&alice, "crm", &provider, "s").await;
    for round in 0..3 {
        app.clock.advance(3600);
        let (status, body) = app.token(&alice, "crm").await;
        assert_eq!(status, 200, "round {round}: {body}");
    }
    // Each refresh presented the token the previous one returned; the provider refuses reused ones.
    let presented: Vec<_> =
        provider.refresh_calls().iter().map(|c| c.param("refresh_token").unwrap_or_default().to_owned()).collect();
    let tag = provider.tag();
    assert_eq!(presented, [format!("rt-{tag}-2"), format!("rt-{tag}-3"), format!("rt-{tag}-4")]);
}

#[tokio::test]
async fn the_old_refresh_token_is_kept_when_none_is_returned() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    app.connect(&alice, "crm", &provider, "s").await;
    for _ in 0..2 {
        app.clock.advance(3600);
        let (status, body) = app.token(&alice, "crm").await;
        assert_eq!(status, 200, "{body}");
    }
    let presented: Vec<_> =
        provider.refresh_calls().iter().map(|c| c.param("refresh_token").unwrap_or_default().to_owned()).collect();
    let original = format!("rt-{}-2", provider.tag());
    assert_eq!(presented, [original.clone(), original]);
}

#[tokio::test]
async fn fifty_callers_at_expiry_cause_one_refresh() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "s").await;
    provider.set_rotate_refresh_tokens(true);
    let alice = app.caller("alice", None).await;
    app.connect(&alice, "crm", &provider, "s").await;
    app.clock.advance(3600);
    // Hold the provider's answer so that all fifty requests are surely waiting at once.
    provider.hold_refreshes(true);
    let requests: Vec<_> = (0..50)
        .map(|_| {
            let client = app.http.clone();
            let url = app.url("/api/v1/connections/crm/token");
            let key = alice.key.clone();
            tokio::spawn(async move {
                let response = client.get(url).bearer_auth(key).send().await.expect("request");
                (response.status().as_u16(), response.json::<serde_json::Value>().await.expect("json"))
            })
        })
        .collect();
    tokio::time::timeout(Duration::from_secs(10), provider.refresh_arrived()).await.expect("a refresh arrives");
    provider.release();
    let mut tokens = std::collections::HashSet::new();
    for request in requests {
        let (status, body) = request.await.expect("task");
        assert_eq!(status, 200, "{body}");
        tokens.insert(body["token"].as_str().expect("token").to_owned());
    }
    assert_eq!(provider.refresh_calls().len(), 1, "exactly one provider call");
    assert_eq!(tokens.len(), 1, "all fifty got the same new token");
}

#[tokio::test]
async fn a_refresh_survives_its_caller_going_away() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "s").await;
    provider.set_rotate_refresh_tokens(true);
    let alice = app.caller("alice", None).await;
    app.connect(&alice, "crm", &provider, "s").await;
    app.clock.advance(3600);
    provider.hold_refreshes(true);
    // The caller goes away once its refresh is at the provider (not before: then there would be nothing to finish).
    let caller = tokio::spawn(app.http.get(app.url("/api/v1/connections/crm/token")).bearer_auth(&alice.key).send());
    tokio::time::timeout(Duration::from_secs(60), provider.refresh_arrived()).await.expect("the refresh arrives");
    caller.abort();
    assert!(caller.await.is_err_and(|e| e.is_cancelled()), "the caller gave up before any answer");
    provider.release();
    // The refresh completes and is stored: the next request gets the rotated token without another call.
    let store = app.state.store.clone();
    let user = alice.user.id.clone();
    let handle = latchkey_core::Handle::parse("crm").expect("handle");
    wait_for("the refresh to be stored", async || {
        store.connection(&user, &handle).await.ok().flatten().is_some_and(|c| c.token_version >= 2)
    })
    .await;
    let (status, body) = app.token(&alice, "crm").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(provider.refresh_calls().len(), 1);
}

#[tokio::test]
async fn a_refused_refresh_token_means_needs_reauth() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    app.connect(&alice, "crm", &provider, "s").await;
    provider.revoke_all();
    app.clock.advance(3600);
    let (status, body) = app.token(&alice, "crm").await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "needs_reauth");
    let message = body["error"].as_str().expect("error");
    assert!(message.contains("'crm'") && message.contains("reconnect"), "{message}");
    assert!(message.contains("invalid_grant"), "{message}");
    let (_, read) = app.api(&alice, Method::GET, "/api/v1/connections/crm", None).await;
    assert_eq!(read["connection"]["status"], "needs_reauth");
    // Asking again does not hammer the provider.
    let (status, _) = app.token(&alice, "crm").await;
    assert_eq!(status, 409);
    assert_eq!(provider.refresh_calls().len(), 1);
}

#[tokio::test]
async fn invalid_client_on_refresh_means_needs_reauth() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    app.connect(&alice, "crm", &provider, "s").await;
    provider.set_client_secret("rotated-on-the-provider");
    app.clock.advance(3600);
    let (status, body) = app.token(&alice, "crm").await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "needs_reauth");
}

#[tokio::test]
async fn a_provider_outage_keeps_the_tokens_and_recovers() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    app.connect(&alice, "crm", &provider, "s").await;
    let (_, original) = app.token(&alice, "crm").await;

    // Inside the window but not yet expired: the still-valid token is served while the provider is down.
    app.clock.advance(3590);
    provider.push_canned(Canned::text(503, "maintenance"));
    let (status, body) = app.token(&alice, "crm").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token"], original["token"]);
    let (_, read) = app.api(&alice, Method::GET, "/api/v1/connections/crm", None).await;
    assert_eq!(read["connection"]["status"], "error");
    assert!(read["connection"]["last_error"].as_str().unwrap_or_default().contains("503"), "{read}");

    // Expired and in backoff (30 s after the first failure): a clear 502 without another provider call.
    app.clock.advance(15);
    let (status, body) = app.token(&alice, "crm").await;
    assert_eq!(status, 502, "{body}");
    assert!(body["error"].as_str().unwrap_or_default().contains("tries again"), "{body}");
    assert_eq!(provider.refresh_calls().len(), 1);

    // After the backoff the provider answers again and the connection heals.
    app.clock.advance(30);
    let (status, body) = app.token(&alice, "crm").await;
    assert_eq!(status, 200, "{body}");
    assert_ne!(body["token"], original["token"]);
    let (_, read) = app.api(&alice, Method::GET, "/api/v1/connections/crm", None).await;
    assert_eq!(read["connection"]["status"], "connected");
    assert!(read["connection"]["last_error"].is_null());
}

#[tokio::test]
async fn without_a_refresh_token_an_expired_token_is_not_handed_out() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "s").await;
    provider.set_issue_refresh_token(false);
    let alice = app.caller("alice", None).await;
    app.connect(&alice, "crm", &provider, "s").await;
    app.clock.advance(3599);
    assert_eq!(app.token(&alice, "crm").await.0, 200, "valid until it expires");
    app.clock.advance(1);
    let (status, body) = app.token(&alice, "crm").await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "token_expired");
    assert!(body["error"].as_str().unwrap_or_default().contains("reconnect 'crm'"), "{body}");
    let (_, read) = app.api(&alice, Method::GET, "/api/v1/connections/crm", None).await;
    assert_eq!(read["connection"]["status"], "needs_reauth");
    assert!(provider.refresh_calls().is_empty());
}

#[tokio::test]
async fn a_token_without_a_lifetime_is_never_refreshed_blindly() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "s").await;
    provider.set_expires_in(None);
    let alice = app.caller("alice", None).await;
    app.connect(&alice, "crm", &provider, "s").await;
    app.clock.advance(365 * 24 * 3600);
    let (status, body) = app.token(&alice, "crm").await;
    assert_eq!(status, 200, "{body}");
    assert!(body["expires_at"].is_null());
    assert!(provider.refresh_calls().is_empty());
}

#[tokio::test]
async fn the_background_refresher_keeps_idle_connections_alive() {
    let app = spawn_with(Options { refresher_interval: Duration::from_secs(1), ..Options::default() }).await;
    let provider = MockProvider::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    app.connect(&alice, "crm", &provider, "s").await;
    let before = app.clock.now();
    // The refresher takes a 3600 s token up inside the first half of its 300 s window: by 3450 s.
    app.clock.advance(3450);
    wait_for("the background refresh", async || !provider.refresh_calls().is_empty()).await;
    let store = app.state.store.clone();
    let handle = latchkey_core::Handle::parse("crm").expect("handle");
    wait_for("the refreshed token to be stored", async || {
        store
            .connection(&alice.user.id, &handle)
            .await
            .ok()
            .flatten()
            .and_then(|c| c.tokens)
            .and_then(|t| t.expires_at)
            .is_some_and(|at| at.secs() > before.secs() + 3600)
    })
    .await;
    let (status, _) = app.token(&alice, "crm").await;
    assert_eq!(status, 200);
    assert_eq!(provider.refresh_calls().len(), 1, "the served token was already fresh");
}

#[tokio::test]
async fn a_429_backs_off_at_least_as_long_as_retry_after_asks() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    app.connect(&alice, "crm", &provider, "s").await;
    app.clock.advance(3600);
    provider.push_canned(Canned::too_many_requests(120));
    let (status, body) = app.token(&alice, "crm").await;
    assert_eq!(status, 502, "{body}");
    assert!(body["error"].as_str().unwrap_or_default().contains("429"), "{body}");

    // 60 s later (past our own 30 s backoff, inside the provider's 120 s) latchkey still waits.
    app.clock.advance(60);
    assert_eq!(app.token(&alice, "crm").await.0, 502);
    assert_eq!(provider.refresh_calls().len(), 1);
    app.clock.advance(61);
    let (status, body) = app.token(&alice, "crm").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(provider.refresh_calls().len(), 2);
}

/// Makes the database refuse every write of an access token, as a full disk would (`false` lifts it again).
async fn refuse_token_writes(app: &crate::helpers::TestApp, refuse: bool) {
    use sqlx::Connection as _;
    let url = app.database_url();
    if crate::helpers::on_postgres() {
        let mut db = sqlx::PgConnection::connect(&url).await.expect("open the database");
        let statements: &[&str] = if refuse {
            &[
                "CREATE FUNCTION refuse_token_writes() RETURNS trigger LANGUAGE plpgsql AS \
                 $$ BEGIN RAISE EXCEPTION 'no space left on device'; END $$",
                "CREATE TRIGGER refuse_token_writes BEFORE UPDATE OF access_token ON connections \
                 FOR EACH ROW EXECUTE FUNCTION refuse_token_writes()",
            ]
        } else {
            &["DROP TRIGGER refuse_token_writes ON connections", "DROP FUNCTION refuse_token_writes()"]
        };
        for statement in statements {
            sqlx::query(statement).execute(&mut db).await.expect("trigger");
        }
    } else {
        let mut db = sqlx::SqliteConnection::connect(&url).await.expect("open the SQLite file");
        let statement = if refuse {
            "CREATE TRIGGER refuse_token_writes BEFORE UPDATE OF access_token ON connections \
             BEGIN SELECT RAISE(ABORT, 'no space left on device'); END"
        } else {
            "DROP TRIGGER refuse_token_writes"
        };
        sqlx::query(statement).execute(&mut db).await.expect("trigger");
    }
}

#[tokio::test]
async fn a_refresh_that_cannot_be_stored_hands_out_nothing_and_keeps_the_row_whole() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "s").await;
    provider.set_rotate_refresh_tokens(true);
    let alice = app.caller("alice", None).await;
    app.connect(&alice, "crm", &provider, "s").await;
    let store = app.state.store.clone();
    let handle = latchkey_core::Handle::parse("crm").expect("handle");
    let before = store.connection(&alice.user.id, &handle).await.expect("read").expect("row");
    app.clock.advance(3600);

    refuse_token_writes(&app, true).await;
    let (status, body) = app.token(&alice, "crm").await;
    let answered = provider.issued_tokens().into_iter().rfind(|t| t.starts_with("at-")).expect("issued");
    assert_eq!(provider.refresh_calls().len(), 1, "the provider answered");
    assert!(status >= 500, "{status}: {body}");
    assert!(!body.to_string().contains(&answered), "a token that was not stored reached the caller: {body}");
    // Neither half of the answer landed: the access token, the refresh token and the version are as before.
    let after = store.connection(&alice.user.id, &handle).await.expect("read").expect("row");
    assert_eq!(after.token_version, before.token_version);
    let (old, now) = (before.tokens.expect("tokens"), after.tokens.expect("tokens"));
    assert_eq!(now.access_token, old.access_token);
    assert_eq!(now.refresh_token, old.refresh_token);
    assert_eq!(now.expires_at, old.expires_at);

    // The provider rotated the refresh token and its answer was lost: the next refresh is refused, and the
    // connection says so once, with a message, instead of retrying.
    refuse_token_writes(&app, false).await;
    let (status, body) = app.token(&alice, "crm").await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "needs_reauth", "{body}");
    assert!(body["error"].as_str().unwrap_or_default().contains("reconnect"), "{body}");
    assert_eq!(app.token(&alice, "crm").await.0, 409);
    assert_eq!(provider.refresh_calls().len(), 2, "no retry loop");
}
