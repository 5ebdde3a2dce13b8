//! High-entropy secrets (API keys, authorization links, OAuth `state`, session ids) and their digests.
//!
//! Such secrets are stored only as SHA-256 digests: they are random enough that a plain hash cannot be
//! reversed, and a lookup by digest needs no salt. Passwords are different; see [`crate::password`].

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use latchkey_core::model::Digest;
use rand::RngCore as _;
use rand::rngs::OsRng;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

/// `bytes` random bytes from the operating system, encoded as URL-safe base64 without padding (RFC 4648
/// section 5), so the token fits in URLs, headers and cookies unescaped. 32 bytes give 256 bits of entropy and
/// 43 characters.
#[must_use]
pub fn random_token(bytes: usize) -> String {
    let mut raw = Zeroizing::new(vec![0_u8; bytes]);
    OsRng.fill_bytes(&mut raw);
    URL_SAFE_NO_PAD.encode(raw.as_slice())
}

/// The SHA-256 digest (FIPS 180-4) of a token's UTF-8 bytes, the form in which tokens are stored and looked up.
#[must_use]
pub fn digest(value: &str) -> Digest {
    Digest(Sha256::digest(value.as_bytes()).into())
}

/// Whether `a` and `b` are equal, in time that depends only on their lengths, not on where they differ.
/// Use it to compare secrets (CSRF tokens, for instance) that are not looked up by digest.
#[must_use]
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_the_expected_length_and_alphabet() {
        for bytes in [0, 1, 16, 32, 33] {
            let token = random_token(bytes);
            assert_eq!(token.len(), (bytes * 4).div_ceil(3), "{bytes} bytes");
            assert!(token.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'), "{token}");
            assert_eq!(URL_SAFE_NO_PAD.decode(&token).map(|raw| raw.len()), Ok(bytes));
        }
        assert_eq!(random_token(32).len(), 43);
        assert_ne!(random_token(32), random_token(32));
    }

    #[test]
    fn digest_is_sha256() {
        // FIPS 180-2, appendix B.1: SHA-256("abc").
        let expected = [
            0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03,
            0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad,
        ];
        assert_eq!(digest("abc"), Digest(expected));
        assert_ne!(digest("abc"), digest("abd"));
    }

    #[test]
    fn constant_time_eq_compares_content_and_length() {
        assert!(constant_time_eq(b"csrf-token", b"csrf-token"));
        assert!(!constant_time_eq(b"csrf-token", b"csrf-tokeN"));
        assert!(!constant_time_eq(b"csrf-token", b"csrf-toke"));
        assert!(constant_time_eq(b"", b""));
    }
}
