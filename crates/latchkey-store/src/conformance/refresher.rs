//! The refresher's batch claim and its stop after repeated permanent failures.
//!
//! Like `connections_due`, the claim is global: these checks use times far before `T0`, where no other check's
//! connection is due, and delete what they create.

use std::collections::HashSet;

use latchkey_core::Timestamp;
use latchkey_core::model::{Connection, ConnectionId, Status};
use latchkey_core::store::Store;

use super::{connection_record, new_user, tokens};

/// Stores a connected connection with tokens whose refresh time is `refresh_at`.
async fn due_connection(
    store: &dyn Store,
    user: &latchkey_core::model::UserId,
    label: &str,
    refresh_at: i64,
) -> Connection {
    let mut connection = connection_record(user, label);
    connection.tokens = Some(tokens(label));
    connection.status = Status::Connected;
    connection.refresh_at = Some(Timestamp(refresh_at));
    store.insert_connection(&connection).await.expect("insert_connection");
    connection
}

fn ids(list: &[&Connection]) -> Vec<ConnectionId> {
    list.iter().map(|c| c.id.clone()).collect()
}

/// A claim takes the due connections, most urgent first, and leases them: another owner's claim does not get
/// them again until the lease ends, and `connections_due` no longer lists them.
pub(super) async fn claim_due_refreshes_leases_what_it_returns(store: &dyn Store) {
    let user = new_user(store).await;
    let first = due_connection(store, &user.id, "claim-first", 10).await;
    let second = due_connection(store, &user.id, "claim-second", 20).await;
    let third = due_connection(store, &user.id, "claim-third", 30).await;
    let later = due_connection(store, &user.id, "claim-later", 5000).await;
    let now = Timestamp(1000);
    let until = Timestamp(1060);

    let claimed = store.claim_due_refreshes("a", now, until, 2).await.expect("claim_due_refreshes");
    assert_eq!(claimed, ids(&[&first, &second]), "most urgent first, at most the limit");
    let rest = store.claim_due_refreshes("b", now, until, 10).await.expect("claim_due_refreshes");
    assert_eq!(rest, ids(&[&third]), "what another owner holds is not claimed again");
    assert!(store.claim_due_refreshes("c", now, until, 10).await.expect("claim").is_empty());
    assert!(store.connections_due(now, 10).await.expect("connections_due").is_empty(), "claimed means leased");

    // The lease is the ordinary refresh lease: its holder may renew it, others may not take it.
    assert!(store.claim_refresh(&first.id, "a", now, until).await.expect("claim_refresh"));
    assert!(!store.claim_refresh(&first.id, "c", now, until).await.expect("claim_refresh"));

    // When the leases end (a replica died), the connections are claimable again.
    let after = Timestamp(1060);
    let again = store.claim_due_refreshes("c", after, Timestamp(1120), 10).await.expect("claim_due_refreshes");
    assert_eq!(again, ids(&[&first, &second, &third]));

    for connection in [&first, &second, &third, &later] {
        store.delete_connection(&connection.id).await.expect("delete_connection");
    }
}

/// Claimants racing for the same due connections get disjoint sets, and together they get them all.
pub(super) async fn concurrent_batch_claims_are_disjoint(store: &dyn Store) {
    let user = new_user(store).await;
    let mut all = Vec::new();
    for n in 0..24 {
        all.push(due_connection(store, &user.id, &format!("batch-{n}"), 100 + n).await);
    }
    let now = Timestamp(1000);
    let until = Timestamp(1060);
    let claim = |owner: &'static str| store.claim_due_refreshes(owner, now, until, 8);
    let (a, b, c, d) = tokio::join!(claim("a"), claim("b"), claim("c"), claim("d"));
    let mut seen = HashSet::new();
    for claimed in [a, b, c, d] {
        for id in claimed.expect("claim_due_refreshes") {
            assert!(seen.insert(id), "a connection was claimed twice");
        }
    }
    for id in store.claim_due_refreshes("e", now, until, 100).await.expect("claim_due_refreshes") {
        assert!(seen.insert(id), "a connection was claimed twice");
    }
    assert_eq!(seen.len(), all.len(), "every due connection was claimed once");
    for connection in &all {
        store.delete_connection(&connection.id).await.expect("delete_connection");
    }
}

/// A connection taken off the schedule is neither due nor claimed; saving new tokens schedules it again.
pub(super) async fn stopped_connections_are_not_claimed(store: &dyn Store) {
    let user = new_user(store).await;
    let stopped = due_connection(store, &user.id, "stopped", 10).await;
    store.stop_refreshing(&stopped.id).await.expect("stop_refreshing");
    let now = Timestamp(1000);
    assert!(store.connections_due(now, 10).await.expect("connections_due").is_empty());
    assert!(store.claim_due_refreshes("a", now, Timestamp(1060), 10).await.expect("claim").is_empty());
    let read = store.connection_by_id(&stopped.id).await.expect("read").expect("exists");
    assert_eq!(read.refresh_at, None);
    assert_eq!(read.tokens, stopped.tokens, "the tokens stay");

    let write = latchkey_core::model::TokenWrite {
        tokens: tokens("restarted"),
        refresh_at: Some(Timestamp(20)),
        now: Timestamp(900),
        expected_version: None,
    };
    assert!(store.save_tokens(&stopped.id, &write).await.expect("save_tokens"));
    assert_eq!(store.connections_due(now, 10).await.expect("connections_due"), ids(&[&stopped]));
    store.delete_connection(&stopped.id).await.expect("delete_connection");
}

/// Users take turns in a claim: one user's backlog does not keep another user's due connection out of it.
pub(super) async fn users_take_turns_in_a_claim(store: &dyn Store) {
    let busy = new_user(store).await;
    let other = new_user(store).await;
    let mut busy_ones = Vec::new();
    for n in 0..3 {
        busy_ones.push(due_connection(store, &busy.id, &format!("turns-busy-{n}"), 10 + n).await);
    }
    let late = due_connection(store, &other.id, "turns-other", 40).await;
    let (now, until) = (Timestamp(1000), Timestamp(1060));

    let claimed = store.claim_due_refreshes("a", now, until, 2).await.expect("claim_due_refreshes");
    assert_eq!(claimed, ids(&[&busy_ones[0], &late]), "each user's most urgent, most urgent first");
    let rest = store.claim_due_refreshes("b", now, until, 10).await.expect("claim_due_refreshes");
    assert_eq!(rest, ids(&[&busy_ones[1], &busy_ones[2]]));

    for connection in busy_ones.iter().chain([&late]) {
        store.delete_connection(&connection.id).await.expect("delete_connection");
    }
}
