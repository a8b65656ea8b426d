//! What the cluster looks like from JetStream: each event's lease (holder, epoch), the
//! end of its log and how far behind it each standby said it was, and the log stream's
//! replicas (leader, caught up, lag). Read by
//! `hakken cluster status`; it creates nothing and needs no node to be running.

use serde::Serialize;

use crate::jetstream::{keys, ClusterError, JetStream};
use crate::leases::Leases;
use crate::log::EventLog;
use crate::positions::{Positions, Reported};

/// Leases listed at most (the bucket holds one per event).
const EVENTS_MAX: usize = 10_000;

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ClusterStatus {
    pub events: Vec<EventStatus>,
    pub log: LogStatus,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct EventStatus {
    pub event: String,
    /// The node holding the lease (`None`: released).
    pub holder: Option<String>,
    pub epoch: u64,
    pub lease_revision: u64,
    /// The stream sequence of the event's last log message (0: none).
    pub last_sequence: u64,
    /// The other nodes' last reports, by node id.
    pub standbys: Vec<StandbyStatus>,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct StandbyStatus {
    pub node: String,
    /// The last log message its store held when it reported.
    pub position: u64,
    /// Messages behind the log's end as read now (a report is as old as `reported_at_ms`).
    pub lag: u64,
    /// When it reported, by its clock (ms since the Unix epoch).
    pub reported_at_ms: u64,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct LogStatus {
    /// The server leading the log stream's Raft group.
    pub leader: Option<String>,
    /// Messages in the stream, all events together.
    pub messages: u64,
    /// The other servers holding a copy.
    pub replicas: Vec<ReplicaStatus>,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ReplicaStatus {
    pub server: String,
    pub current: bool,
    pub offline: bool,
    /// Operations behind the leader, as the leader reports it.
    pub lag: Option<u64>,
}

/// Reads the status (events sorted by id).
pub async fn read(jetstream: &JetStream) -> Result<ClusterStatus, ClusterError> {
    let unavailable = |error: &dyn std::fmt::Display| ClusterError::Unavailable(error.to_string());
    let mut events = keys(&jetstream.leases, EVENTS_MAX).await?;
    events.sort();
    let (leases, log) = (Leases::new(jetstream), EventLog::new(jetstream));
    let reports = Positions::new(jetstream).read_all().await?;
    let mut statuses = Vec::with_capacity(events.len());
    for event in events {
        let (lease_revision, lease) = leases.read(&event).await?;
        let last_sequence = log.last_sequence(&event).await?;
        let (holder, epoch) = lease.map_or((None, 0), |lease| (lease.holder, lease.epoch));
        let standbys = reports
            .iter()
            .filter(|reported| reported.event == event && Some(&reported.node) != holder.as_ref())
            .map(|Reported { node, report, .. }| StandbyStatus {
                node: node.clone(),
                position: report.position,
                lag: last_sequence.saturating_sub(report.position),
                reported_at_ms: report.at_ms,
            })
            .collect();
        statuses.push(EventStatus { event, holder, epoch, lease_revision, last_sequence, standbys });
    }
    let info = jetstream.log.get_info().await.map_err(|error| unavailable(&error))?;
    let cluster = info.cluster.unwrap_or_default();
    let replicas = cluster
        .replicas
        .into_iter()
        .map(|peer| ReplicaStatus { server: peer.name, current: peer.current, offline: peer.offline, lag: peer.lag })
        .collect();
    Ok(ClusterStatus {
        events: statuses,
        log: LogStatus { leader: cluster.leader, messages: info.state.messages, replicas },
    })
}
