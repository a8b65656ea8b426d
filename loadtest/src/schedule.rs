//! The open-loop arrival schedule (as in wrk2): arrival `i` is due at `start + i / rate`,
//! whatever happened to the arrivals before it.
//!
//! [`pace`] launches each arrival when it is due and never waits for one to finish, so
//! a slow server cannot slow the arrival rate down (closed-loop drivers do, and then
//! report the latency of far fewer, luckier requests: coordinated omission).
//!
//! Waking up on time is the hard part. tokio's timer ticks every millisecond, which
//! would start arrivals up to 1 ms late: more than a fast server takes to answer. So
//! the pacer task runs on the runtime and launches whatever is due each time it is
//! woken, and two things wake it: the driver, on every reply (under load replies come
//! every few microseconds, so arrivals start on time at no extra cost), and a clock
//! thread, which sleeps until the next arrival's time (a thread sleep overshoots by
//! the kernel's timer slack, ~50 µs) and wakes the task only if that arrival has not
//! been launched yet. While replies keep the pacer on time, the clock thread backs off
//! to wake rarely, since each of its wakeups costs the core a context switch.
//!
//! An arrival may still start a little late. Latencies are measured from
//! [`Arrival::scheduled`], never from the launch, so that lateness is counted, not
//! hidden; the report shows it apart as the start lag.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// Arrivals launched per pass at most before the pacer yields, so that one that fell
/// behind lets replies be handled between batches.
pub const LAUNCH_BATCH_MAX: u64 = 256;
/// The clock thread sleeps at least this long: at high rates it wakes the pacer for a
/// few arrivals at once rather than one each (the price: starting them this much late).
const CLOCK_SLEEP_MIN: Duration = Duration::from_micros(100);
/// ... and at most this long, to notice a stop.
const CLOCK_SLEEP_MAX: Duration = Duration::from_millis(1);
/// How long the clock sleeps at most, past arrivals' times, while replies keep the
/// pacer on time: an arrival that falls in a gap between replies starts at most this
/// (plus timer slack) late, and the clock wakes at most ~1/this a second.
const CLOCK_BACK_OFF_MAX: Duration = Duration::from_micros(200);

/// When each arrival is due, relative to the start, and which arrivals are measured:
/// either evenly spaced at a fixed rate (`run`) or at given offsets (`replay` of a
/// queue file).
#[derive(Clone, Debug)]
pub struct Schedule {
    timing: Timing,
    /// Arrivals due before the warmup ends; they run but are not measured.
    warmup_arrivals: u64,
    arrivals: u64,
}

#[derive(Clone, Debug)]
enum Timing {
    Rate(f64),
    /// Non-decreasing; shared with the clock thread.
    Offsets(Arc<[Duration]>),
}

impl Schedule {
    /// `rate_per_second` arrivals a second for `warmup + duration`; those due during the
    /// warmup are not measured.
    pub fn new(rate_per_second: f64, warmup: Duration, duration: Duration) -> Schedule {
        assert!(rate_per_second > 0.0 && rate_per_second.is_finite(), "the rate must be positive");
        let warmup_arrivals = (warmup.as_secs_f64() * rate_per_second).ceil() as u64;
        let arrivals = ((warmup + duration).as_secs_f64() * rate_per_second).ceil() as u64;
        Schedule { timing: Timing::Rate(rate_per_second), warmup_arrivals, arrivals }
    }

    /// Arrival `i` due at `offsets[i]` (non-decreasing), all measured.
    pub fn at_offsets(offsets: Vec<Duration>) -> Schedule {
        assert!(offsets.is_sorted(), "arrival offsets must not decrease");
        let arrivals = offsets.len() as u64;
        Schedule { timing: Timing::Offsets(offsets.into()), warmup_arrivals: 0, arrivals }
    }

    /// All arrivals, warmup included.
    pub fn arrivals(&self) -> u64 {
        self.arrivals
    }

    /// Arrivals after the warmup: the ones in the report.
    pub fn measured_arrivals(&self) -> u64 {
        self.arrivals - self.warmup_arrivals
    }

    /// When arrival `index` is due, after the start. Past the last arrival of an offset
    /// schedule: the last one's offset.
    pub fn offset(&self, index: u64) -> Duration {
        match &self.timing {
            Timing::Rate(rate) => Duration::from_secs_f64(index as f64 / rate),
            Timing::Offsets(offsets) => {
                offsets.get(index as usize).or(offsets.last()).copied().unwrap_or(Duration::ZERO)
            }
        }
    }

    /// When the measured window starts, after the start (the first measured arrival).
    pub fn measure_offset(&self) -> Duration {
        self.offset(self.warmup_arrivals)
    }

    pub fn is_measured(&self, index: u64) -> bool {
        index >= self.warmup_arrivals
    }

    /// How many arrivals are due `elapsed` after the start (indexes `0..due`).
    pub fn due(&self, elapsed: Duration) -> u64 {
        let rate = match &self.timing {
            Timing::Rate(rate) => *rate,
            Timing::Offsets(offsets) => return offsets.partition_point(|offset| *offset <= elapsed) as u64,
        };
        let mut due = ((elapsed.as_secs_f64() * rate).floor() as u64).saturating_add(1).min(self.arrivals);
        // Agree exactly with `offset` despite round-off: arrival i is due iff offset(i) <= elapsed.
        // (Otherwise the pacer could sleep until an offset, wake, and find nothing due.)
        while due > 0 && self.offset(due - 1) > elapsed {
            due -= 1;
        }
        while due < self.arrivals && self.offset(due) <= elapsed {
            due += 1;
        }
        due
    }
}

/// One arrival, as handed to the launcher.
#[derive(Clone, Copy, Debug)]
pub struct Arrival {
    pub index: u64,
    /// When it was due; every latency of this arrival is measured from here.
    pub scheduled: Instant,
    /// False during the warmup.
    pub measured: bool,
}

/// How pacing ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaceEnd {
    /// Every arrival of the schedule was launched.
    Completed,
    /// `stop` fired first; arrivals `launched..` never started.
    Stopped { launched: u64 },
}

/// Calls `launch` for every arrival of `schedule` at its due time after `start`, in
/// order, until all are launched or `stop` completes. `launch` must not wait for the
/// arrival's work (spawn it): that is what makes the schedule open-loop. Whoever can
/// tell that time has passed (the driver, on each reply) should `notify_one` the
/// `nudge`; see the module comment.
pub async fn pace(
    schedule: &Schedule,
    start: Instant,
    stop: impl Future<Output = ()>,
    nudge: &Arc<Notify>,
    mut launch: impl FnMut(Arrival),
) -> PaceEnd {
    let progress = Arc::new(Progress { launched: AtomicU64::new(0), stopping: AtomicBool::new(false) });
    {
        let (schedule, start, progress, nudge) = (schedule.clone(), start.into_std(), progress.clone(), nudge.clone());
        // Detached: it ends by itself within CLOCK_SLEEP_MAX of the pacer, and joining
        // it would block the runtime thread.
        std::thread::Builder::new()
            .name("pacer-clock".into())
            .spawn(move || clock(&schedule, start, &progress, &nudge))
            .expect("spawning the pacer's clock thread");
    }
    let mut stop = std::pin::pin!(stop);
    let mut next = 0;
    let end = loop {
        let due = schedule.due(Instant::now().saturating_duration_since(start));
        let until = due.min(next + LAUNCH_BATCH_MAX);
        for index in next..until {
            let scheduled = start + schedule.offset(index);
            launch(Arrival { index, scheduled, measured: schedule.is_measured(index) });
        }
        next = next.max(until);
        progress.launched.store(next, Ordering::Relaxed);
        if next >= schedule.arrivals() {
            break PaceEnd::Completed;
        }
        tokio::select! {
            biased;
            () = &mut stop => break PaceEnd::Stopped { launched: next },
            // Behind schedule: let waiting replies be handled, then go on at once.
            () = tokio::task::yield_now(), if next < due => {}
            () = nudge.notified() => {}
        }
    };
    progress.stopping.store(true, Ordering::Relaxed);
    end
}

/// What the pacer task tells its clock thread.
struct Progress {
    /// Arrivals `0..launched` are launched.
    launched: AtomicU64,
    stopping: AtomicBool,
}

/// The clock thread: sleeps until the next arrival's time and wakes the pacer if, by
/// then, arrivals are due but not launched.
///
/// If the pacer launched arrivals that fell due after the clock's previous wakeup,
/// something else (replies) woke it: the clock then backs off, sleeping twice as long
/// each time up to CLOCK_BACK_OFF_MAX, so that under load it wakes less often; when
/// replies stop coming, arrivals start at most that much late until it catches up.
fn clock(schedule: &Schedule, start: std::time::Instant, progress: &Progress, nudge: &Notify) {
    let mut due_before = 0;
    let mut back_off = Duration::ZERO;
    while !progress.stopping.load(Ordering::Relaxed) {
        let launched = progress.launched.load(Ordering::Relaxed);
        if launched >= schedule.arrivals() {
            return;
        }
        let elapsed = start.elapsed();
        let due = schedule.due(elapsed);
        if due > launched {
            nudge.notify_one();
        }
        back_off = if launched > due_before {
            (back_off * 2).clamp(CLOCK_SLEEP_MIN, CLOCK_BACK_OFF_MAX)
        } else {
            Duration::ZERO
        };
        due_before = due;
        let until_next = schedule.offset(due.max(launched)).saturating_sub(elapsed);
        std::thread::sleep(until_next.max(back_off).clamp(CLOCK_SLEEP_MIN, CLOCK_SLEEP_MAX));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrivals_are_evenly_spaced_and_warmup_is_not_measured() {
        let schedule = Schedule::new(1000.0, Duration::from_millis(200), Duration::from_secs(1));
        assert_eq!(schedule.arrivals(), 1200);
        assert_eq!(schedule.measured_arrivals(), 1000);
        assert_eq!(schedule.offset(0), Duration::ZERO);
        assert_eq!(schedule.offset(1500), Duration::from_millis(1500));
        assert!(!schedule.is_measured(199));
        assert!(schedule.is_measured(200));
        assert_eq!(schedule.measure_offset(), Duration::from_millis(200));
    }

    #[test]
    fn due_counts_arrivals_up_to_elapsed() {
        let check = |rate: f64, elapsed_us: u64, expected: u64| {
            let schedule = Schedule::new(rate, Duration::ZERO, Duration::from_secs(10));
            assert_eq!(schedule.due(Duration::from_micros(elapsed_us)), expected, "rate {rate} at {elapsed_us} µs");
        };
        check(1000.0, 0, 1);
        check(1000.0, 999, 1);
        check(1000.0, 1000, 2);
        check(3.0, 333_334, 2);
        check(3.0, 333_333, 1);
        check(60_000.0, 1_000_000, 60_001);
        check(1000.0, 60_000_000, 10_000);
    }

    #[test]
    fn due_agrees_with_offset() {
        for rate in [3.0, 1000.0, 5000.0, 7919.0, 60_000.0] {
            let schedule = Schedule::new(rate, Duration::ZERO, Duration::from_secs(1));
            for index in 0..schedule.arrivals() {
                assert_eq!(schedule.due(schedule.offset(index)), index + 1, "rate {rate}, arrival {index}");
            }
        }
    }

    /// The launcher here starts work that never finishes; every arrival must still start,
    /// in order and never early, which a closed-loop driver (waiting for replies) would
    /// never do.
    #[tokio::test]
    async fn pacing_is_open_loop() {
        let schedule = Schedule::new(5000.0, Duration::from_millis(100), Duration::from_millis(200));
        let start = Instant::now();
        let mut launched = Vec::new();
        let end = pace(&schedule, start, std::future::pending(), &Arc::new(Notify::new()), |arrival| {
            launched.push((arrival, Instant::now()));
            tokio::spawn(std::future::pending::<()>());
        })
        .await;
        assert_eq!(end, PaceEnd::Completed);
        assert_eq!(launched.len() as u64, schedule.arrivals());
        let mut lags = Vec::new();
        for (index, (arrival, launched_at)) in launched.iter().enumerate() {
            assert_eq!(arrival.index, index as u64);
            assert_eq!(arrival.scheduled, start + schedule.offset(index as u64));
            assert!(*launched_at >= arrival.scheduled, "arrival {index} launched early");
            lags.push(launched_at.duration_since(arrival.scheduled));
        }
        assert_eq!(
            launched.iter().filter(|(arrival, _)| arrival.measured).count() as u64,
            schedule.measured_arrivals()
        );
        lags.sort();
        // Generous, for a loaded machine; typically tens of microseconds.
        assert!(lags[lags.len() / 2] < Duration::from_millis(20), "median start lag {:?}", lags[lags.len() / 2]);
    }

    #[test]
    fn offset_schedules_follow_their_offsets() {
        let ms = Duration::from_millis;
        let schedule = Schedule::at_offsets(vec![ms(0), ms(5), ms(5), ms(20)]);
        assert_eq!((schedule.arrivals(), schedule.measured_arrivals()), (4, 4));
        assert!(schedule.is_measured(0));
        assert_eq!(schedule.offset(2), ms(5));
        assert_eq!(schedule.offset(9), ms(20));
        let due: Vec<u64> = [0, 4, 5, 19, 20, 99].iter().map(|at| schedule.due(ms(*at))).collect();
        assert_eq!(due, [1, 1, 3, 3, 4, 4]);
        assert_eq!(Schedule::at_offsets(Vec::new()).due(ms(1)), 0);
    }

    #[tokio::test]
    async fn stop_ends_pacing_early() {
        let schedule = Schedule::new(1000.0, Duration::ZERO, Duration::from_secs(10));
        let start = Instant::now();
        let mut count = 0;
        let stop = tokio::time::sleep(Duration::from_millis(100));
        let end = pace(&schedule, start, stop, &Arc::new(Notify::new()), |_| count += 1).await;
        let PaceEnd::Stopped { launched } = end else { panic!("expected a stop, got {end:?}") };
        assert_eq!(launched, count);
        assert!((50..=1000).contains(&launched), "launched {launched}");
        assert!(start.elapsed() < Duration::from_secs(2));
    }
}
