//! A waiting room on a real store: its places, its draw and its admissions survive a
//! restart, the draw's seed is in the audit log, and an access is used once.
#![cfg(not(loom))] // Under loom the engine is only its lock-free core.

use std::path::Path;

use hakken_engine::clock::Millis;
use hakken_engine::ids::CustomerId;
use hakken_engine::store::{StorageConfig, Store};
use hakken_engine::waiting_room::{draw, AccessRefused, DurableRoom, Health, RoomError, RoomSettings, Status, Stock};

const OPENS: Millis = Millis(1_000_000);
const SALE: Millis = Millis(2_000_000);
const PLENTY: Stock = Stock { free: 100_000, held: 0 };

fn settings() -> RoomSettings {
    hakken_engine::synthetic::room_settings(OPENS, SALE)
}

fn open(dir: &Path) -> (Store, DurableRoom) {
    let store = Store::open(dir, StorageConfig::default()).unwrap();
    let records = store.room_records("demo").unwrap();
    let room = DurableRoom::recover("demo", settings(), &records, store.wal());
    (store, room)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().build().unwrap()
}

fn customer(number: u32) -> CustomerId {
    CustomerId::new(&format!("buyer-{number}"))
}

/// Where each of the first `buyers` customers is, as a poll at `now` tells it.
fn places(room: &DurableRoom, buyers: u32, now: Millis) -> Vec<(u32, Option<Status>)> {
    (0..buyers)
        .map(|number| {
            let place = room.place_of(&customer(number)).expect("joined");
            let status = room.board().status(place, now).map(|status| match status {
                // The figures behind an ETA are learned live, not stored.
                Status::Waiting { position, ahead, .. } => {
                    Status::Waiting { position, ahead, eta_s: None, seats_free: 0, likely: true }
                }
                other => other,
            });
            (place, status)
        })
        .collect()
}

#[test]
fn places_draw_and_admissions_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime();
    let at = SALE.saturating_add(2_000);
    let before = {
        let (store, room) = open(dir.path());
        for number in 0..300 {
            runtime.block_on(room.join(&customer(number), OPENS)).unwrap();
        }
        // Joining again keeps the place.
        let again = runtime.block_on(room.join(&customer(7), OPENS.saturating_add(9))).unwrap();
        assert_eq!(Some(again), room.place_of(&customer(7)));
        let mut now = SALE;
        while now <= at {
            runtime.block_on(room.tick(now, Health::default(), PLENTY, 0x5eed)).unwrap();
            now = now.saturating_add(100);
        }
        let admitted = room.figures(at).admitted_total;
        assert!(admitted > 100 && admitted < 300, "{admitted} let in");
        let first =
            places(&room, 300, at).into_iter().find(|(_, status)| matches!(status, Some(Status::Admitted { .. })));
        let claim = room.claim(first.unwrap().0, at).unwrap();
        runtime.block_on(claim.used(2, at)).unwrap();
        let before = places(&room, 300, at);
        store.close();
        before
    };
    let (store, room) = open(dir.path());
    assert_eq!(places(&room, 300, at), before);
    assert_eq!(room.drawn(), Some((0x5eed, 300)));
    // The draw can be redone from its seed: the place let in first is the one the
    // shuffle of the 300 joiners puts first.
    let mut order: Vec<u32> = (0..300).collect();
    draw::shuffle(0x5eed, &mut order);
    let first_in = before.iter().find(|(place, _)| *place == order[0]).unwrap();
    assert!(matches!(first_in.1, Some(Status::Admitted { .. })), "{first_in:?}");
    // And its seed is in the audit log.
    let (entries, _) = store.audit_page(1, 100, 10_000, |entry| entry.action == "queue_draw").unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].entry.event, "demo");
    assert!(entries[0].entry.detail.contains(&format!("seed {}", 0x5eed)), "{}", entries[0].entry.detail);
    assert!(entries[0].entry.detail.contains("300 joiners"));
    // The restarted room goes on: a new joiner is behind everyone.
    let late = runtime.block_on(room.join(&customer(300), at)).unwrap();
    assert_eq!(late, 300);
}

#[test]
fn an_access_is_claimed_by_one_request_and_used_once() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime();
    let (_store, room) = open(dir.path());
    for number in 0..5 {
        runtime.block_on(room.join(&customer(number), OPENS)).unwrap();
    }
    let waiting = room.place_of(&customer(0)).unwrap();
    assert!(matches!(room.claim(waiting, OPENS), Err(AccessRefused::NotAdmitted)));
    runtime.block_on(room.tick(SALE, Health::default(), PLENTY, 1)).unwrap();
    // The draw, then the rate's first tick (which starts its clock), then admissions.
    for tick in 1..=2 {
        runtime.block_on(room.tick(SALE.saturating_add(tick * 100), Health::default(), PLENTY, 1)).unwrap();
    }
    let now = SALE.saturating_add(300);
    let place = room.place_of(&customer(3)).unwrap();
    let claim = room.claim(place, now).unwrap();
    assert!(matches!(room.claim(place, now), Err(AccessRefused::Used)), "a second request while the first holds");
    drop(claim); // the hold was refused
    let claim = room.claim(place, now).expect("usable again after a refused hold");
    runtime.block_on(claim.used(1, now)).unwrap();
    assert!(matches!(room.claim(place, now), Err(AccessRefused::Used)));
    assert!(matches!(room.board().status(place, now), Some(Status::Admitted { used: true, .. })));
    let other = room.place_of(&customer(4)).unwrap();
    let expired = SALE.saturating_add(200 + 61_000);
    assert!(matches!(room.claim(other, expired), Err(AccessRefused::Expired)));
}

#[test]
fn nothing_left_closes_the_room_durably() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime();
    {
        let (store, room) = open(dir.path());
        for number in 0..5 {
            runtime.block_on(room.join(&customer(number), OPENS)).unwrap();
        }
        runtime.block_on(room.tick(SALE, Health::default(), PLENTY, 1)).unwrap();
        runtime.block_on(room.tick(SALE.saturating_add(100), Health::default(), Stock::default(), 1)).unwrap();
        assert!(room.board().sold_out());
        store.close();
    }
    let (_store, room) = open(dir.path());
    assert!(room.board().sold_out());
    let place = room.place_of(&customer(2)).unwrap();
    assert_eq!(room.board().sold_out_at(), Some(SALE.saturating_add(100)), "the instant is kept too");
    assert_eq!(room.board().status(place, SALE), Some(Status::SoldOut { at: SALE.saturating_add(100) }));
    let refused = runtime.block_on(room.join(&customer(9), SALE.saturating_add(200)));
    assert!(matches!(refused, Err(RoomError::Join(_))), "{refused:?}");
}
