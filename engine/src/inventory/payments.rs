//! Payments: a hold's payment at the PSP, from checkout until the money is settled.
//!
//! The PSP (Stripe or hakken's own fake) is reached by the API; this module only
//! decides. A payment is keyed by the hold it checked out, and moves through:
//!
//! ```text
//! AwaitingPayment ──authorized, hold live──────────▶ Ordered ──captured──▶ Captured
//!       │          ──authorized late, seats re-acquired─┘   │                 │ order cancelled
//!       │          ──authorized late, not re-acquired─▶ VoidDue ◀─cancelled──┘ ▼
//!       │                                               │ voided          RefundDue ─refunded─▶ Refunded
//!       └──never paid, cancelled at the PSP──────────▶ Voided
//! ```
//!
//! Every arrow is a `wal::Record`, applied here live and in recovery alike, so a replay
//! makes the same decisions. The PSP's reports (webhooks, the sweep's reads) arrive late,
//! twice or out of order: [`Inventory::payment_reported`] takes each as a fact about the
//! payment ("authorized", "captured", ...) and moves only forward, so the outcome is the
//! same (one order, one capture) however they arrive. What the PSP must be asked next is
//! [`Payment::step`]; the API does it and reports back.

use std::sync::Arc;

use crate::clock::Millis;
use crate::ids::{CustomerId, HoldId, OrderId, SectionKey};
use crate::lockfree::{self, HoldNumber, OrderNumber};
use crate::venue::SeatIndex;
use crate::wal::{BuyerRecord, PaymentRecord, PaymentStateRecord, Record, VoidReasonRecord};

use super::model::{units_from_record, units_to_record};
use super::{secs_u32, ApplyError, Buyer, Hold, HoldError, Inventory, Stock, Units};

/// Payments [`Inventory::payments_due`] returns at most per call: the API's sweep asks
/// the PSP about each, so one sweep's work per section is bounded.
pub const PAYMENTS_DUE_MAX: usize = 64;

/// What a late payment (authorized after its hold ended) gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LatePayment {
    /// If the same seats (or as many general-admission units) are still free, take them
    /// and sell them; otherwise void.
    ReacquireSame,
    /// Void the authorization: no money moves.
    Void,
}

/// A checkout, as the API made it at the PSP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaymentStart {
    pub provider: String,
    pub psp_id: String,
    pub amount_minor: u64,
    pub currency: String,
    pub buyer: Buyer,
    /// The hold is extended once to `now + window_ms` (never past its lifetime).
    pub window_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payment {
    pub hold: HoldId,
    pub customer: CustomerId,
    pub provider: String,
    pub psp_id: String,
    pub amount_minor: u64,
    pub currency: String,
    pub units: Units,
    pub buyer: Arc<Buyer>,
    pub started_at: Millis,
    pub state: PaymentState,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaymentState {
    AwaitingPayment,
    /// Sold as this order; the authorization is still to be captured.
    Ordered(OrderNumber),
    Captured(OrderNumber),
    VoidDue {
        reason: VoidReason,
        order: Option<OrderNumber>,
    },
    Voided {
        reason: VoidReason,
        order: Option<OrderNumber>,
    },
    RefundDue(Option<OrderNumber>),
    Refunded(Option<OrderNumber>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoidReason {
    /// Authorized after the hold ended; its seats were not re-acquired.
    Late,
    /// The PSP authorized another amount than the hold's.
    AmountMismatch,
    /// Never paid within the late-payment window.
    Abandoned,
    /// The order was cancelled before the capture.
    OrderCancelled,
}

impl VoidReason {
    pub fn as_str(self) -> &'static str {
        match self {
            VoidReason::Late => "late",
            VoidReason::AmountMismatch => "amount_mismatch",
            VoidReason::Abandoned => "abandoned",
            VoidReason::OrderCancelled => "order_cancelled",
        }
    }
}

/// What the PSP must be asked next for a payment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaymentStep {
    Capture,
    Void,
    Refund,
    /// Nothing to ask: waiting for the buyer, or settled.
    Nothing,
}

/// A fact the PSP reported about a payment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PspReport {
    /// The payment is authorized for this amount (manual capture: not yet taken).
    Authorized { amount_minor: u64 },
    /// The money was taken.
    Captured { amount_minor: u64 },
    /// The payment was cancelled (the authorization voided, or never paid).
    Canceled,
    /// The money was given back.
    Refunded,
}

/// A checkout's outcome: the payment, the hold as it now stands (`None` once ended),
/// and whether this call started the payment (or found it started).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkout {
    pub payment: Payment,
    pub hold: Option<Hold>,
    pub started: bool,
}

/// Why a payment call was refused. Nothing changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PaymentError {
    #[error(transparent)]
    Hold(#[from] HoldError),
    #[error("the hold has no payment")]
    NotFound,
    #[error("the hold already pays with another PSP payment")]
    OtherPayment,
    #[error("the payment's amount is not the hold's ({hold_minor})")]
    AmountMismatch { hold_minor: u64 },
}

/// Work the API's sweep owes the PSP for a payment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaymentDue {
    /// Capture, void or refund (the payment's [`Payment::step`]).
    Step(PaymentStep),
    /// No word from the PSP since the grace period: ask it how the payment stands.
    Check,
    /// Never paid within the late-payment window: cancel it at the PSP.
    Abandon,
}

impl Payment {
    pub fn step(&self) -> PaymentStep {
        match self.state {
            PaymentState::Ordered(_) => PaymentStep::Capture,
            PaymentState::VoidDue { .. } => PaymentStep::Void,
            PaymentState::RefundDue(_) => PaymentStep::Refund,
            PaymentState::AwaitingPayment
            | PaymentState::Captured(_)
            | PaymentState::Voided { .. }
            | PaymentState::Refunded(_) => PaymentStep::Nothing,
        }
    }

    /// The order the payment bought, if any (also once cancelled or refunded).
    pub fn order(&self) -> Option<OrderId> {
        let number = match self.state {
            PaymentState::Ordered(order) | PaymentState::Captured(order) => Some(order),
            PaymentState::VoidDue { order, .. }
            | PaymentState::Voided { order, .. }
            | PaymentState::RefundDue(order)
            | PaymentState::Refunded(order) => order,
            PaymentState::AwaitingPayment => None,
        };
        number.map(|number| OrderId { section: self.hold.section, number })
    }

    /// Whether the PSP still has to be asked something (or the buyer to pay).
    fn unsettled(&self) -> bool {
        !matches!(self.state, PaymentState::Captured(_) | PaymentState::Voided { .. } | PaymentState::Refunded(_))
    }

    pub(super) fn from_record(section: SectionKey, record: &PaymentRecord) -> Payment {
        Payment {
            hold: HoldId { section, number: HoldNumber(record.hold) },
            customer: CustomerId::new(&record.customer),
            provider: record.provider.clone(),
            psp_id: record.psp_id.clone(),
            amount_minor: record.amount_minor,
            currency: record.currency.clone(),
            units: units_from_record(&record.units),
            buyer: Arc::new(Buyer::from_record(&record.buyer)),
            started_at: Millis(record.started_at_ms),
            state: state_from_record(record.state),
        }
    }

    pub(super) fn to_record(&self) -> PaymentRecord {
        PaymentRecord {
            hold: self.hold.number.0,
            customer: self.customer.0.to_string(),
            provider: self.provider.clone(),
            psp_id: self.psp_id.clone(),
            amount_minor: self.amount_minor,
            currency: self.currency.clone(),
            units: units_to_record(&self.units),
            buyer: self.buyer.to_record(),
            started_at_ms: self.started_at.0,
            state: state_to_record(self.state),
        }
    }
}

impl Inventory {
    /// Checkout: the hold starts paying with a payment the API created at the PSP. A
    /// second checkout of the same hold with the same PSP payment is answered with the
    /// payment as it stands (the API's retries resend the same PSP idempotency key).
    pub fn start_payment(
        &mut self,
        id: HoldId,
        customer: &CustomerId,
        start: &PaymentStart,
        now: Millis,
    ) -> Result<Checkout, PaymentError> {
        self.check_key(id.section)?;
        if let Some(existing) = self.payments.get(&id.number) {
            if existing.customer != *customer {
                return Err(HoldError::NotYours.into());
            }
            if existing.psp_id != start.psp_id {
                return Err(PaymentError::OtherPayment);
            }
            let hold = self.holds.get(&id.number).cloned();
            return Ok(Checkout { payment: existing.clone(), hold, started: false });
        }
        let (ttl_cap_ms, window_ms) = (self.lifetime_max_ms, start.window_ms);
        let hold = self.owned_live_hold(id, customer, now)?;
        if start.amount_minor != hold.total_minor {
            return Err(PaymentError::AmountMismatch { hold_minor: hold.total_minor });
        }
        let cap = hold.created_at.saturating_add(ttl_cap_ms);
        // Rounded down, so the lifetime is never passed; never shortened.
        let expires_at_s = secs_u32(now.saturating_add(window_ms).min(cap).0 / 1000).max(hold.expires_at_s);
        let payment = PaymentRecord {
            hold: id.number.0,
            customer: customer.0.to_string(),
            provider: start.provider.clone(),
            psp_id: start.psp_id.clone(),
            amount_minor: start.amount_minor,
            currency: start.currency.clone(),
            units: units_to_record(&hold.units),
            buyer: start.buyer.to_record(),
            started_at_ms: now.0,
            state: PaymentStateRecord::AwaitingPayment,
        };
        self.commit(Record::PaymentStarted { payment, expires_at_s });
        let (payment, hold) = (self.payments[&id.number].clone(), self.holds.get(&id.number).cloned());
        Ok(Checkout { payment, hold, started: true })
    }

    /// Takes a fact the PSP reported about the hold's payment and moves the payment on;
    /// returns it as it now stands (its [`Payment::step`] says what to ask the PSP next).
    /// A fact already taken, or older than the payment's state, changes nothing.
    pub fn payment_reported(
        &mut self,
        id: HoldId,
        psp_id: &str,
        report: PspReport,
        late: LatePayment,
        now: Millis,
    ) -> Result<Payment, PaymentError> {
        self.check_key(id.section).map_err(|_| PaymentError::NotFound)?;
        let payment = self.payments.get(&id.number).ok_or(PaymentError::NotFound)?;
        if payment.psp_id != psp_id {
            return Err(PaymentError::OtherPayment);
        }
        let hold = id.number.0;
        let at_ms = now.0;
        match (payment.state, report) {
            (PaymentState::AwaitingPayment, PspReport::Authorized { amount_minor }) => {
                self.authorized(id.number, amount_minor, late, now);
            }
            (PaymentState::AwaitingPayment, PspReport::Captured { amount_minor }) => {
                // Taken without a capture of ours: decide as for an authorization, then
                // the money is either the order's or owed back.
                self.authorized(id.number, amount_minor, late, now);
                return self.payment_reported(id, psp_id, report, late, now);
            }
            (PaymentState::Ordered(_), PspReport::Captured { .. }) => {
                self.commit(Record::PaymentCaptured { hold, at_ms });
            }
            // Money taken although hakken meant to void (a cancel raced the capture, or
            // the PSP captured a cancelled payment): it goes back.
            (PaymentState::VoidDue { .. } | PaymentState::Voided { .. }, PspReport::Captured { .. }) => {
                self.commit(Record::PaymentRefundDue { hold, at_ms });
            }
            (PaymentState::AwaitingPayment | PaymentState::VoidDue { .. }, PspReport::Canceled) => {
                self.commit(Record::PaymentVoided { hold, at_ms });
            }
            (PaymentState::RefundDue(_), PspReport::Refunded) => {
                self.commit(Record::PaymentRefunded { hold, at_ms });
            }
            // Everything else is a fact already taken or overtaken. An `Ordered` payment
            // whose authorization the PSP cancelled stays as it is: the order was sold,
            // and reconciliation lists it for a person to look at.
            _ => {}
        }
        Ok(self.payments[&id.number].clone())
    }

    /// An authorization of a payment still awaiting one: sell the hold, re-acquire its
    /// seats for a late payment, or owe a void.
    fn authorized(&mut self, number: HoldNumber, amount_minor: u64, late: LatePayment, now: Millis) {
        let payment = &self.payments[&number];
        let (hold, at_ms) = (number.0, now.0);
        if amount_minor != payment.amount_minor {
            let reason = VoidReasonRecord::AmountMismatch;
            return self.commit(Record::PaymentVoidDue { hold, at_ms, reason });
        }
        let buyer = payment.buyer.to_record();
        if let Some(live) = self.holds.get(&number) {
            if !lockfree::expired(live.expires_at_s, now.0) {
                return self.sell_for_payment(number, number, buyer, now);
            }
            self.commit_retirement(Record::HoldExpired { hold, at_ms });
        }
        let payment = self.payments[&number].clone();
        let reacquired = match late {
            LatePayment::ReacquireSame => self.reacquire(&payment, now),
            LatePayment::Void => None,
        };
        match reacquired {
            Some(new_hold) => self.sell_for_payment(number, new_hold, buyer, now),
            None => self.commit(Record::PaymentVoidDue { hold, at_ms, reason: VoidReasonRecord::Late }),
        }
    }

    /// Confirms live hold `sold` into an order bought by the payment of hold `payment`.
    fn sell_for_payment(&mut self, payment: HoldNumber, sold: HoldNumber, buyer: BuyerRecord, now: Millis) {
        let order = u32::try_from(self.orders.len()).expect("order numbers exhausted");
        self.commit(Record::OrderConfirmed { order, hold: sold.0, confirmed_at_ms: now.0, buyer });
        self.commit(Record::PaymentOrdered { hold: payment.0, order, at_ms: now.0 });
    }

    /// A new hold on exactly the payment's seats (or as many general-admission units),
    /// if they are all free now and the customer is within its limit. The sale window
    /// is not checked: the checkout was made within it.
    fn reacquire(&mut self, payment: &Payment, now: Millis) -> Option<HoldNumber> {
        let count = payment.units.count();
        match (&self.state.stock, &payment.units) {
            (Stock::Seats(states), Units::Seats(seats)) => {
                if !seats.iter().all(|&seat: &SeatIndex| states.load(seat).is_takeable(now.0)) {
                    return None;
                }
            }
            (Stock::GeneralAdmission(_), Units::Quantity(quantity)) => {
                if self.ga_available() < *quantity {
                    self.expire_due(now, (*quantity - self.ga_available()) as usize);
                }
                if self.ga_available() < *quantity {
                    return None;
                }
            }
            _ => unreachable!("payment units match the section kind"),
        }
        self.ledger.reserve(&payment.customer, count).ok()?;
        let units = units_to_record(&payment.units);
        self.grant(&payment.customer, units, payment.amount_minor, now).ok().map(|hold| hold.id.number)
    }

    /// The order was cancelled: its payment's money goes back, or its authorization is voided.
    pub(super) fn order_cancelled(&mut self, order: OrderNumber, now: Millis) {
        let Some(&number) = self.order_payments.get(&order) else { return };
        let (hold, at_ms) = (number.0, now.0);
        match self.payments[&number].state {
            PaymentState::Captured(_) => self.commit(Record::PaymentRefundDue { hold, at_ms }),
            PaymentState::Ordered(_) => {
                self.commit(Record::PaymentVoidDue { hold, at_ms, reason: VoidReasonRecord::OrderCancelled })
            }
            _ => {}
        }
    }

    /// Whether the hold is paying (checked out, no outcome yet): it is not confirmed on trust.
    /// Whether hold `number` was checked out and its payment is still awaited.
    pub fn is_paying(&self, number: HoldNumber) -> bool {
        self.payments.get(&number).is_some_and(|payment| payment.state == PaymentState::AwaitingPayment)
    }

    pub fn payment(&self, id: HoldId) -> Option<&Payment> {
        self.check_key(id.section).ok()?;
        self.payments.get(&id.number)
    }

    /// The payment that bought `order`, if one did.
    pub fn payment_of_order(&self, order: OrderId) -> Option<&Payment> {
        self.check_key(order.section).ok()?;
        self.order_payments.get(&order.number).map(|number| &self.payments[number])
    }

    pub fn payments(&self) -> impl Iterator<Item = &Payment> {
        self.payments.values()
    }

    /// Up to [`PAYMENTS_DUE_MAX`] payments the PSP must be asked about now, taken round
    /// robin so every one is reached: captures, voids and refunds owed; payments with no
    /// word from the PSP for `grace_ms`; and, past `abandon_after_ms`, payments never
    /// made, to cancel.
    pub fn payments_due(&mut self, now: Millis, grace_ms: u64, abandon_after_ms: u64) -> Vec<(Payment, PaymentDue)> {
        let mut due = Vec::new();
        let start = self.payments_cursor;
        let order = self.unsettled.range(start..).chain(self.unsettled.range(..start));
        for number in order {
            if due.len() == PAYMENTS_DUE_MAX {
                self.payments_cursor = *number;
                return due;
            }
            let payment = &self.payments[number];
            let owed = match payment.step() {
                PaymentStep::Nothing => {
                    let waited = now.0.saturating_sub(payment.started_at.0);
                    let hold_live =
                        self.holds.get(number).is_some_and(|hold| !lockfree::expired(hold.expires_at_s, now.0));
                    if waited >= abandon_after_ms && !hold_live {
                        Some(PaymentDue::Abandon)
                    } else {
                        (waited >= grace_ms).then_some(PaymentDue::Check)
                    }
                }
                step => Some(PaymentDue::Step(step)),
            };
            if let Some(owed) = owed {
                due.push((payment.clone(), owed));
            }
        }
        self.payments_cursor = HoldNumber(0);
        due
    }

    // -- Applying payment records (live and in recovery).

    pub(super) fn apply_payment(&mut self, record: &Record) -> Result<(), ApplyError> {
        let what = || format!("{record:?}");
        let (hold, to) = match record {
            Record::PaymentStarted { payment, expires_at_s } => {
                return self.apply_payment_started(payment, *expires_at_s)
            }
            Record::PaymentOrdered { hold, order, .. } => {
                if *order as usize >= self.orders.len() {
                    return Err(self.apply_error(&what(), "no such order"));
                }
                self.order_payments.insert(OrderNumber(*order), HoldNumber(*hold));
                (*hold, Transition::Ordered(OrderNumber(*order)))
            }
            Record::PaymentCaptured { hold, .. } => (*hold, Transition::Captured),
            Record::PaymentVoidDue { hold, reason, .. } => {
                (*hold, Transition::VoidDue(void_reason_from_record(*reason)))
            }
            Record::PaymentVoided { hold, .. } => (*hold, Transition::Voided),
            Record::PaymentRefundDue { hold, .. } => (*hold, Transition::RefundDue),
            Record::PaymentRefunded { hold, .. } => (*hold, Transition::Refunded),
            _ => unreachable!("not a payment record: {record:?}"),
        };
        let number = HoldNumber(hold);
        let payment = self.payments.get_mut(&number).ok_or_else(|| ApplyError {
            section: self.key.0,
            record: what(),
            problem: "no such payment".into(),
        })?;
        let Some(next) = transition(payment.state, to) else {
            let problem = format!("payment is {:?}", payment.state);
            return Err(self.apply_error(&what(), &problem));
        };
        payment.state = next;
        // Once sold the order holds the buyer's (sealed) data, and a payment voided
        // without an order needs none: the payment keeps no copy, so erasing an order's
        // buyer erases it everywhere, and data is kept no longer than it serves.
        if matches!(next, PaymentState::Ordered(_) | PaymentState::Voided { order: None, .. }) {
            payment.buyer = Arc::new(payment.buyer.erased());
        }
        if payment.unsettled() {
            self.unsettled.insert(number);
        } else {
            self.unsettled.remove(&number);
        }
        Ok(())
    }

    fn apply_payment_started(&mut self, record: &PaymentRecord, expires_at_s: u32) -> Result<(), ApplyError> {
        let what = || format!("payment started for hold {}", record.hold);
        let number = HoldNumber(record.hold);
        if self.payments.contains_key(&number) {
            return Err(self.apply_error(&what(), "hold already has a payment"));
        }
        if record.state != PaymentStateRecord::AwaitingPayment {
            return Err(self.apply_error(&what(), "a payment starts awaiting payment"));
        }
        let hold = self.holds.get(&number).ok_or_else(|| self.apply_error(&what(), "hold not live"))?;
        if expires_at_s > hold.expires_at_s {
            self.apply_extended(number, expires_at_s, record.started_at_ms)?;
        }
        self.payments.insert(number, Payment::from_record(self.key, record));
        self.unsettled.insert(number);
        Ok(())
    }

    /// Puts a snapshotted payment back (after the orders it may point at).
    pub(super) fn restore_payment(&mut self, record: &PaymentRecord) -> Result<(), ApplyError> {
        let payment = Payment::from_record(self.key, record);
        let number = payment.hold.number;
        if self.payments.contains_key(&number) {
            return Err(self.apply_error(&format!("snapshot payment {}", number.0), "hold has two payments"));
        }
        if let Some(order) = payment.order() {
            if order.number.0 as usize >= self.orders.len() {
                return Err(self.apply_error(&format!("snapshot payment {}", number.0), "no such order"));
            }
            self.order_payments.insert(order.number, number);
        }
        if payment.unsettled() {
            self.unsettled.insert(number);
        }
        self.payments.insert(number, payment);
        Ok(())
    }
}

/// A payment record's arrow, before it is checked against the state it leaves.
#[derive(Clone, Copy, Debug)]
enum Transition {
    Ordered(OrderNumber),
    Captured,
    VoidDue(VoidReason),
    Voided,
    RefundDue,
    Refunded,
}

/// The state `transition` leads to from `from`, or `None` if the diagram has no such arrow.
fn transition(from: PaymentState, transition: Transition) -> Option<PaymentState> {
    use PaymentState as S;
    Some(match (from, transition) {
        (S::AwaitingPayment, Transition::Ordered(order)) => S::Ordered(order),
        (S::Ordered(order), Transition::Captured) => S::Captured(order),
        (S::AwaitingPayment, Transition::VoidDue(reason)) => S::VoidDue { reason, order: None },
        (S::Ordered(order), Transition::VoidDue(reason)) => S::VoidDue { reason, order: Some(order) },
        (S::VoidDue { reason, order }, Transition::Voided) => S::Voided { reason, order },
        (S::AwaitingPayment, Transition::Voided) => S::Voided { reason: VoidReason::Abandoned, order: None },
        (S::Captured(order), Transition::RefundDue) => S::RefundDue(Some(order)),
        (S::VoidDue { order, .. } | S::Voided { order, .. }, Transition::RefundDue) => S::RefundDue(order),
        (S::RefundDue(order), Transition::Refunded) => S::Refunded(order),
        _ => return None,
    })
}

fn state_from_record(record: PaymentStateRecord) -> PaymentState {
    let order = |order: u32| OrderNumber(order);
    match record {
        PaymentStateRecord::AwaitingPayment => PaymentState::AwaitingPayment,
        PaymentStateRecord::Ordered { order: o } => PaymentState::Ordered(order(o)),
        PaymentStateRecord::Captured { order: o } => PaymentState::Captured(order(o)),
        PaymentStateRecord::VoidDue { reason, order: o } => {
            PaymentState::VoidDue { reason: void_reason_from_record(reason), order: o.map(order) }
        }
        PaymentStateRecord::Voided { reason, order: o } => {
            PaymentState::Voided { reason: void_reason_from_record(reason), order: o.map(order) }
        }
        PaymentStateRecord::RefundDue { order: o } => PaymentState::RefundDue(o.map(order)),
        PaymentStateRecord::Refunded { order: o } => PaymentState::Refunded(o.map(order)),
    }
}

fn state_to_record(state: PaymentState) -> PaymentStateRecord {
    let number = |order: OrderNumber| order.0;
    match state {
        PaymentState::AwaitingPayment => PaymentStateRecord::AwaitingPayment,
        PaymentState::Ordered(order) => PaymentStateRecord::Ordered { order: order.0 },
        PaymentState::Captured(order) => PaymentStateRecord::Captured { order: order.0 },
        PaymentState::VoidDue { reason, order } => {
            PaymentStateRecord::VoidDue { reason: void_reason_to_record(reason), order: order.map(number) }
        }
        PaymentState::Voided { reason, order } => {
            PaymentStateRecord::Voided { reason: void_reason_to_record(reason), order: order.map(number) }
        }
        PaymentState::RefundDue(order) => PaymentStateRecord::RefundDue { order: order.map(number) },
        PaymentState::Refunded(order) => PaymentStateRecord::Refunded { order: order.map(number) },
    }
}

fn void_reason_from_record(reason: VoidReasonRecord) -> VoidReason {
    match reason {
        VoidReasonRecord::Late => VoidReason::Late,
        VoidReasonRecord::AmountMismatch => VoidReason::AmountMismatch,
        VoidReasonRecord::Abandoned => VoidReason::Abandoned,
        VoidReasonRecord::OrderCancelled => VoidReason::OrderCancelled,
    }
}

fn void_reason_to_record(reason: VoidReason) -> VoidReasonRecord {
    match reason {
        VoidReason::Late => VoidReasonRecord::Late,
        VoidReason::AmountMismatch => VoidReasonRecord::AmountMismatch,
        VoidReason::Abandoned => VoidReasonRecord::Abandoned,
        VoidReason::OrderCancelled => VoidReasonRecord::OrderCancelled,
    }
}
