//! The store writer's [`Replicator`] on NATS JetStream: each owned event's appends of a
//! group become one message of its log, appended in its owner's term ([`OwnerLog`]:
//! naming the last sequence, so a deposed owner is refused); the events' appends of
//! one group go out together and the writer waits for all of them (about one quorum
//! round trip, in place of the local fsync).
//!
//! An event whose append was not taken loses its term here at once: its sections
//! already applied the change in memory, so they are not trusted again until the event
//! is taken over afresh (the node's [`super::node`] steps down and, if the lease is
//! still its own, takes it again with the next epoch, rebuilding from the log).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use hakken_cluster::takeover::OwnerLog;
use hakken_engine::store::{log_batch, ReplicaAppend, Replicated, Replicator};

use super::Owners;

/// One event's section keys: `first..end`.
struct EventKeys {
    first: u32,
    end: u32,
    event: String,
}

pub struct LogReplicator {
    runtime: tokio::runtime::Handle,
    /// Set once the registry is built (before any section writes).
    events: OnceLock<(Arc<Owners>, Vec<EventKeys>)>,
    /// The terms this node holds: an event is owned here while it has one.
    terms: Mutex<HashMap<String, Arc<tokio::sync::Mutex<OwnerLog>>>>,
}

impl LogReplicator {
    pub fn new(runtime: tokio::runtime::Handle) -> LogReplicator {
        LogReplicator { runtime, events: OnceLock::new(), terms: Mutex::new(HashMap::new()) }
    }

    /// The events and which section keys each has: `(event, first key, sections)`.
    pub fn set_events(&self, owners: Arc<Owners>, keys: impl IntoIterator<Item = (String, u32, u32)>) {
        let keys = keys.into_iter().map(|(event, first, count)| EventKeys { first, end: first + count, event });
        let _ = self.events.set((owners, keys.collect()));
    }

    /// This node's term of `event` begins: its appends go to the log from now on.
    pub fn begin_term(&self, event: &str, term: OwnerLog) {
        self.terms.lock().expect("terms lock").insert(event.to_string(), Arc::new(tokio::sync::Mutex::new(term)));
    }

    /// The term ends (stepped down): nothing more of `event` is taken.
    pub fn end_term(&self, event: &str) {
        self.terms.lock().expect("terms lock").remove(event);
    }

    fn event_of(&self, section: u32) -> Option<&str> {
        let (_, keys) = self.events.get()?;
        keys.iter().find(|keys| (keys.first..keys.end).contains(&section)).map(|keys| keys.event.as_str())
    }

    /// An append of this term was not taken: the term ends and the node is told.
    fn lose(&self, event: &str) {
        self.end_term(event);
        if let Some(ownership) = self.events.get().and_then(|(owners, _)| owners.get(event)) {
            ownership.lost.notify_one();
        }
    }
}

impl Replicator for LogReplicator {
    fn replicate(&self, appends: &[ReplicaAppend<'_>]) -> Replicated {
        let mut refused: Vec<Option<String>> = vec![None; appends.len()];
        // Each event's appends, in the order the writer got them.
        let mut by_event: Vec<(&str, Vec<usize>)> = Vec::new();
        for (index, append) in appends.iter().enumerate() {
            let Some(event) = self.event_of(append.section) else {
                refused[index] = Some(format!("section {} belongs to no event of this node", append.section));
                continue;
            };
            match by_event.iter_mut().find(|(known, _)| *known == event) {
                Some((_, indexes)) => indexes.push(index),
                None => by_event.push((event, vec![index])),
            }
        }
        let mut sends = Vec::new();
        {
            let terms = self.terms.lock().expect("terms lock");
            for (event, indexes) in &by_event {
                let Some(term) = terms.get(*event).cloned() else {
                    for index in indexes {
                        refused[*index] = Some(format!("this node does not own event {event}"));
                    }
                    continue;
                };
                let parts: Vec<&ReplicaAppend<'_>> = indexes.iter().map(|index| &appends[*index]).collect();
                let payload = Bytes::from(log_batch(&parts));
                sends.push((*event, indexes, async move { term.lock().await.append(payload).await }));
            }
        }
        let (events, futures): (Vec<_>, Vec<_>) =
            sends.into_iter().map(|(event, indexes, future)| ((event, indexes), future)).unzip();
        let results = self.runtime.block_on(futures_util::future::join_all(futures));
        let mut positions = Vec::new();
        for ((event, indexes), result) in events.into_iter().zip(results) {
            match result {
                Ok(sequence) => positions.push((event.to_string(), sequence)),
                Err(error) => {
                    tracing::warn!(%event, %error, "cluster: the log did not take an append; stepping down from the event");
                    self.lose(event);
                    for index in indexes {
                        refused[*index] = Some(error.to_string());
                    }
                }
            }
        }
        Replicated { refused, positions }
    }

    fn owns(&self, section: u32) -> bool {
        self.event_of(section).is_some_and(|event| self.terms.lock().expect("terms lock").contains_key(event))
    }
}
