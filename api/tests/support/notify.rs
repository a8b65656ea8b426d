//! What the API's notification tests share (`notifications.rs`, `notifications_faults.rs`
//! include this file with `#[path]`, beside `mod support;`): webhook receivers on
//! loopback that answer as scripted or hang, a config file listing webhook endpoints, a
//! `hakken serve` pointed at the test SMTP server, a bounded poll, and metric reading.

// Each test binary uses part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use hakken_notify::webhook_sign::SignedHeaders;
use serde_json::Value;

use crate::support::{repo_root, Server};

pub(crate) const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// The sender of the tests' emails (the shipped config's); its domain ends every Message-ID.
pub(crate) const FROM: &str = "Hakken Tickets <tickets@example.com>";
pub(crate) const FROM_DOMAIN: &str = "example.com";

/// A hanging request's thread gives up waiting for hakken to close it after this long.
const HANG_WAIT_MAX: Duration = Duration::from_secs(120);

/// What a receiver does with a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    /// Answer with this status.
    Status(u16),
    /// Read the request, then say nothing until the client closes the connection.
    Hang,
}

/// One request a receiver got.
#[derive(Clone, Debug)]
pub(crate) struct Delivery {
    pub(crate) headers: SignedHeaders,
    pub(crate) body: Vec<u8>,
    /// The status answered; `None` when it was left hanging.
    pub(crate) answered: Option<u16>,
    /// When the request had been read.
    pub(crate) received_at: Instant,
    /// The same on the wall clock, to compare with the time a Maildir file was written.
    pub(crate) received_wall: SystemTime,
    /// Of a hanging request: how long after `received_at` hakken closed the connection;
    /// `None` while it is open.
    pub(crate) closed_after: Option<Duration>,
}

impl Delivery {
    /// The payload's `type` (`order.confirmed`, ...).
    pub(crate) fn kind(&self) -> String {
        self.json()["type"].as_str().unwrap_or_default().to_string()
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON webhook body")
    }

    /// The payload's `data.order` (empty when it names none).
    pub(crate) fn order(&self) -> String {
        self.json()["data"]["order"].as_str().unwrap_or_default().to_string()
    }

    /// Of a hanging request hakken closed: when, on the wall clock.
    pub(crate) fn closed_wall(&self) -> Option<SystemTime> {
        Some(self.received_wall + self.closed_after?)
    }
}

/// A webhook receiver on 127.0.0.1 answering each request with the next [`Answer`] of its
/// script (the last one repeats). Every connection has a thread of its own, so one left
/// hanging holds up no other.
pub(crate) struct Receiver {
    pub(crate) url: String,
    log: Arc<Mutex<Vec<Delivery>>>,
}

impl Receiver {
    pub(crate) fn start(script: Vec<Answer>) -> Receiver {
        assert!(!script.is_empty(), "a receiver needs an answer");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}/hooks", listener.local_addr().expect("addr"));
        let log = Arc::new(Mutex::new(Vec::new()));
        let deliveries = log.clone();
        std::thread::spawn(move || {
            let script = Arc::new(script);
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (script, log) = (script.clone(), deliveries.clone());
                std::thread::spawn(move || answer_one(stream, &script, &log));
            }
        });
        Receiver { url, log }
    }

    /// Every request so far, in the order they were read.
    pub(crate) fn deliveries(&self) -> Vec<Delivery> {
        self.log.lock().unwrap().clone()
    }

    pub(crate) fn count(&self) -> usize {
        self.log.lock().unwrap().len()
    }

    /// The `data.order` of each `order.confirmed` received (repeats included).
    pub(crate) fn confirmed_orders(&self) -> Vec<String> {
        self.deliveries()
            .iter()
            .filter(|delivery| delivery.kind() == "order.confirmed")
            .map(|delivery| delivery.order())
            .collect()
    }
}

fn answer_one(mut stream: TcpStream, script: &[Answer], log: &Mutex<Vec<Delivery>>) {
    let Some((headers, body)) = read_request(&stream) else { return };
    let header = |name: &str| headers.iter().find(|(key, _)| key == name).map(|(_, v)| v.clone()).unwrap_or_default();
    let (index, answer) = {
        let mut log = log.lock().unwrap();
        let answer = script[log.len().min(script.len() - 1)];
        log.push(Delivery {
            headers: SignedHeaders {
                id: header("webhook-id"),
                timestamp: header("webhook-timestamp"),
                signature: header("webhook-signature"),
            },
            body,
            answered: match answer {
                Answer::Status(status) => Some(status),
                Answer::Hang => None,
            },
            received_at: Instant::now(),
            received_wall: SystemTime::now(),
            closed_after: None,
        });
        (log.len() - 1, answer)
    };
    match answer {
        Answer::Status(status) => {
            let _ = write!(stream, "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
        Answer::Hang => {
            // Hakken sends nothing more: the next read ends when it closes (0, or a reset).
            stream.set_read_timeout(Some(HANG_WAIT_MAX)).unwrap();
            let closed = match stream.read(&mut [0; 64]) {
                Ok(_) => true,
                Err(error) => !matches!(error.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
            };
            if closed {
                let mut log = log.lock().unwrap();
                log[index].closed_after = Some(log[index].received_at.elapsed());
            }
        }
    }
}

/// Header names (lower-cased) and values, in order.
type Headers = Vec<(String, String)>;

/// The headers and the body of one HTTP/1.1 request.
fn read_request(stream: &TcpStream) -> Option<(Headers, Vec<u8>)> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.trim_end().split_once(':') {
            headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    let length: usize =
        headers.iter().find(|(key, _)| key == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((headers, body))
}

/// The shipped `config/hakken.toml` with `webhooks` appended (url, event types), written
/// to `dir`. [`start_server`] gives its relative paths absolutely.
pub(crate) fn config_file(dir: &Path, webhooks: &[(&str, &[&str])]) -> PathBuf {
    let mut text = std::fs::read_to_string(repo_root().join("config/hakken.toml")).unwrap();
    for (url, events) in webhooks {
        let events: Vec<String> = events.iter().map(|event| format!("{event:?}")).collect();
        text.push_str(&format!(
            "\n[[notifications.webhooks]]\nurl = {url:?}\nsecret = {SECRET:?}\nevents = [{}]\n",
            events.join(", ")
        ));
    }
    let path = dir.join("hakken.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// `hakken serve` with `config` (the shipped one when `None`), emailing through the SMTP
/// server on 127.0.0.1:`smtp_port` as [`FROM`], with `extra` environment on top.
pub(crate) fn start_server(config: Option<PathBuf>, smtp_port: u16, extra: &[(&str, &str)]) -> Server {
    let config_dir = repo_root().join("config");
    let path = |relative: &str| config_dir.join(relative).to_str().expect("a UTF-8 path").to_string();
    let port = smtp_port.to_string();
    let mut env = vec![
        // A config written elsewhere would find neither the venue nor the templates relative to it.
        ("HAKKEN_VENUES", path("venues/hakken-stadium.toml")),
        ("HAKKEN_EVENTS", path("events/demo.toml")),
        ("HAKKEN_NOTIFICATIONS_TEMPLATES_DIR", path("notifications/templates")),
        ("HAKKEN_NOTIFICATIONS_EMAIL_SMTP_HOST", "127.0.0.1".to_string()),
        ("HAKKEN_NOTIFICATIONS_EMAIL_SMTP_PORT", port),
        ("HAKKEN_NOTIFICATIONS_EMAIL_TLS", "none".to_string()),
        ("HAKKEN_NOTIFICATIONS_EMAIL_FROM", FROM.to_string()),
    ];
    env.extend(extra.iter().map(|(name, value)| (*name, value.to_string())));
    let env: Vec<(&str, &str)> = env.iter().map(|(name, value)| (*name, value.as_str())).collect();
    Server::start_with_config(config, &env)
}

/// Polls `probe` every 100 ms until it gives something; panics after `seconds`.
pub(crate) fn wait_for<T>(what: &str, seconds: u64, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        if let Some(found) = probe() {
            return found;
        }
        assert!(Instant::now() < deadline, "{what} within {seconds} s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The value of one series (`name{labels}` exactly as exported) in a `/metrics` text; 0
/// when absent.
pub(crate) fn metric(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |value| value.trim().parse().expect("a metric value"))
}
