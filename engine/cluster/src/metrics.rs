//! The cluster's metric names (bounded labels only: outcomes, never event ids).

/// Lease writes by outcome: `taken`, `renewed`, `lost` (another node's write came
/// first), `released`, `error` (NATS did not answer).
pub const LEASE_WRITES_TOTAL: &str = "hakken_cluster_lease_writes_total";
/// Events this node took over from another holder (or a released lease).
pub const TAKEOVERS_TOTAL: &str = "hakken_cluster_takeovers_total";
/// Log appends by outcome: `ok`, `fenced` (another owner appended), `unavailable`.
pub const APPENDS_TOTAL: &str = "hakken_cluster_log_appends_total";
/// From sending an append to its quorum acknowledgement (the cluster's durability point).
pub const APPEND_SECONDS: &str = "hakken_cluster_log_append_seconds";

/// Exports every counter at 0, so dashboards and alerts see the series from the start
/// (called when a node connects: [`crate::jetstream::JetStream::connect`]).
pub fn describe() {
    for outcome in ["taken", "renewed", "lost", "released", "error"] {
        metrics::counter!(LEASE_WRITES_TOTAL, "outcome" => outcome).absolute(0);
    }
    for outcome in ["ok", "fenced", "unavailable"] {
        metrics::counter!(APPENDS_TOTAL, "outcome" => outcome).absolute(0);
    }
    metrics::counter!(TAKEOVERS_TOTAL).absolute(0);
}
