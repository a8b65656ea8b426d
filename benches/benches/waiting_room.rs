//! A waiting room of 1,000,000 buyers: memory per waiting buyer, the cost of a join and
//! of a poll in the core, and joins per second made durable through a real store.
//!
//! Back of the envelope, per buyer: the board's word 8 bytes; its place in the order 4;
//! its customer id 16 (an `Arc<str>` pointer) plus the id itself with the Arc's two
//! counters (16 + 16 for a 16-byte id); the customer → place map's entry 24 bytes at a
//! load of 1,000,000 / 2^21 buckets (about 50 bytes a buyer). Expect ~110 bytes, so a
//! million waiting buyers in ~110 MB. A join is a hash insert and two pushes (~100-300
//! ns); a poll two atomic loads and a few figures (~10-30 ns). Durable joins are bound by
//! the WAL: each is a record of ~40 bytes in a group commit, so tens of thousands a
//! second on one core.
//!
//! `cargo bench -p hakken-benches --bench waiting_room` (`JOINS=...` to change the count).

use std::sync::Arc;
use std::time::Instant;

use hakken_benches::counting::{live, Counting};
use hakken_engine::clock::Millis;
use hakken_engine::ids::CustomerId;
use hakken_engine::store::{StorageConfig, Store};
use hakken_engine::waiting_room::{DurableRoom, Health, RoomSettings, Stock, WaitingRoom};

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const OPENS: Millis = Millis(1_000_000);
const SALE: Millis = Millis(2_000_000);

fn settings(places_max: u32) -> RoomSettings {
    RoomSettings {
        opens_at: OPENS,
        sale_opens_at: SALE,
        admit_per_s_min: 1_000,
        admit_per_s_max: 1_000,
        access_window_ms: 600_000,
        shopping_ms_max: 1_800_000,
        places_max,
    }
}

fn customer(number: u32) -> CustomerId {
    CustomerId::new(&format!("customer-{number:07}"))
}

fn main() {
    let joins: u32 = std::env::var("JOINS").ok().and_then(|joins| joins.parse().ok()).unwrap_or(1_000_000);
    let customers: Vec<CustomerId> = (0..joins).map(customer).collect();

    // The core: joins, then the draw, then a poll of every place.
    let before = live();
    let mut room = WaitingRoom::new(settings(joins));
    let started = Instant::now();
    for customer in &customers {
        let joined = room.join(customer, OPENS).unwrap();
        room.apply(&joined.record.unwrap());
    }
    let join_ns = started.elapsed().as_nanos() as f64 / f64::from(joins);
    let bytes = live() - before;
    // The ids themselves were made before (a server has them from the requests' bodies);
    // the room keeps them, so count them too.
    let id_bytes: usize = customers.iter().map(|customer| 16 + customer.0.len()).sum();
    let draw = room.draw_due(SALE, 42).unwrap();
    let started = Instant::now();
    room.apply(&draw);
    let draw_ms = started.elapsed().as_secs_f64() * 1e3;
    room.tick(SALE, Health::default(), Stock { free: 50_000, held: 0 });
    let board = room.board();
    let started = Instant::now();
    let mut waiting = 0u64;
    for place in 0..joins {
        waiting +=
            u64::from(matches!(board.status(place, SALE), Some(hakken_engine::waiting_room::Status::Waiting { .. })));
    }
    let poll_ns = started.elapsed().as_nanos() as f64 / f64::from(joins);
    assert_eq!(waiting, u64::from(joins));
    println!("waiting room of {joins} buyers (ids of 16 bytes)");
    println!(
        "memory: {:>12} bytes = {:6.1} bytes per waiting buyer (with the ids: {:6.1})",
        bytes,
        bytes as f64 / f64::from(joins),
        (bytes + id_bytes) as f64 / f64::from(joins)
    );
    println!("join (core, one thread):  {join_ns:8.1} ns");
    println!("opening draw of all:      {draw_ms:8.1} ms");
    println!("poll (board, lock-free):  {poll_ns:8.1} ns");
    drop(room);

    // Durable joins: 512 buyers at a time on two tokio workers, through the WAL (sync,
    // group commit with the default window), on a real store.
    let durable_joins = (joins / 5).max(1);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StorageConfig::default()).unwrap();
    let room = Arc::new(DurableRoom::recover("bench", settings(durable_joins), &[], store.wal()));
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    let started = Instant::now();
    runtime.block_on(async {
        let mut tasks = Vec::new();
        for worker in 0..512u32 {
            let (room, customers) = (room.clone(), customers.clone());
            tasks.push(tokio::spawn(async move {
                for number in (worker..durable_joins).step_by(512) {
                    room.join(&customers[number as usize], OPENS).await.unwrap();
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
    });
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "durable joins (sync, 512 at a time): {durable_joins} in {seconds:.2} s = {:.0} joins/s",
        f64::from(durable_joins) / seconds
    );
    store.close();
}
