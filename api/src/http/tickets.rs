//! Tickets and gates: a ticket's data and signed code, its QR code, barcode and
//! printable page, reissue; scans at gates (one at a time, or uploaded in batches by
//! gates that worked offline), the gate bundle that lets a gate work offline, and the
//! audit log.
//!
//! A code is signed with the event's Ed25519 key (kept in the store, never served):
//! the gate bundle gives gates the public key, so they can check codes without the
//! network. The server checks every code's signature too before asking the section
//! actor, which admits a ticket exactly once (its scan is one WAL record, durable
//! before the answer).

use std::collections::HashSet;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use hakken_engine::actor::{LookupOrder, Reissue, Scan};
use hakken_engine::audit;
use hakken_engine::clock::Millis;
use hakken_engine::event::format_instant;
use hakken_engine::ids::{OrderId, TicketId};
use hakken_engine::inventory::{Order, OrderState, ScanOutcome, TicketError};
use hakken_engine::ticket_code::{self, Place, TicketClaim};
use hakken_engine::venue::SectionKind;
use hakken_engine::wal::{ActorRecord, AuditRecord};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use utoipa::{IntoParams, ToSchema};

use crate::http::app::{call, App, EventView, Shared};
use crate::http::auth::{constant_time_eq, is_admin, require_admin, require_gate};
use crate::http::error::{ApiError, ApiResult, ErrorBody, Json, Path, Query};
use crate::http::render::{self, TicketPage};
use crate::http::views::{category_id, CustomerQuery};

/// Longest code, gate name and scan id accepted.
const CODE_BYTES_MAX: usize = 512;
const GATE_BYTES_MAX: usize = 64;
const SCAN_ID_BYTES_MAX: usize = 128;
/// Scans in one offline upload (the body limit bounds it too).
pub const SCAN_BATCH_MAX: usize = 64;
/// Audit entries per page at most, and entries looked at per request at most (the
/// log holds every event's entries; a filter may skip many).
const AUDIT_PAGE_MAX: usize = 500;
const AUDIT_SCAN_MAX: usize = 100_000;
/// Revocations one gate bundle carries at most, and audit entries it looks at at most
/// (only reissues and refunds of the event count); a gate asks again from its cursor.
const BUNDLE_REVOCATIONS_MAX: usize = 50_000;
const BUNDLE_SCAN_MAX: usize = 1_000_000;
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

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScanRequest {
    /// What the scanner read: a QR code (`HK1.`...) or a printed barcode.
    pub code: String,
    /// Which gate scanned, e.g. `north-3`.
    pub gate: String,
    /// The gate's id for this scan; a retry with the same id gets the same answer.
    #[serde(default)]
    pub scan_id: Option<String>,
    /// The event this gate admits to; a ticket of another event is `wrong_event`.
    #[serde(default)]
    pub event: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ScanResponse {
    /// `admitted`, `already_admitted`, `invalid`, `revoked`, `cancelled`, `wrong_event`
    /// or `not_yet_valid`.
    pub result: &'static str,
    /// The ticket, when the code was genuine.
    pub ticket: Option<ScannedTicket>,
    /// When and where the ticket was first let in (admitted and already_admitted).
    pub first_admitted_at: Option<String>,
    pub gate: Option<String>,
}

#[derive(Clone, Serialize, ToSchema)]
pub struct ScannedTicket {
    pub id: String,
    pub event: String,
    pub section: String,
    pub seat: Option<String>,
    pub category: String,
    pub version: u16,
    pub holder: String,
}

/// Scans a gate made while offline, uploaded when it is back.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScanBatchRequest {
    pub scans: Vec<OfflineScan>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OfflineScan {
    pub code: String,
    pub gate: String,
    pub scan_id: String,
    /// When the gate scanned it (RFC 3339); the admission keeps this time.
    #[schema(format = DateTime, example = "2027-07-10T18:05:00+02:00")]
    pub scanned_at: String,
    #[serde(default)]
    pub event: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ScanBatchResponse {
    /// One per uploaded scan, in order.
    pub results: Vec<ScanResponse>,
    /// Tickets the upload's scans let in that another scan had let in first: the same
    /// ticket used at two gates. Reported, never hidden.
    pub conflicts: Vec<ScanConflict>,
}

#[derive(Serialize, ToSchema)]
pub struct ScanConflict {
    pub ticket: String,
    pub scan_id: String,
    pub gate: String,
    pub scanned_at: String,
    pub first_gate: String,
    pub first_admitted_at: String,
}

/// What a gate needs to check codes without the network.
#[derive(Serialize, ToSchema)]
pub struct GateBundle {
    pub event: String,
    /// Verifying keys of the event's codes (`ed25519:` + base64url).
    pub public_keys: Vec<String>,
    /// Scans before this are `not_yet_valid`.
    pub doors_open_at: String,
    /// Tickets whose codes no longer admit: older versions of reissued tickets and
    /// every ticket of cancelled orders.
    pub revoked: Vec<Revocation>,
    /// Ask again with `?since=` this to get only what changed.
    pub cursor: u64,
    /// False when more revocations wait beyond `cursor`.
    pub complete: bool,
}

#[derive(Serialize, ToSchema)]
pub struct Revocation {
    pub order: String,
    /// The ticket, or null for every ticket of the order.
    pub ticket: Option<String>,
    /// `reissued` (only `valid_version` admits) or `cancelled` (nothing does).
    pub reason: &'static str,
    pub valid_version: Option<u16>,
}

#[derive(Deserialize, IntoParams)]
pub struct SinceQuery {
    /// A bundle's `cursor`: only revocations after it.
    pub since: Option<u64>,
}

#[derive(Deserialize, IntoParams)]
pub struct AuditQuery {
    /// Entries from this sequence number on (a page's `next`).
    pub since: Option<u64>,
    /// Only entries about this ticket (or its order's refund).
    #[param(pattern = "^t[0-9A-Fa-f]{1,8}-[0-9A-Fa-f]{1,8}-[0-9]{1,4}$", example = "t3-7-0")]
    pub ticket: Option<String>,
    /// Only entries about this order.
    #[param(pattern = "^o[0-9A-Fa-f]{1,8}-[0-9A-Fa-f]{1,8}$", example = "o3-7")]
    pub order: Option<String>,
    /// Entries per page, 1-500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub struct AuditPage {
    pub entries: Vec<AuditEntryView>,
    /// `since` of the next page; null at the end of the log.
    pub next: Option<u64>,
}

#[derive(Serialize, ToSchema)]
pub struct AuditEntryView {
    pub seq: u64,
    pub at: String,
    /// `system`, `admin`, `customer:<id>` or `gate:<name>`.
    pub actor: String,
    pub action: String,
    pub hold: Option<String>,
    pub order: Option<String>,
    pub ticket: Option<String>,
    pub outcome: String,
    pub detail: String,
    /// SHA-256 of the entry, chained to the previous one (hex).
    pub hash: String,
}

/// A ticket, its order, event and section, after checking who asks.
struct Located {
    ticket: TicketId,
    view: Arc<EventView>,
    index: usize,
    order: Order,
}

fn ticket_not_found(id: &str) -> ApiError {
    ApiError::not_found("ticket_not_found", format!("no ticket {id:?}"))
}

/// Finds ticket `id`; only the order's customer (`?customer=`) or an admin may see it
/// (ids are guessable; a code is a bearer credential).
async fn locate(shared: &Shared, id: &str, query: &CustomerQuery, headers: &HeaderMap) -> ApiResult<Located> {
    let app = shared.app()?;
    let admin = is_admin(shared, headers);
    if !admin && query.customer.is_none() {
        return Err(ApiError::invalid("missing_customer", "name the customer: `?customer=...`"));
    }
    let ticket: TicketId = id.parse().map_err(|_| ticket_not_found(id))?;
    let catalogue = app.catalogue();
    let (view, index) = catalogue.locate(ticket.order.section).ok_or_else(|| ticket_not_found(id))?;
    let order = call(&view.sections[index], LookupOrder { order: ticket.order }, shared.http.retry_after_s)
        .await?
        .ok_or_else(|| ticket_not_found(id))?;
    if u32::from(ticket.index) >= order.units.count() {
        return Err(ticket_not_found(id));
    }
    if !admin && query.customer.as_deref() != Some(&*order.customer.0) {
        return Err(ticket_not_found(id));
    }
    Ok(Located { ticket, view: view.clone(), index, order })
}

/// Seat id (reserved) or none (GA), and the category, of ticket `index` of `order`.
fn place_of(view: &EventView, section_index: usize, order: &Order, index: u16) -> (Option<String>, String) {
    let section = &view.venue.sections[section_index];
    match (&section.kind, &order.units) {
        (SectionKind::Reserved(map), hakken_engine::inventory::Units::Seats(seats)) => {
            let seat = seats[usize::from(index)];
            (Some(map.seat_id(&section.id, seat).0), category_id(&view.venue, map.seats[seat as usize].category))
        }
        (SectionKind::GeneralAdmission { category, .. }, _) => (None, category_id(&view.venue, *category)),
        _ => (None, String::new()),
    }
}

fn claim_of(view: &EventView, section_index: usize, order: &Order, index: u16, version: u16) -> TicketClaim {
    let section = &view.venue.sections[section_index];
    let place = match place_of(view, section_index, order, index).0 {
        Some(seat) => Place::Seat(seat),
        None => Place::GeneralAdmission(section.id.clone()),
    };
    TicketClaim {
        event: view.event.id.clone(),
        section_key: order.id.section.0,
        order: order.id.number,
        index,
        version,
        place,
    }
}

/// The printed barcode's text: the ticket, its version and a tag cut from the code's
/// signature, so a barcode cannot be made up from a guessed ticket id. Checked online.
fn barcode_text(ticket: TicketId, version: u16, code: &str) -> String {
    let tag: String = code.chars().rev().take(BARCODE_TAG_CHARS).collect();
    format!("{ticket}.{version}.{tag}")
}

/// Characters of the barcode's tag: 12 base64url characters, 72 bits.
const BARCODE_TAG_CHARS: usize = 12;

fn detail(located: &Located) -> ApiResult<TicketDetail> {
    let Located { ticket, view, index, order } = located;
    let state = order.ticket(ticket.index);
    let (seat, category) = place_of(view, *index, order, ticket.index);
    let code = view
        .signing
        .sign(&claim_of(view, *index, order, ticket.index, state.version))
        .map_err(|error| ApiError::invalid("unsignable_ticket", error.to_string()))?;
    Ok(TicketDetail {
        id: ticket.to_string(),
        event: view.event.id.clone(),
        order: order.id.to_string(),
        section: view.venue.sections[*index].id.clone(),
        seat,
        category,
        state: match (&order.state, &state.admitted) {
            (OrderState::Cancelled, _) => "cancelled",
            (OrderState::Confirmed, Some(_)) => "checked_in",
            (OrderState::Confirmed, None) => "valid",
        },
        version: state.version,
        holder: order.buyer.name.clone(),
        barcode: barcode_text(*ticket, state.version, &code),
        code,
        admitted_at: state.admitted.as_ref().map(|admission| format_instant(Millis(admission.at_ms))),
        admitted_gate: state.admitted.as_ref().map(|admission| admission.gate.clone()),
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
    Ok(axum::Json(TicketResponse { ticket: detail(&located)? }))
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
    let ticket = detail(&locate(&shared, &id, &query, &headers).await?)?;
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
    let ticket = detail(&locate(&shared, &id, &query, &headers).await?)?;
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
    let ticket = detail(&locate(&shared, &id, &query, &headers).await?)?;
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
    let ticket = detail(&located)?;
    let view = &located.view;
    let order = &located.order;
    let place = match &ticket.seat {
        Some(seat) => format!("Section {} · seat {seat}", ticket.section),
        None => format!("General admission — {}", ticket.section),
    };
    let price = order.total_minor / u64::from(order.units.count().max(1));
    let page = TicketPage {
        event_name: view.event.name.clone(),
        starts_at: format_instant(view.event.starts_at),
        venue: view.venue.name.clone(),
        place,
        ticket_type: ticket.category.clone(),
        price: format!("{}.{:02} {}", price / 100, price % 100, view.event.currency),
        holder: ticket.holder.clone(),
        ticket_id: format!("{} (version {})", ticket.id, ticket.version),
        state: ticket.state.to_string(),
        code: ticket.code.clone(),
        barcode_text: ticket.barcode.clone(),
    };
    Ok(image("text/html; charset=utf-8", render::ticket_html(&page).into_bytes()))
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
    Json(request): Json<ReissueRequest>,
) -> ApiResult<axum::Json<TicketResponse>> {
    let app = shared.app()?;
    let admin = is_admin(&shared, &headers);
    let ticket: TicketId = id.parse().map_err(|_| ticket_not_found(&id))?;
    let catalogue = app.catalogue();
    let (view, index) = catalogue.locate(ticket.order.section).ok_or_else(|| ticket_not_found(&id))?;
    let retry = shared.http.retry_after_s;
    let order = call(&view.sections[index], LookupOrder { order: ticket.order }, retry)
        .await?
        .ok_or_else(|| ticket_not_found(&id))?;
    let by = if admin {
        ActorRecord::Admin
    } else {
        let (Some(order_id), Some(email)) = (&request.order, &request.email) else {
            return Err(ApiError::invalid("missing_proof", "give the ticket's `order` and the buyer's `email`"));
        };
        // The same answer for a wrong order and a wrong email: nothing to probe.
        let proven = order_id.parse::<OrderId>().ok() == Some(order.id)
            && email.trim().eq_ignore_ascii_case(order.buyer.email.trim());
        if !proven {
            return Err(ticket_not_found(&id));
        }
        ActorRecord::Customer(order.customer.0.to_string())
    };
    let (order, _) = call(&view.sections[index], Reissue { order: ticket.order, index: ticket.index, by }, retry)
        .await?
        .map_err(|error| match error {
            TicketError::NotFound => ticket_not_found(&id),
            TicketError::Cancelled => ApiError::conflict("order_cancelled", error.to_string()),
            TicketError::AlreadyAdmitted => ApiError::conflict("ticket_used", error.to_string()),
            TicketError::VersionsExhausted => ApiError::conflict("reissue_limit", error.to_string()),
        })?;
    let located = Located { ticket, view: view.clone(), index, order };
    Ok(axum::Json(TicketResponse { ticket: detail(&located)? }))
}

fn check_text(field: &str, text: &str, max: usize) -> ApiResult<()> {
    if text.is_empty() || text.len() > max || !text.bytes().all(|byte| byte.is_ascii_graphic()) {
        return Err(ApiError::invalid("invalid_scan", format!("`{field}` must be 1-{max} visible ASCII characters")));
    }
    Ok(())
}

/// One scan, checked and decided. `at` is when it was scanned.
struct ScanInput<'a> {
    code: &'a str,
    gate: &'a str,
    scan_id: &'a str,
    event: Option<&'a str>,
    at: Millis,
    /// The time to record, for an offline scan (`None`: the section's clock).
    scanned_at: Option<Millis>,
}

/// The outcome, and for an offline upload, the admission it found.
struct Scanned {
    response: ScanResponse,
    first: Option<(String, Millis)>,
}

fn refused(result: &'static str) -> Scanned {
    Scanned { response: ScanResponse { result, ticket: None, first_admitted_at: None, gate: None }, first: None }
}

/// Writes an audit entry for a scan no section saw, and waits until it is durable.
async fn audit_refusal(app: &App, input: &ScanInput<'_>, event: &str, result: &'static str) -> ApiResult<()> {
    let detail = format!("scan {}, code of {} bytes", input.scan_id, input.code.len());
    let entry =
        audit::event_entry(event, input.at.0, &ActorRecord::Gate(input.gate.to_string()), "scan", result, detail);
    append_audit(app, vec![entry]).await
}

/// Appends audit entries and waits until they are durable.
pub async fn append_audit(app: &App, entries: Vec<AuditRecord>) -> ApiResult<()> {
    let (sender, receiver) = oneshot::channel();
    app.store.wal().audit(
        entries,
        Box::new(move |result| {
            let _ = sender.send(result);
        }),
    );
    match receiver.await {
        Ok(Ok(())) => Ok(()),
        _ => Err(ApiError::unavailable("storage_unavailable", "the audit log could not be written", 5)),
    }
}

async fn scan_one(shared: &Shared, app: &App, input: ScanInput<'_>) -> ApiResult<Scanned> {
    let claimed_event = input.event.unwrap_or_default();
    if input.code.len() > CODE_BYTES_MAX {
        audit_refusal(app, &input, claimed_event, "invalid").await?;
        return Ok(refused("invalid"));
    }
    if let Some(barcode) = parse_barcode(input.code) {
        return scan_barcode(shared, app, input, barcode).await;
    }
    let catalogue = app.catalogue();
    let claim = ticket_code::read_claim(input.code).ok();
    let view = claim.as_ref().and_then(|claim| catalogue.events.get(&claim.event));
    let (Some(claim), Some(view)) = (claim, view) else {
        audit_refusal(app, &input, claimed_event, "invalid").await?;
        return Ok(refused("invalid"));
    };
    // The server holds the signing key, and Ed25519 signatures are deterministic: the
    // code is genuine iff it is exactly the code the server would issue for its claim.
    // Signing costs about half of verifying (fixed-base multiplication), which is most
    // of a scan's CPU; gates without the key verify with the public key instead.
    let genuine =
        view.signing.sign(&claim).is_ok_and(|issued| constant_time_eq(issued.as_bytes(), input.code.as_bytes()));
    if !genuine {
        audit_refusal(app, &input, &claim.event, "invalid").await?;
        return Ok(refused("invalid"));
    }
    let Some((located_view, index)) = catalogue.locate(hakken_engine::ids::SectionKey(claim.section_key)) else {
        audit_refusal(app, &input, &claim.event, "invalid").await?;
        return Ok(refused("invalid"));
    };
    if !Arc::ptr_eq(located_view, view) {
        audit_refusal(app, &input, &claim.event, "invalid").await?;
        return Ok(refused("invalid"));
    }
    let scanned = ScannedRef { order: claim.order, index: claim.index, version: claim.version };
    decide(shared, app, input, (view.clone(), index), scanned).await
}

/// The ticket a genuine code or barcode names.
struct ScannedRef {
    order: u32,
    index: u16,
    version: u16,
}

/// Asks the section (`index` of `view`) to admit the ticket, after the event and door
/// checks.
async fn decide(
    shared: &Shared,
    app: &App,
    input: ScanInput<'_>,
    (view, index): (Arc<EventView>, usize),
    scanned: ScannedRef,
) -> ApiResult<Scanned> {
    let ScannedRef { order, index: ticket_index, version } = scanned;
    if input.event.is_some_and(|event| event != view.event.id) {
        audit_refusal(app, &input, &view.event.id, "wrong_event").await?;
        return Ok(refused("wrong_event"));
    }
    let doors_open_at = doors_open_at(shared, &view);
    if input.scanned_at.unwrap_or(input.at) < doors_open_at {
        audit_refusal(app, &input, &view.event.id, "not_yet_valid").await?;
        return Ok(refused("not_yet_valid"));
    }
    let scan = Scan {
        order,
        index: ticket_index,
        version,
        gate: input.gate.to_string(),
        scan_id: input.scan_id.to_string(),
        scanned_at_ms: input.scanned_at.map(|at| at.0),
    };
    let (outcome, order) = call(&view.sections[index], scan, shared.http.retry_after_s).await?;
    let ticket = order.as_ref().map(|order| {
        let (seat, category) = place_of(&view, index, order, ticket_index);
        ScannedTicket {
            id: TicketId { order: order.id, index: ticket_index }.to_string(),
            event: view.event.id.clone(),
            section: view.venue.sections[index].id.clone(),
            seat,
            category,
            version,
            holder: order.buyer.name.clone(),
        }
    });
    let (result, admission) = match outcome {
        ScanOutcome::Admitted(admission) => ("admitted", Some(admission)),
        ScanOutcome::AlreadyAdmitted(admission) => ("already_admitted", Some(admission)),
        ScanOutcome::Revoked { .. } => ("revoked", None),
        ScanOutcome::Cancelled => ("cancelled", None),
        ScanOutcome::Invalid => ("invalid", None),
    };
    let ticket = if result == "invalid" { None } else { ticket };
    Ok(Scanned {
        first: admission.as_ref().map(|admission| (admission.gate.clone(), Millis(admission.at_ms))),
        response: ScanResponse {
            result,
            ticket,
            first_admitted_at: admission.as_ref().map(|admission| format_instant(Millis(admission.at_ms))),
            gate: admission.map(|admission| admission.gate),
        },
    })
}

/// When the doors open: scans before are `not_yet_valid`.
fn doors_open_at(shared: &Shared, view: &EventView) -> Millis {
    Millis(view.event.starts_at.0.saturating_sub(shared.gates.doors_open_before_start_s.saturating_mul(1000)))
}

/// A printed barcode: `t{..}-{..}-{index}.{version}.{tag}`.
struct Barcode {
    ticket: TicketId,
    version: u16,
    tag: String,
}

fn parse_barcode(text: &str) -> Option<Barcode> {
    let mut parts = text.split('.');
    let (ticket, version, tag) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || tag.len() != BARCODE_TAG_CHARS || version.len() > 5 {
        return None;
    }
    Some(Barcode { ticket: ticket.parse().ok()?, version: version.parse().ok()?, tag: tag.to_string() })
}

/// A barcode carries no signature of its own: its tag must match the code the server
/// would issue for that ticket and version.
async fn scan_barcode(shared: &Shared, app: &App, input: ScanInput<'_>, barcode: Barcode) -> ApiResult<Scanned> {
    let catalogue = app.catalogue();
    let claimed_event = input.event.unwrap_or_default().to_string();
    let Some((view, index)) = catalogue.locate(barcode.ticket.order.section) else {
        audit_refusal(app, &input, &claimed_event, "invalid").await?;
        return Ok(refused("invalid"));
    };
    let view = view.clone();
    let order = call(&view.sections[index], LookupOrder { order: barcode.ticket.order }, shared.http.retry_after_s)
        .await?
        .filter(|order| u32::from(barcode.ticket.index) < order.units.count());
    let genuine = order.as_ref().is_some_and(|order| {
        let claim = claim_of(&view, index, order, barcode.ticket.index, barcode.version);
        view.signing
            .sign(&claim)
            .is_ok_and(|code| barcode_text(barcode.ticket, barcode.version, &code).ends_with(&barcode.tag))
    });
    if !genuine {
        audit_refusal(app, &input, &view.event.id, "invalid").await?;
        return Ok(refused("invalid"));
    }
    let ticket = barcode.ticket;
    let scanned = ScannedRef { order: ticket.order.number, index: ticket.index, version: barcode.version };
    decide(shared, app, input, (view, index), scanned).await
}

/// Scan a ticket at a gate: admitted exactly once, whatever the concurrency.
#[utoipa::path(post, path = "/v1/scan", tag = "gates",
    params(("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key get the same answer")),
    request_body = ScanRequest,
    security(("gate_token" = [])),
    responses((status = 200, body = ScanResponse), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn scan(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Json(request): Json<ScanRequest>,
) -> ApiResult<axum::Json<ScanResponse>> {
    require_gate(&shared, &headers)?;
    let app = shared.app()?;
    check_text("gate", &request.gate, GATE_BYTES_MAX)?;
    let generated;
    let scan_id = match &request.scan_id {
        Some(scan_id) => {
            check_text("scan_id", scan_id, SCAN_ID_BYTES_MAX)?;
            scan_id.as_str()
        }
        None => {
            generated = format!("auto-{:016x}", rand::random::<u64>());
            &generated
        }
    };
    let input = ScanInput {
        code: request.code.trim(),
        gate: &request.gate,
        scan_id,
        event: request.event.as_deref(),
        at: app.now(),
        scanned_at: None,
    };
    Ok(axum::Json(scan_one(&shared, app, input).await?.response))
}

/// Upload scans a gate made offline. Each is decided as if made then; a ticket that
/// another scan let in first is reported in `conflicts`.
#[utoipa::path(post, path = "/v1/scan/batch", tag = "gates",
    params(("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key get the same answer")),
    request_body = ScanBatchRequest,
    security(("gate_token" = [])),
    responses((status = 200, body = ScanBatchResponse), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn scan_batch(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Json(request): Json<ScanBatchRequest>,
) -> ApiResult<axum::Json<ScanBatchResponse>> {
    require_gate(&shared, &headers)?;
    let app = shared.app()?;
    if request.scans.is_empty() || request.scans.len() > SCAN_BATCH_MAX {
        return Err(ApiError::invalid("invalid_batch", format!("send 1-{SCAN_BATCH_MAX} scans per batch")));
    }
    let mut checked = Vec::with_capacity(request.scans.len());
    for (position, scan) in request.scans.iter().enumerate() {
        let field = |name: &str| format!("scans[{position}].{name}");
        check_text(&field("gate"), &scan.gate, GATE_BYTES_MAX)?;
        check_text(&field("scan_id"), &scan.scan_id, SCAN_ID_BYTES_MAX)?;
        let scanned_at = hakken_engine::event::parse_instant(&scan.scanned_at)
            .map_err(|problem| ApiError::invalid("invalid_time", format!("`{}`: {problem}", field("scanned_at"))))?;
        checked.push(scanned_at);
    }
    let mut results = Vec::with_capacity(request.scans.len());
    let mut conflicts = Vec::new();
    for (scan, scanned_at) in request.scans.iter().zip(checked) {
        let input = ScanInput {
            code: scan.code.trim(),
            gate: &scan.gate,
            scan_id: &scan.scan_id,
            event: scan.event.as_deref(),
            at: app.now(),
            scanned_at: Some(scanned_at),
        };
        let scanned = scan_one(&shared, app, input).await?;
        if scanned.response.result == "already_admitted" {
            if let (Some((first_gate, first_at)), Some(ticket)) = (&scanned.first, &scanned.response.ticket) {
                conflicts.push(ScanConflict {
                    ticket: ticket.id.clone(),
                    scan_id: scan.scan_id.clone(),
                    gate: scan.gate.clone(),
                    scanned_at: format_instant(scanned_at),
                    first_gate: first_gate.clone(),
                    first_admitted_at: format_instant(*first_at),
                });
            }
        }
        results.push(scanned.response);
    }
    Ok(axum::Json(ScanBatchResponse { results, conflicts }))
}

/// What a gate needs to work offline: the event's public key, the revoked tickets,
/// and a cursor to ask for changes since.
#[utoipa::path(get, path = "/v1/events/{event}/gate-bundle", tag = "gates",
    params(("event" = String, Path, description = "Event id"), SinceQuery),
    security(("gate_token" = [])),
    responses((status = 200, body = GateBundle), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn gate_bundle(
    State(shared): State<Arc<Shared>>,
    Path(event): Path<String>,
    Query(query): Query<SinceQuery>,
    headers: HeaderMap,
) -> ApiResult<axum::Json<GateBundle>> {
    require_gate(&shared, &headers)?;
    let app = shared.app()?.clone();
    let catalogue = app.catalogue();
    let view = catalogue.event(&event)?.clone();
    let keys: HashSet<u32> = view.sections.iter().map(|section| section.key.0).collect();
    let since = query.since.unwrap_or(0);
    // Revocations are the reissue and cancel entries of the audit log: reading it
    // from `since` gives exactly what changed (from 0: everything).
    let reader = app.clone();
    let (entries, next) = tokio::task::spawn_blocking(move || {
        reader.store.audit_page(since.saturating_add(1), BUNDLE_REVOCATIONS_MAX, BUNDLE_SCAN_MAX, |entry| {
            (entry.action == "reissue" || entry.action == "cancel")
                && entry.section.is_some_and(|key| keys.contains(&key))
        })
    })
    .await
    .map_err(|_| ApiError::unavailable("internal", "reading the audit log failed", 1))?
    .map_err(storage_error)?;
    let cursor = match next {
        Some(next) => next - 1,
        None => {
            entries.last().map_or(since, |last| last.entry.seq).max(app.store.audit_head_seq().map_err(storage_error)?)
        }
    };
    let revoked = entries
        .iter()
        .filter_map(|stored| {
            let entry = &stored.entry;
            let order = OrderId { section: hakken_engine::ids::SectionKey(entry.section?), number: entry.order? };
            Some(match entry.action.as_str() {
                "reissue" => Revocation {
                    order: order.to_string(),
                    ticket: entry.ticket.map(|index| TicketId { order, index }.to_string()),
                    reason: "reissued",
                    valid_version: audit::reissued_version(entry),
                },
                _ => Revocation { order: order.to_string(), ticket: None, reason: "cancelled", valid_version: None },
            })
        })
        .collect();
    Ok(axum::Json(GateBundle {
        event: view.event.id.clone(),
        public_keys: vec![view.public_key.to_text()],
        doors_open_at: format_instant(doors_open_at(&shared, &view)),
        revoked,
        cursor,
        complete: next.is_none(),
    }))
}

fn storage_error(error: hakken_engine::store::StoreError) -> ApiError {
    tracing::error!(%error, "reading the store failed");
    ApiError::unavailable("storage_unavailable", "the store could not be read", 5)
}

/// The event's audit log (admin): every change and scan, oldest first, in pages.
#[utoipa::path(get, path = "/v1/events/{event}/audit", tag = "admin",
    params(("event" = String, Path, description = "Event id"), AuditQuery),
    security(("admin_token" = [])),
    responses((status = 200, body = AuditPage), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn audit_log(
    State(shared): State<Arc<Shared>>,
    Path(event): Path<String>,
    Query(query): Query<AuditQuery>,
    headers: HeaderMap,
) -> ApiResult<axum::Json<AuditPage>> {
    require_admin(&shared, &headers)?;
    let app = shared.app()?.clone();
    let catalogue = app.catalogue();
    let view = catalogue.event(&event)?.clone();
    let limit = query.limit.unwrap_or(100);
    if !(1..=AUDIT_PAGE_MAX).contains(&limit) {
        return Err(ApiError::invalid("invalid_limit", format!("`limit` must be 1-{AUDIT_PAGE_MAX}")));
    }
    let ticket = match &query.ticket {
        Some(id) => Some(
            id.parse::<TicketId>()
                .map_err(|_| ApiError::invalid("invalid_ticket", format!("{id:?} is not a ticket id")))?,
        ),
        None => None,
    };
    let order = match &query.order {
        Some(id) => Some(
            id.parse::<OrderId>()
                .map_err(|_| ApiError::invalid("invalid_order", format!("{id:?} is not an order id")))?,
        ),
        None => None,
    };
    let keys: HashSet<u32> = view.sections.iter().map(|section| section.key.0).collect();
    let event_id = view.event.id.clone();
    let since = query.since.unwrap_or(1);
    let (entries, next) = tokio::task::spawn_blocking(move || {
        app.store.audit_page(since, limit, AUDIT_SCAN_MAX, |entry| {
            let in_event = match entry.section {
                Some(key) => keys.contains(&key),
                None => entry.event == event_id,
            };
            let order_matches =
                |wanted: OrderId| entry.section == Some(wanted.section.0) && entry.order == Some(wanted.number);
            in_event
                && ticket.is_none_or(|ticket| {
                    order_matches(ticket.order) && entry.ticket.is_none_or(|index| index == ticket.index)
                })
                && order.is_none_or(order_matches)
        })
    })
    .await
    .map_err(|_| ApiError::unavailable("internal", "reading the audit log failed", 1))?
    .map_err(storage_error)?;
    let entries = entries
        .into_iter()
        .map(|stored| {
            let entry = stored.entry;
            let section = entry.section.map(hakken_engine::ids::SectionKey);
            AuditEntryView {
                seq: entry.seq,
                at: format_instant(Millis(entry.at_ms)),
                actor: match &entry.actor {
                    ActorRecord::System => "system".to_string(),
                    ActorRecord::Admin => "admin".to_string(),
                    ActorRecord::Customer(customer) => format!("customer:{customer}"),
                    ActorRecord::Gate(gate) => format!("gate:{gate}"),
                },
                action: entry.action,
                hold: section
                    .zip(entry.hold)
                    .map(|(section, number)| hakken_engine::ids::HoldId { section, number }.to_string()),
                order: section.zip(entry.order).map(|(section, number)| OrderId { section, number }.to_string()),
                ticket: section.zip(entry.order).zip(entry.ticket).map(|((section, number), index)| {
                    TicketId { order: OrderId { section, number }, index }.to_string()
                }),
                outcome: entry.outcome,
                detail: entry.detail,
                hash: audit::hex(&stored.hash),
            }
        })
        .collect();
    Ok(axum::Json(AuditPage { entries, next }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn barcodes_parse_strictly() {
        let parsed = parse_barcode("t3-1f-2.1.abcdefghijkl").expect("a barcode");
        assert_eq!(parsed.ticket.to_string(), "t3-1f-2");
        assert_eq!((parsed.version, parsed.tag.as_str()), (1, "abcdefghijkl"));
        for bad in ["t3-1f-2.1", "t3-1f-2.1.short", "t3-1f-2.x.abcdefghijkl", "HK1.abc", "t3-1f-2.1.abcdefghijkl.x"] {
            assert!(parse_barcode(bad).is_none(), "{bad}");
        }
    }
}
