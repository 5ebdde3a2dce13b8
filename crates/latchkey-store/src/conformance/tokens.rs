//! Token writes, failures, the refresh lease and the refresher's work list.

use latchkey_core::model::{Connection, ConnectionConfig, ConnectionId, FailureWrite, Status, TokenWrite};
use latchkey_core::settings::GrantType;
use latchkey_core::store::Store;
use latchkey_core::{Error, Timestamp};

use super::{T0, connection_record, new_connection, new_user, tokens};

/// A token write at `now` for whatever version is current.
fn write(label: &str, now: Timestamp, expected_version: Option<i64>) -> TokenWrite {
    let mut written = tokens(label);
    written.obtained_at = now;
    written.expires_at = Some(now.plus_secs(3600));
    TokenWrite { tokens: written, refresh_at: Some(now.plus_secs(3000)), now, expected_version }
}

async fn read(store: &dyn Store, id: &ConnectionId) -> Connection {
    store.connection_by_id(id).await.expect("connection_by_id").expect("the connection exists")
}

/// Saving tokens stores them, makes the connection `connected` with no error and no backoff, sets the refresh
/// times, bumps `token_version` and releases the refresh lease.
pub(super) async fn save_tokens_bumps_the_version_and_resets_the_state(store: &dyn Store) {
    let user = new_user(store).await;
    let mut connection = connection_record(&user.id, "saved");
    connection.status = Status::Error;
    connection.last_error = Some("the provider answered 500".to_owned());
    connection.failure_count = 3;
    connection.retry_after = Some(T0.plus_secs(900));
    store.insert_connection(&connection).await.expect("insert_connection");
    let now = T0.plus_secs(100);
    assert!(store.claim_refresh(&connection.id, "worker-a", now, now.plus_secs(60)).await.expect("claim_refresh"));

    let first = write("first", now, None);
    assert!(store.save_tokens(&connection.id, &first).await.expect("save_tokens"), "an unconditional write");
    let mut expected = connection.clone();
    expected.tokens = Some(first.tokens.clone());
    expected.status = Status::Connected;
    expected.last_error = None;
    expected.failure_count = 0;
    expected.retry_after = None;
    expected.refresh_at = first.refresh_at;
    expected.last_refreshed_at = Some(now);
    expected.updated_at = now;
    expected.token_version = 1;
    assert_eq!(read(store, &connection.id).await, expected);
    assert!(
        store.claim_refresh(&connection.id, "worker-b", now, now.plus_secs(60)).await.expect("claim_refresh"),
        "saving tokens releases the lease"
    );

    let later = now.plus_secs(3000);
    let second = write("second", later, Some(1));
    assert!(store.save_tokens(&connection.id, &second).await.expect("save_tokens"), "the current version");
    expected.tokens = Some(second.tokens.clone());
    expected.refresh_at = second.refresh_at;
    expected.last_refreshed_at = Some(later);
    expected.updated_at = later;
    expected.token_version = 2;
    assert_eq!(read(store, &connection.id).await, expected);

    assert!(
        !store.save_tokens(&ConnectionId::random(), &write("nowhere", now, None)).await.expect("save_tokens"),
        "saving tokens of an unknown connection changes nothing"
    );
}

/// A write that expects a version that is no longer current returns false and changes nothing.
pub(super) async fn save_tokens_with_a_stale_version_writes_nothing(store: &dyn Store) {
    let user = new_user(store).await;
    let connection = new_connection(store, &user.id, "stale").await;
    let now = T0.plus_secs(10);
    assert!(store.save_tokens(&connection.id, &write("current", now, Some(0))).await.expect("save_tokens"));
    let before = read(store, &connection.id).await;
    assert_eq!(before.token_version, 1);

    for stale in [0, 2] {
        let late = write("late", now.plus_secs(5), Some(stale));
        assert!(!store.save_tokens(&connection.id, &late).await.expect("save_tokens"), "expected version {stale}");
    }
    assert_eq!(read(store, &connection.id).await, before, "a refused write changes nothing");
}

/// A write without a refresh token stores none (the caller passes the old one to keep it).
pub(super) async fn save_tokens_without_refresh_token_stores_none(store: &dyn Store) {
    let user = new_user(store).await;
    let connection = new_connection(store, &user.id, "no-refresh").await;
    assert!(store.save_tokens(&connection.id, &write("with", T0, None)).await.expect("save_tokens"));

    let mut without = write("without", T0.plus_secs(1), None);
    without.tokens.refresh_token = None;
    without.refresh_at = None;
    assert!(store.save_tokens(&connection.id, &without).await.expect("save_tokens"));
    let stored = read(store, &connection.id).await;
    assert_eq!(stored.tokens, Some(without.tokens));
    assert_eq!(stored.refresh_at, None);
    assert_eq!(stored.token_version, 2);
}

/// A failure sets status, message, count, backoff and `updated_at`, releases the lease, and keeps the tokens
/// and their version. An unknown id is `NotFound`.
pub(super) async fn record_failure_keeps_tokens_and_releases_the_lease(store: &dyn Store) {
    let user = new_user(store).await;
    let connection = new_connection(store, &user.id, "failing").await;
    assert!(store.save_tokens(&connection.id, &write("kept", T0, None)).await.expect("save_tokens"));
    let saved = read(store, &connection.id).await;
    let now = T0.plus_secs(3000);
    assert!(store.claim_refresh(&connection.id, "worker-a", now, now.plus_secs(60)).await.expect("claim_refresh"));

    let failure = FailureWrite {
        status: Status::Error,
        last_error: "the provider at the token URL answered 503: it will be retried".to_owned(),
        failure_count: 1,
        retry_after: Some(now.plus_secs(30)),
        now,
    };
    store.record_failure(&connection.id, &failure).await.expect("record_failure");
    let mut expected = saved.clone();
    expected.status = Status::Error;
    expected.last_error = Some(failure.last_error.clone());
    expected.failure_count = 1;
    expected.retry_after = failure.retry_after;
    expected.updated_at = now;
    assert_eq!(read(store, &connection.id).await, expected);
    assert!(
        store.claim_refresh(&connection.id, "worker-b", now, now.plus_secs(60)).await.expect("claim_refresh"),
        "recording a failure releases the lease"
    );

    match store.record_failure(&ConnectionId::random(), &failure).await {
        Err(Error::NotFound(_)) => {}
        other => panic!("recording a failure of an unknown connection must be NotFound, got {other:?}"),
    }
}

/// A lease blocks other owners until it expires; its owner may claim again; only the owner releases it.
pub(super) async fn refresh_lease_excludes_others_until_it_expires(store: &dyn Store) {
    let user = new_user(store).await;
    let connection = new_connection(store, &user.id, "leased").await;
    let id = &connection.id;
    let now = T0;

    assert!(store.claim_refresh(id, "a", now, now.plus_secs(60)).await.expect("claim_refresh"));
    assert!(!store.claim_refresh(id, "b", now.plus_secs(59), now.plus_secs(120)).await.expect("claim_refresh"));
    assert!(
        store.claim_refresh(id, "a", now.plus_secs(30), now.plus_secs(90)).await.expect("claim_refresh"),
        "the owner may claim again, extending its lease"
    );
    assert!(!store.claim_refresh(id, "b", now.plus_secs(60), now.plus_secs(120)).await.expect("claim_refresh"));

    store.release_refresh(id, "b").await.expect("release_refresh");
    assert!(
        !store.claim_refresh(id, "b", now.plus_secs(61), now.plus_secs(120)).await.expect("claim_refresh"),
        "a release by someone else does nothing"
    );
    assert!(
        store.claim_refresh(id, "b", now.plus_secs(90), now.plus_secs(150)).await.expect("claim_refresh"),
        "an expired lease can be taken over"
    );
    store.release_refresh(id, "a").await.expect("release_refresh");
    assert!(!store.claim_refresh(id, "a", now.plus_secs(91), now.plus_secs(150)).await.expect("claim_refresh"));

    store.release_refresh(id, "b").await.expect("release_refresh");
    assert!(
        store.claim_refresh(id, "a", now.plus_secs(92), now.plus_secs(150)).await.expect("claim_refresh"),
        "a released lease is free at once"
    );
    assert!(!store.claim_refresh(&ConnectionId::random(), "a", now, now).await.expect("claim_refresh"));
    store.release_refresh(&ConnectionId::random(), "a").await.expect("releasing an unknown connection is fine");
}

/// `connections_due` lists the connections whose refresh time has come, that hold a refresh token (or use the
/// `client_credentials` grant, which renews without one, whether so created or edited), are `connected` or `error`, are not backing off and not leased; earliest `refresh_at` first, at most `limit`.
pub(super) async fn connections_due_filters_and_orders(store: &dyn Store) {
    // Times far before T0, so that no other check's connection is due.
    let user = new_user(store).await;
    let mut all = Vec::new();
    let mut add = |label: &str, status: Status, refresh_at: Option<i64>, with_refresh_token: bool| {
        let mut connection = connection_record(&user.id, label);
        let mut stored = tokens(label);
        if !with_refresh_token {
            stored.refresh_token = None;
        }
        connection.tokens = Some(stored);
        connection.status = status;
        connection.refresh_at = refresh_at.map(Timestamp);
        all.push(connection.clone());
        connection
    };
    let mut first = add("first", Status::Error, Some(100), true);
    first.failure_count = 2;
    first.retry_after = Some(Timestamp(900));
    let second = add("second", Status::Connected, Some(200), true);
    let third = add("third", Status::Connected, Some(300), true);
    let lease_expired = add("lease-expired", Status::Connected, Some(400), true);
    let no_refresh_token = add("no-refresh-token", Status::Connected, Some(50), false);
    let mut client_credentials = add("client-credentials", Status::Connected, Some(250), false);
    client_credentials.settings.grant_type = GrantType::ClientCredentials;
    let edited_to_client_credentials = add("edited-to-cc", Status::Connected, Some(260), false);
    let pending = add("pending", Status::Pending, Some(50), true);
    let needs_reauth = add("needs-reauth", Status::NeedsReauth, Some(50), true);
    let mut backing_off = add("backing-off", Status::Error, Some(60), true);
    backing_off.retry_after = Some(Timestamp(5000));
    let leased = add("leased", Status::Connected, Some(70), true);
    let not_yet = add("not-yet", Status::Connected, Some(2000), true);
    let unscheduled = add("unscheduled", Status::Connected, None, true);
    for connection in [
        &first,
        &second,
        &third,
        &lease_expired,
        &no_refresh_token,
        &client_credentials,
        &edited_to_client_credentials,
        &pending,
        &needs_reauth,
        &backing_off,
        &leased,
        &not_yet,
        &unscheduled,
    ] {
        store.insert_connection(connection).await.expect("insert_connection");
    }
    assert!(store.claim_refresh(&leased.id, "busy", Timestamp(0), Timestamp(5000)).await.expect("claim_refresh"));
    let mut settings = edited_to_client_credentials.settings.clone();
    settings.grant_type = GrantType::ClientCredentials;
    let config = ConnectionConfig {
        name: edited_to_client_credentials.name.clone(),
        provider: edited_to_client_credentials.provider.clone(),
        settings,
        client_secret: None,
    };
    store.update_connection_config(&edited_to_client_credentials.id, &config, Timestamp(1)).await.expect("update");
    assert!(store.claim_refresh(&lease_expired.id, "gone", Timestamp(0), Timestamp(400)).await.expect("claim"));

    let now = Timestamp(1000);
    let ids = |list: &[&Connection]| list.iter().map(|c| c.id.clone()).collect::<Vec<_>>();
    assert_eq!(
        store.connections_due(now, 100).await.expect("connections_due"),
        ids(&[&first, &second, &client_credentials, &edited_to_client_credentials, &third, &lease_expired])
    );
    assert_eq!(store.connections_due(now, 2).await.expect("connections_due"), ids(&[&first, &second]));
    assert_eq!(
        store.connections_due(Timestamp(5000), 100).await.expect("connections_due"),
        ids(&[
            &backing_off,
            &leased,
            &first,
            &second,
            &client_credentials,
            &edited_to_client_credentials,
            &third,
            &lease_expired,
            &not_yet
        ]),
        "backoff and lease end at their time"
    );
    assert_eq!(store.connections_due(Timestamp(99), 100).await.expect("connections_due"), Vec::new());

    for connection in &all {
        store.delete_connection(&connection.id).await.expect("delete_connection");
    }
}

/// Of several refreshers claiming the same connection at once, exactly one gets the lease.
pub(super) async fn concurrent_claims_have_one_winner(store: &dyn Store) {
    let user = new_user(store).await;
    let connection = new_connection(store, &user.id, "contended").await;
    let claim = |owner: &'static str| store.claim_refresh(&connection.id, owner, T0, T0.plus_secs(60));
    let (a, b, c, d) = tokio::join!(claim("a"), claim("b"), claim("c"), claim("d"));
    let won = [a, b, c, d].into_iter().map(|r| r.expect("claim_refresh")).filter(|&won| won).count();
    assert_eq!(won, 1, "exactly one concurrent claim wins");
}

/// Of several refreshes saving over the same version at once, exactly one is stored.
pub(super) async fn concurrent_saves_of_one_version_have_one_winner(store: &dyn Store) {
    let user = new_user(store).await;
    let connection = new_connection(store, &user.id, "raced").await;
    let writes = ["w0", "w1", "w2", "w3"].map(|label| write(label, T0, Some(0)));
    let save = |i: usize| store.save_tokens(&connection.id, &writes[i]);
    let (a, b, c, d) = tokio::join!(save(0), save(1), save(2), save(3));
    let results = [a, b, c, d].map(|r| r.expect("save_tokens"));
    assert_eq!(results.iter().filter(|&&saved| saved).count(), 1, "exactly one concurrent save wins");

    let winner = results.iter().position(|&saved| saved).expect("one winner");
    let stored = read(store, &connection.id).await;
    assert_eq!(stored.token_version, 1);
    assert_eq!(stored.tokens, Some(writes[winner].tokens.clone()), "the winner's tokens are stored");
}
