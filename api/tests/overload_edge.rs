//! The server's edge under load, over real HTTP: the bound on open connections and
//! availability polls served from the per-event cache, with their metrics.
//!
//! Counts and bodies only: "within the window" uses a window of a minute, "after it"
//! a window of 50 ms and a wait several times longer.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::json;
use support::{raw_request, try_raw_request, Server, EVENT};

/// A keep-alive connection that has had one answer, so the server has accepted
/// (and counts) it.
fn open_connection(address: &str) -> TcpStream {
    let stream = TcpStream::connect(address).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut writer = stream.try_clone().unwrap();
    writer.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {address}\r\n\r\n").as_bytes()).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut status_line = String::new();
    reader.read_line(&mut status_line).unwrap();
    assert!(status_line.starts_with("HTTP/1.1 200"), "{status_line:?}");
    let mut content_length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                content_length = value.trim().parse().unwrap();
            }
        }
    }
    let mut body = vec![0; content_length];
    reader.read_exact(&mut body).unwrap();
    stream
}

/// The value of one sample of the metrics text (`name` with its labels), 0 if absent.
fn sample(metrics: &str, name: &str) -> f64 {
    metrics.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok()).unwrap_or(0.0)
}

#[test]
fn the_connection_beyond_the_limit_is_answered_503_and_a_closed_one_makes_room() {
    let server = Server::start(&[("HAKKEN_HTTP_CONNECTIONS_MAX", "2"), ("HAKKEN_HTTP_RETRY_AFTER_S", "3")]);
    let first = open_connection(&server.address);
    let _second = open_connection(&server.address);

    let refused = raw_request(&server.address, "GET", "/healthz", &[], b"");
    assert_eq!((refused.status, refused.code()), (503, "too_many_connections"), "{}", refused.text);
    assert_eq!(refused.header("retry-after"), Some("3"));
    assert_eq!(refused.header("connection"), Some("close"));
    assert_eq!(refused.header("content-type"), Some("application/json"));
    assert!(refused.json["error"]["message"].as_str().is_some_and(|message| !message.is_empty()));
    let metrics = server.metrics();
    assert_eq!(sample(&metrics, "hakken_http_connections_open"), 2.0, "{metrics}");
    assert!(sample(&metrics, "hakken_http_connections_refused_total") >= 1.0, "{metrics}");

    // The server counts the first out once it has seen it close; until then new
    // connections are still refused.
    drop(first);
    let admitted = (0..500).find_map(|_| {
        let reply = try_raw_request(&server.address, "GET", "/healthz", &[], b"").ok()?;
        if reply.status == 200 {
            return Some(reply);
        }
        assert_eq!(reply.code(), "too_many_connections");
        std::thread::sleep(Duration::from_millis(10));
        None
    });
    assert!(admitted.is_some(), "closing a connection made room for a new one");
}

#[test]
fn polls_within_the_cache_window_get_the_same_bytes_until_the_catalogue_changes() {
    let server = Server::start(&[("HAKKEN_HTTP_AVAILABILITY_CACHE_MS", "60000")]);
    let path = format!("/v1/events/{EVENT}/availability");
    let first = server.get(&path);
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(first.header("content-type"), Some("application/json"));
    assert_eq!(first.header("cache-control"), Some("max-age=1"));
    let held_before = first.json["total"]["held"].as_u64().unwrap();

    let hold = server.hold(json!({"customer": "cached-carol", "section": "S101", "quantity": 2}));
    assert_eq!(hold["seats"].as_array().map(Vec::len), Some(2), "{hold}");
    let within = server.get(&path);
    assert_eq!(within.body, first.body, "within the window: the same bytes, the hold not yet shown");
    // A client that asks for counts read now gets them (and the cache is left alone).
    let fresh = server.request("GET", &path, &[("Cache-Control", "no-cache")], None);
    assert_eq!(fresh.json["total"]["held"].as_u64(), Some(held_before + 2), "{}", fresh.text);
    assert_eq!(server.get(&path).body, first.body);

    // An admin change publishes a new catalogue: its polls never get the old bytes.
    let opened = server.admin("POST", &format!("/v1/events/{EVENT}/open"), None);
    assert_eq!(opened.status, 200, "{}", opened.text);
    let changed = server.get(&path);
    assert_eq!(changed.json["total"]["held"].as_u64(), Some(held_before + 2), "{}", changed.text);
    assert!(changed.json["at"].as_str() >= first.json["at"].as_str());

    let metrics = server.metrics();
    let hits = sample(&metrics, "hakken_http_availability_cache_total{result=\"hit\"}");
    let misses = sample(&metrics, "hakken_http_availability_cache_total{result=\"miss\"}");
    assert_eq!((hits, misses), (2.0, 3.0), "{metrics}");
}

#[test]
fn a_poll_after_the_cache_window_reads_the_counts_again() {
    let server = Server::start(&[("HAKKEN_HTTP_AVAILABILITY_CACHE_MS", "50")]);
    let path = format!("/v1/events/{EVENT}/availability");
    let first = server.get(&path);
    assert_eq!(first.status, 200, "{}", first.text);
    std::thread::sleep(Duration::from_millis(300));
    let after = server.get(&path);
    assert_eq!(after.status, 200, "{}", after.text);
    let (first_at, after_at) = (first.json["at"].as_str().unwrap(), after.json["at"].as_str().unwrap());
    assert!(after_at > first_at, "read again: {first_at} then {after_at}");
    let metrics = server.metrics();
    assert!(sample(&metrics, "hakken_http_availability_cache_total{result=\"miss\"}") >= 2.0, "{metrics}");
}
