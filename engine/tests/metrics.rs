//! The engine reports what SREs watch: operations per section, seats per state, call
//! latency, WAL group sizes, write latency and bytes, recovery time. Read back here
//! with metrics-util's debugging recorder (one test: the recorder is process-global).
#![cfg(not(loom))] // Under loom the engine is only its lock-free core.

use std::collections::HashMap;

use hakken_engine::actor::{Cancel, Confirm, HoldSeats, Release, SectionHandle, Sweep};
use hakken_engine::clock::{Clock, Millis};
use hakken_engine::config::EngineConfig;
use hakken_engine::ids::CustomerId;
use hakken_engine::inventory::Buyer;
use hakken_engine::observe;
use hakken_engine::registry::Registry;
use hakken_engine::store::{StorageConfig, Store};
use hakken_engine::synthetic::{grid_venue, open_event, GridShape};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use metrics_util::MetricKind;

/// Two holds, a confirm, a release, a refund and a sweep: six calls, five changes.
async fn hold_confirm_release_cancel(section: &SectionHandle) {
    let alice = CustomerId::new("alice");
    let first = section.call(HoldSeats { customer: alice.clone(), seats: vec![0, 1] }).await.unwrap().unwrap();
    let second = section.call(HoldSeats { customer: alice.clone(), seats: vec![2] }).await.unwrap().unwrap();
    let order = section
        .call(Confirm { hold: first.hold.id, customer: alice.clone(), buyer: Buyer::default() })
        .await
        .unwrap()
        .unwrap();
    section.call(Release { hold: second.hold.id, customer: alice }).await.unwrap().unwrap();
    section.call(Cancel { order: order.id, by: hakken_engine::wal::PrincipalRecord::Admin }).await.unwrap().unwrap();
    section.call(Sweep {}).await.unwrap();
}

/// What the recorder saw, by `name{label=value,...}`: counter values, histogram sample
/// counts and gauge values.
struct Reported {
    counters: HashMap<String, u64>,
    histograms: HashMap<String, usize>,
    gauges: HashMap<String, f64>,
}

fn reported(snapshotter: &Snapshotter) -> Reported {
    let mut reported = Reported { counters: HashMap::new(), histograms: HashMap::new(), gauges: HashMap::new() };
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let (kind, key) = key.into_parts();
        let labels: Vec<String> = key.labels().map(|label| format!("{}={}", label.key(), label.value())).collect();
        let name = match labels.is_empty() {
            true => key.name().to_string(),
            false => format!("{}{{{}}}", key.name(), labels.join(",")),
        };
        match (kind, value) {
            (MetricKind::Counter, DebugValue::Counter(count)) => {
                reported.counters.insert(name, count);
            }
            (MetricKind::Histogram, DebugValue::Histogram(samples)) => {
                reported.histograms.insert(name, samples.len());
            }
            (MetricKind::Gauge, DebugValue::Gauge(value)) => {
                reported.gauges.insert(name, value.into_inner());
            }
            _ => {}
        }
    }
    reported
}

#[test]
fn engine_reports_operations_seats_latency_and_wal() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::set_global_recorder(recorder).expect("first recorder of this test binary");

    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StorageConfig::default()).unwrap();
    let config = EngineConfig { actor_threads: 1, ..EngineConfig::default() };
    let clock = Clock::manual(Millis(1_000_000_000));
    let mut registry = Registry::recover(config, clock, store).unwrap();
    let venue = grid_venue(GridShape { sections: 1, rows: 2, seats_per_row: 5, ga_sections: 0, ga_capacity: 0 });
    let event = open_event(&venue);
    registry.add_venue(venue).unwrap();
    registry.add_event(event).unwrap();
    let section = registry.event("open").unwrap().sections[0].clone();
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    runtime.block_on(hold_confirm_release_cancel(&section));
    drop(section);
    registry.shutdown();

    let Reported { counters, histograms, gauges } = reported(&snapshotter);
    let operations = |operation: &str| {
        counters[&format!("{}{{event=open,section=R0,operation={operation}}}", observe::SECTION_OPERATIONS_TOTAL)]
    };
    assert_eq!(
        ["hold", "confirm", "release", "cancel", "extend", "expire"].map(operations),
        [2, 1, 1, 1, 0, 0],
        "{counters:?}"
    );
    let calls = histograms[&format!("{}{{event=open}}", observe::SECTION_CALL_SECONDS)];
    assert_eq!(calls, 6, "one latency sample per call");
    // The same calls' time, per section: it only grows, and six calls took some.
    let busy = gauges[&format!("{}{{event=open,section=R0}}", observe::SECTION_BUSY_SECONDS)];
    assert!(busy > 0.0 && busy < 60.0, "{busy}");
    // The event definition and the five changes all go through group commit.
    let records: usize = histograms[observe::WAL_GROUP_RECORDS];
    assert!(records >= 1, "{histograms:?}");
    assert!(counters[observe::WAL_BYTES_TOTAL] > 5 * 18, "{counters:?}");
    assert!(histograms[observe::WAL_WRITE_SECONDS] >= 1);
    // Seat gauges are set when the actor starts and on every sweep tick.
    let seats = |state: &str| gauges[&format!("{}{{event=open,section=R0,state={state}}}", observe::SECTION_SEATS)];
    assert_eq!(seats("available") + seats("held") + seats("sold"), 10.0, "{gauges:?}");
    assert!(gauges.contains_key(observe::RECOVERY_SECONDS));
    // Sampled on ticks; this test never has more than one call outstanding.
    let depth = gauges[&format!("{}{{event=open,section=R0}}", observe::SECTION_MAILBOX_DEPTH)];
    assert!(depth == 0.0 || depth == 1.0, "{depth}");
}
