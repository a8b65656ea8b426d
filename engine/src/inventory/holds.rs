//! Holds and orders: granting holds (named seats, best-available, general-admission
//! quantity), releasing, extending, confirming them into orders, cancelling orders,
//! and retiring expired holds in bounded sweeps.

use crate::best::{self, BestRequest};
use crate::clock::Millis;
use crate::ids::{CustomerId, HoldId, OrderId, SectionKey};
use crate::lockfree::{self, HoldNumber, HOLD_NUMBER_MAX};
use crate::tickets::Viewer;
use crate::venue::{CategoryIndex, SeatIndex, SectionKind};
use crate::wal::{HoldRecord, Record, UnitsRecord};

use super::model::units_count;
use super::state::CountChange;
use super::{
    secs_u32, Buyer, Granted, Hold, HoldError, HoldRefused, Inventory, Order, OrderError, OrderState, Stock, Units,
    SWEEP_HOLDS_MAX,
};

impl Inventory {
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
            // Expired holds are reclaimable at once, not only at the next sweep. Every
            // general-admission hold has at least one unit, so retiring this many expired
            // holds frees enough if that many have expired (at most `hold_seats_max`).
            self.expire_due(now, (quantity - available) as usize);
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
        Ok(self.commit_retirement(Record::HoldReleased { hold: id.number.0, at_ms: now.0 }))
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
        let record = Record::HoldExtended { hold: id.number.0, expires_at_s, at_ms: now.0 };
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
        if self.is_paying(id.number) {
            return Err(HoldError::Paying);
        }
        let order = u32::try_from(self.orders.len()).expect("order numbers exhausted");
        self.commit(Record::OrderConfirmed {
            order,
            hold: id.number.0,
            confirmed_at_ms: now.0,
            buyer: buyer.to_record(),
        });
        Ok(self.orders[order as usize].clone())
    }

    /// Cancels (refunds) an order: its seats return to sale, the customer's limit is given back.
    pub fn cancel(&mut self, id: OrderId, now: Millis) -> Result<Order, OrderError> {
        self.check_key(id.section).map_err(|_| OrderError::NotFound)?;
        let order = self.orders.get(id.number.0 as usize).ok_or(OrderError::NotFound)?;
        if order.state == OrderState::Cancelled {
            return Err(OrderError::AlreadyCancelled);
        }
        self.commit(Record::OrderCancelled { order: id.number.0, at_ms: now.0 });
        self.order_cancelled(id.number, now);
        Ok(self.orders[id.number.0 as usize].clone())
    }

    /// The order, if it exists and `viewer` may see it (its customer, or an admin).
    pub fn order_for(&self, id: OrderId, viewer: &Viewer) -> Option<&Order> {
        self.order(id).filter(|order| match viewer {
            Viewer::Admin => true,
            Viewer::Customer(customer) => order.customer == *customer,
        })
    }

    /// [`Inventory::cancel`] on behalf of `viewer`: someone else's order is not found
    /// (ids are guessable; orders are private).
    pub fn cancel_for(&mut self, id: OrderId, viewer: &Viewer, now: Millis) -> Result<Order, OrderError> {
        self.order_for(id, viewer).ok_or(OrderError::NotFound)?;
        self.cancel(id, now)
    }

    /// Frees up to [`SWEEP_HOLDS_MAX`] holds that expired by `now`; returns them.
    pub fn sweep(&mut self, now: Millis) -> Vec<Hold> {
        self.expire_due(now, SWEEP_HOLDS_MAX)
    }

    /// Frees every hold that expired by `now`, however many (recovery, before any
    /// caller can look), in sweep-sized steps. Returns how many.
    pub fn retire_expired(&mut self, now: Millis) -> usize {
        let mut retired = 0;
        // Each full step ends `SWEEP_HOLDS_MAX` live holds, so this many steps end them all.
        for _ in 0..=self.holds.len() / SWEEP_HOLDS_MAX {
            let step = self.expire_due(now, SWEEP_HOLDS_MAX).len();
            retired += step;
            if step < SWEEP_HOLDS_MAX {
                break;
            }
        }
        retired
    }

    pub(super) fn grant(
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
            hold: self.next_hold.0,
            customer: customer.0.to_string(),
            units,
            created_at_ms: now.0,
            expires_at_s: secs_u32(now.saturating_add(self.ttl_ms).0.div_ceil(1000)),
            total_minor,
        };
        match self.apply_hold_created(&hold, customer.clone()) {
            Ok(reclaimed) => {
                let number = HoldNumber(hold.hold);
                let reclaimed = reclaimed.iter().map(|old| old.0).collect();
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

    /// Retires up to `holds_max` (at most [`SWEEP_HOLDS_MAX`]) holds expired by `now`,
    /// earliest expiry first.
    pub(super) fn expire_due(&mut self, now: Millis, holds_max: usize) -> Vec<Hold> {
        assert!(holds_max <= SWEEP_HOLDS_MAX, "one call retires at most a sweep's worth of holds");
        let mut expired = Vec::new();
        while expired.len() < holds_max {
            let Some(&(expires_at_s, hold)) = self.expiries.first() else { break };
            if !lockfree::expired(expires_at_s, now.0) {
                break;
            }
            expired.push(self.commit_retirement(Record::HoldExpired { hold: hold.0, at_ms: now.0 }));
        }
        expired
    }

    pub(super) fn check_quantity(&self, quantity: u32) -> Result<(), HoldRefused> {
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
    pub(super) fn admit(&self, customer: &CustomerId, count: u32, now: Millis) -> Result<(), HoldRefused> {
        if !self.on_sale.contains(now) {
            return Err(HoldRefused::NotOnSale);
        }
        if count > self.hold_seats_max {
            return Err(HoldRefused::TooManySeats { max: self.hold_seats_max });
        }
        self.ledger.reserve(customer, count).map_err(HoldRefused::CustomerLimit)
    }

    pub(super) fn price_seats(&self, seats: &[SeatIndex]) -> Result<u64, HoldRefused> {
        let map = self.state.seat_map().expect("reserved section has a seat map");
        seats.iter().try_fold(0u64, |total, &seat| {
            let category = map.seats[seat as usize].category;
            let price = self.prices[usize::from(category.0)].ok_or(HoldRefused::CategoryNotOnSale)?;
            Ok(total + price)
        })
    }

    pub(super) fn ga_available(&self) -> u32 {
        let stock = match &self.state.stock {
            Stock::GeneralAdmission(stock) => stock,
            Stock::Seats(_) => unreachable!("only called for GA sections"),
        };
        let counts = stock.counts();
        stock.capacity() - counts.held - counts.sold
    }

    pub(super) fn ga_category(&self) -> CategoryIndex {
        match self.state.section().kind {
            SectionKind::GeneralAdmission { category, .. } => category,
            SectionKind::Reserved(_) => unreachable!("only called for GA sections"),
        }
    }

    pub(super) fn check_key(&self, section: SectionKey) -> Result<(), HoldError> {
        if section == self.key {
            Ok(())
        } else {
            Err(HoldError::NotFound)
        }
    }

    pub(super) fn live_hold(&self, id: HoldId) -> Result<&Hold, HoldError> {
        self.check_key(id.section)?;
        match self.holds.get(&id.number) {
            Some(hold) => Ok(hold),
            None if id.number < self.next_hold => Err(HoldError::Ended),
            None => Err(HoldError::NotFound),
        }
    }

    /// The hold, if it exists, belongs to `customer` and is live at `now`; an expired
    /// hold found here is retired on the spot.
    pub(super) fn owned_live_hold(
        &mut self,
        id: HoldId,
        customer: &CustomerId,
        now: Millis,
    ) -> Result<&Hold, HoldError> {
        let hold = self.live_hold(id)?;
        if hold.customer != *customer {
            return Err(HoldError::NotYours);
        }
        if lockfree::expired(hold.expires_at_s, now.0) {
            self.commit_retirement(Record::HoldExpired { hold: id.number.0, at_ms: now.0 });
            return Err(HoldError::Expired);
        }
        Ok(&self.holds[&id.number])
    }

    /// Removes a live hold's record; the caller decides what happens to its units.
    pub(super) fn end_hold(&mut self, number: HoldNumber) -> Result<Hold, &'static str> {
        let hold = self.holds.remove(&number).ok_or("hold not live")?;
        let removed = self.expiries.remove(&(hold.expires_at_s, number));
        assert!(removed, "live hold missing from the expiry index");
        Ok(hold)
    }

    /// Returns an ended hold's units to sale (those it still owns) and its seats to the ledger.
    pub(super) fn free_units(&self, hold: &Hold) {
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
                super::state::assert_within_capacity(stock, "release");
                self.state.count(self.ga_category(), CountChange::HeldToFree, *quantity);
            }
            _ => unreachable!("hold units match the section kind"),
        }
        self.ledger.give_back(&hold.customer, hold.units.count());
    }
}
