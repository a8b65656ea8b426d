//! `config/hakken.toml`: what to load, where to listen and store, and every limit.
//!
//! Every value can be overridden by an environment variable named after its place in
//! the file: `HAKKEN_` plus the key path joined by `_`, upper-cased. Top-level keys:
//! `HAKKEN_LISTEN`, `HAKKEN_METRICS_LISTEN`, `HAKKEN_DATA_DIR`, `HAKKEN_ADMIN_TOKEN`;
//! in tables: `HAKKEN_HTTP_IN_FLIGHT_MAX`, `HAKKEN_ENGINE_HOLD_TTL_MS`,
//! `HAKKEN_STORAGE_DURABILITY`; lists (`venues`, `events`, `privacy.keys`) are comma-separated. The
//! environment wins over the file, the file over the defaults.
//!
//! Paths the file gives (`venues`, `events`, `data_dir`, and the default data dir) are
//! relative to the file's directory, so `hakken --config /elsewhere/hakken.toml` works
//! from any folder; paths the environment gives are relative to the working directory,
//! as a shell user expects.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use hakken_engine::config::EngineConfig;
use hakken_engine::event::Event;
use hakken_engine::store::StorageConfig;
use hakken_engine::venue::Venue;
use serde::{Deserialize, Serialize};

/// Environment variables with this prefix that are not configuration keys.
const ENV_NOT_CONFIG: [&str; 1] = ["HAKKEN_LOG"];

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Venue layout files, then event files (each event names its venue).
    pub venues: Vec<PathBuf>,
    pub events: Vec<PathBuf>,
    /// Where the RocksDB store lives.
    pub data_dir: PathBuf,
    /// The public API's address.
    pub listen: String,
    /// Prometheus metrics (`GET /metrics`), on its own address so it is never public.
    pub metrics_listen: String,
    /// Bearer token of the admin endpoints; empty disables them.
    pub admin_token: String,
    /// Bearer token of the gate endpoints (scans, gate bundles); empty disables them.
    pub gate_token: String,
    /// Bearer token of trusted confirms (box office, integrators who charge elsewhere);
    /// empty disables them, unless `payments.provider = "external"`.
    pub sales_token: String,
    pub http: HttpConfig,
    pub payments: PaymentsConfig,
    pub gates: GatesConfig,
    pub engine: EngineConfig,
    pub storage: StorageConfig,
    pub privacy: PrivacyConfig,
    pub notifications: crate::notifications::NotificationsConfig,
    pub cluster: ClusterSettings,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            venues: Vec::new(),
            events: Vec::new(),
            data_dir: PathBuf::from("data"),
            listen: "127.0.0.1:8080".into(),
            metrics_listen: "127.0.0.1:9190".into(),
            admin_token: String::new(),
            gate_token: String::new(),
            sales_token: String::new(),
            http: HttpConfig::default(),
            payments: PaymentsConfig::default(),
            gates: GatesConfig::default(),
            engine: EngineConfig::default(),
            storage: StorageConfig::default(),
            privacy: PrivacyConfig::default(),
            notifications: crate::notifications::NotificationsConfig::default(),
            cluster: ClusterSettings::default(),
        }
    }
}

/// The API's own bounds: beyond them requests are refused at once, never queued.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// The ceiling of the adaptive in-flight limit: requests served at once never
    /// exceed it (0 refuses every request but probes) ...
    pub in_flight_max: usize,
    /// ... and its floor: however slow requests get, this many are still let in.
    pub in_flight_min: usize,
    /// Requests may queue until they take this long before the limit shrinks (it also
    /// shrinks only once latency is well above the unloaded one).
    pub latency_target_ms: u64,
    /// A request not answered by then gets 503 + Retry-After.
    pub request_timeout_ms: u64,
    /// Largest request body; larger gets 413.
    pub body_bytes_max: usize,
    /// The shortest Retry-After (seconds) of 503 answers ...
    pub retry_after_s: u64,
    /// ... and the longest: a 503's Retry-After is drawn between the two, up to the
    /// time the server's backlog takes to drain.
    pub retry_after_max_s: u64,
    /// Hold and confirm requests one customer may make per second, sustained ...
    pub customer_requests_per_s: u32,
    /// ... and in a burst; beyond that 429 + Retry-After. 0 turns the limit off.
    pub customer_requests_burst: u32,
    /// How long a response to an `Idempotency-Key` is kept for retries.
    pub idempotency_ttl_s: u64,
    /// On SIGTERM/SIGINT, requests in flight get this long to finish.
    pub shutdown_grace_ms: u64,
    // -- The edge: connections and availability polls (see `http::connections`,
    // `http::availability_cache`).
    /// Open connections at once; one more is answered 503 `too_many_connections` and
    /// closed. Each costs a descriptor and buffers even when idle. Never 0.
    pub connections_max: usize,
    /// An event's rendered availability is served again for this long (its `at` says
    /// when the counts were read); 0 renders every poll.
    pub availability_cache_ms: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            in_flight_max: 4096,
            in_flight_min: 128,
            latency_target_ms: 250,
            request_timeout_ms: 5_000,
            body_bytes_max: 16 * 1024,
            retry_after_s: 1,
            retry_after_max_s: 30,
            customer_requests_per_s: 5,
            customer_requests_burst: 20,
            idempotency_ttl_s: 24 * 3600,
            shutdown_grace_ms: 10_000,
            connections_max: 10_000,
            availability_cache_ms: 250,
        }
    }
}

impl HttpConfig {
    /// Refuses values the server cannot run with.
    pub fn validate(&self) -> Result<()> {
        if self.connections_max == 0 {
            bail!("http.connections_max = 0 would refuse every connection; give a positive count (default 10000)");
        }
        Ok(())
    }
}

/// The money path (`crate::payments`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PaymentsConfig {
    pub provider: Provider,
    pub late_payment: LatePaymentPolicy,
    /// Checkout extends the hold once to now + this (never past its maximum lifetime).
    pub payment_window_ms: u64,
    /// A payment with no word from the PSP for this long is asked about by the sweep.
    pub webhook_grace_ms: u64,
    /// A payment never made this long after checkout (its hold ended) is cancelled at
    /// the PSP, so it can no longer be paid.
    pub abandon_after_ms: u64,
    /// How often the sweep asks the PSP about payments and retries captures, voids and refunds.
    pub sweep_interval_ms: u64,
    pub stripe: StripeConfig,
}

impl Default for PaymentsConfig {
    fn default() -> Self {
        PaymentsConfig {
            provider: Provider::Stripe,
            late_payment: LatePaymentPolicy::ReacquireSame,
            payment_window_ms: 15 * 60 * 1000,
            webhook_grace_ms: 30_000,
            abandon_after_ms: 2 * 3600 * 1000,
            sweep_interval_ms: 2_000,
            stripe: StripeConfig::default(),
        }
    }
}

/// Who takes the money.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    /// hakken's fake PSP, embedded in the process on a loopback port (demos, tests).
    Test,
    /// Stripe's REST API at `payments.stripe.api_base`.
    Stripe,
    /// Nobody: integrators charge elsewhere and confirm holds on trust (no sales token needed).
    External,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Test => "test",
            Provider::Stripe => "stripe",
            Provider::External => "external",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LatePaymentPolicy {
    ReacquireSame,
    Void,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct StripeConfig {
    pub api_base: String,
    /// `sk_test_...` or `sk_live_...`; set it with HAKKEN_PAYMENTS_STRIPE_SECRET_KEY.
    pub secret_key: String,
    /// What browsers' Stripe.js uses (served by `GET /v1/payments/config`).
    pub publishable_key: String,
    /// `whsec_...`; several, comma-separated, while a secret is being rotated.
    pub webhook_secret: String,
    /// Each PSP call gets this long.
    pub timeout_ms: u64,
}

impl Default for StripeConfig {
    fn default() -> Self {
        StripeConfig {
            api_base: "https://api.stripe.com".into(),
            secret_key: String::new(),
            publishable_key: String::new(),
            webhook_secret: String::new(),
            timeout_ms: 5_000,
        }
    }
}

impl PaymentsConfig {
    /// Refuses a provider that cannot work with the keys given. Checked when the server
    /// starts (and by `hakken check-config`), not when a file is parsed: the built-in
    /// default is Stripe without keys, so a config that forgot `[payments]` cannot serve.
    pub fn validate(&self) -> Result<()> {
        if self.provider == Provider::Stripe {
            let stripe = &self.stripe;
            if !(stripe.secret_key.starts_with("sk_test_") || stripe.secret_key.starts_with("sk_live_")) {
                bail!("payments.provider = \"stripe\" needs payments.stripe.secret_key (sk_test_... or sk_live_...; HAKKEN_PAYMENTS_STRIPE_SECRET_KEY)");
            }
            if self.webhook_secrets().next().is_none() {
                bail!("payments.provider = \"stripe\" needs payments.stripe.webhook_secret (whsec_...; HAKKEN_PAYMENTS_STRIPE_WEBHOOK_SECRET)");
            }
            if self.webhook_secrets().any(|secret| !secret.starts_with("whsec_")) {
                bail!("payments.stripe.webhook_secret: every comma-separated secret must start with whsec_");
            }
        }
        if self.payment_window_ms == 0 || self.sweep_interval_ms == 0 {
            bail!("payments.payment_window_ms and payments.sweep_interval_ms must be positive");
        }
        Ok(())
    }

    /// The configured webhook secrets (more than one while rotating).
    pub fn webhook_secrets(&self) -> impl Iterator<Item = &str> {
        self.stripe.webhook_secret.split(',').map(str::trim).filter(|secret| !secret.is_empty())
    }
}

/// Entry control.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatesConfig {
    /// Doors open this long before an event starts; a scan before is `not_yet_valid`.
    pub doors_open_before_start_s: u64,
}

impl Default for GatesConfig {
    fn default() -> Self {
        GatesConfig { doors_open_before_start_s: 6 * 3600 }
    }
}

/// Buyers' personal data at rest (see [`crate::privacy`]): the master keys that seal
/// it. No default key: a server without keys refuses to start.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrivacyConfig {
    /// `"id:<base64 of 32 random bytes>"` each (`HAKKEN_PRIVACY_KEYS`, comma-separated).
    /// Keys other than the active one only open what was sealed under them.
    pub keys: Vec<String>,
    /// The id of the key new seals use.
    pub active_key: String,
}

impl PrivacyConfig {
    /// The keyring, or why the server cannot run with these keys.
    pub fn keyring(&self) -> Result<crate::privacy::Keyring> {
        crate::privacy::Keyring::parse(&self.keys, &self.active_key).context("[privacy] keys")
    }
}

/// Cluster mode (see [`crate::cluster`]): events owned by nodes, each event's log on
/// NATS JetStream. Off by default: one node on its own store.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterSettings {
    pub enabled: bool,
    /// This node's id, unique in the cluster (letters, digits, `-`, `_`).
    pub node: String,
    /// NATS servers with JetStream (`nats://127.0.0.1:4222`; `HAKKEN_CLUSTER_NATS`
    /// comma-separated): any reachable one will do.
    pub nats: Vec<String>,
    /// This node's base URL for the others' redirects (`http://10.0.0.5:8080`); empty:
    /// `http://` and the address it listens on.
    pub advertise: String,
    /// An owner that stops renewing loses its events this long after (the bound on
    /// failover time, with a sixth of it for the standbys to notice).
    pub lease_ttl_ms: u64,
    /// Replicas of the leases and the log: 3 (a quorum of two acknowledges), or 1 on a
    /// single NATS server.
    pub replicas: usize,
    /// Time limit of one JetStream request (an append's acknowledgement included).
    pub request_timeout_ms: u64,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        ClusterSettings {
            enabled: false,
            node: String::new(),
            nats: Vec::new(),
            advertise: String::new(),
            lease_ttl_ms: 3000,
            replicas: 3,
            request_timeout_ms: 2000,
        }
    }
}

impl ClusterSettings {
    /// The cluster crate's view, or why these settings cannot run.
    pub fn cluster_config(&self) -> Result<hakken_cluster::jetstream::ClusterConfig> {
        if self.node.is_empty() || hakken_cluster::jetstream::subject_token(&self.node).is_err() {
            bail!("[cluster] node must be a unique id of letters, digits, '-' and '_' (HAKKEN_CLUSTER_NODE)");
        }
        if self.nats.is_empty() {
            bail!("[cluster] nats needs at least one NATS URL (HAKKEN_CLUSTER_NATS)");
        }
        if self.lease_ttl_ms < 300 {
            bail!("[cluster] lease_ttl_ms must be at least 300 (renewals go every third of it)");
        }
        if !(1..=5).contains(&self.replicas) {
            bail!("[cluster] replicas must be 1 to 5");
        }
        Ok(hakken_cluster::jetstream::ClusterConfig {
            node: self.node.clone(),
            urls: self.nats.clone(),
            replicas: self.replicas,
            request_timeout: std::time::Duration::from_millis(self.request_timeout_ms.max(100)),
        })
    }
}

/// Venues and events as loaded and checked against each other.
pub struct VenuesAndEvents {
    pub venues: Vec<Venue>,
    pub events: Vec<Event>,
}

impl Config {
    /// The file at `path` with the process environment's overrides.
    pub fn load(path: &Path) -> Result<Config> {
        let env: Vec<(String, String)> = std::env::vars().filter(|(name, _)| name.starts_with("HAKKEN_")).collect();
        Config::load_with_env(path, &env)
    }

    pub fn load_with_env(path: &Path, env: &[(String, String)]) -> Result<Config> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut config =
            Config::parse(&text, env).with_context(|| format!("{}: invalid configuration", path.display()))?;
        config.resolve_paths(path.parent().unwrap_or(Path::new("")), env);
        Ok(config)
    }

    /// Makes the paths the file gave relative to `base` (the file's directory); paths
    /// from the environment stay as given. `join` keeps absolute paths as they are.
    fn resolve_paths(&mut self, base: &Path, env: &[(String, String)]) {
        let from_env = |name: &str| env.iter().any(|(variable, _)| variable == name);
        if !from_env("HAKKEN_VENUES") {
            self.venues.iter_mut().for_each(|path| *path = base.join(&*path));
        }
        if !from_env("HAKKEN_EVENTS") {
            self.events.iter_mut().for_each(|path| *path = base.join(&*path));
        }
        if !from_env("HAKKEN_DATA_DIR") {
            self.data_dir = base.join(&self.data_dir);
        }
        if !from_env("HAKKEN_NOTIFICATIONS_TEMPLATES_DIR") {
            self.notifications.templates_dir = base.join(&self.notifications.templates_dir);
        }
    }

    pub fn parse(text: &str, env: &[(String, String)]) -> Result<Config> {
        let mut table: toml::Table = toml::from_str(text)?;
        apply_env(&mut table, env)?;
        let config: Config = toml::Value::Table(table).try_into()?;
        config.http.validate()?;
        config.storage.validate().map_err(anyhow::Error::msg)?;
        Ok(config)
    }

    /// Loads the files and checks them as the server will serve them: the engine checks a
    /// time zone's shape only, so each venue's zone is looked up in the tz database here
    /// (an unknown one stops the server before it listens).
    pub fn load_venues_and_events(&self) -> Result<VenuesAndEvents> {
        let mut venues = Vec::new();
        for path in &self.venues {
            let venue = Venue::load(path)?;
            hakken_notify::VenueTimeZone::parse(&venue.time_zone)
                .with_context(|| format!("{}: [venue] time_zone", path.display()))?;
            venues.push(venue);
        }
        let mut events = Vec::new();
        for path in &self.events {
            let venue_id = peek_venue_id(path)?;
            let Some(venue) = venues.iter().find(|venue| venue.id == venue_id) else {
                bail!("{}: venue {venue_id:?} is not among the configured venues", path.display());
            };
            let event = Event::load(path, venue)?;
            crate::http::app::locale(&event, venue).with_context(|| path.display().to_string())?;
            events.push(event);
        }
        Ok(VenuesAndEvents { venues, events })
    }
}

/// Every configuration key as (environment variable, key path, default value).
fn env_keys() -> Vec<(String, Vec<String>, toml::Value)> {
    fn walk(prefix: &[String], value: &toml::Value, keys: &mut Vec<(String, Vec<String>, toml::Value)>) {
        match value {
            toml::Value::Table(table) => {
                for (key, value) in table {
                    let mut path = prefix.to_vec();
                    path.push(key.clone());
                    walk(&path, value, keys);
                }
            }
            leaf => {
                let name = format!("HAKKEN_{}", prefix.join("_").to_uppercase());
                keys.push((name, prefix.to_vec(), leaf.clone()));
            }
        }
    }
    let defaults = toml::Value::try_from(Config::default()).expect("the default configuration serializes");
    let mut keys = Vec::new();
    walk(&[], &defaults, &mut keys);
    keys
}

/// Writes each `HAKKEN_*` variable into `table` at its key path, typed like the default.
fn apply_env(table: &mut toml::Table, env: &[(String, String)]) -> Result<()> {
    let keys: BTreeMap<String, (Vec<String>, toml::Value)> =
        env_keys().into_iter().map(|(name, path, default)| (name, (path, default))).collect();
    for (name, text) in env {
        let Some((path, default)) = keys.get(name) else {
            if !ENV_NOT_CONFIG.contains(&name.as_str()) {
                tracing::debug!(variable = %name, "not a configuration key; ignored");
            }
            continue;
        };
        let value = match default {
            toml::Value::Integer(_) => toml::Value::Integer(
                text.trim()
                    .replace('_', "")
                    .parse()
                    .with_context(|| format!("{name}={text:?}: expected an integer"))?,
            ),
            toml::Value::Boolean(_) => toml::Value::Boolean(
                text.trim().parse().with_context(|| format!("{name}={text:?}: expected true or false"))?,
            ),
            toml::Value::Float(_) => {
                toml::Value::Float(text.trim().parse().with_context(|| format!("{name}={text:?}: expected a number"))?)
            }
            toml::Value::Array(_) => toml::Value::Array(
                text.split(',')
                    .map(str::trim)
                    .filter(|item| !item.is_empty())
                    .map(|item| toml::Value::String(item.into()))
                    .collect(),
            ),
            _ => toml::Value::String(text.clone()),
        };
        let (leaf, tables) = path.split_last().expect("key paths are not empty");
        let mut place = &mut *table;
        for key in tables {
            let entry = place.entry(key.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
            let Some(inner) = entry.as_table_mut() else { bail!("{name}: `{key}` is not a table in the file") };
            place = inner;
        }
        place.insert(leaf.clone(), value);
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect()
    }

    #[test]
    fn environment_overrides_file_and_defaults() {
        let file = "listen = \"0.0.0.0:80\"\nvenues = [\"a.toml\"]\n[engine]\nhold_ttl_ms = 5\n";
        let config = Config::parse(
            file,
            &env(&[
                ("HAKKEN_LISTEN", "127.0.0.1:0"),
                ("HAKKEN_ADMIN_TOKEN", "secret"),
                ("HAKKEN_DATA_DIR", "/tmp/x"),
                ("HAKKEN_METRICS_LISTEN", "127.0.0.1:1"),
                ("HAKKEN_ENGINE_CUSTOMER_SEATS_MAX", "3"),
                ("HAKKEN_HTTP_IN_FLIGHT_MAX", "10_000"),
                ("HAKKEN_STORAGE_DURABILITY", "async"),
                ("HAKKEN_EVENTS", "x.toml, y.toml"),
                ("HAKKEN_STRESS_OPS", "7"),
            ]),
        )
        .unwrap();
        assert_eq!(config.listen, "127.0.0.1:0");
        assert_eq!(config.admin_token, "secret");
        assert_eq!(config.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(config.metrics_listen, "127.0.0.1:1");
        assert_eq!(config.engine.hold_ttl_ms, 5, "file value kept");
        assert_eq!(config.engine.customer_seats_max, 3);
        assert_eq!(config.http.in_flight_max, 10_000);
        assert_eq!(config.storage.durability, hakken_engine::store::Durability::Async);
        assert_eq!(config.venues, vec![PathBuf::from("a.toml")]);
        assert_eq!(config.events, vec![PathBuf::from("x.toml"), PathBuf::from("y.toml")]);
    }

    #[test]
    fn bad_values_are_named() {
        let error = Config::parse("", &env(&[("HAKKEN_HTTP_IN_FLIGHT_MAX", "many")])).unwrap_err();
        assert!(format!("{error:#}").contains("HAKKEN_HTTP_IN_FLIGHT_MAX"), "{error:#}");
        let error = Config::parse("", &env(&[("HAKKEN_STORAGE_DURABILITY", "maybe")])).unwrap_err();
        assert!(format!("{error:#}").contains("maybe"), "{error:#}");
        assert!(Config::parse("lisen = \"x\"", &[]).is_err(), "unknown keys are refused");
    }

    #[test]
    fn a_group_commit_window_past_its_bound_is_refused_with_its_name() {
        let config = Config::parse("[storage]\ngroup_commit_window_us = 2_000\n", &[]).unwrap();
        assert_eq!(config.storage.group_commit_window_us, 2_000);
        let env = env(&[("HAKKEN_STORAGE_GROUP_COMMIT_WINDOW_US", "1_000_000")]);
        let error = Config::parse("", &env).unwrap_err();
        assert!(format!("{error:#}").contains("group_commit_window_us"), "{error:#}");
    }

    #[test]
    fn zero_connections_max_is_refused_with_its_name() {
        let error = Config::parse("[http]\nconnections_max = 0\n", &[]).unwrap_err();
        assert!(format!("{error:#}").contains("http.connections_max"), "{error:#}");
        let error = Config::parse("", &env(&[("HAKKEN_HTTP_CONNECTIONS_MAX", "0")])).unwrap_err();
        assert!(format!("{error:#}").contains("http.connections_max"), "{error:#}");
        let config = Config::parse("", &env(&[("HAKKEN_HTTP_CONNECTIONS_MAX", "1")])).unwrap();
        assert_eq!((config.http.connections_max, config.http.availability_cache_ms), (1, 250));
    }

    #[test]
    fn file_paths_are_relative_to_the_file_and_environment_paths_to_the_working_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hakken.toml");
        let file = "venues = [\"v.toml\", \"/abs/w.toml\"]\nevents = [\"e/x.toml\"]\ndata_dir = \"store\"\n";
        std::fs::write(&path, file).unwrap();
        let config = Config::load_with_env(&path, &[]).unwrap();
        assert_eq!(config.venues, vec![dir.path().join("v.toml"), PathBuf::from("/abs/w.toml")]);
        assert_eq!(config.events, vec![dir.path().join("e/x.toml")]);
        assert_eq!(config.data_dir, dir.path().join("store"));
        std::fs::write(&path, "").unwrap();
        assert_eq!(Config::load_with_env(&path, &[]).unwrap().data_dir, dir.path().join("data"), "the default too");
        let overridden = env(&[("HAKKEN_DATA_DIR", "here"), ("HAKKEN_VENUES", "a.toml")]);
        let config = Config::load_with_env(&path, &overridden).unwrap();
        assert_eq!((config.data_dir, config.venues), (PathBuf::from("here"), vec![PathBuf::from("a.toml")]));
    }

    #[test]
    fn privacy_keys_come_from_the_environment_as_a_list() {
        let k1 = format!("k1:{}", crate::privacy::DEMO_KEY_BASE64);
        let keys = format!("{k1}, k2:BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=");
        let config = Config::parse(
            "[privacy]\nactive_key = \"k1\"\n",
            &env(&[("HAKKEN_PRIVACY_KEYS", &keys), ("HAKKEN_PRIVACY_ACTIVE_KEY", "k2")]),
        )
        .unwrap();
        assert_eq!(config.privacy.keys.len(), 2);
        assert_eq!(config.privacy.keyring().unwrap().active().id, "k2");
        let error = Config::parse("", &[]).unwrap().privacy.keyring().unwrap_err();
        assert!(format!("{error:#}").contains("HAKKEN_PRIVACY_KEYS"), "{error:#}");
        let error = Config::parse("", &env(&[("HAKKEN_PRIVACY_KEYS", &k1), ("HAKKEN_PRIVACY_ACTIVE_KEY", "k3")]))
            .unwrap()
            .privacy
            .keyring()
            .unwrap_err();
        assert!(format!("{error:#}").contains("\"k3\""), "{error:#}");
    }

    #[test]
    fn the_shipped_config_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/hakken.toml");
        let config = Config::load_with_env(&path, &[]).unwrap();
        assert!(config.privacy.keyring().unwrap().has_demo_key(), "the demo runs on the demo key");
        assert!(!config.venues.is_empty() && !config.events.is_empty());
        // Unit tests run in api/, not beside the file: its paths resolve all the same.
        config.load_venues_and_events().unwrap();
    }
}
