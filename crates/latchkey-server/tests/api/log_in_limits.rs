//! Guessing passwords at the log-in form: throttling per address (an IPv6 /64) and per username, the owner of a
//! username never locked out by strangers, the bound on concurrent password checks, and client addresses taken
//! from forwarding headers only when a trusted proxy sends them.

use std::net::IpAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

use latchkey_server::config::LoginConfig;
use latchkey_server::web::client_address::TrustedProxies;
use reqwest::StatusCode;
use reqwest::header::RETRY_AFTER;

use crate::doors::{PASSWORD, browser_from, loopback, try_login};
use crate::helpers::{Options, TestApp, spawn_app, spawn_with};

/// A server whose log-in buckets hold `burst` attempts and do not refill during a test.
fn with_login(burst: u32, change: impl FnOnce(&mut LoginConfig)) -> Options {
    let mut login = LoginConfig {
        burst: NonZeroU32::new(burst).expect("non-zero"),
        refill: Duration::from_secs(3600),
        ..LoginConfig::default()
    };
    change(&mut login);
    Options { login, ..Options::default() }
}

#[tokio::test]
async fn password_guessing_from_one_address_is_throttled_before_any_password_work() {
    let app = spawn_app().await;
    app.caller("alice", None).await;
    let from = loopback(1);
    for n in 0..10 {
        // Known and unknown usernames get the same answer, and both count.
        let username = if n % 2 == 0 { "alice".to_owned() } else { format!("nobody{n}") };
        let refused = try_login(&app, from, &username, "wrong password").await;
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED, "attempt {n}");
        assert!(refused.text().await.expect("page").contains("The username or password is wrong."));
    }
    assert_eq!(app.state.password_checks.started(), 10, "one password check per attempt");
    let throttled = try_login(&app, from, "alice", PASSWORD).await;
    assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS, "even the right password waits");
    let wait: u64 = throttled.headers()[RETRY_AFTER].to_str().expect("ascii").parse().expect("seconds");
    assert!(wait >= 1, "Retry-After: {wait}");
    let page = throttled.text().await.expect("page");
    assert!(page.contains("Too many log-in attempts from your address. Wait"), "{page}");
    assert!(page.contains("<label") && page.contains("Password"), "the form is shown again: {page}");
    assert!(!page.contains(PASSWORD), "{page}");
    assert_eq!(app.state.password_checks.started(), 10, "a throttled attempt costs no password check");

    // Another address, with another username, is not held back.
    let other = try_login(&app, loopback(2), "bob", "wrong password").await;
    assert_eq!(other.status(), StatusCode::UNAUTHORIZED);
    app.stop().await;
}

#[tokio::test]
async fn a_stranger_hammering_a_username_never_locks_its_owner_out() {
    let app = spawn_app().await;
    app.caller("carol", None).await;
    let stranger = loopback(9);
    let mut refused_at = None;
    for n in 0..30 {
        let answer = try_login(&app, stranger, if n % 2 == 0 { "carol" } else { " CAROL " }, "guess").await;
        if answer.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(answer.text().await.expect("page").contains("from your address"));
            refused_at = Some(n);
            break;
        }
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED, "attempt {n}");
    }
    assert_eq!(refused_at, Some(10), "the stranger's address is throttled after its burst");
    // The owner, from an address that never tried before, logs in at once.
    let owner = try_login(&app, loopback(1), "carol", PASSWORD).await;
    assert_eq!(owner.status(), StatusCode::SEE_OTHER, "the owner is not locked out");
    app.stop().await;
}

#[tokio::test]
async fn strangers_from_many_addresses_throttle_a_username_but_not_its_owner_at_home() {
    let app = spawn_with(with_login(2, |_| {})).await;
    app.caller("carol", None).await;
    app.caller("dave", None).await;
    let home = loopback(1);
    assert_eq!(try_login(&app, home, "carol", PASSWORD).await.status(), StatusCode::SEE_OTHER);
    // Strangers, two guesses from each address, empty the username's bucket (ten times an address's burst; carol
    // took one herself).
    let mut refused_at = None;
    for n in 0..40u8 {
        let answer = try_login(&app, loopback(10 + n / 2), "carol", "guess").await;
        if answer.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(answer.text().await.expect("page").contains("Too many log-in attempts for this username"));
            refused_at = Some(n);
            break;
        }
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED, "attempt {n}");
    }
    assert_eq!(refused_at, Some(19));
    let fresh = loopback(40);
    let throttled = try_login(&app, fresh, "carol", PASSWORD).await;
    assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS, "a new address is held back for carol");
    assert!(throttled.headers().contains_key(RETRY_AFTER));
    assert!(throttled.text().await.expect("page").contains("Too many log-in attempts for this username"));
    let someone_else = try_login(&app, fresh, "dave", PASSWORD).await;
    assert_eq!(someone_else.status(), StatusCode::SEE_OTHER, "dave logs in from the same address");
    // Carol, from where she logged in before, is not.
    let owner = try_login(&app, home, "carol", PASSWORD).await;
    assert_eq!(owner.status(), StatusCode::SEE_OTHER, "the owner at home is not locked out");
    app.stop().await;
}

#[tokio::test]
async fn parallel_log_ins_never_run_more_password_checks_than_the_limit() {
    let limit = 2;
    let app = spawn_with(with_login(10, |l| {
        l.password_checks = NonZeroUsize::new(limit).expect("non-zero");
        l.password_queue_wait = Duration::from_secs(120);
    }))
    .await;
    app.caller("erin", None).await;
    // 60 attempts at once, from 12 addresses (5 each, inside their burst), with random usernames: each one is a
    // full argon2id check of 19 MiB.
    let attempts = (0..60u8).map(|n| {
        let app = &app;
        async move {
            let username = format!("random-{}", uuid::Uuid::new_v4().simple());
            try_login(app, loopback(100 + n % 12), &username, "guess").await.status()
        }
    });
    let answers = futures::future::join_all(attempts).await;
    assert!(answers.iter().all(|s| *s == StatusCode::UNAUTHORIZED), "{answers:?}");
    let checks = &app.state.password_checks;
    assert!(checks.peak() >= 1, "the checks ran");
    assert!(checks.peak() <= limit, "{} password checks ran at once (limit {limit})", checks.peak());
    assert_eq!(checks.running(), 0);
    assert_eq!(checks.started(), 60);
    assert_eq!(checks.turned_away(), 0);
    app.stop().await;
}

#[tokio::test]
async fn a_log_in_that_waits_too_long_for_a_password_check_is_told_to_try_again() {
    let app = spawn_with(with_login(10, |l| {
        l.password_checks = NonZeroUsize::MIN;
        l.password_queue_wait = Duration::from_millis(100);
    }))
    .await;
    app.caller("frank", None).await;
    let held = app.state.password_checks.occupy().expect("the one place is free");
    let busy = try_login(&app, loopback(1), "frank", PASSWORD).await;
    assert_eq!(busy.status(), StatusCode::SERVICE_UNAVAILABLE);
    let wait: u64 = busy.headers()[RETRY_AFTER].to_str().expect("ascii").parse().expect("seconds");
    assert!(wait >= 1);
    let page = busy.text().await.expect("page");
    assert!(page.contains("busy checking other log-ins") && page.contains("<label"), "{page}");
    assert!(!page.contains(PASSWORD));
    assert_eq!(app.state.password_checks.turned_away(), 1);
    drop(held);
    let ok = try_login(&app, loopback(1), "frank", PASSWORD).await;
    assert_eq!(ok.status(), StatusCode::SEE_OTHER, "once a place is free, the log-in goes through");
    app.stop().await;
}

async fn try_login_forwarded(app: &TestApp, from: IpAddr, header: (&str, &str)) -> StatusCode {
    let username = format!("random-{}", uuid::Uuid::new_v4().simple());
    browser_from(from)
        .post(app.url("/login"))
        .header(header.0, header.1)
        .form(&[("username", username.as_str()), ("password", "guess")])
        .send()
        .await
        .expect("log in")
        .status()
}

#[tokio::test]
async fn forwarding_headers_name_the_client_only_when_a_trusted_proxy_sends_them() {
    let proxy = loopback(2);
    let app = spawn_with(with_login(2, |l| {
        l.trusted_proxies = TrustedProxies::parse("127.0.0.2").expect("list");
    }))
    .await;
    // From an untrusted peer, the header is ignored: every attempt counts for the peer, whatever it claims.
    let stranger = loopback(3);
    for claimed in ["198.51.100.1", "198.51.100.2"] {
        assert_eq!(try_login_forwarded(&app, stranger, ("x-forwarded-for", claimed)).await, StatusCode::UNAUTHORIZED);
    }
    let third = try_login_forwarded(&app, stranger, ("x-forwarded-for", "198.51.100.3")).await;
    assert_eq!(third, StatusCode::TOO_MANY_REQUESTS, "a forged header does not buy a fresh bucket");

    // From the trusted proxy, each forwarded client has its own bucket (and the proxy's own is not used up).
    for _ in 0..2 {
        let answer = try_login_forwarded(&app, proxy, ("x-forwarded-for", "1.2.3.4, 198.51.100.7")).await;
        assert_eq!(answer, StatusCode::UNAUTHORIZED);
    }
    let over = try_login_forwarded(&app, proxy, ("x-forwarded-for", "9.9.9.9, 198.51.100.7")).await;
    assert_eq!(over, StatusCode::TOO_MANY_REQUESTS, "the rightmost untrusted hop is the client, not the first");
    let other = try_login_forwarded(&app, proxy, ("x-forwarded-for", "198.51.100.8")).await;
    assert_eq!(other, StatusCode::UNAUTHORIZED, "another client behind the proxy");
    let standard = try_login_forwarded(&app, proxy, ("forwarded", "for=\"[2001:db8::9]:4711\"")).await;
    assert_eq!(standard, StatusCode::UNAUTHORIZED, "Forwarded: for= is read too");
    app.stop().await;
}
