//! Notifications: the relay that delivers the engine's outbox (buyer emails over SMTP,
//! Standard Webhooks) off the sale path. The engine writes each entry in the same batch
//! as the change it tells of (`engine/src/outbox.rs`); this module reads them, composes
//! what to send from the engine's state at that time, sends it with `hakken-notify` and
//! records the progress through the WAL writer.
//!
//! Rooms: `config` (`[notifications]`), `compose` (an entry → the webhook event and the
//! email's input), `relay` (the delivery loop, retries, dead letters). The admin views
//! are in `http/outbox.rs`.

pub mod compose;
pub mod config;
pub mod relay;

pub use config::NotificationsConfig;
pub use relay::{configure, RelayHandle, RelayParts, RetryError};
