//! The lease bucket's I/O, and [`Keeper`]: one node's hold on one event's lease,
//! ticked by its caller (every [`Keeper::next_tick_in`]). The rules are
//! [`crate::lease`]'s; this module reads the key, writes by compare-and-set on the
//! revision it read, and keeps the times on the node's own monotonic clock.

use std::time::{Duration, Instant};

use async_nats::jetstream::kv::{CreateErrorKind, Operation, UpdateErrorKind};
use bytes::Bytes;

use crate::jetstream::{subject_token, ClusterError, JetStream};
use crate::lease::{held_until_ms, next_step, Lease, Observed, Step};
use crate::metrics::{LEASE_WRITES_TOTAL, TAKEOVERS_TOTAL};

/// The lease bucket.
#[derive(Clone)]
pub struct Leases {
    jetstream: JetStream,
}

impl Leases {
    pub fn new(jetstream: &JetStream) -> Leases {
        Leases { jetstream: jetstream.clone() }
    }

    /// The event's lease key: its revision (0: no key yet) and value.
    pub async fn read(&self, event: &str) -> Result<(u64, Option<Lease>), ClusterError> {
        let key = subject_token(event)?;
        let entry =
            self.jetstream.leases.entry(key).await.map_err(|error| ClusterError::Unavailable(error.to_string()))?;
        match entry {
            None => Ok((0, None)),
            // Never written by hakken (it releases by writing), but a purge by hand is possible.
            Some(entry) if entry.operation != Operation::Put => Ok((entry.revision, None)),
            Some(entry) => {
                let lease = serde_json::from_slice(&entry.value)
                    .map_err(|_| ClusterError::Damaged(format!("the lease of event {event:?} is not a lease")))?;
                Ok((entry.revision, Some(lease)))
            }
        }
    }

    /// Writes `lease` if the key is still at `revision` (0: if there is no key); the new
    /// revision, or `None` if another write came first.
    pub async fn write(&self, event: &str, revision: u64, lease: &Lease) -> Result<Option<u64>, ClusterError> {
        let key = subject_token(event)?;
        let value = Bytes::from(serde_json::to_vec(lease).expect("a lease serializes"));
        let unavailable = |error: &dyn std::fmt::Display| ClusterError::Unavailable(error.to_string());
        if revision == 0 {
            return match self.jetstream.leases.create(key, value).await {
                Ok(revision) => Ok(Some(revision)),
                Err(error) if error.kind() == CreateErrorKind::AlreadyExists => Ok(None),
                Err(error) => Err(unavailable(&error)),
            };
        }
        match self.jetstream.leases.update(key, value, revision).await {
            Ok(revision) => Ok(Some(revision)),
            Err(error) if error.kind() == UpdateErrorKind::WrongLastRevision => Ok(None),
            Err(error) => Err(unavailable(&error)),
        }
    }
}

/// What a node is for an event, as of its keeper's last tick.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// It holds the lease with `epoch`, and may act until `until_ms` on the keeper's
    /// clock unless a renewal moves that on. `took_over`: the term began at the last
    /// tick (the new owner must catch up and fence before it acts: [`crate::takeover`]).
    Owner { epoch: u64, until_ms: u64, took_over: bool },
    /// Another node holds it (`None`: nobody yet, released, or not known: NATS did
    /// not answer).
    /// `address`: where the holder serves it, as its lease says.
    Standby { holder: Option<String>, epoch: u64, address: Option<String> },
}

/// The lease this node holds: the revision its last write made.
#[derive(Clone, Copy, Debug)]
struct Held {
    revision: u64,
    epoch: u64,
    until_ms: u64,
}

/// One node's hold on one event's lease.
pub struct Keeper {
    leases: Leases,
    node: String,
    event: String,
    ttl_ms: u64,
    clock: Instant,
    observed: Option<Observed>,
    held: Option<Held>,
    /// Written into the leases this node takes and renews.
    address: Option<String>,
}

impl Keeper {
    pub fn new(leases: Leases, node: &str, event: &str, ttl: Duration) -> Keeper {
        Keeper {
            leases,
            node: node.to_string(),
            event: event.to_string(),
            ttl_ms: ttl.as_millis() as u64,
            clock: Instant::now(),
            observed: None,
            held: None,
            address: None,
        }
    }

    /// Leases this node holds name `address` (its HTTP base URL) for others to redirect to.
    pub fn advertising(mut self, address: &str) -> Keeper {
        self.address = Some(address.to_string());
        self
    }

    fn now_ms(&self) -> u64 {
        self.clock.elapsed().as_millis() as u64
    }

    /// How long until the next tick: a holder renews three times a ttl (one lost
    /// renewal leaves two more before its hold ends); a standby reads six times, so it
    /// notices a dead holder within a sixth of a ttl of the earliest takeover.
    pub fn next_tick_in(&self) -> Duration {
        let divisor = if self.held.is_some() { 3 } else { 6 };
        Duration::from_millis((self.ttl_ms / divisor).max(1))
    }

    /// The role as of the last tick (a hold that ran out since counts as lost).
    pub fn role(&self) -> Role {
        match self.held {
            Some(held) if self.now_ms() < held.until_ms => {
                Role::Owner { epoch: held.epoch, until_ms: held.until_ms, took_over: false }
            }
            // What was read before this node took the lease is stale: the holder is not
            // known until the key is read again (naming the one before would send
            // requests back to a node that redirects them here).
            Some(held) => Role::Standby { holder: None, epoch: held.epoch, address: None },
            None => self.standby(),
        }
    }

    fn standby(&self) -> Role {
        let lease = self.observed.as_ref().and_then(|observed| observed.lease.clone());
        let holder = lease.as_ref().and_then(|lease| lease.holder.clone()).filter(|holder| *holder != self.node);
        let address = lease.as_ref().filter(|_| holder.is_some()).and_then(|lease| lease.address.clone());
        Role::Standby { holder, epoch: lease.map_or(0, |lease| lease.epoch), address }
    }

    /// Renews the lease it holds, or reads the key and takes it if the rules say so.
    pub async fn tick(&mut self) -> Role {
        if let Some(held) = self.held {
            return self.renew(held).await;
        }
        let Some(observed) = self.observe().await else { return self.standby() };
        let step = next_step(&self.node, &observed, self.now_ms(), self.ttl_ms);
        let (revision, mut lease) = match step {
            Step::Wait { .. } => return self.standby(),
            Step::Take { revision, lease } => (revision, lease),
            // The bucket names this node but it holds nothing: it restarted (or stepped
            // down). It has lost what it knew, so it begins a new term as any new owner does.
            Step::Renew { revision, lease } => (revision, Lease { epoch: lease.epoch + 1, ..lease }),
        };
        lease.address.clone_from(&self.address);
        let sent_ms = self.now_ms();
        match self.leases.write(&self.event, revision, &lease).await {
            Ok(Some(revision)) => {
                metrics::counter!(LEASE_WRITES_TOTAL, "outcome" => "taken").increment(1);
                if lease.epoch > 1 {
                    metrics::counter!(TAKEOVERS_TOTAL).increment(1);
                }
                let until_ms = held_until_ms(sent_ms, self.ttl_ms);
                self.held = Some(Held { revision, epoch: lease.epoch, until_ms });
                // What this node knows of the key is now its own write.
                self.observed = Some(Observed::first_read(revision, Some(lease.clone()), self.now_ms()));
                tracing::info!(event = %self.event, epoch = lease.epoch, "cluster: took the event's lease");
                Role::Owner { epoch: lease.epoch, until_ms, took_over: true }
            }
            Ok(None) => {
                metrics::counter!(LEASE_WRITES_TOTAL, "outcome" => "lost").increment(1);
                self.standby()
            }
            Err(error) => {
                metrics::counter!(LEASE_WRITES_TOTAL, "outcome" => "error").increment(1);
                tracing::warn!(event = %self.event, %error, "cluster: taking the lease did not get an answer");
                self.standby()
            }
        }
    }

    /// Reads the key and updates what this node knows of it (`None`: NATS did not answer).
    async fn observe(&mut self) -> Option<Observed> {
        let now_ms = self.now_ms();
        let (revision, lease) = match self.leases.read(&self.event).await {
            Ok(read) => read,
            Err(error) => {
                tracing::warn!(event = %self.event, %error, "cluster: the lease could not be read");
                return None;
            }
        };
        let observed = match &self.observed {
            Some(observed) => observed.update(revision, lease, now_ms),
            None => Observed::first_read(revision, lease, now_ms),
        };
        self.observed = Some(observed.clone());
        Some(observed)
    }

    async fn renew(&mut self, held: Held) -> Role {
        let sent_ms = self.now_ms();
        // A hold that ran out ended its term (the node stepped down when the role said
        // so): kept again, it is a new term with a new epoch, so that nothing of the new
        // term can be taken for the old one's (the log's message ids name the epoch).
        let lapsed = sent_ms >= held.until_ms;
        let epoch = if lapsed { held.epoch + 1 } else { held.epoch };
        let lease = Lease { holder: Some(self.node.clone()), epoch, address: self.address.clone() };
        match self.leases.write(&self.event, held.revision, &lease).await {
            Ok(Some(revision)) => {
                let outcome = if lapsed { "taken" } else { "renewed" };
                metrics::counter!(LEASE_WRITES_TOTAL, "outcome" => outcome).increment(1);
                let until_ms = held_until_ms(sent_ms, self.ttl_ms);
                self.held = Some(Held { revision, epoch, until_ms });
                self.observed = Some(Observed::first_read(revision, Some(lease), self.now_ms()));
                if lapsed {
                    tracing::info!(event = %self.event, epoch, "cluster: took the event's lease again after it ran out");
                    return Role::Owner { epoch, until_ms, took_over: true };
                }
            }
            Ok(None) => {
                metrics::counter!(LEASE_WRITES_TOTAL, "outcome" => "lost").increment(1);
                tracing::warn!(event = %self.event, epoch = held.epoch, "cluster: the lease was taken over");
                self.held = None;
                self.observe().await;
            }
            Err(error) => {
                // Still held until `until_ms`; the next tick tries again.
                metrics::counter!(LEASE_WRITES_TOTAL, "outcome" => "error").increment(1);
                tracing::warn!(event = %self.event, %error, "cluster: renewing the lease did not get an answer");
            }
        }
        self.role()
    }

    /// Stops holding the lease without writing (the log fenced this node out: another
    /// owner holds the event whatever the bucket said at the last tick).
    pub fn step_down(&mut self) {
        self.held = None;
    }

    /// Gives the lease up (a clean shutdown, a handover): another node takes it at its
    /// next tick instead of a whole ttl later. The epoch stays for the next holder to raise.
    pub async fn release(&mut self) -> Result<(), ClusterError> {
        let Some(held) = self.held.take() else { return Ok(()) };
        let released = Lease { holder: None, epoch: held.epoch, address: None };
        if self.leases.write(&self.event, held.revision, &released).await?.is_some() {
            metrics::counter!(LEASE_WRITES_TOTAL, "outcome" => "released").increment(1);
        }
        Ok(())
    }
}
