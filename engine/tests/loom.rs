//! Loom models of the lock-free seat code. Run with:
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 cargo test -p hakken-engine --test loom --release`
#![cfg(loom)]

use hakken_engine::lockfree::{GaStock, HoldNumber, OrderNumber, SeatState, SeatStates};
use loom::sync::Arc;
use loom::thread;

const LIVE_S: u32 = 100;
const NOW_MS: u64 = 50_000;

fn hold(seats: &SeatStates, set: &[u32], hold: u32, now: u64) -> bool {
    seats.hold(set, HoldNumber(hold), LIVE_S * 2, now, &mut Vec::new()).is_ok()
}

/// Exactly one of two holders wins the seat they both want, and the loser keeps nothing.
#[test]
fn overlapping_holds_exactly_one_owner() {
    loom::model(|| {
        let seats = Arc::new(SeatStates::new(3));
        let other = seats.clone();
        let b = thread::spawn(move || hold(&other, &[1, 2], 2, NOW_MS));
        let a_won = hold(&seats, &[0, 1], 1, NOW_MS);
        let b_won = b.join().unwrap();
        assert!(a_won ^ b_won, "exactly one wins seat 1 (a {a_won}, b {b_won})");
        let owner = |seat| match seats.load(seat) {
            SeatState::Held { hold, .. } => Some(hold.0),
            SeatState::Free => None,
            sold => panic!("unexpected {sold:?}"),
        };
        let (a, b) = if a_won { (Some(1), None) } else { (None, Some(2)) };
        assert_eq!(owner(0), a);
        assert_eq!(owner(1), a.or(b));
        assert_eq!(owner(2), b);
    });
}

/// Holders that take seats in opposite orders may both fail, but never leave a partial hold.
#[test]
fn crossing_holds_leave_no_partial_hold() {
    loom::model(|| {
        let seats = Arc::new(SeatStates::new(2));
        let other = seats.clone();
        let b = thread::spawn(move || hold(&other, &[1, 0], 2, NOW_MS));
        let a_won = hold(&seats, &[0, 1], 1, NOW_MS);
        let b_won = b.join().unwrap();
        assert!(!(a_won && b_won));
        for seat in 0..2 {
            let expected = match (a_won, b_won) {
                (true, _) => SeatState::Held { hold: HoldNumber(1), expires_at_s: LIVE_S * 2 },
                (_, true) => SeatState::Held { hold: HoldNumber(2), expires_at_s: LIVE_S * 2 },
                _ => SeatState::Free,
            };
            assert_eq!(seats.load(seat), expected);
        }
    });
}

/// A confirm by the owner (whose clock says the hold is live), a new holder and the
/// sweeper (whose clocks say it has expired) race: the seats end with exactly one owner,
/// never sold unless the whole hold was confirmed, never split between two owners.
#[test]
fn confirm_races_reclaim_and_expiry() {
    loom::model(|| {
        let seats = Arc::new(SeatStates::new(2));
        let both = [0, 1];
        seats.hold(&both, HoldNumber(1), LIVE_S, 0, &mut Vec::new()).unwrap();
        let after_expiry = u64::from(LIVE_S) * 1000;
        let reclaimer = {
            let seats = seats.clone();
            thread::spawn(move || hold(&seats, &[0, 1], 2, after_expiry))
        };
        let sweeper = {
            let seats = seats.clone();
            // The sweep frees an expired hold's seats with a release by that hold.
            thread::spawn(move || seats.release(&[1], HoldNumber(1), LIVE_S))
        };
        let confirmed = seats.confirm(&both, HoldNumber(1), LIVE_S, OrderNumber(9), after_expiry - 1).is_ok();
        let reclaimed = reclaimer.join().unwrap();
        let swept = sweeper.join().unwrap();

        let states = [seats.load(0), seats.load(1)];
        if confirmed {
            assert!(!reclaimed);
            assert_eq!(swept, 0);
            assert_eq!(states, [SeatState::Sold { order: OrderNumber(9) }; 2]);
        } else {
            assert!(states.iter().all(|state| !matches!(state, SeatState::Sold { .. })), "{states:?}");
        }
        if reclaimed {
            assert_eq!(states, [SeatState::Held { hold: HoldNumber(2), expires_at_s: LIVE_S * 2 }; 2]);
        }
        assert!(!(confirmed && reclaimed));
        for state in states {
            assert!(!matches!(state, SeatState::Held { hold: HoldNumber(1), .. }) || !confirmed);
        }
    });
}

/// An owner extending its hold races a reclaimer: the seats are never split between them.
#[test]
fn extend_races_reclaim() {
    loom::model(|| {
        let seats = Arc::new(SeatStates::new(2));
        seats.hold(&[0, 1], HoldNumber(1), LIVE_S, 0, &mut Vec::new()).unwrap();
        let after_expiry = u64::from(LIVE_S) * 1000;
        let reclaimer = {
            let seats = seats.clone();
            thread::spawn(move || hold(&seats, &[1, 0], 2, after_expiry))
        };
        let extended = seats.extend(&[0, 1], HoldNumber(1), LIVE_S, LIVE_S * 3, after_expiry - 1).is_ok();
        let reclaimed = reclaimer.join().unwrap();
        assert!(!(extended && reclaimed));
        let states = [seats.load(0), seats.load(1)];
        let owners: Vec<_> = states
            .iter()
            .map(|state| match state {
                SeatState::Held { hold, .. } => *hold,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(owners[0], owners[1], "{states:?}");
        if extended {
            assert_eq!(states, [SeatState::Held { hold: HoldNumber(1), expires_at_s: LIVE_S * 3 }; 2]);
        }
    });
}

/// General-admission holders racing for the last units never exceed capacity.
#[test]
fn ga_last_units_never_oversold() {
    loom::model(|| {
        let stock = Arc::new(GaStock::new(3));
        stock.hold(1).unwrap();
        let racers: Vec<_> = (0..2)
            .map(|_| {
                let stock = stock.clone();
                thread::spawn(move || stock.hold(2).is_ok())
            })
            .collect();
        stock.confirm(1);
        let wins = racers.into_iter().map(|racer| racer.join().unwrap()).filter(|&won| won).count();
        assert_eq!(wins, 1);
        let counts = stock.counts();
        assert_eq!((counts.held, counts.sold), (2, 1));
    });
}

/// A release frees exactly the units it returns, even while others hold and confirm.
#[test]
fn ga_release_races_hold() {
    loom::model(|| {
        let stock = Arc::new(GaStock::new(2));
        stock.hold(2).unwrap();
        let holder = {
            let stock = stock.clone();
            thread::spawn(move || stock.hold(1).is_ok())
        };
        stock.release(1);
        let won = holder.join().unwrap();
        let counts = stock.counts();
        assert!(counts.held + counts.sold <= 2);
        assert_eq!(counts.held, if won { 2 } else { 1 });
    });
}
