//! The durability crash test against the real `hakken serve` over HTTP: buyers hold,
//! confirm and refund while the server is killed with SIGKILL; after each restart
//! every answer a buyer got must still be true, and no seat is sold twice.
//!
//! `HAKKEN_CRASH_CYCLES` (default 2) sets the number of kills; the soak command in the
//! README runs more. Sync and async durability alternate: both acknowledge only what
//! survives a killed process.

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use support::{confirm_body, try_raw_request, Server, EVENT};

const SECTIONS: [&str; 4] = ["S101", "S102", "S103", "FLOOR-C"];
const BUYERS: usize = 8;

/// What the server told buyers; all of it must hold after any crash.
#[derive(Default)]
struct Acknowledged {
    /// Order id → (customer, section, seat ids).
    orders: HashMap<String, (String, String, Vec<String>)>,
    cancelled: HashSet<String>,
    /// Refunds asked for: those without an answer may or may not have happened.
    cancel_requested: HashSet<String>,
}

fn post(address: &str, path: &str, body: serde_json::Value) -> Option<support::Reply> {
    let body = body.to_string();
    try_raw_request(address, "POST", path, &[("Content-Type", "application/json")], body.as_bytes()).ok()
}

fn buyer(address: String, buyer: usize, cycle: usize, stop: Arc<AtomicBool>, acked: Arc<Mutex<Acknowledged>>) {
    let mut rng = SmallRng::seed_from_u64((cycle * 1000 + buyer) as u64);
    let mut mine: Vec<(String, String)> = Vec::new();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let customer = format!("c{cycle}-{buyer}-{n}");
        let section = SECTIONS[rng.gen_range(0..SECTIONS.len())];
        let hold = json!({"customer": customer, "section": section, "quantity": rng.gen_range(1..=3)});
        let Some(reply) = post(&address, &format!("/v1/events/{EVENT}/holds"), hold) else { return };
        if reply.status != 201 {
            continue;
        }
        let hold = reply.json["hold"]["id"].as_str().unwrap().to_string();
        let Some(reply) = post(&address, &format!("/v1/holds/{hold}/confirm"), confirm_body(&customer)) else { return };
        if reply.status != 201 {
            continue;
        }
        let order = &reply.json["order"];
        let seats = order["tickets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|ticket| ticket["seat"].as_str().unwrap_or("").to_string())
            .collect();
        let id = order["id"].as_str().unwrap().to_string();
        acked.lock().unwrap().orders.insert(id.clone(), (customer.clone(), section.to_string(), seats));
        mine.push((id, customer));
        if rng.gen_bool(0.2) {
            let (id, customer) = mine.swap_remove(rng.gen_range(0..mine.len()));
            acked.lock().unwrap().cancel_requested.insert(id.clone());
            let Some(reply) = post(&address, &format!("/v1/orders/{id}/cancel"), json!({"customer": customer})) else {
                return;
            };
            if reply.status == 200 {
                acked.lock().unwrap().cancelled.insert(id);
            }
        }
    }
}

#[test]
fn every_acknowledged_sale_and_refund_survives_kill_9_of_the_server() {
    let cycles: usize = std::env::var("HAKKEN_CRASH_CYCLES").ok().and_then(|v| v.parse().ok()).unwrap_or(2);
    let mut server = Server::start(&[("HAKKEN_STORAGE_DURABILITY", "sync")]);
    let acked = Arc::new(Mutex::new(Acknowledged::default()));
    for cycle in 0..cycles {
        let stop = Arc::new(AtomicBool::new(false));
        let buyers: Vec<_> = (0..BUYERS)
            .map(|n| {
                let (address, stop, acked) = (server.address.clone(), stop.clone(), acked.clone());
                std::thread::spawn(move || buyer(address, n, cycle, stop, acked))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(700 + 150 * (cycle as u64 % 4)));
        server.kill9_and_restart(cycle, &stop, buyers);
        verify(&server, &acked.lock().unwrap(), cycle);
    }
    let acked = acked.lock().unwrap();
    assert!(acked.orders.len() >= cycles, "the buyers got orders through: {}", acked.orders.len());
}

fn verify(server: &Server, acked: &Acknowledged, cycle: usize) {
    let mut sold_by_orders: HashMap<String, HashSet<String>> = HashMap::new();
    for (id, (customer, section, seats)) in &acked.orders {
        let reply = server.get(&format!("/v1/orders/{id}?customer={customer}"));
        assert_eq!(reply.status, 200, "cycle {cycle}: acknowledged order {id} lost: {}", reply.text);
        let state = reply.json["order"]["state"].as_str().unwrap();
        if acked.cancelled.contains(id) {
            assert_eq!(state, "cancelled", "cycle {cycle}: acknowledged refund of {id} lost");
        } else if !acked.cancel_requested.contains(id) {
            assert_eq!(state, "confirmed", "cycle {cycle}: order {id} cancelled by nobody");
        }
        if state == "confirmed" && !section.starts_with("FLOOR") {
            for seat in seats {
                assert!(
                    sold_by_orders.entry(section.clone()).or_default().insert(seat.clone()),
                    "{seat} in two orders"
                );
            }
        }
    }
    for section in SECTIONS {
        let (_, _, sold) = server.counts(section);
        if section.starts_with("FLOOR") {
            let confirmed: u64 = acked
                .orders
                .iter()
                .filter(|(id, (_, s, _))| s == section && !acked.cancel_requested.contains(*id))
                .map(|(_, (_, _, seats))| seats.len() as u64)
                .sum();
            assert!(sold >= confirmed, "cycle {cycle}: {section} sold {sold} < acknowledged {confirmed}");
            continue;
        }
        let states = server.seat_states(section);
        let sold_seats: HashSet<String> =
            states.iter().filter(|(_, s)| *s == "sold").map(|(id, _)| id.clone()).collect();
        assert_eq!(sold_seats.len() as u64, sold, "cycle {cycle}: {section} seat map and counts agree");
        if let Some(ours) = sold_by_orders.get(section) {
            let missing: Vec<_> = ours.difference(&sold_seats).collect();
            assert!(missing.is_empty(), "cycle {cycle}: acknowledged seats not sold after restart: {missing:?}");
        }
    }
}
