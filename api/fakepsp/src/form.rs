//! Stripe's request parameters: `application/x-www-form-urlencoded` pairs whose nested
//! keys are bracketed (`metadata[hakken_hold]=h1`, `expand[0]=latest_charge`).
//!
//! The parameters are kept as the flat list of pairs they arrive as; [`Params`] answers
//! the few questions the endpoints ask (a scalar, a metadata map, unknown names) with
//! Stripe's error for each malformed input. Query strings of GETs are parsed the same way.

use std::collections::BTreeMap;

use crate::state::ApiError;

/// Stripe's metadata limits: 50 keys, keys up to 40 characters, values up to 500.
pub const METADATA_KEYS_MAX: usize = 50;
pub const METADATA_KEY_CHARS_MAX: usize = 40;
pub const METADATA_VALUE_CHARS_MAX: usize = 500;

/// The parameters of one request, in arrival order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    pub fn parse(body: &[u8]) -> Params {
        Params {
            pairs: form_urlencoded::parse(body).map(|(key, value)| (key.into_owned(), value.into_owned())).collect(),
        }
    }

    /// The parameters sorted by name: two requests with the same parameters in another
    /// order are the same request for idempotency.
    pub fn canonical(&self) -> Vec<(String, String)> {
        let mut pairs = self.pairs.clone();
        pairs.sort();
        pairs
    }

    /// Refuses any parameter whose top-level name (before `[`) is not in `allowed`, as
    /// Stripe does (`parameter_unknown`).
    pub fn only(&self, allowed: &[&str]) -> Result<(), ApiError> {
        for (key, _) in &self.pairs {
            let name = key.split('[').next().unwrap_or(key);
            if !allowed.contains(&name) {
                return Err(ApiError::invalid(
                    "parameter_unknown",
                    Some(key),
                    format!("Received unknown parameter: {key}"),
                ));
            }
        }
        Ok(())
    }

    /// The value of a plain (unbracketed) parameter; the last one wins when repeated.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.pairs.iter().rev().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }

    pub fn integer(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.text(name) {
            None => Ok(None),
            Some(text) => text.parse::<i64>().map(Some).map_err(|_| {
                ApiError::invalid("parameter_invalid_integer", Some(name), format!("Invalid integer: {text}"))
            }),
        }
    }

    pub fn boolean(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.text(name) {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(text) => {
                Err(ApiError::invalid("parameter_invalid_boolean", Some(name), format!("Invalid boolean: {text}")))
            }
        }
    }

    /// `metadata[key]=value` pairs as a map, within Stripe's limits. Empty values are
    /// dropped (Stripe's way to unset a key).
    pub fn metadata(&self) -> Result<BTreeMap<String, String>, ApiError> {
        let mut metadata = BTreeMap::new();
        for (key, value) in &self.pairs {
            if key == "metadata" {
                // `metadata=` (empty) clears metadata in Stripe; on a new object it is nothing.
                if value.is_empty() {
                    continue;
                }
                return Err(ApiError::invalid("parameter_invalid_string", Some("metadata"), "Invalid object".into()));
            }
            let Some(inner) = key.strip_prefix("metadata[").and_then(|rest| rest.strip_suffix(']')) else {
                continue;
            };
            if inner.is_empty() || inner.contains('[') || inner.contains(']') {
                return Err(ApiError::invalid(
                    "parameter_invalid_string",
                    Some(key),
                    format!("Invalid metadata key: {key}"),
                ));
            }
            if inner.chars().count() > METADATA_KEY_CHARS_MAX {
                return Err(ApiError::invalid(
                    "parameter_invalid_string",
                    Some(key),
                    format!("Metadata keys can have up to {METADATA_KEY_CHARS_MAX} characters"),
                ));
            }
            if value.chars().count() > METADATA_VALUE_CHARS_MAX {
                return Err(ApiError::invalid(
                    "parameter_invalid_string",
                    Some(key),
                    format!("Metadata values can have up to {METADATA_VALUE_CHARS_MAX} characters"),
                ));
            }
            if value.is_empty() {
                metadata.remove(inner);
            } else {
                metadata.insert(inner.to_string(), value.clone());
            }
        }
        if metadata.len() > METADATA_KEYS_MAX {
            return Err(ApiError::invalid(
                "parameter_invalid_string",
                Some("metadata"),
                format!("Metadata can have up to {METADATA_KEYS_MAX} keys"),
            ));
        }
        Ok(metadata)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bracketed_metadata_and_scalars() {
        let params =
            Params::parse(b"amount=1290&currency=eur&metadata%5Bhakken_hold%5D=h%201&metadata[e]=x&confirm=true");
        assert_eq!(params.integer("amount"), Ok(Some(1290)));
        assert_eq!(params.text("currency"), Some("eur"));
        assert_eq!(params.boolean("confirm"), Ok(Some(true)));
        let metadata = params.metadata().unwrap();
        assert_eq!(metadata.get("hakken_hold").map(String::as_str), Some("h 1"));
        assert_eq!(metadata.len(), 2);
        assert!(params.only(&["amount", "currency", "metadata", "confirm"]).is_ok());
        let refused = params.only(&["amount", "currency", "metadata"]).unwrap_err();
        assert_eq!(refused.code, Some("parameter_unknown"));
        assert_eq!(refused.param.as_deref(), Some("confirm"));
    }

    #[test]
    fn malformed_values_are_stripe_errors() {
        let params = Params::parse(b"amount=12.5&confirm=yes&metadata[a][b]=c");
        assert_eq!(params.integer("amount").unwrap_err().code, Some("parameter_invalid_integer"));
        assert_eq!(params.boolean("confirm").unwrap_err().code, Some("parameter_invalid_boolean"));
        assert!(params.metadata().is_err());
        let long_key = format!("metadata[{}]=v", "k".repeat(41));
        assert!(Params::parse(long_key.as_bytes()).metadata().is_err());
    }

    #[test]
    fn canonical_order_ignores_arrival_order() {
        assert_eq!(Params::parse(b"a=1&b=2").canonical(), Params::parse(b"b=2&a=1").canonical());
        assert_ne!(Params::parse(b"a=1&b=2").canonical(), Params::parse(b"a=1&b=3").canonical());
    }
}
