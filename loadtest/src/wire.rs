//! The hakken API's JSON, as far as the load tool sends and reads it. Replies are read
//! leniently (unknown fields ignored), so the tool keeps working as the API grows.

use std::borrow::Cow;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::client::Reply;
use crate::verdict::Ticket;

/// `POST /v1/holds/{hold}/confirm`.
#[derive(Serialize)]
pub struct ConfirmRequest<'a> {
    pub customer: &'a str,
    pub payment_reference: &'a str,
    pub buyer: BuyerDetails<'a>,
}

/// `POST /v1/holds/{hold}/checkout`: start paying for a hold.
#[derive(Serialize)]
pub struct CheckoutRequest<'a> {
    pub customer: &'a str,
    pub buyer: BuyerDetails<'a>,
}

/// A payment as hakken shows it (`PaymentView`), in a checkout reply and in
/// `GET /v1/holds/{hold}/payment`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentView {
    /// The PSP's id (`pi_...`).
    pub id: String,
    #[serde(default)]
    pub hold: String,
    /// `awaiting_payment`, `ordered`, `captured`, `void_pending`, `voided`,
    /// `refund_pending`, `refunded`.
    pub status: String,
    #[serde(default)]
    pub amount: u64,
    #[serde(default)]
    pub currency: String,
    #[serde(default)]
    pub provider: String,
    /// Only for the buyer's browser; never logged nor written to a report.
    #[serde(default, skip_serializing)]
    pub client_secret: String,
    #[serde(default)]
    pub order: Option<String>,
}

impl PaymentView {
    /// Whether hakken is done with this payment for now: an order came of it, or it was
    /// voided or refunded. `awaiting_payment` and the `*_pending` states are not.
    pub fn settled(&self) -> bool {
        self.order.is_some() && matches!(self.status.as_str(), "ordered" | "captured")
            || matches!(self.status.as_str(), "voided" | "refunded")
    }
}

#[derive(Deserialize)]
struct PaymentReply {
    payment: PaymentView,
}

/// A checkout's reply: the payment, and the hold's new expiry.
#[derive(Deserialize)]
struct CheckoutReply {
    payment: PaymentView,
    #[serde(default)]
    hold: Option<ExpiringHold>,
}

#[derive(Deserialize)]
struct ExpiringHold {
    #[serde(default)]
    expires_at_ms: Option<u64>,
}

/// What a 2xx checkout reply says: the payment and when the hold now expires (ms
/// since the epoch, if the reply says).
pub fn checkout(body: &[u8]) -> Option<(PaymentView, Option<u64>)> {
    let reply: CheckoutReply = serde_json::from_slice(body).ok()?;
    Some((reply.payment, reply.hold.and_then(|hold| hold.expires_at_ms)))
}

/// The `checkout_error.code` of a hold reply whose checkout (`checkout` in the hold
/// request) did not happen.
pub fn checkout_error(body: &[u8]) -> Option<String> {
    let reply: serde_json::Value = serde_json::from_slice(body).ok()?;
    reply["checkout_error"]["code"].as_str().map(str::to_string)
}

/// The payment in a 2xx `GET /v1/holds/{hold}/payment` reply.
pub fn payment(body: &[u8]) -> Option<PaymentView> {
    serde_json::from_slice::<PaymentReply>(body).ok().map(|reply| reply.payment)
}

#[derive(Serialize)]
pub struct BuyerDetails<'a> {
    pub name: &'a str,
    pub email: &'a str,
}

/// A granted hold; only its id matters to the tool.
#[derive(Deserialize)]
pub struct HoldReply<'a> {
    #[serde(borrow)]
    pub hold: HoldInfo<'a>,
}

#[derive(Deserialize)]
pub struct HoldInfo<'a> {
    #[serde(borrow)]
    pub id: Cow<'a, str>,
}

/// A confirmed order (the confirm's reply, and `GET /v1/orders/{order}`).
#[derive(Deserialize)]
pub struct OrderReply {
    pub order: OrderInfo,
}

#[derive(Deserialize)]
pub struct OrderInfo {
    pub id: String,
    pub section: String,
    pub tickets: Vec<Ticket>,
}

#[derive(Deserialize)]
struct ErrorReply<'a> {
    #[serde(borrow)]
    error: ErrorInfo<'a>,
}

#[derive(Deserialize)]
struct ErrorInfo<'a> {
    #[serde(borrow)]
    code: Cow<'a, str>,
}

/// `"{status} {code}"` when the reply is the API's error (`{"error": {"code": ...}}`).
pub fn error_code(reply: &Reply) -> Option<String> {
    let parsed: ErrorReply = serde_json::from_slice(&reply.body).ok()?;
    Some(format!("{} {}", reply.status.as_u16(), parsed.error.code))
}

/// The id of the hold in a 2xx hold reply.
pub fn hold_id(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<HoldReply>(body).ok().map(|reply| reply.hold.id.into_owned())
}

/// The order in a 2xx confirm reply.
pub fn order(body: &[u8]) -> Option<OrderInfo> {
    serde_json::from_slice::<OrderReply>(body).ok().map(|reply| reply.order)
}

#[derive(Deserialize)]
struct ScanReply<'a> {
    #[serde(borrow)]
    result: Cow<'a, str>,
}

/// The `result` of a scan reply (`admitted`, `already_admitted`, ...).
pub fn scan_result(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<ScanReply>(body).ok().map(|reply| reply.result.into_owned())
}

pub fn json(value: &impl Serialize) -> Bytes {
    Bytes::from(serde_json::to_vec(value).expect("request bodies serialize"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkout_and_payment_replies_parse() {
        let body = br#"{"payment":{"id":"pi_1","hold":"h1","status":"awaiting_payment","amount":12900,
            "currency":"EUR","provider":"test","client_secret":"pi_1_secret_z","order":null},
            "hold":{"id":"h1","expires_at":"2026-12-02T18:00:00Z","expires_at_ms":1796320800000}}"#;
        let (started, expires) = checkout(body).expect("parses");
        assert_eq!((started.id.as_str(), started.client_secret.as_str()), ("pi_1", "pi_1_secret_z"));
        assert_eq!(expires, Some(1_796_320_800_000));
        assert!(!started.settled());
        let text = serde_json::to_string(&started).expect("serializes");
        assert!(!text.contains("secret"), "client secrets never leave the buyer: {text}");
        let ordered = payment(br#"{"payment":{"id":"pi_1","status":"captured","order":"o7"}}"#).expect("parses");
        assert!(ordered.settled());
        let voided = payment(br#"{"payment":{"id":"pi_1","status":"voided","order":null}}"#).expect("parses");
        assert!(voided.settled());
        let pending = payment(br#"{"payment":{"id":"pi_1","status":"void_pending"}}"#).expect("parses");
        assert!(!pending.settled());
        assert!(checkout(b"{}").is_none());
        assert!(payment(br#"{"payment":{}}"#).is_none());
    }
}
