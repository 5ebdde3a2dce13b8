//! Sealing secrets at rest with XChaCha20-Poly1305, key ids for rotation, and associated data that binds each
//! sealed value to the row and column it belongs to.
//!
//! # Sealed format
//!
//! A sealed value ([`Sealed`]) is one byte string:
//!
//! | bytes    | content                                                              |
//! |----------|----------------------------------------------------------------------|
//! | `0`      | format version, currently `1`                                        |
//! | `1..5`   | [`KeyId`] of the master key that sealed it, `u32` big-endian         |
//! | `5..29`  | nonce: 24 random bytes, fresh for every seal                         |
//! | `29..`   | ciphertext followed by the 16-byte Poly1305 tag                      |
//!
//! The cipher is XChaCha20-Poly1305 (the extended-nonce variant of the AEAD of RFC 8439, specified in
//! draft-irtf-cfrg-xchacha). Its 192-bit nonce is large enough to be drawn at random for every seal without a
//! realistic chance of reuse, so no counter has to be kept.
//!
//! The associated data authenticated with each value is the 5-byte header (version and key id) followed by
//! the bytes of an [`Aad`], `latchkey/v1/{table}/{column}/{row_id}`. A sealed value copied to another row or
//! column, or with any bit changed, fails to open with [`CryptoError::Tampered`].
//!
//! # Keys
//!
//! A [`Keyring`] holds one current [`MasterKey`], which seals, and any number of older keys, which only open.
//! Rotation adds a new current key, keeps the old one as older until every value has been sealed again
//! ([`Keyring::key_id_of`] tells which values still need it), then drops it. A ring can read its source again
//! ([`Keyring::reload`]); keys it held stay, so a running process never loses a key it could open with.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::AeadInPlace as _;
use chacha20poly1305::{KeyInit as _, Tag, XChaCha20Poly1305, XNonce};
use latchkey_core::{Sealed, Secret};
use rand::RngCore as _;
use rand::rngs::OsRng;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use zeroize::{Zeroize as _, Zeroizing};

use crate::error::CryptoError;

/// The format version written in byte 0 of every sealed value.
pub const FORMAT_VERSION: u8 = 1;
/// Length of a master key in bytes.
pub const KEY_LEN: usize = 32;
const KEY_ID_LEN: usize = 4;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
/// Version byte and key id: the part of the header that is also authenticated as associated data.
const PREFIX_LEN: usize = 1 + KEY_ID_LEN;
const HEADER_LEN: usize = PREFIX_LEN + NONCE_LEN;

/// Domain separation for key ids, so that an id says nothing about the key beyond telling keys apart.
const KEY_ID_CONTEXT: &[u8] = b"latchkey key id v1";
/// The plain text of the key check (see [`Keyring::make_key_check`]).
const KEY_CHECK_PLAINTEXT: &[u8] = b"latchkey key check v1";
/// Associated data of the key check. [`Aad::new`] always yields at least five `/`-separated parts, so no row
/// value can be confused with it.
const KEY_CHECK_AAD: &[u8] = b"latchkey/v1/key-check";

const GENERATE_HINT: &str = "use the standard base64 encoding of 32 random bytes (44 characters ending in '='), \
                             for example the output of `openssl rand -base64 32`";

/// The short public name of a master key: the first 4 bytes of `SHA-256("latchkey key id v1" || key)`.
///
/// Sealed values record it so that the right key is chosen to open them and so that rotation can tell which
/// values were sealed with which key. It is displayed as 8 lowercase hex digits and is safe to log.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub u32);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// A 256-bit master key. The bytes are wiped from memory on drop; `Debug` shows only the [`KeyId`].
#[derive(Clone)]
pub struct MasterKey {
    bytes: Zeroizing<[u8; KEY_LEN]>,
    id: KeyId,
}

impl MasterKey {
    /// A new key of 32 bytes from the operating system's random number generator.
    #[must_use]
    pub fn generate() -> MasterKey {
        let mut bytes = Zeroizing::new([0_u8; KEY_LEN]);
        OsRng.fill_bytes(bytes.as_mut_slice());
        MasterKey::from_bytes(bytes)
    }

    /// Reads a key written as standard base64 (RFC 4648 section 4, with padding) of exactly 32 bytes.
    /// Whitespace around the text is ignored.
    ///
    /// # Errors
    /// [`CryptoError::BadKey`] when the text is not base64 or does not decode to 32 bytes. The message never
    /// repeats the text.
    pub fn from_base64(text: &str) -> Result<MasterKey, CryptoError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(CryptoError::BadKey(format!("the master key is empty: {GENERATE_HINT}")));
        }
        // Enough room up front that decoding never reallocates and leaves an unwiped copy behind.
        let mut decoded = Zeroizing::new(Vec::with_capacity(text.len().div_ceil(4) * 3 + 3));
        if STANDARD.decode_vec(text, &mut decoded).is_err() {
            return Err(CryptoError::BadKey(format!("the master key is not valid base64: {GENERATE_HINT}")));
        }
        let Ok(array) = <[u8; KEY_LEN]>::try_from(decoded.as_slice()) else {
            return Err(CryptoError::BadKey(format!(
                "the master key decodes to {} bytes, but it must be exactly {KEY_LEN}: {GENERATE_HINT}",
                decoded.len()
            )));
        };
        Ok(MasterKey::from_bytes(Zeroizing::new(array)))
    }

    /// The key as standard base64 with padding, the form [`MasterKey::from_base64`] and the key file read.
    #[must_use]
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(self.bytes.as_slice()))
    }

    /// The key's id.
    #[must_use]
    pub fn id(&self) -> KeyId {
        self.id
    }

    fn from_bytes(bytes: Zeroizing<[u8; KEY_LEN]>) -> MasterKey {
        let hash = Sha256::new().chain_update(KEY_ID_CONTEXT).chain_update(bytes.as_slice()).finalize();
        let id = KeyId(u32::from_be_bytes([hash[0], hash[1], hash[2], hash[3]]));
        MasterKey { bytes, id }
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        // The cipher keeps its own copy of the key and wipes it on drop.
        XChaCha20Poly1305::new(self.bytes.as_slice().into())
    }

    /// Whether both are the same key, compared in constant time.
    pub(crate) fn same_key(&self, other: &MasterKey) -> bool {
        self.bytes.as_slice().ct_eq(other.bytes.as_slice()).into()
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey").field("id", &self.id).finish_non_exhaustive()
    }
}

/// Associated data that binds a sealed value to where it is stored: the bytes
/// `latchkey/v1/{table}/{column}/{row_id}`.
///
/// The same table, column and row id must be given to open as were given to seal, so a value moved to
/// another row or column does not open.
#[derive(Clone, PartialEq, Eq)]
pub struct Aad(Vec<u8>);

impl Aad {
    /// The associated data of the value in `column` of the row `row_id` of `table`.
    ///
    /// `table` and `column` are names from the code and must not contain `/` (the row id may contain
    /// anything, as it comes last).
    #[must_use]
    pub fn new(table: &str, column: &str, row_id: &str) -> Aad {
        debug_assert!(!table.contains('/'), "table names in associated data must not contain '/'");
        debug_assert!(!column.contains('/'), "column names in associated data must not contain '/'");
        Aad(format!("latchkey/v1/{table}/{column}/{row_id}").into_bytes())
    }

    /// The bytes that are authenticated.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Aad {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Aad({:?})", String::from_utf8_lossy(&self.0))
    }
}

/// Reads the keys again from where they came from (the key file); see [`Keyring::with_reload`].
pub type ReloadFn = dyn Fn() -> Result<Keyring, CryptoError> + Send + Sync;

/// The shortest time between two reloads that an unknown key id triggers, so that a damaged row read in a
/// loop does not make every request read the key file.
const RELOAD_ON_UNKNOWN_MIN_INTERVAL: Duration = Duration::from_secs(1);

/// The master keys of an installation: one current key that seals, and older keys that only open values
/// sealed before a rotation. `Debug` shows key ids only.
///
/// A running server shares one ring. [`Keyring::reload`] (and, when a value names a key id the ring does not
/// hold, [`Keyring::open`] itself) reads the key source again, so that a key added by a rotation in another
/// process is used at once: newer keys become current, and keys the ring already held stay for opening.
pub struct Keyring {
    /// The current key first, then the older keys. Replaced whole on reload.
    keys: RwLock<Arc<[MasterKey]>>,
    reload: Option<Reloader>,
}

struct Reloader {
    load: Arc<ReloadFn>,
    last_on_unknown: Mutex<Option<Instant>>,
}

impl Keyring {
    /// A ring that seals with `current` and opens with `current` and every key in `older`. Keys given twice
    /// are kept once.
    #[must_use]
    pub fn new(current: MasterKey, older: Vec<MasterKey>) -> Keyring {
        let mut keys = Vec::with_capacity(1 + older.len());
        keys.push(current);
        for key in older {
            if !keys.iter().any(|known| known.same_key(&key)) {
                keys.push(key);
            }
        }
        Keyring { keys: RwLock::new(keys.into()), reload: None }
    }

    /// The same ring, able to read its keys again with `load` (see [`Keyring::reload`]).
    #[must_use]
    pub fn with_reload(mut self, load: Arc<ReloadFn>) -> Keyring {
        self.reload = Some(Reloader { load, last_on_unknown: Mutex::new(None) });
        self
    }

    /// The id of the key that seals.
    #[must_use]
    pub fn current_id(&self) -> KeyId {
        self.keys()[0].id
    }

    /// The ids of all keys in the ring: the current key first, then the older keys in the order given.
    #[must_use]
    pub fn key_ids(&self) -> Vec<KeyId> {
        self.keys().iter().map(MasterKey::id).collect()
    }

    /// Whether a key with this id is in the ring.
    #[must_use]
    pub fn knows(&self, id: KeyId) -> bool {
        self.keys().iter().any(|key| key.id == id)
    }

    /// Takes the keys of `newer` into this ring: its current key becomes the current one, and every key this
    /// ring held stays, as an older key, so values sealed with it still open. Returns whether the current key
    /// changed.
    pub fn adopt(&self, newer: &Keyring) -> bool {
        let incoming = newer.keys();
        let mut slot = self.keys.write().unwrap_or_else(PoisonError::into_inner);
        let mut merged: Vec<MasterKey> = incoming.to_vec();
        for key in slot.iter() {
            if !merged.iter().any(|known| known.same_key(key)) {
                merged.push(key.clone());
            }
        }
        let changed = !merged[0].same_key(&slot[0]);
        *slot = merged.into();
        changed
    }

    /// Reads the key source again and adopts its keys (see [`Keyring::adopt`]). Returns the new current key's
    /// id when it changed; `Ok(None)` when nothing changed or the ring has no source to read again (a key from
    /// the environment).
    ///
    /// # Errors
    /// Those of loading the keys; the ring is left as it was.
    pub fn reload(&self) -> Result<Option<KeyId>, CryptoError> {
        let Some(reloader) = &self.reload else { return Ok(None) };
        let newer = (reloader.load)()?;
        if self.adopt(&newer) {
            let id = self.current_id();
            tracing::info!(key_id = %id, "the key source names a new current master key {id}: new values are sealed with it");
            Ok(Some(id))
        } else {
            Ok(None)
        }
    }

    /// Seals `plaintext` with the current key and a fresh random nonce, bound to `aad`. Sealing the same
    /// plain text twice gives different bytes.
    ///
    /// # Panics
    /// Only for a plain text longer than XChaCha20-Poly1305 allows (about 256 GiB).
    #[must_use]
    pub fn seal(&self, plaintext: &[u8], aad: &Aad) -> Sealed {
        let keys = self.keys();
        let key = &keys[0];
        let mut nonce = [0_u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);

        let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + TAG_LEN);
        out.push(FORMAT_VERSION);
        out.extend_from_slice(&key.id.0.to_be_bytes());
        out.extend_from_slice(&nonce);
        let associated = associated_data(&out[..PREFIX_LEN], aad.as_bytes());
        out.extend_from_slice(plaintext);

        // Encrypted in place: the plain text is copied only into the buffer that becomes the ciphertext.
        let tag = key
            .cipher()
            .encrypt_in_place_detached(XNonce::from_slice(&nonce), &associated, &mut out[HEADER_LEN..])
            .expect("XChaCha20-Poly1305 seals any message shorter than 256 GiB");
        out.extend_from_slice(&tag);
        Sealed(out)
    }

    /// Seals a secret's UTF-8 bytes; see [`Keyring::seal`].
    #[must_use]
    pub fn seal_secret(&self, secret: &Secret, aad: &Aad) -> Sealed {
        self.seal(secret.expose().as_bytes(), aad)
    }

    /// Opens a value sealed by [`Keyring::seal`] with any key of the ring, checking it against `aad`. A value
    /// sealed with a key the ring does not hold makes a ring with a key source read it again (at most once a
    /// second) before giving up, so a key added by a rotation elsewhere is found.
    ///
    /// # Errors
    /// - [`CryptoError::Malformed`]: too short, or an unknown format version.
    /// - [`CryptoError::UnknownKey`]: sealed with a key that is not in the ring (nor in its source).
    /// - [`CryptoError::Tampered`]: the tag does not verify (altered bytes, or a different `aad`).
    pub fn open(&self, sealed: &Sealed, aad: &Aad) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        match self.open_bytes(sealed.as_bytes(), aad.as_bytes()) {
            Err(CryptoError::UnknownKey { key_id }) if self.reload_for_unknown(key_id) => {
                self.open_bytes(sealed.as_bytes(), aad.as_bytes())
            }
            other => other,
        }
    }

    /// Opens a sealed secret; see [`Keyring::open`].
    ///
    /// # Errors
    /// Those of [`Keyring::open`], and [`CryptoError::Malformed`] when the plain text is not UTF-8.
    pub fn open_secret(&self, sealed: &Sealed, aad: &Aad) -> Result<Secret, CryptoError> {
        let mut bytes = self.open(sealed, aad)?;
        match String::from_utf8(std::mem::take(&mut *bytes)) {
            Ok(text) => Ok(Secret::new(text)),
            Err(err) => {
                err.into_bytes().zeroize();
                Err(CryptoError::Malformed)
            }
        }
    }

    /// The id of the key that sealed `sealed`, read from its header; `None` when the header is malformed.
    /// Rotation uses it to find values that are not sealed with the current key yet.
    #[must_use]
    pub fn key_id_of(sealed: &Sealed) -> Option<KeyId> {
        Parts::parse(sealed.as_bytes()).ok().map(|parts| parts.key_id)
    }

    /// A known value sealed with the current key, to be stored once per installation. At each start,
    /// [`Keyring::verify_key_check`] then tells a wrong master key apart from damaged data before any secret
    /// is opened. Rotation seals it again with the new key.
    #[must_use]
    pub fn make_key_check(&self) -> Vec<u8> {
        let Sealed(bytes) = self.seal(KEY_CHECK_PLAINTEXT, &Aad(KEY_CHECK_AAD.to_vec()));
        bytes
    }

    /// Checks that a key of the ring opens a key check made by [`Keyring::make_key_check`].
    ///
    /// # Errors
    /// [`CryptoError::WrongKey`] when no key in the ring opens it (naming the id it was sealed with), and
    /// [`CryptoError::Malformed`] when the stored check is not a sealed value at all.
    pub fn verify_key_check(&self, check: &[u8]) -> Result<(), CryptoError> {
        let wrong_key = || CryptoError::WrongKey {
            have: self.key_ids(),
            expected: Parts::parse(check).ok().map(|parts| parts.key_id),
        };
        match self.open_bytes(check, KEY_CHECK_AAD) {
            Ok(plain) if bool::from(plain.as_slice().ct_eq(KEY_CHECK_PLAINTEXT)) => Ok(()),
            Ok(_) | Err(CryptoError::UnknownKey { .. } | CryptoError::Tampered) => Err(wrong_key()),
            Err(other) => Err(other),
        }
    }

    /// A snapshot of the keys, current first.
    fn keys(&self) -> Arc<[MasterKey]> {
        Arc::clone(&self.keys.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Reads the key source again because a value named `key_id`; true when the ring now holds that key.
    fn reload_for_unknown(&self, key_id: KeyId) -> bool {
        let Some(reloader) = &self.reload else { return false };
        {
            let mut last = reloader.last_on_unknown.lock().unwrap_or_else(PoisonError::into_inner);
            if last.is_some_and(|at| at.elapsed() < RELOAD_ON_UNKNOWN_MIN_INTERVAL) {
                return false;
            }
            *last = Some(Instant::now());
        }
        if let Err(err) = self.reload() {
            tracing::warn!(key_id = %key_id, error = %err, "could not read the master keys again to find key {key_id}");
        }
        self.knows(key_id)
    }

    fn open_bytes(&self, sealed: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let parts = Parts::parse(sealed)?;
        let associated = associated_data(parts.prefix, aad);
        let nonce = XNonce::from_slice(parts.nonce);
        let tag = Tag::from_slice(parts.tag);
        let keys = self.keys();
        // Ids are 32 bits, so two keys of one ring could share one; every key with the id is tried.
        let mut candidates = keys.iter().filter(|key| key.id == parts.key_id).peekable();
        if candidates.peek().is_none() {
            return Err(CryptoError::UnknownKey { key_id: parts.key_id });
        }
        for key in candidates {
            let mut buffer = Zeroizing::new(parts.ciphertext.to_vec());
            if key.cipher().decrypt_in_place_detached(nonce, &associated, &mut buffer, tag).is_ok() {
                return Ok(buffer);
            }
        }
        Err(CryptoError::Tampered)
    }
}

impl Clone for Keyring {
    /// A ring with the same keys and the same key source; later reloads of one do not change the other.
    fn clone(&self) -> Self {
        Keyring {
            keys: RwLock::new(self.keys()),
            reload: self
                .reload
                .as_ref()
                .map(|r| Reloader { load: Arc::clone(&r.load), last_on_unknown: Mutex::new(None) }),
        }
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys = self.keys();
        let older: Vec<KeyId> = keys[1..].iter().map(MasterKey::id).collect();
        f.debug_struct("Keyring")
            .field("current", &keys[0].id)
            .field("older", &older)
            .field("reloads", &self.reload.is_some())
            .finish()
    }
}

/// The pieces of a sealed value, borrowed from its bytes.
struct Parts<'a> {
    prefix: &'a [u8],
    key_id: KeyId,
    nonce: &'a [u8],
    ciphertext: &'a [u8],
    tag: &'a [u8],
}

impl<'a> Parts<'a> {
    fn parse(bytes: &'a [u8]) -> Result<Parts<'a>, CryptoError> {
        if bytes.len() < HEADER_LEN + TAG_LEN || bytes[0] != FORMAT_VERSION {
            return Err(CryptoError::Malformed);
        }
        let (header, body) = bytes.split_at(HEADER_LEN);
        let (prefix, nonce) = header.split_at(PREFIX_LEN);
        let (ciphertext, tag) = body.split_at(body.len() - TAG_LEN);
        let key_id = KeyId(u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]));
        Ok(Parts { prefix, key_id, nonce, ciphertext, tag })
    }
}

/// What the AEAD authenticates besides the ciphertext: the version and key id, then the caller's [`Aad`].
/// The prefix has a fixed length, so the concatenation is unambiguous.
fn associated_data(prefix: &[u8], aad: &[u8]) -> Vec<u8> {
    let mut associated = Vec::with_capacity(prefix.len() + aad.len());
    associated.extend_from_slice(prefix);
    associated.extend_from_slice(aad);
    associated
}

#[cfg(test)]
mod tests;
