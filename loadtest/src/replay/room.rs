//! The waiting room as a buyer sees it (`replay --waiting-room`): join
//! `POST /v1/events/{event}/queue`, poll `GET /v1/queue/{token}` after each
//! `poll_after_ms`, and once admitted play the rest of the buyer's story (hold with the
//! `Hakken-Access` the room gave, think, confirm or pay, release, expire) exactly as
//! without a room ([`super::buyer::play`]).
//!
//! Memory: at an opening every buyer of the file may be waiting at once (200,000 and
//! more), so a waiting buyer is not a sleeping task (a buyer's future holds every step
//! it may take, kilobytes). It is a [`Next`] in one heap, ordered by when it is due, and
//! a [`RoomBuyer`] record: 48 + 80 bytes and its token (~100 bytes). One poller
//! task pops what is due (every millisecond) and spawns a short task per join or poll;
//! only admitted buyers become full buyer tasks. Polls are timed from when they were
//! due (the previous reply plus `poll_after_ms`), so the poller's own lateness counts.
//!
//! The statistics of the report ([`WaitingRoomReport`]): waits, ETA error, fairness
//! (Spearman's rank correlation of join and admission order) and the sold-out lag. The
//! server states instants in RFC 3339 on its wall clock; the tool pairs its clock with
//! the system's once ([`Clock`]), so both must be synchronised (NTP, or one machine).

use std::cmp::{Ordering as CmpOrdering, Reverse};
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use hyper::header::HeaderValue;
use hyper::{Method, Uri};
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::buyer::{self, request, InFlight};
use super::{lock, Run};
use crate::client::Pool;
use crate::schedule::Arrival;
use crate::stats::{Latency, Step, Totals};
use crate::wire::json;

/// The header a hold carries the room's access in.
pub(super) const ACCESS_HEADER: &str = "hakken-access";
/// How often the poller looks for joins and polls that are due (tokio's timer has a
/// millisecond resolution anyway).
const POLLER_TICK: Duration = Duration::from_millis(1);
/// A poll without `poll_after_ms` (or a failed one) is tried again after this.
const POLL_AFTER_DEFAULT: Duration = Duration::from_secs(1);
/// Consecutive failed polls (errors, timeouts, refusals after their retries) after
/// which a buyer gives up waiting.
const POLL_FAILURES_MAX: u8 = 5;
/// The opening is the file's time 0 only when it is at most this far ahead: a sale a
/// week away is not rehearsed by waiting a week.
pub(super) const OPENING_AHEAD_MAX: Duration = Duration::from_secs(24 * 3600);
/// How long a long poll asks the server to wait (`wait_ms`); the request is given
/// [`LONG_POLL_SLACK`] more before the tool gives up on it.
const LONG_POLL_WAIT: Duration = Duration::from_secs(25);
const LONG_POLL_SLACK: Duration = Duration::from_secs(5);
/// An ETA is judged only when the real wait was at least this long: `admitted_at` is
/// exact to the second.
const ETA_WAIT_MIN_MS: i64 = 1_000;

/// `--waiting-room`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WaitingRoomMode {
    /// Through the room when the event has one enabled.
    #[default]
    Auto,
    /// Through the room; the replay refuses to start without one.
    On,
    /// Hold directly, as without a room.
    Off,
}

/// The tool's clock paired with the system's wall clock once, to turn the server's
/// instants into the tool's and back.
#[derive(Clone, Copy, Debug)]
pub(super) struct Clock {
    instant: Instant,
    unix_ms: i64,
}

impl Clock {
    pub(super) fn now() -> Clock {
        let unix_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_millis() as i64);
        Clock { instant: Instant::now(), unix_ms }
    }

    /// `at` on the wall clock, in milliseconds since the epoch.
    pub(super) fn unix_ms(&self, at: Instant) -> i64 {
        if at >= self.instant {
            self.unix_ms + at.duration_since(self.instant).as_millis() as i64
        } else {
            self.unix_ms - self.instant.duration_since(at).as_millis() as i64
        }
    }

    /// The wall-clock instant `unix_ms` on the tool's clock (never before the pairing).
    pub(super) fn instant(&self, unix_ms: i64) -> Instant {
        self.instant + Duration::from_millis(unix_ms.saturating_sub(self.unix_ms).max(0) as u64)
    }
}

/// An RFC 3339 instant (`2026-12-05T21:00:00.123Z`, `...+01:00`) in milliseconds since
/// the epoch.
pub fn parse_instant_ms(text: &str) -> Option<i64> {
    text.parse::<jiff::Timestamp>().ok().map(|at| at.as_millisecond())
}

/// What `GET /v1/events/{event}` says of the sale and of its waiting room.
#[derive(Clone, Debug, Default)]
pub(super) struct EventSale {
    /// The sale's opening, in milliseconds since the epoch.
    pub(super) opens_at_ms: Option<i64>,
    /// The room's settings, when it has one and it is enabled.
    pub(super) room: Option<RoomSettings>,
}

#[derive(Clone, Debug, Deserialize)]
pub(super) struct RoomSettings {
    #[serde(default = "yes")]
    pub(super) enabled: bool,
    #[serde(default)]
    pub(super) admit_per_s_min: f64,
}

fn yes() -> bool {
    true
}

impl EventSale {
    /// Reads the event; a target that does not describe it (serve-trivial) has no
    /// opening and no room.
    pub(super) async fn fetch(pool: &Pool, event: &str, timeout: Duration) -> anyhow::Result<EventSale> {
        #[derive(Deserialize)]
        struct Reply {
            event: Event,
        }
        #[derive(Deserialize)]
        struct Event {
            #[serde(default)]
            on_sale: Option<OnSale>,
            #[serde(default)]
            queue: Option<RoomSettings>,
        }
        #[derive(Deserialize)]
        struct OnSale {
            opens_at: String,
        }
        let reply: Reply = crate::layout::get_json(pool, &format!("/v1/events/{event}"), timeout)
            .await
            .with_context(|| format!("reading event {event:?}"))?;
        let opens_at_ms = reply.event.on_sale.and_then(|on_sale| parse_instant_ms(&on_sale.opens_at));
        Ok(EventSale { opens_at_ms, room: reply.event.queue.filter(|room| room.enabled) })
    }
}

/// A waiting buyer's next request: its join (`token` none: a join that was told the
/// room was not open yet) or its next poll, due `at`. Ordered by `at` (then index), the
/// earliest first in a max-heap.
pub(super) struct Next {
    at: Instant,
    index: u32,
    failures: u8,
    /// A long poll (the server said `long_poll`), sent at once if a long-poll connection
    /// is free.
    long: bool,
    token: Option<Box<str>>,
    /// Keeps the buyer counted in flight while it waits (the drain waits for it).
    _in_flight: InFlight,
}

impl PartialEq for Next {
    fn eq(&self, other: &Next) -> bool {
        (self.at, self.index) == (other.at, other.index)
    }
}

impl Eq for Next {}

impl PartialOrd for Next {
    fn partial_cmp(&self, other: &Next) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}

impl Ord for Next {
    fn cmp(&self, other: &Next) -> CmpOrdering {
        Reverse((self.at, self.index)).cmp(&Reverse((other.at, other.index)))
    }
}

/// What the tool learnt of one buyer in the room. Instants in wall-clock ms.
#[derive(Clone, Copy, Debug, Default)]
struct RoomBuyer {
    /// The join's reply.
    joined_ms: Option<i64>,
    /// Joined before the opening draw (the reply had `draw_at` and no position).
    early: bool,
    /// The first ETA told after the draw: when, and `eta_s`.
    eta: Option<(i64, f32)>,
    /// `admitted_at`, as the server said.
    admitted_ms: Option<i64>,
    /// From the `sold_out_at` the buyer was told (a partial close tells buyers far back
    /// before those in front) to the first poll that said so, in ms.
    sold_out_seen_lag_ms: Option<i32>,
}

/// How buyers left the room.
#[derive(Clone, Debug, Default)]
struct RoomTally {
    joined: u64,
    admitted: u64,
    told_sold_out: u64,
    expired: u64,
    /// Joins refused for good (not `queue_not_open`, not `sold_out`), and polls that
    /// failed `POLL_FAILURES_MAX` times in a row or said something unknown.
    failed: u64,
    /// Joins answered 409 `queue_not_open`, tried again at its `opens_at`.
    not_open_retries: u64,
    /// The earliest and the latest `sold_out_at` the server told a buyer.
    sold_out_first_ms: Option<i64>,
    sold_out_last_ms: Option<i64>,
    /// Buyers still waiting when the drain ended.
    still_waiting: u64,
    /// Long polls sent, and those answered with a new state (let in, sold out).
    long_polls: u64,
    long_polls_changed: u64,
}

/// The room of a replay in room mode.
pub(super) struct Room {
    queue_uri: Uri,
    clock: Clock,
    /// The sale's opening, on the wall clock.
    opening_ms: i64,
    due: std::sync::Mutex<BinaryHeap<Next>>,
    buyers: std::sync::Mutex<Vec<RoomBuyer>>,
    tally: std::sync::Mutex<RoomTally>,
    /// The connections long polls wait on, apart from the sale's (`--queue-long-polls`):
    /// a long poll holds its connection for up to [`LONG_POLL_WAIT`], as each buyer's
    /// browser would; on the shared pool they would starve the holds. `None`: no long polls.
    long_polls: Option<Pool>,
    /// Long polls out now (at most the pool's connections: one beyond would queue).
    long_polls_out: AtomicUsize,
    long_polls_max: usize,
}

impl Room {
    pub(super) fn new(
        event: &str,
        clock: Clock,
        opening_ms: i64,
        buyers: usize,
        long_polls: Option<(Pool, usize)>,
    ) -> anyhow::Result<Room> {
        let (long_polls, long_polls_max) = long_polls.map_or((None, 0), |(pool, max)| (Some(pool), max));
        Ok(Room {
            queue_uri: super::event_uri(event, "queue")?,
            clock,
            opening_ms,
            due: std::sync::Mutex::new(BinaryHeap::new()),
            buyers: std::sync::Mutex::new(vec![RoomBuyer::default(); buyers]),
            tally: std::sync::Mutex::new(RoomTally::default()),
            long_polls,
            long_polls_out: AtomicUsize::new(0),
            long_polls_max,
        })
    }

    /// Whether a long-poll connection is free now.
    fn long_poll_free(&self) -> bool {
        self.long_polls.is_some() && self.long_polls_out.load(Ordering::Acquire) < self.long_polls_max
    }

    /// A slot for one long poll, if a long-poll connection is free.
    fn long_poll_slot(&self) -> Option<(&Pool, LongPollSlot<'_>)> {
        let pool = self.long_polls.as_ref()?;
        let out = self.long_polls_out.fetch_add(1, Ordering::AcqRel);
        let slot = LongPollSlot(&self.long_polls_out);
        (out < self.long_polls_max).then_some((pool, slot))
    }

    fn schedule(&self, next: Next) {
        lock(&self.due).push(next);
    }

    /// Ends the wait of every buyer still waiting (the drain is over): they are counted,
    /// and no longer in flight.
    pub(super) fn stop_waiting(&self) {
        let waiting = std::mem::take(&mut *lock(&self.due));
        lock(&self.tally).still_waiting += waiting.len() as u64;
    }

    fn record(&self, index: u32, change: impl FnOnce(&mut RoomBuyer)) {
        if let Some(buyer) = lock(&self.buyers).get_mut(index as usize) {
            change(buyer);
        }
    }
}

/// One long poll out; the slot is given back when dropped.
struct LongPollSlot<'a>(&'a AtomicUsize);

impl Drop for LongPollSlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A place as the room shows it (the `queue` of a join's or poll's reply).
#[derive(Debug, Deserialize)]
struct PlaceView {
    token: String,
    state: String,
    #[serde(default)]
    position: Option<u64>,
    #[serde(default)]
    eta_s: Option<f64>,
    #[serde(default)]
    poll_after_ms: Option<u64>,
    #[serde(default)]
    long_poll: Option<bool>,
    #[serde(default)]
    draw_at: Option<String>,
    #[serde(default)]
    access: Option<String>,
    #[serde(default)]
    admitted_at: Option<String>,
    #[serde(default)]
    sold_out_at: Option<String>,
}

fn place_view(body: &[u8]) -> Option<PlaceView> {
    #[derive(Deserialize)]
    struct Reply {
        queue: PlaceView,
    }
    serde_json::from_slice::<Reply>(body).ok().map(|reply| reply.queue)
}

/// `details.opens_at` of a 409 `queue_not_open`.
fn opens_at_of(body: &[u8]) -> Option<i64> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    parse_instant_ms(value.pointer("/error/details/opens_at")?.as_str()?)
}

/// What a place's view means for the buyer.
enum Seen {
    /// Poll again at this instant (a long poll if true).
    Wait(Instant, bool),
    /// Let in: hold with this access.
    Admitted(HeaderValue),
    /// Sold out, expired, or something the tool cannot go on from.
    End,
}

/// A buyer launched by the pacer at their join time: joins the room.
pub(super) async fn run_room_buyer(run: Arc<Run>, arrival: Arrival) {
    let in_flight = InFlight::new(run.clone());
    join(run, arrival.index as u32, arrival.scheduled, in_flight).await;
}

async fn join(run: Arc<Run>, index: u32, due: Instant, in_flight: InFlight) {
    let Some(room) = &run.room else { return };
    #[derive(Serialize)]
    struct JoinRequest<'a> {
        customer: &'a str,
    }
    let customer = buyer::customer(&run, u64::from(index));
    let body = json(&JoinRequest { customer: &customer });
    let ended = run
        .step(u64::from(index), Step::QueueJoin, None, || {
            request(&run, Method::POST, &room.queue_uri, Some(&body), None)
        })
        .await;
    let (outcome, view) = ended.parsed(place_view);
    let code = ended.error_code(outcome);
    let latency = ended.at.saturating_duration_since(due);
    run.finish(u64::from(index), Step::QueueJoin, outcome, latency, code.as_deref());
    let Some(view) = view else {
        let not_open = code.as_deref() == Some("409 queue_not_open");
        let opens_at = ended.reply.as_ref().and_then(|reply| opens_at_of(&reply.body));
        match (not_open, opens_at) {
            (true, Some(opens_at_ms)) => {
                lock(&room.tally).not_open_retries += 1;
                let at = room.clock.instant(opens_at_ms).max(ended.at);
                room.schedule(Next { at, index, failures: 0, long: false, token: None, _in_flight: in_flight });
            }
            _ if code.as_deref() == Some("409 sold_out") => lock(&room.tally).told_sold_out += 1,
            _ => lock(&room.tally).failed += 1,
        }
        return;
    };
    let joined_ms = room.clock.unix_ms(ended.at);
    let early = view.draw_at.is_some() && view.position.is_none();
    room.record(index, |buyer| {
        buyer.joined_ms = Some(joined_ms);
        buyer.early = early;
    });
    lock(&room.tally).joined += 1;
    carry_on(&run, room, index, view, ended.at, in_flight).await;
}

/// Acts on what the room showed at `at`: schedules the next poll, plays the admitted
/// buyer, or ends.
async fn carry_on(run: &Arc<Run>, room: &Room, index: u32, view: PlaceView, at: Instant, in_flight: InFlight) {
    match seen(room, index, &view, at) {
        Seen::Wait(due, long) => {
            let token = Some(view.token.into_boxed_str());
            room.schedule(Next { at: due, index, failures: 0, long, token, _in_flight: in_flight });
        }
        Seen::Admitted(access) => {
            buyer::play(run, u64::from(index), at, Some(&access)).await;
            drop(in_flight);
        }
        Seen::End => {}
    }
}

/// Records what `view`, read at `at`, tells of buyer `index`.
fn seen(room: &Room, index: u32, view: &PlaceView, at: Instant) -> Seen {
    let at_ms = room.clock.unix_ms(at);
    match view.state.as_str() {
        "waiting" => {
            if let (Some(_), Some(eta_s)) = (view.position, view.eta_s) {
                room.record(index, |buyer| {
                    buyer.eta.get_or_insert((at_ms, eta_s as f32));
                });
            }
            // Near its turn: wait for it on a long poll, sent at once, if a long-poll
            // connection is free now; else poll as told (never at once: with every
            // long-poll connection busy, buyers told `long_poll` would poll in a loop).
            if view.long_poll == Some(true) && room.long_poll_free() {
                return Seen::Wait(at, true);
            }
            let after = view.poll_after_ms.map_or(POLL_AFTER_DEFAULT, Duration::from_millis);
            Seen::Wait(at + after, false)
        }
        "admitted" => {
            let admitted_ms = view.admitted_at.as_deref().and_then(parse_instant_ms);
            room.record(index, |buyer| buyer.admitted_ms = admitted_ms);
            let access = view.access.as_deref().and_then(|access| HeaderValue::try_from(access).ok());
            let mut tally = lock(&room.tally);
            match access {
                Some(access) => {
                    tally.admitted += 1;
                    Seen::Admitted(access)
                }
                None => {
                    tally.failed += 1;
                    Seen::End
                }
            }
        }
        "sold_out" => {
            let sold_out_at = view.sold_out_at.as_deref().and_then(parse_instant_ms);
            let lag_ms = sold_out_at.map(|told| (at_ms - told).clamp(i32::MIN as i64, i32::MAX as i64) as i32);
            room.record(index, |buyer| buyer.sold_out_seen_lag_ms = lag_ms);
            let mut tally = lock(&room.tally);
            tally.told_sold_out += 1;
            if let Some(at) = sold_out_at {
                tally.sold_out_first_ms = Some(tally.sold_out_first_ms.map_or(at, |first| first.min(at)));
                tally.sold_out_last_ms = Some(tally.sold_out_last_ms.map_or(at, |last| last.max(at)));
            }
            Seen::End
        }
        "expired" => {
            lock(&room.tally).expired += 1;
            Seen::End
        }
        _ => {
            // `done` (the access used, but not by this buyer: the tool holds once) or a
            // state this build does not know.
            lock(&room.tally).failed += 1;
            Seen::End
        }
    }
}

async fn poll(run: Arc<Run>, next: Next) {
    let Some(room) = &run.room else { return };
    let Next { at: due, index, failures, long, token, _in_flight: in_flight } = next;
    let Some(token) = token else {
        join(run.clone(), index, due, in_flight).await;
        return;
    };
    if long {
        // Taken since it was scheduled: one poll now, whose reply schedules the next.
        if let Some((pool, slot)) = room.long_poll_slot() {
            return long_poll(&run, room, pool, slot, index, token, failures, in_flight).await;
        }
    }
    let Ok(uri) = format!("/v1/queue/{token}").parse::<Uri>() else {
        lock(&room.tally).failed += 1;
        return;
    };
    let ended =
        run.step(u64::from(index), Step::QueuePoll, None, || request(&run, Method::GET, &uri, None, None)).await;
    let (outcome, view) = ended.parsed(place_view);
    let code = ended.error_code(outcome);
    run.finish(u64::from(index), Step::QueuePoll, outcome, ended.at.saturating_duration_since(due), code.as_deref());
    match view {
        Some(view) => carry_on(&run, room, index, view, ended.at, in_flight).await,
        None if failures + 1 < POLL_FAILURES_MAX => {
            let at = ended.at + POLL_AFTER_DEFAULT;
            let next =
                Next { at, index, failures: failures + 1, long: false, token: Some(token), _in_flight: in_flight };
            room.schedule(next);
        }
        None => lock(&room.tally).failed += 1,
    }
}

/// A long poll of buyer `index` on its own connection: answered when the room lets the
/// buyer in or closes on them, or after [`LONG_POLL_WAIT`] with the place as it is. Not
/// timed as a poll (its wait is the point); the report counts long polls apart. A
/// failed one falls back to a poll a second later.
#[allow(clippy::too_many_arguments)]
async fn long_poll(
    run: &Arc<Run>,
    room: &Room,
    pool: &Pool,
    slot: LongPollSlot<'_>,
    index: u32,
    token: Box<str>,
    failures: u8,
    in_flight: InFlight,
) {
    let uri = format!("/v1/queue/{token}?wait_ms={}", LONG_POLL_WAIT.as_millis()).parse::<Uri>();
    let Ok(uri) = uri else {
        lock(&room.tally).failed += 1;
        return;
    };
    let sent_at = Instant::now();
    let sent = pool.send_within(pool.request(Method::GET, uri, None), LONG_POLL_WAIT + LONG_POLL_SLACK).await;
    drop(slot);
    let at = Instant::now();
    let mut view = match sent {
        Ok(Ok(reply)) if reply.status.is_success() => place_view(&reply.body),
        _ => None,
    };
    if let Some(view) = view.as_mut().filter(|view| view.state == "waiting" && at - sent_at < LONG_POLL_WAIT / 2) {
        // Answered at once, still waiting (the server had no room for it, or the buyer
        // is no longer near): the next poll comes as told, not at once again.
        view.long_poll = None;
    }
    let Some(view) = view else {
        if failures + 1 < POLL_FAILURES_MAX {
            let at = at + POLL_AFTER_DEFAULT;
            room.schedule(Next {
                at,
                index,
                failures: failures + 1,
                long: false,
                token: Some(token),
                _in_flight: in_flight,
            });
        } else {
            lock(&room.tally).failed += 1;
        }
        return;
    };
    {
        let mut tally = lock(&room.tally);
        tally.long_polls += 1;
        tally.long_polls_changed += u64::from(view.state != "waiting");
    }
    carry_on(run, room, index, view, at, in_flight).await;
}

/// Launches every join and poll when it is due, until aborted (which stops the joins
/// and polls it launched too).
pub(super) async fn poll_due(run: Arc<Run>) {
    let mut tasks = JoinSet::new();
    loop {
        if let Some(room) = &run.room {
            let now = Instant::now();
            let mut due = lock(&room.due);
            while due.peek().is_some_and(|next| next.at <= now) {
                let next = due.pop().expect("peeked");
                tasks.spawn(poll(run.clone(), next));
            }
        }
        while tasks.try_join_next().is_some() {}
        tokio::time::sleep(POLLER_TICK).await;
    }
}

/// Spearman's rank correlation of `pairs` (ties get their average rank): 1 when the
/// second values rise with the first, -1 when they fall, ~0 when unrelated. `None` for
/// fewer than 3 pairs or a side without any spread.
pub fn spearman(pairs: &[(f64, f64)]) -> Option<f64> {
    if pairs.len() < 3 {
        return None;
    }
    let first = ranks(pairs.iter().map(|pair| pair.0).collect());
    let second = ranks(pairs.iter().map(|pair| pair.1).collect());
    let count = pairs.len() as f64;
    let mean = (count + 1.0) / 2.0;
    let (mut covariance, mut first_variance, mut second_variance) = (0.0, 0.0, 0.0);
    for (a, b) in first.iter().zip(&second) {
        covariance += (a - mean) * (b - mean);
        first_variance += (a - mean) * (a - mean);
        second_variance += (b - mean) * (b - mean);
    }
    if first_variance == 0.0 || second_variance == 0.0 {
        return None;
    }
    Some(covariance / (first_variance * second_variance).sqrt())
}

/// The rank (from 1) of each value, ties given the average of their ranks.
fn ranks(values: Vec<f64>) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|a, b| values[*a].total_cmp(&values[*b]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && values[order[end]] == values[order[start]] {
            end += 1;
        }
        let rank = (start + end + 1) as f64 / 2.0;
        for position in &order[start..end] {
            ranks[*position] = rank;
        }
        start = end;
    }
    ranks
}

/// The signed error of an ETA of `eta_s` told at `told_ms` to a buyer let in at
/// `admitted_ms`, as a share of the real wait: ((told + eta) - admitted) / (admitted -
/// told); positive when the ETA was too long. `None` when the real wait was under a
/// second (`admitted_at` is exact only to the second).
pub fn eta_error(told_ms: i64, eta_s: f64, admitted_ms: i64) -> Option<f64> {
    let wait_ms = admitted_ms - told_ms;
    if wait_ms < ETA_WAIT_MIN_MS {
        return None;
    }
    Some((told_ms as f64 + eta_s * 1000.0 - admitted_ms as f64) / wait_ms as f64)
}

/// The nearest-rank `quantile` of sorted `values`.
fn quantile(sorted: &[f64], quantile: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((quantile * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

fn sorted(mut values: Vec<f64>) -> Vec<f64> {
    values.sort_by(f64::total_cmp);
    values
}

/// Percentiles of a list of seconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Seconds {
    pub count: u64,
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
}

impl Seconds {
    fn of(values: Vec<f64>) -> Seconds {
        let values = sorted(values);
        Seconds {
            count: values.len() as u64,
            p50: quantile(&values, 0.5),
            p90: quantile(&values, 0.9),
            p99: quantile(&values, 0.99),
            max: values.last().copied(),
        }
    }
}

/// The ETA error of the buyers let in (see [`eta_error`]).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct EtaErrorReport {
    /// Buyers let in who had been told an ETA after the draw, and whose real wait was
    /// at least a second.
    pub judged: u64,
    /// ... told one, but let in within a second of it (not judged).
    pub skipped_wait_under_1s: u64,
    /// Of |error| (a share of the real wait).
    pub median: Option<f64>,
    pub p90: Option<f64>,
    /// The median signed error: > 0, ETAs too long (pessimistic); < 0, too short.
    pub signed_median: Option<f64>,
}

impl EtaErrorReport {
    fn of(errors: Vec<f64>, skipped: u64) -> EtaErrorReport {
        let absolute = sorted(errors.iter().map(|error| error.abs()).collect());
        EtaErrorReport {
            judged: errors.len() as u64,
            skipped_wait_under_1s: skipped,
            median: quantile(&absolute, 0.5),
            p90: quantile(&absolute, 0.9),
            signed_median: quantile(&sorted(errors), 0.5),
        }
    }
}

/// Join order against admission order, in one group of buyers.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct FairnessReport {
    /// Buyers of the group let in (with an `admitted_at`).
    pub admitted: u64,
    /// Spearman's rank correlation of their join order (the tool's join replies) and
    /// admission order (`admitted_at`, to the second: ties get their average rank).
    pub spearman: Option<f64>,
}

/// The `waiting_room` section of a replay through the room.
#[derive(Clone, Debug, Serialize)]
pub struct WaitingRoomReport {
    pub joined: u64,
    pub admitted: u64,
    pub told_sold_out: u64,
    pub expired: u64,
    pub still_waiting: u64,
    /// Joins refused for good, polls that failed 5 times in a row, states not understood.
    pub failed: u64,
    /// Joins told `queue_not_open`, joined again at its `opens_at`.
    pub not_open_retries: u64,
    /// Join (or the opening, whichever is later) to `admitted_at`, seconds.
    pub queue_wait_seconds: Seconds,
    pub join_latency_us: Latency,
    pub poll_latency_us: Latency,
    pub polls: u64,
    pub eta_error: EtaErrorReport,
    /// Buyers who joined before the opening: shuffled by the draw, so ~0.
    pub fairness_early: FairnessReport,
    /// Buyers who joined after it: first come, first served, so ~1.
    pub fairness_late: FairnessReport,
    /// 503 and 429 replies (retried or final) to admitted buyers' holds, confirms,
    /// payments and releases.
    pub refusals_503_429_after_admission: u64,
    /// The earliest `sold_out_at` the server told (a partial close: buyers far back are
    /// told while those in front wait for held seats), and the latest (the full close).
    pub sold_out_at: Option<String>,
    pub sold_out_last_at: Option<String>,
    /// The latest `sold_out_at` minus the last confirmed order the tool saw (seconds;
    /// > 0: the last buyers were told after the last seat went).
    pub sold_out_lag_seconds: Option<f64>,
    /// The earliest `sold_out_at` minus the same (< 0: told before the last seat went).
    pub sold_out_first_lag_seconds: Option<f64>,
    /// From the `sold_out_at` a buyer was told to the first poll that saw it, per buyer
    /// told so by a poll.
    pub sold_out_seen_lag_seconds: Seconds,
    /// Long polls (`wait_ms`, buyers the server said were near their turn) answered, and
    /// those answered with a new state (let in or sold out) rather than at their wait's end.
    pub long_polls: u64,
    pub long_polls_changed: u64,
}

impl WaitingRoomReport {
    /// The report of `room`; `totals` for the step tables, `last_sale_ms` the wall-clock
    /// instant of the last confirmed order the tool saw.
    pub(super) fn new(room: &Room, totals: &Totals, last_sale_ms: Option<i64>) -> WaitingRoomReport {
        let tally = lock(&room.tally).clone();
        let buyers = lock(&room.buyers);
        let mut waits = Vec::new();
        let mut eta_errors = Vec::new();
        let mut eta_skipped = 0;
        let (mut early, mut late) = (Vec::new(), Vec::new());
        let mut seen_lags = Vec::new();
        for buyer in buyers.iter() {
            if let (Some(joined_ms), Some(admitted_ms)) = (buyer.joined_ms, buyer.admitted_ms) {
                waits.push((admitted_ms - joined_ms.max(room.opening_ms)).max(0) as f64 / 1000.0);
                let group = if buyer.early { &mut early } else { &mut late };
                group.push((joined_ms as f64, admitted_ms as f64));
                if let Some((told_ms, eta_s)) = buyer.eta {
                    match eta_error(told_ms, f64::from(eta_s), admitted_ms) {
                        Some(error) => eta_errors.push(error),
                        None => eta_skipped += 1,
                    }
                }
            }
            if let Some(lag_ms) = buyer.sold_out_seen_lag_ms {
                seen_lags.push(f64::from(lag_ms) / 1000.0);
            }
        }
        let lag = |sold_out_ms: Option<i64>| {
            sold_out_ms.zip(last_sale_ms).map(|(sold_out, last_sale)| (sold_out - last_sale) as f64 / 1000.0)
        };
        let fairness =
            |group: &[(f64, f64)]| FairnessReport { admitted: group.len() as u64, spearman: spearman(group) };
        let refusals: u64 =
            [Step::Availability, Step::Hold, Step::Confirm, Step::Release, Step::Checkout, Step::Payment]
                .iter()
                .map(|step| {
                    let counts = &totals.step(*step).counts;
                    counts.retried_after_503
                        + counts.retried_after_429
                        + counts.rejected_busy_503
                        + counts.rejected_rate_limited_429
                })
                .sum();
        let joined_total = tally.joined;
        let ended = tally.admitted + tally.told_sold_out + tally.expired + tally.failed + tally.still_waiting;
        let still_waiting = tally.still_waiting + joined_total.saturating_sub(ended);
        WaitingRoomReport {
            joined: tally.joined,
            admitted: tally.admitted,
            told_sold_out: tally.told_sold_out,
            expired: tally.expired,
            still_waiting,
            failed: tally.failed,
            not_open_retries: tally.not_open_retries,
            queue_wait_seconds: Seconds::of(waits),
            join_latency_us: Latency::of(&totals.step(Step::QueueJoin).latency_success),
            poll_latency_us: Latency::of(&totals.step(Step::QueuePoll).latency_success),
            polls: totals.step(Step::QueuePoll).counts.sent,
            eta_error: EtaErrorReport::of(eta_errors, eta_skipped),
            fairness_early: fairness(&early),
            fairness_late: fairness(&late),
            refusals_503_429_after_admission: refusals,
            sold_out_at: tally.sold_out_first_ms.map(format_ms),
            sold_out_last_at: tally.sold_out_last_ms.map(format_ms),
            sold_out_lag_seconds: lag(tally.sold_out_last_ms),
            sold_out_first_lag_seconds: lag(tally.sold_out_first_ms),
            sold_out_seen_lag_seconds: Seconds::of(seen_lags),
            long_polls: tally.long_polls,
            long_polls_changed: tally.long_polls_changed,
        }
    }
}

/// Milliseconds since the epoch as RFC 3339 (UTC, milliseconds).
fn format_ms(unix_ms: i64) -> String {
    match jiff::Timestamp::from_millisecond(unix_ms) {
        Ok(at) => format!("{at:.3}"),
        Err(_) => unix_ms.to_string(),
    }
}

impl std::fmt::Display for WaitingRoomReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let seconds = |value: Option<f64>| value.map_or("-".to_string(), |value| format!("{value:.2}"));
        let share = |value: Option<f64>| value.map_or("-".to_string(), |value| format!("{:.0}%", value * 100.0));
        let rho = |value: Option<f64>| value.map_or("-".to_string(), |value| format!("{value:.3}"));
        let ms = |us: u64| format!("{:.2}", us as f64 / 1000.0);
        writeln!(f, "waiting room:")?;
        writeln!(
            f,
            "  joined {}, admitted {}, told sold out {}, expired {}, still waiting {}, failed {}, joins before the room opened {}",
            self.joined,
            self.admitted,
            self.told_sold_out,
            self.expired,
            self.still_waiting,
            self.failed,
            self.not_open_retries
        )?;
        let wait = &self.queue_wait_seconds;
        writeln!(
            f,
            "  queue wait (join or opening -> admitted_at), s: p50 {} p90 {} p99 {} max {} ({} buyers)",
            seconds(wait.p50),
            seconds(wait.p90),
            seconds(wait.p99),
            seconds(wait.max),
            wait.count
        )?;
        writeln!(
            f,
            "  join latency ms p50 {} p99 {}; poll latency ms p50 {} p99 {} ({} polls)",
            ms(self.join_latency_us.p50),
            ms(self.join_latency_us.p99),
            ms(self.poll_latency_us.p50),
            ms(self.poll_latency_us.p99),
            self.polls
        )?;
        let eta = &self.eta_error;
        writeln!(
            f,
            "  ETA error (first ETA after the draw): median {} p90 {} signed median {} ({} buyers; {} let in within 1 s, not judged)",
            share(eta.median),
            share(eta.p90),
            share(eta.signed_median),
            eta.judged,
            eta.skipped_wait_under_1s
        )?;
        writeln!(
            f,
            "  fairness (Spearman, join vs admission order): before the opening {} ({} buyers, ~0 expected), after {} ({} buyers, ~1 expected)",
            rho(self.fairness_early.spearman),
            self.fairness_early.admitted,
            rho(self.fairness_late.spearman),
            self.fairness_late.admitted
        )?;
        writeln!(f, "  503/429 seen by admitted buyers: {}", self.refusals_503_429_after_admission)?;
        let seen = &self.sold_out_seen_lag_seconds;
        writeln!(
            f,
            "  sold out: first told at {} ({} s after the last order the tool saw), last at {} ({} s after); seen by pollers after p50 {} s, max {} s",
            self.sold_out_at.as_deref().unwrap_or("-"),
            seconds(self.sold_out_first_lag_seconds),
            self.sold_out_last_at.as_deref().unwrap_or("-"),
            seconds(self.sold_out_lag_seconds),
            seconds(seen.p50),
            seconds(seen.max)
        )?;
        writeln!(f, "  long polls: {} answered, {} with a new state", self.long_polls, self.long_polls_changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spearman_of_known_orders() {
        let check = |pairs: &[(f64, f64)], expected: Option<f64>| {
            let rho = spearman(pairs);
            match (rho, expected) {
                (Some(rho), Some(expected)) => assert!((rho - expected).abs() < 1e-9, "{pairs:?}: {rho} != {expected}"),
                _ => assert_eq!(rho, expected, "{pairs:?}"),
            }
        };
        check(&[(1.0, 10.0), (2.0, 20.0), (3.0, 30.0), (4.0, 40.0)], Some(1.0));
        check(&[(1.0, 40.0), (2.0, 30.0), (3.0, 20.0), (4.0, 10.0)], Some(-1.0));
        // Monotone but not linear: still 1.
        check(&[(1.0, 1.0), (2.0, 100.0), (3.0, 101.0), (4.0, 1e6)], Some(1.0));
        // d = (0, 1, -1, 0, 0): 1 - 6 * 2 / (5 * 24) = 0.9.
        check(&[(1.0, 1.0), (2.0, 3.0), (3.0, 2.0), (4.0, 4.0), (5.0, 5.0)], Some(0.9));
        // Ties: second ranks 1.5, 1.5, 3.5, 3.5 against 1..4: 4 / sqrt(5 * 4) = 0.894...
        check(&[(1.0, 7.0), (2.0, 7.0), (3.0, 9.0), (4.0, 9.0)], Some(4.0 / 20.0_f64.sqrt()));
        check(&[(1.0, 1.0), (2.0, 2.0)], None);
        check(&[(1.0, 5.0), (2.0, 5.0), (3.0, 5.0)], None);
        // Unrelated orders come out near 0.
        let mut rng = crate::prng::Rng::new(1);
        let shuffled: Vec<(f64, f64)> = (0..2000).map(|index| (index as f64, rng.unit())).collect();
        assert!(spearman(&shuffled).expect("rho").abs() < 0.1);
    }

    #[test]
    fn eta_error_of_known_waits() {
        // Told at 10 s that it takes 5 s, let in at 20 s: 5 s short of a 10 s wait.
        assert_eq!(eta_error(10_000, 5.0, 20_000), Some(-0.5));
        assert_eq!(eta_error(10_000, 15.0, 20_000), Some(0.5));
        assert_eq!(eta_error(10_000, 10.0, 20_000), Some(0.0));
        assert_eq!(eta_error(10_000, 3.0, 10_999), None, "under a second is not judged");
        assert_eq!(eta_error(10_000, 3.0, 9_000), None);
        let report = EtaErrorReport::of(vec![-0.5, 0.5, 0.1, 0.2, -0.1], 2);
        assert_eq!(report.judged, 5);
        assert_eq!(report.skipped_wait_under_1s, 2);
        assert_eq!(report.median, Some(0.2));
        assert_eq!(report.p90, Some(0.5));
        assert_eq!(report.signed_median, Some(0.1));
    }

    #[test]
    fn instants_parse_and_format() {
        assert_eq!(parse_instant_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_instant_ms("1970-01-01T00:00:01.5Z"), Some(1500));
        assert_eq!(parse_instant_ms("2026-12-05T21:30:00.123Z"), Some(1_796_506_200_123));
        assert_eq!(parse_instant_ms("2026-01-01T10:00:00+01:00"), parse_instant_ms("2026-01-01T09:00:00Z"));
        assert_eq!(parse_instant_ms("2026-01-01T10:00:00-00:30"), parse_instant_ms("2026-01-01T10:30:00Z"));
        for bad in ["", "2026-01-01", "2026-13-01T00:00:00Z", "2026-01-01T00:00:00", "2026-01-01T00:00:00.Z"] {
            assert_eq!(parse_instant_ms(bad), None, "{bad}");
        }
        for ms in [0, 1_796_506_200_123, 951_782_400_000] {
            assert_eq!(parse_instant_ms(&format_ms(ms)), Some(ms));
        }
        assert_eq!(format_ms(1_796_506_200_123), "2026-12-05T21:30:00.123Z");
    }

    #[test]
    fn quantiles_are_nearest_rank() {
        let values = sorted((1..=100).map(f64::from).collect());
        assert_eq!(quantile(&values, 0.5), Some(50.0));
        assert_eq!(quantile(&values, 0.99), Some(99.0));
        assert_eq!(quantile(&values, 1.0), Some(100.0));
        assert_eq!(quantile(&[], 0.5), None);
    }

    /// What a waiting buyer costs the tool besides its token: a heap entry and a record.
    #[test]
    fn a_waiting_buyer_is_small() {
        assert!(std::mem::size_of::<Next>() <= 48, "{}", std::mem::size_of::<Next>());
        assert!(std::mem::size_of::<RoomBuyer>() <= 80, "{}", std::mem::size_of::<RoomBuyer>());
    }
}
