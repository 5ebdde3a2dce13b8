//! The SQLite backend: the conformance suite on a fresh database file, and what is particular to SQLite
//! (durability settings, the file on disk, reopening).

use latchkey_core::model::{Connection, ConnectionId, Status, StoredTokens, TokenWrite, User, UserId};
use latchkey_core::settings::OAuthSettings;
use latchkey_core::store::{ConnectionStore, MetaStore, Store, UserStore};
use latchkey_core::{Error, Handle, Sealed, Timestamp};
use latchkey_store::{SqliteStore, conformance};

const T0: Timestamp = Timestamp(1_700_000_000);

/// A database URL for a file inside `dir`.
fn url_in(dir: &tempfile::TempDir, relative: &str) -> String {
    format!("sqlite://{}", dir.path().join(relative).display())
}

async fn fresh_store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = SqliteStore::open(&url_in(&dir, "latchkey.db")).await.expect("open");
    (dir, store)
}

fn user() -> User {
    let id = UserId::random();
    User { username: format!("sqlite-{id}"), id, password_hash: "phc".to_owned(), is_admin: true, created_at: T0 }
}

fn settings() -> OAuthSettings {
    serde_json::from_value(serde_json::json!({
        "authorization_url": "http://127.0.0.1:9/authorize",
        "token_url": "http://127.0.0.1:9/token",
        "client_id": "client",
    }))
    .expect("minimal settings")
}

fn connection(user: &UserId) -> Connection {
    Connection {
        id: ConnectionId::random(),
        user_id: user.clone(),
        handle: Handle::parse("crm").expect("handle"),
        name: "CRM".to_owned(),
        provider: "custom".to_owned(),
        settings: settings(),
        client_secret: Some(Sealed(vec![1, 2, 3])),
        status: Status::Pending,
        last_error: None,
        tokens: None,
        token_version: 0,
        failure_count: 0,
        retry_after: None,
        refresh_at: None,
        last_refreshed_at: None,
        created_at: T0,
        updated_at: T0,
    }
}

#[tokio::test]
async fn passes_the_conformance_suite() {
    let (_dir, store) = fresh_store().await;
    conformance::run_all(&store).await;
}

#[tokio::test]
async fn passes_the_conformance_suite_through_connect() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = latchkey_store::connect(&url_in(&dir, "via-connect.db")).await.expect("connect");
    assert_eq!(store.backend(), "sqlite");
    conformance::run_all(store.as_ref()).await;
}

#[tokio::test]
async fn passes_the_conformance_suite_in_memory() {
    let store = SqliteStore::open("sqlite::memory:").await.expect("open in memory");
    conformance::run_all(&store).await;
}

#[tokio::test]
async fn a_restart_loses_nothing() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = url_in(&dir, "latchkey.db");
    let admin = user();
    let mut crm = connection(&admin.id);

    let store = SqliteStore::open(&url).await.expect("open");
    store.insert_user(&admin).await.expect("insert_user");
    store.insert_connection(&crm).await.expect("insert_connection");
    let rotated = StoredTokens {
        access_token: Sealed(b"sealed access".to_vec()),
        refresh_token: Some(Sealed(b"sealed rotated refresh".to_vec())),
        token_type: "Bearer".to_owned(),
        expires_at: Some(T0.plus_secs(3600)),
        obtained_at: T0,
        scope: None,
        extra: Default::default(),
    };
    let write =
        TokenWrite { tokens: rotated.clone(), refresh_at: Some(T0.plus_secs(3000)), now: T0, expected_version: None };
    assert!(store.save_tokens(&crm.id, &write).await.expect("save_tokens"));
    store.put_meta("key_check", b"sealed check").await.expect("put_meta");
    store.close().await;
    drop(store);

    let reopened = SqliteStore::open(&url).await.expect("reopen");
    assert_eq!(reopened.user_by_id(&admin.id).await.expect("user_by_id"), Some(admin.clone()));
    crm.tokens = Some(rotated);
    crm.status = Status::Connected;
    crm.token_version = 1;
    crm.refresh_at = Some(T0.plus_secs(3000));
    crm.last_refreshed_at = Some(T0);
    assert_eq!(reopened.connection_by_id(&crm.id).await.expect("connection_by_id"), Some(crm));
    assert_eq!(reopened.get_meta("key_check").await.expect("get_meta"), Some(b"sealed check".to_vec()));
    assert_eq!(reopened.count_users().await.expect("count_users"), 1, "migrations run again without harm");
}

#[tokio::test]
async fn reopening_without_closing_loses_nothing() {
    // As after a crash: the first store is dropped with its write-ahead log not checkpointed.
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = url_in(&dir, "latchkey.db");
    let admin = user();
    let first = SqliteStore::open(&url).await.expect("open");
    first.insert_user(&admin).await.expect("insert_user");

    let second = SqliteStore::open(&url).await.expect("open a second time");
    assert_eq!(second.user_by_id(&admin.id).await.expect("user_by_id"), Some(admin));
    drop(first);
}

#[tokio::test]
async fn connections_use_wal_full_sync_foreign_keys_and_a_busy_timeout() {
    let (_dir, store) = fresh_store().await;
    let pragmas = store.pragmas().await.expect("pragmas");
    assert_eq!(pragmas.journal_mode, "wal");
    assert_eq!(pragmas.synchronous, "full");
    assert!(pragmas.foreign_keys);
    assert_eq!(pragmas.busy_timeout_ms, 5000);
}

#[tokio::test]
async fn creates_the_file_and_its_directories() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("not").join("yet").join("there.db");
    assert!(!path.parent().expect("parent").exists());

    let store = SqliteStore::open(&format!("sqlite://{}", path.display())).await.expect("open");
    store.ping().await.expect("ping");
    assert!(path.is_file(), "the database file exists");
    assert_eq!(store.path(), path.as_path());
}

#[tokio::test]
async fn accepts_the_short_sqlite_scheme() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("short.db");
    let store = latchkey_store::connect(&format!("sqlite:{}", path.display())).await.expect("connect");
    store.ping().await.expect("ping");
    assert!(path.is_file());
}

#[tokio::test]
async fn connect_refuses_unknown_schemes() {
    match latchkey_store::connect("mysql://admin:hunter2@127.0.0.1/latchkey").await {
        Err(err @ Error::Invalid { .. }) => {
            let message = err.to_string();
            assert!(message.contains("sqlite://") && message.contains("postgres://"), "{message}");
            assert!(!message.contains("hunter2"), "{message}");
        }
        Err(other) => panic!("expected Invalid, got {other:?}"),
        Ok(_) => panic!("mysql is not supported"),
    }
}

#[tokio::test]
async fn a_bad_sqlite_url_is_invalid() {
    let dir = tempfile::tempdir().expect("temporary directory");
    match SqliteStore::open(&format!("{}?colour=blue", url_in(&dir, "x.db"))).await {
        Err(Error::Invalid { field, .. }) => assert_eq!(field.as_deref(), Some("database_url")),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[tokio::test]
async fn foreign_keys_are_enforced() {
    let (_dir, store) = fresh_store().await;
    let orphan = connection(&UserId::random());
    match store.insert_connection(&orphan).await {
        Err(Error::Storage(message)) => {
            assert!(message.contains("inserting a connection"), "{message}");
            assert!(message.contains("FOREIGN KEY"), "{message}");
            assert!(!message.contains(orphan.id.as_str()) && !message.contains("CRM"), "no values: {message}");
        }
        other => panic!("a connection of an unknown user must be refused, got {other:?}"),
    }
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_a_storage_error() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("garbage.db");
    std::fs::write(&path, vec![0x5a; 8192]).expect("write garbage");
    match SqliteStore::open(&format!("sqlite://{}", path.display())).await {
        Err(Error::Storage(message)) => assert!(message.contains("garbage.db"), "{message}"),
        other => panic!("expected Storage, got {other:?}"),
    }
}

#[tokio::test]
async fn two_stores_on_one_file_agree_on_the_lease_and_the_version() {
    // Two pools on one file stand for two latchkey processes sharing a database: SQLite's file lock and the busy
    // timeout serialise their writes, and the WHERE clauses decide the winner.
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = url_in(&dir, "shared.db");
    let one = SqliteStore::open(&url).await.expect("open");
    let two = SqliteStore::open(&url).await.expect("open again");
    let admin = user();
    one.insert_user(&admin).await.expect("insert_user");
    let crm = connection(&admin.id);
    one.insert_connection(&crm).await.expect("insert_connection");

    for round in 0..20 {
        let now = T0.plus_secs(round * 100);
        let (a, b) = tokio::join!(
            one.claim_refresh(&crm.id, "one", now, now.plus_secs(60)),
            two.claim_refresh(&crm.id, "two", now, now.plus_secs(60)),
        );
        let (a, b) = (a.expect("claim one"), b.expect("claim two"));
        assert!(a != b, "round {round}: exactly one process holds the lease");

        let tokens = StoredTokens {
            access_token: Sealed(vec![u8::try_from(round).expect("small")]),
            refresh_token: None,
            token_type: "Bearer".to_owned(),
            expires_at: None,
            obtained_at: now,
            scope: None,
            extra: Default::default(),
        };
        let write = TokenWrite { tokens, refresh_at: None, now, expected_version: Some(round) };
        let (a, b) = tokio::join!(one.save_tokens(&crm.id, &write), two.save_tokens(&crm.id, &write));
        assert!(a.expect("save one") != b.expect("save two"), "round {round}: exactly one save of version {round}");
    }
    let stored = two.connection_by_id(&crm.id).await.expect("connection_by_id").expect("exists");
    assert_eq!(stored.token_version, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_database_file_opens_every_time() {
    // Opening a new file switches it to WAL; the pool's connections must not race each other for that switch.
    for round in 0..40 {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("latchkey.db").display());
        let store = SqliteStore::open(&url).await.unwrap_or_else(|err| panic!("round {round}: {err}"));
        assert_eq!(store.pragmas().await.expect("pragmas").journal_mode, "wal");
    }
}
