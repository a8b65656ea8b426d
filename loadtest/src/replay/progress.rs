//! The replay's live progress line on stderr (`--progress`): a bar over the schedule,
//! then buyers arrived and in flight, seats sold, and failures so far.
//!
//! On a terminal the bar is redrawn in place a few times a second; into a log (stderr
//! not a terminal) a line is printed every few seconds, so the log stays short.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::Run;

/// The progress bar is redrawn this often on a terminal, and a line is printed this
/// often otherwise.
const PROGRESS_TERMINAL_INTERVAL: Duration = Duration::from_millis(250);
const PROGRESS_LOG_INTERVAL: Duration = Duration::from_secs(5);
const PROGRESS_BAR_WIDTH: usize = 24;

/// The line for now, of a schedule `span` long; `last` for the final one (no padding
/// left to overwrite a longer line before it).
pub(super) fn progress_line(run: &Run, span: Duration, last: bool) -> String {
    let elapsed = run.start.elapsed();
    let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    let fraction = if span.is_zero() { 1.0 } else { (elapsed.as_secs_f64() / span.as_secs_f64()).min(1.0) };
    let filled = (fraction * PROGRESS_BAR_WIDTH as f64).round() as usize;
    let phase = if elapsed > span { "draining" } else { "" };
    format!(
        "[{}{}] {:>3.0}% {:>7.1}/{:.1} s {phase:<8}  arrived {}/{}  in flight {}  sold {} seats  conflicts {}  rejected {}  errors {}{}",
        "#".repeat(filled),
        "-".repeat(PROGRESS_BAR_WIDTH - filled),
        fraction * 100.0,
        elapsed.as_secs_f64(),
        span.as_secs_f64(),
        load(&run.live.arrivals_launched),
        run.buyers.len(),
        load(&run.live.in_flight),
        load(&run.seats_sold),
        load(&run.live.conflicts),
        load(&run.live.rejections),
        load(&run.live.errors),
        if last { "" } else { "   " },
    )
}

/// A bar redrawn in place on a terminal; a line every few seconds into a log. Runs
/// until aborted.
pub(super) async fn print_progress(run: Arc<Run>, span: Duration) {
    let terminal = std::io::stderr().is_terminal();
    let interval = if terminal { PROGRESS_TERMINAL_INTERVAL } else { PROGRESS_LOG_INTERVAL };
    let mut ticks = tokio::time::interval_at(run.start + interval, interval);
    loop {
        ticks.tick().await;
        let line = progress_line(&run, span, false);
        if terminal {
            eprint!("\r{line}");
        } else {
            eprintln!("{line}");
        }
    }
}
