//! `--plot`: the timeline of a replay drawn as an SVG chart, for people to look at.
//!
//! Two panels share the time axis: latency percentiles on a log scale above, outcomes per
//! second below, and a dashed marker where the event sold out. The SVG is self-contained (no
//! scripts, fonts or external references), so it opens in any browser or image viewer.
//!
//! [`render`] is a pure function of the report: the same run always gives the same bytes. Each
//! series is one `<path>`, a gap in the data starting a new subpath, and coordinates carry one
//! decimal, so a file grows with the number of points and stays small. Malformed reports (NaN,
//! infinities, huge counts, no points) still give a well-formed chart: values are clamped to the
//! axes, points without a usable time or value are left out, and a panel without data says so.
//!
//! This module builds the two charts from the timeline and writes the SVG; `axes` holds the
//! axes, their ticks and labels, and the bounds that keep values on them.

mod axes;

use std::fmt::{self, Write};

use self::axes::{
    latency_axis, linear_ticks, rate_axis, tick_label, TimeAxis, ValueAxis, AXIS_SPAN_MIN, AXIS_VALUE_MAX,
};
use crate::timeline::{Percentiles, TimelinePoint, TimelineReport};

const WIDTH_PX: f64 = 1000.0;
const HEIGHT_PX: f64 = 640.0;
/// The plot area of both panels; the y tick labels and titles are on its left, legends on its right.
const PLOT_LEFT_PX: f64 = 80.0;
const PLOT_RIGHT_PX: f64 = 820.0;
const LEGEND_LEFT_PX: f64 = 840.0;
const LEGEND_ROW_PX: f64 = 18.0;
const LEGEND_SAMPLE_PX: f64 = 24.0;
const TITLE_BASELINE_PX: f64 = 30.0;
const LATENCY_PANEL: Panel = Panel { top_px: 52.0, bottom_px: 297.0 };
const THROUGHPUT_PANEL: Panel = Panel { top_px: 327.0, bottom_px: 572.0 };
/// The time axis is labelled once, under the bottom panel.
const TIME_TICK_LABEL_BASELINE_PX: f64 = 589.0;
const TIME_TITLE_BASELINE_PX: f64 = 618.0;
const Y_TITLE_CENTER_X_PX: f64 = 22.0;

const FONT_SIZE_TITLE_PX: u32 = 16;
const FONT_SIZE_LABEL_PX: u32 = 12;
const FONT_SIZE_TICK_PX: u32 = 11;
const TEXT_COLOR: &str = "#222222";
const TICK_TEXT_COLOR: &str = "#555555";
const GRID_COLOR: &str = "#e6e6e6";
/// Unlabelled lines between the decades of the log axis: fainter than the grid.
const MINOR_GRID_COLOR: &str = "#f3f3f3";
const FRAME_COLOR: &str = "#b0b0b0";
const MARKER_COLOR: &str = "#444444";
const SERIES_STROKE_WIDTH_PX: f64 = 1.5;
/// How wide a point with no neighbour in its series is drawn.
const ISOLATED_POINT_DASH_PX: f64 = 6.0;

/// A longer title is cut: it has to fit on one line above the chart.
const TITLE_CHARS_MAX: usize = 160;

// The Okabe–Ito palette: told apart by people with any common form of colour blindness.
const BLACK: &str = "#000000";
const ORANGE: &str = "#E69F00";
const SKY_BLUE: &str = "#56B4E9";
const BLUISH_GREEN: &str = "#009E73";
const BLUE: &str = "#0072B2";
const VERMILLION: &str = "#D55E00";
const REDDISH_PURPLE: &str = "#CC79A7";
/// Confirm latencies are dashed so that they differ from hold latencies by more than colour.
const CONFIRM_DASH: &str = "6 3";

/// A self-contained SVG (no scripts, no external fonts or files) of the run.
pub fn render(timeline: &TimelineReport, title: &str) -> String {
    let interval_seconds = usable_interval_seconds(timeline.interval_seconds);
    let point_seconds: Vec<Option<f64>> =
        timeline.points.iter().map(|point| midpoint_seconds(point, interval_seconds)).collect();
    let sold_out_at_seconds = timeline.sold_out_at_seconds.filter(|seconds| seconds.is_finite() && *seconds >= 0.0);
    let time_axis = TimeAxis::new(&point_seconds, interval_seconds, sold_out_at_seconds);
    let latency = latency_chart(&timeline.points, &point_seconds);
    let throughput = throughput_chart(&timeline.points, &point_seconds, interval_seconds);

    // About 12 bytes per coordinate pair, 11 series, plus the fixed parts.
    let mut svg = String::with_capacity(8 * 1024 + timeline.points.len() * 11 * 12);
    open_document(&mut svg, title);
    draw_panel(&mut svg, &time_axis, &point_seconds, &latency);
    draw_panel(&mut svg, &time_axis, &point_seconds, &throughput);
    draw_time_labels(&mut svg, &time_axis);
    if let Some(seconds) = sold_out_at_seconds {
        draw_sold_out_marker(&mut svg, &time_axis, seconds);
    }
    svg.push_str("</svg>\n");
    svg
}

/// A horizontal band of the chart; both panels span the same plot width.
#[derive(Clone, Copy)]
struct Panel {
    top_px: f64,
    bottom_px: f64,
}

impl Panel {
    /// Where a value at `fraction` of the y axis (0 at the bottom, 1 at the top) is drawn.
    fn y_px(self, fraction: f64) -> f64 {
        self.bottom_px - fraction.clamp(0.0, 1.0) * (self.bottom_px - self.top_px)
    }
}

/// One line of a panel.
struct Series {
    label: &'static str,
    color: &'static str,
    /// `stroke-dasharray`, if the line is dashed.
    dash: Option<&'static str>,
    /// One value per timeline point, in the panel's unit; `None` leaves a gap in the line.
    values: Vec<Option<f64>>,
}

/// One panel, ready to draw.
struct Chart {
    /// The `class` of the panel's group, naming it for readers of the SVG (and for tests).
    name: &'static str,
    panel: Panel,
    y_title: &'static str,
    /// `None` when no series has a value to draw: the panel says "no data".
    value_axis: Option<ValueAxis>,
    series: Vec<Series>,
}

/// The report's interval, or 1 s if it is not a usable length: counts are then drawn per interval.
fn usable_interval_seconds(interval_seconds: f64) -> f64 {
    if interval_seconds.is_finite() && interval_seconds >= AXIS_SPAN_MIN {
        interval_seconds
    } else {
        1.0
    }
}

/// Where a point is drawn on the time axis: the middle of its interval, since its counts and
/// latencies are of the whole interval. `None` if its time is not a number.
fn midpoint_seconds(point: &TimelinePoint, interval_seconds: f64) -> Option<f64> {
    let midpoint = point.t_seconds + interval_seconds / 2.0;
    midpoint.is_finite().then_some(midpoint.clamp(0.0, AXIS_VALUE_MAX))
}

fn latency_chart(points: &[TimelinePoint], point_seconds: &[Option<f64>]) -> Chart {
    let hold = |percentile: fn(&Percentiles) -> f64| latency_values(points, |point| point.hold_latency_ms, percentile);
    let confirm =
        |percentile: fn(&Percentiles) -> f64| latency_values(points, |point| point.confirm_latency_ms, percentile);
    let series = vec![
        Series { label: "hold p50", color: SKY_BLUE, dash: None, values: hold(|latency| latency.p50) },
        Series { label: "hold p90", color: BLUE, dash: None, values: hold(|latency| latency.p90) },
        Series { label: "hold p99", color: REDDISH_PURPLE, dash: None, values: hold(|latency| latency.p99) },
        Series {
            label: "confirm p50",
            color: ORANGE,
            dash: Some(CONFIRM_DASH),
            values: confirm(|latency| latency.p50),
        },
        Series {
            label: "confirm p99",
            color: VERMILLION,
            dash: Some(CONFIRM_DASH),
            values: confirm(|latency| latency.p99),
        },
    ];
    let drawn = drawn_values(&series, point_seconds);
    let value_axis = (!drawn.is_empty()).then(|| latency_axis(&drawn));
    Chart { name: "latency", panel: LATENCY_PANEL, y_title: "latency (ms, log)", value_axis, series }
}

/// One percentile of one step's latency at every point; NaN is left out like a missing value.
fn latency_values(
    points: &[TimelinePoint],
    step: fn(&TimelinePoint) -> Option<Percentiles>,
    percentile: fn(&Percentiles) -> f64,
) -> Vec<Option<f64>> {
    points.iter().map(|point| step(point).map(|latency| percentile(&latency)).filter(|ms| !ms.is_nan())).collect()
}

fn throughput_chart(points: &[TimelinePoint], point_seconds: &[Option<f64>], interval_seconds: f64) -> Chart {
    let per_second = |count: fn(&TimelinePoint) -> u64| -> Vec<Option<f64>> {
        points.iter().map(|point| Some(count(point) as f64 / interval_seconds).filter(|rate| !rate.is_nan())).collect()
    };
    let series = vec![
        Series { label: "arrivals", color: BLACK, dash: None, values: per_second(|point| point.arrivals) },
        Series { label: "holds", color: BLUE, dash: None, values: per_second(|point| point.holds) },
        Series { label: "confirms", color: BLUISH_GREEN, dash: None, values: per_second(|point| point.confirms) },
        Series { label: "conflicts (409)", color: ORANGE, dash: None, values: per_second(|point| point.conflicts) },
        Series {
            label: "rejected (503/429)",
            color: VERMILLION,
            dash: None,
            values: per_second(|point| point.rejected),
        },
        Series { label: "errors", color: REDDISH_PURPLE, dash: None, values: per_second(|point| point.errors) },
    ];
    let drawn = drawn_values(&series, point_seconds);
    let value_axis = (!drawn.is_empty()).then(|| rate_axis(&drawn));
    Chart { name: "throughput", panel: THROUGHPUT_PANEL, y_title: "per second", value_axis, series }
}

/// The values of all series at points that have a time: what the y axis must fit.
fn drawn_values(series: &[Series], point_seconds: &[Option<f64>]) -> Vec<f64> {
    series
        .iter()
        .flat_map(|series| series.values.iter().zip(point_seconds))
        .filter_map(|(value, seconds)| seconds.and(*value))
        .collect()
}

fn open_document(svg: &mut String, title: &str) {
    let title = escape_xml(&shortened(title, TITLE_CHARS_MAX));
    push(
        svg,
        format_args!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH_PX}\" height=\"{HEIGHT_PX}\" \
             viewBox=\"0 0 {WIDTH_PX} {HEIGHT_PX}\" font-family=\"sans-serif\">\n<title>{title}</title>\n\
             <rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n"
        ),
    );
    push(
        svg,
        format_args!(
            "<text x=\"{:.1}\" y=\"{TITLE_BASELINE_PX}\" font-size=\"{FONT_SIZE_TITLE_PX}\" font-weight=\"bold\" \
             fill=\"{TEXT_COLOR}\">{title}</text>\n",
            PLOT_LEFT_PX
        ),
    );
}

fn draw_panel(svg: &mut String, time_axis: &TimeAxis, point_seconds: &[Option<f64>], chart: &Chart) {
    let panel = chart.panel;
    push(svg, format_args!("<g class=\"{}\">\n", chart.name));
    draw_time_grid(svg, time_axis, panel);
    if let Some(value_axis) = &chart.value_axis {
        draw_value_grid(svg, value_axis, panel);
    }
    push(
        svg,
        format_args!(
            "<rect x=\"{PLOT_LEFT_PX}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"{FRAME_COLOR}\"/>\n",
            panel.top_px,
            PLOT_RIGHT_PX - PLOT_LEFT_PX,
            panel.bottom_px - panel.top_px
        ),
    );
    let center_y_px = (panel.top_px + panel.bottom_px) / 2.0;
    push(
        svg,
        format_args!(
            "<text x=\"{Y_TITLE_CENTER_X_PX}\" y=\"{center_y_px:.1}\" font-size=\"{FONT_SIZE_LABEL_PX}\" \
             fill=\"{TEXT_COLOR}\" text-anchor=\"middle\" \
             transform=\"rotate(-90 {Y_TITLE_CENTER_X_PX} {center_y_px:.1})\">{}</text>\n",
            escape_xml(chart.y_title)
        ),
    );
    match &chart.value_axis {
        Some(value_axis) => {
            draw_series(svg, time_axis, point_seconds, value_axis, chart);
            draw_legend(svg, chart);
        }
        None => push(
            svg,
            format_args!(
                "<text x=\"{:.1}\" y=\"{center_y_px:.1}\" font-size=\"{FONT_SIZE_LABEL_PX}\" \
                 fill=\"{TICK_TEXT_COLOR}\" text-anchor=\"middle\">no data</text>\n",
                (PLOT_LEFT_PX + PLOT_RIGHT_PX) / 2.0
            ),
        ),
    }
    svg.push_str("</g>\n");
}

/// Vertical grid lines at the time ticks.
fn draw_time_grid(svg: &mut String, time_axis: &TimeAxis, panel: Panel) {
    push(svg, format_args!("<g stroke=\"{GRID_COLOR}\">\n"));
    for seconds in linear_ticks(time_axis.end_seconds, time_axis.step_seconds) {
        let x_px = time_axis.x_px(seconds);
        draw_line(svg, (x_px, panel.top_px), (x_px, panel.bottom_px));
    }
    svg.push_str("</g>\n");
}

/// Horizontal grid lines and the labels of the y axis.
fn draw_value_grid(svg: &mut String, value_axis: &ValueAxis, panel: Panel) {
    let minor_ticks = value_axis.minor_ticks();
    if !minor_ticks.is_empty() {
        push(svg, format_args!("<g stroke=\"{MINOR_GRID_COLOR}\">\n"));
        for value in minor_ticks {
            let y_px = panel.y_px(value_axis.fraction(value));
            draw_line(svg, (PLOT_LEFT_PX, y_px), (PLOT_RIGHT_PX, y_px));
        }
        svg.push_str("</g>\n");
    }
    let ticks = value_axis.ticks();
    push(svg, format_args!("<g stroke=\"{GRID_COLOR}\">\n"));
    for (value, _) in &ticks {
        let y_px = panel.y_px(value_axis.fraction(*value));
        draw_line(svg, (PLOT_LEFT_PX, y_px), (PLOT_RIGHT_PX, y_px));
    }
    svg.push_str("</g>\n");
    push(svg, format_args!("<g font-size=\"{FONT_SIZE_TICK_PX}\" fill=\"{TICK_TEXT_COLOR}\" text-anchor=\"end\">\n"));
    for (value, label) in &ticks {
        // Baseline a little below the line, so that the label is centred on it.
        let y_px = panel.y_px(value_axis.fraction(*value)) + 4.0;
        push(svg, format_args!("<text x=\"{:.1}\" y=\"{y_px:.1}\">{}</text>\n", PLOT_LEFT_PX - 6.0, escape_xml(label)));
    }
    svg.push_str("</g>\n");
}

/// One `<path>` per series, named by a `<title>` child; points without a value break the line.
fn draw_series(
    svg: &mut String,
    time_axis: &TimeAxis,
    point_seconds: &[Option<f64>],
    value_axis: &ValueAxis,
    chart: &Chart,
) {
    push(
        svg,
        format_args!(
            "<g fill=\"none\" stroke-width=\"{SERIES_STROKE_WIDTH_PX}\" stroke-linejoin=\"round\" \
             stroke-linecap=\"round\">\n"
        ),
    );
    for series in &chart.series {
        let path_data = series_path_data(time_axis, point_seconds, value_axis, chart.panel, &series.values);
        if path_data.is_empty() {
            continue;
        }
        push(svg, format_args!("<path stroke=\"{}\"", series.color));
        if let Some(dash) = series.dash {
            push(svg, format_args!(" stroke-dasharray=\"{dash}\""));
        }
        push(svg, format_args!(" d=\"{path_data}\"><title>{}</title></path>\n", escape_xml(series.label)));
    }
    svg.push_str("</g>\n");
}

/// `M x,y L x,y x,y ...`, a new `M` after each gap. A point alone between gaps would be an
/// invisible zero-length line, so it gets a short horizontal dash centred on it (`m-3 0h6`).
fn series_path_data(
    time_axis: &TimeAxis,
    point_seconds: &[Option<f64>],
    value_axis: &ValueAxis,
    panel: Panel,
    values: &[Option<f64>],
) -> String {
    let mut path_data = String::new();
    let mut segment_points: usize = 0;
    for (seconds, value) in point_seconds.iter().zip(values) {
        let (Some(seconds), Some(value)) = (seconds, value) else {
            if segment_points == 1 {
                push_isolated_point_dash(&mut path_data);
            }
            segment_points = 0;
            continue;
        };
        let command = match segment_points {
            0 => "M",
            1 => "L",
            _ => " ",
        };
        let x_px = time_axis.x_px(*seconds);
        let y_px = panel.y_px(value_axis.fraction(*value));
        push(&mut path_data, format_args!("{command}{x_px:.1},{y_px:.1}"));
        segment_points += 1;
    }
    if segment_points == 1 {
        push_isolated_point_dash(&mut path_data);
    }
    path_data
}

/// From the point just moved to: a dash `ISOLATED_POINT_DASH_PX` wide, centred on it.
fn push_isolated_point_dash(path_data: &mut String) {
    let half_px = ISOLATED_POINT_DASH_PX / 2.0;
    push(path_data, format_args!("m-{half_px} 0h{ISOLATED_POINT_DASH_PX}"));
}

/// The series' colours and names, in a column right of the panel.
fn draw_legend(svg: &mut String, chart: &Chart) {
    push(svg, format_args!("<g font-size=\"{FONT_SIZE_LABEL_PX}\" fill=\"{TEXT_COLOR}\">\n"));
    for (row, series) in chart.series.iter().enumerate() {
        let y_px = chart.panel.top_px + 12.0 + row as f64 * LEGEND_ROW_PX;
        push(
            svg,
            format_args!(
                "<line x1=\"{LEGEND_LEFT_PX}\" y1=\"{y_px:.1}\" x2=\"{:.1}\" y2=\"{y_px:.1}\" stroke=\"{}\" \
                 stroke-width=\"2\"",
                LEGEND_LEFT_PX + LEGEND_SAMPLE_PX,
                series.color
            ),
        );
        if let Some(dash) = series.dash {
            push(svg, format_args!(" stroke-dasharray=\"{dash}\""));
        }
        push(
            svg,
            format_args!(
                "/>\n<text x=\"{:.1}\" y=\"{:.1}\">{}</text>\n",
                LEGEND_LEFT_PX + LEGEND_SAMPLE_PX + 6.0,
                y_px + 4.0,
                escape_xml(series.label)
            ),
        );
    }
    svg.push_str("</g>\n");
}

/// Tick labels and the title of the time axis, under the bottom panel.
fn draw_time_labels(svg: &mut String, time_axis: &TimeAxis) {
    push(
        svg,
        format_args!("<g font-size=\"{FONT_SIZE_TICK_PX}\" fill=\"{TICK_TEXT_COLOR}\" text-anchor=\"middle\">\n"),
    );
    for seconds in linear_ticks(time_axis.end_seconds, time_axis.step_seconds) {
        push(
            svg,
            format_args!(
                "<text x=\"{:.1}\" y=\"{TIME_TICK_LABEL_BASELINE_PX}\">{}</text>\n",
                time_axis.x_px(seconds),
                escape_xml(&tick_label(seconds, time_axis.step_seconds))
            ),
        );
    }
    svg.push_str("</g>\n");
    push(
        svg,
        format_args!(
            "<text x=\"{:.1}\" y=\"{TIME_TITLE_BASELINE_PX}\" font-size=\"{FONT_SIZE_LABEL_PX}\" fill=\"{TEXT_COLOR}\" \
             text-anchor=\"middle\">seconds since start</text>\n",
            (PLOT_LEFT_PX + PLOT_RIGHT_PX) / 2.0
        ),
    );
}

/// A dashed vertical line through both panels, labelled at the top.
fn draw_sold_out_marker(svg: &mut String, time_axis: &TimeAxis, sold_out_at_seconds: f64) {
    let x_px = time_axis.x_px(sold_out_at_seconds);
    push(
        svg,
        format_args!(
            "<g stroke=\"{MARKER_COLOR}\" stroke-width=\"1.2\" stroke-dasharray=\"4 3\">\
             <title>sold out at {sold_out_at_seconds:.1} s</title>\n"
        ),
    );
    for panel in [LATENCY_PANEL, THROUGHPUT_PANEL] {
        draw_line(svg, (x_px, panel.top_px), (x_px, panel.bottom_px));
    }
    svg.push_str("</g>\n");
    // The label goes right of the line, or left of it when the line is near the right edge.
    let (label_x_px, anchor) = if x_px > PLOT_RIGHT_PX - 70.0 { (x_px - 4.0, "end") } else { (x_px + 4.0, "start") };
    push(
        svg,
        format_args!(
            "<text x=\"{label_x_px:.1}\" y=\"{:.1}\" font-size=\"{FONT_SIZE_TICK_PX}\" fill=\"{MARKER_COLOR}\" \
             text-anchor=\"{anchor}\">sold out</text>\n",
            LATENCY_PANEL.top_px + 13.0
        ),
    );
}

fn draw_line(svg: &mut String, from_px: (f64, f64), to_px: (f64, f64)) {
    push(
        svg,
        format_args!(
            "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\"/>\n",
            from_px.0, from_px.1, to_px.0, to_px.1
        ),
    );
}

/// Appends formatted text to the SVG being built.
fn push(svg: &mut String, text: fmt::Arguments) {
    svg.write_fmt(text).expect("writing to a String cannot fail");
}

/// The first `chars_max` characters of `text`, with an ellipsis if some were cut.
fn shortened(text: &str, chars_max: usize) -> String {
    match text.char_indices().nth(chars_max) {
        Some((cut_byte, _)) => format!("{}…", &text[..cut_byte]),
        None => text.to_string(),
    }
}

/// `text` as XML character data or attribute value: markup characters escaped, and characters
/// XML 1.0 forbids (most control characters) replaced, so that any title gives a well-formed file.
fn escape_xml(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'.. => {
                escaped.push(character)
            }
            _ => escaped.push('\u{FFFD}'),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `points` one-second intervals, every count and latency present and different from point to point.
    fn timeline(points: usize) -> TimelineReport {
        let points = (0..points)
            .map(|index| {
                let step = index as u64;
                TimelinePoint {
                    t_seconds: index as f64,
                    arrivals: 100 + step,
                    holds: 80 + step,
                    confirms: 60 + step,
                    seats_sold: 120 + step,
                    conflicts: 10 + step,
                    rejected: 5,
                    errors: step % 2,
                    hold_latency_ms: Some(percentiles(3.0 + index as f64)),
                    confirm_latency_ms: Some(percentiles(5.0 + index as f64)),
                }
            })
            .collect();
        TimelineReport { interval_seconds: 1.0, points, sold_out_at_seconds: None }
    }

    fn percentiles(p50_ms: f64) -> Percentiles {
        Percentiles { p50: p50_ms, p90: p50_ms * 3.0, p99: p50_ms * 10.0, max: p50_ms * 20.0 }
    }

    /// Parses the SVG, failing the test if it is not well-formed XML.
    fn parse(svg: &str) -> roxmltree::Document<'_> {
        roxmltree::Document::parse(svg).unwrap_or_else(|error| panic!("not well-formed XML ({error}):\n{svg}"))
    }

    /// The panel group of that `class`.
    fn panel<'a, 'input>(document: &'a roxmltree::Document<'input>, name: &str) -> roxmltree::Node<'a, 'input> {
        document
            .descendants()
            .find(|node| node.has_tag_name("g") && node.attribute("class") == Some(name))
            .unwrap_or_else(|| panic!("no panel {name}"))
    }

    /// The texts of the `<text>` elements under `node`, in document order.
    fn texts(node: roxmltree::Node) -> Vec<String> {
        node.descendants()
            .filter(|node| node.has_tag_name("text"))
            .filter_map(|node| node.text())
            .map(String::from)
            .collect()
    }

    /// Points in each segment of the series' one path; empty if the series has no path.
    fn segments(svg: &str, label: &str) -> Vec<usize> {
        let document = parse(svg);
        let paths: Vec<_> = document
            .descendants()
            .filter(|node| node.has_tag_name("path"))
            .filter(|path| path.children().any(|child| child.has_tag_name("title") && child.text() == Some(label)))
            .collect();
        assert!(paths.len() <= 1, "{label}: {} paths", paths.len());
        let Some(path) = paths.first() else { return Vec::new() };
        let path_data = path.attribute("d").expect("a path has data");
        path_data.split('M').skip(1).map(|segment| segment.matches(',').count()).collect()
    }

    const SERIES_LABELS: [&str; 11] = [
        "hold p50",
        "hold p90",
        "hold p99",
        "confirm p50",
        "confirm p99",
        "arrivals",
        "holds",
        "confirms",
        "conflicts (409)",
        "rejected (503/429)",
        "errors",
    ];

    #[test]
    fn one_path_per_series_with_a_point_per_interval() {
        let svg = render(&timeline(10), "run");
        for label in SERIES_LABELS {
            assert_eq!(segments(&svg, label), vec![10], "{label}");
        }
    }

    #[test]
    fn missing_latency_breaks_the_line() {
        let mut report = timeline(10);
        report.points[4].hold_latency_ms = None;
        report.points[1].confirm_latency_ms = None;
        report.points[9].confirm_latency_ms = Some(Percentiles { p50: f64::NAN, ..percentiles(1.0) });
        let svg = render(&report, "gaps");
        assert_eq!(segments(&svg, "hold p50"), vec![4, 5]);
        assert_eq!(segments(&svg, "hold p99"), vec![4, 5]);
        // A point alone between gaps is still drawn (as a dash); NaN is a gap like `None`.
        assert_eq!(segments(&svg, "confirm p50"), vec![1, 7]);
        assert_eq!(segments(&svg, "confirm p99"), vec![1, 8]);
        assert_eq!(segments(&svg, "arrivals"), vec![10]);
    }

    /// Renders latencies from `min_ms` to `max_ms` and checks the labels of the log axis.
    fn check_latency_decades(min_ms: f64, max_ms: f64, expected: &[&str]) {
        let mut report = timeline(2);
        report.points[0].hold_latency_ms = Some(Percentiles { p50: min_ms, p90: min_ms, p99: min_ms, max: min_ms });
        report.points[1].hold_latency_ms = Some(Percentiles { p50: max_ms, p90: max_ms, p99: max_ms, max: max_ms });
        report.points[0].confirm_latency_ms = None;
        report.points[1].confirm_latency_ms = None;
        let svg = render(&report, "decades");
        let document = parse(&svg);
        let labels = texts(panel(&document, "latency"));
        let decades: Vec<&str> =
            labels.iter().map(String::as_str).filter(|label| label.parse::<f64>().is_ok()).collect();
        assert_eq!(decades, expected, "latencies {min_ms} to {max_ms} ms");
    }

    #[test]
    fn log_axis_labels_the_decades_spanning_the_data() {
        check_latency_decades(3.0, 250.0, &["1", "10", "100", "1000"]);
        check_latency_decades(10.0, 100.0, &["10", "100"]);
        check_latency_decades(42.0, 42.0, &["10", "100"]);
        check_latency_decades(0.25, 7.0, &["0.1", "1", "10"]);
        // Clamped to the axis: from 0.1 ms to 10^7 ms.
        check_latency_decades(0.0001, 0.001, &["0.1", "1"]);
        check_latency_decades(-5.0, f64::INFINITY, &["1", "10", "100", "1000"]);
        check_latency_decades(
            0.01,
            1e300,
            &["0.1", "1", "10", "100", "1000", "10000", "100000", "1000000", "10000000"],
        );
    }

    #[test]
    fn sold_out_marker_only_when_sold_out() {
        let sold_out_labels = |sold_out_at_seconds: Option<f64>| {
            let report = TimelineReport { sold_out_at_seconds, ..timeline(10) };
            let svg = render(&report, "sold out?");
            texts(parse(&svg).root()).into_iter().filter(|text| text == "sold out").count()
        };
        assert_eq!(sold_out_labels(Some(4.2)), 1);
        assert_eq!(sold_out_labels(Some(9.9)), 1);
        assert_eq!(sold_out_labels(None), 0);
        assert_eq!(sold_out_labels(Some(f64::NAN)), 0);
        assert_eq!(sold_out_labels(Some(-1.0)), 0);
    }

    #[test]
    fn title_is_escaped() {
        let title = "<b>Tom & \"Jerry's\"</b>\u{1}";
        let svg = render(&timeline(3), title);
        assert!(svg.contains("&lt;b&gt;Tom &amp; &quot;Jerry&apos;s&quot;&lt;/b&gt;\u{FFFD}"));
        assert!(!svg.contains("<b>"));
        let document = parse(&svg);
        let shown = texts(document.root());
        assert_eq!(shown[0], "<b>Tom & \"Jerry's\"</b>\u{FFFD}");

        let long_title = "x".repeat(10_000);
        let svg = render(&timeline(3), &long_title);
        assert!(svg.len() < render(&timeline(3), "x").len() + 2 * TITLE_CHARS_MAX + 100);
    }

    /// Renders `report` and checks that it is well-formed, free of non-numbers, and says
    /// "no data" in `empty_panels` panels.
    fn check_robust(name: &str, report: &TimelineReport, empty_panels: usize) {
        let svg = render(report, "robust");
        let document = parse(&svg);
        let root = document.root_element();
        assert!(root.has_tag_name("svg"), "{name}");
        assert_eq!(root.attribute("viewBox"), Some("0 0 1000 640"), "{name}");
        for not_a_number in ["NaN", "inf"] {
            assert!(!svg.contains(not_a_number), "{name}: {not_a_number} in\n{svg}");
        }
        let no_data = texts(root).into_iter().filter(|text| text == "no data").count();
        assert_eq!(no_data, empty_panels, "{name}");
    }

    #[test]
    fn any_report_gives_a_well_formed_chart() {
        let with_points = |edit: fn(&mut TimelinePoint)| {
            let mut report = timeline(5);
            report.points.iter_mut().for_each(edit);
            report
        };
        check_robust("normal", &timeline(10), 0);
        check_robust("empty", &TimelineReport::default(), 2);
        check_robust("empty, sold out", &TimelineReport { sold_out_at_seconds: Some(3.0), ..Default::default() }, 2);
        check_robust("one point", &timeline(1), 0);
        check_robust(
            "all zero, no latencies",
            &TimelineReport {
                interval_seconds: 1.0,
                points: vec![TimelinePoint::default(); 5],
                sold_out_at_seconds: None,
            },
            1,
        );
        check_robust(
            "no latencies",
            &with_points(|point| {
                point.hold_latency_ms = None;
                point.confirm_latency_ms = None;
            }),
            1,
        );
        check_robust(
            "huge counts",
            &with_points(|point| {
                point.arrivals = u64::MAX;
                point.errors = u64::MAX / 2;
            }),
            0,
        );
        check_robust(
            "latencies not numbers",
            &with_points(|point| {
                point.hold_latency_ms = Some(Percentiles { p50: f64::NAN, p90: f64::INFINITY, p99: -1.0, max: 1e308 });
                point.confirm_latency_ms = Some(Percentiles { p50: f64::NEG_INFINITY, ..percentiles(f64::MAX) });
            }),
            0,
        );
        check_robust(
            "all latencies NaN",
            &with_points(|point| {
                let not_a_number = Percentiles { p50: f64::NAN, p90: f64::NAN, p99: f64::NAN, max: f64::NAN };
                point.hold_latency_ms = Some(not_a_number);
                point.confirm_latency_ms = Some(not_a_number);
            }),
            1,
        );
        check_robust("times not numbers", &with_points(|point| point.t_seconds = f64::NAN), 2);
        check_robust("times huge", &with_points(|point| point.t_seconds = 1e300), 0);
        check_robust("times negative", &with_points(|point| point.t_seconds = -1e300), 0);
        for interval_seconds in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e-300, 1e300] {
            check_robust("odd interval", &TimelineReport { interval_seconds, ..timeline(5) }, 0);
        }
        for sold_out_at_seconds in [f64::NAN, f64::INFINITY, -3.0, 0.0, 1e300] {
            check_robust(
                "odd sold out",
                &TimelineReport { sold_out_at_seconds: Some(sold_out_at_seconds), ..timeline(5) },
                0,
            );
        }
    }

    #[test]
    fn size_grows_with_points_not_elements() {
        let svg = render(&timeline(3600), "an hour");
        let document = parse(&svg);
        let elements = document.descendants().filter(|node| node.is_element()).count();
        assert!(elements < 250, "{elements} elements");
        // About a dozen bytes per coordinate pair of each series, plus the fixed parts.
        assert!(svg.len() < 3600 * SERIES_LABELS.len() * 13 + 20_000, "{} bytes", svg.len());
        for label in SERIES_LABELS {
            assert_eq!(segments(&svg, label), vec![3600], "{label}");
        }
    }

    #[test]
    fn same_report_same_bytes() {
        let report = spike_sample();
        assert_eq!(render(&report, "again"), render(&report, "again"));
    }

    /// An on-sale rehearsal: a rush of arrivals in the first seconds that decays, holds and
    /// confirms capped by the server until the event sells out at 42 s, conflicts after that,
    /// latency rising with the queue then falling.
    fn spike_sample() -> TimelineReport {
        let points = (0..90)
            .map(|second| {
                let t_seconds = f64::from(second);
                let arrivals = (12_000.0 * (-t_seconds / 8.0).exp() + 150.0) as u64;
                let selling = second < 42;
                let holds = if selling { arrivals.min(1_800) } else { 0 };
                let confirms = if selling && second > 0 { holds * 9 / 10 } else { 0 };
                let rejected = arrivals.saturating_sub(4_000) / 2;
                let conflicts =
                    if selling { arrivals.saturating_sub(holds + rejected) / 4 } else { arrivals - rejected };
                let queue_ms = 4.0 + 900.0 * (t_seconds / 6.0) * (-t_seconds / 6.0).exp();
                let hold_latency_ms = (holds > 0).then_some(Percentiles {
                    p50: queue_ms,
                    p90: queue_ms * 2.5,
                    p99: queue_ms * 6.0,
                    max: queue_ms * 9.0,
                });
                // No confirms in the first interval: the line starts with a gap.
                let confirm_latency_ms = (confirms > 0).then_some(Percentiles {
                    p50: queue_ms * 0.8 + 2.0,
                    p90: queue_ms * 2.0,
                    p99: queue_ms * 5.0,
                    max: queue_ms * 7.0,
                });
                TimelinePoint {
                    t_seconds,
                    arrivals,
                    holds,
                    confirms,
                    seats_sold: confirms * 2,
                    conflicts,
                    rejected,
                    errors: u64::from(second % 17 == 3),
                    hold_latency_ms,
                    confirm_latency_ms,
                }
            })
            .collect();
        TimelineReport { interval_seconds: 1.0, points, sold_out_at_seconds: Some(42.0) }
    }

    #[test]
    fn spike_sample_renders() {
        let svg = render(&spike_sample(), "hakken replay: on-sale rehearsal (queue spike.jsonl)");
        let document = parse(&svg);
        assert_eq!(segments(&svg, "hold p99"), vec![42]);
        assert_eq!(segments(&svg, "confirm p99"), vec![41]);
        assert_eq!(segments(&svg, "arrivals"), vec![90]);
        assert_eq!(texts(document.root()).iter().filter(|text| *text == "sold out").count(), 1);
        // Left in the temporary directory (overwritten each run) for people to look at.
        let path = std::env::temp_dir().join("hakken-loadtest-plot-sample.svg");
        std::fs::write(&path, &svg).unwrap_or_else(|error| panic!("writing {}: {error}", path.display()));
    }
}
