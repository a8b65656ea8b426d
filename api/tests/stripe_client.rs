//! The Stripe client end to end against `hakken-fakepsp` over real HTTP on 127.0.0.1:
//! create → confirm with `pm_card_visa` → capture → refund; cancel (void); a decline;
//! idempotent replay and a reused key; the fake's 500 and timeout faults, which must
//! come back as retryable `Unavailable`; a wrong key and an unknown id as refusals.

use std::collections::BTreeMap;
use std::time::Duration;

use hakken_api::payments::stripe::{
    CreatePaymentIntent, ListEvents, PaymentIntentStatus, PspError, RefundStatus, StripeClient, StripeConfig,
    UnavailableReason,
};
use hakken_api::payments::webhook::{EventKind, EventType, KeyMode};
use hakken_fakepsp::{Config, FakePsp, RunningPsp, DEFAULT_SECRET_KEY};

async fn fake_psp() -> RunningPsp {
    let mut config = Config::new("127.0.0.1:0".parse().expect("address"), "whsec_client_test");
    config.seed = Some(7);
    FakePsp::start(config).await.expect("the fake PSP starts")
}

fn client(psp: &RunningPsp, timeout: Duration) -> StripeClient {
    StripeClient::new(&StripeConfig { api_base: psp.api_base(), secret_key: DEFAULT_SECRET_KEY.into(), timeout })
        .expect("a valid config")
}

fn order(amount: u64, hold: &str) -> CreatePaymentIntent {
    CreatePaymentIntent {
        amount,
        currency: "EUR".into(),
        metadata: BTreeMap::from([("hakken_hold".to_string(), hold.to_string()), ("hakken_event".into(), "e1".into())]),
        description: Some("hakken: 2 tickets".into()),
    }
}

fn refused_as(error: &PspError) -> (u16, &str, Option<&str>) {
    match error {
        PspError::Refused { status, kind, code, .. } => (*status, kind.as_str(), code.as_deref()),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn unavailable_reason(error: &PspError) -> UnavailableReason {
    match error {
        PspError::Unavailable { reason, .. } => *reason,
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn pay_capture_and_refund() {
    let psp = fake_psp().await;
    let stripe = client(&psp, Duration::from_secs(5));
    assert_eq!(stripe.key_mode(), KeyMode::Test);

    let created = stripe.create_payment_intent(&order(12900, "h-1"), "hakken-create-h-1-100").await.expect("created");
    assert_eq!(created.status, PaymentIntentStatus::RequiresPaymentMethod);
    assert_eq!((created.amount, created.currency.as_str(), created.livemode), (12900, "eur", false));
    assert_eq!(created.hakken_hold(), Some("h-1"));
    assert_eq!(created.metadata.get("hakken_event").map(String::as_str), Some("e1"));
    let secret = created.client_secret.as_deref().expect("the secret key's holder sees the client secret");
    assert!(secret.starts_with(&format!("{}_secret_", created.id)), "{secret}");

    let authorized =
        stripe.confirm_payment_intent(&created.id, "pm_card_visa", "confirm-h-1").await.expect("confirmed");
    assert_eq!(authorized.status, PaymentIntentStatus::RequiresCapture);
    assert_eq!(authorized.amount_capturable, 12900);
    let retrieved = stripe.retrieve_payment_intent(&created.id).await.expect("retrieved");
    assert_eq!(retrieved, authorized);

    let captured = stripe.capture(&created.id, "hakken-capture-h-1-100").await.expect("captured");
    assert_eq!(captured.status, PaymentIntentStatus::Succeeded);
    assert_eq!((captured.amount_received, captured.amount_capturable), (12900, 0));
    assert!(captured.latest_charge.as_deref().is_some_and(|charge| charge.starts_with("ch_")));

    let refund = stripe.refund(&created.id, "hakken-refund-h-1-100").await.expect("refunded");
    assert_eq!((refund.amount, &refund.status), (12900, &RefundStatus::Succeeded));
    assert_eq!(refund.payment_intent.as_deref(), Some(created.id.as_str()));
    // A retry of the refund with the same key is the same refund, not a second one.
    let again = stripe.refund(&created.id, "hakken-refund-h-1-100").await.expect("replayed");
    assert_eq!(again, refund);
    assert_eq!(psp.control().stats().payment_intents[&created.id].refunds, 1);

    let listed = stripe.list_payment_intents(None, 10).await.expect("listed");
    assert_eq!(listed.data.iter().map(|intent| intent.id.as_str()).collect::<Vec<_>>(), [created.id.as_str()]);
    assert!(!listed.has_more);

    let all = stripe.list_events(&ListEvents { limit: 100, ..ListEvents::default() }).await.expect("events");
    let types: Vec<&str> = all.data.iter().rev().map(|event| event.event_type.as_str()).collect();
    for wanted in [
        "payment_intent.created",
        "payment_intent.amount_capturable_updated",
        "payment_intent.succeeded",
        "charge.refunded",
    ] {
        assert!(types.contains(&wanted), "{wanted} in {types:?}");
    }
    assert!(all.data.iter().all(|event| event.payment_intent() == Some(created.id.as_str())), "{all:?}");
    let filter = ListEvents {
        limit: 10,
        event_type: Some("payment_intent.amount_capturable_updated".into()),
        ..ListEvents::default()
    };
    let authorized_events = stripe.list_events(&filter).await.expect("filtered");
    assert_eq!(authorized_events.data.len(), 1);
    let event = &authorized_events.data[0];
    assert_eq!(event.event_type, EventType::PaymentIntentAmountCapturableUpdated);
    assert_eq!(
        event.kind,
        EventKind::PaymentIntent {
            payment_intent: created.id.clone(),
            hakken_hold: Some("h-1".into()),
            status: PaymentIntentStatus::RequiresCapture,
            amount_capturable: Some(created.amount),
        }
    );
    assert_eq!(event.authorization(), Some(created.amount), "the fake's event carries the authorized amount");
    assert_eq!(stripe.retrieve_event(&event.id).await.expect("one event"), *event);
    psp.stop().await;
}

#[tokio::test]
async fn cancel_voids_an_authorization() {
    let psp = fake_psp().await;
    let stripe = client(&psp, Duration::from_secs(5));
    let created = stripe.create_payment_intent(&order(5000, "h-2"), "hakken-create-h-2-1").await.expect("created");
    stripe.confirm_payment_intent(&created.id, "pm_card_visa", "confirm-h-2").await.expect("confirmed");
    let canceled = stripe.cancel(&created.id, "hakken-cancel-h-2-1").await.expect("canceled");
    assert_eq!((canceled.status, canceled.amount_received), (PaymentIntentStatus::Canceled, 0));
    // Capturing a voided payment is Stripe's refusal, not a retryable failure.
    let error = stripe.capture(&created.id, "hakken-capture-h-2-1").await.expect_err("nothing to capture");
    assert_eq!(refused_as(&error), (400, "invalid_request_error", Some("payment_intent_unexpected_state")));
    assert!(!error.is_retryable());
    psp.stop().await;
}

#[tokio::test]
async fn a_declined_card_is_a_refusal_and_the_payment_can_be_retried() {
    let psp = fake_psp().await;
    let stripe = client(&psp, Duration::from_secs(5));
    let created = stripe.create_payment_intent(&order(5000, "h-3"), "hakken-create-h-3-1").await.expect("created");
    let error = stripe
        .confirm_payment_intent(&created.id, "pm_card_chargeDeclined", "confirm-h-3-a")
        .await
        .expect_err("declined");
    assert_eq!(refused_as(&error), (402, "card_error", Some("card_declined")));
    let PspError::Refused { decline_code, message, .. } = &error else { unreachable!() };
    assert!(decline_code.is_some() && !message.is_empty(), "{error:?}");
    let after = stripe.retrieve_payment_intent(&created.id).await.expect("retrieved");
    assert_eq!(after.status, PaymentIntentStatus::RequiresPaymentMethod);
    let paid = stripe.confirm_payment_intent(&created.id, "pm_card_visa", "confirm-h-3-b").await.expect("paid");
    assert_eq!(paid.status, PaymentIntentStatus::RequiresCapture);
    psp.stop().await;
}

#[tokio::test]
async fn idempotency_keys_replay_and_refuse_other_parameters() {
    let psp = fake_psp().await;
    let stripe = client(&psp, Duration::from_secs(5));
    let first = stripe.create_payment_intent(&order(5000, "h-4"), "hakken-create-h-4-1").await.expect("created");
    let replay = stripe.create_payment_intent(&order(5000, "h-4"), "hakken-create-h-4-1").await.expect("replayed");
    assert_eq!(replay.id, first.id, "the same key is the same PaymentIntent");
    let error = stripe.create_payment_intent(&order(6000, "h-4"), "hakken-create-h-4-1").await.expect_err("reused");
    assert_eq!(refused_as(&error).1, "idempotency_error");
    assert_eq!(refused_as(&error).0, 400);
    let listed = stripe.list_payment_intents(None, 100).await.expect("listed");
    assert_eq!(listed.data.len(), 1);
    psp.stop().await;
}

#[tokio::test]
async fn server_errors_and_timeouts_are_unavailable() {
    let psp = fake_psp().await;
    let stripe = client(&psp, Duration::from_millis(500));
    let control = psp.control();

    // A 500 is stored under its key, as Stripe stores it: the same key gets it again, and
    // a new key goes through.
    control.update_faults(|faults| faults.fail_next = 1).expect("faults");
    let error = stripe.create_payment_intent(&order(5000, "h-5"), "hakken-create-h-5-1").await.expect_err("500");
    assert_eq!(unavailable_reason(&error), UnavailableReason::ServerError);
    assert!(error.is_retryable());
    let again = stripe.create_payment_intent(&order(5000, "h-5"), "hakken-create-h-5-1").await.expect_err("stored");
    assert_eq!(unavailable_reason(&again), UnavailableReason::ServerError);
    let created = stripe.create_payment_intent(&order(5000, "h-5"), "hakken-create-h-5-2").await.expect("created");

    // A PSP that hangs past the client's deadline.
    control
        .update_faults(|faults| {
            faults.timeout_next = 1;
            faults.timeout_hang_ms = 5_000;
        })
        .expect("faults");
    let started = std::time::Instant::now();
    let error = stripe.retrieve_payment_intent(&created.id).await.expect_err("hangs");
    assert_eq!(unavailable_reason(&error), UnavailableReason::Timeout);
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(500) && waited < Duration::from_secs(3), "{waited:?}");

    // A PSP that closes the connection without an answer, within the deadline.
    control
        .update_faults(|faults| {
            faults.timeout_next = 1;
            faults.timeout_hang_ms = 50;
        })
        .expect("faults");
    let error = stripe.retrieve_payment_intent(&created.id).await.expect_err("closed");
    assert_eq!(unavailable_reason(&error), UnavailableReason::Connection);

    // And then it answers again, on a fresh connection.
    let retrieved = stripe.retrieve_payment_intent(&created.id).await.expect("answers again");
    assert_eq!(retrieved.id, created.id);
    psp.stop().await;

    // A PSP that is gone: connection refused.
    let error = stripe.retrieve_payment_intent(&created.id).await.expect_err("stopped");
    assert_eq!(unavailable_reason(&error), UnavailableReason::Connect);
}

#[tokio::test]
async fn wrong_keys_and_unknown_ids_are_refused() {
    let psp = fake_psp().await;
    let wrong = StripeClient::new(&StripeConfig {
        api_base: psp.api_base(),
        secret_key: "sk_test_not_the_fakes_key".into(),
        timeout: Duration::from_secs(5),
    })
    .expect("a valid config");
    let error = wrong.list_payment_intents(None, 1).await.expect_err("wrong key");
    // Stripe answers a wrong key with 401 (its body's type is `invalid_request_error`).
    assert_eq!(refused_as(&error).0, 401);
    assert!(!error.to_string().contains("sk_test_not_the_fakes_key"), "{error}");

    let stripe = client(&psp, Duration::from_secs(5));
    let error = stripe.retrieve_payment_intent("pi_doesnotexist").await.expect_err("unknown");
    assert_eq!(refused_as(&error), (404, "invalid_request_error", Some("resource_missing")));
    psp.stop().await;
}
