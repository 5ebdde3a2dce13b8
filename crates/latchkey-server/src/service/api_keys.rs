//! API keys: random, shown once, stored as a SHA-256 digest. Keys are high-entropy, so a fast hash is right and a
//! token request never pays for a password hash.

use latchkey_core::model::{ApiKey, ApiKeyId, User};
use latchkey_core::store::Store;
use latchkey_core::{Handle, Result, Secret, Timestamp};
use latchkey_crypto::tokens::{digest, random_token};

/// Every key starts with this, so that secret scanners and people recognise it.
pub const KEY_PREFIX: &str = "lk_";
/// How many characters of a key are kept in clear to tell keys apart.
const SHOWN_PREFIX_LEN: usize = 10;

/// Creates a key for `user`, optionally limited to `handles`, and returns it with the only copy of the key.
///
/// # Errors
/// Storage failures.
pub async fn create(
    store: &dyn Store,
    user: &User,
    name: &str,
    handles: Option<Vec<Handle>>,
    now: Timestamp,
) -> Result<(ApiKey, Secret)> {
    let key = Secret::new(format!("{KEY_PREFIX}{}", random_token(32)));
    let record = ApiKey {
        id: ApiKeyId::random(),
        user_id: user.id.clone(),
        name: name.to_owned(),
        prefix: key.expose().chars().take(SHOWN_PREFIX_LEN).collect(),
        key_hash: digest(key.expose()),
        handles,
        created_at: now,
        last_used_at: None,
        revoked_at: None,
    };
    store.insert_api_key(&record).await?;
    Ok((record, key))
}

/// Parses a comma-separated handle list as `--handles` gives it.
///
/// # Errors
/// `Invalid` for a malformed handle.
pub fn parse_handle_list(list: &str) -> Result<Vec<Handle>> {
    list.split(',').map(str::trim).filter(|h| !h.is_empty()).map(Handle::parse).collect()
}
