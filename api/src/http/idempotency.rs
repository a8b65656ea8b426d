//! The store side of `Idempotency-Key`: which keys are running now, the stored
//! answers (framed [`IdempotentAnswer`]s, through the store's group commit, kept for
//! `idempotency_ttl_s`) and the fingerprint that tells a retry from another request.
//!
//! A leaf of the server's state ([`super::app`] holds one [`Idempotency`]): the layer
//! that replays answers and the handlers' [`call_changing`](super::idempotency_layer::call_changing)
//! live in [`super::idempotency_layer`], which uses the state, never the other way round.
//! A damaged stored answer is an error (503 and a logged error), never a miss. Answer
//! bodies are stored sealed ([`crate::privacy`]) and opened on replay.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::StatusCode;
use dashmap::DashMap;
use hakken_engine::store::{CachedRead, StorageError, Store, StoreError};
use hakken_engine::wal::IdempotentAnswer;

use crate::http::error::ApiError;
use crate::privacy::Privacy;

const PRUNE_INTERVAL: Duration = Duration::from_secs(600);

pub struct Idempotency {
    store: Arc<Store>,
    ttl_ms: u64,
    /// Keys whose first request is running now.
    running: DashMap<Box<[u8]>, ()>,
}

/// Marks a key as running until dropped.
pub(crate) struct Running<'a> {
    idempotency: &'a Idempotency,
    key: Box<[u8]>,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.idempotency.running.remove(&self.key);
    }
}

/// The idempotency key of the request being served, its fingerprint and when its
/// answer expires: where a section-changing handler's answer is stored.
#[derive(Clone, Debug)]
pub struct Slot {
    pub(crate) key: Vec<u8>,
    pub(crate) fingerprint: u64,
    pub(crate) expires_at_ms: u64,
    /// Seals the answer's body before it is stored: answers may carry an order view
    /// with the buyer's name and email, which never go to disk in the clear.
    pub(crate) privacy: Arc<Privacy>,
}

impl Idempotency {
    pub fn new(store: Arc<Store>, ttl_s: u64) -> Idempotency {
        Idempotency { store, ttl_ms: ttl_s.saturating_mul(1000), running: DashMap::new() }
    }

    /// When an answer stored at `now_ms` expires.
    pub(crate) fn expires_at_ms(&self, now_ms: u64) -> u64 {
        now_ms.saturating_add(self.ttl_ms)
    }

    pub(crate) fn begin(&self, key: &[u8]) -> Option<Running<'_>> {
        let key: Box<[u8]> = key.into();
        match self.running.entry(key.clone()) {
            dashmap::Entry::Occupied(_) => None,
            dashmap::Entry::Vacant(slot) => {
                slot.insert(());
                Some(Running { idempotency: self, key })
            }
        }
    }

    /// The stored answer for `key`: from memory when it can be (almost always: most
    /// keys were never stored, and bloom filters say so), else on a blocking thread
    /// (the hop costs two context switches, paid on every POST otherwise). A damaged
    /// one is an error (503), never "not stored".
    pub(crate) async fn stored(&self, key: &[u8], now_ms: u64) -> Result<Option<IdempotentAnswer>, ApiError> {
        let unavailable = |error: StoreError| {
            tracing::error!(%error, "reading an idempotency key failed");
            ApiError::unavailable("storage_unavailable", "stored answers cannot be read now", 5)
        };
        if let CachedRead::Found(answer) = self.store.get_idempotent_cached(key, now_ms).map_err(unavailable)? {
            return Ok(answer);
        }
        let (store, key) = (self.store.clone(), key.to_vec());
        tokio::task::spawn_blocking(move || store.get_idempotent(&key, now_ms))
            .await
            .map_err(|_| ApiError::unavailable("storage_unavailable", "stored answers cannot be read now", 5))?
            .map_err(unavailable)
    }

    /// Stores the answer of a request that changed nothing (answers to changes are
    /// stored with them); never blocks a worker: a full writer queue skips it.
    pub(crate) async fn store(&self, slot: Slot, status: StatusCode, body: &Bytes) {
        let (done, stored) = tokio::sync::oneshot::channel();
        let answer = IdempotentAnswer {
            expires_at_ms: slot.expires_at_ms,
            fingerprint: slot.fingerprint,
            status: status.as_u16(),
            body: slot.privacy.seal_answer(body),
        };
        self.store.wal().put_idempotent(
            &slot.key,
            &answer,
            Box::new(move |result| {
                let _ = done.send(result);
            }),
        );
        match stored.await {
            Ok(Ok(())) => {}
            Ok(Err(StorageError::Busy)) => {
                tracing::warn!("the store is busy; an answer was not stored, a retry runs again")
            }
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
pub(crate) fn fingerprint(parts: &[&[u8]]) -> u64 {
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
pub(crate) fn replayable(status: StatusCode) -> bool {
    !(status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS)
}

#[cfg(test)]
mod tests {
    use super::*;

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
