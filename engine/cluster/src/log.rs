//! An event's replicated log: one subject of the `HAKKEN_LOG` stream per event, each
//! message a group commit of the event's WAL records (opaque bytes here) or an epoch
//! marker a new owner writes first.
//!
//! **Fencing.** Every append names the stream sequence of the last message it knows on
//! the event's subject (`Nats-Expected-Last-Subject-Sequence`); JetStream stores it only
//! if that is still the last one, else it answers "wrong last sequence" and stores
//! nothing. An owner appends one message at a time, each naming the one before, so the
//! log is a chain. A new owner appends its epoch marker naming the chain's end, then
//! reads everything before it ([`crate::takeover`]): from then on, a deposed owner's
//! append names a stale sequence and is refused ([`AppendError::Fenced`]), so it can
//! never acknowledge a client again, and all it was acknowledged is in what the new
//! owner read.
//!
//! **Retries.** Each append carries a `Nats-Msg-Id` made of the event, the epoch and
//! the append's number in it: an append retried after a lost answer (within the
//! stream's duplicate window) is answered with the first one's sequence, not stored twice.

use std::time::Instant;

use async_nats::jetstream::consumer::{pull, DeliverPolicy};
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::LastRawMessageErrorKind;
use async_nats::HeaderMap;
use bytes::Bytes;
use futures_util::StreamExt;

use crate::jetstream::{subject_token, ClusterError, JetStream};
use crate::metrics::{APPENDS_TOTAL, APPEND_SECONDS};

const KIND: &str = "Hakken-Kind";
const EPOCH: &str = "Hakken-Epoch";
/// A read of a log's tail waits this long for its follower's next message before it
/// fetches the rest one by one.
const FOLLOW_STALL: std::time::Duration = std::time::Duration::from_secs(1);
/// A follower quiet this long asks whether the log has grown past it. The client finds
/// a consumer lost with its server only after two missed 15 s heartbeats, a minute in
/// which a standby would fall behind unseen.
const FOLLOWER_QUIET: std::time::Duration = std::time::Duration::from_secs(2);

/// What a log message holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A group commit of the event's WAL records.
    Batch,
    /// A new owner's first message: the epoch it took the event with.
    Epoch,
}

impl EntryKind {
    fn as_str(self) -> &'static str {
        match self {
            EntryKind::Batch => "batch",
            EntryKind::Epoch => "epoch",
        }
    }

    fn parse(text: &str) -> Option<EntryKind> {
        match text {
            "batch" => Some(EntryKind::Batch),
            "epoch" => Some(EntryKind::Epoch),
            _ => None,
        }
    }
}

/// One message of an event's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    /// Its stream sequence (what the next append names).
    pub sequence: u64,
    /// The epoch of the owner that appended it.
    pub epoch: u64,
    pub kind: EntryKind,
    pub payload: Bytes,
}

/// Why an append was not acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// Another owner appended after the sequence this one named: this node lost the
    /// event and must acknowledge nothing more (step down, follow as a standby).
    #[error("the log moved past the named sequence: another owner holds the event")]
    Fenced,
    /// No quorum answered in time (or the connection is down). Whether it was stored is
    /// unknown: retry with the same message id, or read the log.
    #[error("the append was not acknowledged: {0}")]
    Unavailable(String),
}

/// The log of every event, on the stream.
#[derive(Clone)]
pub struct EventLog {
    jetstream: JetStream,
}

/// An event's log subject.
pub fn subject(event: &str) -> Result<String, ClusterError> {
    Ok(format!("hakken.log.{}", subject_token(event)?))
}

/// The message id of the `number`th append of `epoch` to `event`'s log.
pub fn message_id(event: &str, epoch: u64, number: u64) -> String {
    format!("{event}:{epoch}:{number}")
}

impl EventLog {
    pub fn new(jetstream: &JetStream) -> EventLog {
        EventLog { jetstream: jetstream.clone() }
    }

    /// Appends `payload` after the message at `expected_last` (0: the log is empty);
    /// answers the new message's sequence once a quorum stored it.
    pub async fn append(
        &self,
        event: &str,
        epoch: u64,
        expected_last: u64,
        message_id: &str,
        kind: EntryKind,
        payload: Bytes,
    ) -> Result<u64, AppendError> {
        let subject = subject(event).map_err(|error| AppendError::Unavailable(error.to_string()))?;
        let started = Instant::now();
        let message = PublishMessage::build()
            .payload(payload)
            .expected_last_subject_sequence(expected_last)
            .message_id(message_id)
            .header(KIND, kind.as_str())
            .header(EPOCH, epoch.to_string().as_str());
        let answer = match self.jetstream.context.send_publish(subject, message).await {
            Ok(ack) => ack.await,
            Err(error) => Err(error),
        };
        let outcome = match &answer {
            Ok(_) => "ok",
            Err(error) if error.kind() == PublishErrorKind::WrongLastSequence => "fenced",
            Err(_) => "unavailable",
        };
        metrics::counter!(APPENDS_TOTAL, "outcome" => outcome).increment(1);
        metrics::histogram!(APPEND_SECONDS).record(started.elapsed().as_secs_f64());
        match answer {
            // The id names a message at or before the one this append follows: not this
            // append's retry but an earlier message's id reused. Nothing was stored.
            Ok(ack) if ack.duplicate && ack.sequence <= expected_last => Err(AppendError::Fenced),
            Ok(ack) => Ok(ack.sequence),
            Err(error) if error.kind() == PublishErrorKind::WrongLastSequence => Err(AppendError::Fenced),
            Err(error) => Err(AppendError::Unavailable(error.to_string())),
        }
    }

    /// The sequence of the event's last message (0: none yet).
    pub async fn last_sequence(&self, event: &str) -> Result<u64, ClusterError> {
        let subject = subject(event)?;
        match self.jetstream.log.get_last_raw_message_by_subject(&subject).await {
            Ok(message) => Ok(message.sequence),
            Err(error) if matches!(error.kind(), LastRawMessageErrorKind::NoMessageFound) => Ok(0),
            Err(error) => Err(ClusterError::Unavailable(error.to_string())),
        }
    }

    /// The server leading the log's Raft group now (`n0`...; what a failover replaces).
    pub async fn leader(&self) -> Result<String, ClusterError> {
        let info = self.jetstream.log.get_info().await.map_err(|error| ClusterError::Unavailable(error.to_string()))?;
        info.cluster.and_then(|cluster| cluster.leader).ok_or_else(|| ClusterError::Unavailable("no leader".into()))
    }

    /// Whether every replica of the log is online and caught up with its leader.
    pub async fn replicas_current(&self) -> Result<bool, ClusterError> {
        let info = self.jetstream.log.get_info().await.map_err(|error| ClusterError::Unavailable(error.to_string()))?;
        let replicas = info.cluster.map(|cluster| cluster.replicas).unwrap_or_default();
        Ok(replicas.iter().all(|peer| peer.current && !peer.offline))
    }

    /// Follows the event's log from after `after` (a standby's applied position).
    pub fn follow(&self, event: &str, after: u64) -> Result<Follower, ClusterError> {
        subject_token(event)?;
        Ok(Follower { event: event.to_string(), log: self.clone(), messages: None, position: after })
    }

    /// The event's messages after `after`, up to the last one when the read began, in
    /// order. Streamed by a follower (thousands a second); if that stalls (a leader
    /// change), the rest is fetched one by one from the stream's leader.
    pub async fn read_after(&self, event: &str, after: u64) -> Result<Vec<LogEntry>, ClusterError> {
        let last = self.last_sequence(event).await?;
        let mut entries = Vec::new();
        let mut follower = self.follow(event, after)?;
        while follower.position() < last {
            match tokio::time::timeout(FOLLOW_STALL, follower.next()).await {
                Ok(Ok(entry)) => entries.push(entry),
                Ok(Err(_)) | Err(_) => break,
            }
        }
        entries.extend(self.fetch_between(event, follower.position(), last).await?);
        Ok(entries)
    }

    /// The event's messages after `after` up to `last`, each read from the stream's
    /// leader (the next message on the subject from a sequence on), so none a quorum
    /// stored is missed, as a replica's copy could be.
    async fn fetch_between(&self, event: &str, after: u64, last: u64) -> Result<Vec<LogEntry>, ClusterError> {
        let subject = subject(event)?;
        let mut entries = Vec::new();
        let mut from = after + 1;
        while from <= last {
            let read = self.jetstream.log.raw_message_builder().sequence(from).next_by_subject(subject.clone()).send();
            let message = match read.await {
                Ok(message) => message,
                Err(error) if matches!(error.kind(), LastRawMessageErrorKind::NoMessageFound) => break,
                Err(error) => return Err(ClusterError::Unavailable(error.to_string())),
            };
            if message.sequence > last {
                break;
            }
            from = message.sequence + 1;
            entries.push(entry_of(message.sequence, Some(&message.headers), message.payload)?);
        }
        Ok(entries)
    }
}

/// A standby's view of an event's log as it grows: every message after a position, in
/// order, soon after it is stored (an ordered pull consumer, which the client keeps
/// pulling from in batches; after an error, such as a leader change, or a stall while
/// the log grew, the next call recreates it from the position).
pub struct Follower {
    event: String,
    log: EventLog,
    messages: Option<pull::Ordered>,
    /// The last sequence handed out.
    position: u64,
}

impl Follower {
    /// The sequence of the last message [`Follower::next`] returned (or the start).
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The next message of the event's log, waiting for it to be appended.
    pub async fn next(&mut self) -> Result<LogEntry, ClusterError> {
        loop {
            let messages = match &mut self.messages {
                Some(messages) => messages,
                None => {
                    let consumer = self
                        .log
                        .jetstream
                        .log
                        .create_consumer(pull::OrderedConfig {
                            filter_subject: subject(&self.event)?,
                            deliver_policy: DeliverPolicy::ByStartSequence { start_sequence: self.position + 1 },
                            ..Default::default()
                        })
                        .await
                        .map_err(|error| ClusterError::Unavailable(error.to_string()))?;
                    let messages =
                        consumer.messages().await.map_err(|error| ClusterError::Unavailable(error.to_string()))?;
                    self.messages.insert(messages)
                }
            };
            let waited = tokio::time::timeout(FOLLOWER_QUIET, messages.next()).await;
            let next = match waited {
                Ok(next) => next,
                Err(_quiet) => {
                    if self.log.last_sequence(&self.event).await? > self.position {
                        self.messages = None;
                        return Err(ClusterError::Unavailable("the log's consumer stalled".to_string()));
                    }
                    continue; // nothing appended: keep waiting
                }
            };
            let message = match next {
                Some(Ok(message)) => message,
                // Recreated from the position at the next call.
                Some(Err(error)) => {
                    self.messages = None;
                    return Err(ClusterError::Unavailable(error.to_string()));
                }
                // Not a busy loop of new consumers: the caller decides when to try again.
                None => {
                    self.messages = None;
                    return Err(ClusterError::Unavailable("the log's consumer ended".to_string()));
                }
            };
            let sequence =
                message.info().map_err(|error| ClusterError::Unavailable(error.to_string()))?.stream_sequence;
            if sequence <= self.position {
                continue; // redelivered after a recreation
            }
            let entry = entry_of(sequence, message.headers.as_ref(), message.payload.clone())?;
            self.position = sequence;
            return Ok(entry);
        }
    }
}

fn entry_of(sequence: u64, headers: Option<&HeaderMap>, payload: Bytes) -> Result<LogEntry, ClusterError> {
    let header = |name: &str| headers.and_then(|headers| headers.get(name)).map(|value| value.as_str().to_string());
    let kind = header(KIND)
        .and_then(|kind| EntryKind::parse(&kind))
        .ok_or_else(|| ClusterError::Damaged(format!("log message {sequence} has no {KIND}")))?;
    let epoch = header(EPOCH)
        .and_then(|epoch| epoch.parse().ok())
        .ok_or_else(|| ClusterError::Damaged(format!("log message {sequence} has no {EPOCH}")))?;
    Ok(LogEntry { sequence, epoch, kind, payload })
}
