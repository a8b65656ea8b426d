//! The connection to the NATS cluster, and the JetStream assets cluster mode uses: the
//! lease bucket (`hakken_leases`, a KV bucket), the log stream (`HAKKEN_LOG`, one
//! subject per event), and the standbys' reported positions (`hakken_positions`, a KV
//! bucket). All are created with the configured replicas (3 for a cluster: every write
//! is acknowledged only once a quorum of two stored it).

use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};

/// The KV bucket of event leases.
pub const LEASE_BUCKET: &str = "hakken_leases";
/// The KV bucket of the standbys' positions in each event's log.
pub const POSITIONS_BUCKET: &str = "hakken_positions";
/// The stream of every event's log, subject [`crate::log::subject`] per event.
pub const LOG_STREAM: &str = "HAKKEN_LOG";
/// The subjects of [`LOG_STREAM`].
pub const LOG_SUBJECTS: &str = "hakken.log.>";
/// How long JetStream remembers a `Nats-Msg-Id` to drop a repeated append (its default):
/// an append retried after a lost answer within this window is stored once.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// Where the cluster is and how this node takes part in it.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// This node's id: the lease holder's name (unique in the cluster).
    pub node: String,
    /// NATS server URLs (`nats://127.0.0.1:4222`, ...): any reachable one will do.
    pub urls: Vec<String>,
    /// Replicas of the lease bucket and the log (3 in a cluster, 1 for a single server).
    pub replicas: usize,
    /// Time limit of one JetStream request (a publish's acknowledgement included).
    pub request_timeout: Duration,
}

/// Why a cluster operation did not happen. Messages carry NATS's words, never payloads.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("connecting to NATS failed: {0}")]
    Connect(String),
    #[error("setting up {asset} failed: {message}")]
    Setup { asset: &'static str, message: String },
    #[error("event id {0:?} cannot name a NATS subject or key (letters, digits, '-' and '_' only)")]
    InvalidEvent(String),
    #[error("JetStream did not answer: {0}")]
    Unavailable(String),
    #[error("a stored value is damaged: {0}")]
    Damaged(String),
}

/// The connection and the assets, shared by the leases and the log.
#[derive(Clone)]
pub struct JetStream {
    pub(crate) context: jetstream::Context,
    pub(crate) leases: kv::Store,
    pub(crate) log: stream::Stream,
    /// `None` for a cluster made before the bucket existed (read by the status only).
    pub(crate) positions: Option<kv::Store>,
}

impl JetStream {
    /// Connects and creates (or opens) the lease bucket and the log stream; a node
    /// joining the cluster (its metrics are exported from then on).
    pub async fn connect(config: &ClusterConfig) -> Result<JetStream, ClusterError> {
        let context = jetstream_context(config).await?;
        // The bucket's stream as the KV API lays it out (what `create_key_value` would
        // make), created directly: that call first reads the account's info, and
        // async-nats 0.46 cannot parse a 2.9 server's answer to that.
        for (bucket, description) in [
            (LEASE_BUCKET, "hakken: which node owns each event"),
            (POSITIONS_BUCKET, "hakken: where each standby is in each event's log"),
        ] {
            context
                .get_or_create_stream(stream::Config {
                    name: format!("KV_{bucket}"),
                    description: Some(description.to_string()),
                    subjects: vec![format!("$KV.{bucket}.>")],
                    max_messages_per_subject: 1,
                    num_replicas: config.replicas,
                    storage: stream::StorageType::File,
                    allow_rollup: true,
                    deny_delete: true,
                    allow_direct: true,
                    discard: stream::DiscardPolicy::New,
                    ..Default::default()
                })
                .await
                .map_err(|error| ClusterError::Setup { asset: bucket, message: error.to_string() })?;
        }
        context
            .get_or_create_stream(stream::Config {
                name: LOG_STREAM.to_string(),
                description: Some("hakken: each event's write-ahead log, one subject per event".to_string()),
                subjects: vec![LOG_SUBJECTS.to_string()],
                num_replicas: config.replicas,
                storage: stream::StorageType::File,
                duplicate_window: DUPLICATE_WINDOW,
                allow_direct: true,
                // The log is history: nothing deletes from it but a snapshot's purge.
                deny_delete: true,
                ..Default::default()
            })
            .await
            .map_err(|error| ClusterError::Setup { asset: LOG_STREAM, message: error.to_string() })?;
        crate::metrics::describe();
        JetStream::opened(context).await
    }

    /// Connects to the bucket and the stream a node made, creating nothing (the
    /// operator's view: `hakken cluster status`).
    pub async fn open(config: &ClusterConfig) -> Result<JetStream, ClusterError> {
        JetStream::opened(jetstream_context(config).await?).await
    }

    /// The handles of the bucket and the stream, which must exist.
    async fn opened(context: jetstream::Context) -> Result<JetStream, ClusterError> {
        let leases = context
            .get_key_value(LEASE_BUCKET)
            .await
            .map_err(|error| ClusterError::Setup { asset: LEASE_BUCKET, message: error.to_string() })?;
        let log = context
            .get_stream(LOG_STREAM)
            .await
            .map_err(|error| ClusterError::Setup { asset: LOG_STREAM, message: error.to_string() })?;
        let positions = context.get_key_value(POSITIONS_BUCKET).await.ok();
        Ok(JetStream { context, leases, log, positions })
    }
}

async fn jetstream_context(config: &ClusterConfig) -> Result<jetstream::Context, ClusterError> {
    let client = async_nats::ConnectOptions::new()
        .name(format!("hakken {}", config.node))
        .connection_timeout(config.request_timeout)
        .request_timeout(Some(config.request_timeout))
        .connect(config.urls.clone())
        .await
        .map_err(|error| ClusterError::Connect(error.to_string()))?;
    let mut context = jetstream::new(client);
    context.set_timeout(config.request_timeout);
    Ok(context)
}

/// The keys of `bucket`, at most `max` of them, in the bucket's order.
pub(crate) async fn keys(bucket: &kv::Store, max: usize) -> Result<Vec<String>, ClusterError> {
    use futures_util::StreamExt;
    let unavailable = |error: &dyn std::fmt::Display| ClusterError::Unavailable(error.to_string());
    let mut listed = bucket.keys().await.map_err(|error| unavailable(&error))?;
    let mut keys = Vec::new();
    while let Some(key) = listed.next().await {
        keys.push(key.map_err(|error| unavailable(&error))?);
        if keys.len() >= max {
            break;
        }
    }
    Ok(keys)
}

/// The event's id as a NATS subject token and KV key: only what both allow and no
/// wildcard or separator (an id with a `.` would name another subject).
pub fn subject_token(event: &str) -> Result<&str, ClusterError> {
    let valid = !event.is_empty()
        && event.len() <= 128
        && event.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_');
    if valid {
        Ok(event)
    } else {
        Err(ClusterError::InvalidEvent(event.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_that_would_name_other_subjects_are_refused() {
        assert!(subject_token("demo-2026_final").is_ok());
        for bad in ["", "a.b", "a*", ">", "a b", "é"] {
            assert!(matches!(subject_token(bad), Err(ClusterError::InvalidEvent(_))), "{bad:?}");
        }
    }
}
