//! The SRE stack of `config/sre/` against real parts: Debian's `promtool` and `amtool`
//! check and unit-test the shipped rules and configs; then a real Prometheus scrapes a
//! real `hakken serve` through a paid on-sale rehearsal, gate scans and notifications,
//! every recording rule and every dashboard panel's query returns data, and an overload
//! made on purpose fires the on-sale SLO page, which a real Alertmanager, routed by the
//! shipped config, delivers to a webhook receiver of the test.
//!
//! Needs `prometheus`, `prometheus-alertmanager` (Debian) and `grafana-foundation-sdk`
//! (PyPI) installed, as `.ci/run` does: without them the tests fail, saying what is missing.

#[allow(dead_code)] // Only some of the test cluster's controls are used here.
#[path = "../../engine/cluster/tests/support/mod.rs"]
mod nats;
#[path = "support/notify.rs"]
mod notify;
mod support;

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hakken_loadtest::generate::{self, GenerateConfig, Mix, Shape};
use hakken_loadtest::replay::{self, PaymentMode, PaymentSettings, ReplayConfig};
use hakken_loadtest::server_metrics::ServerFigures;
use notify::{wait_for, Answer, Receiver};
use serde_json::{json, Value};
use support::{raw_request, repo_root, Server, ADMIN_TOKEN, EVENT};

const SALES_TOKEN: &str = "test-sales-token";
/// Every shipped dashboard; `cluster`'s panels are filled by a cluster of nodes (the
/// last test), the others by one node's sale.
const DASHBOARDS: [&str; 6] = ["on-sale", "sections", "payments", "gates", "engine", "cluster"];

fn sre(path: &str) -> PathBuf {
    repo_root().join("config/sre").join(path)
}

/// Runs a tool of the stack; panics with its output (or with what to install) on failure.
fn run(program: &str, args: &[&str], cwd: &Path) -> Output {
    let output = Command::new(program).args(args).current_dir(cwd).output().unwrap_or_else(|error| {
        panic!(
            "{program} could not run ({error}): install Debian's prometheus and prometheus-alertmanager (.ci/run does)"
        )
    });
    assert!(
        output.status.success(),
        "{program} {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Every query of every shipped dashboard, read back by grafana-foundation-sdk (which
/// refuses JSON that is not a Grafana 11 dashboard): (dashboard, panel, expression).
fn dashboard_queries() -> Vec<(String, String, String)> {
    let output = Command::new("python3")
        .arg(sre("dashboards.py"))
        .arg("--check")
        .output()
        .expect("python3 runs config/sre/dashboards.py");
    assert!(
        output.status.success(),
        "dashboards.py --check failed (is grafana-foundation-sdk installed? .ci/run installs it):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let query: Value = serde_json::from_str(line).expect("one JSON object a line");
            let text = |key: &str| query[key].as_str().expect(key).to_string();
            (text("dashboard"), text("panel"), text("expr"))
        })
        .collect()
}

/// The names of the alerts (or recording rules) of a rule file, in file order.
fn rule_names(file: &str, kind: &str) -> Vec<String> {
    let text = std::fs::read_to_string(sre(file)).unwrap();
    let prefix = format!("- {kind}: ");
    text.lines().filter_map(|line| line.trim().strip_prefix(&prefix)).map(str::to_string).collect()
}

#[test]
fn the_shipped_rules_configs_dashboards_and_runbook_check_out() {
    let dir = sre("");
    run("promtool", &["check", "rules", "rules/recording.yml", "rules/alerts.yml"], &dir);
    run("promtool", &["check", "config", "prometheus.yml"], &dir);
    run("amtool", &["check-config", "alertmanager.yml"], &dir);
    let tests = ["tests/slo_test.yml", "tests/slo_budget_test.yml", "tests/causes_test.yml"];
    let listed: BTreeSet<String> = std::fs::read_dir(sre("tests"))
        .unwrap()
        .map(|entry| format!("tests/{}", entry.unwrap().file_name().to_string_lossy()))
        .collect();
    assert_eq!(listed, tests.iter().map(|test| test.to_string()).collect(), "every rule test file is run here");
    let mut args = vec!["test", "rules"];
    args.extend(tests);
    run("promtool", &args, &dir);

    // Every alert is unit-tested, has a runbook entry, and its annotation links to it.
    let alerts = rule_names("rules/alerts.yml", "alert");
    assert!(alerts.len() >= 20, "{alerts:?}");
    let tested: String = tests.iter().map(|test| std::fs::read_to_string(sre(test)).unwrap()).collect();
    let runbook = std::fs::read_to_string(sre("runbook.md")).unwrap();
    let rules = std::fs::read_to_string(sre("rules/alerts.yml")).unwrap();
    for alert in &alerts {
        assert!(tested.contains(&format!("alertname: {alert}\n")), "{alert} has no firing unit test");
        assert!(runbook.contains(&format!("\n### {alert}\n")), "{alert} has no runbook entry");
        let link = format!("runbook: \"config/sre/runbook.md#{}\"", alert.to_lowercase());
        assert!(rules.contains(&link), "{alert}'s runbook annotation is not {link}");
    }

    // The committed dashboards are what dashboards.py builds (regenerated elsewhere,
    // compared), and each has queries.
    let fresh = tempfile::tempdir().unwrap();
    let built = Command::new("python3")
        .arg(sre("dashboards.py"))
        .arg("--out")
        .arg(fresh.path())
        .output()
        .expect("python3 runs config/sre/dashboards.py");
    assert!(built.status.success(), "{}", String::from_utf8_lossy(&built.stderr));
    for name in DASHBOARDS {
        let file = format!("{name}.json");
        let committed = std::fs::read_to_string(sre("dashboards").join(&file)).unwrap();
        let rebuilt = std::fs::read_to_string(fresh.path().join(&file)).unwrap();
        assert!(committed == rebuilt, "config/sre/dashboards/{file} is stale: run python3 config/sre/dashboards.py");
    }
    let queries = dashboard_queries();
    for name in DASHBOARDS {
        assert!(queries.iter().filter(|(dashboard, _, _)| dashboard == name).count() >= 4, "{name}: {queries:?}");
    }

    // Every panel a runbook entry sends the SRE to is one the dashboards have, by its
    // title (a renamed panel would leave the runbook pointing at nothing).
    let titles: BTreeSet<String> = DASHBOARDS
        .iter()
        .flat_map(|name| {
            let text = std::fs::read_to_string(sre("dashboards").join(format!("{name}.json"))).unwrap();
            let dashboard: Value = serde_json::from_str(&text).unwrap();
            let panels = dashboard["panels"].as_array().cloned().unwrap_or_default();
            panels.into_iter().filter_map(|panel| panel["title"].as_str().map(str::to_string)).collect::<Vec<_>>()
        })
        .collect();
    let pointed = runbook_panel_titles(&runbook);
    assert!(pointed.len() >= 8, "{pointed:?}");
    for title in &pointed {
        assert!(titles.contains(title), "the runbook points at a panel \"{title}\" no dashboard has: {titles:?}");
    }
}

/// The quoted names in the runbook's "**Look at:**" parts (up to their "**Do:**"),
/// each on one line: the panels the entries send the SRE to.
fn runbook_panel_titles(runbook: &str) -> Vec<String> {
    runbook
        .split("**Look at:**")
        .skip(1)
        .flat_map(|part| {
            let look = part.split("**Do:**").next().unwrap_or_default();
            look.split('"').skip(1).step_by(2).map(|quoted| quoted.split_whitespace().collect::<Vec<_>>().join(" "))
        })
        .collect()
}

/// A port free on 127.0.0.1 now (for a server that takes its port from the command line).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A child process killed when the test ends, however it ends.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `program` with its output in `log` (read back by [`log_of`] when a wait fails).
fn spawn(program: &str, args: &[String], log: &Path) -> Process {
    let output = std::fs::File::create(log).unwrap();
    let child = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(output)
        .spawn()
        .unwrap_or_else(|error| panic!("{program} could not start ({error}): .ci/run installs it"));
    Process(child)
}

/// The last lines a process logged (Prometheus and Alertmanager log to stderr).
fn log_of(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// Prometheus's HTTP API: the result of an instant query (`None` on an error answer).
fn instant_query(prometheus: &str, expr: &str) -> Option<Vec<Value>> {
    // Not listening yet (still starting): no answer, as an error answer.
    std::net::TcpStream::connect(prometheus).ok()?;
    let path = format!("/api/v1/query?query={}", percent_encode(expr));
    let reply = raw_request(prometheus, "GET", &path, &[], b"");
    (reply.json["status"] == "success").then(|| reply.json["data"]["result"].as_array().cloned().unwrap_or_default())
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (byte as char).to_string(),
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// A dashboard query as Grafana would send it, its variables filled in: both events (a
/// multi-value variable is sent as a regex alternation), every section, a 1 m rate
/// interval, the last 10 minutes as the range.
fn as_grafana_sends(expr: &str) -> String {
    expr.replace("$event", &format!("({EVENT}|{QUEUED})"))
        .replace("$section", ".*")
        .replace("$__rate_interval", "1m")
        .replace("$__range", "10m")
}

/// hakken with the embedded test PSP, two notification webhooks (one refuses: dead
/// letters), a sales token for trusted confirms, and an in-flight ceiling low enough
/// for a burst from the test to push the sale past it.
fn start_hakken(dir: &Path, delivered: &Receiver, refusing: &Receiver) -> Server {
    let config =
        notify::config_file(dir, &[(&delivered.url, &["order.confirmed"]), (&refusing.url, &["order.confirmed"])]);
    let config_dir = repo_root().join("config");
    let path = |relative: &str| config_dir.join(relative).to_str().unwrap().to_string();
    let queued = dir.join("queued.toml");
    std::fs::write(&queued, support::queued_demo_event(QUEUED, Duration::from_secs(3), 10)).unwrap();
    let events = format!("{},{}", path("events/demo.toml"), queued.display());
    let env = [
        ("HAKKEN_VENUES", path("venues/hakken-stadium.toml")),
        ("HAKKEN_EVENTS", events),
        ("HAKKEN_NOTIFICATIONS_TEMPLATES_DIR", path("notifications/templates")),
        ("HAKKEN_PAYMENTS_PROVIDER", "test".into()),
        ("HAKKEN_SALES_TOKEN", SALES_TOKEN.into()),
        ("HAKKEN_ENGINE_HOLD_TTL_MS", "5000".into()),
        ("HAKKEN_PAYMENTS_PAYMENT_WINDOW_MS", "1500".into()),
        ("HAKKEN_PAYMENTS_WEBHOOK_GRACE_MS", "500".into()),
        ("HAKKEN_PAYMENTS_SWEEP_INTERVAL_MS", "200".into()),
        ("HAKKEN_HTTP_IN_FLIGHT_MAX", "8".into()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(name, value)| (*name, value.as_str())).collect();
    Server::start_with_config(Some(config), &env)
}

const QUEUED: &str = "queued";

/// Buyers join the queued event's room (let in at 10 a second), poll once they are
/// told an ETA, and are let in (the ETA error panel's samples); one holds with its
/// access while another tries without one.
fn queue_rehearsal(server: &Server) {
    let buyers = 30;
    let tokens: Vec<String> = (0..buyers)
        .map(|buyer| {
            let reply = server.post(&format!("/v1/events/{QUEUED}/queue"), json!({ "customer": format!("q{buyer}") }));
            assert_eq!(reply.status, 201, "{}", reply.text);
            reply.json["queue"]["token"].as_str().unwrap().to_string()
        })
        .collect();
    let place = |token: &str| server.get(&format!("/v1/queue/{token}")).json["queue"].clone();
    let access = wait_for("a buyer is let in from the waiting room", 30, || {
        place(&tokens[0])["access"].as_str().map(str::to_string)
    });
    // Admissions are measured now: every buyer still waiting is told an ETA.
    let told = tokens.iter().filter(|token| place(token)["eta_s"].is_number()).count();
    assert!(told > 0, "nobody waiting was told an ETA");
    wait_for("the last buyer is let in", 30, || (place(&tokens[buyers - 1])["state"] == "admitted").then_some(()));
    let hold = |customer: &str, headers: &[(&str, &str)]| {
        let body = json!({ "customer": customer, "section": "FLOOR-A", "quantity": 1 });
        server.post_with(&format!("/v1/events/{QUEUED}/holds"), headers, body)
    };
    assert_eq!(hold("q0", &[("Hakken-Access", &access)]).status, 201);
    assert_eq!(hold("q1", &[]).code(), "queue_required");
}

/// Prometheus on `port` with the shipped config and rules, scraping `metrics` every
/// second (the shipped 5 s would make the test slow) and alerting `alertmanager`.
fn start_prometheus(dir: &Path, port: u16, metrics: &str, alertmanager: &str) -> Process {
    start_prometheus_of(dir, port, &[metrics], alertmanager)
}

/// [`start_prometheus`] scraping each of `targets` as job `hakken` (a cluster's nodes).
fn start_prometheus_of(dir: &Path, port: u16, targets: &[&str], alertmanager: &str) -> Process {
    let shipped = std::fs::read_to_string(sre("prometheus.yml")).unwrap();
    let rules = |file: &str| sre(file).to_str().unwrap().to_string();
    let config = shipped
        .replace("scrape_interval: 5s", "scrape_interval: 1s")
        .replace("scrape_timeout: 4s", "scrape_timeout: 900ms")
        .replace("evaluation_interval: 5s", "evaluation_interval: 1s")
        .replace("rules/recording.yml", &rules("rules/recording.yml"))
        .replace("rules/alerts.yml", &rules("rules/alerts.yml"))
        .replace("127.0.0.1:9093", alertmanager)
        .replace(
            "\"127.0.0.1:9190\"",
            &targets.iter().map(|target| format!("\"{target}\"")).collect::<Vec<_>>().join(", "),
        );
    assert!(targets.iter().all(|target| config.contains(target)) && config.contains(alertmanager), "{config}");
    let file = dir.join("prometheus.yml");
    std::fs::write(&file, config).unwrap();
    spawn(
        "prometheus",
        &[
            format!("--config.file={}", file.display()),
            format!("--storage.tsdb.path={}", dir.join("tsdb").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
        ],
        &dir.join("prometheus.log"),
    )
}

/// Alertmanager on `port` with the shipped routes, its receivers posting to `receiver`;
/// gossip off (it would listen on every address).
fn start_alertmanager(dir: &Path, port: u16, receiver: &str) -> Process {
    let shipped = std::fs::read_to_string(sre("alertmanager.yml")).unwrap();
    let config = shipped.replace("http://127.0.0.1:9094", receiver);
    assert!(config.contains(receiver), "{config}");
    let file = dir.join("alertmanager.yml");
    std::fs::write(&file, config).unwrap();
    spawn(
        "prometheus-alertmanager",
        &[
            format!("--config.file={}", file.display()),
            format!("--storage.path={}", dir.join("alertmanager").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            "--cluster.listen-address=".to_string(),
        ],
        &dir.join("alertmanager.log"),
    )
}

/// A paid on-sale rehearsal of `buyers` (the load tool pays like a browser, at the
/// embedded PSP, and reads the server's metrics at `metrics_url` as it goes); returns
/// the orders paid and the server's account of the run.
fn paid_rehearsal(target: &str, metrics_url: &str, buyers: u64) -> (u64, ServerFigures) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let layout = support::demo_layout(&runtime, target);
    let generated = GenerateConfig {
        seed: 14,
        buyers,
        shape: Shape::Spike { window: Duration::from_secs(3), share: 0.8, tail: Duration::from_secs(3) },
        mix: Mix { abandon_share: 0.05, poll_share: 0.2, think_median: Duration::from_millis(20), ..Mix::default() },
    };
    let queue = generate::generate(&layout, &generated).expect("queue");
    let payments = PaymentSettings {
        mode: PaymentMode::Browser,
        decline_share: 0.1,
        decline_retry_share: 0.5,
        poll_timeout: Duration::from_secs(20),
        psp_secret_key: Some("sk_test_hakken_fakepsp".into()),
        admin_token: Some(ADMIN_TOKEN.into()),
        settle_timeout: Duration::from_secs(40),
        ..PaymentSettings::default()
    };
    let config = ReplayConfig {
        // Below the server's in-flight ceiling: this sale is healthy.
        connections: 4,
        queue_long_polls: 4,
        retries: 5,
        threads: 2,
        payments,
        server_metrics: Some(metrics_url.to_string()),
        ..support::replay_config(target, "sre")
    };
    let outcome =
        runtime.block_on(replay::replay(queue, "generated".into(), config, std::future::pending())).expect("replay");
    let report = &outcome.report;
    assert!(report.to_string().contains(&format!("server ({metrics_url}/metrics)")), "{report}");
    let paid = report.payments.as_ref().map_or(0, |payments| payments.paid_orders);
    (paid, report.server.clone().expect("the server's figures"))
}

/// A trusted sale of one seat, and its ticket scanned twice at the gate: admitted, then
/// refused as already admitted (the duplicate-scan panel's data).
fn sell_and_scan_twice(server: &Server) {
    let hold = server.hold(json!({"customer": "gina", "section": "S101", "quantity": 1}));
    let auth = format!("Bearer {SALES_TOKEN}");
    let path = format!("/v1/holds/{}/confirm", hold["id"].as_str().unwrap());
    let reply = server.post_with(&path, &[("Authorization", &auth)], support::confirm_body("gina"));
    assert_eq!(reply.status, 201, "{}", reply.text);
    let ticket_id = reply.json["order"]["tickets"][0]["id"].as_str().unwrap().to_string();
    let ticket = server.get(&format!("/v1/tickets/{ticket_id}?customer=gina"));
    assert_eq!(ticket.status, 200, "{}", ticket.text);
    let code = ticket.json["ticket"]["code"].as_str().unwrap().to_string();
    for (scan_id, result) in [("s1", "admitted"), ("s2", "already_admitted")] {
        let scanned =
            server.gate("POST", "/v1/scan", Some(json!({"code": code, "gate": "north-1", "scan_id": scan_id})));
        assert_eq!(scanned.status, 200, "{}", scanned.text);
        assert_eq!(scanned.json["result"], result, "{}", scanned.text);
    }
}

/// Many buyers at once, far past the server's in-flight ceiling, for `seconds`: most are
/// shed with 503 `overloaded`. Returns (answered 201, shed 503).
fn flash_crowd(server: &Server, threads: usize, seconds: u64) -> (u64, u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let address = server.address.clone();
    let workers: Vec<_> = (0..threads)
        .map(|thread| {
            let (stop, address) = (stop.clone(), address.clone());
            std::thread::spawn(move || {
                let (mut held, mut shed) = (0, 0);
                let mut request = 0;
                while !stop.load(Ordering::Relaxed) {
                    request += 1;
                    let body =
                        json!({"customer": format!("crowd-{thread}-{request}"), "section": "S102", "quantity": 1});
                    let reply = raw_request(
                        &address,
                        "POST",
                        &format!("/v1/events/{EVENT}/holds"),
                        &[("Content-Type", "application/json")],
                        body.to_string().as_bytes(),
                    );
                    match reply.status {
                        201 => held += 1,
                        503 => shed += 1,
                        _ => {}
                    }
                }
                (held, shed)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    workers.into_iter().map(|worker| worker.join().unwrap()).fold((0, 0), |(a, b), (c, d)| (a + c, b + d))
}

#[test]
fn a_real_prometheus_scraping_hakken_fills_every_panel_and_an_overload_pages_through_alertmanager() {
    let dir = tempfile::tempdir().unwrap();
    let delivered = Receiver::start(vec![Answer::Status(200)]);
    let refusing = Receiver::start(vec![Answer::Status(422)]);
    let pager = Receiver::start(vec![Answer::Status(200)]);
    let server = start_hakken(dir.path(), &delivered, &refusing);
    let (prometheus_port, alertmanager_port) = (free_port(), free_port());
    let prometheus = format!("127.0.0.1:{prometheus_port}");
    let alertmanager = format!("127.0.0.1:{alertmanager_port}");
    let pager_base = pager.url.trim_end_matches("/hooks").to_string();
    let _alertmanager = start_alertmanager(dir.path(), alertmanager_port, &pager_base);
    let _prometheus = start_prometheus(dir.path(), prometheus_port, &server.metrics_address, &alertmanager);
    let started = Instant::now();
    let scraping = || instant_query(&prometheus, r#"up{job="hakken"} == 1"#).filter(|result| !result.is_empty());
    while scraping().is_none() {
        let log = dir.path().join("prometheus.log");
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "Prometheus scrapes hakken within 60 s:\n{}",
            log_of(&log)
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    // A scrape passes promtool's lint (names, units, `_total`, help text).
    let scrape = server.metrics();
    let mut lint = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    std::io::Write::write_all(lint.stdin.as_mut().unwrap(), scrape.as_bytes()).unwrap();
    let linted = lint.wait_with_output().unwrap();
    assert!(
        linted.status.success(),
        "promtool check metrics:\n{}{}",
        String::from_utf8_lossy(&linted.stdout),
        String::from_utf8_lossy(&linted.stderr)
    );

    // The healthy part of the sale: paid orders, a trusted one, gate scans, notifications.
    let target = format!("http://{}", server.address);
    let (paid, server_said) = paid_rehearsal(&target, &format!("http://{}", server.metrics_address), 150);
    assert!(paid > 0, "the rehearsal paid no orders");
    // The report's sale-level figures, as the server counted them: every paid order is a
    // confirm, there were more holds than orders, and nothing was oversold.
    assert!(server_said.confirms >= paid as f64, "{server_said}");
    assert!(server_said.holds >= server_said.confirms, "{server_said}");
    assert!(server_said.orders_now >= paid as f64 && server_said.sales_minor > 0.0, "{server_said}");
    assert!(server_said.oversold_max.is_some_and(|worst| worst <= 0.0), "{server_said}");
    assert!(server_said.peaks.in_flight >= 1.0 && server_said.peaks.holds_active >= 1.0, "{server_said}");
    sell_and_scan_twice(&server);
    queue_rehearsal(&server);
    notify::wait_for("a notification is delivered and one given up", 30, || {
        (delivered.count() > 0 && refusing.count() > 0).then_some(())
    });

    // The overload: a flash crowd far past the in-flight ceiling of 8.
    let (held, shed) = flash_crowd(&server, 48, 8);
    assert!(shed > held / 20 && shed > 50, "the crowd was not shed: {held} held, {shed} shed");
    let page = wait_for("Alertmanager delivers the on-sale availability page", 90, || {
        pager.deliveries().into_iter().map(|delivery| delivery.json()).find(|body| {
            body["status"] == "firing"
                && body["alerts"].as_array().is_some_and(|alerts| {
                    alerts.iter().any(|alert| {
                        alert["labels"]["alertname"] == "HakkenOnSaleAvailabilityBurn"
                            && alert["labels"]["severity"] == "page"
                    })
                })
        })
    });
    assert_eq!(page["receiver"], "page", "routed by severity: {page}");
    // The healthy sale never oversold, and no ticket alert was paged.
    for delivery in pager.deliveries() {
        let body = delivery.json();
        for alert in body["alerts"].as_array().unwrap() {
            assert_ne!(alert["labels"]["alertname"], "HakkenOversold", "{body}");
            if alert["labels"]["severity"] == "ticket" {
                assert_eq!(body["receiver"], "ticket", "{body}");
            }
        }
    }

    // Every recording rule and every panel query returns data from this one sale.
    wait_for("the 3d recording rules are evaluated", 30, || {
        instant_query(&prometheus, "hakken:sale_availability:error_ratio_rate3d").filter(|result| !result.is_empty())
    });
    let mut empty = Vec::new();
    for rule in rule_names("rules/recording.yml", "record") {
        match instant_query(&prometheus, &rule) {
            Some(result) if !result.is_empty() => {}
            answer => empty.push(format!("recording rule {rule}: {answer:?}")),
        }
    }
    let queries = dashboard_queries();
    assert!(queries.len() >= 40, "{queries:?}");
    for (dashboard, panel, expr) in queries.iter().filter(|(dashboard, _, _)| dashboard != "cluster") {
        let sent = as_grafana_sends(expr);
        match instant_query(&prometheus, &sent) {
            Some(result) if !result.is_empty() => {}
            answer => empty.push(format!("{dashboard} / {panel}: {sent} -> {answer:?}")),
        }
    }
    assert!(empty.is_empty(), "queries without data:\n{}", empty.join("\n"));
    let oversold = instant_query(&prometheus, "hakken:oversold_seats:max").unwrap();
    assert!(oversold[0]["value"][1].as_str().unwrap().parse::<f64>().unwrap() <= 0.0, "{oversold:?}");
}

/// A cluster of 3 NATS servers and 2 hakken nodes, scraped by the shipped Prometheus
/// config: with an owner that sold and a standby that follows it, every panel of the
/// cluster dashboard has data.
#[test]
fn a_real_prometheus_scraping_a_cluster_fills_the_cluster_dashboard() {
    let dir = tempfile::tempdir().unwrap();
    let nats = nats::NatsCluster::start(3);
    let urls = nats.urls().join(",");
    let nodes: Vec<Server> = (0..2)
        .map(|index| {
            let node = format!("node-{index}");
            let env = [
                ("HAKKEN_CLUSTER_ENABLED", "true"),
                ("HAKKEN_CLUSTER_NODE", node.as_str()),
                ("HAKKEN_CLUSTER_NATS", urls.as_str()),
                ("HAKKEN_CLUSTER_LEASE_TTL_MS", "2000"),
            ];
            Server::start(&env)
        })
        .collect();
    let owner = wait_for("a node takes the event", 30, || {
        nodes.iter().find(|node| node.get(&format!("/v1/events/{EVENT}/availability")).status == 200)
    });
    for buyer in 0..20 {
        let customer = format!("cluster-{buyer}");
        let hold = owner.hold(json!({"customer": customer, "section": "S101", "quantity": 1}));
        owner.confirm(hold["id"].as_str().unwrap(), &customer);
    }
    let standby = nodes.iter().find(|node| node.address != owner.address).unwrap();
    assert_eq!(standby.get(&format!("/v1/events/{EVENT}/availability")).status, 307);

    let port = free_port();
    let prometheus = format!("127.0.0.1:{port}");
    let targets: Vec<&str> = nodes.iter().map(|node| node.metrics_address.as_str()).collect();
    let _prometheus = start_prometheus_of(dir.path(), port, &targets, &format!("127.0.0.1:{}", free_port()));
    wait_for("Prometheus scrapes both nodes", 60, || {
        instant_query(&prometheus, r#"count(up{job="hakken"} == 1) == 2"#).filter(|result| !result.is_empty())
    });
    // Two scrapes after the sale, for the rates.
    std::thread::sleep(Duration::from_secs(3));
    let queries = dashboard_queries();
    let cluster: Vec<_> = queries.iter().filter(|(dashboard, _, _)| dashboard == "cluster").collect();
    assert!(cluster.len() >= 6, "{cluster:?}");
    let mut empty = Vec::new();
    for (dashboard, panel, expr) in cluster {
        let sent = as_grafana_sends(expr);
        match instant_query(&prometheus, &sent) {
            Some(result) if !result.is_empty() => {}
            answer => empty.push(format!("{dashboard} / {panel}: {sent} -> {answer:?}")),
        }
    }
    assert!(empty.is_empty(), "queries without data:\n{}", empty.join("\n"));
    // The event's owners as the alerts read them: exactly one node owns it.
    let owners = instant_query(&prometheus, &format!("sum(hakken_cluster_owner{{event=\"{EVENT}\"}})")).unwrap();
    assert_eq!(owners[0]["value"][1], "1", "{owners:?}");
}
