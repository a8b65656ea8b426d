//! Applying records: every change, live or replayed, goes through here, so recovery
//! rebuilds exactly the state the live calls made. Also snapshots and their restore.

use std::sync::Arc;

use crate::clock::Millis;
use crate::ids::{CustomerId, HoldId, OrderId};
use crate::lockfree::{self, HoldNumber, OrderNumber, SeatState};
use crate::wal::{BuyerRecord, HoldRecord, OrderRecord, PaymentRecord, Record, SectionSnapshot};

use super::model::{units_count, units_from_record};
use super::state::{assert_seats, assert_within_capacity, count_sold, CountChange};
use super::{ApplyError, Buyer, Hold, Inventory, Order, OrderState, Stock, Units};

impl Inventory {
    pub fn snapshot(&self, last_seq: u64) -> SectionSnapshot {
        let mut holds: Vec<HoldRecord> = self.holds.values().map(Hold::to_record).collect();
        holds.sort_unstable_by_key(|hold| hold.hold);
        SectionSnapshot {
            last_seq,
            next_hold: self.next_hold.0,
            holds,
            orders: self.orders.iter().map(Order::to_record).collect(),
            payments: {
                let mut payments: Vec<PaymentRecord> =
                    self.payments.values().map(|payment| payment.to_record()).collect();
                payments.sort_unstable_by_key(|payment| payment.hold);
                payments
            },
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
        for payment in &snapshot.payments {
            self.restore_payment(payment)?;
        }
        if snapshot.next_hold < self.next_hold.0 {
            return Err(self.apply_error("snapshot", "next hold number below a hold it contains"));
        }
        self.next_hold = HoldNumber(snapshot.next_hold);
        Ok(())
    }

    /// Applies a record read from the WAL, as it was applied when it was made.
    pub fn replay(&mut self, record: &Record) -> Result<(), ApplyError> {
        if let Record::HoldCreated { hold, reclaimed } = record {
            let customer = CustomerId::new(&hold.customer);
            self.ledger.force_reserve(&customer, units_count(&hold.units));
            let found = self.apply_hold_created(hold, customer)?;
            if !found.iter().map(|hold| hold.0).eq(reclaimed.iter().copied()) {
                return Err(self.apply_error(&format!("{record:?}"), "reclaimed other holds than when it was made"));
            }
            return Ok(());
        }
        self.apply(record)
    }

    /// Applies a live change and journals it. Live callers have checked the request,
    /// so a record that does not apply is a bug.
    pub(super) fn commit(&mut self, record: Record) {
        if let Err(error) = self.apply(&record) {
            panic!("live change did not apply: {error}");
        }
        self.journal.push(record);
    }

    /// Commits a release or expiry and returns the hold it ended.
    pub(super) fn commit_retirement(&mut self, record: Record) -> Hold {
        let (Record::HoldReleased { hold, .. } | Record::HoldExpired { hold, .. }) = record else {
            unreachable!("not a retirement: {record:?}")
        };
        let ended = self.holds.get(&HoldNumber(hold)).expect("retiring a live hold").clone();
        self.commit(record);
        ended
    }

    pub(super) fn apply(&mut self, record: &Record) -> Result<(), ApplyError> {
        match record {
            Record::HoldCreated { .. } => unreachable!("hold creation is applied by `grant` or `replay`"),
            Record::HoldExtended { hold, expires_at_s, at_ms } => {
                self.apply_extended(HoldNumber(*hold), *expires_at_s, *at_ms)
            }
            Record::HoldReleased { hold, .. } | Record::HoldExpired { hold, .. } => {
                let hold = self
                    .end_hold(HoldNumber(*hold))
                    .map_err(|problem| self.apply_error(&format!("{record:?}"), problem))?;
                self.free_units(&hold);
                Ok(())
            }
            Record::OrderConfirmed { order, hold, confirmed_at_ms, buyer } => {
                self.apply_confirmed(OrderNumber(*order), HoldNumber(*hold), *confirmed_at_ms, buyer)
            }
            Record::OrderCancelled { order, at_ms } => self.apply_cancelled(OrderNumber(*order), *at_ms),
            Record::TicketReissued { order, index, version, at_ms } => {
                self.apply_reissued(OrderNumber(*order), *index, *version, *at_ms)
            }
            Record::TicketAdmitted { order, index, version, admission } => {
                self.apply_admitted(OrderNumber(*order), *index, *version, admission)
            }
            Record::PaymentStarted { .. }
            | Record::PaymentOrdered { .. }
            | Record::PaymentCaptured { .. }
            | Record::PaymentVoidDue { .. }
            | Record::PaymentVoided { .. }
            | Record::PaymentRefundDue { .. }
            | Record::PaymentRefunded { .. } => self.apply_payment(record),
            Record::BuyerErased { order, at_ms } => self.apply_buyer_erased(OrderNumber(*order), *at_ms),
            Record::BuyerResealed { order, sealed, .. } => self.apply_buyer_resealed(OrderNumber(*order), sealed),
        }
    }

    pub(super) fn apply_hold_created(
        &mut self,
        record: &HoldRecord,
        customer: CustomerId,
    ) -> Result<Vec<HoldNumber>, ApplyError> {
        let what = || format!("hold created {}", record.hold);
        let number = HoldNumber(record.hold);
        if self.holds.contains_key(&number) {
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
                    states.hold(seats, number, record.expires_at_s, record.created_at_ms, &mut self.reclaimed)
                {
                    return Err(self.apply_error(&what(), &format!("seat {} is {:?}", lost.seat, lost.found)));
                }
                let held = SeatState::Held { hold: number, expires_at_s: record.expires_at_s };
                assert_seats(states, seats, held, "hold");
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
        self.next_hold = self.next_hold.max(HoldNumber(record.hold + 1));
        self.expiries.insert((hold.expires_at_s, number));
        self.holds.insert(number, hold);
        Ok(reclaimed_holds)
    }

    pub(super) fn apply_extended(
        &mut self,
        number: HoldNumber,
        expires_at_s: u32,
        at_ms: u64,
    ) -> Result<(), ApplyError> {
        let what = || format!("hold {} extended", number.0);
        let hold = self.holds.get(&number).ok_or_else(|| self.apply_error(&what(), "hold not live"))?;
        let old_expires_at_s = hold.expires_at_s;
        if let (Stock::Seats(states), Units::Seats(seats)) = (&self.state.stock, &hold.units) {
            if let Err(lost) = states.extend(seats, number, old_expires_at_s, expires_at_s, at_ms) {
                return Err(self.apply_error(&what(), &format!("seat {} is {:?}", lost.seat, lost.found)));
            }
            assert_seats(states, seats, SeatState::Held { hold: number, expires_at_s }, "extend");
        } else if lockfree::expired(old_expires_at_s, at_ms) {
            return Err(self.apply_error(&what(), "hold had expired"));
        }
        self.expiries.remove(&(old_expires_at_s, number));
        self.expiries.insert((expires_at_s, number));
        self.holds.get_mut(&number).expect("checked above").expires_at_s = expires_at_s;
        Ok(())
    }

    pub(super) fn apply_confirmed(
        &mut self,
        order: OrderNumber,
        number: HoldNumber,
        at_ms: u64,
        buyer: &BuyerRecord,
    ) -> Result<(), ApplyError> {
        let what = || format!("order {} confirmed from hold {}", order.0, number.0);
        if order.0 as usize != self.orders.len() {
            return Err(self.apply_error(&what(), "order numbers out of sequence"));
        }
        let hold = self.holds.get(&number).ok_or_else(|| self.apply_error(&what(), "hold not live"))?;
        match (&self.state.stock, &hold.units) {
            (Stock::Seats(states), Units::Seats(seats)) => {
                if let Err(lost) = states.confirm(seats, number, hold.expires_at_s, order, at_ms) {
                    return Err(self.apply_error(&what(), &format!("seat {} is {:?}", lost.seat, lost.found)));
                }
                count_sold(&mut self.row_unsold, &self.state, seats, CountChange::HeldToSold);
                assert_seats(states, seats, SeatState::Sold { order }, "confirm");
            }
            (Stock::GeneralAdmission(stock), Units::Quantity(quantity)) => {
                if lockfree::expired(hold.expires_at_s, at_ms) {
                    return Err(self.apply_error(&what(), "hold had expired"));
                }
                stock.confirm(*quantity);
                assert_within_capacity(stock, "confirm");
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
            cancelled_at: None,
            buyer: Arc::new(Buyer::from_record(buyer)),
            tickets: Vec::new(),
        });
        Ok(())
    }

    pub(super) fn apply_cancelled(&mut self, number: OrderNumber, at_ms: u64) -> Result<(), ApplyError> {
        let what = || format!("order {} cancelled", number.0);
        let order = self.orders.get(number.0 as usize).ok_or_else(|| self.apply_error(&what(), "no such order"))?;
        if order.state == OrderState::Cancelled {
            return Err(self.apply_error(&what(), "already cancelled"));
        }
        match (&self.state.stock, &order.units) {
            (Stock::Seats(states), Units::Seats(seats)) => {
                if let Err(lost) = states.cancel(seats, number) {
                    return Err(self.apply_error(&what(), &format!("seat {} is {:?}", lost.seat, lost.found)));
                }
                count_sold(&mut self.row_unsold, &self.state, seats, CountChange::SoldToFree);
                assert_seats(states, seats, SeatState::Free, "cancel");
            }
            (Stock::GeneralAdmission(stock), Units::Quantity(quantity)) => {
                stock.cancel(*quantity);
                assert_within_capacity(stock, "cancel");
                self.state.count(self.ga_category(), CountChange::SoldToFree, *quantity);
            }
            _ => unreachable!("order units match the section kind"),
        }
        let order = &mut self.orders[number.0 as usize];
        order.state = OrderState::Cancelled;
        order.cancelled_at = Some(Millis(at_ms));
        self.ledger.give_back(&order.customer, order.units.count());
        self.index_revocations(number);
        Ok(())
    }

    /// Puts a snapshotted order back: its seats sold (unless cancelled), its ledger seats taken.
    pub(super) fn restore_order(&mut self, record: &OrderRecord) -> Result<(), ApplyError> {
        let what = || format!("snapshot order {}", record.order);
        let number = OrderNumber(record.order);
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
                    if let Err(lost) = states.restore_sold(seats, number) {
                        return Err(self.apply_error(&what(), &format!("seat {} is {:?}", lost.seat, lost.found)));
                    }
                    assert_seats(states, seats, SeatState::Sold { order: number }, "restore");
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
            id: OrderId { section: self.key, number },
            hold: HoldId { section: self.key, number: HoldNumber(record.hold) },
            customer,
            units,
            total_minor: record.total_minor,
            confirmed_at: Millis(record.confirmed_at_ms),
            state: if record.cancelled { OrderState::Cancelled } else { OrderState::Confirmed },
            cancelled_at: record.cancelled.then_some(Millis(record.cancelled_at_ms)),
            buyer: Arc::new(Buyer::from_record(&record.buyer)),
            tickets: record.tickets.clone(),
        });
        self.index_revocations(number);
        Ok(())
    }

    pub(super) fn apply_error(&self, record: &str, problem: &str) -> ApplyError {
        ApplyError { section: self.key.0, record: record.to_string(), problem: problem.to_string() }
    }
}
