//! `replay` end to end, in process, against stand-ins on 127.0.0.1: the overload tallies
//! (stalled seconds, client timeouts, refusals timed from their send, goodput per phase
//! window) count what the server did. Each run is a few seconds of a small queue file.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hakken_loadtest::queue::Queue;
use hakken_loadtest::replay::{self, ReplayConfig, ReplayReport};
use hakken_loadtest::trivial::{self, Handler};
use hyper::{Method, StatusCode};
use tokio::net::TcpListener;

/// Buyers of the queue: one GA hold each, then a confirm right away.
const BUYERS: u64 = 60;
/// Between arrivals: the queue spans 2.95 s, in two phases of 30 buyers.
const ARRIVAL_INTERVAL_US: u64 = 50_000;

/// A queue of [`BUYERS`] in two phases, one every [`ARRIVAL_INTERVAL_US`].
fn queue() -> Queue {
    let mut text = format!(
        r#"{{"hakken_queue":1,"event":"e","shape":"ramp","seed":0,"buyers":{BUYERS},"phases":[{{"name":"one"}},{{"name":"two"}}]}}"#
    );
    for index in 0..BUYERS {
        let phase = index * 2 / BUYERS;
        text.push_str(&format!(
            "\n{{\"at_us\":{},\"phase\":{phase},\"intent\":\"ga\",\"section\":\"GA\",\"quantity\":1,\"then\":\"confirm\"}}",
            index * ARRIVAL_INTERVAL_US
        ));
    }
    Queue::read(text.as_bytes(), None).expect("a valid queue")
}

fn config(target: String, request_timeout: Duration) -> ReplayConfig {
    ReplayConfig {
        target,
        event: None,
        time_scale: 1.0,
        duration: None,
        connections: 8,
        queue_long_polls: 0,
        in_flight_max: None,
        request_timeout,
        connect_timeout: Duration::from_secs(1),
        drain_timeout: Some(Duration::from_secs(2)),
        retries: 0,
        retry_after_max: Duration::from_secs(1),
        run_id: Some("test".into()),
        progress: false,
        verdict: false,
        threads: 1,
        payments: Default::default(),
        server_metrics: None,
    }
}

async fn replay_against(target: String, request_timeout: Duration) -> ReplayReport {
    let outcome = replay::replay(queue(), "test".into(), config(target, request_timeout), std::future::pending())
        .await
        .expect("replay");
    outcome.report
}

/// Every third hold is refused 503 (final: the replay runs with no retries); the others
/// are granted, and every confirm sells one seat.
fn refusing_every_third_hold() -> Handler {
    let holds = AtomicU64::new(0);
    Arc::new(move |method: &Method, path: &str| {
        let json = |status: StatusCode, body: &str| (status, Bytes::from(body.to_string()));
        match (method, path) {
            (&Method::POST, "/v1/events/e/holds") => {
                let n = holds.fetch_add(1, Ordering::Relaxed);
                if n % 3 == 2 {
                    json(StatusCode::SERVICE_UNAVAILABLE, r#"{"error": {"code": "overloaded", "message": "later"}}"#)
                } else {
                    let body = format!(r#"{{"hold": {{"id": "h{n}", "quantity": 1}}}}"#);
                    (StatusCode::CREATED, Bytes::from(body))
                }
            }
            (&Method::POST, path) if path.ends_with("/confirm") => {
                json(StatusCode::CREATED, r#"{"order": {"id": "o1", "section": "GA", "tickets": [{"id": "t1"}]}}"#)
            }
            _ => json(StatusCode::NOT_FOUND, r#"{"error": {"code": "not_found", "message": "no"}}"#),
        }
    })
}

#[tokio::test]
async fn refusals_are_timed_from_their_send_and_confirms_count_as_goodput() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let target = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(trivial::serve(listener, refusing_every_third_hold()));
    let report = replay_against(target, Duration::from_secs(5)).await;

    let refused = BUYERS / 3;
    assert_eq!(report.buyers.rejected, refused, "{report}");
    assert_eq!(report.buyers.confirmed, BUYERS - refused, "{report}");
    let overload = &report.overload;
    assert_eq!(overload.refusal_latency_us.count, refused, "{report}");
    assert_eq!(overload.stalled_seconds, 0, "holds answered every second: {report}");
    assert!(overload.seconds_with_arrivals >= 3, "{report}");
    assert!(overload.first_stalled_at_seconds.is_empty());
    assert_eq!(overload.client_timeouts, 0);
    assert_eq!(overload.requests_sent, BUYERS + BUYERS - refused, "holds and confirms");
    assert_eq!(report.phases.len(), 2);
    let windows: Vec<_> = report.phases.iter().map(|phase| &phase.window).collect();
    let refusals_in_windows: u64 = windows.iter().map(|window| window.refusal_latency_us.count).sum();
    assert!(refusals_in_windows <= refused, "a refusal after the last arrival is in no window");
    let confirms_in_windows: u64 = windows.iter().map(|window| window.confirms).sum();
    assert!(confirms_in_windows <= report.buyers.confirmed && confirms_in_windows > 0, "{report}");
    for window in &windows {
        assert!(window.seconds > 1.0, "{report}");
        assert_eq!(window.goodput_per_second, window.confirms as f64 / window.seconds);
    }
    let json = serde_json::to_value(&report).expect("serializes");
    assert_eq!(json["overload"]["refusal_latency_us"]["count"], refused);
    assert!(json["phases"][0]["window"]["goodput_per_second"].is_number());
    let text = report.to_string();
    assert!(text.contains("stalled: 0 of "), "{text}");
    assert!(text.contains(&format!("refusals (503/429): {refused} replies")), "{text}");
    assert!(text.contains("phase window"), "{text}");
}

/// A server that accepts connections and never answers: every second with arrivals
/// stalls, and every request is a client timeout.
#[tokio::test]
async fn a_server_that_never_answers_stalls_every_second() {
    // Never accepted: the kernel still completes the TCP handshakes (backlog).
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let target = format!("http://{}", listener.local_addr().expect("address"));
    let report = replay_against(target, Duration::from_millis(200)).await;

    let overload = &report.overload;
    assert!(overload.seconds_with_arrivals >= 3, "{report}");
    assert_eq!(overload.stalled_seconds, overload.seconds_with_arrivals, "{report}");
    assert_eq!(overload.first_stalled_at_seconds[..3], [0, 1, 2], "{report}");
    assert_eq!(overload.requests_sent, BUYERS);
    assert_eq!(overload.client_timeouts, BUYERS);
    assert_eq!(overload.client_timeouts_percent, 100.0);
    let stalled_in_phases: u64 = report.phases.iter().map(|phase| phase.window.stalled_seconds).sum();
    assert_eq!(stalled_in_phases, overload.stalled_seconds, "each stalled second is in one phase");
    assert!(report.to_string().contains("client timeouts: 60 of 60 requests (100.00%)"), "{report}");
    drop(listener);
}
