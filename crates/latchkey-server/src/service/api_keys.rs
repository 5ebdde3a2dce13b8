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
    create_expiring(store, user, name, handles, None, now).await
}

/// The longest lifetime a key may be given, in days (about ten years).
pub const MAX_EXPIRY_DAYS: u32 = 3650;

/// The moment a key created at `now` expires when it should live `days` days; `None` for no expiry.
///
/// # Errors
/// `Invalid` for 0 days or more than [`MAX_EXPIRY_DAYS`].
pub fn expiry_in_days(days: Option<u32>, now: Timestamp) -> Result<Option<Timestamp>> {
    match days {
        None => Ok(None),
        Some(days) if (1..=MAX_EXPIRY_DAYS).contains(&days) => Ok(Some(now.plus_secs(i64::from(days) * 86_400))),
        Some(days) => Err(latchkey_core::Error::invalid(
            "expires_in_days",
            format!(
                "an API key expires after 1 to {MAX_EXPIRY_DAYS} days, not {days}; leave it empty for a key that does not expire"
            ),
        )),
    }
}

/// Creates a key like [`create`] that stops working at `expires_at` (when set).
///
/// # Errors
/// Storage failures.
pub async fn create_expiring(
    store: &dyn Store,
    user: &User,
    name: &str,
    handles: Option<Vec<Handle>>,
    expires_at: Option<Timestamp>,
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
        expires_at,
    };
    store.insert_api_key(&record).await?;
    Ok((record, key))
}

/// The longest key name accepted.
const MAX_NAME_LEN: usize = 200;

/// A key's name: trimmed, 1 to 200 characters, no control characters.
///
/// # Errors
/// `Invalid` on the field `name`.
pub fn clean_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() {
        return Err(latchkey_core::Error::invalid(
            "name",
            "the name is empty: say what will use this key, for example 'nightly-sync'",
        ));
    }
    if name.chars().count() > MAX_NAME_LEN {
        return Err(latchkey_core::Error::invalid(
            "name",
            format!("the name is longer than {MAX_NAME_LEN} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(latchkey_core::Error::invalid("name", "the name contains control characters"));
    }
    Ok(name.to_owned())
}

/// Parses a comma-separated handle list as `--handles` gives it.
///
/// # Errors
/// `Invalid` for a malformed handle.
pub fn parse_handle_list(list: &str) -> Result<Vec<Handle>> {
    list.split(',').map(str::trim).filter(|h| !h.is_empty()).map(Handle::parse).collect()
}
