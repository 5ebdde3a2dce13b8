//! Password hashing with argon2id (RFC 9106), stored as PHC strings.
//!
//! The parameters are those of the `argon2` crate's defaults (argon2id, version 0x13, 19 MiB of memory, 2
//! passes, 1 lane), which follow the OWASP recommendation. Each hash takes tens of milliseconds of CPU: call
//! these functions from a blocking task, not directly on an async executor.

use argon2::password_hash::{Output, PasswordHash, PasswordHasher as _, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
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

/// The largest memory cost accepted from a stored hash, in KiB (4 × the 19 MiB of ours): a hash asking for more
/// counts as a mismatch instead of making the server allocate whatever it says.
const MAX_MEMORY_KIB: u32 = 4 * 19 * 1024;

/// The working memory of argon2 (19 MiB for our parameters), kept from one check to the next.
///
/// argon2 allocates its memory afresh for every hash, and the system allocator (glibc) keeps such large
/// 64-byte-aligned blocks in its arenas instead of returning them: a server checking passwords one after another
/// grew by hundreds of MiB. Reusing one buffer per concurrent check keeps the memory of password work fixed at
/// the number of checks allowed at once × 19 MiB.
#[derive(Default)]
pub struct PasswordMemory {
    blocks: Vec<Block>,
}

impl std::fmt::Debug for PasswordMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PasswordMemory({} KiB)", self.blocks.len())
    }
}

impl PasswordMemory {
    /// The memory, in KiB, that this buffer holds now (it grows to the largest hash checked, then stays).
    #[must_use]
    pub fn kib(&self) -> usize {
        self.blocks.len()
    }
}

/// Whether `password` matches the PHC string `phc`, with the parameters recorded in it. An unparsable hash
/// counts as a mismatch. Allocates its working memory; a server uses [`verify_password_in`].
#[must_use]
pub fn verify_password(password: &Secret, phc: &str) -> bool {
    verify_password_in(&mut PasswordMemory::default(), password, phc)
}

/// [`verify_password`] with `memory` as argon2's working memory, reused across calls. An unparsable hash, or one
/// that asks for more than 76 MiB, counts as a mismatch.
#[must_use]
pub fn verify_password_in(memory: &mut PasswordMemory, password: &Secret, phc: &str) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (hash.salt, hash.hash) else {
        return false;
    };
    let algorithm = Algorithm::try_from(hash.algorithm);
    let version = hash.version.map_or(Ok(Version::default()), Version::try_from);
    let (Ok(algorithm), Ok(version), Ok(params)) = (algorithm, version, Params::try_from(&hash)) else {
        return false;
    };
    if params.m_cost() > MAX_MEMORY_KIB {
        return false;
    }
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let argon2 = Argon2::new(algorithm, version, params);
    let needed = argon2.params().block_count();
    if memory.blocks.len() < needed {
        memory.blocks.resize(needed, Block::default());
    }
    let mut computed = vec![0u8; expected.len()];
    let hashed = argon2.hash_password_into_with_memory(
        password.expose().as_bytes(),
        salt,
        &mut computed,
        &mut memory.blocks[..needed],
    );
    // `Output`'s equality is constant-time.
    hashed.is_ok() && Output::new(&computed).is_ok_and(|computed| computed == expected)
}

/// Verifies `password` against a fixed hash and throws the answer away. Call it when the username is unknown,
/// so that a login attempt takes as long as one with a known username and a wrong password, and response
/// times do not reveal which usernames exist.
pub fn dummy_verify(password: &Secret) {
    dummy_verify_in(&mut PasswordMemory::default(), password);
}

/// [`dummy_verify`] with reused working memory (see [`verify_password_in`]).
pub fn dummy_verify_in(memory: &mut PasswordMemory, password: &Secret) {
    let _ = std::hint::black_box(verify_password_in(memory, password, DUMMY_HASH));
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
    fn reused_memory_verifies_like_the_argon2_crate_and_does_not_grow() {
        use argon2::PasswordVerifier as _;
        let mut memory = PasswordMemory::default();
        let password = Secret::new("correct horse battery staple");
        let phc = hash_password(&password).expect("hashes");
        let other_params = {
            let params = Params::new(8 * 1024, 1, 1, Some(24)).expect("params");
            let salt = SaltString::generate(&mut OsRng);
            Argon2::new(Algorithm::Argon2i, Version::V0x10, params)
                .hash_password(password.expose().as_bytes(), &salt)
                .expect("hashes")
                .to_string()
        };
        for candidate in [&password, &Secret::new("wrong"), &Secret::new("")] {
            for stored in [phc.as_str(), other_params.as_str(), DUMMY_HASH] {
                let parsed = PasswordHash::new(stored).expect("parses");
                let by_crate = Argon2::default().verify_password(candidate.expose().as_bytes(), &parsed).is_ok();
                assert_eq!(verify_password_in(&mut memory, candidate, stored), by_crate, "{stored}");
            }
        }
        assert!(verify_password_in(&mut memory, &password, &other_params), "argon2i, v=16, 8 MiB, 24-byte output");
        assert_eq!(memory.kib(), 19 * 1024, "the buffer grew to the largest hash and stayed there");
        let greedy = format!("$argon2id$v=19$m={},t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA", 1 << 21);
        assert!(!verify_password_in(&mut memory, &password, &greedy), "a 2 GiB hash is refused, not computed");
        assert_eq!(memory.kib(), 19 * 1024);
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

    #[test]
    fn a_stored_hash_may_ask_for_up_to_76_mib() {
        let password = Secret::new("correct horse battery staple");
        let hash_with = |m_cost: u32| {
            let params = Params::new(m_cost, 1, 1, None).expect("params");
            let salt = SaltString::generate(&mut OsRng);
            Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
                .hash_password(password.expose().as_bytes(), &salt)
                .expect("hashes")
                .to_string()
        };
        let largest = hash_with(MAX_MEMORY_KIB);
        let mut memory = PasswordMemory::default();
        assert!(verify_password_in(&mut memory, &password, &largest), "the largest allowed");
        assert_eq!(memory.kib(), 77_824);
        assert_eq!(format!("{memory:?}"), "PasswordMemory(77824 KiB)");

        let over = largest.replace("m=77824,", "m=77825,");
        let mut memory = PasswordMemory::default();
        assert!(!verify_password_in(&mut memory, &password, &over), "one KiB more");
        assert_eq!(memory.kib(), 0, "refused before any work");
    }

    #[test]
    fn the_dummy_check_does_the_work_of_a_real_one() {
        let mut memory = PasswordMemory::default();
        dummy_verify_in(&mut memory, &Secret::new("someone"));
        assert_eq!(memory.kib(), 19 * 1024, "argon2 ran with the memory of a real hash");
    }
}
