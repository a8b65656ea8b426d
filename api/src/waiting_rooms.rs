//! The waiting rooms the server serves: one per event with `[queue]`, recovered from
//! the store when the event is first served, and moved on every [`TICK`] with the
//! event's seats and the server's health (`engine/src/waiting_room.rs` decides).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use hakken_engine::clock::Millis;
use hakken_engine::config::EngineConfig;
use hakken_engine::event::{Event, QueueSettings};
use hakken_engine::store::{Store, StoreError};
use hakken_engine::ticket_code::EventKey;
use hakken_engine::waiting_room::tokens::PlaceTokens;
use hakken_engine::waiting_room::{DurableRoom, Figures, Health, RoomSettings, Stock};

use crate::http::app::{ServedEvent, Shared};
use crate::http::overload::Overload;
use crate::http::queue_waiters::{QueueWaiters, WAITERS_MAX};

/// How often every room lets buyers in (and publishes what polls read).
pub const TICK: Duration = Duration::from_millis(100);

pub const QUEUE_WAITING: &str = "hakken_queue_waiting";
pub const QUEUE_ADMITTED_TOTAL: &str = "hakken_queue_admitted_total";
pub const QUEUE_SHOPPING: &str = "hakken_queue_shopping";
pub const QUEUE_ADMITTED_PENDING: &str = "hakken_queue_admitted_pending";
pub const QUEUE_GRACE_SECONDS: &str = "hakken_queue_grace_seconds";
pub const QUEUE_LAPSED_TOTAL: &str = "hakken_queue_lapsed_total";
pub const QUEUE_REFUSED_TOTAL: &str = "hakken_queue_refused_total";
pub const QUEUE_ADMISSION_RATE: &str = "hakken_queue_admission_rate";
pub const QUEUE_SOLD_OUT: &str = "hakken_queue_sold_out";
pub const QUEUE_CLOSED_BEHIND: &str = "hakken_queue_closed_behind";
pub const QUEUE_JOINS_TOTAL: &str = "hakken_queue_joins_total";
pub const QUEUE_POLLS_TOTAL: &str = "hakken_queue_polls_total";
pub const QUEUE_ACCESS_TOTAL: &str = "hakken_queue_access_total";
pub const QUEUE_LONG_POLLS: &str = "hakken_queue_long_polls";
pub const QUEUE_LONG_POLLS_TOTAL: &str = "hakken_queue_long_polls_total";

/// An event's room with the keys of the texts it hands out.
pub struct ServedRoom {
    pub room: DurableRoom,
    pub places: PlaceTokens,
    /// Long polls waiting for this room's ticks.
    pub waiters: QueueWaiters,
}

/// Every room made so far, by event: a catalogue rebuilt by an admin change keeps them.
#[derive(Default)]
pub struct Rooms {
    by_event: HashMap<String, Arc<ServedRoom>>,
}

impl Rooms {
    /// `event`'s room: the one already served (given the event's settings now, see
    /// [`DurableRoom::reconfigure`]), or the one its stored records leave.
    pub fn room_of(
        &mut self,
        event: &Event,
        queue: &QueueSettings,
        signing: &EventKey,
        store: &Store,
        engine: &EngineConfig,
    ) -> Result<Arc<ServedRoom>, StoreError> {
        if let Some(room) = self.by_event.get(&event.id) {
            room.room.reconfigure(&settings(event, queue, engine));
            return Ok(room.clone());
        }
        let stored = store.room_records(&event.id)?;
        let room = DurableRoom::recover(&event.id, settings(event, queue, engine), &stored, store.wal());
        if !stored.is_empty() {
            let figures = room.figures(event.on_sale.opens_at);
            tracing::info!(event = %event.id, records = stored.len(), admitted = figures.admitted_total, "waiting room recovered");
        }
        let places = PlaceTokens::new(&signing.seed());
        let served = Arc::new(ServedRoom { room, places, waiters: QueueWaiters::new(&event.id, WAITERS_MAX) });
        self.by_event.insert(event.id.clone(), served.clone());
        Ok(served)
    }
}

fn settings(event: &Event, queue: &QueueSettings, engine: &EngineConfig) -> RoomSettings {
    RoomSettings {
        opens_at: Millis(event.on_sale.opens_at.0.saturating_sub(queue.opens_before_sale_s.saturating_mul(1_000))),
        sale_opens_at: event.on_sale.opens_at,
        admit_per_s_min: queue.admit_per_s_min,
        admit_per_s_max: queue.admit_per_s_max,
        access_window_ms: queue.access_window_s * 1_000,
        shopping_ms_max: engine.hold_lifetime_max_ms,
        places_max: queue.places_max,
    }
}

/// The event's seats free to hold and held, read from the sections' counters.
pub fn stock(served: &ServedEvent) -> Stock {
    served.sections.iter().fold(Stock::default(), |stock, section| {
        let total = section.state.availability().total;
        Stock { free: stock.free + total.available as u64, held: stock.held + total.held as u64 }
    })
}

/// The mean request latency above which the rooms let buyers in more slowly. The
/// adaptive limit lets requests queue up to `http.latency_target_ms` (250 ms in the
/// demo) before it refuses any: right for a crowd that arrives by itself, too slow for
/// buyers a room let in, who were promised a sale that answers at once (issue 15: hold
/// and confirm p99 under 50 ms). A mean of 20 ms leaves a p99 of a few times that.
pub const ROOM_LATENCY_TARGET: Duration = Duration::from_millis(20);

/// The server is overloaded for the rooms when requests queue past
/// [`ROOM_LATENCY_TARGET`], or when new holds are about to be refused: they may use 3/4
/// of the in-flight limit (`http/admission.rs`).
pub fn health(overload: &Overload) -> Health {
    let queueing = overload.recent_latency() > ROOM_LATENCY_TARGET;
    Health { overloaded: queueing || overload.in_flight() * 4 >= overload.limit() * 3 }
}

/// Moves every room on, every [`TICK`], until the server shuts down.
pub async fn run(shared: Arc<Shared>) {
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        interval.tick().await;
        if shared.is_shutting_down() {
            // Long polls answer what they read now, so none holds the drain up.
            if let Some(app) = shared.ready_app() {
                app.catalogue().events.values().filter_map(|served| served.room.as_ref()).for_each(|room| {
                    room.waiters.wake_all();
                });
            }
            return;
        }
        tick_all(&shared).await;
    }
}

/// One tick of every room (what [`run`] does each [`TICK`]; tests on a manual clock
/// call it themselves).
pub async fn tick_all(shared: &Shared) {
    let Some(app) = shared.ready_app() else { return };
    let catalogue = app.catalogue();
    for served in catalogue.events.values() {
        let Some(room) = &served.room else { continue };
        let now = app.now();
        let result = room.room.tick(now, health(&shared.overload), stock(served), rand::random()).await;
        if let Err(error) = result {
            tracing::warn!(event = %served.event.id, %error, "the waiting room could not move on; retrying next tick");
        }
        room.waiters.wake(room.room.board());
        report(&served.event.id, &room.room.figures(now));
    }
}

fn report(event: &str, figures: &Figures) {
    let event = event.to_string();
    metrics::gauge!(QUEUE_WAITING, "event" => event.clone()).set(figures.waiting as f64);
    metrics::counter!(QUEUE_ADMITTED_TOTAL, "event" => event.clone()).absolute(figures.admitted_total);
    metrics::counter!(QUEUE_LAPSED_TOTAL, "event" => event.clone()).absolute(figures.lapsed_total);
    metrics::counter!(QUEUE_REFUSED_TOTAL, "event" => event.clone()).absolute(figures.refused_total);
    metrics::gauge!(QUEUE_SHOPPING, "event" => event.clone()).set(figures.shopping as f64);
    metrics::gauge!(QUEUE_ADMITTED_PENDING, "event" => event.clone()).set(figures.admitted_pending as f64);
    metrics::gauge!(QUEUE_GRACE_SECONDS, "event" => event.clone()).set(figures.grace_ms as f64 / 1_000.0);
    metrics::gauge!(QUEUE_ADMISSION_RATE, "event" => event.clone(), "rate" => "target").set(figures.target_per_s);
    metrics::gauge!(QUEUE_ADMISSION_RATE, "event" => event.clone(), "rate" => "measured").set(figures.measured_per_s);
    metrics::gauge!(QUEUE_CLOSED_BEHIND, "event" => event.clone()).set(figures.closed_behind as f64);
    metrics::gauge!(QUEUE_SOLD_OUT, "event" => event).set(if figures.sold_out { 1.0 } else { 0.0 });
}
