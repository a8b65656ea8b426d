//! The notification sinks over real sockets on 127.0.0.1: the SMTP sink spoken to by
//! lettre (hakken's own client, sending hakken's own ticket emails) and by a raw
//! TcpStream script; its outage; the webhook sink; and `run` end to end against a
//! stand-in hakken that emails (most of) the orders it confirms. Each test takes well
//! under a few seconds.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use hakken_loadtest::client::{Pool, PoolConfig, Target};
use hakken_loadtest::driver::{self, OrderConfig, RunConfig, SectionPick, Sections, Workload};
use hakken_loadtest::sinks::smtp::{self, Limits, Message, SinkLog};
use hakken_loadtest::sinks::{NotificationsReport, Outage, SinkConfig, Sinks};
use hakken_loadtest::trivial::{self, Handler};
use hakken_notify::{
    build_message, message_id, DeliveryOutcome, EmailConfig, EmailInput, EmailKind, Language, Place, SmtpMailer,
    SmtpTls, Templates, TicketInput, VenueTimeZone, WebhookSecret,
};
use hyper::{Method, StatusCode, Uri};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

const FROM: &str = "Hakken Tickets <tickets@hakken.example>";
const DOMAIN: &str = "hakken.example";
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn templates() -> Templates {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config/notifications/templates");
    Templates::load(&dir).expect("the shipped templates")
}

/// hakken's confirmation email of `order` (two tickets), as its relay builds it.
fn ticket_email(order: &str) -> EmailInput {
    let ticket = |n: u32| TicketInput {
        id: format!("t-{order}-{n}"),
        place: Place::Seat { section: "S101".into(), row: "B".into(), number: (16 + n).to_string() },
        ticket_type: "Category 1".into(),
        code: format!("HK1.code-of-{order}-{n}"),
        page_url: format!("http://127.0.0.1:8080/v1/tickets/t-{order}-{n}/ticket.html"),
    };
    EmailInput {
        kind: EmailKind::OrderConfirmed,
        event_name: "Hakken Open Air 2027".into(),
        starts_at_ms: 1_815_208_200_000,
        venue_name: "Hakken Stadium".into(),
        venue_time_zone: VenueTimeZone::parse("Europe/Berlin").expect("zone"),
        language: Language::En,
        holder_name: "Alice Example".into(),
        buyer_email: "alice@example.com".into(),
        order_id: order.into(),
        occurrence: None,
        tickets: vec![ticket(0), ticket(1)],
    }
}

fn mailer(address: SocketAddr) -> SmtpMailer {
    SmtpMailer::new(&EmailConfig {
        smtp_host: "127.0.0.1".into(),
        smtp_port: address.port(),
        from: FROM.into(),
        username: None,
        password: None,
        tls: SmtpTls::None,
        timeout: Duration::from_secs(5),
        connections_max: 2,
    })
    .expect("mailer")
}

/// Sends `order`'s confirmation as hakken would; retried while the sink refuses (a
/// pooled connection dropped by an outage fails once).
async fn send_confirmation(mailer: &SmtpMailer, templates: &Templates, order: &str) {
    for _ in 0..20 {
        let message =
            build_message(templates, &ticket_email(order), mailer.from(), SystemTime::now()).expect("message");
        if mailer.send(message).await == DeliveryOutcome::Delivered {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the sink never took the email of {order}");
}

fn sink_config() -> SinkConfig {
    SinkConfig {
        smtp: Some("127.0.0.1:0".parse().expect("address")),
        drain_timeout: Duration::from_millis(300),
        ..SinkConfig::default()
    }
}

/// A raw SMTP sink collecting what it takes, kept in full.
async fn collecting_sink() -> (SocketAddr, Arc<Mutex<Vec<Message>>>, watch::Sender<bool>) {
    let listener = smtp::listen("127.0.0.1:0".parse().expect("address")).expect("listen");
    let address = listener.local_addr().expect("address");
    let taken = Arc::new(Mutex::new(Vec::new()));
    let handler = {
        let taken = taken.clone();
        Arc::new(move |message: Message, _: Instant| taken.lock().expect("lock").push(message))
    };
    let (up, receiver) = watch::channel(true);
    let limits = Limits { keep_messages: true, ..Limits::default() };
    tokio::spawn(smtp::serve(listener, limits, handler, Arc::new(SinkLog::default()), receiver));
    (address, taken, up)
}

#[tokio::test]
async fn lettre_delivers_hakkens_email_byte_for_byte() {
    let (address, taken, _up) = collecting_sink().await;
    let mailer = mailer(address);
    let templates = templates();
    let ticket_message =
        build_message(&templates, &ticket_email("o3-17"), mailer.from(), SystemTime::now()).expect("message");
    // Lines starting with a dot, and one that is only a dot: lettre doubles them, the sink
    // must take the doubling off again.
    let dotted = lettre::Message::builder()
        .from(FROM.parse().expect("from"))
        .to("bob@example.com".parse().expect("to"))
        .subject("dots")
        .message_id(Some("<dots@hakken.example>".into()))
        .body(String::from(".leading\r\n..two\r\n.\r\nlast\r\n"))
        .expect("message");
    let expected = [ticket_message.formatted(), dotted.formatted()];
    assert_eq!(mailer.send(ticket_message).await, DeliveryOutcome::Delivered);
    assert_eq!(mailer.send(dotted).await, DeliveryOutcome::Delivered);

    let taken = taken.lock().expect("lock");
    assert_eq!(taken.len(), 2);
    let ids: Vec<_> = taken.iter().map(|message| message.message_id.as_deref()).collect();
    let confirmation = message_id("o3-17", EmailKind::OrderConfirmed, None, DOMAIN);
    assert_eq!(ids, [Some(confirmation.as_str()), Some("<dots@hakken.example>")]);
    for (message, sent) in taken.iter().zip(&expected) {
        let content = message.content.as_deref().expect("kept");
        // lettre ends the data with CRLF . CRLF after the message: one CRLF more here.
        let content = content.strip_suffix(b"\r\n").expect("the last CRLF");
        assert_eq!(String::from_utf8_lossy(content), String::from_utf8_lossy(sent));
        assert_eq!(message.recipients, 1);
    }
    assert!(taken[0].bytes > 2000, "two inline QR images: {} bytes", taken[0].bytes);
}

/// Reads replies until `count` final lines (`NNN text`) came; returns them all.
async fn replies(stream: &mut TcpStream, count: usize) -> String {
    let mut text = String::new();
    let mut buffer = [0u8; 4096];
    while text.lines().filter(|line| line.as_bytes().get(3) == Some(&b' ')).count() < count {
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer))
            .await
            .expect("a reply in time")
            .expect("read");
        assert!(read > 0, "closed early; so far:\n{text}");
        text.push_str(std::str::from_utf8(&buffer[..read]).expect("replies are text"));
    }
    text
}

fn codes(replies: &str) -> Vec<&str> {
    replies.lines().filter(|line| line.as_bytes().get(3) == Some(&b' ')).map(|line| &line[..3]).collect()
}

#[tokio::test]
async fn a_raw_session_pipelines_splits_unstuffs_and_refuses_long_lines() {
    let (address, taken, _up) = collecting_sink().await;
    let mut stream = TcpStream::connect(address).await.expect("connect");
    assert_eq!(codes(&replies(&mut stream, 1).await), ["220"]);

    // Pipelined: four commands in one write, four replies.
    stream
        .write_all(b"EHLO relay.example\r\nMAIL FROM:<t@hakken.example>\r\nRCPT TO:<a@example.com>\r\nDATA\r\n")
        .await
        .expect("write");
    let answer = replies(&mut stream, 4).await;
    assert_eq!(codes(&answer), ["250", "250", "250", "354"]);
    assert!(answer.contains("250-PIPELINING") || answer.contains("250 PIPELINING"), "{answer}");
    assert!(answer.contains("8BITMIME") && answer.contains("SIZE "), "{answer}");

    // The message split across packets, mid-line and mid-CRLF.
    for piece in [
        &b"Message-ID: <hakken.order_confirmed."[..],
        b"0123456789abcdef0123456789abcdef@hakken.example>\r",
        b"\nSubject: split\r\n\r\n..dotted line\r\n.",
        b".\r\n",
        b"plain\r\n.",
        b"\r\n",
    ] {
        stream.write_all(piece).await.expect("write");
        stream.flush().await.expect("flush");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(codes(&replies(&mut stream, 1).await), ["250"]);

    // RSET drops a transaction; a command line over 512 bytes is refused, the session goes on.
    let long = format!("NOOP {}\r\n", "x".repeat(2000));
    stream
        .write_all(b"MAIL FROM:<t@hakken.example>\r\nRCPT TO:<b@example.com>\r\nRSET\r\nDATA\r\n")
        .await
        .expect("write");
    assert_eq!(codes(&replies(&mut stream, 4).await), ["250", "250", "250", "503"]);
    stream.write_all(long.as_bytes()).await.expect("write");
    stream.write_all(b"NOOP\r\nQUIT\r\n").await.expect("write");
    assert_eq!(codes(&replies(&mut stream, 3).await), ["500", "250", "221"]);
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).await.expect("closed after QUIT");
    assert!(rest.is_empty());

    let taken = taken.lock().expect("lock");
    assert_eq!(taken.len(), 1);
    assert_eq!(
        taken[0].message_id.as_deref(),
        Some("<hakken.order_confirmed.0123456789abcdef0123456789abcdef@hakken.example>")
    );
    let content = String::from_utf8(taken[0].content.clone().expect("kept")).expect("text");
    assert!(content.ends_with("\r\n\r\n.dotted line\r\n.\r\nplain\r\n"), "{content:?}");
}

#[tokio::test]
async fn emails_are_matched_counted_and_judged() {
    let sinks = Sinks::start(&sink_config()).expect("start").expect("a sink");
    let address = sinks.smtp_address().expect("smtp");
    let (mailer, templates) = (mailer(address), templates());
    sinks.acknowledged("o1");
    sinks.acknowledged("o2");
    send_confirmation(&mailer, &templates, "o1").await;
    // Emailed before its acknowledgement was read: matched once it is.
    send_confirmation(&mailer, &templates, "o3").await;
    sinks.acknowledged("o3");
    send_confirmation(&mailer, &templates, "o1").await; // at least once: a duplicate
    send_confirmation(&mailer, &templates, "o9").await; // never acknowledged
    sinks.in_doubt();
    // o2 never comes: the drain waits its timeout, then fails the verdict.
    let started = Instant::now();
    let report = sinks.finish(Instant::now(), None, std::future::pending()).await.expect("report");
    assert!(started.elapsed() >= Duration::from_millis(300), "waited the drain timeout");

    let email = report.email.as_ref().expect("email report");
    assert_eq!(email.domain.as_deref(), Some(DOMAIN));
    let orders = &email.orders;
    assert_eq!((orders.received, orders.acknowledged_orders, orders.told_orders, orders.never_told), (4, 3, 2, 1));
    assert_eq!((orders.duplicates, orders.unexpected), (1, 1));
    assert_eq!(orders.lag_us.count, 2);
    assert_eq!(report.confirms_in_doubt, 1);
    assert!(!report.passed());
    assert_eq!(report.failures.len(), 1, "{:?}", report.failures);
    assert!(report.failures[0].contains("1 of 3 acknowledged orders never emailed"), "{}", report.failures[0]);
    assert!(report.warnings.is_empty(), "one unexpected, one in doubt: {:?}", report.warnings);
    let text = report.to_string();
    assert!(text.contains("FAIL notifications"), "{text}");
    assert!(!text.contains("alice@example.com"), "no buyer address in the report");
    assert!(!serde_json::to_string(&report).expect("json").contains("alice"), "nor in the JSON");
}

#[tokio::test]
async fn all_told_passes_at_once() {
    let sinks = Sinks::start(&SinkConfig { drain_timeout: Duration::from_secs(30), ..sink_config() })
        .expect("start")
        .expect("a sink");
    let (mailer, templates) = (mailer(sinks.smtp_address().expect("smtp")), templates());
    for order in ["o1", "o2"] {
        sinks.acknowledged(order);
        send_confirmation(&mailer, &templates, order).await;
    }
    let started = Instant::now();
    let report = sinks.finish(Instant::now(), Some(std::process::id()), std::future::pending()).await.expect("report");
    assert!(started.elapsed() < Duration::from_secs(5), "no waiting once everything came");
    assert!(report.passed(), "{report}");
    assert_eq!(report.email.as_ref().expect("email").orders.told_orders, 2);
    assert!(report.after_load.drained && report.after_load.server_cpu_seconds.is_some());
    assert!(report.to_string().contains("notifications: PASS"));
}

#[tokio::test]
async fn an_outage_refuses_and_drops_then_listens_again_on_the_same_port() {
    let config = SinkConfig {
        smtp_outage: Some(Outage { start: Duration::from_millis(150), end: Duration::from_millis(600) }),
        drain_timeout: Duration::from_secs(10),
        ..sink_config()
    };
    let sinks = Sinks::start(&config).expect("start").expect("a sink");
    let address = sinks.smtp_address().expect("smtp");
    let window_start = Instant::now();
    sinks.begin(window_start);
    let mut open = TcpStream::connect(address).await.expect("up before the outage");
    assert_eq!(codes(&replies(&mut open, 1).await), ["220"]);
    sinks.acknowledged("o1");

    tokio::time::sleep_until(window_start + Duration::from_millis(300)).await;
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(1), open.read_to_end(&mut rest)).await.expect("dropped");
    assert!(closed.is_err() || rest.is_empty(), "the open session was dropped");
    let refused = TcpStream::connect(address).await;
    assert!(refused.is_err(), "connecting during the outage is refused");
    sinks.acknowledged("o2");
    sinks.acknowledged("o3");

    tokio::time::sleep_until(window_start + Duration::from_millis(700)).await;
    let mut again = TcpStream::connect(address).await.expect("listening again on the same port");
    assert_eq!(codes(&replies(&mut again, 1).await), ["220"]);
    let (mailer, templates) = (mailer(address), templates());
    for order in ["o1", "o2", "o3"] {
        send_confirmation(&mailer, &templates, order).await;
    }
    let report = sinks.finish(Instant::now(), None, std::future::pending()).await.expect("report");
    assert!(report.passed(), "{report}");

    let outage = report.outage.as_ref().expect("outage report");
    let down = outage.down_at_seconds.expect("went down");
    let up = outage.up_at_seconds.expect("came back");
    assert!((0.14..0.3).contains(&down) && (0.59..0.7).contains(&up), "{outage:?}");
    assert_eq!(outage.connections_dropped, 1);
    let after = report.after_outage.as_ref().expect("the backlog after the outage");
    assert_eq!((after.backlog, after.drained, after.emails), (3, true, 3), "{after:?}");
    assert!(after.emails_per_second > 0.0);
    assert!(report.to_string().contains("listening again at"));
}

/// POSTs `body` to the webhook sink, signed with `secret` under `id`; returns the status.
async fn post_webhook(pool: &Pool, id: &str, body: &str, secret: &str) -> StatusCode {
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).expect("after 1970").as_secs() as i64;
    let signed = WebhookSecret::parse(secret).expect("secret").sign(id, now, body.as_bytes());
    let mut request =
        pool.request(Method::POST, Uri::from_static("/hooks/hakken"), Some(Bytes::from(body.to_string())));
    for (name, value) in
        [("webhook-id", &signed.id), ("webhook-timestamp", &signed.timestamp), ("webhook-signature", &signed.signature)]
    {
        request.headers_mut().insert(name, value.parse().expect("header"));
    }
    pool.send_within(request, Duration::from_secs(5)).await.expect("in time").expect("a reply").status
}

fn confirmed(order: &str) -> String {
    format!(
        r#"{{"type":"order.confirmed","timestamp":"2027-07-10T08:30:00Z","data":{{"event":"e","order":"{order}","tickets":["t1"]}}}}"#
    )
}

#[tokio::test]
async fn webhooks_are_verified_matched_and_deduplicated() {
    let config = SinkConfig {
        smtp: None,
        webhook: Some("127.0.0.1:0".parse().expect("address")),
        webhook_secret: Some(SECRET.into()),
        drain_timeout: Duration::from_millis(200),
        ..SinkConfig::default()
    };
    let sinks = Sinks::start(&config).expect("start").expect("a sink");
    let url = format!("http://{}", sinks.webhook_address().expect("webhook"));
    let pool = Pool::new(
        Target::resolve(&url).await.expect("target"),
        PoolConfig { connections_max: 2, connect_timeout: Duration::from_secs(1) },
    );
    for order in ["o1", "o2", "o3"] {
        sinks.acknowledged(order);
    }
    assert_eq!(post_webhook(&pool, "order-confirmed_o1", &confirmed("o1"), SECRET).await, StatusCode::OK);
    assert_eq!(post_webhook(&pool, "order-confirmed_o1", &confirmed("o1"), SECRET).await, StatusCode::OK);
    assert_eq!(post_webhook(&pool, "order-confirmed_o2", &confirmed("o2"), SECRET).await, StatusCode::OK);
    assert_eq!(post_webhook(&pool, "order-confirmed_o8", &confirmed("o8"), SECRET).await, StatusCode::OK);
    let other_secret = "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    assert_eq!(
        post_webhook(&pool, "order-confirmed_o3", &confirmed("o3"), other_secret).await,
        StatusCode::UNAUTHORIZED
    );
    let report = sinks.finish(Instant::now(), None, std::future::pending()).await.expect("report");

    let webhook = report.webhook.as_ref().expect("webhook report");
    assert!(webhook.signatures_checked);
    let orders = &webhook.orders;
    assert_eq!((orders.received, orders.told_orders, orders.never_told), (4, 2, 1));
    assert_eq!((orders.duplicates, orders.unexpected, webhook.bad_signature), (1, 1, 1));
    assert!(!report.passed());
    assert_eq!(report.failures.len(), 2, "o3 never told, a bad signature: {:?}", report.failures);
}

/// A stand-in hakken: holds always granted, confirms always acknowledged (order `o-{n}`
/// of hold `h-{n}`); it emails each confirmed order to the sink, except every fifth.
fn emailing_hakken(mailer: SmtpMailer, templates: Arc<Templates>, sent: Arc<AtomicU64>) -> Handler {
    let holds = AtomicU64::new(0);
    Arc::new(move |method: &Method, path: &str| {
        let json = |status: StatusCode, body: String| (status, Bytes::from(body));
        match (method, path) {
            (&Method::POST, "/v1/events/demo-2027/holds") => {
                let n = holds.fetch_add(1, Ordering::Relaxed);
                json(StatusCode::CREATED, format!(r#"{{"hold": {{"id": "h-{n}", "seats": ["a"], "quantity": 1}}}}"#))
            }
            (&Method::POST, path) if path.starts_with("/v1/holds/h-") && path.ends_with("/confirm") => {
                let n: u64 = path["/v1/holds/h-".len()..path.len() - "/confirm".len()].parse().expect("hold number");
                let order = format!("o-{n}");
                if n % 5 != 4 {
                    let (mailer, templates, sent, order) =
                        (mailer.clone(), templates.clone(), sent.clone(), order.clone());
                    tokio::spawn(async move {
                        send_confirmation(&mailer, &templates, &order).await;
                        sent.fetch_add(1, Ordering::Relaxed);
                    });
                }
                json(
                    StatusCode::CREATED,
                    format!(r#"{{"order": {{"id": "{order}", "section": "S1", "tickets": [{{"id": "t-{n}"}}]}}}}"#),
                )
            }
            _ => json(StatusCode::NOT_FOUND, r#"{"error": {"code": "not_found", "message": "no"}}"#.into()),
        }
    })
}

fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address")
}

#[tokio::test]
async fn run_reports_the_lag_and_fails_on_orders_never_emailed() {
    let smtp = free_port();
    let sent = Arc::new(AtomicU64::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let target = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(trivial::serve(listener, emailing_hakken(mailer(smtp), Arc::new(templates()), sent.clone())));
    let config = RunConfig {
        target,
        workload: Workload::Orders(OrderConfig {
            event: "demo-2027".into(),
            sections: Sections::List(vec!["S1".into()]),
            section_pick: SectionPick::RoundRobin,
            quantity: 1,
            customers: None,
            idempotency: false,
            pay: false,
            hold_checkout: false,
            sales_token: None,
            payment_poll_timeout: Duration::from_secs(1),
        }),
        rate_per_second: 100.0,
        warmup: Duration::from_millis(100),
        duration: Duration::from_millis(400),
        connections: 4,
        in_flight_max: 1000,
        request_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(1),
        drain_timeout: Duration::from_secs(2),
        run_id: Some("sinks".into()),
        progress: false,
        threads: 1,
        server_pid: None,
        sinks: SinkConfig { smtp: Some(smtp), drain_timeout: Duration::from_secs(3), ..SinkConfig::default() },
    };
    let report = driver::run(config, std::future::pending()).await.expect("run");
    let notifications: &NotificationsReport = report.notifications.as_ref().expect("notifications");
    let email = notifications.email.as_ref().expect("email");
    // 50 arrivals (warmup included), every fifth order never emailed.
    let orders = &email.orders;
    assert_eq!(orders.acknowledged_orders, 50);
    assert_eq!((orders.told_orders, orders.never_told), (40, 10));
    assert_eq!(orders.received, sent.load(Ordering::Relaxed));
    assert_eq!((orders.duplicates, orders.unexpected), (0, 0));
    assert_eq!(orders.lag_us.count, 40);
    assert!(orders.lag_us.p50 <= orders.lag_us.max && orders.lag_us.max < 3_000_000, "{:?}", orders.lag_us);
    assert!(!notifications.after_load.drained);
    assert!(!report.passed(), "10 orders never emailed");
    let json = serde_json::to_value(&report).expect("json");
    assert_eq!(json["notifications"]["email"]["never_told"], 10);
    assert!(report.to_string().contains("FAIL notifications: 10 of 50 acknowledged orders never emailed"), "{report}");
}
