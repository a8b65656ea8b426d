//! One arrival of `run`, as a task of its own: an order (a best-available hold, then,
//! if it was granted, its confirmation), one plain GET, or one gate scan; each request
//! bounded by the request timeout, each step recorded as it ends.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::header::{HeaderValue, AUTHORIZATION};
use hyper::{Method, Uri};
use serde::Serialize;
use tokio::time::Instant;

use super::{OrderPlan, Plan, PlanKind, PlanPay, SectionPick};
use crate::client::{Reply, IDEMPOTENCY_KEY};
use crate::prng::mix64;
use crate::psp::{self, ConfirmOutcome};
use crate::schedule::Arrival;
use crate::stats::{Live, Outcome, Step};
use crate::wire::{self, json, BuyerDetails, CheckoutRequest, ConfirmRequest};

/// The first wait between reads of a payment that came back unsettled (a long poll
/// that ran out, or a server without them); each next one is half as long again.
const POLL_FIRST_WAIT: Duration = Duration::from_millis(10);
const POLL_WAIT_MAX: Duration = Duration::from_millis(500);

/// Counts an arrival out of `in_flight` however its task ends.
struct InFlight(Arc<Plan>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.live.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Runs `arrival` to its end (the task `launch` spawned).
pub(super) async fn run_arrival(plan: Arc<Plan>, arrival: Arrival) {
    let plan = InFlight(plan);
    let plan = &plan.0;
    match &plan.kind {
        PlanKind::Orders(order) => run_order(plan, order, arrival).await,
        PlanKind::PlainGet { uri } => {
            let result = exchange(plan, arrival, Step::Get, plan.pool.request(Method::GET, uri.clone(), None)).await;
            let (outcome, error_code) = match result {
                Ok(reply) => refusal(&reply),
                Err(outcome) => (outcome, None),
            };
            finish(plan, arrival, Step::Get, outcome, arrival.scheduled.elapsed(), error_code.as_deref());
        }
        PlanKind::Scans { codes, authorization, gates } => {
            let code = &codes[(arrival.index % codes.len() as u64) as usize];
            let body = json(&ScanRequest {
                code,
                gate: &format!("bench-{}", arrival.index % u64::from(*gates)),
                scan_id: &format!("{}-{}", plan.run_id, arrival.index),
            });
            let mut request = plan.pool.request(Method::POST, Uri::from_static("/v1/scan"), Some(body));
            request.headers_mut().insert(hyper::header::AUTHORIZATION, authorization.clone());
            let result = exchange(plan, arrival, Step::Scan, request).await;
            // A 200 is a decision; its result is counted by name (`200 admitted`).
            let (outcome, code) = match result {
                Ok(reply) if reply.status.is_success() => match wire::scan_result(&reply.body) {
                    Some(result) => (Outcome::Success, Some(format!("200 {result}"))),
                    None => (Outcome::BadReply, None),
                },
                Ok(reply) => refusal(&reply),
                Err(outcome) => (outcome, None),
            };
            finish(plan, arrival, Step::Scan, outcome, arrival.scheduled.elapsed(), code.as_deref());
        }
    }
}

#[derive(Serialize)]
struct ScanRequest<'a> {
    code: &'a str,
    gate: &'a str,
    scan_id: &'a str,
}

#[derive(Serialize)]
struct HoldRequest<'a> {
    customer: &'a str,
    section: &'a str,
    quantity: u32,
    adjacent: bool,
    /// `--hold-checkout`: the hold is checked out in the same request.
    #[serde(skip_serializing_if = "Option::is_none")]
    checkout: Option<HoldCheckout<'a>>,
}

#[derive(Serialize)]
struct HoldCheckout<'a> {
    buyer: BuyerDetails<'a>,
}

/// One buyer: hold, then confirm what was held.
async fn run_order(plan: &Plan, order: &OrderPlan, arrival: Arrival) {
    if arrival.measured {
        plan.recorder.sent(arrival.index, Step::Order);
    }
    let customer_number = order.customers.map_or(arrival.index, |customers| arrival.index % customers);
    let customer = format!("c{}-{customer_number}", plan.run_id);
    let section = pick_section(order, plan.pick_salt, arrival.index);
    let name = format!("Buyer {customer_number}");
    let email = format!("buyer-{}-{customer_number}@example.com", plan.run_id);
    let with_hold = order.pay.as_ref().is_some_and(|pay| pay.with_hold);
    let checkout = with_hold.then(|| HoldCheckout { buyer: BuyerDetails { name: &name, email: &email } });
    let body = json(&HoldRequest { customer: &customer, section, quantity: order.quantity, adjacent: true, checkout });
    let mut request = plan.pool.request(Method::POST, order.holds_uri.clone(), Some(body));
    if order.idempotency {
        request.headers_mut().insert(IDEMPOTENCY_KEY, idempotency_key(plan, arrival, "hold"));
    }
    let result = exchange(plan, arrival, Step::Hold, request).await;
    let hold_replied = Instant::now();
    // With the checkout in the hold, a 2xx says whether the checkout happened too.
    let (outcome, error_code, hold) = answered(result, |body| {
        let id = wire::hold_id(body).filter(|id| hold_path(id, "").is_some())?;
        let checkout =
            if with_hold { Some(wire::checkout(body).ok_or_else(|| wire::checkout_error(body))) } else { None };
        Some((id, checkout))
    });
    let hold_latency = hold_replied.saturating_duration_since(arrival.scheduled);
    finish(plan, arrival, Step::Hold, outcome, hold_latency, error_code.as_deref());
    let Some((hold, checkout)) = hold else {
        finish(plan, arrival, Step::Order, outcome, hold_latency, error_code.as_deref());
        return;
    };
    if let Some(pay) = &order.pay {
        let buyer = BuyerDetails { name: &name, email: &email };
        let payment = match checkout {
            None => match check_out(plan, order, arrival, &customer, buyer, &hold, hold_replied).await {
                Some(payment) => payment,
                None => return,
            },
            Some(Ok((payment, _))) => payment,
            Some(Err(code)) => {
                // The hold was made; its checkout was not (the PSP or the section refused).
                if arrival.measured {
                    plan.recorder.sent(arrival.index, Step::Checkout);
                }
                let code = code.unwrap_or_else(|| "-".to_string());
                let outcome = if code.ends_with("unavailable") || code.ends_with("busy") {
                    Outcome::Busy
                } else {
                    Outcome::OtherStatus(502)
                };
                finish(plan, arrival, Step::Checkout, outcome, Duration::ZERO, Some(&code));
                finish(plan, arrival, Step::Order, outcome, arrival.scheduled.elapsed(), Some(&code));
                return;
            }
        };
        return pay_order(plan, order, pay, arrival, &customer, &hold, payment).await;
    }
    let confirm_uri = hold_path(&hold, "/confirm").expect("checked above");

    let payment_reference = format!("pay-{}-{}", plan.run_id, arrival.index);
    let body = json(&ConfirmRequest {
        customer: &customer,
        payment_reference: &payment_reference,
        buyer: BuyerDetails { name: &name, email: &email },
    });
    let mut request = plan.pool.request(Method::POST, confirm_uri, Some(body));
    if order.idempotency {
        request.headers_mut().insert(IDEMPOTENCY_KEY, idempotency_key(plan, arrival, "confirm"));
    }
    if let Some(token) = &order.sales_authorization {
        request.headers_mut().insert(AUTHORIZATION, token.clone());
    }
    let result = exchange(plan, arrival, Step::Confirm, request).await;
    let confirmed = Instant::now();
    let (outcome, error_code, order) = answered(result, wire::order);
    acknowledged(plan, outcome, order.as_ref().map(|order| order.id.as_str()));
    let tickets = order.map_or(0, |order| order.tickets.len() as u64);
    let error_code = error_code.as_deref();
    finish(plan, arrival, Step::Confirm, outcome, confirmed.saturating_duration_since(hold_replied), error_code);
    finish(plan, arrival, Step::Order, outcome, confirmed.saturating_duration_since(arrival.scheduled), error_code);
    if arrival.measured && tickets > 0 {
        plan.recorder.sold(arrival.index, tickets);
    }
}

/// How a step that sent `result` ended: its outcome, the API's error code if it was
/// refused, and what a 2xx body says, read by `parse` (a 2xx whose body does not parse
/// is a malformed reply).
fn answered<T>(
    result: Result<Reply, Outcome>,
    parse: impl FnOnce(&[u8]) -> Option<T>,
) -> (Outcome, Option<String>, Option<T>) {
    match result {
        Ok(reply) if reply.status.is_success() => match parse(&reply.body) {
            Some(value) => (Outcome::Success, None, Some(value)),
            None => (Outcome::BadReply, None, None),
        },
        Ok(reply) => {
            let (outcome, error_code) = refusal(&reply);
            (outcome, error_code, None)
        }
        Err(outcome) => (outcome, None, None),
    }
}

/// How a reply that is not a success ended, with `"{status} {code}"` when its body is
/// the API's error (`{"error": {"code": ...}}`). A 2xx is a plain success here.
fn refusal(reply: &Reply) -> (Outcome, Option<String>) {
    let status = reply.status.as_u16();
    let outcome = Outcome::of_status(status);
    if outcome == Outcome::Success {
        return (outcome, None);
    }
    (outcome, wire::error_code(reply))
}

/// `/v1/holds/{id}/confirm` for the hold in a 2xx reply, or `None` if the reply has no
/// usable hold id.
#[cfg(test)]
fn confirm_uri(hold_reply: &[u8]) -> Option<Uri> {
    hold_path(&wire::hold_id(hold_reply)?, "/confirm")
}

/// `/v1/holds/{hold}{suffix}`, or `None` if the id does not fit in a path.
fn hold_path(hold: &str, suffix: &str) -> Option<Uri> {
    format!("/v1/holds/{hold}{suffix}").parse().ok()
}

/// The checkout of a hold (`POST /v1/holds/{hold}/checkout`), as its own step: the
/// payment, or `None` once the order ended here.
async fn check_out(
    plan: &Plan,
    order: &OrderPlan,
    arrival: Arrival,
    customer: &str,
    buyer: BuyerDetails<'_>,
    hold: &str,
    hold_replied: Instant,
) -> Option<wire::PaymentView> {
    let body = json(&CheckoutRequest { customer, buyer });
    let uri = hold_path(hold, "/checkout").expect("checked by the caller");
    let mut request = plan.pool.request(Method::POST, uri, Some(body));
    if order.idempotency {
        request.headers_mut().insert(IDEMPOTENCY_KEY, idempotency_key(plan, arrival, "checkout"));
    }
    let result = exchange(plan, arrival, Step::Checkout, request).await;
    let (outcome, code, started) = answered(result, wire::checkout);
    finish(plan, arrival, Step::Checkout, outcome, hold_replied.elapsed(), code.as_deref());
    if started.is_none() {
        finish(plan, arrival, Step::Order, outcome, arrival.scheduled.elapsed(), code.as_deref());
    }
    started.map(|(payment, _)| payment)
}

/// A paid order after the checkout: the PSP confirm a browser makes (test card
/// `pm_card_visa`), then polling the hold's payment until hakken, told by the PSP's
/// webhook, shows the order. Each is a step; the order step ends with the last.
async fn pay_order(
    plan: &Plan,
    order: &OrderPlan,
    pay: &PlanPay,
    arrival: Arrival,
    customer: &str,
    hold: &str,
    payment: wire::PaymentView,
) {
    let end = |outcome: Outcome, code: Option<String>| {
        finish(plan, arrival, Step::Order, outcome, arrival.scheduled.elapsed(), code.as_deref());
    };
    let sent = Instant::now();
    let key = idempotency_key(plan, arrival, "psp-confirm");
    let request = psp::confirm_request(
        &pay.psp,
        &payment.id,
        &payment.client_secret,
        psp::CARD_VISA,
        &pay.publishable_key,
        Some(&key),
    )
    .expect("escaped payment ids make valid paths");
    Live::count(&plan.live.requests_sent);
    if arrival.measured {
        plan.recorder.sent(arrival.index, Step::PspConfirm);
    }
    let result = pay.psp.send_within(request, plan.request_timeout).await;
    plan.nudge.notify_one();
    let (outcome, code) = match &result {
        Ok(Ok(reply)) => match ConfirmOutcome::of(reply) {
            ConfirmOutcome::Authorized { .. } => (Outcome::Success, None),
            ConfirmOutcome::Declined { code } => (Outcome::Conflict, Some(format!("402 {code}"))),
            ConfirmOutcome::RequiresAction => (Outcome::BadReply, None),
            ConfirmOutcome::Failed { status, code } => {
                (Outcome::of_status(status), Some(format!("{status} {}", code.as_deref().unwrap_or("-"))))
            }
        },
        Ok(Err(_)) => (Outcome::ConnectionError, None),
        Err(_) => (Outcome::Timeout, None),
    };
    let paid_at = Instant::now();
    finish(plan, arrival, Step::PspConfirm, outcome, paid_at.saturating_duration_since(sent), code.as_deref());
    if outcome != Outcome::Success {
        // A PSP confirm without an answer may have paid: hakken then sells, and tells of it.
        acknowledged(plan, outcome, None);
        return end(outcome, code);
    }

    if arrival.measured {
        plan.recorder.sent(arrival.index, Step::Payment);
    }
    let deadline = paid_at + pay.poll_timeout;
    let mut wait = POLL_FIRST_WAIT;
    let settled = loop {
        Live::count(&plan.live.requests_sent);
        let left = deadline.saturating_duration_since(Instant::now());
        let uri = psp::payment_poll_uri(hold, customer, left, plan.request_timeout);
        let reply = plan.pool.send_within(plan.pool.request(Method::GET, uri, None), plan.request_timeout).await;
        plan.nudge.notify_one();
        if let Ok(Ok(reply)) = reply {
            if let Some(view) = reply.status.is_success().then(|| wire::payment(&reply.body)).flatten() {
                if view.settled() {
                    break Some(view);
                }
            }
        }
        if Instant::now() + wait > deadline {
            break None;
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 3 / 2).min(POLL_WAIT_MAX);
    };
    let waited = paid_at.elapsed();
    let ordered = settled.as_ref().filter(|view| matches!(view.status.as_str(), "ordered" | "captured"));
    let (outcome, code) = match &settled {
        Some(view) if view.order.is_some() && matches!(view.status.as_str(), "ordered" | "captured") => {
            (Outcome::Success, None)
        }
        Some(view) => (Outcome::Conflict, Some(format!("payment {}", view.status))),
        None => (Outcome::Timeout, None),
    };
    acknowledged(plan, outcome, ordered.and_then(|view| view.order.as_deref()));
    finish(plan, arrival, Step::Payment, outcome, waited, code.as_deref());
    end(outcome, code);
    if outcome == Outcome::Success && arrival.measured {
        plan.recorder.sold(arrival.index, u64::from(order.quantity));
    }
}

/// Tells the notification sinks (if any) of an order the server acknowledged, or of a
/// confirm that ended without a definite answer (the server may have sold, and told of it).
fn acknowledged(plan: &Plan, outcome: Outcome, order: Option<&str>) {
    let Some(sinks) = &plan.sinks else { return };
    match (outcome, order) {
        (Outcome::Success, Some(order)) => sinks.acknowledged(order),
        (Outcome::Timeout | Outcome::ConnectionError | Outcome::BadReply, _) => sinks.in_doubt(),
        _ => {}
    }
}

fn pick_section(order: &OrderPlan, salt: u64, arrival: u64) -> &str {
    let count = order.sections.len() as u64;
    let index = match order.section_pick {
        SectionPick::RoundRobin => arrival % count,
        // A hash of the arrival index: random yet stateless section picks.
        SectionPick::Random => mix64(arrival ^ salt) % count,
    };
    &order.sections[index as usize]
}

fn idempotency_key(plan: &Plan, arrival: Arrival, step: &str) -> HeaderValue {
    HeaderValue::try_from(format!("{}-{}-{step}", plan.run_id, arrival.index)).expect("run ids are header-safe")
}

/// Sends one request of `step`, bounded by the request timeout; a missing reply comes
/// back as its outcome.
async fn exchange(
    plan: &Plan,
    arrival: Arrival,
    step: Step,
    request: hyper::Request<http_body_util::Full<Bytes>>,
) -> Result<Reply, Outcome> {
    Live::count(&plan.live.requests_sent);
    if arrival.measured {
        plan.recorder.sent(arrival.index, step);
    }
    let result = match plan.pool.send_within(request, plan.request_timeout).await {
        Ok(Ok(reply)) => Ok(reply),
        Ok(Err(_)) => Err(Outcome::ConnectionError),
        Err(_) => Err(Outcome::Timeout),
    };
    // Time has passed: arrivals may be due.
    plan.nudge.notify_one();
    result
}

/// Records how `step` of `arrival` ended; the last step of an arrival also counts in
/// the progress line.
fn finish(plan: &Plan, arrival: Arrival, step: Step, outcome: Outcome, latency: Duration, error_code: Option<&str>) {
    if arrival.measured {
        plan.recorder.finished(arrival.index, step, outcome, latency, error_code);
    }
    if matches!(step, Step::Order | Step::Get | Step::Scan) {
        if outcome == Outcome::Success {
            Live::count(&plan.live.completed);
        }
        plan.live.outcome(outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirm_uri_comes_from_the_hold_id() {
        let check = |body: &str, expected: Option<&str>| {
            assert_eq!(confirm_uri(body.as_bytes()).map(|uri| uri.to_string()).as_deref(), expected, "{body}");
        };
        check(
            r#"{"hold": {"id": "h3-1f", "event": "demo-2027", "seats": ["S101-A-1"], "quantity": 1}}"#,
            Some("/v1/holds/h3-1f/confirm"),
        );
        check(r#"{"hold": {"id": "h\u0033-1"}}"#, Some("/v1/holds/h3-1/confirm"));
        check(r#"{}"#, None);
        check(r#"{"hold": {"id": "a b"}}"#, None);
        check("not json", None);
    }

    #[test]
    fn refusals_carry_the_api_error_code() {
        let check = |status: u16, body: &str, expected: (Outcome, Option<&str>)| {
            let reply = Reply {
                status: hyper::StatusCode::from_u16(status).expect("a status"),
                sent_at: tokio::time::Instant::now(),
                retry_after_seconds: None,
                location: None,
                body: Bytes::copy_from_slice(body.as_bytes()),
            };
            let (outcome, code) = refusal(&reply);
            assert_eq!((outcome, code.as_deref()), expected, "{status} {body}");
        };
        check(
            409,
            r#"{"error": {"code": "sold_out", "message": "no seats"}}"#,
            (Outcome::Conflict, Some("409 sold_out")),
        );
        check(503, r#"{"error": {"code": "overloaded", "message": "later"}}"#, (Outcome::Busy, Some("503 overloaded")));
        check(502, "<html>bad gateway</html>", (Outcome::OtherStatus(502), None));
        check(201, r#"{"hold": {}}"#, (Outcome::Success, None));
    }

    #[test]
    fn sections_are_picked_round_robin_or_spread() {
        let mut order = OrderPlan {
            event: "e".into(),
            holds_uri: Uri::from_static("/"),
            sections: vec!["S1".into(), "S2".into(), "S3".into()],
            section_pick: SectionPick::RoundRobin,
            quantity: 2,
            customers: None,
            idempotency: false,
            pay: None,
            sales_authorization: None,
        };
        let picks: Vec<&str> = (0..4).map(|arrival| pick_section(&order, 7, arrival)).collect();
        assert_eq!(picks, ["S1", "S2", "S3", "S1"]);
        order.section_pick = SectionPick::Random;
        let mut seen = [0u32; 3];
        for arrival in 0..3000 {
            let section = pick_section(&order, 7, arrival);
            seen[order.sections.iter().position(|s| s == section).expect("a listed section")] += 1;
        }
        assert!(seen.iter().all(|count| (800..1200).contains(count)), "{seen:?}");
    }
}
