//! The two texts a waiting room hands out: a buyer's place token, and the access an
//! admitted buyer makes a hold with.
//!
//! ```text
//! place  = "HQ1." base64url(event_len u8 | event | place u32 BE | tag)
//!          tag = first 16 bytes of HMAC-SHA256(place key, "hakken-queue-v1\0" | payload)
//!          place key = SHA-256("hakken-queue-key-v1\0" | event key seed)
//! access = "HA1." base64url(payload | signature)
//!          payload = event_len u8 | event | customer_len u8 | customer
//!                    | place u32 BE | expires_at_ms u64 BE
//!          signature = Ed25519(event key, "hakken-access-v1\0" | payload)
//! ```
//!
//! A poll is the hot path (every waiting buyer, every few seconds), so a place token is
//! checked by an HMAC tag, a microsecond; only the server can make or check one. An
//! access is made once per admitted buyer and checked once per hold, so it is signed
//! with the event's Ed25519 key (as ticket codes are), bound to the customer, the event
//! and the place, and time-limited. base64url is unpadded and strict (one text per
//! token); the lengths are checked before anything is decoded.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::PlaceNumber;
use crate::clock::Millis;
use crate::tickets::code::{EventKey, PublicKey};

const PLACE_PREFIX: &str = "HQ1.";
const ACCESS_PREFIX: &str = "HA1.";
const PLACE_CONTEXT: &[u8] = b"hakken-queue-v1\0";
const PLACE_KEY_CONTEXT: &[u8] = b"hakken-queue-key-v1\0";
const ACCESS_CONTEXT: &[u8] = b"hakken-access-v1\0";
const TAG_BYTES: usize = 16;
const SIGNATURE_BYTES: usize = 64;
/// Longest event id and customer id a token carries (the API's bounds are lower).
const ID_BYTES_MAX: usize = 255;
/// Longest token texts: longer ones are refused before they are decoded.
pub const PLACE_TOKEN_BYTES_MAX: usize = 4 + (1 + ID_BYTES_MAX + 4 + TAG_BYTES).div_ceil(3) * 4;
pub const ACCESS_TOKEN_BYTES_MAX: usize = 4 + (2 + 2 * ID_BYTES_MAX + 12 + SIGNATURE_BYTES).div_ceil(3) * 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("not a token of this kind")]
    Malformed,
    #[error("the token's check failed")]
    BadTag,
}

/// Makes and checks an event's place tokens.
pub struct PlaceTokens {
    key: [u8; 32],
}

impl PlaceTokens {
    /// The place key derived from the event's signing-key seed.
    pub fn new(event_key_seed: &[u8; 32]) -> PlaceTokens {
        let key = Sha256::new().chain_update(PLACE_KEY_CONTEXT).chain_update(event_key_seed).finalize();
        PlaceTokens { key: key.into() }
    }

    pub fn make(&self, event: &str, place: PlaceNumber) -> String {
        let mut bytes = place_payload(event, place);
        let tag = self.tag(&bytes);
        bytes.extend_from_slice(&tag);
        format!("{PLACE_PREFIX}{}", URL_SAFE_NO_PAD.encode(&bytes))
    }

    /// The place `token` stands for, if this key made it for `event`.
    pub fn check(&self, event: &str, token: &str) -> Result<PlaceNumber, TokenError> {
        let (token_event, place) = read_place_token(token)?;
        let bytes = decode(token, PLACE_PREFIX, PLACE_TOKEN_BYTES_MAX)?;
        let (payload, tag) = bytes.split_at(bytes.len() - TAG_BYTES);
        if token_event != event {
            return Err(TokenError::BadTag);
        }
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
        mac.update(PLACE_CONTEXT);
        mac.update(payload);
        mac.verify_truncated_left(tag).map_err(|_| TokenError::BadTag)?;
        Ok(place)
    }

    fn tag(&self, payload: &[u8]) -> [u8; TAG_BYTES] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
        mac.update(PLACE_CONTEXT);
        mac.update(payload);
        mac.finalize().into_bytes()[..TAG_BYTES].try_into().expect("16 bytes")
    }
}

/// The event a place token names (unchecked: only to find the key that checks it) and
/// its place.
pub fn read_place_token(token: &str) -> Result<(String, PlaceNumber), TokenError> {
    let bytes = decode(token, PLACE_PREFIX, PLACE_TOKEN_BYTES_MAX)?;
    let (event, rest) = read_id(&bytes)?;
    let rest: [u8; 4 + TAG_BYTES] = rest.try_into().map_err(|_| TokenError::Malformed)?;
    let place = u32::from_be_bytes(rest[..4].try_into().expect("4 bytes"));
    Ok((event, place))
}

fn place_payload(event: &str, place: PlaceNumber) -> Vec<u8> {
    let mut bytes = id_bytes(event);
    bytes.extend_from_slice(&place.to_be_bytes());
    bytes
}

/// What an access says: who may make one hold for which event, from which place, until when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Access {
    pub event: String,
    pub customer: String,
    pub place: PlaceNumber,
    pub expires_at: Millis,
}

pub fn sign_access(key: &EventKey, access: &Access) -> String {
    let mut bytes = access_payload(access);
    let signature = key.sign_in_context(ACCESS_CONTEXT, &bytes);
    bytes.extend_from_slice(&signature);
    format!("{ACCESS_PREFIX}{}", URL_SAFE_NO_PAD.encode(&bytes))
}

/// The event an access names, unchecked: only to find the key that checks it.
pub fn read_access_event(token: &str) -> Result<String, TokenError> {
    let bytes = decode(token, ACCESS_PREFIX, ACCESS_TOKEN_BYTES_MAX)?;
    Ok(read_id(&bytes)?.0)
}

/// The access `token` says, if `key` signed it. Expiry and binding are the caller's
/// to check against the request.
pub fn verify_access(key: &PublicKey, token: &str) -> Result<Access, TokenError> {
    let bytes = decode(token, ACCESS_PREFIX, ACCESS_TOKEN_BYTES_MAX)?;
    let signature_start = bytes.len().checked_sub(SIGNATURE_BYTES).ok_or(TokenError::Malformed)?;
    let (payload, signature) = bytes.split_at(signature_start);
    let (event, rest) = read_id(payload)?;
    let (customer, rest) = read_id(rest)?;
    let rest: [u8; 12] = rest.try_into().map_err(|_| TokenError::Malformed)?;
    let access = Access {
        event,
        customer,
        place: u32::from_be_bytes(rest[..4].try_into().expect("4 bytes")),
        expires_at: Millis(u64::from_be_bytes(rest[4..].try_into().expect("8 bytes"))),
    };
    let signature: &[u8; SIGNATURE_BYTES] = signature.try_into().expect("64 bytes");
    if !key.verifies_in_context(ACCESS_CONTEXT, payload, signature) {
        return Err(TokenError::BadTag);
    }
    Ok(access)
}

fn access_payload(access: &Access) -> Vec<u8> {
    let mut bytes = id_bytes(&access.event);
    bytes.extend_from_slice(&id_bytes(&access.customer));
    bytes.extend_from_slice(&access.place.to_be_bytes());
    bytes.extend_from_slice(&access.expires_at.0.to_be_bytes());
    bytes
}

/// `id` with its length byte; ids longer than [`ID_BYTES_MAX`] are the caller's bug.
fn id_bytes(id: &str) -> Vec<u8> {
    assert!(id.len() <= ID_BYTES_MAX, "ids in tokens are at most {ID_BYTES_MAX} bytes");
    let mut bytes = Vec::with_capacity(1 + id.len());
    bytes.push(id.len() as u8);
    bytes.extend_from_slice(id.as_bytes());
    bytes
}

fn read_id(bytes: &[u8]) -> Result<(String, &[u8]), TokenError> {
    let (&len, rest) = bytes.split_first().ok_or(TokenError::Malformed)?;
    if rest.len() < len as usize {
        return Err(TokenError::Malformed);
    }
    let (id, rest) = rest.split_at(len as usize);
    let id = std::str::from_utf8(id).map_err(|_| TokenError::Malformed)?;
    Ok((id.to_string(), rest))
}

fn decode(token: &str, prefix: &str, bytes_max: usize) -> Result<Vec<u8>, TokenError> {
    if token.len() > bytes_max {
        return Err(TokenError::Malformed);
    }
    let encoded = token.strip_prefix(prefix).ok_or(TokenError::Malformed)?;
    URL_SAFE_NO_PAD.decode(encoded).map_err(|_| TokenError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_place_token_checks_only_for_its_event_and_key() {
        let tokens = PlaceTokens::new(&[7; 32]);
        let token = tokens.make("demo", 41);
        assert_eq!(tokens.check("demo", &token), Ok(41));
        assert_eq!(read_place_token(&token), Ok(("demo".to_string(), 41)));
        assert_eq!(tokens.check("other", &token), Err(TokenError::BadTag));
        assert_eq!(PlaceTokens::new(&[8; 32]).check("demo", &token), Err(TokenError::BadTag));
        // Another place with the first one's tag.
        let mut bytes = URL_SAFE_NO_PAD.decode(&token[4..]).unwrap();
        bytes[1 + 4 + 3] ^= 1;
        let forged = format!("HQ1.{}", URL_SAFE_NO_PAD.encode(&bytes));
        assert_eq!(tokens.check("demo", &forged), Err(TokenError::BadTag));
        for malformed in ["", "HQ1.", "HQ1.!!!!", "HA1.AAAA", &"A".repeat(PLACE_TOKEN_BYTES_MAX + 1)] {
            assert_eq!(tokens.check("demo", malformed), Err(TokenError::Malformed), "{malformed:?}");
        }
    }

    #[test]
    fn an_access_is_signed_and_bound() {
        let key = EventKey::from_seed([3; 32]);
        let access = Access { event: "demo".into(), customer: "alice".into(), place: 9, expires_at: Millis(123_456) };
        let token = sign_access(&key, &access);
        assert_eq!(read_access_event(&token), Ok("demo".to_string()));
        assert_eq!(verify_access(&key.public(), &token), Ok(access.clone()));
        assert_eq!(verify_access(&EventKey::from_seed([4; 32]).public(), &token), Err(TokenError::BadTag));
        // The customer changed, the signature kept.
        let mut bytes = URL_SAFE_NO_PAD.decode(&token[4..]).unwrap();
        bytes[1 + 4 + 1] = b'b';
        let forged = format!("HA1.{}", URL_SAFE_NO_PAD.encode(&bytes));
        assert_eq!(verify_access(&key.public(), &forged), Err(TokenError::BadTag));
        let longest = Access { event: "e".repeat(255), customer: "c".repeat(255), ..access };
        let longest = sign_access(&key, &longest);
        assert!(longest.len() <= ACCESS_TOKEN_BYTES_MAX);
        assert!(verify_access(&key.public(), &longest).is_ok());
        for malformed in ["", "HA1.", "HQ1.AAAA", "HA1.AAAA"] {
            assert_eq!(verify_access(&key.public(), malformed), Err(TokenError::Malformed), "{malformed:?}");
        }
    }
}
