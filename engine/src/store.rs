//! Durable state in RocksDB: the group-commit WAL writer, snapshots, recovery, backup.
//!
//! Layout: column family `wal` holds records keyed `(section key, seq)` big-endian, so
//! each section's log replays in order; `snapshots` holds one snapshot per section;
//! `meta` holds the format version and the event definitions (with their venues);
//! `idempotency` holds the API's stored responses to retried requests, each with its
//! expiry, written through the same group commit as the records they answer for.
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

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use rocksdb::{ColumnFamily, DBRecoveryMode, IteratorMode, Options, WriteBatch, WriteOptions, DB};
use serde::{Deserialize, Serialize};

use crate::audit;
use crate::observe;
use crate::wal::{self, AuditRecord, AuditStored, EventDefinition, FrameError, Record, SectionSnapshot};

const CF_WAL: &str = "wal";
const CF_SNAPSHOTS: &str = "snapshots";
const CF_META: &str = "meta";
const CF_IDEMPOTENCY: &str = "idempotency";
/// The audit log: `seq` (u64 BE) → framed [`wal::AuditStored`]; see `audit.rs`.
const CF_AUDIT: &str = "audit";
const COLUMN_FAMILIES: [&str; 5] = [CF_WAL, CF_SNAPSHOTS, CF_META, CF_IDEMPOTENCY, CF_AUDIT];
const META_FORMAT: &[u8] = b"format";
const META_EVENT_PREFIX: &[u8] = b"event/";
/// `key/{event}` → the 32-byte seed of the event's ticket-signing key.
const META_KEY_PREFIX: &[u8] = b"key/";

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Acknowledge after the group's fsync.
    #[default]
    Sync,
    /// Acknowledge after the write reaches the OS; fsync every `async_flush_interval_ms`.
    Async,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    pub durability: Durability,
    /// With `async`: the most a power loss can take.
    pub async_flush_interval_ms: u64,
    /// Appends the writer puts in one batch (one sync) at most.
    pub group_commit_records_max: usize,
    /// Appends queued for the writer; when full, section actors wait (and their
    /// mailboxes fill, so callers get "busy").
    pub queue_capacity: usize,
    /// A section snapshots after this many records ...
    pub snapshot_every_records: u64,
    /// ... or after this long with at least one record.
    pub snapshot_interval_ms: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            durability: Durability::Sync,
            async_flush_interval_ms: 20,
            group_commit_records_max: 4096,
            queue_capacity: 65_536,
            snapshot_every_records: 10_000,
            snapshot_interval_ms: 60_000,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    #[error("storage failed, nothing more is acknowledged until a restart: {0}")]
    Failed(String),
    #[error("storage is shut down")]
    Closed,
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
    #[error("{0}")]
    Other(String),
}

/// What the writer does when a group is on disk (or failed).
pub type Completion = Box<dyn FnOnce(Result<(), StorageError>) + Send>;

enum Command {
    /// Records `first_seq..` of one section, already framed, and the audit entries
    /// describing them (numbered and chained by the writer).
    Append { section: u32, first_seq: u64, records: Vec<Vec<u8>>, audit: Vec<AuditRecord>, done: Completion },
    /// Audit entries of changes outside the WAL (admin changes, refused scans).
    Audit { entries: Vec<AuditRecord>, done: Completion },
    /// A section's snapshot after `last_seq`; its older records are deleted with it.
    Snapshot { section: u32, last_seq: u64, snapshot: Vec<u8> },
    /// An idempotency entry: `[expires_at_ms: u64 BE][value]` under `key`.
    Idempotent { key: Vec<u8>, entry: Vec<u8>, done: Completion },
    /// Ends the writer after everything queued before it.
    Stop,
}

/// A cloneable way for section actors to reach the writer thread.
#[derive(Clone)]
pub struct WalHandle {
    commands: Sender<Command>,
    failed: Arc<AtomicBool>,
}

impl WalHandle {
    /// Queues records for the next group; `done` runs when they are durable. Blocks
    /// while the queue is full (backpressure on the calling actor).
    pub fn append(
        &self,
        section: u32,
        first_seq: u64,
        records: Vec<Vec<u8>>,
        audit: Vec<AuditRecord>,
        done: Completion,
    ) {
        self.send(Command::Append { section, first_seq, records, audit, done });
    }

    /// Queues audit entries for the next group; `done` runs when they are durable.
    pub fn audit(&self, entries: Vec<AuditRecord>, done: Completion) {
        self.send(Command::Audit { entries, done });
    }

    pub fn snapshot(&self, section: u32, last_seq: u64, snapshot: Vec<u8>) {
        self.send(Command::Snapshot { section, last_seq, snapshot });
    }

    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// Queues an idempotency entry for the next group; `done` runs when it is durable.
    pub fn put_idempotent(&self, key: &[u8], expires_at_ms: u64, value: &[u8], done: Completion) {
        let mut entry = Vec::with_capacity(8 + value.len());
        entry.extend_from_slice(&expires_at_ms.to_be_bytes());
        entry.extend_from_slice(value);
        self.send(Command::Idempotent { key: key.to_vec(), entry, done });
    }

    fn send(&self, command: Command) {
        let command = match self.commands.try_send(command) {
            Ok(()) => return,
            Err(TrySendError::Full(command)) => command,
            Err(TrySendError::Disconnected(command)) => return complete(command, Err(StorageError::Closed)),
        };
        if let Err(error) = self.commands.send(command) {
            complete(error.0, Err(StorageError::Closed));
        }
    }
}

fn complete(command: Command, result: Result<(), StorageError>) {
    match command {
        Command::Append { done, .. } | Command::Idempotent { done, .. } | Command::Audit { done, .. } => done(result),
        Command::Snapshot { .. } | Command::Stop => {}
    }
}

/// State recovered from disk, for the registry to rebuild inventories from.
pub struct Recovered {
    /// In section-key order.
    pub events: Vec<RecoveredEvent>,
}

pub struct RecoveredEvent {
    pub definition: EventDefinition,
    /// By section index in the venue.
    pub sections: Vec<RecoveredSection>,
}

#[derive(Default)]
pub struct RecoveredSection {
    pub snapshot: Option<SectionSnapshot>,
    /// Records after the snapshot, in order.
    pub records: Vec<Record>,
    /// Sequence number of the last record (or of the snapshot); the next is one more.
    pub last_seq: u64,
}

pub struct Store {
    path: PathBuf,
    key_lock: Mutex<()>,
    db: Arc<DB>,
    config: StorageConfig,
    wal: WalHandle,
    writer: Mutex<Option<JoinHandle<()>>>,
    inject_failure: Arc<AtomicBool>,
}

impl Store {
    /// Opens (creating if needed) the store in `path` and starts its writer thread.
    pub fn open(path: &Path, config: StorageConfig) -> Result<Store, StoreError> {
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
        let audit_head = read_audit_head(&db).map_err(|problem| StoreError::Corrupt {
            path: path.to_path_buf(),
            what: "audit log".into(),
            problem,
        })?;
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
    /// randomness) and stored synced the first time it is asked for. Never served.
    pub fn event_key_seed(&self, event: &str, fresh: [u8; 32]) -> Result<[u8; 32], StoreError> {
        let rocks = |source| StoreError::Rocks { path: self.path.clone(), source };
        let key = [META_KEY_PREFIX, event.as_bytes()].concat();
        // One caller at a time: two could otherwise store two different keys.
        let _guard = self.key_lock.lock().expect("key lock poisoned");
        if let Some(stored) = self.db.get_cf(self.cf(CF_META), &key).map_err(rocks)? {
            let framed: [u8; 32] = wal::decode(&stored).map_err(|error| StoreError::Corrupt {
                path: self.path.clone(),
                what: format!("signing key of {event}"),
                problem: error.to_string(),
            })?;
            return Ok(framed);
        }
        self.db.put_cf_opt(self.cf(CF_META), &key, wal::encode(&fresh), &sync_write()).map_err(rocks)?;
        Ok(fresh)
    }

    /// Audit entries from `from_seq` on that `keep` accepts, at most `limit` of them,
    /// looking at no more than `scan_max` entries; returns them and the sequence number
    /// to continue from (`None` at the end of the log).
    pub fn audit_page(
        &self,
        from_seq: u64,
        limit: usize,
        scan_max: usize,
        mut keep: impl FnMut(&AuditRecord) -> bool,
    ) -> Result<(Vec<AuditStored>, Option<u64>), StoreError> {
        let rocks = |source| StoreError::Rocks { path: self.path.clone(), source };
        let start = wal::audit_key(from_seq.max(1));
        let mut found = Vec::new();
        let mut next = None;
        let mode = IteratorMode::From(&start, rocksdb::Direction::Forward);
        for (scanned, item) in self.db.iterator_cf(self.cf(CF_AUDIT), mode).enumerate() {
            let (_, value) = item.map_err(rocks)?;
            let stored: AuditStored = wal::decode(&value).map_err(|error| StoreError::Corrupt {
                path: self.path.clone(),
                what: "audit entry".into(),
                problem: error.to_string(),
            })?;
            if found.len() >= limit || scanned >= scan_max {
                next = Some(stored.entry.seq);
                break;
            }
            if keep(&stored.entry) {
                found.push(stored);
            }
        }
        Ok((found, next))
    }

    /// The sequence number of the last audit entry written (0 for none).
    pub fn audit_head_seq(&self) -> Result<u64, StoreError> {
        let rocks = |source| StoreError::Rocks { path: self.path.clone(), source };
        match self.db.iterator_cf(self.cf(CF_AUDIT), IteratorMode::End).next() {
            None => Ok(0),
            Some(item) => {
                let (key, _) = item.map_err(rocks)?;
                Ok(key.as_ref().try_into().map(u64::from_be_bytes).unwrap_or(0))
            }
        }
    }

    /// Checks the whole audit chain (see `audit::verify`).
    pub fn verify_audit(&self) -> Result<Result<audit::Verified, audit::ChainBreak>, StoreError> {
        let rocks = |source| StoreError::Rocks { path: self.path.clone(), source };
        let mut entries = Vec::new();
        for item in self.db.iterator_cf(self.cf(CF_AUDIT), IteratorMode::Start) {
            let (key, value) = item.map_err(rocks)?;
            entries.push((key.to_vec(), value.to_vec()));
        }
        Ok(audit::verify(entries.into_iter()))
    }

    /// Overwrites one stored audit entry (tests of tamper detection only).
    #[doc(hidden)]
    pub fn tamper_audit(&self, seq: u64, value: &[u8]) -> Result<(), StoreError> {
        let rocks = |source| StoreError::Rocks { path: self.path.clone(), source };
        self.db.put_cf_opt(self.cf(CF_AUDIT), wal::audit_key(seq), value, &sync_write()).map_err(rocks)
    }

    /// The stored value of audit entry `seq`, if any.
    pub fn audit_entry(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let rocks = |source| StoreError::Rocks { path: self.path.clone(), source };
        self.db.get_cf(self.cf(CF_AUDIT), wal::audit_key(seq)).map_err(rocks)
    }

    /// Reads every event definition, snapshot and record (see the torn-tail policy above).
    pub fn recover(&self) -> Result<Recovered, StoreError> {
        let corrupt = |what: String, problem: String| StoreError::Corrupt { path: self.path.clone(), what, problem };
        let rocks = |source| StoreError::Rocks { path: self.path.clone(), source };

        let mut events = Vec::new();
        for item in self.db.iterator_cf(self.cf(CF_META), IteratorMode::Start) {
            let (key, value) = item.map_err(rocks)?;
            let Some(id) = key.strip_prefix(META_EVENT_PREFIX) else { continue };
            let definition: EventDefinition = wal::decode(&value).map_err(|error| {
                corrupt(format!("event definition {}", String::from_utf8_lossy(id)), error.to_string())
            })?;
            let sections = (0..definition.venue.sections.len()).map(|_| RecoveredSection::default()).collect();
            events.push(RecoveredEvent { definition, sections });
        }
        events.sort_by_key(|event| event.definition.first_section_key);
        let mut next_key = 0;
        for event in &events {
            if event.definition.first_section_key != next_key {
                let problem =
                    format!("section keys start at {}, expected {next_key}", event.definition.first_section_key);
                return Err(corrupt(format!("event definition {}", event.definition.event.id), problem));
            }
            next_key += event.sections.len() as u32;
        }
        let section_of = |events: &[RecoveredEvent], section: u32| -> Option<(usize, usize)> {
            events.iter().enumerate().find_map(|(index, event)| {
                let first = event.definition.first_section_key;
                (first..first + event.sections.len() as u32)
                    .contains(&section)
                    .then_some((index, (section - first) as usize))
            })
        };

        for item in self.db.iterator_cf(self.cf(CF_SNAPSHOTS), IteratorMode::Start) {
            let (key, value) = item.map_err(rocks)?;
            let section = u32::from_be_bytes(
                key.as_ref().try_into().map_err(|_| corrupt("snapshot key".into(), format!("{key:?}")))?,
            );
            let (event, index) = section_of(&events, section)
                .ok_or_else(|| corrupt(format!("snapshot of section {section}"), "no event owns it".into()))?;
            let snapshot: SectionSnapshot = wal::decode(&value)
                .map_err(|error| corrupt(format!("snapshot of section {section}"), error.to_string()))?;
            let recovered = &mut events[event].sections[index];
            recovered.last_seq = snapshot.last_seq;
            recovered.snapshot = Some(snapshot);
        }

        // Records, each section's in order. `torn` collects a section's damaged tail.
        let mut torn: Vec<(u32, u64, FrameError)> = Vec::new();
        let mut torn_keys = Vec::new();
        for item in self.db.iterator_cf(self.cf(CF_WAL), IteratorMode::Start) {
            let (key, value) = item.map_err(rocks)?;
            let (section, seq) =
                wal::parse_record_key(&key).ok_or_else(|| corrupt("record key".into(), format!("{key:?}")))?;
            let (event, index) = section_of(&events, section)
                .ok_or_else(|| corrupt(format!("record {section}/{seq}"), "no event owns its section".into()))?;
            match wal::decode::<Record>(&value) {
                Ok(record) => {
                    if let Some((bad_section, bad_seq, error)) = torn.iter().find(|(s, _, _)| *s == section) {
                        let what = format!("record of section {bad_section} seq {bad_seq}");
                        return Err(corrupt(what, format!("{error}, and valid records follow it (seq {seq})")));
                    }
                    let recovered = &mut events[event].sections[index];
                    if seq != recovered.last_seq + 1 {
                        let what = format!("log of section {section}");
                        return Err(corrupt(what, format!("record {seq} follows {}", recovered.last_seq)));
                    }
                    recovered.last_seq = seq;
                    recovered.records.push(record);
                }
                Err(error) => {
                    torn.push((section, seq, error));
                    torn_keys.push(key);
                }
            }
        }
        if !torn.is_empty() {
            for (section, seq, error) in &torn {
                tracing::warn!(section, seq, %error, "dropping a damaged record at the tail of a section's log");
            }
            let mut batch = WriteBatch::default();
            for key in torn_keys {
                batch.delete_cf(self.cf(CF_WAL), key);
            }
            self.db.write_opt(batch, &sync_write()).map_err(rocks)?;
        }
        Ok(Recovered { events })
    }

    /// Stores a new event's definition (synchronously: it must exist before its records).
    pub fn put_event(&self, definition: &EventDefinition) -> Result<(), StoreError> {
        let mut key = META_EVENT_PREFIX.to_vec();
        key.extend_from_slice(definition.event.id.as_bytes());
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_META), key, wal::encode(definition));
        self.db.write_opt(batch, &sync_write()).map_err(|source| StoreError::Rocks { path: self.path.clone(), source })
    }

    /// The value stored under an idempotency `key`, unless it expired by `now_ms`.
    pub fn get_idempotent(&self, key: &[u8], now_ms: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let entry = self
            .db
            .get_cf(self.cf(CF_IDEMPOTENCY), key)
            .map_err(|source| StoreError::Rocks { path: self.path.clone(), source })?;
        Ok(entry.and_then(|entry| {
            let (expires_at, value) = split_idempotent(&entry)?;
            (expires_at > now_ms).then(|| value.to_vec())
        }))
    }

    /// Deletes idempotency entries that expired by `now_ms`; returns how many.
    pub fn prune_idempotent(&self, now_ms: u64) -> Result<usize, StoreError> {
        let rocks = |source| StoreError::Rocks { path: self.path.clone(), source };
        let cf = self.cf(CF_IDEMPOTENCY);
        let mut batch = WriteBatch::default();
        for item in self.db.iterator_cf(cf, IteratorMode::Start) {
            let (key, entry) = item.map_err(rocks)?;
            if split_idempotent(&entry).is_none_or(|(expires_at, _)| expires_at <= now_ms) {
                batch.delete_cf(cf, key);
            }
        }
        let pruned = batch.len();
        if pruned > 0 {
            self.db.write(batch).map_err(rocks)?;
        }
        Ok(pruned)
    }

    /// A consistent copy of the store in `dir` (which must not exist), taken while
    /// sales go on: a RocksDB checkpoint (hard links where it can, plus the live log).
    pub fn backup(&self, dir: &Path) -> Result<(), StoreError> {
        rocksdb::checkpoint::Checkpoint::new(&self.db)
            .and_then(|checkpoint| checkpoint.create_checkpoint(dir))
            .map_err(|source| StoreError::Rocks { path: dir.to_path_buf(), source })
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
}

impl Drop for Store {
    fn drop(&mut self) {
        self.close();
    }
}

/// Restores a backup made by [`Store::backup`] into `data_dir`, which must not exist
/// or be empty: a store is never overwritten.
pub fn restore_backup(backup: &Path, data_dir: &Path) -> Result<(), StoreError> {
    let io = |what: &str, error: std::io::Error| StoreError::Other(format!("{what}: {error}"));
    if data_dir.exists() && std::fs::read_dir(data_dir).map_err(|e| io("reading the data dir", e))?.next().is_some() {
        return Err(StoreError::Other(format!(
            "{} is not empty; restore only into an empty directory",
            data_dir.display()
        )));
    }
    std::fs::create_dir_all(data_dir).map_err(|e| io("creating the data dir", e))?;
    for entry in std::fs::read_dir(backup).map_err(|e| io("reading the backup", e))? {
        let entry = entry.map_err(|e| io("reading the backup", e))?;
        std::fs::copy(entry.path(), data_dir.join(entry.file_name())).map_err(|e| io("copying the backup", e))?;
    }
    Ok(())
}

fn split_idempotent(entry: &[u8]) -> Option<(u64, &[u8])> {
    let (expires_at, value) = entry.split_first_chunk::<8>()?;
    Some((u64::from_be_bytes(*expires_at), value))
}

/// Bytes of the files under `path` (a store's footprint on disk).
pub fn directory_bytes(path: &Path) -> u64 {
    std::fs::read_dir(path)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(metadata) if metadata.is_dir() => directory_bytes(&entry.path()),
            Ok(metadata) => metadata.len(),
            Err(_) => 0,
        })
        .sum()
}

fn sync_write() -> WriteOptions {
    let mut options = WriteOptions::default();
    options.set_sync(true);
    options
}

/// The end of the audit chain on disk: the last entry's number and hash.
fn read_audit_head(db: &DB) -> Result<audit::ChainHead, String> {
    let cf = db.cf_handle(CF_AUDIT).expect("column family created at open");
    let Some(item) = db.iterator_cf(cf, IteratorMode::End).next() else { return Ok(audit::ChainHead::EMPTY) };
    let (_, value) = item.map_err(|error| error.to_string())?;
    let stored: AuditStored = wal::decode(&value).map_err(|error| format!("last entry: {error}"))?;
    Ok(audit::ChainHead { next_seq: stored.entry.seq + 1, last_hash: stored.hash })
}

struct Writer {
    db: Arc<DB>,
    config: StorageConfig,
    failed: Arc<AtomicBool>,
    /// Failpoint: the next group fails as if the disk had refused it.
    inject_failure: Arc<AtomicBool>,
    /// Where the next audit entry goes; only this thread appends.
    audit_head: audit::ChainHead,
}

impl Writer {
    fn run(mut self, queue: Receiver<Command>) {
        let mut write_options = WriteOptions::default();
        write_options.set_sync(self.config.durability == Durability::Sync);
        let flush_interval = Duration::from_millis(self.config.async_flush_interval_ms.max(1));
        let mut unsynced_since: Option<Instant> = None;
        loop {
            let wait = match unsynced_since {
                Some(since) => flush_interval.saturating_sub(since.elapsed()),
                None => Duration::from_secs(3600),
            };
            let first = match queue.recv_timeout(wait) {
                Ok(command) => command,
                Err(RecvTimeoutError::Timeout) => {
                    self.sync_wal(&mut unsynced_since);
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut stop = matches!(first, Command::Stop);
            let mut records = match &first {
                Command::Append { records, .. } => records.len(),
                _ => 0,
            };
            let mut group = vec![first];
            while !stop && records < self.config.group_commit_records_max {
                match queue.try_recv() {
                    Ok(command) => {
                        match &command {
                            Command::Append { records: appended, .. } => records += appended.len(),
                            Command::Stop => stop = true,
                            _ => {}
                        }
                        group.push(command);
                    }
                    Err(_) => break,
                }
            }
            self.write_group(group, &write_options, &mut unsynced_since);
            if stop {
                break;
            }
            if unsynced_since.is_some_and(|since| since.elapsed() >= flush_interval) {
                self.sync_wal(&mut unsynced_since);
            }
        }
        self.sync_wal(&mut unsynced_since);
    }

    fn write_group(&mut self, group: Vec<Command>, write_options: &WriteOptions, unsynced_since: &mut Option<Instant>) {
        if self.failed.load(Ordering::Acquire) {
            let error = StorageError::Failed("an earlier write failed".into());
            return group.into_iter().for_each(|command| complete(command, Err(error.clone())));
        }
        let mut batch = WriteBatch::default();
        let wal = self.db.cf_handle(CF_WAL).expect("column family created at open");
        let snapshots = self.db.cf_handle(CF_SNAPSHOTS).expect("column family created at open");
        let idempotency = self.db.cf_handle(CF_IDEMPOTENCY).expect("column family created at open");
        let audit_cf = self.db.cf_handle(CF_AUDIT).expect("column family created at open");
        // Chained on a copy: the head moves only if the batch is written.
        let mut audit_head = self.audit_head;
        for command in &group {
            match command {
                Command::Append { section, first_seq, records, audit, .. } => {
                    for (offset, record) in records.iter().enumerate() {
                        batch.put_cf(wal, wal::record_key(*section, first_seq + offset as u64), record);
                    }
                    for entry in audit {
                        let (key, value) = audit_head.append(entry.clone());
                        batch.put_cf(audit_cf, key, value);
                    }
                }
                Command::Audit { entries, .. } => {
                    for entry in entries {
                        let (key, value) = audit_head.append(entry.clone());
                        batch.put_cf(audit_cf, key, value);
                    }
                }
                Command::Snapshot { section, last_seq, snapshot } => {
                    batch.put_cf(snapshots, wal::snapshot_key(*section), snapshot);
                    batch.delete_range_cf(wal, wal::record_key(*section, 0), wal::record_key(*section, last_seq + 1));
                }
                Command::Idempotent { key, entry, .. } => batch.put_cf(idempotency, key, entry),
                Command::Stop => {}
            }
        }
        let (records, bytes) = (batch.len(), batch.size_in_bytes());
        let started = Instant::now();
        let result = if self.inject_failure.swap(false, Ordering::AcqRel) {
            Err("injected write failure".to_string())
        } else {
            self.db.write_opt(batch, write_options).map_err(|error| error.to_string())
        };
        if result.is_ok() {
            self.audit_head = audit_head;
        }
        if result.is_ok() && self.config.durability == Durability::Async && unsynced_since.is_none() {
            *unsynced_since = Some(Instant::now());
        }
        metrics::histogram!(observe::WAL_WRITE_SECONDS).record(started.elapsed().as_secs_f64());
        metrics::histogram!(observe::WAL_GROUP_RECORDS).record(records as f64);
        metrics::counter!(observe::WAL_BYTES_TOTAL).increment(bytes as u64);
        let result = result.map_err(|error| {
            metrics::counter!(observe::WAL_WRITE_FAILURES_TOTAL).increment(1);
            self.failed.store(true, Ordering::Release);
            tracing::error!(%error, "WAL write failed; acknowledgements stop until restart");
            StorageError::Failed(error)
        });
        for command in group {
            complete(command, result.clone());
        }
    }

    fn sync_wal(&self, unsynced_since: &mut Option<Instant>) {
        if unsynced_since.take().is_some() {
            if let Err(error) = self.db.flush_wal(true) {
                self.failed.store(true, Ordering::Release);
                tracing::error!(%error, "WAL sync failed; acknowledgements stop until restart");
            }
        }
    }
}
