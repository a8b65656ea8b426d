//! The open-loop driver: paces arrivals ([`crate::schedule`]), runs each one's requests
//! over the connection pool ([`crate::client`]) and records what happened
//! ([`crate::stats`]).
//!
//! An arrival is one buyer: a best-available hold, then, if it was granted, its
//! confirmation (or, with `--plain-get`, one GET). Arrivals run as their own tasks, so
//! none waits for another; at most `in_flight_max` run at once, and an arrival due
//! when that many are in flight is dropped and counted, never queued: an unbounded
//! queue in the driver would hide that the server (or the driver) cannot keep up.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{ensure, Context};
use bytes::Bytes;
use hyper::header::HeaderValue;
use hyper::{Method, Uri};
use serde::Serialize;

use crate::wire::{self, json, BuyerDetails, ConfirmRequest};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::client::{Pool, PoolConfig, Reply, Target, IDEMPOTENCY_KEY};
use crate::cpu::CpuTime;
use crate::layout::{Layout, SectionKind};
use crate::schedule::{pace, Arrival, PaceEnd, Schedule};
use crate::stats::{
    per_second, ArrivalReport, DriverReport, Latency, Live, Outcome, Recorder, Report, RunSettings, Step, StepReport,
};

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
    let kind = prepare(&pool, &config.workload, config.request_timeout).await?;
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
    });

    let schedule = Schedule::new(config.rate_per_second, config.warmup, config.duration);
    let cpu_before = CpuTime::now()?;
    let start = Instant::now();
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
    if let Some(progress) = progress {
        progress.abort();
    }

    Ok(report(&config, &plan, &schedule, Paced { end, last_measured_launch, start, elapsed, cpu }))
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
}

fn report(config: &RunConfig, plan: &Plan, schedule: &Schedule, paced: Paced) -> Report {
    let stopped_early = matches!(paced.end, PaceEnd::Stopped { .. });
    let window = match paced.end {
        PaceEnd::Completed => config.duration,
        PaceEnd::Stopped { launched } => {
            let warmup_arrivals = schedule.arrivals() - schedule.measured_arrivals();
            Duration::from_secs_f64(launched.saturating_sub(warmup_arrivals) as f64 / config.rate_per_second)
        }
    };
    // If the pacer fell behind, the arrivals took longer than the window to launch.
    let pacing = paced
        .last_measured_launch
        .map_or(Duration::ZERO, |last| last.saturating_duration_since(paced.start + schedule.measure_offset()));
    let totals = plan.recorder.totals();
    let steps = plan.kind.steps();
    let completed = totals.step(*steps.last().expect("a workload has steps")).counts.success;
    let requests_total = plan.live.requests_sent.load(Ordering::Relaxed);
    let (cpu, elapsed) = (paced.cpu, paced.elapsed);
    Report {
        settings: RunSettings {
            workload: plan.kind.describe(),
            target: plan.pool.target().url.clone(),
            run_id: plan.run_id.clone(),
            rate_per_second: config.rate_per_second,
            warmup_seconds: config.warmup.as_secs_f64(),
            duration_seconds: config.duration.as_secs_f64(),
            connections: config.connections,
            in_flight_max: config.in_flight_max,
            threads: config.threads,
        },
        stopped_early,
        window_seconds: window.as_secs_f64(),
        arrivals: ArrivalReport {
            scheduled: schedule.measured_arrivals(),
            launched: totals.arrivals_launched,
            dropped_by_driver: totals.arrivals_dropped,
            achieved_rate_per_second: per_second(
                totals.arrivals_launched + totals.arrivals_dropped,
                window.max(pacing),
            ),
            start_lag_us: Latency::of(&totals.start_lag),
        },
        steps: steps.iter().map(|step| StepReport::new(*step, totals.step(*step), window)).collect(),
        completed_per_second: per_second(completed, window),
        seats_sold: totals.seats_sold,
        driver: DriverReport::new(cpu, elapsed, requests_total),
    }
}

impl PlanKind {
    /// One line for the report.
    fn describe(&self) -> String {
        match self {
            PlanKind::Orders(plan) => {
                let shown = plan.sections.len().min(DESCRIBED_SECTIONS_MAX);
                let more = if shown < plan.sections.len() { ",..." } else { "" };
                format!(
                    "orders of {} seats for event {} in {} section(s) ({}{more})",
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
            PlanKind::Orders(_) => &[Step::Hold, Step::Confirm, Step::Order],
            PlanKind::PlainGet { .. } => &[Step::Get],
            PlanKind::Scans { .. } => &[Step::Scan],
        }
    }
}

/// Resolves what arrivals need before the clock starts: URIs and, for `--sections
/// auto`, the event's reserved sections.
async fn prepare(pool: &Pool, workload: &Workload, timeout: Duration) -> anyhow::Result<PlanKind> {
    match workload {
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
            }))
        }
    }
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
    tokio::spawn(run_arrival(plan.clone(), arrival));
    now
}

/// Counts an arrival out of `in_flight` however its task ends.
struct InFlight(Arc<Plan>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.live.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn run_arrival(plan: Arc<Plan>, arrival: Arrival) {
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
}

/// One buyer: hold, then confirm what was held.
async fn run_order(plan: &Plan, order: &OrderPlan, arrival: Arrival) {
    if arrival.measured {
        plan.recorder.sent(arrival.index, Step::Order);
    }
    let customer_number = order.customers.map_or(arrival.index, |customers| arrival.index % customers);
    let customer = format!("c{}-{customer_number}", plan.run_id);
    let section = pick_section(order, plan.pick_salt, arrival.index);
    let body = json(&HoldRequest { customer: &customer, section, quantity: order.quantity, adjacent: true });
    let mut request = plan.pool.request(Method::POST, order.holds_uri.clone(), Some(body));
    if order.idempotency {
        request.headers_mut().insert(IDEMPOTENCY_KEY, idempotency_key(plan, arrival, "hold"));
    }
    let result = exchange(plan, arrival, Step::Hold, request).await;
    let hold_replied = Instant::now();
    let (outcome, error_code, confirm_uri) = match result {
        Ok(reply) if reply.status.is_success() => match confirm_uri(&reply.body) {
            Some(uri) => (Outcome::Success, None, Some(uri)),
            None => (Outcome::BadReply, None, None),
        },
        Ok(reply) => {
            let (outcome, error_code) = refusal(&reply);
            (outcome, error_code, None)
        }
        Err(outcome) => (outcome, None, None),
    };
    let hold_latency = hold_replied.saturating_duration_since(arrival.scheduled);
    finish(plan, arrival, Step::Hold, outcome, hold_latency, error_code.as_deref());
    let Some(confirm_uri) = confirm_uri else {
        finish(plan, arrival, Step::Order, outcome, hold_latency, error_code.as_deref());
        return;
    };

    let payment_reference = format!("pay-{}-{}", plan.run_id, arrival.index);
    let name = format!("Buyer {customer_number}");
    let email = format!("buyer-{}-{customer_number}@example.com", plan.run_id);
    let body = json(&ConfirmRequest {
        customer: &customer,
        payment_reference: &payment_reference,
        buyer: BuyerDetails { name: &name, email: &email },
    });
    let mut request = plan.pool.request(Method::POST, confirm_uri, Some(body));
    if order.idempotency {
        request.headers_mut().insert(IDEMPOTENCY_KEY, idempotency_key(plan, arrival, "confirm"));
    }
    let result = exchange(plan, arrival, Step::Confirm, request).await;
    let confirmed = Instant::now();
    let (outcome, error_code, tickets) = match result {
        Ok(reply) if reply.status.is_success() => match wire::order(&reply.body) {
            Some(order) => (Outcome::Success, None, order.tickets.len() as u64),
            None => (Outcome::BadReply, None, 0),
        },
        Ok(reply) => {
            let (outcome, error_code) = refusal(&reply);
            (outcome, error_code, 0)
        }
        Err(outcome) => (outcome, None, 0),
    };
    let error_code = error_code.as_deref();
    finish(plan, arrival, Step::Confirm, outcome, confirmed.saturating_duration_since(hold_replied), error_code);
    finish(plan, arrival, Step::Order, outcome, confirmed.saturating_duration_since(arrival.scheduled), error_code);
    if arrival.measured && tickets > 0 {
        plan.recorder.sold(arrival.index, tickets);
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
fn confirm_uri(hold_reply: &[u8]) -> Option<Uri> {
    format!("/v1/holds/{}/confirm", wire::hold_id(hold_reply)?).parse().ok()
}

fn pick_section(order: &OrderPlan, salt: u64, arrival: u64) -> &str {
    let count = order.sections.len() as u64;
    let index = match order.section_pick {
        SectionPick::RoundRobin => arrival % count,
        SectionPick::Random => splitmix64(arrival ^ salt) % count,
    };
    &order.sections[index as usize]
}

/// A fast, well-mixed hash of the arrival index: random yet stateless section picks.
fn splitmix64(value: u64) -> u64 {
    let mut z = value.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
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
    let result = match tokio::time::timeout(plan.request_timeout, plan.pool.send(request)).await {
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
                retry_after_seconds: None,
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
