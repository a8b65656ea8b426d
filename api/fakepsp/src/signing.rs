//! `Stripe-Signature` headers, made exactly as Stripe makes them.
//!
//! Stripe signs each delivery attempt: `t=<unix seconds>,v1=<hex>`, where the hex is
//! HMAC-SHA256 keyed with the whole endpoint secret (`whsec_...`, used as raw bytes, not
//! base64-decoded) over `"<t>.<raw body>"`. During a secret rotation Stripe sends one `v1`
//! per active secret, so [`header`] takes several secrets. [`verify`] is the receiving
//! side's check, here so the unit tests pin the format from both ends (the conformance test
//! checks it against the official SDK).

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The `v1` signature: lowercase hex of HMAC-SHA256(secret, `"<timestamp>.<payload>"`).
pub fn signature(secret: &str, timestamp: i64, payload: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    hex(&mac.finalize().into_bytes())
}

/// The whole `Stripe-Signature` header value: `t=<timestamp>` then one `v1=` per secret.
pub fn header(secrets: &[String], timestamp: i64, payload: &[u8]) -> String {
    let mut value = format!("t={timestamp}");
    for secret in secrets {
        value.push_str(",v1=");
        value.push_str(&signature(secret, timestamp, payload));
    }
    value
}

/// Why a header does not verify.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("no t= timestamp in the header")]
    NoTimestamp,
    #[error("no v1= signature in the header")]
    NoSignature,
    #[error("no v1 signature matches")]
    Mismatch,
    #[error("timestamp outside the tolerance")]
    Stale,
}

/// Checks `header` against `payload` with `secret`, as Stripe's SDKs do: any `v1` may
/// match (constant-time compare), and `|now - t|` must be within `tolerance_seconds`.
pub fn verify(secret: &str, header: &str, payload: &[u8], now: i64, tolerance_seconds: i64) -> Result<(), VerifyError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => timestamp = value.parse::<i64>().ok(),
            Some(("v1", value)) => signatures.push(value),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(VerifyError::NoTimestamp)?;
    if signatures.is_empty() {
        return Err(VerifyError::NoSignature);
    }
    let expected = signature(secret, timestamp, payload);
    if !signatures.iter().any(|candidate| constant_time_eq(candidate.as_bytes(), expected.as_bytes())) {
        return Err(VerifyError::Mismatch);
    }
    if (now - timestamp).abs() > tolerance_seconds {
        return Err(VerifyError::Stale);
    }
    Ok(())
}

fn constant_time_eq(left: &[u8], right: &[u8]) -> bool {
    left.len() == right.len() && left.iter().zip(right).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(DIGITS[usize::from(byte >> 4)] as char);
        text.push(DIGITS[usize::from(byte & 0x0f)] as char);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4231 test case 2: pins the HMAC-SHA256 and the hex encoding.
    #[test]
    fn hmac_matches_rfc_4231() {
        let mut mac = HmacSha256::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex(&mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    /// The signed message is "<t>.<body>" keyed with the whole whsec_ string: the same
    /// HMAC computed by hand over the concatenation.
    #[test]
    fn signature_covers_timestamp_dot_body_with_the_whole_secret() {
        let secret = "whsec_test_secret";
        let body = br#"{"id":"evt_1","object":"event"}"#;
        let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(b"1700000000.");
        mac.update(body);
        assert_eq!(signature(secret, 1_700_000_000, body), hex(&mac.finalize().into_bytes()));
        assert_ne!(signature(secret, 1_700_000_001, body), signature(secret, 1_700_000_000, body));
        assert_ne!(signature("whsec_other", 1_700_000_000, body), signature(secret, 1_700_000_000, body));
    }

    #[test]
    fn header_has_one_v1_per_secret_and_verifies() {
        let secrets = vec!["whsec_old".to_string(), "whsec_new".to_string()];
        let body = b"{}";
        let value = header(&secrets, 1000, body);
        assert!(value.starts_with("t=1000,v1="));
        assert_eq!(value.matches("v1=").count(), 2);
        assert_eq!(verify("whsec_old", &value, body, 1000, 300), Ok(()));
        assert_eq!(verify("whsec_new", &value, body, 1299, 300), Ok(()));
        assert_eq!(verify("whsec_wrong", &value, body, 1000, 300), Err(VerifyError::Mismatch));
        assert_eq!(verify("whsec_new", &value, b"{ }", 1000, 300), Err(VerifyError::Mismatch));
        assert_eq!(verify("whsec_new", &value, body, 1301, 300), Err(VerifyError::Stale));
        assert_eq!(verify("whsec_new", "v1=00", body, 1000, 300), Err(VerifyError::NoTimestamp));
        assert_eq!(verify("whsec_new", "t=1000", body, 1000, 300), Err(VerifyError::NoSignature));
    }
}
