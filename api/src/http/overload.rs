//! The server's view of its own load: requests in flight against the adaptive limit,
//! the windows that feed the limit, and the Retry-After that spreads refused clients.
//!
//! The request path touches only atomics; once per window (at least `WINDOW`, and
//! enough completed requests to mean something) whichever request passes first takes
//! a `try_lock` and folds the window into the [`GradientLimit`] and the rates. A
//! refused request costs an increment and a random number.

use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use metrics::Gauge;

use crate::http::gradient_limit::{GradientLimit, Window};

/// Windows last at least this long ...
const WINDOW: Duration = Duration::from_millis(100);
/// ... and hold at least this many completed requests, unless they last `WINDOW_MAX`.
const WINDOW_SAMPLES_MIN: u64 = 16;
const WINDOW_MAX: Duration = Duration::from_secs(1);
/// Rates (served and refused per second) are averaged over about this long.
const RATE_HORIZON: Duration = Duration::from_secs(1);

/// The current adaptive limit.
pub const CONCURRENCY_LIMIT: &str = "hakken_http_concurrency_limit";
/// Admitted requests waiting on a remote party (the PSP) now, out of the in-flight count.
pub const AWAITING_PSP: &str = "hakken_http_requests_awaiting_psp";
/// How long the backlog (requests in flight and those refused in the last second, who
/// will retry) takes to drain at the rate the server is serving.
pub const BACKLOG_DRAIN_SECONDS: &str = "hakken_http_backlog_drain_seconds";

/// What a request asks of the server, for who goes first when it is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Finishes a sale already started (confirm, release, extend, an order): may use
    /// the whole limit.
    Finish,
    /// Starts new work (a hold, anything else): may use only `START_SHARE` of it, so
    /// buyers already holding seats are never crowded out by new ones.
    Start,
}

/// The share (numerator, denominator) of the limit that [`Class::Start`] requests fill.
const START_SHARE: (usize, usize) = (3, 4);

pub struct Overload {
    in_flight: AtomicUsize,
    limit: AtomicUsize,
    /// The current window, since `window_started_us` (µs since `epoch`).
    window_started_us: AtomicU64,
    samples: AtomicU64,
    latency_sum_us: AtomicU64,
    refused: AtomicU64,
    in_flight_peak: AtomicUsize,
    /// How long the backlog takes to drain, in ms, as of the last window.
    drain_ms: AtomicU64,
    /// The mean latency of the last window's requests, in µs.
    window_latency_us: AtomicU64,
    rates: Mutex<Rates>,
    epoch: Instant,
    retry_after_min_s: u64,
    retry_after_max_s: u64,
    limit_gauge: Gauge,
    drain_gauge: Gauge,
    away_gauge: Gauge,
}

struct Rates {
    limit: GradientLimit,
    served_per_s: f64,
    refused_per_s: f64,
}

/// A request admitted: it counts as in flight until this is dropped.
pub struct Admitted<'a> {
    overload: &'a Overload,
    at: Instant,
    presence: Arc<Presence>,
}

/// Whether an admitted request is counted in flight now: it may step away (waiting on
/// the PSP) and back, and the work it started may outlive it (the idempotency layer
/// finishes a request in a task of its own after its client gave up), so the count is
/// changed only by the transition that owns it, never twice and never below zero.
#[derive(Debug, Default)]
pub struct Presence {
    state: AtomicU8,
}

const COUNTED: u8 = 0;
const AWAY: u8 = 1;
const ENDED: u8 = 2;

impl Admitted<'_> {
    /// When the request was admitted.
    pub fn at(&self) -> Instant {
        self.at
    }

    /// What [`Overload::step_away`] and [`Overload::step_back`] change for this request.
    pub fn presence(&self) -> Arc<Presence> {
        self.presence.clone()
    }

    /// The request is answered: its latency joins the window.
    pub fn completed(self) {
        self.completed_after_away(Duration::ZERO);
    }

    /// The request is answered after it spent `away` waiting on a remote party (see
    /// [`Overload::step_away`]): only the rest of its latency joins the window.
    pub fn completed_after_away(self, away: Duration) {
        let now = Instant::now();
        let latency_us = now.saturating_duration_since(self.at).saturating_sub(away).as_micros() as u64;
        self.overload.samples.fetch_add(1, Ordering::Relaxed);
        self.overload.latency_sum_us.fetch_add(latency_us, Ordering::Relaxed);
        self.overload.maybe_end_window(now);
    }
}

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        // Counted unless away: then stepping away already took it out.
        if self.presence.state.swap(ENDED, Ordering::AcqRel) == COUNTED {
            self.overload.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Overload {
    /// `ceiling` is the configured `in_flight_max`, `floor` the least the limit falls
    /// to, `latency_target` how long requests may queue before it shrinks; Retry-After
    /// is at least `retry_after_min_s` and at most `retry_after_max_s`.
    pub fn new(
        floor: usize,
        ceiling: usize,
        latency_target: Duration,
        retry_after_min_s: u64,
        retry_after_max_s: u64,
    ) -> Overload {
        let limit = GradientLimit::new(floor, ceiling, latency_target);
        let limit_gauge = metrics::gauge!(CONCURRENCY_LIMIT);
        limit_gauge.set(limit.limit() as f64);
        Overload {
            in_flight: AtomicUsize::new(0),
            limit: AtomicUsize::new(limit.limit()),
            window_started_us: AtomicU64::new(0),
            samples: AtomicU64::new(0),
            latency_sum_us: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            in_flight_peak: AtomicUsize::new(0),
            drain_ms: AtomicU64::new(0),
            window_latency_us: AtomicU64::new(0),
            rates: Mutex::new(Rates { limit, served_per_s: 0.0, refused_per_s: 0.0 }),
            epoch: Instant::now(),
            retry_after_min_s: retry_after_min_s.max(1),
            retry_after_max_s: retry_after_max_s.max(retry_after_min_s.max(1)),
            limit_gauge,
            drain_gauge: metrics::gauge!(BACKLOG_DRAIN_SECONDS),
            away_gauge: metrics::gauge!(AWAITING_PSP),
        }
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    pub fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    /// The mean latency of the requests of the last window (at least `WINDOW` long):
    /// what the waiting rooms pace themselves by, far below the limit's own target.
    pub fn recent_latency(&self) -> Duration {
        Duration::from_micros(self.window_latency_us.load(Ordering::Relaxed))
    }

    /// Admits a request of `class` if the limit has room for it, else counts the
    /// refusal (its Retry-After is [`Overload::retry_after_s`]).
    pub fn admit(&self, class: Class) -> Option<Admitted<'_>> {
        let limit = self.limit();
        let room = match class {
            Class::Finish => limit,
            Class::Start => limit * START_SHARE.0 / START_SHARE.1,
        };
        let before = self.in_flight.fetch_add(1, Ordering::AcqRel);
        if before >= room {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            self.refused.fetch_add(1, Ordering::Relaxed);
            self.maybe_end_window(Instant::now());
            return None;
        }
        self.in_flight_peak.fetch_max(before + 1, Ordering::Relaxed);
        Some(Admitted { overload: self, at: Instant::now(), presence: Arc::default() })
    }

    /// An admitted request starts waiting on a remote party (the PSP): it leaves the
    /// in-flight count until [`Overload::step_back`]. A request parked on a socket costs
    /// the server a task, not a share of its CPU or its actors, and counting it would
    /// let a slow PSP fill the limit and turn new buyers away from an idle server.
    /// (Those waits are bounded by the PSP client's pool and timeout, and by
    /// `http.connections_max`.)
    /// A request that ended meanwhile is not counted again.
    /// Says whether it stepped away (then [`Overload::step_back`] must follow).
    pub fn step_away(&self, presence: &Presence) -> bool {
        let away = presence.state.compare_exchange(COUNTED, AWAY, Ordering::AcqRel, Ordering::Acquire).is_ok();
        if away {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            self.away_gauge.increment(1.0);
        }
        away
    }

    /// The request is back from the remote party: in flight again, whatever the limit
    /// says now (it was admitted; what it started is finished, not refused halfway),
    /// unless it ended meanwhile.
    pub fn step_back(&self, presence: &Presence) {
        self.away_gauge.decrement(1.0);
        // Counted first, then marked: an end racing with this sees `AWAY` and leaves the
        // count alone, so it never takes out what was not put in.
        let before = self.in_flight.fetch_add(1, Ordering::AcqRel);
        if presence.state.compare_exchange(AWAY, COUNTED, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            self.in_flight_peak.fetch_max(before + 1, Ordering::Relaxed);
        } else {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Seconds a refused client should wait: drawn evenly from the minimum to the time
    /// the backlog takes to drain, so the refused come back spread over the time the
    /// server needs for them rather than as one wave a second later.
    pub fn retry_after_s(&self) -> u64 {
        let drain_s = self.drain_ms.load(Ordering::Relaxed).div_ceil(1000);
        let high = drain_s.clamp(self.retry_after_min_s, self.retry_after_max_s);
        if high == self.retry_after_min_s {
            return high;
        }
        rand::Rng::gen_range(&mut rand::thread_rng(), self.retry_after_min_s..=high)
    }

    fn maybe_end_window(&self, now: Instant) {
        let now_us = now.saturating_duration_since(self.epoch).as_micros() as u64;
        let started_us = self.window_started_us.load(Ordering::Relaxed);
        let elapsed = Duration::from_micros(now_us.saturating_sub(started_us));
        let samples = self.samples.load(Ordering::Relaxed);
        if elapsed < WINDOW || (samples < WINDOW_SAMPLES_MIN && elapsed < WINDOW_MAX) {
            return;
        }
        // One request ends the window; the others carry on (they are counted in the next).
        let Ok(mut rates) = self.rates.try_lock() else { return };
        if self.window_started_us.compare_exchange(started_us, now_us, Ordering::Relaxed, Ordering::Relaxed).is_err() {
            return;
        }
        let window = Window {
            samples: self.samples.swap(0, Ordering::Relaxed),
            latency_sum_us: self.latency_sum_us.swap(0, Ordering::Relaxed),
            in_flight_peak: self.in_flight_peak.swap(self.in_flight(), Ordering::Relaxed),
        };
        let refused = self.refused.swap(0, Ordering::Relaxed);
        if let Some(mean_us) = window.latency_sum_us.checked_div(window.samples) {
            self.window_latency_us.store(mean_us, Ordering::Relaxed);
        }
        let limit = rates.limit.update(window);
        self.limit.store(limit, Ordering::Relaxed);
        self.limit_gauge.set(limit as f64);

        let seconds = elapsed.as_secs_f64();
        let weight = (seconds / RATE_HORIZON.as_secs_f64()).min(1.0);
        rates.served_per_s += (window.samples as f64 / seconds - rates.served_per_s) * weight;
        rates.refused_per_s += (refused as f64 / seconds - rates.refused_per_s) * weight;
        // Nothing served yet: no rate to drain at, and the minimum wait is the honest answer.
        let drain_s = if rates.served_per_s < 1.0 {
            0.0
        } else {
            (self.in_flight() as f64 + rates.refused_per_s * RATE_HORIZON.as_secs_f64()) / rates.served_per_s
        };
        self.drain_ms.store((drain_s * 1000.0) as u64, Ordering::Relaxed);
        self.drain_gauge.set(drain_s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_work_fills_three_quarters_of_the_limit_and_finishing_work_the_rest() {
        let overload = Overload::new(8, 100, Duration::ZERO, 1, 30);
        assert_eq!(overload.limit(), 8, "the limit starts at its floor");
        let starts: Vec<_> = (0..6).map_while(|_| overload.admit(Class::Start)).collect();
        assert_eq!(starts.len(), 6);
        assert!(overload.admit(Class::Start).is_none(), "new work is refused at 3/4 of the limit");
        let finishes: Vec<_> = (0..2).map_while(|_| overload.admit(Class::Finish)).collect();
        assert_eq!(finishes.len(), 2, "finishing work still gets in");
        assert!(overload.admit(Class::Finish).is_none());
        drop(starts);
        assert_eq!(overload.in_flight(), 2);
        assert!(overload.admit(Class::Start).is_some());
    }

    #[test]
    fn a_request_waiting_on_a_remote_party_leaves_room_and_comes_back() {
        let overload = Overload::new(4, 4, Duration::ZERO, 1, 30);
        let first = overload.admit(Class::Finish).expect("room");
        let _others: Vec<_> = (0..3).map_while(|_| overload.admit(Class::Finish)).collect();
        assert!(overload.admit(Class::Finish).is_none(), "full");
        assert!(overload.step_away(&first.presence()));
        let while_away = overload.admit(Class::Finish).expect("the waiting request left room");
        overload.step_back(&first.presence());
        assert_eq!(overload.in_flight(), 5, "back in flight even above the limit: it finishes");
        assert!(overload.admit(Class::Finish).is_none());
        drop(while_away);
        first.completed_after_away(Duration::from_secs(3600));
        assert_eq!(overload.in_flight(), 3);
        assert_eq!(overload.latency_sum_us.load(Ordering::Relaxed), 0, "the time away is not latency");
    }

    #[test]
    fn work_that_outlives_its_request_never_counts_it_twice_nor_below_zero() {
        let overload = Overload::new(4, 4, Duration::ZERO, 1, 30);
        // The request ends while its work waits on the PSP: coming back counts nothing.
        let request = overload.admit(Class::Finish).expect("room");
        let presence = request.presence();
        assert!(overload.step_away(&presence));
        drop(request);
        assert_eq!(overload.in_flight(), 0);
        overload.step_back(&presence);
        assert_eq!(overload.in_flight(), 0, "an ended request is not in flight again");
        // The request ended before its work stepped away: nothing to take out.
        let request = overload.admit(Class::Finish).expect("room");
        let presence = request.presence();
        drop(request);
        assert!(!overload.step_away(&presence), "an ended request does not step away");
        assert_eq!(overload.in_flight(), 0, "not below zero (a usize would wrap and refuse everyone)");
    }

    #[test]
    fn retry_after_is_the_minimum_until_anything_is_served_and_stays_within_bounds() {
        let overload = Overload::new(4, 0, Duration::ZERO, 2, 30);
        assert!(overload.admit(Class::Finish).is_none(), "a ceiling of 0 refuses everything");
        assert_eq!(overload.retry_after_s(), 2);
        overload.drain_ms.store(12_300, Ordering::Relaxed);
        let waits: Vec<u64> = (0..2_000).map(|_| overload.retry_after_s()).collect();
        assert!(waits.iter().all(|wait| (2..=13).contains(wait)), "{waits:?}");
        assert!(waits.contains(&2) && waits.contains(&13), "the waits spread over the whole drain time");
        overload.drain_ms.store(3_600_000, Ordering::Relaxed);
        assert!((0..100).all(|_| overload.retry_after_s() <= 30), "the maximum caps a long backlog");
    }
}
