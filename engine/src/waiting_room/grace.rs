//! How long after being let in a buyer still counts as about to take seats: learned
//! from how long the buyers who came to hold took.
//!
//! A buyer let in learns it at their next poll, then asks for seats; most do within
//! seconds. Some never come: at the end of a sale a buyer who sees that nothing left
//! suits them leaves without a word, and a buyer counted as about to take seats until
//! their access lapses (minutes) keeps everyone behind them out (issue 15's rehearsal
//! stalled 8 minutes on 2,300 of them). Past the grace, a buyer let in who has not come
//! stops counting; their access stays valid until its deadline.

/// Delays are counted in whole seconds up to this; longer ones in the last bucket.
const BUCKETS: usize = 121;
/// Before this many buyers came, the grace is the whole access window (the room is
/// cautious until it has seen real figures).
const SAMPLES_MIN: u64 = 50;
/// The grace is `FACTOR` times the delay within which `SHARE` of the buyers who came
/// did: a late poller or a slow page is not taken for one who left.
const SHARE: f64 = 0.95;
const FACTOR: u64 = 2;
const GRACE_MIN_MS: u64 = 10_000;

/// The delays from being let in to the first hold asked for (granted or refused).
#[derive(Clone, Debug)]
pub(super) struct Arrivals {
    counts: [u64; BUCKETS],
    samples: u64,
}

impl Default for Arrivals {
    fn default() -> Arrivals {
        Arrivals { counts: [0; BUCKETS], samples: 0 }
    }
}

impl Arrivals {
    pub(super) fn record(&mut self, delay_ms: u64) {
        let bucket = ((delay_ms / 1_000) as usize).min(BUCKETS - 1);
        self.counts[bucket] += 1;
        self.samples += 1;
    }

    /// How long a buyer let in counts as about to come, within `window_ms` (the access's
    /// length) and at least [`GRACE_MIN_MS`].
    pub(super) fn grace_ms(&self, window_ms: u64) -> u64 {
        if self.samples < SAMPLES_MIN {
            return window_ms;
        }
        let wanted = (self.samples as f64 * SHARE).ceil() as u64;
        let mut seen = 0;
        let seconds = self
            .counts
            .iter()
            .position(|&count| {
                seen += count;
                seen >= wanted
            })
            .unwrap_or(BUCKETS - 1) as u64
            + 1;
        (seconds * 1_000 * FACTOR).max(GRACE_MIN_MS).min(window_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grace_is_twice_the_delay_most_buyers_came_within() {
        let mut arrivals = Arrivals::default();
        assert_eq!(arrivals.grace_ms(600_000), 600_000, "the whole window before enough came");
        for delay_s in 0..100 {
            // 95 buyers within 9.x s, 5 far later.
            let delay_ms = if delay_s < 95 { delay_s % 10 * 1_000 + 500 } else { 300_000 };
            arrivals.record(delay_ms);
        }
        assert_eq!(arrivals.grace_ms(600_000), 20_000);
        assert_eq!(arrivals.grace_ms(15_000), 15_000, "never past the access window");
        let mut quick = Arrivals::default();
        (0..100).for_each(|_| quick.record(200));
        assert_eq!(quick.grace_ms(600_000), GRACE_MIN_MS);
        let mut slow = Arrivals::default();
        (0..100).for_each(|_| slow.record(1_000_000));
        assert_eq!(slow.grace_ms(600_000), 242_000, "the last bucket holds every longer delay");
    }
}
