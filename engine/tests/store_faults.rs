//! How the store behaves when the disk lies or fails: a damaged record at the tail of
//! a section's log is dropped, anywhere else recovery refuses naming where; another
//! format version is refused; a failed write is never acknowledged and stops
//! acknowledgements until a restart. A stored idempotent answer goes to disk with
//! the change it answers or not at all, and a damaged one is an error, never a miss;
//! an event's definition goes with its audit entry.
#![cfg(not(loom))] // Under loom the engine is only its lock-free core.

use std::path::Path;

use hakken_engine::actor::{AnswerSlot, HoldSeats, SectionHandle, Unavailable};
use hakken_engine::clock::{Clock, Millis};
use hakken_engine::config::EngineConfig;
use hakken_engine::ids::CustomerId;
use hakken_engine::inventory::{Granted, HoldRefused};
use hakken_engine::registry::{RecoveryError, Registry};
use hakken_engine::store::{CachedRead, StorageConfig, StorageError, Store, StoreError};
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

/// Holds `seat` with an idempotency slot for `key`; whether the answer went with the change.
fn hold_answering(registry: &Registry, seat: u32, key: &[u8]) -> Result<bool, Unavailable> {
    let call = HoldSeats { customer: CustomerId::new(&format!("c{seat}")), seats: vec![seat] };
    let slot = AnswerSlot {
        key: key.to_vec(),
        fingerprint: 7,
        expires_at_ms: u64::MAX,
        render: Box::new(|granted: &Result<Granted, HoldRefused>| {
            Some((if granted.is_ok() { 201 } else { 409 }, b"body".to_vec()))
        }),
    };
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    runtime.block_on(section(registry).call_answering(call, Some(slot))).map(|answered| answered.answer_stored)
}

#[test]
fn an_answer_is_stored_with_the_change_it_answers_or_not_at_all() {
    let dir = store_with_three_holds();
    let registry = recover(dir.path()).unwrap();
    let store = registry.store().unwrap().clone();
    assert_eq!(hold_answering(&registry, 5, b"k-granted"), Ok(true));
    // A refusal changes nothing: its answer is the caller's to store.
    assert_eq!(hold_answering(&registry, 5, b"k-refused"), Ok(false));
    let stored = store.get_idempotent(b"k-granted", 0).unwrap().expect("stored with the hold");
    assert_eq!((stored.status, stored.fingerprint, stored.body.as_slice()), (201, 7, &b"body"[..]));
    assert_eq!(store.get_idempotent(b"k-refused", 0).unwrap(), None);
    assert_eq!(store.get_idempotent(b"k-granted", u64::MAX).unwrap(), None, "expired answers are gone");
    store.fail_next_write();
    assert!(hold_answering(&registry, 6, b"k-failed").is_err());
    drop(store);
    registry.shutdown();
    let registry = recover(dir.path()).unwrap();
    assert_eq!(held_seats(&registry), 4, "the answered hold survived, the failed one did not");
    let store = registry.store().unwrap().clone();
    // From memory alone: a stored answer is found or "not cached" (after a restart its
    // block may be on disk only), never "not stored"; once read, it is cached.
    match store.get_idempotent_cached(b"k-granted", 0).unwrap() {
        CachedRead::Found(found) => assert!(found.is_some(), "a stored answer read from memory as missing"),
        CachedRead::NotCached => {}
    }
    assert!(store.get_idempotent(b"k-granted", 0).unwrap().is_some());
    assert!(matches!(store.get_idempotent_cached(b"k-granted", 0).unwrap(), CachedRead::Found(Some(_))));
    assert_eq!(store.get_idempotent(b"k-failed", 0).unwrap(), None, "no answer without its change");
    assert!(matches!(store.get_idempotent_cached(b"k-failed", 0).unwrap(), CachedRead::Found(None)));
    drop(store);
    registry.shutdown();
}

#[test]
fn a_damaged_stored_answer_is_an_error_not_a_miss() {
    let dir = store_with_three_holds();
    let registry = recover(dir.path()).unwrap();
    let store = registry.store().unwrap().clone();
    assert_eq!(hold_answering(&registry, 5, b"k"), Ok(true));
    let mut framed = wal::encode(&store.get_idempotent(b"k", 0).unwrap().unwrap());
    *framed.last_mut().unwrap() ^= 1;
    store.tamper_idempotent(b"k", &framed).unwrap();
    assert!(matches!(store.get_idempotent(b"k", 0), Err(StoreError::Corrupt { .. })));
    assert!(matches!(store.get_idempotent_cached(b"k", 0), Err(StoreError::Corrupt { .. })));
    assert_eq!(store.prune_idempotent(u64::MAX).unwrap(), 0, "a damaged answer is kept, not pruned");
    assert!(matches!(store.get_idempotent(b"k", 0), Err(StoreError::Corrupt { .. })));
    drop(store);
    registry.shutdown();
}

#[test]
fn an_event_definition_goes_to_disk_with_its_audit_entry_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let mut registry = recover(dir.path()).unwrap();
    let venue = grid_venue(SHAPE);
    let event = open_event(&venue);
    registry.add_venue(venue).unwrap();
    let store = registry.store().unwrap().clone();
    let entry = |action: &str| {
        hakken_engine::audit::event_entry("open", 1, &wal::PrincipalRecord::Admin, action, "ok", String::new())
    };
    store.fail_next_write();
    assert!(registry.add_event_audited(event.clone(), vec![entry("event_create")]).is_err());
    assert_eq!(store.audit_head_seq().unwrap(), 0, "no audit entry without its definition");
    drop(store);
    registry.shutdown();
    let mut registry = recover(dir.path()).unwrap();
    assert!(registry.event("open").is_none(), "no definition without its audit entry");
    registry.add_venue(grid_venue(SHAPE)).unwrap();
    registry.add_event_audited(event, vec![entry("event_create")]).unwrap();
    let store = registry.store().unwrap().clone();
    assert_eq!(store.audit_head_seq().unwrap(), 1);
    drop(store);
    registry.shutdown();
}
