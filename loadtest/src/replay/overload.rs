//! What the overload checks read from a replay: did the server keep answering while
//! buyers arrived (stalled seconds), how much it sold while each phase's buyers were
//! arriving (goodput), and how cheap its refusals were.
//!
//! These are tallied by when things happened, not by whose they were: a ramp step's
//! goodput is the confirms the server answered 2xx while that step's load was arriving,
//! whichever buyers they belonged to, because that is the server's useful throughput
//! at that load. [`PhaseWindows`] says which phase's window a moment falls in.
//!
//! A second "answers" when a hold or a confirm got a definite reply in it: 2xx, or a
//! 4xx business refusal (409 seats taken, sold out, a limit; any other 4xx but 429).
//! 503, 429, other 5xx, timeouts, broken connections and malformed replies do not: the
//! buyer still does not know. A second "stalls" when buyers arrived in it (launched or
//! dropped by the driver: both were due) and nothing answered.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;

use super::tally::{micros, small_histogram};
use crate::stats::{Latency, Outcome};

/// Stalled seconds listed by their start time in the report; the rest are only counted.
pub(super) const STALLED_LISTED_MAX: usize = 10;
/// Seconds of a run tallied at most (a week: about 5 MB); later ones are not checked.
const SECONDS_TRACKED_MAX: usize = 7 * 24 * 3600;

/// When each phase's buyers were arriving, as played: phase `p`'s window runs from its
/// first arrival to the next phase's first arrival (by time), the last one's to the
/// last arrival of the run. Phases of the generated shapes follow one another, so the
/// windows are exactly the spike and its tail, or the steps of a ramp; in a hand-written
/// file whose phases overlap, a moment belongs to the phase that started last.
#[derive(Clone, Debug, Default)]
pub(super) struct PhaseWindows {
    /// Each phase that has buyers: its first arrival and its index, by time.
    starts: Vec<(Duration, usize)>,
    /// The run's last arrival.
    end: Duration,
}

impl PhaseWindows {
    /// From every arrival's offset after the start and its phase.
    pub(super) fn new(arrivals: impl IntoIterator<Item = (Duration, usize)>) -> PhaseWindows {
        let mut first_arrival: BTreeMap<usize, Duration> = BTreeMap::new();
        let mut end = Duration::ZERO;
        for (offset, phase) in arrivals {
            first_arrival.entry(phase).and_modify(|first| *first = (*first).min(offset)).or_insert(offset);
            end = end.max(offset);
        }
        let mut starts: Vec<(Duration, usize)> = first_arrival.into_iter().map(|(phase, at)| (at, phase)).collect();
        starts.sort();
        PhaseWindows { starts, end }
    }

    /// The phase whose window holds `elapsed`; `None` before the first arrival and after
    /// the last.
    pub(super) fn phase_at(&self, elapsed: Duration) -> Option<usize> {
        if elapsed > self.end {
            return None;
        }
        let started = self.starts.partition_point(|(start, _)| *start <= elapsed);
        started.checked_sub(1).map(|index| self.starts[index].1)
    }

    /// How long `phase`'s window is; zero for a phase without buyers.
    pub(super) fn length(&self, phase: usize) -> Duration {
        let Some(index) = self.starts.iter().position(|(_, candidate)| *candidate == phase) else {
            return Duration::ZERO;
        };
        let next = self.starts.get(index + 1).map_or(self.end, |(start, _)| *start);
        next.saturating_sub(self.starts[index].0)
    }

    /// The phase a whole second is counted in: that of its start, or of the first
    /// window for a second that starts before it, the last for one past the end.
    fn phase_of_second(&self, second: usize) -> Option<usize> {
        let first = self.starts.first()?.0;
        self.phase_at(Duration::from_secs(second as u64).clamp(first, self.end))
    }
}

/// What happened in one second of the run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct SecondCounts {
    /// Buyers due in it (launched or dropped).
    pub(super) arrivals: u32,
    /// Holds and confirms that got a definite answer in it.
    pub(super) answered: u32,
}

/// Whether a hold's or a confirm's outcome tells the buyer where they stand.
pub(super) fn answers(outcome: Outcome) -> bool {
    match outcome {
        Outcome::Success | Outcome::Conflict => true,
        Outcome::OtherStatus(status) => (400..500).contains(&status),
        Outcome::Busy | Outcome::RateLimited | Outcome::ConnectionError | Outcome::Timeout | Outcome::BadReply => false,
    }
}

/// The seconds (by index: second `i` is `[i, i + 1)` s after the start) in which buyers
/// arrived and nothing answered.
pub(super) fn stalled_seconds(seconds: &[SecondCounts]) -> Vec<usize> {
    seconds
        .iter()
        .enumerate()
        .filter(|(_, second)| second.arrivals > 0 && second.answered == 0)
        .map(|(index, _)| index)
        .collect()
}

/// `part` as a percentage of `whole` (0 of nothing).
pub(super) fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// One phase window's tallies.
struct WindowStats {
    confirmed: u64,
    refusal_latency: Histogram<u32>,
}

/// The overload tallies of a run; see the module comment.
pub(super) struct OverloadTally {
    windows: PhaseWindows,
    seconds: Vec<SecondCounts>,
    /// By phase index.
    phases: Vec<WindowStats>,
    /// Every 503/429 reply's latency from when it was sent, in or out of a window.
    refusal_latency: Histogram<u32>,
}

/// The run-wide part of what [`OverloadTally`] found.
pub(super) struct OverloadSummary {
    pub(super) seconds_with_arrivals: u64,
    pub(super) stalled_seconds: u64,
    pub(super) first_stalled_at_seconds: Vec<u64>,
    pub(super) refusal_latency_us: Latency,
}

/// One phase window's part of what [`OverloadTally`] found.
pub(super) struct WindowSummary {
    pub(super) length: Duration,
    pub(super) confirmed: u64,
    pub(super) stalled_seconds: u64,
    pub(super) refusal_latency_us: Latency,
}

impl OverloadTally {
    /// Before the first buyer, for `phase_count` phases arriving in `windows`.
    pub(super) fn new(windows: PhaseWindows, phase_count: usize) -> OverloadTally {
        OverloadTally {
            windows,
            seconds: Vec::new(),
            phases: (0..phase_count)
                .map(|_| WindowStats { confirmed: 0, refusal_latency: small_histogram() })
                .collect(),
            refusal_latency: small_histogram(),
        }
    }

    fn second(&mut self, elapsed: Duration) -> Option<&mut SecondCounts> {
        let index = usize::try_from(elapsed.as_secs()).ok().filter(|index| *index < SECONDS_TRACKED_MAX)?;
        if self.seconds.len() <= index {
            self.seconds.resize(index + 1, SecondCounts::default());
        }
        Some(&mut self.seconds[index])
    }

    fn window(&mut self, elapsed: Duration) -> Option<&mut WindowStats> {
        let phase = self.windows.phase_at(elapsed)?;
        self.phases.get_mut(phase)
    }

    /// A buyer was due `elapsed` after the start (launched or dropped).
    pub(super) fn arrival(&mut self, elapsed: Duration) {
        if let Some(second) = self.second(elapsed) {
            second.arrivals += 1;
        }
    }

    /// A hold or a confirm ended with `outcome`, `elapsed` after the start.
    pub(super) fn ended(&mut self, elapsed: Duration, outcome: Outcome) {
        if !answers(outcome) {
            return;
        }
        if let Some(second) = self.second(elapsed) {
            second.answered += 1;
        }
    }

    /// A confirm was answered 2xx, `elapsed` after the start.
    pub(super) fn confirmed(&mut self, elapsed: Duration) {
        if let Some(window) = self.window(elapsed) {
            window.confirmed += 1;
        }
    }

    /// A 503 or 429 came back `elapsed` after the start, `latency` after it was sent.
    pub(super) fn refused(&mut self, elapsed: Duration, latency: Duration) {
        self.refusal_latency.saturating_record(micros(latency));
        if let Some(window) = self.window(elapsed) {
            window.refusal_latency.saturating_record(micros(latency));
        }
    }

    pub(super) fn summary(&self) -> OverloadSummary {
        let stalled = stalled_seconds(&self.seconds);
        OverloadSummary {
            seconds_with_arrivals: self.seconds.iter().filter(|second| second.arrivals > 0).count() as u64,
            stalled_seconds: stalled.len() as u64,
            first_stalled_at_seconds: stalled.iter().take(STALLED_LISTED_MAX).map(|index| *index as u64).collect(),
            refusal_latency_us: Latency::of(&self.refusal_latency),
        }
    }

    /// Phase `phase`'s window: its length, what it sold, stalled, and refused.
    pub(super) fn window_summary(&self, phase: usize) -> WindowSummary {
        let stalled_seconds = stalled_seconds(&self.seconds)
            .into_iter()
            .filter(|second| self.windows.phase_of_second(*second) == Some(phase))
            .count() as u64;
        let stats = &self.phases[phase];
        WindowSummary {
            length: self.windows.length(phase),
            confirmed: stats.confirmed,
            stalled_seconds,
            refusal_latency_us: Latency::of(&stats.refusal_latency),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    fn seconds(counts: &[(u32, u32)]) -> Vec<SecondCounts> {
        counts.iter().map(|&(arrivals, answered)| SecondCounts { arrivals, answered }).collect()
    }

    #[test]
    fn a_second_stalls_only_when_buyers_arrive_and_nothing_answers() {
        let check = |counts: &[(u32, u32)], expected: &[usize]| {
            assert_eq!(stalled_seconds(&seconds(counts)), expected, "{counts:?}");
        };
        check(&[], &[]);
        check(&[(5, 3), (5, 1)], &[]);
        check(&[(5, 0)], &[0]);
        check(&[(0, 0), (2, 0), (0, 4), (1, 0)], &[1, 3]);
        check(&[(0, 0), (0, 0)], &[]); // no arrivals: quiet, not stalled
        check(&[(0, 7)], &[]); // answers while nobody arrives (the drain)
    }

    #[test]
    fn definite_answers_are_2xx_and_4xx_but_not_429() {
        let check = |outcome: Outcome, expected: bool| assert_eq!(answers(outcome), expected, "{outcome:?}");
        check(Outcome::Success, true);
        check(Outcome::Conflict, true);
        check(Outcome::OtherStatus(404), true);
        check(Outcome::OtherStatus(400), true);
        check(Outcome::Busy, false);
        check(Outcome::RateLimited, false);
        check(Outcome::OtherStatus(500), false);
        check(Outcome::OtherStatus(302), false);
        check(Outcome::Timeout, false);
        check(Outcome::ConnectionError, false);
        check(Outcome::BadReply, false);
    }

    #[test]
    fn the_tally_counts_stalls_from_arrivals_and_answers() {
        let mut tally = OverloadTally::new(PhaseWindows::new([(ms(0), 0), (ms(3900), 0)]), 1);
        tally.arrival(ms(100));
        tally.ended(ms(400), Outcome::Success); // second 0 answered
        tally.arrival(ms(1200));
        tally.ended(ms(1300), Outcome::Busy); // second 1: only a 503
        tally.ended(ms(1400), Outcome::Timeout);
        tally.arrival(ms(2500));
        tally.ended(ms(2600), Outcome::Conflict); // second 2: a 409 is an answer
        tally.arrival(ms(3100)); // second 3: nothing answered
        tally.ended(ms(5500), Outcome::Success); // second 5: answers, nobody arriving
        let summary = tally.summary();
        assert_eq!(summary.seconds_with_arrivals, 4);
        assert_eq!(summary.stalled_seconds, 2);
        assert_eq!(summary.first_stalled_at_seconds, [1, 3]);
    }

    #[test]
    fn only_the_first_stalled_seconds_are_listed() {
        let mut tally = OverloadTally::new(PhaseWindows::default(), 0);
        for second in 0..STALLED_LISTED_MAX as u64 + 5 {
            tally.arrival(Duration::from_secs(second));
        }
        let summary = tally.summary();
        assert_eq!(summary.stalled_seconds, STALLED_LISTED_MAX as u64 + 5);
        assert_eq!(summary.first_stalled_at_seconds, (0..STALLED_LISTED_MAX as u64).collect::<Vec<_>>());
    }

    #[test]
    fn phase_windows_run_from_one_phase_to_the_next() {
        // A ramp of three steps of about 10 s, the last cut short at 24.5 s.
        let windows = PhaseWindows::new([
            (ms(20), 0),
            (ms(9990), 0),
            (ms(10_010), 1),
            (ms(19_500), 1),
            (ms(20_000), 2),
            (ms(24_500), 2),
        ]);
        let check = |at: u64, expected: Option<usize>| assert_eq!(windows.phase_at(ms(at)), expected, "{at} ms");
        check(0, None);
        check(20, Some(0));
        check(10_000, Some(0));
        check(10_010, Some(1));
        check(19_999, Some(1));
        check(24_500, Some(2));
        check(24_501, None);
        assert_eq!(windows.length(0), ms(9990));
        assert_eq!(windows.length(1), ms(9990));
        assert_eq!(windows.length(2), ms(4500));
        assert_eq!(windows.length(3), Duration::ZERO, "a phase without buyers");
        assert_eq!(windows.phase_of_second(0), Some(0), "before the first arrival: the first phase");
        assert_eq!(windows.phase_of_second(10), Some(0), "10.000 s is still phase 0's");
        assert_eq!(windows.phase_of_second(11), Some(1));
        assert_eq!(windows.phase_of_second(40), Some(2), "past the end: the last phase");
        assert_eq!(PhaseWindows::default().phase_at(Duration::ZERO), None);
    }

    #[test]
    fn goodput_and_refusals_go_to_the_window_they_happened_in() {
        let windows = PhaseWindows::new([(ms(0), 0), (ms(9999), 0), (ms(10_000), 1), (ms(19_000), 1)]);
        let mut tally = OverloadTally::new(windows, 2);
        for at in [500, 9000, 12_000] {
            tally.confirmed(ms(at));
        }
        tally.confirmed(ms(25_000)); // after the last arrival: in no window
        tally.refused(ms(3000), ms(2));
        tally.refused(ms(11_000), ms(4));
        tally.refused(ms(11_500), ms(40));
        tally.refused(ms(30_000), ms(1)); // in the drain: only the run-wide latency
        tally.arrival(ms(15_500)); // a stalled second in phase 1
        let first = tally.window_summary(0);
        let second = tally.window_summary(1);
        assert_eq!((first.confirmed, second.confirmed), (2, 1));
        assert_eq!((first.length, second.length), (ms(10_000), ms(9000)));
        assert_eq!((first.stalled_seconds, second.stalled_seconds), (0, 1));
        assert_eq!((first.refusal_latency_us.count, second.refusal_latency_us.count), (1, 2));
        let close =
            |actual: u64, expected_us: u64| assert!(actual.abs_diff(expected_us) <= expected_us / 100, "{actual}");
        close(second.refusal_latency_us.max, 40_000);
        close(second.refusal_latency_us.p50, 4000);
        let summary = tally.summary();
        assert_eq!(summary.refusal_latency_us.count, 4);
        close(summary.refusal_latency_us.max, 40_000);
    }

    #[test]
    fn timeouts_are_a_share_of_requests_sent() {
        assert_eq!(percent(0, 0), 0.0);
        assert_eq!(percent(5, 1000), 0.5);
        assert_eq!(percent(3, 3), 100.0);
    }
}
