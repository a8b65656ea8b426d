//! Tickets and gates over HTTP against the real `hakken` binary: signed codes and
//! their images, reissue, scans (concurrent, retried, offline, after a crash), the
//! gate bundle, and the hash-chained audit log with `hakken audit verify`.

mod support;

use std::process::Command;
use std::sync::Arc;

use serde_json::{json, Value};
use support::{Server, ADMIN_TOKEN, EVENT};

/// Buys seats for `customer` and returns the order.
fn buy(server: &Server, customer: &str, seats: &[&str]) -> Value {
    let hold = server.hold(json!({"customer": customer, "seats": seats}));
    server.confirm(hold["id"].as_str().unwrap(), customer)
}

fn ticket(server: &Server, id: &str, customer: &str) -> Value {
    let reply = server.get(&format!("/v1/tickets/{id}?customer={customer}"));
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json["ticket"].clone()
}

fn scan(server: &Server, code: &str, gate: &str, scan_id: &str) -> Value {
    let reply = server.gate("POST", "/v1/scan", Some(json!({"code": code, "gate": gate, "scan_id": scan_id})));
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json
}

fn first_ticket_id(order: &Value) -> String {
    order["tickets"][0]["id"].as_str().unwrap().to_string()
}

/// One ticket's life in order (bought, fetched, rendered, decoded, scanned at many gates
/// at once, scanned again): each step depends on the one before, so it is one test.
#[test]
fn a_ticket_admits_once_and_its_code_and_images_are_genuine() {
    let server = Server::start(&[]);
    let order = buy(&server, "ana", &["S101-D-1", "S101-D-2"]);
    let id = first_ticket_id(&order);
    let ticket = ticket(&server, &id, "ana");
    assert_eq!(ticket["state"], "valid");
    assert_eq!(ticket["version"], 0);
    assert_eq!(ticket["seat"], "S101-D-1");
    assert_eq!(ticket["holder"], "Buyer ana");
    let code = ticket["code"].as_str().unwrap().to_string();
    assert!(code.starts_with("HK1.") && code.len() < 200, "{code}");
    // Private: another customer, or none, does not see it.
    assert_eq!(server.get(&format!("/v1/tickets/{id}?customer=bob")).status, 404);
    assert_eq!(server.get(&format!("/v1/tickets/{id}")).status, 422);

    // The QR image decodes back to the code.
    let png = server.get(&format!("/v1/tickets/{id}/qr.png?customer=ana"));
    assert_eq!(png.status, 200);
    assert_eq!(png.header("content-type"), Some("image/png"));
    assert_eq!(decode_qr(&png.body), code);
    let svg = server.get(&format!("/v1/tickets/{id}/qr.svg?customer=ana"));
    assert_eq!((svg.status, svg.header("content-type")), (200, Some("image/svg+xml")));
    roxmltree::Document::parse(&svg.text).expect("the QR SVG is well-formed");
    let barcode = server.get(&format!("/v1/tickets/{id}/barcode.svg?customer=ana"));
    assert_eq!(barcode.status, 200);
    assert!(barcode.text.contains(ticket["barcode"].as_str().unwrap()), "the barcode's text is printed under it");
    let page = server.get(&format!("/v1/tickets/{id}/ticket.html?customer=ana"));
    assert_eq!(page.status, 200);
    // Times in the venue's zone (Berlin, summer time) and the place as a person reads it.
    let place = "Section Lower Tier 101, Row D, Seat 1";
    for text in ["Hakken Open Air 2027", "Saturday 10 July 2027, 19:30 (CEST)", place, "Buyer ana", &id] {
        assert!(page.text.contains(text), "the page shows {text}: {}", page.text);
    }
    assert!(!page.text.contains("2027-07-10T17:30:00.000Z"), "no raw UTC timestamp");

    // Sixteen gates scan the same code at once: exactly one admits.
    let server = Arc::new(server);
    let results: Vec<Value> = (0..16)
        .map(|gate| {
            let (server, code) = (server.clone(), code.clone());
            std::thread::spawn(move || scan(&server, &code, &format!("gate-{gate}"), &format!("scan-{gate}")))
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|thread| thread.join().expect("scan thread"))
        .collect();
    let admitted: Vec<&Value> = results.iter().filter(|result| result["result"] == "admitted").collect();
    assert_eq!(admitted.len(), 1, "{results:#?}");
    let first_gate = admitted[0]["gate"].as_str().unwrap();
    for result in &results {
        assert!(result["result"] == "admitted" || result["result"] == "already_admitted", "{result}");
        assert_eq!(result["gate"], first_gate, "everyone is told where it was first let in");
        assert_eq!(result["ticket"]["seat"], "S101-D-1");
    }
    // A retry of the admitting scan (same scan id) is the same answer.
    let scan_id = format!("scan-{}", first_gate.trim_start_matches("gate-"));
    let retried = scan(&server, &code, first_gate, &scan_id);
    assert_eq!(retried["result"], "admitted");
    assert_eq!(retried["first_admitted_at"], admitted[0]["first_admitted_at"]);
    assert_eq!(ticket_state(&server, &id), "checked_in");

    // Forged and altered codes never admit.
    let other = first_ticket_id(&buy(&server, "ben", &["S101-D-3"]));
    let genuine = ticket_code(&server, &other, "ben");
    for forged in altered_codes(&genuine) {
        assert_eq!(scan(&server, &forged, "north-1", "forged")["result"], "invalid", "{forged}");
    }
    assert_eq!(scan(&server, "not a code", "north-1", "junk")["result"], "invalid");
    // The same genuine code at another event's gate.
    let wrong = server.gate("POST", "/v1/scan", Some(json!({"code": genuine, "gate": "g", "event": "other-event"})));
    assert_eq!(wrong.json["result"], "wrong_event", "{}", wrong.text);
    assert_eq!(scan(&server, &genuine, "north-1", "real")["result"], "admitted");

    // Without the gate token, no scan.
    let denied = server.request("POST", "/v1/scan", &[], Some(&json!({"code": genuine, "gate": "g"}).to_string()));
    assert_eq!(denied.status, 401);
    let denied = server.post_with(
        "/v1/scan",
        &[("Authorization", &format!("Bearer {ADMIN_TOKEN}"))],
        json!({"code": genuine, "gate": "g"}),
    );
    assert_eq!(denied.status, 401, "the admin token is not a gate token");
}

fn ticket_state(server: &Server, id: &str) -> String {
    let reply = server.admin("GET", &format!("/v1/tickets/{id}"), None);
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json["ticket"]["state"].as_str().unwrap().to_string()
}

fn ticket_code(server: &Server, id: &str, customer: &str) -> String {
    ticket(server, id, customer)["code"].as_str().unwrap().to_string()
}

/// Codes that differ from `code` by one character, cut short or extended.
fn altered_codes(code: &str) -> Vec<String> {
    let mut altered = Vec::new();
    for position in [4, 10, code.len() / 2, code.len() - 2, code.len() - 1] {
        let mut bytes = code.as_bytes().to_vec();
        bytes[position] = if bytes[position] == b'A' { b'B' } else { b'A' };
        altered.push(String::from_utf8(bytes).unwrap());
    }
    altered.push(code[..code.len() - 1].to_string());
    altered.push(format!("{code}A"));
    altered
}

fn decode_qr(png: &[u8]) -> String {
    let decoder = png::Decoder::new(std::io::Cursor::new(png));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut pixels = vec![0; reader.output_buffer_size().expect("size")];
    let frame = reader.next_frame(&mut pixels).expect("a frame");
    let (width, height) = (frame.width as usize, frame.height as usize);
    let bits = frame.bit_depth as usize;
    let line = frame.line_size;
    let luma = |x: usize, y: usize| -> u8 {
        match bits {
            8 => pixels[y * line + x],
            1 => {
                let byte = pixels[y * line + x / 8];
                if (byte >> (7 - x % 8)) & 1 == 1 {
                    255
                } else {
                    0
                }
            }
            other => panic!("unexpected bit depth {other}"),
        }
    };
    let mut image = rqrr::PreparedImage::prepare_from_greyscale(width, height, luma);
    let grids = image.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in the image");
    grids[0].decode().expect("the QR decodes").1
}

#[test]
fn reissue_kills_the_old_code_and_cancel_kills_every_code() {
    let server = Server::start(&[]);
    let order = buy(&server, "cy", &["S102-E-5", "S102-E-6"]);
    let order_id = order["id"].as_str().unwrap();
    let id = first_ticket_id(&order);
    let old = ticket_code(&server, &id, "cy");
    let bundle = server.gate("GET", &format!("/v1/events/{EVENT}/gate-bundle"), None);
    assert_eq!(bundle.status, 200, "{}", bundle.text);
    assert!(bundle.json["public_keys"][0].as_str().unwrap().starts_with("ed25519:"));
    let cursor = bundle.json["cursor"].as_u64().unwrap();

    // The buyer needs proof: the order and the buyer's email.
    let path = format!("/v1/tickets/{id}/reissue");
    assert_eq!(server.post(&path, json!({"order": order_id, "email": "wrong@example.com"})).status, 404);
    assert_eq!(server.post(&path, json!({})).status, 422);
    let reissued = server.post(&path, json!({"order": order_id, "email": "CY@example.com"}));
    assert_eq!(reissued.status, 200, "{}", reissued.text);
    let new = reissued.json["ticket"]["code"].as_str().unwrap().to_string();
    assert_eq!(reissued.json["ticket"]["version"], 1);
    assert_ne!(new, old);
    // An offline gate checks codes with the bundle's public key alone.
    let key = hakken_engine::ticket_code::PublicKey::from_text(bundle.json["public_keys"][0].as_str().unwrap())
        .expect("a public key");
    let claim = hakken_engine::ticket_code::verify(&new, &key).expect("the new code verifies offline");
    assert_eq!((claim.ticket_id(), claim.version), (id.clone(), 1));
    for forged in altered_codes(&new) {
        assert!(hakken_engine::ticket_code::verify(&forged, &key).is_err(), "{forged}");
    }
    assert_eq!(scan(&server, &old, "west-1", "s1")["result"], "revoked");
    assert_eq!(scan(&server, &new, "west-1", "s2")["result"], "admitted");
    // A used ticket is not reissued.
    let again = server.admin("POST", &path, Some(json!({})));
    assert_eq!((again.status, again.code()), (409, "ticket_used"), "{}", again.text);

    // The bundle since the cursor names exactly the reissue.
    let since = server.gate("GET", &format!("/v1/events/{EVENT}/gate-bundle?since={cursor}"), None);
    let revoked = since.json["revoked"].as_array().unwrap();
    assert_eq!(revoked.len(), 1, "{}", since.text);
    assert_eq!((revoked[0]["ticket"].as_str(), revoked[0]["valid_version"].as_u64()), (Some(id.as_str()), Some(1)));

    // A refund kills every ticket of the order.
    let second = order["tickets"][1]["id"].as_str().unwrap();
    let second_code = ticket_code(&server, second, "cy");
    let cancelled = server.post(&format!("/v1/orders/{order_id}/cancel"), json!({"customer": "cy"}));
    assert_eq!(cancelled.status, 200, "{}", cancelled.text);
    assert_eq!(scan(&server, &second_code, "west-1", "s3")["result"], "cancelled");
    assert_eq!(ticket_state(&server, second), "cancelled");
    let after = server.gate("GET", &format!("/v1/events/{EVENT}/gate-bundle?since={cursor}"), None);
    let reasons: Vec<&str> =
        after.json["revoked"].as_array().unwrap().iter().map(|r| r["reason"].as_str().unwrap()).collect();
    assert_eq!(reasons, ["reissued", "cancelled"]);
}

#[test]
fn offline_gates_upload_batches_and_conflicts_are_reported() {
    let server = Server::start(&[]);
    let order = buy(&server, "dee", &["S103-F-7", "S103-F-8"]);
    let (first, second) = (first_ticket_id(&order), order["tickets"][1]["id"].as_str().unwrap().to_string());
    let (first_code, second_code) = (ticket_code(&server, &first, "dee"), ticket_code(&server, &second, "dee"));
    // Online, gate A lets the first ticket in.
    assert_eq!(scan(&server, &first_code, "gate-a", "a-1")["result"], "admitted");
    // Gate B was offline and let both in; it uploads later.
    let batch = json!({"scans": [
        {"code": first_code, "gate": "gate-b", "scan_id": "b-1", "scanned_at": "2026-11-25T20:00:00Z"},
        {"code": second_code, "gate": "gate-b", "scan_id": "b-2", "scanned_at": "2026-11-25T20:00:05Z"},
        {"code": "HK1.forged", "gate": "gate-b", "scan_id": "b-3", "scanned_at": "2026-11-25T20:00:09Z"}]});
    let reply = server.gate("POST", "/v1/scan/batch", Some(batch.clone()));
    assert_eq!(reply.status, 200, "{}", reply.text);
    let results: Vec<&str> =
        reply.json["results"].as_array().unwrap().iter().map(|r| r["result"].as_str().unwrap()).collect();
    assert_eq!(results, ["already_admitted", "admitted", "invalid"]);
    let conflicts = reply.json["conflicts"].as_array().unwrap();
    assert_eq!(conflicts.len(), 1, "{}", reply.text);
    assert_eq!(conflicts[0]["ticket"], first);
    assert_eq!((conflicts[0]["gate"].as_str(), conflicts[0]["first_gate"].as_str()), (Some("gate-b"), Some("gate-a")));
    // The offline admission keeps the time it was scanned.
    let admitted_at = reply.json["results"][1]["first_admitted_at"].as_str().unwrap();
    assert!(admitted_at.starts_with("2026-11-25T20:00:05"), "{admitted_at}");
    // Uploading the same batch again changes nothing and reports the same.
    let again = server.gate("POST", "/v1/scan/batch", Some(batch));
    let results: Vec<&str> =
        again.json["results"].as_array().unwrap().iter().map(|r| r["result"].as_str().unwrap()).collect();
    assert_eq!(results, ["already_admitted", "admitted", "invalid"]);
    // Bad batches are refused whole.
    let empty = server.gate("POST", "/v1/scan/batch", Some(json!({"scans": []})));
    assert_eq!((empty.status, empty.code()), (422, "invalid_batch"));
    let bad_time = server.gate(
        "POST",
        "/v1/scan/batch",
        Some(json!({"scans": [{"code": "x", "gate": "g", "scan_id": "s", "scanned_at": "yesterday"}]})),
    );
    assert_eq!((bad_time.status, bad_time.code()), (422, "invalid_time"));
}

#[test]
fn admissions_survive_kill_9_and_early_scans_are_not_yet_valid() {
    let mut server = Server::start(&[]);
    let order = buy(&server, "eve", &["S104-G-1"]);
    let id = first_ticket_id(&order);
    let code = ticket_code(&server, &id, "eve");
    assert_eq!(scan(&server, &code, "east-1", "e-1")["result"], "admitted");
    server.restart();
    let after = scan(&server, &code, "east-2", "e-2");
    assert_eq!(after["result"], "already_admitted", "a crash never forgets an admission");
    assert_eq!(after["gate"], "east-1");
    // With the doors opening only 1 s before the 2027 show, scanning now is too early.
    server.env.push(("HAKKEN_GATES_DOORS_OPEN_BEFORE_START_S".into(), "1".into()));
    server.restart();
    let other = first_ticket_id(&buy(&server, "fay", &["S104-G-2"]));
    let early = scan(&server, &ticket_code(&server, &other, "fay"), "east-1", "e-3");
    assert_eq!(early["result"], "not_yet_valid");
}

#[test]
fn the_audit_log_records_who_did_what_and_detects_tampering() {
    let mut server = Server::start(&[]);
    let order = buy(&server, "gus", &["S105-H-3"]);
    let id = first_ticket_id(&order);
    let code = ticket_code(&server, &id, "gus");
    assert_eq!(scan(&server, &code, "south-9", "g-1")["result"], "admitted");
    assert_eq!(scan(&server, &code, "south-8", "g-2")["result"], "already_admitted");
    assert_eq!(server.admin("POST", &format!("/v1/events/{EVENT}/close"), None).status, 200);

    let page = server.admin("GET", &format!("/v1/events/{EVENT}/audit?ticket={id}"), None);
    assert_eq!(page.status, 200, "{}", page.text);
    let entries = page.json["entries"].as_array().unwrap();
    let summary: Vec<(String, String, String)> = entries
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().into(),
                e["principal"].as_str().unwrap().into(),
                e["outcome"].as_str().unwrap().into(),
            )
        })
        .collect();
    let expected: Vec<(String, String, String)> = [
        ("confirm", "customer:gus", "ok"),
        ("scan", "gate:south-9", "admitted"),
        ("scan", "gate:south-8", "already_admitted"),
    ]
    .iter()
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
    .collect();
    assert_eq!(summary, expected, "{}", page.text);
    let all = server.admin("GET", &format!("/v1/events/{EVENT}/audit?limit=500"), None);
    let actions: Vec<&str> =
        all.json["entries"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert!(actions.contains(&"hold") && actions.contains(&"sale_close"), "{actions:?}");
    assert_eq!(server.get(&format!("/v1/events/{EVENT}/audit")).status, 401, "admin only");

    // Stopped, the chain verifies; after one entry is altered on disk it does not.
    assert!(server.terminate(), "graceful stop");
    let verify = || {
        Command::new(env!("CARGO_BIN_EXE_hakken"))
            .current_dir(support::repo_root())
            .args(["audit", "verify"])
            .env("HAKKEN_DATA_DIR", &server.data_dir)
            .env("HAKKEN_LOG", "warn")
            .output()
            .expect("run hakken audit verify")
    };
    let intact = verify();
    let stdout = String::from_utf8_lossy(&intact.stdout).to_string();
    assert!(intact.status.success(), "{stdout}{}", String::from_utf8_lossy(&intact.stderr));
    assert!(stdout.starts_with("audit log intact:"), "{stdout}");
    tamper_with_an_entry(&server.data_dir);
    let broken = verify();
    let stdout = String::from_utf8_lossy(&broken.stdout).to_string();
    assert_eq!(broken.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("BROKEN") && stdout.contains("audit entry 2"), "{stdout}");
}

/// Rewrites audit entry 2 with another outcome and a correctly framed value, as
/// someone editing the database would.
fn tamper_with_an_entry(data_dir: &std::path::Path) {
    use hakken_engine::store::{StorageConfig, Store};
    use hakken_engine::wal::{self, AuditStored};
    let store = Store::open(data_dir, StorageConfig::default()).expect("open the store");
    let value = store.audit_entry(2).expect("read").expect("entry 2 exists");
    let mut stored: AuditStored = wal::decode(&value).expect("decodes");
    stored.entry.outcome = "tampered".into();
    store.tamper_audit(2, &wal::encode(&stored)).expect("write");
    store.close();
}

#[test]
fn printed_barcodes_and_general_admission_tickets_scan_too() {
    let server = Server::start(&[]);
    let hold = server.hold(json!({"customer": "hal", "section": "FLOOR-A", "quantity": 2}));
    let order = server.confirm(hold["id"].as_str().unwrap(), "hal");
    let id = first_ticket_id(&order);
    let ticket = ticket(&server, &id, "hal");
    assert_eq!((ticket["seat"].clone(), ticket["section"].as_str()), (Value::Null, Some("FLOOR-A")));
    let page = server.get(&format!("/v1/tickets/{id}/ticket.html?customer=hal"));
    assert!(page.text.contains("General admission, Floor A (front of stage)"), "{}", page.text);

    // The printed barcode admits once, like the QR code; a made-up tag never does.
    let barcode = ticket["barcode"].as_str().unwrap().to_string();
    assert!(barcode.starts_with(&format!("{id}.0.")), "{barcode}");
    let mut forged = barcode.clone().into_bytes();
    let last = forged.len() - 1;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    assert_eq!(scan(&server, &String::from_utf8(forged).unwrap(), "door-1", "p-0")["result"], "invalid");
    let other = order["tickets"][1]["id"].as_str().unwrap();
    let guessed = format!("{other}.0.AAAAAAAAAAAA");
    assert_eq!(scan(&server, &guessed, "door-1", "p-1")["result"], "invalid");
    let admitted = scan(&server, &barcode, "door-1", "p-2");
    assert_eq!(admitted["result"], "admitted", "{admitted}");
    assert_eq!(admitted["ticket"]["section"], "FLOOR-A");
    // The QR code of the same ticket is now a second entry.
    assert_eq!(scan(&server, ticket["code"].as_str().unwrap(), "door-2", "p-3")["result"], "already_admitted");
}
