//! What `run` reports: [`Report`], written as `--json` and printed as text (settings,
//! the window and how arrivals kept up, counts and latencies per step, refusals, what
//! completed, and the driver's own cost).

use std::fmt;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::Serialize;

use super::{Paced, Plan, RunConfig};
use crate::schedule::{PaceEnd, Schedule};
use crate::sinks::NotificationsReport;
use crate::stats::{counted, per_second, DriverReport, Latency, Step, StepReport};

/// The arrivals of the measured window.
#[derive(Clone, Debug, Serialize)]
pub struct ArrivalReport {
    /// Arrivals the schedule had in the measured window (launched or dropped or, after
    /// an early stop, never reached).
    pub scheduled: u64,
    pub launched: u64,
    /// Not launched because `--in-flight-max` arrivals were in flight: the driver or
    /// the server could not keep up.
    pub dropped_by_driver: u64,
    /// Launched and dropped arrivals per second of (wall-clock) pacing.
    pub achieved_rate_per_second: f64,
    /// How late arrivals started after their scheduled time (the driver's own lag).
    pub start_lag_us: Latency,
}

/// What the run was asked to do.
#[derive(Clone, Debug, Serialize)]
pub struct RunSettings {
    pub workload: String,
    pub target: String,
    pub run_id: String,
    pub rate_per_second: f64,
    pub warmup_seconds: f64,
    pub duration_seconds: f64,
    pub connections: usize,
    pub in_flight_max: u64,
    pub threads: usize,
}

/// The whole result of a run, as printed and as `--json`.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub settings: RunSettings,
    /// True if the run was interrupted (Ctrl-C) before the schedule ended.
    pub stopped_early: bool,
    /// Seconds of the measured window (shorter than the duration after an early stop).
    pub window_seconds: f64,
    pub arrivals: ArrivalReport,
    pub steps: Vec<StepReport>,
    /// Confirmed orders (or 2xx GETs) per second of the measured window.
    pub completed_per_second: f64,
    /// Tickets in confirmed orders.
    pub seats_sold: u64,
    pub driver: DriverReport,
    /// The server's CPU over the run (`--server-pid`), per completed arrival.
    pub server: Option<ServerCpuReport>,
    /// What the notification sinks received (`--smtp-sink`, `--webhook-sink`).
    pub notifications: Option<NotificationsReport>,
}

impl Report {
    /// The verdict: false when a sink was on and an acknowledged order was never told of
    /// (or a webhook's signature did not verify).
    pub fn passed(&self) -> bool {
        self.notifications.as_ref().is_none_or(NotificationsReport::passed)
    }
}

/// The server's CPU time over the run, warmup and drain included, per arrival that
/// completed in that time (warmup included): what one order cost it.
#[derive(Clone, Debug, Serialize)]
pub struct ServerCpuReport {
    pub pid: u32,
    pub cpu_user_seconds: f64,
    pub cpu_system_seconds: f64,
    /// Arrivals completed (2xx orders, GETs or scans), warmup included.
    pub completed_total: u64,
    pub cpu_us_per_completed: f64,
    /// (user + system) / elapsed: 1.0 is one core fully busy.
    pub cores_busy: f64,
}

fn ms(us: u64) -> String {
    format!("{:.3}", us as f64 / 1000.0)
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_summary(f)?;
        writeln!(f)?;
        self.write_counts(f)?;
        writeln!(f)?;
        self.write_latencies(f)?;
        self.write_refusals(f)?;
        writeln!(f)?;
        self.write_totals(f)?;
        if let Some(notifications) = &self.notifications {
            writeln!(f)?;
            write!(f, "{notifications}")?;
        }
        Ok(())
    }
}

/// The sections of the printed report, in order.
impl Report {
    /// What was run against what, the window, and how the arrivals kept up.
    fn write_summary(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let settings = &self.settings;
        let arrivals = &self.arrivals;
        writeln!(
            f,
            "hakken-loadtest: {} against {} (run {}), {} connections, {} thread(s)",
            settings.workload, settings.target, settings.run_id, settings.connections, settings.threads
        )?;
        writeln!(
            f,
            "measured window {:.2} s after {:.2} s warmup{}",
            self.window_seconds,
            settings.warmup_seconds,
            if self.stopped_early { " (stopped early)" } else { "" }
        )?;
        writeln!(
            f,
            "arrivals: requested {:.1}/s, achieved {:.1}/s; {} scheduled, {} launched, {} dropped by driver \
             (in flight >= {}); start lag p99 {} ms, max {} ms",
            settings.rate_per_second,
            arrivals.achieved_rate_per_second,
            arrivals.scheduled,
            arrivals.launched,
            arrivals.dropped_by_driver,
            settings.in_flight_max,
            ms(arrivals.start_lag_us.p99),
            ms(arrivals.start_lag_us.max),
        )
    }

    /// One line of counts per step, by outcome.
    fn write_counts(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<8} {:>9} {:>9} {:>8} {:>8} {:>8} {:>7} {:>8} {:>8} {:>7} {:>8} {:>10} {:>10}",
            "step",
            "sent",
            "2xx",
            "409",
            "503",
            "429",
            "status",
            "conn-err",
            "timeout",
            "bad",
            "unfin",
            "done/s",
            "2xx/s"
        )?;
        for step in &self.steps {
            let c = &step.counts;
            writeln!(
                f,
                "{:<8} {:>9} {:>9} {:>8} {:>8} {:>8} {:>7} {:>8} {:>8} {:>7} {:>8} {:>10.1} {:>10.1}",
                step.step,
                c.sent,
                c.success,
                c.conflict,
                c.rejected_busy_503,
                c.rejected_rate_limited_429,
                c.other_status,
                c.connection_error,
                c.timeout,
                c.bad_reply,
                step.unfinished,
                step.throughput_per_second,
                step.success_per_second
            )?;
        }
        Ok(())
    }

    /// Latency percentiles per step, of the 2xx replies and of all.
    fn write_latencies(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "latency in ms, from the arrival's scheduled time (confirm: from the hold's reply)")?;
        writeln!(
            f,
            "{:<8} {:<8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "step", "replies", "count", "p50", "p90", "p99", "p99.9", "max", "mean"
        )?;
        for step in &self.steps {
            for (which, latency) in [("2xx", &step.latency_success_us), ("all", &step.latency_all_us)] {
                writeln!(
                    f,
                    "{:<8} {:<8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9.3}",
                    step.step,
                    which,
                    latency.count,
                    ms(latency.p50),
                    ms(latency.p90),
                    ms(latency.p99),
                    ms(latency.p999),
                    ms(latency.max),
                    latency.mean / 1000.0
                )?;
            }
        }
        Ok(())
    }

    /// Other statuses, and refusals by error code, per step that had any.
    fn write_refusals(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for step in self.steps.iter().filter(|step| !step.other_statuses.is_empty()) {
            writeln!(f, "{} other statuses: {}", step.step, counted(&step.other_statuses))?;
        }
        for step in self.steps.iter().filter(|step| !step.error_codes.is_empty() && step.step != Step::Order.name()) {
            writeln!(f, "{} error codes: {}", step.step, counted(&step.error_codes))?;
        }
        Ok(())
    }

    /// What the run completed, and the driver's own cost.
    fn write_totals(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "completed (confirmed orders / 2xx GETs): {:.1}/s; seats sold: {}",
            self.completed_per_second, self.seats_sold
        )?;
        let driver = &self.driver;
        writeln!(
            f,
            "driver CPU: {:.2} s user + {:.2} s system for {} requests = {:.2} µs/request; {:.2} cores busy over {:.2} s \
             (from {})",
            driver.cpu_user_seconds,
            driver.cpu_system_seconds,
            driver.requests_total,
            driver.cpu_us_per_request,
            driver.cores_busy,
            driver.elapsed_seconds,
            driver.cpu_source
        )?;
        if let Some(server) = &self.server {
            writeln!(
                f,
                "server CPU (pid {}): {:.2} s user + {:.2} s system for {} completed = {:.1} µs per completed; {:.2} \
                 cores busy",
                server.pid,
                server.cpu_user_seconds,
                server.cpu_system_seconds,
                server.completed_total,
                server.cpu_us_per_completed,
                server.cores_busy
            )?;
        }
        Ok(())
    }
}

/// The report of a run of `config` by `plan`, paced by `schedule` as `paced` says.
pub(super) fn report(
    config: &RunConfig,
    plan: &Plan,
    schedule: &Schedule,
    paced: Paced,
    notifications: Option<NotificationsReport>,
) -> Report {
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
    let completed_total = plan.live.completed.load(Ordering::Relaxed);
    let server = config.server_pid.zip(paced.server_cpu).map(|(pid, server)| {
        let seconds = server.total().as_secs_f64();
        ServerCpuReport {
            pid,
            cpu_user_seconds: server.user.as_secs_f64(),
            cpu_system_seconds: server.system.as_secs_f64(),
            completed_total,
            cpu_us_per_completed: if completed_total == 0 { 0.0 } else { seconds * 1e6 / completed_total as f64 },
            cores_busy: seconds / elapsed.as_secs_f64().max(f64::MIN_POSITIVE),
        }
    });
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
        server,
        notifications,
    }
}
