//! The webhook sender against real HTTP servers on 127.0.0.1 started by the test: one
//! answering 500 then 200, one 410, one hanging, one with `Retry-After`; and the signatures
//! it sends checked by the PyPI `standardwebhooks` package (1.1.0), the reference library.
//!
//! The Python check skips (with a message) only when `python3` is missing; with python3
//! present and the package missing it fails, naming the install line.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use hakken_notify::{
    DeliveryOutcome, WebhookEndpoint, WebhookEndpointConfig, WebhookEvent, WebhookMessage, WebhookSender,
    WebhookSenderConfig,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// One request as the test server read it.
#[derive(Debug, Clone)]
struct Received {
    request_line: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

type Log = Arc<Mutex<Vec<Received>>>;
/// When the client closed a connection the server kept silent on.
type Closed = Arc<Mutex<Vec<Instant>>>;

/// What the server does with its n-th request.
#[derive(Debug, Clone)]
enum Answer {
    Status {
        status: u16,
        extra_headers: &'static str,
    },
    /// Read the request, then say nothing (noting when the client closes).
    Hang,
}

/// A tiny HTTP/1.1 server: answers its requests in order from `answers` (the last one
/// repeats) and records them.
async fn serve(answers: Vec<Answer>) -> (String, Log) {
    let (url, log, _) = serve_noting_closes(answers).await;
    (url, log)
}

async fn serve_noting_closes(answers: Vec<Answer>) -> (String, Log, Closed) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/hooks/hakken?token=t0", listener.local_addr().expect("addr"));
    let (received, closed): (Log, Closed) = Default::default();
    let (log, closes) = (received.clone(), closed.clone());
    tokio::spawn(async move {
        let mut served = 0;
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let answer = answers[served.min(answers.len() - 1)].clone();
            served += 1;
            let (log, closes) = (log.clone(), closes.clone());
            tokio::spawn(async move { answer_one(stream, answer, log, closes).await });
        }
    });
    (url, received, closed)
}

async fn answer_one(mut stream: TcpStream, answer: Answer, log: Log, closed: Closed) {
    let Some(request) = read_request(&mut stream).await else { return };
    log.lock().expect("log").push(request);
    match answer {
        Answer::Status { status, extra_headers } => {
            let reply =
                format!("HTTP/1.1 {status} X\r\ncontent-length: 2\r\nconnection: close\r\n{extra_headers}\r\nok");
            let _ = stream.write_all(reply.as_bytes()).await;
            let _ = stream.shutdown().await;
        }
        Answer::Hang => {
            let mut rest = [0u8; 64];
            if let Ok(Ok(0)) = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut rest)).await {
                closed.lock().expect("closed").push(Instant::now());
            }
        }
    }
}

async fn read_request(stream: &mut TcpStream) -> Option<Received> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(position) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            break position;
        }
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8(buffer[..head_end].to_vec()).ok()?;
    let mut lines = head.split("\r\n");
    let request_line = lines.next()?.to_string();
    let headers: HashMap<String, String> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
        .collect();
    let length: usize = headers.get("content-length").and_then(|length| length.parse().ok()).unwrap_or(0);
    let mut body = buffer[head_end + 4..].to_vec();
    while body.len() < length {
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..read]);
    }
    Some(Received { request_line, headers, body })
}

fn endpoint(url: &str) -> WebhookEndpoint {
    WebhookEndpoint::new(&WebhookEndpointConfig {
        url: url.to_string(),
        secret: SECRET.to_string(),
        events: vec!["order.confirmed".to_string()],
    })
    .expect("endpoint")
}

fn message() -> WebhookMessage {
    let event = WebhookEvent::OrderConfirmed {
        event: "demo-2027".into(),
        order: "o3-17".into(),
        tickets: vec!["t3-17-0".into(), "t3-17-1".into()],
    };
    WebhookMessage::new("msg_0000000000000042", &event, 1_815_208_200_000).expect("message")
}

fn sender(timeout: Duration) -> WebhookSender {
    WebhookSender::new(WebhookSenderConfig { connect_timeout: timeout, timeout }).expect("sender")
}

fn now_unix_s() -> i64 {
    let since_epoch = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).expect("after 1970");
    i64::try_from(since_epoch.as_secs()).expect("seconds fit")
}

#[tokio::test]
async fn five_hundred_then_two_hundred_is_a_retry_then_delivered_under_one_id() {
    let (url, received) = serve(vec![
        Answer::Status { status: 500, extra_headers: "" },
        Answer::Status { status: 200, extra_headers: "" },
    ])
    .await;
    let (endpoint, sender) = (endpoint(&url), sender(Duration::from_secs(5)));
    let first = sender.deliver(&endpoint, &message(), now_unix_s()).await;
    assert_eq!(first, DeliveryOutcome::Retry { after: None, detail: "http 500".into() });
    let second = sender.deliver(&endpoint, &message(), now_unix_s() + 1).await;
    assert_eq!(second, DeliveryOutcome::Delivered);

    let received = received.lock().expect("log").clone();
    assert_eq!(received.len(), 2);
    for request in &received {
        assert_eq!(request.request_line, "POST /hooks/hakken?token=t0 HTTP/1.1");
        assert_eq!(request.headers["webhook-id"], "msg_0000000000000042");
        assert_eq!(request.headers["content-type"], "application/json");
        assert_eq!(request.body, message().body());
    }
    // Each attempt is signed at its own time; the id and body are the entry's.
    assert_ne!(received[0].headers["webhook-timestamp"], received[1].headers["webhook-timestamp"]);
    let body: serde_json::Value = serde_json::from_slice(&received[0].body).expect("JSON body");
    assert_eq!(body["type"], "order.confirmed");
    assert_eq!(body["timestamp"], "2027-07-10T08:30:00Z");
    assert_eq!(body["data"]["order"], "o3-17");
}

#[tokio::test]
async fn gone_rejected_and_retry_after() {
    let sender = sender(Duration::from_secs(5));
    let check = |answer: Answer, expected: DeliveryOutcome| {
        let sender = sender.clone();
        async move {
            let (url, _) = serve(vec![answer]).await;
            assert_eq!(sender.deliver(&endpoint(&url), &message(), now_unix_s()).await, expected);
        }
    };
    check(Answer::Status { status: 410, extra_headers: "" }, DeliveryOutcome::Gone).await;
    check(
        Answer::Status { status: 503, extra_headers: "retry-after: 7\r\n" },
        DeliveryOutcome::Retry { after: Some(Duration::from_secs(7)), detail: "http 503".into() },
    )
    .await;
    check(
        Answer::Status { status: 429, extra_headers: "Retry-After: 120\r\n" },
        DeliveryOutcome::Retry { after: Some(Duration::from_secs(120)), detail: "http 429".into() },
    )
    .await;
    check(Answer::Status { status: 422, extra_headers: "" }, DeliveryOutcome::Rejected { detail: "http 422".into() })
        .await;
}

#[tokio::test]
async fn a_hanging_receiver_costs_one_bounded_timeout() {
    let (url, received, closed) = serve_noting_closes(vec![Answer::Hang]).await;
    let started = Instant::now();
    let outcome = sender(Duration::from_millis(300)).deliver(&endpoint(&url), &message(), now_unix_s()).await;
    let waited = started.elapsed();
    assert!(
        matches!(&outcome, DeliveryOutcome::Retry { after: None, detail } if detail.starts_with("timeout")),
        "{outcome:?}"
    );
    assert!(waited >= Duration::from_millis(300) && waited < Duration::from_secs(3), "waited {waited:?}");
    assert_eq!(received.lock().expect("log").len(), 1, "the request reached the receiver");
    // The connection does not outlive the attempt: the receiver sees it closed at once.
    let deadline = Instant::now() + Duration::from_secs(2);
    while closed.lock().expect("closed").is_empty() {
        assert!(Instant::now() < deadline, "the timed-out connection was left open");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_closed_port_is_a_retry() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let url = format!("http://127.0.0.1:{port}/");
    let outcome = sender(Duration::from_secs(2)).deliver(&endpoint(&url), &message(), now_unix_s()).await;
    assert!(matches!(&outcome, DeliveryOutcome::Retry { detail, .. } if detail.starts_with("connect")), "{outcome:?}");
}

/// Verifies received headers and body with the reference library; `Ok(false)` if it refuses.
fn verified_by_standardwebhooks(request: &Received, body: &[u8]) -> Option<bool> {
    const SCRIPT: &str = r#"
import json, sys
try:
    from standardwebhooks.webhooks import Webhook
except ImportError:
    sys.exit(3)
given = json.load(sys.stdin)
headers = {name: given[name] for name in ("webhook-id", "webhook-timestamp", "webhook-signature")}
try:
    Webhook(given["secret"]).verify(given["body"], headers)
except Exception:
    sys.exit(1)
"#;
    let input = serde_json::json!({
        "secret": SECRET,
        "body": String::from_utf8(body.to_vec()).expect("UTF-8 body"),
        "webhook-id": request.headers["webhook-id"],
        "webhook-timestamp": request.headers["webhook-timestamp"],
        "webhook-signature": request.headers["webhook-signature"],
    });
    let mut child = match std::process::Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
    {
        Ok(child) => child,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return None,
        Err(error) => panic!("python3 did not start: {error}"),
    };
    use std::io::Write;
    child.stdin.take().expect("stdin").write_all(input.to_string().as_bytes()).expect("write stdin");
    let status = child.wait().expect("python3 ran");
    match status.code() {
        Some(0) => Some(true),
        Some(1) => Some(false),
        Some(3) => {
            panic!("the PyPI package standardwebhooks is missing: python3 -m pip install standardwebhooks==1.1.0")
        }
        _ => panic!("python3 failed: {status}"),
    }
}

#[tokio::test]
async fn the_reference_library_accepts_the_signatures_sent() {
    let (url, received) = serve(vec![Answer::Status { status: 204, extra_headers: "" }]).await;
    let outcome = sender(Duration::from_secs(5)).deliver(&endpoint(&url), &message(), now_unix_s()).await;
    assert_eq!(outcome, DeliveryOutcome::Delivered);
    let request = received.lock().expect("log")[0].clone();
    match verified_by_standardwebhooks(&request, &request.body) {
        None => eprintln!("SKIPPED: python3 is not installed, so the standardwebhooks check did not run"),
        Some(accepted) => {
            assert!(accepted, "standardwebhooks refused hakken's signature");
            let mut tampered = request.body.clone();
            tampered.extend_from_slice(b" ");
            assert_eq!(verified_by_standardwebhooks(&request, &tampered), Some(false), "a tampered body passed");
        }
    }
}
