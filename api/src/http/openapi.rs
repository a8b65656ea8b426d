//! The OpenAPI document: generated from the handlers' `#[utoipa::path]` lines, then
//! completed here with the answers the layers give every route of a kind, so the
//! document lists every status a route can answer and a client generated from it is
//! never surprised.
//!
//! Handlers list what they decide themselves (201, 404 `event_not_found`, 409
//! `seats_unavailable`...); [`complete`] adds, from what each operation is:
//! - every route but the probes: the `X-Request-Timeout-Ms` header, 400 (a bad one), 503
//!   (over capacity, past its deadline, timed out, starting, shutting down);
//! - a route with a token (`security`): 401 (missing or wrong) and 403 (token not configured);
//! - a JSON body: 400 (not JSON), 413 (too large), 415 (not `application/json`),
//!   422 (wrong shape);
//! - a POST: the `Idempotency-Key` header, 400 (bad key), 409 (key in use), 413,
//!   422 (key reused with another request);
//! - path parameters: 400 (undecodable) and 404 (no such thing);
//! - query parameters: 422 (wrong shape).

use std::sync::OnceLock;

use axum::body::Bytes;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::http::auth::{ADMIN_SCHEME, GATE_SCHEME, SALES_SCHEME};

#[derive(OpenApi)]
#[openapi(
    info(title = "hakken", description = "Seat allocation and ticketing for flash on-sales. Every error is `{\"error\": {\"code\", \"message\", \"details\"?}}`; 503 and 429 carry `Retry-After`. Every POST takes an `Idempotency-Key` header."),
    modifiers(&BearerTokens),
    tags((name = "events", description = "Events, availability, seat maps"),
        (name = "queue", description = "Waiting rooms: join, poll, and the access a hold needs"),
        (name = "holds", description = "Timed holds on seats"),
        (name = "orders", description = "Confirmed orders and refunds"),
        (name = "payments", description = "Checkout, payments at the PSP and its webhooks"),
        (name = "tickets", description = "Tickets: signed codes, QR and barcode images, printable pages, reissue"),
        (name = "gates", description = "Entry scans, offline batches and gate bundles (gate token)"),
        (name = "admin", description = "Event setup, operations and the audit log (admin token)"),
        (name = "health", description = "Liveness and readiness"))
)]
pub(crate) struct ApiDoc;

struct BearerTokens;

impl Modify for BearerTokens {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for scheme in [ADMIN_SCHEME, GATE_SCHEME, SALES_SCHEME] {
            components.add_security_scheme(
                scheme,
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
        }
    }
}

/// Routes the admission layer lets through unconditionally (see `admission::admit`).
const PROBES: [&str; 2] = ["/healthz", "/readyz"];

/// The `Idempotency-Key` header as the idempotency layer checks it.
const IDEMPOTENCY_KEY_PATTERN: &str = "^[\\x21-\\x7E]{1,255}$";

/// Adds the answers of the layers to every operation of `document` (an OpenAPI 3
/// document as JSON), keeping the descriptions handlers gave.
pub fn complete(document: &mut Value) {
    if let Some(hold_request) = document.pointer_mut("/components/schemas/HoldRequest") {
        hold_request["oneOf"] = crate::http::views::hold_request_forms();
    }
    let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) else { return };
    for (path, operations) in paths.iter_mut() {
        let Some(operations) = operations.as_object_mut() else { continue };
        for (method, operation) in operations.iter_mut() {
            complete_operation(path, method, operation);
        }
    }
}

fn complete_operation(path: &str, method: &str, operation: &mut Value) {
    let secured = operation.get("security").is_some();
    let has_body = operation.get("requestBody").is_some();
    let parameters = operation.get("parameters").and_then(Value::as_array).cloned().unwrap_or_default();
    let located = |place: &str| parameters.iter().any(|parameter| parameter["in"] == place);
    let (in_path, in_query) = (located("path"), located("query"));
    let post = method == "post";
    if post && !parameters.iter().any(|parameter| parameter["name"] == "Idempotency-Key") {
        let header = json!({
            "name": "Idempotency-Key", "in": "header", "required": false,
            "description": "Retries with the same key get the same answer (1-255 visible ASCII characters)",
            "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": IDEMPOTENCY_KEY_PATTERN},
        });
        let list = operation.as_object_mut().expect("an operation is an object").entry("parameters");
        list.or_insert_with(|| Value::Array(Vec::new())).as_array_mut().expect("parameters are a list").push(header);
    } else if let Some(header) = operation
        .get_mut("parameters")
        .and_then(Value::as_array_mut)
        .and_then(|list| list.iter_mut().find(|parameter| parameter["name"] == "Idempotency-Key"))
    {
        header["schema"] =
            json!({"type": "string", "minLength": 1, "maxLength": 255, "pattern": IDEMPOTENCY_KEY_PATTERN});
    }
    let mut added: Vec<(u16, &str)> = Vec::new();
    if !PROBES.contains(&path) {
        let header = json!({
            "name": "X-Request-Timeout-Ms", "in": "header", "required": false,
            "description": "How long the client will wait (ms); past it (or the server's own timeout) the request is dropped, unrun, with 503 `deadline_exceeded`",
            "schema": {"type": "integer", "minimum": 1},
        });
        // (Indexing above may have left a `null` where an operation has no parameters.)
        let list =
            operation.as_object_mut().expect("an operation is an object").entry("parameters").or_insert(Value::Null);
        if !list.is_array() {
            *list = Value::Array(Vec::new());
        }
        list.as_array_mut().expect("parameters are a list").push(header);
        added.push((
            400,
            "`X-Request-Timeout-Ms` is not a whole number of milliseconds, at least 1 (`invalid_request_timeout`)",
        ));
        added.push((503, "Unavailable for now (`overloaded`, `deadline_exceeded`, `section_busy`, `timeout`, `starting`, `shutting_down`): retry after `Retry-After` seconds"));
    }
    if secured {
        added.push((401, "No token, or the wrong one (`unauthorized`)"));
        added.push((403, "This role's token is not configured, so its endpoints are off"));
    }
    if has_body {
        added.push((400, "The body is not JSON (`malformed_json`)"));
        added.push((413, "The body is over the size limit (`body_too_large`)"));
        added.push((415, "The body is not sent as `application/json`"));
        added.push((422, "The body has the wrong shape or invalid values"));
    }
    if post {
        added.push((400, "The `Idempotency-Key` is not 1-255 visible ASCII characters"));
        added.push((409, "A request with this `Idempotency-Key` is still running (`idempotency_key_in_use`)"));
        added.push((413, "The body is over the size limit (`body_too_large`)"));
        added.push((422, "This `Idempotency-Key` was used with another request (`idempotency_key_reused`)"));
    }
    if in_path {
        added.push((400, "A path parameter cannot be decoded (`invalid_path`)"));
        added.push((404, "No such resource"));
    }
    if in_query {
        added.push((422, "A query parameter is missing or invalid"));
    }
    let responses = operation
        .as_object_mut()
        .expect("an operation is an object")
        .entry("responses")
        .or_insert_with(|| Value::Object(Map::new()));
    let responses = responses.as_object_mut().expect("responses are an object");
    for (status, description) in added {
        responses.entry(status.to_string()).or_insert_with(|| error_response(description));
    }
}

/// An error answer: the one error body.
fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    })
}

/// The generated document, rendered once.
static OPENAPI_JSON: OnceLock<Bytes> = OnceLock::new();

/// Serves `document` from now on (the first router built sets it; all are the same).
pub fn publish(document: &Value) {
    let _ = OPENAPI_JSON.set(document.to_string().into());
}

/// This document: OpenAPI 3, generated from the handlers, so it cannot drift from them.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "health", responses((status = 200, description = "OpenAPI 3 document")))]
pub async fn openapi_json() -> Response {
    let document = OPENAPI_JSON.get().cloned().unwrap_or_default();
    ([(CONTENT_TYPE, "application/json")], document).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statuses(operation: &Value) -> Vec<String> {
        operation["responses"].as_object().unwrap().keys().cloned().collect()
    }

    #[test]
    fn layers_add_their_answers_by_what_an_operation_is() {
        let mut document = json!({"paths": {
            "/healthz": {"get": {"responses": {"200": {"description": "ok"}}}},
            "/v1/things/{thing}": {"post": {
                "security": [{"admin_token": []}],
                "requestBody": {},
                "parameters": [{"name": "thing", "in": "path"}],
                "responses": {"201": {"description": "made"}, "404": {"description": "no thing, said the handler"}},
            }},
        }});
        complete(&mut document);
        assert_eq!(statuses(&document["paths"]["/healthz"]["get"]), ["200"]);
        assert!(document["paths"]["/healthz"]["get"].get("parameters").is_none(), "no `parameters: null`");
        let operation = &document["paths"]["/v1/things/{thing}"]["post"];
        assert_eq!(statuses(operation), ["201", "400", "401", "403", "404", "409", "413", "415", "422", "503"]);
        assert_eq!(operation["responses"]["404"]["description"], "no thing, said the handler");
        assert_eq!(operation["parameters"][1]["name"], "Idempotency-Key");
        assert_eq!(operation["parameters"][2]["name"], "X-Request-Timeout-Ms");
    }
}
