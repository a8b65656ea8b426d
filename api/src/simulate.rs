//! An on-sale in memory: seeded buyers arrive all at once and go through the real
//! section actors (best-available in a random section, or a GA quantity), then pay or
//! walk away. Useful to see the engine work before the HTTP API exists.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use hakken_engine::actor::{Confirm, HoldBest, HoldQuantity, Release, SectionHandle};
use hakken_engine::best::BestRequest;
use hakken_engine::clock::Clock;
use hakken_engine::ids::CustomerId;
use hakken_engine::inventory::Buyer;
use hakken_engine::registry::Registry;
use hakken_engine::store::Store;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::config::Config;

#[derive(clap::Args, Clone, Debug)]
pub struct Options {
    /// Buyers arriving at the on-sale.
    #[arg(long, default_value_t = 200_000)]
    pub buyers: u64,
    /// Seed for the buyers' choices; the same seed makes the same requests.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Buyers in flight at once.
    #[arg(long, default_value_t = 512)]
    pub concurrency: u64,
    /// Sell durably into the configured RocksDB store (`data_dir`), recovering what
    /// is already there; without it the simulation runs in memory only.
    #[arg(long)]
    pub durable: bool,
    /// With `--durable`: use this directory instead of the configured one.
    #[arg(long, requires = "durable")]
    pub data_dir: Option<std::path::PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options { buyers: 200_000, seed: 1, concurrency: 512, durable: false, data_dir: None }
    }
}

#[derive(Default)]
struct Tally {
    holds: AtomicU64,
    refused: AtomicU64,
    busy: AtomicU64,
    orders: AtomicU64,
    released: AtomicU64,
}

pub fn run(config: &Config, options: &Options) -> Result<()> {
    let loaded = config.load_venues_and_events()?;
    let mut registry = if options.durable {
        let dir = options.data_dir.as_ref().unwrap_or(&config.data_dir);
        let store = Store::open(dir, config.storage.clone())?;
        println!("durable: store in {}", dir.display());
        Registry::recover(config.engine.clone(), Clock::System, store)?
    } else {
        Registry::new(config.engine.clone(), Clock::System).context("starting section actors")?
    };
    for venue in loaded.venues {
        if registry.venue(&venue.id).is_none() {
            registry.add_venue(venue)?;
        }
    }
    let mut event_ids = Vec::new();
    for event in loaded.events {
        event_ids.push(event.id.clone());
        if registry.event(&event.id).is_none() {
            registry.add_event(event)?;
        }
    }
    let event_id = event_ids.first().context("no event configured")?;
    let sections = registry.event(event_id).expect("just added").sections.clone();
    let capacity: u64 = sections.iter().map(|section| u64::from(section.state.section().capacity())).sum();
    println!("simulating {} buyers on {event_id} ({} sections, capacity {capacity})", options.buyers, sections.len());

    let tally = Arc::new(Tally::default());
    let started = Instant::now();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    runtime.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for worker in 0..options.concurrency {
            let (sections, tally, options) = (sections.clone(), tally.clone(), options.clone());
            tasks.spawn(async move {
                let mut buyer = worker;
                while buyer < options.buyers {
                    let mut rng = SmallRng::seed_from_u64(options.seed.wrapping_mul(1_000_003).wrapping_add(buyer));
                    one_buyer(&sections, buyer, &mut rng, &tally).await;
                    buyer += options.concurrency;
                }
            });
        }
        while tasks.join_next().await.is_some() {}
    });
    let elapsed = started.elapsed().as_secs_f64();

    let mut sold = 0;
    for section in &sections {
        sold += u64::from(section.state.availability().total.sold);
    }
    let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    println!(
        "{:.2} s: {} holds, {} refused (taken/sold out/limit), {} busy, {} orders, {} released",
        elapsed,
        load(&tally.holds),
        load(&tally.refused),
        load(&tally.busy),
        load(&tally.orders),
        load(&tally.released)
    );
    println!("{sold} of {capacity} seats sold; {:.0} buyers/s", options.buyers as f64 / elapsed);
    drop(sections);
    registry.shutdown();
    Ok(())
}

async fn one_buyer(sections: &[SectionHandle], buyer: u64, rng: &mut SmallRng, tally: &Tally) {
    let customer = CustomerId::new(&format!("buyer-{buyer}"));
    let section = &sections[rng.gen_range(0..sections.len())];
    let quantity = rng.gen_range(1..=4);
    let reply = if section.state.seat_map().is_some() {
        let request = BestRequest { quantity, category: None, accessible: false, adjacent: rng.gen_bool(0.8) };
        section.call(HoldBest { customer: customer.clone(), request }).await
    } else {
        section.call(HoldQuantity { customer: customer.clone(), quantity }).await
    };
    let granted = match reply {
        Ok(Ok(granted)) => granted,
        Ok(Err(_)) => return count(&tally.refused),
        Err(_) => return count(&tally.busy),
    };
    count(&tally.holds);
    let hold = granted.hold.id;
    if rng.gen_bool(0.85) {
        if let Ok(Ok(_)) = section.call(Confirm { hold, customer, buyer: Buyer::default() }).await {
            count(&tally.orders);
        }
    } else if let Ok(Ok(_)) = section.call(Release { hold, customer }).await {
        count(&tally.released);
    }
}

fn count(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}
