//! The outbox for admins: what is still being delivered, the dead letters, and a retry
//! of one dead letter. Entries show ids and each destination's progress (`email`, or
//! `webhook <url without its query>`), never a buyer's name or address.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use hakken_engine::clock::Millis;
use hakken_engine::event::format_instant;
use hakken_engine::ids::{HoldId, HoldNumber, OrderId, OrderNumber, SectionKey, TicketId};
use hakken_engine::store::Shelf;
use hakken_engine::wal::{DeliveryStateRecord, OutboxStored};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::http::app::Shared;
use crate::http::auth::require_admin;
use crate::http::error::{ApiError, ApiResult, ErrorBody, Path, Query};
use crate::notifications::compose::kind_label;
use crate::notifications::RetryError;

const PAGE_MAX: usize = 500;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OutboxQuery {
    /// `pending` (still being delivered; progress as last recorded) or `dead` (given up on).
    #[param(example = "dead")]
    pub state: Option<String>,
    /// Entries after this id (a page's `next`).
    pub after: Option<u64>,
    /// Entries per page, 1-500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub struct OutboxPage {
    pub entries: Vec<OutboxEntryView>,
    /// `after` of the next page; null at the end.
    pub next: Option<u64>,
}

#[derive(Serialize, ToSchema)]
pub struct OutboxResponse {
    pub entry: OutboxEntryView,
}

#[derive(Serialize, ToSchema)]
pub struct OutboxEntryView {
    /// The entry's number: `POST /v1/admin/outbox/{id}/retry` takes it.
    pub id: u64,
    /// `order_confirmed`, `order_refunded`, `ticket_reissued`, `late_payment_voided`,
    /// `late_payment_reacquired`, `hold_expired_while_paying`, `ticket_checked_in`.
    pub kind: &'static str,
    /// When the change it tells of was made.
    pub at: String,
    pub hold: Option<String>,
    pub order: Option<String>,
    pub ticket: Option<String>,
    pub deliveries: Vec<DeliveryView>,
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryView {
    /// `email`, or `webhook <url without its query>`.
    pub destination: String,
    /// `pending`, `delivered`, `dead` or `skipped`.
    pub state: &'static str,
    pub attempts: u32,
    pub last_outcome: String,
    /// Of a pending delivery that failed before.
    pub next_attempt_at: Option<String>,
}

fn view(stored: OutboxStored) -> OutboxEntryView {
    let entry = stored.entry;
    let section = SectionKey(entry.section);
    let order = entry.order.map(|number| OrderId { section, number: OrderNumber(number) });
    OutboxEntryView {
        id: entry.seq,
        kind: kind_label(entry.kind),
        at: format_instant(Millis(entry.at_ms)),
        hold: entry.hold.map(|number| HoldId { section, number: HoldNumber(number) }.to_string()),
        order: order.map(|order| order.to_string()),
        ticket: order.zip(entry.ticket).map(|(order, index)| TicketId { order, index }.to_string()),
        deliveries: stored
            .deliveries
            .into_iter()
            .map(|delivery| DeliveryView {
                destination: delivery.destination,
                state: match delivery.state {
                    DeliveryStateRecord::Pending => "pending",
                    DeliveryStateRecord::Delivered => "delivered",
                    DeliveryStateRecord::Dead => "dead",
                    DeliveryStateRecord::Skipped => "skipped",
                },
                attempts: delivery.attempts,
                last_outcome: delivery.last_outcome,
                next_attempt_at: (delivery.state == DeliveryStateRecord::Pending && delivery.next_attempt_at_ms > 0)
                    .then(|| format_instant(Millis(delivery.next_attempt_at_ms))),
            })
            .collect(),
    }
}

/// Outbox entries not delivered yet (`state=pending`) or given up on (`state=dead`), oldest first.
#[utoipa::path(get, path = "/v1/admin/outbox", tag = "admin",
    params(OutboxQuery),
    security(("admin_token" = [])),
    responses((status = 200, body = OutboxPage), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list_outbox(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<OutboxQuery>,
    headers: HeaderMap,
) -> ApiResult<axum::Json<OutboxPage>> {
    require_admin(&shared, &headers)?;
    let app = shared.app()?.clone();
    let shelf = match query.state.as_deref().unwrap_or("pending") {
        "pending" => Shelf::Pending,
        "dead" => Shelf::Dead,
        other => {
            return Err(ApiError::invalid("invalid_state", format!("`state` is `pending` or `dead`, not {other:?}")))
        }
    };
    let limit = query.limit.unwrap_or(100);
    if !(1..=PAGE_MAX).contains(&limit) {
        return Err(ApiError::invalid("invalid_limit", format!("`limit` must be 1-{PAGE_MAX}")));
    }
    let after = query.after.unwrap_or(0);
    // One more than asked, to know whether a next page exists.
    let mut page = tokio::task::spawn_blocking(move || app.store.outbox_page(shelf, after, limit + 1))
        .await
        .map_err(|_| ApiError::unavailable("internal", "reading the outbox failed", 1))?
        .map_err(|error| {
            tracing::error!(%error, "reading the outbox failed");
            ApiError::unavailable("storage_unavailable", "the store could not be read", 5)
        })?;
    let next = (page.len() > limit).then(|| page[limit - 1].entry.seq);
    page.truncate(limit);
    Ok(axum::Json(OutboxPage { entries: page.into_iter().map(view).collect(), next }))
}

/// Try a dead letter again: its given-up deliveries start afresh (attempts from 0); a
/// webhook endpoint disabled by a 410 is enabled again.
#[utoipa::path(post, path = "/v1/admin/outbox/{id}/retry", tag = "admin",
    params(("id" = u64, Path, description = "Outbox entry id")),
    security(("admin_token" = [])),
    responses((status = 200, body = OutboxResponse), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "Notifications are off", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn retry_outbox(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<axum::Json<OutboxResponse>> {
    require_admin(&shared, &headers)?;
    shared.app()?;
    let not_found = || ApiError::not_found("outbox_entry_not_found", format!("no dead letter {id:?}"));
    let seq: u64 = id.parse().map_err(|_| not_found())?;
    let Some(relay) = shared.notifications.get() else {
        return Err(ApiError::conflict(
            "notifications_off",
            "no [notifications.email] smtp_host nor [[notifications.webhooks]] is configured: nothing would deliver it",
        ));
    };
    match relay.retry(seq).await {
        Ok(stored) => Ok(axum::Json(OutboxResponse { entry: view(stored) })),
        Err(RetryError::NotFound(_)) => Err(not_found()),
        Err(RetryError::Unavailable) => Err(ApiError::unavailable("relay_busy", "the relay is busy; retry shortly", 1)),
        Err(RetryError::Storage(detail)) => {
            tracing::error!(%detail, "retrying a dead letter failed");
            Err(ApiError::unavailable("storage_unavailable", "the change could not be stored", 5))
        }
    }
}
