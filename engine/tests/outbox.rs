//! The outbox at the store: each change that must be told writes its entry with its
//! records, numbered without gaps; the relay's progress (through the writer) deletes
//! delivered entries and shelves dead letters; numbers survive a restart and are never
//! reused, even after the newest entries were deleted.
#![cfg(not(loom))] // Under loom the engine is only its lock-free core.

use std::sync::Arc;

use hakken_engine::actor::{Cancel, Confirm, HoldSeats, Release};
use hakken_engine::clock::Clock;
use hakken_engine::config::EngineConfig;
use hakken_engine::ids::{CustomerId, OrderId, TicketId};
use hakken_engine::inventory::Buyer;
use hakken_engine::registry::Registry;
use hakken_engine::store::{OutboxChange, Shelf, StorageConfig, Store};
use hakken_engine::synthetic::{grid_venue, open_event, GridShape};
use hakken_engine::tickets::calls::Reissue;
use hakken_engine::tickets::ReissueProof;
use hakken_engine::wal::{DeliveryRecord, DeliveryStateRecord, OutboxKindRecord, OutboxStored, PrincipalRecord};

const SHAPE: GridShape = GridShape { sections: 1, rows: 2, seats_per_row: 10, ga_sections: 0, ga_capacity: 0 };

fn config() -> EngineConfig {
    EngineConfig { customer_seats_max: 0, actor_threads: 1, ..EngineConfig::default() }
}

fn open(dir: &std::path::Path) -> Registry {
    Registry::recover(config(), Clock::System, Store::open(dir, StorageConfig::default()).unwrap()).unwrap()
}

fn sell(runtime: &tokio::runtime::Runtime, registry: &Registry, seat: u32, who: &str) -> OrderId {
    let section = &registry.event("open").unwrap().sections[0];
    let customer = CustomerId::new(who);
    let granted = runtime.block_on(section.call(HoldSeats { customer: customer.clone(), seats: vec![seat] }));
    let hold = granted.unwrap().expect("a free seat").hold.id;
    let buyer =
        Buyer { payment_reference: format!("pay-{who}"), channel: "online".into(), sealed: Arc::from(&b"x"[..]) };
    runtime.block_on(section.call(Confirm { hold, customer, buyer })).unwrap().expect("confirmed").id
}

fn pending(registry: &Registry) -> Vec<OutboxStored> {
    registry.store().unwrap().outbox_page(Shelf::Pending, 0, 100).unwrap()
}

fn kinds(entries: &[OutboxStored]) -> Vec<(u64, OutboxKindRecord)> {
    entries.iter().map(|stored| (stored.entry.seq, stored.entry.kind)).collect()
}

#[test]
fn changes_to_tell_write_numbered_entries_that_the_relay_deletes_or_shelves() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut registry = open(dir.path());
    let venue = grid_venue(SHAPE);
    let event = open_event(&venue);
    registry.add_venue(venue).unwrap();
    registry.add_event(event).unwrap();
    let section = registry.event("open").unwrap().sections[0].clone();

    let first = sell(&runtime, &registry, 0, "ana");
    let second = sell(&runtime, &registry, 1, "bea");
    // A released hold tells nobody.
    let customer = CustomerId::new("cy");
    let granted = runtime.block_on(section.call(HoldSeats { customer: customer.clone(), seats: vec![2] }));
    let hold = granted.unwrap().unwrap().hold.id;
    runtime.block_on(section.call(Release { hold, customer })).unwrap().unwrap();
    runtime.block_on(section.call(Cancel { order: second, by: PrincipalRecord::Admin })).unwrap().unwrap();
    let ticket = TicketId { order: first, index: 0 };
    runtime.block_on(section.call(Reissue { ticket, proof: ReissueProof::Admin })).unwrap().unwrap();

    let entries = pending(&registry);
    use OutboxKindRecord::*;
    assert_eq!(
        kinds(&entries),
        vec![(1, OrderConfirmed), (2, OrderConfirmed), (3, OrderRefunded), (4, TicketReissued)]
    );
    assert_eq!(entries[0].entry.order, Some(first.number.0));
    assert_eq!(entries[2].entry.order, Some(second.number.0));
    assert_eq!((entries[3].entry.ticket, entries[3].entry.version), (Some(0), Some(1)));
    assert!(entries.iter().all(|stored| stored.deliveries.is_empty() && stored.entry.at_ms > 0));

    // The relay: entry 1 delivered, entry 2 given up on, entry 4 (the newest) delivered.
    let wal = registry.store().unwrap().wal();
    let dead = DeliveryRecord {
        destination: "email".into(),
        state: DeliveryStateRecord::Dead,
        attempts: 3,
        last_outcome: "rejected: smtp 550".into(),
        next_attempt_at_ms: 0,
    };
    let shelved = OutboxStored { entry: entries[1].entry.clone(), deliveries: vec![dead] };
    let changes = vec![
        OutboxChange::Remove { shelf: Shelf::Pending, seq: 1 },
        OutboxChange::Remove { shelf: Shelf::Pending, seq: 2 },
        OutboxChange::Put { shelf: Shelf::Dead, stored: shelved.clone() },
        OutboxChange::Remove { shelf: Shelf::Pending, seq: 4 },
    ];
    runtime.block_on(wal.outbox_durable(changes)).unwrap();
    assert_eq!(kinds(&pending(&registry)), vec![(3, OrderRefunded)]);
    let store = registry.store().unwrap();
    assert_eq!(store.outbox_page(Shelf::Dead, 0, 10).unwrap(), vec![shelved.clone()]);
    assert_eq!(store.outbox_entry(Shelf::Dead, 2).unwrap(), Some(shelved));
    assert_eq!(store.outbox_entry(Shelf::Pending, 2).unwrap(), None);
    assert_eq!((store.outbox_count(Shelf::Pending).unwrap(), store.outbox_count(Shelf::Dead).unwrap()), (1, 1));
    assert_eq!(kinds(&store.outbox_page(Shelf::Pending, 3, 10).unwrap()), vec![], "a page starts after `after`");
    registry.shutdown();

    // After a restart the next entry is number 5, although 4 (the newest) was deleted.
    let registry = open(dir.path());
    assert_eq!(kinds(&pending(&registry)), vec![(3, OrderRefunded)], "what was pending still is");
    sell(&runtime, &registry, 3, "dee");
    assert_eq!(kinds(&pending(&registry)), vec![(3, OrderRefunded), (5, OrderConfirmed)]);
    registry.shutdown();
}

#[test]
fn a_failed_write_leaves_no_entry_for_the_change_it_refused() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut registry = open(dir.path());
    let venue = grid_venue(SHAPE);
    let event = open_event(&venue);
    registry.add_venue(venue).unwrap();
    registry.add_event(event).unwrap();
    let section = registry.event("open").unwrap().sections[0].clone();
    let customer = CustomerId::new("ana");
    let granted = runtime.block_on(section.call(HoldSeats { customer: customer.clone(), seats: vec![0] }));
    let hold = granted.unwrap().unwrap().hold.id;
    registry.store().unwrap().fail_next_write();
    let buyer = Buyer { payment_reference: "p".into(), channel: "online".into(), sealed: Arc::from(&b"x"[..]) };
    let confirmed = runtime.block_on(section.call(Confirm { hold, customer, buyer }));
    assert!(confirmed.is_err(), "the confirm was not acknowledged: {confirmed:?}");
    assert!(pending(&registry).is_empty(), "nor told");
    registry.shutdown();
    let registry = open(dir.path());
    assert!(pending(&registry).is_empty(), "nor told after a restart");
    registry.shutdown();
}
