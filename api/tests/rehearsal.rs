//! A rehearsed on-sale against the real `hakken` binary: the load tool generates a
//! flash-sale queue from the server's own layout, replays it open-loop, and its verdict
//! reads the final state back. The verdict must pass; it must pass again after a kill -9
//! and restart (nothing acknowledged is lost); and it must fail once the server's state
//! no longer matches what buyers were told.

mod support;

use std::time::Duration;

use hakken_loadtest::generate::{self, GenerateConfig, Mix, Shape};
use hakken_loadtest::replay::{self, ReplayConfig};
use support::Server;

const BUYERS: u64 = 600;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

#[test]
fn a_rehearsed_on_sale_passes_the_verdict_survives_kill_9_and_fails_when_tampered_with() {
    let mut server = Server::start(&[]);
    let target = format!("http://{}", server.address);
    let runtime = runtime();
    let layout = support::demo_layout(&runtime, &target);
    // A small, fast spike: most buyers in the first second; some pick the same popular
    // seats, some abandon, some let their hold expire, some poll first.
    let config = GenerateConfig {
        seed: 5,
        buyers: BUYERS,
        shape: Shape::Spike { window: Duration::from_secs(1), share: 0.9, tail: Duration::from_secs(2) },
        mix: Mix {
            abandon_share: 0.1,
            expire_share: 0.05,
            poll_share: 0.3,
            think_median: Duration::from_millis(20),
            ..Mix::default()
        },
    };
    let queue = generate::generate(&layout, &config).expect("queue");
    assert_eq!(queue.buyers.len() as u64, BUYERS);

    let outcome = runtime
        .block_on(replay::replay(
            queue,
            "generated".into(),
            ReplayConfig { connections: 16, ..support::replay_config(&target, "rehearsal") },
            std::future::pending(),
        ))
        .expect("replay");
    let report = &outcome.report;
    let verdict = report.verdict.as_ref().expect("a verdict");
    assert!(verdict.passed(), "{report}");
    let buyers = &report.buyers;
    assert_eq!(buyers.arrived, BUYERS, "{report}");
    assert_eq!(buyers.unfinished, 0, "{report}");
    assert_eq!(buyers.errors, 0, "{report}");
    assert!(buyers.confirmed > BUYERS / 2, "{report}");
    assert!(buyers.abandoned > 0 && buyers.left_to_expire > 0, "{report}");
    assert_eq!(outcome.ledger.orders.len() as u64, buyers.confirmed, "{report}");
    let ledger_seats: u64 = outcome.ledger.orders.iter().map(|order| order.tickets.len() as u64).sum();
    assert_eq!(report.seats_sold, ledger_seats);
    assert_eq!(verdict.orders_checked, buyers.confirmed);
    let step = |name: &str| report.steps.iter().find(|step| step.step == name).expect("step");
    assert_eq!(step("confirm").counts.success, buyers.confirmed);
    assert_eq!(step("release").counts.success, buyers.abandoned);
    assert_eq!(step("hold").counts.sent, BUYERS - buyers.gave_up_after_poll);
    assert_eq!(step("hold").counts.success, buyers.held);
    assert!(step("availability").counts.success > 0);
    let timeline_arrivals: u64 = report.timeline.points.iter().map(|point| point.arrivals).sum();
    assert_eq!(timeline_arrivals, BUYERS);

    // kill -9 and restart: every acknowledged order is still there, counts still agree.
    server.restart();
    let target = format!("http://{}", server.address);
    let verdict = runtime.block_on(replay::verify(&target, &outcome.ledger, Duration::from_secs(10))).expect("verify");
    assert!(verdict.passed(), "{verdict}");

    // Refund one order behind the run's back: the verdict must see it.
    let order = &outcome.ledger.orders[0];
    let cancelled = server.admin("POST", &format!("/v1/orders/{}/cancel", order.id), Some(serde_json::json!({})));
    assert_eq!(cancelled.status, 200, "{}", cancelled.text);
    let verdict = runtime.block_on(replay::verify(&target, &outcome.ledger, Duration::from_secs(10))).expect("verify");
    assert!(!verdict.passed());
    let text = verdict.to_string();
    assert!(text.contains(&format!("order {} was acknowledged but is now cancelled", order.id)), "{text}");
    assert!(text.contains(&format!("section {}: the server's sold count", order.section)), "{text}");
}
