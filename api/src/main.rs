//! `hakken`: the one binary of hakken.
//!
//! `hakken` (or `hakken serve`) runs the HTTP API on the configured venues and events,
//! durably; the other commands check configuration, simulate an on-sale in process,
//! and restore a backup.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use hakken_api::{config, server, simulate};
use tracing_subscriber::EnvFilter;

/// See the workspace manifest: measured faster than glibc's on the request path.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "hakken", version, about = "Seat allocation and ticketing engine for flash on-sales")]
struct Cli {
    /// Configuration file; every value can be overridden by a HAKKEN_* environment
    /// variable (HAKKEN_LISTEN, HAKKEN_DATA_DIR, HAKKEN_ENGINE_HOLD_TTL_MS, ...).
    #[arg(long, global = true, default_value = "config/hakken.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API (the default): recover the store in `data_dir`, add the
    /// configured events it does not have, listen on `listen`, metrics on `metrics_listen`.
    Serve,
    /// Load every venue and event the configuration names and report what is in them,
    /// or the first error with file, line and problem. Exits non-zero on error.
    CheckConfig,
    /// Run a seeded on-sale against the configured events through the section actors
    /// (in memory, or durable with `--data-dir`) and report throughput and sales.
    Simulate(simulate::Options),
    /// Restore a backup (made with `POST /v1/admin/backup` on the running server)
    /// into an empty data directory. Never overwrites a store.
    Restore {
        /// The backup directory.
        #[arg(long)]
        from: PathBuf,
        /// The data directory to create; must not exist or be empty.
        #[arg(long)]
        to: PathBuf,
    },
    /// The audit log of the store in `data_dir` (the server must be stopped).
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Payments of a running server.
    #[command(subcommand)]
    Payments(PaymentsCommand),
    /// Cluster mode's state in NATS JetStream.
    #[command(subcommand)]
    Cluster(ClusterCommand),
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// Print (JSON) each event's lease holder and epoch, the end of its log, and the
    /// log stream's leader and replicas (caught up or not, lag). Reads JetStream only:
    /// no node needs to run, and nothing is created.
    Status {
        /// NATS server URLs, comma-separated (any reachable one will do).
        #[arg(long, value_delimiter = ',', required = true)]
        nats: Vec<String>,
    },
}

#[derive(Subcommand)]
enum PaymentsCommand {
    /// Ask the running server to reconcile its payments and orders with the PSP: every
    /// captured payment ↔ one order (or a void or refund), every online order ↔ one
    /// captured payment of its amount. Prints the report; exits 1 on a mismatch.
    Reconcile {
        /// The server's address (default: `listen` of the configuration).
        #[arg(long)]
        url: Option<String>,
        /// The admin token (default: `admin_token` of the configuration, HAKKEN_ADMIN_TOKEN).
        #[arg(long)]
        admin_token: Option<String>,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the whole hash chain: every entry intact and linked to the one before.
    /// Prints the entry count and the head hash (keep it elsewhere to compare later);
    /// exits 1 at the first broken link.
    Verify,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    // Logs go to stderr; stdout carries the lines scripts read (addresses, results).
    let filter = EnvFilter::try_from_env("HAKKEN_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_ansi(colour).with_writer(std::io::stderr).init();
    let config = config::Config::load(&cli.config)?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => server::serve(config),
        Command::CheckConfig => check_config(&config),
        Command::Simulate(options) => simulate::run(&config, &options),
        Command::Restore { from, to } => {
            hakken_engine::store::restore_backup(&from, &to)?;
            println!("restored {} into {}", from.display(), to.display());
            Ok(())
        }
        Command::Audit(AuditCommand::Verify) => verify_audit(&config),
        Command::Cluster(ClusterCommand::Status { nats }) => cluster_status(nats),
        Command::Payments(PaymentsCommand::Reconcile { url, admin_token }) => {
            let address = url.unwrap_or_else(|| config.listen.clone());
            let token = admin_token.unwrap_or_else(|| config.admin_token.clone());
            if !hakken_api::payments::reconcile_cli::run(&address, &token)? {
                std::process::exit(1);
            }
            Ok(())
        }
    }
}

fn cluster_status(urls: Vec<String>) -> Result<()> {
    let config = hakken_cluster::jetstream::ClusterConfig {
        node: "status".to_string(),
        urls,
        replicas: 0, // creates nothing
        request_timeout: std::time::Duration::from_secs(5),
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let status = runtime.block_on(async {
        let jetstream = hakken_cluster::jetstream::JetStream::open(&config).await?;
        hakken_cluster::status::read(&jetstream).await
    })?;
    println!("{}", serde_json::to_string_pretty(&status)?);
    Ok(())
}

fn verify_audit(config: &config::Config) -> Result<()> {
    let store = hakken_engine::store::Store::open(&config.data_dir, config.storage.clone())
        .with_context(|| format!("opening the store in {}", config.data_dir.display()))?;
    let verdict = store.verify_audit()?;
    store.close();
    match verdict {
        Ok(verified) => {
            println!(
                "audit log intact: {} entries, head {}",
                verified.entries,
                hakken_engine::audit::hex(&verified.head.last_hash)
            );
            Ok(())
        }
        Err(broken) => {
            println!("audit log BROKEN: {broken}");
            std::process::exit(1);
        }
    }
}

fn check_config(config: &config::Config) -> Result<()> {
    config.payments.validate()?;
    let loaded = config.load_venues_and_events()?;
    let keyring = config.privacy.keyring()?;
    let demo = if keyring.has_demo_key() { " (includes the public demo key: not for production)" } else { "" };
    println!("privacy: keys {}, active {}{demo}", keyring.ids().collect::<Vec<_>>().join(", "), keyring.active().id);
    for venue in &loaded.venues {
        let reserved = venue.sections.iter().filter(|section| section.seat_map().is_some()).count();
        println!(
            "venue {}: {} sections ({} reserved, {} general admission), capacity {}, time zone {}",
            venue.id,
            venue.sections.len(),
            reserved,
            venue.sections.len() - reserved,
            venue.capacity(),
            venue.time_zone
        );
    }
    for event in &loaded.events {
        println!(
            "event {} at {}: {} ticket types, {}, language {}",
            event.id,
            event.venue_id,
            event.ticket_types.len(),
            event.currency,
            event.language
        );
    }
    println!("ok");
    Ok(())
}
