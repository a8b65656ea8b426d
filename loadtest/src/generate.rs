//! `generate`: on-sale arrival queues, made from an event's [`Layout`] and a
//! [`GenerateConfig`], as a [`Queue`] to write to a file and replay.
//!
//! The generator is pure and deterministic: no clock, no I/O, no global randomness. The
//! same layout and config give the same queue, byte for byte once written, so a queue
//! file can be remade from its header (which records the seed and every parameter), and
//! two runs against two server builds can replay exactly the same buyers.
//!
//! Determinism across platforms and dependency versions is why the module has its own
//! PRNG (`Rng`, xoshiro256** seeded by SplitMix64: both fully specified by their
//! authors) rather than `rand`'s `SmallRng` or `StdRng`, whose algorithms may change
//! between `rand` versions. Floating-point work is IEEE basic arithmetic (`sqrt`
//! included, which IEEE rounds exactly) plus `ln`, `exp` and `cos`; these three come
//! from the platform's math library and may differ in the last bit between platforms,
//! which changes an output only if it falls exactly on a rounding boundary of a whole
//! microsecond or millisecond.
//!
//! # The model
//!
//! A queue is a list of buyers, each arriving at some time after the on-sale opens
//! (the [`Shape`] of the arrivals) and wanting something (the [`Mix`]):
//!
//! - *When.* A flash sale is a spike: fans wait with the page open (or in a waiting
//!   room that lets everyone in at once), so arrivals peak at the opening and decay.
//!   [`Shape::Spike`] draws each arrival from an exponential density truncated to its
//!   window: the simplest decaying density, with one parameter (its mean), and nothing
//!   lands outside the window. [`Shape::Steady`] is a Poisson process (independent
//!   arrivals at a constant rate), the usual baseline. [`Shape::Ramp`] raises a Poisson
//!   rate step by step to find the knee: the rate beyond which latency bends upward.
//! - *What.* Each buyer asks for best-available seats in a reserved section (maybe in one
//!   price category), for specific adjacent seats picked from the seat map, or for places
//!   in a general-admission section; sections are picked in proportion to their capacity.
//!   Each buyer may first poll availability, then, once holding seats, confirms after a
//!   lognormal "think time", abandons (releases) the hold, or walks away and lets it
//!   expire.
//!
//! Buyers are grouped in *phases*: stretches of the on-sale that the replay reports
//! apart (the spike and its tail; each step of a ramp), each named in the header.
//!
//! Arrival times and buyer intents are drawn from two independent random streams of the
//! seed, so the same seed under another shape gives the same sequence of intents.

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;

use anyhow::{bail, ensure};
use serde_json::json;

use crate::layout::{Layout, SeatLayout, SectionKind, SectionLayout};
use crate::queue::{self, Buyer, Header, Intent, Phase, Queue, Then};

/// Buyers in one queue at most: the whole queue is built in memory (about 100 bytes a
/// buyer, ~1 GB at this limit).
pub const BUYERS_MAX: u64 = 10_000_000;
/// Longest a queue may last (a spike's window or tail, a ramp step, or the expected time
/// for all buyers to arrive): a week is far beyond any rehearsal, and keeps every time
/// far from overflowing.
pub const DURATION_MAX: Duration = Duration::from_secs(7 * 24 * 3600);
/// Shortest window, tail or ramp step: arrival times are whole microseconds, so a window
/// must hold many of them.
pub const DURATION_MIN: Duration = Duration::from_millis(1);
/// Highest arrival rate (and ramp step): ten a microsecond, where arrivals already share
/// their microsecond; beyond is a typo.
pub const RATE_MAX_PER_SECOND: f64 = 10_000_000.0;
/// Steps of a ramp at most. A ramp that needs more (because arrivals came slower than
/// expected) stays at the last step's rate, in the last phase, until every buyer arrived,
/// so the header's phase list stays bounded.
pub const RAMP_STEPS_MAX: u32 = 1000;
/// Longest median think time; a buyer's think time is at most ten times the median.
pub const THINK_MEDIAN_MAX: Duration = Duration::from_secs(600);
/// Spread of the lognormal think time (sigma of its logarithm): half the buyers take
/// between 0.71 and 1.4 times the median.
const THINK_SIGMA: f64 = 0.5;
/// Think times are clamped to [median / this, median × this], so that no buyer's think
/// time is absurd (the lognormal's tail is long).
const THINK_CLAMP_FACTOR: f64 = 10.0;
/// A spike's window divided by the mean of its exponential: 63% of the spike's buyers
/// arrive in the first fifth of the window, 1.2% in its last fifth.
const SPIKE_WINDOW_PER_MEAN: f64 = 5.0;
/// A spike's tail divided by the mean of its exponential: a slower decay than the spike.
const SPIKE_TAIL_PER_MEAN: f64 = 3.0;
/// Tolerance of `abandon_share + expire_share <= 1`, for shares computed as complements
/// (1 - x) whose floating-point sum may land a hair above 1.
const SHARE_SUM_TOLERANCE: f64 = 1e-9;
/// Random streams of the seed (`seed ^ stream` seeds the PRNG): arrival times and buyer
/// intents are drawn apart.
const ARRIVALS_STREAM: u64 = 0x6172_7269_7661_6c73; // "arrivals"
const BUYERS_STREAM: u64 = 0x6275_7965_7273_0000; // "buyers"

/// Everything that determines a queue, besides the layout.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerateConfig {
    pub seed: u64,
    /// Buyers in the queue, in `1..=BUYERS_MAX`.
    pub buyers: u64,
    pub shape: Shape,
    pub mix: Mix,
}

/// When buyers arrive, relative to the opening of the on-sale.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Shape {
    /// Flash-sale spike: `share` of buyers arrive within `window` after the on-sale
    /// opens, front-loaded (most in the first seconds), the rest in a decaying tail over
    /// `tail`.
    ///
    /// Each buyer belongs to the spike with probability `share`, and then arrives in
    /// `[0, window)` drawn from an exponential of mean `window / 5` truncated to the
    /// window; otherwise in `[0, tail)`, from an exponential of mean `tail / 3`. The tail
    /// starts at the opening too (stragglers trickle in from the start), so slightly more
    /// than `share` arrive within `window`: the tail's early part adds to it.
    ///
    /// Phases: 0, `spike (first 60 s)` (for a 60 s window), arrivals before `window`; 1,
    /// `tail`, after.
    Spike { window: Duration, share: f64, tail: Duration },
    /// Poisson arrivals at `rate` per second (exponential gaps), until `buyers` arrived.
    /// One phase, like `steady 1000/s`.
    Steady { rate: f64 },
    /// Step ramp to find the knee: `from` per second for `every`, then `from + step`, ...
    /// (Poisson within each step), until `buyers` arrived. One phase per step, named like
    /// `ramp 3: 4000/s` (steps counted from 1), with its rate. After [`RAMP_STEPS_MAX`]
    /// steps the rate stops rising.
    Ramp { from: f64, step: f64, every: Duration },
}

/// What buyers want, and what they do once they hold seats.
#[derive(Clone, Debug, PartialEq)]
pub struct Mix {
    /// Relative weights of intents: best available, specific seats, general admission.
    /// A kind the layout cannot serve (no reserved section, no seat map, no
    /// general-admission section) gets weight 0; if all are then 0, `generate` fails.
    pub best: u32,
    pub seats: u32,
    pub ga: u32,
    /// Seats per buyer: (quantity, weight) pairs, e.g. [(1,15),(2,50),(3,10),(4,25)].
    /// A quantity is clamped to what the section can offer at all.
    pub quantities: Vec<(u32, u32)>,
    /// Share (0..=1) of best-available buyers who ask for one price category (an on-sale
    /// category present in that section, drawn in proportion to its seats there).
    pub category_share: f64,
    /// Share of buyers who poll availability before holding (`poll: true`).
    pub poll_share: f64,
    /// Shares of holders who abandon (release) and who let the hold expire; the rest
    /// confirm. Sum <= 1.
    pub abandon_share: f64,
    pub expire_share: f64,
    /// Median payment think time; per buyer it is lognormal around it (sigma 0.5),
    /// clamped to [median/10, median*10].
    pub think_median: Duration,
}

impl Default for Mix {
    /// Mostly best-available pairs, a fifth picking seats, a tenth general admission;
    /// 5% abandon and 2% let the hold expire; five seconds to pay.
    fn default() -> Mix {
        Mix {
            best: 70,
            seats: 20,
            ga: 10,
            quantities: vec![(1, 15), (2, 50), (3, 10), (4, 25)],
            category_share: 0.5,
            poll_share: 0.3,
            abandon_share: 0.05,
            expire_share: 0.02,
            think_median: Duration::from_secs(5),
        }
    }
}

/// Makes the queue of `config.buyers` buyers for `layout`, in arrival order.
///
/// Fails, naming the value, on a config out of bounds or a layout with nothing the mix
/// can buy; never panics.
pub fn generate(layout: &Layout, config: &GenerateConfig) -> anyhow::Result<Queue> {
    check_config(config)?;
    let plan = Plan::new(layout, &config.mix)?;
    let mut arrivals_rng = Rng::new(config.seed ^ ARRIVALS_STREAM);
    let (arrivals, phases) = match config.shape {
        Shape::Spike { window, share, tail } => spike(config.buyers, window, share, tail, &mut arrivals_rng),
        Shape::Steady { rate } => steady(config.buyers, rate, &mut arrivals_rng),
        Shape::Ramp { from, step, every } => ramp(config.buyers, from, step, every, &mut arrivals_rng),
    };
    assert_eq!(arrivals.len() as u64, config.buyers);
    assert!(arrivals.windows(2).all(|pair| pair[0].at_us <= pair[1].at_us));
    assert!(arrivals.iter().all(|arrival| (arrival.phase as usize) < phases.len()));

    let mut buyers_rng = Rng::new(config.seed ^ BUYERS_STREAM);
    let buyers: Vec<Buyer> = arrivals.into_iter().map(|arrival| plan.buyer(arrival, &mut buyers_rng)).collect();
    let header = Header {
        hakken_queue: queue::FORMAT_VERSION,
        event: layout.event.clone(),
        shape: shape_name(&config.shape).to_string(),
        seed: config.seed,
        buyers: config.buyers,
        generated_by: format!("hakken-loadtest {}", env!("CARGO_PKG_VERSION")),
        parameters: parameters(config),
        phases,
    };
    Ok(Queue { header, buyers })
}

fn shape_name(shape: &Shape) -> &'static str {
    match shape {
        Shape::Spike { .. } => "spike",
        Shape::Steady { .. } => "steady",
        Shape::Ramp { .. } => "ramp",
    }
}

/// The header's `parameters`: `{"mix": {...}, "<shape>": {...}}`, every value of the
/// config besides seed and buyers (which have their own header fields). Durations are in
/// seconds. Keys are written in alphabetical order, so the file is the same whether
/// serde_json keeps insertion order (its `preserve_order` feature) or sorts.
fn parameters(config: &GenerateConfig) -> serde_json::Map<String, serde_json::Value> {
    let mix = &config.mix;
    let quantities: Vec<[u32; 2]> = mix.quantities.iter().map(|&(quantity, weight)| [quantity, weight]).collect();
    let shape = match config.shape {
        Shape::Spike { window, share, tail } => {
            json!({ "share": share, "tail_seconds": tail.as_secs_f64(), "window_seconds": window.as_secs_f64() })
        }
        Shape::Steady { rate } => json!({ "rate_per_second": rate }),
        Shape::Ramp { from, step, every } => json!({
            "every_seconds": every.as_secs_f64(),
            "from_per_second": from,
            "step_per_second": step,
        }),
    };
    let mut parameters = serde_json::Map::new();
    parameters.insert(
        "mix".to_string(),
        json!({
            "abandon_share": mix.abandon_share,
            "best": mix.best,
            "category_share": mix.category_share,
            "expire_share": mix.expire_share,
            "ga": mix.ga,
            "poll_share": mix.poll_share,
            "quantities": quantities,
            "seats": mix.seats,
            "think_median_seconds": mix.think_median.as_secs_f64(),
        }),
    );
    parameters.insert(shape_name(&config.shape).to_string(), shape);
    parameters
}

fn check_config(config: &GenerateConfig) -> anyhow::Result<()> {
    ensure!((1..=BUYERS_MAX).contains(&config.buyers), "buyers: {} is not in 1..={BUYERS_MAX}", config.buyers);
    let buyers = config.buyers as f64;
    match config.shape {
        Shape::Spike { window, share, tail } => {
            check_duration("spike window", window)?;
            check_share("spike share", share)?;
            // A spike that takes every buyer has no tail, and needs no length for it.
            if share < 1.0 {
                check_duration("spike tail", tail)?;
            }
        }
        Shape::Steady { rate } => {
            check_rate("steady rate", rate)?;
            check_expected_duration(buyers / rate)?;
        }
        Shape::Ramp { from, step, every } => {
            check_rate("ramp from", from)?;
            ensure!(
                step.is_finite() && (0.0..=RATE_MAX_PER_SECOND).contains(&step),
                "ramp step: {step}/s is not in 0..={RATE_MAX_PER_SECOND}/s"
            );
            check_duration("ramp every", every)?;
            check_expected_duration(ramp_expected_seconds(buyers, from, step, every))?;
        }
    }

    let mix = &config.mix;
    ensure!(!mix.quantities.is_empty(), "mix quantities: empty (give at least one (quantity, weight) pair)");
    ensure!(
        mix.quantities.len() <= queue::QUANTITY_MAX as usize,
        "mix quantities: {} pairs, more than the {} possible quantities",
        mix.quantities.len(),
        queue::QUANTITY_MAX
    );
    for (index, &(quantity, _)) in mix.quantities.iter().enumerate() {
        ensure!(
            (1..=queue::QUANTITY_MAX).contains(&quantity),
            "mix quantities: quantity {quantity} is not in 1..={}",
            queue::QUANTITY_MAX
        );
        ensure!(
            mix.quantities[..index].iter().all(|&(earlier, _)| earlier != quantity),
            "mix quantities: quantity {quantity} is listed twice"
        );
    }
    ensure!(
        mix.quantities.iter().any(|&(_, weight)| weight > 0),
        "mix quantities: every weight is 0 (at least one must be positive)"
    );
    check_share("mix category_share", mix.category_share)?;
    check_share("mix poll_share", mix.poll_share)?;
    check_share("mix abandon_share", mix.abandon_share)?;
    check_share("mix expire_share", mix.expire_share)?;
    ensure!(
        mix.abandon_share + mix.expire_share <= 1.0 + SHARE_SUM_TOLERANCE,
        "mix abandon_share + expire_share: {} + {} is more than 1",
        mix.abandon_share,
        mix.expire_share
    );
    ensure!(
        mix.think_median <= THINK_MEDIAN_MAX,
        "mix think_median: {:?} is more than {THINK_MEDIAN_MAX:?}",
        mix.think_median
    );
    Ok(())
}

fn check_share(name: &str, share: f64) -> anyhow::Result<()> {
    // Written so that NaN fails too.
    ensure!((0.0..=1.0).contains(&share), "{name}: {share} is not a share between 0 and 1");
    Ok(())
}

fn check_rate(name: &str, rate_per_second: f64) -> anyhow::Result<()> {
    ensure!(
        rate_per_second > 0.0 && rate_per_second <= RATE_MAX_PER_SECOND,
        "{name}: {rate_per_second}/s is not a rate above 0 and at most {RATE_MAX_PER_SECOND}/s"
    );
    Ok(())
}

fn check_duration(name: &str, duration: Duration) -> anyhow::Result<()> {
    ensure!(
        (DURATION_MIN..=DURATION_MAX).contains(&duration),
        "{name}: {duration:?} is not between {DURATION_MIN:?} and {DURATION_MAX:?}"
    );
    Ok(())
}

fn check_expected_duration(seconds: f64) -> anyhow::Result<()> {
    ensure!(
        seconds <= DURATION_MAX.as_secs_f64(),
        "the buyers would take about {seconds:.0} s to arrive at this rate, more than {DURATION_MAX:?}"
    );
    Ok(())
}

/// The time a ramp needs, on average, for `buyers` arrivals: whole steps until the
/// remaining buyers fit in one, which then takes its share. Bounded by
/// [`RAMP_STEPS_MAX`] iterations.
fn ramp_expected_seconds(buyers: f64, from: f64, step: f64, every: Duration) -> f64 {
    let every_seconds = every.as_secs_f64();
    let mut remaining = buyers;
    let mut seconds = 0.0;
    for index in 0..RAMP_STEPS_MAX {
        let rate = ramp_rate(from, step, index);
        if remaining <= rate * every_seconds || index + 1 == RAMP_STEPS_MAX {
            return seconds + remaining / rate;
        }
        remaining -= rate * every_seconds;
        seconds += every_seconds;
    }
    seconds
}

/// The rate of step `index` (from 0), computed afresh rather than summed step by step,
/// so that it does not drift.
fn ramp_rate(from: f64, step: f64, index: u32) -> f64 {
    from + f64::from(index) * step
}

/// When one buyer arrives, and in which phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Arrival {
    at_us: u64,
    phase: u32,
}

/// Arrival times of a flash sale: a front-loaded spike in `[0, window)` and a decaying
/// tail in `[0, tail)`, mixed and sorted (see [`Shape::Spike`]).
fn spike(buyers: u64, window: Duration, share: f64, tail: Duration, rng: &mut Rng) -> (Vec<Arrival>, Vec<Phase>) {
    let window_us = window.as_micros() as u64;
    let tail_us = tail.as_micros() as u64;
    let mut times_us: Vec<u64> = (0..buyers)
        .map(|_| {
            if rng.chance(share) {
                truncated_exponential_us(window_us, SPIKE_WINDOW_PER_MEAN, rng)
            } else {
                truncated_exponential_us(tail_us, SPIKE_TAIL_PER_MEAN, rng)
            }
        })
        .collect();
    times_us.sort_unstable();
    let arrivals =
        times_us.into_iter().map(|at_us| Arrival { at_us, phase: if at_us < window_us { 0 } else { 1 } }).collect();
    let phases = vec![
        Phase { name: format!("spike (first {} s)", window.as_secs_f64()), rate_per_second: None },
        Phase { name: "tail".to_string(), rate_per_second: None },
    ];
    (arrivals, phases)
}

/// A time in `[0, length_us)` from an exponential density of mean
/// `length_us / length_per_mean`, truncated to that interval (by inverting its
/// distribution function, so no draw is rejected). 0 when the length is 0.
fn truncated_exponential_us(length_us: u64, length_per_mean: f64, rng: &mut Rng) -> u64 {
    let length = length_us as f64;
    let mean = length / length_per_mean;
    // The share of the untruncated exponential that falls in the interval.
    let inside = 1.0 - (-length_per_mean).exp();
    let time = -mean * (1.0 - rng.unit() * inside).ln();
    // Rounding may land the time on the interval's end; keep it inside.
    (time as u64).min(length_us.saturating_sub(1))
}

/// Poisson arrivals at `rate` a second: exponential gaps, the first from the opening.
fn steady(buyers: u64, rate: f64, rng: &mut Rng) -> (Vec<Arrival>, Vec<Phase>) {
    let mean_gap_us = 1e6 / rate;
    let mut time_us = 0.0;
    let arrivals = (0..buyers)
        .map(|_| {
            time_us += rng.exponential() * mean_gap_us;
            Arrival { at_us: time_us as u64, phase: 0 }
        })
        .collect();
    let phases = vec![Phase { name: format!("steady {rate}/s"), rate_per_second: Some(rate) }];
    (arrivals, phases)
}

/// Poisson arrivals whose rate rises by `step` every `every`. An exponential gap that
/// would cross the end of a step is dropped and drawn again from the end at the next
/// step's rate: by the exponential's lack of memory, that is exactly a Poisson process
/// with a piecewise-constant rate.
fn ramp(buyers: u64, from: f64, step: f64, every: Duration, rng: &mut Rng) -> (Vec<Arrival>, Vec<Phase>) {
    let every_us = every.as_micros() as f64;
    let mut arrivals = Vec::with_capacity(buyers as usize);
    let mut index: u32 = 0;
    let mut time_us = 0.0;
    while (arrivals.len() as u64) < buyers {
        let step_end_us = f64::from(index + 1) * every_us;
        let next_us = time_us + rng.exponential() * 1e6 / ramp_rate(from, step, index);
        if next_us >= step_end_us && index + 1 < RAMP_STEPS_MAX {
            index += 1;
            time_us = step_end_us;
            continue;
        }
        time_us = next_us;
        arrivals.push(Arrival { at_us: time_us as u64, phase: index });
    }
    let phases = (0..=index)
        .map(|index| {
            let rate = ramp_rate(from, step, index);
            Phase { name: format!("ramp {}: {rate}/s", index + 1), rate_per_second: Some(rate) }
        })
        .collect();
    (arrivals, phases)
}

/// What buyers can be sent to, worked out from the layout once, so that each buyer
/// costs a few binary searches.
struct Plan<'a> {
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
    fn new(layout: &'a Layout, mix: &'a Mix) -> anyhow::Result<Plan<'a>> {
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
    fn buyer(&self, arrival: Arrival, rng: &mut Rng) -> Buyer {
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
        Buyer { at_us: arrival.at_us, phase: arrival.phase, intent, poll, then, think_ms }
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

/// xoshiro256** 1.0 (Blackman and Vigna, <https://prng.di.unimi.it/>), its state seeded
/// from SplitMix64 as its authors advise: small, fast, statistically sound, and the same
/// on every platform forever.
struct Rng {
    state: [u64; 4],
}

impl Rng {
    fn new(seed: u64) -> Rng {
        let mut splitmix = seed;
        let mut state = [0; 4];
        for word in &mut state {
            *word = splitmix64(&mut splitmix);
        }
        Rng { state }
    }

    fn next_u64(&mut self) -> u64 {
        let state = &mut self.state;
        let result = state[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let shifted = state[1] << 17;
        state[2] ^= state[0];
        state[3] ^= state[1];
        state[1] ^= state[2];
        state[0] ^= state[3];
        state[2] ^= shifted;
        state[3] = state[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1): 53 random bits, every value a multiple of 2^-53.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [0, bound) by multiply-shift (Lemire): the bias, below bound / 2^64,
    /// is far below anything a load test could notice.
    fn below(&mut self, bound: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }

    /// True with probability `share`.
    fn chance(&mut self, share: f64) -> bool {
        self.unit() < share
    }

    /// Exponential of mean 1; `1 - unit` is in (0, 1], so the logarithm is finite.
    fn exponential(&mut self) -> f64 {
        -(1.0 - self.unit()).ln()
    }

    /// Standard normal, by the Box–Muller transform (one of its pair of values).
    fn normal(&mut self) -> f64 {
        let radius = (-2.0 * (1.0 - self.unit()).ln()).sqrt();
        let angle = std::f64::consts::TAU * self.unit();
        radius * angle.cos()
    }
}

/// SplitMix64 (Steele, Lea and Flood): one step of its sequence.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut mixed = *state;
    mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    mixed ^ (mixed >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two reserved sections (S101: rows A, B with a gap in its numbers, C with a seat of
    /// a category not on sale; S102: rows A, B, with a gap), a general-admission floor,
    /// and CAT1, CAT2 on sale.
    fn layout() -> Layout {
        let row = |section: &str, row: &str, numbers: &[u16], category: &dyn Fn(u16) -> &'static str| {
            numbers
                .iter()
                .map(|&number| SeatLayout {
                    id: format!("{section}-{row}-{number}"),
                    row: row.to_string(),
                    number,
                    category: category(number).to_string(),
                })
                .collect::<Vec<_>>()
        };
        let s101 = [
            row("S101", "A", &[1, 2, 3, 4, 5, 6], &|_| "CAT1"),
            row("S101", "B", &[1, 2, 3, 5, 6, 7, 8], &|number| if number <= 3 { "CAT1" } else { "CAT2" }),
            row("S101", "C", &[1, 2, 3, 4, 5], &|number| if number == 3 { "CAT3" } else { "CAT2" }),
        ]
        .concat();
        let s102 = [row("S102", "A", &[10, 11, 12, 13, 14], &|_| "CAT2"), row("S102", "B", &[1, 2, 4, 5], &|_| "CAT2")]
            .concat();
        Layout {
            event: "demo-2027".to_string(),
            sections: vec![
                SectionLayout {
                    id: "S101".to_string(),
                    kind: SectionKind::Reserved,
                    capacity: s101.len() as u32,
                    seats: s101,
                },
                SectionLayout {
                    id: "S102".to_string(),
                    kind: SectionKind::Reserved,
                    capacity: s102.len() as u32,
                    seats: s102,
                },
                SectionLayout {
                    id: "FLOOR".to_string(),
                    kind: SectionKind::GeneralAdmission,
                    capacity: 500,
                    seats: Vec::new(),
                },
            ],
            categories: vec!["CAT1".to_string(), "CAT2".to_string()],
        }
    }

    fn config(buyers: u64, shape: Shape) -> GenerateConfig {
        GenerateConfig { seed: 7, buyers, shape, mix: Mix::default() }
    }

    fn spike_shape() -> Shape {
        Shape::Spike { window: Duration::from_secs(60), share: 0.8, tail: Duration::from_secs(3600) }
    }

    fn bytes(queue: &Queue) -> Vec<u8> {
        let mut bytes = Vec::new();
        queue.write(&mut bytes).expect("writes");
        bytes
    }

    fn share(buyers: &[Buyer], predicate: impl Fn(&Buyer) -> bool) -> f64 {
        buyers.iter().filter(|buyer| predicate(buyer)).count() as f64 / buyers.len() as f64
    }

    fn assert_near(name: &str, actual: f64, expected: f64, tolerance: f64) {
        assert!((actual - expected).abs() <= tolerance, "{name}: {actual} is not within {tolerance} of {expected}");
    }

    /// Panics, naming the buyer, unless its intent is one the layout can serve.
    fn check_buyer(layout: &Layout, mix: &Mix, buyer: &Buyer) {
        let section_of = |id: &str| layout.sections.iter().find(|section| section.id == id);
        let quantity_max = mix.quantities.iter().map(|&(quantity, _)| quantity).max().unwrap();
        let quantity = buyer.intent.quantity();
        assert!((1..=quantity_max).contains(&quantity), "{buyer:?}");
        match &buyer.intent {
            Intent::Best { section, quantity, category } => {
                let section = section_of(section).unwrap_or_else(|| panic!("{buyer:?}: no such section"));
                assert_eq!(section.kind, SectionKind::Reserved, "{buyer:?}");
                assert!(*quantity <= section.capacity, "{buyer:?}");
                if let Some(category) = category {
                    assert!(layout.categories.contains(category), "{buyer:?}: category not on sale");
                    let seats = section.seats.iter().filter(|seat| &seat.category == category).count();
                    assert!(*quantity as usize <= seats, "{buyer:?}: more than the category's {seats} seats");
                }
            }
            Intent::Seats { seats } => {
                let found: Vec<(&SectionLayout, &SeatLayout)> = seats
                    .iter()
                    .map(|id| {
                        layout
                            .sections
                            .iter()
                            .find_map(|section| {
                                section.seats.iter().find(|seat| &seat.id == id).map(|seat| (section, seat))
                            })
                            .unwrap_or_else(|| panic!("{buyer:?}: no seat {id}"))
                    })
                    .collect();
                let (section, first) = found[0];
                assert_eq!(section.kind, SectionKind::Reserved, "{buyer:?}");
                for (index, (seat_section, seat)) in found.iter().enumerate() {
                    assert_eq!(seat_section.id, section.id, "{buyer:?}: seats of two sections");
                    assert_eq!(seat.row, first.row, "{buyer:?}: seats of two rows");
                    assert_eq!(usize::from(seat.number), usize::from(first.number) + index, "{buyer:?}: not adjacent");
                    assert!(layout.categories.contains(&seat.category), "{buyer:?}: a seat not on sale");
                }
            }
            Intent::Ga { section, quantity } => {
                let section = section_of(section).unwrap_or_else(|| panic!("{buyer:?}: no such section"));
                assert_eq!(section.kind, SectionKind::GeneralAdmission, "{buyer:?}");
                assert!(*quantity <= section.capacity, "{buyer:?}");
            }
        }
        if buyer.then == Then::Expire {
            assert_eq!(buyer.think_ms, 0, "{buyer:?}");
        } else {
            let median_ms = mix.think_median.as_millis() as u64;
            assert!((median_ms / 10..=median_ms * 10).contains(&buyer.think_ms), "{buyer:?}");
        }
    }

    #[test]
    fn prngs_match_their_reference_outputs() {
        // SplitMix64 from 0, and xoshiro256** from the state [1, 2, 3, 4], as published.
        let mut state = 0;
        assert_eq!(splitmix64(&mut state), 0xe220_a839_7b1d_cdaf);
        let mut rng = Rng { state: [1, 2, 3, 4] };
        let outputs: Vec<u64> = (0..4).map(|_| rng.next_u64()).collect();
        assert_eq!(outputs, [11520, 0, 1509978240, 1215971899390074240]);
    }

    #[test]
    fn the_same_seed_makes_the_same_bytes() {
        let layout = layout();
        for shape in [
            spike_shape(),
            Shape::Steady { rate: 1000.0 },
            Shape::Ramp { from: 100.0, step: 100.0, every: Duration::from_secs(1) },
        ] {
            let config = config(1000, shape);
            let first = bytes(&generate(&layout, &config).expect("generates"));
            let second = bytes(&generate(&layout, &config).expect("generates"));
            assert_eq!(first, second, "{shape:?}");
            let other_seed = GenerateConfig { seed: 8, ..config.clone() };
            assert_ne!(first, bytes(&generate(&layout, &other_seed).expect("generates")), "{shape:?}");
        }
    }

    /// The generator's output is part of what a seed means: a queue file remade from its
    /// header must be the same file. A change here must be deliberate (and noted).
    #[test]
    fn a_seed_keeps_its_meaning() {
        let queue = generate(&layout(), &config(4, Shape::Steady { rate: 1000.0 })).expect("generates");
        let written = String::from_utf8(bytes(&queue)).expect("utf-8");
        let header = r#"{"hakken_queue":1,"event":"demo-2027","shape":"steady","seed":7,"buyers":4,"generated_by":"hakken-loadtest VERSION","parameters":{"mix":{"abandon_share":0.05,"best":70,"category_share":0.5,"expire_share":0.02,"ga":10,"poll_share":0.3,"quantities":[[1,15],[2,50],[3,10],[4,25]],"seats":20,"think_median_seconds":5.0},"steady":{"rate_per_second":1000.0}},"phases":[{"name":"steady 1000/s","rate_per_second":1000.0}]}"#;
        let expected = [
            &header.replace("VERSION", env!("CARGO_PKG_VERSION")),
            r#"{"at_us":585,"phase":0,"intent":"ga","section":"FLOOR","quantity":1,"poll":true,"then":"confirm","think_ms":5110}"#,
            r#"{"at_us":756,"phase":0,"intent":"best","section":"S102","quantity":4,"category":"CAT2","then":"confirm","think_ms":4910}"#,
            r#"{"at_us":1830,"phase":0,"intent":"best","section":"S102","quantity":2,"then":"confirm","think_ms":2249}"#,
            r#"{"at_us":2035,"phase":0,"intent":"ga","section":"FLOOR","quantity":2,"then":"confirm","think_ms":2763}"#,
        ];
        assert_eq!(written.lines().collect::<Vec<_>>(), expected);
    }

    #[test]
    fn spike_arrivals_are_front_loaded() {
        let queue = generate(&layout(), &config(20_000, spike_shape())).expect("generates");
        let buyers = &queue.buyers;
        assert!(buyers.windows(2).all(|pair| pair[0].at_us <= pair[1].at_us));
        let seconds = |buyer: &Buyer| buyer.at_us as f64 / 1e6;
        // 0.8 from the spike, plus the tail's first minute: 0.2 × 5.1%.
        assert_near("share before 60 s", share(buyers, |buyer| seconds(buyer) < 60.0), 0.81, 0.03);
        let first_10_s = buyers.iter().filter(|buyer| seconds(buyer) < 10.0).count();
        let from_50_to_60_s = buyers.iter().filter(|buyer| (50.0..60.0).contains(&seconds(buyer))).count();
        assert!(first_10_s > 10 * from_50_to_60_s, "{first_10_s} in the first 10 s, {from_50_to_60_s} in 50-60 s");
        assert!(buyers.iter().all(|buyer| seconds(buyer) < 3600.0));
        assert!(buyers.iter().all(|buyer| (buyer.phase == 0) == (seconds(buyer) < 60.0)), "phase by time");
        let names: Vec<&str> = queue.header.phases.iter().map(|phase| phase.name.as_str()).collect();
        assert_eq!(names, ["spike (first 60 s)", "tail"]);
        assert_eq!(queue.header.shape, "spike");
    }

    #[test]
    fn a_whole_spike_has_no_tail() {
        let shape = Shape::Spike { window: Duration::from_secs(10), share: 1.0, tail: Duration::ZERO };
        let queue = generate(&layout(), &config(1000, shape)).expect("generates");
        assert!(queue.buyers.iter().all(|buyer| buyer.at_us < 10_000_000 && buyer.phase == 0));
    }

    #[test]
    fn steady_arrivals_keep_the_rate() {
        let queue = generate(&layout(), &config(20_000, Shape::Steady { rate: 1000.0 })).expect("generates");
        let last_seconds = queue.buyers.last().expect("buyers").at_us as f64 / 1e6;
        assert_near("last arrival, seconds", last_seconds, 20.0, 1.0);
        assert!(queue.buyers.windows(2).all(|pair| pair[0].at_us <= pair[1].at_us));
        assert_eq!(queue.header.phases, [Phase { name: "steady 1000/s".to_string(), rate_per_second: Some(1000.0) }]);
    }

    #[test]
    fn ramp_steps_raise_the_rate() {
        let shape = Shape::Ramp { from: 500.0, step: 500.0, every: Duration::from_secs(5) };
        let queue = generate(&layout(), &config(20_000, shape)).expect("generates");
        // Steps of 2500, 5000 and 7500 buyers, then the last 5000 in the fourth.
        let phases = &queue.header.phases;
        assert_eq!(phases.len(), 4, "{phases:?}");
        assert_eq!(phases[2], Phase { name: "ramp 3: 1500/s".to_string(), rate_per_second: Some(1500.0) });
        for (index, phase) in phases.iter().enumerate().take(phases.len() - 1) {
            let rate = phase.rate_per_second.expect("a rate");
            assert_eq!(rate, 500.0 * (index + 1) as f64);
            let count = queue.buyers.iter().filter(|buyer| buyer.phase as usize == index).count() as f64;
            assert_near(&phase.name, count, rate * 5.0, rate * 5.0 * 0.05);
            let in_step = |buyer: &&Buyer| (buyer.at_us / 5_000_000) as usize == index;
            assert!(queue.buyers.iter().filter(in_step).all(|buyer| buyer.phase as usize == index));
        }
        assert!(queue.buyers.windows(2).all(|pair| pair[0].at_us <= pair[1].at_us && pair[0].phase <= pair[1].phase));
    }

    #[test]
    fn a_ramp_stops_rising_after_its_last_step() {
        // A thousand steps of a millisecond bring about 0.1 buyers; the last rate stays.
        let shape = Shape::Ramp { from: 0.1, step: 0.0, every: Duration::from_millis(1) };
        let queue = generate(&layout(), &config(200, shape)).expect("generates");
        assert_eq!(queue.header.phases.len(), RAMP_STEPS_MAX as usize);
        assert_eq!(queue.buyers.len(), 200);
    }

    #[test]
    fn every_buyer_fits_the_layout_and_the_mix() {
        let layout = layout();
        let mix = Mix::default();
        for shape in [
            spike_shape(),
            Shape::Steady { rate: 1000.0 },
            Shape::Ramp { from: 500.0, step: 500.0, every: Duration::from_secs(5) },
        ] {
            let queue = generate(&layout, &config(20_000, shape)).expect("generates");
            let buyers = &queue.buyers;
            assert_eq!(buyers.len(), 20_000);
            for buyer in buyers {
                check_buyer(&layout, &mix, buyer);
            }
            let is_best = |buyer: &Buyer| matches!(buyer.intent, Intent::Best { .. });
            assert_near("best", share(buyers, is_best), 0.7, 0.02);
            assert_near("seats", share(buyers, |buyer| matches!(buyer.intent, Intent::Seats { .. })), 0.2, 0.02);
            assert_near("ga", share(buyers, |buyer| matches!(buyer.intent, Intent::Ga { .. })), 0.1, 0.02);
            assert_near("poll", share(buyers, |buyer| buyer.poll), 0.3, 0.02);
            assert_near("abandon", share(buyers, |buyer| buyer.then == Then::Abandon), 0.05, 0.02);
            assert_near("expire", share(buyers, |buyer| buyer.then == Then::Expire), 0.02, 0.02);
            let best: Vec<Buyer> = buyers.iter().filter(|buyer| is_best(buyer)).cloned().collect();
            let with_category = |buyer: &Buyer| matches!(buyer.intent, Intent::Best { category: Some(_), .. });
            assert_near("category", share(&best, with_category), 0.5, 0.02);
            let s102 = |buyer: &Buyer| buyer.intent.section() == Some("S102");
            // Capacity 9 against S101's 18: a third of best-available buyers.
            assert_near("S102", share(&best, s102), 9.0 / 27.0, 0.02);
            let mut think_ms: Vec<u64> =
                buyers.iter().filter(|buyer| buyer.then != Then::Expire).map(|buyer| buyer.think_ms).collect();
            think_ms.sort_unstable();
            assert_near("median think ms", think_ms[think_ms.len() / 2] as f64, 5000.0, 100.0);
        }
    }

    #[test]
    fn specific_seats_stay_in_runs_of_on_sale_seats() {
        let layout = layout();
        let mix = Mix { best: 0, seats: 1, ga: 0, quantities: vec![(4, 1)], ..Mix::default() };
        let queue =
            generate(&layout, &GenerateConfig { seed: 3, buyers: 2000, shape: spike_shape(), mix: mix.clone() })
                .expect("generates");
        let mut blocks: Vec<Vec<String>> = Vec::new();
        for buyer in &queue.buyers {
            check_buyer(&layout, &mix, buyer);
            let Intent::Seats { seats } = &buyer.intent else { panic!("{buyer:?}: not specific seats") };
            assert!(!seats.iter().any(|seat| seat.starts_with("S101-C-3")), "{buyer:?}: CAT3 is not on sale");
            blocks.push(seats.clone());
        }
        blocks.sort();
        blocks.dedup();
        // Every block of 4 (or whole shorter run) there is, and nothing else.
        let expected: Vec<Vec<String>> = [
            "S101-A-1 S101-A-2 S101-A-3 S101-A-4",
            "S101-A-2 S101-A-3 S101-A-4 S101-A-5",
            "S101-A-3 S101-A-4 S101-A-5 S101-A-6",
            "S101-B-1 S101-B-2 S101-B-3",
            "S101-B-5 S101-B-6 S101-B-7 S101-B-8",
            "S101-C-1 S101-C-2",
            "S101-C-4 S101-C-5",
            "S102-A-10 S102-A-11 S102-A-12 S102-A-13",
            "S102-A-11 S102-A-12 S102-A-13 S102-A-14",
            "S102-B-1 S102-B-2",
            "S102-B-4 S102-B-5",
        ]
        .iter()
        .map(|block| block.split(' ').map(str::to_string).collect())
        .collect();
        assert_eq!(blocks, expected);
    }

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

    #[test]
    fn quantities_are_clamped_to_the_section() {
        let mut layout = layout();
        layout.sections[2].capacity = 2;
        layout.categories = Vec::new(); // All categories on sale, CAT3 included.
        let mix = Mix { quantities: vec![(30, 1)], ..Mix::default() };
        let queue =
            generate(&layout, &GenerateConfig { seed: 1, buyers: 2000, shape: spike_shape(), mix }).expect("generates");
        for buyer in &queue.buyers {
            let quantity = buyer.intent.quantity();
            match &buyer.intent {
                Intent::Best { section, category, .. } => {
                    let section = layout.sections.iter().find(|candidate| &candidate.id == section).unwrap();
                    let seats =
                        section.seats.iter().filter(|seat| category.as_ref().is_none_or(|c| c == &seat.category));
                    assert_eq!(quantity as usize, seats.count(), "{buyer:?}");
                }
                // The longest run is S101's row A, of 6.
                Intent::Seats { .. } => assert!(quantity <= 6, "{buyer:?}"),
                Intent::Ga { .. } => assert_eq!(quantity, 2, "{buyer:?}"),
            }
        }
        let cat3 = |buyer: &Buyer| matches!(&buyer.intent, Intent::Best { category: Some(c), .. } if c == "CAT3");
        assert!(queue.buyers.iter().any(cat3), "with no category list, every category is on sale");
    }

    #[test]
    fn kinds_the_layout_cannot_serve_get_no_buyers() {
        let mut layout = layout();
        layout.sections.retain(|section| section.kind == SectionKind::GeneralAdmission);
        let queue = generate(&layout, &config(500, spike_shape())).expect("generates");
        assert!(queue.buyers.iter().all(|buyer| matches!(buyer.intent, Intent::Ga { .. })));

        // Without seat maps: best available without categories, no specific seats.
        let mut layout = self::layout();
        for section in &mut layout.sections {
            section.seats.clear();
        }
        let queue = generate(&layout, &config(500, spike_shape())).expect("generates");
        assert!(queue.buyers.iter().all(|buyer| match &buyer.intent {
            Intent::Best { category, .. } => category.is_none(),
            Intent::Seats { .. } => false,
            Intent::Ga { .. } => true,
        }));
    }

    #[test]
    fn bad_configs_and_layouts_are_refused() {
        let check = |layout: &Layout, config: &GenerateConfig, expected: &str| {
            let error = format!("{:#}", generate(layout, config).expect_err(expected));
            assert!(error.contains(expected), "{error:?} should mention {expected:?}");
        };
        let good_layout = layout();
        let good = config(100, spike_shape());
        let with_shape = |shape: Shape| GenerateConfig { shape, ..good.clone() };
        let with_mix = |change: &dyn Fn(&mut Mix)| {
            let mut config = good.clone();
            change(&mut config.mix);
            config
        };
        let second = Duration::from_secs(1);
        check(&good_layout, &GenerateConfig { buyers: 0, ..good.clone() }, "buyers: 0 is not in");
        check(&good_layout, &GenerateConfig { buyers: BUYERS_MAX + 1, ..good.clone() }, "buyers: 10000001");
        let spike = |window, share, tail| with_shape(Shape::Spike { window, share, tail });
        check(&good_layout, &spike(Duration::ZERO, 0.8, second), "spike window: 0ns is not between");
        check(&good_layout, &spike(DURATION_MAX * 2, 0.8, second), "spike window");
        check(&good_layout, &spike(second, 1.5, second), "spike share: 1.5 is not a share");
        check(&good_layout, &spike(second, f64::NAN, second), "spike share: NaN");
        check(&good_layout, &spike(second, 0.5, Duration::ZERO), "spike tail: 0ns");
        let steady = |rate| with_shape(Shape::Steady { rate });
        check(&good_layout, &steady(0.0), "steady rate: 0/s is not a rate");
        check(&good_layout, &steady(-5.0), "steady rate: -5/s");
        check(&good_layout, &steady(f64::INFINITY), "steady rate: inf/s");
        check(&good_layout, &steady(f64::NAN), "steady rate: NaN/s");
        check(&good_layout, &steady(1e-6), "take about 100000000 s to arrive");
        let ramp = |from, step, every| with_shape(Shape::Ramp { from, step, every });
        check(&good_layout, &ramp(0.0, 1.0, second), "ramp from: 0/s");
        check(&good_layout, &ramp(1.0, -1.0, second), "ramp step: -1/s");
        check(&good_layout, &ramp(1.0, f64::NAN, second), "ramp step: NaN/s");
        check(&good_layout, &ramp(1.0, 1.0, Duration::ZERO), "ramp every: 0ns");
        check(&good_layout, &ramp(1e-6, 0.0, second), "take about");
        check(&good_layout, &with_mix(&|mix| mix.quantities.clear()), "mix quantities: empty");
        check(&good_layout, &with_mix(&|mix| mix.quantities = vec![(0, 1)]), "quantity 0 is not in 1..=64");
        check(&good_layout, &with_mix(&|mix| mix.quantities = vec![(65, 1)]), "quantity 65 is not in 1..=64");
        check(&good_layout, &with_mix(&|mix| mix.quantities = vec![(2, 1), (2, 3)]), "quantity 2 is listed twice");
        check(&good_layout, &with_mix(&|mix| mix.quantities = vec![(2, 0)]), "every weight is 0");
        check(&good_layout, &with_mix(&|mix| mix.poll_share = -0.1), "mix poll_share: -0.1");
        check(&good_layout, &with_mix(&|mix| mix.category_share = f64::INFINITY), "mix category_share: inf");
        check(&good_layout, &with_mix(&|mix| mix.abandon_share = 2.0), "mix abandon_share: 2");
        check(&good_layout, &with_mix(&|mix| mix.expire_share = f64::NAN), "mix expire_share: NaN");
        let too_many_leave = |mix: &mut Mix| {
            mix.abandon_share = 0.6;
            mix.expire_share = 0.5;
        };
        check(&good_layout, &with_mix(&too_many_leave), "abandon_share + expire_share: 0.6 + 0.5 is more than 1");
        check(&good_layout, &with_mix(&|mix| mix.think_median = Duration::from_secs(3600)), "mix think_median");
        let no_intent = |mix: &mut Mix| {
            mix.best = 0;
            mix.seats = 0;
            mix.ga = 0;
        };
        check(&good_layout, &with_mix(&no_intent), "no buyer can be served");

        let bad_layout = |change: &dyn Fn(&mut Layout)| {
            let mut layout = layout();
            change(&mut layout);
            layout
        };
        check(&bad_layout(&|layout| layout.sections.clear()), &good, "layout of demo-2027: no sections");
        check(&bad_layout(&|layout| layout.event.clear()), &good, "layout: empty event id");
        check(&bad_layout(&|layout| layout.sections[1].id.clear()), &good, "a section has an empty id");
        check(&bad_layout(&|layout| layout.sections[0].seats[2].id.clear()), &good, "section S101: seat 2");
        let nothing_on_sale = bad_layout(&|layout| {
            layout.categories = vec!["CAT9".to_string()];
            layout.sections[2].capacity = 0;
        });
        check(&nothing_on_sale, &good, "0 reserved sections that can take a best-available hold, 0 with on-sale");
    }

    /// Edge values of every input, combined at random: `generate` answers each with a
    /// queue or an error, never a panic.
    #[test]
    fn no_input_panics() {
        let floats = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -1.0, 0.0, 1e-300, 1e-3, 0.5, 1.0, 2.0, 1e300];
        let durations = [Duration::ZERO, Duration::from_nanos(1), DURATION_MIN, Duration::from_secs(1), DURATION_MAX];
        let durations = [&durations[..], &[Duration::MAX]].concat();
        let quantity_lists: [&[(u32, u32)]; 5] =
            [&[], &[(1, 0)], &[(1, 1)], &[(queue::QUANTITY_MAX, u32::MAX), (1, u32::MAX)], &[(u32::MAX, 1)]];
        let mut edge_layout = layout();
        edge_layout.sections[0].seats.push(SeatLayout {
            id: "S101-D-65535".to_string(),
            row: "D".to_string(),
            number: u16::MAX,
            category: "CAT1".to_string(),
        });
        edge_layout.sections[1].capacity = 0;
        edge_layout.sections.push(SectionLayout {
            id: "EMPTY".to_string(),
            kind: SectionKind::GeneralAdmission,
            capacity: 0,
            seats: Vec::new(),
        });
        let layouts = [layout(), edge_layout];
        let mut values = EdgeValues(Rng::new(42));
        let mut generated = 0;
        for _ in 0..3000 {
            let shape = match values.0.below(3) {
                0 => Shape::Spike {
                    window: values.pick(Duration::from_secs(60), &durations),
                    share: values.pick(0.8, &floats),
                    tail: values.pick(Duration::from_secs(600), &durations),
                },
                1 => Shape::Steady { rate: values.pick(1000.0, &floats) },
                _ => Shape::Ramp {
                    from: values.pick(100.0, &floats),
                    step: values.pick(100.0, &floats),
                    every: values.pick(Duration::from_secs(1), &durations),
                },
            };
            let mix = Mix {
                best: values.pick(70, &[0, u32::MAX]),
                seats: values.pick(20, &[0, u32::MAX]),
                ga: values.pick(10, &[0, u32::MAX]),
                quantities: values.pick(&[(2, 1)][..], &quantity_lists).to_vec(),
                category_share: values.pick(0.5, &floats),
                poll_share: values.pick(0.3, &floats),
                abandon_share: values.pick(0.05, &floats),
                expire_share: values.pick(0.02, &floats),
                think_median: values.pick(Duration::from_secs(5), &durations),
            };
            let buyers = values.pick(20, &[0, 1, BUYERS_MAX + 1]);
            let layout = &layouts[values.0.below(2) as usize];
            if let Ok(queue) = generate(layout, &GenerateConfig { seed: values.0.next_u64(), buyers, shape, mix }) {
                assert_eq!(queue.buyers.len() as u64, buyers);
                generated += 1;
            }
        }
        assert!(generated > 0, "no combination was valid: the test tests nothing");
    }

    /// Picks one of the edge values one time in four, else the good value.
    struct EdgeValues(Rng);

    impl EdgeValues {
        fn pick<T: Copy>(&mut self, good: T, edges: &[T]) -> T {
            let index = self.0.below(4 * edges.len() as u64) as usize;
            edges.get(index).copied().unwrap_or(good)
        }
    }

    #[test]
    fn queues_round_trip_through_their_file() {
        let layout = layout();
        for shape in [spike_shape(), Shape::Ramp { from: 100.0, step: 50.0, every: Duration::from_millis(1500) }] {
            let queue = generate(&layout, &config(3000, shape)).expect("generates");
            let written = bytes(&queue);
            assert_eq!(Queue::read(written.as_slice(), None).expect("reads"), queue);
        }
    }
}
