//! The PSP's objects and Stripe's rules for them: a deterministic state machine.
//!
//! [`Psp`] owns every PaymentIntent, charge, refund and event. Each operation takes the
//! time as an argument and either changes state and records the events it caused, or
//! answers Stripe's error for that situation; it never reads the clock, does I/O or knows
//! HTTP, so its rules are unit-tested here and the HTTP layer stays thin.
//!
//! PaymentIntent states, as Stripe's (FIELD-NOTES, "Payments"):
//! ```text
//!  create ─▶ requires_payment_method ──confirm(pm)──▶ (requires_confirmation when created with a pm)
//!               ▲   declined                            │
//!               └───────────────────────────────────────┤ pm_card_authenticationRequired
//!                                                       ├──────▶ requires_action ──3DS ok──┐
//!                     pay late: processing ──settle─────┤                                   │
//!                                                       ▼ pm_card_visa                      │
//!                   manual capture: requires_capture ◀──┴───────────────────────────────────┘
//!                                   │ capture                automatic capture: succeeded
//!                                   ▼
//!                               succeeded ──refund(s)──▶ (charge refunded)
//!  cancel: from every state but succeeded and canceled ─▶ canceled (terminal)
//! ```
//! Events are stored with stable `evt_` ids and also queued in an outbox that the webhook
//! sender drains ([`Psp::take_outbox`]).

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

/// The API version stamped on events: the one the pinned Python SDK (16.1.0) speaks.
pub const API_VERSION: &str = "2026-10-28.endive";

/// Stripe's bounds on an amount in minor units (the minimum charge is 50 for most
/// currencies, the maximum eight digits).
pub const AMOUNT_MIN: i64 = 50;
pub const AMOUNT_MAX: i64 = 99_999_999;

/// One of Stripe's error answers: HTTP status and the `{"error": {...}}` body.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    pub status: u16,
    /// `type`: `invalid_request_error`, `card_error`, `idempotency_error`, `api_error`.
    pub kind: &'static str,
    pub code: Option<&'static str>,
    pub decline_code: Option<&'static str>,
    pub message: String,
    pub param: Option<String>,
    /// Confirm errors carry the PaymentIntent as it is after the failure, as Stripe's do.
    pub payment_intent: Option<Box<Value>>,
}

impl ApiError {
    pub fn invalid(code: &'static str, param: Option<&str>, message: String) -> ApiError {
        ApiError {
            status: 400,
            kind: "invalid_request_error",
            code: Some(code),
            decline_code: None,
            message,
            param: param.map(str::to_string),
            payment_intent: None,
        }
    }

    pub fn missing(param: Option<&str>, what: &str, id: &str) -> ApiError {
        ApiError { status: 404, ..ApiError::invalid("resource_missing", param, format!("No such {what}: '{id}'")) }
    }

    pub fn unauthorized(message: String) -> ApiError {
        ApiError {
            status: 401,
            kind: "invalid_request_error",
            code: None,
            decline_code: None,
            message,
            param: None,
            payment_intent: None,
        }
    }

    pub fn server(message: String) -> ApiError {
        ApiError {
            status: 500,
            kind: "api_error",
            code: None,
            decline_code: None,
            message,
            param: None,
            payment_intent: None,
        }
    }

    pub fn body(&self) -> Value {
        let mut error = serde_json::Map::new();
        error.insert("type".into(), json!(self.kind));
        error.insert("message".into(), json!(self.message));
        if let Some(code) = &self.code {
            error.insert("code".into(), json!(code));
            error.insert(
                "doc_url".into(),
                json!(format!("https://stripe.com/docs/error-codes/{}", code.replace('_', "-"))),
            );
        }
        if let Some(decline_code) = &self.decline_code {
            error.insert("decline_code".into(), json!(decline_code));
        }
        if let Some(param) = &self.param {
            error.insert("param".into(), json!(param));
        }
        if let Some(payment_intent) = &self.payment_intent {
            error.insert("payment_intent".into(), (**payment_intent).clone());
        }
        json!({ "error": error })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    RequiresPaymentMethod,
    RequiresConfirmation,
    RequiresAction,
    Processing,
    RequiresCapture,
    Succeeded,
    Canceled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::RequiresPaymentMethod => "requires_payment_method",
            Status::RequiresConfirmation => "requires_confirmation",
            Status::RequiresAction => "requires_action",
            Status::Processing => "processing",
            Status::RequiresCapture => "requires_capture",
            Status::Succeeded => "succeeded",
            Status::Canceled => "canceled",
        }
    }

    fn is_terminal(self) -> bool {
        matches!(self, Status::Succeeded | Status::Canceled)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaptureMethod {
    Automatic,
    Manual,
}

impl CaptureMethod {
    pub fn parse(text: &str) -> Result<CaptureMethod, ApiError> {
        match text {
            "automatic" | "automatic_async" => Ok(CaptureMethod::Automatic),
            "manual" => Ok(CaptureMethod::Manual),
            other => Err(ApiError::invalid(
                "parameter_invalid_string",
                Some("capture_method"),
                format!("Invalid capture_method: must be one of automatic, automatic_async or manual (got {other})"),
            )),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            CaptureMethod::Automatic => "automatic",
            CaptureMethod::Manual => "manual",
        }
    }
}

/// What a test payment method does when a PaymentIntent is confirmed with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CardBehaviour {
    Authorizes,
    Declines { decline_code: &'static str },
    RequiresAuthentication,
}

/// Stripe's test payment methods this fake knows; others are `resource_missing`.
pub fn test_payment_method(id: &str) -> Option<CardBehaviour> {
    match id {
        "pm_card_visa" | "pm_card_mastercard" | "pm_card_amex" | "pm_card_visa_debit" => {
            Some(CardBehaviour::Authorizes)
        }
        "pm_card_chargeDeclined" | "pm_card_visa_chargeDeclined" => {
            Some(CardBehaviour::Declines { decline_code: "generic_decline" })
        }
        "pm_card_chargeDeclinedInsufficientFunds" | "pm_card_visa_chargeDeclinedInsufficientFunds" => {
            Some(CardBehaviour::Declines { decline_code: "insufficient_funds" })
        }
        "pm_card_authenticationRequired" | "pm_card_threeDSecure2Required" => {
            Some(CardBehaviour::RequiresAuthentication)
        }
        _ => None,
    }
}

pub fn validate_amount(amount: i64, param: &str) -> Result<i64, ApiError> {
    if amount < AMOUNT_MIN {
        return Err(ApiError::invalid(
            "amount_too_small",
            Some(param),
            format!("Amount must be at least {AMOUNT_MIN} in the currency's minor unit"),
        ));
    }
    if amount > AMOUNT_MAX {
        return Err(ApiError::invalid(
            "amount_too_large",
            Some(param),
            format!("Amount must be no more than {AMOUNT_MAX}"),
        ));
    }
    Ok(amount)
}

/// Three ASCII letters; Stripe accepts any case and answers lowercase.
pub fn validate_currency(currency: &str) -> Result<String, ApiError> {
    if currency.len() == 3 && currency.bytes().all(|byte| byte.is_ascii_alphabetic()) {
        Ok(currency.to_ascii_lowercase())
    } else {
        Err(ApiError::invalid("parameter_invalid_string", Some("currency"), format!("Invalid currency: {currency}")))
    }
}

/// A validated `POST /v1/payment_intents`.
#[derive(Clone, Debug)]
pub struct CreateIntent {
    pub amount: i64,
    pub currency: String,
    pub capture_method: CaptureMethod,
    pub metadata: BTreeMap<String, String>,
    pub description: Option<String>,
    pub payment_method: Option<String>,
    pub confirm: bool,
}

/// Who made a request and how; stamped on the events it causes (`request`).
#[derive(Clone, Debug, Default)]
pub struct RequestInfo {
    pub request_id: String,
    pub idempotency_key: Option<String>,
    /// Unix seconds.
    pub now: i64,
}

/// Whether an authorization completes now or after the "pay late" delay (`processing`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settlement {
    Now,
    Later,
}

#[derive(Clone, Debug)]
struct PaymentIntent {
    id: String,
    seq: u64,
    amount: i64,
    amount_capturable: i64,
    amount_received: i64,
    currency: String,
    status: Status,
    capture_method: CaptureMethod,
    client_secret: String,
    metadata: BTreeMap<String, String>,
    description: Option<String>,
    payment_method: Option<String>,
    last_payment_error: Option<Value>,
    latest_charge: Option<String>,
    created: i64,
    canceled_at: Option<i64>,
    cancellation_reason: Option<String>,
}

impl PaymentIntent {
    fn json(&self) -> Value {
        let next_action = (self.status == Status::RequiresAction).then(|| {
            json!({"type": "use_stripe_sdk", "use_stripe_sdk": {"type": "three_d_secure_redirect", "stripe_js": format!("/_fake/payment_intents/{}/authenticate", self.id)}})
        });
        json!({
            "id": self.id,
            "object": "payment_intent",
            "amount": self.amount,
            "amount_capturable": self.amount_capturable,
            "amount_received": self.amount_received,
            "canceled_at": self.canceled_at,
            "cancellation_reason": self.cancellation_reason,
            "capture_method": self.capture_method.as_str(),
            "client_secret": self.client_secret,
            "confirmation_method": "automatic",
            "created": self.created,
            "currency": self.currency,
            "description": self.description,
            "last_payment_error": self.last_payment_error,
            "latest_charge": self.latest_charge,
            "livemode": false,
            "metadata": self.metadata,
            "next_action": next_action,
            "payment_method": self.payment_method,
            "payment_method_types": ["card"],
            "status": self.status.as_str(),
        })
    }
}

#[derive(Clone, Debug)]
struct Charge {
    id: String,
    amount: i64,
    amount_captured: i64,
    amount_refunded: i64,
    captured: bool,
    currency: String,
    payment_intent: String,
    payment_method: String,
    /// `succeeded` (authorized or captured) or `failed` (declined).
    status: &'static str,
    created: i64,
    metadata: BTreeMap<String, String>,
}

impl Charge {
    fn json(&self) -> Value {
        json!({
            "id": self.id,
            "object": "charge",
            "amount": self.amount,
            "amount_captured": self.amount_captured,
            "amount_refunded": self.amount_refunded,
            "captured": self.captured,
            "created": self.created,
            "currency": self.currency,
            "livemode": false,
            "metadata": self.metadata,
            "paid": self.status == "succeeded",
            "payment_intent": self.payment_intent,
            "payment_method": self.payment_method,
            "refunded": self.amount_captured > 0 && self.amount_refunded == self.amount_captured,
            "status": self.status,
        })
    }
}

#[derive(Clone, Debug)]
struct Refund {
    id: String,
    amount: i64,
    currency: String,
    payment_intent: String,
    charge: String,
    reason: Option<String>,
    created: i64,
    metadata: BTreeMap<String, String>,
}

impl Refund {
    fn json(&self) -> Value {
        json!({
            "id": self.id,
            "object": "refund",
            "amount": self.amount,
            "charge": self.charge,
            "created": self.created,
            "currency": self.currency,
            "metadata": self.metadata,
            "payment_intent": self.payment_intent,
            "reason": self.reason,
            "status": "succeeded",
        })
    }
}

/// A stored event: its JSON (as listed and as delivered) and its creation order.
#[derive(Clone, Debug)]
pub struct Event {
    pub id: String,
    pub kind: String,
    /// The id of `data.object` (the intent or charge the event is about).
    pub object_id: String,
    /// The serialized event: what `GET /v1/events` lists and every webhook delivery
    /// carries, byte for byte. Kept serialized: a parsed `Value` tree is several times larger.
    pub body: Bytes,
}

impl Event {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("stored events are JSON")
    }
}

/// How many times an operation actually changed a PaymentIntent, for tests that assert
/// "exactly one capture" (replays and refused calls do not count).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct IntentStats {
    pub confirms: u32,
    pub authorizations: u32,
    pub declines: u32,
    pub captures: u32,
    pub cancels: u32,
    pub refunds: u32,
}

/// The store's limit: PaymentIntents, charges, refunds and events together.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub objects_max: usize,
}

/// A page of a list endpoint.
pub struct Page {
    pub data: Vec<Value>,
    pub has_more: bool,
}

/// Every object of the fake PSP; see the module comment.
pub struct Psp {
    limits: Limits,
    ids: Ids,
    intents: HashMap<String, PaymentIntent>,
    /// Creation order (seq → id), for newest-first lists with `starting_after`.
    intent_order: BTreeMap<u64, String>,
    charges: HashMap<String, Charge>,
    refunds: HashMap<String, Refund>,
    events: HashMap<String, (u64, Event)>,
    event_order: BTreeMap<u64, String>,
    stats: HashMap<String, IntentStats>,
    /// Events not yet handed to the webhook sender.
    outbox: Vec<Event>,
}

struct Ids {
    /// Distinguishes this instance's ids from an earlier run's (hakken may remember them).
    instance: String,
    next: u64,
    rng: SmallRng,
}

impl Ids {
    fn next(&mut self, prefix: &str) -> (u64, String) {
        self.next += 1;
        (self.next, format!("{prefix}_{}{:016}", self.instance, self.next))
    }

    fn secret(&mut self) -> String {
        random_text(&mut self.rng, 24)
    }
}

fn random_text(rng: &mut SmallRng, length: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..length).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect()
}

impl Psp {
    pub fn new(limits: Limits, seed: u64) -> Psp {
        let mut rng = SmallRng::seed_from_u64(seed);
        let instance = random_text(&mut rng, 8);
        Psp {
            limits,
            ids: Ids { instance, next: 0, rng },
            intents: HashMap::new(),
            intent_order: BTreeMap::new(),
            charges: HashMap::new(),
            refunds: HashMap::new(),
            events: HashMap::new(),
            event_order: BTreeMap::new(),
            stats: HashMap::new(),
            outbox: Vec::new(),
        }
    }

    pub fn objects(&self) -> usize {
        self.intents.len() + self.charges.len() + self.refunds.len() + self.events.len()
    }

    /// Refuses an operation that adds objects once the store is full (bounded memory).
    /// The HTTP layer asks first, so the refusal is not stored under an idempotency key;
    /// the operations ask again, so the bound holds for every caller.
    pub fn ensure_room(&self) -> Result<(), ApiError> {
        if self.objects() >= self.limits.objects_max {
            return Err(ApiError::invalid(
                "fakepsp_objects_max",
                None,
                format!(
                    "The fake PSP stores at most {} objects and is full; restart it or raise --objects-max",
                    self.limits.objects_max
                ),
            ));
        }
        Ok(())
    }

    pub fn take_outbox(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.outbox)
    }

    pub fn stats(&self) -> &HashMap<String, IntentStats> {
        &self.stats
    }

    pub fn events_stored(&self) -> usize {
        self.events.len()
    }

    fn intent(&self, id: &str) -> Result<&PaymentIntent, ApiError> {
        self.intents.get(id).ok_or_else(|| ApiError::missing(Some("intent"), "payment_intent", id))
    }

    pub fn intent_json(&self, id: &str) -> Result<Value, ApiError> {
        self.intent(id).map(PaymentIntent::json)
    }

    pub fn client_secret(&self, id: &str) -> Result<&str, ApiError> {
        self.intent(id).map(|intent| intent.client_secret.as_str())
    }

    pub fn create_intent(
        &mut self,
        create: CreateIntent,
        request: &RequestInfo,
        settle: Settlement,
    ) -> Result<Value, ApiError> {
        self.ensure_room()?;
        let (seq, id) = self.ids.next("pi");
        let client_secret = format!("{id}_secret_{}", self.ids.secret());
        let status =
            if create.payment_method.is_some() { Status::RequiresConfirmation } else { Status::RequiresPaymentMethod };
        let intent = PaymentIntent {
            id: id.clone(),
            seq,
            amount: create.amount,
            amount_capturable: 0,
            amount_received: 0,
            currency: create.currency,
            status,
            capture_method: create.capture_method,
            client_secret,
            metadata: create.metadata,
            description: create.description,
            payment_method: create.payment_method.clone(),
            last_payment_error: None,
            latest_charge: None,
            created: request.now,
            canceled_at: None,
            cancellation_reason: None,
        };
        self.intents.insert(id.clone(), intent);
        self.intent_order.insert(seq, id.clone());
        self.stats.insert(id.clone(), IntentStats::default());
        self.emit_intent_event("payment_intent.created", &id, request);
        if create.confirm {
            return self.confirm(&id, create.payment_method.as_deref(), request, settle);
        }
        self.intent_json(&id)
    }

    /// `POST /v1/payment_intents/{id}/confirm`. A decline is an error answer (402) that
    /// still changed state: the PaymentIntent is back to `requires_payment_method`.
    pub fn confirm(
        &mut self,
        id: &str,
        payment_method: Option<&str>,
        request: &RequestInfo,
        settle: Settlement,
    ) -> Result<Value, ApiError> {
        self.ensure_room()?;
        let intent = self.intent(id)?;
        if !matches!(intent.status, Status::RequiresPaymentMethod | Status::RequiresConfirmation) {
            return Err(unexpected_state(intent, "confirmed", "requires_payment_method, requires_confirmation"));
        }
        let Some(payment_method) = payment_method.map(str::to_string).or_else(|| intent.payment_method.clone()) else {
            return Err(ApiError::invalid(
                "payment_intent_unexpected_state",
                Some("payment_method"),
                "You cannot confirm this PaymentIntent because it's missing a payment method. Update the PaymentIntent with a payment method and then confirm it again.".into(),
            ));
        };
        let Some(behaviour) = test_payment_method(&payment_method) else {
            return Err(ApiError::missing(Some("payment_method"), "PaymentMethod", &payment_method));
        };
        self.stat(id).confirms += 1;
        let intent = self.intents.get_mut(id).expect("checked above");
        intent.payment_method = Some(payment_method.clone());
        intent.last_payment_error = None;
        match behaviour {
            CardBehaviour::Authorizes if settle == Settlement::Later => {
                intent.status = Status::Processing;
                self.emit_intent_event("payment_intent.processing", id, request);
            }
            CardBehaviour::Authorizes => self.authorize(id, request),
            CardBehaviour::RequiresAuthentication => {
                intent.status = Status::RequiresAction;
                self.emit_intent_event("payment_intent.requires_action", id, request);
            }
            CardBehaviour::Declines { decline_code } => {
                let error = self.decline(id, &payment_method, decline_code, request);
                return Err(error);
            }
        }
        self.intent_json(id)
    }

    /// The card is authorized: a charge exists; manual capture waits in
    /// `requires_capture`, automatic capture succeeds at once.
    fn authorize(&mut self, id: &str, request: &RequestInfo) {
        let (_, charge_id) = self.ids.next("ch");
        let intent = self.intents.get_mut(id).expect("authorize is called on a known intent");
        assert!(!intent.status.is_terminal(), "authorize on a {} intent", intent.status.as_str());
        let automatic = intent.capture_method == CaptureMethod::Automatic;
        let charge = Charge {
            id: charge_id.clone(),
            amount: intent.amount,
            amount_captured: if automatic { intent.amount } else { 0 },
            amount_refunded: 0,
            captured: automatic,
            currency: intent.currency.clone(),
            payment_intent: id.to_string(),
            payment_method: intent.payment_method.clone().unwrap_or_default(),
            status: "succeeded",
            created: request.now,
            metadata: intent.metadata.clone(),
        };
        intent.latest_charge = Some(charge_id.clone());
        if automatic {
            intent.status = Status::Succeeded;
            intent.amount_received = intent.amount;
        } else {
            intent.status = Status::RequiresCapture;
            intent.amount_capturable = intent.amount;
        }
        self.charges.insert(charge_id, charge);
        self.stat(id).authorizations += 1;
        let kind = if automatic { "payment_intent.succeeded" } else { "payment_intent.amount_capturable_updated" };
        self.emit_intent_event(kind, id, request);
    }

    fn decline(
        &mut self,
        id: &str,
        payment_method: &str,
        decline_code: &'static str,
        request: &RequestInfo,
    ) -> ApiError {
        let (_, charge_id) = self.ids.next("ch");
        let intent = self.intents.get_mut(id).expect("decline is called on a known intent");
        let message = if decline_code == "insufficient_funds" {
            "Your card has insufficient funds."
        } else {
            "Your card was declined."
        };
        let last_payment_error = json!({
            "type": "card_error",
            "code": "card_declined",
            "decline_code": decline_code,
            "message": message,
            "charge": charge_id,
            "payment_method": {"id": payment_method, "object": "payment_method", "type": "card"},
        });
        let charge = Charge {
            id: charge_id.clone(),
            amount: intent.amount,
            amount_captured: 0,
            amount_refunded: 0,
            captured: false,
            currency: intent.currency.clone(),
            payment_intent: id.to_string(),
            payment_method: payment_method.to_string(),
            status: "failed",
            created: request.now,
            metadata: intent.metadata.clone(),
        };
        intent.status = Status::RequiresPaymentMethod;
        intent.payment_method = None;
        intent.latest_charge = Some(charge_id.clone());
        intent.last_payment_error = Some(last_payment_error);
        self.charges.insert(charge_id, charge);
        self.stat(id).declines += 1;
        self.emit_intent_event("payment_intent.payment_failed", id, request);
        ApiError {
            status: 402,
            kind: "card_error",
            code: Some("card_declined"),
            decline_code: Some(decline_code),
            message: message.into(),
            param: None,
            payment_intent: Some(Box::new(self.intents[id].json())),
        }
    }

    /// Completes (or fails) the 3-D Secure challenge of a `requires_action` intent: what
    /// the buyer does in the bank's page. `Ok(false)` if the intent was not waiting for it.
    pub fn authenticate(&mut self, id: &str, succeeded: bool, request: &RequestInfo) -> Result<bool, ApiError> {
        if self.intent(id)?.status != Status::RequiresAction {
            return Ok(false);
        }
        if succeeded {
            self.authorize(id, request);
            return Ok(true);
        }
        let intent = self.intents.get_mut(id).expect("checked above");
        intent.status = Status::RequiresPaymentMethod;
        intent.last_payment_error = Some(json!({
            "type": "invalid_request_error",
            "code": "payment_intent_authentication_failure",
            "message": "The provided PaymentMethod has failed authentication. You can provide payment_method_data or a new PaymentMethod to attempt to fulfill this PaymentIntent again.",
            "payment_method": {"id": intent.payment_method, "object": "payment_method", "type": "card"},
        }));
        intent.payment_method = None;
        self.emit_intent_event("payment_intent.payment_failed", id, request);
        Ok(true)
    }

    /// The "pay late" authorization arrives: a `processing` intent is authorized. `false`
    /// if it was canceled meanwhile (or was never processing).
    pub fn settle(&mut self, id: &str, request: &RequestInfo) -> bool {
        match self.intents.get(id) {
            Some(intent) if intent.status == Status::Processing => {
                self.authorize(id, request);
                true
            }
            _ => false,
        }
    }

    pub fn capture(
        &mut self,
        id: &str,
        amount_to_capture: Option<i64>,
        request: &RequestInfo,
    ) -> Result<Value, ApiError> {
        let intent = self.intent(id)?;
        if intent.status != Status::RequiresCapture {
            return Err(unexpected_state(intent, "captured", "requires_capture"));
        }
        let amount = amount_to_capture.unwrap_or(intent.amount_capturable);
        if amount < 1 || amount > intent.amount_capturable {
            return Err(ApiError::invalid(
                "amount_too_large",
                Some("amount_to_capture"),
                format!(
                    "The amount to capture must be between 1 and the amount capturable ({}).",
                    intent.amount_capturable
                ),
            ));
        }
        let intent = self.intents.get_mut(id).expect("checked above");
        intent.status = Status::Succeeded;
        intent.amount_capturable = 0;
        intent.amount_received = amount;
        let charge_id = intent.latest_charge.clone().expect("an authorized intent has a charge");
        let charge = self.charges.get_mut(&charge_id).expect("the latest charge is stored");
        charge.captured = true;
        charge.amount_captured = amount;
        self.stat(id).captures += 1;
        self.emit_intent_event("payment_intent.succeeded", id, request);
        self.intent_json(id)
    }

    pub fn cancel(&mut self, id: &str, reason: Option<String>, request: &RequestInfo) -> Result<Value, ApiError> {
        let intent = self.intent(id)?;
        if intent.status.is_terminal() {
            return Err(unexpected_state(
                intent,
                "canceled",
                "requires_payment_method, requires_capture, requires_confirmation, requires_action, processing",
            ));
        }
        let intent = self.intents.get_mut(id).expect("checked above");
        intent.status = Status::Canceled;
        intent.amount_capturable = 0;
        intent.canceled_at = Some(request.now);
        intent.cancellation_reason = reason;
        self.stat(id).cancels += 1;
        self.emit_intent_event("payment_intent.canceled", id, request);
        self.intent_json(id)
    }

    /// `POST /v1/refunds`: only of a succeeded (captured) intent, at most what is left.
    pub fn refund(
        &mut self,
        intent_id: &str,
        amount: Option<i64>,
        reason: Option<String>,
        metadata: BTreeMap<String, String>,
        request: &RequestInfo,
    ) -> Result<Value, ApiError> {
        self.ensure_room()?;
        let intent = self
            .intents
            .get(intent_id)
            .ok_or_else(|| ApiError::missing(Some("payment_intent"), "payment_intent", intent_id))?;
        if intent.status != Status::Succeeded {
            return Err(ApiError::invalid(
                "payment_intent_unexpected_state",
                Some("payment_intent"),
                format!(
                    "This PaymentIntent ({intent_id}) does not have a successful charge to refund (its status is {}).",
                    intent.status.as_str()
                ),
            ));
        }
        let charge_id = intent.latest_charge.clone().expect("a succeeded intent has a charge");
        let charge = &self.charges[&charge_id];
        let remaining = charge.amount_captured - charge.amount_refunded;
        if remaining == 0 {
            return Err(ApiError::invalid(
                "charge_already_refunded",
                None,
                format!("Charge {charge_id} has already been refunded."),
            ));
        }
        let amount = amount.unwrap_or(remaining);
        if amount < 1 {
            return Err(ApiError::invalid(
                "parameter_invalid_integer",
                Some("amount"),
                "Invalid positive integer".into(),
            ));
        }
        if amount > remaining {
            return Err(ApiError::invalid(
                "amount_too_large",
                Some("amount"),
                format!("Refund amount ({amount}) is greater than unrefunded amount on charge ({remaining})"),
            ));
        }
        let (_, refund_id) = self.ids.next("re");
        let currency = charge.currency.clone();
        let charge = self.charges.get_mut(&charge_id).expect("looked up above");
        charge.amount_refunded += amount;
        let charge_json = charge.json();
        let refund = Refund {
            id: refund_id.clone(),
            amount,
            currency,
            payment_intent: intent_id.to_string(),
            charge: charge_id,
            reason,
            created: request.now,
            metadata,
        };
        let refund_json = refund.json();
        self.refunds.insert(refund_id, refund);
        self.stat(intent_id).refunds += 1;
        self.emit("charge.refunded", charge_json, request);
        Ok(refund_json)
    }

    pub fn refund_json(&self, id: &str) -> Result<Value, ApiError> {
        self.refunds.get(id).map(Refund::json).ok_or_else(|| ApiError::missing(Some("refund"), "refund", id))
    }

    pub fn event_json(&self, id: &str) -> Result<Value, ApiError> {
        self.events.get(id).map(|(_, event)| event.json()).ok_or_else(|| ApiError::missing(Some("id"), "event", id))
    }

    /// PaymentIntents newest first, after `starting_after` (an id of an earlier page).
    pub fn list_intents(&self, limit: usize, starting_after: Option<&str>) -> Result<Page, ApiError> {
        let before = match starting_after {
            None => u64::MAX,
            Some(id) => {
                self.intent(id).map_err(|_| ApiError::missing(Some("starting_after"), "payment_intent", id))?.seq
            }
        };
        let mut data: Vec<Value> =
            self.intent_order.range(..before).rev().take(limit + 1).map(|(_, id)| self.intents[id].json()).collect();
        let has_more = data.len() > limit;
        data.truncate(limit);
        Ok(Page { data, has_more })
    }

    /// Events newest first, optionally of one `type` (Stripe allows a `*` wildcard suffix).
    pub fn list_events(
        &self,
        limit: usize,
        starting_after: Option<&str>,
        kind: Option<&str>,
    ) -> Result<Page, ApiError> {
        let before = match starting_after {
            None => u64::MAX,
            Some(id) => self.events.get(id).ok_or_else(|| ApiError::missing(Some("starting_after"), "event", id))?.0,
        };
        let matches = |event: &Event| match kind {
            None => true,
            Some(pattern) => match pattern.strip_suffix('*') {
                Some(prefix) => event.kind.starts_with(prefix),
                None => event.kind == pattern,
            },
        };
        let mut data: Vec<Value> = self
            .event_order
            .range(..before)
            .rev()
            .map(|(_, id)| &self.events[id].1)
            .filter(|event| matches(event))
            .take(limit + 1)
            .map(Event::json)
            .collect();
        let has_more = data.len() > limit;
        data.truncate(limit);
        Ok(Page { data, has_more })
    }

    fn stat(&mut self, id: &str) -> &mut IntentStats {
        self.stats.entry(id.to_string()).or_default()
    }

    fn emit_intent_event(&mut self, kind: &str, id: &str, request: &RequestInfo) {
        let object = self.intents[id].json();
        self.emit(kind, object, request);
    }

    fn emit(&mut self, kind: &str, object: Value, request: &RequestInfo) {
        let (seq, id) = self.ids.next("evt");
        let object_id = object["id"].as_str().unwrap_or_default().to_string();
        let json = json!({
            "id": id,
            "object": "event",
            "api_version": API_VERSION,
            "created": request.now,
            "data": {"object": object},
            "livemode": false,
            "pending_webhooks": 1,
            "request": {
                "id": (!request.request_id.is_empty()).then_some(&request.request_id),
                "idempotency_key": request.idempotency_key,
            },
            "type": kind,
        });
        let body = Bytes::from(serde_json::to_vec(&json).expect("events serialize"));
        let event = Event { id: id.clone(), kind: kind.to_string(), object_id, body };
        self.events.insert(id.clone(), (seq, event.clone()));
        self.event_order.insert(seq, id);
        self.outbox.push(event);
    }
}

fn unexpected_state(intent: &PaymentIntent, participle: &str, allowed: &str) -> ApiError {
    ApiError {
        payment_intent: Some(Box::new(intent.json())),
        ..ApiError::invalid(
            "payment_intent_unexpected_state",
            None,
            format!(
                "This PaymentIntent could not be {participle} because it has a status of {}. Only a PaymentIntent with one of the following statuses may be {participle}: {allowed}.",
                intent.status.as_str()
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn psp() -> Psp {
        Psp::new(Limits { objects_max: 1000 }, 7)
    }

    fn request() -> RequestInfo {
        RequestInfo { request_id: "req_1".into(), idempotency_key: None, now: 1_700_000_000 }
    }

    fn create(psp: &mut Psp, capture_method: CaptureMethod) -> String {
        let create = CreateIntent {
            amount: 12_900,
            currency: "eur".into(),
            capture_method,
            metadata: BTreeMap::from([("hakken_hold".to_string(), "h1".to_string())]),
            description: None,
            payment_method: None,
            confirm: false,
        };
        let intent = psp.create_intent(create, &request(), Settlement::Now).unwrap();
        intent["id"].as_str().unwrap().to_string()
    }

    fn status(psp: &Psp, id: &str) -> String {
        psp.intent_json(id).unwrap()["status"].as_str().unwrap().to_string()
    }

    fn kinds(events: &[Event]) -> Vec<&str> {
        events.iter().map(|event| event.kind.as_str()).collect()
    }

    #[test]
    fn manual_capture_path_and_its_events() {
        let mut psp = psp();
        let id = create(&mut psp, CaptureMethod::Manual);
        assert_eq!(status(&psp, &id), "requires_payment_method");
        let confirmed = psp.confirm(&id, Some("pm_card_visa"), &request(), Settlement::Now).unwrap();
        assert_eq!(confirmed["status"], "requires_capture");
        assert_eq!(confirmed["amount_capturable"], 12_900);
        assert!(confirmed["latest_charge"].as_str().unwrap().starts_with("ch_"));
        let captured = psp.capture(&id, None, &request()).unwrap();
        assert_eq!(captured["status"], "succeeded");
        assert_eq!(captured["amount_received"], 12_900);
        assert_eq!(captured["amount_capturable"], 0);
        let second = psp.capture(&id, None, &request()).unwrap_err();
        assert_eq!(second.code, Some("payment_intent_unexpected_state"));
        assert_eq!(second.status, 400);
        assert_eq!(psp.stats()[&id].captures, 1);
        let outbox = psp.take_outbox();
        assert_eq!(
            kinds(&outbox),
            ["payment_intent.created", "payment_intent.amount_capturable_updated", "payment_intent.succeeded"]
        );
        assert_eq!(outbox[2].json()["data"]["object"]["metadata"]["hakken_hold"], "h1");
        assert!(psp.take_outbox().is_empty());
    }

    #[test]
    fn automatic_capture_succeeds_on_confirm() {
        let mut psp = psp();
        let id = create(&mut psp, CaptureMethod::Automatic);
        let confirmed = psp.confirm(&id, Some("pm_card_visa"), &request(), Settlement::Now).unwrap();
        assert_eq!(confirmed["status"], "succeeded");
        assert_eq!(confirmed["amount_received"], 12_900);
        assert_eq!(kinds(&psp.take_outbox()), ["payment_intent.created", "payment_intent.succeeded"]);
    }

    #[test]
    fn decline_returns_to_requires_payment_method_and_can_be_retried() {
        let mut psp = psp();
        let id = create(&mut psp, CaptureMethod::Manual);
        let error = psp.confirm(&id, Some("pm_card_chargeDeclined"), &request(), Settlement::Now).unwrap_err();
        assert_eq!((error.status, error.kind), (402, "card_error"));
        assert_eq!(error.code, Some("card_declined"));
        assert_eq!(error.decline_code, Some("generic_decline"));
        let intent = error.payment_intent.unwrap();
        assert_eq!(intent["status"], "requires_payment_method");
        assert_eq!(intent["last_payment_error"]["code"], "card_declined");
        assert_eq!(kinds(&psp.take_outbox()), ["payment_intent.created", "payment_intent.payment_failed"]);
        let retried = psp.confirm(&id, Some("pm_card_visa"), &request(), Settlement::Now).unwrap();
        assert_eq!(retried["status"], "requires_capture");
        assert_eq!(retried["last_payment_error"], Value::Null);
        assert_eq!(psp.stats()[&id].confirms, 2);
    }

    #[test]
    fn three_d_secure_waits_for_authentication() {
        let mut psp = psp();
        let id = create(&mut psp, CaptureMethod::Manual);
        let confirmed = psp.confirm(&id, Some("pm_card_authenticationRequired"), &request(), Settlement::Now).unwrap();
        assert_eq!(confirmed["status"], "requires_action");
        assert_eq!(confirmed["next_action"]["type"], "use_stripe_sdk");
        assert_eq!(psp.capture(&id, None, &request()).unwrap_err().code, Some("payment_intent_unexpected_state"));
        assert_eq!(psp.authenticate(&id, true, &request()), Ok(true));
        assert_eq!(status(&psp, &id), "requires_capture");
        assert_eq!(psp.authenticate(&id, true, &request()), Ok(false));

        let failing = create(&mut psp, CaptureMethod::Manual);
        psp.confirm(&failing, Some("pm_card_authenticationRequired"), &request(), Settlement::Now).unwrap();
        assert_eq!(psp.authenticate(&failing, false, &request()), Ok(true));
        let intent = psp.intent_json(&failing).unwrap();
        assert_eq!(intent["status"], "requires_payment_method");
        assert_eq!(intent["last_payment_error"]["code"], "payment_intent_authentication_failure");
    }

    #[test]
    fn pay_late_processes_then_settles_unless_canceled() {
        let mut psp = psp();
        let id = create(&mut psp, CaptureMethod::Manual);
        let confirmed = psp.confirm(&id, Some("pm_card_visa"), &request(), Settlement::Later).unwrap();
        assert_eq!(confirmed["status"], "processing");
        assert!(psp.settle(&id, &request()));
        assert_eq!(status(&psp, &id), "requires_capture");
        assert!(!psp.settle(&id, &request()));

        let canceled = create(&mut psp, CaptureMethod::Manual);
        psp.confirm(&canceled, Some("pm_card_visa"), &request(), Settlement::Later).unwrap();
        psp.cancel(&canceled, Some("abandoned".into()), &request()).unwrap();
        assert!(!psp.settle(&canceled, &request()));
        assert_eq!(status(&psp, &canceled), "canceled");
    }

    #[test]
    fn cancel_from_every_non_terminal_state_only() {
        let mut psp = psp();
        let fresh = create(&mut psp, CaptureMethod::Manual);
        assert_eq!(psp.cancel(&fresh, None, &request()).unwrap()["status"], "canceled");
        let again = psp.cancel(&fresh, None, &request()).unwrap_err();
        assert_eq!(again.code, Some("payment_intent_unexpected_state"));
        assert_eq!(psp.stats()[&fresh].cancels, 1);

        let authorized = create(&mut psp, CaptureMethod::Manual);
        psp.confirm(&authorized, Some("pm_card_visa"), &request(), Settlement::Now).unwrap();
        let canceled = psp.cancel(&authorized, Some("abandoned".into()), &request()).unwrap();
        assert_eq!(canceled["amount_capturable"], 0);
        assert_eq!(canceled["cancellation_reason"], "abandoned");
        assert!(psp.capture(&authorized, None, &request()).is_err());

        let captured = create(&mut psp, CaptureMethod::Manual);
        psp.confirm(&captured, Some("pm_card_visa"), &request(), Settlement::Now).unwrap();
        psp.capture(&captured, None, &request()).unwrap();
        assert!(psp.cancel(&captured, None, &request()).is_err());
        assert!(psp.confirm(&captured, Some("pm_card_visa"), &request(), Settlement::Now).is_err());
    }

    #[test]
    fn refunds_only_of_succeeded_and_at_most_what_is_left() {
        let mut psp = psp();
        let id = create(&mut psp, CaptureMethod::Manual);
        let early = psp.refund(&id, None, None, BTreeMap::new(), &request()).unwrap_err();
        assert_eq!(early.code, Some("payment_intent_unexpected_state"));
        psp.confirm(&id, Some("pm_card_visa"), &request(), Settlement::Now).unwrap();
        assert!(psp.refund(&id, None, None, BTreeMap::new(), &request()).is_err());
        psp.capture(&id, Some(10_000), &request()).unwrap();
        let too_much = psp.refund(&id, Some(10_001), None, BTreeMap::new(), &request()).unwrap_err();
        assert_eq!(too_much.code, Some("amount_too_large"));
        let part = psp.refund(&id, Some(4_000), None, BTreeMap::new(), &request()).unwrap();
        assert_eq!((part["object"].as_str(), part["amount"].as_i64()), (Some("refund"), Some(4_000)));
        let rest = psp.refund(&id, None, None, BTreeMap::new(), &request()).unwrap();
        assert_eq!(rest["amount"], 6_000);
        assert_eq!(psp.refund_json(rest["id"].as_str().unwrap()).unwrap(), rest);
        let done = psp.refund(&id, None, None, BTreeMap::new(), &request()).unwrap_err();
        assert_eq!(done.code, Some("charge_already_refunded"));
        assert_eq!(psp.stats()[&id].refunds, 2);
        let outbox = psp.take_outbox();
        let last = outbox.last().unwrap();
        assert_eq!(last.kind, "charge.refunded");
        assert_eq!(last.json()["data"]["object"]["refunded"], true);
        assert_eq!(last.json()["data"]["object"]["amount_refunded"], 10_000);
        assert_eq!(last.json()["data"]["object"]["payment_intent"], id.as_str());
        let missing = psp.refund("pi_none", None, None, BTreeMap::new(), &request()).unwrap_err();
        assert_eq!((missing.status, missing.code), (404, Some("resource_missing")));
    }

    #[test]
    fn unknown_payment_method_and_missing_intent() {
        let mut psp = psp();
        let id = create(&mut psp, CaptureMethod::Manual);
        let unknown = psp.confirm(&id, Some("pm_card_nope"), &request(), Settlement::Now).unwrap_err();
        assert_eq!(unknown.param.as_deref(), Some("payment_method"));
        let none = psp.confirm(&id, None, &request(), Settlement::Now).unwrap_err();
        assert_eq!(none.code, Some("payment_intent_unexpected_state"));
        assert_eq!(psp.intent_json("pi_missing").unwrap_err().status, 404);
        assert_eq!(status(&psp, &id), "requires_payment_method");
    }

    #[test]
    fn lists_are_newest_first_with_cursor_and_type_filter() {
        let mut psp = psp();
        let ids: Vec<String> = (0..5).map(|_| create(&mut psp, CaptureMethod::Manual)).collect();
        let first = psp.list_intents(2, None).unwrap();
        assert!(first.has_more);
        assert_eq!(first.data[0]["id"], ids[4].as_str());
        assert_eq!(first.data[1]["id"], ids[3].as_str());
        let last = psp.list_intents(10, Some(&ids[1])).unwrap();
        assert!(!last.has_more);
        assert_eq!(last.data.len(), 1);
        assert_eq!(last.data[0]["id"], ids[0].as_str());
        psp.confirm(&ids[0], Some("pm_card_visa"), &request(), Settlement::Now).unwrap();
        let authorized = psp.list_events(10, None, Some("payment_intent.amount_capturable_updated")).unwrap();
        assert_eq!(authorized.data.len(), 1);
        let all = psp.list_events(100, None, Some("payment_intent.*")).unwrap();
        assert_eq!(all.data.len(), 6);
        let event_id = all.data[0]["id"].as_str().unwrap();
        assert!(event_id.starts_with("evt_"));
        assert_eq!(psp.event_json(event_id).unwrap(), all.data[0]);
    }

    #[test]
    fn the_store_is_bounded() {
        let mut psp = Psp::new(Limits { objects_max: 4 }, 1);
        create(&mut psp, CaptureMethod::Manual);
        create(&mut psp, CaptureMethod::Manual);
        let create = CreateIntent {
            amount: 100,
            currency: "eur".into(),
            capture_method: CaptureMethod::Manual,
            metadata: BTreeMap::new(),
            description: None,
            payment_method: None,
            confirm: false,
        };
        let full = psp.create_intent(create, &request(), Settlement::Now).unwrap_err();
        assert_eq!((full.status, full.code), (400, Some("fakepsp_objects_max")));
    }

    #[test]
    fn amount_and_currency_bounds() {
        assert!(validate_amount(AMOUNT_MIN, "amount").is_ok());
        assert_eq!(validate_amount(49, "amount").unwrap_err().code, Some("amount_too_small"));
        assert_eq!(validate_amount(AMOUNT_MAX + 1, "amount").unwrap_err().code, Some("amount_too_large"));
        assert_eq!(validate_currency("EUR").unwrap(), "eur");
        assert!(validate_currency("eu").is_err());
        assert!(validate_currency("e1r").is_err());
        assert!(validate_currency("euro").is_err());
    }

    #[test]
    fn ids_differ_between_instances() {
        let mut one = Psp::new(Limits { objects_max: 10 }, 1);
        let mut two = Psp::new(Limits { objects_max: 10 }, 2);
        assert_ne!(create(&mut one, CaptureMethod::Manual), create(&mut two, CaptureMethod::Manual));
    }
}
