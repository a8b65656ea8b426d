//! The lock-free core of seat holds: one atomic word per reserved seat, one per
//! general-admission section.
//!
//! Every transition is a compare-and-swap on the whole word, so the word's owner
//! (hold number + expiry, or order number) is checked and changed in one step:
//! only the owning hold can release, extend or confirm; a sold seat only returns to
//! sale through `cancel` by its order. Multi-seat operations are all-or-nothing: a
//! partial win is rolled back before returning.
//!
//! This module takes its atomics from [`crate::sync`], so loom checks it
//! (`engine/tests/loom.rs`). Keep it free of allocation-heavy or non-loom types.

use crate::sync::{AtomicU64, Ordering};

/// Milliseconds since the Unix epoch (the engine's `Millis`, unwrapped here so the
/// module stays dependency-free under loom).
pub type NowMs = u64;

/// A hold's number within its section (the `1f` of hold id `h3-1f`). 30 bits: ids
/// above are refused by the caller. Defined here, not in `ids`, because the seat word
/// stores it and this module builds alone under loom; `ids` re-exports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HoldNumber(pub u32);

/// An order's number within its section (the `7` of order id `o3-7`); 32 bits in the
/// seat word.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrderNumber(pub u32);

/// Numbers print in hex, as they appear in ids.
macro_rules! hex_display {
    ($name:ident) => {
        impl core::fmt::Display for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                write!(f, "{:x}", self.0)
            }
        }
    };
}
hex_display!(HoldNumber);
hex_display!(OrderNumber);

pub const HOLD_NUMBER_MAX: HoldNumber = HoldNumber((1 << 30) - 1);

const TAG_SHIFT: u32 = 62;
const TAG_FREE: u64 = 0;
const TAG_HELD: u64 = 1;
const TAG_SOLD: u64 = 2;

/// The state of one reserved seat, as stored in its atomic word.
///
/// Layout (u64): bits 63..62 tag; held: bits 61..32 hold number, bits 31..0 expiry
/// in whole Unix seconds; sold: bits 31..0 order number; free: all zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeatState {
    Free,
    /// Held until `expires_at_s` (Unix seconds, exclusive). An expired hold is as good
    /// as free to the next holder: reclaiming it needs no sweep.
    Held {
        hold: HoldNumber,
        expires_at_s: u32,
    },
    Sold {
        order: OrderNumber,
    },
}

impl SeatState {
    pub fn encode(self) -> u64 {
        match self {
            SeatState::Free => 0,
            SeatState::Held { hold, expires_at_s } => {
                assert!(hold <= HOLD_NUMBER_MAX);
                (TAG_HELD << TAG_SHIFT) | (u64::from(hold.0) << 32) | u64::from(expires_at_s)
            }
            SeatState::Sold { order } => (TAG_SOLD << TAG_SHIFT) | u64::from(order.0),
        }
    }

    pub fn decode(word: u64) -> SeatState {
        match word >> TAG_SHIFT {
            TAG_FREE => {
                assert_eq!(word, 0, "free seat word with payload");
                SeatState::Free
            }
            TAG_HELD => SeatState::Held {
                hold: HoldNumber(((word >> 32) as u32) & HOLD_NUMBER_MAX.0),
                expires_at_s: word as u32,
            },
            TAG_SOLD => SeatState::Sold { order: OrderNumber(word as u32) },
            _ => panic!("corrupt seat word {word:#x}"),
        }
    }

    /// Free, or held by a hold that has expired at `now`.
    pub fn is_takeable(self, now: NowMs) -> bool {
        match self {
            SeatState::Free => true,
            SeatState::Held { expires_at_s, .. } => expired(expires_at_s, now),
            SeatState::Sold { .. } => false,
        }
    }
}

/// A hold expires at the first millisecond of its expiry second.
pub fn expired(expires_at_s: u32, now: NowMs) -> bool {
    now >= u64::from(expires_at_s) * 1000
}

/// A seat was taken from a hold that had expired; the caller retires that hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reclaimed {
    pub seat: u32,
    pub hold: HoldNumber,
    pub expires_at_s: u32,
}

/// Why a multi-seat transition did not happen. Nothing was changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lost {
    /// The first seat (in request order) that was not in the expected state.
    pub seat: u32,
    pub found: SeatState,
}

/// The seat words of one reserved section.
pub struct SeatStates {
    words: Box<[AtomicU64]>,
}

impl SeatStates {
    pub fn new(seat_count: usize) -> SeatStates {
        SeatStates { words: (0..seat_count).map(|_| AtomicU64::new(0)).collect() }
    }

    pub fn len(&self) -> usize {
        self.words.len()
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    pub fn load(&self, seat: u32) -> SeatState {
        SeatState::decode(self.words[seat as usize].load(Ordering::Acquire))
    }

    /// Holds every seat in `seats` for `hold` until `expires_at_s`, or none of them.
    ///
    /// A seat is takeable when free or held by an expired hold; such reclaimed seats
    /// are pushed to `reclaimed` so the caller can retire the old hold. `seats` must
    /// not repeat a seat. On failure nothing stays held and `reclaimed` is unchanged.
    pub fn hold(
        &self,
        seats: &[u32],
        hold: HoldNumber,
        expires_at_s: u32,
        now: NowMs,
        reclaimed: &mut Vec<Reclaimed>,
    ) -> Result<(), Lost> {
        let held = SeatState::Held { hold, expires_at_s }.encode();
        let reclaimed_before = reclaimed.len();
        for (done, &seat) in seats.iter().enumerate() {
            let word = &self.words[seat as usize];
            let mut current = word.load(Ordering::Acquire);
            loop {
                let state = SeatState::decode(current);
                if !state.is_takeable(now) {
                    self.undo(&seats[..done], held, reclaimed, reclaimed_before);
                    return Err(Lost { seat, found: state });
                }
                match word.compare_exchange(current, held, Ordering::AcqRel, Ordering::Acquire) {
                    Ok(_) => {
                        if let SeatState::Held { hold, expires_at_s } = state {
                            reclaimed.push(Reclaimed { seat, hold, expires_at_s });
                        }
                        break;
                    }
                    Err(actual) => current = actual,
                }
            }
        }
        Ok(())
    }

    /// Rolls back a partial `hold`: each seat goes back to what it was (free, or the
    /// expired hold it was taken from), unless someone has since reclaimed it from us.
    fn undo(&self, seats: &[u32], held: u64, reclaimed: &mut Vec<Reclaimed>, reclaimed_before: usize) {
        for &seat in seats {
            let previous = reclaimed[reclaimed_before..]
                .iter()
                .find(|r| r.seat == seat)
                .map_or(0, |r| SeatState::Held { hold: r.hold, expires_at_s: r.expires_at_s }.encode());
            let _ = self.words[seat as usize].compare_exchange(held, previous, Ordering::AcqRel, Ordering::Acquire);
        }
        reclaimed.truncate(reclaimed_before);
    }

    /// Frees the seats `hold` still owns (release, or expiry by the sweep); returns how
    /// many it freed. Seats already reclaimed by someone else after expiry are left alone.
    pub fn release(&self, seats: &[u32], hold: HoldNumber, expires_at_s: u32) -> usize {
        let held = SeatState::Held { hold, expires_at_s }.encode();
        self.transition_each(seats, held, 0)
    }

    /// Moves every seat from `hold` to `order`, or none: the hold must own all of them
    /// and not have expired at `now`.
    pub fn confirm(
        &self,
        seats: &[u32],
        hold: HoldNumber,
        expires_at_s: u32,
        order: OrderNumber,
        now: NowMs,
    ) -> Result<(), Lost> {
        self.transition_live_hold(seats, hold, expires_at_s, now, SeatState::Sold { order })
    }

    /// Moves the expiry of every seat of a live hold, or of none.
    pub fn extend(
        &self,
        seats: &[u32],
        hold: HoldNumber,
        expires_at_s: u32,
        new_expires_at_s: u32,
        now: NowMs,
    ) -> Result<(), Lost> {
        let extended = SeatState::Held { hold, expires_at_s: new_expires_at_s };
        self.transition_live_hold(seats, hold, expires_at_s, now, extended)
    }

    /// Moves every seat of a hold that is live at `now` to `to`, or none.
    fn transition_live_hold(
        &self,
        seats: &[u32],
        hold: HoldNumber,
        expires_at_s: u32,
        now: NowMs,
        to: SeatState,
    ) -> Result<(), Lost> {
        let held = SeatState::Held { hold, expires_at_s };
        if expired(expires_at_s, now) {
            return Err(Lost { seat: seats.first().copied().unwrap_or(0), found: held });
        }
        self.transition_all(seats, held.encode(), to.encode())
    }

    /// Returns the seats of `order` to sale, all or none.
    pub fn cancel(&self, seats: &[u32], order: OrderNumber) -> Result<(), Lost> {
        let sold = SeatState::Sold { order }.encode();
        // Only the order itself moves a seat out of `Sold { order }`, so checking all
        // seats first makes the transition below unable to fail half way (a freed seat
        // could be taken at once, so it could not be rolled back).
        if let Some(&seat) = seats.iter().find(|&&seat| self.words[seat as usize].load(Ordering::Acquire) != sold) {
            return Err(Lost { seat, found: self.load(seat) });
        }
        let freed = self.transition_each(seats, sold, 0);
        assert_eq!(freed, seats.len(), "sold seat changed under its order");
        Ok(())
    }

    /// Marks free seats sold to `order`, all or none: recovery's way back to a
    /// snapshotted sale.
    pub fn restore_sold(&self, seats: &[u32], order: OrderNumber) -> Result<(), Lost> {
        self.transition_all(seats, SeatState::Free.encode(), SeatState::Sold { order }.encode())
    }

    fn transition_each(&self, seats: &[u32], from: u64, to: u64) -> usize {
        seats
            .iter()
            .filter(|&&seat| {
                self.words[seat as usize].compare_exchange(from, to, Ordering::AcqRel, Ordering::Acquire).is_ok()
            })
            .count()
    }

    fn transition_all(&self, seats: &[u32], from: u64, to: u64) -> Result<(), Lost> {
        for (done, &seat) in seats.iter().enumerate() {
            let word = &self.words[seat as usize];
            if let Err(found) = word.compare_exchange(from, to, Ordering::AcqRel, Ordering::Acquire) {
                for &undo in &seats[..done] {
                    let rolled_back =
                        self.words[undo as usize].compare_exchange(to, from, Ordering::AcqRel, Ordering::Acquire);
                    // A sold seat moves only by its order; a held one may meanwhile have
                    // been reclaimed by someone whose clock says it expired, and is theirs.
                    let reclaimable = matches!(SeatState::decode(to), SeatState::Held { .. });
                    assert!(rolled_back.is_ok() || reclaimable, "seat {undo} changed under its owner");
                }
                return Err(Lost { seat, found: SeatState::decode(found) });
            }
        }
        Ok(())
    }
}

/// Held and sold units of a general-admission section, in one word so that
/// `held + sold <= capacity` is checked and kept in a single compare-and-swap.
///
/// Layout (u64): bits 63..32 held, bits 31..0 sold.
pub struct GaStock {
    word: AtomicU64,
    capacity: u32,
}

/// Units of a general-admission section, read together.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GaCounts {
    pub held: u32,
    pub sold: u32,
}

impl GaCounts {
    fn encode(self) -> u64 {
        (u64::from(self.held) << 32) | u64::from(self.sold)
    }

    fn decode(word: u64) -> GaCounts {
        GaCounts { held: (word >> 32) as u32, sold: word as u32 }
    }
}

/// Not enough general-admission units are left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SoldOut {
    pub available: u32,
}

impl GaStock {
    pub fn new(capacity: u32) -> GaStock {
        GaStock { word: AtomicU64::new(0), capacity }
    }

    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    pub fn counts(&self) -> GaCounts {
        GaCounts::decode(self.word.load(Ordering::Acquire))
    }

    /// Takes `quantity` units as held, never going over capacity.
    pub fn hold(&self, quantity: u32) -> Result<(), SoldOut> {
        self.update(|counts| {
            let available = self.capacity - counts.held - counts.sold;
            if quantity > available {
                return Err(SoldOut { available });
            }
            Ok(GaCounts { held: counts.held + quantity, sold: counts.sold })
        })
    }

    /// Returns held units to sale (release or expiry).
    pub fn release(&self, quantity: u32) {
        let result = self.update(|counts| {
            let held = counts.held.checked_sub(quantity).expect("released more GA units than held");
            Ok(GaCounts { held, sold: counts.sold })
        });
        debug_assert!(result.is_ok());
    }

    /// Turns held units into sold ones.
    pub fn confirm(&self, quantity: u32) {
        let result = self.update(|counts| {
            let held = counts.held.checked_sub(quantity).expect("confirmed more GA units than held");
            Ok(GaCounts { held, sold: counts.sold + quantity })
        });
        debug_assert!(result.is_ok());
    }

    /// Returns sold units to sale (order cancelled).
    pub fn cancel(&self, quantity: u32) {
        let result = self.update(|counts| {
            let sold = counts.sold.checked_sub(quantity).expect("cancelled more GA units than sold");
            Ok(GaCounts { held: counts.held, sold })
        });
        debug_assert!(result.is_ok());
    }

    fn update(&self, step: impl Fn(GaCounts) -> Result<GaCounts, SoldOut>) -> Result<(), SoldOut> {
        let mut current = self.word.load(Ordering::Acquire);
        loop {
            let next = step(GaCounts::decode(current))?;
            assert!(next.held + next.sold <= self.capacity, "GA stock over capacity");
            match self.word.compare_exchange(current, next.encode(), Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Ok(()),
                Err(actual) => current = actual,
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    const NOW: NowMs = 1_000_000;
    const LATER_S: u32 = 2_000;

    #[test]
    fn words_round_trip() {
        for state in [
            SeatState::Free,
            SeatState::Held { hold: HoldNumber(0), expires_at_s: 0 },
            SeatState::Held { hold: HOLD_NUMBER_MAX, expires_at_s: u32::MAX },
            SeatState::Sold { order: OrderNumber(0) },
            SeatState::Sold { order: OrderNumber(u32::MAX) },
        ] {
            assert_eq!(SeatState::decode(state.encode()), state);
        }
    }

    #[test]
    fn multi_seat_hold_is_all_or_nothing() {
        let seats = SeatStates::new(4);
        let mut reclaimed = Vec::new();
        seats.hold(&[2], HoldNumber(1), LATER_S, NOW, &mut reclaimed).unwrap();
        let lost = seats.hold(&[0, 1, 2, 3], HoldNumber(2), LATER_S, NOW, &mut reclaimed).unwrap_err();
        assert_eq!(lost, Lost { seat: 2, found: SeatState::Held { hold: HoldNumber(1), expires_at_s: LATER_S } });
        assert_eq!(seats.load(0), SeatState::Free);
        assert_eq!(seats.load(1), SeatState::Free);
        assert_eq!(seats.load(3), SeatState::Free);
        assert!(reclaimed.is_empty());
    }

    #[test]
    fn expired_hold_is_reclaimed_and_restored_on_rollback() {
        let seats = SeatStates::new(3);
        let mut reclaimed = Vec::new();
        seats.hold(&[0], HoldNumber(1), 900, 0, &mut reclaimed).unwrap();
        seats.hold(&[2], HoldNumber(2), LATER_S, NOW, &mut reclaimed).unwrap();
        // Seat 0's hold expired at 900 s; seat 2 is live, so the whole attempt fails.
        seats.hold(&[0, 1, 2], HoldNumber(3), LATER_S, NOW, &mut reclaimed).unwrap_err();
        assert_eq!(seats.load(0), SeatState::Held { hold: HoldNumber(1), expires_at_s: 900 });
        // Without seat 2 it succeeds and reports what it took over.
        seats.hold(&[0, 1], HoldNumber(3), LATER_S, NOW, &mut reclaimed).unwrap();
        assert_eq!(reclaimed, vec![Reclaimed { seat: 0, hold: HoldNumber(1), expires_at_s: 900 }]);
        // The old hold can no longer release or confirm seat 0.
        assert_eq!(seats.release(&[0], HoldNumber(1), 900), 0);
        assert!(seats.confirm(&[0], HoldNumber(1), 900, OrderNumber(7), 0).is_err());
    }

    #[test]
    fn confirm_needs_live_owning_hold() {
        let seats = SeatStates::new(2);
        seats.hold(&[0, 1], HoldNumber(5), LATER_S, NOW, &mut Vec::new()).unwrap();
        assert!(seats.confirm(&[0, 1], HoldNumber(6), LATER_S, OrderNumber(1), NOW).is_err(), "wrong hold");
        assert!(
            seats.confirm(&[0, 1], HoldNumber(5), LATER_S, OrderNumber(1), u64::from(LATER_S) * 1000).is_err(),
            "expired"
        );
        seats.confirm(&[0, 1], HoldNumber(5), LATER_S, OrderNumber(1), NOW).unwrap();
        assert_eq!(seats.load(1), SeatState::Sold { order: OrderNumber(1) });
        assert_eq!(seats.release(&[0, 1], HoldNumber(5), LATER_S), 0, "sold seats are not released");
        assert!(seats.cancel(&[0, 1], OrderNumber(2)).is_err(), "wrong order");
        seats.cancel(&[0, 1], OrderNumber(1)).unwrap();
        assert_eq!(seats.load(0), SeatState::Free);
    }

    #[test]
    fn partial_confirm_rolls_back() {
        let seats = SeatStates::new(2);
        seats.hold(&[0], HoldNumber(5), LATER_S, NOW, &mut Vec::new()).unwrap();
        let lost = seats.confirm(&[0, 1], HoldNumber(5), LATER_S, OrderNumber(1), NOW).unwrap_err();
        assert_eq!(lost, Lost { seat: 1, found: SeatState::Free });
        assert_eq!(seats.load(0), SeatState::Held { hold: HoldNumber(5), expires_at_s: LATER_S });
    }

    #[test]
    fn ga_never_exceeds_capacity() {
        let stock = GaStock::new(5);
        stock.hold(3).unwrap();
        assert_eq!(stock.hold(3), Err(SoldOut { available: 2 }));
        stock.hold(2).unwrap();
        stock.confirm(3);
        stock.release(2);
        assert_eq!(stock.counts(), GaCounts { held: 0, sold: 3 });
        stock.cancel(1);
        assert_eq!(stock.counts(), GaCounts { held: 0, sold: 2 });
    }
}
