//! `hakken-loadtest`: the load tool's command line. `generate` writes an on-sale queue
//! file, `replay` plays one against a server and checks the outcome (`verify` checks a
//! ledger again later), `run` drives a fixed-rate order workload for benchmarks, and
//! `serve-trivial` is a do-nothing target for measuring the driver itself.
//!
//! Exit codes: 0 success, 1 the verdict found a violation (FAIL), 2 the tool could not
//! do its job (bad flags, unreachable server, unreadable file).
//!
//! The flags are in [`args`]; this file turns them into each library call and its
//! output.

mod args;

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Parser;
use hakken_loadtest::client::{Pool, PoolConfig, Target};
use hakken_loadtest::driver::{self, OrderConfig, RunConfig, Workload};
use hakken_loadtest::generate::{self, GenerateConfig, Mix, Shape};
use hakken_loadtest::layout::Layout;
use hakken_loadtest::queue::Queue;
use hakken_loadtest::replay::{self, ReplayConfig};
use hakken_loadtest::verdict::Ledger;
use hakken_loadtest::{plot, trivial};

use crate::args::{
    parse_sections, Cli, CodesArgs, Command, GenerateArgs, ReplayArgs, RunArgs, ServeArgs, ShapeName, VerifyArgs,
    WaitingRoomArg,
};

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
        Command::Run(args) => run(*args),
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
    let mut queue = generate::generate(&layout, &config)?;
    if args.queue {
        let early = generate::EarlyJoins { share: args.queue_early_share, early: args.queue_early };
        queue = generate::with_early_joins(queue, &early)?;
    }
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
        queue_long_polls: args.queue_long_polls,
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
        payments: args.payments.settings(),
        server_metrics: args.server_metrics,
    };
    let source = args.queue.display().to_string();
    let mode = match args.waiting_room {
        WaitingRoomArg::Auto => replay::WaitingRoomMode::Auto,
        WaitingRoomArg::On => replay::WaitingRoomMode::On,
        WaitingRoomArg::Off => replay::WaitingRoomMode::Off,
    };
    let outcome = runtime(args.threads)?.block_on(replay::replay_with(queue, source, config, mode, interrupted()))?;
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
    let verdict = runtime(1)?.block_on(replay::verify_paid(
        &args.target,
        &ledger,
        args.timeout,
        args.psp_secret_key.as_deref(),
        args.admin_token.as_deref(),
    ))?;
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

/// Returns whether the verdict passed (true without notification sinks).
fn run(args: RunArgs) -> anyhow::Result<bool> {
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
            pay: args.pay,
            hold_checkout: args.hold_checkout,
            sales_token: args.sales_token,
            payment_poll_timeout: args.payment_poll_timeout,
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
        server_pid: args.server_pid,
        sinks: args.sinks.config(),
    };
    let report = runtime(args.threads)?.block_on(driver::run(config, interrupted()))?;
    print!("{report}");
    if let Some(path) = args.json {
        write_json(&path, &report)?;
    }
    Ok(report.passed())
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
