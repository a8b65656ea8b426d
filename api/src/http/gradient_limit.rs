//! The adaptive in-flight limit: how many requests the server serves at once, learnt
//! from their latency.
//!
//! A fixed limit is wrong on every machine but one: too many on a slow day (requests
//! queue behind each other until their buyers give up, and the server spends itself on
//! answers nobody reads), too few on a big machine. The limit here follows Netflix's
//! Gradient2 (concurrency-limits, after TCP Vegas): compare the latency of the last
//! window with a baseline, the latency when nothing queues; while latency stays
//! within `TOLERANCE` of it, grow the limit by a small queue allowance; when it rises
//! beyond, shrink the limit in proportion. Latency only rises when requests queue, so
//! the limit settles where the server is busy but nothing waits long: at its knee.
//! The limit starts at its floor, so the first windows measure the baseline before
//! anything can queue (a server restarted into a crowd included), and doubles while
//! latency is under half of what is allowed (TCP's slow start).
//!
//! A flash sale adds one thing: a request refused costs the server a read, a write
//! and the client's retry, while a request that waits costs nothing until it is
//! served. So requests may also queue up to a latency target (a fraction of the time
//! buyers wait for an answer) before the limit shrinks: under overload the limit
//! settles near what the server serves in that time, the excess is refused at once,
//! and nothing admitted waits long enough to be given up on.
//!
//! Deterministic: it is given each window's measurements, never reads a clock.

use std::time::Duration;

/// Latency may rise this far above the baseline before the limit shrinks.
/// Group commit needs some queueing: requests that wait for the same fsync are what
/// make it pay.
const TOLERANCE: f64 = 3.0;
/// Share of each window's new estimate taken into the limit (the rest is the old one).
const SMOOTHING: f64 = 0.2;
/// The baseline latency falls towards a lower window's at this rate ...
const BASELINE_LEARN: f64 = 0.1;
/// ... and rises by at most this factor per window. Gradient2 takes a plain long-term
/// average, which under a sustained overload catches up with the queued latency and
/// lets the limit creep up without end (a minute of overload took the limit from the
/// knee to a thousand in this module's model); a slowly rising lower envelope still
/// learns a genuinely slower machine (1% a second), but not a queue.
const BASELINE_DRIFT: f64 = 0.001;
/// The limit never shrinks by more than this factor in one window's estimate.
const GRADIENT_MIN: f64 = 0.5;

/// What the server saw during one window.
#[derive(Clone, Copy, Debug, Default)]
pub struct Window {
    /// Requests completed in the window ...
    pub samples: u64,
    /// ... and the sum of their latencies, in microseconds.
    pub latency_sum_us: u64,
    /// The most requests in flight at once during the window.
    pub in_flight_peak: usize,
}

#[derive(Debug)]
pub struct GradientLimit {
    limit: f64,
    floor: f64,
    ceiling: f64,
    /// The latency (µs) of the server when nothing queues, as learnt from the windows
    /// (their lower envelope); `None` before the first window.
    baseline_us: Option<f64>,
    /// Latency (µs) up to which requests may queue whatever the baseline (0: none).
    target_us: f64,
}

impl GradientLimit {
    /// Starts at `floor`, and stays within `floor..=ceiling` (a `floor` above the
    /// `ceiling` is cut to it). Requests may queue until their latency reaches `target`
    /// or `TOLERANCE` times the baseline, whichever is longer.
    pub fn new(floor: usize, ceiling: usize, target: Duration) -> GradientLimit {
        let floor = floor.min(ceiling) as f64;
        let target_us = target.as_micros() as f64;
        GradientLimit { limit: floor, floor, ceiling: ceiling as f64, baseline_us: None, target_us }
    }

    pub fn limit(&self) -> usize {
        self.limit as usize
    }

    /// The baseline latency, in microseconds, once a window has been seen.
    pub fn baseline_latency_us(&self) -> Option<f64> {
        self.baseline_us
    }

    /// Takes one window's measurements and returns the new limit. A window without
    /// completed requests changes nothing.
    pub fn update(&mut self, window: Window) -> usize {
        if window.samples == 0 {
            return self.limit();
        }
        let short = (window.latency_sum_us as f64 / window.samples as f64).max(1.0);
        let baseline = self.baseline_us.get_or_insert(short);
        if short < *baseline {
            *baseline += (short - *baseline) * BASELINE_LEARN;
        } else {
            *baseline = (*baseline * (1.0 + BASELINE_DRIFT)).min(short);
        }
        let baseline = *baseline;
        // A server that is not using half its limit tells nothing about a bigger one:
        // growing then would only let the next burst in all at once.
        if (window.in_flight_peak as f64) < self.limit / 2.0 {
            return self.limit();
        }
        let allowed = (TOLERANCE * baseline).max(self.target_us);
        if short < allowed / 2.0 {
            // Far below what is allowed: double, unsmoothed (TCP's slow start), so a
            // crowd arriving at a server that has just started finds the limit it needs
            // within a few windows.
            self.limit = (self.limit * 2.0).clamp(self.floor, self.ceiling);
            return self.limit();
        }
        let gradient = (allowed / short).clamp(GRADIENT_MIN, 1.0);
        let estimate = self.limit * gradient + self.limit.sqrt().max(4.0);
        self.limit = (self.limit * (1.0 - SMOOTHING) + estimate * SMOOTHING).clamp(self.floor, self.ceiling);
        self.limit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server with `capacity` requests per second and `base_us` latency unloaded: a
    /// window of `limit` requests kept in flight (a closed loop, more demand than
    /// capacity) sees Little's law latency once the limit exceeds what it can serve.
    fn overloaded_window(limit: usize, capacity: f64, base_us: f64, window_s: f64) -> Window {
        let knee = capacity * base_us / 1e6;
        let latency_us = base_us * (limit as f64 / knee).max(1.0);
        let throughput = (limit as f64 / latency_us * 1e6).min(capacity);
        let samples = (throughput * window_s) as u64;
        Window { samples, latency_sum_us: (latency_us * samples as f64) as u64, in_flight_peak: limit }
    }

    /// The lowest and highest limit over the last 30 s of a minute's overload (100 ms
    /// windows) of a server serving 4,000 requests/s at 2 ms unloaded: 8 requests in
    /// flight keep it busy.
    fn settled_under_overload(latency_target: Duration) -> (usize, usize) {
        let (capacity, base_us) = (4_000.0, 2_000.0);
        let mut limit = GradientLimit::new(4, 4096, latency_target);
        let seen: Vec<usize> =
            (0..600).map(|_| limit.update(overloaded_window(limit.limit(), capacity, base_us, 0.1))).collect();
        let settled = &seen[300..];
        (*settled.iter().min().unwrap(), *settled.iter().max().unwrap())
    }

    #[test]
    fn under_overload_the_limit_settles_near_the_knee_far_below_the_ceiling() {
        let (low, high) = settled_under_overload(Duration::ZERO);
        assert!(low >= 8, "the limit keeps the server busy: {low}");
        // TOLERANCE lets latency reach 3x the baseline, which may drift up 1.8x in the
        // minute: 5.4x the knee, plus the queue allowance. A creeping limit is far above.
        assert!(high <= 8 * 7, "queueing stays within a few times the knee: {high}");
    }

    #[test]
    fn with_a_latency_target_the_limit_settles_where_latency_meets_it() {
        // Requests may wait up to 100 ms: about 400 in flight.
        let (low, high) = settled_under_overload(Duration::from_millis(100));
        assert!((300..=500).contains(&low) && (300..=500).contains(&high), "{low}..{high}");
    }

    #[test]
    fn after_a_step_up_in_latency_the_limit_shrinks_then_grows_back_when_it_passes() {
        let mut limit = GradientLimit::new(4, 4096, Duration::ZERO);
        for _ in 0..300 {
            limit.update(Window { samples: 400, latency_sum_us: 400 * 2_000, in_flight_peak: limit.limit() });
        }
        let before = limit.limit();
        // Every request now takes 10x as long: a queue is building.
        for _ in 0..30 {
            limit.update(Window { samples: 400, latency_sum_us: 400 * 20_000, in_flight_peak: limit.limit() });
        }
        let during = limit.limit();
        assert!(during < before / 4, "the limit shrinks under queueing: {before} -> {during}");
        for _ in 0..100 {
            limit.update(Window { samples: 400, latency_sum_us: 400 * 2_000, in_flight_peak: limit.limit() });
        }
        assert!(limit.limit() > during * 2, "it grows back once latency is normal: {during} -> {}", limit.limit());
    }

    #[test]
    fn the_limit_never_leaves_its_bounds_and_an_idle_server_leaves_it_alone() {
        let mut limit = GradientLimit::new(16, 100, Duration::ZERO);
        assert_eq!(limit.limit(), 16, "the limit starts at its floor");
        for _ in 0..300 {
            limit.update(Window { samples: 10, latency_sum_us: 10 * 1_000, in_flight_peak: 100 });
        }
        assert_eq!(limit.limit(), 100);
        for _ in 0..100 {
            limit.update(Window { samples: 10, latency_sum_us: 10 * 1_000_000, in_flight_peak: 100 });
        }
        assert_eq!(limit.limit(), 16, "the floor holds however slow");
        let idle = limit.limit();
        limit.update(Window { samples: 3, latency_sum_us: 3 * 100, in_flight_peak: 1 });
        assert_eq!(limit.limit(), idle, "a window using under half the limit does not move it");
        assert_eq!(limit.update(Window::default()), idle, "an empty window changes nothing");
        assert_eq!(GradientLimit::new(16, 0, Duration::ZERO).limit(), 0, "a ceiling of 0 refuses everything");
    }
}
