//! Where section actors live: the actix runtime threads, and the map from
//! (event, section) and from [`SectionKey`] to each section's handle.
//!
//! actix and tokio coexist like this: the engine runs its own actix `System` on a
//! dedicated thread plus one `Arbiter` thread per core (each a single-threaded tokio
//! runtime); section actors are spread over the arbiters round-robin. Callers on any
//! other runtime (axum's multi-threaded tokio, a test, a bench) reach actors only
//! through [`SectionHandle::call`], which is `Send` and runtime-agnostic.

use std::collections::HashMap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use actix::Actor;
use actix_rt::{Arbiter, ArbiterHandle, System};

use crate::actor::{SectionActor, SectionHandle};
use crate::clock::Clock;
use crate::config::EngineConfig;
use crate::event::Event;
use crate::ids::SectionKey;
use crate::inventory::{Inventory, InventoryParams};
use crate::ledger::CustomerLedger;
use crate::venue::{SeatId, SeatIndex, Venue};

/// The actix system thread and its arbiter threads.
pub struct ActorRuntime {
    system: System,
    arbiters: Vec<ArbiterHandle>,
    thread: Option<JoinHandle<()>>,
}

impl ActorRuntime {
    /// Starts the system and `threads` arbiters (at least one).
    pub fn start(threads: usize) -> std::io::Result<ActorRuntime> {
        let threads = threads.max(1);
        let (started, ready) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new().name("actix-system".into()).spawn(move || {
            let runner = System::new();
            let arbiters: Vec<Arbiter> = (0..threads).map(|_| Arbiter::new()).collect();
            let handles = arbiters.iter().map(Arbiter::handle).collect();
            let _ = started.send((System::current(), handles));
            let _ = runner.run();
            for arbiter in arbiters {
                arbiter.stop();
                let _ = arbiter.join();
            }
        })?;
        let (system, arbiters) = ready.recv().map_err(|_| std::io::Error::other("actix system failed to start"))?;
        Ok(ActorRuntime { system, arbiters, thread: Some(thread) })
    }

    pub fn threads(&self) -> usize {
        self.arbiters.len()
    }

    /// Stops every actor and joins the threads.
    pub fn stop(&mut self) {
        self.system.stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for ActorRuntime {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An event with its venue, the ledger of its customers and its sections' handles.
pub struct EventEntry {
    pub event: Arc<Event>,
    pub venue: Arc<Venue>,
    pub ledger: Arc<CustomerLedger>,
    /// By section index in the venue.
    pub sections: Vec<SectionHandle>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("unknown venue {0:?}")]
    UnknownVenue(String),
    #[error("event {0:?} already exists")]
    DuplicateEvent(String),
    #[error("venue {0:?} already exists")]
    DuplicateVenue(String),
}

/// Why seat ids could not be resolved to one reserved section.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SeatLookupError {
    #[error("no seats given")]
    Empty,
    #[error("unknown seat {0:?}")]
    UnknownSeat(String),
    #[error("seats of one hold must be in one section (got {0:?} and {1:?})")]
    MixedSections(String, String),
}

impl EventEntry {
    pub fn section(&self, section_id: &str) -> Option<&SectionHandle> {
        self.sections.get(self.venue.section_index(section_id)?)
    }

    /// Resolves public seat ids (`S101-C-12`) to their section and seat indexes.
    pub fn resolve_seats<S: AsRef<str>>(&self, ids: &[S]) -> Result<(&SectionHandle, Vec<SeatIndex>), SeatLookupError> {
        let first = ids.first().ok_or(SeatLookupError::Empty)?.as_ref();
        let section_id = SeatId::parse(first).ok_or_else(|| SeatLookupError::UnknownSeat(first.to_string()))?.section;
        let handle = self.section(section_id).ok_or_else(|| SeatLookupError::UnknownSeat(first.to_string()))?;
        let map = handle.state.seat_map().ok_or_else(|| SeatLookupError::UnknownSeat(first.to_string()))?;
        let seats = ids
            .iter()
            .map(|id| {
                let id = id.as_ref();
                let parts = SeatId::parse(id).ok_or_else(|| SeatLookupError::UnknownSeat(id.to_string()))?;
                if parts.section != section_id {
                    return Err(SeatLookupError::MixedSections(first.to_string(), id.to_string()));
                }
                map.seat_index(parts.row, parts.number).ok_or_else(|| SeatLookupError::UnknownSeat(id.to_string()))
            })
            .collect::<Result<_, _>>()?;
        Ok((handle, seats))
    }
}

/// All venues and events of this engine and the actors that sell them.
pub struct Registry {
    config: EngineConfig,
    clock: Clock,
    venues: HashMap<String, Arc<Venue>>,
    events: HashMap<String, EventEntry>,
    /// By `SectionKey`: every section inventory of every event.
    sections: Vec<SectionHandle>,
    /// Dropped last: actors stop only after the handles are gone.
    runtime: ActorRuntime,
}

impl Registry {
    pub fn new(config: EngineConfig, clock: Clock) -> std::io::Result<Registry> {
        let threads = match config.actor_threads {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            threads => threads,
        };
        let runtime = ActorRuntime::start(threads)?;
        Ok(Registry { config, clock, venues: HashMap::new(), events: HashMap::new(), sections: Vec::new(), runtime })
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    pub fn add_venue(&mut self, venue: Venue) -> Result<Arc<Venue>, RegistryError> {
        if self.venues.contains_key(&venue.id) {
            return Err(RegistryError::DuplicateVenue(venue.id));
        }
        let venue = Arc::new(venue);
        self.venues.insert(venue.id.clone(), venue.clone());
        Ok(venue)
    }

    /// Starts one section actor per section of the event's venue.
    pub fn add_event(&mut self, event: Event) -> Result<&EventEntry, RegistryError> {
        if self.events.contains_key(&event.id) {
            return Err(RegistryError::DuplicateEvent(event.id));
        }
        let venue =
            self.venues.get(&event.venue_id).ok_or_else(|| RegistryError::UnknownVenue(event.venue_id.clone()))?;
        let venue = venue.clone();
        let ledger = Arc::new(CustomerLedger::new(self.config.customer_seats_max));
        let sweep_interval = Duration::from_millis(self.config.sweep_interval_ms.max(1));
        let mut sections = Vec::with_capacity(venue.sections.len());
        for section_index in 0..venue.sections.len() {
            let key = SectionKey(u32::try_from(self.sections.len()).expect("fewer than 2^32 sections"));
            let inventory = Inventory::new(InventoryParams {
                key,
                venue: venue.clone(),
                section_index,
                event: &event,
                config: &self.config,
                ledger: ledger.clone(),
            });
            let state = inventory.state().clone();
            let actor = SectionActor::new(inventory, self.clock.clone(), sweep_interval);
            let arbiter = &self.runtime.arbiters[key.0 as usize % self.runtime.threads()];
            let mailbox_capacity = self.config.mailbox_capacity;
            let addr = SectionActor::start_in_arbiter(arbiter, move |context| {
                context.set_mailbox_capacity(mailbox_capacity);
                actor
            });
            let handle = SectionHandle::new(key, state, addr);
            self.sections.push(handle.clone());
            sections.push(handle);
        }
        let entry = EventEntry { event: Arc::new(event), venue, ledger, sections };
        let id = entry.event.id.clone();
        Ok(self.events.entry(id).or_insert(entry))
    }

    pub fn event(&self, id: &str) -> Option<&EventEntry> {
        self.events.get(id)
    }

    pub fn events(&self) -> impl Iterator<Item = &EventEntry> {
        self.events.values()
    }

    /// The section that issued a hold or order id.
    pub fn section(&self, key: SectionKey) -> Option<&SectionHandle> {
        self.sections.get(key.0 as usize)
    }

    /// Stops all actors and joins their threads.
    pub fn shutdown(mut self) {
        self.sections.clear();
        self.events.clear();
        self.runtime.stop();
    }
}
