//! Checks of [`SealedValueStore`]: every sealed column can be walked by key, counted by key, and replaced only
//! when unchanged. These are global by nature, so each value here carries a key id no other check uses.

use latchkey_core::Sealed;
use latchkey_core::model::{DeviceFlow, Status};
use latchkey_core::sealed_columns::{SEALED_COLUMNS, SealedColumn};
use latchkey_core::store::Store;
use latchkey_core::webhook::Webhook;

use super::{T0, connection_record, flow_record, new_connection, new_user, tokens};

/// A key id that only this module's values carry (the other checks' values start with bytes 1, 2, 3, 4).
const OLD_KEY: [u8; 4] = [0xc0, 0xff, 0xee, 0x01];
const NEW_KEY: [u8; 4] = [0xc0, 0xff, 0xee, 0x02];

/// A value shaped like a sealed one: format byte, key id, then `label`.
fn under(key: [u8; 4], label: &str) -> Sealed {
    let mut bytes = vec![1];
    bytes.extend_from_slice(&key);
    bytes.extend_from_slice(label.as_bytes());
    Sealed(bytes)
}

async fn count(store: &dyn Store, column: &SealedColumn, key: [u8; 4]) -> u64 {
    let counts = store.count_sealed_by_key(column).await.expect("count_sealed_by_key");
    counts.iter().find(|(id, _)| id.as_slice() == key).map_or(0, |(_, n)| *n)
}

/// Walks `column` for values not under `current`, one row per page, and returns the row ids seen.
async fn walk(store: &dyn Store, column: &SealedColumn, current: [u8; 4]) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    for _ in 0..10_000 {
        let page = store
            .sealed_values_not_under(column, &current, seen.last().map(String::as_str), 1)
            .await
            .expect("sealed_values_not_under");
        let Some(cell) = page.into_iter().next() else { return seen };
        if let Some(last) = seen.last() {
            assert!(cell.row_id > *last, "{column}: rows come in row id order");
        }
        seen.push(cell.row_id);
    }
    panic!("{column}: the walk does not end");
}

/// One row in every sealed column under an old key: each is walked, counted, and replaced only when it still
/// holds what was read; a replaced value is no longer walked; NULL values are never walked.
pub(super) async fn every_sealed_column_walks_counts_and_replaces_by_key(store: &dyn Store) {
    let user = new_user(store).await;
    let mut connection = connection_record(&user.id, "sealed-walk");
    connection.client_secret = Some(under(OLD_KEY, "client-secret"));
    connection.status = Status::Connected;
    connection.tokens = Some(latchkey_core::model::StoredTokens {
        access_token: under(OLD_KEY, "access"),
        refresh_token: Some(under(OLD_KEY, "refresh")),
        ..tokens("sealed-walk")
    });
    store.insert_connection(&connection).await.expect("insert_connection");
    let mut flow = flow_record(&connection.id, T0, T0.plus_secs(600));
    flow.pkce_verifier = Some(under(OLD_KEY, "verifier"));
    store.insert_flow(&flow).await.expect("insert_flow");
    store
        .put_device_flow(&DeviceFlow {
            connection_id: connection.id.clone(),
            device_code: under(OLD_KEY, "device-code"),
            user_code: "WALK-USER".to_owned(),
            verification_uri: "https://provider.example/device".to_owned(),
            verification_uri_complete: None,
            expires_at: T0.plus_secs(900),
            interval_secs: 5,
            next_poll_at: T0.plus_secs(1_000_000_000),
            created_at: T0,
        })
        .await
        .expect("put_device_flow");
    store
        .put_webhook(&Webhook {
            user_id: user.id.clone(),
            url: "https://hooks.example/latchkey".to_owned(),
            secret: under(OLD_KEY, "webhook-secret"),
            created_at: T0,
            updated_at: T0,
        })
        .await
        .expect("put_webhook");
    // A connection without tokens: its NULL token columns are never walked.
    let empty = new_connection(store, &user.id, "sealed-walk-empty").await;

    for column in SEALED_COLUMNS {
        let row_id = match column.table {
            "auth_flows" => flow.id.as_str().to_owned(),
            "webhooks" => user.id.as_str().to_owned(),
            _ => connection.id.as_str().to_owned(),
        };
        assert_eq!(count(store, column, OLD_KEY).await, 1, "{column}");
        let walked = walk(store, column, NEW_KEY).await;
        assert!(walked.contains(&row_id), "{column}: the old value is walked");
        if column.table == "connections" && column.column != "client_secret" {
            assert!(!walked.contains(&empty.id.as_str().to_owned()), "{column}: NULL is not walked");
        }
        let old_walk = walk(store, column, OLD_KEY).await;
        assert!(!old_walk.contains(&row_id), "{column}: a value under the given key is skipped");

        let page =
            store.sealed_values_not_under(column, &NEW_KEY, None, 100_000).await.expect("sealed_values_not_under");
        let read = page.into_iter().find(|cell| cell.row_id == row_id).expect("the row is read").sealed;
        assert_eq!(read.as_bytes()[..5], [&[1_u8][..], &OLD_KEY].concat()[..], "{column}");

        let fresh = under(NEW_KEY, "sealed again");
        let stale = under(OLD_KEY, "not what is stored");
        assert!(
            !store.replace_sealed_value(column, &row_id, &stale, &fresh).await.expect("replace"),
            "{column}: a value that changed since it was read is left alone"
        );
        assert!(store.replace_sealed_value(column, &row_id, &read, &fresh).await.expect("replace"), "{column}");
        assert!(
            !store.replace_sealed_value(column, &row_id, &read, &fresh).await.expect("replace"),
            "{column}: replacing twice from the same read does nothing"
        );
        assert_eq!(count(store, column, OLD_KEY).await, 0, "{column}");
        assert_eq!(count(store, column, NEW_KEY).await, 1, "{column}");
        assert!(!walk(store, column, NEW_KEY).await.contains(&row_id), "{column}: done values are not walked");
    }

    let stored = store.connection_by_id(&connection.id).await.expect("read").expect("exists");
    assert_eq!(stored.client_secret, Some(under(NEW_KEY, "sealed again")));
    let stored_tokens = stored.tokens.expect("tokens");
    assert_eq!(stored_tokens.access_token, under(NEW_KEY, "sealed again"));
    assert_eq!(stored.token_version, connection.token_version, "re-sealing is not a token change");
    // The webhook goes first, so deleting the connections queues no events.
    assert!(store.delete_webhook(&user.id).await.expect("delete_webhook"));
    assert!(store.delete_connection(&connection.id).await.expect("delete"));
    assert!(store.delete_connection(&empty.id).await.expect("delete"));
}
