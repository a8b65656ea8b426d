//! The hakken server as a library: configuration, the HTTP API and the commands of
//! the `hakken` binary (`main.rs` is only its command line).
//!
//! A library so that handler tests run in process: build the app with a manual
//! [`hakken_engine::clock::Clock`] through [`server::recover`], then drive
//! [`http::router`] with `tower::ServiceExt::oneshot`, no socket and no real sleeping.
//! Tests that need a process (kill -9, start-up, signals) run the binary.

pub mod cluster;
pub mod config;
pub mod http;
pub mod metrics_help;
pub mod notifications;
pub mod payments;
pub mod privacy;
pub mod render;
pub mod server;
pub mod simulate;
pub mod waiting_rooms;
