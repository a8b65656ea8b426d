//! Notifications when their receivers misbehave, end to end on a real `hakken serve` with
//! aiosmtpd and webhook receivers on 127.0.0.1 (issue 13):
//!
//! - an endpoint answering `410 Gone` is disabled: its delivery becomes a dead letter, later
//!   entries are not sent to it at all, email and a second endpoint go on; an admin's retry
//!   tries it once more;
//! - an endpoint that accepts and never answers: each attempt ends at the configured
//!   timeout and is retried under the same id, while the email, a second endpoint and the
//!   sale path carry on.
//!
//! Skips (with a message) only when `python3` is missing; with python3 present and aiosmtpd
//! missing it fails, naming the install line.

#[path = "support/notify.rs"]
mod notify;
#[path = "../notify/tests/support/smtp.rs"]
mod smtp;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime};

use hakken_notify::{message_id, EmailKind};
use notify::{config_file, metric, start_server, wait_for, Answer, Delivery, Receiver, FROM_DOMAIN};
use serde_json::{json, Value};
use smtp::SmtpServer;
use support::Server;

const EMAIL_DELIVERED: &str = "hakken_notification_attempts_total{channel=\"email\",outcome=\"delivered\"}";
const WEBHOOK_DELIVERED: &str = "hakken_notification_attempts_total{channel=\"webhook\",outcome=\"delivered\"}";
const WEBHOOK_RETRIED: &str = "hakken_notification_attempts_total{channel=\"webhook\",outcome=\"retry\"}";
const WEBHOOK_GONE: &str = "hakken_notification_attempts_total{channel=\"webhook\",outcome=\"gone\"}";
const ENDPOINTS_DISABLED: &str = "hakken_webhook_endpoints_disabled_total";

fn skipped(test: &str) {
    eprintln!("SKIPPED: python3 is not installed, so the {test} test (aiosmtpd) did not run");
}

/// One seat held in S101 and confirmed; the order's id.
fn sell(server: &Server, customer: &str) -> String {
    let hold = server.hold(json!({"customer": customer, "section": "S101", "quantity": 1}));
    let order = server.confirm(hold["id"].as_str().unwrap(), customer);
    order["id"].as_str().unwrap().to_string()
}

/// The outbox entries on a shelf (`pending` or `dead`), as the admin API shows them.
fn outbox(server: &Server, shelf: &str) -> Vec<Value> {
    let page = server.admin("GET", &format!("/v1/admin/outbox?state={shelf}&limit=500"), None);
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.json["next"].is_null(), "more than a page of {shelf} entries");
    page.json["entries"].as_array().unwrap().clone()
}

fn entry_of<'a>(entries: &'a [Value], order: &str) -> Option<&'a Value> {
    entries.iter().find(|entry| entry["order"] == order)
}

/// The delivery of `entry` to `destination` (`email`, `webhook <url>`), once recorded.
fn delivery<'a>(entry: &'a Value, destination: &str) -> Option<&'a Value> {
    entry["deliveries"].as_array()?.iter().find(|delivery| delivery["destination"] == destination)
}

fn state_of(entry: &Value, destination: &str) -> String {
    delivery(entry, destination).map_or("unrecorded", |delivery| delivery["state"].as_str().unwrap()).to_string()
}

/// The Message-IDs of the emails received so far.
fn message_ids(smtp: &SmtpServer) -> Vec<String> {
    smtp.emails().iter().map(|raw| smtp::message_id(&mailparse::parse_mail(raw).unwrap())).collect()
}

fn confirmation_id(order: &str) -> String {
    message_id(order, EmailKind::OrderConfirmed, None, FROM_DOMAIN)
}

#[test]
fn a_410_disables_the_endpoint_while_email_and_the_other_endpoint_go_on() {
    let Some(smtp) = SmtpServer::start() else { return skipped("410") };
    let gone = Receiver::start(vec![Answer::Status(410)]);
    let healthy = Receiver::start(vec![Answer::Status(200)]);
    let dir = tempfile::tempdir().unwrap();
    let webhooks: [(&str, &[&str]); 2] = [(&gone.url, &["order.confirmed"]), (&healthy.url, &["order.confirmed"])];
    let server = start_server(Some(config_file(dir.path(), &webhooks)), smtp.port, &[]);
    let (to_gone, to_healthy) = (format!("webhook {}", gone.url), format!("webhook {}", healthy.url));

    // The first entry reaches it, gets 410: a dead letter, the endpoint disabled.
    let first = sell(&server, "ana");
    let dead = wait_for("the 410's dead letter", 30, || entry_of(&outbox(&server, "dead"), &first).cloned());
    let refused = delivery(&dead, &to_gone).unwrap();
    assert_eq!((refused["state"].as_str(), refused["attempts"].as_u64()), (Some("dead"), Some(1)), "{dead}");
    assert_eq!(refused["last_outcome"], "gone: the endpoint answered 410", "{dead}");
    assert_eq!((state_of(&dead, "email"), state_of(&dead, &to_healthy)), ("delivered".into(), "delivered".into()));
    assert_eq!(gone.count(), 1, "a 410 is not retried");
    let metrics = server.metrics();
    assert_eq!(metric(&metrics, ENDPOINTS_DISABLED), 1.0, "{metrics}");
    assert_eq!(metric(&metrics, WEBHOOK_GONE), 1.0, "{metrics}");

    // Later entries are not sent to it (a dead letter without an attempt); the rest go on.
    let second = sell(&server, "ben");
    let dead = wait_for("the second entry's dead letter", 30, || entry_of(&outbox(&server, "dead"), &second).cloned());
    let skipped_delivery = delivery(&dead, &to_gone).unwrap();
    assert_eq!(skipped_delivery["attempts"], 0, "{dead}");
    assert_eq!(skipped_delivery["last_outcome"], "gone: the endpoint was disabled by a 410", "{dead}");
    assert_eq!((state_of(&dead, "email"), state_of(&dead, &to_healthy)), ("delivered".into(), "delivered".into()));
    assert_eq!(gone.count(), 1, "the disabled endpoint got a request");
    let mut told = healthy.confirmed_orders();
    told.sort();
    let mut sold = vec![first.clone(), second.clone()];
    sold.sort();
    assert_eq!(told, sold, "the healthy endpoint got each order once");
    let mut emailed = message_ids(&smtp);
    emailed.sort();
    let mut expected = vec![confirmation_id(&first), confirmation_id(&second)];
    expected.sort();
    assert_eq!(emailed, expected, "each order emailed once");
    let metrics = server.metrics();
    assert_eq!((metric(&metrics, ENDPOINTS_DISABLED), metric(&metrics, WEBHOOK_GONE)), (1.0, 1.0), "{metrics}");
    assert_eq!(metric(&metrics, WEBHOOK_DELIVERED), 2.0, "{metrics}");
    assert_eq!(metric(&metrics, EMAIL_DELIVERED), 2.0, "{metrics}");

    // An admin's retry enables it again: one more request, answered 410, disabled again.
    let id = dead["id"].as_u64().unwrap();
    let retried = server.admin("POST", &format!("/v1/admin/outbox/{id}/retry"), None);
    assert_eq!(retried.status, 200, "{}", retried.text);
    let dead = wait_for("the retried entry back in the dead letters", 30, || {
        let entries = outbox(&server, "dead");
        let entry = entry_of(&entries, &second)?;
        (delivery(entry, &to_gone)?["attempts"] == 1).then(|| entry.clone())
    });
    assert_eq!(delivery(&dead, &to_gone).unwrap()["last_outcome"], "gone: the endpoint answered 410", "{dead}");
    assert_eq!(gone.count(), 2);
    assert_eq!(healthy.count(), 2, "only the given-up delivery was retried");
    assert_eq!(smtp.emails().len(), 2, "only the given-up delivery was retried");
    assert_eq!(metric(&server.metrics(), ENDPOINTS_DISABLED), 2.0);
}

/// The webhook timeout of the hanging receiver's test: short, yet long enough that a
/// loopback email (QR images rendered by a debug build) goes out well within it.
const HANG_TIMEOUT: Duration = Duration::from_millis(1000);

#[test]
fn a_hanging_receiver_times_out_and_holds_back_neither_email_nor_the_other_endpoint_nor_sales() {
    let Some(smtp) = SmtpServer::start() else { return skipped("hanging receiver") };
    let hanging = Receiver::start(vec![Answer::Hang]);
    let healthy = Receiver::start(vec![Answer::Status(200)]);
    let dir = tempfile::tempdir().unwrap();
    let webhooks: [(&str, &[&str]); 2] = [(&hanging.url, &["order.confirmed"]), (&healthy.url, &["order.confirmed"])];
    let server = start_server(
        Some(config_file(dir.path(), &webhooks)),
        smtp.port,
        &[
            ("HAKKEN_NOTIFICATIONS_RELAY_WEBHOOK_TIMEOUT_MS", &HANG_TIMEOUT.as_millis().to_string()),
            ("HAKKEN_NOTIFICATIONS_RELAY_FIRST_RETRY_MS", "200"),
            ("HAKKEN_NOTIFICATIONS_RELAY_RETRY_MAX_MS", "1000"),
            // It keeps trying for as long as the test runs: the hanging deliveries stay pending.
            ("HAKKEN_NOTIFICATIONS_RELAY_ATTEMPTS_MAX", "1000"),
        ],
    );
    let (to_hanging, to_healthy) = (format!("webhook {}", hanging.url), format!("webhook {}", healthy.url));

    let mut orders = vec![sell(&server, "hang-0")];
    wait_for("the receiver holding a request open", 30, || {
        hanging.deliveries().iter().any(|delivery| delivery.closed_after.is_none()).then_some(())
    });
    // The sale path answers while the receiver hangs.
    let started = Instant::now();
    for n in 1..=10 {
        orders.push(sell(&server, &format!("hang-{n}")));
    }
    let open = hanging.deliveries().iter().filter(|delivery| delivery.closed_after.is_none()).count();
    eprintln!(
        "10 sales (hold + confirm) while a webhook receiver hangs: {:.0?}; {open} requests hanging",
        started.elapsed()
    );

    // Email and the other endpoint are delivered while the hanging endpoint's deliveries are
    // pending, each after at least one timeout.
    let timed_out_outcome = format!("retry: timeout: no answer within {} ms", HANG_TIMEOUT.as_millis());
    wait_for("every order emailed and told to the healthy endpoint, the hanging one timing out", 30, || {
        let pending = outbox(&server, "pending");
        orders
            .iter()
            .all(|order| {
                let Some(entry) = entry_of(&pending, order) else { return false };
                let timed_out = delivery(entry, &to_hanging).is_some_and(|hanging| {
                    hanging["state"] == "pending"
                        && hanging["last_outcome"] == timed_out_outcome
                        && hanging["next_attempt_at"].is_string()
                });
                timed_out && state_of(entry, "email") == "delivered" && state_of(entry, &to_healthy) == "delivered"
            })
            .then_some(())
    });
    assert!(hanging.deliveries().iter().all(|delivery| delivery.answered.is_none()));
    let mut emailed = message_ids(&smtp);
    emailed.sort();
    let mut expected: Vec<String> = orders.iter().map(|order| confirmation_id(order)).collect();
    expected.sort();
    assert_eq!(emailed, expected, "each order emailed once");
    let told: BTreeSet<String> = healthy.confirmed_orders().into_iter().collect();
    assert_eq!(told, orders.iter().cloned().collect(), "the healthy endpoint got every order");

    // Not held back: each order's email and healthy webhook arrived while the hanging
    // endpoint still held that order's first attempt open.
    let first_attempts: Vec<Delivery> =
        wait_for("every order's first attempt at the hanging endpoint timed out", 30, || {
            let deliveries = hanging.deliveries();
            let firsts: Option<Vec<Delivery>> = orders
                .iter()
                .map(|order| deliveries.iter().find(|delivery| delivery.order() == *order).cloned())
                .collect();
            firsts.filter(|firsts| firsts.iter().all(|first| first.closed_after.is_some()))
        });
    let emailed_at: BTreeMap<String, SystemTime> = smtp
        .email_paths()
        .iter()
        .map(|path| {
            let written = std::fs::metadata(path).unwrap().modified().unwrap();
            (smtp::message_id(&mailparse::parse_mail(&std::fs::read(path).unwrap()).unwrap()), written)
        })
        .collect();
    let healthy_deliveries = healthy.deliveries();
    for (order, first) in orders.iter().zip(&first_attempts) {
        let given_up = first.closed_wall().unwrap();
        let told = healthy_deliveries.iter().find(|delivery| delivery.order() == *order).unwrap().received_wall;
        assert!(told < given_up, "{order}: the healthy endpoint was told only after the hanging one timed out");
        let emailed = emailed_at[&confirmation_id(order)];
        assert!(emailed < given_up, "{order}: emailed only after the hanging endpoint timed out");
    }

    // One delivery's attempts: the same message each time, one after the other (each starts
    // after the one before timed out), each connection closed by hakken at its timeout (the
    // default is 15 s).
    let first_id = hanging.deliveries()[0].headers.id.clone();
    let attempts: Vec<Delivery> = wait_for("three timed-out attempts of the first entry", 30, || {
        let attempts: Vec<Delivery> =
            hanging.deliveries().into_iter().filter(|delivery| delivery.headers.id == first_id).collect();
        (attempts.len() >= 3 && attempts[..3].iter().all(|attempt| attempt.closed_after.is_some())).then_some(attempts)
    });
    for pair in attempts.windows(2) {
        let gap = pair[1].received_at - pair[0].received_at;
        assert!(gap >= HANG_TIMEOUT * 4 / 5, "an attempt {gap:?} after the one before: they overlapped");
        assert_eq!(pair[0].body, pair[1].body, "a retry is the same message");
    }
    for attempt in &attempts[..3] {
        let closed = attempt.closed_after.unwrap();
        let bounds = HANG_TIMEOUT / 2..Duration::from_secs(5);
        assert!(bounds.contains(&closed), "hakken closed a hanging request {closed:?} after sending it");
    }
    let metrics = server.metrics();
    assert!(metric(&metrics, WEBHOOK_RETRIED) >= 3.0, "timeouts count as outcome=\"retry\": {metrics}");
    assert!(metric(&metrics, WEBHOOK_DELIVERED) >= orders.len() as f64, "{metrics}");
    assert_eq!(metric(&metrics, EMAIL_DELIVERED), orders.len() as f64, "{metrics}");
}
