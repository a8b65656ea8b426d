//! The server's own account of a run, read from its Prometheus `/metrics` (the same
//! series the shipped dashboards chart, `config/sre/`): scraped before the first
//! arrival, every [`SAMPLE_EVERY`] during the run for the peaks, and after the drain.
//! A rehearsal's report and the dashboard then tell the same story, and where they
//! differ (the tool counts what buyers saw, the server what it did) the difference is
//! the finding.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use hyper::{Method, Uri};
use serde::Serialize;

use crate::client::{Pool, PoolConfig, Target};

/// How often the peaks are sampled during a run.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(500);

/// One scrape: every sample line, as (metric name, labels, value).
#[derive(Clone, Debug, Default)]
pub struct Scrape {
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

impl Scrape {
    /// Parses the Prometheus text format (comments skipped; label values unescaped).
    pub fn parse(text: &str) -> anyhow::Result<Scrape> {
        let mut samples = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let parsed = parse_line(line).with_context(|| format!("metrics line {}: {line:?}", number + 1))?;
            samples.push(parsed);
        }
        Ok(Scrape { samples })
    }

    /// The sum of `name`'s samples whose labels include every one of `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).sum()
    }

    /// The largest of those samples (`None` when there is none).
    pub fn max(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.matching(name, labels).reduce(f64::max)
    }

    fn matching<'a>(&'a self, name: &'a str, labels: &'a [(&str, &str)]) -> impl Iterator<Item = f64> + 'a {
        self.samples
            .iter()
            .filter(move |(sample, have, _)| {
                sample == name && labels.iter().all(|(key, value)| have.get(*key).is_some_and(|have| have == value))
            })
            .map(|(_, _, value)| *value)
    }
}

fn parse_line(line: &str) -> anyhow::Result<(String, BTreeMap<String, String>, f64)> {
    let (name, rest) = match line.find('{') {
        Some(open) => (&line[..open], &line[open + 1..]),
        None => {
            let (name, value) = line.split_once(' ').context("no value")?;
            return Ok((name.to_string(), BTreeMap::new(), parse_value(value)?));
        }
    };
    let mut labels = BTreeMap::new();
    let mut rest = rest;
    loop {
        rest = rest.trim_start_matches(',');
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((name.to_string(), labels, parse_value(after.trim())?));
        }
        let (key, after) = rest.split_once("=\"").context("a label without =\"")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((index, '"')) => break index,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, other)) => value.push(other),
                    None => bail!("a label value ends in a backslash"),
                },
                Some((_, other)) => value.push(other),
                None => bail!("an unterminated label value"),
            }
        };
        labels.insert(key.to_string(), value);
        rest = &after[end + 1..];
    }
}

fn parse_value(text: &str) -> anyhow::Result<f64> {
    // A timestamp may follow the value.
    let value = text.split_whitespace().next().context("no value")?;
    match value {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => value.parse().with_context(|| format!("{value:?} is not a number")),
    }
}

/// The server's metrics endpoint, `http://host:port` (the path is `/metrics`).
pub struct ServerMetrics {
    pool: Pool,
    timeout: Duration,
}

impl ServerMetrics {
    pub async fn connect(url: &str, timeout: Duration) -> anyhow::Result<ServerMetrics> {
        let target = Target::resolve(url).await.context("--server-metrics")?;
        let pool = Pool::new(target, PoolConfig { connections_max: 1, connect_timeout: timeout });
        Ok(ServerMetrics { pool, timeout })
    }

    pub fn url(&self) -> String {
        self.pool.target().url.clone()
    }

    pub async fn scrape(&self) -> anyhow::Result<Scrape> {
        let request = self.pool.request(Method::GET, Uri::from_static("/metrics"), None);
        let reply = self
            .pool
            .send_within(request, self.timeout)
            .await
            .map_err(|_| anyhow::anyhow!("scraping {}/metrics timed out", self.pool.target().url))?
            .with_context(|| format!("scraping {}/metrics", self.pool.target().url))?;
        if !reply.status.is_success() {
            bail!("{}/metrics answered {}", self.pool.target().url, reply.status);
        }
        Scrape::parse(std::str::from_utf8(&reply.body).context("metrics are not UTF-8")?)
    }

    /// Samples the peaks every [`SAMPLE_EVERY`] into `peaks` until dropped (aborted).
    pub async fn sample_peaks(self: Arc<Self>, event: String, peaks: Arc<Mutex<Peaks>>) {
        let mut ticks = tokio::time::interval(SAMPLE_EVERY);
        loop {
            ticks.tick().await;
            if let Ok(scrape) = self.scrape().await {
                peaks.lock().expect("peaks lock poisoned").observe(&scrape, &event);
            }
        }
    }
}

/// The highest values seen while the run went on.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Peaks {
    pub in_flight: f64,
    pub concurrency_limit_min: Option<f64>,
    pub seats_held: f64,
    pub holds_active: f64,
    pub mailbox_depth: f64,
}

impl Peaks {
    fn observe(&mut self, scrape: &Scrape, event: &str) {
        let of_event = [("event", event)];
        self.in_flight = self.in_flight.max(scrape.sum("hakken_http_requests_in_flight", &[]));
        if let Some(limit) = scrape.max("hakken_http_concurrency_limit", &[]) {
            self.concurrency_limit_min = Some(self.concurrency_limit_min.map_or(limit, |low| low.min(limit)));
        }
        self.seats_held =
            self.seats_held.max(scrape.sum("hakken_section_seats", &[("event", event), ("state", "held")]));
        self.holds_active = self.holds_active.max(scrape.sum("hakken_section_holds_active", &of_event));
        self.mailbox_depth =
            self.mailbox_depth.max(scrape.max("hakken_section_mailbox_depth", &of_event).unwrap_or(0.0));
    }
}

/// What the server says happened to the event during the run (after − before).
#[derive(Clone, Debug, Default, Serialize)]
pub struct ServerFigures {
    pub url: String,
    pub holds: f64,
    pub confirms: f64,
    pub expiries: f64,
    pub releases: f64,
    /// Orders made per hold made during the run.
    pub hold_to_order: Option<f64>,
    pub seats_sold: f64,
    pub orders_now: f64,
    /// Sold for during the run, in the currency's minor units.
    pub sales_minor: f64,
    /// Refused before routing (admission's 503s and timeouts) and as busy sections.
    pub shed: f64,
    pub section_busy: f64,
    /// The oversell invariant at its worst section after the run (must be <= 0).
    pub oversold_max: Option<f64>,
    pub peaks: Peaks,
}

impl ServerFigures {
    pub fn between(url: &str, event: &str, before: &Scrape, after: &Scrape, peaks: Peaks) -> ServerFigures {
        let delta = |name: &str, labels: &[(&str, &str)]| after.sum(name, labels) - before.sum(name, labels);
        let operation =
            |operation: &str| delta("hakken_section_operations_total", &[("event", event), ("operation", operation)]);
        let (holds, confirms) = (operation("hold"), operation("confirm"));
        ServerFigures {
            url: url.to_string(),
            holds,
            confirms,
            expiries: operation("expire"),
            releases: operation("release"),
            hold_to_order: (holds > 0.0).then(|| confirms / holds),
            seats_sold: delta("hakken_section_seats", &[("event", event), ("state", "sold")]),
            orders_now: after.sum("hakken_section_orders", &[("event", event)]),
            sales_minor: delta("hakken_section_sales_minor", &[("event", event)]),
            shed: delta("hakken_http_rejections_total", &[("reason", "overloaded")])
                + delta("hakken_http_rejections_total", &[("reason", "timeout")]),
            section_busy: delta("hakken_http_rejections_total", &[("reason", "section_busy")]),
            oversold_max: after.max("hakken_section_oversold_seats", &[("event", event)]),
            peaks,
        }
    }
}

impl fmt::Display for ServerFigures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let conversion = self.hold_to_order.map_or("-".to_string(), |ratio| format!("{:.1}%", ratio * 100.0));
        writeln!(
            f,
            "server ({}/metrics): {} holds, {} confirms (hold -> order {conversion}), {} expired, {} released; \
             {} seats sold, {} orders live, sold for {} (minor units)",
            self.url,
            self.holds,
            self.confirms,
            self.expiries,
            self.releases,
            self.seats_sold,
            self.orders_now,
            self.sales_minor
        )?;
        let oversold = self.oversold_max.map_or("-".to_string(), |worst| worst.to_string());
        let limit = self.peaks.concurrency_limit_min.map_or("-".to_string(), |limit| limit.to_string());
        writeln!(
            f,
            "server: {} shed before routing, {} refused as section busy; oversold (max over sections, must be <= 0) \
             {oversold}; peaks: {} in flight (limit down to {limit}), {} seats held, {} holds active, mailbox {}",
            self.shed,
            self.section_busy,
            self.peaks.in_flight,
            self.peaks.seats_held,
            self.peaks.holds_active,
            self.peaks.mailbox_depth
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP hakken_section_operations_total Changes made by a section
# TYPE hakken_section_operations_total counter
hakken_section_operations_total{event="e",section="a",operation="hold"} 10
hakken_section_operations_total{event="e",section="b",operation="hold"} 5
hakken_section_operations_total{event="e",section="a",operation="confirm"} 6
hakken_section_operations_total{event="other",section="a",operation="hold"} 100
hakken_section_seats{event="e",section="a",state="sold"} 6
hakken_section_oversold_seats{event="e",section="a"} -4
hakken_section_oversold_seats{event="e",section="b"} 0
hakken_http_rejections_total{reason="overloaded",class="start"} 7
hakken_http_requests_in_flight 3
weird{path="a \"quoted\" \\ one",x="1"} 2.5 1700000000
hakken_http_request_duration_seconds_bucket{le="+Inf"} 9
"#;

    #[test]
    fn a_scrape_is_parsed_and_summed_by_labels() {
        let scrape = Scrape::parse(TEXT).unwrap();
        let of = |operation| scrape.sum("hakken_section_operations_total", &[("event", "e"), ("operation", operation)]);
        assert_eq!(of("hold"), 15.0);
        assert_eq!(of("confirm"), 6.0);
        assert_eq!(scrape.max("hakken_section_oversold_seats", &[("event", "e")]), Some(0.0));
        assert_eq!(scrape.sum("weird", &[("path", r#"a "quoted" \ one"#)]), 2.5);
        assert_eq!(scrape.sum("hakken_http_request_duration_seconds_bucket", &[("le", "+Inf")]), 9.0);
        assert_eq!(scrape.max("absent", &[]), None);
        assert!(Scrape::parse("broken{a=\"1\" 2").is_err());
        assert!(Scrape::parse("name notanumber").is_err());
    }

    #[test]
    fn the_figures_are_what_the_server_did_between_two_scrapes() {
        let before = Scrape::parse(TEXT).unwrap();
        let after = Scrape::parse(&TEXT.replace("operation=\"hold\"} 10", "operation=\"hold\"} 30")).unwrap();
        let figures = ServerFigures::between("http://m", "e", &before, &after, Peaks::default());
        assert_eq!(figures.holds, 20.0);
        assert_eq!(figures.confirms, 0.0);
        assert_eq!(figures.hold_to_order, Some(0.0));
        assert_eq!(figures.oversold_max, Some(0.0));
        assert!(figures.to_string().contains("20 holds"), "{figures}");
    }
}
