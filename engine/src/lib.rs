//! hakken's engine: venues, events, seat inventory and the section actors that own it.
//!
//! The seat logic ([`inventory`], [`best`], [`lockfree`]) is deterministic: it is given
//! the time and never touches a clock, a disk or a socket. The actor shell
//! ([`actor`], [`registry`]) adds threads, mailboxes and the clock.
//!
//! Under `--cfg loom` only [`sync`] and [`lockfree`] are compiled, so loom models check
//! the lock-free hold code without building actix or tokio.

pub mod lockfree;
pub mod sync;

#[cfg(not(loom))]
pub mod actor;
#[cfg(not(loom))]
pub mod audit;
#[cfg(not(loom))]
pub mod best;
#[cfg(not(loom))]
pub mod clock;
#[cfg(not(loom))]
pub mod config;
#[cfg(not(loom))]
pub mod deadline;
#[cfg(not(loom))]
pub mod definition;
#[cfg(not(loom))]
pub mod event;
#[cfg(not(loom))]
pub mod ids;
#[cfg(not(loom))]
pub mod inventory;
#[cfg(not(loom))]
pub mod ledger;
#[cfg(not(loom))]
pub mod observe;
#[cfg(not(loom))]
pub mod outbox;
#[cfg(not(loom))]
pub mod registry;
#[cfg(not(loom))]
pub mod standing_queue;
#[cfg(not(loom))]
pub mod store;
#[cfg(not(loom))]
pub mod synthetic;
#[cfg(not(loom))]
pub mod tickets;
#[cfg(not(loom))]
pub mod venue;
#[cfg(not(loom))]
pub mod waiting_room;
#[cfg(not(loom))]
pub mod wal;

/// The ticket code's old path, which tools and tests outside the crate still name.
#[cfg(not(loom))]
pub use tickets::code as ticket_code;
