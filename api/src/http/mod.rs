//! The HTTP API: routes, the OpenAPI document generated from them, health, and the
//! layers every request passes (outermost first): metrics and log line → in-flight
//! limit and timeout → body limit → `Idempotency-Key` → handler.

pub mod admin;
pub mod app;
pub mod audit;
pub mod error;
pub mod events;
pub mod gates;
pub mod guard;
pub mod holds;
pub mod idempotency;
pub mod tickets;
pub mod views;

use std::sync::{Arc, OnceLock};

use axum::body::Bytes;
use axum::http::header::CONTENT_TYPE;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Router;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::app::Shared;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::views::HealthResponse;

#[derive(OpenApi)]
#[openapi(
    info(title = "hakken", description = "Seat allocation and ticketing for flash on-sales. Every error is `{\"error\": {\"code\", \"message\", \"details\"?}}`; 503 and 429 carry `Retry-After`. Every POST takes an `Idempotency-Key` header."),
    modifiers(&AdminToken),
    tags((name = "events", description = "Events, availability, seat maps"),
        (name = "holds", description = "Timed holds on seats"),
        (name = "orders", description = "Confirmed orders and refunds"),
        (name = "tickets", description = "Tickets: signed codes, QR and barcode images, printable pages, reissue"),
        (name = "gates", description = "Entry scans, offline batches and gate bundles (gate token)"),
        (name = "admin", description = "Event setup, operations and the audit log (admin token)"),
        (name = "health", description = "Liveness and readiness"))
)]
struct ApiDoc;

struct AdminToken;

impl Modify for AdminToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for scheme in ["admin_token", "gate_token"] {
            components.add_security_scheme(
                scheme,
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
        }
    }
}

/// The public API router (state included) and its OpenAPI document.
pub fn router(shared: Arc<Shared>) -> Router {
    let (router, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(events::list_events, admin::create_event))
        .routes(routes!(events::get_event, admin::update_event))
        .routes(routes!(events::availability))
        .routes(routes!(events::seats))
        .routes(routes!(holds::create_hold))
        .routes(routes!(holds::get_hold, holds::release_hold))
        .routes(routes!(holds::extend_hold))
        .routes(routes!(holds::confirm_hold))
        .routes(routes!(holds::get_order))
        .routes(routes!(holds::cancel_order))
        .routes(routes!(admin::open_sale))
        .routes(routes!(admin::close_sale))
        .routes(routes!(admin::backup))
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
        .routes(routes!(openapi_json))
        .split_for_parts();
    let document = serde_json::to_vec(&openapi).expect("the OpenAPI document serializes");
    let _ = OPENAPI_JSON.set(document.into());
    let body_limit = shared.http.body_bytes_max;
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(shared.clone(), idempotency::idempotent))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(shared.clone(), guard::admit))
        .layer(axum::middleware::from_fn_with_state(shared.clone(), guard::observe))
        .with_state(shared)
}

/// The generated document, rendered once.
static OPENAPI_JSON: OnceLock<Bytes> = OnceLock::new();

/// This document: OpenAPI 3, generated from the handlers, so it cannot drift from them.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "health", responses((status = 200, description = "OpenAPI 3 document")))]
async fn openapi_json() -> Response {
    let document = OPENAPI_JSON.get().cloned().unwrap_or_default();
    ([(CONTENT_TYPE, "application/json")], document).into_response()
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

/// Ready for traffic: recovery has finished, storage works, not shutting down.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, body = HealthResponse), (status = 503, body = ErrorBody)))]
async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    let status = match shared.ready_app() {
        _ if shared.is_shutting_down() => "shutting_down",
        None => "starting",
        Some(app) if app.store.failed() => "storage_failed",
        Some(_) => "ok",
    };
    let code = if status == "ok" { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, axum::Json(HealthResponse { status })).into_response()
}
