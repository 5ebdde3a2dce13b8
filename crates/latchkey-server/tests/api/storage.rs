//! What is on disk: nothing in clear, values bound to their row, a restart losing nothing, a wrong key refused.

use std::sync::Arc;

use crate::helpers::{Options, secret, spawn_app, spawn_with, try_spawn};
use crate::provider::MockProvider;

#[tokio::test]
async fn a_restart_loses_nothing() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    app.connect(&alice, "crm", &provider, "s").await;
    let (_, before) = app.token(&alice, "crm").await;
    let dir = app.stop().await;

    let again = spawn_with(Options { dir: Some(Arc::clone(&dir)), ..Options::default() }).await;
    assert!(again.setup_link.is_none(), "users survived the restart");
    let (status, after) = again.token(&alice, "crm").await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(after["token"], before["token"]);
}

#[tokio::test]
async fn the_database_files_hold_no_secret_in_clear() {
    let app = spawn_app().await;
    let client_secret = secret("cs");
    let provider = MockProvider::start("client-1", &client_secret).await;
    provider.set_rotate_refresh_tokens(true);
    let alice = app.caller("alice", None).await;
    app.connect(&alice, "crm", &provider, &client_secret).await;
    app.clock.advance(3600);
    assert_eq!(app.token(&alice, "crm").await.0, 200);

    let mut needles = provider.issued_tokens();
    needles.push(client_secret.clone());
    needles.push(alice.key.clone());
    // The needles are real: the provider did issue them.
    assert!(needles.iter().any(|n| n.starts_with("at-")));
    assert_stored_nowhere_in_clear(&app, &needles, "alice").await;
}

/// Asserts that the database of `app` holds none of `needles` in clear (nor, on PostgreSQL, in hex), reading what
/// the database really holds: every row of every table on PostgreSQL; the database file and its WAL on SQLite
/// (both must exist). `present` is a value that must be found, so the check is known to read real data.
pub async fn assert_stored_nowhere_in_clear(app: &crate::helpers::TestApp, needles: &[String], present: &str) {
    if crate::helpers::on_postgres() {
        // Every row of every table as PostgreSQL prints it (bytea as hex): no needle in clear, nor in hex.
        let pool = sqlx::PgPool::connect(&app.database_url()).await.expect("open the database directly");
        let tables: Vec<String> =
            sqlx::query_scalar("SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'")
                .fetch_all(&pool)
                .await
                .expect("tables");
        let mut dump = String::new();
        for table in &tables {
            let rows: Vec<String> =
                sqlx::query_scalar(&format!("SELECT t::text FROM \"{table}\" t")).fetch_all(&pool).await.expect("rows");
            dump.extend(rows);
        }
        pool.close().await;
        assert!(dump.contains(present), "the dump is real");
        for needle in needles {
            let hex: String = needle.bytes().map(|b| format!("{b:02x}")).collect();
            assert!(!dump.contains(needle.as_str()) && !dump.contains(&hex), "the database holds {needle} in clear");
        }
        return;
    }
    let mut checked = 0;
    let mut seen_present = false;
    for entry in std::fs::read_dir(app.dir.path()).expect("dir") {
        let path = entry.expect("entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        if !name.starts_with("latchkey.db") {
            continue;
        }
        let bytes = std::fs::read(&path).expect("read");
        seen_present |= contains(&bytes, present.as_bytes());
        for needle in needles {
            assert!(!contains(&bytes, needle.as_bytes()), "{name} holds {needle} in clear");
        }
        checked += 1;
    }
    assert!(checked >= 2, "the database and its WAL were both checked");
    assert!(seen_present, "the files read hold real data");
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn a_sealed_value_moved_to_another_row_does_not_open() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    app.connect(&alice, "one", &provider, "s").await;
    app.connect(&alice, "two", &provider, "s").await;

    let copy = "UPDATE connections SET access_token = (SELECT access_token FROM connections WHERE handle = 'one') \
                WHERE handle = 'two'";
    if crate::helpers::on_postgres() {
        let pool = sqlx::PgPool::connect(&app.database_url()).await.expect("open the database directly");
        sqlx::query(copy).execute(&pool).await.expect("copy the sealed token");
        pool.close().await;
    } else {
        let pool = sqlx::SqlitePool::connect(&app.database_url()).await.expect("open the database directly");
        sqlx::query(copy).execute(&pool).await.expect("copy the sealed token");
        pool.close().await;
    }

    assert_eq!(app.token(&alice, "one").await.0, 200);
    let (status, body) = app.token(&alice, "two").await;
    assert_eq!(status, 500, "{body}");
    assert!(!body.to_string().contains("at-"), "no token leaks: {body}");
}

#[tokio::test]
async fn a_wrong_master_key_is_refused_at_start() {
    let app = spawn_app().await;
    let dir = app.stop().await;
    let wrong = latchkey_crypto::MasterKey::generate();
    let options = Options {
        dir: Some(Arc::clone(&dir)),
        key_source: Some(latchkey_crypto::keyfile::KeySource::Env(wrong.to_base64().to_string())),
        ..Options::default()
    };
    let err = try_spawn(options).await.err().expect("a wrong key must not start");
    let message = format!("{err:#}");
    assert!(message.contains("master key"), "{message}");
}
