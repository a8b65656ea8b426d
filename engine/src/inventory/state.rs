//! A section's shared sale state: seat words or general-admission stock, and the
//! per-category counters that readers (seat maps, availability polling) read without
//! going through the actor. Only the inventory writes it.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use crate::clock::Millis;
use crate::lockfree::{GaStock, SeatState, SeatStates};
use crate::venue::{CategoryIndex, SeatIndex, SeatMap, Section, SectionKind, Venue};

/// What a section's seats or units look like now. Shared by the actor (the only
/// writer) and any number of readers.
pub struct SectionState {
    pub venue: Arc<Venue>,
    pub section_index: usize,
    pub stock: Stock,
    /// Per category index: capacity, held and sold, kept by the writer.
    categories: Box<[CategoryCounters]>,
}

pub enum Stock {
    Seats(SeatStates),
    GeneralAdmission(GaStock),
}

#[derive(Default)]
struct CategoryCounters {
    capacity: u32,
    held: AtomicU32,
    sold: AtomicU32,
}

/// Counts of a section (or one of its categories). `available = capacity - held - sold`.
///
/// Read without locks while sales go on, so the numbers are each exact but may be a
/// few operations apart. Expired holds count as held until swept (one sweep interval).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub capacity: u32,
    pub available: u32,
    pub held: u32,
    pub sold: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Availability {
    pub total: Counts,
    /// Only categories that have seats in this section.
    pub categories: Vec<(CategoryIndex, Counts)>,
}

/// Seat states for drawing a seat map, one byte per seat in seat-map order.
pub mod seat_code {
    pub const FREE: u8 = 0;
    pub const HELD: u8 = 1;
    pub const SOLD: u8 = 2;
}

impl SectionState {
    pub fn new(venue: Arc<Venue>, section_index: usize) -> SectionState {
        let section = &venue.sections[section_index];
        let mut categories: Box<[CategoryCounters]> =
            (0..venue.categories.len()).map(|_| CategoryCounters::default()).collect();
        let stock = match &section.kind {
            SectionKind::Reserved(map) => {
                for seat in &map.seats {
                    categories[usize::from(seat.category.0)].capacity += 1;
                }
                Stock::Seats(SeatStates::new(map.seats.len()))
            }
            SectionKind::GeneralAdmission { capacity, category } => {
                categories[usize::from(category.0)].capacity = *capacity;
                Stock::GeneralAdmission(GaStock::new(*capacity))
            }
        };
        SectionState { venue, section_index, stock, categories }
    }

    pub fn section(&self) -> &Section {
        &self.venue.sections[self.section_index]
    }

    pub fn seat_map(&self) -> Option<&SeatMap> {
        self.section().seat_map()
    }

    pub fn availability(&self) -> Availability {
        let mut total = Counts::default();
        let mut categories = Vec::new();
        for (index, counters) in self.categories.iter().enumerate() {
            if counters.capacity == 0 {
                continue;
            }
            let held = counters.held.load(Ordering::Relaxed);
            let sold = counters.sold.load(Ordering::Relaxed);
            let counts = Counts {
                capacity: counters.capacity,
                available: counters.capacity.saturating_sub(held + sold),
                held,
                sold,
            };
            total.capacity += counts.capacity;
            total.available += counts.available;
            total.held += counts.held;
            total.sold += counts.sold;
            categories.push((CategoryIndex(index as u8), counts));
        }
        Availability { total, categories }
    }

    /// One [`seat_code`] per seat; a hold that has expired at `now` shows as free.
    /// Empty for general admission.
    pub fn seat_codes(&self, now: Millis) -> Vec<u8> {
        let Stock::Seats(seats) = &self.stock else { return Vec::new() };
        (0..seats.len() as u32)
            .map(|seat| match seats.load(seat) {
                state if state.is_takeable(now.0) => seat_code::FREE,
                SeatState::Held { .. } => seat_code::HELD,
                _ => seat_code::SOLD,
            })
            .collect()
    }

    pub(super) fn count(&self, category: CategoryIndex, change: CountChange, units: u32) {
        let counters = &self.categories[usize::from(category.0)];
        match change {
            CountChange::FreeToHeld => {
                counters.held.fetch_add(units, Ordering::Relaxed);
            }
            CountChange::HeldToFree => {
                counters.held.fetch_sub(units, Ordering::Relaxed);
            }
            CountChange::HeldToSold => {
                counters.held.fetch_sub(units, Ordering::Relaxed);
                counters.sold.fetch_add(units, Ordering::Relaxed);
            }
            CountChange::SoldToFree => {
                counters.sold.fetch_sub(units, Ordering::Relaxed);
            }
        }
    }
}

/// How units move between the counters.
#[derive(Clone, Copy)]
pub(super) enum CountChange {
    FreeToHeld,
    HeldToFree,
    HeldToSold,
    SoldToFree,
}

/// Postcondition of a seat transition: every seat in `seats` is now `expected`. The
/// seat words are shared with lock-free readers, but only the inventory writes them,
/// so nothing can have moved them since.
pub(super) fn assert_seats(states: &SeatStates, seats: &[SeatIndex], expected: SeatState, transition: &str) {
    for &seat in seats {
        let found = states.load(seat);
        debug_assert_eq!(found, expected, "{transition}: seat {seat} ends as {found:?}");
    }
}

/// Postcondition of a general-admission transition: units held and sold never pass
/// the capacity.
pub(super) fn assert_within_capacity(stock: &GaStock, transition: &str) {
    let counts = stock.counts();
    debug_assert!(
        counts.held + counts.sold <= stock.capacity(),
        "{transition}: {} held + {} sold > capacity {}",
        counts.held,
        counts.sold,
        stock.capacity()
    );
}

/// Moves seats between held/sold and sold/free in the counters and rows' unsold counts.
pub(super) fn count_sold(row_unsold: &mut [u16], state: &SectionState, seats: &[SeatIndex], change: CountChange) {
    let map = state.seat_map().expect("reserved section has a seat map");
    for &seat in seats {
        let seat = map.seats[seat as usize];
        match change {
            CountChange::HeldToSold => row_unsold[usize::from(seat.row)] -= 1,
            CountChange::SoldToFree => row_unsold[usize::from(seat.row)] += 1,
            _ => unreachable!("only sales change rows' unsold counts"),
        }
        state.count(seat.category, change, 1);
    }
}
