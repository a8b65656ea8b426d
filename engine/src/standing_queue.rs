//! Telling a standing queue from a burst, CoDel-style.
//!
//! A burst fills a mailbox and drains: some call soon waits less than the target
//! again. A standing queue never drains: every call waits longer than the target for
//! a whole interval, and waiting longer only makes every answer late. While a queue
//! stands, calls that start new work (holds) and waited longer than the target are
//! shed, and new ones are refused before they queue; calls that finish work already
//! started (confirms, releases) are still served. This is the rule of Facebook's
//! "Fail at Scale" (2015): "if the queue has not been empty for the last N ms, time in
//! queue is limited to M ms", with CoDel's target and interval (Nichols and Jacobson,
//! 2012) as M and N.
//!
//! Deterministic: it is given the times, never reads a clock.

use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct StandingQueue {
    target: Duration,
    interval: Duration,
    /// Since when every call has waited longer than the target (`None`: the last one
    /// did not, or the queue was seen empty since).
    above_target_since: Option<Instant>,
}

impl StandingQueue {
    pub fn new(target: Duration, interval: Duration) -> StandingQueue {
        StandingQueue { target, interval, above_target_since: None }
    }

    /// A call waited `sojourn` in the queue; `now` is when it was taken. Returns
    /// whether the queue is standing now.
    pub fn observe(&mut self, sojourn: Duration, now: Instant) -> bool {
        if sojourn <= self.target {
            self.above_target_since = None;
        } else {
            self.above_target_since.get_or_insert(now);
        }
        self.is_standing(now)
    }

    /// The queue was seen empty.
    pub fn drained(&mut self) {
        self.above_target_since = None;
    }

    pub fn is_standing(&self, now: Instant) -> bool {
        self.above_target_since.is_some_and(|since| now.saturating_duration_since(since) > self.interval)
    }

    /// Whether a sheddable call that waited `sojourn` is shed: the queue stands and the
    /// call waited longer than the target.
    pub fn sheds(&self, sojourn: Duration, now: Instant) -> bool {
        sojourn > self.target && self.is_standing(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TARGET: Duration = Duration::from_millis(5);
    const INTERVAL: Duration = Duration::from_millis(100);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_burst_that_drains_within_the_interval_is_absorbed() {
        let start = Instant::now();
        let mut queue = StandingQueue::new(TARGET, INTERVAL);
        // 80 ms of calls that each waited 30 ms, then one that waited 2 ms.
        for t in 0..80 {
            assert!(!queue.observe(ms(30), start + ms(t)), "a burst younger than the interval is not shed");
        }
        assert!(!queue.observe(ms(2), start + ms(80)));
        assert!(!queue.observe(ms(30), start + ms(170)), "the drain restarted the interval");
        assert!(!queue.sheds(ms(30), start + ms(170)));
    }

    #[test]
    fn a_queue_that_never_drains_for_an_interval_stands_until_it_does() {
        let start = Instant::now();
        let mut queue = StandingQueue::new(TARGET, INTERVAL);
        for t in 0..=100 {
            assert!(!queue.observe(ms(20), start + ms(t)));
        }
        assert!(queue.observe(ms(20), start + ms(101)));
        assert!(queue.sheds(ms(6), start + ms(101)), "a call that waited past the target is shed");
        assert!(!queue.sheds(ms(5), start + ms(101)), "a call within the target is served");
        assert!(!queue.observe(ms(4), start + ms(102)), "a call within the target ends the standing queue");
    }

    #[test]
    fn a_burst_after_a_quiet_spell_is_a_burst_and_an_empty_queue_stands_no_more() {
        let start = Instant::now();
        let mut queue = StandingQueue::new(TARGET, INTERVAL);
        assert!(!queue.observe(ms(40), start + ms(10_000)), "the first late call after idle starts the interval");
        assert!(queue.observe(ms(40), start + ms(10_101)));
        queue.drained();
        assert!(!queue.is_standing(start + ms(10_102)));
    }
}
