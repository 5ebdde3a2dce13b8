//! Master key rotation: add a key, seal every stored secret again with it, retire the old one.
//!
//! - [`rotate`]: adds a new current key to the key file (or, with keys from `LATCHKEY_MASTER_KEY`, uses the
//!   current key the operator put first) and re-seals everything ([`reseal`]); run again after an
//!   interruption, it finishes what is left instead of adding another key.
//! - [`status`]: how many values each key seals.
//! - [`retire`]: removes an older key that nothing uses any more; refused while anything does.
//! - [`watch`]: a running server re-reads the key file when it changes, so it seals with the new key within a
//!   second of a rotation; a value under a key it does not know yet makes it read the file at once.
//!
//! Running servers read every row at every moment: the old key stays in every ring as a key that only opens
//! until no value uses it, and a server reading a value under the new key finds that key in the file.

pub mod cli;
pub mod reseal;
pub mod status;
pub mod watch;

use latchkey_core::Error;
use latchkey_core::store::Store;
use latchkey_crypto::keyfile::{ENV_VAR, KeySource, append_key, remove_key};
use latchkey_crypto::{KeyId, Keyring, MasterKey};

pub use reseal::{Progress, ResealFailure, ResealOptions, ResealReport, reseal_all};
pub use status::{KeyUse, key_usage, parse_key_id};

/// What [`rotate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// The key that now seals.
    pub key: KeyId,
    /// Whether a new key was added; false when an unfinished rotation was resumed.
    pub added: bool,
    pub report: ResealReport,
    /// Values still under other keys afterwards (damaged values, or values written meanwhile by a server
    /// that had not yet seen the new key).
    pub remaining: u64,
}

/// Rotates the master key and seals every stored value again with the current key.
///
/// When values are still sealed with a key other than the current one (an earlier rotation was interrupted,
/// or the operator put a new key first in `LATCHKEY_MASTER_KEY`), nothing is added and those values are
/// sealed again. Otherwise a new key is generated and appended to the key file, which running servers pick up
/// (see [`watch`]). With keys from the environment there is no file to add to: that case is refused with the
/// steps to take.
///
/// # Errors
/// `Conflict` when the keys come from the environment and nothing is left to re-seal; storage failures; a key
/// file that cannot be written.
pub async fn rotate(
    store: &dyn Store,
    keyring: &Keyring,
    source: &KeySource,
    options: ResealOptions,
    progress: &mut (dyn FnMut(Progress<'_>) + Send),
) -> Result<Rotation, Error> {
    let usage = key_usage(store, keyring).await?;
    let added = if status::not_current(&usage) > 0 {
        tracing::info!(key_id = %keyring.current_id(), "values remain under older keys: finishing the rotation to the current key");
        false
    } else {
        match source {
            KeySource::File(path) => {
                let key = MasterKey::generate();
                append_key(path, &key)?;
                keyring.reload()?;
                if keyring.current_id() != key.id() {
                    return Err(Error::Internal(format!(
                        "the key file {} does not name the new key {} as current after adding it",
                        path.display(),
                        key.id()
                    )));
                }
                true
            }
            KeySource::Env(_) => return Err(env_rotation_steps(keyring)),
        }
    };
    reseal_key_check(store, keyring).await?;
    let report = reseal_all(store, keyring, options, progress).await?;
    let remaining = status::not_current(&key_usage(store, keyring).await?);
    Ok(Rotation { key: keyring.current_id(), added, report, remaining })
}

/// Seals the installation's key check again with the current key, so that the old key can be retired.
async fn reseal_key_check(store: &dyn Store, keyring: &Keyring) -> Result<(), Error> {
    if let Some(check) = store.get_meta(status::KEY_CHECK).await? {
        keyring.verify_key_check(&check)?;
        if check.get(1..5) == Some(&keyring.current_id().0.to_be_bytes()[..]) {
            return Ok(());
        }
    }
    store.put_meta(status::KEY_CHECK, &keyring.make_key_check()).await
}

fn env_rotation_steps(keyring: &Keyring) -> Error {
    Error::conflict(
        "keys_from_environment",
        format!(
            "the master key comes from {ENV_VAR}, so there is no key file to add a key to, and every value is \
             already sealed with the current key {current}. To rotate, rolling each step out to every server \
             before the next: (1) make a new key with 'latchkey keys generate'; (2) set {ENV_VAR}=OLD,NEW \
             (comma-separated: the current key first, so every server learns the new key and still seals with \
             the old one); (3) set {ENV_VAR}=NEW,OLD, so they seal with the new key; (4) run 'latchkey keys \
             rotate' with {ENV_VAR}=NEW,OLD: it seals every value again with the new key; (5) when 'latchkey \
             keys status' shows that nothing uses the old key, drop it from {ENV_VAR}.",
            current = keyring.current_id()
        ),
    )
}

/// Removes the older key `id` from the key file, once no stored value (the key check included) is sealed with
/// it. With keys from the environment it only checks, and says to drop the key from the variable.
///
/// # Errors
/// `Conflict` while values use the key or when it is the current key; `NotFound` when the ring does not hold
/// it; a key file that cannot be rewritten.
pub async fn retire(store: &dyn Store, keyring: &Keyring, source: &KeySource, id: KeyId) -> Result<String, Error> {
    if id == keyring.current_id() {
        return Err(Error::conflict(
            "key_is_current",
            format!("key {id} is the current key: it seals new values; rotate to a new key before retiring it"),
        ));
    }
    if !keyring.knows(id) {
        return Err(Error::NotFound(format!("the key ring holds no key {id}: 'latchkey keys status' lists the keys")));
    }
    let usage = key_usage(store, keyring).await?;
    if let Some(used) = usage.iter().find(|u| u.key == Some(id) && u.values > 0) {
        let places: Vec<String> = used.by_column.iter().map(|(place, n)| format!("{n} in {place}")).collect();
        return Err(Error::conflict(
            "key_in_use",
            format!(
                "key {id} still seals {} stored values ({}): run 'latchkey keys rotate' to seal them with the \
                 current key first",
                used.values,
                places.join(", ")
            ),
        ));
    }
    match source {
        KeySource::File(path) => {
            remove_key(path, id)?;
            Ok(format!("retired key {id}: removed from {}", path.display()))
        }
        KeySource::Env(_) => Ok(format!(
            "no stored value uses key {id}: remove it from {ENV_VAR} on every server (keep the current key first)"
        )),
    }
}
