//! A new owner's first steps, and the owner's appends after them.
//!
//! [`fence`]: append an epoch marker naming the log's end, then read the log after what
//! this node applied up to the marker. If the old owner appended in between (an append
//! it sent before its hold lapsed), the marker is refused and names the new end at the
//! next try. Once the marker is in, the old owner's next append is refused, and every
//! message it appended before (all it may have acknowledged) is in what this node read.
//!
//! [`OwnerLog`]: the chain of appends of one term. Each names the one before. The owner
//! checks its lease ([`crate::leases::Keeper::role`]) before each append, so a deposed
//! owner stops by itself once its hold lapses; the fence stops the appends it had already
//! checked for when it was paused or cut off. An append
//! whose answer was lost is sent again, same message id, same expected sequence (stored
//! once, whichever try landed). If every try went unanswered, the log is uncertain: the
//! next append first reads what the log holds after the last known message: its own
//! term's message (stored after all, never acknowledged: harmless, as a local write
//! whose fsync answer was lost) moves the chain on; another term's means this node was
//! fenced out. (A try that lands after that read makes the next append look fenced: a
//! needless step-down, never a lost or doubled write.)

use bytes::Bytes;

use crate::jetstream::ClusterError;
use crate::log::{message_id, AppendError, EntryKind, EventLog, LogEntry};

/// Waits between the tries of one append that got no answer: a NATS server that died
/// takes its clients a moment to reconnect, and the stream a few seconds to elect a new
/// leader; until then a publish fails at once ("no responders"). About 3 s in all,
/// then it is reported unanswered (the owner steps down).
const APPEND_BACKOFF_MS: [u64; 7] = [10, 40, 100, 250, 500, 800, 1300];
/// No new try once this long has passed since the first.
const APPEND_PATIENCE: std::time::Duration = std::time::Duration::from_secs(3);

/// Markers a new owner tries before it gives up for this tick (each refusal means the
/// old owner appended again; it stops within its own lease's margin).
const FENCE_TRIES: usize = 16;

/// What a takeover read: the messages after the applied ones (to apply, in order) and
/// the sequence of this term's epoch marker.
#[derive(Debug)]
pub struct Fenced {
    pub entries: Vec<LogEntry>,
    pub marker: u64,
}

/// Fences the earlier owner out of `event`'s log and catches up on it after `applied`
/// (see the module comment). The marker names the log's end as just read (one cheap
/// read, so an old owner still appending rarely slips in between; when it does, the
/// next try names the new end). Then every message before the marker is read: nothing
/// can join them once the marker is in. The marker's payload is `node`, for the
/// people reading the log.
pub async fn fence(log: &EventLog, event: &str, node: &str, epoch: u64, applied: u64) -> Result<Fenced, ClusterError> {
    let id = message_id(event, epoch, 0);
    let mut marker = None;
    for _ in 0..FENCE_TRIES {
        let last = log.last_sequence(event).await?;
        match log.append(event, epoch, last, &id, EntryKind::Epoch, Bytes::from(node.to_string())).await {
            Ok(sequence) => {
                marker = Some(sequence);
                break;
            }
            Err(AppendError::Fenced) => continue,
            Err(AppendError::Unavailable(message)) => return Err(ClusterError::Unavailable(message)),
        }
    }
    let Some(marker) = marker else {
        return Err(ClusterError::Unavailable(format!("the log moved on through {FENCE_TRIES} markers")));
    };
    let mut entries = log.read_after(event, applied).await?;
    entries.retain(|entry| entry.sequence < marker);
    if let Some(newer) = entries.iter().find(|entry| entry.epoch >= epoch) {
        // A term as late as this one began before it: this node's lease was stale. Its
        // marker is in the log after that term's messages; that term's owner is fenced
        // by it, and this node's keeper learns at its next renewal that it lost.
        let message = format!("the log has epoch {} before this term's {epoch} marker", newer.epoch);
        return Err(ClusterError::Unavailable(message));
    }
    Ok(Fenced { entries, marker })
}

/// The appends of one ownership term.
pub struct OwnerLog {
    log: EventLog,
    event: String,
    epoch: u64,
    /// The last message of the chain this node knows.
    last: u64,
    /// Appends made in this term (the marker is the 0th): the next message id.
    number: u64,
    /// The last append's answer was lost: it may or may not be stored.
    uncertain: bool,
}

impl OwnerLog {
    /// The term that [`fence`] began.
    pub fn after(log: &EventLog, event: &str, epoch: u64, fenced: &Fenced) -> OwnerLog {
        OwnerLog { log: log.clone(), event: event.to_string(), epoch, last: fenced.marker, number: 1, uncertain: false }
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The last message of the chain this node knows.
    pub fn last(&self) -> u64 {
        self.last
    }

    /// Appends one group commit; its sequence once a quorum stored it. `Fenced`: this
    /// node lost the event (acknowledge nothing of this batch, step down).
    pub async fn append(&mut self, batch: Bytes) -> Result<u64, AppendError> {
        if self.uncertain {
            self.resolve().await?;
        }
        let id = message_id(&self.event, self.epoch, self.number);
        let mut unanswered = String::new();
        let started = std::time::Instant::now();
        for backoff_ms in APPEND_BACKOFF_MS.iter().copied().chain([0]) {
            match self.log.append(&self.event, self.epoch, self.last, &id, EntryKind::Batch, batch.clone()).await {
                Ok(sequence) => {
                    self.last = sequence;
                    self.number += 1;
                    return Ok(sequence);
                }
                Err(AppendError::Unavailable(message)) => unanswered = message,
                Err(AppendError::Fenced) => return Err(AppendError::Fenced),
            }
            // Tries that each waited out a timeout have used the patience up.
            if backoff_ms == 0 || started.elapsed() >= APPEND_PATIENCE {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(backoff_ms)).await;
        }
        self.uncertain = true;
        self.number += 1;
        Err(AppendError::Unavailable(unanswered))
    }

    /// After a lost answer: what follows the last known message decides.
    async fn resolve(&mut self) -> Result<(), AppendError> {
        let tail = self
            .log
            .read_after(&self.event, self.last)
            .await
            .map_err(|error| AppendError::Unavailable(error.to_string()))?;
        for entry in tail {
            if entry.epoch != self.epoch {
                return Err(AppendError::Fenced);
            }
            self.last = entry.sequence;
        }
        self.uncertain = false;
        Ok(())
    }
}
