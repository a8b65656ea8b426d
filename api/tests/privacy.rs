//! Buyers' personal data at rest, against the real `hakken` binary: names and emails
//! are in no file of the data dir or of a backup (WAL, SST, snapshots, stored
//! `Idempotency-Key` answers), after a kill -9 and after a graceful stop; an admin's
//! erasure makes them unreadable for good while the order, its tickets and the audit
//! chain stay valid; key rotation keeps old orders readable while the old key is
//! configured, and shows them as unreadable (never an error) once it is gone.

mod support;

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};
use support::{Server, ADMIN_TOKEN, EVENT};

const NAME: &str = "Zyxwa Quellenborg-Privat";
const EMAIL: &str = "zyxwa.quellenborg@privacy-test.example";

fn key(byte: u8) -> String {
    // base64 of 32 equal bytes, without a base64 dependency in the tests.
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = [byte; 33];
    let mut text = String::new();
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16) | (u32::from(chunk[1]) << 8) | u32::from(chunk[2]);
        for shift in [18, 12, 6, 0] {
            text.push(alphabet[((n >> shift) & 63) as usize] as char);
        }
    }
    // 33 bytes make 44 characters; 32 bytes are the first 43 and one `=`.
    text.truncate(43);
    text.push('=');
    text
}

fn confirm_body(customer: &str) -> Value {
    json!({"customer": customer, "payment_reference": format!("pay-{customer}"), "buyer": {"name": NAME, "email": EMAIL}})
}

/// Retries the confirm of `order` with its `Idempotency-Key`: the stored answer.
fn replay_confirm(server: &Server, order: &Value, customer: &str, idempotency_key: &str) -> Value {
    let path = format!("/v1/holds/{}/confirm", order["hold"].as_str().unwrap());
    let replayed = server.post_with(&path, &[("Idempotency-Key", idempotency_key)], confirm_body(customer));
    assert_eq!((replayed.status, replayed.header("idempotency-replayed")), (201, Some("true")), "{}", replayed.text);
    replayed.json["order"].clone()
}

fn buy(server: &Server, customer: &str, seat: &str, idempotency_key: Option<&str>) -> Value {
    let hold = server.hold(json!({"customer": customer, "seats": [seat]}));
    let path = format!("/v1/holds/{}/confirm", hold["id"].as_str().unwrap());
    let headers: Vec<(&str, &str)> = idempotency_key.map(|key| ("Idempotency-Key", key)).into_iter().collect();
    let reply = server.post_with(&path, &headers, confirm_body(customer));
    assert_eq!(reply.status, 201, "{}", reply.text);
    let order = reply.json["order"].clone();
    if let Some(key) = idempotency_key {
        // A retry replays the stored (sealed) answer, opened again.
        assert_eq!(replay_confirm(server, &order, customer, key), order);
    }
    order
}

fn order(server: &Server, id: &str) -> Value {
    let reply = server.admin("GET", &format!("/v1/orders/{id}"), None);
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json["order"].clone()
}

/// Every file under `dir` that contains `needle`, as raw bytes.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return found };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_containing(&path, needle));
        } else if let Ok(bytes) = std::fs::read(&path) {
            if bytes.windows(needle.len()).any(|window| window == needle) {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

fn assert_no_plaintext(dirs: &[&Path], control: &[u8]) {
    // The search can find what is there: an order id and payment reference are stored as is.
    assert!(dirs.iter().any(|dir| !files_containing(dir, control).is_empty()), "control bytes not found");
    for needle in [NAME.as_bytes(), EMAIL.as_bytes(), b"Quellenborg", b"privacy-test.example"] {
        for dir in dirs {
            let found = files_containing(dir, needle);
            assert!(found.is_empty(), "{:?} found in {found:?}", String::from_utf8_lossy(needle));
        }
    }
}

fn scan(server: &Server, code: &str, scan_id: &str) -> Value {
    let reply = server.gate("POST", "/v1/scan", Some(json!({"code": code, "gate": "north-1", "scan_id": scan_id})));
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json
}

#[test]
fn names_and_emails_are_in_no_file_of_the_store_or_a_backup() {
    let mut server = Server::start(&[]);
    let sold = buy(&server, "priv-ana", "S105-H-3", Some("confirm-priv-ana"));
    assert_eq!(sold["buyer"], json!({"name": NAME, "email": EMAIL}));
    let id = sold["id"].as_str().unwrap().to_string();
    let backup = server.data_dir.parent().unwrap().join("backup");
    let reply = server.admin("POST", "/v1/admin/backup", Some(json!({"path": backup.display().to_string()})));
    assert_eq!(reply.status, 201, "{}", reply.text);

    server.kill9();
    assert_no_plaintext(&[&server.data_dir, &backup], b"pay-priv-ana");
    server.spawn();
    assert_eq!(order(&server, &id)["buyer"], json!({"name": NAME, "email": EMAIL}), "readable after recovery");
    let ticket = server.get(&format!("/v1/tickets/{}?customer=priv-ana", sold["tickets"][0]["id"].as_str().unwrap()));
    assert_eq!(ticket.json["ticket"]["holder"], NAME, "{}", ticket.text);
    assert!(server.terminate(), "graceful stop");
    assert_no_plaintext(&[&server.data_dir, &backup], b"pay-priv-ana");
}

#[test]
fn an_erased_buyer_is_gone_for_good_while_the_order_and_its_tickets_stay_valid() {
    let mut server = Server::start(&[]);
    let sold = buy(&server, "priv-bea", "S105-H-4", Some("confirm-priv-bea"));
    let id = sold["id"].as_str().unwrap().to_string();
    let tickets: Vec<String> =
        sold["tickets"].as_array().unwrap().iter().map(|ticket| ticket["id"].as_str().unwrap().to_string()).collect();
    let code = server.get(&format!("/v1/tickets/{}?customer=priv-bea", tickets[0])).json["ticket"]["code"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/v1/admin/orders/{id}/erase-buyer");
    assert_eq!(server.post(&path, json!({})).status, 401, "admin only");
    assert_eq!(server.admin("POST", "/v1/admin/orders/o0-999/erase-buyer", None).code(), "order_not_found");

    let erased = server.admin("POST", &path, None);
    assert_eq!(erased.status, 200, "{}", erased.text);
    let view = &erased.json["order"];
    assert_eq!(
        (&view["buyer"], &view["buyer_erased"], &view["state"]),
        (&Value::Null, &json!(true), &json!("confirmed"))
    );
    assert_eq!(view["tickets"], sold["tickets"], "the tickets stay");
    assert_eq!(server.admin("POST", &path, None).json, erased.json, "erasing twice answers the same");
    assert_eq!(order(&server, &id), *view);
    // The answer kept for the confirm's retries no longer shows the buyer either.
    let replayed = replay_confirm(&server, &sold, "priv-bea", "confirm-priv-bea");
    assert_eq!(
        (&replayed["buyer"], &replayed["buyer_erased"], &replayed["id"]),
        (&Value::Null, &json!(true), &sold["id"])
    );

    // The tickets still admit; the buyer can no longer prove it is theirs, an admin can.
    let ticket = server.get(&format!("/v1/tickets/{}?customer=priv-bea", tickets[0]));
    assert_eq!((ticket.status, &ticket.json["ticket"]["holder"]), (200, &json!("")), "{}", ticket.text);
    assert_eq!(scan(&server, &code, "p-1")["result"], "admitted");
    let reissue = format!("/v1/tickets/{}/reissue", tickets[0]);
    let by_buyer = server.post(&reissue, json!({"order": id, "email": EMAIL}));
    assert_eq!((by_buyer.status, by_buyer.code()), (404, "ticket_not_found"), "{}", by_buyer.text);
    let other = sell_other_and_reissue_by_buyer(&server);
    assert_eq!(other, 200, "a buyer who was not erased still proves it");

    server.restart();
    assert_eq!(order(&server, &id)["buyer_erased"], true, "recovery keeps the erasure");
    let audit = server.admin("GET", &format!("/v1/events/{EVENT}/audit?limit=500"), None);
    let erasures: Vec<&Value> =
        audit.json["entries"].as_array().unwrap().iter().filter(|entry| entry["action"] == "erase_buyer").collect();
    assert_eq!(erasures.len(), 1, "{}", audit.text);
    assert_eq!(erasures[0]["principal"], "admin");
    assert!(!audit.text.contains("Quellenborg"), "no personal data in the audit log");
    assert!(server.terminate(), "graceful stop");
    let verify = Command::new(env!("CARGO_BIN_EXE_hakken"))
        .current_dir(support::repo_root())
        .args(["audit", "verify"])
        .env("HAKKEN_DATA_DIR", &server.data_dir)
        .env("HAKKEN_LOG", "warn")
        .output()
        .expect("run hakken audit verify");
    let stdout = String::from_utf8_lossy(&verify.stdout);
    assert!(verify.status.success() && stdout.starts_with("audit log intact:"), "{stdout}");
}

/// Sells another seat and reissues its ticket with the buyer's proof; the status.
fn sell_other_and_reissue_by_buyer(server: &Server) -> u16 {
    let sold = buy(server, "priv-cy", "S105-H-5", None);
    let id = sold["id"].as_str().unwrap();
    let ticket = sold["tickets"][0]["id"].as_str().unwrap();
    let path = format!("/v1/tickets/{ticket}/reissue");
    let wrong = server.post(&path, json!({"order": id, "email": "someone@else.example"}));
    let wrong_order = server.post(&path, json!({"order": "o0-9999", "email": EMAIL}));
    assert_eq!((wrong.status, wrong.code()), (wrong_order.status, wrong_order.code()), "fail alike");
    assert_eq!(wrong.status, 404);
    server.post(&path, json!({"order": id, "email": format!("  {}  ", EMAIL.to_uppercase())})).status
}

/// Restarts `server` with these keys, the last one active.
fn restart_with_keys(server: &mut Server, keys: &[&str]) {
    let active = keys.last().unwrap().split_once(':').unwrap().0.to_string();
    server.env = vec![("HAKKEN_PRIVACY_KEYS".into(), keys.join(",")), ("HAKKEN_PRIVACY_ACTIVE_KEY".into(), active)];
    server.restart();
}

fn rewrap(server: &Server) -> Value {
    let reply = server.admin("POST", "/v1/admin/privacy/rewrap", None);
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json
}

#[test]
fn rotated_keys_keep_old_orders_readable_and_a_rewrap_lets_the_old_key_go() {
    let (k1, k2) = (format!("k1:{}", key(1)), format!("k2:{}", key(2)));
    let mut server = Server::start(&[]);
    restart_with_keys(&mut server, &[&k1]);
    let old = buy(&server, "priv-dan", "S105-H-6", None)["id"].as_str().unwrap().to_string();

    restart_with_keys(&mut server, &[&k1, &k2]);
    assert_eq!(order(&server, &old)["buyer"]["email"], EMAIL, "k1 still opens what it sealed");
    let new = buy(&server, "priv-eva", "S105-H-7", None)["id"].as_str().unwrap().to_string();

    // Without k1, what it sealed is unreadable: shown as such, never an error.
    restart_with_keys(&mut server, &[&k2]);
    assert_eq!(order(&server, &new)["buyer"]["name"], NAME, "sealed under k2");
    let unreadable = order(&server, &old);
    assert_eq!(
        (&unreadable["buyer"], &unreadable["buyer_unreadable"], &unreadable["buyer_erased"]),
        (&Value::Null, &json!(true), &json!(false))
    );
    let ticket_id = unreadable["tickets"][0]["id"].as_str().unwrap();
    let ticket = server.get(&format!("/v1/tickets/{ticket_id}?customer=priv-dan"));
    assert_eq!((ticket.status, &ticket.json["ticket"]["holder"]), (200, &json!("")), "{}", ticket.text);
    assert!(server.metrics().contains("hakken_privacy_open_failures_total{reason=\"unknown_key\"}"));
    let tally = rewrap(&server);
    assert_eq!((&tally["resealed"], &tally["already_active"], &tally["unreadable"]), (&json!(0), &json!(1), &json!(1)));

    // With k1 back, a rewrap moves the old order to k2; then k1 can go for good.
    restart_with_keys(&mut server, &[&k1, &k2]);
    let tally = rewrap(&server);
    assert_eq!(
        (&tally["resealed"], &tally["already_active"], &tally["active_key"]),
        (&json!(1), &json!(1), &json!("k2"))
    );
    assert_eq!(rewrap(&server)["resealed"], 0, "nothing more to do");
    restart_with_keys(&mut server, &[&k2]);
    assert_eq!(order(&server, &old)["buyer"], json!({"name": NAME, "email": EMAIL}), "readable under k2 alone");
}

#[test]
fn the_server_refuses_to_start_without_usable_keys() {
    let dir = tempfile::tempdir().unwrap();
    for (keys, active, expected) in [
        ("", "k1", "HAKKEN_PRIVACY_KEYS"),
        ("k1:c2hvcnQ=", "k1", "not base64 of exactly 32 bytes"),
        (&format!("k1:{}", key(1)) as &str, "k9", "\"k9\" is not among the configured keys"),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_hakken"))
            .current_dir(support::repo_root())
            .arg("serve")
            .env("HAKKEN_DATA_DIR", dir.path().join("data"))
            .env("HAKKEN_LISTEN", "127.0.0.1:0")
            .env("HAKKEN_METRICS_LISTEN", "127.0.0.1:0")
            .env("HAKKEN_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("HAKKEN_PRIVACY_KEYS", keys)
            .env("HAKKEN_PRIVACY_ACTIVE_KEY", active)
            .env("HAKKEN_LOG", "warn")
            .output()
            .expect("run hakken");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{keys:?} must refuse");
        assert!(stderr.contains(expected), "{keys:?}: {stderr}");
        assert!(!stderr.contains(&key(1)), "key material is never printed");
    }
}
