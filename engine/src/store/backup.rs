//! Backups while sales go on (RocksDB checkpoints), restoring one, and the store's
//! footprint on disk. All of it blocks on file I/O: async callers use `spawn_blocking`.

use std::path::Path;

use super::{Store, StoreError};

impl Store {
    /// A consistent copy of the store in `dir` (which must not exist), taken while
    /// sales go on: a RocksDB checkpoint (hard links where it can, plus the live log).
    pub fn backup(&self, dir: &Path) -> Result<(), StoreError> {
        rocksdb::checkpoint::Checkpoint::new(&self.db)
            .and_then(|checkpoint| checkpoint.create_checkpoint(dir))
            .map_err(|source| StoreError::Rocks { path: dir.to_path_buf(), source })
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
