//! Password hashing with argon2id (RFC 9106), stored as PHC strings.
//!
//! The parameters are those of the `argon2` crate's defaults (argon2id, version 0x13, 19 MiB of memory, 2
//! passes, 1 lane), which follow the OWASP recommendation. Each hash takes tens of milliseconds of CPU: call
//! these functions from a blocking task, not directly on an async executor.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use latchkey_core::Secret;
use rand::rngs::OsRng;

use crate::error::CryptoError;

/// The hash, made by [`hash_password`], of a random password that was thrown away: [`dummy_verify`] checks
/// against it so that it costs what a real verification costs.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$+LDBxeK71M8S9k84n7ueNg$tzyaZX8/GL6S4pjUYMj2fzTuO+EbUQRGURWVvGhi/Gs";

/// Hashes a password with argon2id and a random 16-byte salt, giving a PHC string
/// (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`) that records its own parameters.
///
/// # Errors
/// [`CryptoError::PasswordHash`] when argon2 refuses the input (a password longer than 4 GiB).
pub fn hash_password(password: &Secret) -> Result<String, CryptoError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.expose().as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|err| CryptoError::PasswordHash(err.to_string()))
}

/// Whether `password` matches the PHC string `phc`, with the parameters recorded in it. An unparsable hash
/// counts as a mismatch.
#[must_use]
pub fn verify_password(password: &Secret, phc: &str) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    Argon2::default().verify_password(password.expose().as_bytes(), &hash).is_ok()
}

/// Verifies `password` against a fixed hash and throws the answer away. Call it when the username is unknown,
/// so that a login attempt takes as long as one with a known username and a wrong password, and response
/// times do not reveal which usernames exist.
pub fn dummy_verify(password: &Secret) {
    let _ = std::hint::black_box(verify_password(password, DUMMY_HASH));
}

#[cfg(test)]
mod tests {
    use argon2::Params;

    use super::*;

    #[test]
    fn hash_then_verify() {
        let password = Secret::new("correct horse battery staple");
        let phc = hash_password(&password).expect("hashes");
        assert!(phc.starts_with("$argon2id$v=19$"), "{phc}");
        assert!(!phc.contains(password.expose()));
        assert!(verify_password(&password, &phc));
        assert!(!verify_password(&Secret::new("correct horse battery stapler"), &phc));
        assert_ne!(hash_password(&password).expect("hashes"), phc, "salts are random");
    }

    #[test]
    fn unparsable_hashes_never_verify() {
        let password = Secret::new("anything");
        for phc in ["", "not a hash", "$argon2id$v=19$m=19456,t=2,p=1$short", "$plain$anything"] {
            assert!(!verify_password(&password, phc), "{phc}");
        }
    }

    #[test]
    fn dummy_hash_uses_the_same_parameters_as_real_hashes() {
        let dummy = PasswordHash::new(DUMMY_HASH).expect("the dummy hash parses");
        let real_phc = hash_password(&Secret::new("x")).expect("hashes");
        let real = PasswordHash::new(&real_phc).expect("parses");
        assert_eq!(dummy.algorithm, real.algorithm);
        assert_eq!(dummy.version, real.version);
        assert_eq!(Params::try_from(&dummy).ok(), Params::try_from(&real).ok());
        assert_eq!(dummy.salt.map(|salt| salt.len()), real.salt.map(|salt| salt.len()));
        assert_eq!(dummy.hash.map(|hash| hash.len()), real.hash.map(|hash| hash.len()));
        assert!(!verify_password(&Secret::new(""), DUMMY_HASH));
        dummy_verify(&Secret::new("someone"));
    }
}
