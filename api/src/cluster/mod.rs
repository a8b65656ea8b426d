//! Cluster mode in the server: each event is owned by one node at a time, and its
//! changes are durable once its log on NATS JetStream has them (the primitives are in
//! `hakken-cluster`).
//!
//! - [`replicator`]: the store's writer hands each group's appends to the owned events'
//!   logs and acknowledges only what a quorum stored (`hakken_engine::store::Replicator`).
//! - [`node`]: per event, the lease keeper, the standby that follows the log into the
//!   local store, and the moves between them (take over: fence, catch up, rebuild the
//!   sections with the recovery code; step down: retire them).
//! - [`Ownership`] is what a request meets first: a node that does not own the event
//!   answers `307` to the owner's address (or `503 no_owner` while nobody does).
//!
//! The local RocksDB store is each node's copy of a prefix of every event's log; a node
//! that starts reads nothing but the definitions, and rebuilds an event only when it
//! takes it over.

pub mod node;
pub mod replicator;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use axum::http::StatusCode;

use crate::http::error::{ApiError, ApiResult};

/// Whether this node serves an event now, and where its owner is when it does not.
#[derive(Default)]
pub struct Ownership {
    here: AtomicBool,
    /// The owner's base URL, as its lease says (`None`: nobody owns it now).
    owner_address: RwLock<Option<String>>,
    /// Told by the replicator when an append of this node's term was not taken: the
    /// event's sections may be ahead of its log, so it steps down at once.
    lost: tokio::sync::Notify,
}

impl Ownership {
    pub fn is_here(&self) -> bool {
        self.here.load(Ordering::Acquire)
    }

    /// Ok when this node serves the event; otherwise the redirect to its owner.
    pub fn check(&self, event: &str) -> ApiResult<()> {
        if self.is_here() {
            return Ok(());
        }
        match self.owner_address.read().expect("owner lock").clone() {
            Some(address) => Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_owner",
                format!("event {event:?} is served by another node: follow the redirect"),
            )
            .with_owner(address)),
            None => Err(ApiError::unavailable(
                "no_owner",
                format!("no node serves event {event:?} right now (a takeover is under way); retry shortly"),
                1,
            )),
        }
    }

    /// Whether it is served here, and the owner's address when it is not.
    pub fn view(&self) -> (bool, Option<String>) {
        (self.is_here(), self.owner_address.read().expect("owner lock").clone())
    }

    fn set_here(&self) {
        *self.owner_address.write().expect("owner lock") = None;
        self.here.store(true, Ordering::Release);
    }

    fn set_elsewhere(&self, address: Option<String>) {
        self.here.store(false, Ordering::Release);
        *self.owner_address.write().expect("owner lock") = address;
    }
}

/// Every event's [`Ownership`], made once at start-up (cluster mode serves the events
/// of the configuration; admin changes to the catalogue are refused).
#[derive(Default)]
pub struct Owners {
    events: HashMap<String, Arc<Ownership>>,
}

impl Owners {
    pub fn new<'a>(events: impl IntoIterator<Item = &'a str>) -> Owners {
        Owners { events: events.into_iter().map(|event| (event.to_string(), Arc::default())).collect() }
    }

    pub fn get(&self, event: &str) -> Option<&Arc<Ownership>> {
        self.events.get(event)
    }

    pub fn events(&self) -> impl Iterator<Item = (&String, &Arc<Ownership>)> {
        self.events.iter()
    }
}
