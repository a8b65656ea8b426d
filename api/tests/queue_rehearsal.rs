//! A rehearsed on-sale through a waiting room, against the real `hakken` binary: an
//! event whose sale opens a few seconds after the server starts, behind a `[queue]`
//! letting 50 buyers in a second; a load-tool file where 40% of the buyers join before
//! the opening. Every buyer must end admitted, told sold out or expired, no hold be
//! refused for its access, the verdict pass, and the report's fairness and ETA figures
//! be there (the late joiners' order kept: first come, first served).

mod support;

use std::time::Duration;

use hakken_loadtest::generate::{self, EarlyJoins, GenerateConfig, Mix, Shape};
use hakken_loadtest::replay::{self, ReplayConfig, WaitingRoomMode};
use support::{repo_root, Server};

const QUEUED: &str = "queued";
const BUYERS: u64 = 400;

#[test]
fn an_on_sale_through_the_waiting_room_is_fair_and_passes_the_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let queued = dir.path().join("queued.toml");
    std::fs::write(&queued, support::queued_demo_event(QUEUED, Duration::from_secs(7), 50)).unwrap();
    let config_dir = repo_root().join("config");
    let events = format!("{},{}", config_dir.join("events/demo.toml").display(), queued.display());
    let venues = config_dir.join("venues/hakken-stadium.toml").display().to_string();
    let server = Server::start(&[("HAKKEN_VENUES", &venues), ("HAKKEN_EVENTS", &events)]);
    let target = format!("http://{}", server.address);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let layout = support::event_layout(&runtime, &target, QUEUED, false);
    // General admission on the floor; 200 arrivals a second after the opening, and 40%
    // of the buyers join in the 3 s before it.
    let config = GenerateConfig {
        seed: 11,
        buyers: BUYERS,
        shape: Shape::Steady { rate: 200.0 },
        mix: Mix {
            best: 0,
            seats: 0,
            ga: 1,
            quantities: vec![(1, 1), (2, 1)],
            abandon_share: 0.05,
            expire_share: 0.05,
            poll_share: 0.2,
            think_median: Duration::from_millis(50),
            ..Mix::default()
        },
    };
    let queue = generate::generate(&layout, &config).expect("queue");
    let queue = generate::with_early_joins(queue, &EarlyJoins { share: 0.4, early: Duration::from_secs(3) })
        .expect("early joins");
    let early = queue.buyers.iter().filter(|buyer| buyer.join_us.is_some()).count();
    assert!((100..220).contains(&early), "{early} early joiners");

    let started = std::time::Instant::now();
    let outcome = runtime
        .block_on(replay::replay_with(
            queue,
            "generated".into(),
            // Buyers told to come back in 30 s (nobody let in now) must see the end.
            ReplayConfig { drain_timeout: Some(Duration::from_secs(45)), ..support::replay_config(&target, "queued") },
            WaitingRoomMode::Auto,
            std::future::pending(),
        ))
        .expect("replay");
    let report = &outcome.report;
    println!("{report}");
    println!("replayed in {:.1} s", started.elapsed().as_secs_f64());
    let verdict = report.verdict.as_ref().expect("a verdict");
    assert!(verdict.passed(), "{report}");
    let room = report.waiting_room.as_ref().expect("auto: the event has a room");
    assert_eq!(room.joined, BUYERS, "{report}");
    assert_eq!(room.admitted + room.told_sold_out + room.expired, BUYERS, "every buyer ended: {report}");
    assert_eq!((room.still_waiting, room.failed), (0, 0), "{report}");
    assert!(room.admitted > BUYERS / 2, "{report}");
    let hold = report.steps.iter().find(|step| step.step == "hold").expect("hold step");
    let access_refusals: u64 = hold
        .error_codes
        .iter()
        .filter(|(code, _)| code.contains("queue_required") || code.contains("access_invalid"))
        .map(|(_, count)| count)
        .sum();
    assert_eq!(access_refusals, 0, "{report}");
    assert!(report.buyers.confirmed > 0, "{report}");
    // The draw shuffles the early joiners; the late ones are first come, first served.
    assert!(room.fairness_early.admitted > 50, "{report}");
    let early_rho = room.fairness_early.spearman.expect("early rho");
    assert!(early_rho.abs() < 0.5, "{report}");
    assert!(room.fairness_late.spearman.expect("late rho") > 0.8, "{report}");
    assert!(room.eta_error.judged > 0, "{report}");
    assert!(room.queue_wait_seconds.count == room.admitted, "{report}");
    assert!(room.poll_latency_us.count > 0 && room.join_latency_us.count == BUYERS, "{report}");
    // Buyers near their turn waited on long polls, and learnt of their turn on them.
    assert!(room.long_polls_changed > 0 && room.long_polls >= room.long_polls_changed, "{report}");
}
