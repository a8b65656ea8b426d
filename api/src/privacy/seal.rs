//! The sealed blob: envelope encryption with XChaCha20-Poly1305.
//!
//! Every seal makes a fresh 32-byte data key (DEK) and encrypts the plaintext under it;
//! the DEK itself is encrypted ("wrapped") under a master key. Layout:
//!
//! ```text
//! header:  version (1) | purpose (1) | key id length n (1) | key id (n)
//! wrap:    nonce (24) | DEK encrypted under the master key, AAD = header (32 + 16 tag)
//! data:    nonce (24) | plaintext encrypted under the DEK, AAD = header (len + 16 tag)
//! ```
//!
//! The header is authenticated twice, so a blob cannot be passed off under another key
//! id or as another purpose. Rotation re-seals a blob under the active key ([`reseal`])
//! so the old key can be retired. Erasing a blob drops the only wrapped copy of its DEK
//! (crypto-shredding).
//! XChaCha's 192-bit nonces are safe to draw at random for any number of seals.

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{Key, KeyInit, XChaCha20Poly1305, XNonce};
use rand::RngCore;

use super::keys::{Keyring, MasterKey};

const VERSION: u8 = 1;
const NONCE_BYTES: usize = 24;
const DEK_BYTES: usize = 32;
const TAG_BYTES: usize = 16;
const WRAPPED_DEK_BYTES: usize = DEK_BYTES + TAG_BYTES;

/// What a blob is for: a blob of one purpose never opens as the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Purpose {
    /// An order's buyer name and email.
    Buyer = 1,
    /// A stored idempotent answer's body (it may carry an order view).
    StoredAnswer = 2,
}

/// Why a blob did not open. Never carries key material or plaintext.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// Sealed under a key id that is not configured (retired, or another deployment's).
    #[error("sealed under key {0:?}, which is not configured")]
    UnknownKey(String),
    /// Truncated, altered, or of another version or purpose.
    #[error("damaged or not a sealed blob")]
    Damaged,
}

impl OpenError {
    /// A bounded metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            OpenError::UnknownKey(_) => "unknown_key",
            OpenError::Damaged => "damaged",
        }
    }
}

/// A parsed blob, borrowing its bytes.
struct Parts<'a> {
    header: &'a [u8],
    key_id: &'a str,
    wrap_nonce: &'a [u8],
    wrapped_dek: &'a [u8],
    data_nonce: &'a [u8],
    ciphertext: &'a [u8],
}

fn parse(blob: &[u8], purpose: Purpose) -> Result<Parts<'_>, OpenError> {
    let [version, found_purpose, id_len, rest @ ..] = blob else { return Err(OpenError::Damaged) };
    if *version != VERSION || *found_purpose != purpose as u8 {
        return Err(OpenError::Damaged);
    }
    let id_len = usize::from(*id_len);
    let fixed = id_len + NONCE_BYTES + WRAPPED_DEK_BYTES + NONCE_BYTES + TAG_BYTES;
    if rest.len() < fixed {
        return Err(OpenError::Damaged);
    }
    let (key_id, rest) = rest.split_at(id_len);
    let key_id = std::str::from_utf8(key_id).map_err(|_| OpenError::Damaged)?;
    let (wrap_nonce, rest) = rest.split_at(NONCE_BYTES);
    let (wrapped_dek, rest) = rest.split_at(WRAPPED_DEK_BYTES);
    let (data_nonce, ciphertext) = rest.split_at(NONCE_BYTES);
    Ok(Parts { header: &blob[..3 + id_len], key_id, wrap_nonce, wrapped_dek, data_nonce, ciphertext })
}

fn header(purpose: Purpose, key: &MasterKey) -> Vec<u8> {
    let id = key.id.as_bytes();
    let mut header = Vec::with_capacity(3 + id.len());
    header.extend_from_slice(&[VERSION, purpose as u8, u8::try_from(id.len()).expect("key ids are short")]);
    header.extend_from_slice(id);
    header
}

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0; N];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes
}

/// Wraps `dek` under `key` for a blob with `header`: the wrap nonce and the wrapped DEK.
fn wrap(key: &MasterKey, header: &[u8], dek: &[u8; DEK_BYTES]) -> Vec<u8> {
    let nonce: [u8; NONCE_BYTES] = random();
    let wrapped = key
        .cipher
        .encrypt(XNonce::from_slice(&nonce), Payload { msg: dek, aad: header })
        .expect("encrypting 32 bytes cannot fail");
    debug_assert_eq!(wrapped.len(), WRAPPED_DEK_BYTES);
    [nonce.as_slice(), wrapped.as_slice()].concat()
}

/// Seals `plaintext` for `purpose` under the keyring's active key.
pub fn seal(keyring: &Keyring, purpose: Purpose, plaintext: &[u8]) -> Vec<u8> {
    let key = keyring.active();
    let header = header(purpose, key);
    let dek: [u8; DEK_BYTES] = random();
    let data_nonce: [u8; NONCE_BYTES] = random();
    let ciphertext = XChaCha20Poly1305::new(Key::from_slice(&dek))
        .encrypt(XNonce::from_slice(&data_nonce), Payload { msg: plaintext, aad: &header })
        .expect("encrypting into a Vec cannot fail");
    let mut blob = Vec::with_capacity(header.len() + NONCE_BYTES + WRAPPED_DEK_BYTES + NONCE_BYTES + ciphertext.len());
    blob.extend_from_slice(&header);
    blob.extend_from_slice(&wrap(key, &header, &dek));
    blob.extend_from_slice(&data_nonce);
    blob.extend_from_slice(&ciphertext);
    blob
}

/// The data key of a parsed blob, unwrapped under the key its header names.
fn unwrap_dek(keyring: &Keyring, parts: &Parts<'_>) -> Result<[u8; DEK_BYTES], OpenError> {
    let key = keyring.key(parts.key_id).ok_or_else(|| OpenError::UnknownKey(parts.key_id.to_string()))?;
    let dek = key
        .cipher
        .decrypt(XNonce::from_slice(parts.wrap_nonce), Payload { msg: parts.wrapped_dek, aad: parts.header })
        .map_err(|_| OpenError::Damaged)?;
    dek.try_into().map_err(|_| OpenError::Damaged)
}

/// Opens a blob sealed for `purpose` under any configured key.
pub fn open(keyring: &Keyring, purpose: Purpose, blob: &[u8]) -> Result<Vec<u8>, OpenError> {
    let parts = parse(blob, purpose)?;
    let dek = unwrap_dek(keyring, &parts)?;
    XChaCha20Poly1305::new(Key::from_slice(&dek))
        .decrypt(XNonce::from_slice(parts.data_nonce), Payload { msg: parts.ciphertext, aad: parts.header })
        .map_err(|_| OpenError::Damaged)
}

/// The id of the key a blob's DEK is wrapped under, if it parses as `purpose`.
pub fn key_id(blob: &[u8], purpose: Purpose) -> Option<&str> {
    parse(blob, purpose).ok().map(|parts| parts.key_id)
}

/// The blob sealed afresh under the active key (a new data key; the same plaintext),
/// or `None` if it already is under the active key. Fails, changing nothing, if the
/// blob does not open.
pub fn reseal(keyring: &Keyring, purpose: Purpose, blob: &[u8]) -> Result<Option<Vec<u8>>, OpenError> {
    let parts = parse(blob, purpose)?;
    if parts.key_id == keyring.active().id {
        return Ok(None);
    }
    let plaintext = open(keyring, purpose, blob)?;
    Ok(Some(seal(keyring, purpose, &plaintext)))
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    use super::*;

    fn ring(keys: &[(&str, u8)], active: &str) -> Keyring {
        let keys: Vec<String> = keys
            .iter()
            .map(|(id, byte)| format!("{id}:{}", base64::engine::general_purpose::STANDARD.encode([*byte; 32])))
            .collect();
        Keyring::parse(&keys, active).unwrap()
    }

    #[test]
    fn seals_open_and_each_seal_differs() {
        let keyring = ring(&[("k1", 1)], "k1");
        let first = seal(&keyring, Purpose::Buyer, b"Ana Lima");
        let second = seal(&keyring, Purpose::Buyer, b"Ana Lima");
        assert_ne!(first, second, "a fresh data key and nonce every time");
        assert!(!first.windows(8).any(|window| window == b"Ana Lima"), "no plaintext in the blob");
        assert_eq!(open(&keyring, Purpose::Buyer, &first).unwrap(), b"Ana Lima");
        assert_eq!(key_id(&first, Purpose::Buyer), Some("k1"));
        assert_eq!(open(&keyring, Purpose::Buyer, &seal(&keyring, Purpose::Buyer, b"")).unwrap(), b"");
    }

    #[test]
    fn damage_anywhere_is_a_typed_error_never_a_panic() {
        let keyring = ring(&[("k1", 1)], "k1");
        let blob = seal(&keyring, Purpose::Buyer, b"ana@example.com");
        for at in 0..blob.len() {
            let mut flipped = blob.clone();
            flipped[at] ^= 0x01;
            let opened = open(&keyring, Purpose::Buyer, &flipped);
            assert!(matches!(opened, Err(OpenError::Damaged | OpenError::UnknownKey(_))), "byte {at}: {opened:?}");
        }
        for length in 0..blob.len() {
            assert!(open(&keyring, Purpose::Buyer, &blob[..length]).is_err(), "truncated to {length}");
        }
        assert_eq!(open(&keyring, Purpose::StoredAnswer, &blob), Err(OpenError::Damaged), "another purpose");
    }

    #[test]
    fn an_unknown_or_wrong_key_does_not_open() {
        let blob = seal(&ring(&[("k1", 1)], "k1"), Purpose::Buyer, b"x");
        assert_eq!(open(&ring(&[("k2", 2)], "k2"), Purpose::Buyer, &blob), Err(OpenError::UnknownKey("k1".into())));
        assert_eq!(
            open(&ring(&[("k1", 9)], "k1"), Purpose::Buyer, &blob),
            Err(OpenError::Damaged),
            "same id, other key"
        );
    }

    #[test]
    fn rotation_reseals_so_the_old_key_can_be_retired() {
        let old = ring(&[("k1", 1)], "k1");
        let blob = seal(&old, Purpose::Buyer, b"Ana Lima");
        let both = ring(&[("k1", 1), ("k2", 2)], "k2");
        assert_eq!(open(&both, Purpose::Buyer, &blob).unwrap(), b"Ana Lima", "old blobs open while k1 is kept");
        assert_eq!(key_id(&seal(&both, Purpose::Buyer, b"y"), Purpose::Buyer), Some("k2"), "new seals use k2");
        let rewrapped = reseal(&both, Purpose::Buyer, &blob).unwrap().expect("was under k1");
        assert_eq!(key_id(&rewrapped, Purpose::Buyer), Some("k2"));
        assert_eq!(reseal(&both, Purpose::Buyer, &rewrapped), Ok(None), "already under the active key");
        let only_new = ring(&[("k2", 2)], "k2");
        assert_eq!(open(&only_new, Purpose::Buyer, &rewrapped).unwrap(), b"Ana Lima");
        assert_eq!(open(&only_new, Purpose::Buyer, &blob), Err(OpenError::UnknownKey("k1".into())));
    }
}
