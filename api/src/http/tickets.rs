//! Ticket handlers: a ticket's data and signed code, its QR code, barcode and
//! printable page, and reissue. What a ticket is, who may see or reissue it and how
//! its code and barcode are made is the engine's (`hakken_engine::tickets`); this
//! module only turns it into HTTP.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hakken_engine::actor::SectionHandle;
use hakken_engine::clock::Millis;
use hakken_engine::event::format_instant;
use hakken_engine::ids::{CustomerId, OrderId, TicketId};
use hakken_engine::inventory::{Order, TicketError};
use hakken_engine::tickets::barcode::Barcode;
use hakken_engine::tickets::calls::{ReadTicket, Reissue};
use hakken_engine::tickets::{self, Place, ReissueProof, TicketState, Viewer};
use hakken_notify::Language;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::http::app::{call, ServedEvent, Shared};
use crate::http::auth::is_admin;
use crate::http::error::{ApiError, ApiResult, ErrorBody, Json, Path, Query};
use crate::http::idempotency_layer::{call_changing, AnswerTo, Rendered};
use crate::http::views::{category_id, CustomerQuery};
use crate::privacy::{self, Privacy, Shown};
use crate::render::{self, TicketPage};

/// Pixels per QR module of `qr.png`.
const QR_PNG_MODULE_PX: u32 = 8;

/// A ticket as its holder (or an admin) sees it.
#[derive(Serialize, ToSchema)]
pub struct TicketDetail {
    /// `t{section key}-{order number}-{index}`.
    pub id: String,
    pub event: String,
    pub order: String,
    pub section: String,
    /// Seat id; null for general admission.
    pub seat: Option<String>,
    pub category: String,
    /// `valid`, `checked_in` or `cancelled` (the order was refunded).
    pub state: &'static str,
    /// Code version: 0 at issue, +1 per reissue; older codes are refused at the gate.
    pub version: u16,
    pub holder: String,
    /// The signed code the QR carries (`HK1.` + base64url).
    pub code: String,
    /// The short reference the printed barcode carries (checked online).
    pub barcode: String,
    pub admitted_at: Option<String>,
    pub admitted_gate: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct TicketResponse {
    pub ticket: TicketDetail,
}

/// Proof for a buyer's reissue: the order and the buyer's email. An admin needs none.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReissueRequest {
    /// The ticket's order (an admin, with the admin token, may leave it out).
    #[serde(default)]
    #[schema(required = true, example = "o3-7")]
    pub order: Option<String>,
    /// The buyer's email (an admin, with the admin token, may leave it out).
    #[serde(default)]
    #[schema(required = true, example = "ana@example.com")]
    pub email: Option<String>,
}

/// A ticket, its order, event and section, after checking who asks.
struct Located {
    ticket: TicketId,
    served: Arc<ServedEvent>,
    index: usize,
    order: Order,
}

fn ticket_not_found(id: &str) -> ApiError {
    ApiError::not_found("ticket_not_found", format!("no ticket {id:?}"))
}

/// Finds ticket `id`, if the one who asks may see it (the engine checks: only the
/// order's customer, `?customer=`, or an admin).
async fn locate(shared: &Shared, id: &str, query: &CustomerQuery, headers: &HeaderMap) -> ApiResult<Located> {
    let app = shared.app()?;
    let viewer = match (is_admin(shared, headers), &query.customer) {
        (true, _) => Viewer::Admin,
        (false, Some(customer)) => Viewer::Customer(CustomerId::new(customer)),
        (false, None) => return Err(ApiError::invalid("missing_customer", "name the customer: `?customer=...`")),
    };
    let ticket: TicketId = id.parse().map_err(|_| ticket_not_found(id))?;
    let catalogue = app.catalogue();
    let (served, index) = catalogue.locate(ticket.order.section).ok_or_else(|| ticket_not_found(id))?;
    served.here()?;
    let order = call(&served.sections[index], ReadTicket { ticket, viewer }, &shared.overload)
        .await?
        .ok_or_else(|| ticket_not_found(id))?;
    Ok(Located { ticket, served: served.clone(), index, order })
}

fn detail(located: &Located, privacy: &Privacy) -> ApiResult<TicketDetail> {
    let Located { ticket, served, index, order } = located;
    let section = &served.venue.sections[*index];
    let version = order.ticket(ticket.index).version;
    let unsignable = |problem: String| ApiError::invalid("unsignable_ticket", problem);
    let claim = tickets::claim(&served.event.id, section, order, ticket.index, version)
        .ok_or_else(|| unsignable(format!("the order has no ticket {}", ticket.index)))?;
    let code = served.signing.sign(&claim).map_err(|error| unsignable(error.to_string()))?;
    let category =
        tickets::place(section, order, ticket.index).map(|(_, category)| category_id(&served.venue, category));
    let admission = order.ticket(ticket.index).admitted;
    Ok(TicketDetail {
        id: ticket.to_string(),
        event: served.event.id.clone(),
        order: order.id.to_string(),
        section: section.id.clone(),
        seat: match claim.place {
            Place::Seat(seat) => Some(seat),
            Place::GeneralAdmission(_) => None,
        },
        category: category.unwrap_or_default(),
        state: TicketState::of(order, ticket.index).as_str(),
        version,
        // Empty when the buyer was erased or cannot be read: the ticket stays valid.
        holder: privacy.show(&order.buyer).name().to_string(),
        barcode: Barcode::issue(&served.signing, &served.event.id, *ticket, version).text(),
        code,
        admitted_at: admission.as_ref().map(|admission| format_instant(Millis(admission.at_ms))),
        admitted_gate: admission.map(|admission| admission.gate),
    })
}

/// A ticket: its place, state, holder and signed code.
#[utoipa::path(get, path = "/v1/tickets/{ticket}", tag = "tickets",
    params(("ticket" = String, Path, description = "Ticket id"), CustomerQuery),
    responses((status = 200, body = TicketResponse), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn get_ticket(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(query): Query<CustomerQuery>,
    headers: HeaderMap,
) -> ApiResult<axum::Json<TicketResponse>> {
    let located = locate(&shared, &id, &query, &headers).await?;
    Ok(axum::Json(TicketResponse { ticket: detail(&located, &shared.privacy)? }))
}

fn image(content_type: &'static str, body: Vec<u8>) -> Response {
    // Codes change on reissue: never cache.
    ([(CONTENT_TYPE, content_type), (CACHE_CONTROL, "no-store")], body).into_response()
}

/// A rendered image, or why it could not be made.
fn render_image(content_type: &'static str, rendered: Result<Vec<u8>, render::RenderError>) -> ApiResult<Response> {
    let body = rendered.map_err(|error| ApiError::invalid("unrenderable", error.to_string()))?;
    Ok(image(content_type, body))
}

/// The ticket's QR code (its signed code) as SVG.
#[utoipa::path(get, path = "/v1/tickets/{ticket}/qr.svg", tag = "tickets",
    params(("ticket" = String, Path, description = "Ticket id"), CustomerQuery),
    responses((status = 200, content_type = "image/svg+xml", description = "QR code"), (status = 404, body = ErrorBody)))]
pub async fn ticket_qr_svg(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(query): Query<CustomerQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let ticket = detail(&locate(&shared, &id, &query, &headers).await?, &shared.privacy)?;
    render_image("image/svg+xml", render::qr_svg(&ticket.code).map(String::into_bytes))
}

/// The ticket's QR code as PNG.
#[utoipa::path(get, path = "/v1/tickets/{ticket}/qr.png", tag = "tickets",
    params(("ticket" = String, Path, description = "Ticket id"), CustomerQuery),
    responses((status = 200, content_type = "image/png", description = "QR code"), (status = 404, body = ErrorBody)))]
pub async fn ticket_qr_png(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(query): Query<CustomerQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let ticket = detail(&locate(&shared, &id, &query, &headers).await?, &shared.privacy)?;
    render_image("image/png", render::qr_png(&ticket.code, QR_PNG_MODULE_PX))
}

/// The ticket's Code 128 barcode (its short reference) as SVG, for printed tickets.
#[utoipa::path(get, path = "/v1/tickets/{ticket}/barcode.svg", tag = "tickets",
    params(("ticket" = String, Path, description = "Ticket id"), CustomerQuery),
    responses((status = 200, content_type = "image/svg+xml", description = "Code 128 barcode"), (status = 404, body = ErrorBody)))]
pub async fn ticket_barcode_svg(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(query): Query<CustomerQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let ticket = detail(&locate(&shared, &id, &query, &headers).await?, &shared.privacy)?;
    render_image("image/svg+xml", render::code128_svg(&ticket.barcode).map(String::into_bytes))
}

/// A printable ticket page (HTML, no external resources).
#[utoipa::path(get, path = "/v1/tickets/{ticket}/ticket.html", tag = "tickets",
    params(("ticket" = String, Path, description = "Ticket id"), CustomerQuery),
    responses((status = 200, content_type = "text/html", description = "Printable ticket"), (status = 404, body = ErrorBody)))]
pub async fn ticket_page(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(query): Query<CustomerQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let located = locate(&shared, &id, &query, &headers).await?;
    let ticket = detail(&located, &shared.privacy)?;
    let served = &located.served;
    let order = &located.order;
    let language = served.language;
    let section = &served.venue.sections[located.index];
    // `detail` found the ticket in its order, so its place is there too.
    let place = crate::notifications::compose::readable_place(section, order, located.ticket.index)
        .map(|(place, _)| place)
        .ok_or_else(|| ApiError::invalid("unsignable_ticket", format!("the order has no ticket {id}")))?;
    let state = TicketState::of(order, located.ticket.index);
    let price = order.total_minor / u64::from(order.units.count().max(1));
    let page = TicketPage {
        language,
        event_name: served.event.name.clone(),
        starts_at: hakken_notify::format_starts_at(served.event.starts_at.0, &served.time_zone, language),
        venue: served.venue.name.clone(),
        place: hakken_notify::format_place(&place, language),
        ticket_type: ticket.category.clone(),
        price: format!("{}.{:02} {}", price / 100, price % 100, served.event.currency),
        holder: ticket.holder.clone(),
        ticket_id: match language {
            Language::En => format!("{} (version {})", ticket.id, ticket.version),
            Language::Ja => format!("{}（第{}版）", ticket.id, ticket.version),
        },
        state: state_words(state, language).to_string(),
        code: ticket.code.clone(),
        barcode_text: ticket.barcode.clone(),
    };
    Ok(image("text/html; charset=utf-8", render::ticket_html(&page).into_bytes()))
}

/// A ticket's state as its holder reads it on the printed page.
fn state_words(state: TicketState, language: Language) -> &'static str {
    match (state, language) {
        (TicketState::Valid, Language::En) => "Valid",
        (TicketState::CheckedIn, Language::En) => "Checked in",
        (TicketState::Cancelled, Language::En) => "Cancelled",
        (TicketState::Valid, Language::Ja) => "有効",
        (TicketState::CheckedIn, Language::Ja) => "入場済み",
        (TicketState::Cancelled, Language::Ja) => "払い戻し済み",
    }
}

/// Give a ticket a new code; the old one stops admitting at once. An admin, or the
/// buyer proving it with the order id and the buyer's email.
#[utoipa::path(post, path = "/v1/tickets/{ticket}/reissue", tag = "tickets",
    params(("ticket" = String, Path, description = "Ticket id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key get the same answer")),
    request_body = ReissueRequest,
    responses((status = 200, body = TicketResponse), (status = 404, body = ErrorBody),
        (status = 409, description = "Cancelled, already used, or versions exhausted", body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn reissue_ticket(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    answer_to: AnswerTo,
    Json(request): Json<ReissueRequest>,
) -> ApiResult<Response> {
    let app = shared.app()?;
    let ticket: TicketId = id.parse().map_err(|_| ticket_not_found(&id))?;
    let catalogue = app.catalogue();
    let (served, index) = catalogue.locate(ticket.order.section).ok_or_else(|| ticket_not_found(&id))?;
    served.here()?;
    let proof = match (is_admin(&shared, &headers), request.order, request.email) {
        (true, _, _) => ReissueProof::Admin,
        (false, Some(order), Some(email)) => {
            buyer_proof(&shared, &served.sections[index], ticket, &order, &email).await?
        }
        (false, _, _) => ReissueProof::Missing,
    };
    let section = served.sections[index].clone();
    let served = served.clone();
    let privacy = shared.privacy.clone();
    let render = move |reissued: &Result<(Order, u16), TicketError>| {
        reissue_answer(&served, index, ticket, &id, reissued, &privacy)
    };
    let call = Reissue { ticket, proof };
    Ok(call_changing(&section, call, answer_to.0, &shared.overload, render).await)
}

/// The buyer's proof for a reissue: the engine cannot read the email, so the email is
/// compared here, in the opened buyer data of the ticket's order, and the engine is
/// told which sealed blob it was found in (it checks the blob is still the order's, in
/// the turn that reissues). A wrong order and a wrong email give the same proof, one
/// that proves nothing, after the same work: nothing to probe.
async fn buyer_proof(
    shared: &Shared,
    section: &SectionHandle,
    ticket: TicketId,
    order: &str,
    email: &str,
) -> ApiResult<ReissueProof> {
    let claimed = order.parse::<OrderId>().ok();
    let read = ReadTicket { ticket, viewer: Viewer::Admin };
    let found = call(section, read, &shared.overload).await?;
    let email_found_in = found.and_then(|order| {
        let matches = match shared.privacy.show(&order.buyer) {
            Shown::Readable(data) => privacy::email_matches(&data, email),
            Shown::Erased | Shown::Unreadable => false,
        };
        (matches && claimed == Some(order.id)).then(|| order.buyer.sealed.clone())
    });
    Ok(ReissueProof::Buyer { order: claimed, email_found_in })
}

/// The answer to a reissue: the ticket with its new code, or why not. Also the answer
/// stored for its `Idempotency-Key`, in the same WAL batch as the reissue.
fn reissue_answer(
    served: &Arc<ServedEvent>,
    index: usize,
    ticket: TicketId,
    id: &str,
    reissued: &Result<(Order, u16), TicketError>,
    privacy: &Privacy,
) -> Rendered<TicketResponse> {
    let (order, _) = reissued.as_ref().map_err(|error| match error {
        TicketError::NotFound => ticket_not_found(id),
        TicketError::ProofMissing => {
            ApiError::invalid("missing_proof", "give the ticket's `order` and the buyer's `email`")
        }
        TicketError::Cancelled => ApiError::conflict("order_cancelled", error.to_string()),
        TicketError::AlreadyAdmitted => ApiError::conflict("ticket_used", error.to_string()),
        TicketError::VersionsExhausted => ApiError::conflict("reissue_limit", error.to_string()),
    })?;
    let located = Located { ticket, served: served.clone(), index, order: order.clone() };
    Ok((StatusCode::OK, TicketResponse { ticket: detail(&located, privacy)? }))
}
