//! Who owns an event: the decision a node makes from the lease it last read. Pure (no
//! I/O, no clock of its own): [`crate::leases`] reads and writes the KV bucket and
//! passes the times in, so the rules are tested without a server.
//!
//! A lease is a key per event in a replicated JetStream KV bucket. Its value names the
//! holder and the epoch (one per ownership term); its revision is what a write must
//! name to replace it (compare-and-set), so of two nodes racing for a key exactly one
//! wins.
//!
//! **No clocks are compared across nodes.** A lease carries no expiry time: a node that
//! is not the holder measures, on its own monotonic clock, how long the key has kept the
//! revision it saw first. The holder writes a new revision every `ttl / 3`, so a key
//! unchanged for a whole `ttl` means the holder is dead, paused or cut off, and the
//! observer may take it over (by CAS on that revision, with the next epoch). Clock
//! drift between nodes does not matter; only each clock's rate does.
//!
//! A lease alone does not stop a deposed holder that has not noticed yet (paused past
//! its ttl, then resumed) from acting. The log does ([`crate::log`]): a new owner's
//! first append names the log's last sequence it read, so the deposed holder's next
//! append names a stale one and is refused.

use serde::{Deserialize, Serialize};

/// A lease's value in the bucket (JSON, so `nats kv get` shows it as it is).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The node that holds it; `None` once released (the epoch stays, so the next
    /// holder's epoch is still higher than every earlier one).
    pub holder: Option<String>,
    /// Ownership terms so far: each new holder takes `epoch + 1`.
    pub epoch: u64,
    /// Where the holder serves the event's requests (its HTTP base URL): other nodes
    /// redirect there. Not part of the rules; absent in leases of older nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// What a node knows of one event's lease key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    /// The key's revision (0: the key does not exist yet).
    pub revision: u64,
    /// Its value (`None` when the key does not exist).
    pub lease: Option<Lease>,
    /// When this node first read this revision, on its own monotonic clock (ms).
    pub first_seen_ms: u64,
}

impl Observed {
    /// The key as first read at `now_ms` (revision 0 and no lease: it does not exist).
    /// A node has no view before a read, so it never takes over before one.
    pub fn first_read(revision: u64, lease: Option<Lease>, now_ms: u64) -> Observed {
        Observed { revision, lease, first_seen_ms: now_ms }
    }

    /// The key as read at `now_ms`. A revision seen before keeps the time it was first
    /// seen: that is what the takeover waits on.
    pub fn update(&self, revision: u64, lease: Option<Lease>, now_ms: u64) -> Observed {
        if revision == self.revision {
            return Observed { revision, lease, first_seen_ms: self.first_seen_ms };
        }
        Observed { revision, lease, first_seen_ms: now_ms }
    }
}

/// What the node should do about the lease now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Write `lease` over `revision` (0: create the key): this node takes the event.
    Take { revision: u64, lease: Lease },
    /// This node holds the lease: write it again over `revision` (same epoch).
    Renew { revision: u64, lease: Lease },
    /// Another node holds it; it may be taken over at `until_ms` if the key is still
    /// at this revision then.
    Wait { holder: String, epoch: u64, until_ms: u64 },
}

/// The step for node `me`, given what it observed of the key at `now_ms`.
pub fn next_step(me: &str, observed: &Observed, now_ms: u64, ttl_ms: u64) -> Step {
    let Some(lease) = &observed.lease else {
        // No key yet (revision 0): the first holder has epoch 1.
        return Step::Take {
            revision: observed.revision,
            lease: Lease { holder: Some(me.to_string()), epoch: 1, address: None },
        };
    };
    let taken = Lease { holder: Some(me.to_string()), epoch: lease.epoch + 1, address: None };
    match lease.holder.as_deref() {
        Some(holder) if holder == me => Step::Renew { revision: observed.revision, lease: lease.clone() },
        Some(holder) => {
            let until_ms = observed.first_seen_ms.saturating_add(ttl_ms);
            if now_ms >= until_ms {
                Step::Take { revision: observed.revision, lease: taken }
            } else {
                Step::Wait { holder: holder.to_string(), epoch: lease.epoch, until_ms }
            }
        }
        None => Step::Take { revision: observed.revision, lease: taken },
    }
}

/// How long a holder may still act on a lease it last wrote at `written_at_ms` (the
/// time it sent the write, before the answer): an observer waits a whole `ttl` from
/// after the write, so the holder stops a margin before that.
pub fn held_until_ms(written_at_ms: u64, ttl_ms: u64) -> u64 {
    written_at_ms.saturating_add(ttl_ms - ttl_ms / 5)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: u64 = 3_000;

    fn held_by(holder: &str, epoch: u64, revision: u64, first_seen_ms: u64) -> Observed {
        Observed { revision, lease: Some(Lease { holder: Some(holder.into()), epoch, address: None }), first_seen_ms }
    }

    #[test]
    fn the_first_node_creates_the_key_with_epoch_one() {
        let absent = Observed::first_read(0, None, 10);
        let step = next_step("a", &absent, 10, TTL);
        assert_eq!(
            step,
            Step::Take { revision: 0, lease: Lease { holder: Some("a".into()), epoch: 1, address: None } }
        );
    }

    #[test]
    fn the_holder_renews_with_the_same_epoch() {
        let observed = held_by("a", 4, 17, 0);
        let step = next_step("a", &observed, 100_000, TTL);
        assert_eq!(
            step,
            Step::Renew { revision: 17, lease: Lease { holder: Some("a".into()), epoch: 4, address: None } }
        );
    }

    #[test]
    fn another_node_waits_a_whole_ttl_from_when_it_first_saw_the_revision() {
        let observed = held_by("a", 4, 17, 1_000);
        assert_eq!(next_step("b", &observed, 3_999, TTL), Step::Wait { holder: "a".into(), epoch: 4, until_ms: 4_000 });
        let step = next_step("b", &observed, 4_000, TTL);
        assert_eq!(
            step,
            Step::Take { revision: 17, lease: Lease { holder: Some("b".into()), epoch: 5, address: None } }
        );
    }

    #[test]
    fn a_renewal_restarts_the_wait_and_a_repeated_read_does_not() {
        let seen = Observed::first_read(17, held_by("a", 4, 17, 0).lease, 1_000);
        let again = seen.update(17, seen.lease.clone(), 3_500);
        assert_eq!(again.first_seen_ms, 1_000, "the same revision keeps its first sight");
        let renewed = again.update(18, again.lease.clone(), 3_600);
        assert_eq!(renewed.first_seen_ms, 3_600);
        assert!(matches!(next_step("b", &renewed, 4_500, TTL), Step::Wait { until_ms: 6_600, .. }));
    }

    #[test]
    fn a_node_never_takes_over_before_its_first_read() {
        // Until a read, a node has no revision to wait on; the first read starts the wait.
        let first = Observed::first_read(17, held_by("a", 4, 17, 0).lease, 50_000);
        assert!(matches!(next_step("b", &first, 50_000, TTL), Step::Wait { .. }));
    }

    #[test]
    fn a_released_lease_is_taken_at_once_with_a_higher_epoch() {
        let released =
            Observed { revision: 30, lease: Some(Lease { holder: None, epoch: 7, address: None }), first_seen_ms: 5 };
        let step = next_step("b", &released, 5, TTL);
        assert_eq!(
            step,
            Step::Take { revision: 30, lease: Lease { holder: Some("b".into()), epoch: 8, address: None } }
        );
    }

    #[test]
    fn the_holder_stops_acting_before_any_observer_may_take_over() {
        // An observer that read the write at once may take over at written + ttl.
        assert!(held_until_ms(1_000, TTL) < 1_000 + TTL);
        assert_eq!(held_until_ms(1_000, TTL), 3_400);
    }
}
