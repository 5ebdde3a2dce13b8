//! The audit log: batches are written whole, read back newest first per user and handle, paged by id, and
//! outlive the connection they name.

use latchkey_core::audit::{Action, Actor, AuditQuery, AuditRecord};
use latchkey_core::model::{ApiKeyId, UserId};
use latchkey_core::store::Store;

use super::{T0, handle, new_connection, new_user};

fn record(user: &UserId, action: Action, handle_text: Option<&str>, at_offset: i64) -> AuditRecord {
    AuditRecord {
        at: T0.plus_secs(at_offset),
        user_id: user.clone(),
        actor: Actor::ApiKey { id: ApiKeyId::random(), prefix: "lk_conform".to_owned() },
        action,
        handle: handle_text.map(handle),
        subject_key: None,
        outcome: "ok".to_owned(),
    }
}

fn query(user: &UserId, handle_text: Option<&str>, before: Option<i64>, limit: u32) -> AuditQuery {
    AuditQuery { user_id: user.clone(), handle: handle_text.map(handle), before, limit }
}

/// A batch of records of every actor reads back exactly, newest first, only for its user.
pub(super) async fn audit_records_round_trip_newest_first(store: &dyn Store) {
    let alice = new_user(store).await;
    let bob = new_user(store).await;
    let mut batch = vec![
        record(&alice.id, Action::ConnectionCreate, Some("audit-crm"), 0),
        record(&alice.id, Action::TokenRead, Some("audit-crm"), 1),
        record(&bob.id, Action::TokenRead, Some("audit-crm"), 1),
    ];
    for (i, actor) in
        [Actor::WebSession, Actor::Refresher, Actor::CommandLine, Actor::Authorization].into_iter().enumerate()
    {
        let mut next = record(&alice.id, Action::TokenRefresh, Some("audit-crm"), 2 + i64::try_from(i).unwrap_or(0));
        next.actor = actor;
        next.outcome = "provider_error".to_owned();
        batch.push(next);
    }
    let mut key_event = record(&alice.id, Action::ApiKeyRevoke, None, 9);
    key_event.subject_key = Some("lk_revoked".to_owned());
    batch.push(key_event);
    store.insert_audit_records(&batch).await.expect("insert_audit_records");
    store.insert_audit_records(&[]).await.expect("an empty batch writes nothing");

    let read = store.audit_records(&query(&alice.id, None, None, 100)).await.expect("audit_records");
    let mut expected: Vec<AuditRecord> = batch.iter().filter(|r| r.user_id == alice.id).cloned().collect();
    expected.reverse();
    assert_eq!(read.iter().map(|e| e.record.clone()).collect::<Vec<_>>(), expected);
    assert!(read.windows(2).all(|pair| pair[0].id > pair[1].id), "newest (largest id) first");

    let bobs = store.audit_records(&query(&bob.id, Some("audit-crm"), None, 100)).await.expect("audit_records");
    assert_eq!(bobs.len(), 1, "another user's records stay apart");
    assert_eq!(bobs[0].record, batch[2]);
}

/// Filtering by handle and paging with `before` and `limit` walk the log without gaps or repeats.
pub(super) async fn audit_records_page_by_handle(store: &dyn Store) {
    let user = new_user(store).await;
    let batch: Vec<AuditRecord> = (0..7)
        .map(|i| record(&user.id, Action::TokenRead, Some(if i % 2 == 0 { "paged" } else { "other" }), i))
        .collect();
    store.insert_audit_records(&batch).await.expect("insert_audit_records");

    let mut seen = Vec::new();
    let mut before = None;
    for _ in 0..10 {
        let page = store.audit_records(&query(&user.id, Some("paged"), before, 3)).await.expect("audit_records");
        assert!(page.len() <= 3);
        if page.is_empty() {
            break;
        }
        before = page.last().map(|e| e.id);
        seen.extend(page.into_iter().map(|e| e.record.at));
    }
    let expected: Vec<_> = batch.iter().rev().filter(|r| r.handle == Some(handle("paged"))).map(|r| r.at).collect();
    assert_eq!(seen, expected, "four records of the handle, newest first, each once");
    assert!(store.audit_records(&query(&user.id, Some("nothing-here"), None, 3)).await.expect("reads").is_empty());
}

/// A batch the schema refuses in part (here an outcome longer than 64 characters in its second record) writes
/// none of its records; deleting a connection keeps its records.
pub(super) async fn audit_batches_are_whole_and_outlive_connections(store: &dyn Store) {
    let user = new_user(store).await;
    let good = record(&user.id, Action::TokenRead, Some("whole"), 0);
    let mut bad = record(&user.id, Action::TokenRead, Some("whole"), 1);
    bad.outcome = "x".repeat(65);
    assert!(store.insert_audit_records(&[good.clone(), bad]).await.is_err(), "the schema refuses the bad record");
    assert!(
        store.audit_records(&query(&user.id, None, None, 10)).await.expect("reads").is_empty(),
        "nothing of a refused batch is written"
    );

    let connection = new_connection(store, &user.id, "doomed").await;
    let mut deleted = record(&user.id, Action::ConnectionDelete, Some("doomed"), 2);
    deleted.actor = Actor::WebSession;
    store.insert_audit_records(&[deleted.clone()]).await.expect("insert_audit_records");
    assert!(store.delete_connection(&connection.id).await.expect("delete_connection"));
    let kept = store.audit_records(&query(&user.id, Some("doomed"), None, 10)).await.expect("reads");
    assert_eq!(kept.iter().map(|e| e.record.clone()).collect::<Vec<_>>(), vec![deleted]);
}
