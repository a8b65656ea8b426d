//! Buyers' personal data at rest: sealed by the API, opaque to the engine.
//!
//! A buyer's name and email are sealed ([`seal`]: envelope encryption, a fresh data
//! key per order wrapped under a configured master key, [`keys`]) before they reach the
//! engine, so the WAL, snapshots and backups hold only ciphertext; the stored answers of
//! `Idempotency-Key` requests (which may carry an order view) are sealed the same way.
//! Every place that shows the data opens the blob here: a blob that does not open (its
//! key retired, the bytes damaged) shows the buyer as unreadable, never an error to the
//! caller; an erased buyer (an empty blob) as erased. Failures are counted
//! (`hakken_privacy_open_failures_total{reason}`); names and emails are never logged.
//!
//! Architecture invariant: the engine never sees buyer data in the clear and has no
//! cipher; the API is the only crate that holds master keys.

pub mod keys;
pub mod seal;

use hakken_engine::inventory::Buyer;
use serde::{Deserialize, Serialize};

pub use keys::{Keyring, KeyringError, DEMO_KEY_BASE64};
pub use seal::{OpenError, Purpose};

/// Blobs that did not open, by reason (`unknown_key`, `damaged`).
pub const OPEN_FAILURES_TOTAL: &str = "hakken_privacy_open_failures_total";

/// A buyer's personal data, as sealed (JSON inside the blob).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuyerData {
    pub name: String,
    pub email: String,
}

/// What can be shown of an order's buyer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Shown {
    Readable(BuyerData),
    /// Erased by an admin (crypto-shredded): gone for good.
    Erased,
    /// Sealed, but no configured key opens it (a retired key, or damage).
    Unreadable,
}

impl Shown {
    pub fn name(&self) -> &str {
        match self {
            Shown::Readable(data) => &data.name,
            Shown::Erased | Shown::Unreadable => "",
        }
    }
}

/// The master keys and the seal and open operations on them.
#[derive(Debug)]
pub struct Privacy {
    keyring: Keyring,
}

impl Privacy {
    pub fn new(keyring: Keyring) -> Privacy {
        Privacy { keyring }
    }

    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// Seals a buyer's data under the active key.
    pub fn seal_buyer(&self, data: &BuyerData) -> Vec<u8> {
        let plaintext = serde_json::to_vec(data).expect("two strings serialize");
        seal::seal(&self.keyring, Purpose::Buyer, &plaintext)
    }

    /// Opens an order's buyer data.
    pub fn open_buyer(&self, sealed: &[u8]) -> Result<BuyerData, OpenError> {
        let opened = seal::open(&self.keyring, Purpose::Buyer, sealed)
            .and_then(|plaintext| serde_json::from_slice(&plaintext).map_err(|_| OpenError::Damaged));
        opened.inspect_err(count_failure)
    }

    /// What can be shown of `buyer`.
    pub fn show(&self, buyer: &Buyer) -> Shown {
        if buyer.is_erased() {
            return Shown::Erased;
        }
        match self.open_buyer(&buyer.sealed) {
            Ok(data) => Shown::Readable(data),
            Err(_) => Shown::Unreadable,
        }
    }

    /// Seals the body of a stored idempotent answer.
    pub fn seal_answer(&self, body: &[u8]) -> Vec<u8> {
        seal::seal(&self.keyring, Purpose::StoredAnswer, body)
    }

    pub fn open_answer(&self, sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
        seal::open(&self.keyring, Purpose::StoredAnswer, sealed).inspect_err(count_failure)
    }

    /// A buyer blob sealed afresh under the active key, `None` if it already is.
    pub fn reseal_buyer(&self, sealed: &[u8]) -> Result<Option<Vec<u8>>, OpenError> {
        seal::reseal(&self.keyring, Purpose::Buyer, sealed).inspect_err(count_failure)
    }
}

fn count_failure(error: &OpenError) {
    metrics::counter!(OPEN_FAILURES_TOTAL, "reason" => error.reason()).increment(1);
}

/// Whether `given` is the buyer's email: trimmed, ASCII case-insensitive, compared
/// without an early exit on the first differing byte (a timing side channel would let
/// a caller learn the email a byte at a time).
pub fn email_matches(data: &BuyerData, given: &str) -> bool {
    let (expected, given) = (data.email.trim().as_bytes(), given.trim().as_bytes());
    let mut difference = u8::from(expected.len() != given.len());
    for index in 0..expected.len().max(given.len()) {
        let left = expected.get(index).map_or(0, u8::to_ascii_lowercase);
        let right = given.get(index).map_or(0xff, u8::to_ascii_lowercase);
        difference |= left ^ right;
    }
    difference == 0
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn privacy() -> Privacy {
        Privacy::new(Keyring::parse(&[format!("demo:{DEMO_KEY_BASE64}")], "demo").unwrap())
    }

    #[test]
    fn buyers_are_shown_readable_erased_or_unreadable() {
        let privacy = privacy();
        let data = BuyerData { name: "Ana Lima".into(), email: "ana@example.com".into() };
        let sealed = privacy.seal_buyer(&data);
        let buyer = |sealed: &[u8]| Buyer { sealed: Arc::from(sealed), ..Buyer::default() };
        assert_eq!(privacy.show(&buyer(&sealed)), Shown::Readable(data));
        assert_eq!(privacy.show(&buyer(b"")), Shown::Erased);
        assert_eq!(privacy.show(&buyer(&sealed[..sealed.len() - 1])), Shown::Unreadable);
        assert_eq!(privacy.open_answer(&sealed), Err(OpenError::Damaged), "a buyer blob is no answer");
        let answer = privacy.seal_answer(b"{\"order\":{}}");
        assert_eq!(privacy.open_answer(&answer).unwrap(), b"{\"order\":{}}");
    }

    #[test]
    fn emails_match_trimmed_and_case_insensitively_only() {
        let data = BuyerData { name: String::new(), email: "Ana@Example.com".into() };
        for (given, expected) in [
            (" ana@example.COM ", true),
            ("ana@example.com", true),
            ("ana@example.co", false),
            ("ana@example.comm", false),
            ("bob@example.com", false),
            ("", false),
        ] {
            assert_eq!(email_matches(&data, given), expected, "{given:?}");
        }
    }
}
