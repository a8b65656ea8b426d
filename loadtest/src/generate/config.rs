//! What determines a queue besides the layout: [`GenerateConfig`] (seed, buyers, the
//! [`Shape`] of the arrivals and the [`Mix`] of what buyers want), its bounds, and the
//! check that refuses a config out of them, naming the value.

use std::time::Duration;

use anyhow::ensure;

use super::arrivals::ramp_expected_seconds;
use crate::queue;

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
/// Tolerance of `abandon_share + expire_share <= 1`, for shares computed as complements
/// (1 - x) whose floating-point sum may land a hair above 1.
const SHARE_SUM_TOLERANCE: f64 = 1e-9;

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

/// Refuses a config out of bounds, naming the value.
pub(super) fn check_config(config: &GenerateConfig) -> anyhow::Result<()> {
    ensure!((1..=BUYERS_MAX).contains(&config.buyers), "buyers: {} is not in 1..={BUYERS_MAX}", config.buyers);
    check_shape(&config.shape, config.buyers as f64)?;
    check_mix(&config.mix)
}

/// Refuses a shape out of bounds, or one that would take longer than [`DURATION_MAX`]
/// for `buyers` to arrive.
fn check_shape(shape: &Shape, buyers: f64) -> anyhow::Result<()> {
    match *shape {
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
    Ok(())
}

fn check_mix(mix: &Mix) -> anyhow::Result<()> {
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
