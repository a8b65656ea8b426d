//! Stripe's webhook events, read down to what hakken acts on: which event (its `evt_`
//! id, for durable dedup), which PaymentIntent it is about (and the hold hakken wrote
//! into its metadata), and whether it came from test or live mode.
//!
//! Why so little: Stripe delivers late, twice and out of order, so hakken treats an event
//! as a hint ("look at this PaymentIntent") and decides from the PaymentIntent's state,
//! not from the order of events. Unknown event types parse as [`EventType::Other`] (hakken
//! answers 200, or Stripe would retry them for days); a body that is not a Stripe event
//! at all is an [`EventError`] (a 400).
//!
//! Pure: parse after [`super::signature::verify`] accepted the raw body. Errors name the
//! field that was wrong, never a value from the body.

use std::fmt;

use serde_json::Value;

use super::stripe::{is_stripe_id, PaymentIntentStatus};

/// An event type hakken knows; every other type is kept as [`EventType::Other`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventType {
    /// `payment_intent.created`
    PaymentIntentCreated,
    /// `payment_intent.amount_capturable_updated`: authorized, waiting for a manual capture.
    PaymentIntentAmountCapturableUpdated,
    /// `payment_intent.payment_failed`: declined; the buyer may try again.
    PaymentIntentPaymentFailed,
    /// `payment_intent.succeeded`: captured.
    PaymentIntentSucceeded,
    /// `payment_intent.canceled`: voided (no money moved) or expired.
    PaymentIntentCanceled,
    /// `charge.refunded`
    ChargeRefunded,
    /// Any other type, as Stripe spelled it.
    Other(String),
}

impl EventType {
    pub fn parse(text: &str) -> EventType {
        match text {
            "payment_intent.created" => EventType::PaymentIntentCreated,
            "payment_intent.amount_capturable_updated" => EventType::PaymentIntentAmountCapturableUpdated,
            "payment_intent.payment_failed" => EventType::PaymentIntentPaymentFailed,
            "payment_intent.succeeded" => EventType::PaymentIntentSucceeded,
            "payment_intent.canceled" => EventType::PaymentIntentCanceled,
            "charge.refunded" => EventType::ChargeRefunded,
            other => EventType::Other(other.to_string()),
        }
    }

    /// The type as Stripe spells it.
    pub fn as_str(&self) -> &str {
        match self {
            EventType::PaymentIntentCreated => "payment_intent.created",
            EventType::PaymentIntentAmountCapturableUpdated => "payment_intent.amount_capturable_updated",
            EventType::PaymentIntentPaymentFailed => "payment_intent.payment_failed",
            EventType::PaymentIntentSucceeded => "payment_intent.succeeded",
            EventType::PaymentIntentCanceled => "payment_intent.canceled",
            EventType::ChargeRefunded => "charge.refunded",
            EventType::Other(text) => text,
        }
    }

    /// A bounded metric label: the type for known ones, `other` for the rest (a sender
    /// could otherwise invent a label per request).
    pub fn label(&self) -> &'static str {
        match self {
            EventType::PaymentIntentCreated => "payment_intent.created",
            EventType::PaymentIntentAmountCapturableUpdated => "payment_intent.amount_capturable_updated",
            EventType::PaymentIntentPaymentFailed => "payment_intent.payment_failed",
            EventType::PaymentIntentSucceeded => "payment_intent.succeeded",
            EventType::PaymentIntentCanceled => "payment_intent.canceled",
            EventType::ChargeRefunded => "charge.refunded",
            EventType::Other(_) => "other",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// What an event is about, from its `data.object`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// Any `payment_intent.*` event (known type or not): the PaymentIntent as it was when
    /// the event was made.
    PaymentIntent {
        /// `pi_…`
        payment_intent: String,
        /// `metadata.hakken_hold`: the hold hakken created the PaymentIntent for; `None`
        /// for a PaymentIntent hakken did not create (same Stripe account, other shop).
        hakken_hold: Option<String>,
        /// The state at the event's time (may be older than the PaymentIntent's current one).
        status: PaymentIntentStatus,
        /// `amount_capturable` at the event's time (minor units), if the object has it.
        amount_capturable: Option<u64>,
    },
    /// `charge.refunded`: `data.object` is a charge.
    ChargeRefunded {
        /// `ch_…`
        charge: String,
        /// The charge's PaymentIntent (`None` for a charge made without one).
        payment_intent: Option<String>,
        /// Minor units refunded so far, over all refunds of the charge.
        amount_refunded: u64,
        /// Whether the charge is refunded in full.
        refunded: bool,
    },
    /// Any other event: nothing for hakken to do.
    Other,
}

/// A Stripe event (a webhook's body, or one of `GET /v1/events`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookEvent {
    /// `evt_…`: Stripe's id, the same on every delivery of the event (the dedup key).
    pub id: String,
    /// Unix seconds at which Stripe made the event.
    pub created: i64,
    /// Whether a live-mode key made it (see [`KeyMode::accepts`]).
    pub livemode: bool,
    pub event_type: EventType,
    pub kind: EventKind,
}

impl WebhookEvent {
    /// The authorization an event reports, if it is one: a signed
    /// `payment_intent.amount_capturable_updated` whose PaymentIntent was then
    /// `requires_capture`. That is a fact however late the event comes: an
    /// authorization only ends by a capture or a cancel, both of which hakken hears of
    /// (its own calls' answers, or the capture refused for a PaymentIntent cancelled
    /// elsewhere, which is then read afresh). So it needs no fresh read from the PSP.
    pub fn authorization(&self) -> Option<u64> {
        match (&self.event_type, &self.kind) {
            (
                EventType::PaymentIntentAmountCapturableUpdated,
                EventKind::PaymentIntent {
                    status: PaymentIntentStatus::RequiresCapture,
                    amount_capturable: Some(amount),
                    ..
                },
            ) if *amount > 0 => Some(*amount),
            _ => None,
        }
    }

    /// Parses a webhook's raw body.
    pub fn parse(body: &[u8]) -> Result<WebhookEvent, EventError> {
        let value: Value = serde_json::from_slice(body).map_err(|_| EventError::NotJson)?;
        WebhookEvent::from_value(&value)
    }

    /// Reads an event already parsed as JSON (an element of a list of events).
    pub fn from_value(value: &Value) -> Result<WebhookEvent, EventError> {
        let event = value.as_object().ok_or(EventError::NotAnEvent)?;
        if event.get("object").is_some_and(|object| object != "event") {
            return Err(EventError::NotAnEvent);
        }
        let id = string_field(value, "id")?;
        if !is_stripe_id(id, "evt_") {
            return Err(EventError::InvalidId("id"));
        }
        let event_type = EventType::parse(string_field(value, "type")?);
        let created = value.get("created").and_then(Value::as_i64).ok_or(EventError::MissingField("created"))?;
        let livemode = value.get("livemode").and_then(Value::as_bool).ok_or(EventError::MissingField("livemode"))?;
        let object = value
            .get("data")
            .and_then(|data| data.get("object"))
            .filter(|object| object.is_object())
            .ok_or(EventError::MissingField("data.object"))?;
        let kind = if event_type.as_str().starts_with("payment_intent.") {
            payment_intent_kind(object)?
        } else if event_type == EventType::ChargeRefunded {
            charge_refunded_kind(object)?
        } else {
            EventKind::Other
        };
        Ok(WebhookEvent { id: id.to_string(), created, livemode, event_type, kind })
    }

    /// The PaymentIntent the event is about, if any.
    pub fn payment_intent(&self) -> Option<&str> {
        match &self.kind {
            EventKind::PaymentIntent { payment_intent, .. } => Some(payment_intent),
            EventKind::ChargeRefunded { payment_intent, .. } => payment_intent.as_deref(),
            EventKind::Other => None,
        }
    }
}

fn payment_intent_kind(object: &Value) -> Result<EventKind, EventError> {
    if object.get("object").is_some_and(|kind| kind != "payment_intent") {
        return Err(EventError::UnexpectedObject("data.object.object"));
    }
    let id = string_field(object, "id").map_err(|_| EventError::MissingField("data.object.id"))?;
    if !is_stripe_id(id, "pi_") {
        return Err(EventError::InvalidId("data.object.id"));
    }
    let status = string_field(object, "status").map_err(|_| EventError::MissingField("data.object.status"))?;
    let hakken_hold = match object.get("metadata").and_then(|metadata| metadata.get("hakken_hold")) {
        None | Some(Value::Null) => None,
        Some(Value::String(hold)) => Some(hold.clone()),
        Some(_) => return Err(EventError::UnexpectedObject("data.object.metadata.hakken_hold")),
    };
    let amount_capturable = match object.get("amount_capturable") {
        None | Some(Value::Null) => None,
        Some(amount) => Some(amount.as_u64().ok_or(EventError::MissingField("data.object.amount_capturable"))?),
    };
    Ok(EventKind::PaymentIntent {
        payment_intent: id.to_string(),
        hakken_hold,
        status: PaymentIntentStatus::parse(status),
        amount_capturable,
    })
}

fn charge_refunded_kind(object: &Value) -> Result<EventKind, EventError> {
    if object.get("object").is_some_and(|kind| kind != "charge") {
        return Err(EventError::UnexpectedObject("data.object.object"));
    }
    let charge = string_field(object, "id").map_err(|_| EventError::MissingField("data.object.id"))?;
    if !is_stripe_id(charge, "") {
        return Err(EventError::InvalidId("data.object.id"));
    }
    let payment_intent = match object.get("payment_intent") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) if is_stripe_id(id, "pi_") => Some(id.clone()),
        Some(_) => return Err(EventError::InvalidId("data.object.payment_intent")),
    };
    let amount_refunded = object
        .get("amount_refunded")
        .and_then(Value::as_u64)
        .ok_or(EventError::MissingField("data.object.amount_refunded"))?;
    let refunded =
        object.get("refunded").and_then(Value::as_bool).ok_or(EventError::MissingField("data.object.refunded"))?;
    Ok(EventKind::ChargeRefunded { charge: charge.to_string(), payment_intent, amount_refunded, refunded })
}

fn string_field<'a>(value: &'a Value, field: &'static str) -> Result<&'a str, EventError> {
    value.get(field).and_then(Value::as_str).ok_or(EventError::MissingField(field))
}

/// Why a body is not a Stripe event hakken can read. Messages name fields, never values.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("the body is not JSON")]
    NotJson,
    #[error("the body is not a Stripe event object")]
    NotAnEvent,
    #[error("the event has no valid `{0}`")]
    MissingField(&'static str),
    #[error("`{0}` is not a valid Stripe id")]
    InvalidId(&'static str),
    #[error("`{0}` is not what this event type carries")]
    UnexpectedObject(&'static str),
}

impl EventError {
    /// A stable name for metric labels and error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            EventError::NotJson => "event_not_json",
            EventError::NotAnEvent => "event_not_an_event",
            EventError::MissingField(_) => "event_missing_field",
            EventError::InvalidId(_) => "event_invalid_id",
            EventError::UnexpectedObject(_) => "event_unexpected_object",
        }
    }
}

/// Test or live mode, from the prefix of a Stripe key. Stripe keeps the two apart (a test
/// key never sees live objects), and so must hakken: an event whose `livemode` differs
/// from its key's mode was not made for this configuration (a misrouted endpoint, or a
/// test event replayed against production) and is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyMode {
    Test,
    Live,
}

impl KeyMode {
    /// The mode of a secret (`sk_…`) or restricted (`rk_…`) key. The error says which
    /// prefix was expected and never repeats the key.
    pub fn of_secret_key(key: &str) -> Result<KeyMode, KeyModeError> {
        if key.starts_with("sk_test_") || key.starts_with("rk_test_") {
            Ok(KeyMode::Test)
        } else if key.starts_with("sk_live_") || key.starts_with("rk_live_") {
            Ok(KeyMode::Live)
        } else {
            Err(KeyModeError)
        }
    }

    /// The `livemode` of objects and events this mode's keys see.
    pub fn livemode(self) -> bool {
        self == KeyMode::Live
    }

    /// Whether an event belongs to this mode.
    pub fn accepts(self, event: &WebhookEvent) -> bool {
        event.livemode == self.livemode()
    }
}

/// The key is not a Stripe secret key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a Stripe secret key: expected sk_test_…, sk_live_…, rk_test_… or rk_live_…")]
pub struct KeyModeError;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Parses `event` and compares the outcome with `expected` (the event, or the error's
    /// code and message).
    fn check(event: Value, expected: Result<WebhookEvent, &str>) {
        let body = serde_json::to_vec(&event).expect("serialize");
        let outcome = WebhookEvent::parse(&body).map_err(|error| error.to_string());
        assert_eq!(outcome, expected.map_err(String::from), "event {event}");
    }

    fn event(kind: &str, object: Value) -> Value {
        json!({
            "id": "evt_1Abc", "object": "event", "type": kind, "created": 1_767_000_000,
            "livemode": false, "api_version": "2024-06-20", "pending_webhooks": 1,
            "request": {"id": null, "idempotency_key": null}, "data": {"object": object},
        })
    }

    fn intent(status: &str, metadata: Value) -> Value {
        json!({
            "id": "pi_3Abc", "object": "payment_intent", "amount": 12900, "currency": "eur",
            "status": status, "metadata": metadata, "client_secret": "pi_3Abc_secret_x",
        })
    }

    fn parsed(event_type: EventType, kind: EventKind) -> WebhookEvent {
        WebhookEvent { id: "evt_1Abc".into(), created: 1_767_000_000, livemode: false, event_type, kind }
    }

    fn pi_kind(hold: Option<&str>, status: PaymentIntentStatus) -> EventKind {
        EventKind::PaymentIntent {
            payment_intent: "pi_3Abc".into(),
            hakken_hold: hold.map(String::from),
            status,
            amount_capturable: None,
        }
    }

    #[test]
    fn parse_table() {
        let held = json!({"hakken_hold": "h-42", "hakken_event": "e1"});
        check(
            event("payment_intent.amount_capturable_updated", intent("requires_capture", held.clone())),
            Ok(parsed(
                EventType::PaymentIntentAmountCapturableUpdated,
                pi_kind(Some("h-42"), PaymentIntentStatus::RequiresCapture),
            )),
        );
        check(
            event("payment_intent.succeeded", intent("succeeded", held.clone())),
            Ok(parsed(EventType::PaymentIntentSucceeded, pi_kind(Some("h-42"), PaymentIntentStatus::Succeeded))),
        );
        check(
            event("payment_intent.canceled", intent("canceled", json!({}))),
            Ok(parsed(EventType::PaymentIntentCanceled, pi_kind(None, PaymentIntentStatus::Canceled))),
        );
        check(
            event("payment_intent.payment_failed", intent("requires_payment_method", held.clone())),
            Ok(parsed(
                EventType::PaymentIntentPaymentFailed,
                pi_kind(Some("h-42"), PaymentIntentStatus::RequiresPaymentMethod),
            )),
        );
        // An unknown payment_intent.* type still says which PaymentIntent; unknown states kept.
        check(
            event("payment_intent.processing", intent("some_new_state", held.clone())),
            Ok(parsed(
                EventType::Other("payment_intent.processing".into()),
                pi_kind(Some("h-42"), PaymentIntentStatus::Other("some_new_state".into())),
            )),
        );
        check(
            event(
                "charge.refunded",
                json!({"id": "ch_3Abc", "object": "charge", "payment_intent": "pi_3Abc",
                       "amount_refunded": 12900, "refunded": true}),
            ),
            Ok(parsed(
                EventType::ChargeRefunded,
                EventKind::ChargeRefunded {
                    charge: "ch_3Abc".into(),
                    payment_intent: Some("pi_3Abc".into()),
                    amount_refunded: 12900,
                    refunded: true,
                },
            )),
        );
        check(
            event("customer.created", json!({"id": "cus_1", "object": "customer", "email": "a@b.example"})),
            Ok(parsed(EventType::Other("customer.created".into()), EventKind::Other)),
        );
        // Refusals name the field.
        check(json!([1, 2]), Err("the body is not a Stripe event object"));
        check(json!({"object": "payment_intent", "id": "evt_1"}), Err("the body is not a Stripe event object"));
        let mut bad_id = event("payment_intent.succeeded", intent("succeeded", held.clone()));
        bad_id["id"] = json!("evt_../x");
        check(bad_id, Err("`id` is not a valid Stripe id"));
        let mut no_created = event("payment_intent.succeeded", intent("succeeded", held.clone()));
        no_created["created"] = json!("yesterday");
        check(no_created, Err("the event has no valid `created`"));
        let mut no_livemode = event("payment_intent.succeeded", intent("succeeded", held.clone()));
        no_livemode.as_object_mut().expect("object").remove("livemode");
        check(no_livemode, Err("the event has no valid `livemode`"));
        check(event("payment_intent.succeeded", json!(null)), Err("the event has no valid `data.object`"));
        let mut bad_pi = intent("succeeded", held.clone());
        bad_pi["id"] = json!("ch_3Abc");
        check(event("payment_intent.succeeded", bad_pi), Err("`data.object.id` is not a valid Stripe id"));
        check(
            event("payment_intent.succeeded", json!({"id": "ch_1", "object": "charge"})),
            Err("`data.object.object` is not what this event type carries"),
        );
        check(
            event("payment_intent.succeeded", intent("succeeded", json!({"hakken_hold": 42}))),
            Err("`data.object.metadata.hakken_hold` is not what this event type carries"),
        );
        check(
            event("charge.refunded", json!({"id": "ch_3Abc", "object": "charge", "payment_intent": "pi_3Abc"})),
            Err("the event has no valid `data.object.amount_refunded`"),
        );
    }

    #[test]
    fn only_a_capturable_authorization_is_taken_as_one() {
        let held = json!({"hakken_hold": "h-42"});
        let with = |kind: &str, status: &str, capturable: Value| {
            let mut object = intent(status, held.clone());
            object["amount_capturable"] = capturable;
            WebhookEvent::parse(&serde_json::to_vec(&event(kind, object)).expect("serialize")).expect("parses")
        };
        let authorized = "payment_intent.amount_capturable_updated";
        assert_eq!(with(authorized, "requires_capture", json!(12900)).authorization(), Some(12900));
        assert_eq!(with(authorized, "requires_capture", json!(0)).authorization(), None);
        assert_eq!(with(authorized, "requires_capture", json!(null)).authorization(), None);
        assert_eq!(with(authorized, "canceled", json!(12900)).authorization(), None, "stale by its own state");
        assert_eq!(with("payment_intent.succeeded", "requires_capture", json!(12900)).authorization(), None);
        let mut bad = intent("requires_capture", held.clone());
        bad["amount_capturable"] = json!("lots");
        let body = serde_json::to_vec(&event(authorized, bad)).expect("serialize");
        assert_eq!(WebhookEvent::parse(&body), Err(EventError::MissingField("data.object.amount_capturable")));
    }

    #[test]
    fn not_json_is_refused() {
        assert_eq!(WebhookEvent::parse(b"{not json"), Err(EventError::NotJson));
        assert_eq!(WebhookEvent::parse(b""), Err(EventError::NotJson));
    }

    #[test]
    fn the_payment_intent_an_event_is_about() {
        let body = serde_json::to_vec(&event(
            "charge.refunded",
            json!({"id": "ch_1", "object": "charge",
            "payment_intent": null, "amount_refunded": 5, "refunded": false}),
        ))
        .expect("serialize");
        assert_eq!(WebhookEvent::parse(&body).expect("parses").payment_intent(), None);
        let body = serde_json::to_vec(&event("payment_intent.created", intent("requires_payment_method", json!({}))))
            .expect("serialize");
        assert_eq!(WebhookEvent::parse(&body).expect("parses").payment_intent(), Some("pi_3Abc"));
    }

    #[test]
    fn key_modes() {
        for (key, expected) in [
            ("sk_test_51Abc", Ok(KeyMode::Test)),
            ("rk_test_51Abc", Ok(KeyMode::Test)),
            ("sk_live_51Abc", Ok(KeyMode::Live)),
            ("rk_live_51Abc", Ok(KeyMode::Live)),
            ("pk_test_51Abc", Err(KeyModeError)),
            ("", Err(KeyModeError)),
            ("sk_51Abc", Err(KeyModeError)),
        ] {
            assert_eq!(KeyMode::of_secret_key(key), expected, "{key}");
        }
        let mut test_event = parsed(EventType::PaymentIntentCreated, EventKind::Other);
        assert!(KeyMode::Test.accepts(&test_event));
        assert!(!KeyMode::Live.accepts(&test_event));
        test_event.livemode = true;
        assert!(KeyMode::Live.accepts(&test_event));
        assert!(!KeyMode::Test.accepts(&test_event));
    }

    #[test]
    fn labels_are_bounded() {
        assert_eq!(EventType::parse("anything.at_all").label(), "other");
        assert_eq!(EventType::parse("anything.at_all").as_str(), "anything.at_all");
        for known in ["payment_intent.created", "payment_intent.succeeded", "charge.refunded"] {
            assert_eq!(EventType::parse(known).label(), known);
            assert_eq!(EventType::parse(known).to_string(), known);
        }
    }
}
