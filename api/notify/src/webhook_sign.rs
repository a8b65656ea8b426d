//! Standard Webhooks signatures (standardwebhooks.com): the headers `webhook-id`,
//! `webhook-timestamp` (Unix seconds) and `webhook-signature: v1,<base64>`, where the
//! signature is HMAC-SHA256 over `"{id}.{timestamp}.{body}"`.
//!
//! The secret is written `whsec_<base64>` and the HMAC key is the base64-**decoded** bytes
//! (Stripe, by contrast, keys with the whole `whsec_…` string: see the API's
//! `payments/signature.rs`). The verifier (for tests, and for anyone receiving hakken's
//! webhooks in Rust) accepts any of several space-separated signatures, so a receiver can
//! rotate secrets, checks the timestamp against a tolerance, and compares in constant time.

use std::fmt;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::{alphabet, Engine};
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const WEBHOOK_ID: &str = "webhook-id";
pub const WEBHOOK_TIMESTAMP: &str = "webhook-timestamp";
pub const WEBHOOK_SIGNATURE: &str = "webhook-signature";

/// The secret's prefix, as the Standard Webhooks libraries write and read it.
pub const SECRET_PREFIX: &str = "whsec_";

/// Key sizes the specification recommends (24 to 64 random bytes): shorter is a weak key,
/// longer is a configuration mistake (a secret pasted twice).
pub const SECRET_BYTES_MIN: usize = 24;
pub const SECRET_BYTES_MAX: usize = 64;

/// How far a timestamp may be from now before [`verify`] refuses it, the libraries' default.
pub const TOLERANCE_SECONDS: u64 = 300;

/// Secrets are written with or without `=` padding; both decode.
const SECRET_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

type HmacSha256 = Hmac<Sha256>;

/// A signing key. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret {
    key: Vec<u8>,
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("WebhookSecret(redacted)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookSecretError {
    #[error("a webhook secret starts with \"whsec_\" followed by base64")]
    MissingPrefix,
    #[error("the webhook secret after \"whsec_\" is not valid base64")]
    NotBase64,
    #[error("the webhook secret is {bytes} bytes; give {SECRET_BYTES_MIN} to {SECRET_BYTES_MAX} random bytes")]
    BadLength { bytes: usize },
}

/// The three headers of one signed delivery, as header values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    pub id: String,
    pub timestamp: String,
    /// `v1,<base64>`.
    pub signature: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the webhook-timestamp header is not Unix seconds")]
    BadTimestamp,
    #[error("the webhook-timestamp is {skew_seconds} s from now, more than the {tolerance_seconds} s tolerated")]
    OutsideTolerance { skew_seconds: u64, tolerance_seconds: u64 },
    #[error("no v1 signature in the webhook-signature header matches")]
    NoMatch,
}

impl WebhookSecret {
    /// Parses `whsec_<base64>`; the key is the decoded bytes.
    pub fn parse(text: &str) -> Result<WebhookSecret, WebhookSecretError> {
        let encoded = text.trim().strip_prefix(SECRET_PREFIX).ok_or(WebhookSecretError::MissingPrefix)?;
        let key = SECRET_BASE64.decode(encoded).map_err(|_| WebhookSecretError::NotBase64)?;
        if !(SECRET_BYTES_MIN..=SECRET_BYTES_MAX).contains(&key.len()) {
            return Err(WebhookSecretError::BadLength { bytes: key.len() });
        }
        Ok(WebhookSecret { key })
    }

    /// The secret written back as `whsec_<base64>` (for tests and for showing a new secret
    /// to its owner once).
    pub fn to_text(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(&self.key))
    }

    fn mac(&self, id: &str, timestamp: &str, body: &[u8]) -> HmacSha256 {
        // HMAC takes keys of any length: `new_from_slice` fails only for fixed-size MACs.
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes keys of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }

    /// The `v1,<base64>` signature of one delivery.
    pub fn signature(&self, id: &str, timestamp_unix_s: i64, body: &[u8]) -> String {
        let digest = self.mac(id, &timestamp_unix_s.to_string(), body).finalize().into_bytes();
        format!("v1,{}", STANDARD.encode(digest))
    }

    /// The three headers of one delivery signed at `timestamp_unix_s`.
    pub fn sign(&self, id: &str, timestamp_unix_s: i64, body: &[u8]) -> SignedHeaders {
        SignedHeaders {
            id: id.to_string(),
            timestamp: timestamp_unix_s.to_string(),
            signature: self.signature(id, timestamp_unix_s, body),
        }
    }
}

/// Checks a delivery as a receiver does: the timestamp within `tolerance_seconds` of
/// `now_unix_s`, then any `v1,` signature of the space-separated header matching any of
/// `secrets`, compared in constant time. Other versions (`v1a,…`) are skipped.
pub fn verify(
    secrets: &[WebhookSecret],
    headers: &SignedHeaders,
    body: &[u8],
    now_unix_s: i64,
    tolerance_seconds: u64,
) -> Result<(), SignatureError> {
    let timestamp: i64 = headers.timestamp.trim().parse().map_err(|_| SignatureError::BadTimestamp)?;
    let skew_seconds = timestamp.abs_diff(now_unix_s);
    if skew_seconds > tolerance_seconds {
        return Err(SignatureError::OutsideTolerance { skew_seconds, tolerance_seconds });
    }
    let candidates: Vec<Vec<u8>> = headers
        .signature
        .split(' ')
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|encoded| STANDARD.decode(encoded).ok())
        .collect();
    for secret in secrets {
        let mac = secret.mac(&headers.id, headers.timestamp.trim(), body);
        // `verify_slice` compares in constant time; a clone per candidate keeps it so.
        if candidates.iter().any(|candidate| mac.clone().verify_slice(candidate).is_ok()) {
            return Ok(());
        }
    }
    Err(SignatureError::NoMatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks reference libraries (and Svix's documentation).
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TIMESTAMP: i64 = 1_614_265_330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn secret() -> WebhookSecret {
        WebhookSecret::parse(SECRET).expect("test secret")
    }

    #[test]
    fn signs_the_reference_vector() {
        let headers = secret().sign(ID, TIMESTAMP, BODY);
        assert_eq!(
            headers,
            SignedHeaders { id: ID.into(), timestamp: TIMESTAMP.to_string(), signature: SIGNATURE.into() }
        );
        assert_eq!(secret().to_text(), SECRET);
    }

    #[test]
    fn verifies_any_matching_signature_within_tolerance() {
        let headers = secret().sign(ID, TIMESTAMP, BODY);
        assert_eq!(verify(&[secret()], &headers, BODY, TIMESTAMP + 10, TOLERANCE_SECONDS), Ok(()));
        // Rotation: an old signature beside the new one, and the receiver knowing both secrets.
        let other = WebhookSecret::parse(&format!("whsec_{}", STANDARD.encode([7u8; 32]))).expect("other secret");
        let both = SignedHeaders {
            signature: format!("v1a,ignored {} {}", other.signature(ID, TIMESTAMP, BODY), headers.signature),
            ..headers.clone()
        };
        assert_eq!(verify(&[secret()], &both, BODY, TIMESTAMP, TOLERANCE_SECONDS), Ok(()));
        assert_eq!(verify(&[other.clone(), secret()], &headers, BODY, TIMESTAMP, TOLERANCE_SECONDS), Ok(()));
        assert_eq!(verify(&[other], &headers, BODY, TIMESTAMP, TOLERANCE_SECONDS), Err(SignatureError::NoMatch));
    }

    #[test]
    fn refuses_tampering_and_stale_timestamps() {
        let headers = secret().sign(ID, TIMESTAMP, BODY);
        let check =
            |headers: &SignedHeaders, body: &[u8], now| verify(&[secret()], headers, body, now, TOLERANCE_SECONDS);
        assert_eq!(check(&headers, br#"{"test": 2432232315}"#, TIMESTAMP), Err(SignatureError::NoMatch));
        let other_id = SignedHeaders { id: "msg_other".into(), ..headers.clone() };
        assert_eq!(check(&other_id, BODY, TIMESTAMP), Err(SignatureError::NoMatch));
        assert_eq!(
            check(&headers, BODY, TIMESTAMP + 301),
            Err(SignatureError::OutsideTolerance { skew_seconds: 301, tolerance_seconds: 300 })
        );
        assert!(matches!(check(&headers, BODY, TIMESTAMP - 301), Err(SignatureError::OutsideTolerance { .. })));
        let bad_time = SignedHeaders { timestamp: "soon".into(), ..headers.clone() };
        assert_eq!(check(&bad_time, BODY, TIMESTAMP), Err(SignatureError::BadTimestamp));
        let garbage = SignedHeaders { signature: "v1,***".into(), ..headers };
        assert_eq!(check(&garbage, BODY, TIMESTAMP), Err(SignatureError::NoMatch));
    }

    #[test]
    fn parses_secrets_strictly() {
        assert_eq!(WebhookSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), Err(WebhookSecretError::MissingPrefix));
        assert_eq!(WebhookSecret::parse("whsec_not base64!"), Err(WebhookSecretError::NotBase64));
        assert_eq!(WebhookSecret::parse("whsec_c2hvcnQ="), Err(WebhookSecretError::BadLength { bytes: 5 }));
        // Unpadded and padded forms are the same key.
        let padded = format!("whsec_{}", STANDARD.encode([1u8; 25]));
        let unpadded = padded.trim_end_matches('=').to_string();
        assert_eq!(WebhookSecret::parse(&padded), WebhookSecret::parse(&unpadded));
        assert_eq!(format!("{:?}", secret()), "WebhookSecret(redacted)");
    }
}
