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

/// A confirmed order.
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
