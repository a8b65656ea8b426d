//! Identifiers handed out by the engine.
//!
//! Hold and order ids embed the [`SectionKey`] of the inventory that issued them, so
//! any id routes to its section actor without a lookup table.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

pub use crate::lockfree::{HoldNumber, OrderNumber};

/// Index of one event's section inventory in the registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SectionKey(pub u32);

/// Who holds or buys: an opaque customer reference from the caller (account id,
/// session id). Limits per customer are counted against it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CustomerId(pub Arc<str>);

impl CustomerId {
    pub fn new(id: &str) -> CustomerId {
        CustomerId(Arc::from(id))
    }
}

impl fmt::Display for CustomerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

macro_rules! section_scoped_id {
    ($name:ident, $number:ident, $prefix:literal, $doc:literal) => {
        #[doc = $doc]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name {
            pub section: SectionKey,
            pub number: $number,
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{:x}-{}"), self.section.0, self.number)
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;

            fn from_str(text: &str) -> Result<Self, InvalidId> {
                let rest = text.strip_prefix($prefix).ok_or(InvalidId)?;
                let (section, number) = rest.split_once('-').ok_or(InvalidId)?;
                let hex = |part: &str| {
                    let valid = !part.is_empty() && part.len() <= 8 && part.bytes().all(|b| b.is_ascii_hexdigit());
                    valid.then(|| u32::from_str_radix(part, 16).ok()).flatten().ok_or(InvalidId)
                };
                Ok($name { section: SectionKey(hex(section)?), number: $number(hex(number)?) })
            }
        }
    };
}

section_scoped_id!(HoldId, HoldNumber, "h", "A hold, e.g. `h3-1f`: section key 3, hold number 0x1f.");
section_scoped_id!(OrderId, OrderNumber, "o", "An order, e.g. `o3-7`: section key 3, order number 7.");

/// A ticket: ticket `index` (0-based, decimal) of an order, e.g. `t3-7-1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TicketId {
    pub order: OrderId,
    pub index: u16,
}

impl fmt::Display for TicketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t{:x}-{}-{}", self.order.section.0, self.order.number, self.index)
    }
}

impl FromStr for TicketId {
    type Err = InvalidId;

    fn from_str(text: &str) -> Result<TicketId, InvalidId> {
        let rest = text.strip_prefix('t').ok_or(InvalidId)?;
        let (order, index) = rest.rsplit_once('-').ok_or(InvalidId)?;
        let valid = !index.is_empty() && index.len() <= 5 && index.bytes().all(|b| b.is_ascii_digit());
        let index = valid.then(|| index.parse().ok()).flatten().ok_or(InvalidId)?;
        let order: OrderId = format!("o{order}").parse()?;
        Ok(TicketId { order, index })
    }
}

/// The text is not an id of this kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidId;

impl fmt::Display for InvalidId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a valid id")
    }
}

impl std::error::Error for InvalidId {}

#[cfg(test)]
mod ticket_tests {
    use super::*;

    #[test]
    fn ticket_ids_round_trip_and_refuse_junk() {
        let id = TicketId { order: OrderId { section: SectionKey(3), number: OrderNumber(0x1f) }, index: 2 };
        assert_eq!(id.to_string(), "t3-1f-2");
        assert_eq!("t3-1f-2".parse(), Ok(id));
        for bad in ["", "t", "t3-1f", "t3-1f-", "t3-1f-x", "t3-1f-65536", "o3-1f-2", "t3--2", "tg-1-1", "t3-1f-+1"] {
            assert_eq!(bad.parse::<TicketId>(), Err(InvalidId), "{bad:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_reject_junk() {
        let hold = HoldId { section: SectionKey(3), number: HoldNumber(0x1f) };
        assert_eq!(hold.to_string(), "h3-1f");
        assert_eq!("h3-1f".parse(), Ok(hold));
        let order = OrderId { section: SectionKey(u32::MAX), number: OrderNumber(0) };
        assert_eq!(order.to_string().parse(), Ok(order));
        for junk in ["", "h", "h3", "h3-", "h-1", "o3-1", "h3-1-2", "h3-+1", "h123456789-1", "H3-1f", "h3-1g"] {
            assert_eq!(junk.parse::<HoldId>(), Err(InvalidId), "{junk}");
        }
    }
}
