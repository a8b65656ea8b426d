//! What cluster mode's durability point costs: one event's appends to its R3 log (each
//! waits for a quorum's acknowledgement, as a group commit would), a lease renewal, and
//! a takeover's fence, a standby's following, against a real 3-node `nats-server` cluster on loopback.
//!
//! `cargo bench -p hakken-cluster --bench log_append` (`APPENDS=N`, default 5,000;
//! `PAYLOAD=BYTES`, default 4,096: a group commit of a few dozen records). Prints
//! percentiles; under `cargo test` it only checks that it builds.

// Only some of the test cluster's controls are used here.
#[allow(dead_code)]
#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use hakken_cluster::leases::{Keeper, Leases, Role};
use hakken_cluster::log::EventLog;
use hakken_cluster::takeover::{fence, OwnerLog};
use hdrhistogram::Histogram;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|value| value.parse().ok()).unwrap_or(default)
}

fn print(name: &str, histogram: &Histogram<u64>, elapsed: Duration) {
    let us = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "{name:<22} n={:>6}  p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms  {:>8.0}/s",
        histogram.len(),
        us(0.5),
        us(0.99),
        histogram.max() as f64 / 1000.0,
        histogram.len() as f64 / elapsed.as_secs_f64()
    );
}

fn main() {
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a runtime");
    runtime.block_on(async {
        let cluster = support::NatsCluster::start(3);
        let jetstream = cluster.connect("a").await;
        let log = EventLog::new(&jetstream);
        let (appends, payload) = (env("APPENDS", 5_000), env("PAYLOAD", 4_096) as usize);
        let batch = Bytes::from(vec![0x5a; payload]);

        let started = Instant::now();
        let fenced = fence(&log, "bench", "a", 1, 0).await.expect("the first fence");
        println!("fence of an empty log   {:.2} ms", started.elapsed().as_secs_f64() * 1000.0);
        let mut owner = OwnerLog::after(&log, "bench", 1, &fenced);
        let mut histogram = Histogram::<u64>::new(3).expect("a histogram");
        let started = Instant::now();
        for _ in 0..appends {
            let sent = Instant::now();
            owner.append(batch.clone()).await.expect("an append");
            histogram.record(sent.elapsed().as_micros() as u64).expect("recorded");
        }
        print(&format!("append {payload} B, R3"), &histogram, started.elapsed());

        let mut keeper = Keeper::new(Leases::new(&jetstream), "a", "bench", Duration::from_secs(3));
        assert!(matches!(keeper.tick().await, Role::Owner { .. }));
        let mut histogram = Histogram::<u64>::new(3).expect("a histogram");
        let started = Instant::now();
        for _ in 0..500 {
            let sent = Instant::now();
            assert!(matches!(keeper.tick().await, Role::Owner { .. }), "the renewal holds");
            histogram.record(sent.elapsed().as_micros() as u64).expect("recorded");
        }
        print("lease renewal (CAS)", &histogram, started.elapsed());

        let other = EventLog::new(&cluster.connect("b").await);
        // A standby that follows: the same messages through its ordered consumer.
        let mut follower = other.follow("bench", 0).expect("a follower");
        let last = other.last_sequence("bench").await.expect("the log's end");
        let started = Instant::now();
        let mut followed = 0;
        while follower.position() < last {
            follower.next().await.expect("a followed message");
            followed += 1;
        }
        println!("follower catch-up of {followed} messages: {:.0} ms", started.elapsed().as_secs_f64() * 1000.0);
        // Lag: from an append's acknowledgement to the follower receiving it.
        let mut histogram = Histogram::<u64>::new(3).expect("a histogram");
        let started = Instant::now();
        for _ in 0..1_000 {
            owner.append(batch.clone()).await.expect("an append");
            let acknowledged = Instant::now();
            follower.next().await.expect("the followed append");
            histogram.record(acknowledged.elapsed().as_micros() as u64).expect("recorded");
        }
        print("append + follower lag", &histogram, started.elapsed());
        let started = Instant::now();
        let taken = fence(&other, "bench", "b", 2, 0).await.expect("the takeover's fence");
        println!(
            "takeover fence + read of {} messages: {:.0} ms",
            taken.entries.len(),
            started.elapsed().as_secs_f64() * 1000.0
        );
    });
}
