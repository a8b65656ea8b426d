//! The audit endpoint: an event's audit log, in pages, for admins; and how the API
//! appends entries of its own (admin changes, scans no section saw).

use std::collections::HashSet;
use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use hakken_engine::audit;
use hakken_engine::clock::Millis;
use hakken_engine::event::format_instant;
use hakken_engine::ids::{HoldId, HoldNumber, OrderId, OrderNumber, TicketId};
use hakken_engine::wal::{AuditRecord, AuditStored, PrincipalRecord};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use utoipa::{IntoParams, ToSchema};

use crate::http::app::{App, Shared};
use crate::http::auth::require_admin;
use crate::http::error::{ApiError, ApiResult, ErrorBody, Path, Query};

/// Audit entries per page at most, and entries looked at per request at most (the
/// log holds every event's entries; a filter may skip many).
const AUDIT_PAGE_MAX: usize = 500;
const AUDIT_SCAN_MAX: usize = 100_000;

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
    pub principal: String,
    pub action: String,
    pub hold: Option<String>,
    pub order: Option<String>,
    pub ticket: Option<String>,
    pub outcome: String,
    pub detail: String,
    /// SHA-256 of the entry, chained to the previous one (hex).
    pub hash: String,
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
    let served = catalogue.event(&event)?.clone();
    let limit = query.limit.unwrap_or(100);
    if !(1..=AUDIT_PAGE_MAX).contains(&limit) {
        return Err(ApiError::invalid("invalid_limit", format!("`limit` must be 1-{AUDIT_PAGE_MAX}")));
    }
    let ticket = parse_filter::<TicketId>(query.ticket.as_deref(), "invalid_ticket", "a ticket id")?;
    let order = parse_filter::<OrderId>(query.order.as_deref(), "invalid_order", "an order id")?;
    let keys: HashSet<u32> = served.sections.iter().map(|section| section.key.0).collect();
    let event_id = served.event.id.clone();
    let since = query.since.unwrap_or(1);
    let (entries, next) = tokio::task::spawn_blocking(move || {
        app.store.audit_page(since, limit, AUDIT_SCAN_MAX, |entry| {
            let in_event = match entry.section {
                Some(key) => keys.contains(&key),
                None => entry.event == event_id,
            };
            let order_matches =
                |wanted: OrderId| entry.section == Some(wanted.section.0) && entry.order == Some(wanted.number.0);
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
    let entries = entries.into_iter().map(entry_view).collect();
    Ok(axum::Json(AuditPage { entries, next }))
}

/// A stored entry as the audit endpoint shows it.
fn entry_view(stored: AuditStored) -> AuditEntryView {
    let entry = stored.entry;
    let section = entry.section.map(hakken_engine::ids::SectionKey);
    AuditEntryView {
        seq: entry.seq,
        at: format_instant(Millis(entry.at_ms)),
        principal: match &entry.principal {
            PrincipalRecord::System => "system".to_string(),
            PrincipalRecord::Admin => "admin".to_string(),
            PrincipalRecord::Customer(customer) => format!("customer:{customer}"),
            PrincipalRecord::Gate(gate) => format!("gate:{gate}"),
        },
        action: entry.action,
        hold: section
            .zip(entry.hold)
            .map(|(section, number)| HoldId { section, number: HoldNumber(number) }.to_string()),
        order: section
            .zip(entry.order)
            .map(|(section, number)| OrderId { section, number: OrderNumber(number) }.to_string()),
        ticket: section.zip(entry.order).zip(entry.ticket).map(|((section, number), index)| {
            TicketId { order: OrderId { section, number: OrderNumber(number) }, index }.to_string()
        }),
        outcome: entry.outcome,
        detail: entry.detail,
        hash: audit::hex(&stored.hash),
    }
}

/// An optional id filter of the query, or a 422 naming what it should have been.
fn parse_filter<T: std::str::FromStr>(text: Option<&str>, code: &'static str, what: &str) -> ApiResult<Option<T>> {
    text.map(|id| id.parse::<T>().map_err(|_| ApiError::invalid(code, format!("{id:?} is not {what}")))).transpose()
}
