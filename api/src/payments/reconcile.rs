//! Reconciliation: hakken's payments and orders against the PSP's PaymentIntents.
//!
//! Proves that every captured payment maps to exactly one live order (or to a void or
//! a refund) and every order sold online to one captured payment of the same amount.
//! [`check`] is pure (tested with tables); [`run`] reads both sides: each section's
//! payments and orders (actor calls) and every PaymentIntent the PSP has with hakken's
//! metadata (paged, bounded by [`PSP_PAGES_MAX`]).

use std::collections::{HashMap, HashSet};

use hakken_engine::actor::{Export, ListPayments};
use hakken_engine::inventory::{Payment, PaymentState};

use crate::http::app::{call, App, Shared};
use crate::http::error::{ApiError, ApiResult};
use crate::http::payment_views::{MismatchView, ReconcileReport};
use crate::http::payments::psp_error;
use crate::payments::gateway::Gateway;
use crate::payments::stripe::{PaymentIntent, PaymentIntentStatus};

pub const RECONCILE_MISMATCHES: &str = "hakken_payments_reconcile_mismatches";
/// PaymentIntents read at most: 1,000 pages of 100.
const PSP_PAGES_MAX: usize = 1_000;
const PSP_PAGE: u32 = 100;

/// An order as reconciliation sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderFacts {
    pub id: String,
    /// `online` (bought through the PSP), `box_office`, `external`.
    pub channel: String,
    pub cancelled: bool,
    pub total_minor: u64,
}

/// hakken's side: every payment (each names its order) and every order.
pub struct HakkenSide {
    pub payments: Vec<Payment>,
    pub orders: Vec<OrderFacts>,
}

pub fn check(hakken: &HakkenSide, intents: &[PaymentIntent]) -> ReconcileReport {
    let mut mismatches = Vec::new();
    let mut pending = 0;
    let mut mismatch = |kind: &'static str, payment: Option<&str>, order: Option<String>, detail: String| {
        mismatches.push(MismatchView { kind, payment: payment.map(str::to_string), order, detail });
    };
    let by_id: HashMap<&str, &PaymentIntent> = intents.iter().map(|intent| (intent.id.as_str(), intent)).collect();
    let orders: HashMap<&str, &OrderFacts> = hakken.orders.iter().map(|order| (order.id.as_str(), order)).collect();
    let mut paid_orders = HashSet::new();
    for payment in &hakken.payments {
        let psp_id = Some(payment.psp_id.as_str());
        let order_id = payment.order().map(|order| order.to_string());
        if let Some(order) = &order_id {
            if !paid_orders.insert(order.clone()) {
                mismatch("order_paid_twice", psp_id, Some(order.clone()), "two payments bought the same order".into());
            }
        }
        let Some(intent) = by_id.get(payment.psp_id.as_str()) else {
            mismatch("missing_at_psp", psp_id, order_id, "hakken recorded a payment the PSP does not have".into());
            continue;
        };
        if intent.amount != payment.amount_minor {
            let detail = format!("hakken {} vs PSP {}", payment.amount_minor, intent.amount);
            mismatch("amount_differs", psp_id, order_id.clone(), detail);
        }
        let status = &intent.status;
        let differs = |expected: &str| format!("hakken says {expected}, the PSP says {}", status.as_str());
        match payment.state {
            PaymentState::Captured(_) => {
                if *status != PaymentIntentStatus::Succeeded || intent.amount_received != payment.amount_minor {
                    mismatch("state_differs", psp_id, order_id.clone(), differs("captured"));
                }
                let order = order_id.as_deref().and_then(|id| orders.get(id));
                match order {
                    None => mismatch("captured_without_order", psp_id, order_id, "the order is missing".into()),
                    Some(order) if order.cancelled => {
                        mismatch("cancelled_but_captured", psp_id, order_id, "cancelled, and no refund owed".into())
                    }
                    Some(order) if order.total_minor != payment.amount_minor => {
                        let detail = format!("order total {} vs payment {}", order.total_minor, payment.amount_minor);
                        mismatch("amount_differs", psp_id, order_id, detail)
                    }
                    Some(_) => {}
                }
            }
            PaymentState::Voided { .. } if *status != PaymentIntentStatus::Canceled => {
                mismatch("state_differs", psp_id, order_id, differs("voided"));
            }
            PaymentState::Refunded(_) if *status != PaymentIntentStatus::Succeeded => {
                mismatch("state_differs", psp_id, order_id, differs("refunded"));
            }
            PaymentState::AwaitingPayment if *status == PaymentIntentStatus::Succeeded => {
                mismatch("captured_without_order", psp_id, None, "the PSP took money hakken has not seen".into());
            }
            // Authorized at the PSP, the webhook not yet handled: the sweep will.
            PaymentState::AwaitingPayment if *status == PaymentIntentStatus::RequiresCapture => pending += 1,
            PaymentState::Ordered(_) | PaymentState::VoidDue { .. } | PaymentState::RefundDue(_) => pending += 1,
            _ => {}
        }
    }
    let known: HashSet<&str> = hakken.payments.iter().map(|payment| payment.psp_id.as_str()).collect();
    let mut psp_payments = 0;
    for intent in intents.iter().filter(|intent| intent.hakken_hold().is_some()) {
        psp_payments += 1;
        let moved = matches!(intent.status, PaymentIntentStatus::Succeeded | PaymentIntentStatus::RequiresCapture);
        if moved && !known.contains(intent.id.as_str()) {
            let detail = format!(
                "{} at the PSP for hold {}, unknown to hakken",
                intent.status.as_str(),
                intent.hakken_hold().unwrap_or("")
            );
            mismatch("unknown_payment", Some(&intent.id), None, detail);
        }
    }
    for order in hakken.orders.iter().filter(|order| order.channel == "online") {
        if !paid_orders.contains(&order.id) {
            mismatch("order_without_payment", None, Some(order.id.clone()), "sold online without a payment".into());
        }
    }
    metrics::gauge!(RECONCILE_MISMATCHES).set(mismatches.len() as f64);
    ReconcileReport {
        ok: mismatches.is_empty(),
        payments: hakken.payments.len(),
        orders: hakken.orders.len(),
        psp_payments,
        pending,
        mismatches,
    }
}

/// Reads both sides and checks them.
pub async fn run(shared: &Shared, app: &App, gateway: &Gateway) -> ApiResult<ReconcileReport> {
    let mut hakken = HakkenSide { payments: Vec::new(), orders: Vec::new() };
    for served in app.catalogue().events.values() {
        for section in &served.sections {
            let payments = call(section, ListPayments {}, &shared.overload).await?;
            hakken.payments.extend(payments);
            let snapshot = call(section, Export {}, &shared.overload).await?;
            let key = section.key;
            hakken.orders.extend(snapshot.orders.iter().map(|order| {
                OrderFacts {
                    id: hakken_engine::ids::OrderId {
                        section: key,
                        number: hakken_engine::ids::OrderNumber(order.order),
                    }
                    .to_string(),
                    channel: order.buyer.channel.clone(),
                    cancelled: order.cancelled,
                    total_minor: order.total_minor,
                }
            }));
        }
    }
    let mut intents = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..PSP_PAGES_MAX {
        let page = gateway.client().list_payment_intents(after.as_deref(), PSP_PAGE).await.map_err(psp_error)?;
        after = page.data.last().map(|intent| intent.id.clone());
        intents.extend(page.data);
        if !page.has_more || after.is_none() {
            return Ok(check(&hakken, &intents));
        }
    }
    Err(ApiError::unavailable("psp_too_many", "the PSP has more payments than one reconciliation reads", 60))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use hakken_engine::clock::Millis;
    use hakken_engine::ids::{CustomerId, HoldId, HoldNumber, OrderNumber, SectionKey};
    use hakken_engine::inventory::{Buyer, Units, VoidReason};
    use serde_json::json;

    use super::*;

    fn payment(hold: u32, state: PaymentState) -> Payment {
        Payment {
            hold: HoldId { section: SectionKey(0), number: HoldNumber(hold) },
            customer: CustomerId::new("c"),
            provider: "test".into(),
            psp_id: format!("pi_{hold}"),
            amount_minor: 1000,
            currency: "EUR".into(),
            units: Units::Quantity(1),
            buyer: Arc::new(Buyer::default()),
            started_at: Millis(0),
            state,
        }
    }

    fn intent(id: &str, status: &str, received: u64) -> PaymentIntent {
        serde_json::from_value(json!({"id": id, "amount": 1000, "amount_received": received, "currency": "eur",
            "status": status, "livemode": false, "created": 0, "metadata": {"hakken_hold": "h"}}))
        .unwrap()
    }

    fn order(number: u32, channel: &str, cancelled: bool) -> OrderFacts {
        let id = hakken_engine::ids::OrderId { section: SectionKey(0), number: OrderNumber(number) }.to_string();
        OrderFacts { id, channel: channel.into(), cancelled, total_minor: 1000 }
    }

    /// The mismatch kinds `check` finds, in order.
    fn kinds(payments: Vec<Payment>, orders: Vec<OrderFacts>, intents: &[PaymentIntent]) -> Vec<&'static str> {
        check(&HakkenSide { payments, orders }, intents).mismatches.iter().map(|mismatch| mismatch.kind).collect()
    }

    #[test]
    fn agreeing_sides_have_no_mismatch() {
        let captured = payment(1, PaymentState::Captured(OrderNumber(0)));
        let voided = payment(2, PaymentState::Voided { reason: VoidReason::Late, order: None });
        let refunded = payment(3, PaymentState::Refunded(Some(OrderNumber(1))));
        let intents =
            [intent("pi_1", "succeeded", 1000), intent("pi_2", "canceled", 0), intent("pi_3", "succeeded", 1000)];
        let orders = vec![order(0, "online", false), order(1, "online", true), order(2, "box_office", false)];
        let report = check(&HakkenSide { payments: vec![captured, voided, refunded], orders }, &intents);
        assert!(report.ok, "{:?}", report.mismatches);
        assert_eq!((report.payments, report.orders, report.psp_payments, report.pending), (3, 3, 3, 0));
    }

    #[test]
    fn each_disagreement_is_named() {
        let captured = |hold| payment(hold, PaymentState::Captured(OrderNumber(0)));
        assert_eq!(kinds(vec![captured(1)], vec![order(0, "online", false)], &[]), ["missing_at_psp"]);
        let not_taken = [intent("pi_1", "requires_capture", 0)];
        assert_eq!(kinds(vec![captured(1)], vec![order(0, "online", false)], &not_taken), ["state_differs"]);
        let taken = [intent("pi_1", "succeeded", 1000)];
        assert_eq!(kinds(vec![captured(1)], vec![], &taken), ["captured_without_order"]);
        assert_eq!(kinds(vec![captured(1)], vec![order(0, "online", true)], &taken), ["cancelled_but_captured"]);
        assert_eq!(kinds(vec![], vec![], &taken), ["unknown_payment"]);
        assert_eq!(kinds(vec![], vec![order(0, "online", false)], &[]), ["order_without_payment"]);
        let voided = payment(1, PaymentState::Voided { reason: VoidReason::Late, order: None });
        assert_eq!(kinds(vec![voided], vec![], &taken), ["state_differs"]);
        let awaiting = payment(1, PaymentState::AwaitingPayment);
        assert_eq!(kinds(vec![awaiting], vec![], &taken), ["captured_without_order"]);
        let twice = vec![captured(1), captured(2)];
        let both = [intent("pi_1", "succeeded", 1000), intent("pi_2", "succeeded", 1000)];
        assert_eq!(kinds(twice, vec![order(0, "online", false)], &both), ["order_paid_twice"]);
    }

    #[test]
    fn work_still_owed_is_pending_not_a_mismatch() {
        let ordered = payment(1, PaymentState::Ordered(OrderNumber(0)));
        let authorized = payment(2, PaymentState::AwaitingPayment);
        let intents = [intent("pi_1", "requires_capture", 0), intent("pi_2", "requires_capture", 0)];
        let report = check(
            &HakkenSide { payments: vec![ordered, authorized], orders: vec![order(0, "online", false)] },
            &intents,
        );
        assert!(report.ok, "{:?}", report.mismatches);
        assert_eq!(report.pending, 2);
    }
}
