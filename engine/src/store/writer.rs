//! The group-commit writer thread and [`WalHandle`], the way to reach it.
//!
//! Everything the store writes while it runs goes through this one thread: section
//! records with their audit entries and stored idempotent answers, snapshots, audit
//! entries of changes outside the WAL, event definitions and signing-key seeds. It
//! drains what is queued (up to `group_commit_records_max` records), writes one
//! `WriteBatch`, syncs once and completes every waiter; so whatever one command
//! carries is on disk together or not at all.
//!
//! Two ways to queue: actors (on actix arbiter threads) use the blocking sends, which
//! are the deliberate back-pressure; async code uses the non-blocking ones, which
//! complete with [`StorageError::Busy`] at once when the queue is full.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use rocksdb::{WriteBatch, WriteOptions, DB};

use super::outbox::{self as outbox_keys, OutboxChange, Shelf};
use super::replication::{ReplicaAppend, Replicator};
use super::{
    Durability, StorageConfig, StorageError, CF_AUDIT, CF_IDEMPOTENCY, CF_META, CF_OUTBOX, CF_QUEUE, CF_SNAPSHOTS,
    CF_WAL,
};
use crate::audit;
use crate::observe;
use crate::wal::{self, AuditRecord, IdempotentAnswer, LogBatch, OutboxEntry, OutboxStored};

/// What the writer does when a group is on disk (or failed).
pub type Completion = Box<dyn FnOnce(Result<(), StorageError>) + Send>;

/// An idempotency key and its framed [`IdempotentAnswer`], ready for the batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FramedAnswer {
    pub key: Vec<u8>,
    pub framed: Vec<u8>,
}

impl FramedAnswer {
    pub fn new(key: Vec<u8>, answer: &IdempotentAnswer) -> FramedAnswer {
        let framed = wal::encode(answer);
        wal::debug_assert_round_trip(answer, &framed);
        FramedAnswer { key, framed }
    }
}

/// What goes to disk with a section's records: the audit entries describing them
/// (numbered and chained by the writer), the outbox entries telling of them (numbered by
/// the writer), and the stored answer of the request that made them, if it had an
/// idempotency key.
#[derive(Debug, Default)]
pub struct Appended {
    pub audit: Vec<AuditRecord>,
    pub outbox: Vec<OutboxEntry>,
    pub answer: Option<FramedAnswer>,
}

pub(super) enum Command {
    /// Records `first_seq..` of one section, already framed, with what goes with them.
    Append { section: u32, first_seq: u64, records: Vec<Vec<u8>>, with: Appended, done: Completion },
    /// Audit entries of changes outside the WAL (refused scans, backups).
    Audit { entries: Vec<AuditRecord>, done: Completion },
    /// A section's snapshot after `last_seq`; its older records are deleted with it.
    Snapshot { section: u32, last_seq: u64, snapshot: Vec<u8> },
    /// A stored answer of a request that changed nothing in a section.
    Idempotent { answer: FramedAnswer, done: Completion },
    /// After the group it is in is written: make RocksDB drop from its files what was
    /// deleted of `section`'s log and overwritten of its snapshot (a buyer's erased
    /// data must not linger in old log files or SST files; see `inventory/buyers.rs`).
    Forget { section: u32 },
    /// Framed values for the `meta` column family (event definitions, signing-key
    /// seeds) with the audit entries of the admin change they make.
    Meta { puts: Vec<(Vec<u8>, Vec<u8>)>, audit: Vec<AuditRecord>, done: Completion },
    /// The relay's progress on outbox entries (`store/outbox.rs`).
    Outbox { changes: Vec<OutboxChange>, done: Completion },
    /// Framed waiting-room records for the `queue` column family, with the audit
    /// entries of what they do (the opening draw's seed).
    Room { puts: Vec<(Vec<u8>, Vec<u8>)>, audit: Vec<AuditRecord>, done: Completion },
    /// A message of `event`'s cluster log that another node appended, at `position`
    /// (`batch` is `None` for a message without records: an epoch marker). Written
    /// here as it is, never replicated again (see `replication.rs`).
    Replicated { event: String, position: u64, batch: Option<LogBatch>, done: Completion },
    /// Ends the writer after everything queued before it.
    Stop,
}

impl Command {
    fn complete(self, result: Result<(), StorageError>) {
        match self {
            Command::Append { done, .. }
            | Command::Idempotent { done, .. }
            | Command::Audit { done, .. }
            | Command::Meta { done, .. }
            | Command::Room { done, .. }
            | Command::Replicated { done, .. }
            | Command::Outbox { done, .. } => done(result),
            Command::Snapshot { .. } | Command::Forget { .. } | Command::Stop => {}
        }
    }

    /// Records this command counts against `group_commit_records_max`.
    fn records(&self) -> usize {
        match self {
            Command::Append { records, .. } => records.len(),
            Command::Room { puts, .. } => puts.len(),
            Command::Replicated { batch, .. } => {
                batch.as_ref().map_or(1, |batch| batch.appends.iter().map(|append| append.records.len()).sum())
            }
            _ => 0,
        }
    }
}

/// A cloneable way to reach the writer thread.
#[derive(Clone)]
pub struct WalHandle {
    pub(super) commands: Sender<Command>,
    pub(super) failed: Arc<AtomicBool>,
}

impl WalHandle {
    /// Queues records for the next group, with their audit entries and the answer of
    /// the request that made them; `done` runs when all of it is durable. Blocks while
    /// the queue is full (back-pressure on the calling actor).
    pub fn append(&self, section: u32, first_seq: u64, records: Vec<Vec<u8>>, with: Appended, done: Completion) {
        assert!(first_seq >= 1, "sequence numbers start at 1");
        assert!(!records.is_empty(), "an append carries records");
        self.send(Command::Append { section, first_seq, records, with, done });
    }

    /// Queues the relay's progress on outbox entries without ever blocking: when the
    /// queue is full, `done` gets [`StorageError::Busy`] at once.
    pub fn outbox(&self, changes: Vec<OutboxChange>, done: Completion) {
        self.offer(Command::Outbox { changes, done });
    }

    /// [`outbox`](Self::outbox) for async code: resolves when the changes are durable.
    pub async fn outbox_durable(&self, changes: Vec<OutboxChange>) -> Result<(), StorageError> {
        let (sender, receiver) = tokio::sync::oneshot::channel();
        self.outbox(
            changes,
            Box::new(move |result| {
                let _ = sender.send(result);
            }),
        );
        receiver.await.unwrap_or(Err(StorageError::Closed))
    }

    /// Queues audit entries for the next group; `done` runs when they are durable.
    /// Blocks while the queue is full: for actors, never for async code (see [`audit`](Self::audit)).
    pub fn audit_blocking(&self, entries: Vec<AuditRecord>, done: Completion) {
        self.send(Command::Audit { entries, done });
    }

    /// Queues audit entries without ever blocking: when the queue is full, `done` gets
    /// [`StorageError::Busy`] at once.
    pub fn audit(&self, entries: Vec<AuditRecord>, done: Completion) {
        self.offer(Command::Audit { entries, done });
    }

    /// [`audit`](Self::audit) for async code: resolves when the entries are durable.
    pub async fn audit_durable(&self, entries: Vec<AuditRecord>) -> Result<(), StorageError> {
        let (sender, receiver) = tokio::sync::oneshot::channel();
        self.audit(
            entries,
            Box::new(move |result| {
                let _ = sender.send(result);
            }),
        );
        receiver.await.unwrap_or(Err(StorageError::Closed))
    }

    /// Queues framed waiting-room records (keyed by [`wal::room_key`]) and their audit
    /// entries without ever blocking: when the queue is full, `done` gets
    /// [`StorageError::Busy`] at once (the room then changes nothing).
    pub fn room(&self, puts: Vec<(Vec<u8>, Vec<u8>)>, audit: Vec<AuditRecord>, done: Completion) {
        self.offer(Command::Room { puts, audit, done });
    }

    /// Queues a message of another owner's log for this store (a standby follows the
    /// events it may take over) without ever blocking: when the queue is full, it
    /// resolves to [`StorageError::Busy`] at once. Resolves when it is written.
    pub async fn apply_replicated(
        &self,
        event: &str,
        position: u64,
        batch: Option<LogBatch>,
    ) -> Result<(), StorageError> {
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let done: Completion = Box::new(move |result| {
            let _ = sender.send(result);
        });
        self.offer(Command::Replicated { event: event.to_string(), position, batch, done });
        receiver.await.unwrap_or(Err(StorageError::Closed))
    }

    pub fn snapshot(&self, section: u32, last_seq: u64, snapshot: Vec<u8>) {
        self.send(Command::Snapshot { section, last_seq, snapshot });
    }

    /// Queues [`Command::Forget`]: once what is queued before it is written, the
    /// section's deleted records and old snapshots are compacted out of RocksDB's files.
    /// Send it after the snapshot that deleted them. Blocks while the queue is full.
    pub fn forget_deleted(&self, section: u32) {
        self.send(Command::Forget { section });
    }

    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// Queues the answer of a request that changed nothing (an answer to a change goes
    /// with its records, see [`append`](Self::append)); never blocks: when the queue is
    /// full, `done` gets [`StorageError::Busy`] at once.
    pub fn put_idempotent(&self, key: &[u8], answer: &IdempotentAnswer, done: Completion) {
        self.offer(Command::Idempotent { answer: FramedAnswer::new(key.to_vec(), answer), done });
    }

    /// Queues `meta` values with their audit entries, blocking while the queue is full
    /// (admin changes run on blocking threads).
    pub(super) fn meta(&self, puts: Vec<(Vec<u8>, Vec<u8>)>, audit: Vec<AuditRecord>, done: Completion) {
        self.send(Command::Meta { puts, audit, done });
    }

    pub(super) fn send(&self, command: Command) {
        let command = match self.commands.try_send(command) {
            Ok(()) => return,
            Err(TrySendError::Full(command)) => command,
            Err(TrySendError::Disconnected(command)) => return command.complete(Err(StorageError::Closed)),
        };
        if let Err(error) = self.commands.send(command) {
            error.0.complete(Err(StorageError::Closed));
        }
    }

    fn offer(&self, command: Command) {
        match self.commands.try_send(command) {
            Ok(()) => {}
            Err(TrySendError::Full(command)) => {
                metrics::counter!(observe::WAL_QUEUE_FULL_TOTAL).increment(1);
                command.complete(Err(StorageError::Busy));
            }
            Err(TrySendError::Disconnected(command)) => command.complete(Err(StorageError::Closed)),
        }
    }
}

pub(super) struct Writer {
    pub(super) db: Arc<DB>,
    pub(super) config: StorageConfig,
    pub(super) failed: Arc<AtomicBool>,
    /// Failpoint: the next group fails as if the disk had refused it.
    pub(super) inject_failure: Arc<AtomicBool>,
    /// Where the next audit entry goes; only this thread appends.
    pub(super) audit_head: audit::ChainHead,
    /// The number of the next outbox entry; only this thread numbers them.
    pub(super) outbox_next: u64,
    /// Told after every group that wrote outbox entries (the relay waits on it).
    pub(super) outbox_written: Arc<tokio::sync::Notify>,
    /// Cluster mode: where appends are made durable before they are written here.
    pub(super) replicator: Option<Arc<dyn Replicator>>,
}

impl Writer {
    pub(super) fn run(mut self, queue: Receiver<Command>) {
        // Exported at 0 from the start: an alert's `increase()` then sees the first
        // failure (a series born at 1 has no increase), and a panel shows 0, not no data.
        metrics::counter!(observe::WAL_WRITE_FAILURES_TOTAL).increment(0);
        metrics::counter!(observe::WAL_QUEUE_FULL_TOTAL).increment(0);
        let mut write_options = WriteOptions::default();
        write_options.set_sync(self.config.durability == Durability::Sync);
        let flush_interval = Duration::from_millis(self.config.async_flush_interval_ms.max(1));
        let mut unsynced_since: Option<Instant> = None;
        let window = Duration::from_micros(self.config.group_commit_window_us);
        let mut last_write: Option<Instant> = None;
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
            let not_before = last_write.map_or_else(Instant::now, |last| last + window);
            let (group, stop) = gather(first, &queue, self.config.group_commit_records_max, not_before);
            last_write = Some(Instant::now());
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

    /// The batch of a group; `audit_head` and `outbox_next` are advanced on copies, kept
    /// only if it is written.
    fn batch(
        &self,
        group: &[Command],
        positions: &[(String, u64)],
        audit_head: &mut audit::ChainHead,
        outbox_next: &mut u64,
    ) -> WriteBatch {
        let cf = |name| self.db.cf_handle(name).expect("column family created at open");
        let (wal_cf, snapshots, idempotency, audit_cf, meta, outbox_cf, queue_cf) =
            (cf(CF_WAL), cf(CF_SNAPSHOTS), cf(CF_IDEMPOTENCY), cf(CF_AUDIT), cf(CF_META), cf(CF_OUTBOX), cf(CF_QUEUE));
        let first_outbox = *outbox_next;
        let mut batch = WriteBatch::default();
        let mut chain = |batch: &mut WriteBatch, entries: &[AuditRecord]| {
            for entry in entries {
                let (key, value) = audit_head.append(entry.clone());
                batch.put_cf(audit_cf, key, value);
            }
        };
        for command in group {
            match command {
                Command::Append { section, first_seq, records, with, .. } => {
                    for (offset, record) in records.iter().enumerate() {
                        // Pair assertion: what goes to disk is a record recovery will read.
                        debug_assert!(wal::decode::<wal::Record>(record).is_ok(), "a framed record");
                        batch.put_cf(wal_cf, wal::record_key(*section, first_seq + offset as u64), record);
                    }
                    chain(&mut batch, &with.audit);
                    for entry in &with.outbox {
                        let entry = OutboxEntry { seq: *outbox_next, ..entry.clone() };
                        *outbox_next += 1;
                        let key = outbox_keys::key(Shelf::Pending, entry.seq);
                        let stored = OutboxStored { entry, deliveries: Vec::new() };
                        let framed = wal::encode(&stored);
                        wal::debug_assert_round_trip(&stored, &framed);
                        batch.put_cf(outbox_cf, key, framed);
                    }
                    if let Some(answer) = &with.answer {
                        batch.put_cf(idempotency, &answer.key, &answer.framed);
                    }
                }
                Command::Outbox { changes, .. } => outbox_keys::write(&mut batch, outbox_cf, changes),
                Command::Audit { entries, .. } => chain(&mut batch, entries),
                Command::Snapshot { section, .. }
                    if self.replicator.as_ref().is_some_and(|replicator| !replicator.owns(*section)) => {}
                Command::Snapshot { section, last_seq, snapshot } => {
                    debug_assert!(wal::decode::<wal::SectionSnapshot>(snapshot).is_ok(), "a framed snapshot");
                    batch.put_cf(snapshots, wal::snapshot_key(*section), snapshot);
                    batch.delete_range_cf(
                        wal_cf,
                        wal::record_key(*section, 0),
                        wal::record_key(*section, last_seq + 1),
                    );
                }
                Command::Idempotent { answer, .. } => batch.put_cf(idempotency, &answer.key, &answer.framed),
                Command::Meta { puts, audit, .. } => {
                    for (key, value) in puts {
                        batch.put_cf(meta, key, value);
                    }
                    chain(&mut batch, audit);
                }
                Command::Room { puts, audit, .. } => {
                    for (key, value) in puts {
                        debug_assert!(wal::decode::<wal::RoomStored>(value).is_ok(), "a framed room record");
                        batch.put_cf(queue_cf, key, value);
                    }
                    chain(&mut batch, audit);
                }
                Command::Replicated { event, position, batch: log_batch, .. } => {
                    for append in log_batch.iter().flat_map(|batch| &batch.appends) {
                        for (offset, record) in append.records.iter().enumerate() {
                            batch.put_cf(
                                wal_cf,
                                wal::record_key(append.section, append.first_seq + offset as u64),
                                record,
                            );
                        }
                        chain(&mut batch, &append.audit);
                        if let Some((key, framed)) = &append.answer {
                            batch.put_cf(idempotency, key, framed);
                        }
                    }
                    batch.put_cf(meta, wal::cluster_position_key(event), wal::encode(position));
                }
                Command::Forget { .. } | Command::Stop => {}
            }
        }
        for (event, position) in positions {
            batch.put_cf(meta, wal::cluster_position_key(event), wal::encode(position));
        }
        if *outbox_next != first_outbox {
            batch.put_cf(meta, outbox_keys::META_NEXT, wal::encode(&*outbox_next));
        }
        batch
    }

    /// Rewrites the files that may still hold `section`'s deleted records or replaced
    /// snapshots: every column family is flushed (so the RocksDB log files that carried
    /// the old writes become obsolete and are deleted), then the section's key ranges are
    /// compacted down to the bottom level, dropping what the deletes cover. Costs a few
    /// milliseconds of the writer's time plus the section's share of the files; only
    /// erasures ask for it.
    fn forget(&self, section: u32) {
        let started = Instant::now();
        let handles: Vec<_> = super::COLUMN_FAMILIES
            .iter()
            .map(|name| self.db.cf_handle(name).expect("column family created at open"))
            .collect();
        if let Err(error) = self.db.flush_cfs_opt(&handles, &rocksdb::FlushOptions::default()) {
            tracing::error!(section, %error, "flushing before compacting an erasure failed; the old bytes stay until RocksDB compacts by itself");
            return;
        }
        let mut options = rocksdb::CompactOptions::default();
        options.set_bottommost_level_compaction(rocksdb::BottommostLevelCompaction::Force);
        let wal_cf = self.db.cf_handle(CF_WAL).expect("column family created at open");
        let records = (wal::record_key(section, 0), wal::record_key(section, u64::MAX));
        self.db.compact_range_cf_opt(wal_cf, Some(records.0), Some(records.1), &options);
        let snapshots = self.db.cf_handle(CF_SNAPSHOTS).expect("column family created at open");
        let key = wal::snapshot_key(section);
        self.db.compact_range_cf_opt(snapshots, Some(key), Some(key), &options);
        tracing::info!(
            section,
            seconds = started.elapsed().as_secs_f64(),
            "erased data compacted out of the store's files"
        );
    }

    fn write_group(&mut self, group: Vec<Command>, write_options: &WriteOptions, unsynced_since: &mut Option<Instant>) {
        if self.failed.load(Ordering::Acquire) {
            let error = StorageError::Failed("an earlier write failed".into());
            return group.into_iter().for_each(|command| command.complete(Err(error.clone())));
        }
        let (group, positions) = self.replicate(group);
        let mut audit_head = self.audit_head;
        let mut outbox_next = self.outbox_next;
        let batch = self.batch(&group, &positions, &mut audit_head, &mut outbox_next);
        let (records, bytes) = (batch.len(), batch.size_in_bytes());
        let started = Instant::now();
        let result = if self.inject_failure.swap(false, Ordering::AcqRel) {
            Err("injected write failure".to_string())
        } else {
            self.db.write_opt(batch, write_options).map_err(|error| error.to_string())
        };
        if result.is_ok() {
            self.audit_head = audit_head;
            if outbox_next != self.outbox_next {
                self.outbox_next = outbox_next;
                self.outbox_written.notify_one();
            }
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
        let forget: Vec<u32> = group
            .iter()
            .filter_map(|command| match command {
                Command::Forget { section } => Some(*section),
                _ => None,
            })
            .collect();
        for command in group {
            command.complete(result.clone());
        }
        if result.is_ok() {
            forget.into_iter().for_each(|section| self.forget(section));
        }
    }

    /// Cluster mode: the group's appends go to the log first; those it refused are
    /// completed now (never written here) and dropped from the group. Returns what is
    /// left to write and the log positions to record with it.
    fn replicate(&self, group: Vec<Command>) -> (Vec<Command>, Vec<(String, u64)>) {
        let Some(replicator) = &self.replicator else { return (group, Vec::new()) };
        let appends: Vec<ReplicaAppend<'_>> = group
            .iter()
            .filter_map(|command| match command {
                Command::Append { section, first_seq, records, with, .. } => {
                    Some(ReplicaAppend { section: *section, first_seq: *first_seq, records, with })
                }
                _ => None,
            })
            .collect();
        if appends.is_empty() {
            return (group, Vec::new());
        }
        let replicated = replicator.replicate(&appends);
        assert_eq!(replicated.refused.len(), appends.len(), "an answer for each append");
        drop(appends);
        let mut refusals = replicated.refused.into_iter();
        let mut kept = Vec::with_capacity(group.len());
        for command in group {
            let refused = match command {
                Command::Append { .. } => refusals.next().expect("one per append"),
                _ => None,
            };
            match refused {
                Some(why) => command.complete(Err(StorageError::NotReplicated(why))),
                None => kept.push(command),
            }
        }
        (kept, replicated.positions)
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

/// `first` and whatever else is queued or arrives before `not_before`, up to
/// `records_max` records; and whether a `Stop` is among them. Waiting for `not_before`
/// is the group-commit window: under load, one sync carries the appends of a whole
/// window instead of whatever happened to be queued the instant the last sync ended.
fn gather(first: Command, queue: &Receiver<Command>, records_max: usize, not_before: Instant) -> (Vec<Command>, bool) {
    let mut stop = matches!(first, Command::Stop);
    let mut records = first.records();
    let mut group = vec![first];
    while !stop && records < records_max {
        let command = match queue.try_recv() {
            Ok(command) => command,
            Err(_) if Instant::now() < not_before => match queue.recv_deadline(not_before) {
                Ok(command) => command,
                Err(_) => break,
            },
            Err(_) => break,
        };
        records += command.records();
        stop = matches!(command, Command::Stop);
        group.push(command);
    }
    (group, stop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn append() -> Command {
        Command::Append {
            section: 0,
            first_seq: 1,
            records: vec![vec![0]],
            with: Appended::default(),
            done: Box::new(|_| {}),
        }
    }

    /// Sends `command` from another thread once `gather` is waiting (the test cannot
    /// know when that is; sending late enough that it usually is keeps it honest).
    fn send_later(commands: &Sender<Command>, command: Command) -> std::thread::JoinHandle<()> {
        let commands = commands.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            commands.send(command).unwrap();
        })
    }

    #[test]
    fn without_a_window_a_group_is_what_is_queued() {
        let (commands, queue) = crossbeam_channel::unbounded();
        commands.send(append()).unwrap();
        let (group, stop) = gather(append(), &queue, 4096, Instant::now());
        assert_eq!((group.len(), stop), (2, false));
        // One arriving after the gather is left for the next group.
        commands.send(append()).unwrap();
        assert_eq!(queue.len(), 1);
    }

    #[test]
    fn a_window_gathers_appends_that_arrive_within_it_up_to_the_record_bound() {
        let (commands, queue) = crossbeam_channel::unbounded();
        let sender = send_later(&commands, append());
        // The bound (2 records) ends the group, not the minute-long window.
        let (group, stop) = gather(append(), &queue, 2, Instant::now() + Duration::from_secs(60));
        sender.join().unwrap();
        assert_eq!((group.len(), stop), (2, false));
    }

    #[test]
    fn a_stop_ends_the_window() {
        let (commands, queue) = crossbeam_channel::unbounded();
        let sender = send_later(&commands, Command::Stop);
        let (group, stop) = gather(append(), &queue, 4096, Instant::now() + Duration::from_secs(60));
        sender.join().unwrap();
        assert_eq!((group.len(), stop), (2, true));
    }

    #[test]
    fn a_window_with_nothing_arriving_ends_at_its_deadline() {
        let (_commands, queue) = crossbeam_channel::unbounded::<Command>();
        let not_before = Instant::now() + Duration::from_millis(30);
        let (group, stop) = gather(append(), &queue, 4096, not_before);
        assert_eq!((group.len(), stop), (1, false));
        assert!(Instant::now() >= not_before);
    }
}
