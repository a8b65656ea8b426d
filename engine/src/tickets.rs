//! Tickets and gates: what a ticket is, how it proves itself, and what a gate decides.
//!
//! A confirmed order has one ticket per seat or unit, `t{section}-{order}-{index}`
//! ([`crate::ids::TicketId`]). A ticket has a code version (0 at issue, +1 per
//! reissue) and at most one admission; its state lives with its order in the section
//! inventory that sold it (see `inventory/tickets.rs`), which admits a ticket exactly
//! once and is the one source of revocations ([`Revocation`]).
//!
//! - [`code`]: the signed QR code (`HK1.`...), checkable offline with the event's public key.
//! - [`barcode`]: the printed barcode's short text, checked by the server from the
//!   barcode alone before any state is read.
//! - [`gate`]: the scan vocabulary, the doors-open policy, and the checks a scan passes
//!   before it reaches a section.
//! - [`calls`]: the section actor calls for tickets, ownership checked in the engine.

pub mod barcode;
pub mod calls;
pub mod code;
pub mod gate;

use std::sync::Arc;

use crate::clock::Millis;
use crate::ids::{CustomerId, OrderId};
use crate::inventory::{Order, OrderState, Units};
use crate::venue::{CategoryIndex, Section, SectionKind};

pub use self::code::{Place, TicketClaim};
pub use self::gate::ScanOutcome;

/// A ticket's state as its holder sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TicketState {
    Valid,
    CheckedIn,
    /// The order was refunded.
    Cancelled,
}

impl TicketState {
    /// Ticket `index` of `order` (the caller checked that it exists).
    pub fn of(order: &Order, index: u16) -> TicketState {
        match (order.state, order.ticket(index).admitted) {
            (OrderState::Cancelled, _) => TicketState::Cancelled,
            (OrderState::Confirmed, Some(_)) => TicketState::CheckedIn,
            (OrderState::Confirmed, None) => TicketState::Valid,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TicketState::Valid => "valid",
            TicketState::CheckedIn => "checked_in",
            TicketState::Cancelled => "cancelled",
        }
    }
}

/// Where ticket `index` of `order` (sold by `section`) lets its holder in, and its
/// category; `None` if the order has no such ticket.
pub fn place(section: &Section, order: &Order, index: u16) -> Option<(Place, CategoryIndex)> {
    match (&section.kind, &order.units) {
        (SectionKind::Reserved(map), Units::Seats(seats)) => {
            let seat = *seats.get(usize::from(index))?;
            let category = map.seats.get(seat as usize)?.category;
            Some((Place::Seat(map.seat_id(&section.id, seat).0), category))
        }
        (SectionKind::GeneralAdmission { category, .. }, Units::Quantity(quantity)) => {
            (u32::from(index) < *quantity).then(|| (Place::GeneralAdmission(section.id.clone()), *category))
        }
        _ => None,
    }
}

/// What the code of version `version` of ticket `index` of `order` asserts.
pub fn claim(event: &str, section: &Section, order: &Order, index: u16, version: u16) -> Option<TicketClaim> {
    let (place, _) = place(section, order, index)?;
    Some(TicketClaim {
        event: event.to_string(),
        section_key: order.id.section.0,
        order: order.id.number,
        index,
        version,
        place,
    })
}

/// Who asks to see a ticket: an admin sees every ticket, a customer only their own
/// (ticket ids are guessable; a code is a bearer credential).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Viewer {
    Admin,
    Customer(CustomerId),
}

/// Why a reissue may be made: an admin's say-so, or the buyer's proof (the order id and
/// the buyer's email, as they gave them). The engine never sees the email in the clear
/// (see [`crate::inventory::Buyer`]): the API opens the order's sealed buyer data,
/// compares the email there and says which sealed blob it found it in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReissueProof {
    Admin,
    Buyer {
        /// `None` when what the buyer gave is not an order id at all.
        order: Option<OrderId>,
        /// The order's sealed buyer data in which the API found the email the buyer
        /// gave; `None` when it did not match (or the data could not be opened). It
        /// must still be the order's (not erased or changed since the API read it).
        email_found_in: Option<Arc<[u8]>>,
    },
    /// The buyer gave no proof.
    Missing,
}

impl ReissueProof {
    /// Whether this proves the right to reissue a ticket of `order`. A wrong order and a
    /// wrong email fail alike: nothing to probe.
    pub fn proves(&self, order: &Order) -> bool {
        match self {
            ReissueProof::Admin => true,
            ReissueProof::Buyer { order: claimed, email_found_in } => {
                let found_in_this_order = email_found_in
                    .as_ref()
                    .is_some_and(|sealed| !order.buyer.is_erased() && **sealed == *order.buyer.sealed);
                *claimed == Some(order.id) && found_in_this_order
            }
            ReissueProof::Missing => false,
        }
    }
}

/// A ticket (or a whole order) whose codes no longer all admit, as gates learn it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revocation {
    /// When it happened (the record's time): bundles are asked for "since".
    pub at: Millis,
    pub order: OrderId,
    /// The ticket, or `None` for every ticket of the order.
    pub ticket: Option<u16>,
    pub reason: RevocationReason,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RevocationReason {
    /// Reissued: only this version admits.
    Reissued { valid_version: u16 },
    /// The order was cancelled: nothing admits.
    Cancelled,
}

impl RevocationReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RevocationReason::Reissued { .. } => "reissued",
            RevocationReason::Cancelled => "cancelled",
        }
    }

    pub fn valid_version(self) -> Option<u16> {
        match self {
            RevocationReason::Reissued { valid_version } => Some(valid_version),
            RevocationReason::Cancelled => None,
        }
    }
}
