//! The printed barcode: a short text for a Code 128 barcode on a paper ticket, for gate
//! scanners that cannot read the QR code. Unlike a code it cannot be checked offline;
//! the server checks it, and its tag is checked before any ticket state is read.
//!
//! # Format
//!
//! ```text
//! barcode = ticket "." version "." tag
//! ticket  = "t" hex(section_key) "-" hex(order) "-" decimal(index)    (the ticket id)
//! version = decimal, at most 5 digits                                 (the code version)
//! tag     = the first 12 characters of base64url(signature)           (72 bits)
//! signature = Ed25519(event key, "hakken-barcode-v1\0" || message)
//! message   = event_len u64 LE || event || section_key u32 LE || order u32 LE
//!             || index u16 LE || version u16 LE
//! ```
//!
//! Everything the tag is made from is in the barcode itself, except the event, which
//! the ticket's section key names: so the server checks a tag with the event's key
//! alone, and a made-up barcode is refused without looking up its order (which also
//! means that guessing tags cannot probe which orders exist). Ed25519 is deterministic:
//! the same ticket and version always print the same barcode. The context string
//! differs from a code's, so a barcode signature is never a code signature, nor the
//! reverse. A typical barcode (`t3-1f-2.0.` + tag) is about 22 characters.

use crate::ids::TicketId;

use super::code::{self, EventKey};

/// Characters of the tag: 12 base64url characters are 9 signature bytes, 72 bits.
pub const BARCODE_TAG_CHARS: usize = 12;

/// Signature bytes the tag is cut from.
const TAG_BYTES: usize = BARCODE_TAG_CHARS / 4 * 3;

/// Digits of a version at most (`u16::MAX` has 5).
const VERSION_DIGITS_MAX: usize = 5;

/// Put in front of the message before signing; see the module comment.
const SIGNING_CONTEXT: &[u8] = b"hakken-barcode-v1\0";

/// A printed barcode, read or about to be printed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Barcode {
    pub ticket: TicketId,
    pub version: u16,
    /// [`BARCODE_TAG_CHARS`] base64url characters.
    pub tag: String,
}

impl Barcode {
    /// The barcode of version `version` of `ticket`, a ticket of event `event`.
    pub fn issue(key: &EventKey, event: &str, ticket: TicketId, version: u16) -> Barcode {
        Barcode { ticket, version, tag: tag(key, event, ticket, version) }
    }

    /// Reads a barcode's text strictly; `None` if it is not one (it may be a code).
    pub fn parse(text: &str) -> Option<Barcode> {
        let mut parts = text.split('.');
        let (ticket, version, tag) = (parts.next()?, parts.next()?, parts.next()?);
        let version_valid = !version.is_empty()
            && version.len() <= VERSION_DIGITS_MAX
            && version.bytes().all(|byte| byte.is_ascii_digit());
        let tag_valid = tag.len() == BARCODE_TAG_CHARS
            && tag.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_');
        if parts.next().is_some() || !version_valid || !tag_valid {
            return None;
        }
        Some(Barcode { ticket: ticket.parse().ok()?, version: version.parse().ok()?, tag: tag.to_string() })
    }

    /// The text printed under the bars and encoded in them.
    pub fn text(&self) -> String {
        format!("{}.{}.{}", self.ticket, self.version, self.tag)
    }

    /// True iff the tag is the one `key` gives this ticket and version of `event`.
    /// Compared in constant time: a timing difference would leak the tag bit by bit.
    pub fn is_genuine(&self, key: &EventKey, event: &str) -> bool {
        let expected = tag(key, event, self.ticket, self.version);
        constant_time_eq(expected.as_bytes(), self.tag.as_bytes())
    }
}

fn tag(key: &EventKey, event: &str, ticket: TicketId, version: u16) -> String {
    let mut message = Vec::with_capacity(8 + event.len() + 12);
    message.extend_from_slice(&(event.len() as u64).to_le_bytes());
    message.extend_from_slice(event.as_bytes());
    message.extend_from_slice(&ticket.order.section.0.to_le_bytes());
    message.extend_from_slice(&ticket.order.number.0.to_le_bytes());
    message.extend_from_slice(&ticket.index.to_le_bytes());
    message.extend_from_slice(&version.to_le_bytes());
    let signature = key.sign_in_context(SIGNING_CONTEXT, &message);
    let tag = code::base64url(&signature[..TAG_BYTES]);
    debug_assert_eq!(tag.len(), BARCODE_TAG_CHARS);
    tag
}

/// Equal iff same length and bytes, in time independent of where they differ.
pub fn constant_time_eq(left: &[u8], right: &[u8]) -> bool {
    left.len() == right.len() && left.iter().zip(right).fold(0u8, |differ, (a, b)| differ | (a ^ b)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{OrderId, OrderNumber, SectionKey};

    fn ticket(number: u32, index: u16) -> TicketId {
        TicketId { order: OrderId { section: SectionKey(3), number: OrderNumber(number) }, index }
    }

    fn key(seed: u8) -> EventKey {
        EventKey::from_seed([seed; 32])
    }

    #[test]
    fn barcodes_parse_strictly() {
        let parsed = Barcode::parse("t3-1f-2.1.abcdefghij-_").expect("a barcode");
        assert_eq!(parsed, Barcode { ticket: ticket(0x1f, 2), version: 1, tag: "abcdefghij-_".to_string() });
        assert_eq!(parsed.text(), "t3-1f-2.1.abcdefghij-_");
        let bad = [
            "t3-1f-2.1",
            "t3-1f-2.1.short",
            "t3-1f-2.x.abcdefghijkl",
            "t3-1f-2.+1.abcdefghijkl",
            "t3-1f-2.123456.abcdefghijkl",
            "t3-1f-2.1.abcdefghijk=",
            "HK1.abc",
            "t3-1f-2.1.abcdefghijkl.x",
            "x3-1f-2.1.abcdefghijkl",
        ];
        for text in bad {
            assert_eq!(Barcode::parse(text), None, "{text}");
        }
    }

    #[test]
    fn a_tag_is_bound_to_key_event_ticket_and_version() {
        let issued = Barcode::issue(&key(1), "demo-2027", ticket(7, 1), 2);
        assert_eq!(issued.tag.len(), BARCODE_TAG_CHARS);
        assert_eq!(Barcode::parse(&issued.text()), Some(issued.clone()));
        assert!(issued.is_genuine(&key(1), "demo-2027"));
        assert_eq!(Barcode::issue(&key(1), "demo-2027", ticket(7, 1), 2), issued, "deterministic");
        let others = [
            (Barcode { version: 3, ..issued.clone() }, "demo-2027", 1),
            (Barcode { ticket: ticket(7, 0), ..issued.clone() }, "demo-2027", 1),
            (Barcode { ticket: ticket(8, 1), ..issued.clone() }, "demo-2027", 1),
            (issued.clone(), "demo-2028", 1),
            (issued.clone(), "demo-2027", 2),
            (Barcode { tag: "AAAAAAAAAAAA".to_string(), ..issued.clone() }, "demo-2027", 1),
        ];
        for (barcode, event, seed) in others {
            assert!(!barcode.is_genuine(&key(seed), event), "{barcode:?} {event} {seed}");
        }
    }

    #[test]
    fn constant_time_eq_compares_bytes() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
