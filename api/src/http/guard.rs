//! What stands between a request and the engine: the global in-flight limit, the
//! request timeout, per-customer request rates, the admin token, and the per-route
//! metrics and log line of every request.
//!
//! Refusals here cost no allocation beyond the answer and never wait: a server at its
//! limits answers 503 + Retry-After (or 429) at once and keeps serving what it admitted.

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use dashmap::DashMap;
use metrics::{Counter, Gauge, Histogram};

use crate::http::app::Shared;
use crate::http::error::{ApiError, ErrorCode};

pub const REQUESTS_TOTAL: &str = "hakken_http_requests_total";
pub const REQUEST_SECONDS: &str = "hakken_http_request_duration_seconds";
pub const IN_FLIGHT: &str = "hakken_http_requests_in_flight";
pub const REJECTIONS_TOTAL: &str = "hakken_http_rejections_total";

/// Metric handles per (route template, method, status), registered once: looking a
/// labelled metric up in the recorder on every request cost more CPU than the rest of
/// the request's metrics and logging together (measured at 10,000 orders/s).
pub struct RouteMetrics {
    handles: DashMap<(Box<str>, Method, u16), (Counter, Histogram)>,
    in_flight: Gauge,
}

impl Default for RouteMetrics {
    fn default() -> Self {
        RouteMetrics { handles: DashMap::new(), in_flight: metrics::gauge!(IN_FLIGHT) }
    }
}

impl RouteMetrics {
    fn record(&self, route: &str, method: &Method, status: u16, elapsed: Duration) {
        let key = (Box::from(route), method.clone(), status);
        let handles = self.handles.entry(key).or_insert_with(|| {
            let (method, route) = (method.to_string(), route.to_owned());
            let counter =
                metrics::counter!(REQUESTS_TOTAL, "method" => method.clone(), "route" => route.clone(), "status" => status.to_string());
            let histogram = metrics::histogram!(REQUEST_SECONDS, "method" => method, "route" => route);
            (counter, histogram)
        });
        let (counter, histogram) = handles.value();
        counter.increment(1);
        histogram.record(elapsed.as_secs_f64());
    }
}

/// Outermost layer: counts and times every request by route template and status.
pub async fn observe(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request.extensions().get::<MatchedPath>().cloned();
    let response = next.run(request).await;
    let elapsed = started.elapsed();
    let status = response.status();
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    shared.route_metrics.record(route, &method, status.as_u16(), elapsed);
    let code = response.extensions().get::<ErrorCode>().map(|code| code.0);
    if status.is_server_error() && status.as_u16() != 503 {
        tracing::error!(%method, %route, status = status.as_u16(), ?code, "request failed");
    } else {
        tracing::debug!(%method, %route, status = status.as_u16(), ?code, micros = elapsed.as_micros() as u64, "request");
    }
    response
}

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
    shared.route_metrics.in_flight.set(admitted as f64 + 1.0);
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

/// Checks `Authorization: Bearer <admin token>` (in constant time).
pub fn require_admin(shared: &Shared, headers: &HeaderMap) -> Result<(), ApiError> {
    require_bearer(&shared.admin_token, headers, "admin", "admin_disabled", "HAKKEN_ADMIN_TOKEN")
}

/// Checks `Authorization: Bearer <gate token>` (in constant time).
pub fn require_gate(shared: &Shared, headers: &HeaderMap) -> Result<(), ApiError> {
    require_bearer(&shared.gate_token, headers, "gate", "gates_disabled", "HAKKEN_GATE_TOKEN")
}

/// Checks a bearer token; an empty configured token turns the endpoints off (403).
fn require_bearer(
    token: &str,
    headers: &HeaderMap,
    role: &str,
    disabled_code: &'static str,
    variable: &str,
) -> Result<(), ApiError> {
    if token.is_empty() {
        let message = format!("{role} endpoints are off: no {role} token is configured ({variable})");
        return Err(ApiError::new(axum::http::StatusCode::FORBIDDEN, disabled_code, message));
    }
    let given =
        headers.get(AUTHORIZATION).and_then(|value| value.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    match given {
        None => Err(ApiError::unauthorized(format!("this endpoint needs `Authorization: Bearer <{role} token>`"))),
        Some(given) if constant_time_eq(given.as_bytes(), token.as_bytes()) => Ok(()),
        Some(_) => Err(ApiError::unauthorized(format!("the {role} token is wrong"))),
    }
}

/// Whether the request carries the admin token (without refusing it if not).
pub fn is_admin(shared: &Shared, headers: &HeaderMap) -> bool {
    !shared.admin_token.is_empty() && require_admin(shared, headers).is_ok()
}

pub fn constant_time_eq(left: &[u8], right: &[u8]) -> bool {
    left.len() == right.len() && left.iter().zip(right).fold(0u8, |diff, (a, b)| diff | (a ^ b)) == 0
}

/// Slots of the per-customer token buckets; customers hash into them, so memory is
/// fixed however many customers arrive (two customers sharing a slot share its rate).
const LIMITER_SLOTS: usize = 1 << 16;
/// Tokens are kept in thousandths so refills of a fraction of a token add up.
const MILLI: u64 = 1000;

/// Per-customer request rate (hold and confirm calls): a token bucket per slot, each
/// one `AtomicU64` = tokens (milli, high 24 bits) | last refill (ms, low 40 bits).
pub struct CustomerLimiter {
    slots: Vec<AtomicU64>,
    per_s: u64,
    burst: u64,
    epoch: Instant,
}

const MS_BITS: u32 = 40;
const MS_MASK: u64 = (1 << MS_BITS) - 1;

impl CustomerLimiter {
    pub fn new(per_s: u32, burst: u32) -> CustomerLimiter {
        let slots = if burst == 0 { 0 } else { LIMITER_SLOTS };
        CustomerLimiter {
            slots: (0..slots).map(|_| AtomicU64::new(0)).collect(),
            per_s: u64::from(per_s),
            burst: u64::from(burst).min((1 << (64 - MS_BITS)) / MILLI - 1),
            epoch: Instant::now(),
        }
    }

    /// Takes one token of `customer`'s bucket, or says how many seconds until one refills.
    pub fn check(&self, customer: &str) -> Result<(), u64> {
        if self.slots.is_empty() {
            return Ok(());
        }
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        customer.hash(&mut hasher);
        let slot = &self.slots[hasher.finish() as usize % self.slots.len()];
        // Offset by 1 so that a zero word means "never used, bucket full".
        let now_ms = (self.epoch.elapsed().as_millis() as u64 + 1) & MS_MASK;
        let capacity = self.burst * MILLI;
        let mut word = slot.load(Ordering::Relaxed);
        loop {
            let (tokens, last_ms) = if word == 0 { (capacity, now_ms) } else { (word >> MS_BITS, word & MS_MASK) };
            let refill = now_ms.saturating_sub(last_ms) * self.per_s; // milli-tokens: per_s per ms
            let tokens = (tokens + refill).min(capacity);
            if tokens < MILLI {
                let missing = MILLI - tokens;
                let wait_ms = if self.per_s == 0 { 60_000 } else { missing.div_ceil(self.per_s) };
                return Err(wait_ms.div_ceil(1000).max(1));
            }
            let next = ((tokens - MILLI) << MS_BITS) | now_ms;
            match slot.compare_exchange_weak(word, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return Ok(()),
                Err(current) => word = current,
            }
        }
    }
}

/// 429 for a customer over their request rate.
pub fn rate_limited(retry_after_s: u64) -> ApiError {
    metrics::counter!(REJECTIONS_TOTAL, "reason" => "customer_rate").increment(1);
    ApiError::new(
        axum::http::StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        "too many requests for this customer; retry after the given seconds",
    )
    .retry_after(retry_after_s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_refusals_then_refill() {
        let limiter = CustomerLimiter::new(1000, 3);
        for _ in 0..3 {
            assert_eq!(limiter.check("alice"), Ok(()));
        }
        assert!(limiter.check("alice").is_err(), "burst spent");
        assert_eq!(limiter.check("bob"), Ok(()), "others unaffected");
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(limiter.check("alice"), Ok(()), "1000/s refills a token within 5 ms");
    }

    #[test]
    fn retry_after_is_whole_seconds_until_a_token() {
        let limiter = CustomerLimiter::new(1, 1);
        assert_eq!(limiter.check("alice"), Ok(()));
        assert_eq!(limiter.check("alice"), Err(1));
        assert_eq!(CustomerLimiter::new(0, 0).check("anyone"), Ok(()), "0 = off");
    }

    #[test]
    fn tokens_compare_in_constant_time_and_exactly() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
    }
}
