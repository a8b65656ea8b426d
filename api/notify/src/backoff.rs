//! When to try a failed delivery again, and when to give up: exponential backoff with full
//! jitter ("Exponential Backoff And Jitter", AWS Architecture Blog), capped, with a
//! receiver's `Retry-After` honoured up to a bound, and dead letters after a number of
//! attempts.
//!
//! Pure and deterministic: the jitter comes from a caller's seed (e.g. the outbox entry's
//! id) mixed with the attempt number, so the relay stores only how many attempts failed and
//! a test or a replay gets the same schedule. Full jitter spreads the retries of many entries
//! that failed together (an SMTP server back after a minute) instead of sending them in waves.

use std::time::Duration;

/// The retry schedule. The defaults: the first retry within 1 s, the ceiling doubling to
/// 15 minutes from the 11th attempt on, 30 attempts (about 3.5 hours of tries in expectation)
/// before a dead letter, which an admin can retry by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The jitter's ceiling after the first failed attempt; it doubles with each failure.
    first_delay: Duration,
    /// The ceiling never exceeds this.
    delay_max: Duration,
    /// A receiver's `Retry-After` is waited at most this long (a misbehaving receiver must
    /// not park an entry for days).
    retry_after_max: Duration,
    /// Attempts in all (the first included); the one that fails last goes to dead letters.
    attempts_max: u32,
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextAttempt {
    After(Duration),
    DeadLetter,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetryPolicyError {
    #[error("the first retry delay must be more than 0")]
    FirstDelayZero,
    #[error("the largest retry delay ({delay_max:?}) is below the first ({first_delay:?})")]
    DelayMaxBelowFirst { first_delay: Duration, delay_max: Duration },
    #[error("attempts_max must be at least 1")]
    NoAttempts,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            first_delay: Duration::from_secs(1),
            delay_max: Duration::from_secs(15 * 60),
            retry_after_max: Duration::from_secs(60 * 60),
            attempts_max: 30,
        }
    }
}

impl RetryPolicy {
    pub fn new(
        first_delay: Duration,
        delay_max: Duration,
        retry_after_max: Duration,
        attempts_max: u32,
    ) -> Result<RetryPolicy, RetryPolicyError> {
        if first_delay.is_zero() {
            return Err(RetryPolicyError::FirstDelayZero);
        }
        if delay_max < first_delay {
            return Err(RetryPolicyError::DelayMaxBelowFirst { first_delay, delay_max });
        }
        if attempts_max == 0 {
            return Err(RetryPolicyError::NoAttempts);
        }
        Ok(RetryPolicy { first_delay, delay_max, retry_after_max, attempts_max })
    }

    pub fn attempts_max(&self) -> u32 {
        self.attempts_max
    }

    /// After `attempts_failed` attempts (counting the one that just failed), when to try
    /// again: a uniform draw in `0..=min(delay_max, first_delay × 2^(attempts_failed − 1))`,
    /// at least the receiver's `retry_after` (bounded by `retry_after_max`); or a dead
    /// letter once `attempts_max` attempts have failed. `seed` picks the draw.
    pub fn next(&self, attempts_failed: u32, retry_after: Option<Duration>, seed: u64) -> NextAttempt {
        if attempts_failed >= self.attempts_max {
            return NextAttempt::DeadLetter;
        }
        let attempt = attempts_failed.max(1);
        let ceiling = self.ceiling(attempt);
        let jittered = uniform_up_to(ceiling, mix(seed, attempt));
        let floor = retry_after.map_or(Duration::ZERO, |after| after.min(self.retry_after_max));
        NextAttempt::After(jittered.max(floor))
    }

    fn ceiling(&self, attempt: u32) -> Duration {
        // 2^(attempt-1) overflows nothing: past 2^31 the cap has long been reached.
        let doublings = (attempt - 1).min(31);
        self.first_delay.checked_mul(1 << doublings).map_or(self.delay_max, |delay| delay.min(self.delay_max))
    }
}

/// A uniform draw in `0..=ceiling` from 64 random bits (multiply-shift: no float, no bias
/// worth naming at these ranges).
fn uniform_up_to(ceiling: Duration, random: u64) -> Duration {
    let ceiling_nanos = ceiling.as_nanos();
    let nanos = (u128::from(random) * (ceiling_nanos + 1)) >> 64;
    // nanos <= ceiling_nanos, which came from a Duration, so it fits again.
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// SplitMix64 of the seed and the attempt: independent-looking draws per attempt from one
/// stored seed.
fn mix(seed: u64, attempt: u32) -> u64 {
    let mut z = seed.wrapping_add(u64::from(attempt).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy::new(Duration::from_secs(1), Duration::from_secs(60), Duration::from_secs(300), 10).expect("valid")
    }

    fn delay(next: NextAttempt) -> Duration {
        match next {
            NextAttempt::After(delay) => delay,
            NextAttempt::DeadLetter => panic!("expected a retry"),
        }
    }

    #[test]
    fn same_seed_same_schedule_other_seed_other_schedule() {
        let schedule = |seed| (1..10).map(|attempt| delay(policy().next(attempt, None, seed))).collect::<Vec<_>>();
        assert_eq!(schedule(7), schedule(7));
        assert_ne!(schedule(7), schedule(8));
    }

    #[test]
    fn delays_stay_under_the_doubling_capped_ceiling() {
        let ceilings = [1, 2, 4, 8, 16, 32, 60, 60, 60];
        for (attempt, ceiling) in (1..10).zip(ceilings) {
            let ceiling = Duration::from_secs(ceiling);
            let draws: Vec<Duration> = (0..2_000).map(|seed| delay(policy().next(attempt, None, seed))).collect();
            assert!(draws.iter().all(|draw| *draw <= ceiling), "attempt {attempt}");
            // Full jitter: the draws spread over the whole range, not just near the ceiling.
            let mean = draws.iter().sum::<Duration>() / 2_000;
            assert!(mean > ceiling * 2 / 5 && mean < ceiling * 3 / 5, "attempt {attempt}: mean {mean:?}");
            assert!(draws.iter().any(|draw| *draw < ceiling / 10), "attempt {attempt}");
        }
    }

    #[test]
    fn retry_after_is_a_floor_and_is_bounded() {
        for seed in 0..100 {
            assert!(delay(policy().next(1, Some(Duration::from_secs(120)), seed)) == Duration::from_secs(120));
            // A day asked for is waited only retry_after_max.
            assert_eq!(delay(policy().next(1, Some(Duration::from_secs(86_400)), seed)), Duration::from_secs(300));
            // A short Retry-After does not shorten the backoff.
            assert!(delay(policy().next(8, Some(Duration::from_secs(1)), seed)) >= Duration::from_secs(1));
        }
    }

    #[test]
    fn dead_letter_after_attempts_max() {
        assert!(matches!(policy().next(9, None, 1), NextAttempt::After(_)));
        assert_eq!(policy().next(10, None, 1), NextAttempt::DeadLetter);
        assert_eq!(policy().next(u32::MAX, None, 1), NextAttempt::DeadLetter);
        let once = RetryPolicy::new(Duration::from_secs(1), Duration::from_secs(1), Duration::ZERO, 1).expect("valid");
        assert_eq!(once.next(1, None, 1), NextAttempt::DeadLetter);
    }

    #[test]
    fn huge_attempt_counts_do_not_overflow() {
        let long = RetryPolicy::new(Duration::from_secs(1), Duration::from_secs(3600), Duration::ZERO, u32::MAX)
            .expect("valid");
        assert!(delay(long.next(u32::MAX - 1, None, 3)) <= Duration::from_secs(3600));
    }

    #[test]
    fn invalid_policies_are_refused() {
        let second = Duration::from_secs(1);
        assert_eq!(RetryPolicy::new(Duration::ZERO, second, second, 3), Err(RetryPolicyError::FirstDelayZero));
        assert!(matches!(
            RetryPolicy::new(second * 2, second, second, 3),
            Err(RetryPolicyError::DelayMaxBelowFirst { .. })
        ));
        assert_eq!(RetryPolicy::new(second, second, second, 0), Err(RetryPolicyError::NoAttempts));
        assert_eq!(RetryPolicy::default().attempts_max(), 30);
    }
}
