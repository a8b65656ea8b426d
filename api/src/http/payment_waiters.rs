//! Buyers waiting for their payment to move (`GET /v1/holds/{hold}/payment?wait_ms=`).
//!
//! After paying at the PSP a buyer wants the order, which exists once the PSP's webhook
//! has come and been acted on. A long poll answers that with one request, the moment
//! the gateway reports the payment's new state, instead of a poll every few
//! milliseconds (each one a request, a section call and an answer) that learns it up to
//! a poll interval late.
//!
//! A waiter is registered before the payment is read, so a report between the read and
//! the wait still wakes it. Waiters are bounded: past [`WAITERS_MAX`] a request is
//! answered at once with the state as it is, and its client polls again.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
use hakken_engine::ids::HoldId;
use metrics::Gauge;
use tokio::sync::Notify;

/// Long polls waiting at once, at most (a waiter is a map entry and a parked task:
/// about 200 bytes).
pub const WAITERS_MAX: usize = 16_384;

pub const PAYMENT_WAITERS: &str = "hakken_payment_waiters";

pub struct PaymentWaiters {
    waiting: DashMap<HoldId, Arc<Notify>>,
    count: AtomicUsize,
    max: usize,
    gauge: Gauge,
}

/// One registered waiter; unregistered when dropped.
pub struct Waiter<'a> {
    waiters: &'a PaymentWaiters,
    hold: HoldId,
    notify: Arc<Notify>,
}

impl Default for PaymentWaiters {
    fn default() -> PaymentWaiters {
        PaymentWaiters::new(WAITERS_MAX)
    }
}

impl PaymentWaiters {
    pub fn new(max: usize) -> PaymentWaiters {
        PaymentWaiters {
            waiting: DashMap::new(),
            count: AtomicUsize::new(0),
            max,
            gauge: metrics::gauge!(PAYMENT_WAITERS),
        }
    }

    /// Registers a waiter for `hold`'s payment; `None` when [`WAITERS_MAX`] already wait.
    pub fn register(&self, hold: HoldId) -> Option<Waiter<'_>> {
        let before = self.count.fetch_add(1, Ordering::AcqRel);
        if before >= self.max {
            self.count.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        self.gauge.set((before + 1) as f64);
        let notify = self.waiting.entry(hold).or_default().clone();
        Some(Waiter { waiters: self, hold, notify })
    }

    /// Wakes everyone waiting for `hold`'s payment (a map lookup when nobody is).
    pub fn wake(&self, hold: HoldId) {
        if let Some(notify) = self.waiting.get(&hold) {
            notify.notify_waiters();
        }
    }

    pub fn waiting(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }
}

impl Waiter<'_> {
    /// What to await for the next wake. Call it *before* reading the payment and await
    /// it after (a wake between the two is kept by the enabled future).
    pub fn notified(&self) -> std::pin::Pin<Box<tokio::sync::futures::Notified<'_>>> {
        let mut notified = Box::pin(self.notify.notified());
        notified.as_mut().enable();
        notified
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        // The last waiter of a hold removes its entry: the map holds one reference and
        // this waiter another, and clones are only made under the entry's shard lock,
        // which `remove_if` holds while it counts.
        self.waiters.waiting.remove_if(&self.hold, |_, notify| Arc::strong_count(notify) == 2);
        let after = self.waiters.count.fetch_sub(1, Ordering::AcqRel) - 1;
        self.waiters.gauge.set(after as f64);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use hakken_engine::ids::{HoldNumber, SectionKey};

    use super::*;

    fn hold(number: u32) -> HoldId {
        HoldId { section: SectionKey(1), number: HoldNumber(number) }
    }

    #[tokio::test]
    async fn a_wake_between_read_and_wait_is_kept() {
        let waiters = PaymentWaiters::new(4);
        let waiter = waiters.register(hold(1)).expect("room");
        let notified = waiter.notified();
        waiters.wake(hold(1)); // as if reported while the handler read the payment
        tokio::time::timeout(Duration::from_secs(5), notified).await.expect("woken");
        waiters.wake(hold(2)); // nobody waits: nothing happens
    }

    #[tokio::test]
    async fn only_the_holds_waiters_wake() {
        let waiters = PaymentWaiters::new(4);
        let (one, two) = (waiters.register(hold(1)).expect("room"), waiters.register(hold(2)).expect("room"));
        let (woken, not_woken) = (one.notified(), two.notified());
        waiters.wake(hold(1));
        tokio::time::timeout(Duration::from_secs(5), woken).await.expect("woken");
        assert!(tokio::time::timeout(Duration::from_millis(20), not_woken).await.is_err());
    }

    #[test]
    fn waiters_are_bounded_and_entries_go_with_the_last() {
        let waiters = PaymentWaiters::new(2);
        let first = waiters.register(hold(1)).expect("room");
        let second = waiters.register(hold(1)).expect("room");
        assert!(waiters.register(hold(3)).is_none(), "full");
        assert_eq!((waiters.waiting(), waiters.waiting.len()), (2, 1));
        drop(first);
        assert_eq!((waiters.waiting(), waiters.waiting.len()), (1, 1), "one still waits for hold 1");
        drop(second);
        assert_eq!((waiters.waiting(), waiters.waiting.len()), (0, 0));
        assert!(waiters.register(hold(3)).is_some(), "room again");
    }
}
