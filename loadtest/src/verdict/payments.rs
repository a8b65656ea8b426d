//! The verdict on the money: every payment at the PSP maps to one order or to one void
//! or refund, and no order exists without a captured payment.
//!
//! Three views are compared, read after the run ([`PaymentsObserved::fetch`]): the PSP's
//! own PaymentIntents (listed with the secret key; hakken tags each with
//! `metadata[hakken_hold]`), hakken's payment of each hold the run checked out
//! (`GET /v1/holds/{hold}/payment`) with the orders they name, and hakken's own
//! reconciliation (`GET /v1/admin/payments/reconcile`). [`check`] is pure, so its rules
//! are tested on hand-made inconsistencies:
//!
//! - captured at the PSP (`succeeded`) ↔ hakken shows the hold's order, confirmed, of
//!   the amount received; or a refund (`refunded`/`refund_pending`); a hold captured
//!   twice is a violation;
//! - authorized but not captured (`requires_capture`) only while hakken is still on it
//!   (`ordered`: capture pending; `void_pending`; `awaiting_payment`: the webhook not yet
//!   taken); otherwise money is held on a buyer's card for nothing;
//! - voided (`canceled`) or never authorized at the PSP → no live order of it;
//! - every order of the run sold online has its payment at the PSP, captured, of its
//!   total; an order confirmed on trust is `box_office`/`external`, never `online`;
//! - every order hakken shows for a run's hold is in the ledger (no buyer paid without
//!   learning of it), what the buyer was told is what hakken shows, and no order is
//!   named by two payments;
//! - the reconcile report says ok, and each of its mismatches is a violation.
//!
//! Only the run's holds are judged (the PSP may hold other payments). What is still
//! pending is counted: the replay waits (`--payment-settle`) for it to settle first.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use anyhow::{bail, Context};
use futures_util::stream::{self, StreamExt};
use hyper::header::AUTHORIZATION;
use hyper::{Method, Uri};
use serde::{Deserialize, Serialize};

use super::observed::{read_order_of, ServerOrder};
use super::Ledger;
use crate::client::{query_escape, send_retrying, Pool};
use crate::psp::{self, PaymentIntent};
use crate::wire::{self, PaymentView};

/// Payment read-backs in flight at once.
const READ_BACKS_IN_FLIGHT_MAX: usize = 32;

/// hakken's `GET /v1/admin/payments/reconcile`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reconcile {
    pub ok: bool,
    #[serde(default)]
    pub payments: u64,
    #[serde(default)]
    pub orders: u64,
    #[serde(default)]
    pub psp_payments: u64,
    /// Payments with a capture, void or refund still owed (hakken's sweep retries them).
    #[serde(default)]
    pub pending: u64,
    #[serde(default)]
    pub mismatches: Vec<Mismatch>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mismatch {
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub payment: Option<String>,
    #[serde(default)]
    pub order: Option<String>,
    #[serde(default)]
    pub detail: String,
}

/// The money's side of the server and of the PSP, after the run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PaymentsObserved {
    /// The PSP's PaymentIntents; `None` when they could not be listed (no secret key).
    pub intents: Option<Vec<PaymentIntent>>,
    /// hakken's payment of each hold the run checked out; `None` on 404 (no payment).
    pub views: BTreeMap<String, Option<PaymentView>>,
    /// Orders those payments name that the ledger does not have, read back.
    pub orders: HashMap<String, Option<ServerOrder>>,
    /// `None` without an admin token.
    pub reconcile: Option<Reconcile>,
}

/// Where to read the PSP and hakken's admin side.
pub struct PaymentSources<'a> {
    /// The PSP's pool and secret key.
    pub psp: Option<(&'a Pool, &'a str)>,
    pub admin_token: Option<&'a str>,
}

impl PaymentsObserved {
    /// Reads everything [`check`] needs; `orders` are the orders already read for the
    /// ledger (those are not read again).
    pub async fn fetch(
        pool: &Pool,
        sources: &PaymentSources<'_>,
        ledger: &Ledger,
        known_orders: &HashMap<String, Option<ServerOrder>>,
        timeout: Duration,
    ) -> anyhow::Result<PaymentsObserved> {
        let intents = match sources.psp {
            Some((psp, key)) => Some(psp::list_intents(psp, key, timeout).await.context("listing the PSP's payments")?),
            None => None,
        };
        let reads: Vec<_> = stream::iter(ledger.payments.iter().map(|payment| async move {
            let view = read_payment(pool, &payment.hold, &payment.customer, timeout).await;
            (payment, view)
        }))
        .buffered(READ_BACKS_IN_FLIGHT_MAX)
        .collect()
        .await;
        let mut views = BTreeMap::new();
        let mut orders = HashMap::new();
        for (payment, view) in reads {
            let view = view?;
            if let Some(order) = view.as_ref().and_then(|view| view.order.as_deref()) {
                if !known_orders.contains_key(order) && !orders.contains_key(order) {
                    orders.insert(order.to_string(), read_order_of(pool, order, &payment.customer, timeout).await?);
                }
            }
            views.insert(payment.hold.clone(), view);
        }
        let reconcile = match sources.admin_token {
            Some(token) => read_reconcile(pool, token, timeout).await?,
            None => None,
        };
        Ok(PaymentsObserved { intents, views, orders, reconcile })
    }
}

/// `GET /v1/holds/{hold}/payment?customer=...`: `None` on 404.
pub async fn read_payment(
    pool: &Pool,
    hold: &str,
    customer: &str,
    timeout: Duration,
) -> anyhow::Result<Option<PaymentView>> {
    let path = format!("/v1/holds/{hold}/payment?customer={}", query_escape(customer));
    let uri: Uri = path.parse().with_context(|| format!("hold id {hold:?} does not fit in a path"))?;
    let reply = send_retrying(pool, || pool.request(Method::GET, uri.clone(), None), timeout)
        .await
        .with_context(|| format!("GET {path}"))?;
    match reply.status.as_u16() {
        404 => Ok(None),
        200 => wire::payment(&reply.body).map(Some).with_context(|| format!("GET {path}: not a payment")),
        status => bail!("GET {path}: {status} {}", String::from_utf8_lossy(&reply.body)),
    }
}

/// hakken's reconcile report; `None` if the server has none (404).
async fn read_reconcile(pool: &Pool, token: &str, timeout: Duration) -> anyhow::Result<Option<Reconcile>> {
    let authorization = psp::bearer(token)?;
    let uri = Uri::from_static("/v1/admin/payments/reconcile");
    let make = || {
        let mut request = pool.request(Method::GET, uri.clone(), None);
        request.headers_mut().insert(AUTHORIZATION, authorization.clone());
        request
    };
    let reply = send_retrying(pool, make, timeout).await.context("GET /v1/admin/payments/reconcile")?;
    match reply.status.as_u16() {
        404 => Ok(None),
        200 => serde_json::from_slice(&reply.body).map(Some).context("GET /v1/admin/payments/reconcile: not a report"),
        status => bail!("GET /v1/admin/payments/reconcile: {status} {}", String::from_utf8_lossy(&reply.body)),
    }
}

/// What the payment rules looked at.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PaymentCheck {
    /// Holds the run checked out.
    pub checkouts: u64,
    /// The run's PaymentIntents at the PSP (`None`: the PSP was not listed).
    pub psp_intents: Option<u64>,
    pub captured: u64,
    pub refunded: u64,
    pub voided: u64,
    /// Never authorized (declined, abandoned, or expired before paying).
    pub unpaid: u64,
    /// Still on its way: authorized but not captured while hakken captures or voids it,
    /// or captured while hakken has not recorded it yet.
    pub pending: u64,
    /// The reconcile report's verdict (`None`: not read).
    pub reconcile_ok: Option<bool>,
}

const LIVE: &str = "confirmed";

/// Checks the money; violations go to `violations`. `orders` are the server's orders
/// by id (the ledger's and those the payments name).
pub fn check(
    ledger: &Ledger,
    observed: &PaymentsObserved,
    orders: &dyn Fn(&str) -> Option<ServerOrder>,
    violations: &mut Vec<String>,
) -> PaymentCheck {
    let mut summary = PaymentCheck { checkouts: ledger.payments.len() as u64, ..PaymentCheck::default() };
    let order_of = |id: &str| observed.orders.get(id).cloned().flatten().or_else(|| orders(id));
    let ledger_orders: HashMap<&str, &super::LedgerOrder> =
        ledger.orders.iter().map(|order| (order.id.as_str(), order)).collect();

    // hakken's side of each checkout, against what the buyer was told.
    let mut named: HashMap<&str, &str> = HashMap::new();
    for payment in &ledger.payments {
        let view = observed.views.get(&payment.hold).and_then(Option::as_ref);
        if let (Some(told), Some(pi)) = (&payment.payment, view) {
            if *told != pi.id {
                violations.push(format!(
                    "hold {}: the checkout gave payment {told} but hakken now shows payment {}",
                    payment.hold, pi.id
                ));
            }
        }
        if let Some(told) = &payment.order {
            if view.and_then(|view| view.order.as_ref()) != Some(told) {
                violations.push(format!(
                    "hold {}: the buyer was told order {told} but its payment shows {}",
                    payment.hold,
                    view.map_or("no payment".to_string(), describe)
                ));
            }
        }
        let Some(view) = view else { continue };
        let Some(order) = view.order.as_deref() else { continue };
        if let Some(other) = named.insert(order, &payment.hold) {
            violations
                .push(format!("order {order} is named by the payments of two holds: {other} and {}", payment.hold));
        }
        let live = order_of(order).is_some_and(|server| server.state == LIVE);
        if live && !ledger_orders.contains_key(order) {
            violations.push(format!(
                "hakken made order {order} of hold {} (payment {}) but its buyer never learned of it",
                payment.hold, view.id
            ));
        }
    }

    // Orders: sold online ↔ paid; confirmed on trust ↔ not online.
    let intents_by_id: HashMap<&str, &PaymentIntent> =
        observed.intents.iter().flatten().map(|intent| (intent.id.as_str(), intent)).collect();
    for order in &ledger.orders {
        let server = order_of(&order.id);
        let channel = server.as_ref().and_then(|server| server.channel.as_deref());
        let Some(pi) = &order.payment else {
            if channel == Some("online") {
                violations
                    .push(format!("order {} was confirmed on trust but the server says it was sold online", order.id));
            }
            continue;
        };
        if channel.is_some_and(|channel| channel != "online") {
            violations.push(format!(
                "order {} was paid at the PSP but its channel is {}",
                order.id,
                channel.unwrap_or("")
            ));
        }
        if observed.intents.is_none() {
            continue;
        }
        match intents_by_id.get(pi.as_str()) {
            None => violations.push(format!("order {} has no payment at the PSP ({pi} is not there)", order.id)),
            Some(intent) => match intent.status.as_str() {
                "succeeded" => {
                    if let Some(server) = server.as_ref().filter(|server| server.state == LIVE) {
                        if server.total_minor != intent.amount_received {
                            violations.push(format!(
                                "order {} costs {} but its payment {pi} captured {}",
                                order.id, server.total_minor, intent.amount_received
                            ));
                        }
                    }
                }
                // Captured soon: counted pending with the intent below.
                "requires_capture" => {}
                status => {
                    violations.push(format!("order {} was made but its payment {pi} is {status} at the PSP", order.id))
                }
            },
        }
    }

    // The PSP's side: each of the run's intents is an order, a void or a refund.
    let Some(intents) = &observed.intents else {
        check_reconcile(observed, violations, &mut summary);
        return summary;
    };
    let holds: HashMap<&str, ()> = ledger.payments.iter().map(|payment| (payment.hold.as_str(), ())).collect();
    let mut captured_by_hold: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut counted = 0;
    for intent in intents {
        let Some(hold) = intent.hold().filter(|hold| holds.contains_key(hold)) else { continue };
        counted += 1;
        let view = observed.views.get(hold).and_then(Option::as_ref).filter(|view| view.id == intent.id);
        let status = view.map(|view| view.status.as_str());
        let order = view.and_then(|view| view.order.as_deref()).and_then(order_of);
        let live_order = order.as_ref().filter(|order| order.state == LIVE);
        let shown = view.map_or(format!("no payment {} for it", intent.id), describe);
        match intent.status.as_str() {
            "succeeded" => {
                captured_by_hold.entry(hold).or_default().push(&intent.id);
                match (status, live_order) {
                    (Some("refunded" | "refund_pending"), _) => summary.refunded += 1,
                    (Some("captured"), Some(order)) => {
                        summary.captured += 1;
                        if order.total_minor != intent.amount_received {
                            violations.push(format!(
                                "hold {hold}: the PSP captured {} ({}) but order {} costs {}",
                                intent.amount_received, intent.id, order.id, order.total_minor
                            ));
                        }
                    }
                    // Captured at the PSP; hakken has not recorded the capture yet.
                    (Some("ordered"), Some(_)) => summary.pending += 1,
                    _ => violations.push(format!(
                        "hold {hold}: the PSP captured {} ({}) but hakken shows {shown} and no live order",
                        intent.amount_received, intent.id
                    )),
                }
            }
            "requires_capture" => match status {
                Some("ordered" | "void_pending" | "awaiting_payment") => summary.pending += 1,
                _ => violations.push(format!(
                    "hold {hold}: {} is authorized at the PSP ({} held on the card) but hakken shows {shown}",
                    intent.id, intent.amount_capturable
                )),
            },
            "canceled" => {
                summary.voided += 1;
                if let Some(order) = live_order {
                    violations.push(format!(
                        "hold {hold}: {} was voided at the PSP but order {} is live",
                        intent.id, order.id
                    ));
                }
            }
            other => {
                summary.unpaid += 1;
                if let Some(order) = live_order {
                    violations.push(format!(
                        "order {} of hold {hold} has no captured payment: {} is {other} at the PSP",
                        order.id, intent.id
                    ));
                }
            }
        }
    }
    summary.psp_intents = Some(counted);
    for (hold, captured) in captured_by_hold.iter().filter(|(_, captured)| captured.len() > 1) {
        violations.push(format!("hold {hold} was captured {} times: {}", captured.len(), captured.join(", ")));
    }
    let at_psp: HashMap<&str, ()> = intents.iter().map(|intent| (intent.id.as_str(), ())).collect();
    for (hold, view) in observed.views.iter().filter_map(|(hold, view)| Some((hold, view.as_ref()?))) {
        if !at_psp.contains_key(view.id.as_str()) {
            violations.push(format!("hold {hold}: hakken's payment {} is unknown at the PSP", view.id));
        }
    }
    check_reconcile(observed, violations, &mut summary);
    summary
}

fn check_reconcile(observed: &PaymentsObserved, violations: &mut Vec<String>, summary: &mut PaymentCheck) {
    let Some(reconcile) = &observed.reconcile else { return };
    summary.reconcile_ok = Some(reconcile.ok);
    summary.pending += reconcile.pending;
    for mismatch in &reconcile.mismatches {
        violations.push(format!(
            "reconcile: {} (payment {}, order {}): {}",
            mismatch.kind,
            mismatch.payment.as_deref().unwrap_or("-"),
            mismatch.order.as_deref().unwrap_or("-"),
            mismatch.detail
        ));
    }
    if !reconcile.ok && reconcile.mismatches.is_empty() {
        violations.push("reconcile: hakken's report is not ok but lists no mismatch".to_string());
    }
}

fn describe(view: &PaymentView) -> String {
    match &view.order {
        Some(order) => format!("payment {} {} with order {order}", view.id, view.status),
        None => format!("payment {} {}", view.id, view.status),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::{LedgerOrder, LedgerPayment, Ticket};

    fn intent(id: &str, hold: &str, status: &str, received: u64) -> PaymentIntent {
        PaymentIntent {
            id: id.into(),
            status: status.into(),
            amount: 100,
            amount_received: received,
            amount_capturable: if status == "requires_capture" { 100 } else { 0 },
            currency: "eur".into(),
            metadata: BTreeMap::from([("hakken_hold".to_string(), hold.to_string())]),
            created: 0,
        }
    }

    fn view(id: &str, hold: &str, status: &str, order: Option<&str>) -> PaymentView {
        PaymentView {
            id: id.into(),
            hold: hold.into(),
            status: status.into(),
            amount: 100,
            currency: "EUR".into(),
            provider: "test".into(),
            client_secret: String::new(),
            order: order.map(String::from),
        }
    }

    fn server(id: &str, state: &str, total: u64, channel: &str) -> ServerOrder {
        ServerOrder {
            id: id.into(),
            section: "A".into(),
            state: state.into(),
            tickets: vec![Ticket { id: format!("t-{id}"), seat: None }],
            hold: String::new(),
            total_minor: total,
            channel: Some(channel.into()),
            payment: None,
        }
    }

    /// h1 paid and captured (order o1), h2 declined and left, h3 paid late and voided,
    /// h4 refunded; o9 a trusted order.
    fn consistent() -> (Ledger, PaymentsObserved, HashMap<String, ServerOrder>) {
        let payment = |hold: &str, pi: &str, paid: bool, order: Option<&str>| LedgerPayment {
            hold: hold.into(),
            customer: format!("c-{hold}"),
            payment: Some(pi.into()),
            paid,
            late: false,
            order: order.map(String::from),
        };
        let order = |id: &str, payment: Option<&str>| LedgerOrder {
            id: id.into(),
            customer: "c".into(),
            section: "A".into(),
            tickets: vec![Ticket { id: format!("t-{id}"), seat: None }],
            payment: payment.map(String::from),
        };
        let ledger = Ledger {
            payments: vec![
                payment("h1", "pi_1", true, Some("o1")),
                payment("h2", "pi_2", false, None),
                payment("h3", "pi_3", true, None),
                payment("h4", "pi_4", true, Some("o4")),
            ],
            orders: vec![order("o1", Some("pi_1")), order("o4", Some("pi_4")), order("o9", None)],
            ..Ledger::default()
        };
        let observed = PaymentsObserved {
            intents: Some(vec![
                intent("pi_1", "h1", "succeeded", 100),
                intent("pi_2", "h2", "requires_payment_method", 0),
                intent("pi_3", "h3", "canceled", 0),
                intent("pi_4", "h4", "succeeded", 100),
                intent("pi_other", "h-not-ours", "requires_capture", 0),
            ]),
            views: BTreeMap::from([
                ("h1".to_string(), Some(view("pi_1", "h1", "captured", Some("o1")))),
                ("h2".to_string(), Some(view("pi_2", "h2", "awaiting_payment", None))),
                ("h3".to_string(), Some(view("pi_3", "h3", "voided", None))),
                ("h4".to_string(), Some(view("pi_4", "h4", "refunded", Some("o4")))),
            ]),
            orders: HashMap::new(),
            reconcile: Some(Reconcile {
                ok: true,
                payments: 4,
                orders: 2,
                psp_payments: 4,
                pending: 0,
                mismatches: vec![],
            }),
        };
        let orders = HashMap::from([
            ("o1".to_string(), server("o1", "confirmed", 100, "online")),
            ("o4".to_string(), server("o4", "cancelled", 100, "online")),
            ("o9".to_string(), server("o9", "confirmed", 100, "box_office")),
        ]);
        (ledger, observed, orders)
    }

    fn run(
        ledger: &Ledger,
        observed: &PaymentsObserved,
        orders: &HashMap<String, ServerOrder>,
    ) -> (PaymentCheck, Vec<String>) {
        let mut violations = Vec::new();
        let summary = check(ledger, observed, &|id| orders.get(id).cloned(), &mut violations);
        (summary, violations)
    }

    fn assert_fails(
        ledger: &Ledger,
        observed: &PaymentsObserved,
        orders: &HashMap<String, ServerOrder>,
        expected: &str,
    ) {
        let (_, found) = run(ledger, observed, orders);
        assert!(found.iter().any(|violation| violation.contains(expected)), "{found:#?} should contain {expected:?}");
    }

    #[test]
    fn consistent_payments_pass() {
        let (ledger, observed, orders) = consistent();
        let (summary, violations) = run(&ledger, &observed, &orders);
        assert_eq!(violations, Vec::<String>::new());
        assert_eq!(
            summary,
            PaymentCheck {
                checkouts: 4,
                psp_intents: Some(4),
                captured: 1,
                refunded: 1,
                voided: 1,
                unpaid: 1,
                pending: 0,
                reconcile_ok: Some(true)
            }
        );
    }

    #[test]
    fn a_capture_without_an_order_fails() {
        let (ledger, mut observed, orders) = consistent();
        observed.views.insert("h3".into(), Some(view("pi_3", "h3", "voided", None)));
        observed.intents.as_mut().expect("listed")[2].status = "succeeded".into();
        observed.intents.as_mut().expect("listed")[2].amount_received = 100;
        assert_fails(
            &ledger,
            &observed,
            &orders,
            "hold h3: the PSP captured 100 (pi_3) but hakken shows payment pi_3 voided",
        );
    }

    #[test]
    fn a_hold_captured_twice_or_for_another_amount_fails() {
        let (ledger, mut observed, orders) = consistent();
        observed.intents.as_mut().expect("listed").push(intent("pi_1b", "h1", "succeeded", 100));
        assert_fails(&ledger, &observed, &orders, "hold h1 was captured 2 times: pi_1, pi_1b");
        let (ledger, mut observed, orders) = consistent();
        observed.intents.as_mut().expect("listed")[0].amount_received = 90;
        assert_fails(&ledger, &observed, &orders, "hold h1: the PSP captured 90 (pi_1) but order o1 costs 100");
        assert_fails(&ledger, &observed, &orders, "order o1 costs 100 but its payment pi_1 captured 90");
    }

    #[test]
    fn an_authorization_left_behind_fails_unless_pending() {
        let (ledger, mut observed, orders) = consistent();
        observed.intents.as_mut().expect("listed")[2].status = "requires_capture".into();
        assert_fails(&ledger, &observed, &orders, "hold h3: pi_3 is authorized at the PSP");
        observed.views.insert("h3".into(), Some(view("pi_3", "h3", "void_pending", None)));
        let (summary, violations) = run(&ledger, &observed, &orders);
        assert_eq!((summary.pending, violations.len()), (1, 0), "{violations:?}");
    }

    #[test]
    fn an_order_without_a_captured_payment_fails() {
        // hakken made an order of a declined payment.
        let (mut ledger, mut observed, mut orders) = consistent();
        observed.views.insert("h2".into(), Some(view("pi_2", "h2", "captured", Some("o2"))));
        orders.insert("o2".into(), server("o2", "confirmed", 100, "online"));
        ledger.payments[1].order = Some("o2".into());
        ledger.orders.push(LedgerOrder { id: "o2".into(), payment: Some("pi_2".into()), ..LedgerOrder::default() });
        assert_fails(
            &ledger,
            &observed,
            &orders,
            "order o2 of hold h2 has no captured payment: pi_2 is requires_payment_method",
        );
        assert_fails(&ledger, &observed, &orders, "order o2 was made but its payment pi_2 is requires_payment_method");
        // An order sold online that the run confirmed on trust.
        let (ledger, observed, mut orders) = consistent();
        orders.insert("o9".into(), server("o9", "confirmed", 100, "online"));
        assert_fails(
            &ledger,
            &observed,
            &orders,
            "order o9 was confirmed on trust but the server says it was sold online",
        );
        // An order whose payment the PSP does not know.
        let (mut ledger, observed, orders) = consistent();
        ledger.orders[0].payment = Some("pi_x".into());
        assert_fails(&ledger, &observed, &orders, "order o1 has no payment at the PSP");
    }

    #[test]
    fn buyers_must_learn_of_their_orders_and_be_told_the_truth() {
        let (mut ledger, observed, orders) = consistent();
        ledger.payments[0].order = None;
        ledger.orders.remove(0);
        assert_fails(
            &ledger,
            &observed,
            &orders,
            "hakken made order o1 of hold h1 (payment pi_1) but its buyer never learned",
        );
        let (mut ledger, observed, orders) = consistent();
        ledger.payments[0].order = Some("o7".into());
        assert_fails(
            &ledger,
            &observed,
            &orders,
            "hold h1: the buyer was told order o7 but its payment shows payment pi_1",
        );
        let (ledger, mut observed, orders) = consistent();
        observed.views.insert("h3".into(), Some(view("pi_3", "h3", "captured", Some("o1"))));
        assert_fails(&ledger, &observed, &orders, "order o1 is named by the payments of two holds: h1 and h3");
        let (ledger, mut observed, orders) = consistent();
        observed.views.insert("h2".into(), Some(view("pi_zz", "h2", "awaiting_payment", None)));
        assert_fails(&ledger, &observed, &orders, "hold h2: hakken's payment pi_zz is unknown at the PSP");
        assert_fails(&ledger, &observed, &orders, "the checkout gave payment pi_2 but hakken now shows payment pi_zz");
    }

    #[test]
    fn reconcile_mismatches_fail_and_an_unlisted_psp_still_checks_the_rest() {
        let (ledger, mut observed, orders) = consistent();
        observed.reconcile = Some(Reconcile {
            ok: false,
            mismatches: vec![Mismatch {
                kind: "captured_without_order".into(),
                payment: Some("pi_1".into()),
                order: None,
                detail: "no order".into(),
            }],
            ..Reconcile::default()
        });
        assert_fails(
            &ledger,
            &observed,
            &orders,
            "reconcile: captured_without_order (payment pi_1, order -): no order",
        );
        let (ledger, mut observed, orders) = consistent();
        observed.reconcile = Some(Reconcile::default());
        assert_fails(&ledger, &observed, &orders, "not ok but lists no mismatch");
        let (mut ledger, mut observed, orders) = consistent();
        observed.intents = None;
        let (summary, violations) = run(&ledger, &observed, &orders);
        assert_eq!((summary.psp_intents, violations.len()), (None, 0));
        ledger.payments[0].order = Some("o7".into());
        assert_eq!(run(&ledger, &observed, &orders).1.len(), 1);
    }
}
