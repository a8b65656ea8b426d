//! Cluster mode's hook in the writer: a group's appends go to each event's replicated
//! log before they go to RocksDB, and only what the log took is written and
//! acknowledged.
//!
//! The engine knows no cluster: the API implements [`Replicator`] on NATS JetStream
//! (`api/src/cluster/`). Once per group that has appends, the writer hands them all to
//! [`Replicator::replicate`] and blocks until it answers (the log's quorum ack takes the
//! place of the local fsync as the point a change is durable). An append the log did
//! not take (this node does not own the event, the log fenced it out, no quorum
//! answered) is completed with [`StorageError::NotReplicated`] and never written here,
//! so this store holds, for each event, a prefix of its log: its own appends and the
//! ones a standby applied ([`WalHandle::apply_replicated`]), with the position of the last
//! one in `meta` ([`wal::cluster_position_key`]) in the same batch. Snapshots are
//! written only while the section's event is in a term here ([`Replicator::owns`]): once
//! an append was refused, the sections' memory is ahead of the log until they are rebuilt.

use super::writer::Appended;
use crate::wal::{self, LogAppend, LogBatch};

/// One section's append, as the writer queued it.
pub struct ReplicaAppend<'a> {
    pub section: u32,
    pub first_seq: u64,
    pub records: &'a [Vec<u8>],
    pub with: &'a Appended,
}

/// What the log took of a group's appends.
pub struct Replicated {
    /// By append, in the order given: `None` taken, `Some(why)` not.
    pub refused: Vec<Option<String>>,
    /// Each event whose appends were taken, and the log position of its message.
    pub positions: Vec<(String, u64)>,
}

/// Where the appends of owned events are made durable first (cluster mode).
pub trait Replicator: Send + Sync {
    /// Appends each event's share of `appends` (one log message per event) and says
    /// what was taken. Called on the writer thread; it blocks it.
    fn replicate(&self, appends: &[ReplicaAppend<'_>]) -> Replicated;

    /// Whether `section`'s event is in a term of this node now. A snapshot of a
    /// section that is not is dropped: it may hold changes the log refused.
    fn owns(&self, section: u32) -> bool;
}

/// The log message of one event's appends in a group.
pub fn log_batch(appends: &[&ReplicaAppend<'_>]) -> Vec<u8> {
    let batch = LogBatch {
        appends: appends
            .iter()
            .map(|append| LogAppend {
                section: append.section,
                first_seq: append.first_seq,
                records: append.records.to_vec(),
                audit: append.with.audit.clone(),
                answer: append.with.answer.as_ref().map(|answer| (answer.key.clone(), answer.framed.clone())),
            })
            .collect(),
    };
    let framed = wal::encode(&batch);
    wal::debug_assert_round_trip(&batch, &framed);
    framed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::FramedAnswer;
    use crate::wal::{IdempotentAnswer, LogBatch};

    #[test]
    fn a_log_batch_carries_records_audit_and_answer_of_each_append() {
        let answer = IdempotentAnswer { expires_at_ms: 9, fingerprint: 3, status: 201, body: b"{}".to_vec() };
        let with = Appended { answer: Some(FramedAnswer::new(b"k".to_vec(), &answer)), ..Appended::default() };
        let records = vec![vec![1, 2], vec![3]];
        let append = ReplicaAppend { section: 4, first_seq: 7, records: &records, with: &with };
        let plain = Appended::default();
        let other = ReplicaAppend { section: 5, first_seq: 1, records: &records[..1], with: &plain };
        let batch: LogBatch = wal::decode(&log_batch(&[&append, &other])).unwrap();
        assert_eq!(batch.appends.len(), 2);
        assert_eq!((batch.appends[0].section, batch.appends[0].first_seq), (4, 7));
        assert_eq!(batch.appends[0].records, records);
        let (key, framed) = batch.appends[0].answer.clone().unwrap();
        assert_eq!((key, wal::decode::<IdempotentAnswer>(&framed).unwrap()), (b"k".to_vec(), answer));
        assert_eq!((batch.appends[1].records.len(), batch.appends[1].answer.is_none()), (1, true));
    }
}
