//! Admission: the adaptive in-flight limit, each request's deadline, and refusals that
//! cost almost nothing.
//!
//! The outermost layer: it reads the method, the path and one header, never the body
//! or a token, and a refusal is a prebuilt answer (no JSON rendering, no route
//! metrics, no actor hop). Admitted requests carry their deadline (the server's
//! `request_timeout_ms`, or the client's `X-Request-Timeout-Ms` if shorter) into
//! every section call they make ([`hakken_engine::deadline`]), so work whose buyer
//! has given up is dropped before it reaches an actor or the WAL.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderName, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hakken_engine::deadline;

use crate::http::app::Shared;
use crate::http::availability_cache;
use crate::http::error::{ApiError, ErrorCode};
use crate::http::overload::{Class, Presence};
use crate::http::route_metrics::REJECTIONS_TOTAL;

/// How long the client will wait for this request, in ms (a shorter deadline than the
/// server's own makes the server drop the request once its answer would come too late).
pub const REQUEST_TIMEOUT_HEADER: HeaderName = HeaderName::from_static("x-request-timeout-ms");

/// The body of every `overloaded` refusal, rendered once (the one error format).
const OVERLOADED_BODY: &str =
    r#"{"error":{"code":"overloaded","message":"the server is at capacity; retry after the given seconds"}}"#;

/// Admits the request if the adaptive limit has room for its class, and bounds it by
/// its deadline. Probes and polls are never refused here: probes must answer on a
/// loaded server, availability polls are served from a cache without an actor (a poll
/// asking for fresh counts is admitted like other work), and waiting-room polls read
/// atomics (refusing the waiting would turn a fair queue back into a retry race).
pub async fn admit(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let (method, path) = (request.method(), request.uri().path());
    let cached_poll = is_availability_poll(method, path) && !availability_cache::wants_fresh(request.headers());
    let queue_poll = method == Method::GET && path.starts_with("/v1/queue/");
    if matches!(path, "/healthz" | "/readyz") || cached_poll || queue_poll || is_payment_long_poll(&request) {
        return next.run(request).await;
    }
    let timeout = match request_timeout(&request, shared.http.request_timeout_ms) {
        Ok(timeout) => timeout,
        Err(error) => return error.into_response(),
    };
    let class = class_of(path, request.headers().contains_key(crate::http::queue::ACCESS_HEADER));
    let Some(admitted) = shared.overload.admit(class) else {
        count_rejection("overloaded", class);
        return overloaded(shared.overload.retry_after_s());
    };
    shared.route_metrics.set_in_flight(shared.overload.in_flight());
    let deadline = admitted.at() + timeout;
    let away = Arc::new(AtomicU64::new(0));
    let slot = InFlight { shared: shared.clone(), presence: admitted.presence(), away_us: away.clone() };
    let serving = IN_FLIGHT.scope(slot, deadline::serve_within(deadline, next.run(request)));
    let served = tokio::time::timeout(timeout, serving).await;
    admitted.completed_after_away(Duration::from_micros(away.load(Ordering::Relaxed)));
    match served {
        Ok(response) => response,
        Err(_) => {
            count_rejection("timeout", class);
            let retry_after = shared.overload.retry_after_s();
            ApiError::unavailable("timeout", "the request took too long; retry after the given seconds", retry_after)
                .into_response()
        }
    }
}

tokio::task_local! {
    /// The admitted request the current task is serving (not set for requests that
    /// admit their pieces themselves, nor outside requests: the sweep, the relay).
    static IN_FLIGHT: InFlight;
}

#[derive(Clone)]
struct InFlight {
    shared: Arc<Shared>,
    presence: Arc<Presence>,
    /// Time spent in [`away_from_the_server`], in µs.
    away_us: Arc<AtomicU64>,
}

/// `work` (spawned to outlive the request's task: the idempotency layer's) still serves
/// the current admitted request, as [`hakken_engine::deadline::carried`] carries its
/// deadline: its PSP calls step that request out of the in-flight count.
pub fn carried<F: Future>(work: F) -> impl Future<Output = F::Output> {
    let slot = IN_FLIGHT.try_with(InFlight::clone).ok();
    async move {
        match slot {
            Some(slot) => IN_FLIGHT.scope(slot, work).await,
            None => work.await,
        }
    }
}

/// Runs `remote` (a call to the PSP) with the current request out of the in-flight
/// count, and its duration out of the latency the adaptive limit reads
/// ([`crate::http::overload::Overload::step_away`] says why). Outside an admitted
/// request it just runs `remote`.
pub async fn away_from_the_server<F: Future>(remote: F) -> F::Output {
    let Ok(slot) = IN_FLIGHT.try_with(InFlight::clone) else { return remote.await };
    if !slot.shared.overload.step_away(&slot.presence) {
        // The request ended (its work goes on in the idempotency layer's task).
        return remote.await;
    }
    // Back in flight even if `remote` is dropped halfway (the request timed out).
    let _back = StepBack(&slot);
    let started = std::time::Instant::now();
    let done = remote.await;
    slot.away_us.fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
    done
}

struct StepBack<'a>(&'a InFlight);

impl Drop for StepBack<'_> {
    fn drop(&mut self) {
        self.0.shared.overload.step_back(&self.0.presence);
    }
}

/// A request answered here, never seen by the route metrics inside: labelled with its
/// class (`start`: new holds and other new work; `finish`: confirms, checkouts,
/// webhooks), so the sale's availability SLO counts it against the right routes.
fn count_rejection(reason: &'static str, class: Class) {
    let class = match class {
        Class::Start => "start",
        Class::Finish => "finish",
    };
    metrics::counter!(REJECTIONS_TOTAL, "reason" => reason, "class" => class).increment(1);
}

/// Requests that finish a sale already started go first: a buyer's own hold (confirm,
/// extend, release, read), orders, and the PSP's webhooks (a buyer who paid waits for
/// one; refused, it comes back on the PSP's retry schedule, minutes later). Everything
/// else starts new work, except a join of a waiting room: the room is what keeps the
/// crowd from new work, so a join is not refused before a hold is. A hold that brings a
/// waiting room's access also goes first: the room already paced it (it admits less
/// when the server is loaded), and refusing it would give a buyer who waited their turn
/// a 503 after all. The header is only looked at here, not checked: a forged one is
/// refused by the hold's access check before any seat is asked for.
fn class_of(path: &str, with_access: bool) -> Class {
    let finishing = ["/v1/holds/", "/v1/orders/", "/v1/payments/webhooks/"];
    let admitted_hold = with_access && path.starts_with("/v1/events/") && path.ends_with("/holds");
    if finishing.iter().any(|prefix| path.starts_with(prefix)) || is_queue_join(path) || admitted_hold {
        Class::Finish
    } else {
        Class::Start
    }
}

/// A buyer waiting for the payment to move (`payment_waiters.rs`): a slot held for the
/// whole wait would count an idle request as work, and its wait as latency, so the
/// handler admits each of its reads itself ([`admitted`]).
fn is_payment_long_poll(request: &Request) -> bool {
    let path = request.uri().path();
    request.method() == Method::GET
        && path.starts_with("/v1/holds/")
        && path.ends_with("/payment")
        && request.uri().query().is_some_and(|query| query.split('&').any(|pair| pair.starts_with("wait_ms=")))
}

/// `work` admitted and bounded as [`admit`] does a whole request: for a handler whose
/// request is not held in flight while it waits. Refused: 503 `overloaded`.
pub async fn admitted<F: Future>(shared: &Shared, class: Class, work: F) -> Result<F::Output, ApiError> {
    let Some(admitted) = shared.overload.admit(class) else {
        count_rejection("overloaded", class);
        let message = "the server is at capacity; retry after the given seconds";
        return Err(ApiError::unavailable("overloaded", message, shared.overload.retry_after_s()));
    };
    let deadline = admitted.at() + Duration::from_millis(shared.http.request_timeout_ms);
    let done = deadline::serve_within(deadline, work).await;
    admitted.completed();
    Ok(done)
}

fn is_queue_join(path: &str) -> bool {
    path.starts_with("/v1/events/") && path.ends_with("/queue")
}

fn is_availability_poll(method: &Method, path: &str) -> bool {
    method == Method::GET && path.starts_with("/v1/events/") && path.ends_with("/availability")
}

/// The server's timeout, or the client's `X-Request-Timeout-Ms` if that is shorter.
fn request_timeout(request: &Request, server_ms: u64) -> Result<Duration, ApiError> {
    let Some(value) = request.headers().get(&REQUEST_TIMEOUT_HEADER) else {
        return Ok(Duration::from_millis(server_ms));
    };
    let client_ms = value.to_str().ok().and_then(|text| text.parse::<u64>().ok()).filter(|ms| *ms > 0);
    let Some(client_ms) = client_ms else {
        return Err(ApiError::bad_request(
            "invalid_request_timeout",
            "X-Request-Timeout-Ms must be a whole number of milliseconds, at least 1",
        ));
    };
    Ok(Duration::from_millis(client_ms.min(server_ms)))
}

/// 503 `overloaded` with `Retry-After`, from the prebuilt body.
fn overloaded(retry_after_s: u64) -> Response {
    let mut response = Response::new(Body::from(OVERLOADED_BODY));
    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(RETRY_AFTER, HeaderValue::from(retry_after_s));
    response.extensions_mut().insert(ErrorCode("overloaded"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buyers_finishing_a_sale_are_told_from_those_starting_one() {
        assert_eq!(class_of("/v1/holds/h1/confirm", false), Class::Finish);
        assert_eq!(class_of("/v1/holds/h1", false), Class::Finish);
        assert_eq!(class_of("/v1/orders/o1/cancel", false), Class::Finish);
        assert_eq!(class_of("/v1/payments/webhooks/stripe", false), Class::Finish);
        assert_eq!(class_of("/v1/events/demo/queue", false), Class::Finish);
        assert_eq!(class_of("/v1/payments/config", false), Class::Start);
        assert_eq!(class_of("/v1/events/demo/holds", false), Class::Start);
        assert_eq!(class_of("/v1/events/demo/holds", true), Class::Finish, "let in by the waiting room");
        assert_eq!(class_of("/v1/events/demo/queue", true), Class::Finish);
        assert_eq!(class_of("/v1/events", true), Class::Start, "an access only speeds up holds");
        assert_eq!(class_of("/v1/events", false), Class::Start);
        assert_eq!(class_of("/v1/gates/g1/scan", false), Class::Start);
        assert!(is_availability_poll(&Method::GET, "/v1/events/demo/availability"));
        assert!(!is_availability_poll(&Method::POST, "/v1/events/demo/availability"));
    }

    #[test]
    fn the_overloaded_body_is_the_one_error_format() {
        let body: serde_json::Value = serde_json::from_str(OVERLOADED_BODY).unwrap();
        assert_eq!(body["error"]["code"], "overloaded");
        assert!(body["error"]["message"].is_string());
    }
}
