//! Authorization flows: the single-use link, the callback that runs once, and the expiry sweep.

use latchkey_core::model::{AuthFlow, FlowId, FlowStart};
use latchkey_core::store::Store;
use latchkey_core::{Sealed, Timestamp};

use super::{T0, digest, flow_record, new_connection, new_user, sealed};

fn start_at(now: Timestamp) -> FlowStart {
    FlowStart { state_hash: digest(), browser_hash: digest(), pkce_verifier: Some(sealed("pkce-verifier")), now }
}

/// The flow as `start_flow` should return it.
fn started(flow: &AuthFlow, start: &FlowStart) -> AuthFlow {
    AuthFlow {
        state_hash: Some(start.state_hash.clone()),
        browser_hash: Some(start.browser_hash.clone()),
        pkce_verifier: start.pkce_verifier.clone().or_else(|| flow.pkce_verifier.clone()),
        started_at: Some(start.now),
        ..flow.clone()
    }
}

/// Opening a link records the start and returns the updated flow once; the second opening gets `None`.
/// `flow_by_link` finds the flow only while the link would open.
pub(super) async fn start_flow_is_single_use(store: &dyn Store) {
    let user = new_user(store).await;
    let connection = new_connection(store, &user.id, "flowing").await;
    let flow = flow_record(&connection.id, T0, T0.plus_secs(600));
    store.insert_flow(&flow).await.expect("insert_flow");

    // Looking at a link does not open it; it sees only a link that would still open.
    let peek = |at: i64| store.flow_by_link(&flow.link_hash, T0.plus_secs(at));
    assert_eq!(peek(5).await.expect("flow_by_link"), Some(flow.clone()));
    assert_eq!(peek(600).await.expect("flow_by_link"), None, "an expired link");
    assert_eq!(store.flow_by_link(&digest(), T0).await.expect("flow_by_link"), None, "an unknown link");

    let start = start_at(T0.plus_secs(10));
    let expected = started(&flow, &start);
    assert_eq!(store.start_flow(&flow.link_hash, &start).await.expect("start_flow"), Some(expected.clone()));
    assert_eq!(peek(11).await.expect("flow_by_link"), None, "a used link");

    let again = start_at(T0.plus_secs(11));
    assert_eq!(store.start_flow(&flow.link_hash, &again).await.expect("start_flow"), None, "a link opens once");
    assert_eq!(store.flow_by_state(&start.state_hash).await.expect("flow_by_state"), Some(expected));
    assert_eq!(store.flow_by_state(&again.state_hash).await.expect("flow_by_state"), None);
    assert_eq!(store.start_flow(&digest(), &start_at(T0)).await.expect("start_flow"), None, "unknown link");
}

/// The PKCE verifier sealed when the link was created stays when the start brings none, and is replaced when it
/// brings one.
pub(super) async fn start_flow_keeps_or_replaces_the_pkce_verifier(store: &dyn Store) {
    let user = new_user(store).await;
    let connection = new_connection(store, &user.id, "pkce").await;
    let created_with = Sealed(b"verifier sealed at link creation".to_vec());

    let mut kept = flow_record(&connection.id, T0, T0.plus_secs(600));
    kept.pkce_verifier = Some(created_with.clone());
    store.insert_flow(&kept).await.expect("insert_flow");
    let mut without = start_at(T0.plus_secs(1));
    without.pkce_verifier = None;
    let opened = store.start_flow(&kept.link_hash, &without).await.expect("start_flow").expect("the flow starts");
    assert_eq!(opened.pkce_verifier, Some(created_with.clone()), "None keeps the stored verifier");
    assert_eq!(opened, started(&kept, &without));

    let mut replaced = flow_record(&connection.id, T0, T0.plus_secs(600));
    replaced.pkce_verifier = Some(created_with);
    store.insert_flow(&replaced).await.expect("insert_flow");
    let with = start_at(T0.plus_secs(2));
    let opened = store.start_flow(&replaced.link_hash, &with).await.expect("start_flow").expect("the flow starts");
    assert_eq!(opened.pkce_verifier, with.pkce_verifier, "Some replaces the stored verifier");
    assert_eq!(store.flow_by_state(&with.state_hash).await.expect("flow_by_state"), Some(opened));
}

/// An expired link does not open, and the refusal does not use it up.
pub(super) async fn start_flow_refuses_expired_links(store: &dyn Store) {
    let user = new_user(store).await;
    let connection = new_connection(store, &user.id, "expiring").await;
    let flow = flow_record(&connection.id, T0, T0.plus_secs(600));
    store.insert_flow(&flow).await.expect("insert_flow");

    for late in [T0.plus_secs(600), T0.plus_secs(601)] {
        let start = start_at(late);
        assert_eq!(store.start_flow(&flow.link_hash, &start).await.expect("start_flow"), None, "expired");
        assert_eq!(store.flow_by_state(&start.state_hash).await.expect("flow_by_state"), None);
    }

    let mut in_time = start_at(T0.plus_secs(599));
    in_time.pkce_verifier = None;
    let opened = store.start_flow(&flow.link_hash, &in_time).await.expect("start_flow");
    assert_eq!(opened, Some(started(&flow, &in_time)), "still unused before its expiry");
}

/// A flow completes once; the second completion reports false and keeps the first time.
pub(super) async fn complete_flow_succeeds_once(store: &dyn Store) {
    let user = new_user(store).await;
    let connection = new_connection(store, &user.id, "completing").await;
    let flow = flow_record(&connection.id, T0, T0.plus_secs(600));
    store.insert_flow(&flow).await.expect("insert_flow");
    let start = start_at(T0.plus_secs(1));
    store.start_flow(&flow.link_hash, &start).await.expect("start_flow").expect("the flow starts");

    assert!(store.complete_flow(&flow.id, T0.plus_secs(20)).await.expect("complete_flow"));
    assert!(!store.complete_flow(&flow.id, T0.plus_secs(21)).await.expect("complete_flow"), "the callback runs once");
    let stored = store.flow_by_state(&start.state_hash).await.expect("flow_by_state").expect("the flow exists");
    assert_eq!(stored.completed_at, Some(T0.plus_secs(20)));
    assert!(!store.complete_flow(&FlowId::random(), T0).await.expect("complete_flow"), "unknown flow");
}

/// The flow sweep deletes exactly the flows expired at `now`.
pub(super) async fn delete_expired_flows_removes_only_expired(store: &dyn Store) {
    // Times far before T0, so that no other check's flow is expired.
    let user = new_user(store).await;
    let connection = new_connection(store, &user.id, "sweeping").await;
    let mut states = Vec::new();
    for expires_at in [100, 200, 300] {
        let flow = flow_record(&connection.id, Timestamp(50), Timestamp(expires_at));
        store.insert_flow(&flow).await.expect("insert_flow");
        let start = start_at(Timestamp(60));
        store.start_flow(&flow.link_hash, &start).await.expect("start_flow").expect("the flow starts");
        states.push(start.state_hash);
    }

    assert_eq!(store.delete_expired_flows(Timestamp(200)).await.expect("delete_expired_flows"), 2);
    assert_eq!(store.flow_by_state(&states[0]).await.expect("flow_by_state"), None);
    assert_eq!(store.flow_by_state(&states[1]).await.expect("flow_by_state"), None, "expired at expires_at");
    assert!(store.flow_by_state(&states[2]).await.expect("flow_by_state").is_some(), "unexpired flows stay");
    assert_eq!(store.delete_expired_flows(Timestamp(200)).await.expect("delete_expired_flows"), 0);
    store.delete_connection(&connection.id).await.expect("delete_connection");
}
