//! Cluster mode's hook in the store, with an in-process log standing in for JetStream
//! (the real one is tested in `api/tests/cluster_failover.rs`): only what the log took is
//! written and acknowledged, a snapshot of an event not owned is dropped, and a standby
//! that writes the log into its own store rebuilds the same sections with the
//! recovery code.
#![cfg(not(loom))] // Under loom the engine is only its lock-free core.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use hakken_engine::actor::{HoldSeats, Unavailable};
use hakken_engine::clock::{Clock, Millis};
use hakken_engine::config::EngineConfig;
use hakken_engine::ids::CustomerId;
use hakken_engine::registry::Registry;
use hakken_engine::store::{log_batch, ReplicaAppend, Replicated, Replicator, StorageConfig, StorageError, Store};
use hakken_engine::synthetic::{grid_venue, open_event, GridShape};
use hakken_engine::wal::{self, LogBatch};

const SHAPE: GridShape = GridShape { sections: 1, rows: 2, seats_per_row: 5, ga_sections: 0, ga_capacity: 0 };

/// The log: every message taken, in order, while `owned`.
#[derive(Default)]
struct MemoryLog {
    owned: AtomicBool,
    messages: Mutex<Vec<Vec<u8>>>,
}

impl Replicator for MemoryLog {
    fn replicate(&self, appends: &[ReplicaAppend<'_>]) -> Replicated {
        if !self.owned.load(Ordering::SeqCst) {
            return Replicated { refused: vec![Some("not the owner".into()); appends.len()], positions: Vec::new() };
        }
        let mut messages = self.messages.lock().unwrap();
        messages.push(log_batch(&appends.iter().collect::<Vec<_>>()));
        let position = messages.len() as u64;
        Replicated { refused: vec![None; appends.len()], positions: vec![("open".into(), position)] }
    }

    fn owns(&self, _section: u32) -> bool {
        self.owned.load(Ordering::SeqCst)
    }
}

fn config() -> EngineConfig {
    EngineConfig { actor_threads: 1, ..EngineConfig::default() }
}

fn clock() -> Clock {
    Clock::manual(Millis(1_000_000_000))
}

/// A node's registry in cluster mode: the event added, idle.
fn standby(dir: &Path, log: &Arc<MemoryLog>) -> Registry {
    // Every append is followed by a snapshot: the rule on snapshots is exercised at once.
    let storage = StorageConfig { snapshot_every_records: 1, ..StorageConfig::default() };
    let replicator: Arc<dyn Replicator> = log.clone();
    let store = Store::open_replicated(dir, storage, Some(replicator)).unwrap();
    let mut registry = Registry::standby(config(), clock(), store).unwrap();
    if registry.event("open").is_none() {
        let venue = grid_venue(SHAPE);
        let event = open_event(&venue);
        registry.add_venue(venue).unwrap();
        registry.add_event(event).unwrap();
    }
    registry
}

fn hold(registry: &Registry, seat: u32) -> Result<(), Unavailable> {
    let section = registry.event("open").unwrap().sections[0].clone();
    let call = HoldSeats { customer: CustomerId::new(&format!("c{seat}")), seats: vec![seat] };
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    runtime.block_on(section.call(call)).map(|granted| assert!(granted.is_ok()))
}

fn held(registry: &Registry) -> u32 {
    registry.event("open").unwrap().sections[0].state.availability().total.held
}

#[test]
fn only_what_the_log_took_is_acknowledged_and_a_standby_rebuilds_it() {
    let log = Arc::new(MemoryLog::default());
    let owner_dir = tempfile::tempdir().unwrap();
    let mut owner = standby(owner_dir.path(), &log);
    // Idle, the event writes nothing: a hold is made in memory only and the log is empty.
    assert_eq!(owner.store().unwrap().cluster_position("open").unwrap(), 0);
    log.owned.store(true, Ordering::SeqCst);
    owner.take_over_event("open").unwrap();
    hold(&owner, 0).unwrap();
    hold(&owner, 1).unwrap();
    assert_eq!(log.messages.lock().unwrap().len(), 2);
    assert_eq!(owner.store().unwrap().cluster_position("open").unwrap(), 2);

    // Fenced out: the hold is applied in memory, refused by the log, never acknowledged,
    // and neither its record nor the snapshot after it reaches the store.
    log.owned.store(false, Ordering::SeqCst);
    match hold(&owner, 2) {
        Err(Unavailable::Storage(StorageError::NotReplicated(why))) => assert_eq!(why, "not the owner"),
        other => panic!("a hold the log refused was answered {other:?}"),
    }
    assert_eq!(held(&owner), 3, "the sections' memory is ahead of the log now");
    owner.shutdown();

    let mut again = standby(owner_dir.path(), &log);
    log.owned.store(true, Ordering::SeqCst);
    again.take_over_event("open").unwrap();
    assert_eq!(held(&again), 2, "rebuilt from the store: what the log took, nothing else");
    again.shutdown();
    log.owned.store(false, Ordering::SeqCst);

    // A standby writes the log into its own store and rebuilds the same sections.
    let standby_dir = tempfile::tempdir().unwrap();
    let mut other = standby(standby_dir.path(), &log);
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let wal_handle = other.store().unwrap().wal();
    let messages = log.messages.lock().unwrap().clone();
    for (index, message) in messages.iter().enumerate() {
        let batch: LogBatch = wal::decode(message).unwrap();
        runtime.block_on(wal_handle.apply_replicated("open", index as u64 + 1, Some(batch))).unwrap();
    }
    // An epoch marker moves the position without records.
    runtime.block_on(wal_handle.apply_replicated("open", 3, None)).unwrap();
    assert_eq!(other.store().unwrap().cluster_position("open").unwrap(), 3);
    assert_eq!(held(&other), 0, "idle until it takes the event over");
    log.owned.store(true, Ordering::SeqCst);
    other.take_over_event("open").unwrap();
    assert_eq!(held(&other), 2);
    // Its own appends continue each section's numbering where the log left it.
    hold(&other, 5).unwrap();
    assert_eq!(held(&other), 3);
    let taken = log.messages.lock().unwrap().len() as u64;
    assert_eq!(other.store().unwrap().cluster_position("open").unwrap(), taken);
    let idled = other.idle_event("open").unwrap();
    assert_eq!(idled.len(), 1);
    assert_eq!(held(&other), 0, "a stepped-down event is served empty and idle");
    other.shutdown();
}
