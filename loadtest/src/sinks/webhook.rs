//! The webhook sink: an HTTP/1.1 server taking hakken's Standard Webhooks POSTs, so the
//! relay can deliver an endpoint's events to the load tool itself.
//!
//! Each POST is read (at most [`BODY_BYTES_MAX`]), its signature checked when the sink
//! has the endpoint's secret (`hakken_notify::webhook_sign::verify`, the receiver's side
//! of what hakken signs), and its payload `{"type", "timestamp", "data"}` read for the
//! type and `data.order`. Answers: 200 taken (duplicates too: a receiver acknowledges a
//! repeat it drops), 401 a signature that does not verify, 400 no `webhook-id` or not an
//! event, 413 too large, 405 not a POST. A refused delivery is retried by hakken, so a
//! wrong secret shows as refusals in the report and as retries in hakken's metrics.

use std::borrow::Cow;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use hakken_notify::webhook_sign::{
    verify, SignedHeaders, TOLERANCE_SECONDS, WEBHOOK_ID, WEBHOOK_SIGNATURE, WEBHOOK_TIMESTAMP,
};
use hakken_notify::WebhookSecret;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::time::Instant;

use super::ledger::WebhookNotice;

/// The largest body taken: hakken's payloads are thin (ids only), a few hundred bytes.
pub const BODY_BYTES_MAX: usize = 64 * 1024;
/// The longest `webhook-id` taken (hakken's are an event slug and ids).
pub const WEBHOOK_ID_BYTES_MAX: usize = 256;
/// Connections at once at most; one beyond is closed at once. hakken opens at most
/// `webhook_concurrency` (4 by default) per endpoint.
pub const CONNECTIONS_MAX: usize = 256;

/// What one POST came to.
#[derive(Clone, Copy, Debug)]
pub enum Delivery<'a> {
    /// Taken: an event with its `webhook-id`.
    Event { id: &'a str, notice: WebhookNotice<'a> },
    /// Refused: the signature did not verify with the sink's secret.
    BadSignature,
    /// Refused: no `webhook-id`, too large, or not an event.
    Malformed,
}

/// What the sink does with each POST, called as its body has been read.
pub type DeliveryHandler = Arc<dyn Fn(Delivery<'_>, Instant) + Send + Sync>;

#[derive(Deserialize)]
struct Payload<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    data: Data<'a>,
}

#[derive(Default, Deserialize)]
struct Data<'a> {
    #[serde(default, borrow)]
    order: Option<Cow<'a, str>>,
}

/// Serves webhooks on `listener` until the task is dropped; `secret`: check signatures.
pub async fn serve(listener: TcpListener, secret: Option<Arc<WebhookSecret>>, handler: DeliveryHandler) {
    let open = Arc::new(AtomicUsize::new(0));
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        if open.load(Ordering::Relaxed) >= CONNECTIONS_MAX {
            continue;
        }
        let _ = stream.set_nodelay(true);
        open.fetch_add(1, Ordering::Relaxed);
        let (secret, handler, open) = (secret.clone(), handler.clone(), open.clone());
        tokio::spawn(async move {
            let service = service_fn(move |request| answer(request, secret.clone(), handler.clone()));
            // A sender that goes away mid-request is retried by it; nothing to count here.
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            open.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

async fn answer(
    request: Request<Incoming>,
    secret: Option<Arc<WebhookSecret>>,
    handler: DeliveryHandler,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if request.method() != Method::POST {
        return Ok(status(StatusCode::METHOD_NOT_ALLOWED));
    }
    let header = |name: &str| {
        request.headers().get(name).and_then(|value| value.to_str().ok()).map(str::to_string).unwrap_or_default()
    };
    let signed = SignedHeaders {
        id: header(WEBHOOK_ID),
        timestamp: header(WEBHOOK_TIMESTAMP),
        signature: header(WEBHOOK_SIGNATURE),
    };
    let body = Limited::new(request.into_body(), BODY_BYTES_MAX).collect().await;
    let now = Instant::now();
    let Ok(body) = body.map(|collected| collected.to_bytes()) else {
        handler(Delivery::Malformed, now);
        return Ok(status(StatusCode::PAYLOAD_TOO_LARGE));
    };
    Ok(status(judge(&signed, &body, secret.as_deref(), unix_now(), &*handler, now)))
}

/// The status a delivery gets, having told `handler` what it was.
fn judge(
    signed: &SignedHeaders,
    body: &[u8],
    secret: Option<&WebhookSecret>,
    now_unix_s: i64,
    handler: &dyn Fn(Delivery<'_>, Instant),
    now: Instant,
) -> StatusCode {
    if signed.id.is_empty() || signed.id.len() > WEBHOOK_ID_BYTES_MAX {
        handler(Delivery::Malformed, now);
        return StatusCode::BAD_REQUEST;
    }
    if let Some(secret) = secret {
        if verify(std::slice::from_ref(secret), signed, body, now_unix_s, TOLERANCE_SECONDS).is_err() {
            handler(Delivery::BadSignature, now);
            return StatusCode::UNAUTHORIZED;
        }
    }
    let Ok(payload) = serde_json::from_slice::<Payload<'_>>(body) else {
        handler(Delivery::Malformed, now);
        return StatusCode::BAD_REQUEST;
    };
    let notice = match (payload.kind.as_ref(), payload.data.order.as_deref()) {
        ("order.confirmed", Some(order)) => WebhookNotice::OrderConfirmed { order },
        ("order.confirmed", None) => {
            handler(Delivery::Malformed, now);
            return StatusCode::BAD_REQUEST;
        }
        _ => WebhookNotice::Other,
    };
    handler(Delivery::Event { id: &signed.id, notice }, now);
    StatusCode::OK
}

fn unix_now() -> i64 {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX)
}

fn status(status: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const NOW: i64 = 1_800_000_000;

    /// The status of a delivery and what the handler heard, as text.
    fn check(signed: &SignedHeaders, body: &str, secret: Option<&str>, expected: (StatusCode, &str)) {
        let secret = secret.map(|text| WebhookSecret::parse(text).expect("test secret"));
        let heard = Mutex::new(String::new());
        let handler = |delivery: Delivery<'_>, _: Instant| {
            *heard.lock().expect("lock") = match delivery {
                Delivery::Event { id, notice: WebhookNotice::OrderConfirmed { order } } => {
                    format!("{id} confirmed {order}")
                }
                Delivery::Event { id, notice: WebhookNotice::Other } => format!("{id} other"),
                Delivery::BadSignature => "bad signature".into(),
                Delivery::Malformed => "malformed".into(),
            };
        };
        let status = judge(signed, body.as_bytes(), secret.as_ref(), NOW, &handler, Instant::now());
        assert_eq!((status, heard.lock().expect("lock").as_str()), expected, "{body}");
    }

    fn signed(id: &str, body: &str) -> SignedHeaders {
        WebhookSecret::parse(SECRET).expect("test secret").sign(id, NOW, body.as_bytes())
    }

    #[test]
    fn deliveries_are_judged() {
        let confirmed = r#"{"type":"order.confirmed","timestamp":"2027-07-10T08:30:00Z","data":{"event":"e","order":"o3-17","tickets":["t1"]}}"#;
        check(
            &signed("order-confirmed_o3-17", confirmed),
            confirmed,
            Some(SECRET),
            (StatusCode::OK, "order-confirmed_o3-17 confirmed o3-17"),
        );
        check(&signed("w1", confirmed), confirmed, None, (StatusCode::OK, "w1 confirmed o3-17"));
        let checked_in = r#"{"type":"ticket.checked_in","data":{"order":"o1","ticket":"t1","gate":"g"}}"#;
        check(&signed("w2", checked_in), checked_in, Some(SECRET), (StatusCode::OK, "w2 other"));
        // Tampered body, another secret, a stale timestamp: refused.
        let tampered = confirmed.replace("o3-17", "o3-18");
        check(&signed("w1", confirmed), &tampered, Some(SECRET), (StatusCode::UNAUTHORIZED, "bad signature"));
        let other = "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
        check(&signed("w1", confirmed), confirmed, Some(other), (StatusCode::UNAUTHORIZED, "bad signature"));
        let stale = WebhookSecret::parse(SECRET).expect("secret").sign("w1", NOW - 3600, confirmed.as_bytes());
        check(&stale, confirmed, Some(SECRET), (StatusCode::UNAUTHORIZED, "bad signature"));
        // Not an event, no order, no id.
        check(&signed("w3", "[]"), "[]", Some(SECRET), (StatusCode::BAD_REQUEST, "malformed"));
        let no_order = r#"{"type":"order.confirmed","data":{}}"#;
        check(&signed("w4", no_order), no_order, None, (StatusCode::BAD_REQUEST, "malformed"));
        check(&signed("", confirmed), confirmed, None, (StatusCode::BAD_REQUEST, "malformed"));
        let escaped = r#"{"type":"order.confirmed","data":{"order":"o\u0031"}}"#;
        check(&signed("w5", escaped), escaped, None, (StatusCode::OK, "w5 confirmed o1"));
    }
}
