//! The errors of sealing, key loading and password hashing.
//!
//! Every message is a sentence a person can act on. None contains key material, plain text, or the text of a
//! rejected key: at most a key id, a path, a line number or a length.

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::keyring::KeyId;

/// What went wrong while sealing, opening, loading a key or hashing a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The sealed bytes are too short, carry an unknown format version, or open to text that is not UTF-8.
    #[error(
        "a sealed value is malformed (too short, or an unknown format version): the stored data is damaged \
         or was not written by this version of latchkey"
    )]
    Malformed,

    /// The value was sealed with a key that is not in the key ring.
    #[error(
        "a value was sealed with master key {key_id}, which is not in the key ring: add that key to the key \
         file as an older line (or start latchkey with it) so the value can be opened"
    )]
    UnknownKey {
        /// The id recorded in the sealed value's header.
        key_id: KeyId,
    },

    /// The authentication tag did not verify: the bytes were altered, or the value was copied from another
    /// row or column (its associated data differs).
    #[error(
        "a sealed value failed authentication: it was altered, or copied from another row or column; it \
         cannot be trusted and must be stored again"
    )]
    Tampered,

    /// No key in the ring opens the installation's key check: latchkey was started with the wrong master key.
    #[error("{}", wrong_key_message(have, *expected))]
    WrongKey {
        /// The ids of the keys in the ring.
        have: Vec<KeyId>,
        /// The id the key check was sealed with, when its header could be read.
        expected: Option<KeyId>,
    },

    /// A master key could not be used: bad base64, wrong length, or a bad line in the key file. The message
    /// says where and why, never what the text was.
    #[error("{0}")]
    BadKey(String),

    /// A file or directory could not be read or written.
    #[error("{}: {message}", path.display())]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// What failed and what to do about it.
        message: String,
    },

    /// A password could not be hashed (argon2 refused its input).
    #[error("could not hash the password: {0}")]
    PasswordHash(String),
}

impl CryptoError {
    /// An [`CryptoError::Io`] built from a failed file operation: `action` says what was attempted ("cannot
    /// read the key file"); the operating system's reason follows.
    pub(crate) fn io(path: impl Into<PathBuf>, action: &str, err: &std::io::Error) -> Self {
        let hint = match err.kind() {
            std::io::ErrorKind::PermissionDenied => ": check the owner and permissions",
            _ => "",
        };
        Self::Io { path: path.into(), message: format!("{action} ({err}){hint}") }
    }
}

fn wrong_key_message(have: &[KeyId], expected: Option<KeyId>) -> String {
    let mut ids = String::new();
    for (i, id) in have.iter().enumerate() {
        if i > 0 {
            ids.push_str(", ");
        }
        let _ = write!(ids, "{id}");
    }
    let sealed_with = match expected {
        Some(id) => format!("the database was sealed with key {id}, "),
        None => String::new(),
    };
    format!(
        "the master key does not match this database ({sealed_with}the key ring holds {ids}): start latchkey \
         with the master key it was created with (LATCHKEY_MASTER_KEY or --master-key-file)"
    )
}

impl From<CryptoError> for latchkey_core::Error {
    fn from(err: CryptoError) -> Self {
        Self::Crypto(err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_key_names_both_sides() {
        let err = CryptoError::WrongKey { have: vec![KeyId(1), KeyId(0xab)], expected: Some(KeyId(0xdead_beef)) };
        let text = err.to_string();
        assert!(text.contains("sealed with key deadbeef"), "{text}");
        assert!(text.contains("holds 00000001, 000000ab"), "{text}");
        assert!(text.contains("LATCHKEY_MASTER_KEY"), "{text}");
    }

    #[test]
    fn a_refused_file_operation_hints_at_permissions() {
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let err = CryptoError::io("/keys/master.key", "cannot read the key file", &denied);
        let CryptoError::Io { path, message } = &err else { panic!("an Io error: {err:?}") };
        assert_eq!(path, &PathBuf::from("/keys/master.key"));
        assert!(message.starts_with("cannot read the key file ("), "{message}");
        assert!(message.ends_with("): check the owner and permissions"), "{message}");

        let missing = std::io::Error::from(std::io::ErrorKind::NotFound);
        let err = CryptoError::io("/keys/master.key", "cannot read the key file", &missing);
        assert!(!err.to_string().contains("permissions"), "{err}");
    }

    #[test]
    fn becomes_a_core_crypto_error() {
        let err: latchkey_core::Error = CryptoError::Tampered.into();
        assert!(matches!(err, latchkey_core::Error::Crypto(ref m) if m.contains("failed authentication")));
        assert_eq!(err.http_status(), 500);
    }
}
