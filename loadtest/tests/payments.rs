//! Buyers who pay at a PSP, in process, against stand-ins on 127.0.0.1: a small hakken
//! (GA holds, checkout, the hold's payment, orders, availability, reconcile) and a small
//! PSP (the browser's confirm, test cards, listing PaymentIntents page by page, the
//! `/_fake/` control API) sharing one state, where an authorization at the PSP is the
//! webhook: hakken makes the order (or, after the hold's expiry, re-acquires or voids)
//! and captures at once. The replay's payment flow, its report and the verdict's money
//! rules are checked against it, and the verdict must fail once the PSP's records no
//! longer match hakken's orders.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hakken_loadtest::queue::Queue;
use hakken_loadtest::replay::{self, PaymentMode, PaymentSettings, ReplayConfig, StormSettings};
use hakken_loadtest::trivial::{self, RequestHandler};
use hyper::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::net::TcpListener;

const BUYERS: u64 = 150;
const CAPACITY: u64 = 1000;
const PRICE: u64 = 4500;
/// Checkout extends a hold to now + this.
const PAYMENT_WINDOW_MS: u64 = 400;

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_millis() as u64
}

#[derive(Default)]
struct World {
    psp_url: String,
    /// hold number → (customer, quantity, expires at ms, state: held | paying | ordered | expired)
    holds: BTreeMap<u64, (String, u64, u64, &'static str)>,
    /// hold number → (PaymentIntent status, hakken's payment status, order)
    payments: BTreeMap<u64, (&'static str, &'static str, Option<String>)>,
    faults: Vec<Value>,
    /// Corrupt the PSP's listing: report this hold's (captured) intent as voided.
    tamper: Option<u64>,
}

type Shared = Arc<Mutex<World>>;

fn json_reply(status: StatusCode, body: Value) -> (StatusCode, Bytes) {
    (status, Bytes::from(body.to_string()))
}

fn not_found() -> (StatusCode, Bytes) {
    json_reply(StatusCode::NOT_FOUND, json!({"error": {"code": "not_found", "message": "no"}}))
}

/// `h-12` → 12, from a path segment.
fn number(text: &str, prefix: &str) -> Option<u64> {
    text.strip_prefix(prefix)?.parse().ok()
}

fn payment_view(n: u64, world: &World) -> Value {
    let (_, status, order) = &world.payments[&n];
    json!({"id": format!("pi_{n}"), "hold": format!("h-{n}"), "status": status, "amount": PRICE * world.holds[&n].1,
        "currency": "EUR", "provider": "test", "client_secret": format!("pi_{n}_secret_{n}"), "order": order})
}

fn hakken(world: Shared) -> RequestHandler {
    Arc::new(move |method: &Method, path: &str, body: &[u8]| {
        let mut world = world.lock().expect("world");
        let (route, _query) = path.split_once('?').unwrap_or((path, ""));
        let segments: Vec<&str> = route.trim_start_matches('/').split('/').collect();
        let now = now_ms();
        for hold in world.holds.values_mut() {
            if hold.3 != "ordered" && hold.2 <= now {
                hold.3 = "expired";
            }
        }
        match (method, segments.as_slice()) {
            (&Method::GET, ["v1", "payments", "config"]) => json_reply(
                StatusCode::OK,
                json!({"provider": "test", "publishable_key": "pk_test_x", "api_base": world.psp_url}),
            ),
            (&Method::GET, ["v1", "events", "e", "availability"]) => {
                let sold: u64 = world.holds.values().filter(|hold| hold.3 == "ordered").map(|hold| hold.1).sum();
                let held: u64 =
                    world.holds.values().filter(|hold| matches!(hold.3, "held" | "paying")).map(|hold| hold.1).sum();
                let counts =
                    json!({"capacity": CAPACITY, "available": CAPACITY - sold - held, "held": held, "sold": sold});
                let mut section = counts.clone();
                section["id"] = json!("GA");
                section["kind"] = json!("general_admission");
                json_reply(StatusCode::OK, json!({"event": "e", "total": counts, "sections": [section]}))
            }
            (&Method::POST, ["v1", "events", "e", "holds"]) => {
                let request: Value = serde_json::from_slice(body).expect("a hold request");
                let n = world.holds.len() as u64;
                let customer = request["customer"].as_str().expect("customer").to_string();
                let quantity = request["quantity"].as_u64().expect("quantity");
                world.holds.insert(n, (customer, quantity, now + 60_000, "held"));
                json_reply(StatusCode::CREATED, json!({"hold": {"id": format!("h-{n}"), "quantity": quantity}}))
            }
            (&Method::POST, ["v1", "holds", hold, "checkout"]) => {
                let Some(n) = number(hold, "h-").filter(|n| world.holds.contains_key(n)) else { return not_found() };
                let hold = world.holds.get_mut(&n).expect("hold");
                if hold.3 != "held" && hold.3 != "paying" {
                    return json_reply(
                        StatusCode::CONFLICT,
                        json!({"error": {"code": "hold_expired", "message": "no"}}),
                    );
                }
                hold.2 = now + PAYMENT_WINDOW_MS;
                hold.3 = "paying";
                let expires = hold.2;
                world.payments.entry(n).or_insert(("requires_payment_method", "awaiting_payment", None));
                let payment = payment_view(n, &world);
                json_reply(
                    StatusCode::CREATED,
                    json!({"payment": payment, "hold": {"id": format!("h-{n}"), "expires_at_ms": expires}}),
                )
            }
            (&Method::GET, ["v1", "holds", hold, "payment"]) => {
                match number(hold, "h-").filter(|n| world.payments.contains_key(n)) {
                    Some(n) => json_reply(StatusCode::OK, json!({"payment": payment_view(n, &world)})),
                    None => not_found(),
                }
            }
            (&Method::GET, ["v1", "orders", order]) => {
                let Some(n) =
                    number(order, "o-").filter(|n| world.holds.get(n).is_some_and(|hold| hold.3 == "ordered"))
                else {
                    return not_found();
                };
                let quantity = world.holds[&n].1;
                let tickets: Vec<Value> =
                    (0..quantity).map(|t| json!({"id": format!("t{n}-{t}"), "seat": null})).collect();
                json_reply(
                    StatusCode::OK,
                    json!({"order": {"id": format!("o-{n}"), "section": "GA", "state": "confirmed",
                    "tickets": tickets, "hold": format!("h-{n}"), "total_minor": PRICE * quantity, "channel": "online",
                    "payment": payment_view(n, &world)}}),
                )
            }
            (&Method::GET, ["v1", "admin", "payments", "reconcile"]) => json_reply(
                StatusCode::OK,
                json!({"ok": true, "payments": world.payments.len(), "orders": 0, "psp_payments": world.payments.len(), "mismatches": []}),
            ),
            _ => not_found(),
        }
    })
}

fn intent(n: u64, world: &World, status: &str) -> Value {
    let amount = PRICE * world.holds[&n].1;
    let received = if status == "succeeded" { amount } else { 0 };
    json!({"id": format!("pi_{n}"), "object": "payment_intent", "status": status, "amount": amount,
        "amount_received": received, "amount_capturable": if status == "requires_capture" { amount } else { 0 },
        "currency": "eur", "metadata": {"hakken_hold": format!("h-{n}")}, "client_secret": format!("pi_{n}_secret_{n}")})
}

fn form(body: &[u8]) -> BTreeMap<String, String> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(name, value)| (name.to_string(), value.replace("%2F", "/")))
        .collect()
}

fn psp(world: Shared) -> RequestHandler {
    Arc::new(move |method: &Method, path: &str, body: &[u8]| {
        let mut world = world.lock().expect("world");
        let (route, query) = path.split_once('?').unwrap_or((path, ""));
        let segments: Vec<&str> = route.trim_start_matches('/').split('/').collect();
        match (method, segments.as_slice()) {
            (&Method::POST, ["v1", "payment_intents", id, "confirm"]) => {
                let Some(n) = number(id, "pi_").filter(|n| world.payments.contains_key(n)) else { return not_found() };
                let fields = form(body);
                assert_eq!(
                    fields.get("client_secret").map(String::as_str),
                    Some(format!("pi_{n}_secret_{n}").as_str())
                );
                if fields.get("payment_method").map(String::as_str) == Some("pm_card_chargeDeclined") {
                    return json_reply(
                        StatusCode::PAYMENT_REQUIRED,
                        json!({"error": {"type": "card_error",
                        "code": "card_declined", "decline_code": "generic_decline", "message": "declined"}}),
                    );
                }
                // The webhook, at once: an order (re-acquired when late, for even holds), or a void.
                let hold = &world.holds[&n];
                let late = hold.3 == "expired" || hold.2 <= now_ms();
                let (intent, view, order) = if late && n % 2 == 1 {
                    ("canceled", "voided", None)
                } else {
                    world.holds.get_mut(&n).expect("hold").3 = "ordered";
                    ("succeeded", "captured", Some(format!("o-{n}")))
                };
                world.payments.insert(n, (intent, view, order));
                json_reply(StatusCode::OK, intent_json_authorized(n, &world))
            }
            (&Method::GET, ["v1", "payment_intents"]) => {
                let after = query
                    .split('&')
                    .find_map(|pair| pair.strip_prefix("starting_after=pi_"))
                    .and_then(|n| n.parse::<u64>().ok());
                // Newest first, 100 a page.
                let mut numbers: Vec<u64> = world.payments.keys().rev().copied().collect();
                if let Some(after) = after {
                    numbers.retain(|n| *n < after);
                }
                let has_more = numbers.len() > 100;
                numbers.truncate(100);
                let data: Vec<Value> = numbers
                    .iter()
                    .map(|n| {
                        let status = if world.tamper == Some(*n) { "canceled" } else { world.payments[n].0 };
                        intent(*n, &world, status)
                    })
                    .collect();
                json_reply(
                    StatusCode::OK,
                    json!({"object": "list", "data": data, "has_more": has_more, "url": "/v1/payment_intents"}),
                )
            }
            (&Method::GET, ["_fake", "faults"]) => json_reply(StatusCode::OK, json!({})),
            (&Method::POST, ["_fake", "faults"]) => {
                world.faults.push(serde_json::from_slice(body).expect("a JSON patch"));
                json_reply(StatusCode::OK, json!({}))
            }
            (&Method::POST, ["_fake", "webhooks", _]) => json_reply(StatusCode::OK, json!({})),
            (&Method::GET, ["_fake", "stats"]) => {
                json_reply(StatusCode::OK, json!({"webhooks": {"events": 1}, "api": {"calls": 1}}))
            }
            _ => not_found(),
        }
    })
}

/// The intent as a confirm answers it: authorized (the stand-in captures at once, but a
/// browser sees `requires_capture`).
fn intent_json_authorized(n: u64, world: &World) -> Value {
    intent(n, world, "requires_capture")
}

async fn start(world: &Shared) -> String {
    let psp_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    world.lock().expect("world").psp_url = format!("http://{}", psp_listener.local_addr().expect("address"));
    tokio::spawn(trivial::serve_requests(psp_listener, psp(world.clone())));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let target = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(trivial::serve_requests(listener, hakken(world.clone())));
    target
}

/// [`BUYERS`] GA buyers of 1-2 places, 10 ms apart, all buying.
fn queue() -> Queue {
    let mut text = format!(r#"{{"hakken_queue":1,"event":"e","shape":"steady","seed":0,"buyers":{BUYERS}}}"#);
    for index in 0..BUYERS {
        text.push_str(&format!(
            "\n{{\"at_us\":{},\"intent\":\"ga\",\"section\":\"GA\",\"quantity\":{},\"then\":\"confirm\",\"think_ms\":5}}",
            index * 10_000,
            1 + index % 2
        ));
    }
    Queue::read(text.as_bytes(), None).expect("a valid queue")
}

fn config(target: String, payments: PaymentSettings) -> ReplayConfig {
    ReplayConfig {
        target,
        event: None,
        time_scale: 1.0,
        duration: None,
        connections: 8,
        queue_long_polls: 0,
        in_flight_max: None,
        request_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(1),
        drain_timeout: None,
        retries: 0,
        retry_after_max: Duration::from_secs(1),
        run_id: Some("pay".into()),
        progress: false,
        verdict: true,
        threads: 1,
        payments,
        server_metrics: None,
    }
}

fn paying() -> PaymentSettings {
    PaymentSettings {
        mode: PaymentMode::Auto,
        decline_share: 0.2,
        decline_retry_share: 0.5,
        late_share: 0.1,
        late_wait_max: Duration::from_secs(5),
        poll_timeout: Duration::from_secs(5),
        psp_secret_key: Some("sk_test_x".into()),
        admin_token: Some("admin".into()),
        settle_timeout: Duration::from_secs(2),
        ..PaymentSettings::default()
    }
}

#[tokio::test]
async fn buyers_pay_at_the_psp_and_the_verdict_checks_the_money() {
    let world = Shared::default();
    let target = start(&world).await;
    let outcome = replay::replay(queue(), "test".into(), config(target.clone(), paying()), std::future::pending())
        .await
        .expect("replay");
    let report = &outcome.report;
    let verdict = report.verdict.as_ref().expect("a verdict");
    assert!(verdict.passed(), "{report}");
    let payments = report.payments.as_ref().expect("a payments report");
    assert_eq!(payments.mode, "browser");
    assert_eq!(payments.checkouts, BUYERS, "{report}");
    assert!(
        payments.declined > 10 && payments.declines_retried > 0 && payments.declined_left_to_expire > 0,
        "{report}"
    );
    assert_eq!(payments.declined, payments.declines_retried + payments.declined_left_to_expire);
    assert!(payments.late.payers > 3, "{report}");
    assert!(payments.late.reacquired > 0 && payments.late.voided > 0, "{report}");
    assert_eq!(
        payments.late.reacquired + payments.late.voided + payments.late.declined,
        payments.late.payers,
        "{report}"
    );
    assert_eq!(report.buyers.payment_refused, payments.voided + payments.declined_left_to_expire, "{report}");
    assert_eq!(report.buyers.errors, 0, "{report}");
    assert_eq!(payments.paid_orders + payments.voided + payments.declined_left_to_expire, BUYERS, "{report}");
    assert_eq!(payments.confirm_to_order_us.count, payments.paid_orders);
    assert_eq!(report.buyers.confirmed, payments.paid_orders, "{report}");
    assert_eq!(outcome.ledger.orders.len() as u64, payments.paid_orders);
    assert_eq!(outcome.ledger.payments.len() as u64, BUYERS);
    let money = verdict.payments.as_ref().expect("the money was checked");
    assert_eq!(money.psp_intents, Some(BUYERS), "listed over two pages: {report}");
    assert_eq!(money.captured, payments.paid_orders, "{report}");
    assert_eq!(money.voided, payments.voided, "{report}");
    assert_eq!(money.unpaid, payments.declined_left_to_expire, "{report}");
    assert_eq!(money.reconcile_ok, Some(true));
    let step = |name: &str| report.steps.iter().find(|step| step.step == name).expect("step");
    assert_eq!(step("psp_confirm").counts.conflict, payments.declined, "{report}");
    assert_eq!(step("payment").counts.success, payments.paid_orders, "{report}");
    let text = report.to_string();
    assert!(text.contains("late payments:") && text.contains("PSP confirm -> order: p50"), "{text}");
    assert!(!text.contains("secret_"), "client secrets stay out of the report");
    let json = serde_json::to_string(report).expect("serializes");
    assert!(!json.contains("secret_"), "client secrets stay out of the JSON report");

    // The PSP's records no longer match hakken's: the verdict says so.
    let order = outcome.ledger.orders[0].id.clone();
    let n: u64 = order.trim_start_matches("o-").parse().expect("o-N");
    world.lock().expect("world").tamper = Some(n);
    let verdict = replay::verify_paid(&target, &outcome.ledger, Duration::from_secs(5), Some("sk_test_x"), None)
        .await
        .expect("verify");
    let text = verdict.to_string();
    assert!(!verdict.passed(), "{text}");
    assert!(text.contains(&format!("pi_{n} was voided at the PSP but order {order} is live")), "{text}");
    assert!(text.contains(&format!("order {order} was made but its payment pi_{n} is canceled at the PSP")), "{text}");
}

#[tokio::test]
async fn a_storm_blows_through_the_control_api_and_ends_calm() {
    let world = Shared::default();
    let target = start(&world).await;
    let mut settings = paying();
    settings.storm = Some(StormSettings {
        control: None,
        every: Duration::from_millis(200),
        squalls: vec!["duplicates".into(), "drop".into()],
    });
    let outcome =
        replay::replay(queue(), "test".into(), config(target, settings), std::future::pending()).await.expect("replay");
    let report = &outcome.report;
    assert!(report.passed(), "{report}");
    let storm = report.payments.as_ref().and_then(|payments| payments.storm.as_ref()).expect("a storm");
    assert!(storm.played.len() >= 4, "{report}");
    assert_eq!(&storm.played[..2], ["duplicates", "drop"]);
    assert_eq!(storm.control_errors, 0);
    assert!(storm.fake_stats.is_some());
    let faults = world.lock().expect("world").faults.clone();
    // Each squall calms first, then blows; the storm ends calm.
    assert_eq!(faults[1], json!({"webhook_duplicates": 2}));
    assert_eq!(faults[3], json!({"webhook_drop_next": 4}));
    let last = faults.last().expect("faults");
    assert_eq!(last["webhook_duplicates"], 0);
    assert_eq!(last["webhooks_paused"], false);
    assert!(report.to_string().contains("webhook storm at http://"), "{report}");
}
