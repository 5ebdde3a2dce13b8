//! Webhooks, their outbox (filled by the backend when a status changes or a connection is deleted), claims with
//! leases, and the counts behind readiness and metrics.

use latchkey_core::model::Status;
use latchkey_core::store::Store;
use latchkey_core::webhook::{AttemptOutcome, DeliveryState, EventKind, Webhook, WebhookEvent};

use super::{T0, new_connection, new_user, sealed};

fn webhook_record(user: &latchkey_core::model::UserId, url: &str) -> Webhook {
    Webhook {
        user_id: user.clone(),
        url: url.to_owned(),
        secret: sealed("webhook-secret"),
        created_at: T0,
        updated_at: T0,
    }
}

async fn events_of(store: &dyn Store, user: &latchkey_core::model::UserId) -> Vec<WebhookEvent> {
    store.webhook_events(user, 100).await.expect("webhook_events")
}

/// A webhook reads back as written; saving again replaces URL and secret but keeps its creation time; deleting
/// is once.
pub(super) async fn webhooks_round_trip_and_replace(store: &dyn Store) {
    let user = new_user(store).await;
    assert_eq!(store.webhook(&user.id).await.expect("webhook"), None);
    let first = webhook_record(&user.id, "https://hooks.example/a");
    store.put_webhook(&first).await.expect("put_webhook");
    assert_eq!(store.webhook(&user.id).await.expect("webhook"), Some(first.clone()));

    let second = Webhook {
        url: "https://hooks.example/b".to_owned(),
        secret: sealed("other-secret"),
        created_at: T0.plus_secs(50),
        updated_at: T0.plus_secs(50),
        ..first.clone()
    };
    store.put_webhook(&second).await.expect("put_webhook again");
    let read = store.webhook(&user.id).await.expect("webhook").expect("still there");
    assert_eq!(read.url, second.url);
    assert_eq!(read.secret, second.secret);
    assert_eq!(read.created_at, T0, "replacing keeps the creation time");
    assert_eq!(read.updated_at, T0.plus_secs(50));

    assert!(store.delete_webhook(&user.id).await.expect("delete_webhook"));
    assert!(!store.delete_webhook(&user.id).await.expect("delete_webhook again"));
    assert_eq!(store.webhook(&user.id).await.expect("webhook"), None);
}

/// Changing a status queues one event in the same statement, and deleting a connection one more, but only for a
/// user with a webhook; writing the same status again queues nothing.
pub(super) async fn status_changes_queue_events_for_users_with_a_webhook(store: &dyn Store) {
    let quiet = new_user(store).await;
    let quiet_connection = new_connection(store, &quiet.id, "quiet").await;
    store.set_status(&quiet_connection.id, Status::Error, Some("boom"), T0).await.expect("set_status");
    assert!(events_of(store, &quiet.id).await.is_empty(), "no webhook, no events");

    let user = new_user(store).await;
    store.put_webhook(&webhook_record(&user.id, "https://hooks.example/events")).await.expect("put_webhook");
    let connection = new_connection(store, &user.id, "watched").await;
    assert!(events_of(store, &user.id).await.is_empty(), "creating a connection is not a status change");

    store.set_status(&connection.id, Status::Connected, None, T0.plus_secs(10)).await.expect("to connected");
    store.set_status(&connection.id, Status::Connected, None, T0.plus_secs(11)).await.expect("same status");
    let why = "the provider refused the refresh token: reconnect 'watched' in the UI";
    store.set_status(&connection.id, Status::NeedsReauth, Some(why), T0.plus_secs(20)).await.expect("to reauth");
    assert!(store.delete_connection(&connection.id).await.expect("delete"));

    let events = events_of(store, &user.id).await;
    assert_eq!(events.len(), 3, "{events:?}");
    let (deleted, reauth, connected) = (&events[0], &events[1], &events[2]);
    assert!(deleted.id > reauth.id && reauth.id > connected.id, "newest first, ids increase");

    assert_eq!(connected.kind, EventKind::StatusChanged);
    assert_eq!(connected.handle, "watched");
    assert_eq!(connected.connection_id, connection.id.as_str());
    assert_eq!((connected.previous_status, connected.status), (Some(Status::Pending), Some(Status::Connected)));
    assert_eq!(connected.occurred_at, T0.plus_secs(10));
    assert_eq!(connected.state, DeliveryState::Pending);
    assert_eq!(connected.attempts, 0);

    assert_eq!((reauth.previous_status, reauth.status), (Some(Status::Connected), Some(Status::NeedsReauth)));
    assert_eq!(reauth.message.as_deref(), Some(why));

    assert_eq!(deleted.kind, EventKind::Deleted);
    assert_eq!((deleted.previous_status, deleted.status), (Some(Status::NeedsReauth), None));

    // Removing the webhook drops what was not delivered.
    assert!(store.delete_webhook(&user.id).await.expect("delete_webhook"));
    assert!(events_of(store, &user.id).await.is_empty());
}

/// A claim leases events to one owner: others do not get them until the lease expires; a retry waits for its
/// time; a finished event is never claimed again; only the lease holder records an attempt.
pub(super) async fn claims_lease_events_until_finished(store: &dyn Store) {
    let user = new_user(store).await;
    let webhook = webhook_record(&user.id, "https://hooks.example/claims");
    store.put_webhook(&webhook).await.expect("put_webhook");
    let connection = new_connection(store, &user.id, "claimed").await;
    store.set_status(&connection.id, Status::Connected, None, T0).await.expect("to connected");

    let now = T0.plus_secs(100);
    let claimed = store.claim_webhook_events("a", now, now.plus_secs(60), 10).await.expect("claim");
    let mine: Vec<_> = claimed.iter().filter(|c| c.event.user_id == user.id).collect();
    assert_eq!(mine.len(), 1, "{claimed:?}");
    let id = mine[0].event.id;
    assert_eq!(mine[0].webhook.as_ref(), Some(&webhook), "the claim carries the webhook");
    assert!(store.claim_webhook_events("b", now, now.plus_secs(60), 10).await.expect("claim").is_empty());

    let retry = AttemptOutcome::Retry { error: "answered 500".to_owned(), retry_at: now.plus_secs(30) };
    assert!(!store.finish_webhook_event(id, "b", &retry).await.expect("finish by another"), "not b's lease");
    assert!(store.finish_webhook_event(id, "a", &retry).await.expect("finish"));
    let event = events_of(store, &user.id).await.remove(0);
    assert_eq!((event.state, event.attempts), (DeliveryState::Pending, 1));
    assert_eq!(event.last_error.as_deref(), Some("answered 500"));
    assert_eq!(event.next_attempt_at, now.plus_secs(30));
    assert!(store.claim_webhook_events("b", now.plus_secs(29), now.plus_secs(90), 10).await.expect("c").is_empty());

    // b claims at the retry time, then dies; once its lease has expired, c gets the event.
    let later = now.plus_secs(30);
    assert_eq!(store.claim_webhook_events("b", later, later.plus_secs(60), 10).await.expect("claim").len(), 1);
    assert!(
        store.claim_webhook_events("c", later.plus_secs(59), later.plus_secs(120), 10).await.expect("c").is_empty()
    );
    let after = later.plus_secs(60);
    assert_eq!(store.claim_webhook_events("c", after, after.plus_secs(60), 10).await.expect("claim").len(), 1);
    assert!(store.finish_webhook_event(id, "c", &AttemptOutcome::Delivered { at: after }).await.expect("finish"));
    let event = events_of(store, &user.id).await.remove(0);
    assert_eq!((event.state, event.attempts, event.last_error), (DeliveryState::Delivered, 2, None));
    let much_later = after.plus_secs(86_400);
    assert!(store.claim_webhook_events("d", much_later, much_later.plus_secs(60), 10).await.expect("d").is_empty());

    // A failed event is final too.
    store.set_status(&connection.id, Status::Error, Some("boom"), T0).await.expect("to error");
    let claimed = store.claim_webhook_events("e", much_later, much_later.plus_secs(60), 10).await.expect("claim");
    assert_eq!(claimed.len(), 1);
    let failed = AttemptOutcome::Failed { error: "gave up".to_owned(), at: much_later };
    assert!(store.finish_webhook_event(claimed[0].event.id, "e", &failed).await.expect("finish"));
    assert_eq!(events_of(store, &user.id).await[0].state, DeliveryState::Failed);
    assert!(store.claim_webhook_events("f", much_later, much_later.plus_secs(60), 10).await.expect("f").is_empty());
    assert!(store.delete_webhook(&user.id).await.expect("delete_webhook"));
}

/// Two replicas claiming at once get disjoint events, together all of them (one per user: twenty users).
pub(super) async fn concurrent_webhook_claims_are_disjoint(store: &dyn Store) {
    let mut users = Vec::new();
    for n in 0..20 {
        let user = new_user(store).await;
        store.put_webhook(&webhook_record(&user.id, "https://hooks.example/race")).await.expect("put_webhook");
        let connection = new_connection(store, &user.id, &format!("race-{n}")).await;
        store.set_status(&connection.id, Status::Connected, None, T0).await.expect("to connected");
        users.push(user);
    }
    let now = T0.plus_secs(10);
    let (a, b) = tokio::join!(
        store.claim_webhook_events("a", now, now.plus_secs(60), 15),
        store.claim_webhook_events("b", now, now.plus_secs(60), 15),
    );
    let mut ids: Vec<i64> = a.expect("a").iter().chain(b.expect("b").iter()).map(|c| c.event.id).collect();
    let claimed = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), claimed, "no event went to both");
    assert_eq!(claimed, 20, "between them, every event was claimed");
    for user in users {
        assert!(store.delete_webhook(&user.id).await.expect("delete_webhook"));
    }
}

/// A claim takes at most one event per user: the oldest due one, and none while another of the user's events is
/// leased; a lease given back without an attempt makes the event claimable again, unchanged.
pub(super) async fn claims_take_one_event_per_user(store: &dyn Store) {
    let (busy, other) = (new_user(store).await, new_user(store).await);
    for (user, count) in [(&busy, 3), (&other, 1)] {
        store.put_webhook(&webhook_record(&user.id, "https://hooks.example/turns")).await.expect("put_webhook");
        for n in 0..count {
            let connection = new_connection(store, &user.id, &format!("turns-{n}")).await;
            store.set_status(&connection.id, Status::Connected, None, T0).await.expect("to connected");
        }
    }
    let oldest = |events: Vec<WebhookEvent>| events.iter().map(|e| e.id).min().expect("an event");
    let (busy_first, other_first) =
        (oldest(events_of(store, &busy.id).await), oldest(events_of(store, &other.id).await));
    let now = T0.plus_secs(10);
    let claim = async |owner: &str| {
        let claimed = store.claim_webhook_events(owner, now, now.plus_secs(60), 100).await.expect("claim");
        let mut ids: Vec<i64> = claimed
            .iter()
            .filter(|c| c.event.user_id == busy.id || c.event.user_id == other.id)
            .map(|c| c.event.id)
            .collect();
        ids.sort_unstable();
        ids
    };
    assert_eq!(claim("a").await, [busy_first, other_first], "each user's oldest event");
    assert!(claim("b").await.is_empty(), "nothing more of a user with an event in flight");

    store.release_webhook_event(busy_first, "b").await.expect("release by another: nothing");
    assert!(claim("b").await.is_empty());
    store.release_webhook_event(busy_first, "a").await.expect("release");
    assert_eq!(claim("b").await, [busy_first], "given back, the same event comes first again");
    let event = events_of(store, &busy.id).await.into_iter().find(|e| e.id == busy_first).expect("event");
    assert_eq!((event.state, event.attempts), (DeliveryState::Pending, 0), "no attempt recorded");

    assert!(store.finish_webhook_event(busy_first, "b", &AttemptOutcome::Delivered { at: now }).await.expect("finish"));
    let next = claim("c").await;
    assert_eq!(next.len(), 1);
    assert!(next[0] > busy_first, "then the user's next event");
    for user in [&busy, &other] {
        assert!(store.delete_webhook(&user.id).await.expect("delete_webhook"));
    }
}

/// Readiness holds on a migrated store; the status counts move with the connections; the due count agrees with
/// `connections_due`.
pub(super) async fn readiness_and_counts(store: &dyn Store) {
    store.readiness().await.expect("a freshly migrated store is ready");
    let count = |counts: &[(Status, u64)], status| counts.iter().find(|(s, _)| *s == status).map_or(0, |(_, n)| *n);
    let before = store.count_connections_by_status().await.expect("counts");
    let user = new_user(store).await;
    let a = new_connection(store, &user.id, "count-a").await;
    new_connection(store, &user.id, "count-b").await;
    store.set_status(&a.id, Status::NeedsReauth, Some("reconnect"), T0).await.expect("set_status");
    let after = store.count_connections_by_status().await.expect("counts");
    assert_eq!(count(&after, Status::Pending), count(&before, Status::Pending) + 1);
    assert_eq!(count(&after, Status::NeedsReauth), count(&before, Status::NeedsReauth) + 1);
    assert_eq!(count(&after, Status::Connected), count(&before, Status::Connected));

    for at in [T0.plus_secs(-1_000_000_000), T0, T0.plus_secs(1_000_000_000)] {
        let listed = store.connections_due(at, 100_000).await.expect("connections_due").len() as u64;
        assert_eq!(store.count_connections_due(at).await.expect("count_connections_due"), listed, "at {at:?}");
    }
}
