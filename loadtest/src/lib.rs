//! hakken-loadtest: drives a hakken server over HTTP, open-loop, and reports what
//! buyers saw.
//!
//! Today it has the driver (`hakken-loadtest run`): arrivals at a fixed rate, each a
//! buyer who holds seats and confirms them, latencies measured from each arrival's
//! scheduled time (no coordinated omission), and a table or JSON report. A generator
//! of on-sale arrival queues and their replay build on these modules (issue 5).
//!
//! - [`schedule`]: when arrivals are due, and the pacer that launches them.
//! - [`client`]: a bounded pool of HTTP/1.1 keep-alive connections.
//! - [`stats`]: per-step counters and latency histograms; the report.
//! - [`driver`]: one run: pacing, the order and plain-GET workloads, draining, the report.
//! - [`trivial`]: a minimal server to measure the driver against (`serve-trivial`).
//! - [`cpu`]: the process's CPU time, for the driver's cost per request.
//!
//! Architecture invariant: this crate talks to hakken only over the wire; it depends on
//! neither `hakken-engine` nor `hakken-api` (and so never builds RocksDB).

pub mod client;
pub mod cpu;
pub mod driver;
pub mod generate;
pub mod layout;
pub mod plot;
pub mod queue;
pub mod replay;
pub mod schedule;
pub mod stats;
pub mod timeline;
pub mod trivial;
pub mod verdict;
pub mod wire;
