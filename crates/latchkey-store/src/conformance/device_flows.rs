//! Device authorizations in progress (RFC 8628): one per connection, polled on schedule, gone with their
//! connection.

use latchkey_core::Timestamp;
use latchkey_core::model::{ConnectionId, DeviceFlow};
use latchkey_core::store::Store;

use super::{T0, new_connection, new_user, sealed};

/// A device flow of `connection` whose next poll is at `next_poll_at`, not yet stored.
pub(super) fn device_record(connection: &ConnectionId, label: &str, next_poll_at: Timestamp) -> DeviceFlow {
    DeviceFlow {
        connection_id: connection.clone(),
        device_code: sealed(&format!("{label}-device-code")),
        user_code: format!("{label}-USER"),
        verification_uri: "https://provider.example/device".to_owned(),
        verification_uri_complete: Some(format!("https://provider.example/device?user_code={label}")),
        expires_at: T0.plus_secs(900),
        interval_secs: 5,
        next_poll_at,
        created_at: T0,
    }
}

/// A device flow reads back as written, sealed bytes included; a second one for the same connection replaces
/// the first; delete removes it.
pub(super) async fn device_flows_round_trip_and_replace(store: &dyn Store) {
    let user = new_user(store).await;
    let connection = new_connection(store, &user.id, "device-round-trip").await;
    assert_eq!(store.device_flow(&connection.id).await.expect("device_flow"), None);
    let first = device_record(&connection.id, "first", T0.plus_secs(5));
    store.put_device_flow(&first).await.expect("put_device_flow");
    assert_eq!(store.device_flow(&connection.id).await.expect("device_flow"), Some(first));

    let mut second = device_record(&connection.id, "second", T0.plus_secs(7));
    second.verification_uri_complete = None;
    store.put_device_flow(&second).await.expect("put_device_flow replaces");
    assert_eq!(store.device_flow(&connection.id).await.expect("device_flow"), Some(second));

    store.delete_device_flow(&connection.id).await.expect("delete_device_flow");
    assert_eq!(store.device_flow(&connection.id).await.expect("device_flow"), None);
    store.delete_device_flow(&connection.id).await.expect("deleting nothing is fine");
}

/// `device_flows_due` lists the flows whose next poll has come, earliest first, at most `limit`;
/// `reschedule_device_flow` moves a flow and records its interval.
pub(super) async fn device_flows_due_and_reschedule(store: &dyn Store) {
    // Times far before T0, so that no other check's flow is due.
    let user = new_user(store).await;
    let mut flows = Vec::new();
    for (label, at) in [("late", 300), ("early", 100), ("middle", 200), ("future", 5000)] {
        let connection = new_connection(store, &user.id, &format!("device-due-{label}")).await;
        let flow = device_record(&connection.id, label, Timestamp(at));
        store.put_device_flow(&flow).await.expect("put_device_flow");
        flows.push(flow);
    }
    let ids = |list: &[DeviceFlow]| list.iter().map(|f| f.user_code.clone()).collect::<Vec<_>>();
    let due = store.device_flows_due(Timestamp(1000), 100).await.expect("device_flows_due");
    assert_eq!(ids(&due), ["early-USER", "middle-USER", "late-USER"]);
    let due = store.device_flows_due(Timestamp(1000), 1).await.expect("device_flows_due");
    assert_eq!(ids(&due), ["early-USER"]);
    assert!(store.device_flows_due(Timestamp(99), 100).await.expect("device_flows_due").is_empty());

    let early = &flows[1];
    store.reschedule_device_flow(&early.connection_id, 10, Timestamp(4000)).await.expect("reschedule");
    let due = store.device_flows_due(Timestamp(1000), 100).await.expect("device_flows_due");
    assert_eq!(ids(&due), ["middle-USER", "late-USER"]);
    let moved = store.device_flow(&early.connection_id).await.expect("device_flow").expect("still there");
    assert_eq!((moved.interval_secs, moved.next_poll_at), (10, Timestamp(4000)));

    for flow in &flows {
        store.delete_connection(&flow.connection_id).await.expect("delete_connection");
    }
}

/// Deleting a connection deletes its device flow.
pub(super) async fn device_flows_go_with_their_connection(store: &dyn Store) {
    let user = new_user(store).await;
    let connection = new_connection(store, &user.id, "device-cascade").await;
    store.put_device_flow(&device_record(&connection.id, "cascade", T0)).await.expect("put_device_flow");
    assert!(store.delete_connection(&connection.id).await.expect("delete_connection"));
    assert_eq!(store.device_flow(&connection.id).await.expect("device_flow"), None);
}

/// Whether the flow of `connection` is among those `device_flows_due` lists at `now`.
async fn listed_due(store: &dyn Store, connection: &ConnectionId, now: Timestamp) -> bool {
    let due = store.device_flows_due(now, 1000).await.expect("device_flows_due");
    due.iter().any(|f| f.connection_id == *connection)
}

/// The poll lease: of pollers claiming a due flow at once exactly one wins; the holder keeps it (and the flow
/// leaves the due list) until it reschedules or the lease expires; a flow not due cannot be claimed; a new
/// authorization replaces the lease with the flow.
pub(super) async fn device_poll_lease_has_one_holder(store: &dyn Store) {
    let user = new_user(store).await;
    let connection = new_connection(store, &user.id, "device-lease").await;
    let id = &connection.id;
    store.put_device_flow(&device_record(id, "lease", T0)).await.expect("put_device_flow");
    let until = T0.plus_secs(60);
    let claim = |owner: &'static str| store.claim_device_poll(id, owner, T0, until);
    let (a, b, c, d) = tokio::join!(claim("a"), claim("b"), claim("c"), claim("d"));
    let won = [a, b, c, d].into_iter().map(|r| r.expect("claim_device_poll")).filter(|&won| won).count();
    assert_eq!(won, 1, "exactly one concurrent claim wins");

    let later = T0.plus_secs(10);
    assert!(!store.claim_device_poll(id, "e", later, later.plus_secs(60)).await.expect("claim"), "lease held");
    assert!(!listed_due(store, id, later).await, "a leased flow is not listed as due");

    // The holder died: once the lease has expired, another poller takes over.
    let expired = T0.plus_secs(61);
    assert!(listed_due(store, id, expired).await);
    assert!(store.claim_device_poll(id, "f", expired, expired.plus_secs(60)).await.expect("claim"), "expired lease");

    // Rescheduling releases the lease; the flow can be claimed again when its next poll comes, not before.
    store.reschedule_device_flow(id, 5, T0.plus_secs(70)).await.expect("reschedule");
    let early = T0.plus_secs(65);
    assert!(!store.claim_device_poll(id, "g", early, early.plus_secs(60)).await.expect("claim"), "not due yet");
    let due = T0.plus_secs(70);
    assert!(listed_due(store, id, due).await);
    assert!(store.claim_device_poll(id, "g", due, due.plus_secs(60)).await.expect("claim"), "due again");

    // A new authorization replaces the flow and frees its lease.
    store.put_device_flow(&device_record(id, "again", T0)).await.expect("put_device_flow");
    assert!(store.claim_device_poll(id, "h", due, due.plus_secs(60)).await.expect("claim"), "fresh flow");

    assert!(!store.claim_device_poll(&ConnectionId("missing".into()), "i", due, due).await.expect("claim"));
    store.delete_connection(id).await.expect("delete_connection");
}

/// `device_flows_due` lets users take turns: one user's many due flows do not keep another user's out of a
/// short list.
pub(super) async fn device_flows_due_takes_users_in_turns(store: &dyn Store) {
    let busy = new_user(store).await;
    let other = new_user(store).await;
    let mut created = Vec::new();
    for (user, label, at) in
        [(&busy, "turn-a", 110), (&busy, "turn-b", 120), (&busy, "turn-c", 130), (&other, "turn-d", 140)]
    {
        let connection = new_connection(store, &user.id, &format!("device-{label}")).await;
        store.put_device_flow(&device_record(&connection.id, label, Timestamp(at))).await.expect("put_device_flow");
        created.push(connection);
    }
    let due = store.device_flows_due(Timestamp(1000), 2).await.expect("device_flows_due");
    let codes: Vec<_> = due.iter().map(|f| f.user_code.as_str()).collect();
    assert_eq!(codes, ["turn-a-USER", "turn-d-USER"], "each user's earliest, listed earliest first");
    for connection in created {
        store.delete_connection(&connection.id).await.expect("delete_connection");
    }
}
