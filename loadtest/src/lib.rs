//! hakken-loadtest: rehearses on-sales against a hakken server over HTTP, open-loop,
//! and reports what buyers saw.
//!
//! `generate` writes an on-sale's arrival queue from the event's layout; `replay` plays
//! it (every buyer at their scheduled time, latencies from when each step was due, so
//! no coordinated omission) and judges the server's final state; `run` is a fixed-rate
//! workload (orders, plain GETs, gate scans) for benchmarks.
//!
//! - [`queue`]: the queue file format; [`layout`]: an event's sections and seats;
//!   [`generate`]: seeded spike, steady and ramp queues; [`prng`]: the portable PRNG
//!   and hash behind every reproducible random choice.
//! - [`schedule`]: when arrivals are due, and the pacer that launches them.
//! - [`client`]: a bounded pool of HTTP/1.1 keep-alive connections; [`wire`]: the API's JSON;
//!   [`psp`]: paying at the PSP as a browser does, and listing its payments.
//! - [`replay`]: buyers of a queue file, the replay report; [`verdict`]: the ledger,
//!   reading the server back, and the consistency rules.
//! - [`stats`]: per-step counters and latency histograms; [`timeline`] and [`plot`]:
//!   what happened over time, as JSON and SVG.
//! - [`driver`]: `run`: pacing, the order, plain-GET and scan workloads, the report.
//! - [`sinks`]: the notification sinks (an SMTP server, a webhook receiver) and the lag
//!   from an order's acknowledgement to its notice.
//! - [`trivial`]: a minimal server to measure the driver against (`serve-trivial`).
//! - [`cpu`]: the process's CPU time, for the driver's cost per request.
//! - [`server_metrics`]: the server's own account of a replay, from its `/metrics`.
//!
//! Architecture invariant: this crate talks to hakken only over the wire; it depends on
//! neither `hakken-engine` nor `hakken-api` (and so never builds RocksDB). It uses
//! `hakken-notify` (no store either) only for what a receiver of hakken's notifications
//! would: the Message-ID an order's email carries, and the webhook signature check.

pub mod client;
pub mod cpu;
pub mod driver;
pub mod generate;
pub mod layout;
pub mod plot;
pub mod prng;
pub mod psp;
pub mod queue;
pub mod replay;
pub mod schedule;
pub mod server_metrics;
pub mod sinks;
pub mod stats;
pub mod timeline;
pub mod trivial;
pub mod verdict;
pub mod wire;
