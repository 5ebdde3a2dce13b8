//! Users and API keys.

use latchkey_core::model::{ApiKeyId, UserId};
use latchkey_core::store::Store;
use latchkey_core::{Error, Timestamp};

use super::{T0, api_key_record, digest, handle, new_user, user_record};

/// A user reads back as written, by username and by id, and counts.
pub(super) async fn users_round_trip(store: &dyn Store) {
    let before = store.count_users().await.expect("count_users");
    let user = user_record(true);
    store.insert_user(&user).await.expect("insert_user");

    assert_eq!(store.user_by_username(&user.username).await.expect("user_by_username"), Some(user.clone()));
    assert_eq!(store.user_by_id(&user.id).await.expect("user_by_id"), Some(user.clone()));
    assert_eq!(store.count_users().await.expect("count_users"), before + 1);

    let plain = user_record(false);
    store.insert_user(&plain).await.expect("insert_user");
    assert_eq!(store.user_by_id(&plain.id).await.expect("user_by_id"), Some(plain.clone()), "is_admin false");

    assert_eq!(store.user_by_username("conformance-nobody").await.expect("user_by_username"), None);
    assert_eq!(store.user_by_id(&UserId::random()).await.expect("user_by_id"), None);
}

/// A taken username is `Conflict { code: "username_taken" }`, and the first user stays as it was.
pub(super) async fn duplicate_username_is_a_conflict(store: &dyn Store) {
    let first = new_user(store).await;
    let mut second = user_record(false);
    second.username.clone_from(&first.username);

    match store.insert_user(&second).await {
        Err(Error::Conflict { code, .. }) => assert_eq!(code, "username_taken"),
        other => panic!("a taken username must be Conflict {{ code: \"username_taken\" }}, got {other:?}"),
    }
    assert_eq!(store.user_by_id(&second.id).await.expect("user_by_id"), None);
    assert_eq!(store.user_by_username(&first.username).await.expect("user_by_username"), Some(first));
}

/// A key reads back as written by its digest, with and without a handle list, and with its expiry.
pub(super) async fn api_keys_round_trip(store: &dyn Store) {
    let user = new_user(store).await;
    let mut limited = api_key_record(&user.id, T0);
    limited.handles = Some(vec![handle("crm"), handle("billing-2")]);
    limited.last_used_at = Some(T0.plus_secs(5));
    limited.expires_at = Some(T0.plus_secs(30 * 86_400));
    let open = api_key_record(&user.id, T0);
    let mut empty_list = api_key_record(&user.id, T0);
    empty_list.handles = Some(Vec::new());

    for key in [&limited, &open, &empty_list] {
        store.insert_api_key(key).await.expect("insert_api_key");
        assert_eq!(store.api_key_by_hash(&key.key_hash).await.expect("api_key_by_hash"), Some(key.clone()));
    }
    assert_eq!(store.api_key_by_hash(&digest()).await.expect("api_key_by_hash"), None);
}

/// `list_api_keys` returns the user's keys only, newest first, ties by id.
pub(super) async fn api_keys_are_listed_newest_first(store: &dyn Store) {
    let user = new_user(store).await;
    let other = new_user(store).await;
    assert_eq!(store.list_api_keys(&user.id).await.expect("list_api_keys"), Vec::new());

    let oldest = api_key_record(&user.id, T0.plus_secs(100));
    let newest = api_key_record(&user.id, T0.plus_secs(300));
    let mut middle = [api_key_record(&user.id, T0.plus_secs(200)), api_key_record(&user.id, T0.plus_secs(200))];
    middle.sort_by(|a, b| a.id.cmp(&b.id));
    let foreign = api_key_record(&other.id, T0.plus_secs(400));
    for key in [&oldest, &middle[1], &foreign, &newest, &middle[0]] {
        store.insert_api_key(key).await.expect("insert_api_key");
    }

    let listed = store.list_api_keys(&user.id).await.expect("list_api_keys");
    assert_eq!(listed, vec![newest, middle[0].clone(), middle[1].clone(), oldest]);
}

/// Revoking needs the owning user, happens once, and keeps the key readable with its `revoked_at`.
pub(super) async fn revoking_a_key_is_once_and_only_by_its_owner(store: &dyn Store) {
    let owner = new_user(store).await;
    let stranger = new_user(store).await;
    let key = api_key_record(&owner.id, T0);
    store.insert_api_key(&key).await.expect("insert_api_key");
    let at = T0.plus_secs(60);

    assert!(!store.revoke_api_key(&stranger.id, &key.id, at).await.expect("revoke_api_key"), "not the owner");
    assert_eq!(store.api_key_by_hash(&key.key_hash).await.expect("api_key_by_hash"), Some(key.clone()));
    assert!(!store.revoke_api_key(&owner.id, &ApiKeyId::random(), at).await.expect("revoke_api_key"), "unknown");

    assert!(store.revoke_api_key(&owner.id, &key.id, at).await.expect("revoke_api_key"));
    assert!(
        !store.revoke_api_key(&owner.id, &key.id, at.plus_secs(1)).await.expect("revoke_api_key"),
        "a revoked key cannot be revoked again"
    );
    let revoked = store.api_key_by_hash(&key.key_hash).await.expect("api_key_by_hash").expect("revoked key is kept");
    assert_eq!(revoked.revoked_at, Some(at), "the first revocation's time stays");
    assert_eq!(store.list_api_keys(&owner.id).await.expect("list_api_keys"), vec![revoked]);
}

/// `touch_api_key` records the latest use and changes nothing else.
pub(super) async fn touching_a_key_records_its_last_use(store: &dyn Store) {
    let user = new_user(store).await;
    let key = api_key_record(&user.id, T0);
    store.insert_api_key(&key).await.expect("insert_api_key");

    store.touch_api_key(&key.id, T0.plus_secs(10)).await.expect("touch_api_key");
    store.touch_api_key(&key.id, T0.plus_secs(20)).await.expect("touch_api_key");
    let mut expected = key.clone();
    expected.last_used_at = Some(Timestamp(T0.secs() + 20));
    assert_eq!(store.api_key_by_hash(&key.key_hash).await.expect("api_key_by_hash"), Some(expected));
}
