//! What a run measured: per-step counters and latency histograms, merged into the
//! [`StepReport`]s and [`DriverReport`] that both `run`'s report
//! ([`crate::driver::Report`]) and `replay`'s ([`crate::replay::ReplayReport`]) hold.
//!
//! Recording goes through [`Recorder`], sharded by arrival so that a multi-threaded
//! run does not serialize on one lock; on one thread each lock is uncontended. Only
//! measured arrivals (after the warmup) are recorded; [`Live`] counts everything for the
//! once-a-second progress line.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::cpu::CpuTime;
use serde::Serialize;

/// Shards of the recorder; arrivals are spread over them by index.
pub const RECORDER_SHARDS: usize = 16;
/// Latencies are recorded in microseconds up to an hour (longer ones saturate).
const LATENCY_US_MAX: u64 = 3_600_000_000;
/// Three significant figures: 0.1 % error on every percentile.
const LATENCY_SIGNIFICANT_FIGURES: u8 = 3;
/// Distinct error codes kept per step; any further ones are counted together, so a
/// server answering with arbitrary codes cannot grow the driver's memory.
pub const ERROR_CODES_MAX: usize = 64;
/// Where the codes beyond `ERROR_CODES_MAX` are counted.
const ERROR_CODES_OVERFLOW: &str = "(other codes)";

/// A measured step of an arrival.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// `POST /v1/events/{event}/holds`, timed from the arrival's scheduled time.
    Hold,
    /// `POST /v1/holds/{hold}/confirm`, timed from the hold's reply.
    Confirm,
    /// A whole order: hold then confirm, timed from the scheduled time to the last
    /// reply; its outcome is that of the last step it reached.
    Order,
    /// `--plain-get`: one GET per arrival, timed from the scheduled time.
    Get,
    /// `GET /v1/events/{event}/availability`, polled by a buyer before holding.
    Availability,
    /// `DELETE /v1/holds/{hold}`: a buyer abandoning the hold.
    Release,
    /// `POST /v1/scan`: a gate scanning a ticket.
    Scan,
    /// `POST /v1/holds/{hold}/checkout`: hakken starts the payment at the PSP.
    Checkout,
    /// `POST {api_base}/v1/payment_intents/{id}/confirm` at the PSP, as Stripe.js does it
    /// in a browser (publishable key and client secret); a decline is a conflict.
    PspConfirm,
    /// `GET /v1/holds/{hold}/payment` until it shows an order (or a void): from the PSP
    /// confirm to hakken having taken the webhook and confirmed the hold.
    Payment,
    /// `POST /v1/events/{event}/queue`: a buyer joining the waiting room, timed from
    /// the buyer's scheduled join time (or the room's opening, for a second try).
    QueueJoin,
    /// `GET /v1/queue/{token}`: a waiting buyer's poll, timed from when it was due (the
    /// previous reply plus its `poll_after_ms`).
    QueuePoll,
}

pub const STEP_COUNT: usize = 12;

impl Step {
    pub const ALL: [Step; STEP_COUNT] = [
        Step::Hold,
        Step::Confirm,
        Step::Order,
        Step::Get,
        Step::Availability,
        Step::Release,
        Step::Scan,
        Step::Checkout,
        Step::PspConfirm,
        Step::Payment,
        Step::QueueJoin,
        Step::QueuePoll,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Step::Hold => "hold",
            Step::Confirm => "confirm",
            Step::Order => "order",
            Step::Get => "get",
            Step::Availability => "availability",
            Step::Release => "release",
            Step::Scan => "scan",
            Step::Checkout => "checkout",
            Step::PspConfirm => "psp_confirm",
            Step::Payment => "payment",
            Step::QueueJoin => "queue_join",
            Step::QueuePoll => "queue_poll",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// How one request (or order) ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx, and the reply said what the driver needed.
    Success,
    /// 409: sold out, seats taken, limit reached.
    Conflict,
    /// 503: the server is busy (a full mailbox or queue), with `Retry-After`.
    Busy,
    /// 429: rate limited, with `Retry-After`.
    RateLimited,
    /// Any other status (404, 400, 500, ...).
    OtherStatus(u16),
    /// No reply: connect, send or receive failed, or the connection closed.
    ConnectionError,
    /// No reply within `--timeout`.
    Timeout,
    /// 2xx, but the body is not what the API promises (e.g. a hold without an id).
    BadReply,
}

impl Outcome {
    pub fn of_status(status: u16) -> Outcome {
        match status {
            200..=299 => Outcome::Success,
            409 => Outcome::Conflict,
            503 => Outcome::Busy,
            429 => Outcome::RateLimited,
            other => Outcome::OtherStatus(other),
        }
    }

    pub fn is_rejection(self) -> bool {
        matches!(self, Outcome::Busy | Outcome::RateLimited)
    }

    pub fn is_error(self) -> bool {
        matches!(self, Outcome::OtherStatus(_) | Outcome::ConnectionError | Outcome::Timeout | Outcome::BadReply)
    }
}

/// Counters of one step. `sent - (every outcome)` is what was still unfinished at the end.
/// A step retried after a 503/429 (honouring `Retry-After`, in `replay`) is sent once and
/// ends with one outcome: that of its last attempt; the retried replies are counted in
/// `retried_*`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub sent: u64,
    pub retried_after_503: u64,
    pub retried_after_429: u64,
    pub success: u64,
    pub conflict: u64,
    pub rejected_busy_503: u64,
    pub rejected_rate_limited_429: u64,
    pub other_status: u64,
    pub connection_error: u64,
    pub timeout: u64,
    pub bad_reply: u64,
}

impl Counts {
    pub fn finished(&self) -> u64 {
        self.success
            + self.conflict
            + self.rejected_busy_503
            + self.rejected_rate_limited_429
            + self.other_status
            + self.connection_error
            + self.timeout
            + self.bad_reply
    }

    pub fn unfinished(&self) -> u64 {
        self.sent.saturating_sub(self.finished())
    }

    pub fn errors(&self) -> u64 {
        self.other_status + self.connection_error + self.timeout + self.bad_reply
    }

    fn add(&mut self, other: &Counts) {
        self.sent += other.sent;
        self.retried_after_503 += other.retried_after_503;
        self.retried_after_429 += other.retried_after_429;
        self.success += other.success;
        self.conflict += other.conflict;
        self.rejected_busy_503 += other.rejected_busy_503;
        self.rejected_rate_limited_429 += other.rejected_rate_limited_429;
        self.other_status += other.other_status;
        self.connection_error += other.connection_error;
        self.timeout += other.timeout;
        self.bad_reply += other.bad_reply;
    }
}

/// A histogram of latencies in microseconds, up to an hour, three significant figures.
pub(crate) fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, LATENCY_SIGNIFICANT_FIGURES).expect("valid histogram bounds")
}

/// `latency` in whole microseconds for a histogram (at least 1: histograms start there).
pub(crate) fn micros(latency: Duration) -> u64 {
    u64::try_from(latency.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// Counters and latencies of one step.
#[derive(Clone, Debug)]
pub struct StepStats {
    pub counts: Counts,
    /// Counts of the statuses behind `counts.other_status`.
    pub other_statuses: BTreeMap<u16, u64>,
    /// Refusals by status and the API's error code (`"409 sold_out"`).
    pub error_codes: BTreeMap<String, u64>,
    /// Latency of successes only: what a buyer who got through waited.
    pub latency_success: Histogram<u64>,
    /// Latency of every reply and timeout; fast rejections pull it down.
    pub latency_all: Histogram<u64>,
}

impl Default for StepStats {
    fn default() -> StepStats {
        StepStats {
            counts: Counts::default(),
            other_statuses: BTreeMap::new(),
            error_codes: BTreeMap::new(),
            latency_success: latency_histogram(),
            latency_all: latency_histogram(),
        }
    }
}

impl StepStats {
    pub fn record(&mut self, outcome: Outcome, latency: Duration) {
        let counts = &mut self.counts;
        match outcome {
            Outcome::Success => counts.success += 1,
            Outcome::Conflict => counts.conflict += 1,
            Outcome::Busy => counts.rejected_busy_503 += 1,
            Outcome::RateLimited => counts.rejected_rate_limited_429 += 1,
            Outcome::OtherStatus(status) => {
                counts.other_status += 1;
                *self.other_statuses.entry(status).or_default() += 1;
            }
            Outcome::ConnectionError => counts.connection_error += 1,
            Outcome::Timeout => counts.timeout += 1,
            Outcome::BadReply => counts.bad_reply += 1,
        }
        let us = micros(latency);
        if outcome == Outcome::Success {
            self.latency_success.saturating_record(us);
        }
        self.latency_all.saturating_record(us);
    }

    /// Counts a refusal's `"{status} {code}"`.
    pub fn record_error_code(&mut self, key: &str) {
        self.count_error_code(key, 1);
    }

    fn count_error_code(&mut self, key: &str, count: u64) {
        if let Some(counted) = self.error_codes.get_mut(key) {
            *counted += count;
        } else if self.error_codes.len() < ERROR_CODES_MAX {
            self.error_codes.insert(key.to_string(), count);
        } else {
            *self.error_codes.entry(ERROR_CODES_OVERFLOW.to_string()).or_default() += count;
        }
    }

    fn add(&mut self, other: &StepStats) {
        self.counts.add(&other.counts);
        for (status, count) in &other.other_statuses {
            *self.other_statuses.entry(*status).or_default() += count;
        }
        for (key, count) in &other.error_codes {
            self.count_error_code(key, *count);
        }
        self.latency_success.add(&other.latency_success).expect("same histogram bounds");
        self.latency_all.add(&other.latency_all).expect("same histogram bounds");
    }
}

/// Everything recorded about the measured arrivals.
#[derive(Clone, Debug)]
pub struct Totals {
    pub steps: [StepStats; STEP_COUNT],
    /// Measured arrivals launched (not dropped).
    pub arrivals_launched: u64,
    /// Measured arrivals not launched because `--in-flight-max` were in flight.
    pub arrivals_dropped: u64,
    /// How late arrivals were launched after their scheduled time: the driver's own lag.
    pub start_lag: Histogram<u64>,
    /// Tickets in confirmed orders.
    pub seats_sold: u64,
}

impl Default for Totals {
    fn default() -> Totals {
        Totals {
            steps: Default::default(),
            arrivals_launched: 0,
            arrivals_dropped: 0,
            start_lag: latency_histogram(),
            seats_sold: 0,
        }
    }
}

impl Totals {
    pub fn step(&self, step: Step) -> &StepStats {
        &self.steps[step.index()]
    }

    fn add(&mut self, other: &Totals) {
        for (mine, theirs) in self.steps.iter_mut().zip(&other.steps) {
            mine.add(theirs);
        }
        self.arrivals_launched += other.arrivals_launched;
        self.arrivals_dropped += other.arrivals_dropped;
        self.start_lag.add(&other.start_lag).expect("same histogram bounds");
        self.seats_sold += other.seats_sold;
    }
}

/// Where arrivals record what happened to them; see the module comment.
pub struct Recorder {
    shards: Box<[Mutex<Totals>]>,
}

impl Default for Recorder {
    fn default() -> Recorder {
        Recorder { shards: (0..RECORDER_SHARDS).map(|_| Mutex::default()).collect() }
    }
}

impl Recorder {
    fn with(&self, arrival: u64, update: impl FnOnce(&mut Totals)) {
        let shard = &self.shards[arrival as usize % RECORDER_SHARDS];
        update(&mut shard.lock().expect("recorder lock poisoned"));
    }

    pub fn launched(&self, arrival: u64, start_lag: Duration) {
        self.with(arrival, |totals| {
            totals.arrivals_launched += 1;
            totals.start_lag.saturating_record(micros(start_lag));
        });
    }

    pub fn dropped(&self, arrival: u64) {
        self.with(arrival, |totals| totals.arrivals_dropped += 1);
    }

    pub fn sent(&self, arrival: u64, step: Step) {
        self.with(arrival, |totals| totals.steps[step.index()].counts.sent += 1);
    }

    /// `error_code`: `"{status} {code}"` of a refusal, when the reply had one.
    pub fn finished(&self, arrival: u64, step: Step, outcome: Outcome, latency: Duration, error_code: Option<&str>) {
        self.with(arrival, |totals| {
            let stats = &mut totals.steps[step.index()];
            stats.record(outcome, latency);
            if let Some(key) = error_code {
                stats.record_error_code(key);
            }
        });
    }

    /// A 503 (`Busy`) or 429 (`RateLimited`) reply that the client will retry.
    pub fn retried(&self, arrival: u64, step: Step, outcome: Outcome) {
        self.with(arrival, |totals| {
            let counts = &mut totals.steps[step.index()].counts;
            match outcome {
                Outcome::RateLimited => counts.retried_after_429 += 1,
                _ => counts.retried_after_503 += 1,
            }
        });
    }

    pub fn sold(&self, arrival: u64, seats: u64) {
        self.with(arrival, |totals| totals.seats_sold += seats);
    }

    /// All shards merged; arrivals still running may record after this.
    pub fn totals(&self) -> Totals {
        let mut totals = Totals::default();
        for shard in self.shards.iter() {
            totals.add(&shard.lock().expect("recorder lock poisoned"));
        }
        totals
    }
}

/// Counters of the whole run, warmup included, for the progress line and the driver's
/// CPU cost per request. Relaxed atomics: they are only ever summed and printed.
#[derive(Debug, Default)]
pub struct Live {
    pub arrivals_launched: AtomicU64,
    pub arrivals_dropped: AtomicU64,
    pub in_flight: AtomicU64,
    pub requests_sent: AtomicU64,
    /// Orders confirmed (or GETs answered 2xx).
    pub completed: AtomicU64,
    pub conflicts: AtomicU64,
    pub rejections: AtomicU64,
    pub errors: AtomicU64,
}

impl Live {
    pub fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn outcome(&self, outcome: Outcome) {
        let counter = match outcome {
            Outcome::Success => return,
            Outcome::Conflict => &self.conflicts,
            rejection if rejection.is_rejection() => &self.rejections,
            _ => &self.errors,
        };
        Live::count(counter);
    }

    pub fn progress_line(&self, elapsed: Duration) -> String {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        format!(
            "{:>6.1}s  arrivals {}  dropped {}  in flight {}  requests {}  completed {}  conflicts {}  rejections {}  errors {}",
            elapsed.as_secs_f64(),
            load(&self.arrivals_launched),
            load(&self.arrivals_dropped),
            load(&self.in_flight),
            load(&self.requests_sent),
            load(&self.completed),
            load(&self.conflicts),
            load(&self.rejections),
            load(&self.errors),
        )
    }
}

/// Percentiles of one histogram, in microseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Latency {
    pub count: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
}

impl Latency {
    pub fn of<T: hdrhistogram::Counter>(histogram: &Histogram<T>) -> Latency {
        if histogram.is_empty() {
            return Latency::default();
        }
        Latency {
            count: histogram.len(),
            p50: histogram.value_at_quantile(0.5),
            p90: histogram.value_at_quantile(0.9),
            p99: histogram.value_at_quantile(0.99),
            p999: histogram.value_at_quantile(0.999),
            max: histogram.max(),
            mean: histogram.mean(),
        }
    }
}

/// One step's line of the report.
#[derive(Clone, Debug, Serialize)]
pub struct StepReport {
    pub step: &'static str,
    #[serde(flatten)]
    pub counts: Counts,
    pub unfinished: u64,
    /// Statuses counted in `other_status`, by code.
    pub other_statuses: BTreeMap<String, u64>,
    /// Refusals by status and error code of the body (`"409 sold_out"`).
    pub error_codes: BTreeMap<String, u64>,
    /// Finished (any outcome) per second of the measured window.
    pub throughput_per_second: f64,
    pub success_per_second: f64,
    pub latency_success_us: Latency,
    pub latency_all_us: Latency,
}

impl StepReport {
    pub fn new(step: Step, stats: &StepStats, window: Duration) -> StepReport {
        let per_second = |count: u64| per_second(count, window);
        StepReport {
            step: step.name(),
            counts: stats.counts.clone(),
            unfinished: stats.counts.unfinished(),
            other_statuses: stats.other_statuses.iter().map(|(status, count)| (status.to_string(), *count)).collect(),
            error_codes: stats.error_codes.clone(),
            throughput_per_second: per_second(stats.counts.finished()),
            success_per_second: per_second(stats.counts.success),
            latency_success_us: Latency::of(&stats.latency_success),
            latency_all_us: Latency::of(&stats.latency_all),
        }
    }
}

/// `"key xcount, ..."`: counts by status or error code as the printed reports list them.
pub fn counted<Key: fmt::Display>(counts: &BTreeMap<Key, u64>) -> String {
    let parts: Vec<String> = counts.iter().map(|(key, count)| format!("{key} x{count}")).collect();
    parts.join(", ")
}

pub fn per_second(count: u64, window: Duration) -> f64 {
    if window.is_zero() {
        0.0
    } else {
        count as f64 / window.as_secs_f64()
    }
}

/// The driver's own cost, over the whole run (warmup and drain included).
#[derive(Clone, Debug, Serialize)]
pub struct DriverReport {
    /// Every request sent, warmup included.
    pub requests_total: u64,
    pub elapsed_seconds: f64,
    pub cpu_user_seconds: f64,
    pub cpu_system_seconds: f64,
    /// (user + system) / requests_total.
    pub cpu_us_per_request: f64,
    /// (user + system) / elapsed: 1.0 is one core fully busy.
    pub cores_busy: f64,
    /// Where the CPU times come from.
    pub cpu_source: &'static str,
}

impl DriverReport {
    /// The process used `cpu` over `elapsed` to send `requests_total` requests.
    pub fn new(cpu: CpuTime, elapsed: Duration, requests_total: u64) -> DriverReport {
        let cpu_seconds = cpu.total().as_secs_f64();
        DriverReport {
            requests_total,
            elapsed_seconds: elapsed.as_secs_f64(),
            cpu_user_seconds: cpu.user.as_secs_f64(),
            cpu_system_seconds: cpu.system.as_secs_f64(),
            cpu_us_per_request: if requests_total == 0 { 0.0 } else { cpu_seconds * 1e6 / requests_total as f64 },
            cores_busy: cpu_seconds / elapsed.as_secs_f64().max(f64::MIN_POSITIVE),
            cpu_source: CpuTime::SOURCE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_classify() {
        let check = |status: u16, expected: Outcome| assert_eq!(Outcome::of_status(status), expected, "{status}");
        check(200, Outcome::Success);
        check(201, Outcome::Success);
        check(204, Outcome::Success);
        check(409, Outcome::Conflict);
        check(503, Outcome::Busy);
        check(429, Outcome::RateLimited);
        check(404, Outcome::OtherStatus(404));
        check(500, Outcome::OtherStatus(500));
        check(302, Outcome::OtherStatus(302));
    }

    #[test]
    fn counters_add_up_across_shards() {
        let recorder = Recorder::default();
        let outcomes = [
            Outcome::Success,
            Outcome::Conflict,
            Outcome::Busy,
            Outcome::RateLimited,
            Outcome::OtherStatus(404),
            Outcome::ConnectionError,
            Outcome::Timeout,
            Outcome::BadReply,
            Outcome::OtherStatus(404),
            Outcome::OtherStatus(500),
        ];
        for (arrival, outcome) in outcomes.iter().enumerate() {
            recorder.sent(arrival as u64, Step::Hold);
            let code = (*outcome == Outcome::Conflict).then_some("409 sold_out");
            recorder.finished(arrival as u64, Step::Hold, *outcome, Duration::from_millis(1), code);
        }
        recorder.sent(99, Step::Hold);
        recorder.launched(3, Duration::from_micros(5));
        recorder.dropped(4);
        recorder.sold(5, 2);
        recorder.sold(21, 2);

        let totals = recorder.totals();
        let hold = totals.step(Step::Hold);
        let expected = Counts {
            sent: 11,
            retried_after_503: 0,
            retried_after_429: 0,
            success: 1,
            conflict: 1,
            rejected_busy_503: 1,
            rejected_rate_limited_429: 1,
            other_status: 3,
            connection_error: 1,
            timeout: 1,
            bad_reply: 1,
        };
        assert_eq!(hold.counts, expected);
        assert_eq!(hold.counts.finished(), 10);
        assert_eq!(hold.counts.unfinished(), 1);
        assert_eq!(hold.counts.errors(), 6);
        assert_eq!(hold.other_statuses, BTreeMap::from([(404, 2), (500, 1)]));
        assert_eq!(hold.error_codes, BTreeMap::from([("409 sold_out".to_string(), 1)]));
        assert_eq!(hold.latency_all.len(), 10);
        assert_eq!(hold.latency_success.len(), 1);
        assert_eq!(totals.step(Step::Confirm).counts, Counts::default());
        assert_eq!((totals.arrivals_launched, totals.arrivals_dropped, totals.seats_sold), (1, 1, 4));
    }

    #[test]
    fn percentiles_are_right() {
        let mut stats = StepStats::default();
        // 1..=1000 ms, shuffled order does not matter to a histogram.
        for ms in (1..=1000).rev() {
            stats.record(Outcome::Success, Duration::from_millis(ms));
        }
        stats.record(Outcome::Conflict, Duration::from_secs(5));
        let latency = Latency::of(&stats.latency_success);
        let close = |actual: u64, expected_ms: u64| {
            let expected = expected_ms * 1000;
            assert!(actual.abs_diff(expected) <= expected / 1000 + 1, "{actual} µs, expected {expected} µs");
        };
        assert_eq!(latency.count, 1000);
        close(latency.p50, 500);
        close(latency.p90, 900);
        close(latency.p99, 990);
        close(latency.p999, 999);
        close(latency.max, 1000);
        assert!((latency.mean - 500_500.0).abs() < 500.0, "mean {}", latency.mean);
        let all = Latency::of(&stats.latency_all);
        assert_eq!(all.count, 1001);
        close(all.max, 5000);
        assert_eq!(Latency::of(&latency_histogram()), Latency::default());
    }

    #[test]
    fn error_codes_are_bounded() {
        let mut stats = StepStats::default();
        for code in 0..ERROR_CODES_MAX + 10 {
            stats.record_error_code(&format!("409 code{code}"));
        }
        stats.record_error_code("409 code0");
        assert_eq!(stats.error_codes.len(), ERROR_CODES_MAX + 1);
        assert_eq!(stats.error_codes["409 code0"], 2);
        assert_eq!(stats.error_codes[ERROR_CODES_OVERFLOW], 10);
    }

    #[test]
    fn step_report_rates_use_the_window() {
        let mut stats = StepStats::default();
        for _ in 0..30 {
            stats.record(Outcome::Success, Duration::from_millis(1));
        }
        for _ in 0..10 {
            stats.record(Outcome::Busy, Duration::from_millis(1));
        }
        stats.counts.sent = 45;
        let report = StepReport::new(Step::Confirm, &stats, Duration::from_secs(2));
        assert_eq!(report.throughput_per_second, 20.0);
        assert_eq!(report.success_per_second, 15.0);
        assert_eq!(report.unfinished, 5);
        assert_eq!(per_second(5, Duration::ZERO), 0.0);
    }
}
