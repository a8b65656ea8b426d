//! The sale state of one section for one event: the deterministic core that a
//! section actor wraps.
//!
//! `Inventory` is single-writer (its actor) and never reads a clock: every call that
//! depends on time takes `now`. Seat words live in [`SectionState`], shared with
//! readers (seat maps, availability polling) who never go through the actor.
//!
//! Lifecycle of a hold: created by `hold_*`; ends exactly once, by `release`,
//! `confirm` (becomes an order), or expiry (the sweep, or a new holder reclaiming one
//! of its seats, or any call that finds it expired). An order ends by `cancel`.
//!
//! Every change is made the same way, live or in recovery: an operation checks the
//! request, describes the change as a [`Record`], and applies the record. Live changes
//! also go to the journal, which the actor writes to the WAL before it answers.
//! Recovery applies the same records to a fresh inventory ([`Inventory::replay`]), so
//! the replayed state cannot drift from the live one.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use crate::best::{self, BestChoice, BestRequest, RowOrder};
use crate::clock::Millis;
use crate::config::EngineConfig;
use crate::event::{Event, OnSaleWindow};
use crate::ids::{CustomerId, HoldId, OrderId, SectionKey};
use crate::ledger::{CustomerLedger, LimitReached};
use crate::lockfree::{self, GaStock, HoldNumber, OrderNumber, Reclaimed, SeatState, SeatStates, HOLD_NUMBER_MAX};
use crate::venue::{CategoryIndex, SeatIndex, SeatMap, Section, SectionKind, Venue};
use crate::wal::{
    AdmissionRecord, BuyerRecord, HoldRecord, OrderRecord, Record, SectionSnapshot, TicketRecord, UnitsRecord,
};

/// Expired holds one sweep retires at most; the rest wait for the next tick, so a
/// section with a mass expiry cannot starve the other actors on its thread.
pub const SWEEP_HOLDS_MAX: usize = 4096;

/// What a section's seats or units look like now. Shared by the actor (the only
/// writer) and any number of readers.
pub struct SectionState {
    pub venue: Arc<Venue>,
    pub section_index: usize,
    pub stock: Stock,
    /// Per category index: capacity, held and sold, kept by the writer.
    categories: Box<[CategoryCounters]>,
}

pub enum Stock {
    Seats(SeatStates),
    GeneralAdmission(GaStock),
}

#[derive(Default)]
struct CategoryCounters {
    capacity: u32,
    held: AtomicU32,
    sold: AtomicU32,
}

/// Counts of a section (or one of its categories). `available = capacity - held - sold`.
///
/// Read without locks while sales go on, so the numbers are each exact but may be a
/// few operations apart. Expired holds count as held until swept (one sweep interval).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub capacity: u32,
    pub available: u32,
    pub held: u32,
    pub sold: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Availability {
    pub total: Counts,
    /// Only categories that have seats in this section.
    pub categories: Vec<(CategoryIndex, Counts)>,
}

/// Seat states for drawing a seat map, one byte per seat in seat-map order.
pub mod seat_code {
    pub const FREE: u8 = 0;
    pub const HELD: u8 = 1;
    pub const SOLD: u8 = 2;
}

impl SectionState {
    pub fn new(venue: Arc<Venue>, section_index: usize) -> SectionState {
        let section = &venue.sections[section_index];
        let mut categories: Box<[CategoryCounters]> =
            (0..venue.categories.len()).map(|_| CategoryCounters::default()).collect();
        let stock = match &section.kind {
            SectionKind::Reserved(map) => {
                for seat in &map.seats {
                    categories[usize::from(seat.category.0)].capacity += 1;
                }
                Stock::Seats(SeatStates::new(map.seats.len()))
            }
            SectionKind::GeneralAdmission { capacity, category } => {
                categories[usize::from(category.0)].capacity = *capacity;
                Stock::GeneralAdmission(GaStock::new(*capacity))
            }
        };
        SectionState { venue, section_index, stock, categories }
    }

    pub fn section(&self) -> &Section {
        &self.venue.sections[self.section_index]
    }

    pub fn seat_map(&self) -> Option<&SeatMap> {
        self.section().seat_map()
    }

    pub fn availability(&self) -> Availability {
        let mut total = Counts::default();
        let mut categories = Vec::new();
        for (index, counters) in self.categories.iter().enumerate() {
            if counters.capacity == 0 {
                continue;
            }
            let held = counters.held.load(Ordering::Relaxed);
            let sold = counters.sold.load(Ordering::Relaxed);
            let counts = Counts {
                capacity: counters.capacity,
                available: counters.capacity.saturating_sub(held + sold),
                held,
                sold,
            };
            total.capacity += counts.capacity;
            total.available += counts.available;
            total.held += counts.held;
            total.sold += counts.sold;
            categories.push((CategoryIndex(index as u8), counts));
        }
        Availability { total, categories }
    }

    /// One [`seat_code`] per seat; a hold that has expired at `now` shows as free.
    /// Empty for general admission.
    pub fn seat_codes(&self, now: Millis) -> Vec<u8> {
        let Stock::Seats(seats) = &self.stock else { return Vec::new() };
        (0..seats.len() as u32)
            .map(|seat| match seats.load(seat) {
                state if state.is_takeable(now.0) => seat_code::FREE,
                SeatState::Held { .. } => seat_code::HELD,
                _ => seat_code::SOLD,
            })
            .collect()
    }

    fn count(&self, category: CategoryIndex, change: CountChange, units: u32) {
        let counters = &self.categories[usize::from(category.0)];
        match change {
            CountChange::FreeToHeld => {
                counters.held.fetch_add(units, Ordering::Relaxed);
            }
            CountChange::HeldToFree => {
                counters.held.fetch_sub(units, Ordering::Relaxed);
            }
            CountChange::HeldToSold => {
                counters.held.fetch_sub(units, Ordering::Relaxed);
                counters.sold.fetch_add(units, Ordering::Relaxed);
            }
            CountChange::SoldToFree => {
                counters.sold.fetch_sub(units, Ordering::Relaxed);
            }
        }
    }
}

#[derive(Clone, Copy)]
enum CountChange {
    FreeToHeld,
    HeldToFree,
    HeldToSold,
    SoldToFree,
}

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
            Err(_) => TicketRecord { index, version: 0, admitted: None },
        }
    }

    fn ticket_mut(&mut self, index: u16) -> &mut TicketRecord {
        let found = match self.tickets.binary_search_by_key(&index, |ticket| ticket.index) {
            Ok(found) => found,
            Err(at) => {
                self.tickets.insert(at, TicketRecord { index, version: 0, admitted: None });
                at
            }
        };
        &mut self.tickets[found]
    }
}

/// What a gate's scan of a ticket found, at the section that owns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScanOutcome {
    /// Let in now, or earlier by this same scan (a retry with the same scan id).
    Admitted(AdmissionRecord),
    /// Let in before, by another scan: the ticket is being used twice.
    AlreadyAdmitted(AdmissionRecord),
    /// An older code of a reissued ticket.
    Revoked { current_version: u16 },
    /// The order was cancelled (refunded).
    Cancelled,
    /// No such ticket here (or a version that was never issued).
    Invalid,
}

/// Why a ticket could not be reissued.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    #[error("no such ticket")]
    NotFound,
    #[error("the order is cancelled")]
    Cancelled,
    #[error("the ticket has already been used to enter")]
    AlreadyAdmitted,
    #[error("the ticket has been reissued too many times")]
    VersionsExhausted,
}

/// Who paid for an order: the payment reference and the buyer's name and email, as
/// the caller's payment step reported them. Stored with the order, never validated here.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Buyer {
    pub payment_reference: String,
    pub name: String,
    pub email: String,
}

impl Buyer {
    fn to_record(&self) -> BuyerRecord {
        BuyerRecord {
            payment_reference: self.payment_reference.clone(),
            name: self.name.clone(),
            email: self.email.clone(),
        }
    }

    fn from_record(record: &BuyerRecord) -> Buyer {
        Buyer {
            payment_reference: record.payment_reference.clone(),
            name: record.name.clone(),
            email: record.email.clone(),
        }
    }
}

/// A granted hold, with the reason for a best-available choice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Granted {
    pub hold: Hold,
    pub choice: Option<BestChoice>,
}

/// Why a hold was refused. Nothing was held.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HoldRefused {
    #[error("seats not available: {seats:?}")]
    SeatsUnavailable { seats: Vec<SeatIndex> },
    #[error("not enough seats left that match the request")]
    NoSeatsMatch,
    #[error("sold out: {available} left")]
    SoldOut { available: u32 },
    #[error("customer seat limit reached: {} of {}", .0.current, .0.limit)]
    CustomerLimit(LimitReached),
    #[error("the event is not on sale now")]
    NotOnSale,
    #[error("{0}")]
    Invalid(&'static str),
    #[error("too many seats in one hold (at most {max})")]
    TooManySeats { max: u32 },
    #[error("category has no ticket type for this event")]
    CategoryNotOnSale,
    #[error("this section can issue no more holds")]
    HoldNumbersExhausted,
}

/// Why an operation on an existing hold failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HoldError {
    #[error("no such hold")]
    NotFound,
    #[error("the hold has ended (expired, released or confirmed)")]
    Ended,
    #[error("the hold belongs to another customer")]
    NotYours,
    #[error("the hold has expired")]
    Expired,
    #[error("the hold has reached its maximum lifetime")]
    LifetimeReached,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    #[error("no such order")]
    NotFound,
    #[error("the order is already cancelled")]
    AlreadyCancelled,
}

/// A record that does not fit the state it is applied to: the log or snapshot is
/// corrupt or was written by a diverging build. Recovery refuses to go on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("section {section}: {problem} (record {record})")]
pub struct ApplyError {
    pub section: u32,
    pub record: String,
    pub problem: String,
}

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
    /// Scratch buffer for seats taken over from expired holds.
    reclaimed: Vec<Reclaimed>,
    /// Records of live changes not yet taken by the actor (the WAL outbox).
    journal: Vec<Record>,
    /// Scans refused since the last call, for the audit log (they change nothing).
    refused_scans: Vec<RefusedScan>,
}

/// A refused scan, as the audit log records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefusedScan {
    pub order: u32,
    pub index: u16,
    pub version: u16,
    pub gate: String,
    pub scan_id: String,
    /// `already_admitted`, `revoked`, `cancelled` or `invalid`.
    pub result: &'static str,
    pub at_ms: u64,
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
            next_hold: 0,
            reclaimed: Vec::new(),
            journal: Vec::new(),
            refused_scans: Vec::new(),
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
        self.orders.get(id.number as usize)
    }

    /// Live holds (some may have expired but not been retired yet).
    pub fn holds(&self) -> impl Iterator<Item = &Hold> {
        self.holds.values()
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

    /// Takes the records of the changes made since the last call, oldest first.
    pub fn take_journal(&mut self) -> Vec<Record> {
        std::mem::take(&mut self.journal)
    }

    /// Takes the scans refused since the last call.
    pub fn take_refused_scans(&mut self) -> Vec<RefusedScan> {
        std::mem::take(&mut self.refused_scans)
    }

    /// A gate scanned ticket `index` of order `order` at code version `version` (the
    /// caller checked the code's signature). The first scan of the current version of
    /// a ticket of a live order admits; every later one is refused, except a retry of
    /// the admitting scan (same `scan_id`), which gets the same answer.
    pub fn scan(
        &mut self,
        order: u32,
        index: u16,
        version: u16,
        gate: &str,
        scan_id: &str,
        now: Millis,
    ) -> ScanOutcome {
        match self.check_scan(order, index, version, scan_id) {
            Ok(Some(earlier)) => ScanOutcome::Admitted(earlier),
            Ok(None) => {
                let admission = AdmissionRecord { at_ms: now.0, gate: gate.to_string(), scan_id: scan_id.to_string() };
                self.commit(Record::TicketAdmitted { order, index, version, admission: admission.clone() });
                ScanOutcome::Admitted(admission)
            }
            Err(refused) => {
                let result = match &refused {
                    ScanOutcome::AlreadyAdmitted(_) => "already_admitted",
                    ScanOutcome::Revoked { .. } => "revoked",
                    ScanOutcome::Cancelled => "cancelled",
                    ScanOutcome::Invalid | ScanOutcome::Admitted(_) => "invalid",
                };
                self.refused_scans.push(RefusedScan {
                    order,
                    index,
                    version,
                    gate: gate.to_string(),
                    scan_id: scan_id.to_string(),
                    result,
                    at_ms: now.0,
                });
                refused
            }
        }
    }

    /// `Ok(None)`: admit now; `Ok(Some(admission))`: this scan admitted it before;
    /// `Err(outcome)`: refused.
    fn check_scan(
        &self,
        order: u32,
        index: u16,
        version: u16,
        scan_id: &str,
    ) -> Result<Option<AdmissionRecord>, ScanOutcome> {
        let found = self.orders.get(order as usize).ok_or(ScanOutcome::Invalid)?;
        if u32::from(index) >= found.units.count() {
            return Err(ScanOutcome::Invalid);
        }
        let ticket = found.ticket(index);
        if version > ticket.version {
            return Err(ScanOutcome::Invalid);
        }
        if found.state == OrderState::Cancelled {
            return Err(ScanOutcome::Cancelled);
        }
        if version < ticket.version {
            return Err(ScanOutcome::Revoked { current_version: ticket.version });
        }
        match ticket.admitted {
            Some(admission) if admission.scan_id == scan_id => Ok(Some(admission)),
            Some(admission) => Err(ScanOutcome::AlreadyAdmitted(admission)),
            None => Ok(None),
        }
    }

    /// Gives ticket `index` of order `id` a new code version: its older codes are dead.
    /// Returns the order and the new version.
    pub fn reissue(&mut self, id: OrderId, index: u16, now: Millis) -> Result<(Order, u16), TicketError> {
        self.check_key(id.section).map_err(|_| TicketError::NotFound)?;
        let order = self.orders.get(id.number as usize).ok_or(TicketError::NotFound)?;
        if u32::from(index) >= order.units.count() {
            return Err(TicketError::NotFound);
        }
        if order.state == OrderState::Cancelled {
            return Err(TicketError::Cancelled);
        }
        let ticket = order.ticket(index);
        if ticket.admitted.is_some() {
            return Err(TicketError::AlreadyAdmitted);
        }
        let version = ticket.version.checked_add(1).ok_or(TicketError::VersionsExhausted)?;
        self.commit(Record::TicketReissued { order: id.number, index, version, at_ms: now.0 });
        Ok((self.orders[id.number as usize].clone(), version))
    }

    /// Holds exactly these seats, or none of them.
    pub fn hold_seats(
        &mut self,
        customer: &CustomerId,
        seats: &[SeatIndex],
        now: Millis,
    ) -> Result<Granted, HoldRefused> {
        let Stock::Seats(states) = &self.state.stock else {
            return Err(HoldRefused::Invalid("general-admission sections have no seats; ask for a quantity"));
        };
        let map = self.state.seat_map().expect("reserved section has a seat map");
        if seats.is_empty() {
            return Err(HoldRefused::Invalid("no seats requested"));
        }
        let mut sorted = seats.to_vec();
        sorted.sort_unstable();
        if sorted.windows(2).any(|pair| pair[0] == pair[1]) {
            return Err(HoldRefused::Invalid("a seat is requested twice"));
        }
        if sorted.last().is_some_and(|&seat| seat as usize >= map.seats.len()) {
            return Err(HoldRefused::Invalid("seat index out of range"));
        }
        let total_minor = self.price_seats(&sorted)?;
        let unavailable: Vec<SeatIndex> =
            sorted.iter().copied().filter(|&seat| !states.load(seat).is_takeable(now.0)).collect();
        self.admit(customer, sorted.len() as u32, now)?;
        if !unavailable.is_empty() {
            self.ledger.give_back(customer, sorted.len() as u32);
            return Err(HoldRefused::SeatsUnavailable { seats: unavailable });
        }
        let hold = self.grant(customer, UnitsRecord::Seats(sorted), total_minor, now)?;
        Ok(Granted { hold, choice: None })
    }

    /// Chooses and holds the best seats for `request` (see [`crate::best`]).
    pub fn hold_best(
        &mut self,
        customer: &CustomerId,
        request: &BestRequest,
        now: Millis,
    ) -> Result<Granted, HoldRefused> {
        let (Stock::Seats(states), Some(order)) = (&self.state.stock, &self.row_order) else {
            return Err(HoldRefused::Invalid("general-admission sections have no seats; ask for a quantity"));
        };
        let map = self.state.seat_map().expect("reserved section has a seat map");
        self.check_quantity(request.quantity)?;
        if let Some(category) = request.category {
            if self.prices.get(usize::from(category.0)).copied().flatten().is_none() {
                return Err(HoldRefused::CategoryNotOnSale);
            }
        }
        let priced = |seat: SeatIndex| self.prices[usize::from(map.seats[seat as usize].category.0)].is_some();
        let is_free = |seat: SeatIndex| priced(seat) && states.load(seat).is_takeable(now.0);
        let choice = best::choose(map, order, &self.row_unsold, is_free, request).ok_or(HoldRefused::NoSeatsMatch)?;
        let total_minor = self.price_seats(&choice.seats)?;
        self.admit(customer, request.quantity, now)?;
        let hold = self.grant(customer, UnitsRecord::Seats(choice.seats.clone()), total_minor, now)?;
        Ok(Granted { hold, choice: Some(choice) })
    }

    /// Holds `quantity` general-admission units.
    pub fn hold_quantity(&mut self, customer: &CustomerId, quantity: u32, now: Millis) -> Result<Granted, HoldRefused> {
        let SectionKind::GeneralAdmission { category, .. } = self.state.section().kind else {
            return Err(HoldRefused::Invalid("reserved sections sell seats; name seats or ask for best-available"));
        };
        self.check_quantity(quantity)?;
        let price = self.prices[usize::from(category.0)].ok_or(HoldRefused::CategoryNotOnSale)?;
        let mut available = self.ga_available();
        if available < quantity {
            // Expired holds are reclaimable at once, not only at the next sweep.
            self.expire_due(now, usize::MAX);
            available = self.ga_available();
        }
        if available < quantity {
            return Err(HoldRefused::SoldOut { available });
        }
        self.admit(customer, quantity, now)?;
        let hold = self.grant(customer, UnitsRecord::Quantity(quantity), price * u64::from(quantity), now)?;
        Ok(Granted { hold, choice: None })
    }

    pub fn release(&mut self, id: HoldId, customer: &CustomerId, now: Millis) -> Result<Hold, HoldError> {
        self.owned_live_hold(id, customer, now)?;
        Ok(self.commit_retirement(Record::HoldReleased { hold: id.number, at_ms: now.0 }))
    }

    /// Moves the hold's expiry to `now + ttl`, capped at `created_at + lifetime max`.
    pub fn extend(&mut self, id: HoldId, customer: &CustomerId, now: Millis) -> Result<Hold, HoldError> {
        let (ttl_ms, lifetime_max_ms) = (self.ttl_ms, self.lifetime_max_ms);
        let hold = self.owned_live_hold(id, customer, now)?;
        let cap = hold.created_at.saturating_add(lifetime_max_ms);
        let wanted = now.saturating_add(ttl_ms).min(cap);
        // Round down so the cap is never passed. Within the same second as the last
        // extension there is nothing to gain: the hold is answered as it is.
        let expires_at_s = secs_u32(wanted.0 / 1000);
        if expires_at_s <= hold.expires_at_s {
            return if wanted >= cap { Err(HoldError::LifetimeReached) } else { Ok(hold.clone()) };
        }
        let record = Record::HoldExtended { hold: id.number, expires_at_s, at_ms: now.0 };
        self.commit(record);
        Ok(self.holds[&id.number].clone())
    }

    /// Sells the hold's seats: the hold becomes an order.
    pub fn confirm(
        &mut self,
        id: HoldId,
        customer: &CustomerId,
        buyer: &Buyer,
        now: Millis,
    ) -> Result<Order, HoldError> {
        self.owned_live_hold(id, customer, now)?;
        let order = u32::try_from(self.orders.len()).expect("order numbers exhausted");
        self.commit(Record::OrderConfirmed {
            order,
            hold: id.number,
            confirmed_at_ms: now.0,
            buyer: buyer.to_record(),
        });
        Ok(self.orders[order as usize].clone())
    }

    /// Cancels (refunds) an order: its seats return to sale, the customer's limit is given back.
    pub fn cancel(&mut self, id: OrderId, now: Millis) -> Result<Order, OrderError> {
        self.check_key(id.section).map_err(|_| OrderError::NotFound)?;
        let order = self.orders.get(id.number as usize).ok_or(OrderError::NotFound)?;
        if order.state == OrderState::Cancelled {
            return Err(OrderError::AlreadyCancelled);
        }
        self.commit(Record::OrderCancelled { order: id.number, at_ms: now.0 });
        Ok(self.orders[id.number as usize].clone())
    }

    /// Frees up to [`SWEEP_HOLDS_MAX`] holds that expired by `now`; returns them.
    pub fn sweep(&mut self, now: Millis) -> Vec<Hold> {
        self.expire_due(now, SWEEP_HOLDS_MAX)
    }

    /// Frees every hold that expired by `now`, however many (recovery, before any
    /// caller can look). Returns how many.
    pub fn retire_expired(&mut self, now: Millis) -> usize {
        self.expire_due(now, usize::MAX).len()
    }

    /// The whole state as a snapshot taken after WAL record `last_seq`.
    pub fn snapshot(&self, last_seq: u64) -> SectionSnapshot {
        let mut holds: Vec<HoldRecord> = self.holds.values().map(Hold::to_record).collect();
        holds.sort_unstable_by_key(|hold| hold.hold);
        SectionSnapshot {
            last_seq,
            next_hold: self.next_hold,
            holds,
            orders: self.orders.iter().map(Order::to_record).collect(),
        }
    }

    /// Rebuilds the state of a snapshot into this fresh inventory.
    pub fn restore(&mut self, snapshot: &SectionSnapshot) -> Result<(), ApplyError> {
        assert!(self.holds.is_empty() && self.orders.is_empty(), "restore into a fresh inventory");
        for order in &snapshot.orders {
            self.restore_order(order)?;
        }
        for hold in &snapshot.holds {
            let customer = CustomerId::new(&hold.customer);
            self.ledger.force_reserve(&customer, units_count(&hold.units));
            let reclaimed = self.apply_hold_created(hold, customer)?;
            if !reclaimed.is_empty() {
                return Err(self.apply_error(&format!("snapshot hold {}", hold.hold), "seats shared by two holds"));
            }
        }
        if snapshot.next_hold < self.next_hold {
            return Err(self.apply_error("snapshot", "next hold number below a hold it contains"));
        }
        self.next_hold = snapshot.next_hold;
        Ok(())
    }

    /// Applies a record read from the WAL, as it was applied when it was made.
    pub fn replay(&mut self, record: &Record) -> Result<(), ApplyError> {
        if let Record::HoldCreated { hold, reclaimed } = record {
            let customer = CustomerId::new(&hold.customer);
            self.ledger.force_reserve(&customer, units_count(&hold.units));
            let found = self.apply_hold_created(hold, customer)?;
            if found != *reclaimed {
                return Err(self.apply_error(&format!("{record:?}"), "reclaimed other holds than when it was made"));
            }
            return Ok(());
        }
        self.apply(record)
    }

    /// Applies a live change and journals it. Live callers have checked the request,
    /// so a record that does not apply is a bug.
    fn commit(&mut self, record: Record) {
        if let Err(error) = self.apply(&record) {
            panic!("live change did not apply: {error}");
        }
        self.journal.push(record);
    }

    /// Commits a release or expiry and returns the hold it ended.
    fn commit_retirement(&mut self, record: Record) -> Hold {
        let (Record::HoldReleased { hold, .. } | Record::HoldExpired { hold, .. }) = record else {
            unreachable!("not a retirement: {record:?}")
        };
        let ended = self.holds.get(&hold).expect("retiring a live hold").clone();
        self.commit(record);
        ended
    }

    /// Grants a hold on units that the caller found takeable and reserved in the ledger.
    fn grant(
        &mut self,
        customer: &CustomerId,
        units: UnitsRecord,
        total_minor: u64,
        now: Millis,
    ) -> Result<Hold, HoldRefused> {
        let count = units_count(&units);
        if self.next_hold > HOLD_NUMBER_MAX {
            self.ledger.give_back(customer, count);
            return Err(HoldRefused::HoldNumbersExhausted);
        }
        let hold = HoldRecord {
            hold: self.next_hold,
            customer: customer.0.to_string(),
            units,
            created_at_ms: now.0,
            expires_at_s: secs_u32(now.saturating_add(self.ttl_ms).0.div_ceil(1000)),
            total_minor,
        };
        match self.apply_hold_created(&hold, customer.clone()) {
            Ok(reclaimed) => {
                let number = hold.hold;
                self.journal.push(Record::HoldCreated { hold, reclaimed });
                Ok(self.holds[&number].clone())
            }
            // Only a second writer racing this actor could get here.
            Err(_) => {
                self.ledger.give_back(customer, count);
                let seats = match hold.units {
                    UnitsRecord::Seats(seats) => seats,
                    UnitsRecord::Quantity(_) => Vec::new(),
                };
                Err(HoldRefused::SeatsUnavailable { seats })
            }
        }
    }

    fn expire_due(&mut self, now: Millis, holds_max: usize) -> Vec<Hold> {
        let mut expired = Vec::new();
        while expired.len() < holds_max {
            let Some(&(expires_at_s, hold)) = self.expiries.first() else { break };
            if !lockfree::expired(expires_at_s, now.0) {
                break;
            }
            expired.push(self.commit_retirement(Record::HoldExpired { hold, at_ms: now.0 }));
        }
        expired
    }

    fn apply(&mut self, record: &Record) -> Result<(), ApplyError> {
        match record {
            Record::HoldCreated { .. } => unreachable!("hold creation is applied by `grant` or `replay`"),
            Record::HoldExtended { hold, expires_at_s, at_ms } => self.apply_extended(*hold, *expires_at_s, *at_ms),
            Record::HoldReleased { hold, .. } | Record::HoldExpired { hold, .. } => {
                let hold = self.end_hold(*hold).map_err(|problem| self.apply_error(&format!("{record:?}"), problem))?;
                self.free_units(&hold);
                Ok(())
            }
            Record::OrderConfirmed { order, hold, confirmed_at_ms, buyer } => {
                self.apply_confirmed(*order, *hold, *confirmed_at_ms, buyer)
            }
            Record::OrderCancelled { order, .. } => self.apply_cancelled(*order),
            Record::TicketReissued { order, index, version, .. } => self.apply_reissued(*order, *index, *version),
            Record::TicketAdmitted { order, index, version, admission } => {
                self.apply_admitted(*order, *index, *version, admission)
            }
        }
    }

    fn apply_reissued(&mut self, number: OrderNumber, index: u16, version: u16) -> Result<(), ApplyError> {
        let what = || format!("order {number} ticket {index} reissued as version {version}");
        let order = self.orders.get(number as usize).ok_or_else(|| self.apply_error(&what(), "no such order"))?;
        if u32::from(index) >= order.units.count() || order.state == OrderState::Cancelled {
            return Err(self.apply_error(&what(), "no such live ticket"));
        }
        let ticket = order.ticket(index);
        if ticket.admitted.is_some() || ticket.version.checked_add(1) != Some(version) {
            return Err(self.apply_error(&what(), "ticket admitted or versions out of sequence"));
        }
        self.orders[number as usize].ticket_mut(index).version = version;
        Ok(())
    }

    fn apply_admitted(
        &mut self,
        number: OrderNumber,
        index: u16,
        version: u16,
        admission: &AdmissionRecord,
    ) -> Result<(), ApplyError> {
        let what = || format!("order {number} ticket {index} admitted");
        let order = self.orders.get(number as usize).ok_or_else(|| self.apply_error(&what(), "no such order"))?;
        if u32::from(index) >= order.units.count() || order.state == OrderState::Cancelled {
            return Err(self.apply_error(&what(), "no such live ticket"));
        }
        let ticket = order.ticket(index);
        if ticket.admitted.is_some() || ticket.version != version {
            return Err(self.apply_error(&what(), "admitted twice or at a dead version"));
        }
        self.orders[number as usize].ticket_mut(index).admitted = Some(admission.clone());
        Ok(())
    }

    /// Takes the hold's units; seats held by holds expired at its creation time are
    /// taken over and those holds retired. Returns their numbers, ascending.
    /// Live holds have reserved their ledger seats already (atomically, across
    /// sections); replayed ones are reserved by `replay`/`restore` before this.
    /// `customer` is `record.customer`, passed in so a live hold shares the caller's id.
    fn apply_hold_created(&mut self, record: &HoldRecord, customer: CustomerId) -> Result<Vec<u32>, ApplyError> {
        let what = || format!("hold created {}", record.hold);
        if self.holds.contains_key(&record.hold) {
            return Err(self.apply_error(&what(), "hold number already live"));
        }
        debug_assert_eq!(*customer.0, *record.customer);
        let hold = Hold::from_record(self.key, record, customer);
        let mut reclaimed_holds = Vec::new();
        match (&self.state.stock, &hold.units) {
            (Stock::Seats(states), Units::Seats(seats)) => {
                let map = self.state.seat_map().expect("reserved section has a seat map");
                if seats.iter().any(|&seat| seat as usize >= map.seats.len()) {
                    return Err(self.apply_error(&what(), "seat out of range"));
                }
                if seats.is_empty() || seats.windows(2).any(|pair| pair[0] >= pair[1]) {
                    return Err(self.apply_error(&what(), "seats empty, unsorted or repeated"));
                }
                self.reclaimed.clear();
                if let Err(lost) =
                    states.hold(seats, record.hold, record.expires_at_s, record.created_at_ms, &mut self.reclaimed)
                {
                    return Err(self.apply_error(&what(), &format!("seat {} is {:?}", lost.seat, lost.found)));
                }
                for &seat in seats {
                    if !self.reclaimed.iter().any(|taken| taken.seat == seat) {
                        self.state.count(map.seats[seat as usize].category, CountChange::FreeToHeld, 1);
                    }
                }
                reclaimed_holds = self.reclaimed.iter().map(|taken| taken.hold).collect();
                reclaimed_holds.sort_unstable();
                reclaimed_holds.dedup();
            }
            (Stock::GeneralAdmission(stock), Units::Quantity(quantity)) => {
                if stock.hold(*quantity).is_err() {
                    return Err(self.apply_error(&what(), "over capacity"));
                }
                self.state.count(self.ga_category(), CountChange::FreeToHeld, *quantity);
            }
            _ => return Err(self.apply_error(&what(), "units do not match the section kind")),
        }
        // A seat taken from an expired hold ends that hold: its other seats go free now.
        for &old in &reclaimed_holds {
            let old = self.end_hold(old).map_err(|problem| self.apply_error(&what(), problem))?;
            self.free_units(&old);
        }
        self.next_hold = self.next_hold.max(record.hold + 1);
        self.expiries.insert((hold.expires_at_s, record.hold));
        self.holds.insert(record.hold, hold);
        Ok(reclaimed_holds)
    }

    fn apply_extended(&mut self, number: HoldNumber, expires_at_s: u32, at_ms: u64) -> Result<(), ApplyError> {
        let what = || format!("hold {number} extended");
        let hold = self.holds.get(&number).ok_or_else(|| self.apply_error(&what(), "hold not live"))?;
        let old_expires_at_s = hold.expires_at_s;
        if let (Stock::Seats(states), Units::Seats(seats)) = (&self.state.stock, &hold.units) {
            if let Err(lost) = states.extend(seats, number, old_expires_at_s, expires_at_s, at_ms) {
                return Err(self.apply_error(&what(), &format!("seat {} is {:?}", lost.seat, lost.found)));
            }
        } else if lockfree::expired(old_expires_at_s, at_ms) {
            return Err(self.apply_error(&what(), "hold had expired"));
        }
        self.expiries.remove(&(old_expires_at_s, number));
        self.expiries.insert((expires_at_s, number));
        self.holds.get_mut(&number).expect("checked above").expires_at_s = expires_at_s;
        Ok(())
    }

    fn apply_confirmed(
        &mut self,
        order: OrderNumber,
        number: HoldNumber,
        at_ms: u64,
        buyer: &BuyerRecord,
    ) -> Result<(), ApplyError> {
        let what = || format!("order {order} confirmed from hold {number}");
        if order as usize != self.orders.len() {
            return Err(self.apply_error(&what(), "order numbers out of sequence"));
        }
        let hold = self.holds.get(&number).ok_or_else(|| self.apply_error(&what(), "hold not live"))?;
        match (&self.state.stock, &hold.units) {
            (Stock::Seats(states), Units::Seats(seats)) => {
                if let Err(lost) = states.confirm(seats, number, hold.expires_at_s, order, at_ms) {
                    return Err(self.apply_error(&what(), &format!("seat {} is {:?}", lost.seat, lost.found)));
                }
                count_sold(&mut self.row_unsold, &self.state, seats, CountChange::HeldToSold);
            }
            (Stock::GeneralAdmission(stock), Units::Quantity(quantity)) => {
                if lockfree::expired(hold.expires_at_s, at_ms) {
                    return Err(self.apply_error(&what(), "hold had expired"));
                }
                stock.confirm(*quantity);
                self.state.count(self.ga_category(), CountChange::HeldToSold, *quantity);
            }
            _ => unreachable!("hold units match the section kind"),
        }
        let hold = self.end_hold(number).expect("checked above");
        self.orders.push(Order {
            id: OrderId { section: self.key, number: order },
            hold: hold.id,
            customer: hold.customer,
            units: hold.units,
            total_minor: hold.total_minor,
            confirmed_at: Millis(at_ms),
            state: OrderState::Confirmed,
            buyer: Arc::new(Buyer::from_record(buyer)),
            tickets: Vec::new(),
        });
        Ok(())
    }

    fn apply_cancelled(&mut self, number: OrderNumber) -> Result<(), ApplyError> {
        let what = || format!("order {number} cancelled");
        let order = self.orders.get(number as usize).ok_or_else(|| self.apply_error(&what(), "no such order"))?;
        if order.state == OrderState::Cancelled {
            return Err(self.apply_error(&what(), "already cancelled"));
        }
        match (&self.state.stock, &order.units) {
            (Stock::Seats(states), Units::Seats(seats)) => {
                if let Err(lost) = states.cancel(seats, number) {
                    return Err(self.apply_error(&what(), &format!("seat {} is {:?}", lost.seat, lost.found)));
                }
                count_sold(&mut self.row_unsold, &self.state, seats, CountChange::SoldToFree);
            }
            (Stock::GeneralAdmission(stock), Units::Quantity(quantity)) => {
                stock.cancel(*quantity);
                self.state.count(self.ga_category(), CountChange::SoldToFree, *quantity);
            }
            _ => unreachable!("order units match the section kind"),
        }
        let order = &mut self.orders[number as usize];
        order.state = OrderState::Cancelled;
        self.ledger.give_back(&order.customer, order.units.count());
        Ok(())
    }

    /// Puts a snapshotted order back: its seats sold (unless cancelled), its ledger seats taken.
    fn restore_order(&mut self, record: &OrderRecord) -> Result<(), ApplyError> {
        let what = || format!("snapshot order {}", record.order);
        if record.order as usize != self.orders.len() {
            return Err(self.apply_error(&what(), "order numbers out of sequence"));
        }
        let units = units_from_record(&record.units);
        if !record.cancelled {
            match (&self.state.stock, &units) {
                (Stock::Seats(states), Units::Seats(seats)) => {
                    let map = self.state.seat_map().expect("reserved section has a seat map");
                    if seats.iter().any(|&seat| seat as usize >= map.seats.len()) {
                        return Err(self.apply_error(&what(), "seat out of range"));
                    }
                    if let Err(lost) = states.restore_sold(seats, record.order) {
                        return Err(self.apply_error(&what(), &format!("seat {} is {:?}", lost.seat, lost.found)));
                    }
                    for &seat in seats {
                        self.state.count(map.seats[seat as usize].category, CountChange::FreeToHeld, 1);
                    }
                    count_sold(&mut self.row_unsold, &self.state, seats, CountChange::HeldToSold);
                }
                (Stock::GeneralAdmission(stock), Units::Quantity(quantity)) => {
                    if stock.hold(*quantity).is_err() {
                        return Err(self.apply_error(&what(), "over capacity"));
                    }
                    stock.confirm(*quantity);
                    self.state.count(self.ga_category(), CountChange::FreeToHeld, *quantity);
                    self.state.count(self.ga_category(), CountChange::HeldToSold, *quantity);
                }
                _ => return Err(self.apply_error(&what(), "units do not match the section kind")),
            }
        }
        let tickets_valid = record.tickets.windows(2).all(|pair| pair[0].index < pair[1].index)
            && record.tickets.iter().all(|ticket| u32::from(ticket.index) < units.count());
        if !tickets_valid {
            return Err(self.apply_error(&what(), "tickets unsorted or out of range"));
        }
        let customer = CustomerId::new(&record.customer);
        if !record.cancelled {
            self.ledger.force_reserve(&customer, units.count());
        }
        self.orders.push(Order {
            id: OrderId { section: self.key, number: record.order },
            hold: HoldId { section: self.key, number: record.hold },
            customer,
            units,
            total_minor: record.total_minor,
            confirmed_at: Millis(record.confirmed_at_ms),
            state: if record.cancelled { OrderState::Cancelled } else { OrderState::Confirmed },
            buyer: Arc::new(Buyer::from_record(&record.buyer)),
            tickets: record.tickets.clone(),
        });
        Ok(())
    }

    fn apply_error(&self, record: &str, problem: &str) -> ApplyError {
        ApplyError { section: self.key.0, record: record.to_string(), problem: problem.to_string() }
    }

    fn check_quantity(&self, quantity: u32) -> Result<(), HoldRefused> {
        if quantity == 0 {
            return Err(HoldRefused::Invalid("quantity must be at least 1"));
        }
        if quantity > self.hold_seats_max {
            return Err(HoldRefused::TooManySeats { max: self.hold_seats_max });
        }
        Ok(())
    }

    /// Checks the sale window and size and reserves the customer's seats in the ledger.
    /// Every path after a successful `admit` either grants or gives the seats back.
    fn admit(&self, customer: &CustomerId, count: u32, now: Millis) -> Result<(), HoldRefused> {
        if !self.on_sale.contains(now) {
            return Err(HoldRefused::NotOnSale);
        }
        if count > self.hold_seats_max {
            return Err(HoldRefused::TooManySeats { max: self.hold_seats_max });
        }
        self.ledger.reserve(customer, count).map_err(HoldRefused::CustomerLimit)
    }

    fn price_seats(&self, seats: &[SeatIndex]) -> Result<u64, HoldRefused> {
        let map = self.state.seat_map().expect("reserved section has a seat map");
        seats.iter().try_fold(0u64, |total, &seat| {
            let category = map.seats[seat as usize].category;
            let price = self.prices[usize::from(category.0)].ok_or(HoldRefused::CategoryNotOnSale)?;
            Ok(total + price)
        })
    }

    fn ga_available(&self) -> u32 {
        let stock = match &self.state.stock {
            Stock::GeneralAdmission(stock) => stock,
            Stock::Seats(_) => unreachable!("only called for GA sections"),
        };
        let counts = stock.counts();
        stock.capacity() - counts.held - counts.sold
    }

    fn ga_category(&self) -> CategoryIndex {
        match self.state.section().kind {
            SectionKind::GeneralAdmission { category, .. } => category,
            SectionKind::Reserved(_) => unreachable!("only called for GA sections"),
        }
    }

    fn check_key(&self, section: SectionKey) -> Result<(), HoldError> {
        if section == self.key {
            Ok(())
        } else {
            Err(HoldError::NotFound)
        }
    }

    fn live_hold(&self, id: HoldId) -> Result<&Hold, HoldError> {
        self.check_key(id.section)?;
        match self.holds.get(&id.number) {
            Some(hold) => Ok(hold),
            None if id.number < self.next_hold => Err(HoldError::Ended),
            None => Err(HoldError::NotFound),
        }
    }

    /// The hold, if it exists, belongs to `customer` and is live at `now`; an expired
    /// hold found here is retired on the spot.
    fn owned_live_hold(&mut self, id: HoldId, customer: &CustomerId, now: Millis) -> Result<&Hold, HoldError> {
        let hold = self.live_hold(id)?;
        if hold.customer != *customer {
            return Err(HoldError::NotYours);
        }
        if lockfree::expired(hold.expires_at_s, now.0) {
            self.commit_retirement(Record::HoldExpired { hold: id.number, at_ms: now.0 });
            return Err(HoldError::Expired);
        }
        Ok(&self.holds[&id.number])
    }

    /// Removes a live hold's record; the caller decides what happens to its units.
    fn end_hold(&mut self, number: HoldNumber) -> Result<Hold, &'static str> {
        let hold = self.holds.remove(&number).ok_or("hold not live")?;
        let removed = self.expiries.remove(&(hold.expires_at_s, number));
        assert!(removed, "live hold missing from the expiry index");
        Ok(hold)
    }

    /// Returns an ended hold's units to sale (those it still owns) and its seats to the ledger.
    fn free_units(&self, hold: &Hold) {
        match (&self.state.stock, &hold.units) {
            (Stock::Seats(states), Units::Seats(seats)) => {
                let map = self.state.seat_map().expect("reserved section has a seat map");
                for &seat in seats {
                    // Seats already reclaimed by a new holder stay with it (and stay counted held).
                    if states.release(&[seat], hold.id.number, hold.expires_at_s) == 1 {
                        self.state.count(map.seats[seat as usize].category, CountChange::HeldToFree, 1);
                    }
                }
            }
            (Stock::GeneralAdmission(stock), Units::Quantity(quantity)) => {
                stock.release(*quantity);
                self.state.count(self.ga_category(), CountChange::HeldToFree, *quantity);
            }
            _ => unreachable!("hold units match the section kind"),
        }
        self.ledger.give_back(&hold.customer, hold.units.count());
    }
}

impl Hold {
    fn from_record(section: SectionKey, record: &HoldRecord, customer: CustomerId) -> Hold {
        Hold {
            id: HoldId { section, number: record.hold },
            customer,
            units: units_from_record(&record.units),
            created_at: Millis(record.created_at_ms),
            expires_at_s: record.expires_at_s,
            total_minor: record.total_minor,
        }
    }

    fn to_record(&self) -> HoldRecord {
        HoldRecord {
            hold: self.id.number,
            customer: self.customer.0.to_string(),
            units: units_to_record(&self.units),
            created_at_ms: self.created_at.0,
            expires_at_s: self.expires_at_s,
            total_minor: self.total_minor,
        }
    }
}

impl Order {
    fn to_record(&self) -> OrderRecord {
        OrderRecord {
            order: self.id.number,
            hold: self.hold.number,
            customer: self.customer.0.to_string(),
            units: units_to_record(&self.units),
            total_minor: self.total_minor,
            confirmed_at_ms: self.confirmed_at.0,
            cancelled: self.state == OrderState::Cancelled,
            buyer: self.buyer.to_record(),
            tickets: self.tickets.clone(),
        }
    }
}

/// Moves seats between held/sold and sold/free in the counters and rows' unsold counts.
fn count_sold(row_unsold: &mut [u16], state: &SectionState, seats: &[SeatIndex], change: CountChange) {
    let map = state.seat_map().expect("reserved section has a seat map");
    for &seat in seats {
        let seat = map.seats[seat as usize];
        match change {
            CountChange::HeldToSold => row_unsold[usize::from(seat.row)] -= 1,
            CountChange::SoldToFree => row_unsold[usize::from(seat.row)] += 1,
            _ => unreachable!("only sales change rows' unsold counts"),
        }
        state.count(seat.category, change, 1);
    }
}

fn units_from_record(units: &UnitsRecord) -> Units {
    match units {
        UnitsRecord::Seats(seats) => Units::Seats(seats.clone()),
        UnitsRecord::Quantity(quantity) => Units::Quantity(*quantity),
    }
}

fn units_to_record(units: &Units) -> UnitsRecord {
    match units {
        Units::Seats(seats) => UnitsRecord::Seats(seats.clone()),
        Units::Quantity(quantity) => UnitsRecord::Quantity(*quantity),
    }
}

fn units_count(units: &UnitsRecord) -> u32 {
    match units {
        UnitsRecord::Seats(seats) => seats.len() as u32,
        UnitsRecord::Quantity(quantity) => *quantity,
    }
}

#[cfg(test)]
mod tests;

fn secs_u32(secs: u64) -> u32 {
    u32::try_from(secs).expect("time beyond 2106")
}
