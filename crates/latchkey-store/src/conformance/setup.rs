//! First-run set-up, sessions, installation values and the health check.

use latchkey_core::Timestamp;
use latchkey_core::model::Session;
use latchkey_core::store::Store;

use super::{T0, digest, new_user, user_record};

/// `complete_setup` creates the first user only with a valid, unexpired token and only while no user exists,
/// consuming the token; every refusal writes nothing. `put_setup_token` replaces the previous token.
pub(super) async fn setup_completes_once_on_an_empty_store(store: &dyn Store) {
    assert_eq!(store.count_users().await.expect("count_users"), 0, "run_all needs a fresh, empty store");

    let replaced = digest();
    let token = digest();
    let expires_at = T0.plus_secs(600);
    store.put_setup_token(&replaced, expires_at).await.expect("put_setup_token");
    assert!(store.setup_token_valid(&replaced, T0).await.expect("setup_token_valid"));
    store.put_setup_token(&token, expires_at).await.expect("put_setup_token");
    assert!(
        !store.setup_token_valid(&replaced, T0).await.expect("setup_token_valid"),
        "a new set-up token replaces the previous one"
    );
    assert!(store.setup_token_valid(&token, T0).await.expect("setup_token_valid"));
    assert!(
        !store.setup_token_valid(&token, expires_at).await.expect("setup_token_valid"),
        "a set-up token is expired from its expires_at on"
    );

    let admin = user_record(true);
    assert!(
        !store.complete_setup(&replaced, &admin, T0).await.expect("complete_setup"),
        "a replaced token does not complete the set-up"
    );
    assert!(
        !store.complete_setup(&token, &admin, expires_at).await.expect("complete_setup"),
        "an expired token does not complete the set-up"
    );
    assert_eq!(store.count_users().await.expect("count_users"), 0, "a refused set-up creates no user");
    assert!(store.setup_token_valid(&token, T0).await.expect("setup_token_valid"), "a refusal keeps the token");

    assert!(store.complete_setup(&token, &admin, T0).await.expect("complete_setup"));
    assert_eq!(store.count_users().await.expect("count_users"), 1);
    assert_eq!(store.user_by_id(&admin.id).await.expect("user_by_id"), Some(admin.clone()));
    assert!(
        !store.setup_token_valid(&token, T0).await.expect("setup_token_valid"),
        "completing the set-up consumes the token"
    );

    let intruder = user_record(true);
    assert!(
        !store.complete_setup(&token, &intruder, T0).await.expect("complete_setup"),
        "a consumed token does not complete the set-up again"
    );
    let fresh = digest();
    store.put_setup_token(&fresh, expires_at).await.expect("put_setup_token");
    assert!(
        !store.complete_setup(&fresh, &intruder, T0).await.expect("complete_setup"),
        "the set-up cannot be completed once a user exists"
    );
    assert!(
        store.setup_token_valid(&fresh, T0).await.expect("setup_token_valid"),
        "a refused set-up does not consume the token"
    );
    assert_eq!(store.user_by_id(&intruder.id).await.expect("user_by_id"), None);
    assert_eq!(store.count_users().await.expect("count_users"), 1);
}

/// `ping` answers and `backend` names one of the known backends.
pub(super) async fn ping_and_backend_name(store: &dyn Store) {
    store.ping().await.expect("ping");
    assert!(["sqlite", "postgres"].contains(&store.backend()), "unknown backend name {}", store.backend());
}

/// Installation values round-trip byte for byte, and a second put replaces the first.
pub(super) async fn meta_values_round_trip_and_replace(store: &dyn Store) {
    let key = format!("conformance-{}", latchkey_core::model::UserId::random());
    assert_eq!(store.get_meta(&key).await.expect("get_meta"), None);

    let binary: Vec<u8> = (0..=255).rev().collect();
    store.put_meta(&key, &binary).await.expect("put_meta");
    assert_eq!(store.get_meta(&key).await.expect("get_meta"), Some(binary));

    store.put_meta(&key, b"replaced").await.expect("put_meta");
    assert_eq!(store.get_meta(&key).await.expect("get_meta"), Some(b"replaced".to_vec()));

    store.put_meta(&key, &[]).await.expect("put_meta");
    assert_eq!(store.get_meta(&key).await.expect("get_meta"), Some(Vec::new()), "an empty value is still a value");
}

/// A session is found with its user until it expires, and not after it is deleted.
pub(super) async fn sessions_join_their_user_and_expire(store: &dyn Store) {
    let user = new_user(store).await;
    let session = Session {
        id_hash: digest(),
        user_id: user.id.clone(),
        csrf_token: "conformance-csrf".to_owned(),
        created_at: T0,
        expires_at: T0.plus_secs(3600),
    };
    store.insert_session(&session).await.expect("insert_session");

    assert_eq!(
        store.session(&session.id_hash, T0.plus_secs(3599)).await.expect("session"),
        Some((session.clone(), user.clone()))
    );
    assert_eq!(
        store.session(&session.id_hash, session.expires_at).await.expect("session"),
        None,
        "a session is expired from its expires_at on"
    );
    assert_eq!(store.session(&digest(), T0).await.expect("session"), None);

    store.delete_session(&session.id_hash).await.expect("delete_session");
    assert_eq!(store.session(&session.id_hash, T0).await.expect("session"), None);
    store.delete_session(&session.id_hash).await.expect("deleting a deleted session is not an error");
}

/// The session sweep deletes exactly the sessions expired at `now`.
pub(super) async fn delete_expired_sessions_removes_only_expired(store: &dyn Store) {
    let user = new_user(store).await;
    let session = |expires_at| Session {
        id_hash: digest(),
        user_id: user.id.clone(),
        csrf_token: "conformance-csrf".to_owned(),
        created_at: Timestamp(50),
        expires_at: Timestamp(expires_at),
    };
    let old = session(100);
    let current = session(300);
    let at_the_edge = session(200);
    for s in [&old, &current, &at_the_edge] {
        store.insert_session(s).await.expect("insert_session");
    }

    assert_eq!(store.delete_expired_sessions(Timestamp(200)).await.expect("delete_expired_sessions"), 2);
    assert_eq!(store.session(&old.id_hash, Timestamp(60)).await.expect("session"), None, "swept");
    assert_eq!(store.session(&at_the_edge.id_hash, Timestamp(60)).await.expect("session"), None, "swept");
    assert_eq!(
        store.session(&current.id_hash, Timestamp(200)).await.expect("session"),
        Some((current.clone(), user.clone())),
        "an unexpired session survives the sweep"
    );
    assert_eq!(store.delete_expired_sessions(Timestamp(200)).await.expect("delete_expired_sessions"), 0);
    store.delete_session(&current.id_hash).await.expect("delete_session");
}
