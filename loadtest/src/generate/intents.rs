//! What each buyer wants: an [`Intent`] (best available, specific seats, general
//! admission), whether they poll first, what they do once holding, and their think
//! time, drawn from the buyers stream of the seed.
//!
//! A [`Plan`] works out once from the layout what buyers can be sent to (sections
//! weighed by capacity, runs of adjacent on-sale seats, categories by their seats), so
//! that each buyer costs a few binary searches. A kind of intent the layout cannot serve
//! gets no buyers.

use std::collections::BTreeMap;
use std::ops::Range;

use anyhow::{bail, ensure};

use super::arrivals::Arrival;
use super::Mix;
use crate::layout::{Layout, SeatLayout, SectionKind, SectionLayout};
use crate::prng::Rng;
use crate::queue::{Buyer, Intent, Then};

/// Spread of the lognormal think time (sigma of its logarithm): half the buyers take
/// between 0.71 and 1.4 times the median.
const THINK_SIGMA: f64 = 0.5;
/// Think times are clamped to [median / this, median × this], so that no buyer's think
/// time is absurd (the lognormal's tail is long).
const THINK_CLAMP_FACTOR: f64 = 10.0;

/// What buyers can be sent to, worked out from the layout once, so that each buyer
/// costs a few binary searches.
pub(super) struct Plan<'a> {
    mix: &'a Mix,
    /// Over [`IntentKind::ALL`]: the mix's weights, 0 for kinds the layout cannot serve.
    kinds: Weighted,
    reserved: Vec<ReservedSection<'a>>,
    /// Over `reserved`: capacity, for sections that can take a best-available hold.
    best_sections: Weighted,
    /// Over `reserved`: capacity, for sections with on-sale seats in their seat map.
    seats_sections: Weighted,
    general_admission: Vec<&'a SectionLayout>,
    /// Over `general_admission`: capacity.
    general_admission_sections: Weighted,
    /// Over `mix.quantities`.
    quantities: Weighted,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum IntentKind {
    Best,
    Seats,
    GeneralAdmission,
}

impl IntentKind {
    const ALL: [IntentKind; 3] = [IntentKind::Best, IntentKind::Seats, IntentKind::GeneralAdmission];
}

/// A reserved section, reduced to what buyers may ask for in it.
struct ReservedSection<'a> {
    id: &'a str,
    capacity: u32,
    /// The layout lists no seats for it (fetched without seat maps): best-available
    /// holds only, without a category, up to its capacity.
    seat_map_missing: bool,
    /// Seats on sale (their category is on sale), in seat-map order.
    seats: Vec<PickableSeat<'a>>,
    /// On-sale categories present in the section, by name, and their seat counts.
    categories: Vec<(&'a str, u32)>,
    /// Over `categories`: seat counts.
    category_weights: Weighted,
}

struct PickableSeat<'a> {
    id: &'a str,
    /// The run of adjacent on-sale seats this one belongs to: indices into the section's
    /// `seats`, end exclusive.
    run_start: u32,
    run_end: u32,
}

impl<'a> ReservedSection<'a> {
    fn new(layout: &'a Layout, section: &'a SectionLayout) -> ReservedSection<'a> {
        let on_sale = |category: &str| layout.categories.is_empty() || layout.categories.iter().any(|c| c == category);
        let mut seats: Vec<PickableSeat<'a>> = Vec::new();
        let mut counts: BTreeMap<&'a str, u32> = BTreeMap::new();
        let mut previous: Option<&'a SeatLayout> = None;
        for seat in section.seats.iter().filter(|seat| on_sale(&seat.category)) {
            // Adjacent: consecutive on-sale seats of one row with consecutive numbers. A
            // seat not on sale between two breaks the run, as their numbers differ by 2.
            let adjacent = previous.is_some_and(|previous| {
                previous.row == seat.row && u32::from(previous.number) + 1 == u32::from(seat.number)
            });
            let index = seats.len() as u32;
            let run_start = if adjacent { seats[seats.len() - 1].run_start } else { index };
            seats.push(PickableSeat { id: &seat.id, run_start, run_end: index + 1 });
            *counts.entry(seat.category.as_str()).or_insert(0) += 1;
            previous = Some(seat);
        }
        // Every seat of a run learns where the run ends, walking back from each end.
        for index in (0..seats.len().saturating_sub(1)).rev() {
            if seats[index + 1].run_start == seats[index].run_start {
                seats[index].run_end = seats[index + 1].run_end;
            }
        }
        let categories: Vec<(&'a str, u32)> = counts.into_iter().collect();
        let category_weights = Weighted::new(categories.iter().map(|&(_, count)| u64::from(count)));
        ReservedSection {
            id: &section.id,
            capacity: section.capacity,
            seat_map_missing: section.seats.is_empty(),
            seats,
            categories,
            category_weights,
        }
    }

    fn can_serve_best(&self) -> bool {
        self.capacity > 0 && (self.seat_map_missing || !self.seats.is_empty())
    }

    fn can_serve_seats(&self) -> bool {
        self.capacity > 0 && !self.seats.is_empty()
    }

    /// Seats the section could sell at most: its capacity, or fewer when its seat map
    /// says fewer are on sale.
    fn offer(&self) -> u32 {
        if self.seat_map_missing {
            self.capacity
        } else {
            self.capacity.min(u32::try_from(self.seats.len()).unwrap_or(u32::MAX))
        }
    }
}

impl<'a> Plan<'a> {
    pub(super) fn new(layout: &'a Layout, mix: &'a Mix) -> anyhow::Result<Plan<'a>> {
        check_layout(layout)?;
        let reserved: Vec<ReservedSection<'a>> = layout
            .sections
            .iter()
            .filter(|section| section.kind == SectionKind::Reserved)
            .map(|section| ReservedSection::new(layout, section))
            .collect();
        let general_admission: Vec<&'a SectionLayout> = layout
            .sections
            .iter()
            .filter(|section| section.kind == SectionKind::GeneralAdmission && section.capacity > 0)
            .collect();
        // Sections weighed by capacity, among those that can serve a kind of intent.
        let capacities_of = |can_serve: fn(&ReservedSection<'a>) -> bool| {
            Weighted::new(
                reserved.iter().map(|section| if can_serve(section) { u64::from(section.capacity) } else { 0 }),
            )
        };
        let best_sections = capacities_of(ReservedSection::can_serve_best);
        let seats_sections = capacities_of(ReservedSection::can_serve_seats);
        let general_admission_sections =
            Weighted::new(general_admission.iter().map(|section| u64::from(section.capacity)));
        let kinds = Weighted::new(IntentKind::ALL.iter().map(|kind| match kind {
            IntentKind::Best if best_sections.total() > 0 => u64::from(mix.best),
            IntentKind::Seats if seats_sections.total() > 0 => u64::from(mix.seats),
            IntentKind::GeneralAdmission if general_admission_sections.total() > 0 => u64::from(mix.ga),
            _ => 0,
        }));
        if kinds.total() == 0 {
            bail!(
                "no buyer can be served: the mix weighs best {}, seats {}, ga {}, but the layout of {} has {} \
                 reserved sections that can take a best-available hold, {} with on-sale seats in their seat map, \
                 and {} general-admission sections with capacity",
                mix.best,
                mix.seats,
                mix.ga,
                layout.event,
                reserved.iter().filter(|section| section.can_serve_best()).count(),
                reserved.iter().filter(|section| section.can_serve_seats()).count(),
                general_admission.len()
            );
        }
        let quantities = Weighted::new(mix.quantities.iter().map(|&(_, weight)| u64::from(weight)));
        Ok(Plan {
            mix,
            kinds,
            reserved,
            best_sections,
            seats_sections,
            general_admission,
            general_admission_sections,
            quantities,
        })
    }

    /// One buyer arriving at `arrival`.
    pub(super) fn buyer(&self, arrival: Arrival, rng: &mut Rng) -> Buyer {
        let intent = match IntentKind::ALL[self.kinds.pick(rng)] {
            IntentKind::Best => self.best(rng),
            IntentKind::Seats => self.seats(rng),
            IntentKind::GeneralAdmission => self.general_admission(rng),
        };
        let poll = rng.chance(self.mix.poll_share);
        let then_draw = rng.unit();
        let then = if then_draw < self.mix.abandon_share {
            Then::Abandon
        } else if then_draw < self.mix.abandon_share + self.mix.expire_share {
            Then::Expire
        } else {
            Then::Confirm
        };
        let think_ms = self.think_ms(rng);
        // An expiring hold has no think time: the buyer never comes back.
        let think_ms = if then == Then::Expire { 0 } else { think_ms };
        Buyer { at_us: arrival.at_us, join_us: None, phase: arrival.phase, intent, poll, then, think_ms }
    }

    fn best(&self, rng: &mut Rng) -> Intent {
        let section = &self.reserved[self.best_sections.pick(rng)];
        let quantity = self.quantity(rng);
        let wants_category = rng.chance(self.mix.category_share);
        let category = (wants_category && section.category_weights.total() > 0)
            .then(|| section.categories[section.category_weights.pick(rng)]);
        let offer = match category {
            Some((_, seats)) => seats.min(section.capacity),
            None => section.offer(),
        };
        Intent::Best {
            section: section.id.to_string(),
            quantity: quantity.min(offer),
            category: category.map(|(name, _)| name.to_string()),
        }
    }

    /// A seat drawn uniformly from the section's on-sale seats, and its neighbours to
    /// the right (or left, at the end of a run) up to the quantity.
    fn seats(&self, rng: &mut Rng) -> Intent {
        let section = &self.reserved[self.seats_sections.pick(rng)];
        let quantity = self.quantity(rng).min(section.offer());
        let first = rng.below(section.seats.len() as u64) as usize;
        let seat = &section.seats[first];
        let run = seat.run_start as usize..seat.run_end as usize;
        let block = seat_block(run, first, quantity as usize);
        Intent::Seats { seats: section.seats[block].iter().map(|seat| seat.id.to_string()).collect() }
    }

    fn general_admission(&self, rng: &mut Rng) -> Intent {
        let section = self.general_admission[self.general_admission_sections.pick(rng)];
        let quantity = self.quantity(rng).min(section.capacity);
        Intent::Ga { section: section.id.clone(), quantity }
    }

    fn quantity(&self, rng: &mut Rng) -> u32 {
        self.mix.quantities[self.quantities.pick(rng)].0
    }

    /// Lognormal around the median (its median is the median), clamped; whole
    /// milliseconds.
    fn think_ms(&self, rng: &mut Rng) -> u64 {
        let median_ms = self.mix.think_median.as_secs_f64() * 1000.0;
        let think_ms = median_ms * (THINK_SIGMA * rng.normal()).exp();
        think_ms.clamp(median_ms / THINK_CLAMP_FACTOR, median_ms * THINK_CLAMP_FACTOR).round() as u64
    }
}

/// Refuses a layout whose ids would make a queue that `Queue::read` refuses.
fn check_layout(layout: &Layout) -> anyhow::Result<()> {
    ensure!(!layout.event.is_empty(), "layout: empty event id");
    ensure!(!layout.sections.is_empty(), "layout of {}: no sections", layout.event);
    for section in &layout.sections {
        ensure!(!section.id.is_empty(), "layout of {}: a section has an empty id", layout.event);
        for (index, seat) in section.seats.iter().enumerate() {
            ensure!(
                !seat.id.is_empty() && !seat.category.is_empty(),
                "layout of {}: section {}: seat {} (from 0) has an empty id or category",
                layout.event,
                section.id,
                index
            );
        }
    }
    Ok(())
}

/// The block of `quantity` seats starting at `first`, within `run` (a range of adjacent
/// seats holding `first`): shifted left if the run ends too soon, cut short if the run
/// is shorter than `quantity`. Never empty.
fn seat_block(run: Range<usize>, first: usize, quantity: usize) -> Range<usize> {
    assert!(run.contains(&first));
    let quantity = quantity.max(1);
    let end = first.saturating_add(quantity).min(run.end);
    let start = end.saturating_sub(quantity).max(run.start);
    start..end
}

/// Picks an index with probability proportional to its weight, by binary search in the
/// cumulative weights.
struct Weighted {
    /// `cumulative[i]` is the sum of weights `0..=i`.
    cumulative: Vec<u64>,
}

impl Weighted {
    fn new(weights: impl IntoIterator<Item = u64>) -> Weighted {
        let mut total: u64 = 0;
        let cumulative = weights
            .into_iter()
            .map(|weight| {
                total = total.saturating_add(weight);
                total
            })
            .collect();
        Weighted { cumulative }
    }

    fn total(&self) -> u64 {
        self.cumulative.last().copied().unwrap_or(0)
    }

    /// Never an index of weight 0. Only called when some weight is positive (`Plan`
    /// checks): anything else is a bug.
    fn pick(&self, rng: &mut Rng) -> usize {
        assert!(self.total() > 0, "a pick among weights that are all 0");
        let target = rng.below(self.total());
        self.cumulative.partition_point(|&sum| sum <= target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seat_blocks_shift_left_and_shrink_to_their_run() {
        let check = |run: Range<usize>, first: usize, quantity: usize, expected: Range<usize>| {
            assert_eq!(seat_block(run.clone(), first, quantity), expected, "{run:?} from {first}, {quantity} seats");
        };
        check(0..6, 0, 4, 0..4);
        check(0..6, 2, 4, 2..6);
        check(0..6, 4, 4, 2..6);
        check(0..6, 5, 1, 5..6);
        check(3..5, 4, 4, 3..5);
        check(3..4, 3, 2, 3..4);
        check(0..6, 3, 0, 3..4);
    }
}
