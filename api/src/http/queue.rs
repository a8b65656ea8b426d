//! The waiting room over HTTP: join, poll, and the access check a hold makes.
//!
//! A poll is the hot path of an on-sale's first minutes (every waiting buyer, every few
//! seconds): its token is checked by an HMAC tag and its place read from the room's
//! board with atomic loads; only an admitted buyer's poll takes the room's lock (to
//! sign its access). `poll_after_ms` spreads the polls: half the wait, jittered per
//! place, so a crowd that joined together does not poll together, and a buyer polls a
//! few times over their wait, not once a second (see [`poll_after`]).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hakken_engine::clock::Millis;
use hakken_engine::event::format_instant;
use hakken_engine::ids::CustomerId;
use hakken_engine::waiting_room::tokens::{self, Access, TokenError};
use hakken_engine::waiting_room::{AccessClaim, AccessRefused, JoinRefused, PlaceNumber, RoomError, Status};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::http::app::{Catalogue, ServedEvent, Shared};
use crate::http::error::{ApiError, ApiResult, ErrorBody, Json, Path, Query};
use crate::http::holds::customer_id;
use crate::http::limiter::rate_limited;
use crate::waiting_rooms::{
    ServedRoom, QUEUE_ACCESS_TOTAL, QUEUE_JOINS_TOTAL, QUEUE_LONG_POLLS_TOTAL, QUEUE_POLLS_TOTAL,
};

/// The header a hold on an event with a waiting room carries its access in.
pub const ACCESS_HEADER: &str = "hakken-access";

/// Polls are spread between these, as a share of the expected wait.
const POLL_AFTER_MS_MIN: u64 = 1_000;
const POLL_AFTER_MS_MAX: u64 = 30_000;
/// The longest a poll may wait for its buyer's state to change (`wait_ms`).
pub const QUEUE_WAIT_MAX_MS: u64 = 30_000;
/// The buyers this close to the front may long-poll: those let in within the next
/// second at the demo's fastest rate, or with the next seats that come back.
const LONG_POLL_FRONT: u32 = 2_000;
/// The first poll after the opening draw (which tells an early joiner their place) is
/// spread over this long: every early joiner polling within a second of the opening
/// would be tens of thousands of requests at the moment the first buyers let in hold.
const DRAW_POLLS_SPREAD_MS: u64 = 5_000;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    /// The buyer's account or session id (1-128 bytes, no control characters): one
    /// place per customer, and the access is bound to it.
    #[schema(min_length = 1, max_length = 128, example = "customer-42")]
    pub customer: String,
}

#[derive(Serialize, ToSchema)]
pub struct QueueResponse {
    pub queue: QueueView,
}

/// A buyer's place in a waiting room.
#[derive(Serialize, ToSchema)]
pub struct QueueView {
    /// What `GET /v1/queue/{token}` polls with.
    pub token: String,
    /// `waiting` (before the opening draw too), `admitted`, `sold_out`, `expired`
    /// (admitted, the access unused and past), `done` (admitted and used).
    #[schema(example = "waiting")]
    pub state: &'static str,
    /// 1 = next in; null before the opening draw.
    pub position: Option<u32>,
    pub ahead: Option<u32>,
    /// Seconds to wait at the rate buyers are let in now; null while nobody is let in.
    pub eta_s: Option<f64>,
    /// Poll again after this long; null when there is nothing more to wait for.
    pub poll_after_ms: Option<u64>,
    /// Before the opening draw: when it is.
    pub draw_at: Option<String>,
    /// Seats free to hold now (while waiting).
    pub seats_left: Option<u64>,
    /// While waiting: whether those ahead are expected to leave seats for this buyer
    /// (false: unlikely, with `seats_left` and `ahead` to say why).
    pub likely: Option<bool>,
    /// While waiting: true when a poll sent now with `wait_ms` would wait for this
    /// buyer's turn (or the room's close) and answer the moment it comes, so a client
    /// may poll at once with it instead of after `poll_after_ms`. False far back in
    /// line, before the draw, or while the room has as many long polls as it takes.
    pub long_poll: Option<bool>,
    /// Once admitted: the access a hold sends in `Hakken-Access` (once), and until when.
    pub access: Option<String>,
    pub access_expires_at: Option<String>,
    /// Once admitted (`admitted`, `done`): when, to the second (rounded up), so a
    /// client can check the ETA it was told.
    pub admitted_at: Option<String>,
    /// `sold_out`: when the room found nothing left to hold for this buyer (for those far
    /// back, when the seats still held could serve only the buyers ahead).
    pub sold_out_at: Option<String>,
}

/// Join an event's waiting room; joining again returns the same place.
#[utoipa::path(post, path = "/v1/events/{event}/queue", tag = "queue",
    params(("event" = String, Path, description = "Event id")),
    request_body = JoinRequest,
    responses((status = 201, description = "The buyer's place", body = QueueResponse),
        (status = 404, description = "Unknown event, or `queue_off`: the event has no waiting room", body = ErrorBody),
        (status = 409, description = "`queue_not_open` (with `details.opens_at`), `sold_out`, `queue_full`", body = ErrorBody),
        (status = 422, description = "Invalid customer", body = ErrorBody),
        (status = 429, description = "Customer over its request rate", body = ErrorBody),
        (status = 503, description = "Busy: retry after `Retry-After` seconds", body = ErrorBody)))]
pub async fn join_queue(
    State(shared): State<Arc<Shared>>,
    Path(event): Path<String>,
    Json(request): Json<JoinRequest>,
) -> ApiResult<(StatusCode, axum::Json<QueueResponse>)> {
    let app = shared.app()?;
    let customer = customer_id(&request.customer)?;
    app.limiter.check(&request.customer).map_err(rate_limited)?;
    let catalogue = app.catalogue();
    let served = catalogue.event(&event)?;
    let room = room_of(served)?;
    let now = app.now();
    let joined = room.room.join(&customer, now).await;
    let outcome = match &joined {
        Ok(_) => "ok",
        Err(RoomError::Join(_)) => "refused",
        Err(_) => "unavailable",
    };
    metrics::counter!(QUEUE_JOINS_TOTAL, "event" => event.clone(), "outcome" => outcome).increment(1);
    let place = joined.map_err(|error| room_error(error, shared.overload.retry_after_s()))?;
    let view = view(served, room, place, now)?;
    Ok((StatusCode::CREATED, axum::Json(QueueResponse { queue: view })))
}

/// A buyer's place in the waiting room, read without a lock. With `wait_ms`, a long
/// poll: while the buyer waits near their turn (see `long_poll`), the answer waits up to
/// `wait_ms` for the room to let them in or close, and comes the moment it does.
#[utoipa::path(get, path = "/v1/queue/{token}", tag = "queue",
    params(("token" = String, Path, description = "The place's token, from joining"), PollQuery),
    responses((status = 200, description = "The buyer's place", body = QueueResponse),
        (status = 404, description = "`queue_token_invalid`: not a place token of this server", body = ErrorBody),
        (status = 422, description = "`invalid_wait`: `wait_ms` above 30000", body = ErrorBody)))]
pub async fn get_place(
    State(shared): State<Arc<Shared>>,
    Path(token): Path<String>,
    Query(query): Query<PollQuery>,
) -> ApiResult<axum::Json<QueueResponse>> {
    let app = shared.app()?;
    let catalogue = app.catalogue();
    let (served, room, place) = place_of_token(&catalogue, &token)?;
    let wait_ms = match query.wait_ms {
        Some(ms) if ms > QUEUE_WAIT_MAX_MS => {
            return Err(ApiError::invalid("invalid_wait", format!("wait_ms is at most {QUEUE_WAIT_MAX_MS}")));
        }
        ms => ms.unwrap_or(0),
    };
    metrics::counter!(QUEUE_POLLS_TOTAL, "event" => served.event.id.clone()).increment(1);
    if wait_ms > 0 && !shared.is_shutting_down() {
        wait_for_turn(served, room, place, Duration::from_millis(wait_ms), app.now()).await;
    }
    Ok(axum::Json(QueueResponse { queue: view(served, room, place, app.now())? }))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct PollQuery {
    /// Wait up to this many ms (at most 30000) while the buyer waits near their turn:
    /// the answer comes as soon as they are let in or the room closes on them (a long
    /// poll). 0 or absent, or far back in line: answer at once.
    #[param(maximum = 30000, example = 25000)]
    pub wait_ms: Option<u64>,
}

/// Holds a long poll of `place` until a tick changes its state, or `wait` passes; at
/// once when the buyer is not near their turn or the room has no room for it.
async fn wait_for_turn(served: &ServedEvent, room: &ServedRoom, place: PlaceNumber, wait: Duration, now: Millis) {
    let board = room.room.board();
    let event = || served.event.id.clone();
    let Some(rank) = board.waiting_rank(place) else { return };
    let Some(Status::Waiting { position, .. }) = board.status(place, now) else { return };
    if !near(room, position) {
        return;
    }
    let Some(mut waiter) = room.waiters.register(rank) else {
        metrics::counter!(QUEUE_LONG_POLLS_TOTAL, "event" => event(), "outcome" => "full").increment(1);
        return;
    };
    // Read again after registering: a tick since the first read has woken nobody.
    let still_waiting = matches!(board.status(place, now), Some(Status::Waiting { .. }));
    if !still_waiting || board.waiting_rank(place) != Some(rank) {
        return;
    }
    let outcome = match tokio::time::timeout(wait, waiter.woken()).await {
        Ok(()) => "woken",
        Err(_) => "timed_out",
    };
    metrics::counter!(QUEUE_LONG_POLLS_TOTAL, "event" => event(), "outcome" => outcome).increment(1);
}

/// Whether a waiting buyer is near enough their turn for a long poll: among the first
/// [`LONG_POLL_FRONT`], or kept in line by a partial close (the close that ends the
/// sale tells them). Not by ETA: at an opening's 2,000 admissions a second, 30 s ahead
/// are 60,000 buyers, more than the room holds long polls for, and the slots went to
/// whoever asked first rather than to those let in next (a rehearsal with long polls
/// offered by ETA sold slower than one without). Farther back, a buyer polls as told.
fn near(room: &ServedRoom, position: u32) -> bool {
    position <= LONG_POLL_FRONT || room.room.board().closed_from().is_some()
}

fn place_of_token<'a>(
    catalogue: &'a Catalogue,
    token: &str,
) -> ApiResult<(&'a Arc<ServedEvent>, &'a Arc<ServedRoom>, PlaceNumber)> {
    let invalid = || ApiError::not_found("queue_token_invalid", "not a waiting-room token of this server");
    let (event, _) = tokens::read_place_token(token).map_err(|_| invalid())?;
    let served = catalogue.events.get(&event).ok_or_else(invalid)?;
    served.here()?;
    let room = served.room.as_ref().ok_or_else(invalid)?;
    let place = room.places.check(&event, token).map_err(|_| invalid())?;
    Ok((served, room, place))
}

fn room_of(served: &ServedEvent) -> ApiResult<&Arc<ServedRoom>> {
    served.room.as_ref().ok_or_else(|| {
        ApiError::not_found("queue_off", format!("event {:?} has no waiting room; hold directly", served.event.id))
    })
}

fn room_error(error: RoomError, retry_after_s: u64) -> ApiError {
    match error {
        RoomError::Join(JoinRefused::NotOpen(opens_at)) => {
            ApiError::conflict("queue_not_open", format!("the waiting room opens at {}", format_instant(opens_at)))
                .with_details(serde_json::json!({ "opens_at": format_instant(opens_at) }))
        }
        RoomError::Join(JoinRefused::SoldOut) => {
            ApiError::conflict("sold_out", "every seat is sold, or held for buyers already in line")
        }
        RoomError::Join(JoinRefused::Full) => {
            ApiError::conflict("queue_full", "the waiting room has as many buyers as it takes")
        }
        RoomError::Access(refused) => access_invalid(refused),
        RoomError::Storage(error) => {
            tracing::error!(%error, "a waiting-room change could not be stored");
            ApiError::unavailable(
                "storage_unavailable",
                "the change could not be stored; it was not made",
                retry_after_s,
            )
        }
    }
}

fn view(served: &ServedEvent, room: &ServedRoom, place: PlaceNumber, now: Millis) -> ApiResult<QueueView> {
    let token = room.places.make(&served.event.id, place);
    let status = room
        .room
        .board()
        .status(place, now)
        .ok_or_else(|| ApiError::unavailable("internal", "the place is not on the board yet; retry", 1))?;
    let mut view = QueueView {
        token,
        state: "waiting",
        position: None,
        ahead: None,
        eta_s: None,
        poll_after_ms: None,
        draw_at: None,
        seats_left: None,
        likely: None,
        long_poll: None,
        access: None,
        access_expires_at: None,
        admitted_at: None,
        sold_out_at: None,
    };
    match status {
        Status::BeforeDraw { opens_in_ms, .. } => {
            view.draw_at = Some(format_instant(room.room.board().sale_opens_at()));
            view.poll_after_ms = Some(poll_after(opens_in_ms + jitter_ms(place, DRAW_POLLS_SPREAD_MS), place));
        }
        Status::Waiting { position, ahead, eta_s, seats_free, likely } => {
            view.position = Some(position);
            view.ahead = Some(ahead);
            view.eta_s = eta_s.map(|eta| (eta * 10.0).round() / 10.0);
            if let Some(eta) = eta_s {
                // What this buyer is checked against when let in (hakken_queue_eta_error_ratio).
                room.room.board().promise(place, now, eta);
            }
            view.seats_left = Some(seats_free);
            view.likely = Some(likely);
            view.long_poll = Some(near(room, position) && !room.waiters.full());
            // Nobody is let in now (the server recovers, or those let in may take what is
            // left): the longest interval; the wait may end with a sold-out close.
            let after_ms = eta_s.map_or(POLL_AFTER_MS_MAX, |eta| (eta * 1_000.0) as u64 / 2);
            view.poll_after_ms = Some(poll_after(after_ms, place));
        }
        Status::Admitted { until, used } => {
            view.state = if used { "done" } else { "admitted" };
            let window_ms = room.room.settings().access_window_ms;
            view.admitted_at = Some(format_instant(Millis(until.0.saturating_sub(window_ms))));
            if !used {
                let customer = room
                    .room
                    .customer_of(place)
                    .ok_or_else(|| ApiError::unavailable("internal", "the place has no customer; retry", 1))?;
                let access = Access {
                    event: served.event.id.clone(),
                    customer: customer.0.to_string(),
                    place,
                    expires_at: until,
                };
                view.access = Some(tokens::sign_access(&served.signing, &access));
                view.access_expires_at = Some(format_instant(until));
            }
        }
        Status::Expired => view.state = "expired",
        Status::Done => view.state = "done",
        Status::SoldOut { at } => {
            view.state = "sold_out";
            view.sold_out_at = Some(format_instant(at));
        }
    }
    Ok(view)
}

/// `wait_ms` bounded to [`POLL_AFTER_MS_MIN`]..=[`POLL_AFTER_MS_MAX`], ±20% per place.
/// A waiting buyer is told half their wait, so each poll halves what is left: about
/// `1 + log2(wait / 1 s)` polls per buyer. A quarter (before) cut only a quarter each
/// time, 2.4 times as many; with the room stalled (no ETA) it was 7.5 s for everyone:
/// issue 15's rehearsal made 17,000 polls a second on the server's one core, more than
/// the sale's own requests.
fn poll_after(wait_ms: u64, place: PlaceNumber) -> u64 {
    let bounded = wait_ms.clamp(POLL_AFTER_MS_MIN, POLL_AFTER_MS_MAX);
    let spread = bounded / 5;
    (bounded - spread + jitter_ms(place, 2 * spread)).max(POLL_AFTER_MS_MIN / 2)
}

/// A fixed share of `0..range` per place (Knuth's multiplicative hash), so a place's
/// polls keep their rhythm while neighbours' differ.
fn jitter_ms(place: PlaceNumber, range: u64) -> u64 {
    match range {
        0 => 0,
        _ => (place as u64).wrapping_mul(2_654_435_761) % 4_294_967_296 % range,
    }
}

fn access_invalid(refused: AccessRefused) -> ApiError {
    let message = match refused {
        AccessRefused::Unknown | AccessRefused::NotAdmitted => "the access is not one this waiting room gave",
        AccessRefused::Expired => "the access has expired",
        AccessRefused::Used => "the access was already used for a hold",
    };
    ApiError::new(StatusCode::FORBIDDEN, "access_invalid", message)
}

/// For a hold on an event with a waiting room: checks the request's access (signed by
/// the event, for this customer, not expired) and claims it, before any seat is asked
/// for. `None` for an event without one; an access sent to such an event is refused,
/// since the header alone lets a hold past the overload shedding (`http/admission.rs`).
pub fn claim_access<'a>(
    served: &'a ServedEvent,
    headers: &HeaderMap,
    customer: &CustomerId,
    now: Millis,
) -> ApiResult<Option<AccessClaim<'a>>> {
    let Some(room) = &served.room else {
        if headers.contains_key(ACCESS_HEADER) {
            let message = format!("event {:?} has no waiting room: send no Hakken-Access", served.event.id);
            return Err(ApiError::new(StatusCode::FORBIDDEN, "access_invalid", message));
        }
        return Ok(None);
    };
    let result = check_access(served, room, headers, customer, now);
    let outcome = match &result {
        Ok(_) => "ok",
        Err(error) if error.code == "queue_required" => "missing",
        Err(_) => "invalid",
    };
    metrics::counter!(QUEUE_ACCESS_TOTAL, "event" => served.event.id.clone(), "outcome" => outcome).increment(1);
    result.map(Some)
}

fn check_access<'a>(
    served: &ServedEvent,
    room: &'a ServedRoom,
    headers: &HeaderMap,
    customer: &CustomerId,
    now: Millis,
) -> ApiResult<AccessClaim<'a>> {
    let Some(header) = headers.get(ACCESS_HEADER) else {
        let message = format!("event {:?} sells through its waiting room: join it and hold with the access it gives (header Hakken-Access)", served.event.id);
        return Err(ApiError::new(StatusCode::FORBIDDEN, "queue_required", message));
    };
    let token = header.to_str().map_err(|_| access_invalid(AccessRefused::Unknown))?;
    let access = tokens::verify_access(&served.public_key, token).map_err(|error| match error {
        TokenError::Malformed | TokenError::BadTag => access_invalid(AccessRefused::Unknown),
    })?;
    if access.event != served.event.id || *access.customer != *customer.0 {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "access_invalid",
            "the access is for another event or customer",
        ));
    }
    if now >= access.expires_at {
        return Err(access_invalid(AccessRefused::Expired));
    }
    room.room.claim(access.place, now).map_err(access_invalid)
}

/// How many seats a hold request asks for (what the room learns an access takes).
pub fn seats_asked(seats: Option<usize>, quantity: Option<u32>) -> u32 {
    seats.map(|seats| seats as u32).or(quantity).unwrap_or(1)
}
