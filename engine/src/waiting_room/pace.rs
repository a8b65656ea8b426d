//! How fast the waiting room lets buyers in: a rate that follows the server's health
//! within the event's bounds, spent as credit, and the rate actually achieved, which
//! is what ETAs are computed from.

use crate::clock::Millis;

/// The server's own verdict on whether it can take more buyers, made by the shell
/// from what it measures (in-flight against the limit, p99 against its target, busy
/// refusals). The room only reacts to it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Health {
    pub overloaded: bool,
}

/// Seconds of admissions the measured rate averages over.
const MEASURED_SECONDS: usize = 10;
/// The rate is cut to this share of itself on overload, at most once per second
/// (multiplicative decrease), ...
const CUT_FACTOR: f64 = 0.7;
const CUT_EVERY_MS: u64 = 1_000;
/// ... and grows back by the bounds' span over this long while healthy (additive
/// increase). Buyers let in reach the server a poll interval (a second or more) after
/// being let in, so the rate overshoots by that long of growth before the server's
/// health answers: over 5 s, the demo's 50-2,000/s grows by 390/s each second, so a
/// server at its knee would get hundreds of buyers a second too many before the cut.
const RAMP_MS: f64 = 10_000.0;
/// Credit saved up while nobody could be let in is capped at this much of a second's
/// rate, so a pause is not followed by a burst the server never agreed to.
const CREDIT_SECONDS_MAX: f64 = 0.25;

/// The admissions of the measured window.
struct Window {
    counted: u32,
    /// The window's length: the last `MEASURED_SECONDS - 1` whole seconds and the
    /// current one so far.
    length_s: f64,
    /// Of it, the part since admissions began.
    covered_s: f64,
}

#[derive(Clone, Debug)]
pub(super) struct Pace {
    per_s_min: f64,
    per_s_max: f64,
    /// The rate the room aims at now, within the bounds.
    per_s: f64,
    /// Admissions earned and not yet made.
    credit: f64,
    last_tick: Option<Millis>,
    last_cut: Option<Millis>,
    /// Admissions per second of the last [`MEASURED_SECONDS`] whole seconds since
    /// `measuring_since`; `buckets[s % len]` counts second `s`.
    buckets: [u32; MEASURED_SECONDS],
    bucket_second: u64,
    measuring_since: Option<Millis>,
}

impl Pace {
    pub(super) fn new(per_s_min: u32, per_s_max: u32) -> Pace {
        let (min, max) = (per_s_min.max(1) as f64, per_s_max.max(per_s_min).max(1) as f64);
        Pace {
            per_s_min: min,
            per_s_max: max,
            per_s: min,
            credit: 0.0,
            last_tick: None,
            last_cut: None,
            buckets: [0; MEASURED_SECONDS],
            bucket_second: 0,
            measuring_since: None,
        }
    }

    /// New bounds (an admin change), the rate aimed at kept within them.
    pub(super) fn set_bounds(&mut self, per_s_min: u32, per_s_max: u32) {
        let fresh = Pace::new(per_s_min, per_s_max);
        (self.per_s_min, self.per_s_max) = (fresh.per_s_min, fresh.per_s_max);
        self.per_s = self.per_s.clamp(self.per_s_min, self.per_s_max);
    }

    pub(super) fn per_s(&self) -> f64 {
        self.per_s
    }

    /// Moves the rate by `health` and earns credit for the time since the last tick;
    /// returns how many buyers may be let in now.
    pub(super) fn tick(&mut self, now: Millis, health: Health) -> u32 {
        let elapsed_ms = self.last_tick.map_or(0, |last| now.0.saturating_sub(last.0)) as f64;
        self.last_tick = Some(now);
        if health.overloaded {
            if self.last_cut.is_none_or(|cut| now.0.saturating_sub(cut.0) >= CUT_EVERY_MS) {
                self.per_s = (self.per_s * CUT_FACTOR).max(self.per_s_min);
                self.last_cut = Some(now);
            }
        } else {
            let span = self.per_s_max - self.per_s_min;
            self.per_s = (self.per_s + span * elapsed_ms / RAMP_MS).min(self.per_s_max);
        }
        let credit_max = (self.per_s * CREDIT_SECONDS_MAX).max(1.0);
        self.credit = (self.credit + self.per_s * elapsed_ms / 1_000.0).min(credit_max);
        self.credit as u32
    }

    /// `count` buyers were let in at `now` (spends their credit; counts them).
    pub(super) fn admitted(&mut self, now: Millis, count: u32) {
        self.credit = (self.credit - count as f64).max(0.0);
        self.advance_buckets(now);
        let second = now.0 / 1_000;
        self.buckets[second as usize % MEASURED_SECONDS] += count;
    }

    /// Admissions begin (the opening draw): the measured rate counts from here.
    pub(super) fn start(&mut self, now: Millis) {
        self.measuring_since = Some(now);
        self.bucket_second = now.0 / 1_000;
        self.buckets = [0; MEASURED_SECONDS];
    }

    /// Admissions per second actually made over the last [`MEASURED_SECONDS`] (the
    /// current one partly), or since admissions began if that is shorter; 0 before.
    pub(super) fn measured_per_s(&self, now: Millis) -> f64 {
        self.window(now).map_or(0.0, |window| window.counted as f64 / window.covered_s.max(0.1))
    }

    /// The rate ETAs are told from: the measured rate, the part of the window before
    /// admissions began counted at the rate aimed at; 0 before they began. Measured
    /// alone, the opening's first tick (a quarter second's credit let in at once) would
    /// read as 2.5 times the rate over its first 100 ms, and every ETA told then would
    /// be that much too short.
    pub(super) fn eta_per_s(&self, now: Millis) -> f64 {
        let Some(window) = self.window(now) else { return 0.0 };
        (window.counted as f64 + self.per_s * (window.length_s - window.covered_s)) / window.length_s
    }

    fn window(&self, now: Millis) -> Option<Window> {
        let since = self.measuring_since?;
        let second = now.0 / 1_000;
        let stale = second.saturating_sub(self.bucket_second) as usize;
        let length_s = (MEASURED_SECONDS - 1) as f64 + (now.0 % 1_000) as f64 / 1_000.0;
        let covered_s = (now.0.saturating_sub(since.0) as f64 / 1_000.0).min(length_s);
        if stale >= MEASURED_SECONDS {
            return Some(Window { counted: 0, length_s, covered_s });
        }
        // Seconds `second - MEASURED_SECONDS + 1 ..= second`, of which those after
        // `bucket_second` had no admissions.
        let counted: u32 = (0..MEASURED_SECONDS - stale)
            .map(|back| self.buckets[(self.bucket_second as usize + MEASURED_SECONDS - back) % MEASURED_SECONDS])
            .sum();
        Some(Window { counted, length_s, covered_s })
    }

    fn advance_buckets(&mut self, now: Millis) {
        let second = now.0 / 1_000;
        if self.measuring_since.is_none() {
            self.start(now);
        }
        while self.bucket_second < second {
            self.bucket_second += 1;
            self.buckets[self.bucket_second as usize % MEASURED_SECONDS] = 0;
            if second - self.bucket_second >= MEASURED_SECONDS as u64 {
                self.buckets = [0; MEASURED_SECONDS];
                self.bucket_second = second;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Millis {
        Millis(ms)
    }

    #[test]
    fn a_healthy_server_ramps_from_the_lower_bound_to_the_upper_one() {
        let mut pace = Pace::new(100, 1_100);
        pace.tick(at(0), Health::default());
        assert_eq!(pace.per_s(), 100.0);
        pace.tick(at(5_000), Health::default());
        assert_eq!(pace.per_s(), 600.0, "half the span in half the ramp");
        pace.tick(at(60_000), Health::default());
        assert_eq!(pace.per_s(), 1_100.0, "never past the upper bound");
    }

    #[test]
    fn overload_cuts_the_rate_once_a_second_down_to_the_lower_bound() {
        let mut pace = Pace::new(100, 1_000);
        pace.tick(at(0), Health::default());
        pace.tick(at(10_000), Health::default());
        let overloaded = Health { overloaded: true };
        pace.tick(at(10_100), overloaded);
        assert_eq!(pace.per_s(), 700.0);
        pace.tick(at(10_200), overloaded);
        assert_eq!(pace.per_s(), 700.0, "one cut per second");
        for second in 1..20 {
            pace.tick(at(10_100 + second * 1_000), overloaded);
        }
        assert_eq!(pace.per_s(), 100.0);
    }

    #[test]
    fn credit_is_earned_by_time_and_capped_after_a_pause() {
        let mut pace = Pace::new(1_000, 1_000);
        assert_eq!(pace.tick(at(0), Health::default()), 0);
        assert_eq!(pace.tick(at(100), Health::default()), 100);
        pace.admitted(at(100), 100);
        // A minute with nobody let in earns a quarter second's worth, not a minute's.
        assert_eq!(pace.tick(at(60_100), Health::default()), 250);
    }

    #[test]
    fn the_measured_rate_is_what_was_admitted_over_the_last_ten_seconds() {
        let mut pace = Pace::new(1, 1_000);
        assert_eq!(pace.measured_per_s(at(0)), 0.0);
        pace.start(at(0));
        // 5 every 100 ms for 20 s: 50/s.
        for tick in 1..=200 {
            pace.admitted(at(tick * 100), 5);
        }
        let measured = pace.measured_per_s(at(20_000));
        assert!((measured - 50.0).abs() < 1.0, "{measured}");
        // Nobody let in for five seconds: 4 of the last 9 seconds had admissions.
        let measured = pace.measured_per_s(at(25_000));
        assert!((measured - 205.0 / 9.0).abs() < 0.01, "{measured}");
        assert_eq!(pace.measured_per_s(at(40_000)), 0.0);
        // Two seconds in, the rate is over two seconds, not ten.
        let mut young = Pace::new(1, 1_000);
        young.start(at(100_000));
        young.admitted(at(100_500), 100);
        young.admitted(at(101_500), 100);
        assert_eq!(young.measured_per_s(at(102_000)), 100.0);
    }

    #[test]
    fn etas_count_the_time_before_admissions_began_at_the_rate_aimed_at() {
        let mut pace = Pace::new(50, 50);
        assert_eq!(pace.eta_per_s(at(0)), 0.0, "nothing before admissions begin");
        pace.tick(at(0), Health::default());
        pace.start(at(0));
        // The opening's first tick lets a quarter second's credit in at once.
        let burst = pace.tick(at(100), Health::default());
        pace.admitted(at(100), burst.max(5));
        assert!(pace.measured_per_s(at(100)) > 49.0, "a burst over 0.1 s reads high: {}", pace.measured_per_s(at(100)));
        let eta = pace.eta_per_s(at(100));
        assert!((eta - 50.0).abs() < 2.0, "{eta}");
        // Then 5 every 100 ms: 50/s, in the ETA rate as in the measured one.
        for tick in 2..=150 {
            pace.admitted(at(tick * 100), 5);
            let eta = pace.eta_per_s(at(tick * 100));
            assert!((eta - 50.0).abs() < 3.0, "{} ms: {eta}", tick * 100);
        }
        assert!((pace.eta_per_s(at(15_000)) - pace.measured_per_s(at(15_000))).abs() < 0.01);
        // Nobody let in for a minute: no ETA can come true.
        assert_eq!(pace.eta_per_s(at(75_000)), 0.0);
    }
}
