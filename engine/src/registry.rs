//! Where section actors live: the actix runtime threads, and the map from
//! (event, section) and from [`SectionKey`] to each section's handle.
//!
//! actix and tokio coexist like this: the engine runs its own actix `System` on a
//! dedicated thread plus one `Arbiter` thread per core (each a single-threaded tokio
//! runtime); section actors are spread over the arbiters round-robin. Callers on any
//! other runtime (axum's multi-threaded tokio, a test, a bench) reach actors only
//! through [`SectionHandle::call`], which is `Send` and runtime-agnostic.
//!
//! Shutdown order: actors stop first, then the store writes and syncs what they
//! queued; a registry recovered from a store rebuilds its inventories on all cores.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use actix::Actor;
use actix_rt::{Arbiter, ArbiterHandle, System};

use crate::actor::{SectionActor, SectionHandle, SectionWal};
use crate::clock::Clock;
use crate::config::EngineConfig;
use crate::definition::{from_definition, to_definition};
use crate::event::Event;
use crate::ids::SectionKey;
use crate::inventory::{ApplyError, Inventory, InventoryParams};
use crate::ledger::CustomerLedger;
use crate::observe::{self, SectionMetrics};
use crate::standing_queue::StandingQueue;
use crate::store::{RecoveredSection, Store, StoreError};
use crate::venue::{SeatId, SeatIndex, Venue};
use crate::wal::{AuditRecord, EventDefinition};

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
    #[error("unknown event {0:?}")]
    UnknownEvent(String),
    #[error("event {0:?} cannot move to another venue")]
    VenueChange(String),
    #[error("storing the event failed: {0}")]
    Storage(String),
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
}

/// Resolves public seat ids (`S101-C-12`) to one reserved section's index in the venue
/// and the seats' indexes in its seat map.
pub fn resolve_seats<S: AsRef<str>>(venue: &Venue, ids: &[S]) -> Result<(usize, Vec<SeatIndex>), SeatLookupError> {
    let first = ids.first().ok_or(SeatLookupError::Empty)?.as_ref();
    let unknown = |id: &str| SeatLookupError::UnknownSeat(id.to_string());
    let section_id = SeatId::parse(first).ok_or_else(|| unknown(first))?.section;
    let section_index = venue.section_index(section_id).ok_or_else(|| unknown(first))?;
    let map = venue.sections[section_index].seat_map().ok_or_else(|| unknown(first))?;
    let seats = ids
        .iter()
        .map(|id| {
            let id = id.as_ref();
            let parts = SeatId::parse(id).ok_or_else(|| unknown(id))?;
            if parts.section != section_id {
                return Err(SeatLookupError::MixedSections(first.to_string(), id.to_string()));
            }
            map.seat_index(parts.row, parts.number).ok_or_else(|| unknown(id))
        })
        .collect::<Result<_, _>>()?;
    Ok((section_index, seats))
}

/// Section `section_index` of an event, empty, at its key (`first_key` + index).
fn empty_inventory(
    config: &EngineConfig,
    event: &Event,
    venue: &Arc<Venue>,
    ledger: &Arc<CustomerLedger>,
    first_key: u32,
    section_index: usize,
) -> Inventory {
    Inventory::new(InventoryParams {
        key: SectionKey(first_key + section_index as u32),
        venue: venue.clone(),
        section_index,
        event,
        config,
        ledger: ledger.clone(),
    })
}

/// All venues and events of this engine and the actors that sell them.
pub struct Registry {
    config: EngineConfig,
    clock: Clock,
    /// `None`: in memory only.
    store: Option<Arc<Store>>,
    venues: HashMap<String, Arc<Venue>>,
    events: HashMap<String, EventEntry>,
    /// By `SectionKey`: every section inventory of every event.
    sections: Vec<SectionHandle>,
    /// Cluster mode: events start idle (empty, writing nothing) until this node takes
    /// one over ([`take_over_event`](Self::take_over_event)).
    standby: bool,
    /// Dropped last: actors stop only after the handles are gone.
    runtime: ActorRuntime,
}

/// Why a registry could not be rebuilt from its store.
#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("stored event {event}: {problem}")]
    Definition { event: String, problem: String },
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("starting section actors: {0}")]
    Runtime(#[from] std::io::Error),
}

impl Registry {
    /// An in-memory registry: nothing survives the process.
    pub fn new(config: EngineConfig, clock: Clock) -> std::io::Result<Registry> {
        let threads = match config.actor_threads {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            threads => threads,
        };
        let runtime = ActorRuntime::start(threads)?;
        Ok(Registry {
            config,
            clock,
            store: None,
            venues: HashMap::new(),
            events: HashMap::new(),
            sections: Vec::new(),
            standby: false,
            runtime,
        })
    }

    /// A durable registry: recovers every stored event from `store` (snapshot plus the
    /// records after it, section by section, on all cores), then starts its actors.
    /// Events added later are stored before they go on sale.
    pub fn recover(config: EngineConfig, clock: Clock, store: Store) -> Result<Registry, RecoveryError> {
        let started = std::time::Instant::now();
        let recovered = store.recover()?;
        let mut registry = Registry::new(config, clock)?;
        let store = Arc::new(store);
        registry.store = Some(store.clone());
        for recovered_event in recovered.events {
            let (event, venue, ledger) = registry.stored_event(&recovered_event.definition)?;
            let inventories = registry.rebuild(&event, &venue, &ledger, &recovered_event.sections)?;
            let last_seqs = recovered_event.sections.iter().map(|section| section.last_seq);
            let wals = last_seqs.map(|last_seq| Some(SectionWal::new(store.wal(), last_seq, store.config())));
            registry.start_event(event, venue, ledger, inventories.into_iter().zip(wals));
        }
        metrics::gauge!(observe::RECOVERY_SECONDS).set(started.elapsed().as_secs_f64());
        Ok(registry)
    }

    /// Cluster mode: every stored event is served idle, its sections empty and writing
    /// nothing, until this node takes it over; events added later start idle too. Nothing
    /// but the definitions is read (the log decides what an event holds).
    pub fn standby(config: EngineConfig, clock: Clock, store: Store) -> Result<Registry, RecoveryError> {
        let definitions = store.event_definitions()?;
        let mut registry = Registry::new(config, clock)?;
        registry.store = Some(Arc::new(store));
        registry.standby = true;
        for definition in &definitions {
            let (event, venue, ledger) = registry.stored_event(definition)?;
            let inventories = registry.idle_inventories(&event, &venue, &ledger, definition.first_section_key);
            registry.start_event(event, venue, ledger, inventories);
        }
        Ok(registry)
    }

    /// A stored event's definition as the registry serves it: its venue (added once)
    /// and a fresh customer ledger. Definitions come in section-key order.
    fn stored_event(
        &mut self,
        definition: &EventDefinition,
    ) -> Result<(Event, Arc<Venue>, Arc<CustomerLedger>), RecoveryError> {
        let (event, venue) = from_definition(definition)
            .map_err(|problem| RecoveryError::Definition { event: definition.event.id.clone(), problem })?;
        assert_eq!(definition.first_section_key as usize, self.sections.len(), "stored in key order");
        let venue = match self.venues.get(&venue.id) {
            Some(known) => known.clone(),
            None => self.add_venue(venue)?,
        };
        Ok((event, venue, Arc::new(CustomerLedger::new(self.config.customer_seats_max))))
    }

    /// Empty inventories of an event, without a WAL (cluster mode, not owned here).
    fn idle_inventories(
        &self,
        event: &Event,
        venue: &Arc<Venue>,
        ledger: &Arc<CustomerLedger>,
        first_key: u32,
    ) -> Vec<(Inventory, Option<SectionWal>)> {
        (0..venue.sections.len())
            .map(|index| (empty_inventory(&self.config, event, venue, ledger, first_key, index), None))
            .collect()
    }

    /// Cluster mode: this node now owns `event` and its store holds the event's log up
    /// to the new term's marker. Its sections are rebuilt from the store (the same code
    /// as recovery) and served by new actors that write; the idle ones are retired.
    pub fn take_over_event(&mut self, id: &str) -> Result<(), RecoveryError> {
        let store = self.store.clone().expect("cluster mode has a store");
        let entry = self.events.get(id).ok_or_else(|| RegistryError::UnknownEvent(id.to_string()))?;
        let (event, venue) = (entry.event.clone(), entry.venue.clone());
        let recovered = store.recover_event(id)?;
        let ledger = Arc::new(CustomerLedger::new(self.config.customer_seats_max));
        let first_key = recovered.definition.first_section_key;
        let inventories = self.rebuild_at(first_key, &event, &venue, &ledger, &recovered.sections)?;
        let wals = recovered
            .sections
            .iter()
            .map(|section| Some(SectionWal::new(store.wal(), section.last_seq, store.config())));
        // The idle sections wrote nothing: no need to wait for them.
        for idle in self.replace_event(event, venue, ledger, inventories.into_iter().zip(wals)) {
            idle.retire();
        }
        Ok(())
    }

    /// Cluster mode: `event` is no longer owned here (or its in-memory state can no
    /// longer be trusted): empty idle actors serve it. Returns the sections it had, to
    /// retire and wait for ([`SectionHandle::retired`]): the writes they still make must
    /// reach the writer before a new term of this node begins.
    pub fn idle_event(&mut self, id: &str) -> Result<Vec<SectionHandle>, RegistryError> {
        let entry = self.events.get(id).ok_or_else(|| RegistryError::UnknownEvent(id.to_string()))?;
        let (event, venue) = (entry.event.clone(), entry.venue.clone());
        let first_key = entry.sections.first().map_or(0, |section| section.key.0);
        let ledger = Arc::new(CustomerLedger::new(self.config.customer_seats_max));
        let inventories = self.idle_inventories(&event, &venue, &ledger, first_key);
        Ok(self.replace_event(event, venue, ledger, inventories))
    }

    /// Starts new actors for an event's sections at the same keys; returns the old.
    fn replace_event(
        &mut self,
        event: Arc<Event>,
        venue: Arc<Venue>,
        ledger: Arc<CustomerLedger>,
        inventories: impl IntoIterator<Item = (Inventory, Option<SectionWal>)>,
    ) -> Vec<SectionHandle> {
        let old = self.events.remove(&event.id).expect("replacing a known event");
        let first_key = old.sections.first().map_or(0, |section| section.key.0) as usize;
        let tail = self.sections.split_off(first_key);
        let after = tail[old.sections.len()..].to_vec();
        let event = Arc::unwrap_or_clone(event);
        self.start_event(event, venue, ledger, inventories);
        self.sections.extend(after);
        old.sections
    }

    /// Builds the inventories of one recovered event, spread over all cores.
    fn rebuild(
        &self,
        event: &Event,
        venue: &Arc<Venue>,
        ledger: &Arc<CustomerLedger>,
        sections: &[RecoveredSection],
    ) -> Result<Vec<Inventory>, ApplyError> {
        self.rebuild_at(self.sections.len() as u32, event, venue, ledger, sections)
    }

    fn rebuild_at(
        &self,
        first_key: u32,
        event: &Event,
        venue: &Arc<Venue>,
        ledger: &Arc<CustomerLedger>,
        sections: &[RecoveredSection],
    ) -> Result<Vec<Inventory>, ApplyError> {
        let now = self.clock.now();
        let threads = std::thread::available_parallelism().map_or(1, usize::from).min(sections.len().max(1));
        let chunk = sections.len().div_ceil(threads).max(1);
        std::thread::scope(|scope| {
            let workers: Vec<_> = sections
                .chunks(chunk)
                .enumerate()
                .map(|(chunk_index, chunk_sections)| {
                    scope.spawn(move || {
                        chunk_sections
                            .iter()
                            .enumerate()
                            .map(|(offset, recovered)| {
                                let section_index = chunk_index * chunk + offset;
                                let mut inventory =
                                    empty_inventory(&self.config, event, venue, ledger, first_key, section_index);
                                if let Some(snapshot) = &recovered.snapshot {
                                    inventory.restore(snapshot)?;
                                }
                                for record in &recovered.records {
                                    inventory.replay(record)?;
                                }
                                // Holds that expired while the process was down go free before
                                // anyone can look; the actor writes their records when it starts.
                                inventory.retire_expired(now);
                                Ok(inventory)
                            })
                            .collect::<Result<Vec<_>, ApplyError>>()
                    })
                })
                .collect();
            let mut inventories = Vec::with_capacity(sections.len());
            for worker in workers {
                inventories.extend(worker.join().expect("recovery worker panicked")?);
            }
            Ok(inventories)
        })
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    pub fn store(&self) -> Option<&Arc<Store>> {
        self.store.as_ref()
    }

    pub fn add_venue(&mut self, venue: Venue) -> Result<Arc<Venue>, RegistryError> {
        if self.venues.contains_key(&venue.id) {
            return Err(RegistryError::DuplicateVenue(venue.id));
        }
        let venue = Arc::new(venue);
        self.venues.insert(venue.id.clone(), venue.clone());
        Ok(venue)
    }

    /// Starts one section actor per section of the event's venue; with a store, the
    /// event's definition is stored (synced) first.
    pub fn add_event(&mut self, event: Event) -> Result<&EventEntry, RegistryError> {
        self.add_event_audited(event, Vec::new())
    }

    /// [`add_event`](Self::add_event), with the audit entries of the admin change that
    /// makes it written in the same batch as the definition.
    pub fn add_event_audited(&mut self, event: Event, audit: Vec<AuditRecord>) -> Result<&EventEntry, RegistryError> {
        if self.events.contains_key(&event.id) {
            return Err(RegistryError::DuplicateEvent(event.id));
        }
        let venue =
            self.venues.get(&event.venue_id).ok_or_else(|| RegistryError::UnknownVenue(event.venue_id.clone()))?;
        let venue = venue.clone();
        let first_key = u32::try_from(self.sections.len()).expect("fewer than 2^32 sections");
        if let Some(store) = &self.store {
            store
                .put_event(&to_definition(first_key, &event, &venue), audit)
                .map_err(|error| RegistryError::Storage(error.to_string()))?;
        }
        let ledger = Arc::new(CustomerLedger::new(self.config.customer_seats_max));
        let wal = || match &self.store {
            Some(store) if !self.standby => Some(SectionWal::new(store.wal(), 0, store.config())),
            _ => None,
        };
        let inventories: Vec<_> = self
            .idle_inventories(&event, &venue, &ledger, first_key)
            .into_iter()
            .map(|(inventory, _)| (inventory, wal()))
            .collect();
        Ok(self.start_event(event, venue, ledger, inventories))
    }

    fn start_event(
        &mut self,
        event: Event,
        venue: Arc<Venue>,
        ledger: Arc<CustomerLedger>,
        inventories: impl IntoIterator<Item = (Inventory, Option<SectionWal>)>,
    ) -> &EventEntry {
        let sweep_interval = Duration::from_millis(self.config.sweep_interval_ms.max(1));
        let mut sections = Vec::with_capacity(venue.sections.len());
        for (inventory, wal) in inventories {
            let key = inventory.key();
            assert_eq!(key.0 as usize, self.sections.len(), "section keys are dense");
            let state = inventory.state().clone();
            let section_id = &venue.sections[sections.len()].id;
            let has = state.availability().categories.iter().map(|(category, _)| category.0).collect::<Vec<_>>();
            let categories: Vec<(&str, bool)> = venue
                .categories
                .iter()
                .enumerate()
                .map(|(index, category)| (category.id.as_str(), has.contains(&(index as u8))))
                .collect();
            let metrics = SectionMetrics::new(&event.id, section_id, &categories);
            let queued = metrics.queued();
            let standing = Arc::new(AtomicBool::new(false));
            let queue = StandingQueue::new(
                Duration::from_millis(self.config.queue_target_ms),
                Duration::from_millis(self.config.queue_interval_ms),
            );
            let actor =
                SectionActor::new(inventory, self.clock.clone(), sweep_interval, wal, metrics, queue, standing.clone());
            let arbiter = &self.runtime.arbiters[key.0 as usize % self.runtime.threads()];
            let mailbox_capacity = self.config.mailbox_capacity;
            let addr = SectionActor::start_in_arbiter(arbiter, move |context| {
                context.set_mailbox_capacity(mailbox_capacity);
                actor
            });
            let handle = SectionHandle::new(key, state, addr, queued, standing);
            self.sections.push(handle.clone());
            sections.push(handle);
        }
        let entry = EventEntry { event: Arc::new(event), venue, ledger, sections };
        let id = entry.event.id.clone();
        self.events.entry(id).or_insert(entry)
    }

    /// Replaces an event's definition (name, on-sale window, prices; never its venue),
    /// storing it first. Returns the new event and the sections to tell with
    /// [`SetTerms`](crate::actor::SetTerms): holds made until they hear of it get the old terms.
    pub fn update_event(&mut self, event: Event) -> Result<(Arc<Event>, Vec<SectionHandle>), RegistryError> {
        self.update_event_audited(event, Vec::new())
    }

    /// [`update_event`](Self::update_event), with the audit entries of the admin change
    /// written in the same batch as the new definition.
    pub fn update_event_audited(
        &mut self,
        event: Event,
        audit: Vec<AuditRecord>,
    ) -> Result<(Arc<Event>, Vec<SectionHandle>), RegistryError> {
        let entry = self.events.get_mut(&event.id).ok_or_else(|| RegistryError::UnknownEvent(event.id.clone()))?;
        if event.venue_id != entry.venue.id {
            return Err(RegistryError::VenueChange(event.id));
        }
        if let Some(store) = &self.store {
            let first_key = entry.sections.first().map_or(0, |section| section.key.0);
            store
                .put_event(&to_definition(first_key, &event, &entry.venue), audit)
                .map_err(|error| RegistryError::Storage(error.to_string()))?;
        }
        entry.event = Arc::new(event);
        Ok((entry.event.clone(), entry.sections.clone()))
    }

    pub fn venue(&self, id: &str) -> Option<&Arc<Venue>> {
        self.venues.get(id)
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

    /// Stops all actors, then writes and syncs whatever they queued and closes the store.
    pub fn shutdown(mut self) {
        self.sections.clear();
        self.events.clear();
        self.runtime.stop();
        if let Some(store) = self.store.take() {
            store.close();
        }
    }
}
