//! The sale state of one section for one event: the deterministic core that a
//! section actor wraps.
//!
//! `Inventory` is single-writer (its actor) and never reads a clock: every call that
//! depends on time takes `now`. Seat words live in [`SectionState`], shared with
//! readers (seat maps, availability polling) who never go through the actor.
//!
//! Lifecycle of a hold: created by `hold_*`; ends exactly once, by `release`,
//! `confirm` (becomes an order; on trust, or when its payment is authorized, see
//! `payments.rs`), or expiry (the sweep, or a new holder reclaiming one
//! of its seats, or any call that finds it expired). An order ends by `cancel`.
//!
//! Every change is made the same way, live or in recovery: an operation checks the
//! request, describes the change as a [`Record`], and applies the record. Live changes
//! also go to the journal, which the actor writes to the WAL before it answers.
//! Recovery applies the same records to a fresh inventory ([`Inventory::replay`]), so
//! the replayed state cannot drift from the live one.

mod apply;
mod buyers;
mod error;
mod holds;
mod model;
mod payments;
mod state;
mod tickets;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use crate::best::RowOrder;
use crate::config::EngineConfig;
use crate::event::{Event, OnSaleWindow};
use crate::ids::{HoldId, OrderId, SectionKey};
use crate::ledger::CustomerLedger;
use crate::lockfree::{HoldNumber, OrderNumber, Reclaimed};
use crate::venue::Venue;
use crate::wal::Record;

pub use buyers::Reseal;
pub use error::{ApplyError, HoldError, HoldRefused, OrderError, TicketError};
pub use model::{Buyer, Granted, Hold, Order, OrderState, Units};
pub use payments::{
    Checkout, LatePayment, Payment, PaymentDue, PaymentError, PaymentStart, PaymentState, PaymentStep, PspReport,
    VoidReason, PAYMENTS_DUE_MAX,
};
pub use state::{seat_code, Availability, Counts, SectionState, Stock};
pub use tickets::RefusedScan;

/// Expired holds one sweep retires at most; the rest wait for the next tick, so a
/// section with a mass expiry cannot starve the other actors on its thread.
pub const SWEEP_HOLDS_MAX: usize = 4096;

pub struct Inventory {
    key: SectionKey,
    state: Arc<SectionState>,
    /// Only for reserved sections.
    row_order: Option<RowOrder>,
    /// Seats per row not sold; the upper bound best-available skips rows by.
    row_unsold: Vec<u16>,
    ttl_ms: u64,
    lifetime_max_ms: u64,
    hold_seats_max: u32,
    on_sale: OnSaleWindow,
    /// Price per category index; `None` = not on sale at this event.
    prices: Vec<Option<u64>>,
    ledger: Arc<CustomerLedger>,
    holds: HashMap<HoldNumber, Hold>,
    /// (expires_at_s, hold) of every live hold, for the sweep.
    expiries: BTreeSet<(u32, HoldNumber)>,
    /// Every order of this section, indexed by order number (numbers are dense).
    orders: Vec<Order>,
    next_hold: HoldNumber,
    /// Every payment, by the hold it checked out (`payments.rs`).
    payments: HashMap<HoldNumber, Payment>,
    /// The payment that bought each order bought through the PSP.
    order_payments: HashMap<OrderNumber, HoldNumber>,
    /// Payments the PSP still has to be asked about (or the buyer to make).
    unsettled: BTreeSet<HoldNumber>,
    /// Where the next `payments_due` starts (not state: any start is correct).
    payments_cursor: HoldNumber,
    /// Scratch buffer for seats taken over from expired holds.
    reclaimed: Vec<Reclaimed>,
    /// Records of live changes not yet taken by the actor (the WAL outbox).
    journal: Vec<Record>,
    /// Scans refused since the last call, for the audit log (they change nothing).
    refused_scans: Vec<RefusedScan>,
    revocations: tickets::RevocationIndex,
}

pub struct InventoryParams<'a> {
    pub key: SectionKey,
    pub venue: Arc<Venue>,
    pub section_index: usize,
    pub event: &'a Event,
    pub config: &'a EngineConfig,
    pub ledger: Arc<CustomerLedger>,
}

impl Inventory {
    pub fn new(params: InventoryParams<'_>) -> Inventory {
        let state = Arc::new(SectionState::new(params.venue.clone(), params.section_index));
        let (row_order, row_unsold) = match state.seat_map() {
            Some(map) => (Some(RowOrder::new(map)), map.rows.iter().map(|row| row.seat_count as u16).collect()),
            None => (None, Vec::new()),
        };
        Inventory {
            key: params.key,
            row_order,
            row_unsold,
            ttl_ms: params.config.hold_ttl_ms,
            lifetime_max_ms: params.config.hold_lifetime_max_ms,
            hold_seats_max: params.config.hold_seats_max,
            on_sale: params.event.on_sale,
            prices: params.event.price_table(&params.venue),
            ledger: params.ledger,
            state,
            holds: HashMap::new(),
            expiries: BTreeSet::new(),
            orders: Vec::new(),
            next_hold: HoldNumber(0),
            payments: HashMap::new(),
            order_payments: HashMap::new(),
            unsettled: BTreeSet::new(),
            payments_cursor: HoldNumber(0),
            reclaimed: Vec::new(),
            journal: Vec::new(),
            refused_scans: Vec::new(),
            revocations: tickets::RevocationIndex::default(),
        }
    }

    pub fn key(&self) -> SectionKey {
        self.key
    }

    pub fn state(&self) -> &Arc<SectionState> {
        &self.state
    }

    pub fn hold(&self, id: HoldId) -> Result<&Hold, HoldError> {
        self.live_hold(id)
    }

    pub fn order(&self, id: OrderId) -> Option<&Order> {
        self.check_key(id.section).ok()?;
        self.orders.get(id.number.0 as usize)
    }

    /// Live holds (some may have expired but not been retired yet).
    pub fn holds(&self) -> impl Iterator<Item = &Hold> {
        self.holds.values()
    }

    /// How many holds [`Inventory::holds`] yields.
    pub fn holds_live(&self) -> usize {
        self.holds.len()
    }

    pub fn orders(&self) -> impl Iterator<Item = &Order> {
        self.orders.iter()
    }

    /// Takes the on-sale window and prices of an event whose definition changed (open or
    /// close the sale, set prices). Existing holds and orders keep the prices they got.
    /// Not a WAL record: the stored event definition is the source of terms on recovery.
    pub fn set_terms(&mut self, event: &Event) {
        self.on_sale = event.on_sale;
        self.prices = event.price_table(&self.state.venue);
    }

    /// Whether changes wait to be taken (the actor asserts none do before a call).
    pub fn journal_is_empty(&self) -> bool {
        self.journal.is_empty()
    }

    /// Takes the records of the changes made since the last call, oldest first.
    pub fn take_journal(&mut self) -> Vec<Record> {
        std::mem::take(&mut self.journal)
    }

    /// Takes the scans refused since the last call.
    pub fn take_refused_scans(&mut self) -> Vec<RefusedScan> {
        std::mem::take(&mut self.refused_scans)
    }
}

#[cfg(test)]
mod tests;

fn secs_u32(secs: u64) -> u32 {
    u32::try_from(secs).expect("time beyond 2106")
}
