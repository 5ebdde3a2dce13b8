//! The PostgreSQL backend: the conformance suite on a fresh database, and what is particular to PostgreSQL
//! (replicas migrating together, several pools racing for one lease, the schema's own checks, passwords in URLs).
//!
//! Every test makes its own database with `latchkey_store::testing::TestDatabase` and drops it at the end. When
//! no PostgreSQL server is reachable the tests print why and pass, unless `LATCHKEY_REQUIRE_POSTGRES=1` (as in
//! CI), which makes them fail.

use latchkey_core::model::{
    AuthFlow, Connection, ConnectionId, Digest, FlowId, FlowStart, Status, StoredTokens, TokenWrite, User, UserId,
};
use latchkey_core::settings::OAuthSettings;
use latchkey_core::store::{ConnectionStore, FlowStore, MetaStore, SessionStore, Store, UserStore};
use latchkey_core::{Error, Handle, Sealed, Timestamp};
use latchkey_store::testing::TestDatabase;
use latchkey_store::{PostgresStore, conformance};
use sqlx::Row as _;
use tokio::task::JoinSet;

const T0: Timestamp = Timestamp(1_700_000_000);

/// A fresh database for this test, or an early return (a skip) when PostgreSQL is not reachable.
macro_rules! fresh_database {
    () => {
        match TestDatabase::create().await {
            Some(database) => database,
            None => return,
        }
    };
}

fn user() -> User {
    let id = UserId::random();
    User { username: format!("postgres-{id}"), id, password_hash: "phc".to_owned(), is_admin: true, created_at: T0 }
}

fn settings() -> OAuthSettings {
    serde_json::from_value(serde_json::json!({
        "authorization_url": "http://127.0.0.1:9/authorize",
        "token_url": "http://127.0.0.1:9/token",
        "client_id": "client",
        "authorization_params": {"prompt": "consent", "access_type": "offline"},
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

fn digest(byte: u8) -> Digest {
    Digest([byte; 32])
}

/// A stored user with one pending connection.
async fn user_with_connection(store: &PostgresStore) -> (User, Connection) {
    let admin = user();
    store.insert_user(&admin).await.expect("insert_user");
    let crm = connection(&admin.id);
    store.insert_connection(&crm).await.expect("insert_connection");
    (admin, crm)
}

/// A plain sqlx pool on the test database, to look at what the store wrote.
async fn raw_pool(database: &TestDatabase) -> sqlx::PgPool {
    sqlx::PgPool::connect(database.url()).await.expect("a raw pool on the test database")
}

#[tokio::test]
async fn passes_the_conformance_suite() {
    let database = fresh_database!();
    let store = database.open_store().await;
    assert_eq!(store.backend(), "postgres");
    conformance::run_all(&store).await;
}

#[tokio::test]
async fn passes_the_conformance_suite_through_connect() {
    let database = fresh_database!();
    let url = database.url().replacen("postgres://", "postgresql://", 1);
    assert!(url.starts_with("postgresql://"), "the test URL uses the long scheme");
    let store = latchkey_store::connect(&url).await.expect("connect");
    assert_eq!(store.backend(), "postgres");
    conformance::run_all(store.as_ref()).await;
}

#[tokio::test]
async fn replicas_starting_together_on_a_fresh_database_migrate_once() {
    let database = fresh_database!();
    let mut opening = JoinSet::new();
    for _ in 0..6 {
        let url = database.url().to_owned();
        opening.spawn(async move { PostgresStore::open(&url).await });
    }
    let mut stores = Vec::new();
    while let Some(opened) = opening.join_next().await {
        stores.push(opened.expect("the task ran").expect("every replica opens"));
    }
    for store in &stores {
        store.ping().await.expect("ping");
    }

    let raw = raw_pool(&database).await;
    let applied: Vec<(i64, bool)> = sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
        .fetch_all(&raw)
        .await
        .expect("the migrations table");
    let mut expected: Vec<(i64, bool)> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
        .expect("the migrations folder")
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.split('_').next()?.parse().ok())
        .map(|version| (version, true))
        .collect();
    expected.sort_unstable();
    assert_eq!(applied, expected, "each migration is recorded once, as a success");

    // Every replica sees the same schema: what one writes, another reads.
    let (admin, crm) = user_with_connection(&stores[0]).await;
    assert_eq!(stores[5].user_by_id(&admin.id).await.expect("user_by_id"), Some(admin));
    assert_eq!(stores[3].connection_by_id(&crm.id).await.expect("connection_by_id"), Some(crm));
}

#[tokio::test]
async fn a_restart_loses_nothing() {
    let database = fresh_database!();
    let store = database.open_store().await;
    let (admin, mut crm) = user_with_connection(&store).await;
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

    let reopened = database.open_store().await;
    assert_eq!(reopened.user_by_id(&admin.id).await.expect("user_by_id"), Some(admin));
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
async fn two_pools_agree_on_the_lease_and_the_version() {
    // Two pools on one database stand for two latchkey replicas: the guarded UPDATEs decide the winner.
    let database = fresh_database!();
    let one = database.open_store().await;
    let two = database.open_store().await;
    let (_, crm) = user_with_connection(&one).await;

    for round in 0..20 {
        let now = T0.plus_secs(round * 100);
        let (a, b) = tokio::join!(
            one.claim_refresh(&crm.id, "one", now, now.plus_secs(60)),
            two.claim_refresh(&crm.id, "two", now, now.plus_secs(60)),
        );
        let (a, b) = (a.expect("claim one"), b.expect("claim two"));
        assert!(a != b, "round {round}: exactly one replica holds the lease");

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

#[tokio::test]
async fn many_claimants_on_two_pools_have_one_winner_per_lease() {
    let database = fresh_database!();
    let stores = [database.open_store().await, database.open_store().await];
    let (_, crm) = user_with_connection(&stores[0]).await;

    for round in 0..5_i64 {
        // Each round starts after the previous lease has expired.
        let now = T0.plus_secs(round * 1000);
        let mut claims = JoinSet::new();
        for claimant in 0..16 {
            let store = stores[claimant % 2].clone();
            let id = crm.id.clone();
            claims.spawn(async move {
                let owner = format!("replica-{}-task-{claimant}", claimant % 2);
                store.claim_refresh(&id, &owner, now, now.plus_secs(60)).await.map(|won| won.then_some(owner))
            });
        }
        let mut winners = Vec::new();
        while let Some(claimed) = claims.join_next().await {
            winners.extend(claimed.expect("the task ran").expect("claim_refresh"));
        }
        assert_eq!(winners.len(), 1, "round {round}: one winner among 16 claimants, got {winners:?}");

        let raw = raw_pool(&database).await;
        let owner: Option<String> = sqlx::query_scalar("SELECT lease_owner FROM connections WHERE id = $1")
            .bind(crm.id.as_str())
            .fetch_one(&raw)
            .await
            .expect("lease owner");
        assert_eq!(owner.as_ref(), winners.first(), "the stored lease names the winner");
        raw.close().await;
    }
}

#[tokio::test]
async fn a_link_opened_on_two_replicas_at_once_starts_once() {
    let database = fresh_database!();
    let one = database.open_store().await;
    let two = database.open_store().await;
    let (_, crm) = user_with_connection(&one).await;

    for round in 0..10_u8 {
        let flow = AuthFlow {
            id: FlowId::random(),
            connection_id: crm.id.clone(),
            link_hash: digest(round),
            state_hash: None,
            browser_hash: None,
            pkce_verifier: Some(Sealed(b"verifier".to_vec())),
            redirect_uri: "http://127.0.0.1:8080/oauth2/callback".to_owned(),
            created_at: T0,
            expires_at: T0.plus_secs(600),
            started_at: None,
            completed_at: None,
        };
        one.insert_flow(&flow).await.expect("insert_flow");
        let start = |state: u8| FlowStart {
            state_hash: digest(100 + state),
            browser_hash: digest(150 + state),
            pkce_verifier: None,
            now: T0.plus_secs(1),
        };
        let (first, second) = (start(round), start(round + 20));
        let (a, b) = tokio::join!(one.start_flow(&flow.link_hash, &first), two.start_flow(&flow.link_hash, &second));
        let (a, b) = (a.expect("start one"), b.expect("start two"));
        assert!(a.is_some() != b.is_some(), "round {round}: the link opens exactly once");

        let (c, d) = tokio::join!(one.complete_flow(&flow.id, T0.plus_secs(2)), two.complete_flow(&flow.id, T0));
        assert!(c.expect("complete one") != d.expect("complete two"), "round {round}: the callback runs once");
    }
}

#[tokio::test]
async fn set_up_raced_by_two_replicas_creates_one_user() {
    let database = fresh_database!();
    let one = database.open_store().await;
    let two = database.open_store().await;

    // Replacing the token from several replicas at once leaves exactly one.
    let mut putting = JoinSet::new();
    for i in 0..8 {
        let store = if i % 2 == 0 { one.clone() } else { two.clone() };
        putting.spawn(async move { store.put_setup_token(&digest(i), T0.plus_secs(600)).await });
    }
    while let Some(put) = putting.join_next().await {
        put.expect("the task ran").expect("put_setup_token");
    }
    let raw = raw_pool(&database).await;
    let tokens: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM setup_tokens").fetch_one(&raw).await.expect("count");
    assert_eq!(tokens, 1, "concurrent replacements keep one set-up token");

    let token = digest(42);
    one.put_setup_token(&token, T0.plus_secs(600)).await.expect("put_setup_token");
    let (first, second) = (user(), user());
    let (a, b) = tokio::join!(one.complete_setup(&token, &first, T0), two.complete_setup(&token, &second, T0));
    assert!(a.expect("set-up one") != b.expect("set-up two"), "exactly one set-up completes");
    assert_eq!(one.count_users().await.expect("count_users"), 1);
}

#[tokio::test]
async fn settings_and_handles_are_stored_as_the_exact_json_the_codec_writes() {
    let database = fresh_database!();
    let store = database.open_store().await;
    let (_, crm) = user_with_connection(&store).await;

    let raw = raw_pool(&database).await;
    let row = sqlx::query("SELECT settings::text AS settings, pg_typeof(settings)::text AS type FROM connections")
        .fetch_one(&raw)
        .await
        .expect("the stored settings");
    let text: String = row.get("settings");
    let column_type: String = row.get("type");
    assert_eq!(text, serde_json::to_string(&crm.settings).expect("settings as JSON"), "byte for byte");
    assert_eq!(column_type, "json");
}

#[tokio::test]
async fn the_schema_refuses_malformed_rows() {
    let database = fresh_database!();
    let store = database.open_store().await;
    let (admin, crm) = user_with_connection(&store).await;
    let raw = raw_pool(&database).await;

    let refused = [
        ("UPDATE connections SET status = 'bogus' WHERE id = $1", crm.id.as_str()),
        ("UPDATE connections SET client_secret = NULL, settings = NULL WHERE id = $1", crm.id.as_str()),
        ("UPDATE connections SET access_token = '\\x01' WHERE id = $1", crm.id.as_str()),
        (
            "INSERT INTO sessions (id_hash, user_id, csrf_token, created_at, expires_at) \
             VALUES ('\\x0102', $1, 'csrf', 0, 1)",
            admin.id.as_str(),
        ),
        (
            "INSERT INTO api_keys (id, user_id, name, prefix, key_hash, created_at) \
             VALUES ('k', $1, 'short', 'lk_', '\\x0102', 0)",
            admin.id.as_str(),
        ),
    ];
    for (statement, id) in refused {
        let result = sqlx::query(statement).bind(id).execute(&raw).await;
        assert!(result.is_err(), "the schema must refuse: {statement}");
    }
    assert_eq!(store.connection_by_id(&crm.id).await.expect("connection_by_id"), Some(crm));
}

#[tokio::test]
async fn foreign_keys_are_enforced_and_errors_carry_no_values() {
    let database = fresh_database!();
    let store = database.open_store().await;
    let orphan = connection(&UserId::random());
    match store.insert_connection(&orphan).await {
        Err(Error::Storage(message)) => {
            assert!(message.contains("inserting a connection"), "{message}");
            assert!(message.contains("foreign key"), "{message}");
            assert!(!message.contains(orphan.id.as_str()) && !message.contains("CRM"), "no values: {message}");
            assert!(!message.contains(orphan.user_id.as_str()), "no values: {message}");
        }
        other => panic!("a connection of an unknown user must be refused, got {other:?}"),
    }
}

#[tokio::test]
async fn the_password_of_the_url_never_appears_in_errors_or_debug() {
    let database = fresh_database!();
    let mut url = url::Url::parse(database.url()).expect("the test URL");
    // The machine's test server trusts local logins, so any password is accepted; a server that checks passwords
    // is given its own through the admin URL, and that one is the secret to look for.
    if url.password().is_none() {
        url.set_password(Some("hunter2-secret")).expect("a password fits the URL");
    }
    let password = url.password().expect("a password").to_owned();

    let store = PostgresStore::open(url.as_str()).await.expect("open with a password in the URL");
    for shown in [format!("{store:?}"), store.describe_target()] {
        assert!(!shown.contains(&password), "{shown}");
    }
    assert!(store.describe_target().contains(database.name()));

    let mut missing = url.clone();
    missing.set_path("latchkey_test_no_such_database");
    let mut unreachable = url.clone();
    unreachable.set_host(Some("127.0.0.1")).expect("host");
    unreachable.set_port(Some(1)).expect("port");
    let mut misspelt = url.clone();
    misspelt.set_query(Some("sslmdoe=require"));

    for (bad, expected) in
        [(missing.as_str(), "does not exist"), (unreachable.as_str(), "127.0.0.1:1"), (misspelt.as_str(), "'sslmdoe'")]
    {
        match latchkey_store::connect(bad).await {
            Err(err) => {
                let message = err.to_string();
                assert!(!message.contains(&password), "{message}");
                assert!(message.contains(expected), "expected '{expected}' in: {message}");
            }
            Ok(_) => panic!("opening must fail: {expected}"),
        }
    }
}

#[tokio::test]
async fn sessions_and_users_survive_another_replica_reading() {
    // A session created through one replica is found through the other (a browser moving between replicas).
    let database = fresh_database!();
    let one = database.open_store().await;
    let two = database.open_store().await;
    let admin = user();
    one.insert_user(&admin).await.expect("insert_user");
    let session = latchkey_core::model::Session {
        id_hash: digest(7),
        user_id: admin.id.clone(),
        csrf_token: "csrf".to_owned(),
        created_at: T0,
        expires_at: T0.plus_secs(3600),
    };
    one.insert_session(&session).await.expect("insert_session");
    assert_eq!(two.session(&session.id_hash, T0).await.expect("session"), Some((session, admin)));
}
