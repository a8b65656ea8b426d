//! Ticket codes: the signed, printable string in a ticket's QR code that a gate verifies offline.
//!
//! Each event has its own Ed25519 key ([`EventKey`]). The server signs a [`TicketClaim`] with it
//! when a ticket is issued or reissued; a gate that holds only the event's [`PublicKey`] checks the
//! code with [`verify`], without asking the server. A forged or altered code is always rejected:
//! the claim is trusted only after its signature checks. This module does not know about
//! revocation. A reissue raises the claim's `version`, and the gate compares it with the version in
//! its bundle. The gate also checks that `event` is the event it is scanning for.
//!
//! # Format 1
//!
//! ```text
//! code      = "HK1." base64url(payload || signature)
//! payload   = format        u8   always 1
//!             event_len     u8   1..=64
//!             event         event_len bytes
//!             section_key   u32  little-endian
//!             order         u32  little-endian
//!             index         u16  little-endian
//!             version       u16  little-endian
//!             place_kind    u8   0 = seat, 1 = general admission
//!             place_len     u8   1..=64
//!             place         place_len bytes
//! signature = Ed25519(event key, "hakken-ticket-v1\0" || payload)   (64 bytes, RFC 8032)
//! ```
//!
//! - base64url is RFC 4648 §5 (`A-Z a-z 0-9 - _`) without `=` padding. The unused low bits of the
//!   last character must be zero.
//! - `event` and `place` are ASCII graphic characters (`!`..=`~`): no spaces, no control
//!   characters.
//! - The payload's length follows from its two length bytes. The signature is always the last 64
//!   decoded bytes, and it must follow the payload directly.
//! - The signed message starts with the context string `hakken-ticket-v1\0`. A signature made
//!   for a ticket therefore cannot pass as a signature of anything else the key might sign
//!   later (a bundle, another protocol), and the reverse is also true. Context strings end at
//!   their NUL, so no context is a prefix of another.
//! - A code longer than [`CODE_TEXT_BYTES_MAX`] is refused before it is decoded. The longest
//!   valid code is 282 bytes. A typical one (event `demo-2027`, seat `S101-C-12`) is 135.
//!
//! Decoding is strict so that exactly one text is accepted per claim and key. The base64 has a
//! single canonical form, parsing leaves no trailing byte and checks every field as `sign`
//! does, and `verify_strict` rejects the other encodings of a valid signature (non-canonical
//! `s`, small-order points). Ed25519 is deterministic, so the same key and claim always give
//! the same code.

use std::fmt;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey, SIGNATURE_LENGTH};
use sha2::{Digest as _, Sha256};

use crate::ids::OrderNumber;

/// What every code text starts with. Its `1` is also the payload's format byte.
pub const CODE_PREFIX: &str = "HK1.";

/// Longest code text accepted, in bytes. Every valid code is ASCII, so this is also its length
/// in characters. It is well above the longest valid code (282), and it caps how much work a
/// gate does for garbage input.
pub const CODE_TEXT_BYTES_MAX: usize = 512;

/// Longest event id, seat id or section id that a code carries.
pub const TEXT_FIELD_BYTES_MAX: usize = 64;

/// What every public key text starts with. It names the algorithm, so a key of another kind is
/// refused if the project ever adds one.
pub const PUBLIC_KEY_PREFIX: &str = "ed25519:";

/// First payload byte. A new format gets a new value here and a new [`CODE_PREFIX`].
const PAYLOAD_FORMAT: u8 = 1;

/// Put in front of the payload before signing. See the module comment for the reason.
const SIGNING_CONTEXT: &[u8] = b"hakken-ticket-v1\0";

const PLACE_KIND_SEAT: u8 = 0;
const PLACE_KIND_GENERAL_ADMISSION: u8 = 1;

const PUBLIC_KEY_BYTES: usize = ed25519_dalek::PUBLIC_KEY_LENGTH;

/// format, event, section_key, order, index, version, place kind, place.
const PAYLOAD_BYTES_MAX: usize = 1 + (1 + TEXT_FIELD_BYTES_MAX) + 4 + 4 + 2 + 2 + 1 + (1 + TEXT_FIELD_BYTES_MAX);
const CODE_TEXT_BYTES_LONGEST: usize = CODE_PREFIX.len() + base64_unpadded_len(PAYLOAD_BYTES_MAX + SIGNATURE_LENGTH);
const _: () = assert!(CODE_TEXT_BYTES_LONGEST <= CODE_TEXT_BYTES_MAX, "some valid claims would give codes we refuse");

/// Characters that `bytes` bytes take in unpadded base64: 4 per 3 bytes, rounded up.
const fn base64_unpadded_len(bytes: usize) -> usize {
    (bytes * 4).div_ceil(3)
}

/// The default `URL_SAFE_NO_PAD` already decodes strictly. The settings are written out here so
/// that a change of the library's defaults cannot make decoding lenient: a lenient decoder would
/// accept several texts for one code.
const BASE64_URL_STRICT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(false),
);

/// What a code asserts about one ticket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TicketClaim {
    /// Event id, 1..=64 ASCII graphic bytes. The gate uses it to pick the key for [`verify`].
    pub event: String,
    /// Internal number of the section that sold the ticket. It is part of the ticket id.
    pub section_key: u32,
    pub order: OrderNumber,
    /// Ticket number within the order, counted from 0.
    pub index: u16,
    /// 0 at issue, then 1 more at each reissue. Gates refuse versions older than their bundle's.
    pub version: u16,
    pub place: Place,
}

/// Where the ticket lets its holder go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Place {
    /// A seat id such as `S101-C-12`.
    Seat(String),
    /// A general admission section id such as `FLOOR-A`.
    GeneralAdmission(String),
}

impl TicketClaim {
    /// The ticket's id, `t{section_key:x}-{order:x}-{index}`. It is the same for every version.
    pub fn ticket_id(&self) -> String {
        format!("t{:x}-{}-{}", self.section_key, self.order, self.index)
    }
}

impl Place {
    fn kind_and_id(&self) -> (u8, &str) {
        match self {
            Place::Seat(seat) => (PLACE_KIND_SEAT, seat),
            Place::GeneralAdmission(section) => (PLACE_KIND_GENERAL_ADMISSION, section),
        }
    }
}

/// Why a code, a claim or a public key text was refused. Each is an expected outcome at a gate.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodeError {
    #[error("ticket code is {length_bytes} bytes long, more than the {max} allowed", max = CODE_TEXT_BYTES_MAX)]
    TooLong { length_bytes: usize },
    #[error("ticket code does not start with {prefix:?}", prefix = CODE_PREFIX)]
    WrongPrefix,
    #[error("ticket code is not unpadded base64url after its prefix")]
    NotBase64Url,
    #[error("ticket code is malformed: {0}")]
    Malformed(&'static str),
    /// Named "format" rather than "version": a claim's `version` is the ticket's reissue count.
    #[error("ticket code has payload format {0}, but only format {supported} is known", supported = PAYLOAD_FORMAT)]
    UnknownFormat(u8),
    #[error("ticket {field} {reason}")]
    InvalidField { field: &'static str, reason: &'static str },
    #[error("ticket code signature is not valid for this event key")]
    BadSignature,
    #[error("public key text is invalid: {0}")]
    InvalidPublicKey(&'static str),
}

/// An event's signing key. Only its 32-byte seed leaves this type ([`EventKey::seed`]), for the
/// caller to store. `Debug` shows only the public key.
pub struct EventKey {
    signing_key: SigningKey,
}

impl EventKey {
    pub fn from_seed(seed: [u8; 32]) -> EventKey {
        EventKey { signing_key: SigningKey::from_bytes(&seed) }
    }

    pub fn seed(&self) -> [u8; 32] {
        self.signing_key.to_bytes()
    }

    pub fn public(&self) -> PublicKey {
        PublicKey { verifying_key: self.signing_key.verifying_key() }
    }

    /// Makes the code text for `claim`. Refuses claims whose text fields break the format's
    /// rules, so every code made here is one that [`verify`] accepts.
    pub fn sign(&self, claim: &TicketClaim) -> Result<String, CodeError> {
        let mut bytes = encode_payload(claim)?;
        let signature = self.signing_key.sign(&signed_message(&bytes));
        bytes.extend_from_slice(&signature.to_bytes());

        let mut code = String::with_capacity(CODE_TEXT_BYTES_LONGEST);
        code.push_str(CODE_PREFIX);
        BASE64_URL_STRICT.encode_string(&bytes, &mut code);
        debug_assert_eq!(read_claim(&code).as_ref(), Ok(claim), "a code we sign must read back as its claim");
        Ok(code)
    }

    /// Signs `message` under another `context` than a code's (the printed barcode's).
    /// Contexts end at their NUL, so no signature made here passes as a code's.
    pub(crate) fn sign_in_context(&self, context: &[u8], message: &[u8]) -> [u8; SIGNATURE_LENGTH] {
        debug_assert!(context.ends_with(b"\0") && context != SIGNING_CONTEXT, "a context of its own");
        let signed = [context, message].concat();
        self.signing_key.sign(&signed).to_bytes()
    }
}

/// Unpadded base64url, as every code writes it.
pub(super) fn base64url(bytes: &[u8]) -> String {
    BASE64_URL_STRICT.encode(bytes)
}

impl fmt::Debug for EventKey {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_struct("EventKey").field("public", &self.public().to_text()).finish_non_exhaustive()
    }
}

/// An event's verifying key: what gates get.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    verifying_key: VerifyingKey,
}

impl PublicKey {
    /// `ed25519:` followed by the 32 key bytes in unpadded base64url (51 characters in all).
    pub fn to_text(&self) -> String {
        let mut text = String::from(PUBLIC_KEY_PREFIX);
        BASE64_URL_STRICT.encode_string(self.verifying_key.as_bytes(), &mut text);
        text
    }

    /// Reads what [`PublicKey::to_text`] writes. Also refuses a weak (small-order) key, because
    /// codes would never verify with it. Better to find that out when the key is loaded than at
    /// the first scan.
    pub fn from_text(text: &str) -> Result<PublicKey, CodeError> {
        let encoded = text
            .strip_prefix(PUBLIC_KEY_PREFIX)
            .ok_or(CodeError::InvalidPublicKey("does not start with \"ed25519:\""))?;
        // Checking the length first also means that no large input is ever decoded.
        if encoded.len() != base64_unpadded_len(PUBLIC_KEY_BYTES) {
            return Err(CodeError::InvalidPublicKey("is not 32 bytes in unpadded base64url"));
        }
        let bytes =
            BASE64_URL_STRICT.decode(encoded).map_err(|_| CodeError::InvalidPublicKey("is not unpadded base64url"))?;
        let bytes: [u8; PUBLIC_KEY_BYTES] =
            bytes.try_into().map_err(|_| CodeError::InvalidPublicKey("is not 32 bytes in unpadded base64url"))?;
        let verifying_key =
            VerifyingKey::from_bytes(&bytes).map_err(|_| CodeError::InvalidPublicKey("is not an Ed25519 point"))?;
        if verifying_key.is_weak() {
            return Err(CodeError::InvalidPublicKey("is a weak (small-order) Ed25519 key"));
        }
        Ok(PublicKey { verifying_key })
    }

    /// Whether `signature` is this key's over `context` then `message`, as
    /// [`EventKey::sign_in_context`] makes them (strict: one encoding per signature).
    pub(crate) fn verifies_in_context(
        &self,
        context: &[u8],
        message: &[u8],
        signature: &[u8; SIGNATURE_LENGTH],
    ) -> bool {
        let signed = [context, message].concat();
        self.verifying_key.verify_strict(&signed, &Signature::from_bytes(signature)).is_ok()
    }

    /// A short name for the key, for logs and key rotation: the first 4 bytes of SHA-256 over
    /// the 32 key bytes, as 8 lowercase hex characters. It only names the key and proves
    /// nothing: with 32 bits, someone can make two keys with the same id. The security comes
    /// from [`verify`] alone.
    pub fn key_id(&self) -> String {
        let digest = Sha256::digest(self.verifying_key.as_bytes());
        digest.iter().take(4).map(|byte| format!("{byte:02x}")).collect()
    }
}

/// Reads a code's claim without checking its signature. The claim is not to be trusted. Its
/// only use is to find out which event's key to [`verify`] the code with.
pub fn read_claim(code: &str) -> Result<TicketClaim, CodeError> {
    let (payload, _signature) = decode_code(code)?;
    decode_payload(&payload)
}

/// Reads a code and checks its signature with `key`. This is the only way to trust a claim.
/// The payload is parsed first, because garbage is cheaper to refuse than a signature is to
/// check. The claim is returned only if the signature is valid.
pub fn verify(code: &str, key: &PublicKey) -> Result<TicketClaim, CodeError> {
    let (payload, signature) = decode_code(code)?;
    let claim = decode_payload(&payload)?;
    key.verifying_key.verify_strict(&signed_message(&payload), &signature).map_err(|_| CodeError::BadSignature)?;
    Ok(claim)
}

/// Splits a code text into its payload bytes and its signature. Neither is checked here.
fn decode_code(code: &str) -> Result<(Vec<u8>, Signature), CodeError> {
    if code.len() > CODE_TEXT_BYTES_MAX {
        return Err(CodeError::TooLong { length_bytes: code.len() });
    }
    let encoded = code.strip_prefix(CODE_PREFIX).ok_or(CodeError::WrongPrefix)?;
    let mut payload = BASE64_URL_STRICT.decode(encoded).map_err(|_| CodeError::NotBase64Url)?;
    let signature_start =
        payload.len().checked_sub(SIGNATURE_LENGTH).ok_or(CodeError::Malformed("too short to hold a signature"))?;
    let signature_bytes: [u8; SIGNATURE_LENGTH] = payload
        .split_off(signature_start)
        .try_into()
        .map_err(|_| CodeError::Malformed("too short to hold a signature"))?;
    Ok((payload, Signature::from_bytes(&signature_bytes)))
}

fn signed_message(payload: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(SIGNING_CONTEXT.len() + payload.len());
    message.extend_from_slice(SIGNING_CONTEXT);
    message.extend_from_slice(payload);
    message
}

fn encode_payload(claim: &TicketClaim) -> Result<Vec<u8>, CodeError> {
    let (place_kind, place_id) = claim.place.kind_and_id();
    let mut payload = Vec::with_capacity(PAYLOAD_BYTES_MAX + SIGNATURE_LENGTH);
    payload.push(PAYLOAD_FORMAT);
    push_text_field(&mut payload, "event", &claim.event)?;
    payload.extend_from_slice(&claim.section_key.to_le_bytes());
    payload.extend_from_slice(&claim.order.0.to_le_bytes());
    payload.extend_from_slice(&claim.index.to_le_bytes());
    payload.extend_from_slice(&claim.version.to_le_bytes());
    payload.push(place_kind);
    push_text_field(&mut payload, place_field_name(place_kind), place_id)?;
    Ok(payload)
}

fn decode_payload(payload: &[u8]) -> Result<TicketClaim, CodeError> {
    let mut reader = PayloadReader { rest: payload };
    let [format] = reader.array()?;
    if format != PAYLOAD_FORMAT {
        return Err(CodeError::UnknownFormat(format));
    }
    let event = reader.text_field("event")?;
    let section_key = u32::from_le_bytes(reader.array()?);
    let order = OrderNumber(u32::from_le_bytes(reader.array()?));
    let index = u16::from_le_bytes(reader.array()?);
    let version = u16::from_le_bytes(reader.array()?);
    let [place_kind] = reader.array()?;
    let place_id = reader.text_field(place_field_name(place_kind))?;
    let place = match place_kind {
        PLACE_KIND_SEAT => Place::Seat(place_id),
        PLACE_KIND_GENERAL_ADMISSION => Place::GeneralAdmission(place_id),
        _ => return Err(CodeError::Malformed("unknown place kind")),
    };
    if !reader.rest.is_empty() {
        return Err(CodeError::Malformed("bytes between the payload and the signature"));
    }
    Ok(TicketClaim { event, section_key, order, index, version, place })
}

/// Name of the place field in error messages.
fn place_field_name(place_kind: u8) -> &'static str {
    match place_kind {
        PLACE_KIND_SEAT => "seat",
        PLACE_KIND_GENERAL_ADMISSION => "general admission section",
        _ => "place",
    }
}

fn push_text_field(payload: &mut Vec<u8>, field: &'static str, text: &str) -> Result<(), CodeError> {
    check_text_field(field, text.as_bytes())?;
    let length = u8::try_from(text.len()).map_err(|_| CodeError::InvalidField { field, reason: TOO_LONG_OR_EMPTY })?;
    payload.push(length);
    payload.extend_from_slice(text.as_bytes());
    Ok(())
}

const TOO_LONG_OR_EMPTY: &str = "must be 1 to 64 bytes long";

/// Applies the same rules when signing and when reading, so that what one side accepts, the
/// other side accepts too.
fn check_text_field(field: &'static str, text: &[u8]) -> Result<(), CodeError> {
    if text.is_empty() || text.len() > TEXT_FIELD_BYTES_MAX {
        return Err(CodeError::InvalidField { field, reason: TOO_LONG_OR_EMPTY });
    }
    if !text.iter().all(u8::is_ascii_graphic) {
        return Err(CodeError::InvalidField { field, reason: "must be ASCII letters, digits or punctuation" });
    }
    Ok(())
}

/// Reads the payload from front to back. Every read checks that enough bytes are left.
struct PayloadReader<'a> {
    rest: &'a [u8],
}

impl PayloadReader<'_> {
    fn array<const N: usize>(&mut self) -> Result<[u8; N], CodeError> {
        let (taken, rest) = self.rest.split_first_chunk::<N>().ok_or(CodeError::Malformed("payload ends early"))?;
        self.rest = rest;
        Ok(*taken)
    }

    fn text_field(&mut self, field: &'static str) -> Result<String, CodeError> {
        let [length] = self.array()?;
        if self.rest.len() < usize::from(length) {
            return Err(CodeError::Malformed("payload ends early"));
        }
        let (text, rest) = self.rest.split_at(usize::from(length));
        self.rest = rest;
        check_text_field(field, text)?;
        // The check above allows only ASCII, so each byte is one char.
        Ok(text.iter().map(|&byte| char::from(byte)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn seat_claim() -> TicketClaim {
        TicketClaim {
            event: "demo-2027".to_string(),
            section_key: 0x1a,
            order: OrderNumber(0x2f3),
            index: 1,
            version: 0,
            place: Place::Seat("S101-C-12".to_string()),
        }
    }

    fn general_admission_claim() -> TicketClaim {
        TicketClaim {
            event: "demo-2027".to_string(),
            section_key: 3,
            order: OrderNumber(u32::MAX),
            index: u16::MAX,
            version: 7,
            place: Place::GeneralAdmission("FLOOR-A".to_string()),
        }
    }

    fn event_key() -> EventKey {
        EventKey::from_seed(std::array::from_fn(|i| i as u8))
    }

    fn other_event_key() -> EventKey {
        EventKey::from_seed([0xee; 32])
    }

    fn decode_bytes(code: &str) -> Vec<u8> {
        BASE64_URL_STRICT.decode(code.strip_prefix(CODE_PREFIX).expect("code has the prefix")).expect("base64")
    }

    fn code_from_bytes(bytes: &[u8]) -> String {
        format!("{CODE_PREFIX}{}", BASE64_URL_STRICT.encode(bytes))
    }

    /// Signs a payload built by hand, to test what `verify` does with payloads `sign` refuses.
    fn sign_raw_payload(key: &EventKey, payload: &[u8]) -> String {
        let signature = key.signing_key.sign(&signed_message(payload));
        code_from_bytes(&[payload, &signature.to_bytes()].concat())
    }

    /// Checks that `verify` rejects `code` and, where `expected` is given, how.
    #[track_caller]
    fn check_rejected(code: &str, expected: Option<CodeError>) {
        let result = verify(code, &event_key().public());
        match expected {
            Some(error) => assert_eq!(result, Err(error), "code {code:?}"),
            None => assert!(result.is_err(), "accepted altered code {code:?}"),
        }
    }

    #[test]
    fn signed_claims_verify_and_read_back() {
        let key = event_key();
        let long_id = "x".repeat(TEXT_FIELD_BYTES_MAX);
        let longest = TicketClaim {
            event: long_id.clone(),
            section_key: u32::MAX,
            order: OrderNumber(u32::MAX),
            index: u16::MAX,
            version: u16::MAX,
            place: Place::Seat(long_id),
        };
        let punctuation = TicketClaim {
            event: "!~".to_string(),
            place: Place::GeneralAdmission("#".to_string()),
            ..general_admission_claim()
        };
        for claim in [seat_claim(), general_admission_claim(), longest, punctuation] {
            let code = key.sign(&claim).expect("valid claim");
            assert!(code.len() <= CODE_TEXT_BYTES_LONGEST, "{code}");
            assert_eq!(verify(&code, &key.public()), Ok(claim.clone()));
            assert_eq!(read_claim(&code), Ok(claim));
        }
    }

    #[test]
    fn longest_claim_gives_longest_code() {
        let long_id = "x".repeat(TEXT_FIELD_BYTES_MAX);
        let claim = TicketClaim { event: long_id.clone(), place: Place::Seat(long_id), ..seat_claim() };
        let code = event_key().sign(&claim).expect("valid claim");
        assert_eq!(code.len(), CODE_TEXT_BYTES_LONGEST);
        assert_eq!(code.len(), 282);
    }

    /// Pins the format: if this code changes, codes already printed stop verifying.
    /// The typical code is 135 characters (a 34-byte payload and a 64-byte signature make 98
    /// bytes, or 131 base64 characters, plus the 4-character prefix).
    #[test]
    fn known_code_for_fixed_seed_and_claim() {
        let key = event_key();
        let code = key.sign(&seat_claim()).expect("valid claim");
        assert_eq!(code, "HK1.AQlkZW1vLTIwMjcaAAAA8wIAAAEAAAAACVMxMDEtQy0xMr8VdWG83fb99wDd7nKDTcLNHKNGy_po47DYt2i15RzDmRdv0_RbHnlxoeWbLXOatx48kdiB6XZaVJSO0fb3mAw");
        assert_eq!(code.len(), 135);
        assert_eq!(key.sign(&seat_claim()), Ok(code), "Ed25519 signing is deterministic");
        assert_eq!(key.public().to_text(), "ed25519:A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg");
        assert_eq!(key.public().key_id(), "56475aa7");
    }

    #[test]
    fn ticket_id_is_hex_section_and_order_then_decimal_index() {
        assert_eq!(seat_claim().ticket_id(), "t1a-2f3-1");
        assert_eq!(general_admission_claim().ticket_id(), "t3-ffffffff-65535");
    }

    #[test]
    fn code_of_another_event_key_is_rejected() {
        let code = other_event_key().sign(&seat_claim()).expect("valid claim");
        check_rejected(&code, Some(CodeError::BadSignature));
        assert_eq!(read_claim(&code), Ok(seat_claim()), "reading alone does not check the signature");
    }

    #[test]
    fn every_bit_flip_is_rejected() {
        let code = event_key().sign(&seat_claim()).expect("valid claim");
        let bytes = decode_bytes(&code);
        let signature_start = bytes.len() - SIGNATURE_LENGTH;
        for bit in 0..bytes.len() * 8 {
            let mut altered = bytes.clone();
            altered[bit / 8] ^= 1 << (bit % 8);
            // A flipped payload bit may break the structure or only change a field's value;
            // a flipped signature bit must always fail the signature check.
            let expected = (bit / 8 >= signature_start).then_some(CodeError::BadSignature);
            check_rejected(&code_from_bytes(&altered), expected);
        }
    }

    #[test]
    fn every_character_substitution_is_rejected() {
        let code = event_key().sign(&seat_claim()).expect("valid claim");
        let last = code.len() - 1;
        // Prefix, first payload characters, a signature character and the last character.
        // The last character has 2 unused bits, so only strict decoding rejects some of its
        // substitutions.
        let positions = [0, 2, 3, 4, 5, 20, 60, last - 1, last];
        let replacements = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/. \n\u{e9}";
        for position in positions {
            for replacement in replacements.chars() {
                let mut altered: Vec<char> = code.chars().collect();
                if altered[position] == replacement {
                    continue;
                }
                altered[position] = replacement;
                check_rejected(&altered.into_iter().collect::<String>(), None);
            }
        }
    }

    #[test]
    fn truncated_and_extended_codes_are_rejected() {
        let code = event_key().sign(&seat_claim()).expect("valid claim");
        for length in 0..code.len() {
            check_rejected(&code[..length], None);
        }
        for suffix in ["A", "AA", "AAA", "AAAA", "AAAAAAAA", "=", "==", "\n", " ", &code] {
            check_rejected(&format!("{code}{suffix}"), None);
        }
        for prefix in [" ", "\n", "HK1.", "hk1."] {
            check_rejected(&format!("{prefix}{code}"), None);
        }
    }

    #[test]
    fn changed_field_with_old_signature_is_rejected() {
        let key = event_key();
        let original = seat_claim();
        let code = key.sign(&original).expect("valid claim");
        let signature = decode_bytes(&code).split_off(encode_payload(&original).expect("valid").len());
        let changes: [fn(&mut TicketClaim); 8] = [
            |claim| claim.version = 1,
            |claim| claim.event = "demo-2028".to_string(),
            |claim| claim.section_key += 1,
            |claim| claim.order.0 += 1,
            |claim| claim.index = 0,
            |claim| claim.place = Place::Seat("S101-C-13".to_string()),
            |claim| claim.place = Place::GeneralAdmission("S101-C-12".to_string()),
            |claim| claim.place = Place::Seat("S101-C-120".to_string()),
        ];
        for change in changes {
            let mut claim = original.clone();
            change(&mut claim);
            let payload = encode_payload(&claim).expect("valid claim");
            let forged = code_from_bytes(&[payload, signature.clone()].concat());
            assert_eq!(read_claim(&forged), Ok(claim));
            check_rejected(&forged, Some(CodeError::BadSignature));
        }
    }

    #[test]
    fn malleated_signature_is_rejected() {
        // The group order ℓ, little-endian. s + ℓ is another encoding of the same s, which
        // lenient Ed25519 verification accepts.
        const GROUP_ORDER: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0,
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let code = event_key().sign(&seat_claim()).expect("valid claim");
        let mut bytes = decode_bytes(&code);
        let s_start = bytes.len() - 32;
        let mut carry = 0u16;
        for (byte, order_byte) in bytes[s_start..].iter_mut().zip(GROUP_ORDER) {
            let sum = u16::from(*byte) + u16::from(order_byte) + carry;
            *byte = sum as u8;
            carry = sum >> 8;
        }
        assert_eq!(carry, 0, "s + ℓ fits in 256 bits");
        check_rejected(&code_from_bytes(&bytes), Some(CodeError::BadSignature));
    }

    #[test]
    fn malformed_texts_are_rejected() {
        let key = event_key();
        let code = key.sign(&seat_claim()).expect("valid claim");
        let payload = encode_payload(&seat_claim()).expect("valid claim");
        let cases: Vec<(String, CodeError)> = vec![
            (String::new(), CodeError::WrongPrefix),
            ("HK1".to_string(), CodeError::WrongPrefix),
            (code.replacen("HK1.", "HK2.", 1), CodeError::WrongPrefix),
            (code.replacen("HK1.", "hk1.", 1), CodeError::WrongPrefix),
            (format!("{code}="), CodeError::NotBase64Url),
            (code.replacen('A', "+", 1), CodeError::NotBase64Url),
            ("HK1.".to_string(), CodeError::Malformed("too short to hold a signature")),
            (code_from_bytes(&[0; SIGNATURE_LENGTH - 1]), CodeError::Malformed("too short to hold a signature")),
            (code_from_bytes(&[0; SIGNATURE_LENGTH]), CodeError::Malformed("payload ends early")),
            ("HK1.".to_string() + &"A".repeat(CODE_TEXT_BYTES_MAX), CodeError::TooLong { length_bytes: 516 }),
            // A signed payload is still refused if its structure is wrong.
            (
                sign_raw_payload(&key, &[&payload[..], &[0]].concat()),
                CodeError::Malformed("bytes between the payload and the signature"),
            ),
            (sign_raw_payload(&key, &payload[..payload.len() - 1]), CodeError::Malformed("payload ends early")),
            (sign_raw_payload(&key, &[&[2], &payload[1..]].concat()), CodeError::UnknownFormat(2)),
            (sign_raw_payload(&key, &[&[0], &payload[1..]].concat()), CodeError::UnknownFormat(0)),
        ];
        for (text, expected) in cases {
            assert_eq!(read_claim(&text), Err(expected.clone()), "read_claim({text:?})");
            check_rejected(&text, Some(expected));
        }
    }

    #[test]
    fn signed_payloads_with_bad_fields_are_rejected() {
        let key = event_key();
        let payload = encode_payload(&seat_claim()).expect("valid claim");
        let place_kind_at = payload.len() - 1 - "S101-C-12".len() - 1;
        let place_kind_changed = |kind: u8| {
            let mut altered = payload.clone();
            altered[place_kind_at] = kind;
            altered
        };
        let event_changed = |event: &[u8]| {
            let length = u8::try_from(event.len()).expect("short test event");
            [&[PAYLOAD_FORMAT, length], event, &payload[2 + "demo-2027".len()..]].concat()
        };
        let cases = [
            (place_kind_changed(2), CodeError::Malformed("unknown place kind")),
            (place_kind_changed(0xff), CodeError::Malformed("unknown place kind")),
            (event_changed(b""), CodeError::InvalidField { field: "event", reason: TOO_LONG_OR_EMPTY }),
            (event_changed(&[b'x'; 65]), CodeError::InvalidField { field: "event", reason: TOO_LONG_OR_EMPTY }),
            (
                event_changed(b"demo 2027"),
                CodeError::InvalidField { field: "event", reason: "must be ASCII letters, digits or punctuation" },
            ),
            (
                event_changed(b"demo\xff2027"),
                CodeError::InvalidField { field: "event", reason: "must be ASCII letters, digits or punctuation" },
            ),
        ];
        for (payload, expected) in cases {
            check_rejected(&sign_raw_payload(&key, &payload), Some(expected));
        }
    }

    #[test]
    fn claims_with_bad_fields_are_not_signed() {
        let not_graphic = "must be ASCII letters, digits or punctuation";
        let too_long = "x".repeat(TEXT_FIELD_BYTES_MAX + 1);
        let cases = [
            (TicketClaim { event: String::new(), ..seat_claim() }, "event", TOO_LONG_OR_EMPTY),
            (TicketClaim { event: too_long.clone(), ..seat_claim() }, "event", TOO_LONG_OR_EMPTY),
            (TicketClaim { event: "démo".to_string(), ..seat_claim() }, "event", not_graphic),
            (TicketClaim { event: "demo 2027".to_string(), ..seat_claim() }, "event", not_graphic),
            (TicketClaim { event: "demo\t2027".to_string(), ..seat_claim() }, "event", not_graphic),
            (TicketClaim { event: "demo\x002027".to_string(), ..seat_claim() }, "event", not_graphic),
            (TicketClaim { place: Place::Seat(String::new()), ..seat_claim() }, "seat", TOO_LONG_OR_EMPTY),
            (TicketClaim { place: Place::Seat(too_long.clone()), ..seat_claim() }, "seat", TOO_LONG_OR_EMPTY),
            (TicketClaim { place: Place::Seat("S1\n".to_string()), ..seat_claim() }, "seat", not_graphic),
            (
                TicketClaim { place: Place::GeneralAdmission(String::new()), ..seat_claim() },
                "general admission section",
                TOO_LONG_OR_EMPTY,
            ),
            (
                TicketClaim { place: Place::GeneralAdmission("FLOOR–A".to_string()), ..seat_claim() },
                "general admission section",
                not_graphic,
            ),
        ];
        for (claim, field, reason) in cases {
            assert_eq!(event_key().sign(&claim), Err(CodeError::InvalidField { field, reason }), "{claim:?}");
        }
    }

    #[test]
    fn public_key_text_round_trips() {
        for key in [event_key(), other_event_key()] {
            let text = key.public().to_text();
            assert_eq!(text.len(), 51);
            assert_eq!(PublicKey::from_text(&text), Ok(key.public()));
            assert_eq!(key.public().key_id().len(), 8);
        }
        assert_ne!(event_key().public().key_id(), other_event_key().public().key_id());
        assert_eq!(EventKey::from_seed(event_key().seed()).public(), event_key().public());
    }

    #[test]
    fn bad_public_key_texts_are_refused() {
        let text = event_key().public().to_text();
        let encoded = &text[PUBLIC_KEY_PREFIX.len()..];
        // The identity point (y = 1) is a valid encoding of a small-order point.
        let identity = [&[1u8][..], &[0; 31]].concat();
        // y = 2 is not the y coordinate of any curve point.
        let not_a_point = [&[2u8][..], &[0; 31]].concat();
        let last_char_with_unused_bits_set = {
            let mut altered = text.clone();
            let last = altered.pop().expect("non-empty");
            let index = alphabet::URL_SAFE.as_str().find(last).expect("base64url");
            let flipped = alphabet::URL_SAFE.as_str().as_bytes()[index ^ 1];
            altered.push(char::from(flipped));
            altered
        };
        let cases = [
            (String::new(), "does not start with \"ed25519:\""),
            (encoded.to_string(), "does not start with \"ed25519:\""),
            (text.replacen("ed25519:", "Ed25519:", 1), "does not start with \"ed25519:\""),
            ("ed25519:".to_string(), "is not 32 bytes in unpadded base64url"),
            (format!("{text}="), "is not 32 bytes in unpadded base64url"),
            (format!("{text}A"), "is not 32 bytes in unpadded base64url"),
            (text[..text.len() - 1].to_string(), "is not 32 bytes in unpadded base64url"),
            (format!("{}+", &text[..text.len() - 1]), "is not unpadded base64url"),
            (last_char_with_unused_bits_set, "is not unpadded base64url"),
            (format!("ed25519:{}", BASE64_URL_STRICT.encode(identity)), "is a weak (small-order) Ed25519 key"),
            (format!("ed25519:{}", BASE64_URL_STRICT.encode(not_a_point)), "is not an Ed25519 point"),
        ];
        for (text, reason) in cases {
            assert_eq!(PublicKey::from_text(&text), Err(CodeError::InvalidPublicKey(reason)), "{text:?}");
        }
    }

    #[test]
    fn errors_explain_themselves() {
        let cases = [
            (CodeError::TooLong { length_bytes: 600 }, "ticket code is 600 bytes long, more than the 512 allowed"),
            (CodeError::WrongPrefix, "ticket code does not start with \"HK1.\""),
            (CodeError::UnknownFormat(2), "ticket code has payload format 2, but only format 1 is known"),
            (
                CodeError::InvalidField { field: "seat", reason: TOO_LONG_OR_EMPTY },
                "ticket seat must be 1 to 64 bytes long",
            ),
        ];
        for (error, message) in cases {
            assert_eq!(error.to_string(), message);
        }
        let debug = format!("{:?}", event_key());
        assert!(debug.contains(&event_key().public().to_text()) && !debug.contains("secret"), "{debug}");
    }

    fn text_field() -> impl Strategy<Value = String> {
        proptest::string::string_regex("[!-~]{1,64}").expect("valid regex")
    }

    fn any_claim() -> impl Strategy<Value = TicketClaim> {
        let place = prop_oneof![text_field().prop_map(Place::Seat), text_field().prop_map(Place::GeneralAdmission)];
        (text_field(), any::<u32>(), any::<u32>(), any::<u16>(), any::<u16>(), place).prop_map(
            |(event, section_key, order, index, version, place)| TicketClaim {
                event,
                section_key,
                order: OrderNumber(order),
                index,
                version,
                place,
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn any_valid_claim_round_trips(claim in any_claim()) {
            let key = event_key();
            let code = key.sign(&claim).expect("valid claim");
            prop_assert!(code.len() <= CODE_TEXT_BYTES_LONGEST);
            prop_assert_eq!(verify(&code, &key.public()), Ok(claim.clone()));
            prop_assert_eq!(verify(&code, &other_event_key().public()), Err(CodeError::BadSignature));
        }

        #[test]
        fn arbitrary_text_never_verifies(text in "(HK1\\.)?[A-Za-z0-9_=+/-]{0,300}") {
            prop_assert!(verify(&text, &event_key().public()).is_err());
            let _ = read_claim(&text);
        }

        #[test]
        fn arbitrary_bytes_never_verify(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            prop_assert!(verify(&code_from_bytes(&bytes), &event_key().public()).is_err());
        }
    }
}
