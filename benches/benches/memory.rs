//! Bytes per seat for a 1,000,000-seat venue: layout plus one event's sale state.
//!
//! Back of the envelope: a `Seat` is 8 bytes (row, number, category, flags, quality) and
//! its atomic state word 8 more; rows, sections and the best-available row order add a
//! few bytes per row of ~50 seats. Expect ~16-17 bytes/seat; target <= 32.
//!
//! Counted with a global allocator that tallies live heap bytes (`counting.rs`), so the
//! number is exact and independent of the machine (no RSS noise).

use hakken_benches::bench_config;
use hakken_benches::counting::{live, Counting};
use hakken_engine::clock::Clock;
use hakken_engine::config::EngineConfig;
use hakken_engine::registry::Registry;
use hakken_engine::synthetic::{grid_venue, open_event, GridShape};

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn main() {
    // 400 sections x 50 rows x 50 seats = 1,000,000 seats.
    let shape = GridShape { sections: 400, rows: 50, seats_per_row: 50, ga_sections: 0, ga_capacity: 0 };
    let seats = shape.sections as f64 * f64::from(shape.rows) * f64::from(shape.seats_per_row);
    let config = EngineConfig { actor_threads: 2, ..bench_config() };
    let mut registry = Registry::new(config, Clock::System).unwrap();

    let before_venue = live();
    let venue = grid_venue(shape);
    let event = open_event(&venue);
    let venue = registry.add_venue(venue).unwrap();
    let layout_bytes = live() - before_venue;

    let before_event = live();
    registry.add_event(event).unwrap();
    // Actors start on their arbiters asynchronously; give them a moment so their contexts count too.
    std::thread::sleep(std::time::Duration::from_millis(200));
    let event_bytes = live() - before_event;

    println!("venue: {seats} seats in {} sections", venue.sections.len());
    println!(
        "layout (shared by all events):  {:>10} bytes = {:5.2} bytes/seat",
        layout_bytes,
        layout_bytes as f64 / seats
    );
    println!(
        "one event's sale state + actors: {:>10} bytes = {:5.2} bytes/seat",
        event_bytes,
        event_bytes as f64 / seats
    );
    println!(
        "total:                           {:>10} bytes = {:5.2} bytes/seat (target <= 32)",
        layout_bytes + event_bytes,
        (layout_bytes + event_bytes) as f64 / seats
    );
    registry.shutdown();
}
