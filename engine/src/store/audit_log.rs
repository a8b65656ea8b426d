//! Reading the audit log (the writer appends to it, see `writer.rs`; the chain's
//! rules are in `audit.rs`).

use rocksdb::{IteratorMode, DB};

use super::{sync_write, Store, StoreError, CF_AUDIT};
use crate::audit;
use crate::wal::{self, AuditRecord, AuditStored};

impl Store {
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
        let start = wal::audit_key(from_seq.max(1));
        let mut found = Vec::new();
        let mut next = None;
        let mode = IteratorMode::From(&start, rocksdb::Direction::Forward);
        for (scanned, item) in self.db.iterator_cf(self.cf(CF_AUDIT), mode).enumerate() {
            let (key, value) = item.map_err(|source| self.rocks(source))?;
            let stored: AuditStored = wal::decode(&value).map_err(|error| StoreError::Corrupt {
                path: self.path.clone(),
                what: "audit entry".into(),
                problem: error.to_string(),
            })?;
            // Pair assertion after reading: an entry is stored under its own number.
            if key[..] != wal::audit_key(stored.entry.seq)[..] {
                return Err(StoreError::Corrupt {
                    path: self.path.clone(),
                    what: "audit entry".into(),
                    problem: format!("entry {} stored under key {key:?}", stored.entry.seq),
                });
            }
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
        match self.db.iterator_cf(self.cf(CF_AUDIT), IteratorMode::End).next() {
            None => Ok(0),
            Some(item) => {
                let (key, _) = item.map_err(|source| self.rocks(source))?;
                Ok(key.as_ref().try_into().map(u64::from_be_bytes).unwrap_or(0))
            }
        }
    }

    /// Checks the whole audit chain (see `audit::verify`).
    pub fn verify_audit(&self) -> Result<Result<audit::Verified, audit::ChainBreak>, StoreError> {
        let mut entries = Vec::new();
        for item in self.db.iterator_cf(self.cf(CF_AUDIT), IteratorMode::Start) {
            let (key, value) = item.map_err(|source| self.rocks(source))?;
            entries.push((key.to_vec(), value.to_vec()));
        }
        Ok(audit::verify(entries.into_iter()))
    }

    /// Overwrites one stored audit entry (tests of tamper detection only).
    #[doc(hidden)]
    pub fn tamper_audit(&self, seq: u64, value: &[u8]) -> Result<(), StoreError> {
        self.db
            .put_cf_opt(self.cf(CF_AUDIT), wal::audit_key(seq), value, &sync_write())
            .map_err(|source| self.rocks(source))
    }

    /// The stored value of audit entry `seq`, if any.
    pub fn audit_entry(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.db.get_cf(self.cf(CF_AUDIT), wal::audit_key(seq)).map_err(|source| self.rocks(source))
    }
}

/// The end of the audit chain on disk: the last entry's number and hash.
pub(super) fn read_audit_head(db: &DB) -> Result<audit::ChainHead, String> {
    let cf = db.cf_handle(CF_AUDIT).expect("column family created at open");
    let Some(item) = db.iterator_cf(cf, IteratorMode::End).next() else { return Ok(audit::ChainHead::EMPTY) };
    let (_, value) = item.map_err(|error| error.to_string())?;
    let stored: AuditStored = wal::decode(&value).map_err(|error| format!("last entry: {error}"))?;
    Ok(audit::ChainHead { next_seq: stored.entry.seq + 1, last_hash: stored.hash })
}
