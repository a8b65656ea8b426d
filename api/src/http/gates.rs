//! Gate handlers: scans (one at a time, or uploaded in batches by gates that worked
//! offline) and the gate bundle that lets a gate work offline.
//!
//! A scan is decided by the engine in two steps: [`gate::check`] refuses what needs
//! no ticket state (forged codes and barcodes, another event, doors not open), then
//! the section actor that sold the ticket admits it exactly once (its scan is one WAL
//! record, durable before the answer). A refusal of the first step is audited here, in
//! one place; the section audits its own.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use hakken_engine::audit;
use hakken_engine::clock::Millis;
use hakken_engine::event::format_instant;
use hakken_engine::ids::{SectionKey, TicketId};
use hakken_engine::inventory::Order;
use hakken_engine::tickets::calls::{Revocations, Scan, SectionRevocations};
use hakken_engine::tickets::gate::{self, GateEvent, GateEvents, Refusal, ScanContext, ScanOutcome};
use hakken_engine::tickets::{self, Place};
use hakken_engine::wal::{AdmissionRecord, PrincipalRecord};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::http::app::{call, App, Catalogue, ServedEvent, Shared};
use crate::http::audit::append_audit;
use crate::http::auth::require_gate;
use crate::http::error::{ApiError, ApiResult, ErrorBody, Json, Path, Query};
use crate::http::views::category_id;
use crate::privacy::Privacy;

/// Longest gate name and scan id accepted (codes: the engine's `CODE_TEXT_BYTES_MAX`).
const GATE_BYTES_MAX: usize = 64;
const SCAN_ID_BYTES_MAX: usize = 128;
/// Scans in one offline upload (the body limit bounds it too).
pub const SCAN_BATCH_MAX: usize = 64;
/// Revocations one gate bundle carries at most (and asks each section for at most); a
/// gate asks again from the bundle's cursor.
const BUNDLE_REVOCATIONS_MAX: usize = 50_000;

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
    /// or `not_yet_valid` (`ScanOutcome::as_str`).
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
    /// Ask again with `?since=` this to get only what changed: a time on the server's
    /// clock (ms since the Unix epoch); a revocation at it may come again.
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
    /// A bundle's `cursor`: only revocations at or after it.
    pub since: Option<u64>,
}

fn check_text(field: &str, text: &str, max: usize) -> ApiResult<()> {
    if text.is_empty() || text.len() > max || !text.bytes().all(|byte| byte.is_ascii_graphic()) {
        return Err(ApiError::invalid("invalid_scan", format!("`{field}` must be 1-{max} visible ASCII characters")));
    }
    Ok(())
}

/// One scan as the gate reported it.
struct ScanInput<'a> {
    code: &'a str,
    gate: &'a str,
    scan_id: &'a str,
    event: Option<&'a str>,
    at: Millis,
    /// The time to record, for an offline scan (`None`: the section's clock).
    scanned_at: Option<Millis>,
}

/// The answer, and the admission another scan made first if this one found the
/// ticket used (an offline upload reports it as a conflict).
struct Scanned {
    response: ScanResponse,
    admitted_before: Option<AdmissionRecord>,
}

/// The catalogue as the engine's gate checks see it.
struct GateCatalogue<'a> {
    catalogue: &'a Catalogue,
    doors_open_before_start_s: u64,
}

impl GateCatalogue<'_> {
    fn gate_event<'v>(&self, served: &'v ServedEvent) -> GateEvent<'v> {
        GateEvent {
            id: &served.event.id,
            key: &served.signing,
            doors_open_at: gate::doors_open_at(served.event.starts_at, self.doors_open_before_start_s),
        }
    }
}

impl GateEvents for GateCatalogue<'_> {
    fn by_id(&self, event: &str) -> Option<GateEvent<'_>> {
        self.catalogue.events.get(event).map(|served| self.gate_event(served))
    }

    fn by_section(&self, section: SectionKey) -> Option<GateEvent<'_>> {
        self.catalogue.locate(section).map(|(served, _)| self.gate_event(served))
    }
}

/// Writes the audit entry of a scan no section saw, and waits until it is durable.
async fn audit_refusal(app: &App, input: &ScanInput<'_>, refusal: &Refusal) -> ApiResult<()> {
    let detail = format!("scan {}, code of {} bytes", input.scan_id, input.code.len());
    let gate = PrincipalRecord::Gate(input.gate.to_string());
    let entry = audit::event_entry(&refusal.event, input.at.0, &gate, "scan", refusal.outcome.as_str(), detail);
    append_audit(app, vec![entry]).await
}

async fn scan_one(shared: &Shared, app: &App, input: ScanInput<'_>) -> ApiResult<Scanned> {
    let catalogue = app.catalogue();
    let events =
        GateCatalogue { catalogue: &catalogue, doors_open_before_start_s: shared.gates.doors_open_before_start_s };
    let context = ScanContext { gate_event: input.event, scanned_at: input.scanned_at.unwrap_or(input.at) };
    let ticket = match gate::check(input.code, context, &events) {
        Ok(ticket) => ticket,
        Err(refusal) => {
            audit_refusal(app, &input, &refusal).await?;
            return Ok(answer(refusal.outcome, None));
        }
    };
    let (served, index) = catalogue.locate(ticket.section).ok_or_else(|| {
        ApiError::unavailable("catalogue_changed", "the event changed during the scan; scan again", 1)
    })?;
    served.here()?;
    let scan =
        Scan { ticket, gate: input.gate.to_string(), scan_id: input.scan_id.to_string(), scanned_at: input.scanned_at };
    let (outcome, order) = call(&served.sections[index], scan, &shared.overload).await?;
    let scanned = order
        .filter(|_| outcome.names_ticket())
        .map(|order| scanned_ticket(served, index, &order, ticket.index, ticket.version, &shared.privacy));
    Ok(answer(outcome, scanned))
}

/// The ticket a genuine scan names, for the gate's display.
fn scanned_ticket(
    served: &ServedEvent,
    index: usize,
    order: &Order,
    ticket: u16,
    version: u16,
    privacy: &Privacy,
) -> ScannedTicket {
    let section = &served.venue.sections[index];
    let (seat, category) = match tickets::place(section, order, ticket) {
        Some((Place::Seat(seat), category)) => (Some(seat), category_id(&served.venue, category)),
        Some((Place::GeneralAdmission(_), category)) => (None, category_id(&served.venue, category)),
        None => (None, String::new()),
    };
    ScannedTicket {
        id: TicketId { order: order.id, index: ticket }.to_string(),
        event: served.event.id.clone(),
        section: section.id.clone(),
        seat,
        category,
        version,
        // Empty when the buyer was erased or cannot be read: the ticket still admits.
        holder: privacy.show(&order.buyer).name().to_string(),
    }
}

/// Scans answered, label `result` (`ScanOutcome::as_str`): `already_admitted` is a
/// ticket used twice, the gate's double check at work.
pub const GATE_SCANS_TOTAL: &str = "hakken_gate_scans_total";

fn answer(outcome: ScanOutcome, ticket: Option<ScannedTicket>) -> Scanned {
    metrics::counter!(GATE_SCANS_TOTAL, "result" => outcome.as_str()).increment(1);
    let admission = outcome.admission().cloned();
    Scanned {
        admitted_before: match &outcome {
            ScanOutcome::AlreadyAdmitted(admission) => Some(admission.clone()),
            _ => None,
        },
        response: ScanResponse {
            result: outcome.as_str(),
            ticket,
            first_admitted_at: admission.as_ref().map(|admission| format_instant(Millis(admission.at_ms))),
            gate: admission.map(|admission| admission.gate),
        },
    }
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
        if let (Some(first), Some(ticket)) = (&scanned.admitted_before, &scanned.response.ticket) {
            conflicts.push(ScanConflict {
                ticket: ticket.id.clone(),
                scan_id: scan.scan_id.clone(),
                gate: scan.gate.clone(),
                scanned_at: format_instant(scanned_at),
                first_gate: first.gate.clone(),
                first_admitted_at: format_instant(Millis(first.at_ms)),
            });
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
    responses((status = 200, body = GateBundle), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 503, description = "A section is busy; retry after the given seconds", body = ErrorBody)))]
pub async fn gate_bundle(
    State(shared): State<Arc<Shared>>,
    Path(event): Path<String>,
    Query(query): Query<SinceQuery>,
    headers: HeaderMap,
) -> ApiResult<axum::Json<GateBundle>> {
    require_gate(&shared, &headers)?;
    let app = shared.app()?;
    let catalogue = app.catalogue();
    let served = catalogue.event(&event)?.clone();
    let since = Millis(query.since.unwrap_or(0));
    // Each section answers from its own ticket state; none reads the store.
    let mut answers = Vec::with_capacity(served.sections.len());
    for section in &served.sections {
        let ask = Revocations { since, max: BUNDLE_REVOCATIONS_MAX };
        answers.push(call(section, ask, &shared.overload).await?);
    }
    let (revocations, cursor, complete) = merge_revocations(answers, since);
    let revoked = revocations
        .into_iter()
        .map(|revocation| Revocation {
            order: revocation.order.to_string(),
            ticket: revocation.ticket.map(|index| TicketId { order: revocation.order, index }.to_string()),
            reason: revocation.reason.as_str(),
            valid_version: revocation.reason.valid_version(),
        })
        .collect();
    Ok(axum::Json(GateBundle {
        event: served.event.id.clone(),
        public_keys: vec![served.public_key.to_text()],
        doors_open_at: format_instant(gate::doors_open_at(
            served.event.starts_at,
            shared.gates.doors_open_before_start_s,
        )),
        revoked,
        cursor: cursor.0,
        complete,
    }))
}

/// The sections' revocations as one list, oldest first, at most
/// [`BUNDLE_REVOCATIONS_MAX`]; the cursor to ask again from; whether nothing waits.
///
/// A cursor is a time, and `since` includes it: a revocation made after a section
/// answered is at or after the time it answered, so asking again from the earliest
/// answer misses nothing (a revocation at that very millisecond may come twice, which
/// a gate applies twice to no effect). When a section had more, or the list is full,
/// the cursor is the earliest time that is not complete, and the list stops before it.
fn merge_revocations(answers: Vec<SectionRevocations>, since: Millis) -> (Vec<tickets::Revocation>, Millis, bool) {
    let mut horizon: Option<Millis> = None;
    let mut answered_at: Option<Millis> = None;
    let mut revocations = Vec::new();
    for answer in answers {
        answered_at = Some(answered_at.map_or(answer.answered_at, |at| at.min(answer.answered_at)));
        if answer.truncated {
            let last = answer.revocations.last().map_or(since, |last| last.at);
            horizon = Some(horizon.map_or(last, |horizon| horizon.min(last)));
        }
        revocations.extend(answer.revocations);
    }
    revocations.sort_by_key(|revocation| (revocation.at, revocation.order, revocation.ticket));
    if let Some(first_left_out) = revocations.get(BUNDLE_REVOCATIONS_MAX) {
        horizon = Some(horizon.map_or(first_left_out.at, |horizon| horizon.min(first_left_out.at)));
    }
    match horizon {
        // More than a bundle's worth at one millisecond would stall a gate here; a
        // section makes far fewer revocations than that per millisecond.
        Some(horizon) => {
            revocations.retain(|revocation| revocation.at < horizon);
            (revocations, horizon, false)
        }
        None => (revocations, answered_at.map_or(since, |at| at.max(since)), true),
    }
}
