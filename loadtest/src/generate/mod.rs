//! `generate`: on-sale arrival queues, made from an event's [`Layout`] and a
//! [`GenerateConfig`], as a [`Queue`] to write to a file and replay.
//!
//! The generator is pure and deterministic: no clock, no I/O, no global randomness. The
//! same layout and config give the same queue, byte for byte once written, so a queue
//! file can be remade from its header (which records the seed and every parameter), and
//! two runs against two server builds can replay exactly the same buyers.
//!
//! Determinism across platforms and dependency versions is why it draws from
//! [`crate::prng`] (xoshiro256** seeded by SplitMix64: both fully specified by their
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
//!
//! - `config`: the config, its bounds and their check;
//! - `arrivals`: when buyers arrive, under each shape;
//! - `intents`: what each buyer wants and does.

mod arrivals;
mod config;
mod intents;

use std::time::Duration;

use serde_json::json;

use self::config::check_config;
pub use self::config::{
    GenerateConfig, Mix, Shape, BUYERS_MAX, DURATION_MAX, DURATION_MIN, RAMP_STEPS_MAX, RATE_MAX_PER_SECOND,
    THINK_MEDIAN_MAX,
};
use self::intents::Plan;
use crate::layout::Layout;
use crate::prng::Rng;
use crate::queue::{self, Buyer, Header, Queue, WaitingRoomPlan};

/// Random streams of the seed (`seed ^ stream` seeds the PRNG): arrival times and buyer
/// intents are drawn apart.
const ARRIVALS_STREAM: u64 = 0x6172_7269_7661_6c73; // "arrivals"
const BUYERS_STREAM: u64 = 0x6275_7965_7273_0000; // "buyers"
/// Who joins a waiting room early, and when: a third stream, so adding early joiners
/// leaves every buyer's arrival and intent as they were.
const EARLY_JOINS_STREAM: u64 = 0x6561_726c_795f_6a6e; // "early_jn"

/// `generate --queue`: which buyers join the waiting room before the opening.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EarlyJoins {
    /// Share of buyers who join early, in `[0, 1]`.
    pub share: f64,
    /// They join uniformly in `[-early, 0)` before the opening; at most a week.
    pub early: Duration,
}

impl Default for EarlyJoins {
    fn default() -> EarlyJoins {
        EarlyJoins { share: 0.4, early: Duration::from_secs(300) }
    }
}

/// Makes `queue` a waiting-room file (format version 2): each buyer, with probability
/// `early.share` (drawn from the seed's own stream, so deterministic), also gets a
/// `join_us` uniform in `[-early, 0)`, whole microseconds. Arrivals and intents stay as
/// they were: the same file plays with and without a room.
pub fn with_early_joins(mut queue: Queue, early: &EarlyJoins) -> anyhow::Result<Queue> {
    anyhow::ensure!((0.0..=1.0).contains(&early.share), "queue early share: {} is not a share (0 to 1)", early.share);
    let early_us = u64::try_from(early.early.as_micros()).unwrap_or(u64::MAX);
    anyhow::ensure!(
        (1..=queue::JOIN_EARLY_US_MAX).contains(&early_us),
        "queue early: {:?} is not between 1µs and a week",
        early.early
    );
    let mut rng = Rng::new(queue.header.seed ^ EARLY_JOINS_STREAM);
    for buyer in &mut queue.buyers {
        let joins_early = rng.chance(early.share);
        let before_us = 1 + rng.below(early_us);
        buyer.join_us = joins_early.then_some(-(before_us as i64));
    }
    queue.header.hakken_queue = queue::FORMAT_VERSION;
    queue.header.waiting_room =
        Some(WaitingRoomPlan { early_share: early.share, early_seconds: early.early.as_secs_f64() });
    queue.header.parameters.insert(
        "waiting_room".to_string(),
        json!({ "early_seconds": early.early.as_secs_f64(), "early_share": early.share }),
    );
    Ok(queue)
}

/// Makes the queue of `config.buyers` buyers for `layout`, in arrival order.
///
/// Fails, naming the value, on a config out of bounds or a layout with nothing the mix
/// can buy; never panics.
pub fn generate(layout: &Layout, config: &GenerateConfig) -> anyhow::Result<Queue> {
    check_config(config)?;
    let plan = Plan::new(layout, &config.mix)?;
    let mut arrivals_rng = Rng::new(config.seed ^ ARRIVALS_STREAM);
    let (arrivals, phases) = arrivals::arrivals(config.buyers, &config.shape, &mut arrivals_rng);
    assert_eq!(arrivals.len() as u64, config.buyers);
    assert!(arrivals.windows(2).all(|pair| pair[0].at_us <= pair[1].at_us));
    assert!(arrivals.iter().all(|arrival| (arrival.phase as usize) < phases.len()));

    let mut buyers_rng = Rng::new(config.seed ^ BUYERS_STREAM);
    let buyers: Vec<Buyer> = arrivals.into_iter().map(|arrival| plan.buyer(arrival, &mut buyers_rng)).collect();
    let header = Header {
        hakken_queue: queue::FORMAT_VERSION_PLAIN,
        event: layout.event.clone(),
        shape: shape_name(&config.shape).to_string(),
        seed: config.seed,
        buyers: config.buyers,
        generated_by: format!("hakken-loadtest {}", env!("CARGO_PKG_VERSION")),
        parameters: parameters(config),
        phases,
        waiting_room: None,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{SeatLayout, SectionKind, SectionLayout};
    use crate::queue::{Intent, Phase, Then};

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

    /// Panics unless `generate` refuses `config` for `layout` with an error that
    /// mentions `expected`.
    fn check_refused(layout: &Layout, config: &GenerateConfig, expected: &str) {
        let error = format!("{:#}", generate(layout, config).expect_err(expected));
        assert!(error.contains(expected), "{error:?} should mention {expected:?}");
    }

    #[test]
    fn bad_configs_are_refused() {
        let check = check_refused;
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
    }

    #[test]
    fn bad_layouts_are_refused() {
        let check = check_refused;
        let good = config(100, spike_shape());
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

    #[test]
    fn early_joiners_keep_the_share_the_bounds_and_the_seed() {
        let plain = generate(&layout(), &config(20_000, spike_shape())).expect("generates");
        let early = EarlyJoins { share: 0.4, early: Duration::from_secs(300) };
        let queue = with_early_joins(plain.clone(), &early).expect("early joins");
        let joiners: Vec<i64> = queue.buyers.iter().filter_map(|buyer| buyer.join_us).collect();
        assert_near("early share", joiners.len() as f64 / 20_000.0, 0.4, 0.02);
        assert!(joiners.iter().all(|join_us| (-300_000_000..0).contains(join_us)), "bounds");
        // Uniform: about half in the last 150 s before the opening.
        let late_half = joiners.iter().filter(|join_us| **join_us >= -150_000_000).count() as f64;
        assert_near("last half of the early window", late_half / joiners.len() as f64, 0.5, 0.03);
        // The same buyers, arriving as before.
        for (with, without) in queue.buyers.iter().zip(&plain.buyers) {
            assert_eq!(Buyer { join_us: None, ..with.clone() }, *without);
        }
        assert_eq!(queue.header.hakken_queue, queue::FORMAT_VERSION);
        assert_eq!(queue.header.waiting_room, Some(WaitingRoomPlan { early_share: 0.4, early_seconds: 300.0 }));
        assert_eq!(bytes(&queue), bytes(&with_early_joins(plain.clone(), &early).expect("again")), "deterministic");
        let other =
            with_early_joins(Queue { header: Header { seed: 8, ..plain.header.clone() }, ..plain.clone() }, &early);
        assert_ne!(bytes(&queue), bytes(&other.expect("another seed")));
        assert_eq!(Queue::read(bytes(&queue).as_slice(), None).expect("reads"), queue);

        let nobody = with_early_joins(plain.clone(), &EarlyJoins { share: 0.0, ..early }).expect("none");
        assert!(nobody.buyers.iter().all(|buyer| buyer.join_us.is_none()));
        let everybody = with_early_joins(plain.clone(), &EarlyJoins { share: 1.0, ..early }).expect("all");
        assert!(everybody.buyers.iter().all(|buyer| buyer.join_us.is_some()));
    }

    #[test]
    fn bad_early_joins_are_refused() {
        let plain = generate(&layout(), &config(10, spike_shape())).expect("generates");
        let check = |early: EarlyJoins, expected: &str| {
            let error = format!("{:#}", with_early_joins(plain.clone(), &early).expect_err(expected));
            assert!(error.contains(expected), "{error:?} should mention {expected:?}");
        };
        let minute = Duration::from_secs(60);
        check(EarlyJoins { share: 1.5, early: minute }, "queue early share: 1.5 is not a share");
        check(EarlyJoins { share: f64::NAN, early: minute }, "queue early share: NaN");
        check(EarlyJoins { share: 0.4, early: Duration::ZERO }, "queue early: 0ns is not between");
        check(EarlyJoins { share: 0.4, early: DURATION_MAX * 2 }, "queue early");
    }
}
