//! Per-customer request rates (hold and confirm calls): fixed memory however many
//! customers arrive, and a refusal (429 + Retry-After) that never waits.

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::http::error::ApiError;
use crate::http::route_metrics::REJECTIONS_TOTAL;

/// Slots of the per-customer token buckets; customers hash into them, so memory is
/// fixed however many customers arrive (two customers sharing a slot share its rate).
const LIMITER_SLOTS: usize = 1 << 16;
/// Tokens are kept in thousandths so refills of a fraction of a token add up.
const MILLI: u64 = 1000;

/// Per-customer request rate (hold and confirm calls): a token bucket per slot, each
/// one `AtomicU64` = tokens (milli, high 24 bits) | last refill (ms, low 40 bits).
pub struct CustomerLimiter {
    slots: Vec<AtomicU64>,
    per_s: u64,
    burst: u64,
    epoch: Instant,
}

const MS_BITS: u32 = 40;
const MS_MASK: u64 = (1 << MS_BITS) - 1;

impl CustomerLimiter {
    pub fn new(per_s: u32, burst: u32) -> CustomerLimiter {
        let slots = if burst == 0 { 0 } else { LIMITER_SLOTS };
        CustomerLimiter {
            slots: (0..slots).map(|_| AtomicU64::new(0)).collect(),
            per_s: u64::from(per_s),
            burst: u64::from(burst).min((1 << (64 - MS_BITS)) / MILLI - 1),
            epoch: Instant::now(),
        }
    }

    /// Takes one token of `customer`'s bucket, or says how many seconds until one refills.
    pub fn check(&self, customer: &str) -> Result<(), u64> {
        if self.slots.is_empty() {
            return Ok(());
        }
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        customer.hash(&mut hasher);
        let slot = &self.slots[hasher.finish() as usize % self.slots.len()];
        // Offset by 1 so that a zero word means "never used, bucket full".
        let now_ms = (self.epoch.elapsed().as_millis() as u64 + 1) & MS_MASK;
        let capacity = self.burst * MILLI;
        let mut word = slot.load(Ordering::Relaxed);
        loop {
            let (tokens, last_ms) = if word == 0 { (capacity, now_ms) } else { (word >> MS_BITS, word & MS_MASK) };
            let refill = now_ms.saturating_sub(last_ms) * self.per_s; // milli-tokens: per_s per ms
            let tokens = (tokens + refill).min(capacity);
            if tokens < MILLI {
                let missing = MILLI - tokens;
                let wait_ms = if self.per_s == 0 { 60_000 } else { missing.div_ceil(self.per_s) };
                return Err(wait_ms.div_ceil(1000).max(1));
            }
            let next = ((tokens - MILLI) << MS_BITS) | now_ms;
            match slot.compare_exchange_weak(word, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return Ok(()),
                Err(current) => word = current,
            }
        }
    }
}

/// 429 for a customer over their request rate.
pub fn rate_limited(retry_after_s: u64) -> ApiError {
    metrics::counter!(REJECTIONS_TOTAL, "reason" => "customer_rate").increment(1);
    ApiError::new(
        axum::http::StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        "too many requests for this customer; retry after the given seconds",
    )
    .retry_after(retry_after_s)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_burst_then_refusals_then_refill() {
        let limiter = CustomerLimiter::new(1000, 3);
        for _ in 0..3 {
            assert_eq!(limiter.check("alice"), Ok(()));
        }
        assert!(limiter.check("alice").is_err(), "burst spent");
        assert_eq!(limiter.check("bob"), Ok(()), "others unaffected");
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(limiter.check("alice"), Ok(()), "1000/s refills a token within 5 ms");
    }

    #[test]
    fn retry_after_is_whole_seconds_until_a_token() {
        let limiter = CustomerLimiter::new(1, 1);
        assert_eq!(limiter.check("alice"), Ok(()));
        assert_eq!(limiter.check("alice"), Err(1));
        assert_eq!(CustomerLimiter::new(0, 0).check("anyone"), Ok(()), "0 = off");
    }
}
