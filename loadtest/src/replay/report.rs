//! What a replay reports: [`ReplayReport`], written as `--json` and printed as text
//! (settings, how buyers' stories ended, a table of steps, the overload checks, tables
//! of phases, what sold, the driver's own cost, and the verdict).

use std::fmt;

use serde::Serialize;

use super::overload::{OverloadSummary, WindowSummary};
use super::pay::PaymentReport;
use super::tally::PhaseStats;
use crate::stats::{counted, DriverReport, Latency, Step, StepReport};
use crate::timeline::TimelineReport;
use crate::verdict::Verdict;

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
    /// Paying buyers whose card was declined (and who walked away), or whose late
    /// payment hakken voided.
    pub payment_refused: u64,
    /// Hold refused with 409 (taken, sold out, limit).
    pub hold_conflicts: u64,
    /// A request still 503/429 after its retries.
    pub rejected: u64,
    /// Other statuses, broken connections, timeouts, malformed replies.
    pub errors: u64,
    /// Still running when the drain ended (stopped).
    pub unfinished: u64,
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

/// What the overload checks read, over the whole run (see `replay/overload.rs`): did
/// the server keep answering while buyers arrived, did clients give up, and how fast
/// were its refusals.
#[derive(Clone, Debug, Serialize)]
pub struct OverloadReport {
    /// 1-second intervals from the start in which buyers arrived (launched or dropped).
    pub seconds_with_arrivals: u64,
    /// Of those, the ones in which no hold and no confirm got a definite answer (2xx, or
    /// a 4xx but 429); 503, 429 and timeouts do not answer.
    pub stalled_seconds: u64,
    /// Start (seconds after the start) of the first stalled intervals, at most 10.
    pub first_stalled_at_seconds: Vec<u64>,
    /// Buyers' requests sent, retries included.
    pub requests_sent: u64,
    /// Requests without a reply within `--timeout`.
    pub client_timeouts: u64,
    /// `client_timeouts` per 100 `requests_sent`.
    pub client_timeouts_percent: f64,
    /// Every 503 and 429 (retried or final), from when it went out on its connection to
    /// its reply: the cost of a refusal, without the wait for a connection.
    pub refusal_latency_us: Latency,
}

impl OverloadReport {
    pub(super) fn new(summary: OverloadSummary, requests_sent: u64, client_timeouts: u64) -> OverloadReport {
        OverloadReport {
            seconds_with_arrivals: summary.seconds_with_arrivals,
            stalled_seconds: summary.stalled_seconds,
            first_stalled_at_seconds: summary.first_stalled_at_seconds,
            requests_sent,
            client_timeouts,
            client_timeouts_percent: super::overload::percent(client_timeouts, requests_sent),
            refusal_latency_us: summary.refusal_latency_us,
        }
    }
}

/// What happened while a phase's buyers were arriving, whoever it happened to: from the
/// phase's first arrival to the next phase's (the last phase: to its last arrival).
#[derive(Clone, Debug, Serialize)]
pub struct PhaseWindowReport {
    pub seconds: f64,
    /// Confirms answered 2xx in the window.
    pub confirms: u64,
    /// `confirms` per second of the window: the server's goodput at this phase's load.
    pub goodput_per_second: f64,
    /// Stalled seconds (see [`OverloadReport`]) starting in the window.
    pub stalled_seconds: u64,
    /// 503 and 429 replies in the window, from when each was sent.
    pub refusal_latency_us: Latency,
}

impl PhaseWindowReport {
    pub(super) fn new(window: WindowSummary) -> PhaseWindowReport {
        PhaseWindowReport {
            seconds: window.length.as_secs_f64(),
            confirms: window.confirmed,
            goodput_per_second: crate::stats::per_second(window.confirmed, window.length),
            stalled_seconds: window.stalled_seconds,
            refusal_latency_us: window.refusal_latency_us,
        }
    }
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
    /// The counts above are of this phase's buyers; these are of its time window.
    pub window: PhaseWindowReport,
}

impl PhaseReport {
    pub(super) fn new(name: String, phase: &PhaseStats, window: WindowSummary) -> PhaseReport {
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
            window: PhaseWindowReport::new(window),
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
    pub overload: OverloadReport,
    /// Redirects followed (a cluster node sending a buyer to the event's owner),
    /// the verdict's reads included.
    pub redirects_followed: u64,
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
    pub driver: DriverReport,
    /// How buyers paid (`None`: on trust, without a sales token).
    pub payments: Option<PaymentReport>,
    /// The server's account, from its metrics (`--server-metrics`).
    pub server: Option<crate::server_metrics::ServerFigures>,
    /// Through the event's waiting room only (`--waiting-room`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting_room: Option<super::WaitingRoomReport>,
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

impl fmt::Display for ReplayReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_summary(f)?;
        writeln!(f)?;
        self.write_steps(f)?;
        self.write_failures(f)?;
        self.write_overload(f)?;
        if self.phases.len() > 1 {
            writeln!(f)?;
            self.write_phases(f)?;
            self.write_phase_windows(f)?;
        }
        writeln!(f)?;
        self.write_sales(f)?;
        if let Some(payments) = &self.payments {
            write_payments(f, payments)?;
        }
        if let Some(room) = &self.waiting_room {
            write!(f, "{room}")?;
        }
        if let Some(server) = &self.server {
            write!(f, "{server}")?;
        }
        if self.redirects_followed > 0 {
            writeln!(
                f,
                "redirects followed: {} (cluster nodes sent buyers to the event's owner)",
                self.redirects_followed
            )?;
        }
        self.write_driver(f)?;
        if let Some(verdict) = &self.verdict {
            write!(f, "{verdict}")?;
        }
        Ok(())
    }
}

/// The sections of the printed report, in order.
impl ReplayReport {
    /// What was played against what, how long it took, how buyers' stories ended.
    fn write_summary(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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
             {} confirmed, {} abandoned, {} left to expire, {} refused (409), {} payments declined or voided, \
             {} rejected (503/429 after {} retries), {} errors, {} unfinished",
            buyers.arrived,
            buyers.dropped_by_driver,
            settings.in_flight_max,
            buyers.gave_up_after_poll,
            buyers.held,
            buyers.confirmed,
            buyers.abandoned,
            buyers.left_to_expire,
            buyers.hold_conflicts,
            buyers.payment_refused,
            buyers.rejected,
            settings.retries,
            buyers.errors,
            buyers.unfinished
        )
    }

    /// One line per step: counts, rate, latency percentiles of the successes.
    fn write_steps(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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
        let order = if self.payments.as_ref().is_some_and(|payments| payments.mode == "browser") {
            "order = hold + checkout + PSP confirm + waiting for the order; payment = from the PSP's reply to the order"
        } else {
            "order = hold + confirm"
        };
        writeln!(f, "latency in ms of the successful requests, from when each step was due; {order}")
    }

    /// Refusals by error code and errors by kind, per request step (the order step
    /// repeats its hold's or confirm's).
    fn write_failures(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let request_steps = || self.steps.iter().filter(|step| step.step != Step::Order.name());
        for step in request_steps().filter(|step| !step.error_codes.is_empty()) {
            writeln!(f, "{} refusals: {}", step.step, counted(&step.error_codes))?;
        }
        for step in request_steps().filter(|step| step.counts.errors() > 0) {
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
        Ok(())
    }

    /// Stalled seconds, client timeouts, and how fast refusals came back.
    fn write_overload(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let overload = &self.overload;
        write!(
            f,
            "stalled: {} of {} seconds with arrivals had no hold or confirm answered",
            overload.stalled_seconds, overload.seconds_with_arrivals
        )?;
        if !overload.first_stalled_at_seconds.is_empty() {
            let starts: Vec<String> =
                overload.first_stalled_at_seconds.iter().map(|second| format!("{second} s")).collect();
            let more = if overload.stalled_seconds > starts.len() as u64 { ", ..." } else { "" };
            write!(f, " (from {}{more})", starts.join(", "))?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "client timeouts: {} of {} requests ({:.2}%)",
            overload.client_timeouts, overload.requests_sent, overload.client_timeouts_percent
        )?;
        let refusals = &overload.refusal_latency_us;
        if refusals.count > 0 {
            writeln!(
                f,
                "refusals (503/429): {} replies, p50 {} ms, p99 {} ms, max {} ms from when each was sent",
                refusals.count,
                ms(refusals.p50),
                ms(refusals.p99),
                ms(refusals.max)
            )?;
        }
        Ok(())
    }

    /// One line per phase of the file.
    fn write_phases(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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
        Ok(())
    }

    /// One line per phase: what happened while its buyers were arriving.
    fn write_phase_windows(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<28} {:>8} {:>8} {:>10} {:>8}  {:>9} {:>9} {:>9}",
            "phase window", "seconds", "confirms", "goodput/s", "stalled", "refuse50", "refuse99", "refusemax"
        )?;
        for phase in &self.phases {
            let window = &phase.window;
            let refusals = &window.refusal_latency_us;
            let refusal_ms = |us: u64| if refusals.count == 0 { "-".to_string() } else { ms(us) };
            writeln!(
                f,
                "{:<28} {:>8.1} {:>8} {:>10.1} {:>8}  {:>9} {:>9} {:>9}",
                phase.name,
                window.seconds,
                window.confirms,
                window.goodput_per_second,
                window.stalled_seconds,
                refusal_ms(refusals.p50),
                refusal_ms(refusals.p99),
                refusal_ms(refusals.max)
            )?;
        }
        writeln!(
            f,
            "a window runs from the phase's first arrival to the next phase's; goodput = confirms answered 2xx in it \
             per second; refusal latency in ms from when each 503/429 was sent"
        )
    }

    /// Seats sold by the run and in all, and when the event sold out.
    fn write_sales(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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
        writeln!(f)
    }

    fn write_driver(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let driver = &self.driver;
        writeln!(
            f,
            "driver CPU: {:.2} s for {} requests = {:.1} µs/request; {:.2} cores busy",
            driver.cpu_user_seconds + driver.cpu_system_seconds,
            driver.requests_total,
            driver.cpu_us_per_request,
            driver.cores_busy
        )
    }
}

/// How buyers paid: the PSP's answers, the orders, late payments, and how long hakken
/// took from the PSP's authorization to the order.
fn write_payments(f: &mut fmt::Formatter<'_>, payments: &PaymentReport) -> fmt::Result {
    if payments.mode != "browser" {
        return writeln!(f, "payments: confirmed on trust with a sales-channel token");
    }
    writeln!(
        f,
        "payments (provider {}, PSP {}): {} checkouts ({} failed), {} PSP confirms: {} authorized, {} declined ({} \
         retried with another card, {} left to expire), {} PSP errors; {} paid orders, {} voided, {} unsettled when \
         the buyer stopped polling; in doubt after the run: {} orders found, {} unknown",
        payments.provider.as_deref().unwrap_or("?"),
        payments.psp.as_deref().unwrap_or("?"),
        payments.checkouts,
        payments.checkouts_failed,
        payments.psp_confirms,
        payments.authorized,
        payments.declined,
        payments.declines_retried,
        payments.declined_left_to_expire,
        payments.psp_errors,
        payments.paid_orders,
        payments.voided,
        payments.unsettled,
        payments.resolved_orders,
        payments.unresolved
    )?;
    let late = &payments.late;
    if late.payers + late.expiry_too_far > 0 {
        writeln!(
            f,
            "late payments: {} paid after their hold expired: {} re-acquired, {} voided, {} declined; {} holds \
             expired too far away (paid on time)",
            late.payers, late.reacquired, late.voided, late.declined, late.expiry_too_far
        )?;
    }
    if let Some(storm) = &payments.storm {
        let mut played: Vec<(&str, u64)> = Vec::new();
        for name in &storm.played {
            match played.iter_mut().find(|(seen, _)| seen == name) {
                Some((_, count)) => *count += 1,
                None => played.push((name, 1)),
            }
        }
        let played: Vec<String> = played.iter().map(|(name, count)| format!("{name} x{count}")).collect();
        writeln!(
            f,
            "webhook storm at {}: {} squalls ({}), {} control errors",
            storm.control,
            storm.played.len(),
            played.join(", "),
            storm.control_errors
        )?;
        if let Some(stats) = &storm.fake_stats {
            writeln!(f, "fake PSP after the storm: webhooks {} api {}", stats["webhooks"], stats["api"])?;
        }
    }
    let latency = &payments.confirm_to_order_us;
    writeln!(
        f,
        "PSP confirm -> order: p50 {} ms, p90 {} ms, p99 {} ms, max {} ms ({} orders)",
        ms(latency.p50),
        ms(latency.p90),
        ms(latency.p99),
        ms(latency.max),
        latency.count
    )
}
