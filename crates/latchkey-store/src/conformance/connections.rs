//! Connections: records, handles, the token hot path, edits and deletion.

use latchkey_core::model::{ConnectionConfig, ConnectionId, ConnectionSummary, FlowStart, Status, TokenWrite};
use latchkey_core::store::Store;
use latchkey_core::{Error, Sealed};

use super::{
    T0, api_key_record, connection_record, digest, flow_record, handle, new_connection, new_user, sealed, settings,
    tokens,
};

/// A connection reads back exactly as written, by handle and by id, with and without tokens; sealed bytes come
/// back unchanged.
pub(super) async fn connections_round_trip(store: &dyn Store) {
    let user = new_user(store).await;

    let pending = new_connection(store, &user.id, "pending").await;
    assert_eq!(store.connection(&user.id, &pending.handle).await.expect("connection"), Some(pending.clone()));
    assert_eq!(store.connection_by_id(&pending.id).await.expect("connection_by_id"), Some(pending.clone()));

    let mut full = connection_record(&user.id, "full");
    full.client_secret = None;
    full.status = Status::Error;
    full.last_error = Some("the provider answered 503: try again later".to_owned());
    full.tokens = Some(tokens("full"));
    full.token_version = 7;
    full.failure_count = 2;
    full.retry_after = Some(T0.plus_secs(120));
    full.refresh_at = Some(T0.plus_secs(3000));
    full.last_refreshed_at = Some(T0.plus_secs(-600));
    full.updated_at = T0.plus_secs(1);
    store.insert_connection(&full).await.expect("insert_connection");
    let read = store.connection_by_id(&full.id).await.expect("connection_by_id");
    assert_eq!(read, Some(full.clone()));

    let stored = read.and_then(|c| c.tokens).expect("tokens are stored");
    let expected: Vec<u8> = (0..=255).chain(*b"full-access").collect();
    assert_eq!(stored.access_token, Sealed(expected), "sealed bytes round-trip unchanged");

    let mut sparse = connection_record(&user.id, "sparse");
    let mut minimal = tokens("sparse");
    minimal.refresh_token = None;
    minimal.expires_at = None;
    minimal.scope = None;
    sparse.tokens = Some(minimal);
    sparse.status = Status::Connected;
    store.insert_connection(&sparse).await.expect("insert_connection");
    assert_eq!(store.connection(&user.id, &sparse.handle).await.expect("connection"), Some(sparse));

    assert_eq!(store.connection(&user.id, &handle("absent")).await.expect("connection"), None);
    assert_eq!(store.connection_by_id(&ConnectionId::random()).await.expect("connection_by_id"), None);
}

/// The same handle twice for one user is `Conflict { code: "handle_taken" }`; another user may use it.
pub(super) async fn handles_are_unique_per_user(store: &dyn Store) {
    let user = new_user(store).await;
    let other = new_user(store).await;
    let first = new_connection(store, &user.id, "crm").await;

    let twin = connection_record(&user.id, "crm");
    match store.insert_connection(&twin).await {
        Err(Error::Conflict { code, .. }) => assert_eq!(code, "handle_taken"),
        result => panic!("a taken handle must be Conflict {{ code: \"handle_taken\" }}, got {result:?}"),
    }
    assert_eq!(store.connection_by_id(&twin.id).await.expect("connection_by_id"), None);
    assert_eq!(store.connection(&user.id, &first.handle).await.expect("connection"), Some(first));

    let theirs = new_connection(store, &other.id, "crm").await;
    assert_eq!(store.connection(&other.id, &theirs.handle).await.expect("connection"), Some(theirs));
}

/// `list_connections` returns the user's connections only, ordered by handle.
pub(super) async fn connections_are_listed_by_handle(store: &dyn Store) {
    let user = new_user(store).await;
    let other = new_user(store).await;
    assert_eq!(store.list_connections(&user.id).await.expect("list_connections"), Vec::new());

    let zeta = new_connection(store, &user.id, "zeta").await;
    let alpha = new_connection(store, &user.id, "alpha").await;
    new_connection(store, &other.id, "beta").await;
    let middle = new_connection(store, &user.id, "m-9").await;
    let mut tokened = connection_record(&user.id, "t-1");
    tokened.tokens = Some(tokens("listed"));
    tokened.status = Status::NeedsReauth;
    tokened.last_error = Some("the provider refused the refresh token".into());
    tokened.last_refreshed_at = Some(T0);
    // The list needs the grant (no consent window for a device code): the summary must carry it.
    tokened.settings.grant_type = latchkey_core::settings::GrantType::DeviceCode;
    store.insert_connection(&tokened).await.expect("insert_connection");

    let listed = store.list_connections(&user.id).await.expect("list_connections");
    assert_eq!(listed, vec![alpha, middle, tokened, zeta]);
    // The summaries say what the whole records say, in the same order.
    let summaries = store.list_connection_summaries(&user.id).await.expect("list_connection_summaries");
    assert_eq!(summaries, listed.iter().map(ConnectionSummary::of).collect::<Vec<_>>());
}

/// `key_and_connection`: no key gives `None`; a key without such a connection of its user gives `(key, None)`;
/// otherwise `(key, connection)`. Revoked keys are returned as they are, for the caller to refuse.
pub(super) async fn key_and_connection_has_three_outcomes(store: &dyn Store) {
    let user = new_user(store).await;
    let other = new_user(store).await;
    let key = api_key_record(&user.id, T0);
    store.insert_api_key(&key).await.expect("insert_api_key");
    let mut crm = connection_record(&user.id, "crm");
    crm.tokens = Some(tokens("hot-path"));
    crm.status = Status::Connected;
    store.insert_connection(&crm).await.expect("insert_connection");
    new_connection(store, &other.id, "crm").await;
    new_connection(store, &other.id, "billing").await;

    assert_eq!(store.key_and_connection(&digest(), &crm.handle).await.expect("key_and_connection"), None);
    assert_eq!(
        store.key_and_connection(&key.key_hash, &handle("billing")).await.expect("key_and_connection"),
        Some((key.clone(), None)),
        "another user's connection is not the key's"
    );
    assert_eq!(
        store.key_and_connection(&key.key_hash, &crm.handle).await.expect("key_and_connection"),
        Some((key.clone(), Some(crm.clone()))),
        "the key's own user's connection, not the other user's with the same handle"
    );

    store.revoke_api_key(&user.id, &key.id, T0.plus_secs(5)).await.expect("revoke_api_key");
    let (revoked, found) = store
        .key_and_connection(&key.key_hash, &crm.handle)
        .await
        .expect("key_and_connection")
        .expect("a revoked key is still returned");
    assert_eq!(revoked.revoked_at, Some(T0.plus_secs(5)));
    assert_eq!(found, Some(crm));
}

/// A config edit replaces name, provider and settings; a `None` client secret keeps the stored one, `Some`
/// replaces it; tokens stay. An unknown id is `NotFound`.
pub(super) async fn config_update_keeps_or_replaces_the_client_secret(store: &dyn Store) {
    let user = new_user(store).await;
    let mut connection = connection_record(&user.id, "edited");
    connection.tokens = Some(tokens("edited"));
    connection.status = Status::Connected;
    store.insert_connection(&connection).await.expect("insert_connection");
    let original_secret = connection.client_secret.clone();

    let mut new_settings = settings();
    new_settings.scopes = "read".to_owned();
    new_settings.redirect_uri = None;
    let mut config = ConnectionConfig {
        name: "Renamed".to_owned(),
        provider: "github".to_owned(),
        settings: new_settings,
        client_secret: None,
    };
    store.update_connection_config(&connection.id, &config, T0.plus_secs(10)).await.expect("update_connection_config");
    let mut expected = connection.clone();
    expected.name = config.name.clone();
    expected.provider = config.provider.clone();
    expected.settings = config.settings.clone();
    expected.client_secret = original_secret;
    expected.updated_at = T0.plus_secs(10);
    assert_eq!(store.connection_by_id(&connection.id).await.expect("connection_by_id"), Some(expected.clone()));

    let replacement = Sealed(vec![9, 8, 7, 0, 255]);
    config.client_secret = Some(replacement.clone());
    store.update_connection_config(&connection.id, &config, T0.plus_secs(20)).await.expect("update_connection_config");
    expected.client_secret = Some(replacement);
    expected.updated_at = T0.plus_secs(20);
    assert_eq!(store.connection_by_id(&connection.id).await.expect("connection_by_id"), Some(expected));

    match store.update_connection_config(&ConnectionId::random(), &config, T0).await {
        Err(Error::NotFound(_)) => {}
        other => panic!("editing an unknown connection must be NotFound, got {other:?}"),
    }
}

/// `set_status` sets status, message and `updated_at`, and nothing else. An unknown id is `NotFound`.
pub(super) async fn set_status_leaves_tokens_alone(store: &dyn Store) {
    let user = new_user(store).await;
    let mut connection = connection_record(&user.id, "status");
    connection.tokens = Some(tokens("status"));
    connection.status = Status::Connected;
    connection.token_version = 3;
    store.insert_connection(&connection).await.expect("insert_connection");

    let message = "the provider refused the refresh token: reconnect";
    store.set_status(&connection.id, Status::NeedsReauth, Some(message), T0.plus_secs(30)).await.expect("set_status");
    let mut expected = connection.clone();
    expected.status = Status::NeedsReauth;
    expected.last_error = Some(message.to_owned());
    expected.updated_at = T0.plus_secs(30);
    assert_eq!(store.connection_by_id(&connection.id).await.expect("connection_by_id"), Some(expected.clone()));

    store.set_status(&connection.id, Status::Pending, None, T0.plus_secs(40)).await.expect("set_status");
    expected.status = Status::Pending;
    expected.last_error = None;
    expected.updated_at = T0.plus_secs(40);
    assert_eq!(store.connection_by_id(&connection.id).await.expect("connection_by_id"), Some(expected));

    match store.set_status(&ConnectionId::random(), Status::Error, None, T0).await {
        Err(Error::NotFound(_)) => {}
        other => panic!("setting the status of an unknown connection must be NotFound, got {other:?}"),
    }
}

/// `reset_connection` replaces the config and the client secret (`None` removes it) and discards, in one
/// write, the tokens, kept values, schedule, backoff and lease (version + 1, so a refresh that read the old
/// version cannot store its result), and the connection's flows and device flow; status `pending` with the
/// message. Other connections keep theirs.
pub(super) async fn reset_discards_everything_obtained_under_the_old_route(store: &dyn Store) {
    let user = new_user(store).await;
    let mut connection = connection_record(&user.id, "moved");
    let mut stored = tokens("moved");
    stored.extra = std::collections::BTreeMap::from([("instance_url".to_owned(), "https://old".to_owned())]);
    connection.tokens = Some(stored.clone());
    connection.status = Status::Error;
    connection.token_version = 4;
    connection.failure_count = 2;
    connection.retry_after = Some(T0.plus_secs(500));
    connection.refresh_at = Some(T0.plus_secs(100));
    store.insert_connection(&connection).await.expect("insert_connection");
    let other = new_connection(store, &user.id, "untouched").await;
    let mut flows = Vec::new();
    for c in [&connection, &other] {
        let flow = flow_record(&c.id, T0, T0.plus_secs(600));
        store.insert_flow(&flow).await.expect("insert_flow");
        let start = FlowStart { state_hash: digest(), browser_hash: digest(), pkce_verifier: None, now: T0 };
        store.start_flow(&flow.link_hash, &start).await.expect("start_flow").expect("the flow starts");
        flows.push(start.state_hash);
        store.put_device_flow(&super::device_flows::device_record(&c.id, "d", T0)).await.expect("put_device_flow");
    }
    assert!(store.claim_refresh(&connection.id, "replica-a", T0, T0.plus_secs(60)).await.expect("claim_refresh"));

    let mut new_settings = settings();
    new_settings.token_url = "https://elsewhere.example/token".to_owned();
    let config = ConnectionConfig {
        name: "Moved".to_owned(),
        provider: "custom".to_owned(),
        settings: new_settings,
        client_secret: Some(sealed("new-secret")),
    };
    let message = "the token URL changed: authorize again";
    store.reset_connection(&connection.id, &config, message, T0.plus_secs(10)).await.expect("reset_connection");
    let mut expected = connection.clone();
    expected.name = config.name.clone();
    expected.provider = config.provider.clone();
    expected.settings = config.settings.clone();
    expected.client_secret = config.client_secret.clone();
    expected.status = Status::Pending;
    expected.last_error = Some(message.to_owned());
    expected.tokens = None;
    expected.token_version = 5;
    expected.failure_count = 0;
    expected.retry_after = None;
    expected.refresh_at = None;
    expected.updated_at = T0.plus_secs(10);
    assert_eq!(store.connection_by_id(&connection.id).await.expect("connection_by_id"), Some(expected.clone()));
    assert_eq!(store.flow_by_state(&flows[0]).await.expect("flow_by_state"), None, "its flows are gone");
    assert_eq!(store.device_flow(&connection.id).await.expect("device_flow"), None, "its device flow is gone");
    assert!(store.flow_by_state(&flows[1]).await.expect("flow_by_state").is_some(), "other flows stay");
    assert!(store.device_flow(&other.id).await.expect("device_flow").is_some(), "other device flows stay");
    assert_eq!(store.connection_by_id(&other.id).await.expect("connection_by_id"), Some(other));
    assert!(
        store.claim_refresh(&connection.id, "replica-b", T0.plus_secs(11), T0.plus_secs(60)).await.expect("claim"),
        "the old lease is released"
    );
    let late = TokenWrite { tokens: stored, refresh_at: None, expected_version: Some(4), now: T0.plus_secs(12) };
    assert!(
        !store.save_tokens(&connection.id, &late).await.expect("save_tokens"),
        "a refresh begun before cannot land"
    );

    let public = ConnectionConfig { client_secret: None, ..config };
    store.reset_connection(&connection.id, &public, message, T0.plus_secs(20)).await.expect("reset_connection");
    let read = store.connection_by_id(&connection.id).await.expect("connection_by_id").expect("exists");
    assert_eq!(read.client_secret, None, "None removes the stored secret");
    match store.reset_connection(&ConnectionId::random(), &public, message, T0).await {
        Err(Error::NotFound(_)) => {}
        other => panic!("resetting an unknown connection must be NotFound, got {other:?}"),
    }
}

/// Deleting a connection deletes its flows, leaves the user's other connections, and reports whether it existed.
pub(super) async fn deleting_a_connection_deletes_its_flows(store: &dyn Store) {
    let user = new_user(store).await;
    let doomed = new_connection(store, &user.id, "doomed").await;
    let kept = new_connection(store, &user.id, "kept").await;

    let mut flows = Vec::new();
    for connection in [&doomed, &kept] {
        let flow = flow_record(&connection.id, T0, T0.plus_secs(600));
        store.insert_flow(&flow).await.expect("insert_flow");
        let start = FlowStart { state_hash: digest(), browser_hash: digest(), pkce_verifier: None, now: T0 };
        store.start_flow(&flow.link_hash, &start).await.expect("start_flow").expect("the flow starts");
        flows.push(start.state_hash);
    }

    assert!(store.delete_connection(&doomed.id).await.expect("delete_connection"));
    assert_eq!(store.connection_by_id(&doomed.id).await.expect("connection_by_id"), None);
    assert_eq!(store.flow_by_state(&flows[0]).await.expect("flow_by_state"), None, "its flows go with it");
    assert!(store.flow_by_state(&flows[1]).await.expect("flow_by_state").is_some(), "other flows stay");
    assert_eq!(store.list_connections(&user.id).await.expect("list_connections"), vec![kept.clone()]);

    assert!(!store.delete_connection(&doomed.id).await.expect("delete_connection"), "already gone");
    assert!(store.delete_connection(&kept.id).await.expect("delete_connection"));
}
