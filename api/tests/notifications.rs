//! Notifications end to end, real parts only: `hakken serve` with an SMTP server (aiosmtpd
//! on 127.0.0.1, started here) and two webhook receivers on loopback. A sale's ticket
//! email arrives, its inline QR decodes to a code the gate admits; the webhook receiver
//! that fails once gets the order after a retry with the same `webhook-id` and a valid
//! signature, then the check-in; the receiver that refuses makes a dead letter that an
//! admin lists and retries.
//!
//! Skips (with a message) only when `python3` is missing; with python3 present and aiosmtpd
//! missing it fails, naming the install line.

#[path = "support/notify.rs"]
mod notify;
#[path = "../notify/tests/support/smtp.rs"]
mod smtp;
mod support;

use std::time::Duration;

use hakken_notify::webhook_sign::{verify, WebhookSecret};
use notify::{config_file, start_server, wait_for, Answer, Delivery, Receiver, SECRET};
use serde_json::{json, Value};
use smtp::{qr_codes, text_part, SmtpServer};
use support::EVENT;

#[test]
fn a_sale_is_emailed_with_a_scannable_qr_and_told_to_webhooks_with_retries_and_dead_letters() {
    let Some(smtp) = SmtpServer::start() else {
        eprintln!("SKIPPED: python3 is not installed, so the notifications test (aiosmtpd) did not run");
        return;
    };
    let flaky = Receiver::start(vec![Answer::Status(500), Answer::Status(200)]);
    let refusing = Receiver::start(vec![Answer::Status(422)]);
    let dir = tempfile::tempdir().unwrap();
    let webhooks: [(&str, &[&str]); 2] =
        [(&flaky.url, &["order.confirmed", "ticket.checked_in"]), (&refusing.url, &["order.confirmed"])];
    let config = config_file(dir.path(), &webhooks);
    let server = start_server(
        Some(config),
        smtp.port,
        &[("HAKKEN_NOTIFICATIONS_RELAY_FIRST_RETRY_MS", "200"), ("HAKKEN_NOTIFICATIONS_RELAY_ATTEMPTS_MAX", "2")],
    );

    let hold = server.hold(json!({"customer": "ana", "section": "S101", "quantity": 2}));
    let order = server.confirm(hold["id"].as_str().unwrap(), "ana");
    let order_id = order["id"].as_str().unwrap().to_string();

    // The email: to the buyer, naming the order, one QR per ticket that the gate admits.
    let raw = wait_for("the ticket email arrives", 30, || smtp.emails().into_iter().next());
    let mail = mailparse::parse_mail(&raw).unwrap();
    use mailparse::MailHeaderMap;
    let to = mail.headers.get_first_value("To").unwrap();
    assert!(to.contains("ana@example.com"), "To: {to}");
    let message_id = mail.headers.get_first_value("Message-ID").unwrap();
    assert!(
        message_id.starts_with("<hakken.order_confirmed.") && message_id.ends_with("@example.com>"),
        "{message_id}"
    );
    let text = text_part(&mail).expect("a text part");
    assert!(text.contains(&order_id) && text.contains("Buyer ana"), "{text}");
    assert!(text.contains("Row "), "the place as a person reads it: {text}");
    let codes = qr_codes(&mail);
    assert_eq!(codes.len(), 2, "one QR per ticket");
    let scan = server.gate("POST", "/v1/scan", Some(json!({"code": codes[0], "gate": "north-1", "scan_id": "s-1"})));
    assert_eq!((scan.status, scan.json["result"].as_str()), (200, Some("admitted")), "{}", scan.text);

    // The flaky receiver: 500, then the same message again (same id), signed.
    let confirmed = wait_for("order.confirmed delivered after a retry", 30, || {
        let confirmed = of_kind(&flaky.deliveries(), "order.confirmed");
        (confirmed.iter().any(|delivery| delivery.answered == Some(200))).then_some(confirmed)
    });
    assert_eq!(confirmed.iter().map(|d| d.answered).collect::<Vec<_>>(), [Some(500), Some(200)]);
    assert_eq!(confirmed[0].headers.id, confirmed[1].headers.id, "a retry is the same message");
    assert_eq!(confirmed[0].body, confirmed[1].body);
    let secret = WebhookSecret::parse(SECRET).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    for delivery in &confirmed {
        verify(std::slice::from_ref(&secret), &delivery.headers, &delivery.body, now, 300).expect("signed");
    }
    let payload: Value = serde_json::from_slice(&confirmed[1].body).unwrap();
    assert_eq!(payload["data"]["order"], order_id.as_str());
    assert_eq!(payload["data"]["event"], EVENT);
    assert!(!String::from_utf8_lossy(&confirmed[1].body).contains("example.com"), "no personal data");
    wait_for("ticket.checked_in delivered", 30, || {
        let checked_in = of_kind(&flaky.deliveries(), "ticket.checked_in");
        checked_in.iter().any(|delivery| delivery.answered == Some(200)).then_some(())
    });

    // The refusing receiver: a dead letter, listed; an admin's retry tries it again.
    let dead = wait_for("a dead letter", 30, || {
        let page = server.admin("GET", "/v1/admin/outbox?state=dead", None);
        assert_eq!(page.status, 200, "{}", page.text);
        page.json["entries"].as_array().filter(|entries| !entries.is_empty()).map(|entries| entries[0].clone())
    });
    assert_eq!(dead["kind"], "order_confirmed");
    assert_eq!(dead["order"], order_id.as_str());
    let deliveries = dead["deliveries"].as_array().unwrap();
    let failed = deliveries.iter().find(|d| d["state"] == "dead").expect("the refusing endpoint's delivery");
    assert!(failed["destination"].as_str().unwrap().starts_with("webhook http://127.0.0.1"), "{failed}");
    assert!(failed["last_outcome"].as_str().unwrap().starts_with("rejected"), "{failed}");
    assert!(deliveries.iter().any(|d| d["destination"] == "email" && d["state"] == "delivered"), "{dead}");
    let refused_before = refusing.count();
    assert_eq!(refused_before, 1, "a 422 is final: not retried");
    let id = dead["id"].as_u64().unwrap();
    let retried = server.admin("POST", &format!("/v1/admin/outbox/{id}/retry"), None);
    assert_eq!(retried.status, 200, "{}", retried.text);
    wait_for("the retried delivery is attempted", 30, || (refusing.count() > refused_before).then_some(()));
    // Only the refused destination was tried again: still one email.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(smtp.emails().len(), 1, "the delivered email is not sent again");

    // Bad input, and who may ask.
    assert_eq!(server.admin("GET", "/v1/admin/outbox?state=bogus", None).code(), "invalid_state");
    assert_eq!(server.admin("GET", "/v1/admin/outbox?limit=0", None).code(), "invalid_limit");
    assert_eq!(server.admin("POST", "/v1/admin/outbox/999999/retry", None).status, 404);
    assert_eq!(server.admin("POST", "/v1/admin/outbox/x/retry", None).status, 404);
    assert_eq!(server.get("/v1/admin/outbox").status, 401);

    let metrics = server.metrics();
    assert!(
        metrics.contains("hakken_notification_attempts_total{channel=\"email\",outcome=\"delivered\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("hakken_notification_attempts_total{channel=\"webhook\",outcome=\"retry\"}"));
    assert!(metrics.contains("hakken_notification_delivery_latency_seconds_bucket{channel=\"email\""));
    assert!(!metrics.contains("ana@example.com"));
}

/// Kill -9 right after confirms are acknowledged, a few cycles: after each restart every
/// acknowledged order's email arrives, and every email is of an order the store has.
#[test]
fn every_acknowledged_order_is_emailed_across_kill_9() {
    let Some(smtp) = SmtpServer::start() else {
        eprintln!("SKIPPED: python3 is not installed, so the notifications crash test (aiosmtpd) did not run");
        return;
    };
    let mut server = start_server(
        None,
        smtp.port,
        &[("HAKKEN_HTTP_CUSTOMER_REQUESTS_PER_S", "0"), ("HAKKEN_HTTP_CUSTOMER_REQUESTS_BURST", "0")],
    );
    let cycles: usize = std::env::var("HAKKEN_CRASH_CYCLES").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let mut acknowledged = Vec::new();
    for cycle in 0..cycles {
        for n in 0..5 {
            let customer = format!("c{cycle}-{n}");
            let reply = server.post(
                &format!("/v1/events/{EVENT}/holds"),
                json!({"customer": customer, "section": "S102", "quantity": 1}),
            );
            assert_eq!(reply.status, 201, "{}", reply.text);
            let hold = reply.json["hold"]["id"].as_str().unwrap().to_string();
            let order = server.confirm(&hold, &customer);
            acknowledged.push(order["id"].as_str().unwrap().to_string());
        }
        // Killed at once after the last acknowledgement: the relay had no time to send all.
        server.kill9();
        server.spawn();
    }
    let order_in = regex::Regex::new(r"\bo[0-9a-f]+-[0-9a-f]+\b").unwrap();
    let emailed = wait_for("every acknowledged order's email", 60, || {
        let emailed: std::collections::BTreeSet<String> = smtp
            .emails()
            .iter()
            .filter_map(|raw| text_part(&mailparse::parse_mail(raw).unwrap()))
            .filter_map(|text| order_in.find(&text).map(|found| found.as_str().to_string()))
            .collect();
        acknowledged.iter().all(|order| emailed.contains(order)).then_some(emailed)
    });
    for order in &emailed {
        let reply = server.admin("GET", &format!("/v1/orders/{order}"), None);
        assert_eq!(reply.status, 200, "an email for an order the store does not have: {order}: {}", reply.text);
    }
}

fn of_kind(deliveries: &[Delivery], kind: &str) -> Vec<Delivery> {
    deliveries.iter().filter(|delivery| delivery.kind() == kind).cloned().collect()
}
