//! The payment-webhook storm: while buyers pay, the fake PSP (`hakken-fakepsp`)
//! misbehaves on purpose through its `/_fake/` control API, the ways a real PSP does:
//! webhooks duplicated, reordered, delayed, dropped or held back; API calls answered 500
//! or left hanging; payments authorized late. hakken must still make one order and one
//! capture of each payment (or one void), which the verdict then checks.
//!
//! The weather changes every `--storm-every`: each [`Squall`] first calms every fault,
//! then sets its own (`POST /_fake/faults` merges the fields it is given). It blows
//! until the buyers are done (or the drain gives up on them), then ends: faults calmed,
//! delivery resumed, held-back events flushed, so what follows (payments in doubt read
//! again, the settle, the verdict) sees hakken recover, not the storm still blowing. The fake's `/_fake/stats` at the end go into
//! the report.
//!
//! API faults are aimed at hakken's calls (`/capture`, `/cancel`, creating intents); a
//! buyer's confirm at the PSP may be caught too and is retried as a browser would.

use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Uri};
use serde::Serialize;
use serde_json::Value;

use crate::client::{Pool, PoolConfig, Target};

/// Calls the control API is given before the storm gives up on a squall.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(5);

/// One kind of bad weather: its name in the report and the faults it sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Squall {
    pub name: &'static str,
    /// A JSON object of `Faults` fields (see hakken-fakepsp's `faults.rs`).
    patch: &'static str,
}

/// Every squall, in the order the storm plays them (then again from the first).
pub const SQUALLS: [Squall; 9] = [
    Squall { name: "duplicates", patch: r#"{"webhook_duplicates": 2}"# },
    Squall { name: "reorder", patch: r#"{"webhook_reorder_batch": 6, "webhook_reorder_hold_ms": 400}"# },
    Squall { name: "delay", patch: r#"{"webhook_delay_ms": 800}"# },
    Squall { name: "drop", patch: r#"{"webhook_drop_next": 4}"# },
    Squall { name: "capture_500", patch: r#"{"fail_next": 3, "api_fault_match": "/capture"}"# },
    Squall { name: "create_500", patch: r#"{"fail_next": 2, "api_fault_match": "POST /v1/payment_intents"}"# },
    Squall {
        name: "capture_timeout",
        patch: r#"{"timeout_next": 2, "timeout_hang_ms": 1500, "timeout_applies": true, "api_fault_match": "/capture"}"#,
    },
    Squall { name: "pay_late", patch: r#"{"pay_late_ms": 700}"# },
    Squall { name: "paused", patch: r#"{"webhooks_paused": true}"# },
];

/// Every fault off: the fake's defaults.
const CALM: &str = r#"{"webhook_delay_ms": 0, "webhook_duplicates": 0, "webhook_reorder_batch": 0,
    "webhook_drop_next": 0, "webhooks_paused": false, "fail_next": 0, "timeout_next": 0,
    "timeout_applies": false, "api_fault_match": null, "pay_late_ms": 0}"#;

/// The storm's flags.
#[derive(Clone, Debug)]
pub struct StormSettings {
    /// The fake PSP's base URL (its `/_fake/` control API); by default the PSP's
    /// `api_base` from hakken's payments config.
    pub control: Option<String>,
    /// How long each squall blows.
    pub every: Duration,
    /// The squalls to play, by name; empty: all of [`SQUALLS`].
    pub squalls: Vec<String>,
}

impl StormSettings {
    /// The squalls to play, checked by name.
    pub fn chosen(&self) -> anyhow::Result<Vec<Squall>> {
        if self.squalls.is_empty() {
            return Ok(SQUALLS.to_vec());
        }
        self.squalls
            .iter()
            .map(|name| {
                SQUALLS.iter().copied().find(|squall| squall.name == name).with_context(|| {
                    let names: Vec<&str> = SQUALLS.iter().map(|squall| squall.name).collect();
                    format!("--storm-squalls: no squall {name:?} (there are {})", names.join(", "))
                })
            })
            .collect()
    }
}

/// What the storm did, and the fake's own counts afterwards.
#[derive(Clone, Debug, Default, Serialize)]
pub struct StormReport {
    pub control: String,
    /// Squalls played, in order (one every `--storm-every`).
    pub played: Vec<&'static str>,
    /// Control calls that failed (the squall did not blow).
    pub control_errors: u64,
    /// `GET /_fake/stats` after the storm: webhooks (events, deliveries, attempts,
    /// dropped, gave_up, ...) and API calls (failed, timed out, replayed).
    pub fake_stats: Option<Value>,
}

/// The fake PSP's control API.
pub(super) struct Control {
    pool: Pool,
}

impl Control {
    pub(super) async fn connect(url: &str, connect_timeout: Duration) -> anyhow::Result<Control> {
        let target = Target::resolve(url).await.context("the fake PSP's control URL")?;
        let control = Control { pool: Pool::new(target, PoolConfig { connections_max: 2, connect_timeout }) };
        // The storm needs a fake: refuse a real PSP (or anything else) up front.
        control.call(Method::GET, "/_fake/faults", None).await.context("the PSP has no /_fake/ control API")?;
        Ok(control)
    }

    pub(super) fn url(&self) -> &str {
        &self.pool.target().url
    }

    async fn call(&self, method: Method, path: &'static str, body: Option<&str>) -> anyhow::Result<Value> {
        let uri = Uri::from_static(path);
        let mut request = self.pool.request(method, uri, body.map(|body| Bytes::copy_from_slice(body.as_bytes())));
        if body.is_some() {
            request.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        let reply = self
            .pool
            .send_within(request, CONTROL_TIMEOUT)
            .await
            .map_err(|_| anyhow::anyhow!("{path}: no reply in {CONTROL_TIMEOUT:?}"))?
            .with_context(|| path.to_string())?;
        if !reply.status.is_success() {
            bail!("{path}: {} {}", reply.status, String::from_utf8_lossy(&reply.body));
        }
        if reply.body.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&reply.body).with_context(|| format!("{path}: not JSON"))
    }

    /// Calms every fault, then sets `squall`'s.
    pub(super) async fn blow(&self, squall: Squall) -> anyhow::Result<()> {
        self.calm_faults().await?;
        self.call(Method::POST, "/_fake/faults", Some(squall.patch)).await.map(drop)
    }

    async fn calm_faults(&self) -> anyhow::Result<()> {
        self.call(Method::POST, "/_fake/faults", Some(CALM)).await.map(drop)
    }

    /// Ends the storm: faults off, delivery resumed, held-back events sent now.
    pub(super) async fn calm(&self) -> anyhow::Result<()> {
        self.calm_faults().await?;
        self.call(Method::POST, "/_fake/webhooks/resume", Some("{}")).await?;
        self.call(Method::POST, "/_fake/webhooks/flush", Some("{}")).await.map(drop)
    }

    pub(super) async fn stats(&self) -> anyhow::Result<Value> {
        self.call(Method::GET, "/_fake/stats", None).await
    }
}

/// Plays `squalls` in turn, each for `every`, until dropped (the caller aborts the
/// task when the buyers have arrived and then calls [`Control::calm`]); what it played
/// goes into `played`.
pub(super) async fn blow(
    control: &Control,
    squalls: &[Squall],
    every: Duration,
    played: &std::sync::Mutex<StormReport>,
) {
    let mut ticks = tokio::time::interval(every);
    for squall in squalls.iter().cycle() {
        ticks.tick().await;
        let result = control.blow(*squall).await;
        let mut report = played.lock().expect("storm report lock poisoned");
        match result {
            Ok(()) => report.played.push(squall.name),
            Err(_) => report.control_errors += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every squall's patch, parsed (they are strings so the table stays const).
    fn patches() -> Vec<(&'static str, Value)> {
        SQUALLS.iter().map(|squall| (squall.name, serde_json::from_str(squall.patch).expect(squall.name))).collect()
    }

    #[test]
    fn every_squall_is_a_json_object_of_known_faults() {
        let known = [
            "webhook_delay_ms",
            "webhook_duplicates",
            "webhook_reorder_batch",
            "webhook_reorder_hold_ms",
            "webhook_drop_next",
            "webhooks_paused",
            "fail_next",
            "fail_stores",
            "timeout_next",
            "timeout_hang_ms",
            "timeout_applies",
            "api_fault_match",
            "pay_late_ms",
        ];
        let calm: Value = serde_json::from_str(CALM).expect("calm parses");
        for (name, patch) in patches().into_iter().chain([("calm", calm)]) {
            let fields = patch.as_object().unwrap_or_else(|| panic!("{name}: not an object"));
            assert!(!fields.is_empty(), "{name}");
            for field in fields.keys() {
                assert!(known.contains(&field.as_str()), "{name}: unknown fault {field}");
            }
        }
        let calm: Value = serde_json::from_str(CALM).expect("calm parses");
        for (name, patch) in patches() {
            for field in patch.as_object().expect("object").keys() {
                let calmed = calm.get(field).is_some() || field.ends_with("_ms") || field == "timeout_applies";
                assert!(calmed, "{name}: {field} is not reset by CALM");
            }
        }
    }

    #[test]
    fn squalls_are_chosen_by_name() {
        let settings = |names: &[&str]| StormSettings {
            control: None,
            every: Duration::from_secs(1),
            squalls: names.iter().map(|name| name.to_string()).collect(),
        };
        assert_eq!(settings(&[]).chosen().expect("all").len(), SQUALLS.len());
        let chosen = settings(&["drop", "duplicates"]).chosen().expect("two");
        assert_eq!(chosen.iter().map(|squall| squall.name).collect::<Vec<_>>(), ["drop", "duplicates"]);
        let error = settings(&["hail"]).chosen().unwrap_err().to_string();
        assert!(error.contains("no squall \"hail\"") && error.contains("capture_500"), "{error}");
    }
}
