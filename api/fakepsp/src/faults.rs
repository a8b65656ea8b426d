//! Fault injection: the ways a real PSP misbehaves that hakken must survive.
//!
//! One [`Faults`] value holds every knob; it is set from the command line at start and
//! changed at runtime with `POST /_fake/faults` (a JSON object with any subset of the
//! fields, merged into the current value; unknown fields are refused). Counters
//! (`*_next`) count down as they fire. The rules that pick a fault for a call or a webhook
//! are plain functions here; the HTTP layer and the webhook sender only act on the answer.

use serde::{Deserialize, Serialize};

/// Bounds on the knobs, so a typo cannot park the fake for a day.
pub const DELAY_MS_MAX: u64 = 3_600_000;
pub const DUPLICATES_MAX: u32 = 100;
pub const REORDER_BATCH_MAX: u32 = 10_000;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Faults {
    /// Every webhook delivery waits this long before its first attempt.
    pub webhook_delay_ms: u64,
    /// Each event is delivered this many extra times (same body, same `evt_` id).
    pub webhook_duplicates: u32,
    /// Above 1: events are held back until this many are waiting (or
    /// `webhook_reorder_hold_ms` passed since the first), then delivered newest first.
    pub webhook_reorder_batch: u32,
    pub webhook_reorder_hold_ms: u64,
    /// The next N events are never delivered (they stay listable in `GET /v1/events`).
    pub webhook_drop_next: u64,
    /// Paused: nothing is delivered (nor retried) until resumed; events queue up.
    pub webhooks_paused: bool,
    /// The next N matching API calls answer 500 `api_error` without executing.
    pub fail_next: u64,
    /// Whether an injected 500 is stored under the call's `Idempotency-Key` (Stripe stores
    /// the first answer, even a 500, so a retry with the same key gets the 500 again).
    pub fail_stores: bool,
    /// The next N matching API calls hang `timeout_hang_ms`, then the connection is closed
    /// without an answer.
    pub timeout_next: u64,
    pub timeout_hang_ms: u64,
    /// Whether a timed-out call executes first (its answer is lost, not its effect).
    pub timeout_applies: bool,
    /// If set, `fail_next` and `timeout_next` only fire on calls whose `"METHOD /path"`
    /// contains this text (e.g. `"/capture"`, `"POST /v1/payment_intents"`).
    pub api_fault_match: Option<String>,
    /// Above 0: "pay late". A successful confirm answers `processing`; the intent is
    /// authorized (and its event fires) this many milliseconds later.
    pub pay_late_ms: u64,
}

impl Default for Faults {
    fn default() -> Faults {
        Faults {
            webhook_delay_ms: 0,
            webhook_duplicates: 0,
            webhook_reorder_batch: 0,
            webhook_reorder_hold_ms: 1_000,
            webhook_drop_next: 0,
            webhooks_paused: false,
            fail_next: 0,
            fail_stores: true,
            timeout_next: 0,
            timeout_hang_ms: 30_000,
            timeout_applies: false,
            api_fault_match: None,
            pay_late_ms: 0,
        }
    }
}

/// What happens to one API call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiFault {
    Fail { stores: bool },
    Timeout { hang_ms: u64, applies: bool },
}

impl Faults {
    pub fn validate(&self) -> Result<(), String> {
        for (name, value) in [
            ("webhook_delay_ms", self.webhook_delay_ms),
            ("webhook_reorder_hold_ms", self.webhook_reorder_hold_ms),
            ("timeout_hang_ms", self.timeout_hang_ms),
            ("pay_late_ms", self.pay_late_ms),
        ] {
            if value > DELAY_MS_MAX {
                return Err(format!("{name} must be at most {DELAY_MS_MAX}"));
            }
        }
        if self.webhook_duplicates > DUPLICATES_MAX {
            return Err(format!("webhook_duplicates must be at most {DUPLICATES_MAX}"));
        }
        if self.webhook_reorder_batch > REORDER_BATCH_MAX {
            return Err(format!("webhook_reorder_batch must be at most {REORDER_BATCH_MAX}"));
        }
        Ok(())
    }

    /// `self` with the fields of `patch` (a JSON object) replaced, validated.
    pub fn merged(&self, patch: &serde_json::Value) -> Result<Faults, String> {
        let serde_json::Value::Object(patch) = patch else {
            return Err("the body must be a JSON object of fault fields".into());
        };
        let mut current = serde_json::to_value(self).expect("faults serialize");
        let fields = current.as_object_mut().expect("faults are an object");
        for (name, value) in patch {
            fields.insert(name.clone(), value.clone());
        }
        let merged: Faults = serde_json::from_value(current).map_err(|error| error.to_string())?;
        merged.validate()?;
        Ok(merged)
    }

    /// The fault for a call described as `"METHOD /path"`, counting it down.
    pub fn take_api_fault(&mut self, call: &str) -> Option<ApiFault> {
        if self.timeout_next == 0 && self.fail_next == 0 {
            return None;
        }
        if let Some(pattern) = &self.api_fault_match {
            if !call.contains(pattern.as_str()) {
                return None;
            }
        }
        if self.timeout_next > 0 {
            self.timeout_next -= 1;
            return Some(ApiFault::Timeout { hang_ms: self.timeout_hang_ms, applies: self.timeout_applies });
        }
        self.fail_next -= 1;
        Some(ApiFault::Fail { stores: self.fail_stores })
    }

    /// Whether the next event is dropped, counting it down.
    pub fn take_drop(&mut self) -> bool {
        if self.webhook_drop_next == 0 {
            return false;
        }
        self.webhook_drop_next -= 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_replaces_given_fields_and_refuses_unknown_or_out_of_bounds() {
        let faults = Faults::default();
        let merged = faults.merged(&json!({"fail_next": 2, "api_fault_match": "/capture"})).unwrap();
        assert_eq!(merged.fail_next, 2);
        assert_eq!(merged.api_fault_match.as_deref(), Some("/capture"));
        assert_eq!(merged.timeout_hang_ms, faults.timeout_hang_ms);
        assert!(faults.merged(&json!({"fail_nxt": 1})).unwrap_err().contains("fail_nxt"));
        assert!(faults.merged(&json!({"webhook_duplicates": 101})).is_err());
        assert!(faults.merged(&json!({"pay_late_ms": -1})).is_err());
        assert!(faults.merged(&json!([1])).is_err());
    }

    #[test]
    fn api_faults_count_down_and_respect_the_match() {
        let mut faults =
            Faults { fail_next: 1, timeout_next: 1, api_fault_match: Some("/capture".into()), ..Faults::default() };
        assert_eq!(faults.take_api_fault("POST /v1/payment_intents"), None);
        assert_eq!(
            faults.take_api_fault("POST /v1/payment_intents/pi_1/capture"),
            Some(ApiFault::Timeout { hang_ms: 30_000, applies: false })
        );
        assert_eq!(
            faults.take_api_fault("POST /v1/payment_intents/pi_1/capture"),
            Some(ApiFault::Fail { stores: true })
        );
        assert_eq!(faults.take_api_fault("POST /v1/payment_intents/pi_1/capture"), None);
    }

    #[test]
    fn drops_count_down() {
        let mut faults = Faults { webhook_drop_next: 2, ..Faults::default() };
        assert!(faults.take_drop());
        assert!(faults.take_drop());
        assert!(!faults.take_drop());
    }
}
