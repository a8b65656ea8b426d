//! Best-available seat choice: a pure function of the seat map and which seats are free.
//!
//! Ranking, in order: seats together in one row over a split party; no single orphan
//! seat left beside the party over leaving one; then the highest total quality.
//! Rows are visited best first (by their best seat), rows without enough unsold seats
//! are skipped without a look, and the search stops as soon as no later row could
//! beat the best choice found: a nearly sold-out section costs little.

use crate::venue::{CategoryIndex, SeatFlags, SeatIndex, SeatMap};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BestRequest {
    pub quantity: u32,
    /// Only seats of this price category.
    pub category: Option<CategoryIndex>,
    /// Only seats flagged accessible.
    pub accessible: bool,
    /// The party must sit together (one row, consecutive numbers). When false, a
    /// together choice is still preferred; a split is the fallback.
    pub adjacent: bool,
}

/// The seats chosen and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BestChoice {
    /// In seat-map order.
    pub seats: Vec<SeatIndex>,
    /// Sum of the seats' quality scores.
    pub score: u32,
    /// All in one row at consecutive numbers.
    pub adjacent: bool,
    /// The choice leaves a lone free seat next to the party (only when nothing else
    /// fits). Judged for together choices; a split party is placed run by run.
    pub leaves_orphan: bool,
    pub rows: u32,
}

/// Precomputed per-section order in which best-available visits rows.
#[derive(Debug)]
pub struct RowOrder {
    /// Row indexes, best row (highest best-seat quality) first.
    rows: Vec<u16>,
    /// Best seat quality of each row, by row index.
    row_quality_max: Vec<u16>,
}

impl RowOrder {
    pub fn new(map: &SeatMap) -> RowOrder {
        let row_quality_max: Vec<u16> = map
            .rows
            .iter()
            .map(|row| {
                let range = map.row_seats(row);
                map.seats[range.start as usize..range.end as usize].iter().map(|seat| seat.quality).max().unwrap_or(0)
            })
            .collect();
        let mut rows: Vec<u16> = (0..map.rows.len() as u16).collect();
        rows.sort_by_key(|&row| (std::cmp::Reverse(row_quality_max[usize::from(row)]), row));
        RowOrder { rows, row_quality_max }
    }
}

/// Chooses seats for `request`, or `None` when the section cannot seat the party.
///
/// `row_unsold[r]` is the number of seats in row `r` not sold (a cheap upper bound
/// on what the row can offer); `is_free` says whether a seat can be held now.
pub fn choose(
    map: &SeatMap,
    order: &RowOrder,
    row_unsold: &[u16],
    is_free: impl Fn(SeatIndex) -> bool,
    request: &BestRequest,
) -> Option<BestChoice> {
    let quantity = request.quantity;
    if quantity == 0 {
        return None;
    }
    let eligible = |seat: SeatIndex| {
        let info = map.seats[seat as usize];
        request.category.is_none_or(|category| info.category == category)
            && (!request.accessible || info.flags.contains(SeatFlags::ACCESSIBLE))
            && is_free(seat)
    };
    choose_together(map, order, row_unsold, &eligible, quantity).or_else(|| {
        if request.adjacent {
            None
        } else {
            choose_split(map, order, row_unsold, &eligible, quantity)
        }
    })
}

/// A candidate run of `quantity` consecutive seats: (first seat, score, leaves orphan).
#[derive(Clone, Copy)]
struct Window {
    first: SeatIndex,
    score: u32,
    leaves_orphan: bool,
}

impl Window {
    fn beats(&self, other: &Window) -> bool {
        (!self.leaves_orphan, self.score) > (!other.leaves_orphan, other.score)
    }
}

fn choose_together(
    map: &SeatMap,
    order: &RowOrder,
    row_unsold: &[u16],
    eligible: &impl Fn(SeatIndex) -> bool,
    quantity: u32,
) -> Option<BestChoice> {
    let mut best: Option<Window> = None;
    for &row in &order.rows {
        let row = usize::from(row);
        if let Some(found) = &best {
            // Rows come best first: once an orphan-free choice scores at least what this
            // row could at most, no later row can win either.
            let row_bound = u32::from(order.row_quality_max[row]) * quantity;
            if !found.leaves_orphan && found.score >= row_bound {
                break;
            }
        }
        if u32::from(row_unsold[row]) < quantity {
            continue;
        }
        for_each_run(map, map.row_seats(&map.rows[row]), eligible, |run_start, run_end| {
            best_window_in_run(map, run_start, run_end, quantity, &mut best);
        });
    }
    let window = best?;
    Some(BestChoice {
        seats: (window.first..window.first + quantity).collect(),
        score: window.score,
        adjacent: true,
        leaves_orphan: window.leaves_orphan,
        rows: 1,
    })
}

/// Calls `visit(start, end)` for every maximal run of eligible, physically adjacent seats.
fn for_each_run(
    map: &SeatMap,
    seats: std::ops::Range<SeatIndex>,
    eligible: &impl Fn(SeatIndex) -> bool,
    mut visit: impl FnMut(SeatIndex, SeatIndex),
) {
    let mut run_start: Option<SeatIndex> = None;
    for seat in seats.clone() {
        let continues = run_start.is_some() && map.adjacent(seat - 1, seat);
        match (eligible(seat), continues) {
            (true, true) => {}
            (true, false) => {
                if let Some(start) = run_start {
                    visit(start, seat);
                }
                run_start = Some(seat);
            }
            (false, _) => {
                if let Some(start) = run_start.take() {
                    visit(start, seat);
                }
            }
        }
    }
    if let Some(start) = run_start {
        visit(start, seats.end);
    }
}

/// Slides a `quantity`-seat window over the run `[start, end)`.
fn best_window_in_run(map: &SeatMap, start: SeatIndex, end: SeatIndex, quantity: u32, best: &mut Option<Window>) {
    if end - start < quantity {
        return;
    }
    let quality = |seat: SeatIndex| u32::from(map.seats[seat as usize].quality);
    let mut score: u32 = (start..start + quantity).map(quality).sum();
    let mut first = start;
    loop {
        let left_gap = first - start;
        let right_gap = end - (first + quantity);
        let window = Window { first, score, leaves_orphan: left_gap == 1 || right_gap == 1 };
        if best.as_ref().is_none_or(|found| window.beats(found)) {
            *best = Some(window);
        }
        if first + quantity == end {
            return;
        }
        score = score - quality(first) + quality(first + quantity);
        first += 1;
    }
}

/// The party split over rows: the longest runs of the best rows first.
fn choose_split(
    map: &SeatMap,
    order: &RowOrder,
    row_unsold: &[u16],
    eligible: &impl Fn(SeatIndex) -> bool,
    quantity: u32,
) -> Option<BestChoice> {
    let mut seats = Vec::with_capacity(quantity as usize);
    let mut rows = 0;
    for &row in &order.rows {
        let row = usize::from(row);
        if row_unsold[row] == 0 {
            continue;
        }
        let mut runs = Vec::new();
        for_each_run(map, map.row_seats(&map.rows[row]), eligible, |start, end| runs.push(start..end));
        if runs.is_empty() {
            continue;
        }
        runs.sort_by_key(|run| std::cmp::Reverse(run.len()));
        rows += 1;
        for run in runs {
            let wanted = quantity as usize - seats.len();
            seats.extend(run.take(wanted));
            if seats.len() == quantity as usize {
                seats.sort_unstable();
                let score = seats.iter().map(|&seat| u32::from(map.seats[seat as usize].quality)).sum();
                return Some(BestChoice { seats, score, adjacent: false, leaves_orphan: false, rows });
            }
        }
    }
    None
}
