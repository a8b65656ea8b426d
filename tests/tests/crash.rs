//! Crash test with real processes: `hakken-crash-driver` sells on a RocksDB directory,
//! printing every acknowledgement; the test SIGKILLs it at a random moment, recovers
//! the directory itself to check it, and restarts the driver on it, cycle after cycle.
//!
//! Checked after every kill:
//! - every acknowledged confirm is still sold, to the same order, unless its
//!   cancellation was acknowledged (then it is cancelled);
//! - no seat is in two confirmed orders or in a hold and an order at once, and GA
//!   never exceeds capacity;
//! - every acknowledged hold that has not expired is still held by the same customer
//!   (or became the order its confirm made, if that ack was lost to the kill).
//!
//! After each check the test refunds every order, so every cycle sells again.
//!
//! `HAKKEN_CRASH_CYCLES` (default 3) sets the number of kills; `HAKKEN_CRASH_SEED`
//! replays a run (the seed is printed).

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hakken_engine::actor::{Cancel, Export, SectionHandle};
use hakken_engine::clock::Clock;
use hakken_engine::config::EngineConfig;
use hakken_engine::ids::{OrderId, OrderNumber};
use hakken_engine::registry::Registry;
use hakken_engine::store::{StorageConfig, Store};
use hakken_engine::wal::{HoldRecord, OrderRecord, SectionSnapshot, UnitsRecord};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const GA_SECTION: usize = 4;
const GA_CAPACITY: u32 = 200;

#[derive(Debug)]
struct AckedHold {
    customer: String,
    section: usize,
    units: String,
    expires_at_s: u64,
}

#[derive(Default)]
struct Acks {
    holds: HashMap<String, AckedHold>,
    /// Holds whose confirm or release was asked for (acknowledged or not).
    confirming: HashSet<String>,
    releasing: HashSet<String>,
    /// order -> (hold, section), acknowledged confirms.
    orders: HashMap<String, (String, usize)>,
    cancelling: HashSet<String>,
    cancelled: HashSet<String>,
}

impl Acks {
    fn read(&mut self, line: &str) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["READY"] => {}
            ["H", hold, customer, section, units, expires] => {
                let acked = AckedHold {
                    customer: customer.to_string(),
                    section: section.parse().unwrap(),
                    units: units.to_string(),
                    expires_at_s: expires.parse().unwrap(),
                };
                let previous = self.holds.insert(hold.to_string(), acked);
                assert!(previous.is_none(), "hold id {hold} issued twice: first {previous:?}, now {line:?}");
            }
            ["confirming", hold] => {
                self.confirming.insert(hold.to_string());
            }
            ["O", order, hold, section] => {
                assert!(self.confirming.contains(*hold));
                self.orders.insert(order.to_string(), (hold.to_string(), section.parse().unwrap()));
            }
            ["releasing", hold] => {
                self.releasing.insert(hold.to_string());
            }
            ["R", hold] => assert!(self.releasing.contains(*hold)),
            ["cancelling", order] => {
                self.cancelling.insert(order.to_string());
            }
            ["C", order] => {
                self.cancelled.insert(order.to_string());
            }
            _ => panic!("unexpected driver line {line:?}"),
        }
    }
}

fn units_text(units: &UnitsRecord) -> String {
    match units {
        UnitsRecord::Seats(seats) => seats.iter().map(u32::to_string).collect::<Vec<_>>().join(","),
        UnitsRecord::Quantity(quantity) => format!("q{quantity}"),
    }
}

/// Orders and holds of the recovered store, by their API ids, with their section index.
struct Recovered<'a> {
    orders: HashMap<String, (&'a OrderRecord, usize)>,
    holds: HashMap<String, (&'a HoldRecord, usize)>,
}

/// Recovers the directory in this process and checks it against the acknowledgements;
/// then refunds every order (as an operator would), so the next cycle still sells.
fn check(dir: &std::path::Path, acks: &mut Acks) -> (usize, usize) {
    let config = EngineConfig { actor_threads: 1, ..EngineConfig::default() };
    let store = Store::open(dir, StorageConfig::default()).expect("store reopens after SIGKILL");
    let registry = Registry::recover(config, Clock::System, store).expect("recovers after SIGKILL");
    let now_s = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let sections: Vec<SectionHandle> = registry.event("open").expect("event survives").sections.clone();
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let exported: Vec<SectionSnapshot> =
        sections.iter().map(|section| runtime.block_on(section.call(Export {})).unwrap()).collect();

    let recovered = recovered(&sections, &exported);
    check_orders(&sections, &recovered, acks);
    let live = check_holds(&sections, &recovered, acks, now_s);
    for (order_id, (order, index)) in &recovered.orders {
        if !order.cancelled {
            let order_number = OrderId { section: sections[*index].key, number: OrderNumber(order.order) };
            runtime
                .block_on(
                    sections[*index]
                        .call(Cancel { order: order_number, by: hakken_engine::wal::PrincipalRecord::Admin }),
                )
                .unwrap()
                .expect("refund");
            acks.cancelling.insert(order_id.clone());
            acks.cancelled.insert(order_id.clone());
        }
    }
    registry.shutdown();
    (acks.orders.len(), live)
}

/// Indexes the recovered sections, checking on the way that no seat is sold or held
/// twice and general admission is within its capacity.
fn recovered<'a>(sections: &[SectionHandle], exported: &'a [SectionSnapshot]) -> Recovered<'a> {
    let mut recovered = Recovered { orders: HashMap::new(), holds: HashMap::new() };
    for (index, snapshot) in exported.iter().enumerate() {
        let key = sections[index].key.0;
        let mut owned: HashSet<u32> = HashSet::new();
        let mut ga_units = 0;
        for order in snapshot.orders.iter().filter(|order| !order.cancelled) {
            match &order.units {
                UnitsRecord::Seats(seats) => {
                    for &seat in seats {
                        assert!(owned.insert(seat), "section {index} seat {seat} sold twice");
                    }
                }
                UnitsRecord::Quantity(quantity) => ga_units += quantity,
            }
        }
        for order in &snapshot.orders {
            recovered.orders.insert(format!("o{key:x}-{:x}", order.order), (order, index));
        }
        for hold in &snapshot.holds {
            match &hold.units {
                UnitsRecord::Seats(seats) => {
                    for &seat in seats {
                        assert!(owned.insert(seat), "section {index} seat {seat} both held and sold, or held twice");
                    }
                }
                UnitsRecord::Quantity(quantity) => ga_units += quantity,
            }
            recovered.holds.insert(format!("h{key:x}-{:x}", hold.hold), (hold, index));
        }
        if index == GA_SECTION {
            assert!(ga_units <= GA_CAPACITY, "GA over capacity: {ga_units}");
        }
    }
    recovered
}

/// Every acknowledged order is there with its hold's seats and customer; every
/// acknowledged refund stuck, and nothing was refunded that nobody asked to refund.
fn check_orders(sections: &[SectionHandle], recovered: &Recovered<'_>, acks: &Acks) {
    for (order_id, (hold_id, section)) in &acks.orders {
        let (order, found_section) =
            recovered.orders.get(order_id).unwrap_or_else(|| panic!("acknowledged order {order_id} lost"));
        assert_eq!(found_section, section);
        assert_eq!(&format!("h{:x}-{:x}", sections[*section].key.0, order.hold), hold_id, "order {order_id}");
        let acked_hold = &acks.holds[hold_id];
        assert_eq!(units_text(&order.units), acked_hold.units, "order {order_id} sold other seats");
        assert_eq!(order.customer, acked_hold.customer);
        if acks.cancelled.contains(order_id) {
            assert!(order.cancelled, "acknowledged cancel of {order_id} lost");
        }
        if order.cancelled {
            assert!(acks.cancelling.contains(order_id), "order {order_id} cancelled though nobody asked");
        }
    }
}

/// Every acknowledged hold that should still be live is, unchanged, unless its release
/// was asked for; no hold was confirmed that nobody confirmed. Returns the live holds.
fn check_holds(sections: &[SectionHandle], recovered: &Recovered<'_>, acks: &Acks, now_s: u64) -> usize {
    let confirmed_holds: HashSet<String> = recovered
        .orders
        .values()
        .map(|(order, index)| format!("h{:x}-{:x}", sections[*index].key.0, order.hold))
        .collect();
    let mut live = 0;
    for (hold_id, acked) in &acks.holds {
        if confirmed_holds.contains(hold_id) {
            assert!(acks.confirming.contains(hold_id), "hold {hold_id} confirmed though nobody asked");
            continue;
        }
        // A second of margin: the hold may expire while we look.
        if acked.expires_at_s <= now_s + 1 {
            continue;
        }
        match recovered.holds.get(hold_id) {
            Some((hold, index)) => {
                live += 1;
                assert_eq!(*index, acked.section);
                assert_eq!(hold.customer, acked.customer, "hold {hold_id} given to someone else");
                assert_eq!(units_text(&hold.units), acked.units, "hold {hold_id} changed seats");
            }
            None => assert!(acks.releasing.contains(hold_id), "acknowledged live hold {hold_id} {acked:?} lost"),
        }
    }
    live
}

#[test]
fn sigkill_never_loses_an_acknowledgement() {
    let cycles: u64 = std::env::var("HAKKEN_CRASH_CYCLES").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let seed: u64 = std::env::var("HAKKEN_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64);
    eprintln!("crash test: {cycles} cycles, HAKKEN_CRASH_SEED={seed}");
    let mut rng = SmallRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let mut acks = Acks::default();
    for cycle in 0..cycles {
        let mut driver = Command::new(env!("CARGO_BIN_EXE_hakken-crash-driver"))
            .arg(dir.path())
            .arg((seed.wrapping_add(cycle) % 1_000_000).to_string())
            // Every other cycle acknowledges before the fsync: SIGKILL must not lose it either.
            .arg(if cycle % 2 == 0 { "sync" } else { "async" })
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("driver starts");
        let stdout = driver.stdout.take().unwrap();
        let (lines_tx, lines) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let ready = lines.recv_timeout(Duration::from_secs(60)).expect("driver says READY");
        assert_eq!(ready, "READY");
        std::thread::sleep(Duration::from_millis(rng.gen_range(200..1_500)));
        driver.kill().expect("SIGKILL");
        driver.wait().unwrap();
        reader.join().unwrap();
        let before = acks.orders.len();
        for line in lines.try_iter() {
            acks.read(&line);
        }
        let (orders, live) = check(dir.path(), &mut acks);
        eprintln!(
            "cycle {cycle} ({}): {} new orders acknowledged, {orders} in all, {live} live holds checked",
            if cycle % 2 == 0 { "sync" } else { "async" },
            orders - before
        );
    }
    assert!(!acks.orders.is_empty(), "the driver sold nothing");
}
