//! The money path over real HTTP: a real `hakken serve` (`payments.provider = "stripe"`)
//! against `hakken-fakepsp`, which runs in this test process so it outlives a hakken
//! killed with SIGKILL and its faults can be switched between steps. The buyer's browser
//! is played by [`Psp::pay`] (Stripe.js's confirm with the publishable key).

mod support;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use hakken_fakepsp::{Control, Faults, RunningPsp};
use serde_json::{json, Value};
use support::{raw_request, Reply, Server, EVENT};

const WEBHOOK_SECRET: &str = "whsec_payments_test_secret";
const SALES_TOKEN: &str = "test-sales-token";
const SECTION: &str = "S101";
/// The event types a Stripe webhook endpoint for hakken subscribes to (README, Payments).
const HAKKEN_EVENTS: [&str; 3] =
    ["payment_intent.amount_capturable_updated", "payment_intent.canceled", "charge.refunded"];

/// The fake PSP, on its own runtime in this process.
struct Psp {
    running: Option<RunningPsp>,
    control: Control,
    address: String,
    runtime: tokio::runtime::Runtime,
}

impl Psp {
    fn start() -> Psp {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let mut config = hakken_fakepsp::Config::new(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), WEBHOOK_SECRET);
        config.webhook.retry_base_ms = 50;
        config.webhook.retry_max_ms = 500;
        config.webhook.attempts_max = 20;
        // As a Stripe endpoint for hakken is set up: only the events hakken acts on.
        config.enabled_events = Some(HAKKEN_EVENTS.iter().map(|kind| kind.to_string()).collect());
        let running = runtime.block_on(hakken_fakepsp::start(config)).expect("the fake PSP starts");
        let address = running.addr().to_string();
        Psp { control: running.control(), running: Some(running), address, runtime }
    }

    fn faults(&self, change: impl FnOnce(&mut Faults)) {
        self.control.update_faults(change).expect("valid faults");
    }

    /// The buyer's browser confirms the payment at the PSP (Stripe.js), with a test card.
    fn pay(&self, payment: &Value, card: &str) -> Reply {
        let id = payment["id"].as_str().expect("payment id");
        let secret = payment["client_secret"].as_str().expect("client secret");
        let body = format!("payment_method={card}&client_secret={secret}");
        let auth = format!("Bearer {}", hakken_fakepsp::DEFAULT_PUBLISHABLE_KEY);
        let headers = [("Authorization", auth.as_str()), ("Content-Type", "application/x-www-form-urlencoded")];
        raw_request(&self.address, "POST", &format!("/v1/payment_intents/{id}/confirm"), &headers, body.as_bytes())
    }

    fn stats(&self, psp_id: &str) -> hakken_fakepsp::IntentStats {
        self.control.stats().payment_intents.get(psp_id).copied().unwrap_or_default()
    }

    /// Points the PSP's webhooks at `server` (its port changes at every start).
    fn deliver_to(&self, server: &Server) {
        let url = format!("http://{}/v1/payments/webhooks/stripe", server.address);
        self.control.set_webhook_url(Some(&url)).expect("webhook url");
    }
}

impl Drop for Psp {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            self.runtime.block_on(running.stop());
        }
    }
}

fn server(psp: &Psp, extra: &[(&str, &str)]) -> Server {
    let api_base = format!("http://{}", psp.address);
    let mut env = vec![
        ("HAKKEN_PAYMENTS_PROVIDER", "stripe"),
        ("HAKKEN_PAYMENTS_STRIPE_API_BASE", api_base.as_str()),
        ("HAKKEN_PAYMENTS_STRIPE_SECRET_KEY", hakken_fakepsp::DEFAULT_SECRET_KEY),
        ("HAKKEN_PAYMENTS_STRIPE_PUBLISHABLE_KEY", hakken_fakepsp::DEFAULT_PUBLISHABLE_KEY),
        ("HAKKEN_PAYMENTS_STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET),
        ("HAKKEN_PAYMENTS_STRIPE_TIMEOUT_MS", "1000"),
        ("HAKKEN_PAYMENTS_WEBHOOK_GRACE_MS", "1500"),
        ("HAKKEN_PAYMENTS_SWEEP_INTERVAL_MS", "200"),
        ("HAKKEN_SALES_TOKEN", SALES_TOKEN),
    ];
    env.extend_from_slice(extra);
    let server = Server::start(&env);
    psp.deliver_to(&server);
    server
}

fn hold(server: &Server, customer: &str, seats: &[&str]) -> String {
    let hold = server.hold(json!({"customer": customer, "seats": seats}));
    hold["id"].as_str().unwrap().to_string()
}

fn checkout(server: &Server, hold: &str, customer: &str) -> Reply {
    let buyer = json!({"name": format!("Buyer {customer}"), "email": format!("{customer}@example.com")});
    server.post(&format!("/v1/holds/{hold}/checkout"), json!({"customer": customer, "buyer": buyer}))
}

fn payment(server: &Server, hold: &str, customer: &str) -> Value {
    let reply = server.get(&format!("/v1/holds/{hold}/payment?customer={customer}"));
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json["payment"].clone()
}

/// Waits (bounded) until the hold's payment reaches `status`; returns it.
fn await_status(server: &Server, hold: &str, customer: &str, status: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found = payment(server, hold, customer);
        if found["status"] == status {
            return found;
        }
        assert!(Instant::now() < deadline, "payment of {hold} never became {status}: {found}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn order(server: &Server, order: &str, customer: &str) -> Value {
    let reply = server.get(&format!("/v1/orders/{order}?customer={customer}"));
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json["order"].clone()
}

fn reconcile(server: &Server) -> Value {
    let reply = server.admin("GET", "/v1/admin/payments/reconcile", None);
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json
}

fn seat_state(server: &Server, seat: &str) -> String {
    server.seat_states(SECTION)[seat].clone()
}

#[test]
fn a_paid_hold_becomes_one_order_with_tickets_and_one_capture() {
    let psp = Psp::start();
    let server = server(&psp, &[]);
    let config = server.get("/v1/payments/config");
    assert_eq!(config.json["provider"], "stripe", "{}", config.text);
    assert_eq!(config.json["publishable_key"], hakken_fakepsp::DEFAULT_PUBLISHABLE_KEY);

    let hold_id = hold(&server, "ana", &["S101-C-12", "S101-C-13"]);
    let started = checkout(&server, &hold_id, "ana");
    assert_eq!(started.status, 201, "{}", started.text);
    let payment_view = &started.json["payment"];
    assert_eq!(payment_view["status"], "awaiting_payment");
    assert_eq!(payment_view["provider"], "stripe");
    assert!(payment_view["amount"].as_u64().unwrap() > 0);
    assert_eq!(payment_view["amount"], started.json["hold"]["total_minor"]);
    // The trusted path is closed for a hold being paid for, and for anyone without the token.
    let trusted = server.post(&format!("/v1/holds/{hold_id}/confirm"), support::confirm_body("ana"));
    assert_eq!((trusted.status, trusted.code()), (401, "unauthorized"), "{}", trusted.text);
    let auth = format!("Bearer {SALES_TOKEN}");
    let trusted = server.post_with(
        &format!("/v1/holds/{hold_id}/confirm"),
        &[("Authorization", &auth)],
        support::confirm_body("ana"),
    );
    assert_eq!((trusted.status, trusted.code()), (409, "hold_paying"), "{}", trusted.text);
    // Checking out again answers the same payment.
    let again = checkout(&server, &hold_id, "ana");
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.json["payment"]["id"], payment_view["id"]);

    let paid = psp.pay(payment_view, "pm_card_visa");
    assert_eq!(paid.status, 200, "{}", paid.text);
    let captured = await_status(&server, &hold_id, "ana", "captured");
    let order_id = captured["order"].as_str().expect("an order").to_string();
    let sold = order(&server, &order_id, "ana");
    assert_eq!(sold["tickets"].as_array().unwrap().len(), 2);
    assert_eq!(sold["payment"]["status"], "captured");
    assert_eq!(seat_state(&server, "S101-C-12"), "sold");
    let psp_id = payment_view["id"].as_str().unwrap();
    let stats = psp.stats(psp_id);
    assert_eq!((stats.authorizations, stats.captures), (1, 1), "{stats:?}");
    // Only the authorization was sent: `payment_intent.created` and `.succeeded` (hakken's
    // own capture) are not subscribed to.
    assert_eq!(psp.control.stats().webhooks.events, 1);
    let report = reconcile(&server);
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!((report["payments"].as_u64(), report["psp_payments"].as_u64()), (Some(1), Some(1)));
    // The same from the command line, as an operator runs it.
    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_hakken"))
        .current_dir(support::repo_root())
        .args(["payments", "reconcile", "--url", &server.address, "--admin-token", support::ADMIN_TOKEN])
        .env("HAKKEN_LOG", "warn")
        .output()
        .expect("hakken payments reconcile runs");
    let printed = String::from_utf8_lossy(&cli.stdout);
    assert!(
        cli.status.success() && printed.contains("\"ok\": true"),
        "{printed} {}",
        String::from_utf8_lossy(&cli.stderr)
    );
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_hakken"))
        .current_dir(support::repo_root())
        .args(["payments", "reconcile", "--url", &server.address, "--admin-token", "wrong"])
        .output()
        .expect("hakken payments reconcile runs");
    assert!(!refused.status.success() && String::from_utf8_lossy(&refused.stderr).contains("401"));
    let metrics = server.metrics();
    assert!(metrics.contains("hakken_payment_webhooks_total{outcome=\"processed\"}"));
    // The checkout's and the webhook's PSP calls stepped out of the in-flight count and back.
    assert!(metrics.lines().any(|line| line == "hakken_http_requests_awaiting_psp 0"), "{metrics}");
}

#[test]
fn a_long_poll_answers_when_the_webhook_made_the_order_and_at_its_end_otherwise() {
    let psp = Psp::start();
    let server = server(&psp, &[]);
    let hold_id = hold(&server, "lena", &["S101-D-3"]);
    let started = checkout(&server, &hold_id, "lena");
    assert_eq!(started.status, 201, "{}", started.text);

    // Nobody pays: the poll waits its time out, then answers the payment as it is.
    let asked = Instant::now();
    let unpaid = server.get(&format!("/v1/holds/{hold_id}/payment?customer=lena&wait_ms=300"));
    assert_eq!((unpaid.status, unpaid.json["payment"]["status"].as_str()), (200, Some("awaiting_payment")));
    assert!(asked.elapsed() >= Duration::from_millis(300), "answered before its wait ended: {:?}", asked.elapsed());
    // Another customer learns nothing, waiting or not.
    let other = server.get(&format!("/v1/holds/{hold_id}/payment?customer=mallory&wait_ms=300"));
    assert_eq!((other.status, other.code()), (404, "payment_not_found"), "{}", other.text);

    // Paid while the poll waits: it answers with the order, long before its 20 s.
    let (polled, waited) = std::thread::scope(|scope| {
        let poll = scope.spawn(|| {
            let asked = Instant::now();
            let reply = server.get(&format!("/v1/holds/{hold_id}/payment?customer=lena&wait_ms=20000"));
            (reply, asked.elapsed())
        });
        std::thread::sleep(Duration::from_millis(200));
        let paid = psp.pay(&started.json["payment"], "pm_card_visa");
        assert_eq!(paid.status, 200, "{}", paid.text);
        poll.join().expect("the poll thread")
    });
    assert_eq!(polled.status, 200, "{}", polled.text);
    assert!(matches!(polled.json["payment"]["status"].as_str(), Some("ordered" | "captured")), "{}", polled.text);
    assert!(polled.json["payment"]["order"].is_string(), "{}", polled.text);
    assert!(waited < Duration::from_secs(10), "the poll was not woken: {waited:?}");
    // A settled payment is answered at once, whatever the wait.
    let asked = Instant::now();
    let settled = server.get(&format!("/v1/holds/{hold_id}/payment?customer=lena&wait_ms=20000"));
    assert_eq!(settled.status, 200, "{}", settled.text);
    assert!(asked.elapsed() < Duration::from_secs(10));
    assert!(server.metrics().contains("hakken_payment_waiters"));
}

#[test]
fn a_declined_card_leaves_the_hold_to_expire_and_a_second_card_may_pay() {
    let psp = Psp::start();
    let server = server(&psp, &[]);
    let hold_id = hold(&server, "bo", &["S101-D-1"]);
    let started = checkout(&server, &hold_id, "bo");
    assert_eq!(started.status, 201, "{}", started.text);
    let declined = psp.pay(&started.json["payment"], "pm_card_chargeDeclined");
    assert_eq!(declined.status, 402, "{}", declined.text);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(payment(&server, &hold_id, "bo")["status"], "awaiting_payment");
    assert_eq!(seat_state(&server, "S101-D-1"), "held");
    assert_eq!(server.get(&format!("/v1/holds/{hold_id}")).status, 200, "the hold is intact");
    assert_eq!(psp.pay(&started.json["payment"], "pm_card_visa").status, 200);
    await_status(&server, &hold_id, "bo", "captured");
}

#[test]
fn forged_altered_stale_and_replayed_webhooks_are_refused_and_change_nothing() {
    let psp = Psp::start();
    let server = server(&psp, &[]);
    let hold_id = hold(&server, "cy", &["S101-E-1"]);
    let started = checkout(&server, &hold_id, "cy");
    let psp_id = started.json["payment"]["id"].as_str().unwrap().to_string();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let event = |id: &str, livemode: bool| {
        json!({"id": id, "object": "event", "type": "payment_intent.amount_capturable_updated", "created": now,
            "livemode": livemode, "api_version": "2024-06-20", "pending_webhooks": 1, "request": null,
            "data": {"object": {"id": psp_id, "object": "payment_intent", "status": "requires_capture",
                "metadata": {"hakken_hold": hold_id}}}})
        .to_string()
    };
    let post = |body: &str, signature: &str| {
        let headers = [("Stripe-Signature", signature), ("Content-Type", "application/json")];
        raw_request(&server.address, "POST", "/v1/payments/webhooks/stripe", &headers, body.as_bytes())
    };
    let sign = |body: &str, secret: &str, t: i64| hakken_api::payments::signature::sign(body.as_bytes(), secret, t);
    let body = event("evt_forged1", false);
    let cases = [
        ("no signature", post(&body, ""), "invalid_signature"),
        ("wrong secret", post(&body, &sign(&body, "whsec_attacker", now)), "invalid_signature"),
        (
            "altered body",
            post(&body.replace("requires_capture", "succeeded"), &sign(&body, WEBHOOK_SECRET, now)),
            "invalid_signature",
        ),
        ("stale", post(&body, &sign(&body, WEBHOOK_SECRET, now - 301)), "invalid_signature"),
        // A few seconds past the tolerance: the server's clock reads later than `now` did.
        ("from the future", post(&body, &sign(&body, WEBHOOK_SECRET, now + 310)), "invalid_signature"),
        (
            "live event, test key",
            {
                let live = event("evt_live1", true);
                post(&live, &sign(&live, WEBHOOK_SECRET, now))
            },
            "livemode_mismatch",
        ),
        ("not an event", post("{\"id\": 1}", &sign("{\"id\": 1}", WEBHOOK_SECRET, now)), "invalid_event"),
    ];
    for (what, reply, code) in cases {
        assert_eq!((reply.status, reply.code()), (400, code), "{what}: {}", reply.text);
    }
    // A well-signed event is only a prompt: the PSP says the payment is not authorized,
    // so nothing is sold; replaying it is answered as a duplicate.
    let signed = sign(&body, WEBHOOK_SECRET, now);
    assert_eq!(post(&body, &signed).status, 200);
    let replayed = post(&body, &signed);
    assert_eq!((replayed.status, replayed.json["outcome"].as_str()), (200, Some("duplicate")), "{}", replayed.text);
    assert_eq!(payment(&server, &hold_id, "cy")["status"], "awaiting_payment");
    assert_eq!(seat_state(&server, "S101-E-1"), "held");
    assert_eq!(psp.stats(&psp_id).captures, 0);
}

#[test]
fn duplicated_reordered_and_dropped_webhooks_still_make_one_order_and_one_capture() {
    let psp = Psp::start();
    let server = server(&psp, &[]);
    psp.faults(|faults| {
        faults.webhook_duplicates = 3;
        faults.webhook_reorder_batch = 4;
        faults.webhook_reorder_hold_ms = 300;
    });
    let mut payments = Vec::new();
    for (n, seat) in ["S101-F-1", "S101-F-2", "S101-F-3"].iter().enumerate() {
        let customer = format!("dup{n}");
        let hold_id = hold(&server, &customer, &[seat]);
        let started = checkout(&server, &hold_id, &customer);
        assert_eq!(psp.pay(&started.json["payment"], "pm_card_visa").status, 200);
        payments.push((hold_id, customer, started.json["payment"]["id"].as_str().unwrap().to_string()));
    }
    // One more whose webhooks never come: the sweep asks the PSP.
    psp.faults(|faults| faults.webhook_drop_next = 1_000);
    let hold_id = hold(&server, "dropped", &["S101-F-4"]);
    let started = checkout(&server, &hold_id, "dropped");
    assert_eq!(psp.pay(&started.json["payment"], "pm_card_visa").status, 200);
    payments.push((hold_id, "dropped".into(), started.json["payment"]["id"].as_str().unwrap().to_string()));
    for (hold_id, customer, psp_id) in &payments {
        let captured = await_status(&server, hold_id, customer, "captured");
        let order_id = captured["order"].as_str().unwrap();
        assert_eq!(order(&server, order_id, customer)["state"], "confirmed");
        let stats = psp.stats(psp_id);
        assert_eq!(stats.captures, 1, "{psp_id}: {stats:?}");
    }
    let (_, _, sold) = server.counts(SECTION);
    assert_eq!(sold, 4);
    assert_eq!(reconcile(&server)["ok"], true);
}

#[test]
fn a_late_payment_takes_its_seats_if_free_and_is_voided_if_they_were_sold() {
    let psp = Psp::start();
    // Holds live 2 s and the payment window adds nothing beyond it.
    let server = server(
        &psp,
        &[
            ("HAKKEN_ENGINE_HOLD_TTL_MS", "2000"),
            ("HAKKEN_PAYMENTS_PAYMENT_WINDOW_MS", "2000"),
            ("HAKKEN_ENGINE_SWEEP_INTERVAL_MS", "100"),
        ],
    );
    let free = hold(&server, "late1", &["S101-G-1"]);
    let free_payment = checkout(&server, &free, "late1").json["payment"].clone();
    let taken = hold(&server, "late2", &["S101-G-2"]);
    let taken_payment = checkout(&server, &taken, "late2").json["payment"].clone();
    std::thread::sleep(Duration::from_millis(3_200));
    // Someone else buys G-2 on trust while late2 has not paid.
    let auth = format!("Bearer {SALES_TOKEN}");
    let rival = hold(&server, "rival", &["S101-G-2"]);
    let sold = server.post_with(
        &format!("/v1/holds/{rival}/confirm"),
        &[("Authorization", &auth)],
        support::confirm_body("rival"),
    );
    assert_eq!(sold.status, 201, "{}", sold.text);
    assert_eq!(sold.json["order"]["channel"], "box_office");

    assert_eq!(psp.pay(&free_payment, "pm_card_visa").status, 200);
    assert_eq!(psp.pay(&taken_payment, "pm_card_visa").status, 200);
    let reacquired = await_status(&server, &free, "late1", "captured");
    assert!(reacquired["order"].is_string());
    assert_eq!(seat_state(&server, "S101-G-1"), "sold");
    let voided = await_status(&server, &taken, "late2", "voided");
    assert_eq!(voided["void_reason"], "late");
    assert!(voided["order"].is_null());
    let taken_id = taken_payment["id"].as_str().unwrap();
    assert_eq!((psp.stats(taken_id).captures, psp.stats(taken_id).cancels), (0, 1));
    // G-2 is still the rival's.
    let rival_order = sold.json["order"]["id"].as_str().unwrap();
    assert_eq!(order(&server, rival_order, "rival")["state"], "confirmed");
    assert_eq!(reconcile(&server)["ok"], true, "{}", reconcile(&server));
}

#[test]
fn a_cancelled_order_is_refunded_once_even_when_the_psp_fails_first() {
    let psp = Psp::start();
    let server = server(&psp, &[]);
    let hold_id = hold(&server, "eve", &["S101-H-1"]);
    let started = checkout(&server, &hold_id, "eve");
    assert_eq!(psp.pay(&started.json["payment"], "pm_card_visa").status, 200);
    let captured = await_status(&server, &hold_id, "eve", "captured");
    let order_id = captured["order"].as_str().unwrap().to_string();
    psp.faults(|faults| {
        faults.fail_next = 2;
        faults.api_fault_match = Some("/v1/refunds".into());
    });
    let cancelled = server.post(&format!("/v1/orders/{order_id}/cancel"), json!({"customer": "eve"}));
    assert_eq!(cancelled.status, 200, "{}", cancelled.text);
    assert_eq!(seat_state(&server, "S101-H-1"), "free");
    let refunded = await_status(&server, &hold_id, "eve", "refunded");
    assert_eq!(refunded["order"], order_id.as_str());
    let psp_id = started.json["payment"]["id"].as_str().unwrap();
    assert_eq!(psp.stats(psp_id).refunds, 1);
    assert_eq!(reconcile(&server)["ok"], true);
}

/// A hold request with `checkout` (one request for hold and checkout): the hold with its
/// payment, replayed as such under its `Idempotency-Key`, paid like any checkout; a PSP
/// that fails leaves the hold made, with `checkout_error`; a bad buyer holds nothing.
#[test]
fn a_hold_that_checks_out_in_the_same_request_is_paid_like_any_and_a_failed_checkout_leaves_the_hold() {
    let psp = Psp::start();
    let server = server(&psp, &[]);
    let holds = format!("/v1/events/{EVENT}/holds");
    let with_checkout = |customer: &str, seats: &[&str], email: &str| json!({"customer": customer, "seats": seats, "checkout": {"buyer": {"name": "Kim Buyer", "email": email}}});
    let key = [("Idempotency-Key", "hold-and-checkout-1")];
    let body = with_checkout("kim", &["S101-K-1", "S101-K-2"], "kim@example.com");
    let started = server.post_with(&holds, &key, body.clone());
    assert_eq!(started.status, 201, "{}", started.text);
    let hold_id = started.json["hold"]["id"].as_str().expect("hold id").to_string();
    let payment_view = started.json["payment"].clone();
    assert_eq!(payment_view["status"], "awaiting_payment", "{}", started.text);
    assert_eq!(payment_view["hold"], hold_id.as_str());
    assert_eq!(payment_view["amount"], started.json["hold"]["total_minor"]);
    assert!(started.json.get("checkout_error").is_none(), "{}", started.text);
    // The answer is the hold extended by the payment window, as a checkout's.
    let looked_up = server.get(&format!("/v1/holds/{hold_id}"));
    assert_eq!(looked_up.json["hold"]["expires_at"], started.json["hold"]["expires_at"], "{}", looked_up.text);
    let replayed = server.post_with(&holds, &key, body);
    assert_eq!((replayed.status, replayed.header("idempotency-replayed")), (201, Some("true")), "{}", replayed.text);
    assert_eq!(replayed.json, started.json);
    assert_eq!(psp.control.stats().payment_intents.len(), 1, "one PaymentIntent for the request and its retry");
    // Checking the hold out again answers the same payment.
    let again = checkout(&server, &hold_id, "kim");
    assert_eq!((again.status, &again.json["payment"]["id"]), (200, &payment_view["id"]), "{}", again.text);

    let paid = psp.pay(&payment_view, "pm_card_visa");
    assert_eq!(paid.status, 200, "{}", paid.text);
    let captured = await_status(&server, &hold_id, "kim", "captured");
    let sold = order(&server, captured["order"].as_str().expect("an order"), "kim");
    assert_eq!(sold["tickets"].as_array().unwrap().len(), 2);
    let stats = psp.stats(payment_view["id"].as_str().unwrap());
    assert_eq!((stats.authorizations, stats.captures), (1, 1), "{stats:?}");

    // The PSP fails: the hold is made and said to be, the checkout is not.
    psp.faults(|faults| {
        faults.fail_next = 1;
        faults.fail_stores = false;
        faults.api_fault_match = Some("POST /v1/payment_intents".into());
    });
    let unpaid = server.post(&holds, with_checkout("lee", &["S101-K-3"], "lee@example.com"));
    assert_eq!(unpaid.status, 201, "{}", unpaid.text);
    assert!(unpaid.json.get("payment").is_none(), "{}", unpaid.text);
    let error = unpaid.json["checkout_error"]["code"].as_str().unwrap_or_default();
    assert!(error.starts_with("psp_"), "{}", unpaid.text);
    let unpaid_hold = unpaid.json["hold"]["id"].as_str().expect("hold id");
    assert_eq!(seat_state(&server, "S101-K-3"), "held");
    let started = checkout(&server, unpaid_hold, "lee");
    assert_eq!(started.status, 201, "{}", started.text);

    // A buyer that is not one holds nothing.
    let refused = server.post(&holds, with_checkout("max", &["S101-K-4"], "not an email"));
    assert_eq!((refused.status, refused.code()), (422, "invalid_buyer"), "{}", refused.text);
    assert_eq!(seat_state(&server, "S101-K-4"), "free");
    // Taken seats are the hold's refusal, with no PaymentIntent made.
    let intents = psp.control.stats().payment_intents.len();
    let taken = server.post(&holds, with_checkout("max", &["S101-K-1"], "max@example.com"));
    assert_eq!((taken.status, taken.code()), (409, "seats_unavailable"), "{}", taken.text);
    assert_eq!(psp.control.stats().payment_intents.len(), intents);
}

#[test]
fn a_psp_down_at_checkout_is_a_clear_error_and_leaves_the_hold_intact() {
    let psp = Psp::start();
    let server = server(&psp, &[]);
    let hold_id = hold(&server, "fay", &["S101-J-1"]);
    psp.faults(|faults| {
        faults.fail_next = 1;
        faults.fail_stores = false;
        faults.api_fault_match = Some("POST /v1/payment_intents".into());
    });
    let failed = checkout(&server, &hold_id, "fay");
    assert!(matches!(failed.status, 502 | 503), "{}", failed.text);
    assert!(failed.code().starts_with("psp_"), "{}", failed.text);
    psp.faults(|faults| {
        faults.timeout_next = 1;
        faults.timeout_hang_ms = 3_000;
        faults.api_fault_match = Some("POST /v1/payment_intents".into());
    });
    let timed_out = checkout(&server, &hold_id, "fay");
    assert_eq!((timed_out.status, timed_out.code()), (503, "psp_unavailable"), "{}", timed_out.text);
    assert_eq!(server.get(&format!("/v1/holds/{hold_id}")).status, 200);
    assert_eq!(seat_state(&server, "S101-J-1"), "held");
    let started = checkout(&server, &hold_id, "fay");
    assert_eq!(started.status, 201, "{}", started.text);
    let unknown = server.get(&format!("/v1/holds/{hold_id}/payment?customer=mallory"));
    assert_eq!(unknown.status, 404);
}

#[test]
fn a_kill_between_authorization_and_capture_ends_in_one_order_and_one_capture() {
    let psp = Psp::start();
    let mut server = server(&psp, &[]);
    let hold_id = hold(&server, "gus", &["S101-K-1", "S101-K-2"]);
    let started = checkout(&server, &hold_id, "gus");
    let psp_id = started.json["payment"]["id"].as_str().unwrap().to_string();
    // Captures hang: hakken has sold the order (durably) and waits for the PSP.
    psp.faults(|faults| {
        faults.timeout_next = 1_000;
        faults.timeout_hang_ms = 60_000;
        faults.api_fault_match = Some("/capture".into());
    });
    assert_eq!(psp.pay(&started.json["payment"], "pm_card_visa").status, 200);
    await_status(&server, &hold_id, "gus", "ordered");
    server.kill9();
    psp.faults(|faults| faults.timeout_next = 0);
    server.spawn();
    psp.deliver_to(&server);
    let captured = await_status(&server, &hold_id, "gus", "captured");
    let order_id = captured["order"].as_str().unwrap();
    assert_eq!(order(&server, order_id, "gus")["tickets"].as_array().unwrap().len(), 2);
    assert_eq!(psp.stats(&psp_id).captures, 1);
    let (_, held, sold) = server.counts(SECTION);
    assert_eq!((held, sold), (0, 2));
    assert_eq!(reconcile(&server)["ok"], true);
    let _ = EVENT;
}

#[test]
fn bad_checkout_and_payment_requests_get_their_documented_error_and_change_nothing() {
    let psp = Psp::start();
    let server = server(&psp, &[]);
    let hold_id = hold(&server, "owner", &["S101-L-1"]);
    let checkout_path = format!("/v1/holds/{hold_id}/checkout");
    let buyer = json!({"name": "N", "email": "n@example.com"});
    let cases: Vec<(&str, &str, String, String, u16, &str)> = vec![
        ("malformed JSON", "POST", checkout_path.clone(), "{\"customer\": ".into(), 400, "malformed_json"),
        ("no buyer", "POST", checkout_path.clone(), json!({"customer": "owner"}).to_string(), 422, "invalid_body"),
        (
            "unknown field",
            "POST",
            checkout_path.clone(),
            json!({"customer": "owner", "buyer": buyer, "amount": 1}).to_string(),
            422,
            "invalid_body",
        ),
        (
            "not an email",
            "POST",
            checkout_path.clone(),
            json!({"customer": "owner", "buyer": {"name": "N", "email": "nope"}}).to_string(),
            422,
            "invalid_buyer",
        ),
        (
            "blank name",
            "POST",
            checkout_path.clone(),
            json!({"customer": "owner", "buyer": {"name": " ", "email": "n@example.com"}}).to_string(),
            422,
            "invalid_buyer",
        ),
        (
            "empty customer",
            "POST",
            checkout_path.clone(),
            json!({"customer": "", "buyer": buyer}).to_string(),
            422,
            "invalid_customer",
        ),
        (
            "someone else's hold",
            "POST",
            checkout_path.clone(),
            json!({"customer": "mallory", "buyer": buyer}).to_string(),
            403,
            "hold_not_yours",
        ),
        (
            "unknown hold",
            "POST",
            "/v1/holds/h0-fffff/checkout".into(),
            json!({"customer": "owner", "buyer": buyer}).to_string(),
            404,
            "hold_not_found",
        ),
        (
            "garbage hold id",
            "POST",
            "/v1/holds/%20;drop/checkout".into(),
            json!({"customer": "owner", "buyer": buyer}).to_string(),
            404,
            "hold_not_found",
        ),
        (
            "payment without customer",
            "GET",
            format!("/v1/holds/{hold_id}/payment"),
            String::new(),
            422,
            "missing_customer",
        ),
        (
            "payment of no checkout",
            "GET",
            format!("/v1/holds/{hold_id}/payment?customer=owner"),
            String::new(),
            404,
            "payment_not_found",
        ),
        (
            "payment waiting too long",
            "GET",
            format!("/v1/holds/{hold_id}/payment?customer=owner&wait_ms=30001"),
            String::new(),
            422,
            "invalid_wait",
        ),
        (
            "payment waiting for words",
            "GET",
            format!("/v1/holds/{hold_id}/payment?customer=owner&wait_ms=soon"),
            String::new(),
            422,
            "invalid_query",
        ),
        (
            "long poll of no checkout",
            "GET",
            format!("/v1/holds/{hold_id}/payment?customer=owner&wait_ms=5000"),
            String::new(),
            404,
            "payment_not_found",
        ),
        (
            "webhook without signature",
            "POST",
            "/v1/payments/webhooks/stripe".into(),
            "{}".into(),
            400,
            "invalid_signature",
        ),
        ("webhook too large", "POST", "/v1/payments/webhooks/stripe".into(), "x".repeat(40_000), 413, "body_too_large"),
        ("reconcile without token", "GET", "/v1/admin/payments/reconcile".into(), String::new(), 401, "unauthorized"),
    ];
    for (name, method, path, body, status, code) in cases {
        let body = (!body.is_empty()).then_some(body);
        let reply = server.request(method, &path, &[], body.as_deref());
        assert_eq!((reply.status, reply.code()), (status, code), "{name}: {}", reply.text);
    }
    assert_eq!(seat_state(&server, "S101-L-1"), "held");
    assert!(psp.control.stats().payment_intents.is_empty(), "no payment was created");
    assert_eq!(server.get("/readyz").status, 200);
}

#[test]
fn the_embedded_test_psp_sells_with_nothing_else_running_and_a_restart_voids_what_it_forgot() {
    let mut server = Server::start(&[
        ("HAKKEN_PAYMENTS_PROVIDER", "test"),
        ("HAKKEN_PAYMENTS_WEBHOOK_GRACE_MS", "300"),
        ("HAKKEN_PAYMENTS_SWEEP_INTERVAL_MS", "100"),
    ]);
    let config = server.get("/v1/payments/config").json;
    assert_eq!(config["provider"], "test");
    let address = config["api_base"].as_str().unwrap().trim_start_matches("http://").to_string();
    assert!(address.starts_with("127.0.0.1:"), "the embedded PSP is on loopback: {address}");
    let embedded = |payment: &Value| {
        let (id, secret) = (payment["id"].as_str().unwrap(), payment["client_secret"].as_str().unwrap());
        let body = format!("payment_method=pm_card_visa&client_secret={secret}");
        let auth = format!("Bearer {}", config["publishable_key"].as_str().unwrap());
        let headers = [("Authorization", auth.as_str()), ("Content-Type", "application/x-www-form-urlencoded")];
        raw_request(&address, "POST", &format!("/v1/payment_intents/{id}/confirm"), &headers, body.as_bytes())
    };
    let paid = hold(&server, "tia", &["S101-M-1"]);
    let started = checkout(&server, &paid, "tia");
    assert_eq!(embedded(&started.json["payment"]).status, 200);
    await_status(&server, &paid, "tia", "captured");
    // Checked out, never paid; then the process (and its in-memory PSP) restarts.
    let unpaid = hold(&server, "uma", &["S101-M-2"]);
    assert_eq!(checkout(&server, &unpaid, "uma").status, 201);
    server.kill9();
    server.spawn();
    let voided = await_status(&server, &unpaid, "uma", "voided");
    assert!(voided["order"].is_null());
    assert_eq!(payment(&server, &paid, "tia")["status"], "captured", "what was settled stays settled");
}
