//! Durable throughput, commit latency, recovery time and disk footprint.
//! `cargo bench -p hakken-benches --bench durability` (a fresh RocksDB under the
//! system temp dir; set TMPDIR to bench another disk).
//!
//! Back of the envelope: this disk syncs in 0.15-5 ms. One sync per record caps a
//! writer at a few thousand records/s. A confirm is one 23-byte record; a group of
//! ~1,000 records per sync (what 1,024 confirms in flight give) should
//! reach ~1M records/s of RocksDB work, so the section actors and the writer's encode
//! and completion work (~1-2 µs per confirm) bound it: expect ~200-400k confirms/s,
//! i.e. 400-800k seat confirmations/s with 2 seats each. Target >= 250k seat
//! confirmations/s, p99 commit latency < 5 ms.
//!
//! Recovery of 1,000,000 seats (500,000 sold, 50,000 held): ~125k orders and ~12.5k
//! holds of 4 seats; decoding ~140k records or snapshot entries and setting 550k
//! seat words on 2 cores should take well under a second. Target <= 2 s.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hakken_benches::bench_config;
use hakken_engine::actor::{Confirm, HoldSeats, SectionHandle};
use hakken_engine::clock::Clock;
use hakken_engine::config::EngineConfig;
use hakken_engine::ids::{CustomerId, HoldId};
use hakken_engine::inventory::Buyer;
use hakken_engine::registry::Registry;
use hakken_engine::store::{directory_bytes, StorageConfig, Store};
use hakken_engine::synthetic::{grid_venue, open_event, GridShape};
use hdrhistogram::Histogram;

fn durable_registry(dir: &std::path::Path, shape: GridShape, storage: StorageConfig) -> Registry {
    let config = EngineConfig { actor_threads: 1, mailbox_capacity: 8192, ..bench_config() };
    let store = Store::open(dir, storage).unwrap();
    let mut registry = Registry::recover(config, Clock::System, store).unwrap();
    let venue = grid_venue(shape);
    let event = open_event(&venue);
    registry.add_venue(venue).unwrap();
    registry.add_event(event).unwrap();
    registry
}

/// Holds `seats_per_hold`-seat blocks in every section (durably), `holds_per_section` each.
fn hold_blocks(
    runtime: &tokio::runtime::Runtime,
    sections: &[SectionHandle],
    holds_per_section: u32,
    seats_per_hold: u32,
    first_block: u32,
) -> Vec<(usize, HoldId)> {
    runtime.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for (index, section) in sections.iter().cloned().enumerate() {
            tasks.spawn(async move {
                let customer = CustomerId::new("bench");
                let calls = (first_block..first_block + holds_per_section)
                    .map(|block| HoldSeats {
                        customer: customer.clone(),
                        seats: (block * seats_per_hold..(block + 1) * seats_per_hold).collect(),
                    })
                    .collect::<Vec<_>>();
                let mut holds = Vec::new();
                for chunk in calls.chunks(256) {
                    for granted in section.call(chunk.to_vec()).await.unwrap() {
                        holds.push((index, granted.expect("free seats").hold.id));
                    }
                }
                holds
            });
        }
        let mut holds = Vec::new();
        while let Some(result) = tasks.join_next().await {
            holds.extend(result.unwrap());
        }
        holds
    })
}

/// Confirms every hold with `in_flight` single calls outstanding; returns (elapsed, latency histogram in µs).
fn confirm_all(
    runtime: &tokio::runtime::Runtime,
    sections: &[SectionHandle],
    holds: Vec<(usize, HoldId)>,
    in_flight: usize,
) -> (Duration, Histogram<u64>) {
    let holds = Arc::new(holds);
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let histogram = runtime.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..in_flight {
            let (holds, next, sections) = (holds.clone(), next.clone(), sections.to_vec());
            tasks.spawn(async move {
                let mut histogram = Histogram::<u64>::new(3).unwrap();
                let customer = CustomerId::new("bench");
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed) as usize;
                    let Some(&(section, hold)) = holds.get(index) else { break };
                    let sent = Instant::now();
                    let order = sections[section]
                        .call(Confirm { hold, customer: customer.clone(), buyer: Buyer::default() })
                        .await;
                    histogram.record(sent.elapsed().as_micros() as u64).unwrap();
                    order.unwrap().expect("live hold");
                }
                histogram
            });
        }
        let mut all = Histogram::<u64>::new(3).unwrap();
        while let Some(result) = tasks.join_next().await {
            all.add(result.unwrap()).unwrap();
        }
        all
    });
    (start.elapsed(), histogram)
}

fn confirms(label: &str, storage: StorageConfig, holds_per_section: u32, in_flight: usize) -> f64 {
    const SEATS_PER_HOLD: u32 = 2;
    let shape = GridShape { sections: 32, rows: 50, seats_per_row: 50, ga_sections: 0, ga_capacity: 0 };
    let dir = tempfile::tempdir().unwrap();
    let registry = durable_registry(dir.path(), shape, storage);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let sections = registry.event("open").unwrap().sections.clone();
    let holds = hold_blocks(&runtime, &sections, holds_per_section, SEATS_PER_HOLD, 0);
    let count = holds.len();
    let (elapsed, latency) = confirm_all(&runtime, &sections, holds, in_flight);
    let per_second = count as f64 / elapsed.as_secs_f64();
    println!(
        "{label:<34} {count:>6} confirms in {:>7.3} s: {:>9.0} confirms/s = {:>9.0} seat confirmations/s; \
         commit latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        elapsed.as_secs_f64(),
        per_second,
        per_second * f64::from(SEATS_PER_HOLD),
        latency.value_at_quantile(0.5) as f64 / 1000.0,
        latency.value_at_quantile(0.99) as f64 / 1000.0,
        latency.max() as f64 / 1000.0,
    );
    drop(sections);
    registry.shutdown();
    per_second
}

fn recovery(label: &str, storage: StorageConfig) {
    // 400 sections x 50 rows x 50 seats = 1,000,000 seats.
    const SEATS_PER_HOLD: u32 = 4;
    let shape = GridShape { sections: 400, rows: 50, seats_per_row: 50, ga_sections: 0, ga_capacity: 0 };
    let dir = tempfile::tempdir().unwrap();
    let registry = durable_registry(dir.path(), shape, storage.clone());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let sections = registry.event("open").unwrap().sections.clone();
    // Per section: 1,250 sold seats (313 orders of 4, rounded) and 125 held (31 holds of 4, rounded).
    let sold = hold_blocks(&runtime, &sections, 313, SEATS_PER_HOLD, 0);
    let (_, _) = confirm_all(&runtime, &sections, sold, 512);
    let held = hold_blocks(&runtime, &sections, 31, SEATS_PER_HOLD, 313);
    let (sold_seats, held_seats) = sections.iter().fold((0, 0), |(sold, held), section| {
        let total = section.state.availability().total;
        (sold + total.sold, held + total.held)
    });
    drop(sections);
    drop(held);
    registry.shutdown();
    let bytes = directory_bytes(dir.path());
    let compacted = {
        let store = Store::open(dir.path(), storage.clone()).unwrap();
        store.compact();
        drop(store);
        directory_bytes(dir.path())
    };

    let start = Instant::now();
    let store = Store::open(dir.path(), storage).unwrap();
    let config = EngineConfig { actor_threads: 1, ..bench_config() };
    let registry = Registry::recover(config, Clock::System, store).unwrap();
    let elapsed = start.elapsed();
    let recovered = registry.event("open").unwrap().sections.iter().fold((0, 0), |(sold, held), section| {
        let total = section.state.availability().total;
        (sold + total.sold, held + total.held)
    });
    assert_eq!(recovered, (sold_seats, held_seats), "recovered what was written");
    registry.shutdown();
    println!(
        "{label:<36} 1,000,000 seats, {sold_seats} sold, {held_seats} held: recovered in {:.3} s; \
         store {:.1} MiB, {:.1} MiB after compaction",
        elapsed.as_secs_f64(),
        bytes as f64 / (1 << 20) as f64,
        compacted as f64 / (1 << 20) as f64
    );
}

/// Record sizes as the WAL stores them (framed: version, checksum, bincode).
fn record_sizes() {
    use hakken_engine::wal::{encode, BuyerRecord, HoldRecord, Record, UnitsRecord};
    let hold = HoldRecord {
        hold: 123_456,
        customer: "customer-000123456".into(),
        units: UnitsRecord::Seats(vec![1_200, 1_201]),
        created_at_ms: 1_790_000_000_000,
        expires_at_s: 1_790_000_600,
        total_minor: 25_800,
    };
    let at_ms = 1_790_000_100_000;
    let records = [
        ("hold created (2 seats, 18-byte customer)", Record::HoldCreated { hold, reclaimed: Vec::new() }),
        (
            "order confirmed",
            Record::OrderConfirmed {
                order: 45_678,
                hold: 123_456,
                confirmed_at_ms: at_ms,
                buyer: BuyerRecord {
                    payment_reference: "pi_3PqL8a2eZvKYlo2C1x".into(),
                    channel: "online".into(),
                    // A sealed name and email: header, wrapped data key, nonce, ~60
                    // bytes of JSON and a tag (see the API's `privacy::seal`).
                    sealed: vec![0xA5; 180],
                },
            },
        ),
        ("hold released", Record::HoldReleased { hold: 123_456, at_ms }),
        ("hold expired", Record::HoldExpired { hold: 123_456, at_ms }),
        ("hold extended", Record::HoldExtended { hold: 123_456, expires_at_s: 1_790_001_200, at_ms }),
        ("order cancelled", Record::OrderCancelled { order: 45_678, at_ms }),
    ];
    println!("WAL record sizes (value bytes; the key adds 12):");
    for (label, record) in records {
        println!("  {label:<42} {:>3} bytes", encode(&record).len());
    }
}

fn main() {
    let quick = !std::env::args().any(|arg| arg == "--bench");
    let scale = if quick { 1 } else { 10 };
    println!("durable confirms (sync durability, 32 sections, 2 seats per confirm, this machine's disk):");
    let mut group = 0.0;
    for in_flight in [64, 256, 1024] {
        let label = format!("group commit, {in_flight} in flight");
        group = confirms(&label, StorageConfig::default(), (125 * scale).min(1_250), in_flight);
    }
    let single = confirms(
        "one sync per record, 1024 in flight",
        StorageConfig { group_commit_records_max: 1, ..StorageConfig::default() },
        3 * scale,
        1024,
    );
    println!("ratio group commit / sync per record (1024 in flight): {:.0}x", group / single);
    record_sizes();
    if quick {
        return;
    }
    println!("recovery:");
    recovery(
        "from the log (no snapshots)",
        StorageConfig { snapshot_every_records: u64::MAX, ..StorageConfig::default() },
    );
    recovery(
        "from snapshots (every 100 records)",
        StorageConfig { snapshot_every_records: 100, ..StorageConfig::default() },
    );
}
