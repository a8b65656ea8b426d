//! `hakken`: the one binary of hakken.
//!
//! Today it checks configuration and runs an in-memory on-sale simulation against the
//! real section actors; `hakken serve` (the HTTP API) arrives with issue 4.

mod config;
mod simulate;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "hakken", version, about = "Seat allocation and ticketing engine for flash on-sales")]
struct Cli {
    /// Configuration file (venues, events, engine limits).
    #[arg(long, global = true, default_value = "config/hakken.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Load every venue and event the configuration names and report what is in them,
    /// or the first error with file, line and problem. Exits non-zero on error.
    CheckConfig,
    /// Run a seeded on-sale against the configured events through the section actors
    /// (in memory, or durable with `--data-dir`) and report throughput and sales.
    Simulate(simulate::Options),
    /// Restore a backup (a RocksDB checkpoint made by the running server) into an
    /// empty data directory. Never overwrites a store.
    Restore {
        /// The backup directory.
        #[arg(long)]
        from: PathBuf,
        /// The data directory to create; must not exist or be empty.
        #[arg(long)]
        to: PathBuf,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let config = config::Config::load(&cli.config)?;
    match cli.command.unwrap_or(Command::Simulate(simulate::Options::default())) {
        Command::CheckConfig => check_config(&config),
        Command::Simulate(options) => simulate::run(&config, &options),
        Command::Restore { from, to } => {
            hakken_engine::store::restore_backup(&from, &to)?;
            println!("restored {} into {}", from.display(), to.display());
            Ok(())
        }
    }
}

fn check_config(config: &config::Config) -> Result<()> {
    let loaded = config.load_catalogue()?;
    for venue in &loaded.venues {
        let reserved = venue.sections.iter().filter(|section| section.seat_map().is_some()).count();
        println!(
            "venue {}: {} sections ({} reserved, {} general admission), capacity {}",
            venue.id,
            venue.sections.len(),
            reserved,
            venue.sections.len() - reserved,
            venue.capacity()
        );
    }
    for event in &loaded.events {
        println!(
            "event {} at {}: {} ticket types, {}",
            event.id,
            event.venue_id,
            event.ticket_types.len(),
            event.currency
        );
    }
    println!("ok");
    Ok(())
}
