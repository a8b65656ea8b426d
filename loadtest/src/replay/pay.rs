//! Buyers who pay like a browser does, when hakken takes payments at a PSP.
//!
//! A buyer who means to buy, after thinking, checks out (`POST /v1/holds/{hold}/checkout`:
//! hakken creates a PaymentIntent at the PSP and extends the hold once), then pays *at
//! the PSP* as Stripe.js would, with the publishable key and the intent's client secret
//! ([`crate::psp`]), then polls `GET /v1/holds/{hold}/payment` (bounded, with backoff)
//! until hakken, told by the PSP's webhook, shows an order (or a void). Card data never
//! passes through hakken, and neither does the tool's confirm: the order can only come
//! from the webhook, which is what this measures.
//!
//! Per buyer (a stateless hash of its index, so a replay is repeatable):
//! `--decline-share` pay with `pm_card_chargeDeclined`; of those, `--decline-retry-share`
//! try again with `pm_card_visa`, the rest walk away and let the hold expire.
//! `--late-share` pay after the hold's expiry (at most `--late-wait-max` later), to
//! exercise hakken's late-payment policy: the order is either re-acquired or the
//! authorization voided.
//!
//! A payment whose outcome the buyer did not see (no reply, a poll that ran out, a task
//! stopped by the drain) is *in doubt*, like a trusted confirm without a reply:
//! [`resolve_payments`] reads each again after the run, so the ledger holds every order
//! a payment made.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use hyper::header::HeaderValue;
use hyper::{Method, Uri};
use serde::Serialize;
use tokio::time::Instant;

use super::buyer::{ledger_order, request, Held};
use super::storm::{StormReport, StormSettings};
use super::tally::{micros, small_histogram};
use super::{lock, Run};
use crate::client::{query_escape, send_retrying, Pool, Reply};
use crate::prng::mix64;
use crate::psp::{self, ConfirmOutcome, CARD_DECLINED, CARD_VISA};
use crate::queue::Buyer;
use crate::stats::{Latency, Live, Outcome, Step};
use crate::verdict::LedgerPayment;
use crate::wire::{self, json, BuyerDetails, CheckoutRequest, OrderInfo, PaymentView};

/// Salts of the per-buyer choices, so that "declines" and "pays late" are independent.
const DECLINE_SALT: u64 = 0x6465_636c_696e_6531;
const RETRY_SALT: u64 = 0x7265_7472_7976_6973;
const LATE_SALT: u64 = 0x6c61_7465_7061_7931;
/// A late payer pays this long after the hold's expiry.
const LATE_MARGIN: Duration = Duration::from_secs(1);
/// The first wait between polls of the payment; each next one is half as long again.
const POLL_FIRST_WAIT: Duration = Duration::from_millis(10);
const POLL_WAIT_MAX: Duration = Duration::from_millis(500);
/// A declined buyer who tries another card does so after this long.
const RETRY_CARD_AFTER: Duration = Duration::from_millis(50);
/// PSP confirms sent at most per buyer and card (a 5xx or no reply is retried).
const PSP_ATTEMPTS_MAX: u32 = 4;
/// How long the settle phase waits between reads of payments still in doubt.
const SETTLE_POLL: Duration = Duration::from_millis(250);

/// How buyers who buy complete their purchase.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum PaymentMode {
    /// Ask the server (`GET /v1/payments/config`): `external` (or no such endpoint) →
    /// `trusted`, otherwise `browser`.
    #[default]
    Auto,
    /// Check out, pay at the PSP, wait for the order.
    Browser,
    /// `POST /v1/holds/{hold}/confirm` with a payment reference, on trust (with
    /// `--sales-token` if the server needs one).
    Trusted,
}

/// The payment flags of `replay`.
#[derive(Clone, Debug)]
pub struct PaymentSettings {
    pub mode: PaymentMode,
    /// `Authorization: Bearer` of trusted confirms (hakken's `sales_token`).
    pub sales_token: Option<String>,
    /// Share of paying buyers whose card is declined.
    pub decline_share: f64,
    /// Share of the declined who try again with a card that works.
    pub decline_retry_share: f64,
    /// Share of paying buyers who pay after their hold expired.
    pub late_share: f64,
    /// A late payer waits at most this long for the hold's expiry (beyond it, they pay
    /// on time and are counted as such).
    pub late_wait_max: Duration,
    /// How long a buyer polls their payment for an order after paying at the PSP.
    pub poll_timeout: Duration,
    /// Connections to the PSP.
    pub psp_connections: usize,
    /// The PSP's secret key: the verdict lists the PSP's PaymentIntents with it.
    pub psp_secret_key: Option<String>,
    /// hakken's admin token: the verdict reads the reconcile report with it.
    pub admin_token: Option<String>,
    /// After the run, how long payments in doubt (and hakken's pending captures and
    /// voids) may take to settle before the verdict judges them.
    pub settle_timeout: Duration,
    /// Make the fake PSP misbehave while buyers pay (the webhook storm).
    pub storm: Option<StormSettings>,
}

impl Default for PaymentSettings {
    fn default() -> PaymentSettings {
        PaymentSettings {
            mode: PaymentMode::Auto,
            sales_token: None,
            decline_share: 0.0,
            decline_retry_share: 0.5,
            late_share: 0.0,
            late_wait_max: Duration::from_secs(60),
            poll_timeout: Duration::from_secs(30),
            psp_connections: 256,
            psp_secret_key: None,
            admin_token: None,
            settle_timeout: Duration::from_secs(30),
            storm: None,
        }
    }
}

impl PaymentSettings {
    pub(super) fn check(&self) -> anyhow::Result<()> {
        for (name, share) in [
            ("--decline-share", self.decline_share),
            ("--decline-retry-share", self.decline_retry_share),
            ("--late-share", self.late_share),
        ] {
            anyhow::ensure!((0.0..=1.0).contains(&share), "{name} must be between 0 and 1");
        }
        anyhow::ensure!(self.psp_connections > 0, "--psp-connections must be at least 1");
        if let Some(storm) = &self.storm {
            anyhow::ensure!(self.mode != PaymentMode::Trusted, "--storm needs buyers who pay at the PSP");
            anyhow::ensure!(!storm.every.is_zero(), "--storm-every must be more than 0");
            storm.chosen()?;
        }
        Ok(())
    }
}

/// Paying at the PSP, set up before the first buyer.
pub(super) struct Pay {
    pub(super) psp: Pool,
    pub(super) publishable_key: HeaderValue,
    pub(super) config: psp::PaymentsConfig,
    pub(super) settings: PaymentSettings,
}

/// Whether buyer `index` is among the `share` chosen with `salt`.
fn chosen(index: u64, salt: u64, share: f64) -> bool {
    share > 0.0 && (mix64(index ^ salt) as f64 / u64::MAX as f64) < share
}

impl Pay {
    fn declines(&self, index: u64) -> bool {
        chosen(index, DECLINE_SALT, self.settings.decline_share)
    }

    fn retries_after_decline(&self, index: u64) -> bool {
        chosen(index, RETRY_SALT, self.settings.decline_retry_share)
    }

    fn pays_late(&self, index: u64) -> bool {
        chosen(index, LATE_SALT, self.settings.late_share)
    }
}

/// A payment whose outcome the buyer has not seen (yet).
#[derive(Clone, Debug)]
pub(super) struct PaymentInDoubt {
    pub(super) hold: String,
    pub(super) customer: String,
    /// Whether the PSP authorized it (then hakken will make an order or a void of it).
    pub(super) paid: bool,
}

/// What paying buyers add up to.
pub(super) struct PaymentTally {
    pub(super) checkouts: u64,
    pub(super) checkouts_failed: u64,
    pub(super) psp_confirms: u64,
    pub(super) authorized: u64,
    pub(super) declined: u64,
    pub(super) declines_retried: u64,
    pub(super) declined_left_to_expire: u64,
    pub(super) psp_errors: u64,
    pub(super) paid_orders: u64,
    pub(super) voided: u64,
    pub(super) unsettled: u64,
    pub(super) late_payers: u64,
    pub(super) late_reacquired: u64,
    pub(super) late_voided: u64,
    pub(super) late_too_far: u64,
    pub(super) late_declined: u64,
    pub(super) confirm_to_order: Histogram<u32>,
    /// Every checkout of the run, by buyer (the ledger's `payments`).
    pub(super) ledger: BTreeMap<u64, LedgerPayment>,
    pub(super) in_doubt: BTreeMap<u64, PaymentInDoubt>,
}

impl Default for PaymentTally {
    fn default() -> PaymentTally {
        PaymentTally {
            checkouts: 0,
            checkouts_failed: 0,
            psp_confirms: 0,
            authorized: 0,
            declined: 0,
            declines_retried: 0,
            declined_left_to_expire: 0,
            psp_errors: 0,
            paid_orders: 0,
            voided: 0,
            unsettled: 0,
            late_payers: 0,
            late_reacquired: 0,
            late_voided: 0,
            late_too_far: 0,
            late_declined: 0,
            confirm_to_order: small_histogram(),
            ledger: BTreeMap::new(),
            in_doubt: BTreeMap::new(),
        }
    }
}

/// How the run paid, in the report.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PaymentReport {
    /// `browser` or `trusted`.
    pub mode: String,
    /// hakken's provider (`test`, `stripe`, `external`), when it said.
    pub provider: Option<String>,
    pub psp: Option<String>,
    pub checkouts: u64,
    /// Checkouts refused or failed (409 hold expired, 502/503 PSP unavailable, ...).
    pub checkouts_failed: u64,
    /// Confirms sent to the PSP (retries with another card included).
    pub psp_confirms: u64,
    pub authorized: u64,
    pub declined: u64,
    pub declines_retried: u64,
    pub declined_left_to_expire: u64,
    pub psp_errors: u64,
    /// Orders the buyers learned of by polling their payment.
    pub paid_orders: u64,
    /// Payments hakken voided (a late payment whose seats were gone, or the policy).
    pub voided: u64,
    /// Payments whose outcome a buyer's polls did not see within `--payment-poll-timeout`.
    pub unsettled: u64,
    pub late: LateReport,
    /// From the PSP's authorization reply to hakken showing the order: the webhook,
    /// hakken's confirm, and the polling.
    pub confirm_to_order_us: Latency,
    /// Payments in doubt after the run, read again: orders found, still unknown.
    pub resolved_orders: u64,
    pub unresolved: u64,
    /// The webhook storm, if one blew.
    pub storm: Option<StormReport>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct LateReport {
    pub payers: u64,
    /// Paid after the expiry and got their seats back (`late_payment = "reacquire_same"`).
    pub reacquired: u64,
    pub voided: u64,
    /// Paid late with a declined card, and walked away.
    pub declined: u64,
    /// The hold expired further away than `--late-wait-max`: they paid on time.
    pub expiry_too_far: u64,
}

impl PaymentTally {
    pub(super) fn report(&self, mode: &str, pay: Option<&Pay>) -> PaymentReport {
        PaymentReport {
            mode: mode.to_string(),
            provider: pay.map(|pay| pay.config.provider.clone()),
            psp: pay.map(|pay| pay.psp.target().url.clone()),
            checkouts: self.checkouts,
            checkouts_failed: self.checkouts_failed,
            psp_confirms: self.psp_confirms,
            authorized: self.authorized,
            declined: self.declined,
            declines_retried: self.declines_retried,
            declined_left_to_expire: self.declined_left_to_expire,
            psp_errors: self.psp_errors,
            paid_orders: self.paid_orders,
            voided: self.voided,
            unsettled: self.unsettled,
            late: LateReport {
                payers: self.late_payers,
                reacquired: self.late_reacquired,
                voided: self.late_voided,
                declined: self.late_declined,
                expiry_too_far: self.late_too_far,
            },
            confirm_to_order_us: Latency::of(&self.confirm_to_order),
            resolved_orders: 0,
            unresolved: 0,
            storm: None,
        }
    }
}

/// How a buyer's payment ended, for the order step and the buyer counts.
enum Paid {
    Ordered(OrderInfo, String),
    /// A definite "no": declined and walked away, voided, checkout refused.
    Refused(Outcome, Option<String>),
    Failed(Outcome, Option<String>),
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_millis() as u64)
}

fn hold_uri(hold: &str, suffix: &str) -> Uri {
    format!("/v1/holds/{hold}/{suffix}").parse().expect("hold ids make valid paths")
}

fn payment_uri(hold: &str, customer: &str) -> Uri {
    format!("/v1/holds/{hold}/payment?customer={}", query_escape(customer))
        .parse()
        .expect("hold ids and escaped customers make valid paths")
}

impl Run {
    fn pay_state(&self) -> &Pay {
        self.pay.as_ref().expect("paying buyers only run with a PSP")
    }

    /// Buyer `index` checks out hold `held`, pays at the PSP, and waits for the order;
    /// due at `due` (the end of the think time).
    pub(super) async fn pay(&self, index: u64, buyer: &Buyer, customer: &str, held: &Held, due: Instant) {
        let paid = self.checkout_and_pay(index, customer, held, due).await;
        let at = Instant::now();
        let latency = held.latency + at.saturating_duration_since(due);
        let elapsed = at.saturating_duration_since(self.start);
        let (outcome, code) = match &paid {
            Paid::Ordered(..) => (Outcome::Success, None),
            Paid::Refused(outcome, code) | Paid::Failed(outcome, code) => (*outcome, code.clone()),
        };
        self.finish(index, Step::Order, outcome, latency, code.as_deref());
        let mut state = lock(&self.state);
        match &paid {
            Paid::Refused(..) => state.payment_refused(elapsed, outcome),
            _ => state.confirm_ended(buyer.phase as usize, elapsed, outcome, latency),
        }
        if let Paid::Ordered(order, payment) = paid {
            let seats = order.tickets.len() as u64;
            let sold = self.seats_sold.fetch_add(seats, Ordering::Relaxed) + seats;
            let sold_out = self.capacity > 0 && self.sold_before + sold >= self.capacity;
            let ledger = state.payments.ledger.get_mut(&index);
            if let Some(entry) = ledger {
                entry.order = Some(order.id.clone());
            }
            state.sold(
                ledger_order(order, customer, Some(payment)),
                elapsed,
                at.saturating_duration_since(due),
                sold_out,
            );
            self.recorder.sold(index, seats);
        }
    }

    async fn checkout_and_pay(&self, index: u64, customer: &str, held: &Held, due: Instant) -> Paid {
        let pay = self.pay_state();
        let name = format!("Buyer {index}");
        let email = format!("buyer-{}-{index}@example.com", self.run_id);
        let body = json(&CheckoutRequest { customer, buyer: BuyerDetails { name: &name, email: &email } });
        let uri = hold_uri(&held.id, "checkout");
        let key = self.key(index, "checkout");
        {
            let mut state = lock(&self.state);
            let payments = &mut state.payments;
            payments.checkouts += 1;
            payments.ledger.insert(
                index,
                LedgerPayment { hold: held.id.clone(), customer: customer.to_string(), ..LedgerPayment::default() },
            );
            payments
                .in_doubt
                .insert(index, PaymentInDoubt { hold: held.id.clone(), customer: customer.to_string(), paid: false });
        }
        let ended =
            self.step(index, Step::Checkout, None, || request(self, Method::POST, &uri, Some(&body), Some(&key))).await;
        let (outcome, started) = ended.parsed(wire::checkout);
        let code = ended.error_code(outcome);
        self.finish(index, Step::Checkout, outcome, ended.at.saturating_duration_since(due), code.as_deref());
        let Some((payment, expires_at_ms)) = started else {
            let mut state = lock(&self.state);
            state.payments.checkouts_failed += 1;
            // A definite refusal (409: the hold ended) made no payment; anything else may have.
            if ended.reply.as_ref().is_some_and(|reply| reply.status.is_client_error()) {
                state.payments.in_doubt.remove(&index);
                return Paid::Refused(outcome, code);
            }
            return Paid::Failed(outcome, code);
        };
        if let Some(entry) = lock(&self.state).payments.ledger.get_mut(&index) {
            entry.payment = Some(payment.id.clone());
        }

        let late = pay.pays_late(index) && self.wait_for_expiry(expires_at_ms).await;
        let mut card = if pay.declines(index) { CARD_DECLINED } else { CARD_VISA };
        loop {
            match self.psp_confirm(index, &payment, card).await {
                ConfirmOutcome::Authorized { .. } => break,
                ConfirmOutcome::Declined { code } => {
                    let retry = card == CARD_DECLINED && pay.retries_after_decline(index);
                    {
                        let mut state = lock(&self.state);
                        let payments = &mut state.payments;
                        payments.declined += 1;
                        if !retry {
                            // The buyer walks away; the hold expires on the server.
                            payments.declined_left_to_expire += 1;
                            payments.late_declined += u64::from(late);
                            payments.in_doubt.remove(&index);
                            return Paid::Refused(Outcome::Conflict, Some(format!("402 {code}")));
                        }
                        payments.declines_retried += 1;
                    }
                    card = CARD_VISA;
                    tokio::time::sleep(RETRY_CARD_AFTER).await;
                }
                ConfirmOutcome::RequiresAction => {
                    lock(&self.state).payments.psp_errors += 1;
                    return Paid::Failed(Outcome::BadReply, Some("psp requires_action".into()));
                }
                ConfirmOutcome::Failed { status, code } => {
                    lock(&self.state).payments.psp_errors += 1;
                    let code = format!("psp {status} {}", code.as_deref().unwrap_or("-"));
                    return Paid::Failed(Outcome::OtherStatus(status), Some(code));
                }
            }
        }
        let paid_at = Instant::now();
        {
            let mut state = lock(&self.state);
            state.payments.authorized += 1;
            if let Some(doubt) = state.payments.in_doubt.get_mut(&index) {
                doubt.paid = true;
            }
            if let Some(entry) = state.payments.ledger.get_mut(&index) {
                entry.paid = true;
                entry.late = late;
            }
        }
        self.wait_for_order(index, customer, &held.id, paid_at, late).await
    }

    /// A late payer waits until a moment past the hold's expiry (at most `--late-wait-max`);
    /// false if the expiry is further away than that (they pay on time).
    async fn wait_for_expiry(&self, expires_at_ms: Option<u64>) -> bool {
        let pay = self.pay_state();
        let wait = expires_at_ms.map(|at| Duration::from_millis(at.saturating_sub(now_ms())) + LATE_MARGIN);
        let wait = wait.filter(|wait| *wait <= pay.settings.late_wait_max);
        {
            let payments = &mut lock(&self.state).payments;
            match wait {
                Some(_) => payments.late_payers += 1,
                None => payments.late_too_far += 1,
            }
        }
        if let Some(wait) = wait {
            tokio::time::sleep(wait).await;
        }
        wait.is_some()
    }

    /// Confirms `payment` at the PSP with `card`, as the browser would; a 5xx or no
    /// reply is tried again (with a new idempotency key: the PSP replays a stored
    /// 5xx for the same key), at most [`PSP_ATTEMPTS_MAX`] times.
    async fn psp_confirm(&self, index: u64, payment: &PaymentView, card: &str) -> ConfirmOutcome {
        let pay = self.pay_state();
        let mut attempt = 0;
        loop {
            attempt += 1;
            lock(&self.state).payments.psp_confirms += 1;
            let key = self.key(index, &format!("psp-{card}-{attempt}"));
            let sent = Instant::now();
            let make = || {
                psp::confirm_request(
                    &pay.psp,
                    &payment.id,
                    &payment.client_secret,
                    card,
                    &pay.publishable_key,
                    Some(&key),
                )
                .expect("escaped payment ids make valid paths")
            };
            let ended = self.step_on(&pay.psp, index, Step::PspConfirm, None, make).await;
            let latency = ended.at.saturating_duration_since(sent);
            let confirmed = ended.reply.as_ref().map(ConfirmOutcome::of);
            let (outcome, code) = match &confirmed {
                Some(ConfirmOutcome::Authorized { .. }) => (Outcome::Success, None),
                Some(ConfirmOutcome::Declined { code }) => (Outcome::Conflict, Some(format!("402 {code}"))),
                Some(ConfirmOutcome::RequiresAction) => (Outcome::BadReply, None),
                Some(ConfirmOutcome::Failed { status, code }) => {
                    (Outcome::of_status(*status), Some(format!("{status} {}", code.as_deref().unwrap_or("-"))))
                }
                None => (ended.outcome, None),
            };
            let retry = attempt < PSP_ATTEMPTS_MAX
                && match &confirmed {
                    None => true,
                    Some(ConfirmOutcome::Failed { status, .. }) => *status >= 500 || *status == 429,
                    Some(_) => false,
                };
            if retry {
                self.recorder.retried(index, Step::PspConfirm, outcome);
                tokio::time::sleep(POLL_FIRST_WAIT * attempt).await;
                continue;
            }
            self.finish(index, Step::PspConfirm, outcome, latency, code.as_deref());
            return confirmed.unwrap_or(ConfirmOutcome::Failed { status: 0, code: Some(format!("{outcome:?}")) });
        }
    }

    /// Polls the payment of hold `hold` until hakken shows its order (or a void), at most
    /// `--payment-poll-timeout` after `paid_at`, then reads the order.
    async fn wait_for_order(&self, index: u64, customer: &str, hold: &str, paid_at: Instant, late: bool) -> Paid {
        let pay = self.pay_state();
        let deadline = paid_at + pay.settings.poll_timeout;
        let mut wait = POLL_FIRST_WAIT;
        self.recorder.sent(index, Step::Payment);
        let settled = loop {
            Live::count(&self.live.requests_sent);
            let left = deadline.saturating_duration_since(Instant::now());
            let uri = psp::payment_poll_uri(hold, customer, left, self.request_timeout);
            let sent = self.pool.send_within(request(self, Method::GET, &uri, None, None), self.request_timeout).await;
            self.nudge.notify_one();
            if let Ok(Ok(reply)) = &sent {
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
        let waited = Instant::now().saturating_duration_since(paid_at);
        let Some(view) = settled else {
            self.finish(index, Step::Payment, Outcome::Timeout, waited, None);
            lock(&self.state).payments.unsettled += 1;
            return Paid::Failed(Outcome::Timeout, Some("payment not settled".into()));
        };
        let order = match view.order.as_deref().filter(|_| matches!(view.status.as_str(), "ordered" | "captured")) {
            Some(order) => order.to_string(),
            None => {
                self.finish(index, Step::Payment, Outcome::Conflict, waited, Some("voided"));
                let mut state = lock(&self.state);
                state.payments.voided += 1;
                state.payments.late_voided += u64::from(late);
                state.payments.in_doubt.remove(&index);
                return Paid::Refused(Outcome::Conflict, Some(format!("payment {}", view.status)));
            }
        };
        self.finish(index, Step::Payment, Outcome::Success, waited, None);
        match read_order(&self.pool, &order, customer, self.request_timeout).await {
            Some(info) => {
                let mut state = lock(&self.state);
                state.payments.paid_orders += 1;
                state.payments.late_reacquired += u64::from(late);
                state.payments.confirm_to_order.saturating_record(micros(waited));
                state.payments.in_doubt.remove(&index);
                Paid::Ordered(info, view.id)
            }
            None => Paid::Failed(Outcome::BadReply, Some("order not readable".into())),
        }
    }
}

/// `GET /v1/orders/{order}?customer=...`, patiently; `None` if it cannot be read.
async fn read_order(pool: &Pool, order: &str, customer: &str, timeout: Duration) -> Option<OrderInfo> {
    let uri: Uri = format!("/v1/orders/{order}?customer={}", query_escape(customer)).parse().ok()?;
    let reply: Reply = send_retrying(pool, || pool.request(Method::GET, uri.clone(), None), timeout).await.ok()?;
    reply.status.is_success().then(|| wire::order(&reply.body)).flatten()
}

/// Reads every payment still in doubt again, waiting (up to `--payment-settle`) for
/// those the PSP authorized to become an order or a void; orders found go into the
/// ledger. Returns how many orders were found and how many stayed unknown.
pub(super) async fn resolve_payments(run: &Run) -> (u64, u64) {
    let Some(pay) = run.pay.as_ref() else { return (0, 0) };
    let mut in_doubt: Vec<(u64, PaymentInDoubt)> =
        std::mem::take(&mut lock(&run.state).payments.in_doubt).into_iter().collect();
    let deadline = Instant::now() + pay.settings.settle_timeout;
    let mut found = 0;
    loop {
        let mut still = Vec::new();
        for (index, doubt) in in_doubt {
            let uri = payment_uri(&doubt.hold, &doubt.customer);
            let reply =
                send_retrying(&run.pool, || request(run, Method::GET, &uri, None, None), run.request_timeout).await;
            let view = match &reply {
                Ok(reply) if reply.status.as_u16() == 404 => continue,
                Ok(reply) if reply.status.is_success() => wire::payment(&reply.body),
                _ => None,
            };
            let Some(view) = view else {
                still.push((index, doubt));
                continue;
            };
            if !view.settled() {
                // Unpaid and not settled: nothing will come of it (the hold expires).
                if !doubt.paid && view.status == "awaiting_payment" {
                    continue;
                }
                still.push((index, doubt));
                continue;
            }
            let Some(order) = view.order.clone().filter(|_| matches!(view.status.as_str(), "ordered" | "captured"))
            else {
                continue;
            };
            let Some(info) = read_order(&run.pool, &order, &doubt.customer, run.request_timeout).await else {
                still.push((index, doubt));
                continue;
            };
            found += 1;
            run.seats_sold.fetch_add(info.tickets.len() as u64, Ordering::Relaxed);
            let mut state = lock(&run.state);
            if let Some(entry) = state.payments.ledger.get_mut(&index) {
                entry.order = Some(order);
                entry.payment = Some(view.id.clone());
                entry.paid = true;
            }
            state.orders.push(ledger_order(info, &doubt.customer, Some(view.id)));
        }
        in_doubt = still;
        if in_doubt.is_empty() || Instant::now() >= deadline {
            return (found, in_doubt.len() as u64);
        }
        tokio::time::sleep(SETTLE_POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_choose_about_that_many_buyers_independently() {
        let count = |salt, share| (0..10_000u64).filter(|index| chosen(*index, salt, share)).count();
        assert_eq!(count(DECLINE_SALT, 0.0), 0);
        assert_eq!(count(DECLINE_SALT, 1.0), 10_000);
        let declines = count(DECLINE_SALT, 0.2);
        assert!((1800..2200).contains(&declines), "{declines}");
        let both = (0..10_000u64).filter(|i| chosen(*i, DECLINE_SALT, 0.2) && chosen(*i, LATE_SALT, 0.5)).count();
        assert!((800..1200).contains(&both), "independent choices: {both}");
    }

    #[test]
    fn settings_are_checked() {
        assert!(PaymentSettings::default().check().is_ok());
        let bad = PaymentSettings { late_share: 1.5, ..PaymentSettings::default() };
        assert!(bad.check().unwrap_err().to_string().contains("--late-share"));
        let bad = PaymentSettings { psp_connections: 0, ..PaymentSettings::default() };
        assert!(bad.check().is_err());
    }
}
