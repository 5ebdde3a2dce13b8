//! Master key rotation on a real database with a running server: interrupted half-way and resumed, every row
//! readable at every moment, old keys retired only when nothing uses them; tampered values refused by name.

use std::sync::Arc;

use latchkey_core::Sealed;
use latchkey_core::model::ConnectionId;
use latchkey_core::sealed_columns::{SEALED_COLUMNS, SealedColumn};
use latchkey_core::store::Store;
use latchkey_crypto::keyfile::KeySource;
use latchkey_crypto::{KeyId, Keyring};
use latchkey_server::keys::{self, ResealOptions, Rotation};
use serde_json::Value;

use crate::helpers::{Caller, Options, TestApp, spawn_app, spawn_with, wait_for};
use crate::provider::MockProvider;

const HANDLES: [&str; 6] = ["crm", "mail", "calendar", "files", "chat", "billing"];

/// What `latchkey keys ...` opens in its own process: the same database and key file, its own key ring.
async fn operator(app: &TestApp) -> (Arc<dyn Store>, Keyring, KeySource) {
    let source = app.state.config.key_source.clone();
    let (store, keyring) =
        latchkey_server::bootstrap::open(&app.database_url(), &source).await.expect("the operator opens the data");
    (store, keyring, source)
}

async fn rotate(app: &TestApp, stop_after: Option<u64>) -> Rotation {
    let (store, keyring, source) = operator(app).await;
    let options = ResealOptions { batch_size: 2, stop_after };
    keys::rotate(store.as_ref(), &keyring, &source, options, &mut |_| {}).await.expect("rotate")
}

/// How many stored values each key id seals.
async fn values_under(app: &TestApp, key: KeyId) -> u64 {
    let (store, keyring, _) = operator(app).await;
    let usage = keys::key_usage(store.as_ref(), &keyring).await.expect("key usage");
    usage.iter().filter(|u| u.key == Some(key)).map(|u| u.values).sum()
}

async fn tokens_of(app: &TestApp, alice: &Caller) -> Vec<Value> {
    let mut tokens = Vec::new();
    for handle in HANDLES {
        let (status, body) = app.token(alice, handle).await;
        assert_eq!(status, 200, "{handle}: {body}");
        tokens.push(body["token"].clone());
    }
    tokens
}

#[tokio::test]
async fn rotation_stopped_half_way_keeps_every_row_readable_and_resumes() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    for handle in HANDLES {
        app.connect(&alice, handle, &provider, "s").await;
    }
    let before = tokens_of(&app, &alice).await;
    let old = app.state.keyring.current_id();
    let stored = values_under(&app, old).await;
    assert!(
        stored > 3 * HANDLES.len() as u64,
        "client secrets, both tokens of each connection, the key check: {stored}"
    );

    // Stopped after 7 values, as if killed: both keys seal rows now.
    let half = rotate(&app, Some(7)).await;
    assert!(half.added && half.report.interrupted, "{half:?}");
    assert_eq!(half.report.resealed, 7);
    let new = half.key;
    assert_ne!(new, old);
    assert_eq!(values_under(&app, new).await, 7 + 1, "seven values and the key check");
    assert!(values_under(&app, old).await > 0);

    // Half-way, the running server still answers every token, under either key.
    assert_eq!(tokens_of(&app, &alice).await, before);
    let (status, refreshed) =
        app.api(&alice, reqwest::Method::GET, "/api/v1/connections/billing/token?force_refresh=true", None).await;
    assert_eq!(status, 200, "a server writes fresh tokens meanwhile: {refreshed}");

    // The old key cannot go while rows use it.
    let (store, keyring, source) = operator(&app).await;
    let refused = keys::retire(store.as_ref(), &keyring, &source, old).await.expect_err("still in use");
    assert!(refused.to_string().contains(&format!("key {old} still seals")), "{refused}");
    assert!(refused.to_string().contains("connections."), "{refused}");

    // Run again: it resumes with the rows still under the old key, and adds no key.
    let done = rotate(&app, None).await;
    assert!(!done.added, "{done:?}");
    assert_eq!(done.key, new);
    assert!(done.report.failures.is_empty(), "{:?}", done.report.failures);
    assert_eq!(done.remaining, 0);
    assert_eq!(values_under(&app, old).await, 0);
    assert_eq!(values_under(&app, new).await, stored, "every value moved, the key check included");

    // The running server has found the new key and seals with it.
    let ring = Arc::clone(&app.state.keyring);
    wait_for("the server to seal with the new key", async || ring.current_id() == new).await;

    let mut after = tokens_of(&app, &alice).await;
    after.pop();
    let mut expected = before.clone();
    expected.pop();
    assert_eq!(after, expected, "every token reads back the same");

    // Nothing uses the old key any more: it is retired, and a restarted server needs only the new one.
    keys::retire(store.as_ref(), &keyring, &source, old).await.expect("retired");
    let KeySource::File(path) = &source else { panic!("tests use a key file") };
    assert_eq!(latchkey_crypto::read_key_file(path).expect("key file").key_ids(), vec![new]);
    let data = app.stop().await;
    let again = spawn_with(Options { dir: Some(data), ..Options::default() }).await;
    assert_eq!(again.state.keyring.key_ids(), vec![new]);
    let mut restarted = tokens_of(&again, &alice).await;
    restarted.pop();
    assert_eq!(restarted, expected);
}

/// The id of a connection, and the sealed value in one of its columns.
async fn stored(app: &TestApp, alice: &Caller, handle: &str, column: &str) -> (ConnectionId, Sealed) {
    let handle = latchkey_core::Handle::parse(handle).expect("handle");
    let connection =
        app.state.store.connection(&alice.user.id, &handle).await.expect("read").expect("the connection exists");
    let tokens = connection.tokens.expect("tokens");
    let value = match column {
        "access_token" => tokens.access_token,
        "refresh_token" => tokens.refresh_token.expect("a refresh token"),
        _ => connection.client_secret.expect("a client secret"),
    };
    (connection.id, value)
}

fn column(table: &str, name: &str) -> &'static SealedColumn {
    SEALED_COLUMNS.iter().find(|c| c.table == table && c.column == name).expect("a sealed column")
}

/// Writes `value` over what the row holds, as an attacker with database access would.
async fn overwrite(app: &TestApp, column: &SealedColumn, row: &ConnectionId, old: &Sealed, value: &Sealed) {
    let written = app.state.store.replace_sealed_value(column, row.as_str(), old, value).await.expect("write");
    assert!(written, "the tampered value is in the database");
}

/// A tampered value: the token request fails cleanly (no token, no internals), the rest keep working, and the
/// rotation names the table, column and row it could not open and goes on with the others.
async fn assert_refused_by_name(app: &TestApp, alice: &Caller, handle: &str, row: &ConnectionId, place: &str) {
    let (status, body) = app.token(alice, handle).await;
    assert_eq!(status, 500, "{body}");
    assert!(body.get("token").is_none(), "{body}");
    assert_eq!(body["code"], "internal", "{body}");
    let (status, _) = app.token(alice, "intact").await;
    assert_eq!(status, 200, "other connections are not affected");

    let rotation = rotate(app, None).await;
    let failures: Vec<String> = rotation.report.failures.iter().map(ToString::to_string).collect();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(failures[0].starts_with(&format!("{place} of row {row}:")), "{failures:?}");
    assert!(failures[0].contains("failed authentication"), "{failures:?}");
    assert_eq!(rotation.remaining, 1, "the damaged value keeps its old key; everything else moved");
    assert_eq!(app.token(alice, "intact").await.0, 200);
}

#[tokio::test]
async fn a_sealed_value_moved_to_another_row_is_refused_by_name() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    app.connect(&alice, "victim", &provider, "s").await;
    app.connect(&alice, "intact", &provider, "s").await;
    app.connect(&alice, "donor", &provider, "s").await;

    let (_, donor_token) = stored(&app, &alice, "donor", "access_token").await;
    let (victim, victim_token) = stored(&app, &alice, "victim", "access_token").await;
    overwrite(&app, column("connections", "access_token"), &victim, &victim_token, &donor_token).await;

    assert_refused_by_name(&app, &alice, "victim", &victim, "connections.access_token").await;
    let (status, body) = app.token(&alice, "donor").await;
    assert_eq!(status, 200, "the value is still valid in its own row: {body}");
}

#[tokio::test]
async fn a_bit_flipped_sealed_value_is_refused_by_name() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    app.connect(&alice, "victim", &provider, "s").await;
    app.connect(&alice, "intact", &provider, "s").await;

    let (victim, sealed) = stored(&app, &alice, "victim", "access_token").await;
    let mut flipped = sealed.clone();
    let last = flipped.0.len() - 20;
    flipped.0[last] ^= 0x01;
    overwrite(&app, column("connections", "access_token"), &victim, &sealed, &flipped).await;

    assert_refused_by_name(&app, &alice, "victim", &victim, "connections.access_token").await;

    // The server's own message (in its log) names the column and the row too.
    let opened = latchkey_server::sealing::open(
        &app.state.keyring,
        &victim,
        latchkey_server::sealing::Column::AccessToken,
        &flipped,
    );
    let message = opened.expect_err("tampered").to_string();
    assert!(message.contains("access_token") && message.contains(victim.as_str()), "{message}");
}

#[tokio::test]
async fn a_running_server_seals_new_values_with_a_key_added_to_its_key_file() {
    let app = spawn_app().await;
    let provider = MockProvider::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    let old = app.state.keyring.current_id();

    let KeySource::File(path) = app.state.config.key_source.clone() else { panic!("tests use a key file") };
    let added = latchkey_crypto::MasterKey::generate();
    latchkey_crypto::append_key(&path, &added).expect("appended");
    let ring = Arc::clone(&app.state.keyring);
    wait_for("the server to read the key file again", async || ring.current_id() == added.id()).await;
    assert_eq!(app.state.keyring.key_ids(), vec![added.id(), old], "the old key stays for opening");

    app.connect(&alice, "crm", &provider, "s").await;
    let (_, secret) = stored(&app, &alice, "crm", "client_secret").await;
    let (_, token) = stored(&app, &alice, "crm", "access_token").await;
    assert_eq!(Keyring::key_id_of(&secret), Some(added.id()));
    assert_eq!(Keyring::key_id_of(&token), Some(added.id()));
    assert_eq!(app.token(&alice, "crm").await.0, 200);
}

#[tokio::test]
async fn a_server_without_the_key_of_a_row_names_the_key_it_lacks() {
    // A server whose only key comes from the environment cannot read a key added elsewhere.
    let old = latchkey_crypto::MasterKey::generate();
    let env = KeySource::Env(old.to_base64().to_string());
    let app = spawn_with(Options { key_source: Some(env), ..Options::default() }).await;
    let provider = MockProvider::start("client-1", "s").await;
    let alice = app.caller("alice", None).await;
    app.connect(&alice, "crm", &provider, "s").await;

    // The operator rotates with the new key first, but this server was not restarted with it.
    let new = latchkey_crypto::MasterKey::generate();
    let both = KeySource::Env(format!("{},{}", new.to_base64().as_str(), old.to_base64().as_str()));
    let (store, keyring) = latchkey_server::bootstrap::open(&app.database_url(), &both).await.expect("opens");
    let rotation =
        keys::rotate(store.as_ref(), &keyring, &both, ResealOptions::default(), &mut |_| {}).await.expect("rotates");
    assert!(!rotation.added && rotation.remaining == 0, "{rotation:?}");

    let (status, body) = app.token(&alice, "crm").await;
    assert_eq!(status, 500, "never a token opened with the wrong key: {body}");
    assert!(body.get("token").is_none(), "{body}");
    let (id, sealed) = stored(&app, &alice, "crm", "access_token").await;
    let err =
        latchkey_server::sealing::open(&app.state.keyring, &id, latchkey_server::sealing::Column::AccessToken, &sealed)
            .expect_err("the key is unknown here");
    let message = err.to_string();
    assert!(message.contains(&format!("sealed with master key {}", new.id())), "{message}");
    assert!(message.contains(&format!("connections.access_token, row {id}")), "{message}");
}
