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
        self.admit(customer, sorted.len() as u32, now)?;
        let unavailable: Vec<SeatIndex> =
            sorted.iter().copied().filter(|&seat| !states.load(seat).is_takeable(now.0)).collect();
        if !unavailable.is_empty() {
            self.ledger.give_back(customer, sorted.len() as u32);
            return Err(HoldRefused::SeatsUnavailable { seats: unavailable });
        }
        match self.grant_seats(customer, sorted, total_minor, now) {
            Ok(hold) => Ok(Granted { hold, choice: None }),
            Err(refused) => {
                self.ledger.give_back(customer, seats.len() as u32);
                Err(refused)
            }
        }
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
        match self.grant_seats(customer, choice.seats.clone(), total_minor, now) {
            Ok(hold) => Ok(Granted { hold, choice: Some(choice) }),
            Err(refused) => {
                self.ledger.give_back(customer, request.quantity);
                Err(refused)
            }
        }
    }

    /// Holds `quantity` general-admission units.
    pub fn hold_quantity(&mut self, customer: &CustomerId, quantity: u32, now: Millis) -> Result<Granted, HoldRefused> {
        let SectionKind::GeneralAdmission { category, .. } = self.state.section().kind else {
            return Err(HoldRefused::Invalid("reserved sections sell seats; name seats or ask for best-available"));
        };
        self.check_quantity(quantity)?;
        let price = self.prices[usize::from(category.0)].ok_or(HoldRefused::CategoryNotOnSale)?;
        let number = self.next_hold_number()?;
        self.admit(customer, quantity, now)?;
        let held = self.ga_stock().hold(quantity).or_else(|_| {
            // Expired holds are reclaimable at once, not only at the next sweep.
            self.expire_due(now, usize::MAX);
            self.ga_stock().hold(quantity)
        });
        if let Err(sold_out) = held {
            self.ledger.give_back(customer, quantity);
            return Err(HoldRefused::SoldOut { available: sold_out.available });
        }
        self.state.count(category, CountChange::FreeToHeld, quantity);
        let expires_at_s = self.new_expiry_s(now);
        let units = Units::Quantity(quantity);
        let hold = self.record_hold(number, customer, units, price * u64::from(quantity), now, expires_at_s);
        Ok(Granted { hold, choice: None })
    }

    pub fn release(&mut self, id: HoldId, customer: &CustomerId, now: Millis) -> Result<Hold, HoldError> {
        self.owned_live_hold(id, customer, now)?;
        let hold = self.end_hold(id.number);
        self.free_units(&hold);
        Ok(hold)
    }

    /// Moves the hold's expiry to `now + ttl`, capped at `created_at + lifetime max`.
    pub fn extend(&mut self, id: HoldId, customer: &CustomerId, now: Millis) -> Result<Hold, HoldError> {
        let hold = self.owned_live_hold(id, customer, now)?.clone();
        let cap = hold.created_at.saturating_add(self.lifetime_max_ms);
        let wanted = now.saturating_add(self.ttl_ms).min(cap);
        // Round down so the cap is never passed; an extension must gain at least a second.
        let new_expires_at_s = secs_u32(wanted.0 / 1000);
        if new_expires_at_s <= hold.expires_at_s {
            return Err(HoldError::LifetimeReached);
        }
        if let (Stock::Seats(states), Units::Seats(seats)) = (&self.state.stock, &hold.units) {
            let extended = states.extend(seats, id.number, hold.expires_at_s, new_expires_at_s, now.0);
            assert!(extended.is_ok(), "live owned hold lost a seat: {extended:?}");
        }
        self.expiries.remove(&(hold.expires_at_s, id.number));
        self.expiries.insert((new_expires_at_s, id.number));
        let record = self.holds.get_mut(&id.number).expect("live hold has a record");
        record.expires_at_s = new_expires_at_s;
        Ok(record.clone())
    }

    /// Sells the hold's seats: the hold becomes an order.
    pub fn confirm(&mut self, id: HoldId, customer: &CustomerId, now: Millis) -> Result<Order, HoldError> {
        self.owned_live_hold(id, customer, now)?;
        let order_number = OrderNumber::try_from(self.orders.len()).expect("order numbers exhausted");
        let hold = self.holds.get(&id.number).expect("live hold has a record");
        match (&self.state.stock, &hold.units) {
            (Stock::Seats(states), Units::Seats(seats)) => {
                let confirmed = states.confirm(seats, id.number, hold.expires_at_s, order_number, now.0);
                assert!(confirmed.is_ok(), "live owned hold lost a seat: {confirmed:?}");
                let map = self.state.seat_map().expect("reserved section has a seat map");
                for &seat in seats {
                    let seat = map.seats[seat as usize];
                    self.row_unsold[usize::from(seat.row)] -= 1;
                    self.state.count(seat.category, CountChange::HeldToSold, 1);
                }
            }
            (Stock::GeneralAdmission(stock), Units::Quantity(quantity)) => {
                stock.confirm(*quantity);
                self.state.count(self.ga_category(), CountChange::HeldToSold, *quantity);
            }
            _ => unreachable!("hold units match the section kind"),
        }
        let hold = self.end_hold(id.number);
        let order = Order {
            id: OrderId { section: self.key, number: order_number },
            hold: hold.id,
            customer: hold.customer,
            units: hold.units,
            total_minor: hold.total_minor,
            confirmed_at: now,
            state: OrderState::Confirmed,
        };
        self.orders.push(order.clone());
        Ok(order)
    }

    /// Cancels (refunds) an order: its seats return to sale, the customer's limit is given back.
    pub fn cancel(&mut self, id: OrderId) -> Result<Order, OrderError> {
        self.check_key(id.section).map_err(|_| OrderError::NotFound)?;
        let order = self.orders.get_mut(id.number as usize).ok_or(OrderError::NotFound)?;
        if order.state == OrderState::Cancelled {
            return Err(OrderError::AlreadyCancelled);
        }
        order.state = OrderState::Cancelled;
        let order = order.clone();
        match (&self.state.stock, &order.units) {
            (Stock::Seats(states), Units::Seats(seats)) => {
                let cancelled = states.cancel(seats, id.number);
                assert!(cancelled.is_ok(), "confirmed order lost a seat: {cancelled:?}");
                let map = self.state.seat_map().expect("reserved section has a seat map");
                for &seat in seats {
                    let seat = map.seats[seat as usize];
                    self.row_unsold[usize::from(seat.row)] += 1;
                    self.state.count(seat.category, CountChange::SoldToFree, 1);
                }
            }
            (Stock::GeneralAdmission(stock), Units::Quantity(quantity)) => {
                stock.cancel(*quantity);
                self.state.count(self.ga_category(), CountChange::SoldToFree, *quantity);
            }
            _ => unreachable!("order units match the section kind"),
        }
        self.ledger.give_back(&order.customer, order.units.count());
        Ok(order)
    }

    /// Frees up to [`SWEEP_HOLDS_MAX`] holds that expired by `now`; returns them.
    pub fn sweep(&mut self, now: Millis) -> Vec<Hold> {
        self.expire_due(now, SWEEP_HOLDS_MAX)
    }

    fn expire_due(&mut self, now: Millis, holds_max: usize) -> Vec<Hold> {
        let mut expired = Vec::new();
        while expired.len() < holds_max {
            let Some(&(expires_at_s, number)) = self.expiries.first() else { break };
            if !lockfree::expired(expires_at_s, now.0) {
                break;
            }
            let hold = self.end_hold(number);
            self.free_units(&hold);
            expired.push(hold);
        }
        expired
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

    /// Takes `seats` (sorted, all takeable at `now` as far as this writer knows).
    fn grant_seats(
        &mut self,
        customer: &CustomerId,
        seats: Vec<SeatIndex>,
        total_minor: u64,
        now: Millis,
    ) -> Result<Hold, HoldRefused> {
        let number = self.next_hold_number()?;
        let expires_at_s = self.new_expiry_s(now);
        let Stock::Seats(states) = &self.state.stock else { unreachable!("checked by the caller") };
        self.reclaimed.clear();
        if let Err(lost) = states.hold(&seats, number, expires_at_s, now.0, &mut self.reclaimed) {
            // Only a second writer could get here (the actor is the only one); report it plainly.
            return Err(HoldRefused::SeatsUnavailable { seats: vec![lost.seat] });
        }
        let map = self.state.seat_map().expect("reserved section has a seat map");
        for &seat in &seats {
            let category = map.seats[seat as usize].category;
            if !self.reclaimed.iter().any(|r| r.seat == seat) {
                self.state.count(category, CountChange::FreeToHeld, 1);
            }
        }
        // A seat taken from an expired hold ends that hold: its other seats go free now.
        let mut reclaimed = std::mem::take(&mut self.reclaimed);
        reclaimed.sort_unstable_by_key(|r| r.hold);
        reclaimed.dedup_by_key(|r| r.hold);
        for taken in &reclaimed {
            if self.holds.contains_key(&taken.hold) {
                let old = self.end_hold(taken.hold);
                self.free_units(&old);
            }
        }
        self.reclaimed = reclaimed;
        Ok(self.record_hold(number, customer, Units::Seats(seats), total_minor, now, expires_at_s))
    }

    fn record_hold(
        &mut self,
        number: HoldNumber,
        customer: &CustomerId,
        units: Units,
        total_minor: u64,
        now: Millis,
        expires_at_s: u32,
    ) -> Hold {
        let hold = Hold {
            id: HoldId { section: self.key, number },
            customer: customer.clone(),
            units,
            created_at: now,
            expires_at_s,
            total_minor,
        };
        self.next_hold += 1;
        self.expiries.insert((hold.expires_at_s, number));
        self.holds.insert(number, hold.clone());
        hold
    }

    fn next_hold_number(&self) -> Result<HoldNumber, HoldRefused> {
        if self.next_hold > HOLD_NUMBER_MAX {
            return Err(HoldRefused::HoldNumbersExhausted);
        }
        Ok(self.next_hold)
    }

    /// Expiry rounded up to a whole second, so a hold never lives shorter than its TTL.
    fn new_expiry_s(&self, now: Millis) -> u32 {
        secs_u32(now.saturating_add(self.ttl_ms).0.div_ceil(1000))
    }

    fn ga_stock(&self) -> &GaStock {
        match &self.state.stock {
            Stock::GeneralAdmission(stock) => stock,
            Stock::Seats(_) => unreachable!("only called for GA sections"),
        }
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
            let hold = self.end_hold(id.number);
            self.free_units(&hold);
            return Err(HoldError::Expired);
        }
        Ok(&self.holds[&id.number])
    }

    /// Removes a live hold's record; the caller decides what happens to its units.
    fn end_hold(&mut self, number: HoldNumber) -> Hold {
        let hold = self.holds.remove(&number).expect("ending a hold that is not live");
        let removed = self.expiries.remove(&(hold.expires_at_s, number));
        assert!(removed, "live hold missing from the expiry index");
        hold
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

#[cfg(test)]
mod tests;

fn secs_u32(secs: u64) -> u32 {
    u32::try_from(secs).expect("time beyond 2106")
}
