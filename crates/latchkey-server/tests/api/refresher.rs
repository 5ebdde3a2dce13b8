//! The background refresher at scale, on the manual clock: tokens issued together are refreshed spread over the
//! window, a provider host gets a bounded number of refreshes at once, and repeated permanent failures stop the
//! attempts instead of looping.

use std::time::Duration;

use latchkey_core::{Clock, Handle, Timestamp};
use latchkey_server::tokens::RefreshTuning;
use reqwest::Method;

use crate::helpers::{Caller, Options, TestApp, spawn_with, wait_for};
use crate::provider::{Canned, MockProvider};

fn refresher_options(tuning: RefreshTuning) -> Options {
    Options { refresher_interval: Duration::from_millis(50), refresh_tuning: tuning, ..Options::default() }
}

/// The refresh time stored for each handle.
async fn scheduled(app: &TestApp, caller: &Caller, handles: &[String]) -> Vec<Timestamp> {
    let mut times = Vec::new();
    for handle in handles {
        let handle = Handle::parse(handle).expect("handle");
        let connection = app.state.store.connection(&caller.user.id, &handle).await.expect("read").expect("exists");
        times.push(connection.refresh_at.expect("scheduled"));
    }
    times
}

/// Watches for `window` that `check` keeps holding (for "nothing more happens" after a wait for something).
async fn keeps_holding(what: &str, window: Duration, check: impl Fn() -> bool) {
    let start = tokio::time::Instant::now();
    while start.elapsed() < window {
        assert!(check(), "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn tokens_issued_together_are_refreshed_spread_over_the_window() {
    let app = spawn_with(refresher_options(RefreshTuning::default())).await;
    let provider = MockProvider::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    let handles: Vec<String> = (0..20).map(|n| format!("spread-{n}")).collect();
    for handle in &handles {
        app.connect(&alice, handle, &provider, "s").await;
    }
    let start = app.clock.now();
    let mut times = scheduled(&app, &alice, &handles).await;
    // 3600 s tokens: due 300 s before expiry; the refresher takes each up in the first half of that window.
    for at in &times {
        assert!((3300..3450).contains(&(at.secs() - start.secs())), "{at:?} outside the first half of the window");
    }
    times.sort();
    let middle = times[9];
    assert!(times[19] > middle, "twenty tokens issued together are not all scheduled for the same second");

    app.clock.advance(middle.secs() - start.secs());
    let expected = times.iter().filter(|at| **at <= middle).count();
    wait_for("the refreshes due by the middle", async || provider.refresh_calls().len() == expected).await;
    keeps_holding("no refresh before its scheduled time", Duration::from_millis(300), || {
        provider.refresh_calls().len() == expected
    })
    .await;
    app.clock.advance(times[19].secs() - middle.secs());
    wait_for("the rest of the refreshes", async || provider.refresh_calls().len() == 20).await;
}

#[tokio::test]
async fn a_provider_host_gets_a_bounded_number_of_refreshes_at_once() {
    let tuning = RefreshTuning { concurrency_per_host: 2, ..RefreshTuning::default() };
    let app = spawn_with(refresher_options(tuning)).await;
    let provider = MockProvider::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    for n in 0..6 {
        app.connect(&alice, &format!("host-{n}"), &provider, "s").await;
    }
    provider.hold_refreshes(true);
    app.clock.advance(3500);
    wait_for("two refreshes at the provider", async || provider.refresh_calls().len() == 2).await;
    keeps_holding("no third refresh while two are open", Duration::from_millis(500), || {
        provider.refresh_calls().len() == 2
    })
    .await;
    provider.release();
    wait_for("all six refreshed", async || provider.refresh_calls().len() == 6).await;
}

#[tokio::test]
async fn repeated_permanent_failures_stop_the_refreshes() {
    let tuning = RefreshTuning { backoff_base: Duration::from_secs(10), ..RefreshTuning::default() };
    let app = spawn_with(refresher_options(tuning)).await;
    let provider = MockProvider::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    app.connect(&alice, "crm", &provider, "s").await;
    let (_, original) = app.token(&alice, "crm").await;
    let refused = serde_json::json!({"error": "invalid_request", "error_description": "unsupported parameter"});
    for _ in 0..5 {
        provider.push_canned(Canned::json(400, refused.clone()));
    }
    // The refresher tries, backs off (10, 20, 40, 80 s), tries again: five refusals in a row.
    app.clock.advance(3450);
    for attempt in 1..=5 {
        wait_for("the next attempt", async || provider.refresh_calls().len() == attempt).await;
        let store = app.state.store.clone();
        let user = alice.user.id.clone();
        wait_for("the failure to be recorded", async || {
            let handle = Handle::parse("crm").expect("handle");
            let connection = store.connection(&user, &handle).await.ok().flatten();
            connection.is_some_and(|c| c.failure_count == i64::try_from(attempt).expect("small"))
        })
        .await;
        app.clock.advance(100);
    }
    let (_, read) = app.api(&alice, Method::GET, "/api/v1/connections/crm", None).await;
    assert_eq!(read["connection"]["status"], "error", "{read}");
    let last_error = read["connection"]["last_error"].as_str().unwrap_or_default();
    assert!(last_error.contains("5 times in a row") && last_error.contains("stopped trying"), "{last_error}");
    assert!(last_error.contains("invalid_request"), "{last_error}");

    // No retry loop: neither the refresher nor token requests call the provider again, even after expiry.
    app.clock.advance(24 * 3600);
    keeps_holding("no further attempt", Duration::from_millis(300), || provider.refresh_calls().len() == 5).await;
    let (status, body) = app.token(&alice, "crm").await;
    assert_eq!(status, 502, "{body}");
    assert!(body["error"].as_str().unwrap_or_default().contains("stopped trying"), "{body}");
    assert_eq!(provider.refresh_calls().len(), 5);

    // Asking explicitly does not call the provider either; saving the settings (checked) tries once more, and the
    // connection is back on schedule.
    let forced_path = "/api/v1/connections/crm/token?force_refresh=true";
    let (status, forced) = app.api(&alice, Method::GET, forced_path, None).await;
    assert_eq!(status, 502, "{forced}");
    assert_eq!(provider.refresh_calls().len(), 5, "a forced refresh does not hammer the provider");
    let saved = app.api(&alice, Method::PATCH, "/api/v1/connections/crm", Some(serde_json::json!({}))).await;
    assert_eq!(saved.0, 200, "{}", saved.1);
    let (status, forced) = app.api(&alice, Method::GET, forced_path, None).await;
    assert_eq!(status, 200, "{forced}");
    assert_ne!(forced["token"], original["token"]);
    let (_, read) = app.api(&alice, Method::GET, "/api/v1/connections/crm", None).await;
    assert_eq!(read["connection"]["status"], "connected", "{read}");
}
