//! Overload over real HTTP: deadlines drop dead work before it changes anything, the
//! adaptive limit moves with the load, and buyers confirming go before new holds.
//!
//! No test here asserts a duration: each checks counts (what was answered against
//! what changed) and ordering (who was refused more).

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use support::{confirm_body, Server, EVENT};

/// The value of the sample `name{labels}` (labels as rendered, e.g. `reason="deadline"`),
/// summed over every label set that contains `labels`; 0 if absent.
fn metric(metrics: &str, name: &str, labels: &str) -> f64 {
    metrics
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' '))
        .filter(|(key, _)| {
            let (key_name, key_labels) = key.split_once('{').unwrap_or((key, ""));
            key_name == name && key_labels.contains(labels)
        })
        .map(|(_, value)| value.parse::<f64>().unwrap_or(0.0))
        .sum()
}

fn hold_request(server: &Server, customer: &str, section: &str, headers: &[(&str, &str)]) -> support::Reply {
    let body = json!({"customer": customer, "section": section, "quantity": 1}).to_string();
    let path = format!("/v1/events/{EVENT}/holds");
    server.request("POST", &path, headers, Some(&body))
}

#[test]
fn a_request_timeout_header_that_is_not_a_positive_number_is_a_clear_400() {
    let server = Server::start(&[]);
    for bad in ["0", "soon", "-5", "1.5"] {
        let reply = hold_request(&server, "picky", "FLOOR-A", &[("X-Request-Timeout-Ms", bad)]);
        assert_eq!((reply.status, reply.code()), (400, "invalid_request_timeout"), "{bad}: {}", reply.text);
    }
    assert_eq!(server.counts("FLOOR-A").1, 0, "nothing was held");
    let reply = hold_request(&server, "patient", "FLOOR-A", &[("X-Request-Timeout-Ms", "60000")]);
    assert_eq!(reply.status, 201, "{}", reply.text);
}

/// 400 holds race for one section, each willing to wait 1 ms: many cannot be served in
/// time. A `deadline_exceeded` refusal is definite: that request changed nothing. A
/// `timeout` is in doubt (the hold may have been made as the clock ran out), as it is
/// for any client whose request times out. So the section holds at least as many seats
/// as holds were answered 201, and at most as many more as timed out.
#[test]
fn requests_past_their_deadline_are_refused_and_change_nothing() {
    let server = Arc::new(Server::start(&[("HAKKEN_HTTP_CUSTOMER_REQUESTS_BURST", "0")]));
    let threads: Vec<_> = (0..8)
        .map(|thread| {
            let server = server.clone();
            std::thread::spawn(move || {
                (0..50)
                    .map(|n| {
                        let customer = format!("hurried-{thread}-{n}");
                        // Half with an Idempotency-Key: those run in a task of their own.
                        let key = format!("late-{thread}-{n}");
                        let mut headers = vec![("X-Request-Timeout-Ms", "1")];
                        if n % 2 == 0 {
                            headers.push(("Idempotency-Key", key.as_str()));
                        }
                        let reply = hold_request(&server, &customer, "FLOOR-B", &headers);
                        (reply.status, reply.code().to_string())
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let answers: Vec<(u16, String)> = threads.into_iter().flat_map(|thread| thread.join().unwrap()).collect();
    let count = |status: u16, code: &str| answers.iter().filter(|(s, c)| *s == status && c == code).count() as u64;
    let served = answers.iter().filter(|(status, _)| *status == 201).count() as u64;
    let (late, timed_out, overloaded) =
        (count(503, "deadline_exceeded"), count(503, "timeout"), count(503, "overloaded"));
    assert_eq!(served + late + timed_out + overloaded, 400, "only served, late or refused: {answers:?}");
    assert!(late + timed_out > 0, "some of 400 requests with 1 ms to live were late: {answers:?}");
    assert!(late > 0, "and some were refused as late before they reached the inventory: {answers:?}");
    let (_, held, sold) = server.counts("FLOOR-B");
    assert_eq!(sold, 0);
    assert!(
        (served..=served + timed_out).contains(&held),
        "{held} held: {served} served, {timed_out} in doubt, {late} refused as late changed nothing"
    );
    let metrics = server.metrics();
    let rejections =
        |reason: &str| metric(&metrics, "hakken_http_rejections_total", &format!("reason=\"{reason}\"")) as u64;
    // A keyed request whose client was told `timeout` runs on in its own task and may
    // then be refused as late: counted, though its client heard "timeout" first.
    assert!(
        (late..=late + timed_out).contains(&rejections("deadline")),
        "every deadline refusal is counted: {} for {late} late and {timed_out} timed out",
        rejections("deadline")
    );
    assert_eq!(rejections("timeout"), timed_out);
}

/// The limit starts at its floor and grows while more requests keep the server busy
/// without queueing; under a crowd far beyond it, the server refuses the excess with
/// 503 + Retry-After instead of admitting everyone, and keeps serving.
#[test]
fn the_adaptive_limit_grows_from_its_floor_and_holds_a_crowd_below_its_ceiling() {
    let server = Arc::new(Server::start(&[
        ("HAKKEN_HTTP_IN_FLIGHT_MIN", "2"),
        ("HAKKEN_HTTP_IN_FLIGHT_MAX", "4096"),
        ("HAKKEN_HTTP_CUSTOMER_REQUESTS_BURST", "0"),
    ]));
    let limit = |server: &Server| metric(&server.metrics(), "hakken_http_concurrency_limit", "");
    assert_eq!(limit(&server), 2.0, "the limit starts at its floor");

    let stop = Arc::new(AtomicBool::new(false));
    let (served, refused) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let crowd: Vec<_> = (0..48)
        .map(|client| {
            let (server, stop, served, refused) = (server.clone(), stop.clone(), served.clone(), refused.clone());
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let reply = hold_request(&server, &format!("crowd-{client}-{n}"), "FLOOR-A", &[]);
                    match (reply.status, reply.code()) {
                        (201, _) | (409, _) => served.fetch_add(1, Ordering::Relaxed),
                        (503, "overloaded") => {
                            let wait: u64 = reply.header("retry-after").expect("Retry-After").parse().unwrap();
                            assert!((1..=30).contains(&wait), "Retry-After within its bounds: {wait}");
                            refused.fetch_add(1, Ordering::Relaxed)
                        }
                        (503, "section_busy" | "deadline_exceeded") => refused.fetch_add(1, Ordering::Relaxed),
                        other => panic!("unexpected answer under load: {other:?} {}", reply.text),
                    };
                }
            })
        })
        .collect();
    // Until the limit has grown, or for at most a minute on a slow machine.
    let started = Instant::now();
    let mut highest = 0.0f64;
    while started.elapsed() < Duration::from_secs(60) && (highest <= 4.0 || refused.load(Ordering::Relaxed) == 0) {
        std::thread::sleep(Duration::from_millis(200));
        highest = highest.max(limit(&server));
    }
    stop.store(true, Ordering::Relaxed);
    crowd.into_iter().for_each(|client| client.join().unwrap());
    assert!(highest > 4.0, "the limit grew from its floor under load: {highest}");
    assert!(highest < 4096.0, "and stayed far below its ceiling: {highest}");
    assert!(refused.load(Ordering::Relaxed) > 0, "48 clients against a small limit meet refusals");
    assert!(served.load(Ordering::Relaxed) > 0, "and the server kept serving");
    let metrics = server.metrics();
    assert!(metric(&metrics, "hakken_http_rejections_total", r#"reason="overloaded""#) > 0.0);
    assert_eq!(server.get("/readyz").status, 200);
}

/// With room for 8 requests, new holds may fill 6: 40 buyers confirming the holds they
/// have are refused less often than a crowd of new holds, and all of them finish.
#[test]
fn buyers_confirming_go_before_a_crowd_of_new_holds() {
    let server = Arc::new(Server::start(&[
        ("HAKKEN_HTTP_IN_FLIGHT_MIN", "8"),
        ("HAKKEN_HTTP_IN_FLIGHT_MAX", "8"),
        ("HAKKEN_HTTP_CUSTOMER_REQUESTS_BURST", "0"),
    ]));
    let buyers: Vec<(String, String)> = (0..40)
        .map(|n| {
            let customer = format!("buyer-{n}");
            let hold = server.hold(json!({"customer": customer, "section": "FLOOR-C", "quantity": 1}));
            (customer, hold["id"].as_str().unwrap().to_string())
        })
        .collect();

    let stop = Arc::new(AtomicBool::new(false));
    let (holds_sent, holds_refused) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let crowd: Vec<_> = (0..32)
        .map(|client| {
            let (server, stop, sent, refused) =
                (server.clone(), stop.clone(), holds_sent.clone(), holds_refused.clone());
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let reply = hold_request(&server, &format!("crowd-{client}-{n}"), "FLOOR-A", &[]);
                    sent.fetch_add(1, Ordering::Relaxed);
                    if reply.status == 503 {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    // Let the crowd fill the server first.
    while holds_sent.load(Ordering::Relaxed) < 200 {
        std::thread::sleep(Duration::from_millis(20));
    }
    let (mut confirms_sent, mut confirms_refused) = (0u64, 0u64);
    let confirmers: Vec<_> = buyers
        .into_iter()
        .map(|(customer, hold)| {
            let server = server.clone();
            std::thread::spawn(move || {
                let (mut sent, mut refused) = (0u64, 0u64);
                loop {
                    sent += 1;
                    let reply = server.post(&format!("/v1/holds/{hold}/confirm"), confirm_body(&customer));
                    match reply.status {
                        201 => return (sent, refused),
                        503 => refused += 1,
                        other => panic!("confirm: {other} {}", reply.text),
                    }
                    assert!(sent < 10_000, "a confirm got through in the end");
                }
            })
        })
        .collect();
    for confirmer in confirmers {
        let (sent, refused) = confirmer.join().unwrap();
        confirms_sent += sent;
        confirms_refused += refused;
    }
    stop.store(true, Ordering::Relaxed);
    crowd.into_iter().for_each(|client| client.join().unwrap());
    let (holds_sent, holds_refused) = (holds_sent.load(Ordering::Relaxed), holds_refused.load(Ordering::Relaxed));
    assert!(holds_refused > 0, "the crowd met the limit: {holds_refused} of {holds_sent}");
    let hold_share = holds_refused as f64 / holds_sent as f64;
    let confirm_share = confirms_refused as f64 / confirms_sent as f64;
    assert!(
        confirm_share < hold_share,
        "confirms refused {confirms_refused} of {confirms_sent}, new holds {holds_refused} of {holds_sent}"
    );
    assert_eq!(server.counts("FLOOR-C").2, 40, "every buyer's confirm went through");
}
