//! Master keys: parsed from `[privacy] keys` (`"id:<base64 of 32 bytes>"`, or
//! `HAKKEN_PRIVACY_KEYS`, comma-separated), one of them active.
//!
//! The active key wraps the data key of every new seal; the others stay configured only
//! to open blobs sealed under them until those are re-wrapped (`POST
//! /v1/admin/privacy/rewrap`) and the old key can be retired. Key material is never
//! logged, printed or served: [`MasterKey`]'s `Debug` shows only its id.

use base64::Engine as _;
use chacha20poly1305::{Key, KeyInit, XChaCha20Poly1305};

/// The key shipped in `config/hakken.toml` so the demo runs as it is. It is public, so
/// it protects nothing: the server warns when it is configured.
pub const DEMO_KEY_BASE64: &str = "ZGVtby1rZXktcHVibGljLW5vdC1hLXNlY3JldC0wMDE=";

/// Longest key id (it is written into every blob).
pub const KEY_ID_BYTES_MAX: usize = 32;

/// One master key: its id (stored in every blob sealed under it) and its cipher.
pub struct MasterKey {
    pub id: String,
    pub(super) cipher: XChaCha20Poly1305,
    demo: bool,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("MasterKey").field("id", &self.id).finish_non_exhaustive()
    }
}

/// Why the configured keys cannot be used (the server refuses to start).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyringError {
    #[error("no buyer-data keys configured: set `[privacy] keys` or HAKKEN_PRIVACY_KEYS (\"id:<base64 of 32 random bytes>\", comma-separated)")]
    NoKeys,
    #[error("privacy key #{position}: expected \"id:<base64 of 32 bytes>\"")]
    Malformed { position: usize },
    #[error("privacy key #{position}: the id must be 1-{KEY_ID_BYTES_MAX} characters of A-Z a-z 0-9 _ -")]
    BadId { position: usize },
    #[error("privacy key {id:?}: the key is not base64 of exactly 32 bytes")]
    BadKey { id: String },
    #[error("privacy key id {id:?} is configured twice")]
    DuplicateId { id: String },
    #[error("privacy.active_key {active:?} is not among the configured keys ({known})")]
    UnknownActive { active: String, known: String },
}

/// The configured master keys, and which one seals.
#[derive(Debug)]
pub struct Keyring {
    keys: Vec<MasterKey>,
    active: usize,
}

impl Keyring {
    /// Parses `keys` (`"id:<base64>"` each) and picks `active` among them.
    pub fn parse(keys: &[String], active: &str) -> Result<Keyring, KeyringError> {
        if keys.is_empty() {
            return Err(KeyringError::NoKeys);
        }
        let mut parsed: Vec<MasterKey> = Vec::with_capacity(keys.len());
        for (position, entry) in keys.iter().enumerate() {
            let position = position + 1;
            let (id, material) = entry.split_once(':').ok_or(KeyringError::Malformed { position })?;
            let id = id.trim();
            let valid_id = !id.is_empty()
                && id.len() <= KEY_ID_BYTES_MAX
                && id.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-');
            if !valid_id {
                return Err(KeyringError::BadId { position });
            }
            if parsed.iter().any(|key| key.id == id) {
                return Err(KeyringError::DuplicateId { id: id.to_string() });
            }
            let material = material.trim();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(material)
                .ok()
                .filter(|bytes| bytes.len() == 32)
                .ok_or_else(|| KeyringError::BadKey { id: id.to_string() })?;
            parsed.push(MasterKey {
                id: id.to_string(),
                cipher: XChaCha20Poly1305::new(Key::from_slice(&bytes)),
                demo: material == DEMO_KEY_BASE64,
            });
        }
        let active = parsed.iter().position(|key| key.id == active).ok_or_else(|| KeyringError::UnknownActive {
            active: active.to_string(),
            known: parsed.iter().map(|key| key.id.as_str()).collect::<Vec<_>>().join(", "),
        })?;
        Ok(Keyring { keys: parsed, active })
    }

    /// The key new seals are made under.
    pub fn active(&self) -> &MasterKey {
        &self.keys[self.active]
    }

    /// The key of id `id`, if configured.
    pub fn key(&self, id: &str) -> Option<&MasterKey> {
        self.keys.iter().find(|key| key.id == id)
    }

    /// Whether the public demo key is among the configured keys.
    pub fn has_demo_key(&self) -> bool {
        self.keys.iter().any(|key| key.demo)
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|key| key.id.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> String {
        base64::engine::general_purpose::STANDARD.encode([byte; 32])
    }

    fn parse(keys: &[&str], active: &str) -> Result<Keyring, KeyringError> {
        Keyring::parse(&keys.iter().map(|key| key.to_string()).collect::<Vec<_>>(), active)
    }

    #[test]
    fn keys_parse_and_bad_ones_are_named() {
        let (k1, k2) = (format!("k1:{}", key(1)), format!(" k2 : {} ", key(2)));
        let (k1, k2) = (k1.as_str(), k2.as_str());
        let ring = parse(&[k1, k2], "k2").unwrap();
        assert_eq!(ring.active().id, "k2");
        assert_eq!(ring.ids().collect::<Vec<_>>(), ["k1", "k2"]);
        assert!(ring.key("k1").is_some() && ring.key("k3").is_none() && !ring.has_demo_key());
        let cases: [(&[&str], &str, KeyringError); 6] = [
            (&[], "k1", KeyringError::NoKeys),
            (&["k1"], "k1", KeyringError::Malformed { position: 1 }),
            (&[k1, "bad id:AAAA"], "k1", KeyringError::BadId { position: 2 }),
            (&["k1:c2hvcnQ="], "k1", KeyringError::BadKey { id: "k1".into() }),
            (&[k1, k1], "k1", KeyringError::DuplicateId { id: "k1".into() }),
            (&[k1], "k9", KeyringError::UnknownActive { active: "k9".into(), known: "k1".into() }),
        ];
        for (keys, active, expected) in cases {
            assert_eq!(parse(keys, active).unwrap_err(), expected, "{keys:?}");
        }
    }

    #[test]
    fn the_demo_key_is_recognised_and_never_printed() {
        let demo = format!("demo:{DEMO_KEY_BASE64}");
        let ring = parse(&[&demo], "demo").unwrap();
        assert!(ring.has_demo_key());
        assert_eq!(base64::engine::general_purpose::STANDARD.decode(DEMO_KEY_BASE64).unwrap().len(), 32);
        let printed = format!("{ring:?}");
        assert!(printed.contains("demo") && !printed.contains(DEMO_KEY_BASE64), "{printed}");
    }
}
