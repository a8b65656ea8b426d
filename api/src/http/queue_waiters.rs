//! Waiting buyers' long polls (`GET /v1/queue/{token}?wait_ms=`), filed by rank.
//!
//! A poll tells a buyer of a change up to a poll interval late: a buyer let in learns
//! it at the next poll (their access window already running, the sale waiting for
//! them), and a buyer the room closes on learns it up to 30 s late. A long poll is
//! answered the moment the room's tick changes what the buyer would read. The tick
//! knows what it changed as ranks, so waiters are filed by their rank in the admission
//! order: let in are those below the room's next rank, told sold out those from the
//! latest partial close on, or everyone once the room is sold out. A tick wakes a range
//! (a split of the map), never a scan of everyone waiting.
//!
//! A waiter is registered before the place is read again, so a tick between the first
//! read and the wait still wakes it (the tick writes the board, then wakes; the
//! handler registers, then reads). Waiters are bounded: past the bound a poll is
//! answered at once and its buyer polls as told.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use hakken_engine::waiting_room::Board;
use metrics::Gauge;
use tokio::sync::oneshot;

use crate::waiting_rooms::{QUEUE_LONG_POLLS, QUEUE_LONG_POLLS_TOTAL};

/// Long polls waiting at once in one room, at most (a waiter is a map entry and a
/// parked request: about 300 bytes, and a connection).
pub const WAITERS_MAX: usize = 16_384;

/// What a waiter is filed under: its rank, then a number telling apart two polls of
/// one place.
type Key = (u32, u64);

pub struct QueueWaiters {
    filed: Mutex<Filed>,
    count: AtomicUsize,
    max: usize,
    gauge: Gauge,
}

#[derive(Default)]
struct Filed {
    by_rank: BTreeMap<Key, oneshot::Sender<()>>,
    next_number: u64,
}

/// One registered long poll; unregistered when dropped.
pub struct Waiter<'a> {
    waiters: &'a QueueWaiters,
    key: Key,
    woken: oneshot::Receiver<()>,
}

impl QueueWaiters {
    pub fn new(event: &str, max: usize) -> QueueWaiters {
        // Exported at 0 from the start: an alert's `rate()` then sees the first ones.
        for outcome in ["woken", "timed_out", "full"] {
            metrics::counter!(QUEUE_LONG_POLLS_TOTAL, "event" => event.to_string(), "outcome" => outcome).increment(0);
        }
        QueueWaiters {
            filed: Mutex::new(Filed::default()),
            count: AtomicUsize::new(0),
            max,
            gauge: metrics::gauge!(QUEUE_LONG_POLLS, "event" => event.to_string()),
        }
    }

    /// Files a long poll of the buyer at `rank`; `None` when the room has its
    /// [`WAITERS_MAX`] already.
    pub fn register(&self, rank: u32) -> Option<Waiter<'_>> {
        let before = self.count.fetch_add(1, Ordering::AcqRel);
        if before >= self.max {
            self.count.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        self.gauge.set((before + 1) as f64);
        let (sender, woken) = oneshot::channel();
        let mut filed = self.lock();
        let key = (rank, filed.next_number);
        filed.next_number += 1;
        filed.by_rank.insert(key, sender);
        Some(Waiter { waiters: self, key, woken })
    }

    /// Whether a long poll would be answered at once for want of room.
    pub fn full(&self) -> bool {
        self.count.load(Ordering::Acquire) >= self.max
    }

    pub fn waiting(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// Wakes the long polls whose buyers' state `board` has changed (after a tick): let
    /// in, told sold out by a partial close, or everyone once sold out. Returns how many.
    pub fn wake(&self, board: &Board) -> usize {
        self.wake_ranks(board.let_in_below(), board.closed_from(), board.sold_out())
    }

    /// Wakes everyone (the server is shutting down: each answers what it reads now).
    pub fn wake_all(&self) -> usize {
        self.wake_ranks(0, Some(0), true)
    }

    fn wake_ranks(&self, let_in_below: u32, closed_from: Option<u32>, sold_out: bool) -> usize {
        let woken = {
            let mut filed = self.lock();
            let by_rank = &mut filed.by_rank;
            if sold_out {
                std::mem::take(by_rank)
            } else {
                let mut woken = match by_rank.first_key_value() {
                    Some((&(rank, _), _)) if rank < let_in_below => {
                        let waiting = by_rank.split_off(&(let_in_below, 0));
                        std::mem::replace(by_rank, waiting)
                    }
                    _ => BTreeMap::new(),
                };
                if let Some(from) = closed_from {
                    woken.append(&mut by_rank.split_off(&(from, 0)));
                }
                woken
            }
        };
        let count = woken.len();
        for sender in woken.into_values() {
            // A waiter gone since (its request ended) has nothing to be told.
            let _ = sender.send(());
        }
        count
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Filed> {
        // A panic while holding this lock leaves a map that is still whole.
        self.filed.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Waiter<'_> {
    /// Resolves when a tick woke this waiter.
    pub async fn woken(&mut self) {
        // A dropped sender (the map emptied on wake) is a wake too.
        let _ = (&mut self.woken).await;
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        self.waiters.lock().by_rank.remove(&self.key);
        let after = self.waiters.count.fetch_sub(1, Ordering::AcqRel) - 1;
        self.waiters.gauge.set(after as f64);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    async fn is_woken(waiter: &mut Waiter<'_>) -> bool {
        tokio::time::timeout(Duration::from_millis(20), waiter.woken()).await.is_ok()
    }

    #[tokio::test]
    async fn a_tick_wakes_those_let_in_and_those_behind_a_close_only() {
        let waiters = QueueWaiters::new("e", 8);
        let mut at = [0, 3, 4, 9, 12].map(|rank| waiters.register(rank).expect("room"));
        assert_eq!(waiters.wake_ranks(0, None, false), 0, "nobody let in, nothing closed");
        assert_eq!(waiters.wake_ranks(4, Some(12), false), 3, "ranks 0 and 3 let in, 12 closed on");
        let mut woken = Vec::new();
        for waiter in &mut at {
            woken.push(is_woken(waiter).await);
        }
        assert_eq!(woken, [true, true, false, false, true]);
        assert_eq!(waiters.wake_ranks(4, Some(12), false), 0, "each is woken once");
        assert_eq!(waiters.wake_ranks(5, None, true), 2, "sold out: everyone left");
    }

    #[tokio::test]
    async fn a_wake_between_read_and_wait_is_kept() {
        let waiters = QueueWaiters::new("e", 4);
        let mut waiter = waiters.register(2).expect("room");
        waiters.wake_ranks(3, None, false); // as if the tick let it in while the handler read
        assert!(is_woken(&mut waiter).await);
    }

    #[test]
    fn waiters_are_bounded_and_leave_when_dropped() {
        let waiters = QueueWaiters::new("e", 2);
        let first = waiters.register(1).expect("room");
        let _second = waiters.register(1).expect("two polls of one rank are two waiters");
        assert!(waiters.register(5).is_none() && waiters.full());
        drop(first);
        assert_eq!((waiters.waiting(), waiters.lock().by_rank.len()), (1, 1));
        assert!(waiters.register(5).is_some(), "room again");
        assert_eq!(waiters.wake_all(), 1, "the one still registered");
    }
}
