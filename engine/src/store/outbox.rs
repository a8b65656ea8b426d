//! The outbox on disk (what goes in it and why: `outbox.rs`). The writer adds entries with
//! the records they tell of (`writer.rs`); the relay reads them here and records its
//! progress through the writer ([`OutboxChange`]).
//!
//! Layout in column family `outbox`: a shelf byte, then the entry's `seq` (u64 BE), to a
//! framed [`OutboxStored`]. Shelf `p` holds entries still being delivered, `d` the dead
//! letters. A delivered entry is deleted, so the first pending key is where the relay
//! resumes after a restart: the store itself is its cursor. `meta` key `outbox/next` keeps
//! the next `seq`, so numbers are never reused even after the newest entries were deleted
//! (a receiver may have seen them).

use rocksdb::{ColumnFamily, IteratorMode, WriteBatch, DB};

use super::{Store, StoreError, CF_META, CF_OUTBOX};
use crate::wal::{self, OutboxStored};

/// `meta` key of the next outbox `seq` (a framed u64).
pub(super) const META_NEXT: &[u8] = b"outbox/next";

/// Where an entry sits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shelf {
    /// Still being delivered to at least one destination.
    Pending,
    /// Given up on; back to `Pending` only by an admin's retry.
    Dead,
}

impl Shelf {
    fn byte(self) -> u8 {
        match self {
            Shelf::Pending => b'p',
            Shelf::Dead => b'd',
        }
    }
}

/// One change of the relay's progress, written through the writer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutboxChange {
    /// Store the entry (with its deliveries so far) on `shelf`, replacing what is there.
    Put { shelf: Shelf, stored: OutboxStored },
    /// Remove entry `seq` from `shelf` (delivered everywhere, or moved to the other shelf).
    Remove { shelf: Shelf, seq: u64 },
}

pub(super) fn key(shelf: Shelf, seq: u64) -> [u8; 9] {
    let mut key = [0; 9];
    key[0] = shelf.byte();
    key[1..].copy_from_slice(&seq.to_be_bytes());
    key
}

pub(super) fn write(batch: &mut WriteBatch, cf: &ColumnFamily, changes: &[OutboxChange]) {
    for change in changes {
        match change {
            OutboxChange::Put { shelf, stored } => {
                let framed = wal::encode(stored);
                wal::debug_assert_round_trip(stored, &framed);
                batch.put_cf(cf, key(*shelf, stored.entry.seq), framed);
            }
            OutboxChange::Remove { shelf, seq } => batch.delete_cf(cf, key(*shelf, *seq)),
        }
    }
}

/// The next outbox `seq` as stored (1 for a store that never had one).
pub(super) fn read_next(db: &DB) -> Result<u64, String> {
    let meta = db.cf_handle(CF_META).expect("column family created at open");
    match db.get_cf(meta, META_NEXT).map_err(|error| error.to_string())? {
        None => Ok(1),
        Some(framed) => wal::decode::<u64>(&framed).map_err(|error| format!("next outbox number: {error}")),
    }
}

impl Store {
    /// Entries on `shelf` with `seq` after `after`, in order, at most `limit`.
    pub fn outbox_page(&self, shelf: Shelf, after: u64, limit: usize) -> Result<Vec<OutboxStored>, StoreError> {
        let Some(from) = after.checked_add(1) else { return Ok(Vec::new()) };
        let start = key(shelf, from);
        let mode = IteratorMode::From(&start, rocksdb::Direction::Forward);
        let mut found = Vec::new();
        for item in self.db.iterator_cf(self.cf(CF_OUTBOX), mode) {
            if found.len() >= limit {
                break;
            }
            let (stored_key, value) = item.map_err(|source| self.rocks(source))?;
            if stored_key.first() != Some(&shelf.byte()) {
                break;
            }
            let stored = self.decode_outbox(&value)?;
            // Pair assertion after reading: an entry is stored under its own number.
            if stored_key[..] != key(shelf, stored.entry.seq)[..] {
                return Err(self.corrupt_outbox(format!("entry {} stored under key {stored_key:?}", stored.entry.seq)));
            }
            found.push(stored);
        }
        Ok(found)
    }

    /// Entry `seq` on `shelf`, if it is there.
    pub fn outbox_entry(&self, shelf: Shelf, seq: u64) -> Result<Option<OutboxStored>, StoreError> {
        let value = self.db.get_cf(self.cf(CF_OUTBOX), key(shelf, seq)).map_err(|source| self.rocks(source))?;
        value.map(|value| self.decode_outbox(&value)).transpose()
    }

    /// How many entries are on `shelf` (a scan of keys: for startup and tests, not a hot path).
    pub fn outbox_count(&self, shelf: Shelf) -> Result<usize, StoreError> {
        let start = key(shelf, 0);
        let mode = IteratorMode::From(&start, rocksdb::Direction::Forward);
        let mut count = 0;
        for item in self.db.iterator_cf(self.cf(CF_OUTBOX), mode) {
            let (stored_key, _) = item.map_err(|source| self.rocks(source))?;
            if stored_key.first() != Some(&shelf.byte()) {
                break;
            }
            count += 1;
        }
        Ok(count)
    }

    /// Woken after each write that added outbox entries (one stored permit when nobody
    /// waits, so a relay that was busy misses nothing).
    pub fn outbox_written(&self) -> std::sync::Arc<tokio::sync::Notify> {
        self.outbox_written.clone()
    }

    fn decode_outbox(&self, value: &[u8]) -> Result<OutboxStored, StoreError> {
        wal::decode(value).map_err(|error| self.corrupt_outbox(error.to_string()))
    }

    fn corrupt_outbox(&self, problem: String) -> StoreError {
        StoreError::Corrupt { path: self.path.clone(), what: "outbox entry".into(), problem }
    }
}
