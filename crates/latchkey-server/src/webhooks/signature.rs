//! The signature of a webhook delivery: HMAC-SHA256 (RFC 2104) keyed with the user's signing secret, over
//! `"{t}.{body}"`, sent as `Latchkey-Signature: t=<unix seconds>,v1=<lowercase hex>`. Binding the timestamp lets
//! receivers refuse replays of an old delivery (docs/webhooks.md).

use hmac::{Hmac, Mac};
use latchkey_core::{Secret, Timestamp};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The `Latchkey-Signature` header value for `body` sent at `at`.
#[must_use]
pub fn sign(secret: &Secret, at: Timestamp, body: &[u8]) -> String {
    format!("t={},v1={}", at.secs(), hex::encode(mac(secret, at.secs(), body).finalize().into_bytes()))
}

/// Whether `header` is a valid signature of `body` by `secret`, made at most `tolerance_secs` from `now`.
#[must_use]
pub fn verify(secret: &Secret, header: &str, body: &[u8], now: Timestamp, tolerance_secs: i64) -> bool {
    let mut t = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => t = value.parse::<i64>().ok(),
            Some(("v1", value)) => signatures.extend(hex::decode(value).ok()),
            _ => {}
        }
    }
    let Some(t) = t else { return false };
    if (now.secs() - t).abs() > tolerance_secs {
        return false;
    }
    signatures.iter().any(|sig| mac(secret, t, body).verify_slice(sig).is_ok())
}

fn mac(secret: &Secret, t: i64, body: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length; this cannot fail.
    let mut mac = HmacSha256::new_from_slice(secret.expose().as_bytes()).unwrap_or_else(|_| unreachable!());
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_bind_body_secret_and_time() {
        let secret = Secret::new("whsec_test");
        let at = Timestamp(1_700_000_000);
        let header = sign(&secret, at, br#"{"id":"1"}"#);
        assert!(header.starts_with("t=1700000000,v1="), "{header}");
        assert!(verify(&secret, &header, br#"{"id":"1"}"#, at.plus_secs(60), 300));
        assert!(!verify(&secret, &header, br#"{"id":"2"}"#, at, 300), "another body");
        assert!(!verify(&Secret::new("whsec_other"), &header, br#"{"id":"1"}"#, at, 300), "another secret");
        assert!(!verify(&secret, &header, br#"{"id":"1"}"#, at.plus_secs(301), 300), "too old: a replay");
        assert!(!verify(&secret, "v1=00", b"", at, 300), "no timestamp");
    }

    #[test]
    fn matches_an_independent_computation() {
        // HMAC-SHA256(key = "key", message = "1.{}"), computed with another tool.
        let header = sign(&Secret::new("key"), Timestamp(1), b"{}");
        let expected = {
            let mut mac = HmacSha256::new_from_slice(b"key").expect("key");
            mac.update(b"1.{}");
            hex::encode(mac.finalize().into_bytes())
        };
        assert_eq!(header, format!("t=1,v1={expected}"));
    }
}
