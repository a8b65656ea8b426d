//! What an inventory holds: holds, orders, their units and buyers, and how each maps
//! to and from its `wal` record (the domain structs never go to disk themselves).

use std::sync::Arc;

use crate::best::BestChoice;
use crate::clock::Millis;
use crate::ids::{CustomerId, HoldId, HoldNumber, OrderId, SectionKey};
use crate::venue::SeatIndex;
use crate::wal::{BuyerRecord, HoldRecord, OrderRecord, TicketRecord, UnitsRecord};

/// What a hold or an order has: reserved seats, or a general-admission quantity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Units {
    /// Sorted, no repeats.
    Seats(Vec<SeatIndex>),
    Quantity(u32),
}

impl Units {
    pub fn count(&self) -> u32 {
        match self {
            Units::Seats(seats) => seats.len() as u32,
            Units::Quantity(quantity) => *quantity,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hold {
    pub id: HoldId,
    pub customer: CustomerId,
    pub units: Units,
    pub created_at: Millis,
    /// Whole seconds: the seat words store expiry in seconds.
    pub expires_at_s: u32,
    pub total_minor: u64,
}

impl Hold {
    pub fn expires_at(&self) -> Millis {
        Millis::from_secs(u64::from(self.expires_at_s))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderState {
    Confirmed,
    Cancelled,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Order {
    pub id: OrderId,
    pub hold: HoldId,
    pub customer: CustomerId,
    pub units: Units,
    pub total_minor: u64,
    pub confirmed_at: Millis,
    pub state: OrderState,
    /// When it was cancelled; `Some` iff `state` is `Cancelled`.
    pub cancelled_at: Option<Millis>,
    /// Shared: every reply about the order carries it.
    pub buyer: Arc<Buyer>,
    /// Tickets reissued or admitted, sorted by index; the others are at version 0 and
    /// unused (most orders, until the doors open).
    pub tickets: Vec<TicketRecord>,
}

impl Order {
    /// Ticket `index`'s state (version 0, not admitted, unless changed).
    pub fn ticket(&self, index: u16) -> TicketRecord {
        match self.tickets.binary_search_by_key(&index, |ticket| ticket.index) {
            Ok(found) => self.tickets[found].clone(),
            Err(_) => TicketRecord::unused(index),
        }
    }

    pub(super) fn ticket_mut(&mut self, index: u16) -> &mut TicketRecord {
        let found = match self.tickets.binary_search_by_key(&index, |ticket| ticket.index) {
            Ok(found) => found,
            Err(at) => {
                self.tickets.insert(at, TicketRecord::unused(index));
                at
            }
        };
        &mut self.tickets[found]
    }
}

/// Who paid for an order: the payment reference, the sales channel, and the buyer's
/// personal data (name, email) as the API sealed it. The engine never sees that data in
/// the clear: `sealed` is opaque bytes (an AEAD envelope, see the API's `privacy`
/// module) that the engine stores and compares, never reads. Empty `sealed` means the
/// buyer was erased ([`Inventory::erase_buyer`](super::Inventory::erase_buyer)).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Buyer {
    pub payment_reference: String,
    /// How the order was sold (`online`, `box_office`, `external`), as the API says.
    pub channel: String,
    pub sealed: Arc<[u8]>,
}

impl Buyer {
    /// Whether the buyer's personal data was erased (or never given).
    pub fn is_erased(&self) -> bool {
        self.sealed.is_empty()
    }

    /// The same buyer with the personal data gone.
    pub fn erased(&self) -> Buyer {
        Buyer {
            payment_reference: self.payment_reference.clone(),
            channel: self.channel.clone(),
            sealed: Arc::from([]),
        }
    }

    pub(super) fn to_record(&self) -> BuyerRecord {
        BuyerRecord {
            payment_reference: self.payment_reference.clone(),
            channel: self.channel.clone(),
            sealed: self.sealed.to_vec(),
        }
    }

    pub(super) fn from_record(record: &BuyerRecord) -> Buyer {
        Buyer {
            payment_reference: record.payment_reference.clone(),
            channel: record.channel.clone(),
            sealed: Arc::from(record.sealed.as_slice()),
        }
    }
}

/// A granted hold, with the reason for a best-available choice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Granted {
    pub hold: Hold,
    pub choice: Option<BestChoice>,
}

impl Hold {
    pub(super) fn from_record(section: SectionKey, record: &HoldRecord, customer: CustomerId) -> Hold {
        Hold {
            id: HoldId { section, number: HoldNumber(record.hold) },
            customer,
            units: units_from_record(&record.units),
            created_at: Millis(record.created_at_ms),
            expires_at_s: record.expires_at_s,
            total_minor: record.total_minor,
        }
    }

    pub(super) fn to_record(&self) -> HoldRecord {
        HoldRecord {
            hold: self.id.number.0,
            customer: self.customer.0.to_string(),
            units: units_to_record(&self.units),
            created_at_ms: self.created_at.0,
            expires_at_s: self.expires_at_s,
            total_minor: self.total_minor,
        }
    }
}

impl Order {
    pub(super) fn to_record(&self) -> OrderRecord {
        OrderRecord {
            order: self.id.number.0,
            hold: self.hold.number.0,
            customer: self.customer.0.to_string(),
            units: units_to_record(&self.units),
            total_minor: self.total_minor,
            confirmed_at_ms: self.confirmed_at.0,
            cancelled: self.state == OrderState::Cancelled,
            cancelled_at_ms: self.cancelled_at.map_or(0, |at| at.0),
            buyer: self.buyer.to_record(),
            tickets: self.tickets.clone(),
        }
    }
}

pub(super) fn units_from_record(units: &UnitsRecord) -> Units {
    match units {
        UnitsRecord::Seats(seats) => Units::Seats(seats.clone()),
        UnitsRecord::Quantity(quantity) => Units::Quantity(*quantity),
    }
}

pub(super) fn units_to_record(units: &Units) -> UnitsRecord {
    match units {
        Units::Seats(seats) => UnitsRecord::Seats(seats.clone()),
        Units::Quantity(quantity) => UnitsRecord::Quantity(*quantity),
    }
}

pub(super) fn units_count(units: &UnitsRecord) -> u32 {
    match units {
        UnitsRecord::Seats(seats) => seats.len() as u32,
        UnitsRecord::Quantity(quantity) => *quantity,
    }
}
