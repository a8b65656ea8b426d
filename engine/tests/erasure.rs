//! Erasing a buyer (crypto-shredding) at the store: after the erasure is durable and
//! the store closed, the erased buyer's sealed bytes are in no file of the data dir
//! (WAL records, snapshots, RocksDB's own log and SST files), while another buyer's are
//! still there (so the search can find them), and recovery keeps the erasure.
#![cfg(not(loom))] // Under loom the engine is only its lock-free core.

use std::path::Path;
use std::sync::Arc;

use hakken_engine::actor::{Confirm, EraseBuyer, HoldSeats, ReadOrder};
use hakken_engine::clock::Clock;
use hakken_engine::config::EngineConfig;
use hakken_engine::ids::{CustomerId, OrderId};
use hakken_engine::inventory::{Buyer, OrderState};
use hakken_engine::registry::Registry;
use hakken_engine::store::{StorageConfig, Store};
use hakken_engine::synthetic::{grid_venue, open_event, GridShape};
use hakken_engine::tickets::Viewer;

const SHAPE: GridShape = GridShape { sections: 1, rows: 2, seats_per_row: 10, ga_sections: 0, ga_capacity: 0 };

fn config() -> EngineConfig {
    EngineConfig { customer_seats_max: 0, actor_threads: 1, ..EngineConfig::default() }
}

/// Opaque to the engine, as the API's sealed blobs are; distinctive enough to search for.
fn sealed(who: &str) -> Arc<[u8]> {
    Arc::from(format!("SEALED-BUYER-BLOB-OF-{who}-{}", "x".repeat(40)).as_bytes())
}

/// Whether any file under `dir` contains `needle`.
fn found_in_files(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(found_in_files(&path, needle));
        } else if std::fs::read(&path).unwrap().windows(needle.len()).any(|window| window == needle) {
            found.push(path.display().to_string());
        }
    }
    found
}

fn sell(runtime: &tokio::runtime::Runtime, registry: &Registry, seat: u32, who: &str) -> OrderId {
    let section = &registry.event("open").unwrap().sections[0];
    let customer = CustomerId::new(who);
    let granted = runtime.block_on(section.call(HoldSeats { customer: customer.clone(), seats: vec![seat] }));
    let hold = granted.unwrap().expect("a free seat").hold.id;
    let buyer = Buyer { payment_reference: format!("pay-{who}"), channel: "online".into(), sealed: sealed(who) };
    runtime.block_on(section.call(Confirm { hold, customer, buyer })).unwrap().expect("confirmed").id
}

#[test]
fn an_erased_buyer_leaves_no_bytes_in_the_store_and_stays_erased() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut registry =
        Registry::recover(config(), Clock::System, Store::open(dir.path(), StorageConfig::default()).unwrap()).unwrap();
    let venue = grid_venue(SHAPE);
    let event = open_event(&venue);
    registry.add_venue(venue).unwrap();
    registry.add_event(event).unwrap();
    let erased = sell(&runtime, &registry, 0, "ana");
    let kept = sell(&runtime, &registry, 1, "bea");
    let section = registry.event("open").unwrap().sections[0].clone();
    let order = runtime.block_on(section.call(EraseBuyer { order: erased })).unwrap().expect("the order");
    assert!(order.buyer.is_erased() && order.state == OrderState::Confirmed && order.units.count() == 1);
    assert_eq!(order.buyer.payment_reference, "pay-ana", "what is not personal data stays");
    let again = runtime.block_on(section.call(EraseBuyer { order: erased })).unwrap().expect("the order");
    assert_eq!(again, order, "erasing twice answers the same");
    registry.shutdown();

    assert_eq!(found_in_files(dir.path(), &sealed("ana")), Vec::<String>::new(), "the erased blob is gone");
    assert!(!found_in_files(dir.path(), &sealed("bea")).is_empty(), "the search finds a kept blob");

    let registry =
        Registry::recover(config(), Clock::System, Store::open(dir.path(), StorageConfig::default()).unwrap()).unwrap();
    let section = registry.event("open").unwrap().sections[0].clone();
    let read = |order| runtime.block_on(section.call(ReadOrder { order, viewer: Viewer::Admin })).unwrap().unwrap();
    assert!(read(erased).buyer.is_erased(), "recovery keeps the erasure");
    assert_eq!(read(kept).buyer.sealed, sealed("bea"));
    registry.shutdown();
}
