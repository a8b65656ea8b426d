//! The `hakken-loadtest` binary against a stand-in server on 127.0.0.1: `generate` is
//! deterministic for a seed, and `verify` exits 0 on a consistent server and 1 (FAIL)
//! on an inconsistent one.

use std::path::Path;
use std::process::{Command, Output};

use bytes::Bytes;
use hakken_loadtest::trivial::{self, Handler};
use hyper::{Method, StatusCode};
use serde_json::json;

/// A tiny event `e1`: reserved section S1 (row A, seats 1-4; 1 and 2 sold in order o1)
/// and a general-admission section GA of 10.
fn stand_in() -> Handler {
    std::sync::Arc::new(|method: &Method, path: &str| {
        let ok = |body: serde_json::Value| (StatusCode::OK, Bytes::from(body.to_string()));
        let counts = |capacity: u32, sold: u32| json!({"capacity": capacity, "available": capacity - sold, "held": 0, "sold": sold});
        let seat = |number: u32, state: &str| json!({"id": format!("S1-A-{number}"), "row": "A", "number": number, "category": "CAT1", "state": state});
        match (method, path) {
            (&Method::GET, "/v1/events/e1") => ok(json!({"event": {
                "id": "e1",
                "sections": [
                    {"id": "S1", "name": "One", "kind": "reserved", "capacity": 4},
                    {"id": "GA", "name": "Floor", "kind": "general_admission", "capacity": 10}],
                "ticket_types": [{"id": "T1", "name": "One", "category": "CAT1", "price_minor": 100}]}})),
            (&Method::GET, "/v1/events/e1/sections/S1/seats") => ok(json!({
                "seats": [seat(1, "sold"), seat(2, "sold"), seat(3, "free"), seat(4, "free")]})),
            (&Method::GET, "/v1/events/e1/availability") => {
                let mut s1 = counts(4, 2);
                s1["id"] = json!("S1");
                s1["kind"] = json!("reserved");
                let mut ga = counts(10, 0);
                ga["id"] = json!("GA");
                ga["kind"] = json!("general_admission");
                ok(json!({"event": "e1", "total": counts(14, 2), "sections": [s1, ga]}))
            }
            (&Method::GET, "/v1/orders/o1") => ok(json!({"order": {
                "id": "o1", "section": "S1", "state": "confirmed",
                "tickets": [{"id": "t1", "seat": "S1-A-1"}, {"id": "t2", "seat": "S1-A-2"}]}})),
            _ => (StatusCode::NOT_FOUND, Bytes::from(r#"{"error": {"code": "not_found", "message": "no"}}"#)),
        }
    })
}

/// Serves the stand-in on a thread of its own; returns its base URL.
fn start_stand_in() -> String {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            sender.send(listener.local_addr().expect("address")).expect("send");
            trivial::serve(listener, stand_in()).await
        })
    });
    format!("http://{}", receiver.recv().expect("the stand-in starts"))
}

fn tool(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hakken-loadtest")).args(args).output().expect("runs hakken-loadtest")
}

fn generate(target: &str, seed: &str, out: &Path) -> Vec<u8> {
    let out_arg = out.to_str().expect("utf-8 path");
    let output = tool(&[
        "generate",
        "--target",
        target,
        "--event",
        "e1",
        "--seed",
        seed,
        "--buyers",
        "500",
        "--shape",
        "spike",
        "--spike-window",
        "2s",
        "--spike-tail",
        "5s",
        "--out",
        out_arg,
    ]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    std::fs::read(out).expect("the queue file")
}

#[test]
fn generate_is_deterministic_for_a_seed() {
    let target = start_stand_in();
    let dir = tempfile::tempdir().expect("temp dir");
    let first = generate(&target, "42", &dir.path().join("a.jsonl"));
    let again = generate(&target, "42", &dir.path().join("b.jsonl"));
    let other = generate(&target, "43", &dir.path().join("c.jsonl"));
    assert_eq!(first, again, "the same seed must give the same file");
    assert_ne!(first, other, "another seed must give another file");
    let text = String::from_utf8(first).expect("utf-8");
    assert_eq!(text.lines().count(), 501);
    assert!(
        text.starts_with(r#"{"hakken_queue":1,"event":"e1","shape":"spike","seed":42,"buyers":500"#),
        "{text:.200}"
    );
}

fn verify(target: &str, ledger: serde_json::Value, dir: &Path) -> Output {
    let path = dir.join("ledger.json");
    std::fs::write(&path, ledger.to_string()).expect("write the ledger");
    tool(&["verify", "--target", target, "--ledger", path.to_str().expect("utf-8 path")])
}

fn ledger(orders: serde_json::Value) -> serde_json::Value {
    let counts = |capacity: u32| json!({"capacity": capacity, "available": capacity, "held": 0, "sold": 0});
    let mut s1 = counts(4);
    s1["kind"] = json!("reserved");
    let mut ga = counts(10);
    ga["kind"] = json!("general_admission");
    json!({
        "event": "e1",
        "run_id": "test",
        "baseline": {"total": counts(14), "sections": {"S1": s1, "GA": ga}},
        "orders": orders,
    })
}

#[test]
fn verify_passes_a_consistent_server_and_fails_an_inconsistent_one() {
    let target = start_stand_in();
    let dir = tempfile::tempdir().expect("temp dir");
    let o1 = json!({"id": "o1", "customer": "c1", "section": "S1",
        "tickets": [{"id": "t1", "seat": "S1-A-1"}, {"id": "t2", "seat": "S1-A-2"}]});

    let output = verify(&target, ledger(json!([o1])), dir.path());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.starts_with("verdict: PASS"), "{stdout}");

    // The run was told of an order the server does not have: an acknowledged sale lost.
    let o2 = json!({"id": "o2", "customer": "c2", "section": "S1", "tickets": [{"id": "t3", "seat": "S1-A-3"}]});
    let output = verify(&target, ledger(json!([o1, o2])), dir.path());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.starts_with("verdict: FAIL"), "{stdout}");
    assert!(stdout.contains("order o2 was acknowledged but the server does not know it"), "{stdout}");
    assert!(stdout.contains("seat S1-A-3 of order o2 is free, not sold"), "{stdout}");
    assert!(stdout.contains("section S1: the server's sold count went from 0 to 2 (+2)"), "{stdout}");

    // The server sold seats no buyer of the run was told about.
    let output = verify(&target, ledger(json!([])), dir.path());
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stdout).contains("but the run's confirmed orders hold 0 seats there"));

    // Tool errors are not verdicts: exit 2.
    let output = tool(&["verify", "--target", &target, "--ledger", "/nonexistent/ledger.json"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).starts_with("error: opening /nonexistent/ledger.json"));
}

#[test]
fn bad_sink_flags_are_usage_errors() {
    let check = |args: &[&str], expected: &str| {
        let output = tool(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    };
    check(&["run", "--smtp-sink", "127.0.0.1:2525", "--smtp-sink-outage", "70s..10s"], "END must be after START");
    check(&["run", "--smtp-sink", "127.0.0.1:2525", "--smtp-sink-outage", "10s"], "give START..END");
    check(&["run", "--smtp-sink-outage", "10s..70s"], "--smtp-sink <ADDR>");
    check(&["run", "--smtp-sink", "localhost:2525"], "invalid socket address");
    check(&["run", "--webhook-sink", "127.0.0.1:2526", "--webhook-secret", "secret"], "starts with \"whsec_\"");
    check(&["run", "--webhook-secret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"], "--webhook-sink <ADDR>");
    // A port already taken: the tool cannot run (after connecting to its target).
    let target = start_stand_in();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = taken.local_addr().expect("address").to_string();
    check(
        &["run", "--target", &target, "--event", "e1", "--duration", "1s", "--smtp-sink", &address],
        "--smtp-sink: cannot listen on",
    );
}

/// Bad waiting-room flags are refused before anything is read or sent: exit 2, naming
/// the flag and why.
#[test]
fn bad_waiting_room_flags_exit_2_with_the_reason() {
    let check = |args: &[&str], expected: &str| {
        let output = tool(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr:?} should mention {expected:?}");
    };
    let generate = ["generate", "--out", "/nonexistent/q.jsonl", "--target", "http://127.0.0.1:1"];
    let with = |extra: &[&'static str]| [&generate[..], extra].concat();
    check(&with(&["--queue", "--queue-early-share", "1.5"]), "\"1.5\" is not a share");
    check(&with(&["--queue", "--queue-early-share=-0.1"]), "\"-0.1\" is not a share");
    check(&with(&["--queue", "--queue-early", "0s"]), "must be more than 0 and at most 7 days");
    check(&with(&["--queue", "--queue-early", "20000m"]), "at most 7 days");
    check(&with(&["--queue", "--queue-early", "soon"]), "is not a duration");
    check(&with(&["--queue-early-share", "0.5"]), "--queue");
    check(&["replay", "q.jsonl", "--waiting-room", "maybe"], "possible values: auto, on, off");
}
