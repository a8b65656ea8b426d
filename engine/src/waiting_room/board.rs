//! The board: what a buyer's poll reads, without the room's lock.
//!
//! One 64-bit word per place (its rank, stage and deadline) in segments allocated as
//! places arrive, and a few shared figures (who is let in so far, the ETA rate,
//! the seats left). The room is the only writer; any number of readers compute a
//! [`Status`] from one word and the figures, with atomic loads only. A reader may see
//! a figure a tick older than the word (the two are not read together); what it shows
//! is then a moment stale, never inconsistent with itself.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::OnceLock;

use crate::clock::Millis;

use super::{PlaceNumber, Status};

/// Places per segment: 512 KiB of words, allocated when its first place joins.
const SEGMENT_PLACES: usize = 1 << 16;

/// Partial closes a room makes at most (see the room's `cut_due`): each tells at least a
/// tenth of those still waiting, so 64 leave 0.9^64, a thousandth, of the line.
pub(super) const CUTS_MAX: usize = 64;

/// Where one buyer is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Stage {
    Waiting = 0,
    /// Let in; the access is valid until the deadline and not used yet.
    Admitted = 1,
    /// Used the access; holds seats until the deadline at most.
    Shopping = 2,
    /// Let in and done: bought or abandoned.
    Done = 3,
    /// Let in, and the access lapsed unused.
    Lapsed = 4,
    /// Let in, and a hold with the access found nothing free that fit what it asked;
    /// the access stays usable (another ask may fit) until the deadline.
    Tried = 5,
}

/// A place's word: `rank << 32 | stage << 29 | deadline`, the deadline in whole
/// seconds after the room opened (29 bits: 17 years).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Word {
    /// Index in the admission order (0 = first let in); before the draw, join order.
    pub rank: u32,
    pub stage: Stage,
    pub deadline_s: u32,
}

const DEADLINE_MASK: u64 = (1 << 29) - 1;

impl Word {
    fn pack(self) -> u64 {
        debug_assert!(self.deadline_s as u64 <= DEADLINE_MASK);
        (self.rank as u64) << 32 | (self.stage as u64) << 29 | self.deadline_s as u64 & DEADLINE_MASK
    }

    fn unpack(word: u64) -> Word {
        let stage = match (word >> 29) & 0b111 {
            0 => Stage::Waiting,
            1 => Stage::Admitted,
            2 => Stage::Shopping,
            3 => Stage::Done,
            5 => Stage::Tried,
            _ => Stage::Lapsed,
        };
        Word { rank: (word >> 32) as u32, stage, deadline_s: (word & DEADLINE_MASK) as u32 }
    }
}

/// An f64 in an atomic word.
#[derive(Default)]
struct AtomicF64(AtomicU64);

impl AtomicF64 {
    fn load(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }

    fn store(&self, value: f64) {
        self.0.store(value.to_bits(), Ordering::Relaxed);
    }
}

/// Figures the room publishes at each tick for [`Board::status`].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(super) struct Published {
    pub eta_per_s: f64,
    pub seats_per_admission: f64,
    pub buy_rate: f64,
    pub free: u64,
    pub held: u64,
}

pub struct Board {
    /// What deadlines and ETA promises count from: a week before the room first opened,
    /// so an admin moving the opening earlier keeps every instant after it.
    base: Millis,
    /// When the opening draw is due (ms since the epoch); an admin may move it until then.
    sale_opens_at: AtomicU64,
    segments: Box<[OnceLock<Box<[AtomicU64]>>]>,
    /// Per place, the first ETA a poll told it (see [`Board::promise`]); 0 = none yet.
    /// Written by polls, read when the place is let in. Segments as `segments`.
    promises: Box<[OnceLock<Box<[AtomicU64]>>]>,
    /// Places `0..places` have their words written.
    places: AtomicU32,
    /// Ranks below `next` have been let in.
    next: AtomicU32,
    drawn: AtomicBool,
    /// When the room was declared sold out (ms since the epoch); 0 = not sold out.
    sold_out_at: AtomicU64,
    /// Let in, not come to hold yet, and still expected to (see the room's `pending`).
    admitted_pending: AtomicU64,
    /// The partial closes so far, `0..cuts`: waiting buyers from `cut_ranks[i]` on were
    /// told sold out at `cut_at_ms[i]`. Ranks only go down from one cut to the next.
    cuts: AtomicU32,
    cut_ranks: [AtomicU32; CUTS_MAX],
    cut_at_ms: [AtomicU64; CUTS_MAX],
    eta_per_s: AtomicF64,
    seats_per_admission: AtomicF64,
    buy_rate: AtomicF64,
    free: AtomicU64,
    held: AtomicU64,
}

impl Board {
    pub(super) fn new(base: Millis, sale_opens_at: Millis, places_max: u32) -> Board {
        let segments = (places_max as usize).div_ceil(SEGMENT_PLACES).max(1);
        Board {
            base,
            sale_opens_at: AtomicU64::new(sale_opens_at.0),
            segments: (0..segments).map(|_| OnceLock::new()).collect(),
            promises: (0..segments).map(|_| OnceLock::new()).collect(),
            places: AtomicU32::new(0),
            next: AtomicU32::new(0),
            drawn: AtomicBool::new(false),
            sold_out_at: AtomicU64::new(0),
            admitted_pending: AtomicU64::new(0),
            cuts: AtomicU32::new(0),
            cut_ranks: std::array::from_fn(|_| AtomicU32::new(0)),
            cut_at_ms: std::array::from_fn(|_| AtomicU64::new(0)),
            eta_per_s: AtomicF64::default(),
            seats_per_admission: AtomicF64::default(),
            buy_rate: AtomicF64::default(),
            free: AtomicU64::new(0),
            held: AtomicU64::new(0),
        }
    }

    /// The deadline `until` as the board keeps it: whole seconds after the base,
    /// rounded up (an access never ends sooner than it was given for).
    pub(super) fn deadline_s(&self, until: Millis) -> u32 {
        let after_ms = until.0.saturating_sub(self.base.0);
        after_ms.div_ceil(1_000).min(DEADLINE_MASK) as u32
    }

    pub(super) fn deadline(&self, deadline_s: u32) -> Millis {
        self.base.saturating_add(deadline_s as u64 * 1_000)
    }

    fn slot(&self, place: PlaceNumber) -> &AtomicU64 {
        slot_in(&self.segments, place)
    }

    /// Remembers the first ETA `place` is told, at `now`: it is let in `eta_s` later,
    /// says the poll. Later ones are ignored (the first is the one a buyer plans by).
    /// Kept in tenths of a second after the board's base.
    pub fn promise(&self, place: PlaceNumber, now: Millis, eta_s: f64) {
        if place >= self.len() {
            return;
        }
        let tenths = |at: Millis| (at.0.saturating_sub(self.base.0) / 100).min(u32::MAX as u64 - 1) + 1;
        let due = Millis(now.0.saturating_add((eta_s.max(0.0) * 1_000.0) as u64));
        let word = tenths(now) << 32 | tenths(due);
        let _ = slot_in(&self.promises, place).compare_exchange(0, word, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// When `place` was first told an ETA, and the admission it promised.
    pub(super) fn promise_of(&self, place: PlaceNumber) -> Option<(Millis, Millis)> {
        let word = slot_in(&self.promises, place).load(Ordering::Relaxed);
        let at = |tenths: u64| self.base.saturating_add((tenths - 1) * 100);
        (word != 0).then(|| (at(word >> 32), at(word & u32::MAX as u64)))
    }

    /// Writes a new place's word, then makes the place visible.
    pub(super) fn push(&self, place: PlaceNumber, word: Word) {
        assert_eq!(place, self.places.load(Ordering::Relaxed), "places are added in order");
        self.slot(place).store(word.pack(), Ordering::Relaxed);
        self.places.store(place + 1, Ordering::Release);
    }

    pub(super) fn set(&self, place: PlaceNumber, word: Word) {
        self.slot(place).store(word.pack(), Ordering::Release);
    }

    /// A place's word (`place` must be below [`len`](Self::len)).
    pub(super) fn word(&self, place: PlaceNumber) -> Word {
        Word::unpack(self.slot(place).load(Ordering::Acquire))
    }

    pub(super) fn len(&self) -> u32 {
        self.places.load(Ordering::Acquire)
    }

    pub(super) fn set_next(&self, next: u32) {
        self.next.store(next, Ordering::Release);
    }

    pub(super) fn set_drawn(&self) {
        self.drawn.store(true, Ordering::Release);
    }

    pub(super) fn set_sold_out(&self, at: Millis) {
        self.sold_out_at.store(at.0.max(1), Ordering::Release);
    }

    /// Waiting buyers from `rank` on are sold out since `at` (the room keeps to
    /// [`CUTS_MAX`] and lowers the rank each time).
    pub(super) fn push_cut(&self, rank: u32, at: Millis) {
        let cut = self.cuts();
        assert!(cut < CUTS_MAX, "at most {CUTS_MAX} partial closes");
        self.cut_ranks[cut].store(rank, Ordering::Relaxed);
        self.cut_at_ms[cut].store(at.0, Ordering::Relaxed);
        self.cuts.store(cut as u32 + 1, Ordering::Release);
    }

    /// Partial closes made so far.
    pub(super) fn cuts(&self) -> usize {
        self.cuts.load(Ordering::Acquire) as usize
    }

    /// When a waiting buyer at `rank` was told sold out by a partial close: at the first
    /// cut that reached it.
    fn cut_at(&self, rank: u32) -> Option<Millis> {
        (0..self.cuts())
            .find(|&cut| self.cut_ranks[cut].load(Ordering::Relaxed) <= rank)
            .map(|cut| Millis(self.cut_at_ms[cut].load(Ordering::Relaxed)))
    }

    /// Ranks below this have been let in (what wakes a long poll at its turn).
    pub fn let_in_below(&self) -> u32 {
        self.next.load(Ordering::Acquire)
    }

    /// Waiting buyers from this rank on are sold out: the latest partial close (each
    /// cut is lower than the one before).
    pub fn closed_from(&self) -> Option<u32> {
        let cuts = self.cuts();
        (cuts > 0).then(|| self.cut_ranks[cuts - 1].load(Ordering::Relaxed))
    }

    /// `place`'s rank while it waits after the draw (`None` before it, or once the
    /// place is let in): what a long poll is filed under.
    pub fn waiting_rank(&self, place: PlaceNumber) -> Option<u32> {
        if place >= self.len() || !self.drawn.load(Ordering::Acquire) {
            return None;
        }
        let word = self.word(place);
        (word.stage == Stage::Waiting).then_some(word.rank)
    }

    pub(super) fn set_admitted_pending(&self, count: u64) {
        self.admitted_pending.store(count, Ordering::Relaxed);
    }

    pub(super) fn publish(&self, published: Published) {
        self.eta_per_s.store(published.eta_per_s);
        self.seats_per_admission.store(published.seats_per_admission);
        self.buy_rate.store(published.buy_rate);
        self.free.store(published.free, Ordering::Relaxed);
        self.held.store(published.held, Ordering::Relaxed);
    }

    pub(super) fn set_eta_per_s(&self, eta_per_s: f64) {
        self.eta_per_s.store(eta_per_s);
    }

    /// When the opening draw is due.
    pub(super) fn base(&self) -> Millis {
        self.base
    }

    pub fn sale_opens_at(&self) -> Millis {
        Millis(self.sale_opens_at.load(Ordering::Relaxed))
    }

    pub(super) fn set_sale_opens_at(&self, at: Millis) {
        self.sale_opens_at.store(at.0, Ordering::Relaxed);
    }

    pub fn sold_out(&self) -> bool {
        self.sold_out_at().is_some()
    }

    /// When the room was declared sold out, if it was.
    pub fn sold_out_at(&self) -> Option<Millis> {
        let at = self.sold_out_at.load(Ordering::Acquire);
        (at != 0).then_some(Millis(at))
    }

    /// What the buyer at `place` is told at `now`; `None` for a place not (yet) taken.
    pub fn status(&self, place: PlaceNumber, now: Millis) -> Option<Status> {
        if place >= self.len() {
            return None;
        }
        let word = self.word(place);
        let until = self.deadline(word.deadline_s);
        if word.stage == Stage::Waiting {
            if let Some(at) = self.cut_at(word.rank).or(self.sold_out_at()) {
                return Some(Status::SoldOut { at });
            }
        }
        Some(match word.stage {
            Stage::Waiting if !self.drawn.load(Ordering::Acquire) => {
                Status::BeforeDraw { joined: self.len(), opens_in_ms: self.sale_opens_at().0.saturating_sub(now.0) }
            }
            Stage::Waiting => self.waiting(word.rank),
            Stage::Admitted | Stage::Tried if now < until => Status::Admitted { until, used: false },
            Stage::Admitted | Stage::Tried | Stage::Lapsed => Status::Expired,
            Stage::Shopping => Status::Admitted { until, used: true },
            Stage::Done => Status::Done,
        })
    }

    fn waiting(&self, rank: u32) -> Status {
        // A word says waiting, the figure may already count it let in: it is next.
        let ahead = rank.saturating_sub(self.next.load(Ordering::Acquire));
        let eta_per_s = self.eta_per_s.load();
        let per_admission = self.seats_per_admission.load();
        let (free, held) = (self.free.load(Ordering::Relaxed), self.held.load(Ordering::Relaxed));
        let admitted_pending = self.admitted_pending.load(Ordering::Relaxed);
        let expected_ahead = (ahead as f64 + admitted_pending as f64) * per_admission;
        let may_come_back = held as f64 * (1.0 - self.buy_rate.load());
        Status::Waiting {
            position: ahead + 1,
            ahead,
            eta_s: (eta_per_s > 0.0).then(|| (ahead + 1) as f64 / eta_per_s),
            seats_free: free,
            likely: expected_ahead < free as f64 + may_come_back,
        }
    }

    /// Bytes the board holds now (its segments; the figures are a rounding error).
    pub fn bytes(&self) -> usize {
        let allocated = |segments: &[OnceLock<Box<[AtomicU64]>>]| segments.iter().filter(|s| s.get().is_some()).count();
        (allocated(&self.segments) + allocated(&self.promises)) * SEGMENT_PLACES * 8
    }
}

fn slot_in(segments: &[OnceLock<Box<[AtomicU64]>>], place: PlaceNumber) -> &AtomicU64 {
    let (segment, offset) = (place as usize / SEGMENT_PLACES, place as usize % SEGMENT_PLACES);
    let segment = segments[segment].get_or_init(|| (0..SEGMENT_PLACES).map(|_| AtomicU64::new(0)).collect());
    &segment[offset]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_word_packs_and_unpacks_every_stage_and_the_widest_values() {
        for stage in [Stage::Waiting, Stage::Admitted, Stage::Shopping, Stage::Done, Stage::Lapsed, Stage::Tried] {
            for (rank, deadline_s) in [(0, 0), (u32::MAX, DEADLINE_MASK as u32), (12_345, 678)] {
                let word = Word { rank, stage, deadline_s };
                assert_eq!(Word::unpack(word.pack()), word);
            }
        }
    }

    #[test]
    fn deadlines_round_up_to_whole_seconds_after_the_opening() {
        let board = Board::new(Millis(10_000), Millis(20_000), 10);
        assert_eq!(board.deadline_s(Millis(10_000)), 0);
        assert_eq!(board.deadline_s(Millis(10_001)), 1);
        assert_eq!(board.deadline(board.deadline_s(Millis(71_500))), Millis(72_000));
    }

    #[test]
    fn segments_are_allocated_as_places_arrive() {
        let board = Board::new(Millis(0), Millis(0), 1_000_000);
        assert_eq!(board.bytes(), 0);
        let word = Word { rank: 0, stage: Stage::Waiting, deadline_s: 0 };
        for place in 0..(SEGMENT_PLACES as u32 + 1) {
            board.push(place, Word { rank: place, ..word });
        }
        assert_eq!(board.bytes(), 2 * SEGMENT_PLACES * 8);
        assert_eq!(board.word(SEGMENT_PLACES as u32).rank, SEGMENT_PLACES as u32);
        assert_eq!(board.status(SEGMENT_PLACES as u32 + 1, Millis(0)), None);
    }

    #[test]
    fn the_first_promise_is_kept_to_the_tenth_of_a_second() {
        let board = Board::new(Millis(10_000), Millis(20_000), 10);
        board.push(0, Word { rank: 0, stage: Stage::Waiting, deadline_s: 0 });
        assert_eq!(board.promise_of(0), None);
        board.promise(0, Millis(25_000), 12.34);
        board.promise(0, Millis(26_000), 1.0);
        assert_eq!(board.promise_of(0), Some((Millis(25_000), Millis(37_300))));
        board.promise(5, Millis(25_000), 1.0);
        assert_eq!(board.bytes(), 2 * SEGMENT_PLACES * 8, "a place not taken gets no promise");
    }
}
