//! The open-loop driver: paces arrivals ([`crate::schedule`]), runs each one's requests
//! over the connection pool ([`crate::client`]) and records what happened
//! ([`crate::stats`]).
//!
//! An arrival is one buyer: a best-available hold, then, if it was granted, its
//! confirmation (or, with `--plain-get`, one GET; with `--scan-codes`, one scan).
//! Arrivals run as their own tasks, so none waits for another; at most `in_flight_max`
//! run at once, and an arrival due when that many are in flight is dropped and
//! counted, never queued: an unbounded queue in the driver would hide that the server
//! (or the driver) cannot keep up.
//!
//! This module resolves what arrivals need before the clock starts, paces them and
//! drains; `arrival` is what one arrival does, `report` what the run reports.

mod arrival;
mod report;

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{ensure, Context};
use hyper::header::HeaderValue;
use hyper::Uri;
use tokio::sync::Notify;
use tokio::time::Instant;

pub use self::report::{ArrivalReport, Report, RunSettings, ServerCpuReport};
use crate::client::{Pool, PoolConfig, Target};
use crate::cpu::CpuTime;
use crate::layout::{Layout, SectionKind};
use crate::schedule::{pace, Arrival, PaceEnd, Schedule};
use crate::sinks::{SinkConfig, Sinks};
use crate::stats::{Live, Recorder, Step};

/// How often the progress line is printed.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);
/// Sections named in the report's description of the workload; the rest are "...".
const DESCRIBED_SECTIONS_MAX: usize = 8;
/// How often the drain checks whether the last arrivals finished.
const DRAIN_POLL_INTERVAL: Duration = Duration::from_millis(5);

/// What each arrival does.
#[derive(Clone, Debug)]
pub enum Workload {
    /// Hold, then confirm: one order per arrival.
    Orders(OrderConfig),
    /// One `GET path` per arrival (measures the driver against `serve-trivial`).
    PlainGet { path: String },
    /// One `POST /v1/scan` per arrival, of the next code of the list, at one of
    /// `gates` gates, with `Authorization: Bearer <gate_token>`.
    Scans { codes: Arc<Vec<String>>, gate_token: String, gates: u32 },
}

/// Which sections holds ask for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sections {
    /// Every reserved section of the event, read from `GET /v1/events/{event}`.
    Auto,
    List(Vec<String>),
}

/// How an arrival picks its section from the list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SectionPick {
    /// Arrival i takes section i mod n.
    RoundRobin,
    /// A uniformly random section per arrival.
    Random,
}

#[derive(Clone, Debug)]
pub struct OrderConfig {
    pub event: String,
    pub sections: Sections,
    pub section_pick: SectionPick,
    /// Seats per hold.
    pub quantity: u32,
    /// Distinct customers; arrival i buys as customer `i mod customers`. `None`: every
    /// arrival is a new customer.
    pub customers: Option<u64>,
    /// Send an `Idempotency-Key` with every POST.
    pub idempotency: bool,
    /// Pay at the PSP as a browser does (checkout, PSP confirm, poll for the order)
    /// instead of confirming on trust.
    pub pay: bool,
    /// With `pay`: check the hold out in the hold request (`checkout` in its body)
    /// instead of a `POST /v1/holds/{hold}/checkout` of its own.
    pub hold_checkout: bool,
    /// `Authorization: Bearer` of trusted confirms (hakken's `sales_token`).
    pub sales_token: Option<String>,
    /// How long an arrival polls its payment for the order.
    pub payment_poll_timeout: Duration,
}

/// Everything a run needs; the CLI's `run` flags.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// Base URL, `http://host:port`.
    pub target: String,
    pub workload: Workload,
    pub rate_per_second: f64,
    /// Unmeasured time before the measured window.
    pub warmup: Duration,
    /// The measured window.
    pub duration: Duration,
    pub connections: usize,
    pub in_flight_max: u64,
    /// Per request, from the start of its step (waiting for a connection included).
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    /// How long to wait for arrivals still in flight after the last one was launched.
    pub drain_timeout: Duration,
    /// Prefix of customer ids and idempotency keys; random when `None`.
    pub run_id: Option<String>,
    /// Print a progress line to stderr every second.
    pub progress: bool,
    /// Runtime worker threads (the caller builds the runtime; only reported here).
    pub threads: usize,
    /// The server's process id: its CPU time over the run is reported per completed order.
    pub server_pid: Option<u32>,
    /// Receive the server's notifications and report their lag (order workload only).
    pub sinks: SinkConfig,
}

/// What an order arrival needs, resolved before the clock starts.
struct OrderPlan {
    event: String,
    holds_uri: Uri,
    sections: Vec<String>,
    section_pick: SectionPick,
    quantity: u32,
    customers: Option<u64>,
    idempotency: bool,
    /// Paying at the PSP; `None`: trusted confirms.
    pay: Option<Box<PlanPay>>,
    /// `Bearer <sales token>` of trusted confirms.
    sales_authorization: Option<HeaderValue>,
}

/// The PSP of a paying run.
struct PlanPay {
    psp: Pool,
    /// The checkout goes in the hold request.
    with_hold: bool,
    publishable_key: HeaderValue,
    poll_timeout: Duration,
}

enum PlanKind {
    Orders(OrderPlan),
    PlainGet { uri: Uri },
    Scans { codes: Arc<Vec<String>>, authorization: HeaderValue, gates: u32 },
}

/// Shared by every arrival of a run.
struct Plan {
    pool: Pool,
    kind: PlanKind,
    run_id: String,
    /// Salt of `--section-pick random`.
    pick_salt: u64,
    request_timeout: Duration,
    in_flight_max: u64,
    recorder: Recorder,
    live: Live,
    /// Wakes the pacer on every reply; see [`crate::schedule`].
    nudge: Arc<Notify>,
    /// The notification sinks, told of every acknowledged order.
    sinks: Option<Arc<Sinks>>,
}

/// Runs the load described by `config` until its schedule ends or `stop` completes,
/// waits (bounded) for the arrivals in flight, and reports. Must run inside a tokio
/// runtime with I/O and time enabled.
pub async fn run(config: RunConfig, stop: impl Future<Output = ()>) -> anyhow::Result<Report> {
    ensure!(config.rate_per_second > 0.0 && config.rate_per_second.is_finite(), "--rate must be positive");
    ensure!(config.connections > 0, "--connections must be at least 1");
    ensure!(config.in_flight_max > 0, "--in-flight-max must be at least 1");
    let target = Target::resolve(&config.target).await?;
    let pool =
        Pool::new(target, PoolConfig { connections_max: config.connections, connect_timeout: config.connect_timeout });
    pool.connect_all().await.with_context(|| format!("cannot connect to {}", config.target))?;
    let kind = prepare(&pool, &config, config.request_timeout).await?;
    ensure!(
        !config.sinks.enabled() || matches!(kind, PlanKind::Orders(_)),
        "--smtp-sink and --webhook-sink need the order workload (not --plain-get or --scan-codes)"
    );
    let sinks = Sinks::start(&config.sinks)?;
    let run_id = config.run_id.clone().unwrap_or_else(|| format!("{:08x}", rand::random::<u32>()));
    let plan = Arc::new(Plan {
        pool,
        kind,
        run_id,
        pick_salt: rand::random(),
        request_timeout: config.request_timeout,
        in_flight_max: config.in_flight_max,
        recorder: Recorder::default(),
        live: Live::default(),
        nudge: Arc::new(Notify::new()),
        sinks,
    });

    let schedule = Schedule::new(config.rate_per_second, config.warmup, config.duration);
    let server_before = config.server_pid.map(CpuTime::of_pid).transpose()?;
    let cpu_before = CpuTime::now()?;
    let start = Instant::now();
    if let Some(sinks) = &plan.sinks {
        sinks.begin(start + schedule.measure_offset());
    }
    let progress = config.progress.then(|| tokio::spawn(print_progress(plan.clone(), start)));
    let mut last_measured_launch = None;
    let end = pace(&schedule, start, stop, &plan.nudge, |arrival| {
        let now = launch(&plan, arrival);
        if arrival.measured {
            last_measured_launch = Some(now);
        }
    })
    .await;
    drain(&plan.live, config.drain_timeout).await;
    let elapsed = start.elapsed();
    let cpu = CpuTime::now()?.since(cpu_before);
    let server_cpu = match (config.server_pid, server_before) {
        (Some(pid), Some(before)) => Some(CpuTime::of_pid(pid)?.since(before)),
        _ => None,
    };
    if let Some(progress) = progress {
        progress.abort();
    }
    // After the load's own numbers are taken: waiting for notices is not part of them.
    let notifications = match &plan.sinks {
        Some(sinks) => {
            if config.progress {
                eprintln!(
                    "waiting (at most {:?}) for the notifications still to come; Ctrl-C stops the wait",
                    config.sinks.drain_timeout
                );
            }
            Some(sinks.finish(Instant::now(), config.server_pid, interrupted()).await?)
        }
        None => None,
    };

    let paced = Paced { end, last_measured_launch, start, elapsed, cpu, server_cpu };
    Ok(report::report(&config, &plan, &schedule, paced, notifications))
}

/// How pacing went, for the report.
struct Paced {
    end: PaceEnd,
    /// When the last measured arrival was launched (or dropped).
    last_measured_launch: Option<Instant>,
    start: Instant,
    /// From the start to the end of the drain.
    elapsed: Duration,
    /// The process's CPU time over `elapsed`.
    cpu: CpuTime,
    /// The server's (`--server-pid`) over the same time.
    server_cpu: Option<CpuTime>,
}

impl PlanKind {
    /// One line for the report.
    fn describe(&self) -> String {
        match self {
            PlanKind::Orders(plan) => {
                let shown = plan.sections.len().min(DESCRIBED_SECTIONS_MAX);
                let more = if shown < plan.sections.len() { ",..." } else { "" };
                let how = if plan.pay.is_some() { "paid orders (PSP)" } else { "orders" };
                format!(
                    "{how} of {} seats for event {} in {} section(s) ({}{more})",
                    plan.quantity,
                    plan.event,
                    plan.sections.len(),
                    plan.sections[..shown].join(",")
                )
            }
            PlanKind::PlainGet { uri } => format!("plain GET {uri}"),
            PlanKind::Scans { codes, gates, .. } => format!("scans of {} codes at {gates} gates", codes.len()),
        }
    }

    /// The steps an arrival goes through; the last is the whole arrival.
    fn steps(&self) -> &'static [Step] {
        match self {
            PlanKind::Orders(plan) if plan.pay.is_some() => {
                &[Step::Hold, Step::Checkout, Step::PspConfirm, Step::Payment, Step::Order]
            }
            PlanKind::Orders(_) => &[Step::Hold, Step::Confirm, Step::Order],
            PlanKind::PlainGet { .. } => &[Step::Get],
            PlanKind::Scans { .. } => &[Step::Scan],
        }
    }
}

/// Resolves what arrivals need before the clock starts: URIs, for `--sections auto`
/// the event's reserved sections, and for `--pay` the PSP (connected).
async fn prepare(pool: &Pool, run: &RunConfig, timeout: Duration) -> anyhow::Result<PlanKind> {
    match &run.workload {
        Workload::Scans { codes, gate_token, gates } => {
            ensure!(!codes.is_empty(), "the codes file has no codes");
            ensure!(*gates > 0, "--gates must be at least 1");
            let authorization = HeaderValue::try_from(format!("Bearer {gate_token}"))
                .context("the gate token does not fit in a header")?;
            Ok(PlanKind::Scans { codes: codes.clone(), authorization, gates: *gates })
        }
        Workload::PlainGet { path } => {
            let uri = path.parse().with_context(|| format!("--plain-get {path:?} is not a path"))?;
            Ok(PlanKind::PlainGet { uri })
        }
        Workload::Orders(config) => {
            ensure!(config.quantity > 0, "--quantity must be at least 1");
            ensure!(config.customers != Some(0), "--customers must be at least 1");
            let sections = match &config.sections {
                Sections::List(sections) => sections.clone(),
                Sections::Auto => reserved_sections(pool, &config.event, timeout).await?,
            };
            ensure!(!sections.is_empty(), "no sections to hold seats in");
            let holds = format!("/v1/events/{}/holds", config.event);
            let pay = if config.pay { Some(Box::new(connect_psp(pool, run, config, timeout).await?)) } else { None };
            let sales_authorization = config.sales_token.as_deref().map(crate::psp::bearer).transpose()?;
            Ok(PlanKind::Orders(OrderPlan {
                event: config.event.clone(),
                holds_uri: holds
                    .parse()
                    .with_context(|| format!("event id {:?} does not fit in a path", config.event))?,
                sections,
                section_pick: config.section_pick,
                quantity: config.quantity,
                customers: config.customers,
                idempotency: config.idempotency,
                pay,
                sales_authorization,
            }))
        }
    }
}

/// The PSP hakken names in `GET /v1/payments/config`, with `--connections` connections open.
async fn connect_psp(pool: &Pool, run: &RunConfig, config: &OrderConfig, timeout: Duration) -> anyhow::Result<PlanPay> {
    let server = crate::psp::PaymentsConfig::fetch(pool, timeout, true)
        .await?
        .filter(|server| !server.is_external() && !server.api_base.is_empty())
        .context("--pay: the server takes no payments at a PSP (GET /v1/payments/config)")?;
    let target = Target::resolve(&server.api_base).await.context("the PSP's api_base")?;
    let psp = Pool::new(target, PoolConfig { connections_max: run.connections, connect_timeout: run.connect_timeout });
    psp.connect_all().await.with_context(|| format!("cannot connect to the PSP at {}", server.api_base))?;
    Ok(PlanPay {
        psp,
        with_hold: config.hold_checkout,
        publishable_key: crate::psp::bearer(&server.publishable_key)?,
        poll_timeout: config.payment_poll_timeout,
    })
}

/// The ids of the event's reserved sections, from `GET /v1/events/{event}`.
async fn reserved_sections(pool: &Pool, event: &str, timeout: Duration) -> anyhow::Result<Vec<String>> {
    let layout = Layout::fetch(pool, event, false, timeout).await?;
    Ok(layout
        .sections
        .into_iter()
        .filter(|section| section.kind == SectionKind::Reserved)
        .map(|section| section.id)
        .collect())
}

/// Starts `arrival` unless too many are in flight; returns when it did.
fn launch(plan: &Arc<Plan>, arrival: Arrival) -> Instant {
    let now = Instant::now();
    let live = &plan.live;
    if live.in_flight.load(Ordering::Relaxed) >= plan.in_flight_max {
        Live::count(&live.arrivals_dropped);
        if arrival.measured {
            plan.recorder.dropped(arrival.index);
        }
        return now;
    }
    live.in_flight.fetch_add(1, Ordering::Relaxed);
    Live::count(&live.arrivals_launched);
    if arrival.measured {
        plan.recorder.launched(arrival.index, now.saturating_duration_since(arrival.scheduled));
    }
    tokio::spawn(arrival::run_arrival(plan.clone(), arrival));
    now
}

/// Completes on Ctrl-C (never, without signal handling).
async fn interrupted() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Waits until no arrival is in flight, or `timeout`.
async fn drain(live: &Live, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while live.in_flight.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
        tokio::time::sleep(DRAIN_POLL_INTERVAL).await;
    }
}

async fn print_progress(plan: Arc<Plan>, start: Instant) {
    let mut ticks = tokio::time::interval_at(start + PROGRESS_INTERVAL, PROGRESS_INTERVAL);
    loop {
        ticks.tick().await;
        eprintln!("{}", plan.live.progress_line(start.elapsed()));
    }
}
