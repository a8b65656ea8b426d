//! How the store behaves when the disk lies or fails: a damaged record at the tail of
//! a section's log is dropped, anywhere else recovery refuses naming where; another
//! format version is refused; a failed write is never acknowledged and stops
//! acknowledgements until a restart.
#![cfg(not(loom))] // Under loom the engine is only its lock-free core.

use std::path::Path;

use hakken_engine::actor::{HoldSeats, SectionHandle, Unavailable};
use hakken_engine::clock::{Clock, Millis};
use hakken_engine::config::EngineConfig;
use hakken_engine::ids::CustomerId;
use hakken_engine::registry::{RecoveryError, Registry};
use hakken_engine::store::{StorageConfig, StorageError, Store, StoreError};
use hakken_engine::synthetic::{grid_venue, open_event, GridShape};
use hakken_engine::wal;

const SHAPE: GridShape = GridShape { sections: 1, rows: 2, seats_per_row: 5, ga_sections: 0, ga_capacity: 0 };

fn config() -> EngineConfig {
    EngineConfig { actor_threads: 1, ..EngineConfig::default() }
}

fn clock() -> Clock {
    Clock::manual(Millis(1_000_000_000))
}

fn recover(dir: &Path) -> Result<Registry, RecoveryError> {
    let store = Store::open(dir, StorageConfig::default())?;
    Registry::recover(config(), clock(), store)
}

fn section(registry: &Registry) -> SectionHandle {
    registry.event("open").unwrap().sections[0].clone()
}

fn hold(registry: &Registry, seat: u32) -> Result<(), Unavailable> {
    let call = HoldSeats { customer: CustomerId::new(&format!("c{seat}")), seats: vec![seat] };
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    runtime.block_on(section(registry).call(call)).map(|granted| assert!(granted.is_ok()))
}

/// A store with an event and three one-seat holds (records 1, 2, 3 of section 0).
fn store_with_three_holds() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut registry = recover(dir.path()).unwrap();
    let venue = grid_venue(SHAPE);
    let event = open_event(&venue);
    registry.add_venue(venue).unwrap();
    registry.add_event(event).unwrap();
    for seat in 0..3 {
        hold(&registry, seat).unwrap();
    }
    registry.shutdown();
    dir
}

/// Edits the store's raw RocksDB as a failing disk would.
fn with_raw_db(dir: &Path, edit: impl FnOnce(&rocksdb::DB)) {
    let families = rocksdb::DB::list_cf(&rocksdb::Options::default(), dir).unwrap();
    let db = rocksdb::DB::open_cf(&rocksdb::Options::default(), dir, families).unwrap();
    edit(&db);
}

fn damage_record(dir: &Path, seq: u64) {
    with_raw_db(dir, |db| {
        let cf = db.cf_handle("wal").unwrap();
        let key = wal::record_key(0, seq);
        let mut value = db.get_cf(cf, key).unwrap().expect("record exists");
        let last = value.len() - 1;
        value[last] ^= 0x40;
        db.put_cf(cf, key, value).unwrap();
    });
}

fn held_seats(registry: &Registry) -> u32 {
    section(registry).state.availability().total.held
}

#[test]
fn damaged_tail_record_is_dropped_and_the_rest_recovered() {
    let dir = store_with_three_holds();
    damage_record(dir.path(), 3);
    let registry = recover(dir.path()).expect("a torn tail does not stop recovery");
    assert_eq!(held_seats(&registry), 2);
    // The damaged record was deleted: new records continue the log after seq 2.
    hold(&registry, 4).unwrap();
    registry.shutdown();
    let registry = recover(dir.path()).unwrap();
    assert_eq!(held_seats(&registry), 3);
    registry.shutdown();
}

#[test]
fn damaged_record_before_valid_ones_refuses_to_start() {
    let dir = store_with_three_holds();
    damage_record(dir.path(), 2);
    let error = recover(dir.path()).err().expect("corruption in the middle is refused").to_string();
    assert!(error.contains("corrupt record of section 0 seq 2"), "{error}");
    assert!(error.contains("checksum mismatch, and valid records follow it (seq 3)"), "{error}");
}

#[test]
fn missing_record_refuses_to_start() {
    let dir = store_with_three_holds();
    with_raw_db(dir.path(), |db| db.delete_cf(db.cf_handle("wal").unwrap(), wal::record_key(0, 2)).unwrap());
    let error = recover(dir.path()).err().expect("a gap is refused").to_string();
    assert!(error.contains("corrupt log of section 0: record 3 follows 1"), "{error}");
}

#[test]
fn damaged_event_definition_refuses_to_start() {
    let dir = store_with_three_holds();
    with_raw_db(dir.path(), |db| {
        let cf = db.cf_handle("meta").unwrap();
        db.put_cf(cf, b"event/open", [&[wal::FORMAT_VERSION][..], b"junk"].concat()).unwrap();
    });
    let error = recover(dir.path()).err().expect("refused").to_string();
    assert!(error.contains("corrupt event definition open: checksum mismatch"), "{error}");
}

#[test]
fn other_format_version_is_refused() {
    let dir = store_with_three_holds();
    with_raw_db(dir.path(), |db| db.put_cf(db.cf_handle("meta").unwrap(), b"format", [9u8]).unwrap());
    match Store::open(dir.path(), StorageConfig::default()) {
        Err(StoreError::Format { expected, .. }) => assert_eq!(expected, wal::FORMAT_VERSION),
        other => panic!("expected a format error, got {:?}", other.err()),
    }
}

#[test]
fn failed_write_is_never_acknowledged_and_stops_acknowledgements() {
    let dir = store_with_three_holds();
    let registry = recover(dir.path()).unwrap();
    let store = registry.store().unwrap().clone();
    store.fail_next_write();
    let failed = hold(&registry, 5).unwrap_err();
    assert!(matches!(failed, Unavailable::Storage(StorageError::Failed(_))), "{failed:?}");
    assert!(store.failed());
    // Nothing after the failure is acknowledged either, though the disk may work again.
    let after = hold(&registry, 6).unwrap_err();
    assert!(matches!(after, Unavailable::Storage(StorageError::Failed(_))), "{after:?}");
    drop(store);
    registry.shutdown();
    // A restart recovers only what was acknowledged.
    let registry = recover(dir.path()).unwrap();
    assert_eq!(held_seats(&registry), 3);
    hold(&registry, 5).unwrap();
    registry.shutdown();
}
