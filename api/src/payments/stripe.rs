//! A client for the subset of Stripe's REST API hakken uses: PaymentIntents with manual
//! capture, refunds and the event list.
//!
//! Why hand-written: the Stripe SDK crates are release candidates needing a newer Rust, or
//! ~100k generated lines; hakken needs eight endpoints. The wire format is Stripe's:
//! form-encoded POSTs with bracketed keys (`metadata[hakken_hold]=…`), `Authorization:
//! Bearer sk_…`, an `Idempotency-Key` on every POST, JSON answers, and errors as
//! `{"error": {"type", "code", "decline_code", "message"}}`. The base URL is configurable
//! so the same client talks to `hakken-fakepsp` in tests and demos.
//!
//! Every call ends in one of four outcomes ([`PspError`] names three), which is also the
//! `outcome` label of `hakken_psp_requests_total`:
//! - `ok`: the object;
//! - `refused`: Stripe answered with a 4xx and its error body (a decline, a bad request,
//!   an idempotency conflict). Retrying the same request gets the same answer;
//! - `unavailable`: no answer within the call's deadline, a refused or broken
//!   connection, a 5xx, a 429 or a 409 (Stripe's "a request with this key is still
//!   running"). Retryable: retry with the *same* idempotency key, so a request that did
//!   take effect is not repeated;
//! - `malformed`: an answer that is not what Stripe sends (not JSON, an HTML 404 from a
//!   proxy, a field missing).
//!
//! The client never retries by itself: the caller owns the idempotency key and the policy
//! (hakken's sweep retries later, a checkout answers 502 at once).
//!
//! Connections: one pool of at most [`CONNECTIONS_MAX`] HTTP/1.1 keep-alive connections
//! (hyper's `client::conn::http1`, as the load tool does; hyper-util's pooled client has
//! no bound on connections). A call waits for a free connection within its deadline;
//! the request that made it is meanwhile out of the server's in-flight limit
//! (`away_from_the_server`): it waits on the PSP, not on hakken.
//! `https://` uses rustls with the `ring` provider and Mozilla's roots (webpki-roots),
//! so no system trust store and no C library beyond what RocksDB's build already uses.
//!
//! Secrets: the secret key is only ever in the `Authorization` header (marked sensitive);
//! `Debug` of the config, the client and [`PaymentIntent`] hide the key and client
//! secrets, and errors carry Stripe's message, never a request body.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, CONNECTION, CONTENT_TYPE, HOST, USER_AGENT};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::http::admission::away_from_the_server;

use super::webhook::{EventError, KeyMode, KeyModeError, WebhookEvent};

/// Open connections to the PSP at most; calls beyond wait (within their deadline). hakken
/// makes three or four PSP calls per paid order, each a round trip of milliseconds to
/// tens of milliseconds: with 16 the pool, not hakken's CPU, capped paid orders near
/// 300/s in the payment benchmark (checkouts queued for a connection while the core
/// idled); 128 carry a few thousand calls per second and still bound a burst.
pub const CONNECTIONS_MAX: usize = 128;

/// A longer answer is `Malformed`: a list of 100 PaymentIntents is ~300 KB.
pub const RESPONSE_BYTES_MAX: usize = 4 << 20;

/// Stripe's limit on an `Idempotency-Key`.
pub const IDEMPOTENCY_KEY_CHARS_MAX: usize = 255;

/// Stripe's largest page of a list.
pub const LIST_LIMIT_MAX: u32 = 100;

/// Stripe's metadata limits: keys per object, characters per key and per value.
pub const METADATA_KEYS_MAX: usize = 50;
pub const METADATA_KEY_CHARS_MAX: usize = 40;
pub const METADATA_VALUE_CHARS_MAX: usize = 500;

/// A Stripe id (`pi_…`, `evt_…`) longer than this is refused before it goes in a URL.
pub const ID_CHARS_MAX: usize = 255;

/// The API version every request pins (`Stripe-Version`), so the shape of the answers does
/// not change when the account's default version is upgraded in Stripe's dashboard.
pub const STRIPE_API_VERSION: &str = "2024-06-20";

const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
const STRIPE_VERSION: HeaderName = HeaderName::from_static("stripe-version");
const FORM: HeaderValue = HeaderValue::from_static("application/x-www-form-urlencoded");

/// How to reach Stripe (`[payments.stripe]` in hakken's config).
#[derive(Clone)]
pub struct StripeConfig {
    /// `https://api.stripe.com`, or `http://127.0.0.1:PORT` for the fake PSP. No path.
    pub api_base: String,
    /// `sk_test_…` / `sk_live_…` (or a restricted `rk_…` key).
    pub secret_key: String,
    /// The deadline of every call, from its start to the last byte of the answer
    /// (waiting for a connection included).
    pub timeout: Duration,
}

impl fmt::Debug for StripeConfig {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("StripeConfig")
            .field("api_base", &self.api_base)
            .field("secret_key", &"<redacted>")
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Why a [`StripeConfig`] cannot make a client. Never contains the secret key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("payments.stripe.api_base {api_base:?}: {reason}")]
    ApiBase { api_base: String, reason: &'static str },
    #[error("payments.stripe.secret_key: {0}")]
    SecretKey(KeyModeError),
    #[error("payments.stripe.timeout_ms must be more than 0")]
    Timeout,
    #[error("payments.stripe: cannot set up TLS: {0}")]
    Tls(String),
}

/// Why a call did not give the object. See the module comment for the four outcomes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PspError {
    /// Retryable (with the same idempotency key).
    #[error("the PSP is unavailable ({reason}): {detail}")]
    Unavailable { reason: UnavailableReason, detail: String },
    /// Stripe's answer to this request; the same request gets the same answer.
    #[error("the PSP refused the request (HTTP {status}, {kind}{}): {message}", code.as_deref().map(|code| format!(" {code}")).unwrap_or_default())]
    Refused {
        status: u16,
        /// Stripe's `error.type`: `card_error`, `invalid_request_error`, `idempotency_error`, …
        kind: String,
        /// Stripe's `error.code`, e.g. `card_declined`, `resource_missing`.
        code: Option<String>,
        /// Stripe's `error.decline_code` for card errors, e.g. `insufficient_funds`.
        decline_code: Option<String>,
        message: String,
    },
    /// The answer is not what Stripe sends.
    #[error("the PSP's answer (HTTP {status}) cannot be read: {detail}")]
    Malformed { status: u16, detail: String },
    /// The call was not sent: an argument breaks Stripe's rules (a bug in the caller).
    #[error("not sent to the PSP: {what} {detail}")]
    InvalidArgument { what: &'static str, detail: &'static str },
}

impl PspError {
    /// Whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, PspError::Unavailable { .. })
    }

    /// The `outcome` metric label of a call that ended so.
    pub fn outcome(&self) -> &'static str {
        match self {
            PspError::Unavailable { .. } => "unavailable",
            PspError::Refused { .. } => "refused",
            PspError::Malformed { .. } => "malformed",
            PspError::InvalidArgument { .. } => "invalid_argument",
        }
    }
}

/// Why the PSP was unavailable; a bounded set, fit for a log field or a metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnavailableReason {
    /// No complete answer within the call's deadline.
    Timeout,
    /// Every connection was busy until the deadline.
    PoolBusy,
    /// The TCP connection could not be opened (refused, unreachable, no such host).
    Connect,
    /// The TLS handshake failed.
    Tls,
    /// The connection broke while sending or reading.
    Connection,
    /// A 5xx.
    ServerError,
    /// A 429.
    RateLimited,
    /// A 409: a request with the same idempotency key is still being processed.
    Conflict,
}

impl UnavailableReason {
    pub fn as_str(self) -> &'static str {
        match self {
            UnavailableReason::Timeout => "timeout",
            UnavailableReason::PoolBusy => "pool_busy",
            UnavailableReason::Connect => "connect",
            UnavailableReason::Tls => "tls",
            UnavailableReason::Connection => "connection",
            UnavailableReason::ServerError => "server_error",
            UnavailableReason::RateLimited => "rate_limited",
            UnavailableReason::Conflict => "conflict",
        }
    }
}

impl fmt::Display for UnavailableReason {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// A PaymentIntent's state, as Stripe names it. A state this code does not know is kept
/// as [`PaymentIntentStatus::Other`] rather than failing the parse: Stripe adds states,
/// and hakken treats an unknown one as "not yet authorized".
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(from = "String")]
pub enum PaymentIntentStatus {
    RequiresPaymentMethod,
    RequiresConfirmation,
    /// 3-D Secure or another step by the buyer.
    RequiresAction,
    Processing,
    /// Authorized (manual capture): the money is reserved until captured or canceled.
    RequiresCapture,
    /// Captured.
    Succeeded,
    /// Terminal: voided, or never paid.
    Canceled,
    Other(String),
}

impl PaymentIntentStatus {
    pub fn parse(text: &str) -> PaymentIntentStatus {
        match text {
            "requires_payment_method" => PaymentIntentStatus::RequiresPaymentMethod,
            "requires_confirmation" => PaymentIntentStatus::RequiresConfirmation,
            "requires_action" => PaymentIntentStatus::RequiresAction,
            "processing" => PaymentIntentStatus::Processing,
            "requires_capture" => PaymentIntentStatus::RequiresCapture,
            "succeeded" => PaymentIntentStatus::Succeeded,
            "canceled" => PaymentIntentStatus::Canceled,
            other => PaymentIntentStatus::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            PaymentIntentStatus::RequiresPaymentMethod => "requires_payment_method",
            PaymentIntentStatus::RequiresConfirmation => "requires_confirmation",
            PaymentIntentStatus::RequiresAction => "requires_action",
            PaymentIntentStatus::Processing => "processing",
            PaymentIntentStatus::RequiresCapture => "requires_capture",
            PaymentIntentStatus::Succeeded => "succeeded",
            PaymentIntentStatus::Canceled => "canceled",
            PaymentIntentStatus::Other(text) => text,
        }
    }
}

impl From<String> for PaymentIntentStatus {
    fn from(text: String) -> PaymentIntentStatus {
        PaymentIntentStatus::parse(&text)
    }
}

/// The fields of a Stripe PaymentIntent hakken reads. `Debug` hides the client secret.
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct PaymentIntent {
    /// `pi_…`
    pub id: String,
    /// Minor units (cents).
    pub amount: u64,
    /// What can still be captured (the authorized amount while `requires_capture`).
    #[serde(default)]
    pub amount_capturable: u64,
    #[serde(default)]
    pub amount_received: u64,
    /// Lowercase ISO 4217, as Stripe writes it.
    pub currency: String,
    pub status: PaymentIntentStatus,
    /// `pi_…_secret_…`: what the buyer's browser confirms the payment with. Stripe sends it
    /// to the secret key's holder only; never log it.
    #[serde(default)]
    pub client_secret: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub metadata: BTreeMap<String, String>,
    pub livemode: bool,
    /// `ch_…` of the latest charge attempt (the one a refund applies to).
    #[serde(default)]
    pub latest_charge: Option<String>,
    /// Unix seconds.
    pub created: i64,
}

impl PaymentIntent {
    /// `metadata.hakken_hold`: the hold hakken created this PaymentIntent for.
    pub fn hakken_hold(&self) -> Option<&str> {
        self.metadata.get("hakken_hold").map(String::as_str)
    }
}

impl fmt::Debug for PaymentIntent {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("PaymentIntent")
            .field("id", &self.id)
            .field("amount", &self.amount)
            .field("amount_capturable", &self.amount_capturable)
            .field("amount_received", &self.amount_received)
            .field("currency", &self.currency)
            .field("status", &self.status)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "<redacted>"))
            .field("metadata", &self.metadata)
            .field("livemode", &self.livemode)
            .field("latest_charge", &self.latest_charge)
            .field("created", &self.created)
            .finish()
    }
}

/// A refund's state, as Stripe names it; unknown ones kept.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(from = "String")]
pub enum RefundStatus {
    Pending,
    RequiresAction,
    Succeeded,
    Failed,
    Canceled,
    Other(String),
}

impl From<String> for RefundStatus {
    fn from(text: String) -> RefundStatus {
        match text.as_str() {
            "pending" => RefundStatus::Pending,
            "requires_action" => RefundStatus::RequiresAction,
            "succeeded" => RefundStatus::Succeeded,
            "failed" => RefundStatus::Failed,
            "canceled" => RefundStatus::Canceled,
            _ => RefundStatus::Other(text),
        }
    }
}

/// A Stripe refund.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Refund {
    /// `re_…`
    pub id: String,
    /// Minor units.
    pub amount: u64,
    pub status: RefundStatus,
    /// `pi_…` (Stripe leaves it null for a refund of a charge made without one).
    #[serde(default)]
    pub payment_intent: Option<String>,
}

/// One page of a Stripe list, newest first.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct List<T> {
    pub data: Vec<T>,
    /// Whether older objects follow: ask again with `starting_after` = the last id.
    pub has_more: bool,
}

/// `POST /v1/payment_intents`, always with `capture_method=manual` (hakken captures
/// after it has confirmed the seats).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreatePaymentIntent {
    /// Minor units, more than 0.
    pub amount: u64,
    /// ISO 4217 (any case; sent lowercase).
    pub currency: String,
    /// At most [`METADATA_KEYS_MAX`] pairs within Stripe's lengths; hakken puts its hold
    /// and event ids here, never buyer data (Stripe's dashboard shows metadata).
    pub metadata: BTreeMap<String, String>,
    /// Shown in Stripe's dashboard and on some card statements; no buyer data.
    pub description: Option<String>,
}

/// `GET /v1/events` filters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListEvents {
    /// An `evt_…` id: events older than it (the next page).
    pub starting_after: Option<String>,
    /// 1..=[`LIST_LIMIT_MAX`].
    pub limit: u32,
    /// One event type, e.g. `payment_intent.amount_capturable_updated`.
    pub event_type: Option<String>,
}

/// What each call is, for the `operation` metric label (a fixed set).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    CreatePaymentIntent,
    RetrievePaymentIntent,
    ListPaymentIntents,
    ConfirmPaymentIntent,
    Capture,
    Cancel,
    Refund,
    ListEvents,
    RetrieveEvent,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::CreatePaymentIntent => "create_payment_intent",
            Operation::RetrievePaymentIntent => "retrieve_payment_intent",
            Operation::ListPaymentIntents => "list_payment_intents",
            Operation::ConfirmPaymentIntent => "confirm_payment_intent",
            Operation::Capture => "capture",
            Operation::Cancel => "cancel",
            Operation::Refund => "refund",
            Operation::ListEvents => "list_events",
            Operation::RetrieveEvent => "retrieve_event",
        }
    }
}

/// Stripe's REST API over a bounded connection pool; see the module comment. Cheap to
/// share behind an `Arc`; every method takes `&self`.
pub struct StripeClient {
    endpoint: Endpoint,
    /// `Bearer sk_…`, marked sensitive (hyper never prints it).
    authorization: HeaderValue,
    key_mode: KeyMode,
    timeout: Duration,
    /// One permit per connection slot: holding one is the right to use (or open) a
    /// connection, so at most [`CONNECTIONS_MAX`] exist.
    permits: Semaphore,
    /// Idle connections, most recently used last. A std mutex: never held across `.await`.
    idle: Mutex<Vec<SendRequest<Full<Bytes>>>>,
}

impl fmt::Debug for StripeClient {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("StripeClient")
            .field("host", &self.endpoint.host)
            .field("port", &self.endpoint.port)
            .field("tls", &self.endpoint.tls.is_some())
            .field("key_mode", &self.key_mode)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Where the PSP is: `http(s)://host[:port]`.
struct Endpoint {
    host: String,
    port: u16,
    /// The `Host` header of every request.
    host_header: HeaderValue,
    /// `Some` for `https://`.
    tls: Option<Tls>,
}

struct Tls {
    connector: tokio_rustls::TlsConnector,
    server_name: rustls::pki_types::ServerName<'static>,
}

/// A whole answer.
#[derive(Debug)]
struct Reply {
    status: StatusCode,
    body: Bytes,
}

impl StripeClient {
    /// Checks the config (URL shape, key prefix, timeout) and sets up TLS for `https://`.
    /// No connection is opened until the first call.
    pub fn new(config: &StripeConfig) -> Result<StripeClient, ConfigError> {
        StripeClient::trusting(config, rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() })
    }

    /// [`StripeClient::new`] with other TLS roots than Mozilla's (tests: a local TLS server).
    fn trusting(config: &StripeConfig, roots: rustls::RootCertStore) -> Result<StripeClient, ConfigError> {
        let key_mode = KeyMode::of_secret_key(&config.secret_key).map_err(ConfigError::SecretKey)?;
        if config.timeout.is_zero() {
            return Err(ConfigError::Timeout);
        }
        let mut authorization = HeaderValue::try_from(format!("Bearer {}", config.secret_key))
            .map_err(|_| ConfigError::SecretKey(KeyModeError))?;
        authorization.set_sensitive(true);
        Ok(StripeClient {
            endpoint: Endpoint::parse(&config.api_base, roots)?,
            authorization,
            key_mode,
            timeout: config.timeout,
            permits: Semaphore::new(CONNECTIONS_MAX),
            idle: Mutex::new(Vec::with_capacity(CONNECTIONS_MAX)),
        })
    }

    /// Test or live, from the secret key: events of the other mode are not for hakken.
    pub fn key_mode(&self) -> KeyMode {
        self.key_mode
    }

    /// `POST /v1/payment_intents` with `capture_method=manual`.
    pub async fn create_payment_intent(
        &self,
        request: &CreatePaymentIntent,
        idempotency_key: &str,
    ) -> Result<PaymentIntent, PspError> {
        let form = create_form(request)?;
        self.post(Operation::CreatePaymentIntent, "/v1/payment_intents".into(), form, idempotency_key).await
    }

    /// `GET /v1/payment_intents/{id}`
    pub async fn retrieve_payment_intent(&self, id: &str) -> Result<PaymentIntent, PspError> {
        check_id(id, "pi_", "payment intent id")?;
        self.get(Operation::RetrievePaymentIntent, format!("/v1/payment_intents/{id}")).await
    }

    /// `GET /v1/payment_intents?limit=&starting_after=`: newest first.
    pub async fn list_payment_intents(
        &self,
        starting_after: Option<&str>,
        limit: u32,
    ) -> Result<List<PaymentIntent>, PspError> {
        check_limit(limit)?;
        let mut query = Form::default();
        query.push("limit", &limit.to_string());
        if let Some(id) = starting_after {
            check_id(id, "pi_", "starting_after")?;
            query.push("starting_after", id);
        }
        self.get(Operation::ListPaymentIntents, format!("/v1/payment_intents?{}", query.0)).await
    }

    /// `POST /v1/payment_intents/{id}/confirm` with a payment method (`pm_card_visa`, …):
    /// what a buyer's browser does with the publishable key; for tests and tools.
    pub async fn confirm_payment_intent(
        &self,
        id: &str,
        payment_method: &str,
        idempotency_key: &str,
    ) -> Result<PaymentIntent, PspError> {
        check_id(id, "pi_", "payment intent id")?;
        check_id(payment_method, "pm_", "payment method")?;
        let mut form = Form::default();
        form.push("payment_method", payment_method);
        let path = format!("/v1/payment_intents/{id}/confirm");
        self.post(Operation::ConfirmPaymentIntent, path, form, idempotency_key).await
    }

    /// `POST /v1/payment_intents/{id}/capture`: the whole authorized amount.
    pub async fn capture(&self, id: &str, idempotency_key: &str) -> Result<PaymentIntent, PspError> {
        check_id(id, "pi_", "payment intent id")?;
        let path = format!("/v1/payment_intents/{id}/capture");
        self.post(Operation::Capture, path, Form::default(), idempotency_key).await
    }

    /// `POST /v1/payment_intents/{id}/cancel`: voids an authorization (no money moves).
    pub async fn cancel(&self, id: &str, idempotency_key: &str) -> Result<PaymentIntent, PspError> {
        check_id(id, "pi_", "payment intent id")?;
        let path = format!("/v1/payment_intents/{id}/cancel");
        self.post(Operation::Cancel, path, Form::default(), idempotency_key).await
    }

    /// `POST /v1/refunds` for the whole captured amount of a PaymentIntent.
    pub async fn refund(&self, payment_intent: &str, idempotency_key: &str) -> Result<Refund, PspError> {
        check_id(payment_intent, "pi_", "payment intent id")?;
        let mut form = Form::default();
        form.push("payment_intent", payment_intent);
        self.post(Operation::Refund, "/v1/refunds".into(), form, idempotency_key).await
    }

    /// `GET /v1/events?limit=&starting_after=&type=`: newest first, 30 days back at Stripe.
    /// An event that is not a Stripe event makes the whole page `Malformed`.
    pub async fn list_events(&self, filter: &ListEvents) -> Result<List<WebhookEvent>, PspError> {
        check_limit(filter.limit)?;
        let mut query = Form::default();
        query.push("limit", &filter.limit.to_string());
        if let Some(id) = &filter.starting_after {
            check_id(id, "evt_", "starting_after")?;
            query.push("starting_after", id);
        }
        if let Some(event_type) = &filter.event_type {
            query.push("type", event_type);
        }
        let started = Instant::now();
        let outcome = self
            .exchange(Method::GET, format!("/v1/events?{}", query.0), None)
            .await
            .and_then(|reply| interpret::<List<Value>>(&reply))
            .and_then(|page| events_of(page, 200));
        record(Operation::ListEvents, started, &outcome);
        outcome
    }

    /// `GET /v1/events/{id}`
    pub async fn retrieve_event(&self, id: &str) -> Result<WebhookEvent, PspError> {
        check_id(id, "evt_", "event id")?;
        let started = Instant::now();
        let outcome = self
            .exchange(Method::GET, format!("/v1/events/{id}"), None)
            .await
            .and_then(|reply| interpret::<Value>(&reply))
            .and_then(|value| WebhookEvent::from_value(&value).map_err(|error| malformed_event(200, error)));
        record(Operation::RetrieveEvent, started, &outcome);
        outcome
    }

    async fn get<T: DeserializeOwned>(&self, operation: Operation, path: String) -> Result<T, PspError> {
        let started = Instant::now();
        let outcome = self.exchange(Method::GET, path, None).await.and_then(|reply| interpret(&reply));
        record(operation, started, &outcome);
        outcome
    }

    async fn post<T: DeserializeOwned>(
        &self,
        operation: Operation,
        path: String,
        form: Form,
        idempotency_key: &str,
    ) -> Result<T, PspError> {
        let key = idempotency_header(idempotency_key)?;
        let started = Instant::now();
        let outcome = self.exchange(Method::POST, path, Some((form, key))).await.and_then(|reply| interpret(&reply));
        record(operation, started, &outcome);
        outcome
    }

    /// Sends one request and reads the whole answer, within the client's timeout.
    async fn exchange(
        &self,
        method: Method,
        path_and_query: String,
        form: Option<(Form, HeaderValue)>,
    ) -> Result<Reply, PspError> {
        let deadline = Instant::now() + self.timeout;
        let request = self.request(method, &path_and_query, form)?;
        // The request that asks waits on the PSP, not on hakken: out of the in-flight limit.
        away_from_the_server(async {
            let _permit = tokio::time::timeout_at(deadline, self.permits.acquire())
                .await
                .map_err(|_| unavailable(UnavailableReason::PoolBusy, "every connection was busy until the deadline"))?
                .expect("the client never closes its semaphore");
            tokio::time::timeout_at(deadline, self.send(request)).await.map_err(|_| {
                unavailable(UnavailableReason::Timeout, format!("no answer within {} ms", self.timeout.as_millis()))
            })?
        })
        .await
    }

    fn request(
        &self,
        method: Method,
        path_and_query: &str,
        form: Option<(Form, HeaderValue)>,
    ) -> Result<Request<Full<Bytes>>, PspError> {
        let uri: Uri = path_and_query
            .parse()
            .map_err(|_| PspError::InvalidArgument { what: "request path", detail: "is not a valid URI" })?;
        let body = form.as_ref().map(|(form, _)| Bytes::from(form.0.clone())).unwrap_or_default();
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = method;
        *request.uri_mut() = uri;
        let headers = request.headers_mut();
        headers.insert(HOST, self.endpoint.host_header.clone());
        headers.insert(AUTHORIZATION, self.authorization.clone());
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        headers.insert(USER_AGENT, HeaderValue::from_static(concat!("hakken/", env!("CARGO_PKG_VERSION"))));
        headers.insert(STRIPE_VERSION, HeaderValue::from_static(STRIPE_API_VERSION));
        if let Some((_, key)) = form {
            headers.insert(CONTENT_TYPE, FORM);
            headers.insert(IDEMPOTENCY_KEY, key);
        }
        Ok(request)
    }

    /// On a pooled connection (a permit is held). A request the connection did not take
    /// (it closed while idle) is sent once more on a new connection: it never reached the
    /// PSP, so that cannot act twice.
    async fn send(&self, request: Request<Full<Bytes>>) -> Result<Reply, PspError> {
        let mut sender = match self.take_idle() {
            Some(sender) => sender,
            None => self.connect().await?,
        };
        if sender.ready().await.is_err() {
            sender = self.connect().await?;
        }
        let response = match sender.try_send_request(request).await {
            Ok(response) => response,
            Err(mut error) => match error.take_message() {
                Some(request) => {
                    sender = self.connect().await?;
                    sender.send_request(request).await.map_err(broken)?
                }
                None => return Err(broken(error.into_error())),
            },
        };
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, RESPONSE_BYTES_MAX).collect().await.map_err(|error| {
            match error.downcast::<hyper::Error>() {
                Ok(error) => broken(*error),
                Err(_) => PspError::Malformed {
                    status: parts.status.as_u16(),
                    detail: format!("the answer is longer than {RESPONSE_BYTES_MAX} bytes"),
                },
            }
        })?;
        let closing =
            parts.headers.get(CONNECTION).is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"close"));
        if !closing {
            self.idle.lock().expect("pool lock poisoned").push(sender);
        }
        Ok(Reply { status: parts.status, body: body.to_bytes() })
    }

    fn take_idle(&self) -> Option<SendRequest<Full<Bytes>>> {
        let mut idle = self.idle.lock().expect("pool lock poisoned");
        while let Some(sender) = idle.pop() {
            if !sender.is_closed() {
                return Some(sender);
            }
        }
        None
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, PspError> {
        let endpoint = &self.endpoint;
        let stream = TcpStream::connect((endpoint.host.as_str(), endpoint.port))
            .await
            .map_err(|error| unavailable(UnavailableReason::Connect, error.to_string()))?;
        // Requests are small and answered one at a time; Nagle would only add delay.
        stream.set_nodelay(true).map_err(|error| unavailable(UnavailableReason::Connect, error.to_string()))?;
        match &endpoint.tls {
            None => handshake(stream).await,
            Some(tls) => {
                let stream = tls
                    .connector
                    .connect(tls.server_name.clone(), stream)
                    .await
                    .map_err(|error| unavailable(UnavailableReason::Tls, error.to_string()))?;
                handshake(stream).await
            }
        }
    }
}

async fn handshake<T>(stream: T) -> Result<SendRequest<Full<Bytes>>, PspError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await.map_err(broken)?;
    tokio::spawn(async move {
        // Errors surface to the request that was using the connection.
        let _ = connection.await;
    });
    Ok(sender)
}

impl Endpoint {
    /// `http(s)://host[:port]`, a trailing `/` allowed, nothing else.
    fn parse(api_base: &str, roots: rustls::RootCertStore) -> Result<Endpoint, ConfigError> {
        let refuse = |reason| ConfigError::ApiBase { api_base: api_base.to_string(), reason };
        let uri: Uri = api_base.parse().map_err(|_| refuse("not a URL"))?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(refuse("give http://host[:port] or https://host[:port]")),
        };
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(refuse("give the base URL only, without a path (the client adds /v1/...)"));
        }
        let authority = uri.authority().ok_or_else(|| refuse("no host"))?;
        if authority.as_str().contains('@') {
            return Err(refuse("credentials do not belong in the URL; set secret_key"));
        }
        let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_string();
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let host_header = HeaderValue::from_str(authority.as_str()).map_err(|_| refuse("the host is not valid"))?;
        let tls = if https { Some(Tls::new(&host, roots)?) } else { None };
        Ok(Endpoint { host, port, host_header, tls })
    }
}

impl Tls {
    fn new(host: &str, roots: rustls::RootCertStore) -> Result<Tls, ConfigError> {
        let server_name = rustls::pki_types::ServerName::try_from(host.to_string())
            .map_err(|error| ConfigError::Tls(format!("{host:?} is not a TLS server name: {error}")))?;
        let mut config =
            rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|error| ConfigError::Tls(error.to_string()))?
                .with_root_certificates(roots)
                .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls { connector: tokio_rustls::TlsConnector::from(Arc::new(config)), server_name })
    }
}

/// Counts a finished call and its duration (invalid arguments were never sent: not counted).
fn record<T>(operation: Operation, started: Instant, outcome: &Result<T, PspError>) {
    let label = match outcome {
        Ok(_) => "ok",
        Err(PspError::InvalidArgument { .. }) => return,
        Err(error) => error.outcome(),
    };
    metrics::counter!("hakken_psp_requests_total", "operation" => operation.as_str(), "outcome" => label).increment(1);
    metrics::histogram!("hakken_psp_request_seconds", "operation" => operation.as_str())
        .record(started.elapsed().as_secs_f64());
}

/// Maps an answer to the object or a [`PspError`]; see the module comment.
fn interpret<T: DeserializeOwned>(reply: &Reply) -> Result<T, PspError> {
    let status = reply.status.as_u16();
    if reply.status.is_success() {
        return serde_json::from_slice(&reply.body)
            .map_err(|error| PspError::Malformed { status, detail: json_error(&error) });
    }
    let stripe_error = serde_json::from_slice::<ErrorBody>(&reply.body).ok().map(|body| body.error);
    let message = stripe_error.as_ref().and_then(|error| error.message.clone());
    let described = |summary: &str| match &message {
        Some(message) => format!("{summary}: {message}"),
        None => summary.to_string(),
    };
    match status {
        429 => Err(unavailable(UnavailableReason::RateLimited, described("HTTP 429 (rate limited)"))),
        409 => {
            Err(unavailable(UnavailableReason::Conflict, described("HTTP 409 (a request with this key is running)")))
        }
        500..=599 => Err(unavailable(UnavailableReason::ServerError, described(&format!("HTTP {status}")))),
        400..=499 => match stripe_error {
            Some(error) => Err(PspError::Refused {
                status,
                kind: error.kind,
                code: error.code,
                decline_code: error.decline_code,
                message: error.message.unwrap_or_default(),
            }),
            None => Err(PspError::Malformed { status, detail: "an error without Stripe's error body".into() }),
        },
        _ => Err(PspError::Malformed { status, detail: "an unexpected HTTP status".into() }),
    }
}

/// What was wrong with an answer's JSON, without quoting it: serde's message can contain
/// a value from the body ("invalid type: string \"…\""), and the answer holds client
/// secrets. Only the names of missing fields are kept.
fn json_error(error: &serde_json::Error) -> String {
    let message = error.to_string();
    let what = match message.split_once(" at line ") {
        Some((what, _)) if what.starts_with("missing field") => what.to_string(),
        _ => format!("{:?} error", error.classify()).to_lowercase(),
    };
    format!("not the expected object: {what} at line {} column {}", error.line(), error.column())
}

#[derive(Deserialize)]
struct ErrorBody {
    error: StripeErrorObject,
}

#[derive(Deserialize)]
struct StripeErrorObject {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    decline_code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

fn events_of(page: List<Value>, status: u16) -> Result<List<WebhookEvent>, PspError> {
    let data = page
        .data
        .iter()
        .map(WebhookEvent::from_value)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| malformed_event(status, error))?;
    Ok(List { data, has_more: page.has_more })
}

fn malformed_event(status: u16, error: EventError) -> PspError {
    PspError::Malformed { status, detail: format!("an event cannot be read: {error}") }
}

fn unavailable(reason: UnavailableReason, detail: impl Into<String>) -> PspError {
    PspError::Unavailable { reason, detail: detail.into() }
}

fn broken(error: hyper::Error) -> PspError {
    unavailable(UnavailableReason::Connection, error.to_string())
}

/// The form of `POST /v1/payment_intents`, after checking it against Stripe's rules.
fn create_form(request: &CreatePaymentIntent) -> Result<Form, PspError> {
    let invalid = |what, detail| PspError::InvalidArgument { what, detail };
    if request.amount == 0 {
        return Err(invalid("amount", "must be more than 0"));
    }
    if request.currency.len() != 3 || !request.currency.bytes().all(|byte| byte.is_ascii_alphabetic()) {
        return Err(invalid("currency", "must be a three-letter ISO 4217 code"));
    }
    if request.metadata.len() > METADATA_KEYS_MAX {
        return Err(invalid("metadata", "has more keys than Stripe allows (50)"));
    }
    let mut form = Form::default();
    form.push("amount", &request.amount.to_string());
    form.push("currency", &request.currency.to_ascii_lowercase());
    form.push("capture_method", "manual");
    for (key, value) in &request.metadata {
        let key_ok = !key.is_empty() && key.chars().count() <= METADATA_KEY_CHARS_MAX && !key.contains(['[', ']']);
        if !key_ok {
            return Err(invalid("metadata key", "must be 1 to 40 characters without brackets"));
        }
        if value.chars().count() > METADATA_VALUE_CHARS_MAX {
            return Err(invalid("metadata value", "is longer than Stripe allows (500 characters)"));
        }
        form.push(&format!("metadata[{key}]"), value);
    }
    if let Some(description) = &request.description {
        form.push("description", description);
    }
    Ok(form)
}

/// An `application/x-www-form-urlencoded` body (or query string) as Stripe reads it:
/// `key=value` pairs joined by `&`, values percent-encoded except unreserved characters,
/// and the brackets of nested keys (`metadata[hakken_hold]`) left as they are, as
/// Stripe's own examples send them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Form(String);

impl Form {
    fn push(&mut self, key: &str, value: &str) {
        if !self.0.is_empty() {
            self.0.push('&');
        }
        escape_into(&mut self.0, key, b"[]");
        self.0.push('=');
        escape_into(&mut self.0, value, b"");
    }
}

fn escape_into(out: &mut String, text: &str, also_raw: &[u8]) {
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') || also_raw.contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
}

/// Whether `text` is a Stripe id: `prefix` then one or more of `[A-Za-z0-9_]`, at most
/// [`ID_CHARS_MAX`] in all. Checked before an id goes into a URL path or query, so a
/// value from a webhook or a client cannot add path segments or parameters.
pub fn is_stripe_id(text: &str, prefix: &str) -> bool {
    text.len() <= ID_CHARS_MAX
        && text.strip_prefix(prefix).is_some_and(|rest| {
            !rest.is_empty() && rest.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'_')
        })
}

fn check_id(id: &str, prefix: &str, what: &'static str) -> Result<(), PspError> {
    if is_stripe_id(id, prefix) {
        Ok(())
    } else {
        Err(PspError::InvalidArgument { what, detail: "is not a valid Stripe id of that kind" })
    }
}

fn check_limit(limit: u32) -> Result<(), PspError> {
    if (1..=LIST_LIMIT_MAX).contains(&limit) {
        Ok(())
    } else {
        Err(PspError::InvalidArgument { what: "limit", detail: "must be 1 to 100" })
    }
}

/// The `Idempotency-Key` header: 1 to 255 visible ASCII characters.
fn idempotency_header(key: &str) -> Result<HeaderValue, PspError> {
    let valid =
        !key.is_empty() && key.len() <= IDEMPOTENCY_KEY_CHARS_MAX && key.bytes().all(|byte| byte.is_ascii_graphic());
    if !valid {
        return Err(PspError::InvalidArgument {
            what: "idempotency key",
            detail: "must be 1 to 255 visible ASCII characters",
        });
    }
    HeaderValue::from_str(key)
        .map_err(|_| PspError::InvalidArgument { what: "idempotency key", detail: "is not a valid header value" })
}

fn null_as_empty<'de, D>(deserializer: D) -> Result<BTreeMap<String, String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Ok(Option::<BTreeMap<String, String>>::deserialize(deserializer)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::extract::State;
    use axum::http::HeaderMap;
    use axum::routing::any;
    use serde_json::json;

    fn intent_json(id: &str, status: &str) -> Value {
        json!({
            "id": id, "object": "payment_intent", "amount": 12900, "amount_capturable": 0,
            "amount_received": 0, "currency": "eur", "status": status, "capture_method": "manual",
            "client_secret": format!("{id}_secret_abc"), "metadata": {"hakken_hold": "h-1"},
            "livemode": false, "created": 1_767_000_000, "last_payment_error": null,
            "latest_charge": null,
        })
    }

    /// Interprets an answer with `status` and `body` as a PaymentIntent and compares the
    /// outcome: `Ok(status)` of the PaymentIntent, or the error.
    fn check(status: u16, body: &str, expected: Result<&str, PspError>) {
        let reply =
            Reply { status: StatusCode::from_u16(status).expect("status"), body: Bytes::from(body.to_string()) };
        let outcome = interpret::<PaymentIntent>(&reply);
        let outcome = outcome.as_ref().map(|intent| intent.status.as_str()).map_err(Clone::clone);
        assert_eq!(outcome, expected, "HTTP {status} {body}");
    }

    fn refused(status: u16, kind: &str, code: Option<&str>, decline: Option<&str>, message: &str) -> PspError {
        PspError::Refused {
            status,
            kind: kind.into(),
            code: code.map(String::from),
            decline_code: decline.map(String::from),
            message: message.into(),
        }
    }

    #[test]
    fn answers_map_to_outcomes() {
        let ok = intent_json("pi_1", "requires_capture").to_string();
        check(200, &ok, Ok("requires_capture"));
        check(200, &intent_json("pi_1", "brand_new_state").to_string(), Ok("brand_new_state"));
        check(
            200,
            "<html>",
            Err(PspError::Malformed {
                status: 200,
                detail: "not the expected object: syntax error at line 1 column 1".into(),
            }),
        );
        let mut wrong_type = intent_json("pi_1", "requires_capture");
        wrong_type["client_secret"] = json!(["pi_1_secret_do_not_show"]);
        check(
            200,
            &wrong_type.to_string(),
            Err(PspError::Malformed {
                status: 200,
                detail: format!(
                    "not the expected object: data error at line 1 column {}",
                    wrong_type.to_string().find('[').expect("array")
                ),
            }),
        );
        check(
            200,
            r#"{"id":"pi_1"}"#,
            Err(PspError::Malformed {
                status: 200,
                detail: "not the expected object: missing field `amount` at line 1 column 13".into(),
            }),
        );
        let declined = r#"{"error":{"type":"card_error","code":"card_declined","decline_code":"generic_decline","message":"Your card was declined.","param":""}}"#;
        check(
            402,
            declined,
            Err(refused(402, "card_error", Some("card_declined"), Some("generic_decline"), "Your card was declined.")),
        );
        let missing = r#"{"error":{"type":"invalid_request_error","code":"resource_missing","message":"No such payment_intent: 'pi_x'"}}"#;
        check(
            404,
            missing,
            Err(refused(
                404,
                "invalid_request_error",
                Some("resource_missing"),
                None,
                "No such payment_intent: 'pi_x'",
            )),
        );
        let reused = r#"{"error":{"type":"idempotency_error","message":"Keys for idempotent requests can only be used with the same parameters"}}"#;
        check(
            400,
            reused,
            Err(refused(
                400,
                "idempotency_error",
                None,
                None,
                "Keys for idempotent requests can only be used with the same parameters",
            )),
        );
        check(
            401,
            r#"{"error":{"type":"authentication_error"}}"#,
            Err(refused(401, "authentication_error", None, None, "")),
        );
        check(
            404,
            "<h1>Not Found</h1>",
            Err(PspError::Malformed { status: 404, detail: "an error without Stripe's error body".into() }),
        );
        check(
            400,
            r#"{"error":{"code":"x"}}"#,
            Err(PspError::Malformed { status: 400, detail: "an error without Stripe's error body".into() }),
        );
        let api_error = r#"{"error":{"type":"api_error","message":"Something went wrong"}}"#;
        check(500, api_error, Err(unavailable(UnavailableReason::ServerError, "HTTP 500: Something went wrong")));
        check(503, "", Err(unavailable(UnavailableReason::ServerError, "HTTP 503")));
        check(429, "", Err(unavailable(UnavailableReason::RateLimited, "HTTP 429 (rate limited)")));
        check(
            409,
            r#"{"error":{"type":"idempotency_error","message":"running"}}"#,
            Err(unavailable(UnavailableReason::Conflict, "HTTP 409 (a request with this key is running): running")),
        );
        check(302, "", Err(PspError::Malformed { status: 302, detail: "an unexpected HTTP status".into() }));
    }

    #[test]
    fn payment_intents_parse_with_nulls_and_hide_their_secret() {
        let mut value = intent_json("pi_1", "requires_payment_method");
        value["metadata"] = Value::Null;
        value["latest_charge"] = json!("ch_1");
        let intent: PaymentIntent = serde_json::from_value(value).expect("parses");
        assert!(intent.metadata.is_empty());
        assert_eq!(intent.latest_charge.as_deref(), Some("ch_1"));
        assert_eq!(intent.hakken_hold(), None);
        let debug = format!("{intent:?}");
        assert!(debug.contains("<redacted>") && !debug.contains("secret_abc"), "{debug}");
        let refund: Refund = serde_json::from_value(json!({"id": "re_1", "object": "refund", "amount": 5,
            "currency": "eur", "payment_intent": "pi_1", "status": "succeeded"}))
        .expect("parses");
        assert_eq!(
            refund,
            Refund {
                id: "re_1".into(),
                amount: 5,
                status: RefundStatus::Succeeded,
                payment_intent: Some("pi_1".into())
            }
        );
    }

    #[test]
    fn forms_are_encoded_as_stripe_reads_them() {
        let mut form = Form::default();
        form.push("amount", "12900");
        form.push("metadata[hakken_hold]", "h-1_x.y~z");
        form.push("description", "Concert & tour = 2 tickets/été+");
        assert_eq!(
            form.0,
            "amount=12900&metadata[hakken_hold]=h-1_x.y~z&description=Concert%20%26%20tour%20%3D%202%20tickets%2F%C3%A9t%C3%A9%2B"
        );
    }

    fn create(amount: u64, currency: &str, metadata: &[(&str, &str)]) -> CreatePaymentIntent {
        CreatePaymentIntent {
            amount,
            currency: currency.into(),
            metadata: metadata.iter().map(|(key, value)| (key.to_string(), value.to_string())).collect(),
            description: None,
        }
    }

    #[test]
    fn create_forms_follow_stripes_rules() {
        let form = create_form(&create(12900, "EUR", &[("hakken_hold", "h-1"), ("hakken_event", "e 1")]));
        assert_eq!(
            form.map(|form| form.0),
            Ok("amount=12900&currency=eur&capture_method=manual&metadata[hakken_event]=e%201&metadata[hakken_hold]=h-1"
                .to_string())
        );
        let long_key = "k".repeat(41);
        let long_value = "v".repeat(501);
        let many: Vec<(String, String)> = (0..51).map(|index| (format!("k{index}"), "v".into())).collect();
        for (request, what) in [
            (create(0, "eur", &[]), "amount"),
            (create(1, "euro", &[]), "currency"),
            (create(1, "e1r", &[]), "currency"),
            (create(1, "eur", &[(&long_key, "v")]), "metadata key"),
            (create(1, "eur", &[("", "v")]), "metadata key"),
            (create(1, "eur", &[("a]b", "v")]), "metadata key"),
            (create(1, "eur", &[("k", &long_value)]), "metadata value"),
            (CreatePaymentIntent { metadata: many.into_iter().collect(), ..create(1, "eur", &[]) }, "metadata"),
        ] {
            match create_form(&request) {
                Err(PspError::InvalidArgument { what: refused, .. }) => assert_eq!(refused, what, "{request:?}"),
                other => panic!("{request:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn ids_are_checked_before_they_reach_a_url() {
        for (text, prefix, expected) in [
            ("pi_3AbC_9", "pi_", true),
            ("pi_", "pi_", false),
            ("pi_a/../b", "pi_", false),
            ("pi_a?x=1", "pi_", false),
            ("pi_a%2F", "pi_", false),
            ("ch_1", "pi_", false),
            ("evt_1", "evt_", true),
            ("ch_1", "", true),
            ("", "", false),
        ] {
            assert_eq!(is_stripe_id(text, prefix), expected, "{text:?} {prefix:?}");
        }
        assert!(!is_stripe_id(&format!("pi_{}", "a".repeat(253)), "pi_"));
        assert!(idempotency_header("hakken-create-h1-1767000000000").is_ok());
        assert!(idempotency_header("").is_err());
        assert!(idempotency_header("a b").is_err());
        assert!(idempotency_header(&"k".repeat(256)).is_err());
    }

    fn config(api_base: &str) -> StripeConfig {
        StripeConfig {
            api_base: api_base.into(),
            secret_key: "sk_test_4eC39HqLyjWDarjtT1zdp7dc".into(),
            timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn configs_are_checked() {
        let endpoint = |api_base: &str| {
            StripeClient::new(&config(api_base))
                .map(|client| (client.endpoint.host.clone(), client.endpoint.port, client.endpoint.tls.is_some()))
                .map_err(|error| error.to_string())
        };
        assert_eq!(endpoint("https://api.stripe.com"), Ok(("api.stripe.com".into(), 443, true)));
        assert_eq!(endpoint("http://127.0.0.1:12111/"), Ok(("127.0.0.1".into(), 12111, false)));
        assert_eq!(endpoint("http://[::1]:8080"), Ok(("::1".into(), 8080, false)));
        assert_eq!(endpoint("http://localhost"), Ok(("localhost".into(), 80, false)));
        for (api_base, reason) in [
            ("api.stripe.com", "give http://host[:port] or https://host[:port]"),
            ("ftp://api.stripe.com", "give http://host[:port] or https://host[:port]"),
            ("https://api.stripe.com/v1", "give the base URL only, without a path (the client adds /v1/...)"),
            ("https://user:pw@api.stripe.com", "credentials do not belong in the URL; set secret_key"),
            ("http://", "not a URL"),
        ] {
            assert_eq!(endpoint(api_base), Err(format!("payments.stripe.api_base {api_base:?}: {reason}")));
        }
        let mut bad_key = config("http://127.0.0.1:1");
        bad_key.secret_key = "pk_test_abc".into();
        let error = StripeClient::new(&bad_key).expect_err("a publishable key is not a secret key");
        assert!(matches!(error, ConfigError::SecretKey(_)) && !error.to_string().contains("pk_test_abc"), "{error}");
        let mut no_timeout = config("http://127.0.0.1:1");
        no_timeout.timeout = Duration::ZERO;
        assert!(matches!(StripeClient::new(&no_timeout), Err(ConfigError::Timeout)));
        let client = StripeClient::new(&config("http://127.0.0.1:1")).expect("client");
        assert_eq!(client.key_mode(), KeyMode::Test);
        let debug = format!("{:?} {client:?}", config("http://127.0.0.1:1"));
        assert!(!debug.contains("sk_test_4eC39"), "{debug}");
    }

    /// What the stub saw of one request.
    #[derive(Clone, Debug)]
    struct Seen {
        method: String,
        uri: String,
        headers: HeaderMap,
        body: String,
    }

    #[derive(Clone)]
    struct Stub {
        seen: Arc<Mutex<Vec<Seen>>>,
        status: u16,
        body: String,
    }

    /// A server on 127.0.0.1 that records every request and answers `status` and `body`.
    async fn stub(status: u16, body: Value) -> (String, Arc<Mutex<Vec<Seen>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let state = Stub { seen: seen.clone(), status, body: body.to_string() };
        let app = axum::Router::new().fallback(any(answer)).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
        (format!("http://{address}"), seen)
    }

    async fn answer(
        State(stub): State<Stub>,
        method: Method,
        uri: Uri,
        headers: HeaderMap,
        body: String,
    ) -> (StatusCode, String) {
        stub.seen.lock().expect("lock").push(Seen { method: method.to_string(), uri: uri.to_string(), headers, body });
        (StatusCode::from_u16(stub.status).expect("status"), stub.body.clone())
    }

    fn header<'a>(seen: &'a Seen, name: &str) -> Option<&'a str> {
        seen.headers.get(name).map(|value| value.to_str().expect("ASCII"))
    }

    #[tokio::test]
    async fn requests_speak_stripes_wire_format() {
        let (base, seen) = stub(200, intent_json("pi_1", "requires_capture")).await;
        let client = StripeClient::new(&config(&base)).expect("client");
        let mut request = create(12900, "EUR", &[("hakken_hold", "h-1")]);
        request.description = Some("2 tickets".into());
        let intent = client.create_payment_intent(&request, "hakken-create-h-1-5").await.expect("created");
        assert_eq!((intent.id.as_str(), intent.hakken_hold()), ("pi_1", Some("h-1")));
        client.retrieve_payment_intent("pi_1").await.expect("retrieved");
        client.capture("pi_1", "hakken-capture-h-1-5").await.expect("captured");
        client.cancel("pi_1", "hakken-cancel-h-1-5").await.expect("canceled");
        client.confirm_payment_intent("pi_1", "pm_card_visa", "confirm-1").await.expect("confirmed");
        let seen = seen.lock().expect("lock").clone();
        let lines: Vec<(&str, &str, &str, Option<&str>)> = seen
            .iter()
            .map(|seen| (seen.method.as_str(), seen.uri.as_str(), seen.body.as_str(), header(seen, "idempotency-key")))
            .collect();
        assert_eq!(
            lines,
            [
                (
                    "POST",
                    "/v1/payment_intents",
                    "amount=12900&currency=eur&capture_method=manual&metadata[hakken_hold]=h-1&description=2%20tickets",
                    Some("hakken-create-h-1-5")
                ),
                ("GET", "/v1/payment_intents/pi_1", "", None),
                ("POST", "/v1/payment_intents/pi_1/capture", "", Some("hakken-capture-h-1-5")),
                ("POST", "/v1/payment_intents/pi_1/cancel", "", Some("hakken-cancel-h-1-5")),
                ("POST", "/v1/payment_intents/pi_1/confirm", "payment_method=pm_card_visa", Some("confirm-1")),
            ]
        );
        for seen in &seen {
            assert_eq!(header(seen, "authorization"), Some("Bearer sk_test_4eC39HqLyjWDarjtT1zdp7dc"));
            assert_eq!(header(seen, "stripe-version"), Some(STRIPE_API_VERSION));
            let form = (seen.method == "POST").then_some("application/x-www-form-urlencoded");
            assert_eq!(header(seen, "content-type"), form);
        }
        // Ids that could change the URL are refused before anything is sent.
        for id in ["pi_1/../../v1/refunds", "pi_1?expand=x", "ch_1"] {
            let error = client.capture(id, "k").await.expect_err("refused");
            assert!(matches!(error, PspError::InvalidArgument { what: "payment intent id", .. }), "{error:?}");
        }
        assert!(matches!(
            client.list_payment_intents(None, 101).await,
            Err(PspError::InvalidArgument { what: "limit", .. })
        ));
    }

    #[tokio::test]
    async fn lists_and_refunds() {
        let page = json!({"object": "list", "url": "/v1/payment_intents", "has_more": true,
            "data": [intent_json("pi_2", "canceled"), intent_json("pi_1", "succeeded")]});
        let (base, seen) = stub(200, page).await;
        let client = StripeClient::new(&config(&base)).expect("client");
        let list = client.list_payment_intents(Some("pi_3"), 2).await.expect("listed");
        assert!(list.has_more);
        assert_eq!(list.data.iter().map(|intent| intent.id.as_str()).collect::<Vec<_>>(), ["pi_2", "pi_1"]);
        assert_eq!(seen.lock().expect("lock")[0].uri, "/v1/payment_intents?limit=2&starting_after=pi_3");

        let refund = json!({"id": "re_1", "object": "refund", "amount": 12900, "currency": "eur",
            "payment_intent": "pi_1", "status": "succeeded"});
        let (base, seen) = stub(200, refund).await;
        let client = StripeClient::new(&config(&base)).expect("client");
        let refund = client.refund("pi_1", "hakken-refund-h-1-5").await.expect("refunded");
        assert_eq!((refund.amount, refund.status), (12900, RefundStatus::Succeeded));
        assert_eq!(seen.lock().expect("lock")[0].body, "payment_intent=pi_1");

        let event = json!({"id": "evt_1", "object": "event", "type": "payment_intent.succeeded",
            "created": 1, "livemode": false, "data": {"object": intent_json("pi_1", "succeeded")}});
        let (base, seen) = stub(200, json!({"object": "list", "data": [event], "has_more": false})).await;
        let client = StripeClient::new(&config(&base)).expect("client");
        let filter = ListEvents {
            starting_after: Some("evt_9".into()),
            limit: 10,
            event_type: Some("payment_intent.succeeded".into()),
        };
        let events = client.list_events(&filter).await.expect("listed");
        assert_eq!(events.data.iter().map(|event| event.payment_intent()).collect::<Vec<_>>(), [Some("pi_1")]);
        assert_eq!(
            seen.lock().expect("lock")[0].uri,
            "/v1/events?limit=10&starting_after=evt_9&type=payment_intent.succeeded"
        );

        let (base, _) = stub(200, json!({"object": "list", "data": [{"id": "nope"}], "has_more": false})).await;
        let client = StripeClient::new(&config(&base)).expect("client");
        assert!(matches!(client.list_events(&filter).await, Err(PspError::Malformed { .. })));
    }

    #[tokio::test]
    async fn stripe_errors_come_back_as_refusals() {
        let body = json!({"error": {"type": "card_error", "code": "card_declined", "decline_code": "generic_decline",
            "message": "Your card was declined."}});
        let (base, _) = stub(402, body).await;
        let client = StripeClient::new(&config(&base)).expect("client");
        let error = client.confirm_payment_intent("pi_1", "pm_card_chargeDeclined", "k").await.expect_err("declined");
        assert_eq!(
            error,
            refused(402, "card_error", Some("card_declined"), Some("generic_decline"), "Your card was declined.")
        );
        assert!(!error.is_retryable());
        let (base, _) = stub(500, json!({"error": {"type": "api_error", "message": "boom"}})).await;
        let client = StripeClient::new(&config(&base)).expect("client");
        let error = client.capture("pi_1", "k").await.expect_err("500");
        assert!(
            error.is_retryable()
                && matches!(error, PspError::Unavailable { reason: UnavailableReason::ServerError, .. })
        );
    }

    /// A listener that accepts connections, counts them, and never answers.
    async fn silent_server() -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                open.push(stream);
            }
        });
        (format!("http://{address}"), accepted)
    }

    #[tokio::test]
    async fn a_silent_psp_times_out_and_the_pool_stays_bounded() {
        let (base, accepted) = silent_server().await;
        let mut slow = config(&base);
        slow.timeout = Duration::from_millis(300);
        let client = Arc::new(StripeClient::new(&slow).expect("client"));
        let started = std::time::Instant::now();
        let mut calls = tokio::task::JoinSet::new();
        for _ in 0..=CONNECTIONS_MAX {
            let client = client.clone();
            calls.spawn(async move { client.retrieve_payment_intent("pi_1").await });
        }
        // Mid-way, 17 calls hold 16 connections: the last one waits for a free one.
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(accepted.load(Ordering::SeqCst), CONNECTIONS_MAX);
        let outcomes = calls.join_all().await;
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(3), "{elapsed:?}");
        for outcome in outcomes {
            // The waiting call ends as PoolBusy, or as Timeout if a connection freed up
            // at the very deadline: both the same deadline, both retryable.
            match outcome {
                Err(PspError::Unavailable {
                    reason: UnavailableReason::Timeout | UnavailableReason::PoolBusy, ..
                }) => {}
                other => panic!("{other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn a_refused_connection_is_unavailable() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address");
        drop(listener);
        let client = StripeClient::new(&config(&format!("http://{address}"))).expect("client");
        let error = client.retrieve_payment_intent("pi_1").await.expect_err("nothing listens");
        assert!(matches!(error, PspError::Unavailable { reason: UnavailableReason::Connect, .. }), "{error:?}");
    }

    #[tokio::test]
    async fn https_to_a_plain_http_server_fails_the_tls_handshake() {
        let (base, seen) = stub(200, intent_json("pi_1", "succeeded")).await;
        let client = StripeClient::new(&config(&base.replace("http://", "https://"))).expect("client");
        let error = client.retrieve_payment_intent("pi_1").await.expect_err("no TLS there");
        assert!(matches!(error, PspError::Unavailable { reason: UnavailableReason::Tls, .. }), "{error:?}");
        assert!(seen.lock().expect("lock").is_empty(), "the request was not sent in clear");
    }

    /// A test CA (CA:TRUE, 100 years) and a leaf it signed for `localhost` and
    /// `127.0.0.1`, made with openssl for this test only.
    const TEST_CA_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBmDCCAT+gAwIBAgIUWT9DYHYzU5sjPOJHcksYSaZhD/EwCgYIKoZIzj0EAwIw
GTEXMBUGA1UEAwwOaGFra2VuIHRlc3QgQ0EwIBcNMjYxMjAyMTcwODEyWhgPMjEy
NjExMDgxNzA4MTJaMBkxFzAVBgNVBAMMDmhha2tlbiB0ZXN0IENBMFkwEwYHKoZI
zj0CAQYIKoZIzj0DAQcDQgAE7Ks5PV8X6SHDm7CDWbclVB8Qhja8Y28djanq3Nqd
XHCUSnyy2wYCdLPKknEMQhgWiozQZZ57MYbrmVk6Z7GQMqNjMGEwHQYDVR0OBBYE
FOvKGFNeWwue077VSWhSBEsQP3jmMB8GA1UdIwQYMBaAFOvKGFNeWwue077VSWhS
BEsQP3jmMA8GA1UdEwEB/wQFMAMBAf8wDgYDVR0PAQH/BAQDAgIEMAoGCCqGSM49
BAMCA0cAMEQCIAWOBhGTx00QXMcmxJwh3HlZiszUxOhLcOziY1NSDy2dAiAwh7Uc
SzIcHQ3dovBwxM9xYK8w4L88yfDJkd5BxC9IVA==
-----END CERTIFICATE-----
";
    const TEST_LEAF_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBxDCCAWqgAwIBAgIUBnbl2iq2K8Cl34sGCNcOtLwzmVkwCgYIKoZIzj0EAwIw
GTEXMBUGA1UEAwwOaGFra2VuIHRlc3QgQ0EwIBcNMjYxMjAyMTcwODEzWhgPMjEy
NjExMDgxNzA4MTNaMBQxEjAQBgNVBAMMCWxvY2FsaG9zdDBZMBMGByqGSM49AgEG
CCqGSM49AwEHA0IABMouSgQ1O0s9Ff+E3/Brl1ymbfX7pQipEpnjch9cBxEgsXfU
7S5T4eXuoR42NmN/dQ/i1Uh44qH0quL/MuQp7jqjgZIwgY8wGgYDVR0RBBMwEYIJ
bG9jYWxob3N0hwR/AAABMAwGA1UdEwEB/wQCMAAwEwYDVR0lBAwwCgYIKwYBBQUH
AwEwDgYDVR0PAQH/BAQDAgeAMB0GA1UdDgQWBBTPxJehSRKERwbmkTDG57wG1wHa
uzAfBgNVHSMEGDAWgBTryhhTXlsLntO+1UloUgRLED945jAKBggqhkjOPQQDAgNI
ADBFAiBv1ZMkzFg1jn9igGkNzI1tNgBL14ekMhJ9+2XFSIuXBAIhAI88nB9KjgXa
lxoxW2ZeZg1zyRdHrNvyQLETBb3TjMkM
-----END CERTIFICATE-----
";
    const TEST_LEAF_KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg5bv1ObfgeduSef81
XsyoDmDydkjxUIdaX11QQKwcKOChRANCAATKLkoENTtLPRX/hN/wa5dcpm31+6UI
qRKZ43IfXAcRILF31O0uU+Hl7qEeNjZjf3UP4tVIeOKh9Kri/zLkKe46
-----END PRIVATE KEY-----
";

    /// An HTTPS server on 127.0.0.1 with the test leaf certificate, answering every
    /// request with a PaymentIntent.
    async fn tls_stub() -> std::net::SocketAddr {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certificates = vec![CertificateDer::from_pem_slice(TEST_LEAF_PEM.as_bytes()).expect("leaf")];
        let key = PrivateKeyDer::from_pem_slice(TEST_LEAF_KEY_PEM.as_bytes()).expect("key");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(certificates, key)
            .expect("certificate");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(stream).await else { return };
                    let service = hyper::service::service_fn(|_request| async {
                        let body = Full::new(Bytes::from(intent_json("pi_tls", "succeeded").to_string()));
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(body))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        address
    }

    #[tokio::test]
    async fn https_verifies_the_server_against_the_roots() {
        use rustls::pki_types::pem::PemObject;
        let address = tls_stub().await;
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(rustls::pki_types::CertificateDer::from_pem_slice(TEST_CA_PEM.as_bytes()).expect("CA"))
            .expect("a valid CA");
        let base = format!("https://localhost:{}", address.port());
        let trusting = StripeClient::trusting(&config(&base), roots).expect("client");
        let intent = trusting.retrieve_payment_intent("pi_tls").await.expect("answered over TLS");
        assert_eq!(intent.id, "pi_tls");
        // Mozilla's roots do not include the test CA: the handshake fails, nothing is sent.
        let default = StripeClient::new(&config(&base)).expect("client");
        let error = default.retrieve_payment_intent("pi_tls").await.expect_err("untrusted");
        assert!(matches!(error, PspError::Unavailable { reason: UnavailableReason::Tls, .. }), "{error:?}");
        assert!(error.to_string().contains("certificate"), "{error}");
    }

    #[test]
    fn calls_are_counted_by_operation_and_outcome() {
        let recorder = metrics_util::debugging::DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(async {
                let (base, _) = stub(200, intent_json("pi_1", "succeeded")).await;
                let client = StripeClient::new(&config(&base)).expect("client");
                client.retrieve_payment_intent("pi_1").await.expect("ok");
                client.retrieve_payment_intent("pi_1").await.expect("ok");
                client.capture("pi_1", "k").await.expect("ok");
                let _ = client.capture("not-an-id", "k").await;
                let (base, _) = stub(402, json!({"error": {"type": "card_error"}})).await;
                let client = StripeClient::new(&config(&base)).expect("client");
                let _ = client.confirm_payment_intent("pi_1", "pm_card_visa", "k").await;
            });
        });
        let mut counters = Vec::new();
        let mut histograms = Vec::new();
        for (key, _, _, value) in snapshotter.snapshot().into_vec() {
            let (kind, key) = key.into_parts();
            let labels: Vec<String> = key.labels().map(|label| format!("{}={}", label.key(), label.value())).collect();
            let name = format!("{}{{{}}}", key.name(), labels.join(","));
            match (kind, value) {
                (metrics_util::MetricKind::Counter, metrics_util::debugging::DebugValue::Counter(count)) => {
                    counters.push((name, count))
                }
                (metrics_util::MetricKind::Histogram, metrics_util::debugging::DebugValue::Histogram(samples)) => {
                    histograms.push((name, samples.len()))
                }
                _ => {}
            }
        }
        counters.sort();
        histograms.sort();
        assert_eq!(
            counters,
            [
                ("hakken_psp_requests_total{operation=capture,outcome=ok}".to_string(), 1),
                ("hakken_psp_requests_total{operation=confirm_payment_intent,outcome=refused}".to_string(), 1),
                ("hakken_psp_requests_total{operation=retrieve_payment_intent,outcome=ok}".to_string(), 2),
            ]
        );
        assert_eq!(
            histograms,
            [
                ("hakken_psp_request_seconds{operation=capture}".to_string(), 1),
                ("hakken_psp_request_seconds{operation=confirm_payment_intent}".to_string(), 1),
                ("hakken_psp_request_seconds{operation=retrieve_payment_intent}".to_string(), 2),
            ]
        );
    }
}
