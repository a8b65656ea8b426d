//! `replay`: plays a queue file ([`crate::queue`]) against a server, open-loop, as the
//! buyers it describes would, then reads the final state back for the verdict.
//!
//! Buyer `i` starts at its `at_us` (times `--time-scale`) after the start, whether or
//! not earlier buyers have finished: the pacer of [`crate::schedule`] launches it as a
//! task of its own. A buyer polls availability (if the file says so) and gives up when
//! what they want is gone, asks for a hold, thinks (`think_ms`, scaled too), then
//! confirms, releases, or walks away and lets the hold expire.
//!
//! A 503 or 429 is retried after its `Retry-After` (real seconds, not scaled: it is the
//! server's pacing), at most `--retries` times per request, as a well-behaved client
//! would; POSTs carry an `Idempotency-Key`, so a retry never acts twice. The retried
//! replies are counted apart from the final outcome.
//!
//! Every latency runs from when the step was due, never from when it was sent: the
//! hold from the buyer's scheduled time (or the poll's reply), the confirm or release
//! from the end of the think time, so waiting for a connection, for the pacer, and for
//! `Retry-After` is all counted (no coordinated omission). "order" is the buyer's whole
//! wait for hakken: the hold's latency plus the confirm's.
//!
//! A confirm without a definite reply (timeout, broken connection, still running when
//! the drain ends) is in doubt: the server may have sold. Before the verdict each one is
//! sent again with its `Idempotency-Key`, which returns the first attempt's answer, so
//! the ledger of sold seats is exact.

use std::collections::HashMap;
use std::future::Future;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{ensure, Context};
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::Full;
use hyper::header::HeaderValue;
use hyper::{Method, Request, Uri};
use serde::Serialize;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::client::{send_retrying, Pool, PoolConfig, Reply, Target, IDEMPOTENCY_KEY};
use crate::cpu::CpuTime;
use crate::queue::{Buyer, Intent, Queue, Then};
use crate::schedule::{pace, Arrival, PaceEnd, Schedule};
use crate::stats::{Latency, Live, Outcome, Recorder, Step, StepReport};
use crate::timeline::{Percentiles, TimelinePoint, TimelineReport};
use crate::verdict::{self, Availability, Ledger, LedgerOrder, Observed, Verdict};
use crate::wire::{self, json, BuyerDetails, ConfirmRequest};

/// The steps of a buyer, in the report's order.
pub const STEPS: [Step; 5] = [Step::Availability, Step::Hold, Step::Confirm, Step::Release, Step::Order];
/// Largest `--time-scale`: a week-long file played a thousand times slower is already
/// two decades.
const TIME_SCALE_MAX: f64 = 1000.0;
/// The timeline has at most about this many intervals; longer runs get longer ones.
const TIMELINE_INTERVALS: f64 = 600.0;
/// Intervals kept at most (a drain far longer than the schedule ends in the last one).
const TIMELINE_INTERVALS_MAX: usize = 2400;
/// Timeline latencies: two significant figures are plenty for a chart, and keep each
/// interval's histograms small.
const TIMELINE_SIGNIFICANT_FIGURES: u8 = 2;
const LATENCY_US_MAX: u64 = 3_600_000_000;
/// Without `Retry-After`, a 503/429 is retried after this long.
const RETRY_AFTER_DEFAULT: Duration = Duration::from_secs(1);
/// The progress bar is redrawn this often on a terminal, and a line is printed this
/// often otherwise.
const PROGRESS_TERMINAL_INTERVAL: Duration = Duration::from_millis(250);
const PROGRESS_LOG_INTERVAL: Duration = Duration::from_secs(5);
const PROGRESS_BAR_WIDTH: usize = 24;
/// How often the drain checks whether buyers are still running.
const DRAIN_POLL_INTERVAL: Duration = Duration::from_millis(10);
/// The drain never waits longer than this, whatever `--drain-timeout` says.
const DRAIN_TIMEOUT_MAX: Duration = Duration::from_secs(24 * 3600);
/// The drain waits at least this long past the longest think time.
const DRAIN_MARGIN: Duration = Duration::from_secs(30);

/// The `replay` flags.
#[derive(Clone, Debug)]
pub struct ReplayConfig {
    /// Base URL, `http://host:port`.
    pub target: String,
    /// Buy for this event instead of the file's.
    pub event: Option<String>,
    /// Every time of the file (arrivals, think times) is multiplied by this: 0.5 plays
    /// the on-sale in half the time, 2 at half the speed.
    pub time_scale: f64,
    /// Only buyers due within this long (after scaling) arrive.
    pub duration: Option<Duration>,
    pub connections: usize,
    /// Buyers in flight at most (thinking and waiting out Retry-After included); one
    /// due beyond is dropped and counted. `None`: as many as the file has, so none is
    /// dropped (the file bounds the driver's memory).
    pub in_flight_max: Option<u64>,
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    /// How long to wait for buyers still running after the last arrival; `None`: the
    /// longest (scaled) think time of the file plus 30 s.
    pub drain_timeout: Option<Duration>,
    /// Retries per request after a 503/429.
    pub retries: u32,
    /// The longest `Retry-After` honoured; longer ones are cut to this.
    pub retry_after_max: Duration,
    /// Prefix of customer ids, payment references and idempotency keys; random if `None`.
    pub run_id: Option<String>,
    pub progress: bool,
    /// Read the final state back and check it.
    pub verdict: bool,
    /// Runtime worker threads (reported only; the caller builds the runtime).
    pub threads: usize,
}

/// What a replay produced.
pub struct ReplayOutcome {
    pub report: ReplayReport,
    /// What the run was told, for `verify` to check again later.
    pub ledger: Ledger,
}

/// Everything buyers share.
struct Run {
    pool: Pool,
    buyers: Vec<Buyer>,
    run_id: String,
    time_scale: f64,
    holds_uri: Uri,
    availability_uri: Uri,
    request_timeout: Duration,
    retries: u32,
    retry_after_max: Duration,
    in_flight_max: u64,
    start: Instant,
    /// Seats of the event and those sold before the run, to tell when it sold out.
    capacity: u64,
    sold_before: u64,
    recorder: Recorder,
    live: Live,
    seats_sold: AtomicU64,
    nudge: Arc<Notify>,
    state: Mutex<RunState>,
}

/// What buyers record beyond the per-step statistics; one lock, taken briefly per step.
struct RunState {
    orders: Vec<LedgerOrder>,
    /// Confirms sent without a definite reply yet, by buyer.
    in_doubt: HashMap<u64, InDoubt>,
    buyers: BuyerCounts,
    phases: Vec<PhaseStats>,
    timeline: Timeline,
    sold_out_at: Option<Duration>,
    first_sold_out_refusal_at: Option<Duration>,
}

/// A confirm whose outcome is not known yet.
#[derive(Clone)]
struct InDoubt {
    hold: String,
    customer: String,
    body: Bytes,
    key: HeaderValue,
}

/// How buyers' stories ended.
#[derive(Clone, Debug, Default, Serialize)]
pub struct BuyerCounts {
    pub arrived: u64,
    pub dropped_by_driver: u64,
    /// Polled, saw too few seats left, and left without asking for a hold.
    pub gave_up_after_poll: u64,
    pub held: u64,
    pub confirmed: u64,
    pub abandoned: u64,
    /// Left their hold to expire on the server.
    pub left_to_expire: u64,
    /// Hold refused with 409 (taken, sold out, limit).
    pub hold_conflicts: u64,
    /// A request still 503/429 after its retries.
    pub rejected: u64,
    /// Other statuses, broken connections, timeouts, malformed replies.
    pub errors: u64,
    /// Still running when the drain ended (stopped).
    pub unfinished: u64,
}

/// One phase of the file (spike and tail, a ramp step).
struct PhaseStats {
    buyers: u64,
    holds: u64,
    confirms: u64,
    conflicts: u64,
    rejected: u64,
    errors: u64,
    hold_latency: Histogram<u32>,
    order_latency: Histogram<u32>,
}

impl PhaseStats {
    fn new() -> PhaseStats {
        PhaseStats {
            buyers: 0,
            holds: 0,
            confirms: 0,
            conflicts: 0,
            rejected: 0,
            errors: 0,
            hold_latency: small_histogram(),
            order_latency: small_histogram(),
        }
    }
}

fn small_histogram() -> Histogram<u32> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, TIMELINE_SIGNIFICANT_FIGURES).expect("valid histogram bounds")
}

fn micros(latency: Duration) -> u64 {
    u64::try_from(latency.as_micros()).unwrap_or(u64::MAX).clamp(1, LATENCY_US_MAX)
}

/// Per-interval counters and latencies, for the plot.
struct Timeline {
    interval: Duration,
    points: Vec<IntervalStats>,
}

#[derive(Default)]
struct IntervalStats {
    counts: TimelinePoint,
    hold_latency: Option<Histogram<u32>>,
    confirm_latency: Option<Histogram<u32>>,
}

impl Timeline {
    fn new(span: Duration) -> Timeline {
        let seconds = (span.as_secs_f64() / TIMELINE_INTERVALS).ceil().max(1.0);
        Timeline { interval: Duration::from_secs_f64(seconds), points: Vec::new() }
    }

    fn at(&mut self, elapsed: Duration) -> &mut IntervalStats {
        let index = ((elapsed.as_secs_f64() / self.interval.as_secs_f64()) as usize).min(TIMELINE_INTERVALS_MAX - 1);
        if self.points.len() <= index {
            self.points.resize_with(index + 1, IntervalStats::default);
        }
        &mut self.points[index]
    }

    fn outcome(&mut self, elapsed: Duration, outcome: Outcome) {
        let counts = &mut self.at(elapsed).counts;
        match outcome {
            Outcome::Success => {}
            Outcome::Conflict => counts.conflicts += 1,
            Outcome::Busy | Outcome::RateLimited => counts.rejected += 1,
            _ => counts.errors += 1,
        }
    }

    fn report(&self, sold_out_at: Option<Duration>) -> TimelineReport {
        let percentiles = |histogram: &Option<Histogram<u32>>| {
            histogram.as_ref().filter(|histogram| !histogram.is_empty()).map(|histogram| {
                let ms = |us: u64| us as f64 / 1000.0;
                Percentiles {
                    p50: ms(histogram.value_at_quantile(0.5)),
                    p90: ms(histogram.value_at_quantile(0.9)),
                    p99: ms(histogram.value_at_quantile(0.99)),
                    max: ms(histogram.max()),
                }
            })
        };
        TimelineReport {
            interval_seconds: self.interval.as_secs_f64(),
            points: self
                .points
                .iter()
                .enumerate()
                .map(|(index, interval)| TimelinePoint {
                    t_seconds: index as f64 * self.interval.as_secs_f64(),
                    hold_latency_ms: percentiles(&interval.hold_latency),
                    confirm_latency_ms: percentiles(&interval.confirm_latency),
                    ..interval.counts.clone()
                })
                .collect(),
            sold_out_at_seconds: sold_out_at.map(|at| at.as_secs_f64()),
        }
    }
}

/// Plays `queue` against the server of `config` until the schedule ends or `stop`
/// completes, waits (bounded) for the buyers still running, resolves in-doubt confirms
/// and, with `config.verdict`, checks the server's final state.
pub async fn replay(
    queue: Queue,
    source: String,
    config: ReplayConfig,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<ReplayOutcome> {
    ensure!(
        config.time_scale > 0.0 && config.time_scale <= TIME_SCALE_MAX,
        "--time-scale must be more than 0 and at most {TIME_SCALE_MAX}"
    );
    ensure!(config.connections > 0, "--connections must be at least 1");
    ensure!(config.in_flight_max != Some(0), "--in-flight-max must be at least 1");
    let event = config.event.clone().unwrap_or_else(|| queue.header.event.clone());
    let scale = |duration: Duration| duration.mul_f64(config.time_scale);
    let mut buyers = queue.buyers;
    if let Some(duration) = config.duration {
        buyers.retain(|buyer| scale(Duration::from_micros(buyer.at_us)) <= duration);
    }
    let offsets: Vec<Duration> = buyers.iter().map(|buyer| scale(Duration::from_micros(buyer.at_us))).collect();
    let span = offsets.last().copied().unwrap_or_default();
    let think_max = buyers.iter().map(|buyer| scale(Duration::from_millis(buyer.think_ms))).max().unwrap_or_default();
    let drain_timeout = config.drain_timeout.unwrap_or(think_max + DRAIN_MARGIN);
    let in_flight_max = config.in_flight_max.unwrap_or(buyers.len() as u64).max(1);

    let target = Target::resolve(&config.target).await?;
    let pool =
        Pool::new(target, PoolConfig { connections_max: config.connections, connect_timeout: config.connect_timeout });
    pool.connect_all().await.with_context(|| {
        format!(
            "cannot open {} connections to {} (is the server up, and `ulimit -n` high enough on both sides?)",
            config.connections, config.target
        )
    })?;
    // The verdict compares with the counts before the run; without one they only tell
    // when the event sells out, so a target without availability (serve-trivial) is fine.
    let baseline = match Availability::fetch(&pool, &event, config.request_timeout).await {
        Ok(baseline) => baseline,
        Err(error) if config.verdict => {
            return Err(error.context(format!("reading event {event:?} before the run")));
        }
        Err(_) => Availability::default(),
    };
    let run_id = config.run_id.clone().unwrap_or_else(|| format!("{:08x}", rand::random::<u32>()));
    let path = |suffix: &str| -> anyhow::Result<Uri> {
        format!("/v1/events/{event}/{suffix}")
            .parse()
            .with_context(|| format!("event id {event:?} does not fit in a path"))
    };
    let phase_names: Vec<String> = queue.header.phases.iter().map(|phase| phase.name.clone()).collect();
    let phase_count = phase_names.len().max(buyers.iter().map(|buyer| buyer.phase as usize + 1).max().unwrap_or(0));
    let schedule = Schedule::at_offsets(offsets);
    let start = Instant::now();
    let run = Arc::new(Run {
        holds_uri: path("holds")?,
        availability_uri: path("availability")?,
        pool,
        buyers,
        run_id: run_id.clone(),
        time_scale: config.time_scale,
        request_timeout: config.request_timeout,
        retries: config.retries,
        retry_after_max: config.retry_after_max,
        in_flight_max,
        start,
        capacity: u64::from(baseline.total.capacity),
        sold_before: u64::from(baseline.total.sold),
        recorder: Recorder::default(),
        live: Live::default(),
        seats_sold: AtomicU64::new(0),
        nudge: Arc::new(Notify::new()),
        state: Mutex::new(RunState {
            orders: Vec::new(),
            in_doubt: HashMap::new(),
            buyers: BuyerCounts::default(),
            phases: (0..phase_count).map(|_| PhaseStats::new()).collect(),
            timeline: Timeline::new(span + drain_timeout.min(span)),
            sold_out_at: None,
            first_sold_out_refusal_at: None,
        }),
    });

    let cpu_before = CpuTime::now()?;
    let progress = config.progress.then(|| tokio::spawn(print_progress(run.clone(), span)));
    let mut tasks = JoinSet::new();
    let end = pace(&schedule, start, stop, &run.nudge, |arrival| {
        // Reap finished buyers so the set stays as small as the buyers in flight.
        while tasks.try_join_next().is_some() {}
        launch(&run, &mut tasks, arrival);
    })
    .await;
    let schedule_elapsed = start.elapsed();
    let deadline = Instant::now() + drain_timeout.min(DRAIN_TIMEOUT_MAX);
    while run.live.in_flight.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
        tokio::time::sleep(DRAIN_POLL_INTERVAL).await;
    }
    let unfinished = run.live.in_flight.load(Ordering::Relaxed);
    // Stop the stragglers now: a buyer waking from a long think must not change the
    // server's state while the verdict reads it.
    tasks.shutdown().await;
    let elapsed = start.elapsed();
    let cpu = CpuTime::now()?.since(cpu_before);
    if let Some(progress) = progress {
        progress.abort();
        eprintln!("{}", progress_line(&run, span, true));
    }

    let in_doubt: Vec<InDoubt> = lock(&run.state).in_doubt.drain().map(|(_, confirm)| confirm).collect();
    let unresolved = resolve_in_doubt(&run, in_doubt).await;
    let state = std::mem::replace(&mut *lock(&run.state), RunState::empty());
    let ledger = Ledger {
        event: event.clone(),
        run_id: run_id.clone(),
        baseline,
        orders: state.orders,
        unresolved_confirms: unresolved,
    };
    let verdict = if config.verdict {
        let observed = Observed::fetch(&run.pool, &ledger, config.request_timeout)
            .await
            .context("reading the final state back for the verdict")?;
        Some(verdict::check(&ledger, &observed))
    } else {
        None
    };

    let totals = run.recorder.totals();
    let mut buyers = state.buyers;
    buyers.unfinished = unfinished;
    buyers.arrived = totals.arrivals_launched;
    buyers.dropped_by_driver = totals.arrivals_dropped;
    let window = schedule_elapsed.max(Duration::from_millis(1));
    let requests_total = run.live.requests_sent.load(Ordering::Relaxed);
    let report = ReplayReport {
        settings: ReplaySettings {
            queue: source,
            shape: queue.header.shape.clone(),
            seed: queue.header.seed,
            event,
            target: run.pool.target().url.clone(),
            run_id,
            time_scale: config.time_scale,
            connections: config.connections,
            in_flight_max,
            retries: config.retries,
            threads: config.threads,
        },
        stopped_early: matches!(end, PaceEnd::Stopped { .. }),
        schedule_seconds: span.as_secs_f64(),
        elapsed_seconds: elapsed.as_secs_f64(),
        buyers,
        start_lag_us: Latency::of(&totals.start_lag),
        steps: STEPS.iter().map(|step| StepReport::new(*step, totals.step(*step), window)).collect(),
        phases: state
            .phases
            .iter()
            .enumerate()
            .map(|(index, phase)| {
                PhaseReport::new(phase_names.get(index).cloned().unwrap_or(format!("phase {index}")), phase)
            })
            .collect(),
        seats_sold: run.seats_sold.load(Ordering::Relaxed),
        capacity: run.capacity,
        sold_before: run.sold_before,
        sold_out_at_seconds: state.sold_out_at.map(|at| at.as_secs_f64()),
        first_sold_out_refusal_at_seconds: state.first_sold_out_refusal_at.map(|at| at.as_secs_f64()),
        timeline: state.timeline.report(state.sold_out_at),
        driver: crate::stats::DriverReport::new(cpu, elapsed, requests_total),
        verdict,
    };
    Ok(ReplayOutcome { report, ledger })
}

impl RunState {
    fn empty() -> RunState {
        RunState {
            orders: Vec::new(),
            in_doubt: HashMap::new(),
            buyers: BuyerCounts::default(),
            phases: Vec::new(),
            timeline: Timeline::new(Duration::ZERO),
            sold_out_at: None,
            first_sold_out_refusal_at: None,
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().expect("replay state lock poisoned")
}

/// Starts buyer `arrival` unless too many are in flight.
fn launch(run: &Arc<Run>, tasks: &mut JoinSet<()>, arrival: Arrival) {
    let live = &run.live;
    if live.in_flight.load(Ordering::Relaxed) >= run.in_flight_max {
        Live::count(&live.arrivals_dropped);
        run.recorder.dropped(arrival.index);
        return;
    }
    live.in_flight.fetch_add(1, Ordering::Relaxed);
    Live::count(&live.arrivals_launched);
    let now = Instant::now();
    run.recorder.launched(arrival.index, now.saturating_duration_since(arrival.scheduled));
    {
        let mut state = lock(&run.state);
        state.timeline.at(now.saturating_duration_since(run.start)).counts.arrivals += 1;
        let phase = run.buyers[arrival.index as usize].phase as usize;
        state.phases[phase].buyers += 1;
    }
    let f = run_buyer(run.clone(), arrival);
    tasks.spawn(f);
}

/// Counts a buyer out of `in_flight` however its task ends (aborts included).
struct InFlight(Arc<Run>);

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
struct Ended {
    outcome: Outcome,
    reply: Option<Reply>,
    at: Instant,
}

async fn run_buyer(run: Arc<Run>, arrival: Arrival) {
    let run = InFlight(run);
    let run = &run.0;
    let index = arrival.index;
    let buyer = &run.buyers[index as usize];
    let customer = format!("{}-b{index}", run.run_id);

    let mut hold_due = arrival.scheduled;
    if buyer.poll {
        let ended = run
            .step(index, Step::Availability, None, || run.pool.request(Method::GET, run.availability_uri.clone(), None))
            .await;
        hold_due = ended.at;
        let code = ended.reply.as_ref().filter(|_| ended.outcome != Outcome::Success).and_then(wire::error_code);
        let latency = ended.at.saturating_duration_since(arrival.scheduled);
        run.finish(index, Step::Availability, ended.outcome, latency, code.as_deref());
        let available = ended
            .reply
            .filter(|_| ended.outcome == Outcome::Success)
            .and_then(|reply| Availability::parse(&reply.body).ok());
        if available.is_some_and(|available| !enough_left(&available, &buyer.intent)) {
            lock(&run.state).buyers.gave_up_after_poll += 1;
            return;
        }
    }

    if buyer.then == Then::Confirm {
        run.recorder.sent(index, Step::Order);
    }
    let body = json(&HoldRequest::of(&customer, &buyer.intent));
    let key = run.key(index, "hold");
    let ended = run
        .step(index, Step::Hold, None, || {
            let mut request = run.pool.request(Method::POST, run.holds_uri.clone(), Some(body.clone()));
            request.headers_mut().insert(IDEMPOTENCY_KEY, key.clone());
            request
        })
        .await;
    let hold_latency = ended.at.saturating_duration_since(hold_due);
    let hold_id = match (&ended.outcome, &ended.reply) {
        (Outcome::Success, Some(reply)) => wire::hold_id(&reply.body),
        _ => None,
    };
    let hold_outcome = match (ended.outcome, &hold_id) {
        (Outcome::Success, None) => Outcome::BadReply,
        (outcome, _) => outcome,
    };
    let code = ended.reply.as_ref().filter(|_| hold_outcome != Outcome::Success).and_then(wire::error_code);
    run.finish(index, Step::Hold, hold_outcome, hold_latency, code.as_deref());
    {
        let mut state = lock(&run.state);
        let elapsed = ended.at.saturating_duration_since(run.start);
        let phase = &mut state.phases[buyer.phase as usize];
        match hold_outcome {
            Outcome::Success => {
                phase.holds += 1;
                phase.hold_latency.saturating_record(micros(hold_latency));
            }
            Outcome::Conflict => phase.conflicts += 1,
            outcome if outcome.is_rejection() => phase.rejected += 1,
            _ => phase.errors += 1,
        }
        let interval = state.timeline.at(elapsed);
        if hold_outcome == Outcome::Success {
            interval.counts.holds += 1;
            interval.hold_latency.get_or_insert_with(small_histogram).saturating_record(micros(hold_latency));
        }
        state.timeline.outcome(elapsed, hold_outcome);
        let buyers = &mut state.buyers;
        match hold_outcome {
            Outcome::Success => buyers.held += 1,
            Outcome::Conflict => buyers.hold_conflicts += 1,
            outcome if outcome.is_rejection() => buyers.rejected += 1,
            _ => buyers.errors += 1,
        }
        if code.as_deref() == Some("409 sold_out") && state.first_sold_out_refusal_at.is_none() {
            state.first_sold_out_refusal_at = Some(elapsed);
        }
    }
    let Some(hold_id) = hold_id else {
        if buyer.then == Then::Confirm {
            run.finish(index, Step::Order, hold_outcome, hold_latency, code.as_deref());
        }
        return;
    };

    let think = Duration::from_millis(buyer.think_ms).mul_f64(run.time_scale);
    match buyer.then {
        Then::Expire => lock(&run.state).buyers.left_to_expire += 1,
        Then::Abandon => {
            let due = ended.at + think;
            tokio::time::sleep_until(due).await;
            let uri: Uri = format!("/v1/holds/{hold_id}?customer={}", crate::client::query_escape(&customer))
                .parse()
                .expect("hold ids and escaped customers make valid paths");
            let ended =
                run.step(index, Step::Release, None, || run.pool.request(Method::DELETE, uri.clone(), None)).await;
            let code = ended.reply.as_ref().filter(|_| ended.outcome != Outcome::Success).and_then(wire::error_code);
            run.finish(index, Step::Release, ended.outcome, ended.at.saturating_duration_since(due), code.as_deref());
            let mut state = lock(&run.state);
            state.timeline.outcome(ended.at.saturating_duration_since(run.start), ended.outcome);
            match ended.outcome {
                Outcome::Success => state.buyers.abandoned += 1,
                outcome if outcome.is_rejection() => state.buyers.rejected += 1,
                _ => state.buyers.errors += 1,
            }
        }
        Then::Confirm => {
            let due = ended.at + think;
            tokio::time::sleep_until(due).await;
            run.confirm(index, buyer, &customer, &hold_id, due, hold_latency).await;
        }
    }
}

/// How long to wait before retry `attempt` of buyer `index` after a `Retry-After` of
/// `wait`: at least `wait` (cut to `max`), plus up to half of it again, spread by a hash
/// of the buyer and attempt. Clients that all retry exactly on the second come back as
/// one wave and are refused together again; well-behaved clients add jitter.
fn retry_wait(wait: Duration, max: Duration, index: u64, attempt: u32) -> Duration {
    let wait = wait.min(max);
    let spread = splitmix64(index ^ (u64::from(attempt) << 40)) as f64 / u64::MAX as f64;
    wait + wait.mul_f64(spread / 2.0)
}

/// A well-mixed hash, for stateless per-buyer randomness.
fn splitmix64(value: u64) -> u64 {
    let mut z = value.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
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

impl Run {
    fn key(&self, index: u64, step: &str) -> HeaderValue {
        HeaderValue::try_from(format!("{}-{index}-{step}", self.run_id)).expect("run ids are header-safe")
    }

    /// Runs one step of buyer `index`: sends the request `make` builds, retrying after a
    /// 503/429 as the server asks, at most `retries` times. `in_doubt` is registered
    /// before the first send and dropped once a definite reply came.
    async fn step(
        &self,
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
            let result = tokio::time::timeout(self.request_timeout, self.pool.send(make())).await;
            // Time has passed: arrivals may be due.
            self.nudge.notify_one();
            let at = Instant::now();
            let reply = match result {
                Ok(Ok(reply)) => reply,
                Ok(Err(_)) => return Ended { outcome: Outcome::ConnectionError, reply: None, at },
                Err(_) => return Ended { outcome: Outcome::Timeout, reply: None, at },
            };
            let outcome = Outcome::of_status(reply.status.as_u16());
            if outcome.is_rejection() && retries < self.retries {
                self.recorder.retried(index, step, outcome);
                lock(&self.state).timeline.outcome(at.saturating_duration_since(self.start), outcome);
                retries += 1;
                let wait = reply.retry_after_seconds.map_or(RETRY_AFTER_DEFAULT, Duration::from_secs);
                tokio::time::sleep(retry_wait(wait, self.retry_after_max, index, retries)).await;
                continue;
            }
            if tracked {
                lock(&self.state).in_doubt.remove(&index);
            }
            return Ended { outcome, reply: Some(reply), at };
        }
    }

    /// Records how `step` of buyer `index` ended; the progress bar counts each
    /// request's failure once (the order step repeats its hold's or confirm's).
    fn finish(&self, index: u64, step: Step, outcome: Outcome, latency: Duration, code: Option<&str>) {
        self.recorder.finished(index, step, outcome, latency, code);
        if step != Step::Order {
            self.live.outcome(outcome);
        }
    }

    async fn confirm(
        &self,
        index: u64,
        buyer: &Buyer,
        customer: &str,
        hold: &str,
        due: Instant,
        hold_latency: Duration,
    ) {
        let payment_reference = format!("pay-{}-{index}", self.run_id);
        let name = format!("Buyer {index}");
        let email = format!("buyer-{}-{index}@example.com", self.run_id);
        let body = json(&ConfirmRequest {
            customer,
            payment_reference: &payment_reference,
            buyer: BuyerDetails { name: &name, email: &email },
        });
        let uri: Uri = format!("/v1/holds/{hold}/confirm").parse().expect("hold ids make valid paths");
        let key = self.key(index, "confirm");
        let in_doubt =
            InDoubt { hold: hold.to_string(), customer: customer.to_string(), body: body.clone(), key: key.clone() };
        let ended = self
            .step(index, Step::Confirm, Some(in_doubt), || {
                let mut request = self.pool.request(Method::POST, uri.clone(), Some(body.clone()));
                request.headers_mut().insert(IDEMPOTENCY_KEY, key.clone());
                request
            })
            .await;
        let latency = ended.at.saturating_duration_since(due);
        let order = match (&ended.outcome, &ended.reply) {
            (Outcome::Success, Some(reply)) => wire::order(&reply.body),
            _ => None,
        };
        let outcome = match (ended.outcome, &order) {
            (Outcome::Success, None) => Outcome::BadReply,
            (outcome, _) => outcome,
        };
        let code = ended.reply.as_ref().filter(|_| outcome != Outcome::Success).and_then(wire::error_code);
        self.finish(index, Step::Confirm, outcome, latency, code.as_deref());
        self.finish(index, Step::Order, outcome, hold_latency + latency, code.as_deref());
        let elapsed = ended.at.saturating_duration_since(self.start);
        let mut state = lock(&self.state);
        state.timeline.outcome(elapsed, outcome);
        let phase = &mut state.phases[buyer.phase as usize];
        match outcome {
            Outcome::Success => {
                phase.confirms += 1;
                phase.order_latency.saturating_record(micros(hold_latency + latency));
            }
            Outcome::Conflict => phase.conflicts += 1,
            outcome if outcome.is_rejection() => phase.rejected += 1,
            _ => phase.errors += 1,
        }
        match outcome {
            Outcome::Success => state.buyers.confirmed += 1,
            outcome if outcome.is_rejection() => state.buyers.rejected += 1,
            _ => state.buyers.errors += 1,
        }
        let Some(order) = order else { return };
        let seats = order.tickets.len() as u64;
        let interval = state.timeline.at(elapsed);
        interval.counts.confirms += 1;
        interval.counts.seats_sold += seats;
        interval.confirm_latency.get_or_insert_with(small_histogram).saturating_record(micros(latency));
        let sold = self.seats_sold.fetch_add(seats, Ordering::Relaxed) + seats;
        if self.capacity > 0 && self.sold_before + sold >= self.capacity && state.sold_out_at.is_none() {
            state.sold_out_at = Some(elapsed);
        }
        state.orders.push(LedgerOrder {
            id: order.id,
            customer: customer.to_string(),
            section: order.section,
            tickets: order.tickets,
        });
        self.recorder.sold(index, seats);
    }
}

/// Sends every in-doubt confirm again with its `Idempotency-Key`: the server answers
/// with the first attempt's result (or runs it now, if it never arrived). Sold ones go
/// into the ledger; returns the holds whose outcome stayed unknown.
async fn resolve_in_doubt(run: &Run, in_doubt: Vec<InDoubt>) -> Vec<String> {
    let mut unresolved = Vec::new();
    for confirm in in_doubt {
        let uri: Uri = format!("/v1/holds/{}/confirm", confirm.hold).parse().expect("hold ids make valid paths");
        let reply = send_retrying(
            &run.pool,
            || {
                let mut request = run.pool.request(Method::POST, uri.clone(), Some(confirm.body.clone()));
                request.headers_mut().insert(IDEMPOTENCY_KEY, confirm.key.clone());
                request
            },
            run.request_timeout,
        )
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
        let seats = order.tickets.len() as u64;
        run.seats_sold.fetch_add(seats, Ordering::Relaxed);
        lock(&run.state).orders.push(LedgerOrder {
            id: order.id,
            customer: confirm.customer,
            section: order.section,
            tickets: order.tickets,
        });
    }
    unresolved
}

fn progress_line(run: &Run, span: Duration, last: bool) -> String {
    let elapsed = run.start.elapsed();
    let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    let fraction = if span.is_zero() { 1.0 } else { (elapsed.as_secs_f64() / span.as_secs_f64()).min(1.0) };
    let filled = (fraction * PROGRESS_BAR_WIDTH as f64).round() as usize;
    let phase = if elapsed > span { "draining" } else { "" };
    format!(
        "[{}{}] {:>3.0}% {:>7.1}/{:.1} s {phase:<8}  arrived {}/{}  in flight {}  sold {} seats  conflicts {}  rejected {}  errors {}{}",
        "#".repeat(filled),
        "-".repeat(PROGRESS_BAR_WIDTH - filled),
        fraction * 100.0,
        elapsed.as_secs_f64(),
        span.as_secs_f64(),
        load(&run.live.arrivals_launched),
        run.buyers.len(),
        load(&run.live.in_flight),
        load(&run.seats_sold),
        load(&run.live.conflicts),
        load(&run.live.rejections),
        load(&run.live.errors),
        if last { "" } else { "   " },
    )
}

/// A bar redrawn in place on a terminal; a line every few seconds into a log.
async fn print_progress(run: Arc<Run>, span: Duration) {
    let terminal = std::io::stderr().is_terminal();
    let interval = if terminal { PROGRESS_TERMINAL_INTERVAL } else { PROGRESS_LOG_INTERVAL };
    let mut ticks = tokio::time::interval_at(run.start + interval, interval);
    loop {
        ticks.tick().await;
        let line = progress_line(&run, span, false);
        if terminal {
            eprint!("\r{line}");
        } else {
            eprintln!("{line}");
        }
    }
}

/// What `replay` was asked to do.
#[derive(Clone, Debug, Serialize)]
pub struct ReplaySettings {
    pub queue: String,
    pub shape: String,
    pub seed: u64,
    pub event: String,
    pub target: String,
    pub run_id: String,
    pub time_scale: f64,
    pub connections: usize,
    pub in_flight_max: u64,
    pub retries: u32,
    pub threads: usize,
}

/// One phase's line of the report.
#[derive(Clone, Debug, Serialize)]
pub struct PhaseReport {
    pub name: String,
    pub buyers: u64,
    pub holds: u64,
    pub confirms: u64,
    pub conflicts: u64,
    pub rejected: u64,
    pub errors: u64,
    pub hold_latency_us: Latency,
    pub order_latency_us: Latency,
}

impl PhaseReport {
    fn new(name: String, phase: &PhaseStats) -> PhaseReport {
        PhaseReport {
            name,
            buyers: phase.buyers,
            holds: phase.holds,
            confirms: phase.confirms,
            conflicts: phase.conflicts,
            rejected: phase.rejected,
            errors: phase.errors,
            hold_latency_us: Latency::of(&phase.hold_latency),
            order_latency_us: Latency::of(&phase.order_latency),
        }
    }
}

/// The whole result of a replay, as printed and as `--json`.
#[derive(Clone, Debug, Serialize)]
pub struct ReplayReport {
    pub settings: ReplaySettings,
    pub stopped_early: bool,
    /// From the first to the last arrival of the (scaled) schedule.
    pub schedule_seconds: f64,
    /// From the start to the end of the drain.
    pub elapsed_seconds: f64,
    pub buyers: BuyerCounts,
    /// How late buyers started after their scheduled time (the driver's own lag).
    pub start_lag_us: Latency,
    /// availability, hold, confirm, release, order; rates per second of the schedule.
    pub steps: Vec<StepReport>,
    pub phases: Vec<PhaseReport>,
    /// Seats in the orders confirmed by this run.
    pub seats_sold: u64,
    /// Seats of the event, and those sold before the run.
    pub capacity: u64,
    pub sold_before: u64,
    /// When every seat of the event was sold, seconds after the start.
    pub sold_out_at_seconds: Option<f64>,
    /// When a hold was first refused as sold out.
    pub first_sold_out_refusal_at_seconds: Option<f64>,
    pub timeline: TimelineReport,
    pub driver: crate::stats::DriverReport,
    /// `None` with `--no-verdict`.
    pub verdict: Option<Verdict>,
}

impl ReplayReport {
    /// False when the verdict found a violation.
    pub fn passed(&self) -> bool {
        self.verdict.as_ref().is_none_or(Verdict::passed)
    }
}

fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

impl std::fmt::Display for ReplayReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let settings = &self.settings;
        let buyers = &self.buyers;
        writeln!(
            f,
            "hakken-loadtest replay: {} ({}, seed {}) for event {} against {} (run {}), time scale {}, {} connections",
            settings.queue,
            settings.shape,
            settings.seed,
            settings.event,
            settings.target,
            settings.run_id,
            settings.time_scale,
            settings.connections
        )?;
        writeln!(
            f,
            "schedule {:.1} s, ran {:.1} s{}; start lag p99 {} ms, max {} ms",
            self.schedule_seconds,
            self.elapsed_seconds,
            if self.stopped_early { " (stopped early)" } else { "" },
            ms(self.start_lag_us.p99),
            ms(self.start_lag_us.max)
        )?;
        writeln!(
            f,
            "buyers: {} arrived, {} dropped by the driver (in flight >= {}), {} gave up after polling, {} held, \
             {} confirmed, {} abandoned, {} left to expire, {} refused (409), {} rejected (503/429 after {} retries), \
             {} errors, {} unfinished",
            buyers.arrived,
            buyers.dropped_by_driver,
            settings.in_flight_max,
            buyers.gave_up_after_poll,
            buyers.held,
            buyers.confirmed,
            buyers.abandoned,
            buyers.left_to_expire,
            buyers.hold_conflicts,
            buyers.rejected,
            settings.retries,
            buyers.errors,
            buyers.unfinished
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "{:<12} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7} {:>6} {:>9}  {:>8} {:>8} {:>8} {:>8} {:>8}",
            "step",
            "count",
            "ok",
            "conflict",
            "rejected",
            "retried",
            "errors",
            "unfin",
            "ok/s",
            "p50",
            "p90",
            "p99",
            "p99.9",
            "max"
        )?;
        for step in &self.steps {
            let counts = &step.counts;
            let latency = &step.latency_success_us;
            writeln!(
                f,
                "{:<12} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7} {:>6} {:>9.1}  {:>8} {:>8} {:>8} {:>8} {:>8}",
                step.step,
                counts.sent,
                counts.success,
                counts.conflict,
                counts.rejected_busy_503 + counts.rejected_rate_limited_429,
                counts.retried_after_503 + counts.retried_after_429,
                counts.errors(),
                step.unfinished,
                step.success_per_second,
                ms(latency.p50),
                ms(latency.p90),
                ms(latency.p99),
                ms(latency.p999),
                ms(latency.max)
            )?;
        }
        writeln!(f, "latency in ms of the successful requests, from when each step was due; order = hold + confirm")?;
        for step in self.steps.iter().filter(|step| !step.error_codes.is_empty() && step.step != Step::Order.name()) {
            let codes: Vec<String> = step.error_codes.iter().map(|(code, count)| format!("{code} x{count}")).collect();
            writeln!(f, "{} refusals: {}", step.step, codes.join(", "))?;
        }
        for step in self.steps.iter().filter(|step| step.counts.errors() > 0 && step.step != Step::Order.name()) {
            let counts = &step.counts;
            let mut parts: Vec<String> =
                step.other_statuses.iter().map(|(status, count)| format!("status {status} x{count}")).collect();
            for (what, count) in [
                ("timeout", counts.timeout),
                ("connection error", counts.connection_error),
                ("malformed reply", counts.bad_reply),
            ] {
                if count > 0 {
                    parts.push(format!("{what} x{count}"));
                }
            }
            writeln!(f, "{} errors: {}", step.step, parts.join(", "))?;
        }
        if self.phases.len() > 1 {
            writeln!(f)?;
            writeln!(
                f,
                "{:<28} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7}  {:>9} {:>9} {:>10}",
                "phase",
                "buyers",
                "holds",
                "confirms",
                "conflict",
                "rejected",
                "errors",
                "hold p50",
                "hold p99",
                "order p99"
            )?;
            for phase in &self.phases {
                writeln!(
                    f,
                    "{:<28} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7}  {:>9} {:>9} {:>10}",
                    phase.name,
                    phase.buyers,
                    phase.holds,
                    phase.confirms,
                    phase.conflicts,
                    phase.rejected,
                    phase.errors,
                    ms(phase.hold_latency_us.p50),
                    ms(phase.hold_latency_us.p99),
                    ms(phase.order_latency_us.p99)
                )?;
            }
        }
        writeln!(f)?;
        let sold_total = self.sold_before + self.seats_sold;
        let share = if self.capacity == 0 { 0.0 } else { sold_total as f64 * 100.0 / self.capacity as f64 };
        write!(
            f,
            "sold: {} seats by this run; the event has {sold_total} of {} sold ({share:.1}%)",
            self.seats_sold, self.capacity
        )?;
        match self.sold_out_at_seconds {
            Some(at) => write!(f, "; sold out {at:.1} s after the start")?,
            None => write!(f, "; not sold out")?,
        }
        if let Some(at) = self.first_sold_out_refusal_at_seconds {
            write!(f, "; first 'sold out' refusal at {at:.1} s")?;
        }
        writeln!(f)?;
        let driver = &self.driver;
        writeln!(
            f,
            "driver CPU: {:.2} s for {} requests = {:.1} µs/request; {:.2} cores busy",
            driver.cpu_user_seconds + driver.cpu_system_seconds,
            driver.requests_total,
            driver.cpu_us_per_request,
            driver.cores_busy
        )?;
        if let Some(verdict) = &self.verdict {
            write!(f, "{verdict}")?;
        }
        Ok(())
    }
}

/// The signed code of every ticket of the ledger's orders (`GET /v1/tickets/{id}`).
pub async fn ticket_codes(target: &str, ledger: &Ledger, timeout: Duration) -> anyhow::Result<Vec<String>> {
    use futures_util::stream::{self, StreamExt};

    #[derive(serde::Deserialize)]
    struct TicketReply {
        ticket: TicketCode,
    }
    #[derive(serde::Deserialize)]
    struct TicketCode {
        code: String,
    }
    let pool = Pool::new(Target::resolve(target).await?, PoolConfig { connections_max: 32, connect_timeout: timeout });
    let pool = &pool;
    let requests = ledger.orders.iter().flat_map(|order| {
        order.tickets.iter().map(move |ticket| {
            let path = format!("/v1/tickets/{}?customer={}", ticket.id, crate::client::query_escape(&order.customer));
            async move {
                let reply: TicketReply = crate::layout::get_json(pool, &path, timeout).await?;
                anyhow::Ok(reply.ticket.code)
            }
        })
    });
    stream::iter(requests).buffered(32).collect::<Vec<_>>().await.into_iter().collect()
}

/// Runs the verdict alone against a ledger written earlier (`verify`).
pub async fn verify(target: &str, ledger: &Ledger, timeout: Duration) -> anyhow::Result<Verdict> {
    let target = Target::resolve(target).await?;
    let pool = Pool::new(target, PoolConfig { connections_max: 32, connect_timeout: timeout });
    let observed = Observed::fetch(&pool, ledger, timeout).await?;
    Ok(verdict::check(ledger, &observed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::{SeatCounts, SectionCounts};
    use std::collections::BTreeMap;

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

    #[test]
    fn the_timeline_buckets_by_interval() {
        let mut timeline = Timeline::new(Duration::from_secs(30));
        assert_eq!(timeline.interval, Duration::from_secs(1));
        timeline.at(Duration::from_millis(1500)).counts.arrivals += 2;
        timeline.outcome(Duration::from_millis(2100), Outcome::Busy);
        timeline.outcome(Duration::from_millis(2200), Outcome::Conflict);
        let report = timeline.report(Some(Duration::from_secs(2)));
        assert_eq!(report.points.len(), 3);
        assert_eq!(report.points[1].arrivals, 2);
        assert_eq!((report.points[2].rejected, report.points[2].conflicts), (1, 1));
        assert_eq!(report.points[2].t_seconds, 2.0);
        assert_eq!(report.sold_out_at_seconds, Some(2.0));
        assert_eq!(Timeline::new(Duration::from_secs(3000)).interval, Duration::from_secs(5));
        let mut long = Timeline::new(Duration::from_secs(1));
        long.at(Duration::from_secs(1_000_000)).counts.errors += 1;
        assert_eq!(long.points.len(), TIMELINE_INTERVALS_MAX);
    }
}
