//! Durable state in RocksDB: the group-commit WAL writer, snapshots, recovery, backup.
//!
//! Layout: column family `wal` holds records keyed `(section key, seq)` big-endian, so
//! each section's log replays in order; `snapshots` holds one snapshot per section;
//! `meta` holds the format version, the event definitions (with their venues) and the
//! events' signing-key seeds; `audit` the hash-chained audit log; `idempotency` the
//! API's stored answers to retried requests ([`wal::IdempotentAnswer`]), each written in
//! the same batch as the records of the change it answers; `outbox` what is still to be
//! told outside (emails, webhooks), written in the same batch as the records it tells of.
//!
//! Rooms: `config` (how it writes), `writer` (the group-commit thread, the one way
//! anything is written while the store runs), `recovery`, `backup`, `idempotency` and
//! `audit_log` (reads of what the writer wrote), `outbox` (its layout, and the relay's
//! reads), `health` (RocksDB's stalls and the disk, for the metrics).
//!
//! Durability: a section actor applies a change in memory, hands the records to the
//! writer thread and answers its caller only when the writer says they are on disk.
//! The writer drains everything queued (up to `group_commit_records_max`), writes one
//! `WriteBatch`, syncs once (`durability = "sync"`) and completes every waiter. With
//! `durability = "async"` it completes after the write (in the OS page cache, so it
//! survives a killed process) and syncs every `async_flush_interval_ms`: a power loss
//! or kernel crash can lose that much.
//!
//! A failed write poisons the store: every waiter then and after gets
//! [`StorageError::Failed`], nothing more is acknowledged, and the in-memory state (which
//! may now be ahead of the disk) is only trusted again after a restart recovers it.
//!
//! Torn-tail policy (recovery): RocksDB replays its own log in point-in-time mode,
//! stopping at the first damaged entry (a write that never finished its sync, so never
//! acknowledged). Then each record's own frame is checked: records that fail at the end
//! of a section's log (nothing valid after them) are dropped with a warning and deleted;
//! a damaged record followed by a valid one, a gap in sequence numbers, a damaged
//! snapshot or event definition is corruption, and `recover` refuses, naming the
//! section, sequence and problem.

mod audit_log;
mod backup;
mod config;
mod health;
mod idempotency;
mod outbox;
mod recovery;
mod replication;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use rocksdb::{ColumnFamily, DBRecoveryMode, Options, WriteOptions, DB};

pub use backup::{directory_bytes, restore_backup};
pub use config::{Durability, StorageConfig, GROUP_COMMIT_WINDOW_US_MAX};
pub use health::{Disk, StoreHealth};
pub use idempotency::CachedRead;
pub use outbox::{OutboxChange, Shelf};
pub use recovery::{Recovered, RecoveredEvent, RecoveredSection};
pub use replication::{log_batch, ReplicaAppend, Replicated, Replicator};
pub use writer::{Appended, Completion, FramedAnswer, WalHandle};

use crate::wal::{self, AuditRecord, EventDefinition};
use writer::{Command, Writer};

const CF_WAL: &str = "wal";
const CF_SNAPSHOTS: &str = "snapshots";
const CF_META: &str = "meta";
const CF_IDEMPOTENCY: &str = "idempotency";
/// The audit log: `seq` (u64 BE) → framed [`wal::AuditStored`]; see `audit.rs`.
const CF_AUDIT: &str = "audit";
/// The outbox: what the relay has yet to deliver, and its dead letters; see `outbox.rs`.
const CF_OUTBOX: &str = "outbox";
/// Waiting rooms: [`wal::room_key`] → framed [`wal::RoomStored`]; see `waiting_room/durable.rs`.
const CF_QUEUE: &str = "queue";
const COLUMN_FAMILIES: [&str; 7] = [CF_WAL, CF_SNAPSHOTS, CF_META, CF_IDEMPOTENCY, CF_AUDIT, CF_OUTBOX, CF_QUEUE];
const META_FORMAT: &[u8] = b"format";
const META_EVENT_PREFIX: &[u8] = b"event/";
/// `key/{event}` → the 32-byte seed of the event's ticket-signing key.
const META_KEY_PREFIX: &[u8] = b"key/";

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    #[error("storage failed, nothing more is acknowledged until a restart: {0}")]
    Failed(String),
    #[error("storage is shut down")]
    Closed,
    /// Only from the non-blocking sends (async callers): the writer's queue is full.
    #[error("storage is busy (writer queue full); retry shortly")]
    Busy,
    /// Cluster mode: the event's log did not take the change (this node does not own
    /// the event, or lost it, or no quorum answered); it was not written here.
    #[error("the cluster log did not take the change: {0}")]
    NotReplicated(String),
}

/// Why a store could not be opened or recovered.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Rocks { path: PathBuf, source: rocksdb::Error },
    #[error("{path}: written by format version {found}, this build reads {expected}")]
    Format { path: PathBuf, found: String, expected: u8 },
    #[error("{path}: corrupt {what}: {problem}")]
    Corrupt { path: PathBuf, what: String, problem: String },
    #[error("{path}: the writer refused: {source}")]
    Write { path: PathBuf, source: StorageError },
    #[error("{0}")]
    Other(String),
}

pub struct Store {
    path: PathBuf,
    key_lock: Mutex<()>,
    db: Arc<DB>,
    config: StorageConfig,
    wal: WalHandle,
    writer: Mutex<Option<JoinHandle<()>>>,
    inject_failure: Arc<AtomicBool>,
    outbox_written: Arc<tokio::sync::Notify>,
}

impl Store {
    /// Opens (creating if needed) the store in `path` and starts its writer thread.
    pub fn open(path: &Path, config: StorageConfig) -> Result<Store, StoreError> {
        Store::open_replicated(path, config, None)
    }

    /// [`open`](Self::open) in cluster mode: every append goes to `replicator` first
    /// (see `replication.rs`).
    pub fn open_replicated(
        path: &Path,
        config: StorageConfig,
        replicator: Option<Arc<dyn Replicator>>,
    ) -> Result<Store, StoreError> {
        config.validate().map_err(StoreError::Other)?;
        let rocks = |source| StoreError::Rocks { path: path.to_path_buf(), source };
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        options.set_wal_recovery_mode(DBRecoveryMode::PointInTime);
        let db = DB::open_cf(&options, path, COLUMN_FAMILIES).map_err(rocks)?;
        let meta = db.cf_handle(CF_META).expect("column family created at open");
        match db.get_cf(meta, META_FORMAT).map_err(rocks)? {
            None => db.put_cf(meta, META_FORMAT, [wal::FORMAT_VERSION]).map_err(rocks)?,
            Some(found) if found.as_slice() == [wal::FORMAT_VERSION] => {}
            Some(found) => {
                return Err(StoreError::Format {
                    path: path.to_path_buf(),
                    found: format!("{found:?}"),
                    expected: wal::FORMAT_VERSION,
                })
            }
        }
        let audit_head = audit_log::read_audit_head(&db).map_err(|problem| StoreError::Corrupt {
            path: path.to_path_buf(),
            what: "audit log".into(),
            problem,
        })?;
        let outbox_next = outbox::read_next(&db).map_err(|problem| StoreError::Corrupt {
            path: path.to_path_buf(),
            what: "outbox".into(),
            problem,
        })?;
        let outbox_written = Arc::new(tokio::sync::Notify::new());
        let db = Arc::new(db);
        let (commands, queue) = crossbeam_channel::bounded(config.queue_capacity.max(1));
        let failed = Arc::new(AtomicBool::new(false));
        let inject_failure = Arc::new(AtomicBool::new(false));
        let writer = Writer {
            db: db.clone(),
            config: config.clone(),
            failed: failed.clone(),
            inject_failure: inject_failure.clone(),
            audit_head,
            outbox_next,
            outbox_written: outbox_written.clone(),
            replicator,
        };
        let writer = std::thread::Builder::new()
            .name("wal-writer".into())
            .spawn(move || writer.run(queue))
            .map_err(|error| StoreError::Other(format!("starting the WAL writer: {error}")))?;
        Ok(Store {
            path: path.to_path_buf(),
            key_lock: Mutex::new(()),
            db,
            config,
            wal: WalHandle { commands, failed },
            writer: Mutex::new(Some(writer)),
            inject_failure,
            outbox_written,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn config(&self) -> &StorageConfig {
        &self.config
    }

    pub fn wal(&self) -> WalHandle {
        self.wal.clone()
    }

    /// Whether a write has failed (nothing is acknowledged any more; restart to recover).
    pub fn failed(&self) -> bool {
        self.wal.failed()
    }

    /// Failpoint for fault tests: the writer's next group fails as a refused disk
    /// write would, with everything that follows from it.
    pub fn fail_next_write(&self) {
        self.inject_failure.store(true, Ordering::Release);
    }

    /// The seed of `event`'s ticket-signing key, made (from `fresh`, the caller's
    /// randomness) and stored through the writer the first time it is asked for.
    /// Never served. Blocks on the disk: not for async workers.
    pub fn event_key_seed(&self, event: &str, fresh: [u8; 32]) -> Result<[u8; 32], StoreError> {
        let key = [META_KEY_PREFIX, event.as_bytes()].concat();
        // One caller at a time: two could otherwise store two different keys.
        let _guard = self.key_lock.lock().expect("key lock poisoned");
        if let Some(stored) = self.db.get_cf(self.cf(CF_META), &key).map_err(|source| self.rocks(source))? {
            let framed: [u8; 32] = wal::decode(&stored).map_err(|error| StoreError::Corrupt {
                path: self.path.clone(),
                what: format!("signing key of {event}"),
                problem: error.to_string(),
            })?;
            return Ok(framed);
        }
        let framed = wal::encode(&fresh);
        wal::debug_assert_round_trip(&fresh, &framed);
        self.write_meta(vec![(key, framed)], Vec::new())?;
        Ok(fresh)
    }

    /// Stores an event's definition with the audit entries of the admin change that
    /// made it, in one batch through the writer; returns when both are durable.
    /// Blocks on the disk: not for async workers (it must exist before its records).
    pub fn put_event(&self, definition: &EventDefinition, audit: Vec<AuditRecord>) -> Result<(), StoreError> {
        let mut key = META_EVENT_PREFIX.to_vec();
        key.extend_from_slice(definition.event.id.as_bytes());
        let framed = wal::encode(definition);
        wal::debug_assert_round_trip(definition, &framed);
        self.write_meta(vec![(key, framed)], audit)
    }

    /// Queues `meta` values and audit entries as one batch and waits until it is durable.
    fn write_meta(&self, puts: Vec<(Vec<u8>, Vec<u8>)>, audit: Vec<AuditRecord>) -> Result<(), StoreError> {
        let (done, written) = std::sync::mpsc::sync_channel(1);
        self.wal.meta(
            puts,
            audit,
            Box::new(move |result| {
                let _ = done.send(result);
            }),
        );
        let result = written.recv().unwrap_or(Err(StorageError::Closed));
        result.map_err(|source| StoreError::Write { path: self.path.clone(), source })
    }

    /// The last message of `event`'s cluster log this store holds (0: none).
    pub fn cluster_position(&self, event: &str) -> Result<u64, StoreError> {
        let key = wal::cluster_position_key(event);
        match self.db.get_cf(self.cf(CF_META), key).map_err(|source| self.rocks(source))? {
            None => Ok(0),
            Some(framed) => wal::decode(&framed).map_err(|error| StoreError::Corrupt {
                path: self.path.clone(),
                what: format!("cluster position of {event}"),
                problem: error.to_string(),
            }),
        }
    }

    /// `event`'s waiting-room records in order, checked: a damaged record or a gap in
    /// the sequence is corruption (RocksDB's own log replay already stops at a torn
    /// write, which was never acknowledged). Blocks on the disk: for recovery.
    pub fn room_records(&self, event: &str) -> Result<Vec<wal::RoomStored>, StoreError> {
        let corrupt = |problem: String| StoreError::Corrupt {
            path: self.path.clone(),
            what: format!("waiting room of {event}"),
            problem,
        };
        let prefix = wal::room_key(event, 0);
        let prefix = &prefix[..prefix.len() - 8];
        let mut records = Vec::new();
        for item in self.db.prefix_iterator_cf(self.cf(CF_QUEUE), prefix) {
            let (key, value) = item.map_err(|source| self.rocks(source))?;
            if !key.starts_with(prefix) {
                break;
            }
            let expected = wal::room_key(event, records.len() as u64 + 1);
            if *key != *expected {
                return Err(corrupt(format!("record {} missing", records.len() + 1)));
            }
            let record =
                wal::decode(&value).map_err(|error| corrupt(format!("record {}: {error}", records.len() + 1)))?;
            records.push(record);
        }
        Ok(records)
    }

    /// Compacts every column family now, reclaiming space of deleted records and old
    /// snapshots (RocksDB also does this by itself over time).
    pub fn compact(&self) {
        for name in COLUMN_FAMILIES {
            self.db.compact_range_cf(self.cf(name), None::<&[u8]>, None::<&[u8]>);
        }
    }

    /// Writes (and syncs) everything queued, then stops the writer thread. Appends
    /// after this complete with [`StorageError::Closed`].
    pub fn close(&self) {
        self.wal.send(Command::Stop);
        let writer = self.writer.lock().expect("writer handle").take();
        if let Some(writer) = writer {
            let _ = writer.join();
        }
    }

    fn cf(&self, name: &str) -> &ColumnFamily {
        self.db.cf_handle(name).expect("column family created at open")
    }

    fn rocks(&self, source: rocksdb::Error) -> StoreError {
        StoreError::Rocks { path: self.path.clone(), source }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.close();
    }
}

fn sync_write() -> WriteOptions {
    let mut options = WriteOptions::default();
    options.set_sync(true);
    options
}
