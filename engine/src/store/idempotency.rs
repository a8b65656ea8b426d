//! Reading and pruning stored idempotent answers (the writer stores them, see
//! [`WalHandle::append`](super::WalHandle::append) and
//! [`WalHandle::put_idempotent`](super::WalHandle::put_idempotent)).
//!
//! Each is a framed [`IdempotentAnswer`]: a damaged one is an error, never read as
//! "not stored" (that would let a retry run a change a second time).

use rocksdb::{IteratorMode, ReadOptions, ReadTier, WriteBatch};

use super::{Store, StoreError, CF_IDEMPOTENCY};
use crate::wal::{self, IdempotentAnswer};

/// What a read that must not wait for the disk found.
#[derive(Debug)]
pub enum CachedRead<T> {
    Found(T),
    /// Answering would need a read from storage: ask [`Store::get_idempotent`] on a
    /// thread that may block.
    NotCached,
}

impl Store {
    /// The answer stored under an idempotency `key`, unless it expired by `now_ms`.
    pub fn get_idempotent(&self, key: &[u8], now_ms: u64) -> Result<Option<IdempotentAnswer>, StoreError> {
        let framed = self.db.get_cf(self.cf(CF_IDEMPOTENCY), key).map_err(|source| self.rocks(source))?;
        self.decode_idempotent(framed, now_ms)
    }

    /// [`Store::get_idempotent`] from memory alone (memtables and the block cache; the
    /// tables' bloom filters stay in memory, so a key never stored, the usual case, is
    /// answered without I/O): safe on an async worker. `NotCached` if it would read a
    /// block from storage.
    pub fn get_idempotent_cached(
        &self,
        key: &[u8],
        now_ms: u64,
    ) -> Result<CachedRead<Option<IdempotentAnswer>>, StoreError> {
        let mut options = ReadOptions::default();
        options.set_read_tier(ReadTier::BlockCache);
        match self.db.get_cf_opt(self.cf(CF_IDEMPOTENCY), key, &options) {
            Ok(framed) => self.decode_idempotent(framed, now_ms).map(CachedRead::Found),
            Err(error) if error.kind() == rocksdb::ErrorKind::Incomplete => Ok(CachedRead::NotCached),
            Err(source) => Err(self.rocks(source)),
        }
    }

    fn decode_idempotent(&self, framed: Option<Vec<u8>>, now_ms: u64) -> Result<Option<IdempotentAnswer>, StoreError> {
        let Some(framed) = framed else { return Ok(None) };
        let answer: IdempotentAnswer = wal::decode(&framed).map_err(|error| StoreError::Corrupt {
            path: self.path.clone(),
            what: "stored idempotent answer".into(),
            problem: error.to_string(),
        })?;
        Ok((answer.expires_at_ms > now_ms).then_some(answer))
    }

    /// Deletes answers that expired by `now_ms`; returns how many. Damaged ones are
    /// kept (and logged): deleting one would turn its error into a miss.
    pub fn prune_idempotent(&self, now_ms: u64) -> Result<usize, StoreError> {
        let cf = self.cf(CF_IDEMPOTENCY);
        let mut batch = WriteBatch::default();
        let mut damaged = 0_usize;
        for item in self.db.iterator_cf(cf, IteratorMode::Start) {
            let (key, framed) = item.map_err(|source| self.rocks(source))?;
            match wal::decode::<IdempotentAnswer>(&framed) {
                Ok(answer) if answer.expires_at_ms <= now_ms => batch.delete_cf(cf, key),
                Ok(_) => {}
                Err(_) => damaged += 1,
            }
        }
        if damaged > 0 {
            tracing::error!(damaged, "damaged stored idempotent answers kept; retries with their keys get 503");
        }
        let pruned = batch.len();
        if pruned > 0 {
            self.db.write(batch).map_err(|source| self.rocks(source))?;
        }
        Ok(pruned)
    }

    /// Overwrites one stored answer with raw bytes (tests of damage handling only).
    #[doc(hidden)]
    pub fn tamper_idempotent(&self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.db
            .put_cf_opt(self.cf(CF_IDEMPOTENCY), key, value, &super::sync_write())
            .map_err(|source| self.rocks(source))
    }
}
