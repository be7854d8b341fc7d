//! Airwallex webhook signatures: hex HMAC-SHA256 over the `x-timestamp` header value
//! followed by the raw body, keyed with the webhook secret.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The `x-signature` value for a timestamp and body.
pub fn sign(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(timestamp.as_bytes());
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Checks a signature in constant time. A signature that is not hex never verifies.
pub fn verify(secret: &[u8], timestamp: &str, body: &[u8], signature: &str) -> bool {
    let Ok(given) = hex::decode(signature.trim()) else {
        return false;
    };
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(timestamp.as_bytes());
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_with_its_secret_timestamp_and_body() {
        let sig = sign(b"whsec", "1700000000000", b"{\"a\":1}");
        assert_eq!(sig.len(), 64);
        assert!(verify(b"whsec", "1700000000000", b"{\"a\":1}", &sig));
        assert!(!verify(b"other", "1700000000000", b"{\"a\":1}", &sig));
        assert!(!verify(b"whsec", "1700000000001", b"{\"a\":1}", &sig));
        assert!(!verify(b"whsec", "1700000000000", b"{\"a\":2}", &sig));
        assert!(!verify(b"whsec", "1700000000000", b"{\"a\":1}", "not hex"));
    }

    #[test]
    fn matches_an_independent_hmac_computation() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?"
        let sig = sign(b"Jefe", "what do ya want ", b"for nothing?");
        assert_eq!(sig, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }
}
