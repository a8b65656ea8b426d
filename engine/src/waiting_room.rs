//! The waiting room of one event: who is waiting, in what order they are let in, how
//! fast, and when to stop because the buyers already let in can take what is left.
//!
//! The deterministic core the shell wraps, like [`crate::inventory`]: it is given the
//! time, the server's health and the seats left, and never reads a clock. Every
//! durable change (a join, the opening draw, admissions, an access used, a purchase
//! resolved, the sold-out close) is a [`RoomRecord`] first, applied by
//! [`WaitingRoom::apply`], so a room replayed from its records is the room that made
//! them. What is derived from time alone (an access that lapsed unused, a shopper who
//! never bought) and what is learned live (the admission rate, conversion) is not
//! recorded; replay and the next tick derive it again.
//!
//! Order: everyone who joined before the sale opened is drawn into a random order at
//! the opening ([`draw`], from a seed that goes into the [`RoomRecord::Drawn`] record
//! and the audit log); everyone after is first come, first served behind them.
//!
//! Admission (`tick`): at the rate [`pace`] sets from the server's health, and only
//! while the buyers let in and not yet holding seats are not expected to take all the
//! free seats (`admitted × take rate × seats per hold`, both learned from what
//! admitted buyers did). A buyer whose hold found nothing free that fit stops counting
//! at once (it is a 0-seat outcome), and so does one who has not come to hold within a
//! grace learned from those who did ([`grace`]): at the end of a sale the free seats
//! are scattered singles, and buyers counted as about to take them until their access
//! lapsed would keep everyone behind them out. Holds that expire give seats back, and
//! admission resumes. At the end of the sale, when too little is free for one more
//! hold, the room closes the line behind the buyers the held seats could still serve
//! (a partial close, [`RoomRecord::ClosedBehind`]): everyone further back is told sold
//! out at once, the front waits for the seats of holds that end unbought. The room
//! closes, every waiting buyer sold out, when no seat is free or held, when everyone in
//! front of a partial close was let in, or when [`CLOSE_STREAK`] buyers in a row were
//! let in and found nothing that fit: what is free then is what nobody asks for.

mod board;
pub mod draw;
mod durable;
mod grace;
mod pace;
#[cfg(test)]
mod tests;
pub mod tokens;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::clock::Millis;
use crate::ids::CustomerId;

pub use board::Board;
use board::{Published, Stage, Word};
pub use durable::{AccessClaim, DurableRoom, RoomError};
pub use pace::Health;

/// A place in the room, numbered in join order from 0.
pub type PlaceNumber = u32;

/// A waiting room's settings (per event).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomSettings {
    /// Joins are taken from this time on.
    pub opens_at: Millis,
    /// The sale opens: whoever joined before is drawn into a random order.
    pub sale_opens_at: Millis,
    /// Admissions per second, at least (when the server is overloaded) ...
    pub admit_per_s_min: u32,
    /// ... and at most (when it is healthy).
    pub admit_per_s_max: u32,
    /// How long an admitted buyer's access lasts for creating a hold.
    pub access_window_ms: u64,
    /// How long a buyer holding seats may take to buy (the hold's longest life): a
    /// purchase not resolved by then counts as abandoned.
    pub shopping_ms_max: u64,
    /// Places at most (each costs memory; see the README's figure per waiting buyer).
    pub places_max: u32,
}

/// A durable change of a waiting room, applied live and in recovery alike.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RoomRecord {
    /// `customer` takes the next place.
    Joined { customer: CustomerId, at: Millis },
    /// The opening draw: the first `joiners` places are shuffled with `seed`.
    Drawn { seed: u64, joiners: u32, at: Millis },
    /// The next `count` buyers in order are let in, their access valid until `until`.
    Admitted { count: u32, at: Millis, until: Millis },
    /// `place` used its access: it created a hold of `seats` seats.
    AccessUsed { place: PlaceNumber, seats: u32, at: Millis },
    /// `place`'s hold ended: bought (an order) or not (released, expired).
    Resolved { place: PlaceNumber, bought: bool },
    /// Nothing is left to hold: every buyer still waiting is sold out.
    SoldOut { at: Millis },
    /// `place`'s first hold with its access found nothing free that fit (refused 409);
    /// the access stays usable until its deadline, but no longer counts as seats to come.
    Refused { place: PlaceNumber, at: Millis },
    /// Too little is free for one more hold: the buyers waiting from `rank` on are sold
    /// out, those ahead stay in line for the held seats that may come back.
    ClosedBehind { rank: u32, at: Millis },
}

/// The seats of the event as the room needs them: free to hold, and held (which may
/// come back when holds expire).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stock {
    pub free: u64,
    pub held: u64,
}

/// What a buyer is told about their place.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Status {
    /// Waiting for the opening draw; no position yet.
    BeforeDraw {
        joined: u32,
        opens_in_ms: u64,
    },
    Waiting {
        /// 1 = next to be let in.
        position: u32,
        ahead: u32,
        /// Seconds until let in at the measured rate; `None` while nobody is let in
        /// (the server is recovering, or admitted buyers may take what is left).
        eta_s: Option<f64>,
        seats_free: u64,
        /// Whether those ahead are expected to leave seats for this buyer.
        likely: bool,
    },
    Admitted {
        until: Millis,
        used: bool,
    },
    /// Let in, and the access lapsed unused.
    Expired,
    /// Done after being let in (bought or abandoned).
    Done,
    /// Nothing is left to hold (declared `at`): waiting is in vain.
    SoldOut {
        at: Millis,
    },
}

/// Why a join is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JoinRefused {
    #[error("the waiting room opens at {0:?}")]
    NotOpen(Millis),
    #[error("sold out")]
    SoldOut,
    #[error("the waiting room is full")]
    Full,
}

/// A join: the place, and the record to make durable if it is a new one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Joined {
    pub place: PlaceNumber,
    pub record: Option<RoomRecord>,
}

/// Why an access cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AccessRefused {
    #[error("no such place")]
    Unknown,
    #[error("not admitted")]
    NotAdmitted,
    #[error("the access has expired")]
    Expired,
    #[error("the access was already used")]
    Used,
}

/// Learned live: what buyers let in do. Priors stand in until enough outcomes are seen.
#[derive(Clone, Debug, Default)]
struct Learned {
    /// Admissions that used their access, those that let it lapse, and those whose
    /// holds found nothing that fit (and have not held since).
    used: u64,
    lapsed: u64,
    refused: u64,
    /// Seats of all holds made with an access.
    seats_held: u64,
    /// Holds bought, and holds abandoned.
    bought: u64,
    abandoned: u64,
}

/// How much earlier than its first opening an admin may move a room's opening (see
/// [`WaitingRoom::reconfigure`]): the longest `opens_before_sale_s`.
const RESCHEDULE_EARLIER_MAX_MS: u64 = 7 * 24 * 3_600 * 1_000;

/// Buyers let in one after another whose holds found nothing that fit, after which the
/// room closes: what is free then fits nobody's ask (scattered single seats, a sold-out
/// category). A few hundred is a fraction of a second of admissions at the end of a
/// stadium sale, and far more than the run of unlucky buyers a sale with seats to sell
/// shows (each refused buyer wanted a section or category that is gone; the next ones
/// want others).
pub const CLOSE_STREAK: u32 = 300;

/// Buyers in a row whose holds found nothing that fit after which the room counts
/// itself at the end of the sale, like when too little is free for one hold (see
/// [`WaitingRoom::cut_due`]). Far below [`CLOSE_STREAK`]: it closes nobody's chance who
/// could still buy, since the line is kept long enough for every seat free or held.
const TAIL_STREAK: u32 = 30;

/// At the end of the sale, buyers kept in line per seat free or held: the held seats
/// are mostly bought (they come back only when a hold ends unbought), and a buyer asks
/// for about two, so three per seat leaves some six times the demand the seats can meet.
const KEEP_PER_SEAT: u64 = 3;

/// Outcomes a prior counts as, and what it says: 9 in 10 admitted buyers hold seats,
/// 2 seats each, so the room is cautious before it has seen the real figures.
const PRIOR_OUTCOMES: f64 = 10.0;
const PRIOR_TAKE_RATE: f64 = 0.9;
const PRIOR_SEATS_PER_HOLD: f64 = 2.0;

impl Learned {
    fn take_rate(&self) -> f64 {
        let outcomes = self.used + self.lapsed + self.refused;
        (self.used as f64 + PRIOR_TAKE_RATE * PRIOR_OUTCOMES) / (outcomes as f64 + PRIOR_OUTCOMES)
    }

    fn seats_per_hold(&self) -> f64 {
        (self.seats_held as f64 + PRIOR_SEATS_PER_HOLD * PRIOR_OUTCOMES) / (self.used as f64 + PRIOR_OUTCOMES)
    }

    /// Seats one admitted buyer who has not held yet is expected to take.
    fn seats_per_admission(&self) -> f64 {
        self.take_rate() * self.seats_per_hold()
    }

    fn buy_rate(&self) -> f64 {
        (self.bought as f64 + PRIOR_OUTCOMES) / ((self.bought + self.abandoned) as f64 + PRIOR_OUTCOMES)
    }
}

/// Figures for metrics and dashboards.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Figures {
    pub waiting: u64,
    /// Let in, access not used yet.
    pub admitted_unused: u64,
    pub shopping: u64,
    pub admitted_total: u64,
    /// Let in, not come to hold, and within the grace: counted as seats to come.
    pub admitted_pending: u64,
    /// How long after being let in a buyer counts as about to come (learned).
    pub grace_ms: u64,
    pub lapsed_total: u64,
    /// Buyers let in whose first hold found nothing that fit.
    pub refused_total: u64,
    /// Buyers told sold out by a partial close while those ahead still wait.
    pub closed_behind: u64,
    /// The rate aimed at, and the rate achieved (admissions per second).
    pub target_per_s: f64,
    pub measured_per_s: f64,
    pub sold_out: bool,
}

pub struct WaitingRoom {
    settings: RoomSettings,
    /// Each place's word (rank, stage, deadline), shared with the polls.
    board: Arc<Board>,
    /// Each place's customer, by place number.
    customers: Vec<CustomerId>,
    by_customer: HashMap<CustomerId, PlaceNumber>,
    /// Places in the order they are let in; before the draw, in join order.
    order: Vec<PlaceNumber>,
    /// `order[next..]` are waiting.
    next: usize,
    /// The seed and joiner count of the opening draw, once made.
    drawn: Option<(u64, u32)>,
    sold_out: bool,
    /// Ranks from this on are sold out (a partial close; the board keeps each one).
    closed_behind: Option<u32>,
    /// Let in and not yet used, in the order let in (oldest access first).
    unused: VecDeque<PlaceNumber>,
    admitted_unused: u64,
    /// Of those, the ones let in less than the grace ago (ranks from `stale_below` on),
    /// still counted as about to take seats.
    pending: u64,
    stale_below: u32,
    /// The admissions from `stale_below` on: the rank each ends at, and when.
    pending_batches: VecDeque<(u32, Millis)>,
    /// How long admitted buyers took to come and ask for seats.
    arrivals: grace::Arrivals,
    /// Holding seats, in the order they used their access.
    shopping: VecDeque<PlaceNumber>,
    shopping_now: u64,
    learned: Learned,
    /// Buyers in a row whose first hold found nothing that fit, since the last hold
    /// made with an access; and all of them (for metrics).
    refused_streak: u32,
    refused_total: u64,
    pace: pace::Pace,
}

impl WaitingRoom {
    pub fn new(settings: RoomSettings) -> WaitingRoom {
        let pace = pace::Pace::new(settings.admit_per_s_min, settings.admit_per_s_max);
        let base = Millis(settings.opens_at.0.saturating_sub(RESCHEDULE_EARLIER_MAX_MS));
        let board = Arc::new(Board::new(base, settings.sale_opens_at, settings.places_max));
        WaitingRoom {
            settings,
            board,
            customers: Vec::new(),
            by_customer: HashMap::new(),
            order: Vec::new(),
            next: 0,
            drawn: None,
            sold_out: false,
            closed_behind: None,
            unused: VecDeque::new(),
            admitted_unused: 0,
            pending: 0,
            stale_below: 0,
            pending_batches: VecDeque::new(),
            arrivals: grace::Arrivals::default(),
            shopping: VecDeque::new(),
            shopping_now: 0,
            learned: Learned::default(),
            refused_streak: 0,
            refused_total: 0,
            pace,
        }
    }

    /// A fresh room with `records` applied in order (recovery).
    pub fn replay<'a>(settings: RoomSettings, records: impl IntoIterator<Item = &'a RoomRecord>) -> WaitingRoom {
        let mut room = WaitingRoom::new(settings);
        records.into_iter().for_each(|record| room.apply(record));
        room
    }

    pub fn settings(&self) -> &RoomSettings {
        &self.settings
    }

    /// An admin's new settings, from now on: the admission bounds, the access window
    /// (for buyers let in from now) and the longest shopping time at once; the room's and
    /// the sale's opening only while the draw is still to come (a draw made stays made).
    /// `places_max` waits for the next start: the board is sized once.
    pub fn reconfigure(&mut self, settings: &RoomSettings) {
        self.pace.set_bounds(settings.admit_per_s_min, settings.admit_per_s_max);
        self.settings.admit_per_s_min = settings.admit_per_s_min;
        self.settings.admit_per_s_max = settings.admit_per_s_max;
        self.settings.access_window_ms = settings.access_window_ms;
        self.settings.shopping_ms_max = settings.shopping_ms_max;
        if self.drawn.is_none() {
            // Deadlines count from the board's base: joins never open before it.
            self.settings.opens_at = settings.opens_at.max(self.board.base());
            self.settings.sale_opens_at = settings.sale_opens_at;
            self.board.set_sale_opens_at(settings.sale_opens_at);
        }
    }

    /// The board the polls read, without this room's lock.
    pub fn board(&self) -> Arc<Board> {
        self.board.clone()
    }

    /// `customer`'s place: the one they have, or a new one at the back.
    pub fn join(&self, customer: &CustomerId, now: Millis) -> Result<Joined, JoinRefused> {
        if let Some(&place) = self.by_customer.get(customer) {
            return Ok(Joined { place, record: None });
        }
        if now < self.settings.opens_at {
            return Err(JoinRefused::NotOpen(self.settings.opens_at));
        }
        // Behind a partial close, a new place is sold out too.
        if self.sold_out || self.closed_behind.is_some() {
            return Err(JoinRefused::SoldOut);
        }
        if self.customers.len() >= self.settings.places_max as usize {
            return Err(JoinRefused::Full);
        }
        let place = self.customers.len() as PlaceNumber;
        Ok(Joined { place, record: Some(RoomRecord::Joined { customer: customer.clone(), at: now }) })
    }

    pub fn place_of(&self, customer: &CustomerId) -> Option<PlaceNumber> {
        self.by_customer.get(customer).copied()
    }

    /// The record saying `customer`'s hold ended (bought or not), if they hold one
    /// made with an access.
    pub fn resolution(&self, customer: &CustomerId, bought: bool) -> Option<RoomRecord> {
        let place = self.place_of(customer)?;
        (self.board.word(place).stage == Stage::Shopping).then_some(RoomRecord::Resolved { place, bought })
    }

    /// The record saying `place`'s hold with its access found nothing that fit, the first
    /// time (later refusals of the same buyer tell the room nothing new).
    pub fn refusal(&self, place: PlaceNumber, now: Millis) -> Option<RoomRecord> {
        let admitted = (place as usize) < self.customers.len() && self.board.word(place).stage == Stage::Admitted;
        admitted.then_some(RoomRecord::Refused { place, at: now })
    }

    pub fn customer_of(&self, place: PlaceNumber) -> Option<&CustomerId> {
        self.customers.get(place as usize)
    }

    /// The opening draw's record, when it is due and not yet made; `seed` is the
    /// shell's fresh random number.
    pub fn draw_due(&self, now: Millis, seed: u64) -> Option<RoomRecord> {
        (self.drawn.is_none() && now >= self.settings.sale_opens_at).then_some(RoomRecord::Drawn {
            seed,
            joiners: self.customers.len() as u32,
            at: now,
        })
    }

    /// The seed and joiner count of the opening draw, once made.
    pub fn drawn(&self) -> Option<(u64, u32)> {
        self.drawn
    }

    /// Moves time on: lapses accesses and purchases that ran out, publishes the figures
    /// polls read, and decides who is let in now. The records are to be made durable,
    /// then applied.
    pub fn tick(&mut self, now: Millis, health: Health, stock: Stock) -> Vec<RoomRecord> {
        self.go_stale(now);
        self.lapse(now);
        let credit = self.pace.tick(now, health);
        self.board.publish(Published {
            eta_per_s: self.pace.eta_per_s(now),
            seats_per_admission: self.learned.seats_per_admission(),
            buy_rate: self.learned.buy_rate(),
            free: stock.free,
            held: stock.held,
        });
        if self.drawn.is_none() || self.sold_out {
            return Vec::new();
        }
        let everyone_let_in = self.closed_behind.is_some() && self.next == self.line_end();
        if (stock.free == 0 && stock.held == 0) || self.refused_streak >= CLOSE_STREAK || everyone_let_in {
            return vec![RoomRecord::SoldOut { at: now }];
        }
        let mut records = Vec::new();
        let mut line_end = self.line_end();
        if let Some(rank) = self.cut_due(stock) {
            records.push(RoomRecord::ClosedBehind { rank, at: now });
            line_end = rank as usize;
        }
        let count = credit.min(self.admissible(stock)).min((line_end - self.next) as u32);
        if count > 0 {
            let until = self.board.deadline(self.board.deadline_s(now.saturating_add(self.settings.access_window_ms)));
            records.push(RoomRecord::Admitted { count, at: now, until });
        }
        records
    }

    /// The end of the line: ranks from here on are sold out (all of them when nobody
    /// was closed out).
    fn line_end(&self) -> usize {
        self.closed_behind.map_or(self.order.len(), |rank| rank as usize)
    }

    /// Where to close the line now, if anywhere. At the end of a sale (fewer seats free
    /// than one hold takes, or [`TAIL_STREAK`] buyers in a row found nothing that fit)
    /// only held seats coming back are left to sell: [`KEEP_PER_SEAT`] buyers per seat
    /// free or held stay in line for them, and everyone behind is told sold out at once
    /// rather than wait in vain. The line only ever gets shorter, each time by a tenth of
    /// those waiting at least (so a cut is a record now and then, not one per tick).
    fn cut_due(&self, stock: Stock) -> Option<u32> {
        let tail = (stock.free as f64) < self.learned.seats_per_hold() || self.refused_streak >= TAIL_STREAK;
        if !tail || self.board.cuts() >= board::CUTS_MAX {
            return None;
        }
        let (next, end) = (self.next as u64, self.line_end() as u64);
        let keep = (stock.free + stock.held).saturating_mul(KEEP_PER_SEAT);
        let rank = next.saturating_add(keep).min(end);
        let step_min = ((end - next) / 10).max(1);
        (end - rank >= step_min).then_some(rank as u32)
    }

    /// Buyers the free seats still leave room for: those let in, not holding yet and
    /// within their grace are each expected to take `seats_per_admission`; admit while
    /// that is short of `free`.
    fn admissible(&self, stock: Stock) -> u32 {
        let per_admission = self.learned.seats_per_admission().max(f64::EPSILON);
        let expected = self.pending as f64 * per_admission;
        let room = (stock.free as f64 - expected) / per_admission;
        room.max(0.0).ceil().min(u32::MAX as f64) as u32
    }

    /// For an admission about to be applied: how wrong each admitted buyer's first ETA
    /// was, as a share of its wait from when it was told (none for buyers never told).
    pub fn eta_errors(&self, record: &RoomRecord) -> Vec<f64> {
        let RoomRecord::Admitted { count, at, .. } = *record else { return Vec::new() };
        let end = (self.next + count as usize).min(self.order.len());
        self.order[self.next..end]
            .iter()
            .filter_map(|&place| self.board.promise_of(place))
            .map(|(told, due)| {
                let waited_ms = at.0.saturating_sub(told.0).max(100);
                at.0.abs_diff(due.0) as f64 / waited_ms as f64
            })
            .collect()
    }

    /// Checks that `place` may create a hold now (before the shell holds, so a refused
    /// access never reaches the inventory); the shell then records
    /// [`RoomRecord::AccessUsed`] with the hold.
    pub fn check_access(&self, place: PlaceNumber, now: Millis) -> Result<(), AccessRefused> {
        if place as usize >= self.customers.len() {
            return Err(AccessRefused::Unknown);
        }
        let word = self.board.word(place);
        match word.stage {
            Stage::Admitted | Stage::Tried if now < self.board.deadline(word.deadline_s) => Ok(()),
            Stage::Admitted | Stage::Tried | Stage::Lapsed => Err(AccessRefused::Expired),
            Stage::Shopping | Stage::Done => Err(AccessRefused::Used),
            Stage::Waiting => Err(AccessRefused::NotAdmitted),
        }
    }

    /// What `place` is told (as a poll reads it from the [`Board`]).
    pub fn status(&self, place: PlaceNumber, now: Millis) -> Option<Status> {
        self.board.status(place, now)
    }

    pub fn figures(&self, now: Millis) -> Figures {
        Figures {
            waiting: if self.sold_out { 0 } else { (self.line_end() - self.next) as u64 },
            admitted_unused: self.admitted_unused,
            shopping: self.shopping_now,
            admitted_total: self.next as u64,
            admitted_pending: self.pending,
            grace_ms: self.arrivals.grace_ms(self.settings.access_window_ms),
            lapsed_total: self.learned.lapsed,
            refused_total: self.refused_total,
            closed_behind: (self.order.len() - self.line_end()) as u64,
            target_per_s: self.pace.per_s(),
            measured_per_s: self.pace.measured_per_s(now),
            sold_out: self.sold_out,
        }
    }

    /// Applies a durable change. A record that does not fit the room is a bug (records
    /// are only made by this room's own checks), so it is asserted.
    pub fn apply(&mut self, record: &RoomRecord) {
        match *record {
            RoomRecord::Joined { ref customer, .. } => {
                let place = self.customers.len() as PlaceNumber;
                let previous = self.by_customer.insert(customer.clone(), place);
                assert!(previous.is_none(), "one place per customer");
                self.customers.push(customer.clone());
                let rank = self.order.len() as u32;
                self.order.push(place);
                self.board.push(place, Word { rank, stage: Stage::Waiting, deadline_s: 0 });
            }
            RoomRecord::Drawn { seed, joiners, at } => {
                assert!(self.drawn.is_none(), "one draw per room");
                assert_eq!(self.next, 0, "nobody let in before the draw");
                let joiners = joiners as usize;
                draw::shuffle(seed, &mut self.order[..joiners]);
                for (rank, &place) in self.order[..joiners].iter().enumerate() {
                    self.board.set(place, Word { rank: rank as u32, stage: Stage::Waiting, deadline_s: 0 });
                }
                self.drawn = Some((seed, joiners as u32));
                self.pace.start(at);
                self.board.set_drawn();
            }
            RoomRecord::Admitted { count, at, until } => {
                let end = self.next + count as usize;
                assert!(end <= self.order.len(), "admits only those waiting");
                let deadline_s = self.board.deadline_s(until);
                for (rank, &place) in self.order.iter().enumerate().take(end).skip(self.next) {
                    self.board.set(place, Word { rank: rank as u32, stage: Stage::Admitted, deadline_s });
                    self.unused.push_back(place);
                }
                self.next = end;
                self.admitted_unused += count as u64;
                self.pending += count as u64;
                self.pending_batches.push_back((end as u32, at));
                self.pace.admitted(at, count);
                self.board.set_eta_per_s(self.pace.eta_per_s(at));
                self.board.set_next(end as u32);
                self.board.set_admitted_pending(self.pending);
            }
            RoomRecord::AccessUsed { place, seats, at } => {
                let word = self.board.word(place);
                match word.stage {
                    Stage::Admitted => {
                        self.admitted_unused -= 1;
                        self.came(word, at);
                    }
                    // Refused once, then held with another ask: it took seats after all.
                    Stage::Tried => self.learned.refused -= 1,
                    // Claimed in time, and the access's deadline passed while the hold
                    // was made (a tick lapsed it): the hold stands, so it was used.
                    Stage::Lapsed => self.learned.lapsed -= 1,
                    stage => panic!("an access is used once (place {place} is {stage:?})"),
                }
                let deadline_s = self.board.deadline_s(at.saturating_add(self.settings.shopping_ms_max));
                self.board.set(place, Word { stage: Stage::Shopping, deadline_s, ..word });
                self.refused_streak = 0;
                self.shopping_now += 1;
                self.shopping.push_back(place);
                self.learned.used += 1;
                self.learned.seats_held += seats as u64;
            }
            RoomRecord::Resolved { place, bought } => {
                let word = self.board.word(place);
                // A purchase resolved after it was counted abandoned (a hold bought at
                // the last moment) corrects nothing: the room has moved on.
                if word.stage == Stage::Shopping {
                    self.board.set(place, Word { stage: Stage::Done, ..word });
                    self.shopping_now -= 1;
                    match bought {
                        true => self.learned.bought += 1,
                        false => self.learned.abandoned += 1,
                    }
                }
            }
            RoomRecord::SoldOut { at } => {
                self.sold_out = true;
                self.board.set_sold_out(at);
            }
            RoomRecord::ClosedBehind { rank, at } => {
                assert!(
                    self.next <= rank as usize && (rank as usize) < self.line_end(),
                    "a partial close shortens the line"
                );
                self.closed_behind = Some(rank);
                self.board.push_cut(rank, at);
            }
            RoomRecord::Refused { place, at } => {
                let word = self.board.word(place);
                assert_eq!(word.stage, Stage::Admitted, "a refusal is recorded once, before any hold");
                // Leaves `unused`, whose lapse sweep drops places no longer admitted.
                self.board.set(place, Word { stage: Stage::Tried, ..word });
                self.admitted_unused -= 1;
                self.came(word, at);
                self.learned.refused += 1;
                self.refused_streak += 1;
                self.refused_total += 1;
            }
        }
    }

    /// A buyer let in (`word`, still admitted) came at `at` to ask for seats: it is no
    /// longer pending, and its delay is learned (counted from the access's deadline, so
    /// after an admin changed the window, the delays of those let in before are off by
    /// the change until they are gone).
    fn came(&mut self, word: Word, at: Millis) {
        self.leave_pending(word);
        let let_in_at = self.board.deadline(word.deadline_s).0.saturating_sub(self.settings.access_window_ms);
        self.arrivals.record(at.0.saturating_sub(let_in_at));
    }

    /// `word`'s buyer leaves the admitted state: if it was still pending, it is not now.
    fn leave_pending(&mut self, word: Word) {
        if word.rank >= self.stale_below {
            self.pending -= 1;
            self.board.set_admitted_pending(self.pending);
        }
    }

    /// Buyers let in longer than the grace ago who have not come stop being pending.
    /// Derived from time, like a lapse: replay counts every admission pending until the
    /// first tick.
    fn go_stale(&mut self, now: Millis) {
        let grace_ms = self.arrivals.grace_ms(self.settings.access_window_ms);
        while let Some(&(end, at)) = self.pending_batches.front() {
            if at.saturating_add(grace_ms) > now {
                break;
            }
            let still_admitted = self.order[self.stale_below as usize..end as usize]
                .iter()
                .filter(|&&place| self.board.word(place).stage == Stage::Admitted)
                .count();
            self.pending -= still_admitted as u64;
            self.stale_below = end;
            self.pending_batches.pop_front();
        }
        self.board.set_admitted_pending(self.pending);
    }

    /// Accesses that lapsed unused and purchases past their longest life, by `now`.
    fn lapse(&mut self, now: Millis) {
        let (stale_below, mut lapsed_pending) = (self.stale_below, 0);
        let lapsed = end_due(&self.board, &mut self.unused, (Stage::Admitted, Stage::Lapsed), now, |word| {
            lapsed_pending += u64::from(word.rank >= stale_below);
        });
        self.pending -= lapsed_pending;
        self.board.set_admitted_pending(self.pending);
        self.admitted_unused -= lapsed;
        self.learned.lapsed += lapsed;
        let abandoned = end_due(&self.board, &mut self.shopping, (Stage::Shopping, Stage::Done), now, |_| ());
        self.shopping_now -= abandoned;
        self.learned.abandoned += abandoned;
    }
}

/// Moves the places at the front of `queue` still in stage `from` whose deadline has
/// come by `now` to stage `to` (giving `ended` each one's word before the move), and
/// drops those no longer in `from` (they moved on); returns how many were moved. The
/// queue is in the order deadlines were set, which is deadline order while the settings
/// do not change (after a change, some end late).
fn end_due(
    board: &Board,
    queue: &mut VecDeque<PlaceNumber>,
    (from, to): (Stage, Stage),
    now: Millis,
    mut ended_one: impl FnMut(Word),
) -> u64 {
    let mut ended = 0;
    while let Some(&place) = queue.front() {
        let word = board.word(place);
        if word.stage == from {
            if board.deadline(word.deadline_s) > now {
                break;
            }
            ended_one(word);
            board.set(place, Word { stage: to, ..word });
            ended += 1;
        }
        queue.pop_front();
    }
    ended
}
