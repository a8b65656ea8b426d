//! Where each standby is in each event's log, as the standbys report it: one key per
//! event and node in the KV bucket `hakken_positions` (`{event}.{node}`, JSON), written
//! from its lease checks (at most once a second while the position moves, every 10 s
//! while it stays). `hakken cluster status` reads it to show the lag per standby,
//! which no single node knows. A report is a hint for operators, never a decision: a
//! takeover reads the log itself.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::jetstream::{keys, subject_token, ClusterError, JetStream};

/// Reports listed at most (events × nodes).
const REPORTS_MAX: usize = 100_000;

/// One node's report for one event.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PositionReport {
    /// The last log message of the event its store holds.
    pub position: u64,
    /// When it said so, by its own clock (ms since the Unix epoch).
    pub at_ms: u64,
}

/// A report with the event and node it is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reported {
    pub event: String,
    pub node: String,
    pub report: PositionReport,
}

#[derive(Clone)]
pub struct Positions {
    jetstream: JetStream,
}

impl Positions {
    pub fn new(jetstream: &JetStream) -> Positions {
        Positions { jetstream: jetstream.clone() }
    }

    /// Records that `node`'s store holds `event`'s log up to `position`.
    pub async fn report(&self, event: &str, node: &str, report: &PositionReport) -> Result<(), ClusterError> {
        let Some(bucket) = &self.jetstream.positions else { return Ok(()) };
        let key = format!("{}.{}", subject_token(event)?, subject_token(node)?);
        let value = Bytes::from(serde_json::to_vec(report).expect("a report serializes"));
        bucket.put(key, value).await.map_err(|error| ClusterError::Unavailable(error.to_string()))?;
        Ok(())
    }

    /// Every report (none for a cluster made before the bucket existed), sorted by
    /// event then node; a value that is not a report is skipped.
    pub async fn read_all(&self) -> Result<Vec<Reported>, ClusterError> {
        let Some(bucket) = &self.jetstream.positions else { return Ok(Vec::new()) };
        let unavailable = |error: &dyn std::fmt::Display| ClusterError::Unavailable(error.to_string());
        let names = keys(bucket, REPORTS_MAX).await?;
        let mut reports = Vec::with_capacity(names.len());
        for key in names {
            let Some((event, node)) = key.split_once('.') else { continue };
            let Some(value) = bucket.get(&key).await.map_err(|error| unavailable(&error))? else { continue };
            let Ok(report) = serde_json::from_slice(&value) else { continue };
            reports.push(Reported { event: event.to_string(), node: node.to_string(), report });
        }
        reports.sort_by(|a, b| (&a.event, &a.node).cmp(&(&b.event, &b.node)));
        Ok(reports)
    }
}
