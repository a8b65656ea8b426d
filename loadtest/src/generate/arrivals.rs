//! When buyers arrive: the arrival times and phases of each [`Shape`], drawn from the
//! arrivals stream of the seed.
//!
//! [`Shape::Spike`] draws each arrival from an exponential density truncated to its
//! window; [`Shape::Steady`] is a Poisson process; [`Shape::Ramp`] a Poisson process
//! whose rate rises step by step. Each returns the arrivals sorted by time, and the
//! phases they belong to (the header's phase list).

use std::time::Duration;

use super::{Shape, RAMP_STEPS_MAX};
use crate::prng::Rng;
use crate::queue::Phase;

/// A spike's window divided by the mean of its exponential: 63% of the spike's buyers
/// arrive in the first fifth of the window, 1.2% in its last fifth.
const SPIKE_WINDOW_PER_MEAN: f64 = 5.0;
/// A spike's tail divided by the mean of its exponential: a slower decay than the spike.
const SPIKE_TAIL_PER_MEAN: f64 = 3.0;

/// The arrivals of `buyers` buyers under `shape`, in time order, and their phases.
pub(super) fn arrivals(buyers: u64, shape: &Shape, rng: &mut Rng) -> (Vec<Arrival>, Vec<Phase>) {
    match *shape {
        Shape::Spike { window, share, tail } => spike(buyers, window, share, tail, rng),
        Shape::Steady { rate } => steady(buyers, rate, rng),
        Shape::Ramp { from, step, every } => ramp(buyers, from, step, every, rng),
    }
}

/// When one buyer arrives, and in which phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Arrival {
    pub(super) at_us: u64,
    pub(super) phase: u32,
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

/// The time a ramp needs, on average, for `buyers` arrivals: whole steps until the
/// remaining buyers fit in one, which then takes its share. Bounded by
/// [`RAMP_STEPS_MAX`] iterations.
pub(super) fn ramp_expected_seconds(buyers: f64, from: f64, step: f64, every: Duration) -> f64 {
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
