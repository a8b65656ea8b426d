//! `hakken-loadtest`: the load tool's command line. `generate` writes an on-sale queue
//! file, `replay` plays one against a server and checks the outcome (`verify` checks a
//! ledger again later), `run` drives a fixed-rate order workload for benchmarks, and
//! `serve-trivial` is a do-nothing target for measuring the driver itself.
//!
//! Exit codes: 0 success, 1 the verdict found a violation (FAIL), 2 the tool could not
//! do its job (bad flags, unreachable server, unreadable file).

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use hakken_loadtest::client::{Pool, PoolConfig, Target};
use hakken_loadtest::driver::{self, OrderConfig, RunConfig, SectionPick, Sections, Workload};
use hakken_loadtest::generate::{self, GenerateConfig, Mix, Shape};
use hakken_loadtest::layout::Layout;
use hakken_loadtest::queue::Queue;
use hakken_loadtest::replay::{self, ReplayConfig};
use hakken_loadtest::verdict::Ledger;
use hakken_loadtest::{plot, trivial};

#[derive(Parser)]
#[command(
    name = "hakken-loadtest",
    version,
    about = "Rehearse a hakken on-sale: generate an arrival queue, replay it open-loop, check the outcome",
    after_help = "Exit codes: 0 success, 1 the verdict found a violation (FAIL), 2 the tool could not run."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write an on-sale arrival queue (JSON Lines) for `replay`, from the event's layout.
    ///
    /// Reads the event's sections and seat maps from a running server (--target), then
    /// draws `--buyers` arrivals in the chosen `--shape`, each with an intent (best
    /// available, specific seats, general admission), a quantity, whether they poll
    /// availability first, what they do with the hold and how long they think. The same
    /// seed and layout always give the same file.
    Generate(Box<GenerateArgs>),
    /// Play a queue file against a server, open-loop, and report; then check the
    /// server's final state (the verdict) and exit 1 if it is inconsistent.
    ///
    /// Each buyer starts at its scheduled time whether or not earlier ones finished;
    /// latencies run from when each step was due, so a stalled server cannot hide
    /// behind a slowed load. 503/429 replies are retried after Retry-After, as a real
    /// client would, and counted apart.
    Replay(Box<ReplayArgs>),
    /// Fetch the signed code of every ticket in a ledger (`replay --ledger`), one per
    /// line, for `run --scan-codes` (gate throughput benchmarks).
    Codes(CodesArgs),
    /// Check a server against a ledger written by `replay --ledger` (e.g. after
    /// restarting it): every acknowledged order still there, counts and seat maps
    /// consistent. Exit 1 on FAIL.
    Verify(VerifyArgs),
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
    /// Instead of orders, scan tickets: POST /v1/scan once per arrival with the next
    /// code of this file (one per line, as written by `codes`), round robin.
    #[arg(long, value_name = "FILE", conflicts_with = "plain_get")]
    scan_codes: Option<PathBuf>,
    /// Gate token for --scan-codes.
    #[arg(long, default_value = "")]
    gate_token: String,
    /// Gates the scans are spread over (gate names bench-0..N).
    #[arg(long, default_value_t = 16)]
    gates: u32,
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
struct GenerateArgs {
    /// Seed of the generator: the same seed and event layout give the same file.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Buyers (lines) in the queue.
    #[arg(long, default_value_t = 200_000)]
    buyers: u64,
    /// Arrival pattern: `spike` (a flash sale: most arrive right after the on-sale
    /// opens, then a decaying tail), `steady` (Poisson arrivals at --rate) or `ramp`
    /// (rate steps of --ramp-step every --ramp-every, to find the knee).
    #[arg(long, value_enum, default_value = "spike")]
    shape: ShapeName,
    /// Queue file to write.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Server to read the event's sections and seat maps from.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    target: String,
    /// Event the buyers buy for.
    #[arg(long, default_value = "demo-2027")]
    event: String,
    /// spike: the window after the opening in which --spike-share of buyers arrive,
    /// front-loaded (most in its first seconds).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    spike_window: Duration,
    /// spike: share of buyers arriving within --spike-window; the rest arrive in the tail.
    #[arg(long, default_value_t = 0.8)]
    spike_share: f64,
    /// spike: length of the decaying tail after the opening.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    spike_tail: Duration,
    /// steady: arrivals per second.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// ramp: arrivals per second of the first step.
    #[arg(long, default_value_t = 1000.0)]
    ramp_from: f64,
    /// ramp: rate added at each step.
    #[arg(long, default_value_t = 1000.0)]
    ramp_step: f64,
    /// ramp: length of each step.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    ramp_every: Duration,
    /// Relative weight of best-available buyers (a quantity in a reserved section,
    /// sometimes in one price category).
    #[arg(long, default_value_t = 70)]
    best: u32,
    /// Relative weight of buyers picking specific adjacent seats from the seat map.
    #[arg(long, default_value_t = 20)]
    seats: u32,
    /// Relative weight of general-admission buyers.
    #[arg(long, default_value_t = 10)]
    ga: u32,
    /// Seats per buyer as QUANTITY:WEIGHT pairs.
    #[arg(long, default_value = "1:15,2:50,3:10,4:25", value_parser = parse_quantities)]
    quantities: Quantities,
    /// Share of best-available buyers who ask for one price category.
    #[arg(long, default_value_t = 0.5)]
    category_share: f64,
    /// Share of buyers who poll availability before holding (and give up if too few
    /// seats are left).
    #[arg(long, default_value_t = 0.3)]
    poll_share: f64,
    /// Share of holders who change their mind and release the hold after thinking.
    #[arg(long, default_value_t = 0.05)]
    abandon_share: f64,
    /// Share of holders who walk away and let the hold expire.
    #[arg(long, default_value_t = 0.02)]
    expire_share: f64,
    /// Median payment think time between the hold and the confirm (lognormal per buyer).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    think: Duration,
    /// Per request, while reading the layout.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    timeout: Duration,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ShapeName {
    Spike,
    Steady,
    Ramp,
}

/// `--quantities`, parsed.
#[derive(Clone, Debug)]
struct Quantities(Vec<(u32, u32)>);

fn parse_quantities(text: &str) -> Result<Quantities, String> {
    let pair = |item: &str| -> Option<(u32, u32)> {
        let (quantity, weight) = item.trim().split_once(':')?;
        Some((quantity.trim().parse().ok()?, weight.trim().parse().ok()?))
    };
    let pairs: Option<Vec<(u32, u32)>> = text.split(',').map(pair).collect();
    match pairs {
        Some(pairs) if !pairs.is_empty() => Ok(Quantities(pairs)),
        _ => Err(format!("{text:?}: give QUANTITY:WEIGHT pairs, e.g. 1:15,2:50,4:25")),
    }
}

#[derive(Args)]
struct ReplayArgs {
    /// Queue file written by `generate` (JSON Lines; see loadtest/README.md).
    queue: PathBuf,
    /// Base URL of the server (http only, no path).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    target: String,
    /// Buy for this event instead of the one named in the file.
    #[arg(long)]
    event: Option<String>,
    /// Multiply every time in the file (arrivals and think times) by this: 0.5 replays
    /// the on-sale in half the time (twice the rate), 2 at half the rate.
    #[arg(long, default_value_t = 1.0)]
    time_scale: f64,
    /// Replay only the first N buyers of the file.
    #[arg(long)]
    limit: Option<u64>,
    /// Replay only the buyers due within this long (after --time-scale), e.g. 30s.
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// HTTP/1.1 keep-alive connections, all opened before the start; requests beyond
    /// wait (FIFO) for a free one, and that wait counts in their latency. Real buyers
    /// each have their own: use more than the server's in-flight limit, so that the
    /// server, not this pool, decides who waits (needs `ulimit -n` above this).
    #[arg(long, default_value_t = 4096)]
    connections: usize,
    /// Buyers in flight at most (thinking and waiting out Retry-After included); a
    /// buyer due when this many are running is dropped and reported, never queued.
    /// Default: as many as the file has.
    #[arg(long)]
    in_flight_max: Option<u64>,
    /// A request without a reply this long after it was sent (waiting for a connection
    /// included) counts as a timeout.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    timeout: Duration,
    /// Time allowed to open each connection.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    connect_timeout: Duration,
    /// After the last arrival, wait at most this long for buyers still running
    /// (default: the longest scaled think time plus 30 s); the rest are stopped.
    #[arg(long, value_parser = parse_duration)]
    drain_timeout: Option<Duration>,
    /// Times a request answered 503 or 429 is retried after its Retry-After.
    #[arg(long, default_value_t = 3)]
    retries: u32,
    /// Longest Retry-After honoured; longer ones are cut to this.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    retry_after_max: Duration,
    /// Prefix of customer ids, payment references and idempotency keys (default:
    /// random), so replays against one server do not collide.
    #[arg(long)]
    run_id: Option<String>,
    /// Also write the report (with the timeline and the verdict) as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Draw latency percentiles and throughput over time into this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// Write the ledger (the event's counts before the run and every order acknowledged)
    /// to this file, for `verify` to check the server again later.
    #[arg(long, value_name = "FILE")]
    ledger: Option<PathBuf>,
    /// Do not read the final state back nor judge it.
    #[arg(long)]
    no_verdict: bool,
    /// Runtime threads. 1 runs everything on the calling thread (pin the process with
    /// `taskset -c N`); more uses a multi-threaded runtime.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// No progress bar on stderr.
    #[arg(long)]
    quiet: bool,
}

#[derive(Args)]
struct CodesArgs {
    /// Base URL of the server (http only, no path).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    target: String,
    /// Ledger written by `replay --ledger`.
    #[arg(long)]
    ledger: PathBuf,
    /// File to write, one code per line.
    #[arg(long)]
    out: PathBuf,
    /// Per request.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    timeout: Duration,
}

#[derive(Args)]
struct VerifyArgs {
    /// Base URL of the server (http only, no path).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    target: String,
    /// Ledger written by `replay --ledger`.
    #[arg(long)]
    ledger: PathBuf,
    /// Per request.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    timeout: Duration,
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

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The verdict found a violation.
const EXIT_FAIL: u8 = 1;
/// The tool could not do its job.
const EXIT_ERROR: u8 = 2;

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Generate(args) => generate(*args).map(|()| true),
        Command::Replay(args) => replay(*args),
        Command::Verify(args) => verify(args),
        Command::Codes(args) => codes(args).map(|()| true),
        Command::Run(args) => run(*args).map(|()| true),
        Command::ServeTrivial(args) => serve_trivial(args).map(|()| true),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(EXIT_FAIL),
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn check_run_id(run_id: Option<&str>) -> anyhow::Result<()> {
    if let Some(run_id) = run_id {
        if run_id.is_empty() || !run_id.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'-') {
            bail!("--run-id must be letters, digits and '-'");
        }
    }
    Ok(())
}

/// Writes `value` as pretty JSON to `path`.
fn write_json(path: &Path, value: &impl serde::Serialize) -> anyhow::Result<()> {
    let file = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut writer = std::io::BufWriter::new(file);
    serde_json::to_writer_pretty(&mut writer, value).with_context(|| format!("writing {}", path.display()))?;
    writeln!(writer)?;
    writer.flush().with_context(|| format!("writing {}", path.display()))
}

fn generate(args: GenerateArgs) -> anyhow::Result<()> {
    let shape = match args.shape {
        ShapeName::Spike => Shape::Spike { window: args.spike_window, share: args.spike_share, tail: args.spike_tail },
        ShapeName::Steady => Shape::Steady { rate: args.rate },
        ShapeName::Ramp => Shape::Ramp { from: args.ramp_from, step: args.ramp_step, every: args.ramp_every },
    };
    let config = GenerateConfig {
        seed: args.seed,
        buyers: args.buyers,
        shape,
        mix: Mix {
            best: args.best,
            seats: args.seats,
            ga: args.ga,
            quantities: args.quantities.0,
            category_share: args.category_share,
            poll_share: args.poll_share,
            abandon_share: args.abandon_share,
            expire_share: args.expire_share,
            think_median: args.think,
        },
    };
    // Seat maps are needed for specific seats and for the categories of each section.
    let with_seats = config.mix.seats > 0 || config.mix.best > 0;
    let layout = runtime(1)?.block_on(async {
        let target = Target::resolve(&args.target).await?;
        let pool = Pool::new(target, PoolConfig { connections_max: 1, connect_timeout: args.timeout });
        Layout::fetch(&pool, &args.event, with_seats, args.timeout).await
    })?;
    let queue = generate::generate(&layout, &config)?;
    let file = std::fs::File::create(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    queue.write(file).with_context(|| format!("writing {}", args.out.display()))?;
    let span = queue.buyers.last().map_or(0.0, |buyer| buyer.at_us as f64 / 1e6);
    eprintln!(
        "wrote {} buyers over {span:.1} s for event {} ({} seats in {} sections) to {}",
        queue.buyers.len(),
        layout.event,
        layout.capacity(),
        layout.sections.len(),
        args.out.display()
    );
    Ok(())
}

/// Returns whether the verdict passed (true without one).
fn replay(args: ReplayArgs) -> anyhow::Result<bool> {
    check_run_id(args.run_id.as_deref())?;
    let file = std::fs::File::open(&args.queue).with_context(|| format!("opening {}", args.queue.display()))?;
    let queue = Queue::read(std::io::BufReader::new(file), args.limit)
        .with_context(|| format!("reading {}", args.queue.display()))?;
    let config = ReplayConfig {
        target: args.target,
        event: args.event,
        time_scale: args.time_scale,
        duration: args.duration,
        connections: args.connections,
        in_flight_max: args.in_flight_max,
        request_timeout: args.timeout,
        connect_timeout: args.connect_timeout,
        drain_timeout: args.drain_timeout,
        retries: args.retries,
        retry_after_max: args.retry_after_max,
        run_id: args.run_id,
        progress: !args.quiet,
        verdict: !args.no_verdict,
        threads: args.threads,
    };
    let source = args.queue.display().to_string();
    let outcome = runtime(args.threads)?.block_on(replay::replay(queue, source, config, interrupted()))?;
    let report = &outcome.report;
    print!("{report}");
    if let Some(path) = &args.json {
        write_json(path, report)?;
    }
    if let Some(path) = &args.plot {
        let title =
            format!("{} against {} (run {})", report.settings.queue, report.settings.target, report.settings.run_id);
        std::fs::write(path, plot::render(&report.timeline, &title))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.ledger {
        write_json(path, &outcome.ledger)?;
    }
    Ok(report.passed())
}

fn codes(args: CodesArgs) -> anyhow::Result<()> {
    let file = std::fs::File::open(&args.ledger).with_context(|| format!("opening {}", args.ledger.display()))?;
    let ledger: Ledger = serde_json::from_reader(std::io::BufReader::new(file))
        .with_context(|| format!("reading the ledger {}", args.ledger.display()))?;
    let codes = runtime(1)?.block_on(replay::ticket_codes(&args.target, &ledger, args.timeout))?;
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(&args.out).with_context(|| format!("creating {}", args.out.display()))?,
    );
    for code in &codes {
        writeln!(out, "{code}")?;
    }
    out.flush().with_context(|| format!("writing {}", args.out.display()))?;
    eprintln!("wrote {} codes to {}", codes.len(), args.out.display());
    Ok(())
}

fn verify(args: VerifyArgs) -> anyhow::Result<bool> {
    let file = std::fs::File::open(&args.ledger).with_context(|| format!("opening {}", args.ledger.display()))?;
    let ledger: Ledger = serde_json::from_reader(std::io::BufReader::new(file))
        .with_context(|| format!("reading the ledger {}", args.ledger.display()))?;
    let verdict = runtime(1)?.block_on(replay::verify(&args.target, &ledger, args.timeout))?;
    print!("{verdict}");
    Ok(verdict.passed())
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
    let workload = match (args.plain_get, args.scan_codes) {
        (Some(path), _) => Workload::PlainGet { path },
        (None, Some(file)) => {
            let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            let codes: Vec<String> =
                text.lines().map(str::trim).filter(|line| !line.is_empty()).map(String::from).collect();
            Workload::Scans { codes: std::sync::Arc::new(codes), gate_token: args.gate_token, gates: args.gates }
        }
        (None, None) => Workload::Orders(OrderConfig {
            event: args.event,
            sections: parse_sections(&args.sections)?,
            section_pick: args.section_pick,
            quantity: args.quantity,
            customers: args.customers,
            idempotency: args.idempotency,
        }),
    };
    check_run_id(args.run_id.as_deref())?;
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
        write_json(&path, &report)?;
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
    fn quantities_parse() {
        assert_eq!(parse_quantities("1:15, 2:50").ok().map(|q| q.0), Some(vec![(1, 15), (2, 50)]));
        assert!(parse_quantities("1").is_err());
        assert!(parse_quantities("").is_err());
        assert!(parse_quantities("a:1").is_err());
    }

    #[test]
    fn the_cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
