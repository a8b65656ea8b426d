//! Property test of durability: random operations through real section actors on a
//! real RocksDB store, crashes (the registry dropped without shutdown) at random
//! points, recovery, and after every recovery the state must equal exactly what was
//! acknowledged before the crash: the same holds (owner, seats, expiry), the same
//! orders, the same counts and ledger. Snapshots are taken every few records so
//! recovery mixes snapshot and log replay.
#![cfg(not(loom))] // Under loom the engine is only its lock-free core.

use std::sync::Arc;

use hakken_engine::actor::{
    Cancel, Confirm, Export, Extend, HoldBest, HoldQuantity, HoldSeats, Release, SectionCall, SectionHandle, Sweep,
};
use hakken_engine::best::BestRequest;
use hakken_engine::clock::{Clock, Millis};
use hakken_engine::config::EngineConfig;
use hakken_engine::ids::{CustomerId, HoldId, OrderId};
use hakken_engine::inventory::Availability;
use hakken_engine::inventory::Buyer;
use hakken_engine::registry::Registry;
use hakken_engine::store::{StorageConfig, Store};
use hakken_engine::synthetic::{grid_venue, open_event, GridShape};
use hakken_engine::wal::SectionSnapshot;
use proptest::prelude::*;

const CUSTOMERS: u8 = 4;
const SHAPE: GridShape = GridShape { sections: 1, rows: 3, seats_per_row: 5, ga_sections: 1, ga_capacity: 6 };

#[derive(Clone, Debug)]
enum Op {
    HoldSeats { customer: u8, seats: Vec<u32> },
    HoldBest { customer: u8, quantity: u32 },
    HoldGa { customer: u8, quantity: u32 },
    Release { pick: usize },
    Extend { pick: usize },
    Confirm { pick: usize },
    Cancel { pick: usize },
    Wait { secs: u64 },
    Crash,
}

fn op() -> impl Strategy<Value = Op> {
    let customer = 0..CUSTOMERS;
    prop_oneof![
        4 => (customer.clone(), prop::collection::btree_set(0..15u32, 1..4))
            .prop_map(|(customer, seats)| Op::HoldSeats { customer, seats: seats.into_iter().collect() }),
        3 => (customer.clone(), 1..4u32).prop_map(|(customer, quantity)| Op::HoldBest { customer, quantity }),
        2 => (customer, 1..4u32).prop_map(|(customer, quantity)| Op::HoldGa { customer, quantity }),
        2 => (0..6usize).prop_map(|pick| Op::Release { pick }),
        1 => (0..6usize).prop_map(|pick| Op::Extend { pick }),
        3 => (0..6usize).prop_map(|pick| Op::Confirm { pick }),
        1 => (0..6usize).prop_map(|pick| Op::Cancel { pick }),
        2 => (0..8u64).prop_map(|secs| Op::Wait { secs }),
        1 => Just(Op::Crash),
    ]
}

fn customer(index: u8) -> CustomerId {
    CustomerId::new(&format!("c{index}"))
}

struct World {
    dir: tempfile::TempDir,
    clock: Clock,
    config: EngineConfig,
    storage: StorageConfig,
    registry: Option<Registry>,
    runtime: tokio::runtime::Runtime,
    /// Holds acknowledged and not known to have ended: (id, owner, section index).
    holds: Vec<(HoldId, CustomerId, usize)>,
    orders: Vec<(OrderId, usize)>,
}

impl World {
    fn new(snapshot_every_records: u64) -> World {
        let config = EngineConfig {
            hold_ttl_ms: 10_000,
            hold_lifetime_max_ms: 20_000,
            customer_seats_max: 6,
            hold_seats_max: 4,
            actor_threads: 1,
            sweep_interval_ms: 3_600_000,
            ..EngineConfig::default()
        };
        let storage = StorageConfig { snapshot_every_records, ..StorageConfig::default() };
        let mut world = World {
            dir: tempfile::tempdir().unwrap(),
            clock: Clock::manual(Millis(1_000_000_000)),
            config,
            storage,
            registry: None,
            runtime: tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap(),
            holds: Vec::new(),
            orders: Vec::new(),
        };
        let store = Store::open(world.dir.path(), world.storage.clone()).unwrap();
        let mut registry = Registry::recover(world.config.clone(), world.clock.clone(), store).unwrap();
        let venue = grid_venue(SHAPE);
        let event = open_event(&venue);
        registry.add_venue(venue).unwrap();
        registry.add_event(event).unwrap();
        world.registry = Some(registry);
        world
    }

    fn section(&self, index: usize) -> SectionHandle {
        self.registry.as_ref().unwrap().event("open").unwrap().sections[index].clone()
    }

    fn call<C: SectionCall>(&self, section: usize, call: C) -> C::Reply
    where
        hakken_engine::actor::SectionActor: actix::Handler<hakken_engine::actor::Call<C>>,
    {
        let handle = self.section(section);
        self.runtime.block_on(handle.call(call)).expect("acknowledged")
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::HoldSeats { customer: c, seats } => {
                if let Ok(granted) = self.call(0, HoldSeats { customer: customer(*c), seats: seats.clone() }) {
                    self.holds.push((granted.hold.id, customer(*c), 0));
                }
            }
            Op::HoldBest { customer: c, quantity } => {
                let request = BestRequest { quantity: *quantity, category: None, accessible: false, adjacent: false };
                if let Ok(granted) = self.call(0, HoldBest { customer: customer(*c), request }) {
                    self.holds.push((granted.hold.id, customer(*c), 0));
                }
            }
            Op::HoldGa { customer: c, quantity } => {
                if let Ok(granted) = self.call(1, HoldQuantity { customer: customer(*c), quantity: *quantity }) {
                    self.holds.push((granted.hold.id, customer(*c), 1));
                }
            }
            Op::Release { pick } | Op::Confirm { pick } | Op::Extend { pick } => {
                let Some((hold, owner, section)) = self.holds.get(*pick).cloned() else { return };
                match op {
                    Op::Release { .. } => {
                        let _ = self.call(section, Release { hold, customer: owner });
                        self.holds.remove(*pick);
                    }
                    Op::Confirm { .. } => {
                        if let Ok(order) =
                            self.call(section, Confirm { hold, customer: owner, buyer: Buyer::default() })
                        {
                            self.orders.push((order.id, section));
                        }
                        self.holds.remove(*pick);
                    }
                    _ => {
                        let _ = self.call(section, Extend { hold, customer: owner });
                    }
                }
            }
            Op::Cancel { pick } => {
                if let Some(&(order, section)) = self.orders.get(*pick) {
                    let _ = self.call(section, Cancel { order, by: hakken_engine::wal::PrincipalRecord::Admin });
                }
            }
            Op::Wait { secs } => self.clock.advance(secs * 1000),
            Op::Crash => self.crash_and_recover(),
        }
    }

    /// Everything acknowledged: each section's exported state and counts.
    fn acknowledged(&self) -> Vec<(SectionSnapshot, Availability)> {
        (0..2)
            .map(|section| {
                let exported = self.call(section, Export {});
                (exported, self.section(section).state.availability())
            })
            .collect()
    }

    fn crash_and_recover(&mut self) {
        // Retire what has expired by now, so recovery at the same instant has nothing to
        // retire and must reproduce the acknowledged state exactly.
        for section in 0..2 {
            self.call(section, Sweep {});
        }
        let before = self.acknowledged();
        let ledger_before: Vec<u32> = {
            let ledger = &self.registry.as_ref().unwrap().event("open").unwrap().ledger;
            (0..CUSTOMERS).map(|c| ledger.seats(&customer(c))).collect()
        };
        // The crash: no shutdown, the registry and its store are simply dropped.
        drop(self.registry.take());
        let store = Store::open(self.dir.path(), self.storage.clone()).expect("store reopens");
        let registry = Registry::recover(self.config.clone(), self.clock.clone(), store).expect("recovers");
        self.registry = Some(registry);
        let after = self.acknowledged();
        assert_eq!(after, before, "recovered state differs from the acknowledged one");
        let ledger = &self.registry.as_ref().unwrap().event("open").unwrap().ledger;
        let ledger_after: Vec<u32> = (0..CUSTOMERS).map(|c| ledger.seats(&customer(c))).collect();
        assert_eq!(ledger_after, ledger_before, "ledger");
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if let Some(registry) = self.registry.take() {
            registry.shutdown();
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn recovery_reproduces_exactly_the_acknowledged_state(
        ops in prop::collection::vec(op(), 1..60),
        snapshot_every_records in 1..12u64,
    ) {
        let mut world = World::new(snapshot_every_records);
        for op in &ops {
            world.apply(op);
        }
        world.apply(&Op::Crash);
    }
}

/// After a restart, holds that expired meanwhile are free and their customers' seats
/// are given back; live holds keep their owner and can still be confirmed.
#[test]
fn expired_holds_are_free_after_recovery_live_ones_keep_their_owner() {
    let mut world = World::new(1000);
    let alice = customer(0);
    let bob = customer(1);
    let early = world.call(0, HoldSeats { customer: alice.clone(), seats: vec![0, 1] }).unwrap().hold;
    world.clock.advance(6_000);
    let late = world.call(0, HoldSeats { customer: bob.clone(), seats: vec![2] }).unwrap().hold;
    drop(world.registry.take());
    // Down for 5 s: alice's hold (10 s TTL, 11 s old) has expired, bob's (5 s old) has not.
    world.clock.advance(5_000);
    let store = Store::open(world.dir.path(), world.storage.clone()).unwrap();
    world.registry = Some(Registry::recover(world.config.clone(), world.clock.clone(), store).unwrap());
    let counts = world.section(0).state.availability().total;
    assert_eq!((counts.held, counts.sold), (1, 0), "only bob's seat is held");
    let ledger = Arc::clone(&world.registry.as_ref().unwrap().event("open").unwrap().ledger);
    assert_eq!((ledger.seats(&alice), ledger.seats(&bob)), (0, 1));
    assert!(world.call(0, Confirm { hold: early.id, customer: alice.clone(), buyer: Buyer::default() }).is_err());
    let taken = world.call(0, HoldSeats { customer: alice, seats: vec![0, 1, 2] }).unwrap_err();
    assert_eq!(taken, hakken_engine::inventory::HoldRefused::SeatsUnavailable { seats: vec![2] });
    let order = world
        .call(0, Confirm { hold: late.id, customer: bob, buyer: Buyer::default() })
        .expect("bob's hold survived the restart");
    assert_eq!(order.hold, late.id);
}
