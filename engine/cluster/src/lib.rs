//! hakken's cluster mode on NATS JetStream: which node owns each event (a lease in a
//! replicated KV bucket) and each event's replicated log (a subject of an R3 stream,
//! appended with fencing). No RocksDB here: the server wires these into its writer.
//!
//! - [`lease`]: the pure ownership rules (no clocks compared across nodes);
//! - [`leases`]: the lease bucket's reads and compare-and-set writes, and the keeper
//!   that takes, renews and releases a lease;
//! - [`log`]: appends that a deposed owner cannot make, reads of a log's tail;
//! - [`takeover`]: how a new owner catches up and fences the old one out;
//! - [`positions`]: where each standby says it is in each event's log;
//! - [`status`]: leases, log ends, standbys' lag and replicas, for `hakken cluster status`;
//! - [`jetstream`]: the connection and the assets; [`metrics`]: the names.

pub mod jetstream;
pub mod lease;
pub mod leases;
pub mod log;
pub mod metrics;
pub mod positions;
pub mod status;
pub mod takeover;
