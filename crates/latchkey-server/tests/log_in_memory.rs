//! The memory a burst of log-ins costs: each password check (argon2id) needs 19 MiB, so the server's resident
//! memory must stay under a ceiling however many log-ins arrive at once, and a second burst must not add to it.
//! A test binary of its own, so that no other test's memory is counted (the server runs in this process).

#[path = "api/helpers.rs"]
#[allow(dead_code, reason = "shared with the API tests; this file uses only part of it")]
mod helpers;
#[path = "api/provider.rs"]
#[allow(dead_code, reason = "shared with the API tests; this file uses only part of it")]
mod provider;

use std::net::IpAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

use helpers::{Options, spawn_with};
use latchkey_server::config::LoginConfig;
use reqwest::StatusCode;

/// Concurrent password checks the server allows in this test.
const CHECKS: usize = 2;
/// Log-ins sent at once in each burst: 12 addresses, 10 each (each address's whole burst).
const ATTEMPTS: usize = 120;
/// The most the resident memory may grow over its level before the first burst, in MiB: one more check's 19 MiB
/// (one was warm already), with room for the clients, connections and threads of the test itself. Before the
/// bound, the same burst took the process from under 40 MiB to over 800 MiB.
const CEILING_MIB: u64 = 80;
/// The most a second burst may add: less than the memory of one check, so nothing of the first was left behind.
const SECOND_BURST_MIB: u64 = 16;

/// A value in kB from `/proc/self/status` (`VmRSS`, `VmHWM`), in MiB.
fn status_mib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status.lines().find(|l| l.starts_with(field)).unwrap_or_else(|| panic!("no {field}"));
    let kb: u64 = line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("kB");
    kb / 1024
}

/// Clients on 12 loopback addresses from `first` on.
fn clients(first: u8) -> Vec<reqwest::Client> {
    (0..12u8)
        .map(|n| {
            reqwest::Client::builder()
                .no_proxy()
                .local_address(IpAddr::from([127, 0, 0, first + n]))
                .timeout(Duration::from_secs(300))
                .build()
                .expect("client")
        })
        .collect()
}

async fn attempt(client: reqwest::Client, url: String) -> StatusCode {
    let username = format!("random-{}", uuid::Uuid::new_v4().simple());
    let form = [("username", username.as_str()), ("password", "guess")];
    client.post(url).form(&form).send().await.expect("post").status()
}

/// Attempts number `range` at once, attempt `n` from client `n % 12`.
async fn burst(clients: &[reqwest::Client], url: &str, range: std::ops::Range<usize>) {
    let attempts = range.map(|n| attempt(clients[n % clients.len()].clone(), url.to_owned()));
    let answers = futures::future::join_all(attempts).await;
    assert!(answers.iter().all(|s| *s == StatusCode::UNAUTHORIZED), "{answers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_log_ins_keeps_memory_under_a_ceiling_and_a_second_adds_nothing() {
    let login = LoginConfig {
        burst: NonZeroU32::new(10).expect("non-zero"),
        refill: Duration::from_secs(3600),
        password_checks: NonZeroUsize::new(CHECKS).expect("non-zero"),
        password_queue_wait: Duration::from_secs(300),
        ..LoginConfig::default()
    };
    let app = spawn_with(Options { login, ..Options::default() }).await;
    let url = app.url("/login");
    let first = clients(100);
    // One attempt first, so that the level before the burst includes a check and a warm connection.
    assert_eq!(attempt(first[0].clone(), url.clone()).await, StatusCode::UNAUTHORIZED);
    let before = status_mib("VmRSS:");

    burst(&first, &url, 1..ATTEMPTS).await;
    let peak = status_mib("VmHWM:");
    let after_first = status_mib("VmRSS:");
    let checks = &app.state.password_checks;
    assert!(checks.peak() <= CHECKS, "{} checks at once", checks.peak());
    assert!(checks.memory_kib() <= CHECKS * 19 * 1024, "{} KiB of argon2 memory", checks.memory_kib());
    assert!(
        peak.saturating_sub(before) <= CEILING_MIB,
        "resident memory peaked at {peak} MiB, {} MiB over the {before} MiB before the burst",
        peak.saturating_sub(before)
    );

    burst(&clients(120), &url, 0..ATTEMPTS).await;
    let after_second = status_mib("VmRSS:");
    assert_eq!(checks.started(), 2 * u64::try_from(ATTEMPTS).expect("small"));
    assert!(
        after_second.saturating_sub(after_first) <= SECOND_BURST_MIB,
        "a second burst grew the process from {after_first} MiB to {after_second} MiB"
    );
    app.stop().await;
}
