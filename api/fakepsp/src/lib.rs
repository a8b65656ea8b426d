//! `hakken-fakepsp`: a Stripe-compatible, stateful test PSP.
//!
//! hakken's payments are tested against something that behaves like Stripe, over real
//! HTTP, and that can misbehave on demand: webhooks late, twice, out of order or never, API
//! calls failing or hanging, payments authorized late. This crate is that PSP. It runs as
//! its own binary (`hakken-fakepsp`) for the load tool and tests, and embedded in hakken's
//! `test` provider ([`start`] on the caller's tokio runtime); so it depends on neither the
//! engine nor the API crate, nor RocksDB. A conformance test drives it with the official
//! `stripe` Python SDK, so "Stripe-compatible" is checked, not claimed.
//!
//! State is in memory and bounded (`objects_max`; past it, creates are refused with 400
//! `fakepsp_objects_max`). Code by purpose: [`state`] (the PaymentIntent state machine, pure),
//! [`form`] (Stripe's bracketed form parameters), [`idempotency`], [`http`] (the thin axum
//! layer), [`webhook`] (delivery and retries), [`signing`] (`Stripe-Signature`), [`faults`].
//!
//! # Stripe API served (`Authorization: Bearer <secret key>`, form-encoded bodies)
//! - `POST /v1/payment_intents` (`amount`, `currency`, `capture_method`, `metadata[..]`,
//!   `description`, `payment_method`, `confirm`), `GET /v1/payment_intents/{id}`,
//!   `GET /v1/payment_intents?limit=&starting_after=`
//! - `POST /v1/payment_intents/{id}/confirm` (`payment_method`), also with the
//!   *publishable* key plus `client_secret` (as Stripe.js does; `GET` of the intent too)
//! - `POST /v1/payment_intents/{id}/capture` (`amount_to_capture`),
//!   `POST /v1/payment_intents/{id}/cancel` (`cancellation_reason`)
//! - `POST /v1/refunds` (`payment_intent`, `amount`, `reason`, `metadata[..]`), `GET /v1/refunds/{id}`
//! - `GET /v1/events?limit=&starting_after=&type=`, `GET /v1/events/{id}`
//!
//! Test payment methods: `pm_card_visa` (also `_mastercard`, `_amex`) authorizes
//! (manual capture → `requires_capture`, automatic → `succeeded`); `pm_card_chargeDeclined`
//! (and `pm_card_chargeDeclinedInsufficientFunds`) → 402 `card_error` `card_declined`, the
//! intent back to `requires_payment_method`; `pm_card_authenticationRequired` →
//! `requires_action` until `POST /_fake/payment_intents/{id}/authenticate`.
//! Every POST honours `Idempotency-Key` as Stripe does ([`idempotency`]); every answer
//! carries a `Request-Id`.
//!
//! # Control API (`/_fake/`, JSON, no authentication: loopback tests only)
//! - `GET /_fake/faults` → the current [`Faults`]; `POST /_fake/faults` with any subset of
//!   its fields (e.g. `{"webhook_duplicates": 1, "fail_next": 2, "api_fault_match": "/capture"}`)
//!   → the merged faults (unknown fields or out-of-range values: 400).
//!   Fields: `webhook_delay_ms`, `webhook_duplicates`, `webhook_reorder_batch`,
//!   `webhook_reorder_hold_ms`, `webhook_drop_next`, `webhooks_paused`, `fail_next`,
//!   `fail_stores`, `timeout_next`, `timeout_hang_ms`, `timeout_applies`,
//!   `api_fault_match`, `pay_late_ms` (see [`Faults`]).
//! - `POST /_fake/webhooks/pause`, `POST /_fake/webhooks/resume`, `POST /_fake/webhooks/flush`
//!   (deliver events held back for reordering now, newest first).
//! - `POST /_fake/webhook_url` `{"url": "http://127.0.0.1:PORT/path"}` (or `null`).
//! - `POST /_fake/payment_intents/{id}/authenticate` `{"succeed": true|false}`: the buyer
//!   passes (or fails) the 3-D Secure challenge of a `requires_action` intent → 200 the
//!   intent; 409 if it was not waiting for authentication.
//! - `GET /_fake/stats` → `{"payment_intents": {"pi_..": {"confirms", "authorizations",
//!   "declines", "captures", "cancels", "refunds"}}, "webhooks": {"events", "queued",
//!   "dropped", "deliveries", "attempts", "delivered", "failed_attempts", "gave_up"},
//!   "api": {"calls", "failed", "timed_out", "replayed"}, "objects": n}`. Counts are of
//!   operations that changed state: a replayed or refused capture is not a capture.

pub mod faults;
pub mod form;
pub mod http;
pub mod idempotency;
pub mod signing;
pub mod state;
pub mod webhook;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use faults::Faults;
pub use state::IntentStats;
pub use webhook::{WebhookConfig, WebhookStats};

/// Everything [`start`] needs. `Config::new` fills the test defaults.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where to listen; port 0 picks a free one ([`RunningPsp::addr`] says which).
    pub listen: SocketAddr,
    /// Where webhooks go; `None` until [`Control::set_webhook_url`] (events wait).
    pub webhook_url: Option<String>,
    /// The endpoint's signing secrets (`whsec_...`); each delivery carries one `v1` per
    /// secret, as Stripe does during a rotation. At least one.
    pub webhook_secrets: Vec<String>,
    /// `sk_test_...`: the Bearer key of every API call.
    pub secret_key: String,
    /// `pk_test_...`: accepted with the intent's `client_secret` for confirm and retrieve.
    pub publishable_key: String,
    pub webhook: WebhookConfig,
    /// The event types the webhook endpoint subscribes to (Stripe's `enabled_events`);
    /// `None` sends every type. Events not sent are still listed by `GET /v1/events`.
    pub enabled_events: Option<Vec<String>>,
    /// PaymentIntents, charges, refunds and events stored at most (memory bound).
    pub objects_max: usize,
    /// Idempotency keys remembered at most (the oldest is forgotten first).
    pub idempotency_keys_max: usize,
    pub faults: Faults,
    /// Seeds ids and client secrets; `None` takes one from the clock.
    pub seed: Option<u64>,
}

/// Test keys used when none are given.
pub const DEFAULT_SECRET_KEY: &str = "sk_test_hakken_fakepsp";
pub const DEFAULT_PUBLISHABLE_KEY: &str = "pk_test_hakken_fakepsp";

impl Config {
    pub fn new(listen: SocketAddr, webhook_secret: impl Into<String>) -> Config {
        Config {
            listen,
            webhook_url: None,
            webhook_secrets: vec![webhook_secret.into()],
            secret_key: DEFAULT_SECRET_KEY.into(),
            publishable_key: DEFAULT_PUBLISHABLE_KEY.into(),
            webhook: WebhookConfig::default(),
            enabled_events: None,
            objects_max: 500_000,
            idempotency_keys_max: 200_000,
            faults: Faults::default(),
            seed: None,
        }
    }

    fn validate(&self) -> Result<(), StartError> {
        let invalid = |message: &str| Err(StartError::Config(message.to_string()));
        if self.webhook_secrets.is_empty() || self.webhook_secrets.iter().any(String::is_empty) {
            return invalid("at least one non-empty webhook secret is needed");
        }
        if !self.secret_key.starts_with("sk_test_") {
            return invalid("the secret key must start with sk_test_ (the fake is test mode only)");
        }
        if !self.publishable_key.starts_with("pk_test_") {
            return invalid("the publishable key must start with pk_test_");
        }
        if self.objects_max == 0 || self.idempotency_keys_max == 0 {
            return invalid("objects_max and idempotency_keys_max must be at least 1");
        }
        self.faults.validate().map_err(StartError::Config)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("cannot listen on {address}: {source}")]
    Bind { address: SocketAddr, source: std::io::Error },
}

/// The namespace of [`start`], for callers that prefer `FakePsp::start(config)`.
pub struct FakePsp;

impl FakePsp {
    pub async fn start(config: Config) -> Result<RunningPsp, StartError> {
        start(config).await
    }
}

/// Starts the fake PSP on the current tokio runtime: binds, then serves in spawned tasks.
pub async fn start(config: Config) -> Result<RunningPsp, StartError> {
    config.validate()?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Bind { address: config.listen, source })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind { address: config.listen, source })?;
    let (shutdown_sender, shutdown) = watch::channel(false);
    let faults = Arc::new(Mutex::new(config.faults.clone()));
    let webhooks = webhook::Webhooks::new(
        config.webhook.clone(),
        config.webhook_secrets.clone(),
        config.webhook_url.as_deref(),
        faults.clone(),
        shutdown.clone(),
    )
    .map_err(StartError::Config)?;
    let seed = config.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_nanos() as u64)
            .unwrap_or(0)
            ^ u64::from(std::process::id())
    });
    let shared = Arc::new(Shared {
        core: Mutex::new(Core {
            psp: state::Psp::new(state::Limits { objects_max: config.objects_max }, seed),
            idempotency: idempotency::Store::new(config.idempotency_keys_max),
        }),
        faults,
        webhooks: webhooks.clone(),
        secret_key: config.secret_key.clone(),
        publishable_key: config.publishable_key.clone(),
        enabled_events: config.enabled_events.clone(),
        api: ApiCounters::default(),
        shutdown: shutdown.clone(),
    });
    let dispatcher = tokio::spawn(webhooks.run());
    let app = http::app(shared.clone());
    let mut serve_shutdown = shutdown.clone();
    let server = tokio::spawn(async move {
        let stopped = async move {
            let _ = serve_shutdown.wait_for(|stop| *stop).await;
        };
        if let Err(error) = axum::serve(listener, app).with_graceful_shutdown(stopped).await {
            tracing::error!(%error, "fake PSP server failed");
        }
    });
    Ok(RunningPsp { addr, control: Control { shared }, shutdown: shutdown_sender, server, dispatcher })
}

/// A started fake PSP. Dropping it leaves it running until the runtime ends; [`stop`](Self::stop) ends it.
pub struct RunningPsp {
    addr: SocketAddr,
    control: Control,
    shutdown: watch::Sender<bool>,
    server: JoinHandle<()>,
    dispatcher: JoinHandle<()>,
}

impl RunningPsp {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`: what a Stripe client takes as its API base.
    pub fn api_base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn control(&self) -> Control {
        self.control.clone()
    }

    /// Stops accepting, ends hanging calls and pending deliveries, and waits for the tasks.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = self.server.await;
        let _ = self.dispatcher.await;
    }
}

/// Changes faults and reads stats of a running fake PSP; cheap to clone.
#[derive(Clone)]
pub struct Control {
    shared: Arc<Shared>,
}

impl Control {
    pub fn faults(&self) -> Faults {
        lock(&self.shared.faults).clone()
    }

    /// Replaces the faults (validated).
    pub fn set_faults(&self, faults: Faults) -> Result<(), String> {
        faults.validate()?;
        *lock(&self.shared.faults) = faults;
        self.shared.webhooks.wake();
        Ok(())
    }

    /// Changes the faults with `change`, e.g. `control.update_faults(|f| f.fail_next = 1)`.
    pub fn update_faults(&self, change: impl FnOnce(&mut Faults)) -> Result<(), String> {
        let mut faults = self.faults();
        change(&mut faults);
        self.set_faults(faults)
    }

    /// Sets where webhooks go (hakken learns its own port after the fake started).
    pub fn set_webhook_url(&self, url: Option<&str>) -> Result<(), String> {
        self.shared.webhooks.set_url(url)
    }

    pub fn flush_webhooks(&self) {
        self.shared.webhooks.flush();
    }

    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }
}

/// `GET /_fake/stats`; see the module comment.
#[derive(Clone, Debug, Serialize)]
pub struct Stats {
    pub payment_intents: std::collections::BTreeMap<String, IntentStats>,
    pub webhooks: WebhookStats,
    pub api: ApiStats,
    pub objects: usize,
}

#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct ApiStats {
    pub calls: u64,
    pub failed: u64,
    pub timed_out: u64,
    pub replayed: u64,
}

#[derive(Default)]
pub(crate) struct ApiCounters {
    pub(crate) calls: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) timed_out: AtomicU64,
    pub(crate) replayed: AtomicU64,
    pub(crate) requests: AtomicU64,
}

/// The state one lock guards: objects and idempotent answers change together.
pub(crate) struct Core {
    pub(crate) psp: state::Psp,
    pub(crate) idempotency: idempotency::Store,
}

pub(crate) struct Shared {
    pub(crate) core: Mutex<Core>,
    pub(crate) faults: Arc<Mutex<Faults>>,
    pub(crate) webhooks: webhook::Webhooks,
    pub(crate) secret_key: String,
    pub(crate) publishable_key: String,
    pub(crate) enabled_events: Option<Vec<String>>,
    pub(crate) api: ApiCounters,
    pub(crate) shutdown: watch::Receiver<bool>,
}

impl Shared {
    pub(crate) fn stats(&self) -> Stats {
        let (payment_intents, objects) = {
            let core = lock(&self.core);
            (core.psp.stats().iter().map(|(id, stats)| (id.clone(), *stats)).collect(), core.psp.objects())
        };
        let api = &self.api;
        Stats {
            payment_intents,
            webhooks: self.webhooks.stats(),
            api: ApiStats {
                calls: api.calls.load(Ordering::Relaxed),
                failed: api.failed.load(Ordering::Relaxed),
                timed_out: api.timed_out.load(Ordering::Relaxed),
                replayed: api.replayed.load(Ordering::Relaxed),
            },
            objects,
        }
    }

    /// Hands the events the last operation caused to the webhook sender.
    pub(crate) fn deliver(&self, events: Vec<state::Event>) {
        let enabled =
            |event: &state::Event| self.enabled_events.as_ref().is_none_or(|enabled| enabled.contains(&event.kind));
        self.webhooks.enqueue(events.into_iter().filter(enabled).map(|event| event.body).collect());
    }
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
