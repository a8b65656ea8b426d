//! What happened over time during a replay: per interval, arrivals, outcomes and
//! latency percentiles, for `--json` and the `--plot` SVG.

use serde::Serialize;

/// The run cut into equal intervals from its start.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TimelineReport {
    /// Length of each interval, seconds (1 for runs up to ten minutes, longer beyond).
    pub interval_seconds: f64,
    /// One point per interval, in order, from the start of the run to the end of the
    /// drain; `points[i]` covers `[i * interval, (i + 1) * interval)`.
    pub points: Vec<TimelinePoint>,
    /// When every seat of the event was sold, seconds after the start, if it was.
    pub sold_out_at_seconds: Option<f64>,
}

/// One interval. Counts are of replies (or arrivals) that came in the interval;
/// divide by `interval_seconds` for a rate.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TimelinePoint {
    /// Start of the interval, seconds after the start of the run.
    pub t_seconds: f64,
    /// Buyers that arrived (were launched).
    pub arrivals: u64,
    /// Holds granted.
    pub holds: u64,
    /// Orders confirmed.
    pub confirms: u64,
    /// Seats in the orders confirmed.
    pub seats_sold: u64,
    /// 409 replies: seats taken, sold out, limits.
    pub conflicts: u64,
    /// 503 and 429 replies (retried or not).
    pub rejected: u64,
    /// Other statuses, connection errors, timeouts, malformed replies.
    pub errors: u64,
    /// Latency of the holds answered 2xx in the interval; `None` when there were none.
    pub hold_latency_ms: Option<Percentiles>,
    /// Latency of the confirms answered 2xx in the interval.
    pub confirm_latency_ms: Option<Percentiles>,
}

/// Latency percentiles of one interval, milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}
