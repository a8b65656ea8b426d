//! `config/hakken.toml`: which venues and events to load, and the engine's limits.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use hakken_engine::config::EngineConfig;
use hakken_engine::event::Event;
use hakken_engine::store::StorageConfig;
use hakken_engine::venue::Venue;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub venues: Vec<PathBuf>,
    pub events: Vec<PathBuf>,
    /// Where the RocksDB store lives.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    #[serde(default)]
    pub engine: EngineConfig,
    #[serde(default)]
    pub storage: StorageConfig,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("data")
}

/// Venues and events as loaded and checked against each other.
pub struct Catalogue {
    pub venues: Vec<Venue>,
    pub events: Vec<Event>,
}

impl Config {
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("{}: invalid configuration", path.display()))
    }

    pub fn load_catalogue(&self) -> Result<Catalogue> {
        let venues = self.venues.iter().map(|path| Venue::load(path)).collect::<Result<Vec<_>, _>>()?;
        let mut events = Vec::new();
        for path in &self.events {
            let venue_id = peek_venue_id(path)?;
            let Some(venue) = venues.iter().find(|venue| venue.id == venue_id) else {
                bail!("{}: venue {venue_id:?} is not among the configured venues", path.display());
            };
            events.push(Event::load(path, venue)?);
        }
        Ok(Catalogue { venues, events })
    }
}

/// Reads `[event] venue` so the event can be checked against the right venue.
fn peek_venue_id(path: &Path) -> Result<String> {
    #[derive(Deserialize)]
    struct Head {
        event: EventHead,
    }
    #[derive(Deserialize)]
    struct EventHead {
        venue: String,
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let head: Head = toml::from_str(&text).with_context(|| format!("{}: no [event] venue", path.display()))?;
    Ok(head.event.venue)
}
