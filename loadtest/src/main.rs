//! `hakken-loadtest`: the load tool's command line. `run` drives a server open-loop and
//! reports; `serve-trivial` is a do-nothing target for measuring the driver itself.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use hakken_loadtest::driver::{self, OrderConfig, RunConfig, SectionPick, Sections, Workload};
use hakken_loadtest::trivial;

#[derive(Parser)]
#[command(name = "hakken-loadtest", version, about = "Open-loop HTTP load driver for hakken")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Drive a server at a fixed arrival rate and report counts, throughput and latency.
    ///
    /// Each arrival is one buyer: POST /v1/events/{event}/holds (best available,
    /// adjacent seats), then, if a hold came back, POST /v1/holds/{hold}/confirm.
    /// Arrival i is due at start + i/rate and starts then whether or not earlier ones
    /// finished (open loop); every latency is measured from the arrival's scheduled
    /// time, so queueing in the driver or the server is counted (no coordinated
    /// omission). The confirm step alone is timed from the hold's reply.
    Run(Box<RunArgs>),
    /// Serve 200 `{}` to every request: a target for measuring the driver's own cost.
    ///
    /// Prints `listening on ADDR` on stdout once bound. Example, one core each:
    /// `taskset -c 0 hakken-loadtest serve-trivial --listen 127.0.0.1:8099` and
    /// `taskset -c 1 hakken-loadtest run --target http://127.0.0.1:8099 --plain-get /x --rate 60000`.
    ServeTrivial(ServeArgs),
}

#[derive(Args)]
struct RunArgs {
    /// Base URL of the server (http only, no path).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    target: String,
    /// Event to buy tickets for.
    #[arg(long, default_value = "demo-2027")]
    event: String,
    /// Arrivals per second (each arrival is one order, or one GET with --plain-get).
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Length of the measured window, after the warmup (e.g. 20s, 500ms, 2m).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Load before the measured window, at the same rate; arrivals due then are not
    /// counted in the report.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,
    /// Sections to hold seats in: `auto` (every reserved section of the event, from GET
    /// /v1/events/{event}) or a comma-separated list of section ids (S101,S102).
    #[arg(long, default_value = "auto")]
    sections: String,
    /// How each arrival picks its section from the list.
    #[arg(long, value_enum, default_value = "round-robin")]
    section_pick: SectionPick,
    /// Seats per hold.
    #[arg(long, default_value_t = 2)]
    quantity: u32,
    /// HTTP/1.1 keep-alive connections at most; requests beyond wait (FIFO) for a free
    /// one, and that wait counts in their latency. All are opened before the start.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Arrivals in flight at most; an arrival due when this many are running is dropped
    /// and reported as "dropped by driver" (the server or driver cannot keep up).
    #[arg(long, default_value_t = 20_000)]
    in_flight_max: u64,
    /// Distinct customers: arrival i buys as customer c<run>-<i mod N>. Default: every
    /// arrival is a new customer (the server limits seats per customer, so a small N
    /// makes returning buyers run into that limit).
    #[arg(long)]
    customers: Option<u64>,
    /// Send an `Idempotency-Key` header (<run>-<arrival>-<step>) with every POST.
    #[arg(long)]
    idempotency: bool,
    /// Instead of orders, GET this path once per arrival (for measuring the driver
    /// against serve-trivial; --event and --sections are then unused).
    #[arg(long, value_name = "PATH")]
    plain_get: Option<String>,
    /// Also write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Runtime threads. 1 runs everything on the calling thread (pin the process with
    /// `taskset -c N`); more uses a multi-threaded runtime. Either way a small clock
    /// thread wakes the pacer on time.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// A request without a reply this long after its step started (waiting for a
    /// connection included) counts as a timeout, and its connection is closed.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    timeout: Duration,
    /// Time allowed to open each connection.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    connect_timeout: Duration,
    /// After the last arrival, wait at most this long for those in flight; any still
    /// running then are reported as unfinished.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    drain_timeout: Duration,
    /// Prefix of customer ids, payment references and idempotency keys (default:
    /// random), so consecutive runs against one server do not collide.
    #[arg(long)]
    run_id: Option<String>,
    /// Do not print the once-a-second progress line to stderr.
    #[arg(long)]
    quiet: bool,
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on; port 0 picks a free one (printed).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Runtime threads (1: the calling thread only; pin with `taskset -c N`).
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Run(args) => run(*args),
        Command::ServeTrivial(args) => serve_trivial(args),
    }
}

fn runtime(threads: usize) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = match threads {
        0 => bail!("--threads must be at least 1"),
        1 => tokio::runtime::Builder::new_current_thread(),
        _ => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(threads);
            builder
        }
    };
    builder.enable_all().build().context("starting the tokio runtime")
}

fn run(args: RunArgs) -> anyhow::Result<()> {
    let workload = match args.plain_get {
        Some(path) => Workload::PlainGet { path },
        None => Workload::Orders(OrderConfig {
            event: args.event,
            sections: parse_sections(&args.sections)?,
            section_pick: args.section_pick,
            quantity: args.quantity,
            customers: args.customers,
            idempotency: args.idempotency,
        }),
    };
    if let Some(run_id) = &args.run_id {
        if run_id.is_empty() || !run_id.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'-') {
            bail!("--run-id must be letters, digits and '-'");
        }
    }
    let config = RunConfig {
        target: args.target,
        workload,
        rate_per_second: args.rate,
        warmup: args.warmup,
        duration: args.duration,
        connections: args.connections,
        in_flight_max: args.in_flight_max,
        request_timeout: args.timeout,
        connect_timeout: args.connect_timeout,
        drain_timeout: args.drain_timeout,
        run_id: args.run_id,
        progress: !args.quiet,
        threads: args.threads,
    };
    let report = runtime(args.threads)?.block_on(driver::run(config, interrupted()))?;
    print!("{report}");
    if let Some(path) = args.json {
        let file = std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let mut writer = std::io::BufWriter::new(file);
        serde_json::to_writer_pretty(&mut writer, &report).context("writing the JSON report")?;
        writeln!(writer)?;
        writer.flush().with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Completes on Ctrl-C: the run stops launching arrivals, drains and still reports.
async fn interrupted() {
    if tokio::signal::ctrl_c().await.is_err() {
        // No signal handling: run to the end of the schedule.
        std::future::pending::<()>().await;
    }
    eprintln!("interrupted: stopping arrivals, draining, then reporting");
}

fn serve_trivial(args: ServeArgs) -> anyhow::Result<()> {
    runtime(args.threads)?.block_on(async {
        let listener =
            tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("binding {}", args.listen))?;
        println!("listening on {}", listener.local_addr()?);
        std::io::stdout().flush()?;
        trivial::serve(listener, trivial::empty_json()).await.context("accepting connections")
    })
}

fn parse_sections(text: &str) -> anyhow::Result<Sections> {
    if text == "auto" {
        return Ok(Sections::Auto);
    }
    let sections: Vec<String> = text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect();
    if sections.is_empty() {
        bail!("--sections: give `auto` or a comma-separated list of section ids");
    }
    Ok(Sections::List(sections))
}

/// `20s`, `500ms`, `2m`, `1.5s`; a bare number is seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().map_err(|_| format!("{text:?} is not a duration like 20s, 500ms or 2m"))?;
    let seconds = match unit {
        "" | "s" => number,
        "ms" => number / 1000.0,
        "m" | "min" => number * 60.0,
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (use ms, s or m)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|error| format!("{text:?}: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        let check = |text: &str, expected: Option<Duration>| assert_eq!(parse_duration(text).ok(), expected, "{text}");
        check("20s", Some(Duration::from_secs(20)));
        check("20", Some(Duration::from_secs(20)));
        check("500ms", Some(Duration::from_millis(500)));
        check("1.5s", Some(Duration::from_millis(1500)));
        check("2m", Some(Duration::from_secs(120)));
        check("2h", None);
        check("s", None);
        check("", None);
    }

    #[test]
    fn sections_parse() {
        assert_eq!(parse_sections("auto").ok(), Some(Sections::Auto));
        assert_eq!(parse_sections("S101, S102").ok(), Some(Sections::List(vec!["S101".into(), "S102".into()])));
        assert!(parse_sections(",").is_err());
    }

    #[test]
    fn the_cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
