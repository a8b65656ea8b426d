//! What a run reports of its notifications: per sink, the orders told of and the lag,
//! duplicates, the unexpected and the never told; the outage; how fast the backlog
//! drained after it and after the load (with hakken's CPU per email); the verdict.

use std::fmt;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use super::ledger::{ChannelSummary, Ledger};
use super::{micros_since, Sinks};
use crate::cpu::CpuTime;
use crate::stats::Latency;

/// Acknowledged orders and their notices on one channel.
#[derive(Clone, Debug, Serialize)]
pub struct ChannelReport {
    /// Every notice taken (emails answered 250, webhooks answered 200).
    pub received: u64,
    /// Orders the tool was told are confirmed (warmup included: they are told of too).
    pub acknowledged_orders: u64,
    /// Of those, told of at least once.
    pub told_orders: u64,
    /// Of those, never told of by the end of the drain.
    pub never_told: u64,
    /// A notice again: the same Message-ID, or the same webhook-id (at least once allows them).
    pub duplicates: u64,
    /// Orders told of that the tool never saw acknowledged (distinct).
    pub unexpected: u64,
    /// Acknowledgements beyond what the tool tracks; their notices are not judged.
    pub untracked_acknowledged: u64,
    /// Acknowledged → first notice received.
    pub lag_us: Latency,
}

impl From<&ChannelSummary> for ChannelReport {
    fn from(summary: &ChannelSummary) -> ChannelReport {
        ChannelReport {
            received: 0,
            acknowledged_orders: summary.acknowledged,
            told_orders: summary.told,
            never_told: summary.never_told,
            duplicates: summary.duplicates,
            unexpected: summary.unexpected,
            untracked_acknowledged: summary.untracked_acknowledged,
            lag_us: summary.lag_us.clone(),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct EmailReport {
    pub listen: String,
    /// The sender domain of hakken's Message-IDs (learned from the first confirmation).
    pub domain: Option<String>,
    #[serde(flatten)]
    pub orders: ChannelReport,
    /// Bytes of every message received (after dot-unstuffing).
    pub bytes_received: u64,
    pub without_message_id: u64,
    /// Not of hakken's form, or of another sender domain.
    pub foreign_message_id: u64,
    /// hakken's emails of other kinds (refunds, reissues).
    pub other_kinds: u64,
    pub connections_accepted: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct WebhookReport {
    pub listen: String,
    pub signatures_checked: bool,
    #[serde(flatten)]
    pub orders: ChannelReport,
    /// Events of other types.
    pub other_types: u64,
    /// `order.confirmed` again for an order already told of, under a new webhook-id.
    pub repeated_under_new_id: u64,
    /// Refused with 401.
    pub bad_signature: u64,
    /// Refused with 400 or 413.
    pub malformed: u64,
}

/// The SMTP sink's outage; times in seconds from the start of the measured window.
#[derive(Clone, Debug, Serialize)]
pub struct OutageReport {
    pub planned_from_seconds: f64,
    pub planned_to_seconds: f64,
    /// When the sink went down and listened again (absent if it did not: the run ended first).
    pub down_at_seconds: Option<f64>,
    pub up_at_seconds: Option<f64>,
    /// Open connections dropped when it went down.
    pub connections_dropped: u64,
}

/// A backlog of emails draining: from a moment (the outage's end, the load's), how many
/// acknowledged orders were still waiting for their email, and how fast they came.
#[derive(Clone, Debug, Serialize)]
pub struct DrainReport {
    /// Seconds from the start of the measured window.
    pub from_seconds: f64,
    /// Orders acknowledged before then without their email yet.
    pub backlog: u64,
    /// Whether every one of them got it in the end.
    pub drained: bool,
    /// Until the last of them got it (or the drain's end).
    pub seconds: f64,
    /// Emails received in that time (all of them: the backlog, newer orders, duplicates).
    pub emails: u64,
    pub emails_per_second: f64,
    /// hakken's CPU in that time (`--server-pid`; after the load only).
    pub server_cpu_seconds: Option<f64>,
    pub server_cpu_us_per_email: Option<f64>,
    /// The tool's own CPU in that time per email (after the load only): what the sinks
    /// cost, webhooks included.
    pub tool_cpu_us_per_email: Option<f64>,
}

/// The `notifications` section of a run's report.
#[derive(Clone, Debug, Serialize)]
pub struct NotificationsReport {
    pub drain_timeout_seconds: f64,
    /// The wait for notices was cut short (Ctrl-C): orders not told of may still be.
    pub interrupted: bool,
    /// Confirms without a definite answer: orders the server may have sold (and told
    /// of) without the tool knowing; up to this many unexpected notices are explained.
    pub confirms_in_doubt: u64,
    pub email: Option<EmailReport>,
    pub webhook: Option<WebhookReport>,
    pub outage: Option<OutageReport>,
    /// The email backlog from the moment the SMTP sink listened again.
    pub after_outage: Option<DrainReport>,
    /// From the load's end (the last arrival drained) until every acknowledged order was
    /// told of (email and webhook), or the drain timeout.
    pub after_load: DrainReport,
    /// Why the verdict failed; empty: passed.
    pub failures: Vec<String>,
    /// What the reader should know but is no failure.
    pub warnings: Vec<String>,
}

impl NotificationsReport {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// What the report is made of.
pub(super) struct Inputs<'a> {
    pub(super) sinks: &'a Sinks,
    pub(super) ledger: &'a Ledger,
    pub(super) window_start: Instant,
    pub(super) load_stopped: Instant,
    pub(super) drained_at: Instant,
    pub(super) server_cpu: Option<CpuTime>,
    /// The tool's own CPU over the same wait: what the sinks cost.
    pub(super) tool_cpu: CpuTime,
    /// The wait was cut short (Ctrl-C).
    pub(super) interrupted: bool,
}

pub(super) fn report(inputs: &Inputs<'_>) -> NotificationsReport {
    let Inputs { sinks, ledger, window_start, load_stopped, drained_at, server_cpu, tool_cpu, interrupted } = inputs;
    let at_us = |at: Instant| micros_since(sinks.epoch, at);
    let window_seconds = |at: Instant| signed_seconds(*window_start, at);
    let email = ledger.email.as_ref().zip(sinks.smtp.as_ref()).map(|(book, smtp)| {
        let summary = book.summary();
        EmailReport {
            listen: smtp.address.to_string(),
            domain: book.domain().map(str::to_string),
            orders: ChannelReport { received: summary.received, ..ChannelReport::from(&summary.orders) },
            bytes_received: summary.bytes,
            without_message_id: summary.without_message_id,
            foreign_message_id: summary.foreign_message_id,
            other_kinds: summary.other_kinds,
            connections_accepted: smtp.log.connections_accepted.load(Ordering::Relaxed),
        }
    });
    let webhook = ledger.webhook.as_ref().zip(sinks.webhook.as_ref()).map(|(book, running)| {
        let summary = book.summary();
        WebhookReport {
            listen: running.address.to_string(),
            signatures_checked: running.signatures_checked,
            orders: ChannelReport { received: summary.received, ..ChannelReport::from(&summary.orders) },
            other_types: summary.other_types,
            repeated_under_new_id: summary.repeated_under_new_id,
            bad_signature: summary.bad_signature,
            malformed: summary.malformed,
        }
    });
    let went = sinks.smtp.as_ref().and_then(|smtp| *smtp.log.outage.lock().expect("sink log"));
    let outage = sinks.outage.zip(sinks.smtp.as_ref()).map(|(planned, smtp)| OutageReport {
        planned_from_seconds: planned.start.as_secs_f64(),
        planned_to_seconds: planned.end.as_secs_f64(),
        down_at_seconds: went.map(|(down, _)| window_seconds(down)),
        up_at_seconds: went.and_then(|(_, up)| up).map(window_seconds),
        connections_dropped: smtp.log.connections_dropped.load(Ordering::Relaxed),
    });

    let drain = |from: Instant, until: Option<Instant>| -> Option<DrainReport> {
        let book = ledger.email.as_ref()?;
        let (backlog, drained_us) = book.backlog_at(at_us(from));
        let to_us = drained_us.unwrap_or(at_us(until.unwrap_or(*drained_at))).max(at_us(from));
        let seconds = (to_us - at_us(from)) as f64 / 1e6;
        let emails = book.received_between(at_us(from), to_us);
        Some(DrainReport {
            from_seconds: window_seconds(from),
            backlog,
            drained: drained_us.is_some(),
            seconds,
            emails,
            emails_per_second: if seconds > 0.0 { emails as f64 / seconds } else { 0.0 },
            server_cpu_seconds: None,
            server_cpu_us_per_email: None,
            tool_cpu_us_per_email: None,
        })
    };
    let after_outage = went.and_then(|(_, up)| up).and_then(|up| drain(up, None));
    let mut after_load = drain(*load_stopped, Some(*drained_at)).unwrap_or_else(|| DrainReport {
        from_seconds: window_seconds(*load_stopped),
        backlog: 0,
        drained: ledger.outstanding() == 0,
        seconds: drained_at.saturating_duration_since(*load_stopped).as_secs_f64(),
        emails: 0,
        emails_per_second: 0.0,
        server_cpu_seconds: None,
        server_cpu_us_per_email: None,
        tool_cpu_us_per_email: None,
    });
    // After the load, the wait itself is the interval (it also waited for webhooks), so
    // hakken's CPU over it divides by the emails in it.
    after_load.seconds = drained_at.saturating_duration_since(*load_stopped).as_secs_f64();
    if let Some(book) = &ledger.email {
        after_load.emails = book.received_between(at_us(*load_stopped), at_us(*drained_at));
    }
    after_load.emails_per_second =
        if after_load.seconds > 0.0 { after_load.emails as f64 / after_load.seconds } else { 0.0 };
    let per_email = |cpu: &CpuTime| cpu.total().as_secs_f64() * 1e6 / after_load.emails as f64;
    after_load.tool_cpu_us_per_email = (after_load.emails > 0).then(|| per_email(tool_cpu));
    if let Some(cpu) = server_cpu {
        let seconds = cpu.total().as_secs_f64();
        after_load.server_cpu_seconds = Some(seconds);
        after_load.server_cpu_us_per_email = (after_load.emails > 0).then(|| seconds * 1e6 / after_load.emails as f64);
    }

    let mut report = NotificationsReport {
        drain_timeout_seconds: sinks.drain_timeout.as_secs_f64(),
        interrupted: *interrupted,
        confirms_in_doubt: ledger.confirms_in_doubt,
        email,
        webhook,
        outage,
        after_outage,
        after_load,
        failures: Vec::new(),
        warnings: Vec::new(),
    };
    judge(&mut report);
    report
}

fn signed_seconds(origin: Instant, at: Instant) -> f64 {
    if at >= origin {
        at.duration_since(origin).as_secs_f64()
    } else {
        -origin.duration_since(at).as_secs_f64()
    }
}

/// The verdict: every acknowledged order told of by each sink, every signature good.
fn judge(report: &mut NotificationsReport) {
    let drain = Duration::from_secs_f64(report.drain_timeout_seconds);
    let in_doubt = report.confirms_in_doubt;
    if report.interrupted {
        report.warnings.push("the wait for notices was cut short (Ctrl-C)".to_string());
    }
    let mut channels = Vec::new();
    if let Some(email) = &report.email {
        channels.push(("emailed", "email", &email.orders));
    }
    if let Some(webhook) = &report.webhook {
        channels.push(("sent an order.confirmed webhook", "webhook", &webhook.orders));
        if webhook.bad_signature > 0 {
            report.failures.push(format!("{} webhooks had a signature that did not verify", webhook.bad_signature));
        }
    }
    for (told, name, orders) in channels {
        if orders.never_told > 0 {
            report.failures.push(format!(
                "{} of {} acknowledged orders never {told} (drain timeout {drain:?})",
                orders.never_told, orders.acknowledged_orders
            ));
        }
        if orders.unexpected > in_doubt {
            report.warnings.push(format!(
                "{} {name} notices of orders never acknowledged, more than the {in_doubt} confirms in doubt \
                 (was the outbox empty when the run began?)",
                orders.unexpected
            ));
        }
        if orders.untracked_acknowledged > 0 {
            report.warnings.push(format!(
                "{} acknowledged orders beyond the {} tracked were not judged",
                orders.untracked_acknowledged,
                super::ledger::TRACKED_ORDERS_MAX
            ));
        }
    }
}

fn ms(us: u64) -> String {
    format!("{:.1}", us as f64 / 1000.0)
}

impl fmt::Display for NotificationsReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "notifications (lag: order acknowledged → notice received, warmup included; {} confirms in doubt):",
            self.confirms_in_doubt
        )?;
        let channel = |f: &mut fmt::Formatter<'_>, name: &str, listen: &str, orders: &ChannelReport| {
            let lag = &orders.lag_us;
            writeln!(
                f,
                "{name:<8} {listen}: received {}, orders told {}/{}, never {}, duplicates {}, unexpected {}; \
                 lag p50 {} p90 {} p99 {} max {} ms",
                orders.received,
                orders.told_orders,
                orders.acknowledged_orders,
                orders.never_told,
                orders.duplicates,
                orders.unexpected,
                ms(lag.p50),
                ms(lag.p90),
                ms(lag.p99),
                ms(lag.max)
            )
        };
        if let Some(email) = &self.email {
            channel(f, "email", &email.listen, &email.orders)?;
            if email.orders.received > 0 {
                writeln!(
                    f,
                    "         {} bytes received, {:.0} per email; sender domain {}",
                    email.bytes_received,
                    email.bytes_received as f64 / email.orders.received as f64,
                    email.domain.as_deref().unwrap_or("-")
                )?;
            }
            if email.without_message_id + email.foreign_message_id + email.other_kinds > 0 {
                writeln!(
                    f,
                    "         not confirmations: {} without Message-ID, {} foreign Message-ID, {} of other kinds",
                    email.without_message_id, email.foreign_message_id, email.other_kinds
                )?;
            }
        }
        if let Some(webhook) = &self.webhook {
            channel(f, "webhook", &webhook.listen, &webhook.orders)?;
            writeln!(
                f,
                "         signatures {}; {} bad signature, {} malformed, {} other types, {} repeated under a new id",
                if webhook.signatures_checked { "checked" } else { "not checked" },
                webhook.bad_signature,
                webhook.malformed,
                webhook.other_types,
                webhook.repeated_under_new_id
            )?;
        }
        if let Some(outage) = &self.outage {
            let at = |seconds: Option<f64>| seconds.map_or("never".to_string(), |s| format!("{s:.2} s"));
            writeln!(
                f,
                "smtp outage planned {:.2}..{:.2} s of the window: down at {}, listening again at {}, {} connections dropped",
                outage.planned_from_seconds,
                outage.planned_to_seconds,
                at(outage.down_at_seconds),
                at(outage.up_at_seconds),
                outage.connections_dropped
            )?;
        }
        let drain = |f: &mut fmt::Formatter<'_>, name: &str, drain: &DrainReport| {
            write!(
                f,
                "{name} (from {:.2} s): backlog {} emails, {} in {:.2} s; {} emails = {:.0}/s",
                drain.from_seconds,
                drain.backlog,
                if drain.drained { "drained" } else { "NOT drained" },
                drain.seconds,
                drain.emails,
                drain.emails_per_second
            )?;
            match (drain.server_cpu_seconds, drain.server_cpu_us_per_email) {
                (Some(seconds), Some(per_email)) => {
                    write!(f, "; hakken CPU {seconds:.2} s = {per_email:.1} µs per email")?
                }
                (Some(seconds), None) => write!(f, "; hakken CPU {seconds:.2} s")?,
                _ => {}
            }
            match drain.tool_cpu_us_per_email {
                Some(per_email) => writeln!(f, "; the sinks {per_email:.1} µs per email"),
                None => writeln!(f),
            }
        };
        if let Some(after_outage) = &self.after_outage {
            drain(f, "after the outage", after_outage)?;
        }
        drain(f, "after the load", &self.after_load)?;
        for warning in &self.warnings {
            writeln!(f, "WARN notifications: {warning}")?;
        }
        for failure in &self.failures {
            writeln!(f, "FAIL notifications: {failure}")?;
        }
        if self.passed() {
            writeln!(f, "notifications: PASS")?;
        }
        Ok(())
    }
}
