//! The cryptography of latchkey: sealing secrets at rest, the master key and its file, and the small secret
//! utilities the server needs (random tokens, digests, password hashes).
//!
//! - [`keyring`]: XChaCha20-Poly1305 sealing with key ids and associated data that binds a value to its row.
//! - [`keyfile`]: where the master key comes from (`LATCHKEY_MASTER_KEY` or a key file) and key rotation.
//! - [`tokens`]: random tokens, SHA-256 digests and constant-time comparison.
//! - [`password`]: argon2id password hashes.
//!
//! Errors are [`CryptoError`]; at the crate's border they become [`latchkey_core::Error::Crypto`]. No error
//! message and no `Debug` output ever contains key material or plain text.

pub mod error;
pub mod keyfile;
pub mod keyring;
pub mod password;
pub mod tokens;

pub use error::CryptoError;
pub use keyfile::{KeySource, LoadedKeyring, append_key, load_keyring, read_key_file, remove_key};
pub use keyring::{Aad, KeyId, Keyring, MasterKey};
pub use password::{PasswordMemory, dummy_verify, dummy_verify_in, hash_password, verify_password, verify_password_in};
pub use tokens::{constant_time_eq, digest, random_token};
