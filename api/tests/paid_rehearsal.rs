//! Rehearsed on-sales where buyers pay as browsers do, against the real `hakken` binary:
//! the load tool checks out, confirms each payment at the PSP with a Stripe test card
//! (some declined, some paid after the hold expired), and polls for the order the PSP's
//! webhook made. Its verdict must pass, money included: every PSP payment of the run is
//! one order, one void or one refund, no order lacks a captured payment, hakken's
//! reconcile report agrees.
//!
//! - With the `test` provider (the fake PSP embedded in hakken, as in the demo config).
//! - In a webhook storm: hakken with provider `stripe` against an external
//!   `hakken-fakepsp` whose control API the load tool drives during the replay
//!   (duplicated, reordered, delayed, dropped and paused webhooks, capture and create
//!   500s, capture timeouts, late authorizations).

mod support;

use std::time::Duration;

use hakken_loadtest::generate::{self, GenerateConfig, Mix, Shape};
use hakken_loadtest::queue::Queue;
use hakken_loadtest::replay::{self, PaymentMode, PaymentSettings, ReplayConfig, ReplayReport, StormSettings};
use support::{Server, ADMIN_TOKEN};

const SECRET_KEY: &str = "sk_test_hakken_fakepsp";
const PUBLISHABLE_KEY: &str = "pk_test_hakken_fakepsp";
const WEBHOOK_SECRET: &str = "whsec_hakken_paid_rehearsal";

/// Payments settle fast enough for a test: short holds and payment window (so late
/// payers pay within seconds), a short webhook grace (so the sweep asks the PSP about
/// dropped webhooks soon), a frequent sweep.
const FAST_PAYMENTS: [(&str, &str); 4] = [
    ("HAKKEN_ENGINE_HOLD_TTL_MS", "5000"),
    ("HAKKEN_PAYMENTS_PAYMENT_WINDOW_MS", "1500"),
    ("HAKKEN_PAYMENTS_WEBHOOK_GRACE_MS", "500"),
    ("HAKKEN_PAYMENTS_SWEEP_INTERVAL_MS", "200"),
];

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

fn replay_config(target: &str, payments: PaymentSettings) -> ReplayConfig {
    ReplayConfig { retries: 5, threads: 2, payments, ..support::replay_config(target, "paid") }
}

fn paying(decline_share: f64, late_share: f64) -> PaymentSettings {
    PaymentSettings {
        mode: PaymentMode::Browser,
        decline_share,
        decline_retry_share: 0.5,
        late_share,
        late_wait_max: Duration::from_secs(20),
        poll_timeout: Duration::from_secs(20),
        psp_secret_key: Some(SECRET_KEY.into()),
        admin_token: Some(ADMIN_TOKEN.into()),
        settle_timeout: Duration::from_secs(40),
        ..PaymentSettings::default()
    }
}

/// A small spike of `buyers` from the server's own layout: nearly all buy (a few
/// abandon or walk away), thinking for a few milliseconds.
fn queue(runtime: &tokio::runtime::Runtime, target: &str, buyers: u64, seed: u64) -> Queue {
    let layout = support::demo_layout(runtime, target);
    let config = GenerateConfig {
        seed,
        buyers,
        shape: Shape::Spike { window: Duration::from_secs(2), share: 0.9, tail: Duration::from_secs(2) },
        mix: Mix {
            abandon_share: 0.05,
            expire_share: 0.02,
            poll_share: 0.2,
            think_median: Duration::from_millis(20),
            ..Mix::default()
        },
    };
    generate::generate(&layout, &config).expect("queue")
}

/// What every paid rehearsal must show, whatever the weather.
fn assert_paid_and_consistent(report: &ReplayReport) {
    let verdict = report.verdict.as_ref().expect("a verdict");
    assert!(verdict.passed(), "{report}");
    let money = verdict.payments.as_ref().expect("the money was checked");
    assert_eq!(money.reconcile_ok, Some(true), "{report}");
    assert!(money.psp_intents.is_some_and(|intents| intents > 0), "{report}");
    let payments = report.payments.as_ref().expect("a payments report");
    assert_eq!(payments.mode, "browser");
    assert!(payments.paid_orders > 0, "{report}");
    assert_eq!(payments.unresolved, 0, "{report}");
    assert_eq!(report.buyers.unfinished, 0, "{report}");
    // Every order of the run was paid: as many captured at the PSP as orders read back.
    assert!(money.captured + money.pending >= verdict.orders_checked, "{report}");
    assert!(report.to_string().contains("PSP confirm -> order: p50"), "{report}");
}

#[test]
fn a_paid_rehearsal_with_declines_and_late_payments_passes_the_verdict() {
    let mut env = vec![("HAKKEN_PAYMENTS_PROVIDER", "test")];
    env.extend(FAST_PAYMENTS);
    let server = Server::start(&env);
    let target = format!("http://{}", server.address);
    let runtime = runtime();
    let queue = queue(&runtime, &target, 300, 11);
    let config = replay_config(&target, paying(0.15, 0.1));
    let outcome =
        runtime.block_on(replay::replay(queue, "generated".into(), config, std::future::pending())).expect("replay");
    let report = &outcome.report;
    assert_paid_and_consistent(report);
    let payments = report.payments.as_ref().expect("payments");
    assert!(payments.declined > 0 && payments.declines_retried > 0, "{report}");
    assert!(payments.declined_left_to_expire > 0, "{report}");
    assert!(payments.late.payers > 0, "{report}");
    let late = &payments.late;
    assert_eq!(late.reacquired + late.voided + late.declined, late.payers, "{report}");
    assert_eq!(outcome.ledger.orders.len() as u64, report.buyers.confirmed, "{report}");
    assert!(outcome.ledger.orders.iter().all(|order| order.payment.is_some()), "every order was paid");
    let step = |name: &str| report.steps.iter().find(|step| step.step == name).expect("step");
    assert_eq!(step("checkout").counts.sent, payments.checkouts, "{report}");
    assert!(step("psp_confirm").counts.conflict > 0, "declines are the PSP's conflicts: {report}");
    assert_eq!(step("payment").counts.success, payments.paid_orders, "{report}");
}

#[test]
fn a_webhook_storm_still_makes_one_order_or_one_void_of_every_payment() {
    // The external fake PSP, on a runtime of its own; its webhooks go to hakken, whose
    // address is known only once it runs.
    let psp_runtime = runtime();
    let psp = psp_runtime
        .block_on(hakken_fakepsp::start(hakken_fakepsp::Config::new(
            "127.0.0.1:0".parse().expect("address"),
            WEBHOOK_SECRET,
        )))
        .expect("the fake PSP starts");
    let api_base = psp.api_base();
    let mut env = vec![
        ("HAKKEN_PAYMENTS_PROVIDER", "stripe"),
        ("HAKKEN_PAYMENTS_STRIPE_API_BASE", api_base.as_str()),
        ("HAKKEN_PAYMENTS_STRIPE_SECRET_KEY", SECRET_KEY),
        ("HAKKEN_PAYMENTS_STRIPE_PUBLISHABLE_KEY", PUBLISHABLE_KEY),
        ("HAKKEN_PAYMENTS_STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET),
        ("HAKKEN_PAYMENTS_STRIPE_TIMEOUT_MS", "1000"),
    ];
    env.extend(FAST_PAYMENTS);
    let server = Server::start(&env);
    let target = format!("http://{}", server.address);
    let hook = serde_json::json!({"url": format!("{target}/v1/payments/webhooks/stripe")}).to_string();
    let set = support::raw_request(
        api_base.trim_start_matches("http://"),
        "POST",
        "/_fake/webhook_url",
        &[("Content-Type", "application/json")],
        hook.as_bytes(),
    );
    assert_eq!(set.status, 200, "{}", set.text);

    let runtime = runtime();
    let queue = queue(&runtime, &target, 250, 12);
    let mut payments = paying(0.1, 0.05);
    payments.storm = Some(StormSettings { control: None, every: Duration::from_millis(300), squalls: Vec::new() });
    let config = replay_config(&target, payments);
    let outcome =
        runtime.block_on(replay::replay(queue, "generated".into(), config, std::future::pending())).expect("replay");
    let report = &outcome.report;
    assert_paid_and_consistent(report);
    let storm = report.payments.as_ref().and_then(|payments| payments.storm.as_ref()).expect("a storm blew");
    assert!(storm.played.len() >= replay::SQUALLS.len(), "every squall blew at least once: {report}");
    assert_eq!(storm.control_errors, 0, "{report}");
    let stats = storm.fake_stats.as_ref().expect("the fake's stats");
    assert!(stats["webhooks"]["dropped"].as_u64() > Some(0), "{stats}");
    let webhooks = |name: &str| stats["webhooks"][name].as_u64().expect("a count");
    assert!(webhooks("deliveries") > webhooks("events") - webhooks("dropped"), "duplicates: {stats}");
    assert!(stats["api"]["failed"].as_u64() > Some(0), "{stats}");
    psp_runtime.block_on(psp.stop());
}
