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
//!
//! When the server takes payments at a PSP (`GET /v1/payments/config` says a provider
//! other than `external`), buyers who buy pay as a browser does instead of confirming
//! on trust: checkout, confirm at the PSP, poll for the order (`pay`); the verdict then
//! also checks the money ([`crate::verdict::payments`]), once hakken's captures and
//! voids have settled (at most `--payment-settle`).
//!
//! - `buyer`: one buyer's state machine, its retries, and resolving in-doubt confirms;
//! - `pay`: paying at the PSP, and resolving payments in doubt;
//! - `tally`: what buyers' stories add up to (per phase, per interval, the ledger);
//! - `overload`: stalled seconds, goodput and refusal latency per phase window;
//! - `progress`: the live progress line; `report`: the report and its text.
//!
//! This module is the run loop: connect, read the baseline, pace the buyers, drain,
//! resolve what is in doubt, read the verdict, and assemble the report.

mod buyer;
mod overload;
mod pay;
mod progress;
mod report;
mod room;
mod storm;
mod tally;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{ensure, Context};
use hyper::header::HeaderValue;
use hyper::Uri;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::Instant;

use self::overload::PhaseWindows;
use self::pay::Pay;
pub use self::pay::{LateReport, PaymentMode, PaymentReport, PaymentSettings};
pub use self::report::{BuyerCounts, OverloadReport, PhaseReport, PhaseWindowReport, ReplayReport, ReplaySettings};
pub use self::room::{
    eta_error, parse_instant_ms, spearman, EtaErrorReport, FairnessReport, Seconds, WaitingRoomMode, WaitingRoomReport,
};
use self::room::{Clock, EventSale, Room};
use self::storm::{Control, Squall};
pub use self::storm::{StormReport, StormSettings, SQUALLS};
use self::tally::{InDoubt, RunState};
use crate::client::{Pool, PoolConfig, Target};
use crate::cpu::CpuTime;
use crate::psp::{self, PaymentsConfig};
use crate::queue::{Buyer, Header, Queue, Then};
use crate::schedule::{pace, Arrival, PaceEnd, Schedule};
use crate::server_metrics::{Peaks, Scrape, ServerFigures, ServerMetrics};
use crate::stats::{DriverReport, Latency, Live, Recorder, Step, StepReport};
use crate::verdict::{self, Availability, Ledger, Observed, PaymentSources, PaymentsObserved, Verdict};

/// The steps of a buyer who confirms on trust, in the report's order.
pub const STEPS: [Step; 5] = [Step::Availability, Step::Hold, Step::Confirm, Step::Release, Step::Order];
/// The steps of a buyer who pays at the PSP, in the report's order.
pub const PAYING_STEPS: [Step; 7] =
    [Step::Availability, Step::Hold, Step::Checkout, Step::PspConfirm, Step::Payment, Step::Release, Step::Order];
/// How often the verdict reads a paying run's state again while payments settle.
const SETTLE_READ_INTERVAL: Duration = Duration::from_millis(500);
/// Largest `--time-scale`: a week-long file played a thousand times slower is already
/// two decades.
const TIME_SCALE_MAX: f64 = 1000.0;
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
    /// Connections for waiting-room long polls, apart from `connections` (0: buyers
    /// near their turn poll as told instead of waiting on a long poll).
    pub queue_long_polls: usize,
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
    /// How buyers pay, and what the verdict reads of the money.
    pub payments: PaymentSettings,
    /// The server's metrics endpoint (`http://host:port`): read before, during and
    /// after the run, for the report's sale-level figures as the server counts them.
    pub server_metrics: Option<String>,
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
    event: String,
    run_id: String,
    time_scale: f64,
    holds_uri: Uri,
    availability_uri: Uri,
    request_timeout: Duration,
    retries: u32,
    retry_after_max: Duration,
    in_flight_max: u64,
    start: Instant,
    /// From the start to the last arrival (scaled).
    span: Duration,
    /// Seats of the event and those sold before the run, to tell when it sold out.
    capacity: u64,
    sold_before: u64,
    recorder: Recorder,
    live: Live,
    seats_sold: AtomicU64,
    nudge: Arc<Notify>,
    state: Mutex<RunState>,
    /// Paying at the PSP; `None`: buyers confirm on trust.
    pay: Option<Pay>,
    /// `Bearer <--sales-token>` of trusted confirms.
    sales_authorization: Option<HeaderValue>,
    /// The webhook storm: the fake PSP's control API, the squalls, how long each blows.
    storm: Option<Storm>,
    /// In waiting-room mode: the room buyers join and wait in.
    room: Option<Room>,
}

struct Storm {
    control: Control,
    squalls: Vec<Squall>,
    every: Duration,
    report: Mutex<StormReport>,
}

/// When the buyers of the file arrive, as played (scaled, cut to `--duration`).
struct Timing {
    /// Each buyer's arrival after the start, in order.
    offsets: Vec<Duration>,
    /// The last arrival's offset.
    span: Duration,
    drain_timeout: Duration,
    in_flight_max: u64,
}

/// How the pacing and the drain ended.
struct Played {
    end: PaceEnd,
    /// From the start to the last launch (the window of the step rates).
    schedule_elapsed: Duration,
    /// From the start to the end of the drain.
    elapsed: Duration,
    /// Buyers still running when the drain ended.
    unfinished: u64,
    cpu: CpuTime,
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
    replay_with(queue, source, config, WaitingRoomMode::Auto, stop).await
}

/// [`replay`] with `--waiting-room` `mode`. In room mode each buyer joins the event's
/// waiting room (early joiners at their `join_us`), polls it, and once admitted plays
/// their story with the access it gave. In both modes, when the sale opens in the
/// future (at most a day ahead), the file's time 0 is the opening.
pub async fn replay_with(
    queue: Queue,
    source: String,
    config: ReplayConfig,
    mode: WaitingRoomMode,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<ReplayOutcome> {
    check_config(&config)?;
    let event = config.event.clone().unwrap_or_else(|| queue.header.event.clone());
    let pool = connect(&config).await?;
    let sale = match EventSale::fetch(&pool, &event, config.request_timeout).await {
        Ok(sale) => sale,
        Err(error) if mode == WaitingRoomMode::On => return Err(error),
        Err(_) => EventSale::default(),
    };
    let in_room = match (mode, &sale.room) {
        (WaitingRoomMode::Off, _) => false,
        (WaitingRoomMode::Auto, room) => room.is_some(),
        (WaitingRoomMode::On, Some(_)) => true,
        (WaitingRoomMode::On, None) => {
            anyhow::bail!("--waiting-room on: event {event:?} has no waiting room (its `queue` is null or disabled)")
        }
    };
    let clock = Clock::now();
    let opening_ahead = sale
        .opens_at_ms
        .map(|opens_at_ms| {
            Duration::from_millis(opens_at_ms.saturating_sub(clock.unix_ms(Instant::now())).max(0) as u64)
        })
        .filter(|ahead| *ahead <= room::OPENING_AHEAD_MAX)
        .unwrap_or_default();
    let (buyers, mut timing) = arriving(queue.buyers, &config, opening_ahead, in_room);
    if in_room && config.drain_timeout.is_none() {
        // Buyers still waiting after the last join are let in at the room's pace.
        let rate = sale.room.as_ref().map_or(0.0, |room| room.admit_per_s_min).max(1.0);
        timing.drain_timeout +=
            Duration::from_secs_f64((buyers.len() as f64 / rate).min(DRAIN_TIMEOUT_MAX.as_secs_f64()));
    }
    let opening_ms = clock.unix_ms(Instant::now()) + opening_ahead.as_millis() as i64;
    let room = if in_room {
        let long_polls = (config.queue_long_polls > 0).then(|| {
            let pool_config =
                PoolConfig { connections_max: config.queue_long_polls, connect_timeout: config.connect_timeout };
            (Pool::new(pool.target().clone(), pool_config), config.queue_long_polls)
        });
        Some(Room::new(&event, clock, sale.opens_at_ms.unwrap_or(opening_ms), buyers.len(), long_polls)?)
    } else {
        None
    };
    let baseline = read_baseline(&pool, &event, &config).await?;
    let buying = buyers.iter().any(|buyer| buyer.then == Then::Confirm);
    let pay = if buying { paying(&pool, &config).await? } else { None };
    if pay.is_some() && config.drain_timeout.is_none() {
        // Paying takes longer than confirming: the polls, and late payers' waits.
        let settings = &config.payments;
        timing.drain_timeout += settings.poll_timeout;
        if settings.late_share > 0.0 {
            timing.drain_timeout += settings.late_wait_max;
        }
    }
    let sales_authorization = config.payments.sales_token.as_deref().map(psp::bearer).transpose()?;
    let storm = match (&config.payments.storm, &pay) {
        (None, _) => None,
        (Some(_), None) => anyhow::bail!("--storm: buyers confirm on trust here; a storm needs buyers who pay"),
        (Some(settings), Some(pay)) => {
            let url = settings.control.clone().unwrap_or_else(|| pay.config.api_base.clone());
            let control = Control::connect(&url, config.connect_timeout).await?;
            let report = StormReport { control: control.url().to_string(), ..StormReport::default() };
            Some(Storm { control, squalls: settings.chosen()?, every: settings.every, report: Mutex::new(report) })
        }
    };
    let run_id = config.run_id.clone().unwrap_or_else(|| format!("{:08x}", rand::random::<u32>()));
    let phase_count =
        queue.header.phases.len().max(buyers.iter().map(|buyer| buyer.phase as usize + 1).max().unwrap_or(0));
    let windows = PhaseWindows::new(timing.offsets.iter().zip(&buyers).map(|(at, buyer)| (*at, buyer.phase as usize)));
    let timeline_span = timing.span + timing.drain_timeout.min(timing.span);
    let run = Arc::new(Run {
        holds_uri: event_uri(&event, "holds")?,
        availability_uri: event_uri(&event, "availability")?,
        pool,
        buyers,
        event,
        run_id,
        time_scale: config.time_scale,
        request_timeout: config.request_timeout,
        retries: config.retries,
        retry_after_max: config.retry_after_max,
        in_flight_max: timing.in_flight_max,
        start: Instant::now(),
        span: timing.span,
        capacity: u64::from(baseline.total.capacity),
        sold_before: u64::from(baseline.total.sold),
        recorder: Recorder::default(),
        live: Live::default(),
        seats_sold: AtomicU64::new(0),
        nudge: Arc::new(Notify::new()),
        state: Mutex::new(RunState::new(phase_count, windows, timeline_span)),
        pay,
        sales_authorization,
        storm,
        room,
    });

    let watching = match &config.server_metrics {
        Some(url) => Some(Watch::start(url, &run.event, config.request_timeout).await?),
        None => None,
    };
    let played = play(&run, Schedule::at_offsets(timing.offsets), timing.drain_timeout, config.progress, stop).await?;
    let (ledger, state, resolved) = settle(&run, baseline).await;
    let server = match watching {
        Some(watch) => Some(watch.finish(&run.event).await?),
        None => None,
    };
    let verdict = if config.verdict {
        Some(
            judge(&run, &ledger, config.request_timeout)
                .await
                .context("reading the final state back for the verdict")?,
        )
    } else {
        None
    };
    let last_sale_ms = state.last_sold_at.map(|at| clock.unix_ms(run.start + at));
    let mut report = report(&run, &config, &queue.header, source, played, state, verdict);
    if let Some(room) = &run.room {
        report.waiting_room = Some(WaitingRoomReport::new(room, &run.recorder.totals(), last_sale_ms));
    }
    report.server = server;
    if let Some(payments) = report.payments.as_mut() {
        (payments.resolved_orders, payments.unresolved) = resolved;
        if let Some(storm) = &run.storm {
            let mut storm_report = lock(&storm.report).clone();
            storm_report.fake_stats = storm.control.stats().await.ok();
            payments.storm = Some(storm_report);
        }
    }
    Ok(ReplayOutcome { report, ledger })
}

/// The server's metrics through a run: the scrape before, the peaks sampled during.
struct Watch {
    metrics: Arc<ServerMetrics>,
    before: Scrape,
    peaks: Arc<Mutex<Peaks>>,
    sampler: tokio::task::JoinHandle<()>,
}

impl Watch {
    async fn start(url: &str, event: &str, timeout: Duration) -> anyhow::Result<Watch> {
        let metrics = Arc::new(ServerMetrics::connect(url, timeout).await?);
        let before = metrics.scrape().await?;
        let peaks = Arc::new(Mutex::new(Peaks::default()));
        let sampler = tokio::spawn(metrics.clone().sample_peaks(event.to_string(), peaks.clone()));
        Ok(Watch { metrics, before, peaks, sampler })
    }

    /// After the drain and the settling of payments: what the server did meanwhile.
    async fn finish(self, event: &str) -> anyhow::Result<ServerFigures> {
        self.sampler.abort();
        let after = self.metrics.scrape().await?;
        let peaks = lock(&self.peaks).clone();
        Ok(ServerFigures::between(&self.metrics.url(), event, &self.before, &after, peaks))
    }
}

/// How buyers pay: `Some` to pay at the PSP the server names, `None` to confirm on trust.
async fn paying(pool: &Pool, config: &ReplayConfig) -> anyhow::Result<Option<Pay>> {
    let settings = &config.payments;
    if settings.mode == PaymentMode::Trusted {
        return Ok(None);
    }
    let server = match PaymentsConfig::fetch(pool, config.request_timeout, settings.mode != PaymentMode::Auto).await {
        Ok(server) => server,
        Err(error) if settings.mode == PaymentMode::Auto => {
            eprintln!("warning: {error:#}; buyers confirm on trust (--payments browser to insist)");
            None
        }
        Err(error) => return Err(error),
    };
    let server = match (server, settings.mode) {
        (Some(server), _) if !server.is_external() => server,
        (_, PaymentMode::Auto) => return Ok(None),
        (server, _) => anyhow::bail!(
            "--payments browser: the server takes no payments at a PSP (provider {})",
            server.map_or("unknown: no /v1/payments/config".to_string(), |server| server.provider)
        ),
    };
    ensure!(!server.api_base.is_empty(), "the server's payments config has no api_base");
    let target = Target::resolve(&server.api_base).await.context("the PSP's api_base")?;
    let connections = settings.psp_connections.min(config.connections.max(1));
    let psp = Pool::new(target, PoolConfig { connections_max: connections, connect_timeout: config.connect_timeout });
    psp.connect_all().await.with_context(|| format!("cannot connect to the PSP at {}", server.api_base))?;
    let publishable_key = psp::bearer(&server.publishable_key)?;
    Ok(Some(Pay { psp, publishable_key, config: server, settings: settings.clone() }))
}

/// Reads the final state back and checks it. A paying run reads it again (at most
/// `--payment-settle`) while payments are still on their way (captures and voids
/// hakken has not finished, webhooks not yet delivered).
async fn judge(run: &Run, ledger: &Ledger, timeout: Duration) -> anyhow::Result<Verdict> {
    let deadline = Instant::now() + run.pay.as_ref().map_or(Duration::ZERO, |pay| pay.settings.settle_timeout);
    loop {
        let mut observed = Observed::fetch(&run.pool, ledger, timeout).await?;
        let Some(pay) = &run.pay else { return Ok(verdict::check(ledger, &observed)) };
        let sources = PaymentSources {
            psp: pay.settings.psp_secret_key.as_deref().map(|key| (&pay.psp, key)),
            admin_token: pay.settings.admin_token.as_deref(),
        };
        observed.payments =
            Some(PaymentsObserved::fetch(&run.pool, &sources, ledger, &observed.orders, timeout).await?);
        let verdict = verdict::check(ledger, &observed);
        let pending = verdict.payments.as_ref().map_or(0, |payments| payments.pending);
        if (pending == 0 && verdict.passed()) || Instant::now() >= deadline {
            return Ok(verdict);
        }
        tokio::time::sleep(SETTLE_READ_INTERVAL).await;
    }
}

fn check_config(config: &ReplayConfig) -> anyhow::Result<()> {
    ensure!(
        config.time_scale > 0.0 && config.time_scale <= TIME_SCALE_MAX,
        "--time-scale must be more than 0 and at most {TIME_SCALE_MAX}"
    );
    ensure!(config.connections > 0, "--connections must be at least 1");
    ensure!(config.in_flight_max != Some(0), "--in-flight-max must be at least 1");
    config.payments.check()
}

/// The buyers that arrive (those due within `--duration`, after scaling), and when:
/// `opening` after the start plus their scaled `at_us`; `in_room`, early joiners at
/// their (negative) `join_us` instead, no earlier than the start, and the buyers in
/// the order they join.
fn arriving(mut buyers: Vec<Buyer>, config: &ReplayConfig, opening: Duration, in_room: bool) -> (Vec<Buyer>, Timing) {
    let scale = |duration: Duration| duration.mul_f64(config.time_scale);
    if let Some(duration) = config.duration {
        buyers.retain(|buyer| scale(Duration::from_micros(buyer.at_us)) <= duration);
    }
    let offset = |buyer: &Buyer| match buyer.join_us.filter(|_| in_room) {
        Some(join_us) => opening.saturating_sub(scale(Duration::from_micros(join_us.unsigned_abs()))),
        None => opening + scale(Duration::from_micros(buyer.at_us)),
    };
    if in_room {
        buyers.sort_by_key(offset);
    }
    let offsets: Vec<Duration> = buyers.iter().map(offset).collect();
    let span = offsets.last().copied().unwrap_or_default();
    let think_max = buyers.iter().map(|buyer| scale(Duration::from_millis(buyer.think_ms))).max().unwrap_or_default();
    let drain_timeout = config.drain_timeout.unwrap_or(think_max + DRAIN_MARGIN);
    let in_flight_max = config.in_flight_max.unwrap_or(buyers.len() as u64).max(1);
    (buyers, Timing { offsets, span, drain_timeout, in_flight_max })
}

/// A pool to the target with every connection open before the first buyer is due.
async fn connect(config: &ReplayConfig) -> anyhow::Result<Pool> {
    let target = Target::resolve(&config.target).await?;
    let pool =
        Pool::new(target, PoolConfig { connections_max: config.connections, connect_timeout: config.connect_timeout });
    pool.connect_all().await.with_context(|| {
        format!(
            "cannot open {} connections to {} (is the server up, and `ulimit -n` high enough on both sides?)",
            config.connections, config.target
        )
    })?;
    Ok(pool)
}

/// The event's counts before the run. The verdict compares with them; without one they
/// only tell when the event sells out, so a target without availability (serve-trivial)
/// is fine.
async fn read_baseline(pool: &Pool, event: &str, config: &ReplayConfig) -> anyhow::Result<Availability> {
    match Availability::fetch(pool, event, config.request_timeout).await {
        Ok(baseline) => Ok(baseline),
        Err(error) if config.verdict => Err(error.context(format!("reading event {event:?} before the run"))),
        Err(_) => Ok(Availability::default()),
    }
}

fn event_uri(event: &str, suffix: &str) -> anyhow::Result<Uri> {
    format!("/v1/events/{event}/{suffix}").parse().with_context(|| format!("event id {event:?} does not fit in a path"))
}

/// Launches every buyer of `schedule` at their time until it ends or `stop` completes,
/// waits up to `drain_timeout` for those still running, and stops the rest.
async fn play(
    run: &Arc<Run>,
    schedule: Schedule,
    drain_timeout: Duration,
    show_progress: bool,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<Played> {
    let start = run.start;
    let cpu_before = CpuTime::now()?;
    let progress = show_progress.then(|| tokio::spawn(progress::print_progress(run.clone(), run.span)));
    let mut tasks = JoinSet::new();
    let storm = run.storm.is_some().then(|| {
        let run = run.clone();
        tokio::spawn(async move {
            if let Some(storm) = &run.storm {
                storm::blow(&storm.control, &storm.squalls, storm.every, &storm.report).await;
            }
        })
    });
    let poller = run.room.is_some().then(|| tokio::spawn(room::poll_due(run.clone())));
    let end = pace(&schedule, start, stop, &run.nudge, |arrival| {
        // Reap finished buyers so the set stays as small as the buyers in flight.
        while tasks.try_join_next().is_some() {}
        launch(run, &mut tasks, arrival);
    })
    .await;
    let schedule_elapsed = start.elapsed();
    let deadline = Instant::now() + drain_timeout.min(DRAIN_TIMEOUT_MAX);
    while run.live.in_flight.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
        tokio::time::sleep(DRAIN_POLL_INTERVAL).await;
    }
    if let (Some(blowing), Some(storm)) = (storm, &run.storm) {
        // The buyers are done (or the drain is over): the storm ends, and what is still
        // in doubt, the settle and the verdict see hakken recover.
        blowing.abort();
        let _ = blowing.await;
        if storm.control.calm().await.is_err() {
            lock(&storm.report).control_errors += 1;
        }
    }
    let unfinished = run.live.in_flight.load(Ordering::Relaxed);
    if let (Some(poller), Some(room)) = (poller, &run.room) {
        poller.abort();
        let _ = poller.await;
        room.stop_waiting();
    }
    // Stop the stragglers now: a buyer waking from a long think must not change the
    // server's state while the verdict reads it.
    tasks.shutdown().await;
    let elapsed = start.elapsed();
    let cpu = CpuTime::now()?.since(cpu_before);
    if let Some(progress) = progress {
        progress.abort();
        eprintln!("{}", progress::progress_line(run, run.span, true));
    }
    Ok(Played { end, schedule_elapsed, elapsed, unfinished, cpu })
}

/// Starts buyer `arrival` unless too many are in flight.
fn launch(run: &Arc<Run>, tasks: &mut JoinSet<()>, arrival: Arrival) {
    let live = &run.live;
    if live.in_flight.load(Ordering::Relaxed) >= run.in_flight_max {
        Live::count(&live.arrivals_dropped);
        run.recorder.dropped(arrival.index);
        lock(&run.state).dropped(Instant::now().saturating_duration_since(run.start));
        return;
    }
    live.in_flight.fetch_add(1, Ordering::Relaxed);
    Live::count(&live.arrivals_launched);
    let now = Instant::now();
    run.recorder.launched(arrival.index, now.saturating_duration_since(arrival.scheduled));
    let phase = run.buyers[arrival.index as usize].phase as usize;
    lock(&run.state).arrived(phase, now.saturating_duration_since(run.start));
    if run.room.is_some() {
        tasks.spawn(room::run_room_buyer(run.clone(), arrival));
    } else {
        tasks.spawn(buyer::run_buyer(run.clone(), arrival));
    }
}

/// Resolves the confirms still in doubt and takes what the buyers recorded: the
/// ledger of what the run was told, and the rest for the report.
async fn settle(run: &Run, baseline: Availability) -> (Ledger, RunState, (u64, u64)) {
    let in_doubt: Vec<InDoubt> = lock(&run.state).in_doubt.drain().map(|(_, confirm)| confirm).collect();
    let unresolved = buyer::resolve_in_doubt(run, in_doubt).await;
    let resolved = pay::resolve_payments(run).await;
    let mut state =
        std::mem::replace(&mut *lock(&run.state), RunState::new(0, PhaseWindows::default(), Duration::ZERO));
    let ledger = Ledger {
        event: run.event.clone(),
        run_id: run.run_id.clone(),
        baseline,
        orders: std::mem::take(&mut state.orders),
        unresolved_confirms: unresolved,
        payments: std::mem::take(&mut state.payments.ledger).into_values().collect(),
    };
    (ledger, state, resolved)
}

/// The report of a replay of the queue `header` describes, read from `source`.
fn report(
    run: &Run,
    config: &ReplayConfig,
    header: &Header,
    source: String,
    played: Played,
    state: RunState,
    verdict: Option<Verdict>,
) -> ReplayReport {
    let totals = run.recorder.totals();
    let mut buyers = state.buyers;
    buyers.unfinished = played.unfinished;
    buyers.arrived = totals.arrivals_launched;
    buyers.dropped_by_driver = totals.arrivals_dropped;
    let window = played.schedule_elapsed.max(Duration::from_millis(1));
    let phase_name = |index: usize| header.phases.get(index).map(|phase| phase.name.clone());
    let requests_sent = run.live.requests_sent.load(Ordering::Relaxed);
    // Each timeout ends its step, so every timed-out request is counted once, in the
    // step that sent it (the order step repeats its hold's or confirm's).
    let steps: Vec<Step> = match (run.pay.is_some(), run.room.is_some()) {
        (true, false) => PAYING_STEPS.to_vec(),
        (false, false) => STEPS.to_vec(),
        (paying, true) => [Step::QueueJoin, Step::QueuePoll]
            .into_iter()
            .chain(if paying { PAYING_STEPS.to_vec() } else { STEPS.to_vec() })
            .collect(),
    };
    let client_timeouts: u64 =
        steps.iter().filter(|step| **step != Step::Order).map(|step| totals.step(*step).counts.timeout).sum();
    let mode = if run.pay.is_some() { "browser" } else { "trusted" };
    let payments =
        (run.pay.is_some() || run.sales_authorization.is_some()).then(|| state.payments.report(mode, run.pay.as_ref()));
    ReplayReport {
        settings: ReplaySettings {
            queue: source,
            shape: header.shape.clone(),
            seed: header.seed,
            event: run.event.clone(),
            target: run.pool.target().url.clone(),
            run_id: run.run_id.clone(),
            time_scale: config.time_scale,
            connections: config.connections,
            in_flight_max: run.in_flight_max,
            retries: config.retries,
            threads: config.threads,
        },
        stopped_early: matches!(played.end, PaceEnd::Stopped { .. }),
        schedule_seconds: run.span.as_secs_f64(),
        elapsed_seconds: played.elapsed.as_secs_f64(),
        buyers,
        start_lag_us: Latency::of(&totals.start_lag),
        steps: steps.iter().map(|step| StepReport::new(*step, totals.step(*step), window)).collect(),
        overload: OverloadReport::new(state.overload.summary(), requests_sent, client_timeouts),
        redirects_followed: run.pool.redirects_followed(),
        phases: state
            .phases
            .iter()
            .enumerate()
            .map(|(index, phase)| {
                let name = phase_name(index).unwrap_or(format!("phase {index}"));
                PhaseReport::new(name, phase, state.overload.window_summary(index))
            })
            .collect(),
        seats_sold: run.seats_sold.load(Ordering::Relaxed),
        capacity: run.capacity,
        sold_before: run.sold_before,
        sold_out_at_seconds: state.sold_out_at.map(|at| at.as_secs_f64()),
        first_sold_out_refusal_at_seconds: state.first_sold_out_refusal_at.map(|at| at.as_secs_f64()),
        timeline: state.timeline.report(state.sold_out_at),
        driver: DriverReport::new(played.cpu, played.elapsed, requests_sent),
        payments,
        server: None,
        waiting_room: None,
        verdict,
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().expect("replay state lock poisoned")
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
    verify_paid(target, ledger, timeout, None, None).await
}

/// [`verify`], and for a ledger of a paying run the money too: the PSP's payments
/// (listed with `psp_secret_key`, at the PSP the server names) and hakken's reconcile
/// report (with `admin_token`).
pub async fn verify_paid(
    target: &str,
    ledger: &Ledger,
    timeout: Duration,
    psp_secret_key: Option<&str>,
    admin_token: Option<&str>,
) -> anyhow::Result<Verdict> {
    let target = Target::resolve(target).await?;
    let pool = Pool::new(target, PoolConfig { connections_max: 32, connect_timeout: timeout });
    let mut observed = Observed::fetch(&pool, ledger, timeout).await?;
    if !ledger.payments.is_empty() {
        let psp = match psp_secret_key {
            Some(key) => {
                let server = PaymentsConfig::fetch(&pool, timeout, true)
                    .await?
                    .filter(|server| !server.api_base.is_empty())
                    .context("the ledger has payments but the server names no PSP")?;
                let target = Target::resolve(&server.api_base).await.context("the PSP's api_base")?;
                Some((Pool::new(target, PoolConfig { connections_max: 4, connect_timeout: timeout }), key))
            }
            None => None,
        };
        let sources = PaymentSources { psp: psp.as_ref().map(|(pool, key)| (pool, *key)), admin_token };
        observed.payments = Some(PaymentsObserved::fetch(&pool, &sources, ledger, &observed.orders, timeout).await?);
    }
    Ok(verdict::check(ledger, &observed))
}
