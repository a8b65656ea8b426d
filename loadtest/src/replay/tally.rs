//! What buyers' stories add up to, beyond the per-step statistics of
//! [`crate::stats`]: how each buyer's story ended, counts and latencies per phase of the
//! file and per interval of the timeline, the overload checks ([`super::overload`]), when
//! the event sold out, the acknowledged orders, and the confirms still in doubt.
//!
//! [`RunState`] sits behind one lock that each buyer takes briefly per step; its methods
//! say what a step's outcome counts towards, so the buyer's state machine
//! ([`super::buyer`]) only says what happened.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use hdrhistogram::Histogram;
use hyper::header::HeaderValue;

use super::overload::{OverloadTally, PhaseWindows};
use super::pay::PaymentTally;
use super::report::BuyerCounts;
use crate::stats::Outcome;
use crate::timeline::{Percentiles, TimelinePoint, TimelineReport};
use crate::verdict::LedgerOrder;

/// The timeline has at most about this many intervals; longer runs get longer ones.
const TIMELINE_INTERVALS: f64 = 600.0;
/// Intervals kept at most (a drain far longer than the schedule ends in the last one).
pub(super) const TIMELINE_INTERVALS_MAX: usize = 2400;
/// Timeline latencies: two significant figures are plenty for a chart, and keep each
/// interval's histograms small.
const TIMELINE_SIGNIFICANT_FIGURES: u8 = 2;
const LATENCY_US_MAX: u64 = 3_600_000_000;

/// What buyers record beyond the per-step statistics; one lock, taken briefly per step.
pub(super) struct RunState {
    pub(super) orders: Vec<LedgerOrder>,
    /// Confirms sent without a definite reply yet, by buyer.
    pub(super) in_doubt: HashMap<u64, InDoubt>,
    pub(super) buyers: BuyerCounts,
    pub(super) phases: Vec<PhaseStats>,
    pub(super) timeline: Timeline,
    pub(super) overload: OverloadTally,
    pub(super) sold_out_at: Option<Duration>,
    pub(super) first_sold_out_refusal_at: Option<Duration>,
    /// Checkouts, PSP confirms and what came of them (paying runs).
    pub(super) payments: PaymentTally,
    /// After the start, when the last order the tool saw confirmed (the sold-out lag).
    pub(super) last_sold_at: Option<Duration>,
}

/// A confirm whose outcome is not known yet.
#[derive(Clone)]
pub(super) struct InDoubt {
    pub(super) hold: String,
    pub(super) customer: String,
    pub(super) body: Bytes,
    pub(super) key: HeaderValue,
}

/// One phase of the file (spike and tail, a ramp step).
pub(super) struct PhaseStats {
    pub(super) buyers: u64,
    pub(super) holds: u64,
    pub(super) confirms: u64,
    pub(super) conflicts: u64,
    pub(super) rejected: u64,
    pub(super) errors: u64,
    pub(super) hold_latency: Histogram<u32>,
    pub(super) order_latency: Histogram<u32>,
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

    /// Counts a hold's or a confirm's outcome; `latency` goes to `histogram` if it
    /// succeeded, and `succeeded` is counted up.
    fn count(&mut self, outcome: Outcome, latency: Duration, step: PhaseStep) {
        match outcome {
            Outcome::Success => {
                let (succeeded, histogram) = match step {
                    PhaseStep::Hold => (&mut self.holds, &mut self.hold_latency),
                    PhaseStep::Order => (&mut self.confirms, &mut self.order_latency),
                };
                *succeeded += 1;
                histogram.saturating_record(micros(latency));
            }
            Outcome::Conflict => self.conflicts += 1,
            outcome if outcome.is_rejection() => self.rejected += 1,
            _ => self.errors += 1,
        }
    }
}

/// Which of a phase's counters a step's success counts towards.
#[derive(Clone, Copy)]
enum PhaseStep {
    /// Holds, and the hold's latency.
    Hold,
    /// Confirms, and the whole order's latency (hold + confirm).
    Order,
}

pub(super) fn small_histogram() -> Histogram<u32> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, TIMELINE_SIGNIFICANT_FIGURES).expect("valid histogram bounds")
}

pub(super) fn micros(latency: Duration) -> u64 {
    u64::try_from(latency.as_micros()).unwrap_or(u64::MAX).clamp(1, LATENCY_US_MAX)
}

impl RunState {
    /// Before the first buyer: `phases` phases arriving in `windows`, a timeline for a
    /// run of about `span`.
    pub(super) fn new(phases: usize, windows: PhaseWindows, span: Duration) -> RunState {
        RunState {
            orders: Vec::new(),
            in_doubt: HashMap::new(),
            buyers: BuyerCounts::default(),
            phases: (0..phases).map(|_| PhaseStats::new()).collect(),
            timeline: Timeline::new(span),
            overload: OverloadTally::new(windows, phases),
            sold_out_at: None,
            first_sold_out_refusal_at: None,
            payments: PaymentTally::default(),
            last_sold_at: None,
        }
    }

    /// A buyer of `phase` was launched, `elapsed` after the start.
    pub(super) fn arrived(&mut self, phase: usize, elapsed: Duration) {
        self.timeline.at(elapsed).counts.arrivals += 1;
        self.phases[phase].buyers += 1;
        self.overload.arrival(elapsed);
    }

    /// A buyer due `elapsed` after the start was dropped by the driver (too many in
    /// flight): not launched, but they did arrive, so a second of only such buyers can
    /// still stall.
    pub(super) fn dropped(&mut self, elapsed: Duration) {
        self.overload.arrival(elapsed);
    }

    /// A 503 or 429 came back `elapsed` after the start, `latency` after it was sent
    /// (whether it will be retried or not).
    pub(super) fn refused(&mut self, elapsed: Duration, latency: Duration) {
        self.overload.refused(elapsed, latency);
    }

    /// A hold of a buyer of `phase` ended, `elapsed` after the start, with `outcome`
    /// (and the API's error `code` if refused) after `latency`.
    pub(super) fn hold_ended(
        &mut self,
        phase: usize,
        elapsed: Duration,
        outcome: Outcome,
        latency: Duration,
        code: Option<&str>,
    ) {
        self.phases[phase].count(outcome, latency, PhaseStep::Hold);
        let interval = self.timeline.at(elapsed);
        if outcome == Outcome::Success {
            interval.counts.holds += 1;
            interval.hold_latency.get_or_insert_with(small_histogram).saturating_record(micros(latency));
        }
        self.timeline.outcome(elapsed, outcome);
        self.overload.ended(elapsed, outcome);
        let buyers = &mut self.buyers;
        match outcome {
            Outcome::Success => buyers.held += 1,
            Outcome::Conflict => buyers.hold_conflicts += 1,
            outcome if outcome.is_rejection() => buyers.rejected += 1,
            _ => buyers.errors += 1,
        }
        if code == Some("409 sold_out") && self.first_sold_out_refusal_at.is_none() {
            self.first_sold_out_refusal_at = Some(elapsed);
        }
    }

    /// A buyer's release of their hold ended, `elapsed` after the start.
    pub(super) fn release_ended(&mut self, elapsed: Duration, outcome: Outcome) {
        self.timeline.outcome(elapsed, outcome);
        match outcome {
            Outcome::Success => self.buyers.abandoned += 1,
            outcome if outcome.is_rejection() => self.buyers.rejected += 1,
            _ => self.buyers.errors += 1,
        }
    }

    /// A confirm of a buyer of `phase` ended, `elapsed` after the start, the whole
    /// order (hold + confirm) after `order_latency`.
    pub(super) fn confirm_ended(&mut self, phase: usize, elapsed: Duration, outcome: Outcome, order_latency: Duration) {
        self.timeline.outcome(elapsed, outcome);
        self.overload.ended(elapsed, outcome);
        self.phases[phase].count(outcome, order_latency, PhaseStep::Order);
        match outcome {
            Outcome::Success => {
                self.buyers.confirmed += 1;
                self.overload.confirmed(elapsed);
            }
            outcome if outcome.is_rejection() => self.buyers.rejected += 1,
            _ => self.buyers.errors += 1,
        }
    }

    /// A paying buyer's payment ended in a definite "no", `elapsed` after the start: the
    /// card declined and the buyer walked away, or hakken voided a late payment.
    pub(super) fn payment_refused(&mut self, elapsed: Duration, outcome: Outcome) {
        self.timeline.outcome(elapsed, outcome);
        self.overload.ended(elapsed, outcome);
        self.buyers.payment_refused += 1;
    }

    /// A confirm answered with an order of `seats` seats, `elapsed` after the start,
    /// after `confirm_latency`; `sold_out` when the event has no seat left now.
    pub(super) fn sold(&mut self, order: LedgerOrder, elapsed: Duration, confirm_latency: Duration, sold_out: bool) {
        let interval = self.timeline.at(elapsed);
        interval.counts.confirms += 1;
        interval.counts.seats_sold += order.tickets.len() as u64;
        interval.confirm_latency.get_or_insert_with(small_histogram).saturating_record(micros(confirm_latency));
        if sold_out && self.sold_out_at.is_none() {
            self.sold_out_at = Some(elapsed);
        }
        self.last_sold_at = self.last_sold_at.max(Some(elapsed));
        self.orders.push(order);
    }
}

/// Per-interval counters and latencies, for the plot.
pub(super) struct Timeline {
    pub(super) interval: Duration,
    pub(super) points: Vec<IntervalStats>,
}

#[derive(Default)]
pub(super) struct IntervalStats {
    pub(super) counts: TimelinePoint,
    hold_latency: Option<Histogram<u32>>,
    confirm_latency: Option<Histogram<u32>>,
}

impl Timeline {
    pub(super) fn new(span: Duration) -> Timeline {
        let seconds = (span.as_secs_f64() / TIMELINE_INTERVALS).ceil().max(1.0);
        Timeline { interval: Duration::from_secs_f64(seconds), points: Vec::new() }
    }

    pub(super) fn at(&mut self, elapsed: Duration) -> &mut IntervalStats {
        let index = ((elapsed.as_secs_f64() / self.interval.as_secs_f64()) as usize).min(TIMELINE_INTERVALS_MAX - 1);
        if self.points.len() <= index {
            self.points.resize_with(index + 1, IntervalStats::default);
        }
        &mut self.points[index]
    }

    pub(super) fn outcome(&mut self, elapsed: Duration, outcome: Outcome) {
        let counts = &mut self.at(elapsed).counts;
        match outcome {
            Outcome::Success => {}
            Outcome::Conflict => counts.conflicts += 1,
            Outcome::Busy | Outcome::RateLimited => counts.rejected += 1,
            _ => counts.errors += 1,
        }
    }

    pub(super) fn report(&self, sold_out_at: Option<Duration>) -> TimelineReport {
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

#[cfg(test)]
mod tests {
    use super::*;

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
