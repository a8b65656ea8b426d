//! Runs buyers against a durable engine until killed, printing one line per
//! acknowledgement (only after the acknowledgement, so every line printed is durable):
//!
//! ```text
//! READY
//! H <hold> <customer> <section> <seat,seat,...|qN> <expires_at_s>
//! confirming <hold>          (before the call: the kill may come before its answer)
//! O <order> <hold> <section>
//! releasing <hold>
//! R <hold>
//! cancelling <order>
//! C <order>
//! ```
//!
//! Usage: `hakken-crash-driver DATA_DIR SEED [sync|async]` (a new directory gets the
//! test event; async durability must survive SIGKILL too, as its writes are in the OS).

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use hakken_engine::actor::{Cancel, Confirm, HoldQuantity, HoldSeats, Release, SectionHandle};
use hakken_engine::clock::Clock;
use hakken_engine::config::EngineConfig;
use hakken_engine::ids::CustomerId;
use hakken_engine::inventory::Buyer;
use hakken_engine::inventory::{Granted, Units};
use hakken_engine::registry::Registry;
use hakken_engine::store::{Durability, StorageConfig, Store};
use hakken_engine::synthetic::{grid_venue, open_event, GridShape};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

pub const SHAPE: GridShape = GridShape { sections: 4, rows: 20, seats_per_row: 50, ga_sections: 1, ga_capacity: 200 };
const BUYERS: u64 = 48;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().context("usage: hakken-crash-driver DATA_DIR SEED")?;
    let seed: u64 = args.next().context("missing SEED")?.parse()?;
    let durability = match args.next().as_deref() {
        None | Some("sync") => Durability::Sync,
        Some("async") => Durability::Async,
        Some(other) => anyhow::bail!("durability must be sync or async, not {other:?}"),
    };
    let config =
        EngineConfig { hold_ttl_ms: 3_000, customer_seats_max: 0, sweep_interval_ms: 200, ..EngineConfig::default() };
    // Small snapshots often, so kills land in the middle of snapshotting too.
    let storage = StorageConfig {
        durability,
        snapshot_every_records: 500,
        snapshot_interval_ms: 300,
        ..StorageConfig::default()
    };
    let store = Store::open(dir.as_ref(), storage)?;
    let mut registry = Registry::recover(config, Clock::System, store)?;
    if registry.event("open").is_none() {
        let venue = grid_venue(SHAPE);
        let event = open_event(&venue);
        registry.add_venue(venue)?;
        registry.add_event(event)?;
    }
    let sections = registry.event("open").expect("added above").sections.clone();
    let out = Arc::new(Mutex::new(std::io::stdout()));
    say(&out, "READY".into());

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    runtime.block_on(async {
        let mut buyers = tokio::task::JoinSet::new();
        for buyer in 0..BUYERS {
            let (sections, out) = (sections.clone(), out.clone());
            buyers.spawn(async move {
                let mut rng = SmallRng::seed_from_u64(seed * 1_000 + buyer);
                for round in 0u64.. {
                    let customer = CustomerId::new(&format!("s{seed}b{buyer}r{round}"));
                    one_buyer(&sections, customer, &mut rng, &out).await;
                }
            });
        }
        while buyers.join_next().await.is_some() {}
    });
    Ok(())
}

async fn one_buyer(sections: &[SectionHandle], customer: CustomerId, rng: &mut SmallRng, out: &Mutex<std::io::Stdout>) {
    let index = rng.gen_range(0..sections.len());
    let section = &sections[index];
    let reply = if index < SHAPE.sections {
        let seats_max = u32::from(SHAPE.rows * SHAPE.seats_per_row);
        let first = rng.gen_range(0..seats_max - 3);
        let seats = (first..first + rng.gen_range(1..=3)).collect();
        section.call(HoldSeats { customer: customer.clone(), seats }).await
    } else {
        section.call(HoldQuantity { customer: customer.clone(), quantity: rng.gen_range(1..=3) }).await
    };
    let Ok(Ok(Granted { hold, .. })) = reply else {
        return tokio::time::sleep(Duration::from_millis(1)).await;
    };
    let units = match &hold.units {
        Units::Seats(seats) => seats.iter().map(u32::to_string).collect::<Vec<_>>().join(","),
        Units::Quantity(quantity) => format!("q{quantity}"),
    };
    say(out, format!("H {} {} {index} {units} {}", hold.id, customer, hold.expires_at_s));
    match rng.gen_range(0..20) {
        0..=13 => {
            say(out, format!("confirming {}", hold.id));
            if let Ok(Ok(order)) = section.call(Confirm { hold: hold.id, customer, buyer: Buyer::default() }).await {
                say(out, format!("O {} {} {index}", order.id, hold.id));
                // Refunds keep seats coming back, so later cycles still sell.
                if rng.gen_bool(0.7) {
                    say(out, format!("cancelling {}", order.id));
                    if let Ok(Ok(cancelled)) =
                        section.call(Cancel { order: order.id, by: hakken_engine::wal::PrincipalRecord::Admin }).await
                    {
                        say(out, format!("C {}", cancelled.id));
                    }
                }
            }
        }
        14..=16 => {
            say(out, format!("releasing {}", hold.id));
            if let Ok(Ok(_)) = section.call(Release { hold: hold.id, customer }).await {
                say(out, format!("R {}", hold.id));
            }
        }
        // Abandoned: left to expire.
        _ => {}
    }
}

fn say(out: &Mutex<std::io::Stdout>, line: String) {
    let mut out = out.lock().expect("stdout lock");
    // A closed pipe means the test is gone; stop quietly.
    if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
        std::process::exit(0);
    }
}
