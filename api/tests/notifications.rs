//! Notifications end to end, real parts only: `hakken serve` with an SMTP server (aiosmtpd
//! on 127.0.0.1, started here) and two webhook receivers on loopback. A sale's ticket
//! email arrives, its inline QR decodes to a code the gate admits; the webhook receiver
//! that fails once gets the order after a retry with the same `webhook-id` and a valid
//! signature, then the check-in; the receiver that refuses makes a dead letter that an
//! admin lists and retries.
//!
//! Skips (with a message) only when `python3` is missing; with python3 present and aiosmtpd
//! missing it fails, naming the install line.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hakken_notify::webhook_sign::{verify, SignedHeaders, WebhookSecret};
use serde_json::{json, Value};
use support::{repo_root, Server, EVENT};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

struct SmtpServer {
    child: Child,
    port: u16,
    maildir: tempfile::TempDir,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_smtp_server() -> Option<SmtpServer> {
    match Command::new("python3").args(["-c", "import aiosmtpd"]).status() {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return None,
        Err(error) => panic!("python3 did not start: {error}"),
        Ok(status) if !status.success() => {
            panic!("aiosmtpd is missing: apt-get install python3-aiosmtpd, or python3 -m pip install aiosmtpd==1.4.6")
        }
        Ok(_) => {}
    }
    let maildir = tempfile::tempdir().expect("maildir");
    for folder in ["tmp", "new", "cur"] {
        std::fs::create_dir(maildir.path().join(folder)).expect("maildir folder");
    }
    let port = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let child = Command::new("python3")
        .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Mailbox"])
        .arg(maildir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start aiosmtpd");
    let deadline = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "aiosmtpd did not listen on 127.0.0.1:{port} within 15 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(SmtpServer { child, port, maildir })
}

/// One request a receiver got: its webhook headers and body, and the status it answered.
#[derive(Clone, Debug)]
struct Delivery {
    headers: SignedHeaders,
    body: Vec<u8>,
    answered: u16,
}

/// A webhook receiver on loopback answering each request with the next status of `script`
/// (the last one repeats).
fn start_receiver(script: Vec<u16>) -> (String, Arc<Mutex<Vec<Delivery>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    let got = Arc::new(Mutex::new(Vec::new()));
    let log = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut headers = Vec::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((name, value)) = line.trim_end().split_once(':') {
                    headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
                }
            }
            let header = |name: &str| headers.iter().find(|(key, _)| key == name).map(|(_, v)| v.clone());
            let length: usize = header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_err() {
                continue;
            }
            let mut log = log.lock().unwrap();
            let answered = script[log.len().min(script.len() - 1)];
            log.push(Delivery {
                headers: SignedHeaders {
                    id: header("webhook-id").unwrap_or_default(),
                    timestamp: header("webhook-timestamp").unwrap_or_default(),
                    signature: header("webhook-signature").unwrap_or_default(),
                },
                body,
                answered,
            });
            let _ = write!(stream, "HTTP/1.1 {answered} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    (url, got)
}

fn config_file(dir: &Path, webhooks: &[(&str, &[&str])]) -> PathBuf {
    let mut text = std::fs::read_to_string(repo_root().join("config/hakken.toml")).unwrap();
    for (url, events) in webhooks {
        let events: Vec<String> = events.iter().map(|event| format!("{event:?}")).collect();
        text.push_str(&format!(
            "\n[[notifications.webhooks]]\nurl = {url:?}\nsecret = {SECRET:?}\nevents = [{}]\n",
            events.join(", ")
        ));
    }
    // The file's relative paths stay right: it is written beside the shipped one's folders.
    let path = dir.join("hakken.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn wait_for<T>(what: &str, seconds: u64, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        if let Some(found) = probe() {
            return found;
        }
        assert!(Instant::now() < deadline, "{what} within {seconds} s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn emails(maildir: &Path) -> Vec<Vec<u8>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(maildir.join("new")).unwrap().map(|e| e.unwrap().path()).collect();
    paths.sort();
    paths.iter().map(|path| std::fs::read(path).unwrap()).collect()
}

fn qr_codes(part: &mailparse::ParsedMail<'_>, found: &mut Vec<String>) {
    if part.ctype.mimetype == "image/png" {
        let png_bytes = part.get_body_raw().unwrap();
        let mut decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
        decoder.set_transformations(png::Transformations::EXPAND);
        let mut reader = decoder.read_info().unwrap();
        let mut luma = vec![0; reader.output_buffer_size().unwrap()];
        let frame = reader.next_frame(&mut luma).unwrap();
        let width = frame.width as usize;
        let mut image =
            rqrr::PreparedImage::prepare_from_greyscale(width, frame.height as usize, |x, y| luma[y * width + x]);
        found.extend(image.detect_grids().iter().map(|grid| grid.decode().unwrap().1));
    }
    for sub in &part.subparts {
        qr_codes(sub, found);
    }
}

fn text_part(part: &mailparse::ParsedMail<'_>) -> Option<String> {
    if part.ctype.mimetype == "text/plain" {
        return part.get_body().ok();
    }
    part.subparts.iter().find_map(text_part)
}

fn of_kind<'a>(deliveries: &'a [Delivery], kind: &str) -> Vec<&'a Delivery> {
    deliveries
        .iter()
        .filter(|delivery| serde_json::from_slice::<Value>(&delivery.body).unwrap()["type"] == kind)
        .collect()
}

#[test]
fn a_sale_is_emailed_with_a_scannable_qr_and_told_to_webhooks_with_retries_and_dead_letters() {
    let Some(smtp) = start_smtp_server() else {
        eprintln!("SKIPPED: python3 is not installed, so the notifications test (aiosmtpd) did not run");
        return;
    };
    let (flaky_url, flaky) = start_receiver(vec![500, 200]);
    let (refusing_url, refusing) = start_receiver(vec![422]);
    let dir = tempfile::tempdir().unwrap();
    let webhooks: [(&str, &[&str]); 2] =
        [(&flaky_url, &["order.confirmed", "ticket.checked_in"]), (&refusing_url, &["order.confirmed"])];
    let config = config_file(dir.path(), &webhooks);
    let port = smtp.port.to_string();
    let config_dir = repo_root().join("config");
    let venues = config_dir.join("venues/hakken-stadium.toml");
    let events = config_dir.join("events/demo.toml");
    let templates = config_dir.join("notifications/templates");
    let server = Server::start_with_config(
        Some(config),
        &[
            ("HAKKEN_VENUES", venues.to_str().unwrap()),
            ("HAKKEN_EVENTS", events.to_str().unwrap()),
            ("HAKKEN_NOTIFICATIONS_TEMPLATES_DIR", templates.to_str().unwrap()),
            ("HAKKEN_NOTIFICATIONS_EMAIL_SMTP_HOST", "127.0.0.1"),
            ("HAKKEN_NOTIFICATIONS_EMAIL_SMTP_PORT", &port),
            ("HAKKEN_NOTIFICATIONS_EMAIL_TLS", "none"),
            ("HAKKEN_NOTIFICATIONS_RELAY_FIRST_RETRY_MS", "200"),
            ("HAKKEN_NOTIFICATIONS_RELAY_ATTEMPTS_MAX", "2"),
        ],
    );

    let hold = server.hold(json!({"customer": "ana", "section": "S101", "quantity": 2}));
    let order = server.confirm(hold["id"].as_str().unwrap(), "ana");
    let order_id = order["id"].as_str().unwrap().to_string();

    // The email: to the buyer, naming the order, one QR per ticket that the gate admits.
    let raw = wait_for("the ticket email arrives", 30, || emails(smtp.maildir.path()).into_iter().next());
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
    let mut codes = Vec::new();
    qr_codes(&mail, &mut codes);
    assert_eq!(codes.len(), 2, "one QR per ticket");
    let scan = server.gate("POST", "/v1/scan", Some(json!({"code": codes[0], "gate": "north-1", "scan_id": "s-1"})));
    assert_eq!((scan.status, scan.json["result"].as_str()), (200, Some("admitted")), "{}", scan.text);

    // The flaky receiver: 500, then the same message again (same id), signed.
    let confirmed = wait_for("order.confirmed delivered after a retry", 30, || {
        let got = flaky.lock().unwrap().clone();
        let confirmed: Vec<Delivery> = of_kind(&got, "order.confirmed").into_iter().cloned().collect();
        (confirmed.iter().any(|delivery| delivery.answered == 200)).then_some(confirmed)
    });
    assert_eq!(confirmed.iter().map(|d| d.answered).collect::<Vec<_>>(), [500, 200]);
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
        let got = flaky.lock().unwrap().clone();
        let checked_in = of_kind(&got, "ticket.checked_in");
        checked_in.iter().any(|delivery| delivery.answered == 200).then_some(())
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
    let refused_before = refusing.lock().unwrap().len();
    assert_eq!(refused_before, 1, "a 422 is final: not retried");
    let id = dead["id"].as_u64().unwrap();
    let retried = server.admin("POST", &format!("/v1/admin/outbox/{id}/retry"), None);
    assert_eq!(retried.status, 200, "{}", retried.text);
    wait_for("the retried delivery is attempted", 30, || {
        (refusing.lock().unwrap().len() > refused_before).then_some(())
    });
    // Only the refused destination was tried again: still one email.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(emails(smtp.maildir.path()).len(), 1, "the delivered email is not sent again");

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
    let Some(smtp) = start_smtp_server() else {
        eprintln!("SKIPPED: python3 is not installed, so the notifications crash test (aiosmtpd) did not run");
        return;
    };
    let config_dir = repo_root().join("config");
    let templates = config_dir.join("notifications/templates");
    let port = smtp.port.to_string();
    let mut server = Server::start(&[
        ("HAKKEN_NOTIFICATIONS_TEMPLATES_DIR", templates.to_str().unwrap()),
        ("HAKKEN_NOTIFICATIONS_EMAIL_SMTP_HOST", "127.0.0.1"),
        ("HAKKEN_NOTIFICATIONS_EMAIL_SMTP_PORT", &port),
        ("HAKKEN_NOTIFICATIONS_EMAIL_TLS", "none"),
        ("HAKKEN_HTTP_CUSTOMER_REQUESTS_PER_S", "0"),
        ("HAKKEN_HTTP_CUSTOMER_REQUESTS_BURST", "0"),
    ]);
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
        let emailed: std::collections::BTreeSet<String> = emails(smtp.maildir.path())
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
