//! The webhook events hakken sends and their thin payloads, in the Standard Webhooks
//! shape `{"type", "timestamp", "data"}`.
//!
//! Thin: `data` holds ids, the event id and what a receiver needs to fetch the rest from
//! the API (`GET /v1/orders/{order}`, `/v1/tickets/{ticket}`, `/v1/holds/{hold}/payment`),
//! never a buyer's name or email: a payload is personal-data free by construction, since
//! no variant has a field for one. `timestamp` is when the change happened (the outbox
//! entry's time), not when it was sent: a retry sends the same bytes.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// The event types, named as receivers subscribe to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WebhookEventKind {
    OrderConfirmed,
    OrderRefunded,
    TicketReissued,
    PaymentLateVoided,
    PaymentLateReacquired,
    HoldExpiredWhilePaying,
    TicketCheckedIn,
}

impl WebhookEventKind {
    pub const ALL: [WebhookEventKind; 7] = [
        WebhookEventKind::OrderConfirmed,
        WebhookEventKind::OrderRefunded,
        WebhookEventKind::TicketReissued,
        WebhookEventKind::PaymentLateVoided,
        WebhookEventKind::PaymentLateReacquired,
        WebhookEventKind::HoldExpiredWhilePaying,
        WebhookEventKind::TicketCheckedIn,
    ];

    /// The `type` of the payload and the name in an endpoint's `events` list; also a
    /// bounded metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookEventKind::OrderConfirmed => "order.confirmed",
            WebhookEventKind::OrderRefunded => "order.refunded",
            WebhookEventKind::TicketReissued => "ticket.reissued",
            WebhookEventKind::PaymentLateVoided => "payment.late_voided",
            WebhookEventKind::PaymentLateReacquired => "payment.late_reacquired",
            WebhookEventKind::HoldExpiredWhilePaying => "hold.expired_while_paying",
            WebhookEventKind::TicketCheckedIn => "ticket.checked_in",
        }
    }
}

impl fmt::Display for WebhookEventKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown webhook event type {given:?}; the types are {}", known_kinds())]
pub struct UnknownEventKind {
    pub given: String,
}

fn known_kinds() -> String {
    WebhookEventKind::ALL.map(WebhookEventKind::as_str).join(", ")
}

impl FromStr for WebhookEventKind {
    type Err = UnknownEventKind;

    fn from_str(text: &str) -> Result<WebhookEventKind, UnknownEventKind> {
        WebhookEventKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
            .ok_or_else(|| UnknownEventKind { given: text.to_string() })
    }
}

/// One change to tell receivers, with its ids. Ids are hakken's own (`event` is the event's
/// id, e.g. `demo-2027`); `payment` is the PSP's PaymentIntent id, so a receiver can match
/// its own PSP records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum WebhookEvent {
    /// An order was sold (tickets issued); the tickets' ids let a receiver fetch each.
    OrderConfirmed { event: String, order: String, tickets: Vec<String> },
    /// An order was cancelled and its money returned (or its authorization voided).
    OrderRefunded { event: String, order: String },
    /// A ticket got a new code version; codes of older versions are refused at the gate.
    TicketReissued { event: String, order: String, ticket: String, code_version: u32 },
    /// A payment authorized after its hold ended was voided: no money taken, no order.
    PaymentLateVoided { event: String, hold: String, payment: String },
    /// A payment authorized after its hold ended got its seats again: now an order.
    PaymentLateReacquired { event: String, hold: String, payment: String, order: String },
    /// A hold ended while its buyer was still paying (the payment may arrive late).
    HoldExpiredWhilePaying { event: String, hold: String, payment: String },
    /// A ticket was admitted at a gate (the first admission only).
    TicketCheckedIn { event: String, order: String, ticket: String, gate: String },
}

#[derive(Serialize)]
struct Payload<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    timestamp: String,
    data: &'a WebhookEvent,
}

impl WebhookEvent {
    pub fn kind(&self) -> WebhookEventKind {
        match self {
            WebhookEvent::OrderConfirmed { .. } => WebhookEventKind::OrderConfirmed,
            WebhookEvent::OrderRefunded { .. } => WebhookEventKind::OrderRefunded,
            WebhookEvent::TicketReissued { .. } => WebhookEventKind::TicketReissued,
            WebhookEvent::PaymentLateVoided { .. } => WebhookEventKind::PaymentLateVoided,
            WebhookEvent::PaymentLateReacquired { .. } => WebhookEventKind::PaymentLateReacquired,
            WebhookEvent::HoldExpiredWhilePaying { .. } => WebhookEventKind::HoldExpiredWhilePaying,
            WebhookEvent::TicketCheckedIn { .. } => WebhookEventKind::TicketCheckedIn,
        }
    }

    /// The JSON body: `{"type", "timestamp" (RFC 3339, UTC, when it happened), "data"}`.
    /// `occurred_at_ms` is milliseconds since the Unix epoch (the engine's `Millis`).
    pub fn payload(&self, occurred_at_ms: u64) -> Vec<u8> {
        let timestamp = i64::try_from(occurred_at_ms)
            .ok()
            .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
            // Beyond the year 9999: not an instant the engine makes; say so rather than panic.
            .map_or_else(|| format!("{occurred_at_ms}ms"), |instant| instant.to_string());
        let payload = Payload { kind: self.kind().as_str(), timestamp, data: self };
        // Strings, numbers and lists only: serialization cannot fail.
        serde_json::to_vec(&payload).expect("webhook payloads are plain JSON")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(event: WebhookEvent, expected: serde_json::Value) {
        let body: serde_json::Value = serde_json::from_slice(&event.payload(1_815_208_200_000)).expect("JSON");
        assert_eq!(body, expected);
    }

    #[test]
    fn payloads_are_thin_and_typed() {
        check(
            WebhookEvent::OrderConfirmed {
                event: "demo-2027".into(),
                order: "o3-17".into(),
                tickets: vec!["t3-17-0".into(), "t3-17-1".into()],
            },
            serde_json::json!({
                "type": "order.confirmed",
                "timestamp": "2027-07-10T08:30:00Z",
                "data": {"event": "demo-2027", "order": "o3-17", "tickets": ["t3-17-0", "t3-17-1"]},
            }),
        );
        check(
            WebhookEvent::TicketReissued { event: "e".into(), order: "o".into(), ticket: "t".into(), code_version: 2 },
            serde_json::json!({
                "type": "ticket.reissued",
                "timestamp": "2027-07-10T08:30:00Z",
                "data": {"event": "e", "order": "o", "ticket": "t", "code_version": 2},
            }),
        );
        check(
            WebhookEvent::PaymentLateReacquired {
                event: "e".into(),
                hold: "h".into(),
                payment: "pi_1".into(),
                order: "o".into(),
            },
            serde_json::json!({
                "type": "payment.late_reacquired",
                "timestamp": "2027-07-10T08:30:00Z",
                "data": {"event": "e", "hold": "h", "payment": "pi_1", "order": "o"},
            }),
        );
    }

    #[test]
    fn kinds_round_trip_through_their_names() {
        for kind in WebhookEventKind::ALL {
            assert_eq!(kind.as_str().parse::<WebhookEventKind>(), Ok(kind));
        }
        let error = "order.created".parse::<WebhookEventKind>().expect_err("unknown");
        assert!(error.to_string().contains("order.confirmed, order.refunded"), "{error}");
    }
}
