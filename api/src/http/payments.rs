//! The money path over HTTP: checkout of a hold, its payment, the PSP's webhooks, the
//! browser's PSP settings and reconciliation. The PSP conversations are the gateway's
//! (`crate::payments::gateway`); a handler validates, routes to the hold's section and
//! renders.
//!
//! Card data never reaches hakken: the buyer's browser confirms the payment at the PSP
//! with the checkout's client secret (Stripe.js), and the PSP's signed webhook tells
//! hakken to look. That keeps a promoter's hakken out of PCI DSS card-data scope.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hakken_engine::actor::{AnswerSlot, LookupHold, ReadPayment, StartPayment};
use hakken_engine::ids::{CustomerId, HoldId};
use hakken_engine::inventory::{
    Buyer, Checkout, Granted, Hold, HoldError, HoldRefused, Payment, PaymentError, PaymentStart, PaymentState,
    PspReport,
};
use serde_json::json;
use tokio::time::Instant;

use crate::http::admission::admitted;
use crate::http::app::{call, unavailable, ServedEvent, Shared};
use crate::http::error::{ApiError, ApiResult, ErrorBody, ErrorDetail, Json, Path, Query, RawBody};
use crate::http::holds::{
    buyer_of, choice_view, customer_id, hold_answer, hold_error, locate_hold, required_customer, HoldCall,
};
use crate::http::idempotency::{fingerprint, Slot};
use crate::http::idempotency_layer::{call_answered, call_changing, respond, AnswerTo, Rendered};
use crate::http::limiter::rate_limited;
use crate::http::overload::Class;
use crate::http::payment_views::{
    payment_view, CheckoutRequest, CheckoutResponse, PaymentQuery, PaymentResponse, PaymentsConfigView,
    ReconcileReport, PAYMENT_WAIT_MAX_MS,
};
use crate::http::views::{hold_view, CustomerQuery, HoldCheckout, HoldResponse};
use crate::payments::gateway::{describe, DriveError, Gateway};
use crate::payments::signature;
use crate::payments::stripe::PspError;
use crate::payments::webhook::{EventKind, EventType, WebhookEvent};

pub const WEBHOOKS_TOTAL: &str = "hakken_payment_webhooks_total";
/// From the PSP's event (`created`, whole seconds) to hakken acting on it: how late
/// webhooks come. Its buckets reach a day (`WEBHOOK_LAG_BUCKETS_S`): Stripe retries for days.
pub const WEBHOOK_LAG_SECONDS: &str = "hakken_payment_webhook_lag_seconds";
pub const WEBHOOK_LAG_BUCKETS_S: [f64; 12] =
    [1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0, 21600.0, 86400.0];
/// Stripe's default: a signature older (or newer) than this is refused.
const SIGNATURE_TOLERANCE_S: i64 = 300;
const STRIPE_SIGNATURE: &str = "stripe-signature";

fn gateway(shared: &Shared) -> ApiResult<&Arc<Gateway>> {
    shared.payments.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "payments_off",
            "this server takes no payments (payments.provider = \"external\")",
        )
    })
}

/// What a browser needs to pay with Stripe.js.
#[utoipa::path(get, path = "/v1/payments/config", tag = "payments",
    responses((status = 200, body = PaymentsConfigView)))]
pub async fn payments_config(State(shared): State<Arc<Shared>>) -> axum::Json<PaymentsConfigView> {
    axum::Json(match &shared.payments {
        Some(gateway) => PaymentsConfigView {
            provider: gateway.provider.as_str(),
            publishable_key: Some(gateway.publishable_key.clone()),
            api_base: Some(gateway.api_base.clone()),
        },
        None => PaymentsConfigView { provider: "external", publishable_key: None, api_base: None },
    })
}

/// Check a hold out: hakken creates the payment at the PSP (manual capture) and the
/// hold waits for it, extended once by the payment window. The buyer pays at the PSP
/// with `client_secret`; the hold is sold when the PSP says the payment is authorized.
/// Checking the same hold out again answers the same payment.
#[utoipa::path(post, path = "/v1/holds/{hold}/checkout", tag = "payments",
    params(("hold" = String, Path, description = "Hold id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key get the same answer")),
    request_body = CheckoutRequest,
    responses((status = 201, body = CheckoutResponse), (status = 200, description = "Already checked out", body = CheckoutResponse),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "Hold expired or ended", body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody),
        (status = 502, description = "The PSP refused or failed; the hold is as it was", body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn checkout(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    answer_to: AnswerTo,
    Json(request): Json<CheckoutRequest>,
) -> ApiResult<Response> {
    let app = shared.app()?;
    let gateway = gateway(&shared)?.clone();
    let customer = customer_id(&request.customer)?;
    let buyer = buyer_of(&shared, &request.buyer, "", "online")?;
    app.limiter.check(&request.customer).map_err(rate_limited)?;
    let (hold_id, served, index) = locate_hold(&app.catalogue(), &id)?;
    let section = served.sections[index].clone();
    let hold = match call(&section, LookupHold { hold: hold_id }, &shared.overload).await? {
        Ok(hold) if hold.customer != customer => return Err(hold_error(HoldError::NotYours)),
        Ok(hold) => hold,
        // An ended hold may have been checked out (a retry after the answer was lost).
        Err(error) => {
            let existing = call(&section, ReadPayment { hold: hold_id }, &shared.overload).await?;
            return match existing {
                Some(payment) if payment.customer == customer => {
                    let client_secret = client_secret(&gateway, &payment).await?;
                    let payment = payment_view(&payment, client_secret);
                    Ok((StatusCode::OK, axum::Json(CheckoutResponse { payment, hold: None })).into_response())
                }
                _ => Err(hold_error(error)),
            };
        }
    };
    let (start, client_secret) = payment_start(&gateway, &served, &hold, customer, buyer).await.map_err(psp_error)?;
    let render = move |checkout: &Result<Checkout, PaymentError>| -> Rendered<CheckoutResponse> {
        let checkout = checkout.as_ref().map_err(|error| payment_error(*error))?;
        let status = if checkout.started { StatusCode::CREATED } else { StatusCode::OK };
        let payment = payment_view(&checkout.payment, client_secret.clone());
        let hold = checkout.hold.as_ref().map(|hold| hold_view(&served, index, hold));
        Ok((status, CheckoutResponse { payment, hold }))
    };
    Ok(call_changing(&section, start, answer_to.0, &shared.overload, render).await)
}

/// Creates the hold's PaymentIntent at the PSP; the section call that starts the hold
/// paying with it, and the intent's client secret.
async fn payment_start(
    gateway: &Gateway,
    served: &ServedEvent,
    hold: &Hold,
    customer: CustomerId,
    mut buyer: Buyer,
) -> Result<(StartPayment, Option<String>), PspError> {
    let intent = gateway.create(hold, &served.event.id, &served.event.currency).await?;
    buyer.payment_reference = intent.id.clone();
    let start = PaymentStart {
        provider: gateway.provider.as_str().to_string(),
        psp_id: intent.id,
        amount_minor: hold.total_minor,
        currency: served.event.currency.clone(),
        buyer,
        window_ms: gateway.window_ms,
    };
    Ok((StartPayment { hold: hold.id, customer, start }, intent.client_secret))
}

/// A hold request with `checkout`: the hold as `create_hold` makes it, then its
/// checkout as [`checkout`] makes it, without reading the hold back (the hold's reply
/// has it). One request and one section call fewer than the two requests.
///
/// With an `Idempotency-Key`, the hold's answer (the hold alone) is stored with the
/// hold, and the whole answer with the payment: a crash in between leaves a retry the
/// hold, to check out with `POST /v1/holds/{hold}/checkout`, never a second hold. A
/// checkout that fails (the PSP refused or is down, the section is busy) leaves the
/// hold made: 201 with the hold and `checkout_error`.
pub(crate) async fn hold_and_checkout(
    shared: &Shared,
    served: Arc<ServedEvent>,
    index: usize,
    hold_call: HoldCall,
    checkout: &HoldCheckout,
    slot: Option<Slot>,
) -> ApiResult<Response> {
    let gateway = gateway(shared)?.clone();
    let buyer = buyer_of(shared, &checkout.buyer, "", "online")?;
    let section = served.sections[index].clone();
    let overload = &shared.overload;
    let render_hold = {
        let served = served.clone();
        move |granted: &Result<Granted, HoldRefused>| hold_answer(&served, index, granted)
    };
    let held = match hold_call {
        HoldCall::Seats(call) => call_answered(&section, call, slot.clone(), render_hold.clone()).await,
        HoldCall::Best(call) => call_answered(&section, call, slot.clone(), render_hold.clone()).await,
        HoldCall::Quantity(call) => call_answered(&section, call, slot.clone(), render_hold.clone()).await,
    };
    let held = match held {
        Ok(held) => held,
        Err(error) => return Err(unavailable(error, overload)),
    };
    let granted = match &held.reply {
        Ok(granted) => granted,
        Err(_) => return Ok(respond(render_hold(&held.reply), held.answer_stored)),
    };
    let choice = granted.choice.as_ref().map(choice_view);
    let hold = granted.hold.clone();
    let not_checked_out = |error: ApiError| {
        let mut view = hold_view(&served, index, &hold);
        view.choice = choice.clone();
        let checkout_error = ErrorDetail { code: error.code, message: error.message, details: error.details };
        let answer = HoldResponse { hold: view, payment: None, checkout_error: Some(checkout_error) };
        // Not stored with a change: the middleware stores it over the hold's answer.
        Ok(respond(Ok((StatusCode::CREATED, answer)), false))
    };
    let (start, client_secret) = match payment_start(&gateway, &served, &hold, hold.customer.clone(), buyer).await {
        Ok(started) => started,
        Err(error) => return not_checked_out(psp_error(error)),
    };
    let render = {
        let (served, choice) = (served.clone(), choice.clone());
        move |checkout: &Result<Checkout, PaymentError>| -> Rendered<HoldResponse> {
            let checkout = checkout.as_ref().map_err(|error| payment_error(*error))?;
            let held = checkout.hold.as_ref().ok_or_else(|| payment_error(PaymentError::Hold(HoldError::Expired)))?;
            let mut view = hold_view(&served, index, held);
            view.choice = choice.clone();
            let payment = Some(payment_view(&checkout.payment, client_secret.clone()));
            Ok((StatusCode::CREATED, HoldResponse { hold: view, payment, checkout_error: None }))
        }
    };
    let started = match call_answered(&section, start, slot, render.clone()).await {
        Ok(started) => started,
        Err(error) => return not_checked_out(unavailable(error, overload)),
    };
    match render(&started.reply) {
        Ok(answer) => Ok(respond(Ok(answer), started.answer_stored)),
        Err(error) => not_checked_out(error),
    }
}

async fn client_secret(gateway: &Gateway, payment: &Payment) -> ApiResult<Option<String>> {
    let intent = gateway.client().retrieve_payment_intent(&payment.psp_id).await.map_err(psp_error)?;
    Ok(intent.client_secret)
}

/// The hold's payment: the buyer reads it after paying to learn the order. With
/// `wait_ms`, a long poll: while the payment awaits the PSP's word, the answer waits
/// (up to `wait_ms`) for the gateway to report its next state, and comes at once then.
#[utoipa::path(get, path = "/v1/holds/{hold}/payment", tag = "payments",
    params(("hold" = String, Path, description = "Hold id"), PaymentQuery),
    responses((status = 200, body = PaymentResponse), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn get_payment(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(query): Query<PaymentQuery>,
) -> ApiResult<axum::Json<PaymentResponse>> {
    let app = shared.app()?;
    gateway(&shared)?;
    let customer = required_customer(&CustomerQuery { customer: query.customer })?;
    let wait = match query.wait_ms {
        Some(ms) if ms > PAYMENT_WAIT_MAX_MS => {
            let message = format!("wait_ms is at most {PAYMENT_WAIT_MAX_MS}");
            return Err(ApiError::invalid("invalid_wait", message));
        }
        ms => Duration::from_millis(ms.unwrap_or(0)),
    };
    let (hold_id, served, index) = locate_hold(&app.catalogue(), &id)?;
    let section = &served.sections[index];
    // A request with `wait_ms` passed the admission layer unadmitted (`is_payment_long_poll`)
    // and admits each read itself; one without it was admitted as a whole already.
    let long_poll = query.wait_ms.is_some();
    let read = || async {
        let read = call(section, ReadPayment { hold: hold_id }, &shared.overload);
        if long_poll {
            admitted(&shared, Class::Finish, read).await?
        } else {
            read.await
        }
    };
    // Registered before the first read, so a report between the read and the wait wakes it.
    let waiter = if wait.is_zero() { None } else { shared.payment_waiters.register(hold_id) };
    let give_up = Instant::now() + wait;
    let payment = loop {
        let woken = waiter.as_ref().map(|waiter| waiter.notified());
        let payment = read().await?;
        let awaiting = payment.as_ref().is_some_and(|payment| {
            payment.customer == customer && matches!(payment.state, PaymentState::AwaitingPayment)
        });
        let Some(woken) = woken.filter(|_| awaiting) else { break payment };
        if tokio::time::timeout_at(give_up, woken).await.is_err() {
            // A change the gateway did not report (the hold expired) is read all the same.
            break read().await?;
        }
    };
    // Someone else's payment is "not found": hold ids are guessable.
    match payment {
        Some(payment) if payment.customer == customer => {
            Ok(axum::Json(PaymentResponse { payment: payment_view(&payment, None) }))
        }
        _ => Err(ApiError::not_found("payment_not_found", format!("hold {id:?} has no payment of this customer"))),
    }
}

/// The PSP's webhooks (Stripe's format). The signature is checked before the body is
/// read as JSON; the event only says which payment to look at (its state is read from
/// the PSP), and each event id is handled once.
#[utoipa::path(post, path = "/v1/payments/webhooks/stripe", tag = "payments",
    params(("Stripe-Signature" = String, Header, description = "t=<unix>,v1=<hex HMAC-SHA256 of \"t.body\">")),
    request_body(content = String, content_type = "application/json", description = "A Stripe event"),
    responses((status = 200, description = "Handled (or not hakken's)"),
        (status = 404, description = "`payments_off`: this server takes no payments", body = ErrorBody),
        (status = 400, description = "Bad signature, malformed event, or test/live mode mismatch", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 503, description = "The PSP or the section could not be reached: the PSP retries", body = ErrorBody)))]
pub async fn stripe_webhook(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<Response> {
    let gateway = gateway(&shared)?.clone();
    let app = shared.app()?;
    let header = headers.get(STRIPE_SIGNATURE).and_then(|value| value.to_str().ok());
    let now_unix = (app.now().0 / 1000) as i64;
    if let Err(error) = signature::verify(header, &body, gateway.webhook_secrets(), now_unix, SIGNATURE_TOLERANCE_S) {
        count_webhook("invalid_signature");
        return Err(ApiError::bad_request("invalid_signature", error.to_string()));
    }
    let event = WebhookEvent::parse(&body).map_err(|error| {
        count_webhook("malformed");
        ApiError::bad_request("invalid_event", error.to_string())
    })?;
    if event.livemode != gateway.key_mode.livemode() {
        count_webhook("livemode_mismatch");
        let message = "the event's livemode does not match this server's key (test vs live)";
        return Err(ApiError::bad_request("livemode_mismatch", message));
    }
    if !acts_on(&event.event_type) {
        count_webhook("ignored");
        return Ok(received("ignored"));
    }
    metrics::histogram!(WEBHOOK_LAG_SECONDS).record((now_unix - event.created).max(0) as f64);
    // Handled once per event id, durably (a retried delivery is answered at once).
    let key = format!("webhook:stripe:{}", event.id).into_bytes();
    let now_ms = app.now().0;
    if app.idempotency.stored(&key, now_ms).await?.is_some() {
        count_webhook("duplicate");
        return Ok(received("duplicate"));
    }
    let expires_at_ms = app.idempotency.expires_at_ms(now_ms);
    let slot = Slot { key, fingerprint: fingerprint(&[&body]), expires_at_ms, privacy: shared.privacy.clone() };
    let (outcome, id_stored) = handle_event(&shared, &gateway, &event, &slot).await?;
    if !id_stored {
        app.idempotency.store(slot, StatusCode::OK, &Bytes::from_static(EVENT_HANDLED)).await;
    }
    count_webhook(outcome);
    Ok(received(outcome))
}

/// What is stored under a handled event's id (only its presence is read).
const EVENT_HANDLED: &[u8] = b"{}";

/// The event id's answer slot for the section call that acts on the event, so the id
/// is stored in the same WAL batch as what it changed (one write, not two). Stored only
/// if the report was taken: a refused one leaves the id free for the PSP's retry.
fn event_id_answer(slot: &Slot) -> AnswerSlot<Result<Payment, PaymentError>> {
    let sealed = slot.privacy.seal_answer(EVENT_HANDLED);
    AnswerSlot {
        key: slot.key.clone(),
        fingerprint: slot.fingerprint,
        expires_at_ms: slot.expires_at_ms,
        render: Box::new(move |reply| reply.is_ok().then(|| (StatusCode::OK.as_u16(), sealed))),
    }
}

fn received(outcome: &'static str) -> Response {
    (StatusCode::OK, axum::Json(json!({ "received": true, "outcome": outcome }))).into_response()
}

fn count_webhook(outcome: &'static str) {
    metrics::counter!(WEBHOOKS_TOTAL, "outcome" => outcome).increment(1);
}

/// Whether an event says something happened that hakken acts on: a created
/// PaymentIntent or a declined card leaves the hold waiting (the buyer may try another
/// card), so those are answered at once, without a PSP read or a stored event id.
fn acts_on(event_type: &EventType) -> bool {
    crate::payments::gateway::HANDLED_EVENTS.contains(&event_type.as_str())
}

/// Drives the payment the event is about; `ignored` if it is not one of hakken's. The
/// flag says whether the event's id was stored with the change it made.
async fn handle_event(
    shared: &Shared,
    gateway: &Gateway,
    event: &WebhookEvent,
    slot: &Slot,
) -> ApiResult<(&'static str, bool)> {
    let app = shared.app()?;
    let (psp_id, hold, refunded) = match &event.kind {
        EventKind::PaymentIntent { payment_intent, hakken_hold, .. } => {
            (payment_intent.clone(), hakken_hold.clone(), false)
        }
        EventKind::ChargeRefunded { payment_intent: Some(payment_intent), refunded, .. } => {
            // A charge carries no hold: the PaymentIntent's metadata has it.
            let intent = gateway.client().retrieve_payment_intent(payment_intent).await.map_err(psp_error)?;
            (payment_intent.clone(), intent.hakken_hold().map(str::to_string), *refunded)
        }
        _ => return Ok(("ignored", false)),
    };
    let Some(hold) = hold.and_then(|hold| hold.parse::<HoldId>().ok()) else { return Ok(("ignored", false)) };
    let Some((served, index)) = app.catalogue().locate(hold.section).map(|(served, index)| (served.clone(), index))
    else {
        return Ok(("ignored", false));
    };
    // Another node owns the event (cluster mode): refused, so the PSP retries later.
    served.here()?;
    let section = &served.sections[index];
    let authorization = if refunded { None } else { event.authorization() };
    // A payment already settled has nothing left for a prompt to change (the webhook of
    // hakken's own capture, a repeat): no PSP read. (An authorization needs no read, and
    // the section takes one it already had as a no-op.)
    let known = match authorization {
        Some(_) => None,
        None => call(section, ReadPayment { hold }, &shared.overload).await?,
    };
    let settled = known.as_ref().is_some_and(|payment| {
        payment.psp_id == psp_id
            && matches!(
                payment.state,
                PaymentState::Captured(_) | PaymentState::Voided { .. } | PaymentState::Refunded(_)
            )
    });
    if settled && !refunded {
        return Ok(("processed", false));
    }
    let mut id_stored = false;
    let driven = if refunded {
        match gateway.report(shared, section, hold, &psp_id, PspReport::Refunded).await {
            Ok(payment) => gateway.settle(shared, section, payment).await,
            Err(error) => Err(error),
        }
    } else if let Some(amount_minor) = authorization {
        // The common case, an authorization: taken from the signed event (no PSP read),
        // and its id stored with the order it makes. A crash before the capture leaves
        // the capture owed, and the sweep makes it.
        let report = PspReport::Authorized { amount_minor };
        let answer = Some(event_id_answer(slot));
        match gateway.report_answering(shared, section, hold, &psp_id, report, answer).await {
            Ok((payment, stored)) => {
                id_stored = stored;
                gateway.settle(shared, section, payment).await
            }
            Err(error) => Err(error),
        }
    } else {
        gateway.drive(shared, section, hold, &psp_id).await
    };
    match driven {
        Ok(_) => Ok(("processed", id_stored)),
        // A PaymentIntent hakken never recorded (made before a crash, never paid) or another hold's.
        Err(DriveError::Payment(PaymentError::NotFound | PaymentError::OtherPayment)) => Ok(("ignored", id_stored)),
        // The event is recorded with what it changed; what is still owed (the capture)
        // is the sweep's now, and a redelivery would be a duplicate.
        Err(error) if id_stored => {
            tracing::warn!(error = %describe(&error), "webhook handled; settling it is left to the sweep");
            Ok(("processed", true))
        }
        Err(error) => {
            tracing::warn!(error = %describe(&error), "webhook not handled now; the PSP will retry");
            count_webhook("unavailable");
            Err(ApiError::unavailable("psp_unavailable", "the payment could not be handled now; retry", 5))
        }
    }
}

/// Every captured payment ↔ one order (or a void or refund), every online order ↔ one
/// captured payment of its amount.
#[utoipa::path(get, path = "/v1/admin/payments/reconcile", tag = "admin",
    security(("admin_token" = [])),
    responses((status = 200, body = ReconcileReport), (status = 401, body = ErrorBody),
        (status = 404, description = "`payments_off`: this server takes no payments", body = ErrorBody),
        (status = 502, description = "The PSP could not be read", body = ErrorBody)))]
pub async fn reconcile(State(shared): State<Arc<Shared>>) -> ApiResult<axum::Json<ReconcileReport>> {
    let app = shared.app()?;
    let gateway = gateway(&shared)?;
    let report = crate::payments::reconcile::run(&shared, app, gateway).await?;
    Ok(axum::Json(report))
}

pub fn psp_error(error: PspError) -> ApiError {
    match error {
        PspError::Refused { code, message, .. } => {
            let code = code.unwrap_or_default();
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "psp_refused",
                format!("the payment provider refused: {code} {message}"),
            )
        }
        other if other.is_retryable() => {
            ApiError::unavailable("psp_unavailable", format!("the payment provider is unavailable: {other}"), 5)
        }
        other => {
            ApiError::new(StatusCode::BAD_GATEWAY, "psp_error", format!("the payment provider answered badly: {other}"))
        }
    }
}

fn payment_error(error: PaymentError) -> ApiError {
    match error {
        PaymentError::Hold(error) => hold_error(error),
        PaymentError::NotFound => ApiError::not_found("payment_not_found", error.to_string()),
        PaymentError::OtherPayment => ApiError::conflict("payment_exists", error.to_string()),
        PaymentError::AmountMismatch { .. } => ApiError::conflict("amount_changed", error.to_string()),
    }
}
