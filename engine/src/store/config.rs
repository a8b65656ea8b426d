//! How the store writes: durability mode, group-commit bounds, snapshot cadence.

use serde::{Deserialize, Serialize};

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
    /// mailboxes fill, so callers get "busy"), and async callers get
    /// [`StorageError::Busy`](super::StorageError::Busy) at once.
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
