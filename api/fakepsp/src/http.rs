//! The HTTP layer: Stripe's routes and the `/_fake/` control API, thin over [`crate::state`].
//!
//! Every `/v1` call goes through `api`: authenticate (secret key, or publishable key
//! where Stripe.js may call), pick an injected fault, look the `Idempotency-Key` up, parse
//! and validate the parameters (refusals here store nothing), execute under the one lock,
//! store the answer under the key, hand the new events to the webhook sender. `fn app`
//! returns the router so tests can drive it in process.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

use crate::faults::ApiFault;
use crate::form::Params;
use crate::idempotency::{Fingerprint, Lookup, Store, StoredAnswer};
use crate::state::{self, ApiError, CaptureMethod, CreateIntent, Psp, RequestInfo, Settlement};
use crate::webhook::unix_seconds;
use crate::{lock, Shared};

/// Request bodies larger than this are refused (Stripe's forms are a few hundred bytes).
pub const BODY_BYTES_MAX: usize = 64 * 1024;

/// Stripe's list limit bounds.
pub const LIST_LIMIT_DEFAULT: usize = 10;
pub const LIST_LIMIT_MAX: usize = 100;

type AppState = Arc<Shared>;

pub(crate) fn app(shared: AppState) -> Router {
    Router::new()
        .route("/v1/payment_intents", post(create_intent).get(list_intents))
        .route("/v1/payment_intents/{id}", get(retrieve_intent))
        .route("/v1/payment_intents/{id}/confirm", post(confirm))
        .route("/v1/payment_intents/{id}/capture", post(capture))
        .route("/v1/payment_intents/{id}/cancel", post(cancel))
        .route("/v1/refunds", post(create_refund))
        .route("/v1/refunds/{id}", get(retrieve_refund))
        .route("/v1/events", get(list_events))
        .route("/v1/events/{id}", get(retrieve_event))
        .route("/_fake/faults", get(faults).post(set_faults))
        .route("/_fake/webhooks/pause", post(pause))
        .route("/_fake/webhooks/resume", post(resume))
        .route("/_fake/webhooks/flush", post(flush))
        .route("/_fake/webhook_url", post(set_webhook_url))
        .route("/_fake/payment_intents/{id}/authenticate", post(three_d_secure))
        .route("/_fake/stats", get(stats))
        .fallback(unrecognized)
        .method_not_allowed_fallback(unrecognized)
        .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
        .with_state(shared)
}

/// One Stripe endpoint, with the ids from its path.
#[derive(Clone, Debug)]
enum Operation {
    CreateIntent,
    ListIntents,
    RetrieveIntent(String),
    Confirm(String),
    Capture(String),
    Cancel(String),
    CreateRefund,
    RetrieveRefund(String),
    ListEvents,
    RetrieveEvent(String),
}

impl Operation {
    /// What Stripe.js may do with the publishable key (and the intent's client secret).
    fn allows_publishable_key(&self) -> bool {
        matches!(self, Operation::Confirm(_) | Operation::RetrieveIntent(_))
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Secret,
    Publishable,
}

struct Call {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
}

macro_rules! endpoint {
    ($name:ident, $operation:expr) => {
        async fn $name(
            State(shared): State<AppState>,
            method: Method,
            uri: Uri,
            headers: HeaderMap,
            body: Result<Bytes, BytesRejection>,
        ) -> Response {
            match body {
                Ok(body) => api(shared, $operation, Call { method, uri, headers, body }).await,
                Err(rejection) => too_large(rejection),
            }
        }
    };
    ($name:ident, $id:ident => $operation:expr) => {
        async fn $name(
            State(shared): State<AppState>,
            Path($id): Path<String>,
            method: Method,
            uri: Uri,
            headers: HeaderMap,
            body: Result<Bytes, BytesRejection>,
        ) -> Response {
            match body {
                Ok(body) => api(shared, $operation, Call { method, uri, headers, body }).await,
                Err(rejection) => too_large(rejection),
            }
        }
    };
}

endpoint!(create_intent, Operation::CreateIntent);
endpoint!(list_intents, Operation::ListIntents);
endpoint!(retrieve_intent, id => Operation::RetrieveIntent(id));
endpoint!(confirm, id => Operation::Confirm(id));
endpoint!(capture, id => Operation::Capture(id));
endpoint!(cancel, id => Operation::Cancel(id));
endpoint!(create_refund, Operation::CreateRefund);
endpoint!(retrieve_refund, id => Operation::RetrieveRefund(id));
endpoint!(list_events, Operation::ListEvents);
endpoint!(retrieve_event, id => Operation::RetrieveEvent(id));

fn too_large(rejection: BytesRejection) -> Response {
    let error = ApiError {
        status: rejection.status().as_u16(),
        ..ApiError::invalid("request_too_large", None, format!("The request body could not be read: {rejection}"))
    };
    respond(&answer_of(&error), "", None, false)
}

async fn unrecognized(method: Method, uri: Uri) -> Response {
    let error = ApiError {
        status: 404,
        code: None,
        ..ApiError::invalid(
            "",
            None,
            format!("Unrecognized request URL ({method}: {}). Please see https://stripe.com/docs.", uri.path()),
        )
    };
    respond(&answer_of(&error), "", None, false)
}

/// One `/v1` call; see the module comment for the order of the steps.
async fn api(shared: AppState, operation: Operation, call: Call) -> Response {
    let request_id = format!("req_{:016}", shared.api.requests.fetch_add(1, Ordering::Relaxed) + 1);
    shared.api.calls.fetch_add(1, Ordering::Relaxed);
    let (key, kind) = match authenticate(&shared, &call.headers) {
        Ok(authenticated) => authenticated,
        Err(error) => return respond(&answer_of(&error), &request_id, None, false),
    };
    if kind == KeyKind::Publishable && !operation.allows_publishable_key() {
        let error = ApiError::unauthorized(
            "This API call cannot be made with a publishable API key. Please use a secret API key.".into(),
        );
        return respond(&answer_of(&error), &request_id, None, false);
    }
    let is_post = call.method == Method::POST;
    let params =
        if is_post { Params::parse(&call.body) } else { Params::parse(call.uri.query().unwrap_or("").as_bytes()) };
    let idempotency_key = match idempotency_key(&call.headers, is_post) {
        Ok(found) => found,
        Err(error) => return respond(&answer_of(&error), &request_id, None, false),
    };
    let fingerprint =
        Fingerprint { method: call.method.to_string(), path: call.uri.path().to_string(), params: params.canonical() };
    let fault = lock(&shared.faults).take_api_fault(&format!("{} {}", call.method, call.uri.path()));
    match fault {
        Some(ApiFault::Fail { stores }) => {
            shared.api.failed.fetch_add(1, Ordering::Relaxed);
            let answer = answer_of(&ApiError::server(format!(
                "An unknown error occurred (injected by the fake PSP) on request {request_id}."
            )));
            if let (true, Some(key_text)) = (stores, &idempotency_key) {
                lock(&shared.core).idempotency.insert(&key, key_text, fingerprint, answer.clone());
            }
            return respond(&answer, &request_id, idempotency_key.as_deref(), false);
        }
        Some(ApiFault::Timeout { hang_ms, applies: false }) => {
            shared.api.timed_out.fetch_add(1, Ordering::Relaxed);
            return hang(&shared, hang_ms).await;
        }
        _ => {}
    }
    let settlement = if lock(&shared.faults).pay_late_ms > 0 { Settlement::Later } else { Settlement::Now };
    let request =
        RequestInfo { request_id: request_id.clone(), idempotency_key: idempotency_key.clone(), now: unix_seconds() };
    let (answer, replayed, events) = {
        let mut core = lock(&shared.core);
        let core = &mut *core;
        let lookup = match &idempotency_key {
            None => Lookup::New,
            Some(key_text) => match core.idempotency.lookup(&key, key_text, &fingerprint) {
                Ok(lookup) => lookup,
                Err(error) => return respond(&answer_of(&error), &request_id, idempotency_key.as_deref(), false),
            },
        };
        match lookup {
            Lookup::Replay(answer) => (answer, true, Vec::new()),
            Lookup::New => {
                let outcome = match execute(&mut core.psp, &operation, &params, kind, &request, settlement) {
                    Ok(outcome) => outcome,
                    Err(refused) => {
                        return respond(&answer_of(&refused), &request_id, idempotency_key.as_deref(), false)
                    }
                };
                let answer = match &outcome {
                    Ok(value) => StoredAnswer { status: 200, body: Bytes::from(value.to_string()) },
                    Err(error) => answer_of(error),
                };
                if let Some(key_text) = &idempotency_key {
                    core.idempotency.insert(&key, key_text, fingerprint, answer.clone());
                }
                (answer, false, core.psp.take_outbox())
            }
        }
    };
    if replayed {
        shared.api.replayed.fetch_add(1, Ordering::Relaxed);
    }
    schedule_late_settlement(&shared, &events);
    shared.deliver(events);
    if let Some(ApiFault::Timeout { hang_ms, applies: true }) = fault {
        shared.api.timed_out.fetch_add(1, Ordering::Relaxed);
        return hang(&shared, hang_ms).await;
    }
    respond(&answer, &request_id, idempotency_key.as_deref(), replayed)
}

/// The key of the call (`Authorization: Bearer <key>`) and which kind it is.
fn authenticate(shared: &Shared, headers: &HeaderMap) -> Result<(String, KeyKind), ApiError> {
    let Some(value) = headers.get("authorization") else {
        return Err(ApiError::unauthorized(
            "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').".into(),
        ));
    };
    let presented = value.to_str().ok().and_then(|text| text.strip_prefix("Bearer ")).map(str::trim).unwrap_or("");
    if presented == shared.secret_key {
        return Ok((presented.to_string(), KeyKind::Secret));
    }
    if presented == shared.publishable_key {
        return Ok((presented.to_string(), KeyKind::Publishable));
    }
    Err(ApiError::unauthorized(format!("Invalid API Key provided: {}", redact(presented))))
}

/// As Stripe shows a wrong key: its prefix and last four characters.
fn redact(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() <= 12 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..8].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 12))
}

fn idempotency_key(headers: &HeaderMap, is_post: bool) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key").filter(|_| is_post) else {
        return Ok(None);
    };
    let text = value.to_str().map_err(|_| {
        ApiError::invalid("idempotency_key_invalid", None, "Idempotency keys must be printable ASCII".into())
    })?;
    Store::validate_key(text)?;
    Ok(Some(text.to_string()))
}

/// Validates the parameters (`Err`: refused before executing, nothing stored), then runs
/// the operation (`Ok(Err)`: an answer that is an error but was executed, e.g. a decline).
fn execute(
    psp: &mut Psp,
    operation: &Operation,
    params: &Params,
    kind: KeyKind,
    request: &RequestInfo,
    settlement: Settlement,
) -> Result<Result<Value, ApiError>, ApiError> {
    match operation {
        Operation::CreateIntent => {
            psp.ensure_room()?;
            let create = create_params(params)?;
            Ok(psp.create_intent(create, request, settlement))
        }
        Operation::ListIntents => {
            params.only(&["limit", "starting_after", "expand"])?;
            let page = psp.list_intents(list_limit(params)?, params.text("starting_after"))?;
            Ok(Ok(list_json(page, "/v1/payment_intents")))
        }
        Operation::RetrieveIntent(id) => {
            params.only(&["client_secret", "expand"])?;
            check_client_secret(psp, id, params, kind)?;
            Ok(psp.intent_json(id))
        }
        Operation::Confirm(id) => {
            psp.ensure_room()?;
            params.only(&["payment_method", "client_secret", "return_url", "expand", "payment_method_types"])?;
            check_client_secret(psp, id, params, kind)?;
            Ok(psp.confirm(id, params.text("payment_method"), request, settlement))
        }
        Operation::Capture(id) => {
            params.only(&["amount_to_capture", "expand"])?;
            let amount = params.integer("amount_to_capture")?;
            Ok(psp.capture(id, amount, request))
        }
        Operation::Cancel(id) => {
            params.only(&["cancellation_reason", "expand"])?;
            let reason = one_of(
                params,
                "cancellation_reason",
                &["duplicate", "fraudulent", "requested_by_customer", "abandoned"],
            )?;
            Ok(psp.cancel(id, reason, request))
        }
        Operation::CreateRefund => {
            psp.ensure_room()?;
            params.only(&["payment_intent", "amount", "reason", "metadata", "expand"])?;
            let intent = required(params, "payment_intent")?;
            let amount = params.integer("amount")?;
            let reason = one_of(params, "reason", &["duplicate", "fraudulent", "requested_by_customer"])?;
            let metadata = params.metadata()?;
            Ok(psp.refund(intent, amount, reason, metadata, request))
        }
        Operation::RetrieveRefund(id) => {
            params.only(&["expand"])?;
            Ok(psp.refund_json(id))
        }
        Operation::ListEvents => {
            params.only(&["limit", "starting_after", "type", "expand"])?;
            let page = psp.list_events(list_limit(params)?, params.text("starting_after"), params.text("type"))?;
            Ok(Ok(list_json(page, "/v1/events")))
        }
        Operation::RetrieveEvent(id) => {
            params.only(&["expand"])?;
            Ok(psp.event_json(id))
        }
    }
}

fn create_params(params: &Params) -> Result<CreateIntent, ApiError> {
    params.only(&[
        "amount",
        "currency",
        "capture_method",
        "metadata",
        "description",
        "payment_method",
        "confirm",
        "payment_method_types",
        "automatic_payment_methods",
        "expand",
        "receipt_email",
        "return_url",
        "statement_descriptor",
        "statement_descriptor_suffix",
    ])?;
    let amount = params.integer("amount")?.ok_or_else(|| {
        ApiError::invalid("parameter_missing", Some("amount"), "Missing required param: amount.".into())
    })?;
    let currency = required(params, "currency")?;
    let capture_method =
        params.text("capture_method").map(CaptureMethod::parse).transpose()?.unwrap_or(CaptureMethod::Automatic);
    let confirm = params.boolean("confirm")?.unwrap_or(false);
    let payment_method = params.text("payment_method").filter(|text| !text.is_empty()).map(str::to_string);
    if confirm && payment_method.is_none() {
        return Err(ApiError::invalid(
            "parameter_missing",
            Some("payment_method"),
            "A payment_method is required to create and confirm a PaymentIntent in one call.".into(),
        ));
    }
    Ok(CreateIntent {
        amount: state::validate_amount(amount, "amount")?,
        currency: state::validate_currency(currency)?,
        capture_method,
        metadata: params.metadata()?,
        description: params.text("description").map(str::to_string),
        payment_method,
        confirm,
    })
}

fn required<'a>(params: &'a Params, name: &str) -> Result<&'a str, ApiError> {
    params
        .text(name)
        .filter(|text| !text.is_empty())
        .ok_or_else(|| ApiError::invalid("parameter_missing", Some(name), format!("Missing required param: {name}.")))
}

fn one_of(params: &Params, name: &str, allowed: &[&str]) -> Result<Option<String>, ApiError> {
    match params.text(name) {
        None => Ok(None),
        Some(value) if allowed.contains(&value) => Ok(Some(value.to_string())),
        Some(value) => Err(ApiError::invalid(
            "parameter_invalid_string",
            Some(name),
            format!("Invalid {name}: must be one of {} (got {value})", allowed.join(", ")),
        )),
    }
}

fn list_limit(params: &Params) -> Result<usize, ApiError> {
    match params.integer("limit")? {
        None => Ok(LIST_LIMIT_DEFAULT),
        Some(limit) if (1..=LIST_LIMIT_MAX as i64).contains(&limit) => Ok(limit as usize),
        Some(_) => Err(ApiError::invalid(
            "parameter_invalid_integer",
            Some("limit"),
            format!("This value must be between 1 and {LIST_LIMIT_MAX}."),
        )),
    }
}

fn list_json(page: state::Page, url: &str) -> Value {
    json!({"object": "list", "data": page.data, "has_more": page.has_more, "url": url})
}

/// With the publishable key, the intent's client secret must come along (Stripe.js).
fn check_client_secret(psp: &Psp, id: &str, params: &Params, kind: KeyKind) -> Result<(), ApiError> {
    let Some(given) = params.text("client_secret") else {
        if kind == KeyKind::Publishable {
            return Err(ApiError::invalid(
                "parameter_missing",
                Some("client_secret"),
                "A client_secret is required with a publishable key.".into(),
            ));
        }
        return Ok(());
    };
    if psp.client_secret(id)? != given {
        return Err(ApiError::invalid(
            "payment_intent_invalid_parameter",
            Some("client_secret"),
            "The client_secret provided does not match the client_secret associated with the PaymentIntent.".into(),
        ));
    }
    Ok(())
}

/// A "pay late" confirm answered `processing`: the authorization arrives after the delay.
fn schedule_late_settlement(shared: &AppState, events: &[state::Event]) {
    let delay_ms = lock(&shared.faults).pay_late_ms;
    for event in events.iter().filter(|event| event.kind == "payment_intent.processing") {
        let id = event.object_id.clone();
        let shared = shared.clone();
        let mut shutdown = shared.shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(delay_ms)) => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
            let events = {
                let mut core = lock(&shared.core);
                let request = RequestInfo { request_id: String::new(), idempotency_key: None, now: unix_seconds() };
                core.psp.settle(&id, &request);
                core.psp.take_outbox()
            };
            shared.deliver(events);
        });
    }
}

fn answer_of(error: &ApiError) -> StoredAnswer {
    StoredAnswer { status: error.status, body: Bytes::from(error.body().to_string()) }
}

fn respond(answer: &StoredAnswer, request_id: &str, idempotency_key: Option<&str>, replayed: bool) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, answer.body.clone()).into_response();
    let headers = response.headers_mut();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers.insert("stripe-version", HeaderValue::from_static(state::API_VERSION));
    if let Ok(value) = HeaderValue::from_str(request_id) {
        if !request_id.is_empty() {
            headers.insert("request-id", value);
        }
    }
    if let Some(value) = idempotency_key.and_then(|key| HeaderValue::from_str(key).ok()) {
        headers.insert("idempotency-key", value);
    }
    if replayed {
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

/// The "time out" fault: wait past the client's patience, then close the connection
/// without an answer (a body that fails makes hyper drop the connection).
async fn hang(shared: &Shared, hang_ms: u64) -> Response {
    let mut shutdown = shared.shutdown.clone();
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_millis(hang_ms)) => {}
        _ = shutdown.wait_for(|stop| *stop) => {}
    }
    let mut response = Response::new(Body::new(BrokenBody));
    response.headers_mut().insert("content-length", HeaderValue::from_static("1"));
    response
}

struct BrokenBody;

impl HttpBody for BrokenBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        Poll::Ready(Some(Err(std::io::Error::other("connection closed by the fake PSP's timeout fault"))))
    }
}

// The control API.

fn control_error(status: StatusCode, message: String) -> Response {
    (status, axum::Json(json!({"error": {"type": "invalid_request_error", "message": message}}))).into_response()
}

/// The control call's JSON body (empty is `{}`), or why not as (status, message).
fn json_body(body: &Result<Bytes, BytesRejection>) -> Result<Value, (StatusCode, String)> {
    let body = body.as_ref().map_err(|rejection| (rejection.status(), rejection.body_text()))?;
    if body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(body).map_err(|error| (StatusCode::BAD_REQUEST, format!("invalid JSON: {error}")))
}

async fn faults(State(shared): State<AppState>) -> Response {
    axum::Json(lock(&shared.faults).clone()).into_response()
}

async fn set_faults(State(shared): State<AppState>, body: Result<Bytes, BytesRejection>) -> Response {
    let patch = match json_body(&body) {
        Ok(patch) => patch,
        Err((status, message)) => return control_error(status, message),
    };
    let merged = {
        let mut faults = lock(&shared.faults);
        match faults.merged(&patch) {
            Ok(merged) => {
                *faults = merged.clone();
                merged
            }
            Err(message) => return control_error(StatusCode::BAD_REQUEST, message),
        }
    };
    shared.webhooks.wake();
    axum::Json(merged).into_response()
}

async fn pause(State(shared): State<AppState>) -> Response {
    lock(&shared.faults).webhooks_paused = true;
    axum::Json(json!({"webhooks_paused": true})).into_response()
}

async fn resume(State(shared): State<AppState>) -> Response {
    lock(&shared.faults).webhooks_paused = false;
    shared.webhooks.wake();
    axum::Json(json!({"webhooks_paused": false})).into_response()
}

async fn flush(State(shared): State<AppState>) -> Response {
    shared.webhooks.flush();
    axum::Json(json!({"flushed": true})).into_response()
}

async fn set_webhook_url(State(shared): State<AppState>, body: Result<Bytes, BytesRejection>) -> Response {
    let body = match json_body(&body) {
        Ok(body) => body,
        Err((status, message)) => return control_error(status, message),
    };
    let url = match body.get("url") {
        Some(Value::String(url)) => Some(url.as_str()),
        Some(Value::Null) => None,
        _ => {
            return control_error(
                StatusCode::BAD_REQUEST,
                "expected {\"url\": \"http://...\"} or {\"url\": null}".into(),
            )
        }
    };
    match shared.webhooks.set_url(url) {
        Ok(()) => axum::Json(json!({"url": url})).into_response(),
        Err(message) => control_error(StatusCode::BAD_REQUEST, message),
    }
}

async fn three_d_secure(
    State(shared): State<AppState>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match json_body(&body) {
        Ok(body) => body,
        Err((status, message)) => return control_error(status, message),
    };
    let succeed = match body.get("succeed") {
        None => true,
        Some(Value::Bool(succeed)) => *succeed,
        Some(_) => return control_error(StatusCode::BAD_REQUEST, "\"succeed\" must be true or false".into()),
    };
    let (outcome, events) = {
        let mut core = lock(&shared.core);
        let request = RequestInfo { request_id: String::new(), idempotency_key: None, now: unix_seconds() };
        let outcome = core.psp.authenticate(&id, succeed, &request).and_then(|changed| {
            if changed {
                core.psp.intent_json(&id).map(Some)
            } else {
                Ok(None)
            }
        });
        (outcome, core.psp.take_outbox())
    };
    shared.deliver(events);
    match outcome {
        Ok(Some(intent)) => axum::Json(intent).into_response(),
        Ok(None) => {
            control_error(StatusCode::CONFLICT, format!("{id} is not waiting for authentication (requires_action)"))
        }
        Err(error) => control_error(StatusCode::NOT_FOUND, error.message),
    }
}

async fn stats(State(shared): State<AppState>) -> Response {
    axum::Json(shared.stats()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_keys_are_redacted() {
        assert_eq!(redact("sk_test_abcdefghijkl1234"), "sk_test_************1234");
        assert_eq!(redact("short"), "*****");
    }
}
