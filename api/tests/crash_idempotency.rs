//! Idempotency is atomic with the change: the real `hakken serve` is killed with
//! SIGKILL at random moments while buyers hold, confirm and refund, each request with
//! its own `Idempotency-Key`. After each restart every request whose answer never
//! arrived is retried with its key, and no retry may make a second hold or order:
//! a retried confirm or refund of a change that happened gets its answer replayed
//! (never "hold ended" or "already cancelled"), acknowledged keys replay the same
//! ids, and the seats held and sold are exactly those of the holds the keys got.
//!
//! `HAKKEN_IDEMPOTENCY_CRASH_CYCLES` (default 3) sets the number of kills. Sync and
//! async durability alternate: both acknowledge only what survives a killed process.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use support::{confirm_body, try_raw_request, Reply, Server, EVENT};

const SECTIONS: [&str; 4] = ["S101", "S102", "S103", "FLOOR-C"];
const BUYERS: usize = 6;
/// Tries of one retry after a restart while the answer says "try again" (503, 429).
const RETRY_TRIES_MAX: usize = 50;

/// A request as first sent, to be sent again with the same key and body.
#[derive(Clone, Debug)]
struct Keyed {
    key: String,
    path: String,
    body: Value,
}

impl Keyed {
    fn send(&self, address: &str) -> Option<Reply> {
        let body = self.body.to_string();
        let headers = [("Content-Type", "application/json"), ("Idempotency-Key", self.key.as_str())];
        try_raw_request(address, "POST", &self.path, &headers, body.as_bytes()).ok()
    }
}

/// Where a purchase got to, as its customer was told.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Stage {
    /// The hold was refused (sold out, ...): nothing of it exists.
    Refused,
    Held {
        hold: String,
    },
    Confirmed {
        hold: String,
        order: String,
    },
    Cancelled,
}

/// One customer's hold, its confirm and its refund, each with its own key.
#[derive(Clone, Debug)]
struct Purchase {
    customer: String,
    section: &'static str,
    quantity: u64,
    stage: Stage,
    /// The step whose answer never arrived (the server died, or said "try again").
    pending: Option<Keyed>,
    /// Every key that got a final answer, with the id it answered.
    answered: Vec<(Keyed, String)>,
}

/// A final answer: one that is stored and replayed (not 5xx, 429, or "the first
/// request with this key is still running").
fn is_final(reply: &Reply) -> bool {
    reply.status < 500 && reply.status != 429 && reply.code() != "idempotency_key_in_use"
}

fn buyer(address: String, buyer: usize, cycle: usize, stop: Arc<AtomicBool>, purchases: Arc<Mutex<Vec<Purchase>>>) {
    let mut rng = SmallRng::seed_from_u64((cycle * 1000 + buyer) as u64);
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let customer = format!("k{cycle}-{buyer}-{n}");
        let section = SECTIONS[rng.gen_range(0..SECTIONS.len())];
        let quantity = rng.gen_range(1..=3);
        let mut purchase =
            Purchase { customer, section, quantity, stage: Stage::Refused, pending: None, answered: Vec::new() };
        let alive = run_purchase(&address, &mut purchase);
        purchases.lock().unwrap().push(purchase);
        if !alive {
            return;
        }
    }
}

/// Runs a purchase as far as the server answers; false once it stopped answering.
fn run_purchase(address: &str, purchase: &mut Purchase) -> bool {
    loop {
        let Some(step) = next_step(purchase) else { return true };
        match step.send(address) {
            Some(reply) if is_final(&reply) => advance(purchase, &step, &reply),
            Some(_) => {
                purchase.pending = Some(step);
                return true;
            }
            None => {
                purchase.pending = Some(step);
                return false;
            }
        }
    }
}

/// The next request of a purchase in the flow hold → confirm → refund.
fn next_step(purchase: &Purchase) -> Option<Keyed> {
    let customer = &purchase.customer;
    match (&purchase.stage, purchase.answered.len()) {
        (Stage::Refused, 0) => Some(Keyed {
            key: format!("{customer}-hold"),
            path: format!("/v1/events/{EVENT}/holds"),
            body: json!({"customer": customer, "section": purchase.section, "quantity": purchase.quantity}),
        }),
        (Stage::Held { hold }, _) => Some(Keyed {
            key: format!("{customer}-confirm"),
            path: format!("/v1/holds/{hold}/confirm"),
            body: confirm_body(customer),
        }),
        (Stage::Confirmed { order, .. }, _) => Some(Keyed {
            key: format!("{customer}-cancel"),
            path: format!("/v1/orders/{order}/cancel"),
            body: json!({"customer": customer}),
        }),
        _ => None,
    }
}

/// Takes a final answer to `step`. A retry that finds its change made without its
/// answer is the failure this test looks for.
fn advance(purchase: &mut Purchase, step: &Keyed, reply: &Reply) {
    let context = || format!("{} {}: {} {}", purchase.customer, step.path, reply.status, reply.text);
    purchase.stage = match purchase.stage.clone() {
        Stage::Refused if reply.status == 201 => {
            let hold = reply.json["hold"]["id"].as_str().unwrap().to_string();
            assert_eq!(reply.json["hold"]["quantity"].as_u64(), Some(purchase.quantity), "{}", context());
            purchase.answered.push((step.clone(), hold.clone()));
            Stage::Held { hold }
        }
        Stage::Refused => {
            assert_eq!(reply.status, 409, "a hold is granted or refused for want of seats: {}", context());
            purchase.answered.push((step.clone(), String::new()));
            Stage::Refused
        }
        Stage::Held { hold } => {
            assert_eq!(reply.status, 201, "only this key confirms its hold: {}", context());
            let order = reply.json["order"]["id"].as_str().unwrap().to_string();
            purchase.answered.push((step.clone(), order.clone()));
            Stage::Confirmed { hold, order }
        }
        Stage::Confirmed { order, .. } => {
            assert_eq!(reply.status, 200, "only this key refunds its order: {}", context());
            assert_eq!(reply.json["order"]["state"], "cancelled", "{}", context());
            purchase.answered.push((step.clone(), order));
            Stage::Cancelled
        }
        Stage::Cancelled => unreachable!("a refunded purchase sends nothing more"),
    };
}

/// Sends a pending step again (same key, same body) until it gets a final answer.
fn retry(server: &Server, purchase: &mut Purchase) {
    let Some(step) = purchase.pending.take() else { return };
    for _ in 0..RETRY_TRIES_MAX {
        if let Some(reply) = step.send(&server.address) {
            if is_final(&reply) {
                return advance(purchase, &step, &reply);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{} {}: no final answer after a restart", purchase.customer, step.path);
}

/// Acknowledged keys still answer the same: replayed, with the same id.
fn check_replays(server: &Server, purchase: &Purchase, cycle: usize) {
    for (step, id) in &purchase.answered {
        let reply = step.send(&server.address).expect("the server answers");
        assert_eq!(reply.header("idempotency-replayed"), Some("true"), "cycle {cycle}: {step:?}: {}", reply.text);
        let answered = reply.json["hold"]["id"].as_str().or(reply.json["order"]["id"].as_str()).unwrap_or("");
        assert_eq!(answered, id, "cycle {cycle}: {step:?} answered another id after a restart");
    }
}

/// Seats held or sold by purchases (none else exist), against the server's counts.
fn check_seats(server: &Server, purchases: &[Purchase], cycle: usize) {
    for section in SECTIONS {
        let expected: u64 = purchases
            .iter()
            .filter(|purchase| purchase.section == section)
            .filter(|purchase| matches!(purchase.stage, Stage::Held { .. } | Stage::Confirmed { .. }))
            .map(|purchase| purchase.quantity)
            .sum();
        let (_, held, sold) = server.counts(section);
        assert_eq!(
            held + sold,
            expected,
            "cycle {cycle}: {section} holds {held} and sold {sold} seats, the keys' answers account for {expected}"
        );
    }
}

/// Releases and refunds what the cycle left, so every cycle starts with all seats free.
fn clean_up(server: &Server, purchases: &[Purchase]) {
    for purchase in purchases {
        let customer = &purchase.customer;
        match &purchase.stage {
            Stage::Held { hold } => {
                let reply = server.request("DELETE", &format!("/v1/holds/{hold}?customer={customer}"), &[], None);
                assert_eq!(reply.status, 204, "release {hold}: {}", reply.text);
            }
            Stage::Confirmed { order, .. } => {
                let reply = server.post(&format!("/v1/orders/{order}/cancel"), json!({"customer": customer}));
                assert_eq!(reply.status, 200, "refund {order}: {}", reply.text);
            }
            Stage::Refused | Stage::Cancelled => {}
        }
    }
    check_seats(server, &[], usize::MAX);
}

#[test]
fn no_retry_after_kill_9_makes_a_second_hold_or_order() {
    let cycles: usize = std::env::var("HAKKEN_IDEMPOTENCY_CRASH_CYCLES").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let mut server = Server::start(&[("HAKKEN_STORAGE_DURABILITY", "sync")]);
    let mut retried = 0;
    let mut acknowledged = 0;
    for cycle in 0..cycles {
        let purchases = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let buyers: Vec<_> = (0..BUYERS)
            .map(|n| {
                let (address, stop, purchases) = (server.address.clone(), stop.clone(), purchases.clone());
                std::thread::spawn(move || buyer(address, n, cycle, stop, purchases))
            })
            .collect();
        let mut rng = SmallRng::seed_from_u64(cycle as u64);
        std::thread::sleep(Duration::from_millis(rng.gen_range(400..1200)));
        server.kill9_and_restart(cycle, &stop, buyers);

        let mut purchases = std::mem::take(&mut *purchases.lock().unwrap());
        acknowledged += purchases.iter().map(|purchase| purchase.answered.len()).sum::<usize>();
        for purchase in &mut purchases {
            retried += usize::from(purchase.pending.is_some());
            retry(&server, purchase);
            check_replays(&server, purchase, cycle);
        }
        check_seats(&server, &purchases, cycle);
        clean_up(&server, &purchases);
    }
    assert!(retried >= cycles, "every kill left requests to retry: {retried} in {cycles} cycles");
    assert!(acknowledged >= cycles, "buyers got answers between kills: {acknowledged}");
}
