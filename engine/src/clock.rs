//! Time as the engine sees it: milliseconds since the Unix epoch, passed in.
//!
//! The seat logic never reads the clock; the actor shell does, through [`Clock`],
//! so tests can drive time by hand and replay is deterministic.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since 1970-01-01T00:00:00Z.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Millis(pub u64);

impl Millis {
    pub fn from_secs(secs: u64) -> Millis {
        Millis(secs * 1000)
    }

    pub fn saturating_add(self, ms: u64) -> Millis {
        Millis(self.0.saturating_add(ms))
    }
}

/// Where the actor shell reads "now" from.
#[derive(Clone, Debug, Default)]
pub enum Clock {
    #[default]
    System,
    /// A clock that only moves when told to; for tests and simulations.
    Manual(Arc<AtomicU64>),
}

impl Clock {
    pub fn manual(start: Millis) -> Clock {
        Clock::Manual(Arc::new(AtomicU64::new(start.0)))
    }

    pub fn now(&self) -> Millis {
        match self {
            Clock::System => {
                let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
                Millis(since_epoch.as_millis() as u64)
            }
            Clock::Manual(ms) => Millis(ms.load(Ordering::Acquire)),
        }
    }

    /// Moves a manual clock forward; a no-op on the system clock.
    pub fn advance(&self, ms: u64) {
        if let Clock::Manual(now) = self {
            now.fetch_add(ms, Ordering::AcqRel);
        }
    }
}
