//! The gateway: hakken's side of each payment's life at the PSP.
//!
//! The engine decides (`hakken_engine::inventory::payments`); this module asks the PSP
//! and reports what it says. Every path goes the same way: read the PaymentIntent (or
//! act on it: capture, cancel, refund), turn its state into a [`PspReport`], report
//! it to the hold's section, and do the [`PaymentStep`] the section answers with, until
//! nothing is owed. Webhooks only say *which* payment to look at: its state is read
//! afresh from the PSP, so late, repeated or reordered webhooks all lead to the same
//! outcome. The sweep ([`Gateway::sweep_forever`]) does the same for payments whose
//! webhook never came, and retries captures, voids and refunds the PSP failed.
//!
//! Every PSP call carries an idempotency key made of hakken's ids (`hakken-<op>-…`),
//! so a retry after a crash or a timeout never makes a second payment, capture or refund.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use dashmap::DashMap;
use hakken_engine::actor::{AnswerSlot, PaymentsDue, ReportPayment, SectionHandle};
use hakken_engine::ids::HoldId;
use hakken_engine::inventory::{
    Hold, LatePayment, Payment, PaymentDue, PaymentError, PaymentState, PaymentStep, PspReport,
};

use crate::config::{LatePaymentPolicy, PaymentsConfig, Provider};
use crate::http::app::{call, unavailable, Shared};
use crate::http::error::ApiError;
use crate::payments::stripe::{
    CreatePaymentIntent, PaymentIntent, PaymentIntentStatus, PspError, RefundStatus, StripeClient, StripeConfig,
    UnavailableReason,
};
use crate::payments::webhook::KeyMode;

/// Steps one drive takes at most (capture → captured → refund owed → refunded is the longest).
const STEPS_MAX: usize = 4;

/// The event types a Stripe webhook endpoint for hakken subscribes to (`enabled_events`;
/// README, Payments): an authorization, a cancellation, a refund. Not
/// `payment_intent.succeeded`: a capture is hakken's own call, whose answer it reads (and
/// the sweep retries one whose answer was lost), so that webhook would be one more
/// request and one more stored event id per paid order telling hakken nothing new.
pub const WEBHOOK_EVENTS: [&str; 3] =
    ["payment_intent.amount_capturable_updated", "payment_intent.canceled", "charge.refunded"];

/// The event types hakken acts on when they come: the subscribed ones, and
/// `payment_intent.succeeded` from an endpoint subscribed to it too (a capture made
/// elsewhere, e.g. in the PSP's dashboard). Others are answered 200 and ignored.
pub const HANDLED_EVENTS: [&str; 4] = [
    "payment_intent.amount_capturable_updated",
    "payment_intent.succeeded",
    "payment_intent.canceled",
    "charge.refunded",
];

pub const PAYMENTS_DUE: &str = "hakken_payments_due";
pub const PAYMENTS_SWEEP_FAILURES_TOTAL: &str = "hakken_payments_sweep_failures_total";

pub struct Gateway {
    pub provider: Provider,
    client: StripeClient,
    pub late: LatePayment,
    pub window_ms: u64,
    grace_ms: u64,
    abandon_after_ms: u64,
    sweep_interval: Duration,
    webhook_secrets: Vec<String>,
    pub key_mode: KeyMode,
    pub publishable_key: String,
    pub api_base: String,
    /// The `test` provider's PSP, serving on loopback for as long as the gateway lives.
    _embedded: Option<hakken_fakepsp::RunningPsp>,
    /// Per idempotency key base: how many times the PSP answered it with a 5xx. Stripe
    /// stores even a 500 under its key, so a retry with that key gets the 500 again; the
    /// next try uses a new key. That is safe because the PSP's own states refuse a second
    /// capture, void or full refund, and in memory because a restart starting again from
    /// the first key only replays the stored answers once more.
    failed_keys: DashMap<String, u32>,
}

/// Why driving a payment stopped short.
#[derive(Debug)]
pub enum DriveError {
    Psp(PspError),
    /// The section could not be reached (busy, shutting down, storage).
    Section(ApiError),
    Payment(PaymentError),
}

impl Gateway {
    /// The gateway of `config`'s provider (`None` for `external`: no PSP). For `test`,
    /// starts the embedded PSP on a loopback port, its webhooks going to `webhook_url`.
    pub async fn start(config: &PaymentsConfig, webhook_url: String) -> Result<Option<Arc<Gateway>>> {
        let (api_base, secret_key, publishable_key, webhook_secrets, embedded) = match config.provider {
            Provider::External => return Ok(None),
            Provider::Stripe => {
                let stripe = &config.stripe;
                let secrets = config.webhook_secrets().map(str::to_string).collect();
                (stripe.api_base.clone(), stripe.secret_key.clone(), stripe.publishable_key.clone(), secrets, None)
            }
            Provider::Test => {
                let secret = format!("whsec_{:032x}", rand::random::<u128>());
                let mut psp = hakken_fakepsp::Config::new(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), secret.clone());
                psp.webhook_url = Some(webhook_url);
                psp.enabled_events = Some(WEBHOOK_EVENTS.iter().map(|kind| kind.to_string()).collect());
                let (secret_key, publishable_key) = (psp.secret_key.clone(), psp.publishable_key.clone());
                let running = hakken_fakepsp::start(psp).await.context("starting the embedded test PSP")?;
                tracing::info!(api_base = %running.api_base(), "payments: the embedded test PSP is serving");
                (running.api_base(), secret_key, publishable_key, vec![secret], Some(running))
            }
        };
        let timeout = Duration::from_millis(config.stripe.timeout_ms);
        let client = StripeClient::new(&StripeConfig { api_base: api_base.clone(), secret_key, timeout })
            .context("payments.stripe")?;
        Ok(Some(Arc::new(Gateway {
            provider: config.provider,
            key_mode: client.key_mode(),
            client,
            late: match config.late_payment {
                LatePaymentPolicy::ReacquireSame => LatePayment::ReacquireSame,
                LatePaymentPolicy::Void => LatePayment::Void,
            },
            window_ms: config.payment_window_ms,
            grace_ms: config.webhook_grace_ms,
            abandon_after_ms: config.abandon_after_ms,
            sweep_interval: Duration::from_millis(config.sweep_interval_ms),
            webhook_secrets,
            publishable_key,
            api_base,
            _embedded: embedded,
            failed_keys: DashMap::new(),
        })))
    }

    pub fn client(&self) -> &StripeClient {
        &self.client
    }

    pub fn webhook_secrets(&self) -> &[String] {
        &self.webhook_secrets
    }

    /// Creates (or, retried, finds again) the hold's PaymentIntent: manual capture, the
    /// hold's amount in the event's currency, hakken's ids in its metadata.
    pub async fn create(&self, hold: &Hold, event: &str, currency: &str) -> Result<PaymentIntent, PspError> {
        let hold_id = hold.id.to_string();
        let metadata =
            BTreeMap::from([("hakken_hold".to_string(), hold_id.clone()), ("hakken_event".into(), event.into())]);
        let request = CreatePaymentIntent {
            amount: hold.total_minor,
            currency: currency.to_string(),
            metadata,
            description: Some(format!("hakken {event} hold {hold_id}")),
        };
        // The hold's id and creation time name it: a hold number reused by another
        // store never finds this hold's payment.
        let key = format!("hakken-create-{hold_id}-{}", hold.created_at.0);
        self.client.create_payment_intent(&request, &key).await
    }

    /// Reads the payment's state at the PSP, reports it and settles what is owed.
    pub async fn drive(
        &self,
        shared: &Shared,
        section: &SectionHandle,
        hold: HoldId,
        psp_id: &str,
    ) -> Result<Payment, DriveError> {
        let intent = match self.client.retrieve_payment_intent(psp_id).await {
            Ok(intent) => intent,
            // The PSP has no such payment (the `test` provider's PSP forgets everything at
            // a restart): it can never be paid, so a payment awaiting it is void.
            Err(PspError::Refused { status: 404, .. }) => {
                let payment = self.report(shared, section, hold, psp_id, PspReport::Canceled).await?;
                return Ok(payment);
            }
            Err(error) => return Err(DriveError::Psp(error)),
        };
        match report_of(&intent) {
            Some(report) => {
                let payment = self.report(shared, section, hold, psp_id, report).await?;
                self.settle(shared, section, payment).await
            }
            None => self.read(shared, section, hold).await,
        }
    }

    /// A fact about `psp_id` (a signed webhook's, or what the PSP answered) to the section.
    pub async fn report(
        &self,
        shared: &Shared,
        section: &SectionHandle,
        hold: HoldId,
        psp_id: &str,
        report: PspReport,
    ) -> Result<Payment, DriveError> {
        self.report_answering(shared, section, hold, psp_id, report, None).await.map(|(payment, _)| payment)
    }

    /// [`Gateway::report`], storing `answer` (a webhook's event id) in the same WAL batch
    /// as the records the report makes; the flag says whether it was stored so.
    pub async fn report_answering(
        &self,
        shared: &Shared,
        section: &SectionHandle,
        hold: HoldId,
        psp_id: &str,
        report: PspReport,
        answer: Option<AnswerSlot<Result<Payment, PaymentError>>>,
    ) -> Result<(Payment, bool), DriveError> {
        let call_ = ReportPayment { hold, psp_id: psp_id.to_string(), report, late: self.late };
        let reported = section.call_answering(call_, answer).await;
        // Whatever the section made of it, the buyer long-polling this payment reads it again.
        shared.payment_waiters.wake(hold);
        let answered = reported.map_err(|error| DriveError::Section(unavailable(error, &shared.overload)))?;
        let payment = answered.reply.map_err(DriveError::Payment)?;
        tell_room(shared, &payment);
        Ok((payment, answered.answer_stored))
    }

    async fn read(&self, shared: &Shared, section: &SectionHandle, hold: HoldId) -> Result<Payment, DriveError> {
        let read = hakken_engine::actor::ReadPayment { hold };
        call(section, read, &shared.overload)
            .await
            .map_err(DriveError::Section)?
            .ok_or(DriveError::Payment(PaymentError::NotFound))
    }

    /// Does what the payment's step says (capture, void, refund) and reports each
    /// answer, until nothing is owed or the PSP fails (then the sweep retries).
    pub async fn settle(
        &self,
        shared: &Shared,
        section: &SectionHandle,
        mut payment: Payment,
    ) -> Result<Payment, DriveError> {
        for _ in 0..STEPS_MAX {
            let psp_id = payment.psp_id.clone();
            let report = match payment.step() {
                PaymentStep::Nothing => return Ok(payment),
                PaymentStep::Capture => {
                    let key = self.key("capture", &psp_id);
                    let captured = self.client.capture(&psp_id, &key).await;
                    self.answer_of(self.note_failure(&key, captured), &psp_id).await?
                }
                PaymentStep::Void => {
                    let key = self.key("cancel", &psp_id);
                    let cancelled = self.client.cancel(&psp_id, &key).await;
                    self.answer_of(self.note_failure(&key, cancelled), &psp_id).await?
                }
                PaymentStep::Refund => {
                    let key = self.key("refund", &psp_id);
                    match self.note_failure(&key, self.client.refund(&psp_id, &key).await) {
                        Ok(refund) if refund.status == RefundStatus::Succeeded => Some(PspReport::Refunded),
                        // Pending: asked again (same key, same refund) at the next sweep.
                        Ok(_) => None,
                        // An earlier try (another key) refunded it.
                        Err(PspError::Refused { code: Some(code), .. }) if code == "charge_already_refunded" => {
                            Some(PspReport::Refunded)
                        }
                        Err(error) => return Err(DriveError::Psp(error)),
                    }
                }
            };
            let Some(report) = report else { return Ok(payment) };
            payment = self.report(shared, section, payment.hold, &psp_id, report).await?;
        }
        Ok(payment)
    }

    /// The idempotency key of `operation` on `psp_id`: made of hakken's ids, with a
    /// suffix once the PSP stored a 5xx under the plain one (see `failed_keys`).
    fn key(&self, operation: &str, psp_id: &str) -> String {
        let base = format!("hakken-{operation}-{psp_id}");
        match self.failed_keys.get(&base).map(|failed| *failed) {
            None | Some(0) => base,
            Some(failed) => format!("{base}-retry{failed}"),
        }
    }

    /// Counts a 5xx answer to `key`, so the next try takes a fresh key.
    fn note_failure<T>(&self, key: &str, answer: Result<T, PspError>) -> Result<T, PspError> {
        if let Err(PspError::Unavailable { reason: UnavailableReason::ServerError, .. }) = &answer {
            let base = key.split("-retry").next().unwrap_or(key).to_string();
            *self.failed_keys.entry(base).or_insert(0) += 1;
        }
        answer
    }

    /// What a capture or cancel answered, as a report. A PaymentIntent no longer in the
    /// state the call needs (captured or cancelled already, by an earlier try) is read
    /// afresh: its state is the fact.
    async fn answer_of(
        &self,
        answer: Result<PaymentIntent, PspError>,
        psp_id: &str,
    ) -> Result<Option<PspReport>, DriveError> {
        match answer {
            Ok(intent) => Ok(report_of(&intent)),
            Err(PspError::Refused { status: 400, .. }) => {
                let intent = self.client.retrieve_payment_intent(psp_id).await.map_err(DriveError::Psp)?;
                Ok(report_of(&intent))
            }
            Err(error) => Err(DriveError::Psp(error)),
        }
    }

    /// Every `sweep_interval`: each section's payments due, asked about or settled.
    pub async fn sweep_forever(self: Arc<Self>, shared: Arc<Shared>) {
        let mut ticks = tokio::time::interval(self.sweep_interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let Some(app) = shared.ready_app() else { continue };
            if shared.is_shutting_down() {
                return;
            }
            let catalogue = app.catalogue();
            let mut counts = [0usize; 5];
            // A payment is the owner's to settle (cluster mode): a standby's sections are idle.
            for served in catalogue.events.values().filter(|served| served.owned_here()) {
                for section in &served.sections {
                    let due = PaymentsDue { grace_ms: self.grace_ms, abandon_after_ms: self.abandon_after_ms };
                    let Ok(due) = call(section, due, &shared.overload).await else { continue };
                    for (payment, owed) in due {
                        counts[due_index(owed)] += 1;
                        match self.sweep_one(&shared, section, payment, owed).await {
                            Ok(_) => {}
                            // Not the PSP's to fix by retrying: reconciliation lists it.
                            Err(DriveError::Psp(PspError::Refused { status: 404, .. })) => {
                                metrics::counter!(PAYMENTS_SWEEP_FAILURES_TOTAL, "due" => due_label(owed)).increment(1);
                                tracing::debug!(due = due_label(owed), "payments sweep: the PSP has no such payment");
                            }
                            Err(error) => {
                                metrics::counter!(PAYMENTS_SWEEP_FAILURES_TOTAL, "due" => due_label(owed)).increment(1);
                                tracing::warn!(error = %describe(&error), due = due_label(owed), "payments sweep: will retry");
                            }
                        }
                    }
                }
            }
            for (index, label) in DUE_LABELS.iter().enumerate() {
                metrics::gauge!(PAYMENTS_DUE, "due" => *label).set(counts[index] as f64);
            }
        }
    }

    async fn sweep_one(
        &self,
        shared: &Shared,
        section: &SectionHandle,
        payment: Payment,
        owed: PaymentDue,
    ) -> Result<Payment, DriveError> {
        match owed {
            PaymentDue::Step(_) => self.settle(shared, section, payment).await,
            PaymentDue::Check => self.drive(shared, section, payment.hold, &payment.psp_id).await,
            PaymentDue::Abandon => {
                let psp_id = payment.psp_id.clone();
                let key = self.key("cancel", &psp_id);
                let cancelled = self.client.cancel(&psp_id, &key).await;
                match self.answer_of(self.note_failure(&key, cancelled), &psp_id).await? {
                    Some(report) => {
                        let payment = self.report(shared, section, payment.hold, &psp_id, report).await?;
                        self.settle(shared, section, payment).await
                    }
                    None => Ok(payment),
                }
            }
        }
    }
}

/// What a PaymentIntent's state says happened; `None` while the buyer has not paid.
/// Tells the event's waiting room, if it has one, how a paying buyer's shopping ended:
/// an order (then it learns the buyer bought) or a void without one. The room ignores a
/// buyer it already knows about, so repeated reports (the capture after the order, a
/// webhook twice) change nothing.
fn tell_room(shared: &Shared, payment: &Payment) {
    let bought = match payment.state {
        PaymentState::Ordered(_) | PaymentState::Captured(_) => true,
        PaymentState::VoidDue { order: None, .. } | PaymentState::Voided { order: None, .. } => false,
        _ => return,
    };
    let Some(app) = shared.ready_app() else { return };
    let catalogue = app.catalogue();
    if let Some(room) = catalogue.locate(payment.hold.section).and_then(|(served, _)| served.room.as_ref()) {
        room.room.resolved(&payment.customer, bought);
    }
}

pub fn report_of(intent: &PaymentIntent) -> Option<PspReport> {
    match intent.status {
        PaymentIntentStatus::RequiresCapture => Some(PspReport::Authorized { amount_minor: intent.amount_capturable }),
        PaymentIntentStatus::Succeeded => Some(PspReport::Captured { amount_minor: intent.amount_received }),
        PaymentIntentStatus::Canceled => Some(PspReport::Canceled),
        _ => None,
    }
}

const DUE_LABELS: [&str; 5] = ["capture", "void", "refund", "check", "abandon"];

fn due_index(due: PaymentDue) -> usize {
    match due {
        PaymentDue::Step(PaymentStep::Capture) => 0,
        PaymentDue::Step(PaymentStep::Void) => 1,
        PaymentDue::Step(PaymentStep::Refund | PaymentStep::Nothing) => 2,
        PaymentDue::Check => 3,
        PaymentDue::Abandon => 4,
    }
}

fn due_label(due: PaymentDue) -> &'static str {
    DUE_LABELS[due_index(due)]
}

/// A drive's failure for a log line: PSP and section errors carry no personal data.
pub fn describe(error: &DriveError) -> String {
    match error {
        DriveError::Psp(error) => error.to_string(),
        DriveError::Section(error) => error.code.to_string(),
        DriveError::Payment(error) => error.to_string(),
    }
}
