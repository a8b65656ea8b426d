//! What an operator watches the store by: RocksDB's own write stalls and backlog, and
//! the disk the store lives on. Read on demand: a few property reads (no I/O) and one
//! `statvfs`, cheap enough to sample every second.

use rocksdb::properties::{self, PropName};

use super::{Store, COLUMN_FAMILIES};

/// One reading of the store's health.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreHealth {
    /// RocksDB has stopped writes (too many memtables or level-0 files, or too much
    /// compaction debt): every acknowledgement waits until compaction catches up.
    pub write_stopped: bool,
    /// RocksDB is slowing writes down to this rate (bytes/s); 0 when it is not.
    pub delayed_write_rate: u64,
    /// Compaction debt, summed over the column families.
    pub pending_compaction_bytes: u64,
    pub memtable_bytes: u64,
    pub sst_bytes: u64,
    pub running_compactions: u64,
    /// The file system the store is on; `None` when `statvfs` failed.
    pub disk: Option<Disk>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Disk {
    /// Bytes an unprivileged writer can still use.
    pub free_bytes: u64,
    pub size_bytes: u64,
}

impl Store {
    pub fn health(&self) -> StoreHealth {
        let db_wide = |name: &PropName| self.db.property_int_value(name).ok().flatten().unwrap_or(0);
        let summed = |name: &PropName| {
            COLUMN_FAMILIES
                .iter()
                .filter_map(|cf| self.db.cf_handle(cf))
                .map(|cf| self.db.property_int_value_cf(cf, name).ok().flatten().unwrap_or(0))
                .sum()
        };
        StoreHealth {
            write_stopped: db_wide(properties::IS_WRITE_STOPPED) != 0,
            delayed_write_rate: db_wide(properties::ACTUAL_DELAYED_WRITE_RATE),
            pending_compaction_bytes: summed(properties::ESTIMATE_PENDING_COMPACTION_BYTES),
            memtable_bytes: summed(properties::CUR_SIZE_ALL_MEM_TABLES),
            sst_bytes: summed(properties::TOTAL_SST_FILES_SIZE),
            running_compactions: db_wide(properties::NUM_RUNNING_COMPACTIONS),
            disk: disk_of(&self.path),
        }
    }
}

fn disk_of(path: &std::path::Path) -> Option<Disk> {
    let stats = rustix::fs::statvfs(path).ok()?;
    Some(Disk {
        free_bytes: stats.f_bavail.saturating_mul(stats.f_frsize),
        size_bytes: stats.f_blocks.saturating_mul(stats.f_frsize),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StorageConfig;

    #[test]
    fn a_fresh_store_is_healthy_and_sees_its_disk() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StorageConfig::default()).unwrap();
        let health = store.health();
        assert!(!health.write_stopped);
        assert_eq!(health.delayed_write_rate, 0);
        let disk = health.disk.expect("statvfs of a temporary directory");
        assert!(disk.size_bytes > 0 && disk.free_bytes <= disk.size_bytes, "{disk:?}");
        store.close();
    }
}
