//! One buyer of the queue file, as a state machine run in a task of its own: poll
//! availability (if the file says so) and give up when what they want is gone, ask for
//! a hold, think, then confirm, release, or walk away and let the hold expire.
//!
//! Each request is a step ([`Run::step`]): a 503 or 429 is retried after its
//! `Retry-After` with jitter ([`retry_wait`]), at most `--retries` times. A confirm
//! without a definite reply stays in doubt; [`resolve_in_doubt`] sends each again with
//! its `Idempotency-Key` once the buyers are done, so the ledger of sold seats is exact.
//! Latencies run from when each step was due (see [`super`]).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::HeaderValue;
use hyper::{Method, Request, Uri};
use serde::Serialize;
use tokio::time::Instant;

use super::tally::InDoubt;
use super::{lock, Run};
use crate::client::{query_escape, send_retrying, Pool, Reply, IDEMPOTENCY_KEY};
use crate::prng::mix64;
use crate::queue::{Buyer, Intent, Then};
use crate::schedule::Arrival;
use crate::stats::{Live, Outcome, Step};
use crate::verdict::{Availability, LedgerOrder};
use crate::wire::{self, json, BuyerDetails, ConfirmRequest, OrderInfo};

/// Without `Retry-After`, a 503/429 is retried after this long.
const RETRY_AFTER_DEFAULT: Duration = Duration::from_secs(1);

/// Counts a buyer out of `in_flight` however its task ends (aborts included).
pub(super) struct InFlight(Arc<Run>);

impl InFlight {
    /// Counts the buyer `launch` counted in flight out when dropped.
    pub(super) fn new(run: Arc<Run>) -> InFlight {
        InFlight(run)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.live.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Serialize)]
struct HoldRequest<'a> {
    customer: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    seats: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    section: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    quantity: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    adjacent: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    category: Option<&'a str>,
}

impl<'a> HoldRequest<'a> {
    fn of(customer: &'a str, intent: &'a Intent) -> HoldRequest<'a> {
        let mut request =
            HoldRequest { customer, seats: None, section: None, quantity: None, adjacent: None, category: None };
        match intent {
            Intent::Best { section, quantity, category } => {
                request.section = Some(section);
                request.quantity = Some(*quantity);
                // Buyers of a party want to sit together.
                request.adjacent = Some(true);
                request.category = category.as_deref();
            }
            Intent::Seats { seats } => request.seats = Some(seats),
            Intent::Ga { section, quantity } => {
                request.section = Some(section);
                request.quantity = Some(*quantity);
            }
        }
        request
    }
}

/// How a step ended: its outcome, its reply if it had a definite one, and when.
pub(super) struct Ended {
    pub(super) outcome: Outcome,
    pub(super) reply: Option<Reply>,
    pub(super) at: Instant,
}

impl Ended {
    /// What a 2xx reply's body says, read by `parse`, and the step's outcome: a 2xx
    /// whose body does not parse is a malformed reply.
    pub(super) fn parsed<T>(&self, parse: impl FnOnce(&[u8]) -> Option<T>) -> (Outcome, Option<T>) {
        let value = match (&self.outcome, &self.reply) {
            (Outcome::Success, Some(reply)) => parse(&reply.body),
            _ => None,
        };
        let outcome = match (self.outcome, &value) {
            (Outcome::Success, None) => Outcome::BadReply,
            (outcome, _) => outcome,
        };
        (outcome, value)
    }

    /// The API's error code of a reply that was not a success.
    pub(super) fn error_code(&self, outcome: Outcome) -> Option<String> {
        self.reply.as_ref().filter(|_| outcome != Outcome::Success).and_then(wire::error_code)
    }
}

/// A hold the buyer was granted.
pub(super) struct Held {
    pub(super) id: String,
    /// When the reply came: the think time starts here.
    pub(super) at: Instant,
    /// From when the hold was due to its reply: the first part of the order's latency.
    pub(super) latency: Duration,
}

/// Plays buyer `arrival` to the end of their story (the task the pacer launched).
pub(super) async fn run_buyer(run: Arc<Run>, arrival: Arrival) {
    let run = InFlight(run);
    play(&run.0, arrival.index, arrival.scheduled, None).await;
}

/// Buyer `index`'s customer id.
pub(super) fn customer(run: &Run, index: u64) -> String {
    format!("{}-b{index}", run.run_id)
}

/// Buyer `index`'s story from `due` (their arrival, or their admission from the
/// waiting room, with its `access`): poll, hold, think, confirm or pay, release.
pub(super) async fn play(run: &Run, index: u64, due: Instant, access: Option<&HeaderValue>) {
    let buyer = &run.buyers[index as usize];
    let customer = customer(run, index);

    let mut hold_due = due;
    if buyer.poll {
        let Some(replied) = run.poll(index, buyer, due).await else { return };
        hold_due = replied;
    }
    let Some(held) = run.hold(index, buyer, &customer, hold_due, access).await else { return };

    let think = Duration::from_millis(buyer.think_ms).mul_f64(run.time_scale);
    let due = held.at + think;
    match buyer.then {
        Then::Expire => lock(&run.state).buyers.left_to_expire += 1,
        Then::Abandon => {
            tokio::time::sleep_until(due).await;
            run.release(index, &customer, &held.id, due).await;
        }
        Then::Confirm => {
            tokio::time::sleep_until(due).await;
            if run.pay.is_some() {
                run.pay(index, buyer, &customer, &held, due).await;
            } else {
                run.confirm(index, buyer, &customer, &held, due).await;
            }
        }
    }
}

/// How long to wait before retry `attempt` of buyer `index` after a `Retry-After` of
/// `wait`: at least `wait` (cut to `max`), plus up to half of it again, spread by a hash
/// of the buyer and attempt. Clients that all retry exactly on the second come back as
/// one wave and are refused together again; well-behaved clients add jitter.
fn retry_wait(wait: Duration, max: Duration, index: u64, attempt: u32) -> Duration {
    let wait = wait.min(max);
    let spread = mix64(index ^ (u64::from(attempt) << 40)) as f64 / u64::MAX as f64;
    wait + wait.mul_f64(spread / 2.0)
}

/// Whether the availability still shows what `intent` asks for.
fn enough_left(availability: &Availability, intent: &Intent) -> bool {
    let quantity = intent.quantity();
    let Some(section) = intent.section() else { return availability.total.available >= quantity };
    let Some(counts) = availability.sections.get(section) else {
        // Not in the reply: let the hold find out.
        return true;
    };
    match intent {
        Intent::Best { category: Some(category), .. } => {
            counts.categories.get(category).is_none_or(|category| category.available >= quantity)
        }
        _ => counts.counts.available >= quantity,
    }
}

/// A request of `method` to `uri` carrying `body` and, if given, an `Idempotency-Key`.
pub(super) fn request(
    run: &Run,
    method: Method,
    uri: &Uri,
    body: Option<&Bytes>,
    key: Option<&HeaderValue>,
) -> Request<Full<Bytes>> {
    let mut request = run.pool.request(method, uri.clone(), body.cloned());
    if let Some(key) = key {
        request.headers_mut().insert(IDEMPOTENCY_KEY, key.clone());
    }
    request
}

/// A confirm's `/v1/holds/{hold}/confirm`.
fn confirm_uri(hold: &str) -> Uri {
    format!("/v1/holds/{hold}/confirm").parse().expect("hold ids make valid paths")
}

impl Run {
    pub(super) fn key(&self, index: u64, step: &str) -> HeaderValue {
        HeaderValue::try_from(format!("{}-{index}-{step}", self.run_id)).expect("run ids are header-safe")
    }

    /// Polls availability for buyer `index`, due at `due`. Returns when the reply came,
    /// or `None` if the buyer saw too few seats left for them and gave up.
    async fn poll(&self, index: u64, buyer: &Buyer, due: Instant) -> Option<Instant> {
        let ended = self
            .step(index, Step::Availability, None, || request(self, Method::GET, &self.availability_uri, None, None))
            .await;
        let code = ended.error_code(ended.outcome);
        self.finish(index, Step::Availability, ended.outcome, ended.at.saturating_duration_since(due), code.as_deref());
        let available = ended
            .reply
            .filter(|_| ended.outcome == Outcome::Success)
            .and_then(|reply| Availability::parse(&reply.body).ok());
        if available.is_some_and(|available| !enough_left(&available, &buyer.intent)) {
            lock(&self.state).buyers.gave_up_after_poll += 1;
            return None;
        }
        Some(ended.at)
    }

    /// Asks for buyer `index`'s hold, due at `due`. `None` if none was granted (the
    /// order, for a buyer who meant to confirm, ends with the hold's outcome).
    async fn hold(
        &self,
        index: u64,
        buyer: &Buyer,
        customer: &str,
        due: Instant,
        access: Option<&HeaderValue>,
    ) -> Option<Held> {
        if buyer.then == Then::Confirm {
            self.recorder.sent(index, Step::Order);
        }
        let body = json(&HoldRequest::of(customer, &buyer.intent));
        let key = self.key(index, "hold");
        let ended = self
            .step(index, Step::Hold, None, || {
                let mut request = request(self, Method::POST, &self.holds_uri, Some(&body), Some(&key));
                if let Some(access) = access {
                    request.headers_mut().insert(super::room::ACCESS_HEADER, access.clone());
                }
                request
            })
            .await;
        let latency = ended.at.saturating_duration_since(due);
        let (outcome, hold_id) = ended.parsed(wire::hold_id);
        let code = ended.error_code(outcome);
        self.finish(index, Step::Hold, outcome, latency, code.as_deref());
        let elapsed = ended.at.saturating_duration_since(self.start);
        lock(&self.state).hold_ended(buyer.phase as usize, elapsed, outcome, latency, code.as_deref());
        let Some(id) = hold_id else {
            if buyer.then == Then::Confirm {
                self.finish(index, Step::Order, outcome, latency, code.as_deref());
            }
            return None;
        };
        Some(Held { id, at: ended.at, latency })
    }

    /// Releases buyer `index`'s hold `hold`, due at `due` (the end of the think time).
    async fn release(&self, index: u64, customer: &str, hold: &str, due: Instant) {
        let uri: Uri = format!("/v1/holds/{hold}?customer={}", query_escape(customer))
            .parse()
            .expect("hold ids and escaped customers make valid paths");
        let ended = self.step(index, Step::Release, None, || request(self, Method::DELETE, &uri, None, None)).await;
        let code = ended.error_code(ended.outcome);
        self.finish(index, Step::Release, ended.outcome, ended.at.saturating_duration_since(due), code.as_deref());
        lock(&self.state).release_ended(ended.at.saturating_duration_since(self.start), ended.outcome);
    }

    /// Runs one step of buyer `index`: sends the request `make` builds, retrying after a
    /// 503/429 as the server asks, at most `retries` times. `in_doubt` is registered
    /// before the first send and dropped once a definite reply came.
    pub(super) async fn step(
        &self,
        index: u64,
        step: Step,
        in_doubt: Option<InDoubt>,
        make: impl Fn() -> Request<Full<Bytes>>,
    ) -> Ended {
        self.step_on(&self.pool, index, step, in_doubt, make).await
    }

    /// [`Run::step`] over `pool` (hakken's, or the PSP's).
    pub(super) async fn step_on(
        &self,
        pool: &Pool,
        index: u64,
        step: Step,
        in_doubt: Option<InDoubt>,
        make: impl Fn() -> Request<Full<Bytes>>,
    ) -> Ended {
        self.recorder.sent(index, step);
        let tracked = in_doubt.is_some();
        if let Some(confirm) = in_doubt {
            lock(&self.state).in_doubt.insert(index, confirm);
        }
        let mut retries = 0;
        loop {
            Live::count(&self.live.requests_sent);
            let result = pool.send_within(make(), self.request_timeout).await;
            // Time has passed: arrivals may be due.
            self.nudge.notify_one();
            let at = Instant::now();
            let reply = match result {
                Ok(Ok(reply)) => reply,
                Ok(Err(_)) => return Ended { outcome: Outcome::ConnectionError, reply: None, at },
                Err(_) => return Ended { outcome: Outcome::Timeout, reply: None, at },
            };
            let outcome = Outcome::of_status(reply.status.as_u16());
            if outcome.is_rejection() {
                let retrying = retries < self.retries;
                self.refused(&reply, outcome, at, retrying);
                if retrying {
                    self.recorder.retried(index, step, outcome);
                    retries += 1;
                    let wait = reply.retry_after_seconds.map_or(RETRY_AFTER_DEFAULT, Duration::from_secs);
                    tokio::time::sleep(retry_wait(wait, self.retry_after_max, index, retries)).await;
                    continue;
                }
            }
            if tracked {
                lock(&self.state).in_doubt.remove(&index);
            }
            return Ended { outcome, reply: Some(reply), at };
        }
    }

    /// Records a 503/429 `reply` that came `at`, timed from when it was sent; the timeline
    /// counts it here if it will be `retrying` (the final outcome is counted by the step's
    /// caller).
    fn refused(&self, reply: &Reply, outcome: Outcome, at: Instant, retrying: bool) {
        let elapsed = at.saturating_duration_since(self.start);
        let mut state = lock(&self.state);
        state.refused(elapsed, at.saturating_duration_since(reply.sent_at));
        if retrying {
            state.timeline.outcome(elapsed, outcome);
        }
    }

    /// Records how `step` of buyer `index` ended; the progress bar counts each
    /// request's failure once (the order step repeats its hold's or confirm's).
    pub(super) fn finish(&self, index: u64, step: Step, outcome: Outcome, latency: Duration, code: Option<&str>) {
        self.recorder.finished(index, step, outcome, latency, code);
        if step != Step::Order {
            self.live.outcome(outcome);
        }
    }

    /// Confirms buyer `index`'s hold `held`, due at `due` (the end of the think time),
    /// registered as in doubt until a definite reply came.
    async fn confirm(&self, index: u64, buyer: &Buyer, customer: &str, held: &Held, due: Instant) {
        let payment_reference = format!("pay-{}-{index}", self.run_id);
        let name = format!("Buyer {index}");
        let email = format!("buyer-{}-{index}@example.com", self.run_id);
        let body = json(&ConfirmRequest {
            customer,
            payment_reference: &payment_reference,
            buyer: BuyerDetails { name: &name, email: &email },
        });
        let uri = confirm_uri(&held.id);
        let key = self.key(index, "confirm");
        let in_doubt =
            InDoubt { hold: held.id.clone(), customer: customer.to_string(), body: body.clone(), key: key.clone() };
        let ended = self.step(index, Step::Confirm, Some(in_doubt), || self.trusted_confirm(&uri, &body, &key)).await;
        let latency = ended.at.saturating_duration_since(due);
        let (outcome, order) = ended.parsed(wire::order);
        let code = ended.error_code(outcome);
        self.finish(index, Step::Confirm, outcome, latency, code.as_deref());
        self.finish(index, Step::Order, outcome, held.latency + latency, code.as_deref());
        let elapsed = ended.at.saturating_duration_since(self.start);
        let mut state = lock(&self.state);
        state.confirm_ended(buyer.phase as usize, elapsed, outcome, held.latency + latency);
        let Some(order) = order else { return };
        let seats = order.tickets.len() as u64;
        let sold = self.seats_sold.fetch_add(seats, Ordering::Relaxed) + seats;
        let sold_out = self.capacity > 0 && self.sold_before + sold >= self.capacity;
        state.sold(ledger_order(order, customer, None), elapsed, latency, sold_out);
        self.recorder.sold(index, seats);
    }
}

impl Run {
    /// A trusted confirm of the hold at `uri`, with the sales-channel token if given.
    fn trusted_confirm(&self, uri: &Uri, body: &Bytes, key: &HeaderValue) -> Request<Full<Bytes>> {
        let mut request = request(self, Method::POST, uri, Some(body), Some(key));
        if let Some(token) = &self.sales_authorization {
            request.headers_mut().insert(hyper::header::AUTHORIZATION, token.clone());
        }
        request
    }
}

pub(super) fn ledger_order(order: OrderInfo, customer: &str, payment: Option<String>) -> LedgerOrder {
    LedgerOrder {
        id: order.id,
        customer: customer.to_string(),
        section: order.section,
        tickets: order.tickets,
        payment,
    }
}

/// Sends every in-doubt confirm again with its `Idempotency-Key`: the server answers
/// with the first attempt's result (or runs it now, if it never arrived). Sold ones go
/// into the ledger; returns the holds whose outcome stayed unknown.
pub(super) async fn resolve_in_doubt(run: &Run, in_doubt: Vec<InDoubt>) -> Vec<String> {
    let mut unresolved = Vec::new();
    for confirm in in_doubt {
        let uri = confirm_uri(&confirm.hold);
        let reply =
            send_retrying(&run.pool, || run.trusted_confirm(&uri, &confirm.body, &confirm.key), run.request_timeout)
                .await;
        let order = match &reply {
            Ok(reply) if reply.status.is_success() => wire::order(&reply.body),
            Ok(reply) if reply.status.is_client_error() && reply.retry_after_seconds.is_none() => continue,
            _ => None,
        };
        let Some(order) = order else {
            unresolved.push(confirm.hold);
            continue;
        };
        run.seats_sold.fetch_add(order.tickets.len() as u64, Ordering::Relaxed);
        lock(&run.state).orders.push(ledger_order(order, &confirm.customer, None));
    }
    unresolved
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::verdict::{SeatCounts, SectionCounts};

    #[test]
    fn hold_requests_follow_the_intent() {
        let check = |intent: Intent, expected: &str| {
            let body = json(&HoldRequest::of("c1", &intent));
            assert_eq!(std::str::from_utf8(&body).expect("utf-8"), expected);
        };
        check(
            Intent::Best { section: "S1".into(), quantity: 2, category: Some("CAT1".into()) },
            r#"{"customer":"c1","section":"S1","quantity":2,"adjacent":true,"category":"CAT1"}"#,
        );
        check(Intent::Seats { seats: vec!["S1-A-1".into()] }, r#"{"customer":"c1","seats":["S1-A-1"]}"#);
        check(Intent::Ga { section: "GA".into(), quantity: 4 }, r#"{"customer":"c1","section":"GA","quantity":4}"#);
    }

    #[test]
    fn polling_buyers_give_up_when_too_few_are_left() {
        let counts = |available: u32| SeatCounts { capacity: 10, available, held: 0, sold: 10 - available };
        let availability = Availability {
            total: counts(3),
            sections: BTreeMap::from([(
                "S1".to_string(),
                SectionCounts {
                    kind: "reserved".into(),
                    counts: counts(3),
                    categories: BTreeMap::from([("CAT1".to_string(), counts(1))]),
                },
            )]),
        };
        let best = |quantity, category: Option<&str>| Intent::Best {
            section: "S1".into(),
            quantity,
            category: category.map(String::from),
        };
        assert!(enough_left(&availability, &best(3, None)));
        assert!(!enough_left(&availability, &best(4, None)));
        assert!(enough_left(&availability, &best(1, Some("CAT1"))));
        assert!(!enough_left(&availability, &best(2, Some("CAT1"))));
        assert!(enough_left(&availability, &best(2, Some("CAT9"))), "unknown categories are left to the hold");
        assert!(enough_left(&availability, &Intent::Ga { section: "S9".into(), quantity: 5 }));
        assert!(!enough_left(&availability, &Intent::Seats { seats: vec!["a".into(); 4] }));
    }

    #[test]
    fn retries_wait_at_least_retry_after_with_jitter() {
        let second = Duration::from_secs(1);
        let waits: Vec<Duration> =
            (0..1000).map(|index| retry_wait(second, Duration::from_secs(30), index, 1)).collect();
        assert!(waits.iter().all(|wait| (second..second.mul_f64(1.5)).contains(wait)), "{waits:?}");
        let spread = waits.iter().max().expect("waits").saturating_sub(*waits.iter().min().expect("waits"));
        assert!(spread > Duration::from_millis(400), "jitter spreads the retries: {spread:?}");
        assert_eq!(retry_wait(Duration::from_secs(60), second, 7, 1), retry_wait(second, second, 7, 1));
    }
}
