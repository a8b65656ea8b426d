//! Admin endpoints for buyers' personal data (`Authorization: Bearer <admin token>`):
//! erase an order's buyer (crypto-shredding, see [`crate::privacy`] and the engine's
//! `inventory/buyers.rs`; the order, its seats, tickets and the audit chain stay valid),
//! and re-seal every order's buyer data under the active key after a key rotation, so
//! the old key can be retired.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use hakken_engine::actor::{EraseBuyer, Export, ResealBuyers};
use hakken_engine::ids::{OrderId, OrderNumber, SectionKey};
use hakken_engine::inventory::{Order, OrderError, Reseal};
use hakken_engine::wal::OrderRecord;
use serde::Serialize;
use utoipa::ToSchema;

use crate::http::app::{call, Shared};
use crate::http::auth::require_admin;
use crate::http::error::{ApiError, ApiResult, ErrorBody, Path};
use crate::http::holds::locate_order;
use crate::http::idempotency_layer::{call_changing, AnswerTo, Rendered};
use crate::http::views::{order_view, OrderResponse};
use crate::privacy::{OpenError, Privacy};

/// Orders re-sealed in one section call: bounds the actor's turn (each record is a
/// few hundred bytes) so a section keeps serving sales while it is re-sealed.
const RESEAL_BATCH_MAX: usize = 256;

/// Erase the buyer's name and email of an order for good (a data subject's erasure
/// request). The order, its seats and tickets stay valid and the audit log records the
/// erasure (never the data). Erasing an erased buyer answers the same.
#[utoipa::path(post, path = "/v1/admin/orders/{order}/erase-buyer", tag = "admin",
    params(("order" = String, Path, description = "Order id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key get the same answer")),
    security(("admin_token" = [])),
    responses((status = 200, description = "The order, its buyer erased", body = OrderResponse),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn erase_buyer(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    answer_to: AnswerTo,
) -> ApiResult<Response> {
    require_admin(&shared, &headers)?;
    let app = shared.app()?;
    let (order, served, index) = locate_order(&app.catalogue(), &id)?;
    let section = served.sections[index].clone();
    let privacy = shared.privacy.clone();
    let render = move |erased: &Result<Order, OrderError>| -> Rendered<OrderResponse> {
        let erased = erased.as_ref().map_err(|_| ApiError::not_found("order_not_found", format!("no order {id:?}")))?;
        Ok((StatusCode::OK, OrderResponse { order: order_view(&served, index, erased, &privacy) }))
    };
    Ok(call_changing(&section, EraseBuyer { order }, answer_to.0, &shared.overload, render).await)
}

/// What a re-seal did, over every order of every event.
#[derive(Debug, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct ResealResponse {
    /// The key every buyer's data is now sealed under.
    pub active_key: String,
    /// Orders whose buyer data was sealed afresh under the active key.
    pub resealed: u64,
    /// Orders already sealed under the active key.
    pub already_active: u64,
    /// Orders whose buyer was erased (nothing to seal).
    pub erased: u64,
    /// Orders no configured key opens (their key was retired too early): left as they are.
    pub unreadable: u64,
}

/// Seal every order's buyer data afresh under the active key (after adding a new key
/// and making it active), so the old key can be removed from the configuration. Runs
/// section by section in bounded batches while sales go on; running it again does
/// nothing more. Orders no configured key opens are counted and left alone.
#[utoipa::path(post, path = "/v1/admin/privacy/rewrap", tag = "admin",
    params(("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key get the same answer")),
    security(("admin_token" = [])),
    responses((status = 200, body = ResealResponse), (status = 401, body = ErrorBody)))]
pub async fn rewrap(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> ApiResult<axum::Json<ResealResponse>> {
    require_admin(&shared, &headers)?;
    let app = shared.app()?;
    let mut total = ResealResponse { active_key: shared.privacy.keyring().active().id.clone(), ..Default::default() };
    let catalogue = app.catalogue();
    for served in catalogue.events.values() {
        for section in &served.sections {
            let orders = call(section, Export {}, &shared.overload).await?.orders;
            let (privacy, key) = (shared.privacy.clone(), section.key);
            // Opening and sealing every order is CPU work: off the async workers.
            let (reseals, tally) = tokio::task::spawn_blocking(move || plan(&privacy, key, &orders))
                .await
                .map_err(|_| ApiError::unavailable("internal", "the re-seal failed", 1))?;
            total.already_active += tally.already_active;
            total.erased += tally.erased;
            total.unreadable += tally.unreadable;
            for batch in reseals.chunks(RESEAL_BATCH_MAX) {
                let call_batch = ResealBuyers { reseals: batch.to_vec() };
                total.resealed += call(section, call_batch, &shared.overload).await? as u64;
            }
        }
    }
    tracing::info!(resealed = total.resealed, unreadable = total.unreadable, key = %total.active_key, "buyers' data re-sealed");
    Ok(axum::Json(total))
}

/// The re-seals one section's orders need, and the tally of those that need none.
fn plan(privacy: &Privacy, section: SectionKey, orders: &[OrderRecord]) -> (Vec<Reseal>, ResealResponse) {
    let mut tally = ResealResponse::default();
    let mut reseals = Vec::new();
    for order in orders {
        if order.buyer.sealed.is_empty() {
            tally.erased += 1;
            continue;
        }
        match privacy.reseal_buyer(&order.buyer.sealed) {
            Ok(Some(now)) => reseals.push(Reseal {
                order: OrderId { section, number: OrderNumber(order.order) },
                was: Arc::from(order.buyer.sealed.as_slice()),
                now,
            }),
            Ok(None) => tally.already_active += 1,
            Err(OpenError::UnknownKey(_) | OpenError::Damaged) => tally.unreadable += 1,
        }
    }
    (reseals, tally)
}
