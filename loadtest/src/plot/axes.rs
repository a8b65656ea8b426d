//! The chart's axes: the time axis both panels share and each panel's value axis (log
//! decades for latencies, a linear scale for rates), their nice tick steps and labels,
//! and the bounds that keep any report's values (NaN, infinities, huge counts) on them.
//! Pure arithmetic; the drawing is in [`super`].

use super::{PLOT_LEFT_PX, PLOT_RIGHT_PX};

/// The log axis never goes below 0.1 ms: no HTTP round trip is faster, so lower decades would stay empty.
pub(super) const LATENCY_DECADE_MIN: i32 = -1;
/// Nor above 10^7 ms (almost three hours): `stats` saturates latencies at one hour.
pub(super) const LATENCY_DECADE_MAX: i32 = 7;
/// Without a positive latency to size the log axis on (all zero, say), it spans 1 ms to 1 s.
pub(super) const LATENCY_DECADES_DEFAULT: (i32, i32) = (0, 3);
/// Values beyond this are drawn as this: nice tick steps computed from larger ones overflow to infinity.
pub(super) const AXIS_VALUE_MAX: f64 = 1e300;
/// Spans below this are drawn as this, so that tick steps stay normal (not subnormal) numbers.
pub(super) const AXIS_SPAN_MIN: f64 = 1e-6;
/// The time axis of a report without points.
pub(super) const EMPTY_TIME_AXIS_SECONDS: f64 = 10.0;
pub(super) const TIME_TICKS_TARGET: f64 = 10.0;
pub(super) const RATE_TICKS_TARGET: f64 = 5.0;
/// Nice steps give at most about the target number of ticks; this only bounds the loops.
pub(super) const LINEAR_TICKS_MAX: usize = 30;

/// A panel's y axis, with the range of its data.
pub(super) enum ValueAxis {
    /// From 10^`decade_min` to 10^`decade_max`, ticks at each decade.
    Log { decade_min: i32, decade_max: i32 },
    /// From 0 to `max`, ticks every `step`.
    Linear { max: f64, step: f64 },
}

impl ValueAxis {
    /// Where `value` falls between the bottom (0) and the top (1); values outside are clamped.
    pub(super) fn fraction(&self, value: f64) -> f64 {
        let fraction = match *self {
            ValueAxis::Log { decade_min, decade_max } if value > 0.0 => {
                (value.log10() - f64::from(decade_min)) / f64::from(decade_max - decade_min)
            }
            ValueAxis::Log { .. } => 0.0,
            ValueAxis::Linear { max, .. } => value / max,
        };
        fraction.clamp(0.0, 1.0)
    }

    /// Labelled grid lines, bottom to top.
    pub(super) fn ticks(&self) -> Vec<(f64, String)> {
        match *self {
            ValueAxis::Log { decade_min, decade_max } => {
                (decade_min..=decade_max).map(|decade| (10f64.powi(decade), decade_label(decade))).collect()
            }
            ValueAxis::Linear { max, step } => {
                linear_ticks(max, step).into_iter().map(|value| (value, tick_label(value, step))).collect()
            }
        }
    }

    /// Unlabelled grid lines: 2 to 9 times each decade of a log axis.
    pub(super) fn minor_ticks(&self) -> Vec<f64> {
        match *self {
            ValueAxis::Log { decade_min, decade_max } => (decade_min..decade_max)
                .flat_map(|decade| (2..=9).map(move |multiple| f64::from(multiple) * 10f64.powi(decade)))
                .collect(),
            ValueAxis::Linear { .. } => Vec::new(),
        }
    }
}

/// Seconds since the start, from 0 to `end_seconds`.
pub(super) struct TimeAxis {
    pub(super) end_seconds: f64,
    pub(super) step_seconds: f64,
}

impl TimeAxis {
    pub(super) fn new(
        point_seconds: &[Option<f64>],
        interval_seconds: f64,
        sold_out_at_seconds: Option<f64>,
    ) -> TimeAxis {
        // Points are drawn mid-interval; the axis runs to the end of the last interval.
        let data_end_seconds =
            point_seconds.iter().flatten().map(|midpoint| midpoint + interval_seconds / 2.0).reduce(f64::max);
        let end_seconds = match (data_end_seconds, sold_out_at_seconds) {
            (None, None) => EMPTY_TIME_AXIS_SECONDS,
            (data, sold_out) => data.unwrap_or(0.0).max(sold_out.unwrap_or(0.0)),
        };
        let end_seconds = end_seconds.clamp(AXIS_SPAN_MIN, AXIS_VALUE_MAX);
        TimeAxis { end_seconds, step_seconds: nice_step(end_seconds, TIME_TICKS_TARGET) }
    }

    pub(super) fn x_px(&self, seconds: f64) -> f64 {
        PLOT_LEFT_PX + (seconds / self.end_seconds).clamp(0.0, 1.0) * (PLOT_RIGHT_PX - PLOT_LEFT_PX)
    }
}

/// The decades spanning the positive finite latencies, at least one decade.
pub(super) fn latency_axis(drawn_ms: &[f64]) -> ValueAxis {
    let positive = drawn_ms.iter().copied().filter(|ms| *ms > 0.0 && ms.is_finite());
    let min_ms = positive.clone().reduce(f64::min);
    let max_ms = positive.reduce(f64::max);
    let (decade_min, decade_max) = match (min_ms, max_ms) {
        (Some(min_ms), Some(max_ms)) => (decade_floor(min_ms), decade_ceil(max_ms)),
        _ => LATENCY_DECADES_DEFAULT,
    };
    let decade_max = decade_max.max(decade_min + 1).min(LATENCY_DECADE_MAX);
    let decade_min = decade_min.min(decade_max - 1);
    ValueAxis::Log { decade_min, decade_max }
}

pub(super) fn decade_floor(value: f64) -> i32 {
    // Clamped to the axis limits before the cast, so that any latency gives a decade in range.
    value.log10().floor().clamp(f64::from(LATENCY_DECADE_MIN), f64::from(LATENCY_DECADE_MAX)) as i32
}

pub(super) fn decade_ceil(value: f64) -> i32 {
    value.log10().ceil().clamp(f64::from(LATENCY_DECADE_MIN), f64::from(LATENCY_DECADE_MAX)) as i32
}

/// From 0 to a nice value above the highest rate.
pub(super) fn rate_axis(drawn_per_second: &[f64]) -> ValueAxis {
    let max_per_second = drawn_per_second.iter().copied().fold(0.0, f64::max).min(AXIS_VALUE_MAX);
    if max_per_second < AXIS_SPAN_MIN {
        return ValueAxis::Linear { max: 1.0, step: nice_step(1.0, RATE_TICKS_TARGET) };
    }
    let step = nice_step(max_per_second, RATE_TICKS_TARGET);
    ValueAxis::Linear { max: (max_per_second / step).ceil() * step, step }
}

/// The step of 1, 2 or 5 times a power of ten that cuts `span` into at most about `ticks_target` steps.
pub(super) fn nice_step(span: f64, ticks_target: f64) -> f64 {
    let raw_step = span.clamp(AXIS_SPAN_MIN, AXIS_VALUE_MAX) / ticks_target;
    let magnitude = 10f64.powf(raw_step.log10().floor());
    let multiple = match raw_step / magnitude {
        normalized if normalized <= 1.0 => 1.0,
        normalized if normalized <= 2.0 => 2.0,
        normalized if normalized <= 5.0 => 5.0,
        _ => 10.0,
    };
    multiple * magnitude
}

/// 0, `step`, 2 × `step`, ... up to `max` (with a little slack for rounding).
pub(super) fn linear_ticks(max: f64, step: f64) -> Vec<f64> {
    let last_index = (max / step + 1e-9).floor().clamp(0.0, LINEAR_TICKS_MAX as f64) as usize;
    (0..=last_index).map(|index| index as f64 * step).collect()
}

/// A tick value with as many decimals as its step needs; very large values in exponent form.
pub(super) fn tick_label(value: f64, step: f64) -> String {
    if value == 0.0 {
        return "0".to_string();
    }
    if value.abs() >= 1e6 {
        return format!("{value:.1e}");
    }
    let decimals = if step >= 1.0 { 0 } else { (-step.log10()).ceil().clamp(0.0, 6.0) as usize };
    format!("{value:.decimals$}")
}

pub(super) fn decade_label(decade: i32) -> String {
    if decade < 0 {
        format!("{:.*}", decade.unsigned_abs() as usize, 10f64.powi(decade))
    } else {
        format!("{:.0}", 10f64.powi(decade))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_steps() {
        let check = |span: f64, ticks_target: f64, expected: f64| {
            assert_eq!(nice_step(span, ticks_target), expected, "span {span}, {ticks_target} ticks");
        };
        check(10.0, 10.0, 1.0);
        check(42.0, 10.0, 5.0);
        check(90.0, 10.0, 10.0);
        check(120.0, 10.0, 20.0);
        check(3600.0, 10.0, 500.0);
        check(1.0, 5.0, 0.2);
        check(23_000.0, 5.0, 5000.0);
        assert!(nice_step(AXIS_VALUE_MAX, 5.0).is_finite());
        assert!(nice_step(0.0, 5.0) > 0.0);
    }

    #[test]
    fn tick_labels() {
        let check = |value: f64, step: f64, expected: &str| assert_eq!(tick_label(value, step), expected);
        check(0.0, 0.2, "0");
        check(0.6000000000000001, 0.2, "0.6");
        check(0.05, 0.05, "0.05");
        check(2500.0, 500.0, "2500");
        check(4e7, 2e7, "4.0e7");
        assert_eq!(decade_label(-1), "0.1");
        assert_eq!(decade_label(3), "1000");
    }
}
