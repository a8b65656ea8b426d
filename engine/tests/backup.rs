//! Online backup: a RocksDB checkpoint taken while buyers keep buying, restored into a
//! new directory, must be a consistent point in time: everything acknowledged before
//! the backup started is in it, and everything in it is exactly as in the live store.
#![cfg(not(loom))] // Under loom the engine is only its lock-free core.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use hakken_engine::actor::{Confirm, Export, HoldSeats};
use hakken_engine::clock::Clock;
use hakken_engine::config::EngineConfig;
use hakken_engine::ids::{CustomerId, OrderId};
use hakken_engine::inventory::Buyer;
use hakken_engine::registry::Registry;
use hakken_engine::store::{restore_backup, StorageConfig, Store};
use hakken_engine::synthetic::{grid_venue, open_event, GridShape};
use hakken_engine::wal::OrderRecord;

const SHAPE: GridShape = GridShape { sections: 4, rows: 40, seats_per_row: 50, ga_sections: 0, ga_capacity: 0 };
/// Seats over all sections; each buyer walks its own share, so no request fails.
const SEATS: u32 = 4 * 40 * 50;

fn config() -> EngineConfig {
    EngineConfig { customer_seats_max: 0, actor_threads: 1, ..EngineConfig::default() }
}

fn storage() -> StorageConfig {
    StorageConfig { snapshot_every_records: 200, ..StorageConfig::default() }
}

/// Every order of every section, by (section index, order number).
fn orders(registry: &Registry) -> HashMap<(usize, u32), OrderRecord> {
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let sections = &registry.event("open").unwrap().sections;
    let mut all = HashMap::new();
    for (index, section) in sections.iter().enumerate() {
        for order in runtime.block_on(section.call(Export {})).unwrap().orders {
            all.insert((index, order.order), order);
        }
    }
    all
}

/// One buyer: every 16th seat from its own, one seat per order, until told to stop.
async fn buy(buyer: u32, registry: &Registry, acked: &Mutex<Vec<(usize, OrderId)>>, stop: &AtomicBool) {
    let sections = registry.event("open").unwrap().sections.clone();
    let mut seat = buyer;
    while !stop.load(Ordering::Relaxed) && seat < SEATS {
        let section_index = (seat % 4) as usize;
        let section = &sections[section_index];
        let customer = CustomerId::new(&format!("b{buyer}-{seat}"));
        let call = HoldSeats { customer: customer.clone(), seats: vec![seat / 4] };
        if let Ok(Ok(granted)) = section.call(call).await {
            if let Ok(Ok(order)) =
                section.call(Confirm { hold: granted.hold.id, customer, buyer: Buyer::default() }).await
            {
                acked.lock().unwrap().push((section_index, order.id));
            }
        }
        seat += 16;
    }
}

#[test]
fn backup_taken_mid_load_is_a_consistent_point_in_time() {
    let live_dir = tempfile::tempdir().unwrap();
    let store = Store::open(live_dir.path(), storage()).unwrap();
    let mut registry = Registry::recover(config(), Clock::System, store).unwrap();
    let venue = grid_venue(SHAPE);
    let event = open_event(&venue);
    registry.add_venue(venue).unwrap();
    registry.add_event(event).unwrap();
    let registry = Arc::new(registry);

    let acked: Arc<Mutex<Vec<(usize, OrderId)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let buyers: Vec<_> = (0..16u32)
        .map(|buyer| {
            let (registry, acked, stop) = (registry.clone(), acked.clone(), stop.clone());
            runtime.spawn(async move { buy(buyer, &registry, &acked, &stop).await })
        })
        .collect();

    // Wait for the sale to be well under way, then back up while it goes on.
    while acked.lock().unwrap().len() < 100 {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let acked_before_backup = acked.lock().unwrap().clone();
    let backup_dir = tempfile::tempdir().unwrap();
    let backup = backup_dir.path().join("backup");
    registry.store().unwrap().backup(&backup).expect("online backup");
    let acked_after_backup = acked.lock().unwrap().len();

    stop.store(true, Ordering::Relaxed);
    for buyer in buyers {
        runtime.block_on(buyer).unwrap();
    }
    let live_orders = orders(&registry);
    let acked_in_all = acked.lock().unwrap().len();
    Arc::try_unwrap(registry).ok().expect("buyers are done").shutdown();

    let restored_dir = tempfile::tempdir().unwrap();
    let restored_path = restored_dir.path().join("data");
    restore_backup(&backup, &restored_path).expect("restore into an empty directory");
    assert!(restore_backup(&backup, &restored_path).is_err(), "a store is never overwritten");
    let store = Store::open(&restored_path, storage()).unwrap();
    // Recovery replays and checks every record: an inconsistent backup would not recover.
    let restored = Registry::recover(config(), Clock::System, store).expect("the backup recovers");
    let backup_orders = orders(&restored);
    restored.shutdown();

    for (section, order) in &acked_before_backup {
        assert!(
            backup_orders.contains_key(&(*section, order.number.0)),
            "order {order} acknowledged before the backup is missing"
        );
    }
    for (key, order) in &backup_orders {
        assert_eq!(live_orders.get(key), Some(order), "backup order {key:?} is not the live one");
    }
    // Each section's orders are numbered densely, so the backup holds a prefix of each log.
    for section in 0..4 {
        let count = backup_orders.keys().filter(|(s, _)| *s == section).count() as u32;
        assert!((0..count).all(|number| backup_orders.contains_key(&(section, number))));
    }
    eprintln!(
        "backup after {} acknowledged orders holds {}; {} acknowledged by its end, {} in all",
        acked_before_backup.len(),
        backup_orders.len(),
        acked_after_backup,
        acked_in_all
    );
    assert!(backup_orders.len() < live_orders.len(), "the sale went on after the backup");
}
