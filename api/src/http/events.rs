//! Reading events: the list, one event, availability and seat maps. All lock-free
//! reads of the sections' counters and seat words: cheap enough for every waiting
//! buyer to poll.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use hakken_engine::clock::Millis;
use hakken_engine::event::format_instant;
use hakken_engine::inventory::seat_code;
use hakken_engine::venue::{SeatFlags, SectionKind};

use crate::http::app::{ServedEvent, Shared};
use crate::http::availability_cache;
use crate::http::error::{ApiError, ApiResult, ErrorBody, Path};
use crate::http::views::{
    category_id, event_detail, event_summary, kind_name, AvailabilityResponse, CategoryAvailability, CountsView,
    EventResponse, EventsResponse, SeatMapResponse, SeatView, SectionAvailability,
};

/// Clients may reuse a read for this long: counts move constantly during an on-sale.
const READ_CACHE: HeaderValue = HeaderValue::from_static("max-age=1");

fn cached(json: impl serde::Serialize) -> Response {
    let mut response = axum::Json(json).into_response();
    response.headers_mut().insert(CACHE_CONTROL, READ_CACHE);
    response
}

/// Every event on sale here.
#[utoipa::path(get, path = "/v1/events", tag = "events",
    responses((status = 200, body = EventsResponse), (status = 503, body = ErrorBody)))]
pub async fn list_events(State(shared): State<Arc<Shared>>) -> ApiResult<axum::Json<EventsResponse>> {
    let app = shared.app()?;
    let now = app.now().0;
    let catalogue = app.catalogue();
    let mut events: Vec<_> =
        catalogue.events.values().map(|served| event_summary(&served.event, &served.venue, now)).collect();
    events.sort_by(|left, right| left.id.cmp(&right.id));
    Ok(axum::Json(EventsResponse { events }))
}

/// One event with its sections, categories and ticket types (prices).
#[utoipa::path(get, path = "/v1/events/{event}", tag = "events",
    params(("event" = String, Path, description = "Event id")),
    responses((status = 200, body = EventResponse), (status = 404, body = ErrorBody)))]
pub async fn get_event(
    State(shared): State<Arc<Shared>>,
    Path(event): Path<String>,
) -> ApiResult<axum::Json<EventResponse>> {
    let app = shared.app()?;
    let catalogue = app.catalogue();
    let served = catalogue.event(&event)?;
    Ok(axum::Json(EventResponse { event: event_detail(served, app.now().0) }))
}

/// Capacity, available, held and sold per section and per price category. Served
/// from a per-event cache for `http.availability_cache_ms`; `at` is when the counts
/// were read.
#[utoipa::path(get, path = "/v1/events/{event}/availability", tag = "events",
    params(("event" = String, Path, description = "Event id")),
    responses((status = 200, body = AvailabilityResponse), (status = 404, body = ErrorBody)))]
pub async fn availability(
    State(shared): State<Arc<Shared>>,
    Path(event): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let app = shared.app()?;
    let catalogue = app.catalogue();
    let served = catalogue.event(&event)?;
    let render = |now| render_availability(served, now);
    let body = if availability_cache::wants_fresh(&headers) {
        app.availability_cache.render_fresh(app.now(), render)
    } else {
        app.availability_cache.serve(&catalogue, &served.event.id, app.now(), render)
    };
    let headers = [(CONTENT_TYPE, HeaderValue::from_static("application/json")), (CACHE_CONTROL, READ_CACHE)];
    Ok((headers, body).into_response())
}

/// The availability body of one event, its counts read now.
fn render_availability(served: &ServedEvent, now: Millis) -> Bytes {
    let mut total = CountsView::default();
    let sections = served
        .sections
        .iter()
        .map(|handle| {
            let section = handle.state.section();
            let availability = handle.state.availability();
            total.add(availability.total.into());
            SectionAvailability {
                id: section.id.clone(),
                kind: kind_name(section),
                counts: availability.total.into(),
                categories: availability
                    .categories
                    .iter()
                    .map(|(category, counts)| CategoryAvailability {
                        category: category_id(&served.venue, *category),
                        counts: (*counts).into(),
                    })
                    .collect(),
            }
        })
        .collect();
    let response = AvailabilityResponse { event: served.event.id.clone(), at: format_instant(now), total, sections };
    Bytes::from(serde_json::to_vec(&response).expect("an availability response serializes"))
}

/// Every seat of a reserved section with its state, for drawing a seat map. A hold
/// that has expired shows as free. General admission has no seats (an empty list).
#[utoipa::path(get, path = "/v1/events/{event}/sections/{section}/seats", tag = "events",
    params(("event" = String, Path, description = "Event id"), ("section" = String, Path, description = "Section id")),
    responses((status = 200, body = SeatMapResponse), (status = 404, body = ErrorBody)))]
pub async fn seats(
    State(shared): State<Arc<Shared>>,
    Path((event, section)): Path<(String, String)>,
) -> ApiResult<Response> {
    let app = shared.app()?;
    let catalogue = app.catalogue();
    let served = catalogue.event(&event)?;
    let (_, handle) = served.section(&section).ok_or_else(|| {
        ApiError::not_found("section_not_found", format!("event {event:?} has no section {section:?}"))
    })?;
    let venue_section = handle.state.section();
    let seats = match &venue_section.kind {
        SectionKind::GeneralAdmission { .. } => Vec::new(),
        SectionKind::Reserved(map) => {
            let codes = handle.state.seat_codes(app.now());
            map.seats
                .iter()
                .zip(codes)
                .enumerate()
                .map(|(index, (seat, code))| SeatView {
                    id: map.seat_id(&venue_section.id, index as u32).0,
                    row: map.rows[usize::from(seat.row)].label.to_string(),
                    number: seat.number,
                    category: category_id(&served.venue, seat.category),
                    state: match code {
                        seat_code::FREE => "free",
                        seat_code::HELD => "held",
                        _ => "sold",
                    },
                    accessible: seat.flags.contains(SeatFlags::ACCESSIBLE),
                    aisle: seat.flags.contains(SeatFlags::AISLE),
                    obstructed: seat.flags.contains(SeatFlags::OBSTRUCTED),
                })
                .collect()
        }
    };
    Ok(cached(SeatMapResponse {
        event,
        section: venue_section.id.clone(),
        kind: kind_name(venue_section),
        capacity: venue_section.capacity(),
        seats,
    }))
}
