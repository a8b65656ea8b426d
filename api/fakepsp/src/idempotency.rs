//! Stripe's idempotency rules for POSTs with an `Idempotency-Key` header.
//!
//! The first answer to a key is stored (errors that happened while executing too: a
//! decline, a state error, an injected 500) and every later request with the key gets the
//! same status and body back, marked `Idempotent-Replayed: true`. The same key with another
//! endpoint or other parameters is 400 `idempotency_error`. Requests refused before they
//! executed (bad parameters, bad key) store nothing, as with Stripe. Keys are scoped by
//! the API key used. Stripe forgets keys after 24 hours; this store forgets the oldest
//! past `Config::idempotency_keys_max` ([`crate::Config`]) instead, so its memory is bounded.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;

use crate::state::ApiError;

/// Stripe's limit on the key's length.
pub const KEY_CHARS_MAX: usize = 255;

/// What a request was, to tell a retry from a different request under the same key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fingerprint {
    pub method: String,
    pub path: String,
    pub params: Vec<(String, String)>,
}

#[derive(Clone, Debug)]
pub struct StoredAnswer {
    pub status: u16,
    pub body: Bytes,
}

struct Entry {
    fingerprint: Fingerprint,
    answer: StoredAnswer,
}

/// What to do with a request that carries a key.
pub enum Lookup {
    /// First use: execute it, then [`Store::insert`] the answer.
    New,
    Replay(StoredAnswer),
}

pub struct Store {
    keys_max: usize,
    entries: HashMap<(String, String), Entry>,
    /// Insertion order, for forgetting the oldest key first.
    order: VecDeque<(String, String)>,
}

impl Store {
    pub fn new(keys_max: usize) -> Store {
        assert!(keys_max > 0, "the idempotency store needs room for one key");
        Store { keys_max, entries: HashMap::new(), order: VecDeque::new() }
    }

    pub fn validate_key(key: &str) -> Result<(), ApiError> {
        if key.is_empty() || key.chars().count() > KEY_CHARS_MAX {
            return Err(ApiError::invalid(
                "idempotency_key_invalid",
                None,
                format!("Idempotency keys must be 1 to {KEY_CHARS_MAX} characters long"),
            ));
        }
        Ok(())
    }

    pub fn lookup(&self, scope: &str, key: &str, fingerprint: &Fingerprint) -> Result<Lookup, ApiError> {
        let Some(entry) = self.entries.get(&(scope.to_string(), key.to_string())) else {
            return Ok(Lookup::New);
        };
        if entry.fingerprint.method != fingerprint.method || entry.fingerprint.path != fingerprint.path {
            return Err(ApiError {
                kind: "idempotency_error",
                ..ApiError::invalid(
                    "idempotency_key_in_use",
                    None,
                    format!(
                        "Keys for idempotent requests can only be used for the same endpoint they were first used for ('{} {}'). Try using a key other than '{key}' if you meant to execute a different request.",
                        entry.fingerprint.method, entry.fingerprint.path
                    ),
                )
            });
        }
        if entry.fingerprint.params != fingerprint.params {
            return Err(ApiError {
                kind: "idempotency_error",
                ..ApiError::invalid(
                    "idempotency_key_in_use",
                    None,
                    format!("Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '{key}' if you meant to execute a different request."),
                )
            });
        }
        Ok(Lookup::Replay(entry.answer.clone()))
    }

    /// Stores the first answer to `key`; a second insert of the same key keeps the first.
    pub fn insert(&mut self, scope: &str, key: &str, fingerprint: Fingerprint, answer: StoredAnswer) {
        let entry_key = (scope.to_string(), key.to_string());
        if self.entries.contains_key(&entry_key) {
            return;
        }
        while self.entries.len() >= self.keys_max {
            let Some(oldest) = self.order.pop_front() else { break };
            self.entries.remove(&oldest);
        }
        self.order.push_back(entry_key.clone());
        self.entries.insert(entry_key, Entry { fingerprint, answer });
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fingerprint(path: &str, amount: &str) -> Fingerprint {
        Fingerprint { method: "POST".into(), path: path.into(), params: vec![("amount".into(), amount.into())] }
    }

    fn answer(status: u16) -> StoredAnswer {
        StoredAnswer { status, body: Bytes::from_static(b"{}") }
    }

    #[test]
    fn replays_same_request_and_refuses_other_parameters_or_endpoint() {
        let mut store = Store::new(10);
        let first = fingerprint("/v1/payment_intents", "100");
        assert!(matches!(store.lookup("sk", "k1", &first), Ok(Lookup::New)));
        store.insert("sk", "k1", first.clone(), answer(500));
        match store.lookup("sk", "k1", &first) {
            Ok(Lookup::Replay(stored)) => assert_eq!(stored.status, 500),
            _ => panic!("expected a replay"),
        }
        let other_params = store.lookup("sk", "k1", &fingerprint("/v1/payment_intents", "200")).err().unwrap();
        assert_eq!((other_params.status, other_params.kind), (400, "idempotency_error"));
        let other_path = store.lookup("sk", "k1", &fingerprint("/v1/refunds", "100")).err().unwrap();
        assert_eq!(other_path.kind, "idempotency_error");
        assert!(matches!(store.lookup("sk_other", "k1", &first), Ok(Lookup::New)));
        store.insert("sk", "k1", first.clone(), answer(200));
        assert!(matches!(store.lookup("sk", "k1", &first), Ok(Lookup::Replay(StoredAnswer { status: 500, .. }))));
    }

    #[test]
    fn oldest_keys_are_forgotten_past_the_limit() {
        let mut store = Store::new(2);
        for key in ["a", "b", "c"] {
            store.insert("sk", key, fingerprint("/p", "1"), answer(200));
        }
        assert_eq!(store.len(), 2);
        assert!(matches!(store.lookup("sk", "a", &fingerprint("/p", "1")), Ok(Lookup::New)));
        assert!(matches!(store.lookup("sk", "c", &fingerprint("/p", "1")), Ok(Lookup::Replay(_))));
    }

    #[test]
    fn key_length_is_bounded() {
        assert!(Store::validate_key(&"k".repeat(KEY_CHARS_MAX)).is_ok());
        assert!(Store::validate_key(&"k".repeat(KEY_CHARS_MAX + 1)).is_err());
        assert!(Store::validate_key("").is_err());
    }
}
