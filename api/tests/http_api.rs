//! End to end over real HTTP on loopback against the real `hakken` binary: the
//! purchase flows, races for the same seats, idempotent retries, expiry, refunds,
//! admin changes, the OpenAPI document and the metrics endpoint.

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde_json::json;
use support::{confirm_body, Server, EVENT};

#[test]
fn specific_seats_best_available_and_general_admission_sell_end_to_end() {
    let mut server = Server::start(&[]);
    let (available_before, _, sold_before) = server.counts("S101");

    // Specific seats.
    let hold = server.hold(json!({"customer": "alice", "seats": ["S101-C-12", "S101-C-13"]}));
    assert_eq!(hold["seats"], json!(["S101-C-12", "S101-C-13"]));
    assert_eq!(hold["event"], EVENT);
    assert_eq!(hold["section"], "S101");
    assert_eq!(hold["quantity"], 2);
    assert_eq!(hold["currency"], "EUR");
    assert!(hold["total_minor"].as_u64().unwrap() > 0);
    assert!(hold["expires_at"].as_str().unwrap().ends_with('Z'));
    let hold_id = hold["id"].as_str().unwrap();
    assert_eq!(server.get(&format!("/v1/holds/{hold_id}")).json["hold"]["seats"], hold["seats"]);
    assert_eq!(server.seat_states("S101")["S101-C-12"], "held");
    let order = server.confirm(hold_id, "alice");
    assert_eq!(order["state"], "confirmed");
    assert_eq!(order["total_minor"], hold["total_minor"]);
    let tickets = order["tickets"].as_array().unwrap();
    assert_eq!(tickets.len(), 2);
    assert_eq!(tickets[0]["seat"], "S101-C-12");
    assert_ne!(tickets[0]["id"], tickets[1]["id"]);
    assert_eq!(order["buyer"]["email"], "alice@example.com");
    let states = server.seat_states("S101");
    assert_eq!((states["S101-C-12"].as_str(), states["S101-C-13"].as_str()), ("sold", "sold"));
    let (available, held, sold) = server.counts("S101");
    assert_eq!((available, held, sold), (available_before - 2, 0, sold_before + 2));
    let order_id = order["id"].as_str().unwrap();
    let fetched = server.get(&format!("/v1/orders/{order_id}?customer=alice"));
    assert_eq!(fetched.status, 200);
    assert_eq!(fetched.json["order"], order);
    assert_eq!(server.get(&format!("/v1/orders/{order_id}?customer=mallory")).code(), "order_not_found");
    let by_admin = server.admin("GET", &format!("/v1/orders/{order_id}"), None);
    assert_eq!(by_admin.json["order"]["id"], order["id"]);
    // The hold is spent.
    let again = server.post(&format!("/v1/holds/{hold_id}/confirm"), confirm_body("alice"));
    assert_eq!((again.status, again.code()), (409, "hold_ended"), "{}", again.text);

    // Best available, adjacent, in a category.
    let hold =
        server.hold(json!({"customer": "bob", "section": "S102", "quantity": 3, "adjacent": true, "category": "CAT1"}));
    assert_eq!(hold["seats"].as_array().unwrap().len(), 3);
    assert_eq!(hold["choice"]["adjacent"], true);
    let order = server.confirm(hold["id"].as_str().unwrap(), "bob");
    assert_eq!(order["tickets"].as_array().unwrap().len(), 3);
    for ticket in order["tickets"].as_array().unwrap() {
        assert_eq!(ticket["category"], "CAT1");
        assert_eq!(server.seat_states("S102")[ticket["seat"].as_str().unwrap()], "sold");
    }

    // General admission.
    let (ga_available, _, _) = server.counts("FLOOR-A");
    let hold = server.hold(json!({"customer": "carol", "section": "FLOOR-A", "quantity": 4}));
    assert_eq!((hold["seats"].clone(), hold["quantity"].clone()), (json!([]), json!(4)));
    let order = server.confirm(hold["id"].as_str().unwrap(), "carol");
    let tickets = order["tickets"].as_array().unwrap();
    assert_eq!(tickets.len(), 4);
    assert!(tickets.iter().all(|ticket| ticket["seat"].is_null() && ticket["section"] == "FLOOR-A"));
    assert_eq!(server.counts("FLOOR-A"), (ga_available - 4, 0, 4));
    assert!(server.terminate(), "graceful shutdown exits 0");
}

#[test]
fn buyers_racing_for_the_same_seats_each_seat_sells_once() {
    let server = Arc::new(Server::start(&[]));
    // 24 buyers, each wanting two seats of the same six; neighbours overlap.
    let seats: Vec<String> = (1..=6).map(|number| format!("S110-D-{number}")).collect();
    let buyers: Vec<_> = (0..24)
        .map(|buyer| {
            let (server, seats) = (server.clone(), seats.clone());
            std::thread::spawn(move || {
                let customer = format!("racer-{buyer}");
                let wanted = [seats[buyer % 6].clone(), seats[(buyer + 1) % 6].clone()];
                let reply =
                    server.post(&format!("/v1/events/{EVENT}/holds"), json!({"customer": customer, "seats": wanted}));
                match reply.status {
                    201 => {
                        let hold = reply.json["hold"]["id"].as_str().unwrap().to_string();
                        Some(server.confirm(&hold, &customer))
                    }
                    409 => {
                        assert_eq!(reply.code(), "seats_unavailable", "{}", reply.text);
                        let named = reply.json["error"]["details"]["seats"].as_array().unwrap();
                        assert!(
                            !named.is_empty()
                                && named.iter().all(|seat| wanted.contains(&seat.as_str().unwrap().to_string()))
                        );
                        None
                    }
                    other => panic!("unexpected {other}: {}", reply.text),
                }
            })
        })
        .collect();
    let orders: Vec<_> = buyers.into_iter().filter_map(|buyer| buyer.join().unwrap()).collect();
    assert!(!orders.is_empty() && orders.len() <= 3, "at most three disjoint pairs fit in six seats");
    let mut sold_to = HashMap::new();
    for order in &orders {
        for ticket in order["tickets"].as_array().unwrap() {
            let seat = ticket["seat"].as_str().unwrap().to_string();
            assert!(sold_to.insert(seat.clone(), order["id"].clone()).is_none(), "{seat} sold twice");
        }
    }
    let states = server.seat_states("S110");
    let sold: HashSet<_> = states.iter().filter(|(_, state)| *state == "sold").map(|(id, _)| id.clone()).collect();
    assert_eq!(sold, sold_to.keys().cloned().collect(), "seat map agrees with the orders");
    assert_eq!(server.counts("S110").2 as usize, sold.len());
}

#[test]
fn idempotent_retries_get_the_same_answer_and_never_a_second_hold_or_order() {
    let server = Server::start(&[]);
    let path = format!("/v1/events/{EVENT}/holds");
    let body = json!({"customer": "dave", "section": "S103", "quantity": 2});
    let first = server.post_with(&path, &[("Idempotency-Key", "hold-dave-1")], body.clone());
    assert_eq!(first.status, 201, "{}", first.text);
    let retry = server.post_with(&path, &[("Idempotency-Key", "hold-dave-1")], body.clone());
    assert_eq!(retry.status, 201);
    assert_eq!(retry.json, first.json, "the same hold, not a second one");
    assert_eq!(retry.header("idempotency-replayed"), Some("true"));
    assert_eq!(server.counts("S103").1, 2, "two seats held, not four");
    let other_body = server.post_with(
        &path,
        &[("Idempotency-Key", "hold-dave-1")],
        json!({"customer": "dave", "section": "S103", "quantity": 1}),
    );
    assert_eq!((other_body.status, other_body.code()), (422, "idempotency_key_reused"));

    let hold = first.json["hold"]["id"].as_str().unwrap();
    let confirm_path = format!("/v1/holds/{hold}/confirm");
    let order = server.post_with(&confirm_path, &[("Idempotency-Key", "pay-dave-1")], confirm_body("dave"));
    assert_eq!(order.status, 201, "{}", order.text);
    let retried = server.post_with(&confirm_path, &[("Idempotency-Key", "pay-dave-1")], confirm_body("dave"));
    assert_eq!((retried.status, &retried.json), (201, &order.json), "the same order, paid once");
    assert_eq!(server.counts("S103").2, 2);

    // Refusals are replayed too (they are final), and keys survive a crash.
    let seats =
        order.json["order"]["tickets"].as_array().unwrap().iter().map(|t| t["seat"].clone()).collect::<Vec<_>>();
    let taken = json!({"customer": "erin", "seats": seats});
    let refused = server.post_with(&path, &[("Idempotency-Key", "erin-1")], taken.clone());
    assert_eq!(refused.status, 409);
    let mut server = server;
    server.restart();
    let after_crash = server.post_with(&confirm_path, &[("Idempotency-Key", "pay-dave-1")], confirm_body("dave"));
    assert_eq!((after_crash.status, &after_crash.json), (201, &order.json), "kept durably across kill -9");
    assert_eq!(server.post_with(&path, &[("Idempotency-Key", "erin-1")], taken).json, refused.json);
    let invalid = server.post_with(&path, &[("Idempotency-Key", "bad key")], body);
    assert_eq!((invalid.status, invalid.code()), (400, "invalid_idempotency_key"));
}

#[test]
fn expired_holds_return_their_seats_and_cannot_be_confirmed() {
    let server = Server::start(&[("HAKKEN_ENGINE_HOLD_TTL_MS", "1000"), ("HAKKEN_ENGINE_SWEEP_INTERVAL_MS", "100")]);
    let hold = server.hold(json!({"customer": "frank", "seats": ["S104-A-1", "S104-A-2"]}));
    assert_eq!(server.seat_states("S104")["S104-A-1"], "held");
    let expires_at_ms = hold["expires_at_ms"].as_u64().unwrap();
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    std::thread::sleep(std::time::Duration::from_millis(expires_at_ms.saturating_sub(now_ms) + 400));
    let states = server.seat_states("S104");
    assert_eq!((states["S104-A-1"].as_str(), states["S104-A-2"].as_str()), ("free", "free"));
    let late = server.post(&format!("/v1/holds/{}/confirm", hold["id"].as_str().unwrap()), confirm_body("frank"));
    assert_eq!(late.status, 409, "never a sale: {}", late.text);
    assert!(["hold_expired", "hold_ended"].contains(&late.code()), "{}", late.text);
    assert_eq!(server.counts("S104").1, 0, "the sweep gave the seats back");
    // Someone else can buy them now.
    let hold = server.hold(json!({"customer": "grace", "seats": ["S104-A-1", "S104-A-2"]}));
    server.confirm(hold["id"].as_str().unwrap(), "grace");
}

#[test]
fn releases_and_refunds_return_seats_to_sale() {
    let server = Server::start(&[]);
    let hold = server.hold(json!({"customer": "heidi", "seats": ["S105-B-3"]}));
    let hold_id = hold["id"].as_str().unwrap();
    let wrong = server.request("DELETE", &format!("/v1/holds/{hold_id}?customer=ivan"), &[], None);
    assert_eq!((wrong.status, wrong.code()), (403, "hold_not_yours"));
    let released = server.request("DELETE", &format!("/v1/holds/{hold_id}?customer=heidi"), &[], None);
    assert_eq!(released.status, 204, "{}", released.text);
    assert_eq!(server.seat_states("S105")["S105-B-3"], "free");

    let hold = server.hold(json!({"customer": "heidi", "seats": ["S105-B-3", "S105-B-4"]}));
    let extended =
        server.post(&format!("/v1/holds/{}/extend", hold["id"].as_str().unwrap()), json!({"customer": "heidi"}));
    assert_eq!(extended.status, 200, "{}", extended.text);
    assert!(extended.json["hold"]["expires_at_ms"].as_u64() >= hold["expires_at_ms"].as_u64());
    let order = server.confirm(hold["id"].as_str().unwrap(), "heidi");
    let order_id = order["id"].as_str().unwrap();
    let (_, _, sold) = server.counts("S105");
    let not_hers = server.post(&format!("/v1/orders/{order_id}/cancel"), json!({"customer": "ivan"}));
    assert_eq!(not_hers.code(), "order_not_found");
    let cancelled = server.post(&format!("/v1/orders/{order_id}/cancel"), json!({"customer": "heidi"}));
    assert_eq!(cancelled.status, 200, "{}", cancelled.text);
    assert_eq!(cancelled.json["order"]["state"], "cancelled");
    assert_eq!(server.counts("S105").2, sold - 2);
    assert_eq!(server.seat_states("S105")["S105-B-4"], "free");
    let twice = server.post(&format!("/v1/orders/{order_id}/cancel"), json!({"customer": "heidi"}));
    assert_eq!((twice.status, twice.code()), (409, "order_cancelled"));
    // The seats sell again, and the refund survives a crash.
    let mut server = server;
    server.restart();
    assert_eq!(server.get(&format!("/v1/orders/{order_id}?customer=heidi")).json["order"]["state"], "cancelled");
    let hold = server.hold(json!({"customer": "judy", "seats": ["S105-B-3", "S105-B-4"]}));
    server.confirm(hold["id"].as_str().unwrap(), "judy");
}

#[test]
fn admins_create_events_open_and_close_sales_and_set_prices_durably() {
    let mut server = Server::start(&[]);
    let event = json!({
        "id": "late-show", "name": "Late Show", "venue": "hakken-stadium",
        "starts_at": "2027-08-01T21:00:00+02:00",
        "on_sale": {"opens_at": "2026-01-01T00:00:00Z", "closes_at": "2027-08-01T18:00:00Z"},
        "currency": "EUR",
        "ticket_types": [{"id": "ga", "name": "Standing", "category": "FLOOR", "price_minor": 5000}]
    });
    let anonymous = server.post("/v1/events", event.clone());
    assert_eq!((anonymous.status, anonymous.code()), (401, "unauthorized"));
    let wrong = server.post_with("/v1/events", &[("Authorization", "Bearer nope")], event.clone());
    assert_eq!((wrong.status, wrong.code()), (401, "unauthorized"));
    let created = server.admin("POST", "/v1/events", Some(event.clone()));
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.json["event"]["ticket_types"][0]["price_minor"], 5000);
    assert_eq!(server.admin("POST", "/v1/events", Some(event)).code(), "event_exists");

    let holds = "/v1/events/late-show/holds";
    let hold = server.post(holds, json!({"customer": "kim", "section": "FLOOR-A", "quantity": 2}));
    assert_eq!((hold.status, hold.json["hold"]["total_minor"].as_u64()), (201, Some(10_000)), "{}", hold.text);
    let closed = server.admin("POST", "/v1/events/late-show/close", None);
    assert_eq!(closed.status, 200, "{}", closed.text);
    assert_eq!(closed.json["event"]["on_sale"]["open_now"], false);
    let refused = server.post(holds, json!({"customer": "kim", "section": "FLOOR-A", "quantity": 1}));
    assert_eq!((refused.status, refused.code()), (409, "not_on_sale"));
    assert_eq!(server.admin("POST", "/v1/events/late-show/open", None).status, 200);
    let priced = server.admin("PATCH", "/v1/events/late-show", Some(json!({"prices": {"ga": 7000}})));
    assert_eq!(priced.status, 200, "{}", priced.text);
    let unknown = server.admin("PATCH", "/v1/events/late-show", Some(json!({"prices": {"vip": 1}})));
    assert_eq!((unknown.status, unknown.code()), (422, "unknown_ticket_type"));
    let hold = server.post(holds, json!({"customer": "lee", "section": "FLOOR-A", "quantity": 1}));
    assert_eq!(hold.json["hold"]["total_minor"], 7000, "{}", hold.text);

    server.restart();
    let event = server.get("/v1/events/late-show");
    assert_eq!(event.status, 200, "the created event survives a crash");
    assert_eq!(event.json["event"]["ticket_types"][0]["price_minor"], 7000, "and so does its price");
    assert_eq!(server.counts_of("late-show", "FLOOR-A"), 3, "its holds too");
    let public_change = server.request("PATCH", "/v1/events/late-show", &[], Some("{\"name\": \"x\"}"));
    assert_eq!(public_change.status, 401);
}

trait CountsOf {
    fn counts_of(&self, event: &str, section: &str) -> u64;
}

impl CountsOf for Server {
    /// Held seats of one section of `event`.
    fn counts_of(&self, event: &str, section: &str) -> u64 {
        let reply = self.get(&format!("/v1/events/{event}/availability"));
        let sections = reply.json["sections"].as_array().unwrap();
        sections.iter().find(|s| s["id"] == section).unwrap()["held"].as_u64().unwrap()
    }
}

#[test]
fn every_route_is_in_the_openapi_document_and_served() {
    let server = Server::start(&[]);
    let document = server.get("/v1/openapi.json");
    assert_eq!(document.status, 200);
    assert!(document.json["openapi"].as_str().unwrap().starts_with("3."));
    let paths = document.json["paths"].as_object().unwrap();
    let expected = [
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/v1/openapi.json"),
        ("get", "/v1/events"),
        ("post", "/v1/events"),
        ("get", "/v1/events/{event}"),
        ("patch", "/v1/events/{event}"),
        ("get", "/v1/events/{event}/availability"),
        ("get", "/v1/events/{event}/sections/{section}/seats"),
        ("post", "/v1/events/{event}/holds"),
        ("post", "/v1/events/{event}/open"),
        ("post", "/v1/events/{event}/close"),
        ("get", "/v1/holds/{hold}"),
        ("delete", "/v1/holds/{hold}"),
        ("post", "/v1/holds/{hold}/extend"),
        ("post", "/v1/holds/{hold}/confirm"),
        ("post", "/v1/holds/{hold}/checkout"),
        ("get", "/v1/holds/{hold}/payment"),
        ("get", "/v1/payments/config"),
        ("post", "/v1/payments/webhooks/stripe"),
        ("get", "/v1/admin/payments/reconcile"),
        ("post", "/v1/admin/orders/{order}/erase-buyer"),
        ("post", "/v1/admin/privacy/rewrap"),
        ("get", "/v1/orders/{order}"),
        ("post", "/v1/orders/{order}/cancel"),
        ("post", "/v1/admin/backup"),
        ("get", "/v1/admin/outbox"),
        ("post", "/v1/admin/outbox/{id}/retry"),
        ("get", "/v1/admin/cluster"),
        ("get", "/v1/tickets/{ticket}"),
        ("get", "/v1/tickets/{ticket}/qr.svg"),
        ("get", "/v1/tickets/{ticket}/qr.png"),
        ("get", "/v1/tickets/{ticket}/barcode.svg"),
        ("get", "/v1/tickets/{ticket}/ticket.html"),
        ("post", "/v1/tickets/{ticket}/reissue"),
        ("post", "/v1/scan"),
        ("post", "/v1/scan/batch"),
        ("get", "/v1/events/{event}/gate-bundle"),
        ("get", "/v1/events/{event}/audit"),
        ("post", "/v1/events/{event}/queue"),
        ("get", "/v1/queue/{token}"),
    ];
    let documented: HashSet<(String, String)> = paths
        .iter()
        .flat_map(|(path, item)| item.as_object().unwrap().keys().map(move |method| (method.clone(), path.clone())))
        .filter(|(method, _)| ["get", "post", "put", "patch", "delete"].contains(&method.as_str()))
        .collect();
    let expected_set: HashSet<(String, String)> =
        expected.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    assert_eq!(documented, expected_set, "the document lists exactly the routes");
    // And every documented route is really served (never the fallback's route_not_found).
    for (method, path) in &expected {
        let concrete = path
            .replace("{event}", EVENT)
            .replace("{section}", "S101")
            .replace("{hold}", "h0-ffff")
            .replace("{order}", "o0-ffff")
            .replace("{ticket}", "t0-ffff-0");
        let reply = server.request(&method.to_uppercase(), &concrete, &[], Some("{}").filter(|_| *method != "get"));
        assert_ne!(reply.code(), "route_not_found", "{method} {path}");
        assert_ne!(reply.status, 405, "{method} {path}");
        if reply.status >= 400 {
            assert!(!reply.code().is_empty(), "{method} {path}: error without the error format: {}", reply.text);
        }
    }
}

#[test]
fn metrics_are_served_apart_with_bounded_labels() {
    let server = Server::start(&[]);
    let hold = server.hold(json!({"customer": "secret-customer-42", "section": "S106", "quantity": 2}));
    server.confirm(hold["id"].as_str().unwrap(), "secret-customer-42");
    let _ = server.get(&format!("/v1/events/{EVENT}/availability"));
    assert_eq!(server.get("/metrics").status, 404, "metrics are not on the public address");
    let text = server.metrics();
    for expected in [
        "hakken_http_requests_total{method=\"POST\",route=\"/v1/events/{event}/holds\",status=\"201\"}",
        "hakken_http_request_duration_seconds_bucket{method=\"POST\",route=\"/v1/holds/{hold}/confirm\"",
        "hakken_section_operations_total{event=\"demo-2027\",section=\"S106\",operation=\"hold\"}",
        "hakken_section_operations_total{event=\"demo-2027\",section=\"S106\",operation=\"confirm\"}",
        "hakken_wal_group_records_bucket",
        "hakken_wal_write_seconds_bucket",
        "hakken_wal_bytes_total",
        "hakken_recovery_seconds",
    ] {
        assert!(text.contains(expected), "missing {expected}");
    }
    let hold_id = hold["id"].as_str().unwrap();
    for private in ["secret-customer-42", hold_id, "S106-"] {
        assert!(!text.contains(private), "{private} leaked into metric labels");
    }
}

#[test]
fn the_cluster_view_needs_the_admin_token_and_says_when_the_node_runs_alone() {
    let server = Server::start(&[]);
    assert_eq!(server.get("/v1/admin/cluster").status, 401);
    let alone = server.admin("GET", "/v1/admin/cluster", None);
    assert_eq!((alone.status, alone.code()), (409, "cluster_off"), "{}", alone.text);
}
