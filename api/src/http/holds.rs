//! The on-sale path: hold, look up, extend, release, confirm; orders and refunds.
//!
//! A handler checks the request's shape, routes to the one section actor concerned
//! (hold and order ids carry its key) and turns the engine's answer into a view or
//! an [`ApiError`]. Nothing here waits on a lock; the actor call is the only await.
//! Handlers that change a section render their answer with a pure function passed to
//! [`call_changing`], so a request's stored idempotent answer is written with the change.

use std::collections::HashSet;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use hakken_engine::actor::{
    CancelOrder, Confirm, Extend, HoldBest, HoldQuantity, HoldSeats, LookupHold, ReadOrder, ReadOrderPayment, Release,
    SectionHandle,
};
use hakken_engine::best::{BestChoice, BestRequest};
use hakken_engine::ids::{CustomerId, HoldId, OrderId};
use hakken_engine::inventory::{Buyer, Granted, Hold, HoldError, HoldRefused, Order, OrderError};
use hakken_engine::registry::{resolve_seats, SeatLookupError};
use hakken_engine::tickets::Viewer;
use hakken_engine::venue::SectionKind;
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::http::app::{call, Catalogue, ServedEvent, Shared};
use crate::http::auth::is_admin;
use crate::http::error::{ApiError, ApiResult, ErrorBody, ErrorCode, Json, Path, Query};
use crate::http::idempotency_layer::{call_changing, AnswerTo, Rendered};
use crate::http::limiter::rate_limited;
use crate::http::payment_views::payment_view;
use crate::http::views::{
    hold_view, order_view, BuyerView, ChoiceView, ConfirmRequest, CustomerQuery, CustomerRequest, HoldRequest,
    HoldResponse, OrderResponse,
};
use crate::payments::gateway::describe;
use crate::privacy::BuyerData;

const CUSTOMER_BYTES_MAX: usize = 128;
const PAYMENT_REFERENCE_BYTES_MAX: usize = 128;
const NAME_BYTES_MAX: usize = 200;
const EMAIL_BYTES_MAX: usize = 254;

/// Hold seats: specific ones, the best of a section, or a general-admission quantity.
/// With `checkout`, the hold is checked out in the same request (as
/// `POST /v1/holds/{hold}/checkout` would) and the answer carries its payment.
#[utoipa::path(post, path = "/v1/events/{event}/holds", tag = "holds",
    params(("event" = String, Path, description = "Event id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key get the same answer"),
        ("Hakken-Access" = Option<String>, Header, description = "The access the event's waiting room gave this customer (required when the event has one)")),
    request_body = HoldRequest,
    responses((status = 201, description = "The hold; with `checkout`, its payment too, or `checkout_error` if the hold was made but not checked out", body = HoldResponse),
        (status = 403, description = "The event has a waiting room: `queue_required` without `Hakken-Access`, `access_invalid` with one of another customer or event, expired, forged or used", body = ErrorBody),
        (status = 404, description = "Unknown event, section or seat; `payments_off` for `checkout` on a server that takes no payments", body = ErrorBody),
        (status = 409, description = "Seats taken (named in `details.seats`), sold out, not on sale, customer limit", body = ErrorBody),
        (status = 422, description = "Invalid values", body = ErrorBody),
        (status = 429, description = "Customer over its request rate", body = ErrorBody),
        (status = 503, description = "Busy: retry after `Retry-After` seconds", body = ErrorBody)))]
pub async fn create_hold(
    State(shared): State<Arc<Shared>>,
    Path(event): Path<String>,
    headers: HeaderMap,
    answer_to: AnswerTo,
    Json(request): Json<HoldRequest>,
) -> ApiResult<Response> {
    let app = shared.app()?;
    let customer = customer_id(&request.customer)?;
    app.limiter.check(&request.customer).map_err(rate_limited)?;
    let served = app.catalogue().event(&event)?.clone();
    let (index, hold_call) = hold_call(&served, &event, &request, customer.clone())?;
    let now = app.now();
    let claim = crate::http::queue::claim_access(&served, &headers, &customer, now)?;
    let response = match &request.checkout {
        Some(checkout) => {
            let served = served.clone();
            crate::http::payments::hold_and_checkout(&shared, served, index, hold_call, checkout, answer_to.0).await?
        }
        None => hold_only(&shared, served.clone(), index, hold_call, answer_to).await,
    };
    if let Some(claim) = claim {
        if response.status() == StatusCode::CREATED {
            let seats = crate::http::queue::seats_asked(request.seats.as_ref().map(Vec::len), request.quantity);
            if let Err(error) = claim.used(seats, now).await {
                // The hold is made and stands; the access stays usable once more.
                tracing::warn!(%error, "a used access could not be recorded");
            }
        } else if refused_for_seats(&response) {
            claim.refused(now);
        }
    }
    Ok(response)
}

/// A hold refused because nothing free fits what it asked: what the waiting room learns
/// a buyer it let in will not take seats from (unless another ask fits).
fn refused_for_seats(response: &Response) -> bool {
    let code = response.extensions().get::<ErrorCode>().map(|code| code.0);
    response.status() == StatusCode::CONFLICT
        && matches!(code, Some("seats_unavailable" | "no_seats_match" | "sold_out"))
}

async fn hold_only(
    shared: &Shared,
    served: Arc<ServedEvent>,
    index: usize,
    hold_call: HoldCall,
    answer_to: AnswerTo,
) -> Response {
    let section = served.sections[index].clone();
    let render = move |granted: &Result<Granted, HoldRefused>| hold_answer(&served, index, granted);
    let (slot, overload) = (answer_to.0, &shared.overload);
    match hold_call {
        HoldCall::Seats(call) => call_changing(&section, call, slot, overload, render).await,
        HoldCall::Best(call) => call_changing(&section, call, slot, overload, render).await,
        HoldCall::Quantity(call) => call_changing(&section, call, slot, overload, render).await,
    }
}

/// The one section call a hold request makes.
pub(crate) enum HoldCall {
    Seats(HoldSeats),
    Best(HoldBest),
    Quantity(HoldQuantity),
}

/// Which section a hold request goes to and what it asks of it.
fn hold_call(
    served: &ServedEvent,
    event: &str,
    request: &HoldRequest,
    customer: CustomerId,
) -> ApiResult<(usize, HoldCall)> {
    let section_id = match (&request.seats, &request.section) {
        (Some(seat_ids), None) => {
            if request.quantity.is_some() || request.adjacent.is_some() || request.category.is_some() {
                let message = "`seats` names the seats; `quantity`, `adjacent` and `category` go with `section`";
                return Err(ApiError::invalid("invalid_request", message));
            }
            let (index, seats) = seats_of(served, seat_ids)?;
            return Ok((index, HoldCall::Seats(HoldSeats { customer, seats })));
        }
        (None, Some(section_id)) => section_id,
        _ => {
            let message = "give either `seats` (specific seats) or `section` with `quantity` (best available or general admission)";
            return Err(ApiError::invalid("invalid_request", message));
        }
    };
    let (index, handle) = served.section(section_id).ok_or_else(|| {
        ApiError::not_found("section_not_found", format!("event {event:?} has no section {section_id:?}"))
    })?;
    let quantity = match request.quantity {
        None => return Err(ApiError::invalid("missing_quantity", "`section` needs a `quantity`")),
        Some(0) => return Err(ApiError::invalid("invalid_quantity", "`quantity` must be at least 1")),
        Some(quantity) => quantity,
    };
    let call = match &handle.state.section().kind {
        SectionKind::Reserved(_) => {
            let category = match &request.category {
                None => None,
                Some(id) => Some(served.venue.category_index(id).ok_or_else(|| {
                    ApiError::invalid("unknown_category", format!("the venue has no category {id:?}"))
                })?),
            };
            let best = BestRequest {
                quantity,
                category,
                accessible: request.accessible.unwrap_or(false),
                adjacent: request.adjacent.unwrap_or(true),
            };
            HoldCall::Best(HoldBest { customer, request: best })
        }
        SectionKind::GeneralAdmission { category, .. } => {
            if let Some(id) = &request.category {
                if served.venue.category_index(id) != Some(*category) {
                    let message = format!(
                        "section {section_id:?} sells only category {:?}",
                        served.venue.categories[usize::from(category.0)].id
                    );
                    return Err(ApiError::invalid("unknown_category", message));
                }
            }
            if request.accessible == Some(true) {
                let message = "general admission has no accessible seats to pick; ask the venue";
                return Err(ApiError::invalid("invalid_request", message));
            }
            HoldCall::Quantity(HoldQuantity { customer, quantity })
        }
    };
    Ok((index, call))
}

/// The answer to a hold request, sent and (with an idempotency key) stored.
pub(crate) fn hold_answer(
    served: &ServedEvent,
    index: usize,
    granted: &Result<Granted, HoldRefused>,
) -> Rendered<HoldResponse> {
    let granted = granted.as_ref().map_err(|refused| hold_refused(served, index, refused.clone()))?;
    let mut hold = hold_view(served, index, &granted.hold);
    hold.choice = granted.choice.as_ref().map(choice_view);
    Ok((StatusCode::CREATED, HoldResponse::of(hold)))
}

pub(crate) fn choice_view(choice: &BestChoice) -> ChoiceView {
    ChoiceView {
        adjacent: choice.adjacent,
        rows: choice.rows,
        score: choice.score,
        leaves_orphan: choice.leaves_orphan,
    }
}

fn seats_of(served: &ServedEvent, seat_ids: &[String]) -> ApiResult<(usize, Vec<u32>)> {
    let mut seen = HashSet::with_capacity(seat_ids.len());
    if let Some(repeated) = seat_ids.iter().find(|id| !seen.insert(id.as_str())) {
        return Err(ApiError::invalid("duplicate_seats", format!("seat {repeated:?} is named twice"))
            .with_details(json!({ "seats": [repeated] })));
    }
    resolve_seats(&served.venue, seat_ids).map_err(|error| match error {
        SeatLookupError::Empty => ApiError::invalid("invalid_request", "`seats` is empty"),
        SeatLookupError::UnknownSeat(id) => {
            ApiError::not_found("seat_not_found", format!("no seat {id:?} at this event"))
                .with_details(json!({ "seats": [id] }))
        }
        SeatLookupError::MixedSections(..) => ApiError::invalid("mixed_sections", error.to_string()),
    })
}

fn hold_refused(served: &ServedEvent, index: usize, refused: HoldRefused) -> ApiError {
    let message = refused.to_string();
    match refused {
        HoldRefused::SeatsUnavailable { seats } => {
            let section = &served.venue.sections[index];
            let map = section.seat_map().expect("seats are refused only in reserved sections");
            let ids: Vec<String> = seats.iter().map(|&seat| map.seat_id(&section.id, seat).0).collect();
            ApiError::conflict("seats_unavailable", format!("seats not available: {}", ids.join(", ")))
                .with_details(json!({ "seats": ids }))
        }
        HoldRefused::NoSeatsMatch => ApiError::conflict("no_seats_match", message),
        HoldRefused::SoldOut { available } => {
            ApiError::conflict("sold_out", message).with_details(json!({ "available": available }))
        }
        HoldRefused::CustomerLimit(limit) => ApiError::conflict("customer_limit", message)
            .with_details(json!({ "limit": limit.limit, "current": limit.current })),
        HoldRefused::NotOnSale => ApiError::conflict("not_on_sale", message),
        HoldRefused::Invalid(_) => ApiError::invalid("invalid_request", message),
        HoldRefused::TooManySeats { max } => {
            ApiError::invalid("too_many_seats", message).with_details(json!({ "max": max }))
        }
        HoldRefused::CategoryNotOnSale => ApiError::invalid("category_not_on_sale", message),
        HoldRefused::HoldNumbersExhausted => ApiError::conflict("holds_exhausted", message),
    }
}

pub(crate) fn hold_error(error: HoldError) -> ApiError {
    let message = error.to_string();
    match error {
        HoldError::NotFound => ApiError::not_found("hold_not_found", message),
        HoldError::Ended => ApiError::conflict("hold_ended", message),
        HoldError::NotYours => ApiError::new(StatusCode::FORBIDDEN, "hold_not_yours", message),
        HoldError::Expired => ApiError::conflict("hold_expired", message),
        HoldError::LifetimeReached => ApiError::conflict("hold_lifetime_reached", message),
        HoldError::Paying => ApiError::conflict("hold_paying", message),
    }
}

pub(crate) fn customer_id(customer: &str) -> ApiResult<CustomerId> {
    if customer.is_empty() || customer.len() > CUSTOMER_BYTES_MAX || customer.chars().any(char::is_control) {
        let message = format!("`customer` must be 1-{CUSTOMER_BYTES_MAX} bytes without control characters");
        return Err(ApiError::invalid("invalid_customer", message));
    }
    Ok(CustomerId::new(customer))
}

pub(crate) fn required_customer(query: &CustomerQuery) -> ApiResult<CustomerId> {
    match &query.customer {
        Some(customer) => customer_id(customer),
        None => Err(ApiError::invalid("missing_customer", "name the customer: `?customer=...`")),
    }
}

/// The hold with this id, with its event and section.
pub(crate) fn locate_hold(catalogue: &Catalogue, id: &str) -> ApiResult<(HoldId, Arc<ServedEvent>, usize)> {
    let not_found = || ApiError::not_found("hold_not_found", format!("no hold {id:?}"));
    let hold: HoldId = id.parse().map_err(|_| not_found())?;
    let (served, index) = catalogue.locate(hold.section).ok_or_else(not_found)?;
    served.here()?;
    Ok((hold, served.clone(), index))
}

pub(crate) fn locate_order(catalogue: &Catalogue, id: &str) -> ApiResult<(OrderId, Arc<ServedEvent>, usize)> {
    let not_found = || ApiError::not_found("order_not_found", format!("no order {id:?}"));
    let order: OrderId = id.parse().map_err(|_| not_found())?;
    let (served, index) = catalogue.locate(order.section).ok_or_else(not_found)?;
    served.here()?;
    Ok((order, served.clone(), index))
}

/// A live hold: its seats, expiry and price.
#[utoipa::path(get, path = "/v1/holds/{hold}", tag = "holds",
    params(("hold" = String, Path, description = "Hold id")),
    responses((status = 200, body = HoldResponse), (status = 404, body = ErrorBody), (status = 409, description = "Ended or expired", body = ErrorBody)))]
pub async fn get_hold(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<HoldResponse>> {
    let app = shared.app()?;
    let (hold, served, index) = locate_hold(&app.catalogue(), &id)?;
    let found = call(&served.sections[index], LookupHold { hold }, &shared.overload).await?.map_err(hold_error)?;
    if found.expires_at() <= app.now() {
        return Err(hold_error(HoldError::Expired));
    }
    Ok(axum::Json(HoldResponse::of(hold_view(&served, index, &found))))
}

/// Release a hold: its seats go back on sale at once.
#[utoipa::path(delete, path = "/v1/holds/{hold}", tag = "holds",
    params(("hold" = String, Path, description = "Hold id"), CustomerQuery),
    responses((status = 204, description = "Released"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn release_hold(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(query): Query<CustomerQuery>,
) -> ApiResult<StatusCode> {
    let app = shared.app()?;
    let customer = required_customer(&query)?;
    let (hold, served, index) = locate_hold(&app.catalogue(), &id)?;
    call(&served.sections[index], Release { hold, customer: customer.clone() }, &shared.overload)
        .await?
        .map_err(hold_error)?;
    if let Some(room) = &served.room {
        room.room.resolved(&customer, false);
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Give a hold another TTL from now, up to its maximum lifetime.
#[utoipa::path(post, path = "/v1/holds/{hold}/extend", tag = "holds",
    params(("hold" = String, Path, description = "Hold id")),
    request_body = CustomerRequest,
    responses((status = 200, body = HoldResponse), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn extend_hold(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    answer_to: AnswerTo,
    Json(request): Json<CustomerRequest>,
) -> ApiResult<Response> {
    let app = shared.app()?;
    let customer = customer_id(&request.customer)?;
    let (hold, served, index) = locate_hold(&app.catalogue(), &id)?;
    let section = served.sections[index].clone();
    let render = move |extended: &Result<Hold, HoldError>| -> Rendered<HoldResponse> {
        let extended = extended.as_ref().map_err(|error| hold_error(*error))?;
        Ok((StatusCode::OK, HoldResponse::of(hold_view(&served, index, extended))))
    };
    let extend = Extend { hold, customer };
    Ok(call_changing(&section, extend, answer_to.0, &shared.overload, render).await)
}

/// Sell a held hold on trust, for a sales channel that took the money itself (a box
/// office, an integrator charging elsewhere): it becomes an order with one ticket per
/// seat. Needs the sales token, unless the server takes no payments
/// (`payments.provider = "external"`); buyers paying online check out instead. An
/// expired, released, unknown or checked-out hold is never sold here.
#[utoipa::path(post, path = "/v1/holds/{hold}/confirm", tag = "orders",
    params(("hold" = String, Path, description = "Hold id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key get the same answer")),
    request_body = ConfirmRequest,
    security(("sales_token" = [])),
    responses((status = 201, body = OrderResponse), (status = 401, description = "No sales token", body = ErrorBody),
        (status = 403, description = "Another customer's hold", body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, description = "Expired or ended", body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn confirm_hold(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    answer_to: AnswerTo,
    Json(request): Json<ConfirmRequest>,
) -> ApiResult<Response> {
    let app = shared.app()?;
    let customer = customer_id(&request.customer)?;
    let reference = payment_reference(&request.payment_reference)?;
    let channel = if shared.payments.is_none() { "external" } else { "box_office" };
    let buyer = buyer_of(&shared, &request.buyer, reference, channel)?;
    app.limiter.check(&request.customer).map_err(rate_limited)?;
    let (hold, served, index) = locate_hold(&app.catalogue(), &id)?;
    let section = served.sections[index].clone();
    let room = served.room.clone();
    let privacy = shared.privacy.clone();
    let render = move |order: &Result<Order, HoldError>| -> Rendered<OrderResponse> {
        let order = order.as_ref().map_err(|error| hold_error(*error))?;
        Ok((StatusCode::CREATED, OrderResponse { order: order_view(&served, index, order, &privacy) }))
    };
    let confirm = Confirm { hold, customer: customer.clone(), buyer };
    let response = call_changing(&section, confirm, answer_to.0, &shared.overload, render).await;
    if let Some(room) = room.filter(|_| response.status() == StatusCode::CREATED) {
        room.room.resolved(&customer, true);
    }
    Ok(response)
}

fn payment_reference(reference: &str) -> ApiResult<&str> {
    let reference = reference.trim();
    if reference.is_empty() || reference.len() > PAYMENT_REFERENCE_BYTES_MAX {
        let message = format!("`payment_reference` must be 1-{PAYMENT_REFERENCE_BYTES_MAX} bytes");
        return Err(ApiError::invalid("invalid_payment_reference", message));
    }
    Ok(reference)
}

/// The buyer of an order, checked, as the engine stores it: sold through `channel`
/// (`online`, `box_office`, `external`) with the payment's reference.
pub(crate) fn buyer_of(shared: &Shared, buyer: &BuyerView, reference: &str, channel: &str) -> ApiResult<Buyer> {
    let name = buyer.name.trim();
    if name.is_empty() || name.len() > NAME_BYTES_MAX || name.chars().any(char::is_control) {
        let message = format!("`buyer.name` must be 1-{NAME_BYTES_MAX} bytes without control characters");
        return Err(ApiError::invalid("invalid_buyer", message));
    }
    let email = buyer.email.trim();
    let plausible = email.len() <= EMAIL_BYTES_MAX
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.') && !domain.contains('@'));
    if !plausible {
        return Err(ApiError::invalid("invalid_buyer", format!("`buyer.email` {email:?} is not an email address")));
    }
    let sealed = shared.privacy.seal_buyer(&BuyerData { name: name.into(), email: email.into() });
    Ok(Buyer { payment_reference: reference.into(), channel: channel.into(), sealed: sealed.into() })
}

/// An order with its tickets. Only its customer (`?customer=`) or an admin sees it.
#[utoipa::path(get, path = "/v1/orders/{order}", tag = "orders",
    params(("order" = String, Path, description = "Order id"), CustomerQuery),
    responses((status = 200, body = OrderResponse), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn get_order(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(query): Query<CustomerQuery>,
    headers: HeaderMap,
) -> ApiResult<axum::Json<OrderResponse>> {
    let app = shared.app()?;
    let viewer = if is_admin(&shared, &headers) { Viewer::Admin } else { Viewer::Customer(required_customer(&query)?) };
    let (order_id, served, index) = locate_order(&app.catalogue(), &id)?;
    let read = ReadOrder { order: order_id, viewer };
    // Someone else's order is "not found" (the engine checks): ids are guessable, orders are private.
    let order = call(&served.sections[index], read, &shared.overload)
        .await?
        .ok_or_else(|| ApiError::not_found("order_not_found", format!("no order {id:?}")))?;
    let mut view = order_view(&served, index, &order, &shared.privacy);
    if shared.payments.is_some() {
        let payment = call(&served.sections[index], ReadOrderPayment { order: order_id }, &shared.overload).await?;
        view.payment = payment.map(|payment| payment_view(&payment, None));
    }
    Ok(axum::Json(OrderResponse { order: view }))
}

/// Who cancels: the order's customer, or an admin (with the admin token) naming none.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    /// The order's customer (an admin, with the admin token, may leave it out).
    #[serde(default)]
    #[schema(
        required = true,
        min_length = 1,
        max_length = 128,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$",
        example = "customer-42"
    )]
    pub customer: Option<String>,
}

/// Cancel (refund) an order: its seats go back on sale; its tickets stop being valid.
#[utoipa::path(post, path = "/v1/orders/{order}/cancel", tag = "orders",
    params(("order" = String, Path, description = "Order id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key get the same answer")),
    request_body = CancelRequest,
    responses((status = 200, body = OrderResponse), (status = 404, body = ErrorBody), (status = 409, description = "Already cancelled", body = ErrorBody)))]
pub async fn cancel_order(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    answer_to: AnswerTo,
    Json(request): Json<CancelRequest>,
) -> ApiResult<Response> {
    let app = shared.app()?;
    let viewer = match (&request.customer, is_admin(&shared, &headers)) {
        (_, true) => Viewer::Admin,
        (Some(customer), false) => Viewer::Customer(customer_id(customer)?),
        (None, false) => return Err(ApiError::invalid("missing_customer", "name the order's `customer`")),
    };
    let (order_id, served, index) = locate_order(&app.catalogue(), &id)?;
    let section = served.sections[index].clone();
    let privacy = shared.privacy.clone();
    // Someone else's order is "not found" (the engine checks in the same turn as the cancel).
    let render = move |cancelled: &Result<Order, OrderError>| -> Rendered<OrderResponse> {
        let cancelled = cancelled.as_ref().map_err(|error| match error {
            OrderError::NotFound => ApiError::not_found("order_not_found", format!("no order {id:?}")),
            OrderError::AlreadyCancelled => ApiError::conflict("order_cancelled", "the order is already cancelled"),
        })?;
        Ok((StatusCode::OK, OrderResponse { order: order_view(&served, index, cancelled, &privacy) }))
    };
    let cancel = CancelOrder { order: order_id, viewer };
    let answer = call_changing(&section, cancel, answer_to.0, &shared.overload, render).await;
    if answer.status().is_success() {
        refund_in_background(&shared, section, order_id);
    }
    Ok(answer)
}

/// Gives a cancelled order's money back at the PSP (or voids its authorization) without
/// holding up the answer; a refund that fails stays owed, visible on the payment, and the
/// payments sweep retries it.
fn refund_in_background(shared: &Arc<Shared>, section: SectionHandle, order: OrderId) {
    let Some(gateway) = shared.payments.clone() else { return };
    let shared = shared.clone();
    tokio::spawn(async move {
        let Ok(Some(payment)) = call(&section, ReadOrderPayment { order }, &shared.overload).await else { return };
        if let Err(error) = gateway.settle(&shared, &section, payment).await {
            tracing::warn!(error = %describe(&error), "refund not made now; the payments sweep retries it");
        }
    });
}
