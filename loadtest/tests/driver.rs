//! The driver end to end, in process, against local servers on 127.0.0.1: counts must
//! add up whatever the replies. Each run is well under a second.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hakken_loadtest::driver::{self, OrderConfig, Report, RunConfig, SectionPick, Sections, Workload};
use hakken_loadtest::sinks::SinkConfig;
use hakken_loadtest::stats::StepReport;
use hakken_loadtest::trivial::{self, Handler};
use hyper::{Method, StatusCode};
use tokio::net::TcpListener;

const RATE: f64 = 2000.0;
const WARMUP: Duration = Duration::from_millis(200);
const DURATION: Duration = Duration::from_millis(500);
/// RATE × DURATION.
const MEASURED: u64 = 1000;
/// RATE × (WARMUP + DURATION).
const ALL: u64 = 1400;

fn config(target: String, workload: Workload) -> RunConfig {
    RunConfig {
        target,
        workload,
        rate_per_second: RATE,
        warmup: WARMUP,
        duration: DURATION,
        connections: 8,
        in_flight_max: 10_000,
        request_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(1),
        drain_timeout: Duration::from_secs(2),
        run_id: Some("test".into()),
        progress: false,
        threads: 1,
        server_pid: None,
        sinks: SinkConfig::default(),
    }
}

async fn start(handler: Handler) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(trivial::serve(listener, handler));
    format!("http://{address}")
}

fn step<'a>(report: &'a Report, name: &str) -> &'a StepReport {
    report.steps.iter().find(|step| step.step == name).unwrap_or_else(|| panic!("no step {name}"))
}

#[tokio::test]
async fn plain_gets_against_the_trivial_server_all_succeed() {
    let target = start(trivial::empty_json()).await;
    let report = driver::run(config(target, Workload::PlainGet { path: "/x".into() }), std::future::pending())
        .await
        .expect("run");

    assert!(!report.stopped_early);
    assert_eq!(report.arrivals.scheduled, MEASURED);
    assert_eq!(report.arrivals.launched, MEASURED);
    assert_eq!(report.arrivals.dropped_by_driver, 0);
    assert_eq!(report.steps.len(), 1);
    let get = step(&report, "get");
    assert_eq!(get.counts.sent, MEASURED);
    assert_eq!(get.counts.success, MEASURED);
    assert_eq!(get.unfinished, 0);
    assert_eq!(get.latency_success_us.count, MEASURED);
    assert_eq!(get.latency_all_us.count, MEASURED);
    assert!(get.latency_success_us.p50 <= get.latency_success_us.p99);
    assert!(get.latency_success_us.p99 <= get.latency_success_us.max);
    assert_eq!(report.driver.requests_total, ALL, "warmup requests count for the driver's cost");
    assert!((report.completed_per_second - RATE).abs() < 1.0, "{}", report.completed_per_second);
    assert!(report.arrivals.achieved_rate_per_second > RATE * 0.95, "{}", report.arrivals.achieved_rate_per_second);
    let json = serde_json::to_value(&report).expect("serializes");
    assert_eq!(json["steps"][0]["success"], MEASURED);
    assert!(report.to_string().contains("get "), "{report}");
}

/// A stand-in for hakken: an event with two reserved sections and a GA one; every
/// tenth hold is busy (503), every fourth otherwise conflicts (409); every fifth
/// confirmation is of an unknown hold (404); a confirmed order has two tickets.
fn fake_hakken() -> Handler {
    let holds = AtomicU64::new(0);
    Arc::new(move |method: &Method, path: &str| {
        let json = |status: StatusCode, body: String| (status, Bytes::from(body));
        match (method, path) {
            (&Method::GET, "/v1/events/demo-2027") => json(
                StatusCode::OK,
                r#"{"event": {"id": "demo-2027", "sections": [
                    {"id": "S1", "name": "One", "kind": "reserved", "capacity": 100},
                    {"id": "GA", "name": "Floor", "kind": "general_admission", "capacity": 100},
                    {"id": "S2", "name": "Two", "kind": "reserved", "capacity": 100}]}}"#
                    .into(),
            ),
            (&Method::POST, "/v1/events/demo-2027/holds") => {
                let n = holds.fetch_add(1, Ordering::Relaxed);
                let error = |code: &str| format!(r#"{{"error": {{"code": "{code}", "message": "no"}}}}"#);
                if n % 10 == 9 {
                    json(StatusCode::SERVICE_UNAVAILABLE, error("busy"))
                } else if n % 4 == 3 {
                    json(StatusCode::CONFLICT, error("sold_out"))
                } else {
                    json(
                        StatusCode::CREATED,
                        format!(r#"{{"hold": {{"id": "h-{n}", "seats": ["a", "b"], "quantity": 2}}}}"#),
                    )
                }
            }
            (&Method::POST, path) if path.starts_with("/v1/holds/h-") && path.ends_with("/confirm") => {
                let n: u64 = path["/v1/holds/h-".len()..path.len() - "/confirm".len()].parse().expect("hold number");
                if n % 5 == 0 {
                    json(StatusCode::NOT_FOUND, r#"{"error": {"code": "not_found", "message": "no"}}"#.into())
                } else {
                    json(
                        StatusCode::CREATED,
                        r#"{"order": {"id": "o-1", "section": "S1", "tickets": [{"id": "t1"}, {"id": "t2"}]}}"#.into(),
                    )
                }
            }
            _ => json(StatusCode::IM_A_TEAPOT, "{}".into()),
        }
    })
}

#[tokio::test]
async fn order_counts_add_up() {
    let target = start(fake_hakken()).await;
    let workload = Workload::Orders(OrderConfig {
        event: "demo-2027".into(),
        sections: Sections::Auto,
        section_pick: SectionPick::RoundRobin,
        quantity: 2,
        customers: None,
        idempotency: true,
        pay: false,
        hold_checkout: false,
        sales_token: None,
        payment_poll_timeout: Duration::from_secs(1),
    });
    let report = driver::run(config(target, workload), std::future::pending()).await.expect("run");

    assert!(report.settings.workload.contains("2 section(s) (S1,S2)"), "{}", report.settings.workload);
    assert_eq!(report.arrivals.launched, MEASURED);
    let (hold, confirm, order) = (step(&report, "hold"), step(&report, "confirm"), step(&report, "order"));
    for step in [hold, confirm, order] {
        assert_eq!(step.unfinished, 0, "{}", step.step);
        assert_eq!(step.counts.connection_error + step.counts.timeout + step.counts.bad_reply, 0, "{}", step.step);
        assert_eq!(step.latency_all_us.count, step.counts.sent, "{}", step.step);
        assert_eq!(step.latency_success_us.count, step.counts.success, "{}", step.step);
    }
    assert_eq!(hold.counts.sent, MEASURED);
    assert_eq!(hold.counts.success + hold.counts.conflict + hold.counts.rejected_busy_503, MEASURED);
    assert!(hold.counts.conflict > 0 && hold.counts.rejected_busy_503 > 0);
    assert_eq!(hold.counts.other_status, 0);
    let codes: Vec<(&str, u64)> = hold.error_codes.iter().map(|(code, count)| (code.as_str(), *count)).collect();
    assert_eq!(codes, [("409 sold_out", hold.counts.conflict), ("503 busy", hold.counts.rejected_busy_503)]);
    assert_eq!(confirm.counts.sent, hold.counts.success);
    assert_eq!(confirm.counts.success + confirm.counts.other_status, confirm.counts.sent);
    assert_eq!(confirm.other_statuses.keys().collect::<Vec<_>>(), ["404"]);
    assert_eq!(order.counts.sent, MEASURED);
    assert_eq!(order.counts.success, confirm.counts.success);
    assert_eq!(order.counts.conflict, hold.counts.conflict);
    assert_eq!(order.counts.rejected_busy_503, hold.counts.rejected_busy_503);
    assert_eq!(order.counts.other_status, confirm.counts.other_status);
    assert_eq!(report.seats_sold, 2 * confirm.counts.success);
    // An order's latency covers its hold's, measured from the same scheduled time.
    assert!(order.latency_all_us.max >= hold.latency_all_us.p50);
}

/// A server that accepts connections and never answers: arrivals pile up to the
/// in-flight limit, the rest are dropped, and every request ends as a timeout. The
/// arrival rate does not drop (open loop).
#[tokio::test]
async fn a_stalled_server_makes_timeouts_and_drops() {
    // Never accepted: the kernel still completes the TCP handshakes (backlog).
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let target = format!("http://{}", listener.local_addr().expect("address"));
    let mut config = config(target, Workload::PlainGet { path: "/x".into() });
    config.connections = 2;
    config.in_flight_max = 10;
    config.request_timeout = Duration::from_millis(100);
    let report = driver::run(config, std::future::pending()).await.expect("run");

    let arrivals = &report.arrivals;
    assert_eq!(arrivals.launched + arrivals.dropped_by_driver, MEASURED);
    assert!(arrivals.dropped_by_driver > MEASURED / 2, "{arrivals:?}");
    let get = step(&report, "get");
    assert_eq!(get.counts.sent, arrivals.launched);
    assert_eq!(get.counts.timeout, get.counts.sent);
    assert_eq!(get.counts.success, 0);
    assert!(get.latency_all_us.p50 >= 100_000, "timeouts are measured: {:?}", get.latency_all_us);
    drop(listener);
}

/// Scans: every arrival posts the next code; a 200 counts as a success, by its result.
#[tokio::test]
async fn scans_post_each_code_and_count_results() {
    let scans = Arc::new(AtomicU64::new(0));
    let seen = scans.clone();
    let handler: Handler = Arc::new(move |method: &Method, path: &str| {
        assert_eq!((method, path), (&Method::POST, "/v1/scan"));
        let n = seen.fetch_add(1, Ordering::Relaxed);
        let result = if n % 3 == 2 { "already_admitted" } else { "admitted" };
        (StatusCode::OK, Bytes::from(format!(r#"{{"result": "{result}"}}"#)))
    });
    let target = start(handler).await;
    let codes = Arc::new(vec!["HK1.a".to_string(), "HK1.b".to_string()]);
    let workload = Workload::Scans { codes, gate_token: "t".into(), gates: 4 };
    let report = driver::run(config(target, workload), std::future::pending()).await.expect("run");
    let scan = step(&report, "scan");
    assert_eq!((scan.counts.sent, scan.counts.success, scan.unfinished), (MEASURED, MEASURED, 0));
    let results: u64 = scan.error_codes.iter().filter(|(code, _)| code.starts_with("200 ")).map(|(_, n)| n).sum();
    assert_eq!(results, MEASURED);
    assert!(scan.error_codes.contains_key("200 already_admitted"), "{:?}", scan.error_codes);
    assert_eq!(scans.load(Ordering::Relaxed), ALL);
}
