//! Engine limits and timings that a deployment sets (`[engine]` in `hakken.toml`).
//! Limits that are not a deployment's choice are named constants beside the code they
//! bound: `SWEEP_HOLDS_MAX` (holds freed per sweep turn), `VENUE_SEATS_MAX` and the
//! other loader bounds, `CODE_TEXT_BYTES_MAX` for ticket codes.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// How long a new hold lives before its seats return to sale.
    pub hold_ttl_ms: u64,
    /// A hold can be extended, but never beyond this age (anti-hoarding).
    pub hold_lifetime_max_ms: u64,
    /// Seats one customer may hold or have bought per event (0 = no limit).
    pub customer_seats_max: u32,
    /// Seats in one hold request.
    pub hold_seats_max: u32,
    /// Messages a section actor's mailbox accepts before callers get `Busy`.
    pub mailbox_capacity: usize,
    /// How often each section frees expired holds (they are also reclaimed on demand).
    pub sweep_interval_ms: u64,
    /// Arbiter threads that run section actors; 0 means one per core.
    pub actor_threads: usize,
    /// A call that waits longer than this in a section's mailbox is late ...
    pub queue_target_ms: u64,
    /// ... and when every call has been late for this long, the queue is standing: new
    /// holds that waited past the target are shed, and new ones refused until it drains.
    pub queue_interval_ms: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            hold_ttl_ms: 10 * 60 * 1000,
            hold_lifetime_max_ms: 30 * 60 * 1000,
            customer_seats_max: 8,
            hold_seats_max: 8,
            mailbox_capacity: 1024,
            sweep_interval_ms: 1000,
            actor_threads: 0,
            queue_target_ms: 5,
            queue_interval_ms: 100,
        }
    }
}
