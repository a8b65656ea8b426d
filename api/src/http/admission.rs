//! Admission: the global in-flight limit and the request timeout.
//!
//! Refusals here cost no allocation beyond the answer and never wait: a server at its
//! limits answers 503 + Retry-After at once and keeps serving what it admitted.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::http::app::Shared;
use crate::http::error::ApiError;
use crate::http::route_metrics::REJECTIONS_TOTAL;

/// Admits at most `in_flight_max` requests at once and bounds each by the timeout.
/// New holds may use only [`NEW_HOLDS_SHARE`] of the limit: under overload the rest is
/// kept for buyers who already hold seats (confirm, release, extend), so the server
/// finishes sales it started instead of starting sales it cannot finish.
pub async fn admit(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    // Probes must answer on a loaded server: they are cheap and never queue.
    if matches!(request.uri().path(), "/healthz" | "/readyz") {
        return next.run(request).await;
    }
    let retry_after = shared.http.retry_after_s;
    let admitted = shared.in_flight.fetch_add(1, Ordering::AcqRel);
    let _slot = InFlightSlot(&shared);
    shared.route_metrics.set_in_flight(admitted + 1);
    let new_hold = request.method() == Method::POST && request.uri().path().ends_with("/holds");
    let limit = if new_hold {
        shared.http.in_flight_max * NEW_HOLDS_SHARE.0 / NEW_HOLDS_SHARE.1
    } else {
        shared.http.in_flight_max
    };
    if admitted >= limit {
        metrics::counter!(REJECTIONS_TOTAL, "reason" => "overloaded").increment(1);
        return ApiError::unavailable(
            "overloaded",
            "the server is at capacity; retry after the given seconds",
            retry_after,
        )
        .into_response();
    }
    let timeout = Duration::from_millis(shared.http.request_timeout_ms);
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            metrics::counter!(REJECTIONS_TOTAL, "reason" => "timeout").increment(1);
            ApiError::unavailable("timeout", "the request took too long; retry after the given seconds", retry_after)
                .into_response()
        }
    }
}

/// The share (numerator, denominator) of `in_flight_max` that new holds may fill.
const NEW_HOLDS_SHARE: (usize, usize) = (3, 4);

struct InFlightSlot<'a>(&'a Shared);

impl Drop for InFlightSlot<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}
