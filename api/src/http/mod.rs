//! The HTTP API: routes, the OpenAPI document generated from them, health, and the
//! layers every request passes (outermost first): admission (adaptive in-flight limit,
//! deadline) → metrics and log line → panic guard (a panic answers 503 `internal`) →
//! admin/gate token → body limit → `Idempotency-Key` → handler. Admission is outermost
//! so a refusal costs no route metrics or log line (refusals are counted by reason).
//!
//! Module dependencies point one way: the state ([`app`]) uses the leaf modules
//! ([`limiter`], [`overload`], [`route_metrics`], [`idempotency`], [`availability_cache`],
//! [`error`]); the layers ([`admission`], [`auth`], [`idempotency_layer`]) and the
//! handlers use the state. Below them all, [`connections`] bounds the connections the
//! server accepts.

pub mod admin;
pub mod admission;
pub mod app;
pub mod audit;
pub mod auth;
pub mod availability_cache;
pub mod cluster;
pub mod connections;
pub mod error;
pub mod events;
pub mod gates;
pub mod gradient_limit;
pub mod holds;
pub mod idempotency;
pub mod idempotency_layer;
pub mod limiter;
pub mod openapi;
pub mod outbox;
pub mod overload;
pub mod owner_redirect;
pub mod panic_guard;
pub mod payment_views;
pub mod payment_waiters;
pub mod payments;
pub mod privacy;
pub mod queue;
pub mod queue_waiters;
pub mod route_metrics;
pub mod tickets;
pub mod views;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Router;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::app::Shared;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::views::HealthResponse;

/// The public API router (state included) and its OpenAPI document.
pub fn router(shared: Arc<Shared>) -> Router {
    let (router, openapi) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(events::list_events, admin::create_event))
        .routes(routes!(events::get_event, admin::update_event))
        .routes(routes!(events::availability))
        .routes(routes!(events::seats))
        .routes(routes!(queue::join_queue))
        .routes(routes!(queue::get_place))
        .routes(routes!(holds::create_hold))
        .routes(routes!(holds::get_hold, holds::release_hold))
        .routes(routes!(holds::extend_hold))
        .routes(routes!(holds::confirm_hold))
        .routes(routes!(payments::checkout))
        .routes(routes!(payments::get_payment))
        .routes(routes!(payments::stripe_webhook))
        .routes(routes!(payments::payments_config))
        .routes(routes!(payments::reconcile))
        .routes(routes!(holds::get_order))
        .routes(routes!(holds::cancel_order))
        .routes(routes!(admin::open_sale))
        .routes(routes!(admin::close_sale))
        .routes(routes!(admin::backup))
        .routes(routes!(outbox::list_outbox))
        .routes(routes!(cluster::cluster_status))
        .routes(routes!(outbox::retry_outbox))
        .routes(routes!(privacy::erase_buyer))
        .routes(routes!(privacy::rewrap))
        .routes(routes!(tickets::get_ticket))
        .routes(routes!(tickets::ticket_qr_svg))
        .routes(routes!(tickets::ticket_qr_png))
        .routes(routes!(tickets::ticket_barcode_svg))
        .routes(routes!(tickets::ticket_page))
        .routes(routes!(tickets::reissue_ticket))
        .routes(routes!(gates::scan))
        .routes(routes!(gates::scan_batch))
        .routes(routes!(gates::gate_bundle))
        .routes(routes!(audit::audit_log))
        .routes(routes!(openapi::openapi_json))
        .split_for_parts();
    let mut document = serde_json::to_value(&openapi).expect("the OpenAPI document serializes");
    openapi::complete(&mut document);
    let gatekeeper = auth::Gatekeeper::from_document(shared.clone(), &document);
    openapi::publish(&document);
    let body_limit = shared.http.body_bytes_max;
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(shared.clone(), idempotency_layer::idempotent))
        .layer(axum::middleware::from_fn(owner_redirect::redirect))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(gatekeeper, auth::authenticate))
        .layer(axum::middleware::from_fn(panic_guard::catch_panic))
        .layer(axum::middleware::from_fn_with_state(shared.route_metrics.clone(), route_metrics::observe))
        .layer(axum::middleware::from_fn_with_state(shared.clone(), admission::admit))
        .with_state(shared)
}

async fn not_found() -> ApiError {
    ApiError::not_found("route_not_found", "no such endpoint; see /v1/openapi.json")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this endpoint does not take that method")
}

/// Alive: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = HealthResponse)))]
async fn healthz() -> axum::Json<HealthResponse> {
    axum::Json(HealthResponse { status: "ok" })
}

/// 1 while `/readyz` answers 200, else 0 (set every second, [`report_readiness`]).
pub const READY: &str = "hakken_ready";

/// What `/readyz` says: `ok`, `starting`, `storage_failed` or `shutting_down`.
pub fn readiness(shared: &Shared) -> &'static str {
    match shared.ready_app() {
        _ if shared.is_shutting_down() => "shutting_down",
        None => "starting",
        Some(app) if app.store.failed() => "storage_failed",
        Some(_) => "ok",
    }
}

/// Keeps [`READY`] (and the store's gauges) up to date, for the alert on lost readiness (a load balancer stops
/// sending buyers to a server that is not ready; the SRE must hear of it at once).
pub async fn report_readiness(shared: Arc<Shared>) {
    let gauge = metrics::gauge!(READY);
    let mut ticks = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        ticks.tick().await;
        gauge.set(if readiness(&shared) == "ok" { 1.0 } else { 0.0 });
        if let Some(app) = shared.ready_app() {
            // A statvfs can block on a sick disk: off the async workers.
            let store = app.store.clone();
            let _ = tokio::task::spawn_blocking(move || hakken_engine::observe::store_health(&store.health())).await;
        }
    }
}

/// Ready for traffic: recovery has finished, storage works, not shutting down.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, body = HealthResponse), (status = 503, body = ErrorBody)))]
async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    let status = readiness(&shared);
    let code = if status == "ok" { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, axum::Json(HealthResponse { status })).into_response()
}
