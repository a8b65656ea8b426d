//! `hakken cluster status` against a real 3-node JetStream cluster on loopback: the
//! lease holder and epoch of each event, the end of its log, each standby's lag, the log's replicas,
//! as a node left them, and a clear failure where there is no cluster state to read.

#[allow(dead_code)] // Only some of the test cluster's controls are used here.
#[path = "../../engine/cluster/tests/support/mod.rs"]
mod support;

use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use hakken_cluster::leases::{Keeper, Leases, Role};
use hakken_cluster::log::EventLog;
use hakken_cluster::positions::{PositionReport, Positions};
use hakken_cluster::takeover::{fence, OwnerLog};
use serde_json::Value;

fn status(urls: &[String]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hakken"))
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .args(["cluster", "status", "--nats", &urls.join(",")])
        .env("HAKKEN_LOG", "warn")
        .output()
        .expect("hakken runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_status_shows_each_events_owner_epoch_and_log_end() {
    let cluster = support::NatsCluster::start(3);

    // Nothing made yet: a clear error, not an empty report.
    let empty = status(&cluster.urls());
    assert!(!empty.status.success());
    let stderr = String::from_utf8_lossy(&empty.stderr);
    assert!(stderr.contains("hakken_leases"), "the error names what is missing: {stderr}");

    let jetstream = cluster.connect("node-a").await;
    let mut keeper = Keeper::new(Leases::new(&jetstream), "node-a", "final", Duration::from_secs(3));
    assert!(matches!(keeper.tick().await, Role::Owner { epoch: 1, .. }));
    let log = EventLog::new(&jetstream);
    let fenced = fence(&log, "final", "node-a", 1, 0).await.expect("fence");
    let mut owner = OwnerLog::after(&log, "final", 1, &fenced);
    let mut last = 0;
    for number in 0..3 {
        last = owner.append(Bytes::from(format!("batch-{number}"))).await.expect("append");
    }
    // Two standbys say where they are; the holder's own report is not a standby's.
    let positions = Positions::new(&jetstream);
    for (node, position) in [("node-b", 2), ("node-c", last), ("node-a", last)] {
        positions.report("final", node, &PositionReport { position, at_ms: 7 }).await.expect("report");
    }
    let mut released = Keeper::new(Leases::new(&jetstream), "node-a", "semi", Duration::from_secs(3));
    assert!(matches!(released.tick().await, Role::Owner { .. }));
    released.release().await.expect("release");

    let output = status(&cluster.urls());
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: Value = serde_json::from_slice(&output.stdout).expect("JSON on stdout");
    let events = report["events"].as_array().expect("events");
    assert_eq!(events.len(), 2, "{report}");
    assert_eq!(events[0]["event"], "final");
    assert_eq!(events[0]["holder"], "node-a");
    assert_eq!(events[0]["epoch"], 1);
    assert_eq!(events[0]["last_sequence"], last);
    let standbys = &events[0]["standbys"];
    assert_eq!(standbys.as_array().map(Vec::len), Some(2), "{report}");
    assert_eq!(standbys[0]["node"], "node-b");
    assert_eq!(standbys[0]["position"], 2);
    assert_eq!(standbys[0]["lag"], last - 2);
    assert_eq!(standbys[0]["reported_at_ms"], 7);
    assert_eq!(standbys[1]["node"], "node-c");
    assert_eq!(standbys[1]["lag"], 0);
    assert_eq!(events[1]["standbys"], serde_json::json!([]));
    assert_eq!(events[1]["event"], "semi");
    assert_eq!(events[1]["holder"], Value::Null, "a released lease has no holder");
    assert_eq!(events[1]["last_sequence"], 0);
    assert_eq!(report["log"]["messages"], 4, "the marker and three batches");
    assert!(report["log"]["leader"].as_str().is_some_and(|leader| leader.starts_with('n')), "{report}");
    assert_eq!(report["log"]["replicas"].as_array().map(Vec::len), Some(2), "{report}");
}
