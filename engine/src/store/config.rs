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
    /// The shortest time from one group's write to the next, in µs (0: none). A group
    /// that would start sooner waits for more appends until then, so under load the
    /// fsyncs per second are bounded by 1 / window and each carries more records;
    /// an idle store waits for nothing (the first append after a pause goes at once).
    pub group_commit_window_us: u64,
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
            group_commit_window_us: 1_000,
            queue_capacity: 65_536,
            snapshot_every_records: 10_000,
            snapshot_interval_ms: 60_000,
        }
    }
}

/// The longest group-commit window accepted: past it, a lone buyer's request would wait
/// visibly for a sync it does not need.
pub const GROUP_COMMIT_WINDOW_US_MAX: u64 = 100_000;

impl StorageConfig {
    /// Why the store cannot run with this configuration, if it cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.group_commit_records_max == 0 {
            return Err("storage.group_commit_records_max must be at least 1".into());
        }
        if self.group_commit_window_us > GROUP_COMMIT_WINDOW_US_MAX {
            return Err(format!(
                "storage.group_commit_window_us is {}, at most {GROUP_COMMIT_WINDOW_US_MAX} (100 ms) is accepted",
                self.group_commit_window_us
            ));
        }
        Ok(())
    }
}
