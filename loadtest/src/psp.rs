//! The payment service provider's side of paying, as a browser and an auditor see it.
//!
//! hakken creates a PaymentIntent at the PSP when a buyer checks out; the buyer then
//! pays *at the PSP*, never through hakken (card data must not touch it): Stripe.js in
//! the browser confirms the PaymentIntent with the shop's publishable key and the
//! intent's client secret. The load tool does exactly that, with Stripe's test payment
//! methods, over the Stripe wire protocol (form-encoded POSTs, JSON replies, errors as
//! `{"error": {"type", "code", ...}}`), so it pays the same way against hakken's
//! embedded `test` provider, an external `hakken-fakepsp`, or Stripe's test mode.
//!
//! - [`PaymentsConfig`]: hakken's `GET /v1/payments/config` (provider, where the PSP is,
//!   the publishable key): what a browser's Stripe.js is given.
//! - [`confirm_request`] and [`ConfirmOutcome`]: the browser's confirm and what it means.
//! - [`list_intents`]: every PaymentIntent at the PSP, paged, with the secret key: the
//!   verdict's view of where the money is.
//!
//! The PSP is reached through its own connection [`Pool`]: its address comes from
//! hakken's config, and its latency must not queue behind hakken's connections.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, Request, Uri};
use serde::{Deserialize, Serialize};

use crate::client::{query_escape, send_retrying, Pool, Reply, IDEMPOTENCY_KEY};

/// Stripe's test card that authorizes.
pub const CARD_VISA: &str = "pm_card_visa";
/// Stripe's test card that is declined (`card_declined`).
pub const CARD_DECLINED: &str = "pm_card_chargeDeclined";
/// PaymentIntents asked for per page when listing (Stripe's maximum).
const LIST_PAGE: u32 = 100;
/// Pages read at most when listing: 10,000 pages of 100 is a million payments.
const LIST_PAGES_MAX: u32 = 10_000;

/// `GET /v1/payments/config`: what hakken tells a browser about paying.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentsConfig {
    /// `test` (the embedded fake PSP), `stripe`, or `external` (hakken takes payments
    /// elsewhere: orders are confirmed on trust).
    pub provider: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub publishable_key: String,
    /// The PSP's base URL, e.g. `http://127.0.0.1:PORT` (empty for `external`).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub api_base: String,
}

/// A string that may be `null` (hakken sends `null` keys for `external`).
fn null_as_empty<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(deserializer)?.unwrap_or_default())
}

impl PaymentsConfig {
    /// Reads hakken's payments config. `None` when the server has no such endpoint
    /// (404: a hakken from before payments, which confirms on trust). `patient`: retry
    /// 503s and lost replies as [`send_retrying`] does; otherwise one attempt.
    pub async fn fetch(pool: &Pool, timeout: Duration, patient: bool) -> anyhow::Result<Option<PaymentsConfig>> {
        let uri = Uri::from_static("/v1/payments/config");
        let make = || pool.request(Method::GET, uri.clone(), None);
        let reply = if patient {
            send_retrying(pool, make, timeout).await.context("GET /v1/payments/config")?
        } else {
            pool.send_within(make(), timeout)
                .await
                .map_err(|_| anyhow::anyhow!("GET /v1/payments/config: no reply in {timeout:?}"))?
                .context("GET /v1/payments/config")?
        };
        match reply.status.as_u16() {
            404 => Ok(None),
            200 => Ok(Some(PaymentsConfig::parse(&reply.body)?)),
            status => bail!("GET /v1/payments/config: {status} {}", String::from_utf8_lossy(&reply.body)),
        }
    }

    pub fn parse(body: &[u8]) -> anyhow::Result<PaymentsConfig> {
        serde_json::from_slice(body).context("GET /v1/payments/config: not a payments config")
    }

    /// Whether hakken sells on trust (no payment at a PSP).
    pub fn is_external(&self) -> bool {
        self.provider == "external"
    }
}

/// `application/x-www-form-urlencoded` of `fields`, as Stripe's API takes it (nested
/// keys are written by the caller: `metadata[hakken_hold]`).
pub fn form(fields: &[(&str, &str)]) -> Bytes {
    let mut body = String::new();
    for (name, value) in fields {
        if !body.is_empty() {
            body.push('&');
        }
        body.push_str(&query_escape(name));
        body.push('=');
        body.push_str(&query_escape(value));
    }
    Bytes::from(body)
}

/// A form POST to the PSP, authorized with `key` (`pk_...` or `sk_...`).
pub fn form_request(pool: &Pool, uri: Uri, body: Bytes, key: &HeaderValue) -> Request<Full<Bytes>> {
    let mut request = pool.request(Method::POST, uri, Some(body));
    let headers = request.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/x-www-form-urlencoded"));
    headers.insert(AUTHORIZATION, key.clone());
    request
}

/// `Bearer <key>` as a header value; keys are printable ASCII.
pub fn bearer(key: &str) -> anyhow::Result<HeaderValue> {
    HeaderValue::try_from(format!("Bearer {key}")).context("the key does not fit in an HTTP header")
}

/// The browser's confirm of PaymentIntent `intent` with the test payment method
/// `payment_method`: `POST /v1/payment_intents/{id}/confirm` with the publishable key
/// and the client secret (Stripe.js's call). `idempotency_key` makes a retry after a
/// lost reply harmless.
pub fn confirm_request(
    pool: &Pool,
    intent: &str,
    client_secret: &str,
    payment_method: &str,
    publishable_key: &HeaderValue,
    idempotency_key: Option<&HeaderValue>,
) -> anyhow::Result<Request<Full<Bytes>>> {
    let uri: Uri = format!("/v1/payment_intents/{}/confirm", query_escape(intent))
        .parse()
        .with_context(|| format!("payment id {intent:?} does not fit in a path"))?;
    let body = form(&[("payment_method", payment_method), ("client_secret", client_secret)]);
    let mut request = form_request(pool, uri, body, publishable_key);
    if let Some(key) = idempotency_key {
        request.headers_mut().insert(IDEMPOTENCY_KEY, key.clone());
    }
    Ok(request)
}

/// The longest a payment read asks hakken to wait for the payment to move (its
/// `wait_ms`; hakken's own maximum is 30 s).
const PAYMENT_WAIT_MAX: Duration = Duration::from_secs(10);

/// `GET /v1/holds/{hold}/payment?customer=…&wait_ms=…`: a long poll of the hold's
/// payment, answered as soon as hakken acts on the PSP's webhook, waiting at most
/// `wait` (capped at [`PAYMENT_WAIT_MAX`]). Made to come back well within a request
/// timeout of `request_timeout`; a hakken without long polls answers at once.
pub fn payment_poll_uri(hold: &str, customer: &str, wait: Duration, request_timeout: Duration) -> Uri {
    let wait = wait.min(PAYMENT_WAIT_MAX).min(request_timeout / 2);
    format!("/v1/holds/{hold}/payment?customer={}&wait_ms={}", query_escape(customer), wait.as_millis())
        .parse()
        .expect("hold ids and escaped customers make valid paths")
}

/// What a confirm at the PSP came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfirmOutcome {
    /// Authorized (or further along): `requires_capture`, `processing`, `succeeded`.
    Authorized { status: String },
    /// The card was declined (402 `card_error`); the intent wants another payment method.
    Declined { code: String },
    /// The PSP wants the buyer to act (3-D Secure), which a load test cannot do.
    RequiresAction,
    /// Any other reply: a 4xx/5xx that is not a decline, or a 2xx that is not an intent.
    Failed { status: u16, code: Option<String> },
}

#[derive(Deserialize)]
struct StripeErrorReply {
    error: StripeError,
}

#[derive(Deserialize)]
struct StripeError {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    decline_code: Option<String>,
    /// The intent as it is now (Stripe adds it to errors about an intent).
    #[serde(default)]
    payment_intent: Option<IntentStatus>,
}

#[derive(Deserialize)]
struct IntentStatus {
    status: String,
}

/// Statuses of an intent the buyer has paid (authorized, or further along).
fn is_authorized(status: &str) -> bool {
    matches!(status, "requires_capture" | "processing" | "succeeded")
}

impl ConfirmOutcome {
    pub fn of(reply: &Reply) -> ConfirmOutcome {
        let status = reply.status.as_u16();
        if reply.status.is_success() {
            return match serde_json::from_slice::<PaymentIntent>(&reply.body) {
                Ok(intent) if intent.status == "requires_action" => ConfirmOutcome::RequiresAction,
                Ok(intent) if is_authorized(&intent.status) => ConfirmOutcome::Authorized { status: intent.status },
                Ok(intent) => ConfirmOutcome::Failed { status, code: Some(intent.status) },
                Err(_) => ConfirmOutcome::Failed { status, code: None },
            };
        }
        let error = serde_json::from_slice::<StripeErrorReply>(&reply.body).ok().map(|reply| reply.error);
        match error {
            Some(error) if error.kind == "card_error" => ConfirmOutcome::Declined {
                code: error.decline_code.or(error.code).unwrap_or_else(|| "card_declined".to_string()),
            },
            // Confirmed already (a retry after a lost reply): paid all the same.
            Some(StripeError { code: Some(code), payment_intent: Some(intent), .. })
                if code == "payment_intent_unexpected_state" && is_authorized(&intent.status) =>
            {
                ConfirmOutcome::Authorized { status: intent.status }
            }
            Some(error) => ConfirmOutcome::Failed { status, code: error.code },
            None => ConfirmOutcome::Failed { status, code: None },
        }
    }
}

/// A PaymentIntent, as far as the tool reads one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentIntent {
    pub id: String,
    pub status: String,
    #[serde(default)]
    pub amount: u64,
    #[serde(default)]
    pub amount_received: u64,
    #[serde(default)]
    pub amount_capturable: u64,
    #[serde(default)]
    pub currency: String,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub created: u64,
}

impl PaymentIntent {
    /// The hakken hold this intent pays for (`metadata[hakken_hold]`).
    pub fn hold(&self) -> Option<&str> {
        self.metadata.get("hakken_hold").map(String::as_str)
    }
}

#[derive(Deserialize)]
struct IntentList {
    data: Vec<PaymentIntent>,
    #[serde(default)]
    has_more: bool,
}

/// Every PaymentIntent at the PSP (`GET /v1/payment_intents`, newest first, paged with
/// `starting_after`), read with the secret key.
pub async fn list_intents(pool: &Pool, secret_key: &str, timeout: Duration) -> anyhow::Result<Vec<PaymentIntent>> {
    let authorization = bearer(secret_key)?;
    let mut intents: Vec<PaymentIntent> = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..LIST_PAGES_MAX {
        let path = match &after {
            None => format!("/v1/payment_intents?limit={LIST_PAGE}"),
            Some(id) => format!("/v1/payment_intents?limit={LIST_PAGE}&starting_after={}", query_escape(id)),
        };
        let uri: Uri = path.parse().context("a list path")?;
        let make = || {
            let mut request = pool.request(Method::GET, uri.clone(), None);
            request.headers_mut().insert(AUTHORIZATION, authorization.clone());
            request
        };
        let reply = send_retrying(pool, make, timeout).await.with_context(|| format!("GET {path} at the PSP"))?;
        if !reply.status.is_success() {
            bail!("GET {path} at the PSP: {} {}", reply.status, String::from_utf8_lossy(&reply.body));
        }
        let page: IntentList =
            serde_json::from_slice(&reply.body).with_context(|| format!("GET {path} at the PSP: not a list"))?;
        let more = page.has_more && !page.data.is_empty();
        after = page.data.last().map(|intent| intent.id.clone());
        intents.extend(page.data);
        if !more {
            return Ok(intents);
        }
    }
    bail!("the PSP listed more than {} PaymentIntents", u64::from(LIST_PAGE) * u64::from(LIST_PAGES_MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, body: &str) -> Reply {
        Reply {
            status: hyper::StatusCode::from_u16(status).expect("a status"),
            sent_at: tokio::time::Instant::now(),
            retry_after_seconds: None,
            location: None,
            body: Bytes::copy_from_slice(body.as_bytes()),
        }
    }

    #[test]
    fn forms_are_url_encoded() {
        let body = form(&[("payment_method", "pm_card_visa"), ("client_secret", "pi_1_secret_a/b+c"), ("a b", "")]);
        assert_eq!(&body[..], b"payment_method=pm_card_visa&client_secret=pi_1_secret_a%2Fb%2Bc&a%20b=");
        assert_eq!(&form(&[])[..], b"");
    }

    #[test]
    fn confirm_replies_are_read() {
        let intent = |status: &str| format!(r#"{{"id":"pi_1","object":"payment_intent","status":"{status}"}}"#);
        assert_eq!(
            ConfirmOutcome::of(&reply(200, &intent("requires_capture"))),
            ConfirmOutcome::Authorized { status: "requires_capture".into() }
        );
        assert_eq!(ConfirmOutcome::of(&reply(200, &intent("requires_action"))), ConfirmOutcome::RequiresAction);
        assert_eq!(
            ConfirmOutcome::of(&reply(200, &intent("canceled"))),
            ConfirmOutcome::Failed { status: 200, code: Some("canceled".into()) }
        );
        let declined = r#"{"error":{"type":"card_error","code":"card_declined","decline_code":"generic_decline",
            "message":"Your card was declined."}}"#;
        assert_eq!(
            ConfirmOutcome::of(&reply(402, declined)),
            ConfirmOutcome::Declined { code: "generic_decline".into() }
        );
        let declined = r#"{"error":{"type":"card_error","code":"card_declined"}}"#;
        assert_eq!(
            ConfirmOutcome::of(&reply(402, declined)),
            ConfirmOutcome::Declined { code: "card_declined".into() }
        );
        let unavailable = r#"{"error":{"type":"api_error","code":"internal","message":"try later"}}"#;
        assert_eq!(
            ConfirmOutcome::of(&reply(500, unavailable)),
            ConfirmOutcome::Failed { status: 500, code: Some("internal".into()) }
        );
        assert_eq!(ConfirmOutcome::of(&reply(502, "<html>")), ConfirmOutcome::Failed { status: 502, code: None });
        let again = r#"{"error":{"code":"payment_intent_unexpected_state","type":"invalid_request_error",
            "payment_intent":{"id":"pi_1","status":"requires_capture"}}}"#;
        assert_eq!(
            ConfirmOutcome::of(&reply(400, again)),
            ConfirmOutcome::Authorized { status: "requires_capture".into() }
        );
        let voided = again.replace("requires_capture", "canceled");
        assert_eq!(
            ConfirmOutcome::of(&reply(400, &voided)),
            ConfirmOutcome::Failed { status: 400, code: Some("payment_intent_unexpected_state".into()) }
        );
        assert_eq!(ConfirmOutcome::of(&reply(200, "{}")), ConfirmOutcome::Failed { status: 200, code: None });
    }

    #[test]
    fn intents_and_config_parse() {
        let body = r#"{"id":"pi_9","object":"payment_intent","amount":12900,"amount_received":12900,
            "amount_capturable":0,"currency":"eur","status":"succeeded","capture_method":"manual",
            "client_secret":"pi_9_secret_x","metadata":{"hakken_hold":"h1-2","hakken_event":"demo-2027"},
            "livemode":false,"created":1790000000,"last_payment_error":null,"latest_charge":"ch_1"}"#;
        let intent: PaymentIntent = serde_json::from_str(body).expect("parses");
        assert_eq!(intent.hold(), Some("h1-2"));
        assert_eq!((intent.amount, intent.amount_received, intent.status.as_str()), (12900, 12900, "succeeded"));
        let config = PaymentsConfig::parse(
            br#"{"provider":"test","publishable_key":"pk_test_1","api_base":"http://127.0.0.1:9"}"#,
        )
        .expect("parses");
        assert!(!config.is_external());
        assert_eq!(config.api_base, "http://127.0.0.1:9");
        assert!(PaymentsConfig::parse(br#"{"provider":"external"}"#).expect("parses").is_external());
        let external = PaymentsConfig::parse(br#"{"provider":"external","publishable_key":null,"api_base":null}"#);
        assert_eq!(external.expect("parses").api_base, "");
        assert!(PaymentsConfig::parse(b"{}").is_err());
    }
}
