//! `Idempotency-Key` on every POST: a retry with the same key gets the first answer
//! again and never makes a second hold or order.
//!
//! The first request with a key runs in a task of its own, so it finishes (and its
//! answer is stored) even if the client hangs up or the request times out. Answers
//! are stored durably (through the store's group commit) for `idempotency_ttl_s`,
//! keyed by path and key, with a fingerprint of the body: the same key with another
//! body is refused (422), a retry while the first is still running gets 409 + Retry-After.
//! Answers that say "try again" (429, 5xx) are not stored, so a retry runs again.
//!
//! The change and its stored answer are two writes: a crash between them (a window of
//! one disk sync) loses the answer, and the retry then runs again. Confirming twice
//! cannot sell twice (a hold confirms once); a hold retried this way is a second hold
//! that expires unpaid.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use dashmap::DashMap;
use hakken_engine::store::Store;

use crate::http::app::Shared;
use crate::http::error::ApiError;

pub const HEADER: &str = "idempotency-key";
pub const REPLAYED_HEADER: &str = "idempotency-replayed";
const KEY_BYTES_MAX: usize = 255;
const PRUNE_INTERVAL: Duration = Duration::from_secs(600);

pub struct Idempotency {
    store: Arc<Store>,
    ttl_ms: u64,
    /// Keys whose first request is running now.
    running: DashMap<Box<[u8]>, ()>,
}

/// Marks a key as running until dropped.
struct Running<'a> {
    idempotency: &'a Idempotency,
    key: Box<[u8]>,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.idempotency.running.remove(&self.key);
    }
}

/// A stored answer: `[fingerprint: u64 BE][status: u16 BE][JSON body]`.
struct Stored {
    fingerprint: u64,
    status: StatusCode,
    body: Bytes,
}

impl Stored {
    fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(10 + self.body.len());
        bytes.extend_from_slice(&self.fingerprint.to_be_bytes());
        bytes.extend_from_slice(&self.status.as_u16().to_be_bytes());
        bytes.extend_from_slice(&self.body);
        bytes
    }

    fn decode(bytes: &[u8]) -> Option<Stored> {
        let (fingerprint, rest) = bytes.split_first_chunk::<8>()?;
        let (status, body) = rest.split_first_chunk::<2>()?;
        Some(Stored {
            fingerprint: u64::from_be_bytes(*fingerprint),
            status: StatusCode::from_u16(u16::from_be_bytes(*status)).ok()?,
            body: Bytes::copy_from_slice(body),
        })
    }

    fn into_response(self) -> Response {
        let mut response = Response::new(Body::from(self.body.clone()));
        *response.status_mut() = self.status;
        if !self.body.is_empty() {
            response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        response.headers_mut().insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
        response
    }
}

impl Idempotency {
    pub fn new(store: Arc<Store>, ttl_s: u64) -> Idempotency {
        Idempotency { store, ttl_ms: ttl_s.saturating_mul(1000), running: DashMap::new() }
    }

    fn begin(&self, key: &[u8]) -> Option<Running<'_>> {
        let key: Box<[u8]> = key.into();
        match self.running.entry(key.clone()) {
            dashmap::Entry::Occupied(_) => None,
            dashmap::Entry::Vacant(slot) => {
                slot.insert(());
                Some(Running { idempotency: self, key })
            }
        }
    }

    /// The stored answer for `key`, read on a blocking thread (it may touch the disk).
    async fn stored(&self, key: &[u8], now_ms: u64) -> Result<Option<Stored>, ApiError> {
        let (store, key) = (self.store.clone(), key.to_vec());
        let unavailable = || ApiError::unavailable("storage_unavailable", "stored answers cannot be read now", 5);
        let found = tokio::task::spawn_blocking(move || store.get_idempotent(&key, now_ms))
            .await
            .map_err(|_| unavailable())?
            .map_err(|error| {
                tracing::error!(%error, "reading an idempotency key failed");
                unavailable()
            })?;
        Ok(found.and_then(|bytes| Stored::decode(&bytes)))
    }

    async fn store(&self, key: &[u8], now_ms: u64, answer: &Stored) {
        let (done, stored) = tokio::sync::oneshot::channel();
        let expires_at = now_ms.saturating_add(self.ttl_ms);
        self.store.wal().put_idempotent(
            key,
            expires_at,
            &answer.encode(),
            Box::new(move |result| {
                let _ = done.send(result);
            }),
        );
        match stored.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "an idempotent answer was not stored; a retry will run again"),
            Err(_) => tracing::warn!("the store shut down before an idempotent answer was stored"),
        }
    }

    /// Deletes expired answers every few minutes, for as long as the server runs.
    pub async fn prune_forever(self: Arc<Self>, clock: hakken_engine::clock::Clock) {
        let mut ticks = tokio::time::interval(PRUNE_INTERVAL);
        loop {
            ticks.tick().await;
            let store = self.store.clone();
            let now_ms = clock.now().0;
            match tokio::task::spawn_blocking(move || store.prune_idempotent(now_ms)).await {
                Ok(Ok(pruned)) if pruned > 0 => tracing::info!(pruned, "expired idempotency keys deleted"),
                Ok(Err(error)) => tracing::warn!(%error, "pruning idempotency keys failed"),
                _ => {}
            }
        }
    }
}

/// FNV-1a: stable across builds and restarts (the std hasher is not promised to be).
fn fingerprint(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &byte in part.iter().chain(&[0xff]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

/// Answers worth replaying: not those that tell the client to try again.
fn replayable(status: StatusCode) -> bool {
    !(status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS)
}

pub async fn idempotent(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    if request.method() != Method::POST || !request.headers().contains_key(HEADER) {
        return next.run(request).await;
    }
    match run_once(&shared, request, next).await {
        Ok(response) | Err(response) => response,
    }
}

async fn run_once(shared: &Arc<Shared>, request: Request, next: Next) -> Result<Response, Response> {
    let header = request.headers().get(HEADER).expect("checked by the caller");
    let valid =
        !header.is_empty() && header.len() <= KEY_BYTES_MAX && header.as_bytes().iter().all(u8::is_ascii_graphic);
    if !valid {
        let message = format!("`Idempotency-Key` must be 1-{KEY_BYTES_MAX} visible ASCII characters");
        return Err(ApiError::bad_request("invalid_idempotency_key", message).into_response());
    }
    let app = shared.app().map_err(IntoResponse::into_response)?.clone();
    let mut key = request.uri().path().as_bytes().to_vec();
    key.push(b'\n');
    key.extend_from_slice(header.as_bytes());

    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, shared.http.body_bytes_max).await.map_err(|_| {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", "the request body is too large").into_response()
    })?;
    let query = parts.uri.query().unwrap_or("").as_bytes();
    let fingerprint = fingerprint(&[parts.method.as_str().as_bytes(), parts.uri.path().as_bytes(), query, &body]);

    let task_app = app.clone();
    let request = Request::from_parts(parts, Body::from(body));
    // The first request runs to the end in its own task, whoever stops waiting for it.
    let task = tokio::spawn(async move {
        let idempotency = &task_app.idempotency;
        let Some(_running) = idempotency.begin(&key) else {
            let message = "a request with this `Idempotency-Key` is still running; retry after the given seconds";
            return ApiError::conflict("idempotency_key_in_use", message).retry_after(1).into_response();
        };
        let now_ms = task_app.now().0;
        match idempotency.stored(&key, now_ms).await {
            Err(error) => return error.into_response(),
            Ok(Some(stored)) if stored.fingerprint != fingerprint => {
                let message = "this `Idempotency-Key` was used with another request; use a new key";
                return ApiError::invalid("idempotency_key_reused", message).into_response();
            }
            Ok(Some(stored)) => return stored.into_response(),
            Ok(None) => {}
        }
        let response = next.run(request).await;
        if !replayable(response.status()) {
            return response;
        }
        let (parts, body) = response.into_parts();
        let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
            return ApiError::unavailable("internal", "the answer could not be read", 1).into_response();
        };
        idempotency.store(&key, now_ms, &Stored { fingerprint, status: parts.status, body: body.clone() }).await;
        Response::from_parts(parts, Body::from(body))
    });
    task.await.map_err(|_| ApiError::unavailable("internal", "the request failed", 1).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_answers_round_trip() {
        let stored = Stored { fingerprint: 42, status: StatusCode::CREATED, body: Bytes::from_static(b"{\"a\":1}") };
        let decoded = Stored::decode(&stored.encode()).unwrap();
        assert_eq!((decoded.fingerprint, decoded.status, decoded.body), (42, StatusCode::CREATED, stored.body));
        assert!(Stored::decode(b"short").is_none());
    }

    #[test]
    fn fingerprints_separate_parts() {
        assert_ne!(fingerprint(&[b"ab", b"c"]), fingerprint(&[b"a", b"bc"]));
        assert_eq!(fingerprint(&[b"POST", b"/v1/x"]), fingerprint(&[b"POST", b"/v1/x"]));
    }

    #[test]
    fn only_final_answers_replay() {
        assert!(replayable(StatusCode::CREATED) && replayable(StatusCode::CONFLICT));
        assert!(!replayable(StatusCode::SERVICE_UNAVAILABLE) && !replayable(StatusCode::TOO_MANY_REQUESTS));
    }
}
