//! Which master key seals how many stored values: what `latchkey keys status` shows, and what decides whether
//! an older key may be retired.

use std::collections::BTreeMap;

use latchkey_core::Error;
use latchkey_core::sealed_columns::SEALED_COLUMNS;
use latchkey_core::store::Store;
use latchkey_crypto::{KeyId, Keyring};

/// The name of the sealed key check in the meta table (see `bootstrap`).
pub const KEY_CHECK: &str = "key_check";
/// How the key check is named among the sealed columns.
pub const KEY_CHECK_PLACE: &str = "meta.key_check";

/// One key's share of the stored values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyUse {
    /// The key id; `None` for damaged values too short to name one.
    pub key: Option<KeyId>,
    /// Whether the key ring holds the key.
    pub in_ring: bool,
    /// Whether it is the ring's current key.
    pub current: bool,
    /// How many values it seals, in all columns.
    pub values: u64,
    /// The same, per column (`table.column`), only columns where it seals something.
    pub by_column: BTreeMap<String, u64>,
}

/// Every key that seals a stored value, and every key of the ring (with 0 when it seals nothing): the current
/// key first, then the others by id.
///
/// # Errors
/// Storage failures.
pub async fn key_usage(store: &dyn Store, keyring: &Keyring) -> Result<Vec<KeyUse>, Error> {
    let mut uses: BTreeMap<Option<KeyId>, BTreeMap<String, u64>> = BTreeMap::new();
    for id in keyring.key_ids() {
        uses.entry(Some(id)).or_default();
    }
    for column in SEALED_COLUMNS {
        for (bytes, count) in store.count_sealed_by_key(column).await? {
            *uses.entry(key_id(&bytes)).or_default().entry(column.to_string()).or_default() += count;
        }
    }
    if let Some(check) = store.get_meta(KEY_CHECK).await? {
        let key = check.get(1..5).and_then(key_id);
        *uses.entry(key).or_default().entry(KEY_CHECK_PLACE.to_owned()).or_default() += 1;
    }
    let current = keyring.current_id();
    let mut list: Vec<KeyUse> = uses
        .into_iter()
        .map(|(key, by_column)| KeyUse {
            key,
            in_ring: key.is_some_and(|id| keyring.knows(id)),
            current: key == Some(current),
            values: by_column.values().sum(),
            by_column,
        })
        .collect();
    list.sort_by_key(|usage| !usage.current);
    Ok(list)
}

/// How many stored values are sealed with a key other than the current one (damaged values included).
#[must_use]
pub fn not_current(usage: &[KeyUse]) -> u64 {
    usage.iter().filter(|u| !u.current).map(|u| u.values).sum()
}

fn key_id(bytes: &[u8]) -> Option<KeyId> {
    <[u8; 4]>::try_from(bytes).ok().map(|b| KeyId(u32::from_be_bytes(b)))
}

/// Parses a key id as `keys status` prints it: 8 hexadecimal digits.
///
/// # Errors
/// `Invalid` for anything else.
pub fn parse_key_id(text: &str) -> Result<KeyId, Error> {
    let text = text.trim();
    if text.len() == 8
        && let Ok(value) = u32::from_str_radix(text, 16)
    {
        return Ok(KeyId(value));
    }
    Err(Error::invalid(
        "key id",
        format!("'{}' is not a key id: give the 8 hex digits that 'latchkey keys status' shows", text.escape_debug()),
    ))
}
