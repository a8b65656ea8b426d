//! The real `hakken` binary on loopback, and a small blocking HTTP/1.1 client.
//!
//! The client writes requests byte for byte (so tests can send malformed JSON, wrong
//! content types and oversized bodies) and closes the connection after each answer.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

pub(crate) const ADMIN_TOKEN: &str = "test-admin-token";
pub(crate) const GATE_TOKEN: &str = "test-gate-token";
pub(crate) const EVENT: &str = "demo-2027";

pub(crate) fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("api/ is in the workspace").to_path_buf()
}

/// A `hakken serve` process with its own data dir, listening on ephemeral ports.
pub(crate) struct Server {
    child: Option<Child>,
    pub(crate) address: String,
    pub(crate) metrics_address: String,
    pub(crate) data_dir: PathBuf,
    /// Extra environment of the process; changes apply at the next [`Server::spawn`].
    pub(crate) env: Vec<(String, String)>,
    /// `--config` of the process; the repository's `config/hakken.toml` when `None`.
    pub(crate) config: Option<PathBuf>,
    _dir: Option<tempfile::TempDir>,
}

impl Server {
    pub(crate) fn start(env: &[(&str, &str)]) -> Server {
        Server::start_with_config(None, env)
    }

    pub(crate) fn start_with_config(config: Option<PathBuf>, env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let data_dir = dir.path().join("data");
        let env = env.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect();
        let mut server = Server {
            child: None,
            address: String::new(),
            metrics_address: String::new(),
            data_dir,
            env,
            config,
            _dir: Some(dir),
        };
        server.spawn();
        server
    }

    /// Starts the process (again) on the same data dir and waits until it is ready.
    pub(crate) fn spawn(&mut self) {
        let mut command = Command::new(env!("CARGO_BIN_EXE_hakken"));
        command
            .current_dir(repo_root())
            .arg("--config")
            .arg(self.config.clone().unwrap_or_else(|| repo_root().join("config/hakken.toml")))
            .arg("serve")
            .env("HAKKEN_DATA_DIR", &self.data_dir)
            .env("HAKKEN_LISTEN", "127.0.0.1:0")
            .env("HAKKEN_METRICS_LISTEN", "127.0.0.1:0")
            .env("HAKKEN_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("HAKKEN_GATE_TOKEN", GATE_TOKEN)
            // The demo event is in 2027: let its doors be open for the tests.
            .env("HAKKEN_GATES_DOORS_OPEN_BEFORE_START_S", "315360000")
            .env("HAKKEN_LOG", "warn")
            // Tests check counts right after the changes they make: read them afresh
            // (overload_edge.rs turns the cache on to test it).
            .env("HAKKEN_HTTP_AVAILABILITY_CACHE_MS", "0")
            // Tests confirm holds on trust unless they test payments (payments.rs
            // sets the provider it tests).
            .env("HAKKEN_PAYMENTS_PROVIDER", "external")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (name, value) in &self.env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("start hakken");
        let stdout = child.stdout.take().expect("piped stdout");
        let (lines, received) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let line = received
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .expect("hakken printed its addresses and became ready within 60 s");
            if let Some(rest) = line.strip_prefix("hakken listening on http://") {
                let (address, metrics) = rest.split_once(" (metrics on http://").expect("address line");
                self.address = address.to_string();
                self.metrics_address = metrics.trim_end_matches("/metrics)").to_string();
            }
            if line.starts_with("hakken ready") {
                break;
            }
        }
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || while received.recv().is_ok() {});
    }

    /// The process id (for signals: SIGSTOP, SIGCONT).
    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().expect("the server runs").id()
    }

    /// SIGKILL: nothing gets flushed, as in a crash.
    pub(crate) fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// One crash cycle of a crash test: SIGKILL, stop the buyers (`stop`, then join
    /// them), and start the server again on the same store, alternating `async` and
    /// `sync` durability from cycle to cycle.
    pub(crate) fn kill9_and_restart(
        &mut self,
        cycle: usize,
        stop: &std::sync::atomic::AtomicBool,
        buyers: Vec<std::thread::JoinHandle<()>>,
    ) {
        self.kill9();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for buyer in buyers {
            buyer.join().unwrap();
        }
        let durability = if cycle % 2 == 0 { "async" } else { "sync" };
        self.env.retain(|(name, _)| name != "HAKKEN_STORAGE_DURABILITY");
        self.env.push(("HAKKEN_STORAGE_DURABILITY".into(), durability.into()));
        self.spawn();
    }

    /// SIGTERM and wait: the graceful shutdown path. Returns whether it exited 0.
    pub(crate) fn terminate(&mut self) -> bool {
        let Some(mut child) = self.child.take() else { return false };
        let status = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().expect("kill -TERM");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status.success();
            }
            assert!(Instant::now() < deadline, "hakken did not stop within 30 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(crate) fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    pub(crate) fn get(&self, path: &str) -> Reply {
        self.request("GET", path, &[], None)
    }

    pub(crate) fn post(&self, path: &str, body: Value) -> Reply {
        self.request("POST", path, &[], Some(&body.to_string()))
    }

    pub(crate) fn post_with(&self, path: &str, headers: &[(&str, &str)], body: Value) -> Reply {
        self.request("POST", path, headers, Some(&body.to_string()))
    }

    /// A request with the gate token.
    pub(crate) fn gate(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        let auth = format!("Bearer {GATE_TOKEN}");
        self.request(method, path, &[("Authorization", &auth)], body.map(|body| body.to_string()).as_deref())
    }

    pub(crate) fn admin(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        let auth = format!("Bearer {ADMIN_TOKEN}");
        self.request(method, path, &[("Authorization", &auth)], body.map(|body| body.to_string()).as_deref())
    }

    /// A JSON request (`Content-Type: application/json` when there is a body).
    pub(crate) fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&str>) -> Reply {
        let mut all: Vec<(&str, &str)> = headers.to_vec();
        if body.is_some() && !headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("content-type")) {
            all.push(("Content-Type", "application/json"));
        }
        raw_request(&self.address, method, path, &all, body.unwrap_or("").as_bytes())
    }

    pub(crate) fn metrics(&self) -> String {
        let reply = raw_request(&self.metrics_address, "GET", "/metrics", &[], b"");
        assert_eq!(reply.status, 200);
        reply.text
    }

    // ---- the purchase flow, asserting success ----

    pub(crate) fn hold(&self, body: Value) -> Value {
        let reply = self.post(&format!("/v1/events/{EVENT}/holds"), body);
        assert_eq!(reply.status, 201, "hold: {}", reply.text);
        reply.json["hold"].clone()
    }

    pub(crate) fn confirm(&self, hold: &str, customer: &str) -> Value {
        let reply = self.post(&format!("/v1/holds/{hold}/confirm"), confirm_body(customer));
        assert_eq!(reply.status, 201, "confirm: {}", reply.text);
        reply.json["order"].clone()
    }

    /// Seat id → state of one section's seat map.
    pub(crate) fn seat_states(&self, section: &str) -> std::collections::HashMap<String, String> {
        let reply = self.get(&format!("/v1/events/{EVENT}/sections/{section}/seats"));
        assert_eq!(reply.status, 200, "{}", reply.text);
        reply.json["seats"]
            .as_array()
            .expect("seats")
            .iter()
            .map(|seat| (seat["id"].as_str().unwrap().to_string(), seat["state"].as_str().unwrap().to_string()))
            .collect()
    }

    /// (available, held, sold) of one section.
    pub(crate) fn counts(&self, section: &str) -> (u64, u64, u64) {
        let reply = self.get(&format!("/v1/events/{EVENT}/availability"));
        assert_eq!(reply.status, 200, "{}", reply.text);
        let sections = reply.json["sections"].as_array().expect("sections");
        let found = sections.iter().find(|s| s["id"] == section).expect("section in availability");
        let count = |key: &str| found[key].as_u64().unwrap();
        (count("available"), count("held"), count("sold"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub(crate) fn confirm_body(customer: &str) -> Value {
    serde_json::json!({
        "customer": customer,
        "payment_reference": format!("pay-{customer}"),
        "buyer": {"name": format!("Buyer {customer}"), "email": format!("{customer}@example.com")}
    })
}

#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) text: String,
    /// `Null` when the body is not JSON.
    pub(crate) json: Value,
    /// The body as received (images).
    pub(crate) body: Vec<u8>,
}

impl Reply {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }

    pub(crate) fn code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or("")
    }
}

pub(crate) fn raw_request(address: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    try_raw_request(address, method, path, headers, body).expect("a complete answer from hakken")
}

/// As [`raw_request`], but a dead server is an error rather than a panic (crash tests).
pub(crate) fn try_raw_request(
    address: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Reply> {
    try_raw_request_within(Duration::from_secs(30), address, method, path, headers, body)
}

/// [`try_raw_request`] with a read timeout of its own (a paused server never answers).
pub(crate) fn try_raw_request_within(
    timeout: Duration,
    address: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Reply> {
    let mut stream = TcpStream::connect(address)?;
    stream.set_read_timeout(Some(timeout))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || method == "POST" || method == "PATCH" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    // The server may answer (413) and close before it read a large body.
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    parse_reply(&raw).ok_or_else(|| std::io::Error::other("incomplete HTTP answer"))
}

fn parse_reply(raw: &[u8]) -> Option<Reply> {
    let split = raw.windows(4).position(|window| window == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_string(), value.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    let text = String::from_utf8_lossy(&body).to_string();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Some(Reply { status, headers, text, json, body })
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = body.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&body[..line_end]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = line_end + 2;
        out.extend_from_slice(&body[start..start + size]);
        body = &body[start + size + 2..];
    }
    out
}

/// The demo event's layout as the load tool reads it from the server at `target`.
pub(crate) fn demo_layout(runtime: &tokio::runtime::Runtime, target: &str) -> hakken_loadtest::layout::Layout {
    event_layout(runtime, target, EVENT, true)
}

/// `event`'s layout as the load tool reads it from the server at `target` (`seat_maps`:
/// the seat maps too).
pub(crate) fn event_layout(
    runtime: &tokio::runtime::Runtime,
    target: &str,
    event: &str,
    seat_maps: bool,
) -> hakken_loadtest::layout::Layout {
    use hakken_loadtest::client::{Pool, PoolConfig, Target};
    runtime.block_on(async {
        let pool = Pool::new(
            Target::resolve(target).await.expect("target"),
            PoolConfig { connections_max: 1, connect_timeout: Duration::from_secs(5) },
        );
        hakken_loadtest::layout::Layout::fetch(&pool, event, seat_maps, Duration::from_secs(10)).await.expect("layout")
    })
}

/// The load tool's replay settings shared by the rehearsals: `run_id` prefixes the
/// customers, 32 connections, 3 retries of a 503/429 waiting at most 2 s, verdict on,
/// one runtime thread, trusted confirms. A test changes what it needs by struct update.
pub(crate) fn replay_config(target: &str, run_id: &str) -> hakken_loadtest::replay::ReplayConfig {
    hakken_loadtest::replay::ReplayConfig {
        target: target.to_string(),
        event: None,
        time_scale: 1.0,
        duration: None,
        connections: 32,
        queue_long_polls: 64,
        in_flight_max: None,
        request_timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(5),
        drain_timeout: None,
        retries: 3,
        retry_after_max: Duration::from_secs(2),
        run_id: Some(run_id.to_string()),
        progress: false,
        verdict: true,
        threads: 1,
        payments: Default::default(),
        server_metrics: None,
    }
}

/// An event file: `id` on the demo venue's floor (one ticket type, 50 EUR), on sale
/// `opens_in` from now behind a waiting room letting `admit_per_s` buyers in a second.
pub(crate) fn queued_demo_event(id: &str, opens_in: Duration, admit_per_s: u32) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970");
    let opens_at =
        hakken_engine::event::format_instant(hakken_engine::clock::Millis((now + opens_in).as_millis() as u64));
    format!(
        "[event]\nid = \"{id}\"\nname = \"Queued\"\nvenue = \"hakken-stadium\"\nstarts_at = 2030-01-01T20:00:00Z\n\
         on_sale_opens_at = {opens_at}\non_sale_closes_at = 2030-01-01T18:00:00Z\ncurrency = \"EUR\"\n\n\
         [[ticket_type]]\nid = \"FLOOR\"\nname = \"Floor\"\ncategory = \"FLOOR\"\nprice_minor = 5000\n\n\
         [queue]\nadmit_per_s_min = {admit_per_s}\nadmit_per_s_max = {admit_per_s}\naccess_window_s = 60\n"
    )
}
