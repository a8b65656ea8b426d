//! Shared set-ups for hakken's benchmarks (`cargo bench -p hakken-benches`).

pub mod counting;

use std::sync::Arc;

use hakken_engine::clock::Millis;
use hakken_engine::config::EngineConfig;
use hakken_engine::ids::{CustomerId, SectionKey};
use hakken_engine::inventory::Buyer;
use hakken_engine::inventory::{Inventory, InventoryParams};
use hakken_engine::ledger::CustomerLedger;
use hakken_engine::synthetic::{grid_venue, open_event, GridShape};
use hakken_engine::venue::Venue;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

pub const NOW: Millis = Millis(1_700_000_000_000);

/// Limits out of the way: benches measure the seat logic, not the refusals.
pub fn bench_config() -> EngineConfig {
    EngineConfig { customer_seats_max: 0, hold_seats_max: 16, ..EngineConfig::default() }
}

/// One reserved section of `rows` x `seats_per_row` as a standalone inventory.
pub fn inventory(rows: u16, seats_per_row: u16) -> Inventory {
    let venue = Arc::new(grid_venue(GridShape { sections: 1, rows, seats_per_row, ga_sections: 0, ga_capacity: 0 }));
    inventory_on(venue, 0)
}

pub fn inventory_on(venue: Arc<Venue>, section_index: usize) -> Inventory {
    let event = open_event(&venue);
    let config = bench_config();
    Inventory::new(InventoryParams {
        key: SectionKey(section_index as u32),
        venue,
        section_index,
        event: &event,
        config: &config,
        ledger: Arc::new(CustomerLedger::new(config.customer_seats_max)),
    })
}

/// Sells `fraction` of the section's seats, chosen at random (seeded), one order per seat.
pub fn sell_fraction(inventory: &mut Inventory, seat_count: u32, fraction: f64, seed: u64) {
    let mut seats: Vec<u32> = (0..seat_count).collect();
    seats.shuffle(&mut SmallRng::seed_from_u64(seed));
    let buyer = CustomerId::new("pre-sold");
    for &seat in &seats[..(f64::from(seat_count) * fraction) as usize] {
        let hold = inventory.hold_seats(&buyer, &[seat], NOW).expect("free seat").hold;
        inventory.confirm(hold.id, &buyer, &Buyer::default(), NOW).expect("live hold");
    }
}
