//! `hakken serve`: the HTTP API over a durable registry.
//!
//! Start-up order: load and check the configured venues and events (a bad file stops
//! the server before it listens), bind both listeners, then recover the store in the
//! background. Until recovery finishes `/healthz` answers and `/readyz` and the API
//! say 503 `starting`. The API listener admits at most `http.connections_max`
//! connections at once (see [`crate::http::connections`]). On SIGTERM/SIGINT: stop
//! accepting, let requests in flight finish (up to `shutdown_grace_ms`), then stop
//! the section actors and flush the WAL.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use axum::routing::get;
use axum::serve::ListenerExt;
use hakken_engine::clock::Clock;
use hakken_engine::observe;
use hakken_engine::registry::Registry;
use hakken_engine::store::Store;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;

use crate::cluster::node::Node;
use crate::cluster::replicator::LogReplicator;
use crate::cluster::Owners;
use crate::config::{Config, VenuesAndEvents};
use crate::http::app::{App, Shared, Tokens};
use crate::http::connections::BoundedListener;
use crate::payments::gateway::Gateway;
use crate::privacy::Privacy;

const LATENCY_BUCKETS_S: [f64; 16] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
const GROUP_BUCKETS: [f64; 13] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0];
/// Histograms of the Prometheus recorder are folded this often.
const METRICS_UPKEEP: Duration = Duration::from_secs(5);

pub fn serve(config: Config) -> Result<()> {
    config.payments.validate()?;
    let metrics = install_metrics()?;
    let loaded = config.load_venues_and_events()?;
    // Without usable keys buyers' data could not be sealed: refuse before listening.
    let privacy = Arc::new(Privacy::new(config.privacy.keyring()?));
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("http")
        .enable_all()
        .build()
        .context("starting the HTTP runtime")?;
    runtime.block_on(run(config, loaded, metrics, privacy))
}

fn install_metrics() -> Result<PrometheusHandle> {
    use hakken_notify::metrics as notify;
    // The notification histograms first: the first matching matcher picks the buckets.
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(notify::ATTEMPT_SECONDS.into()), notify::ATTEMPT_SECONDS_BUCKETS)?
        .set_buckets_for_metric(
            Matcher::Full(notify::DELIVERY_LATENCY_SECONDS.into()),
            notify::DELIVERY_LATENCY_SECONDS_BUCKETS,
        )?
        .set_buckets_for_metric(
            Matcher::Full(crate::http::payments::WEBHOOK_LAG_SECONDS.into()),
            &crate::http::payments::WEBHOOK_LAG_BUCKETS_S,
        )?
        .set_buckets_for_metric(
            Matcher::Full(observe::BEST_AVAILABLE_SECONDS.into()),
            &observe::BEST_AVAILABLE_BUCKETS_S,
        )?
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &LATENCY_BUCKETS_S)?
        .set_buckets_for_metric(Matcher::Full(observe::WAL_GROUP_RECORDS.into()), &GROUP_BUCKETS)?
        .set_buckets_for_metric(
            Matcher::Full(observe::QUEUE_ETA_ERROR_RATIO.into()),
            &observe::QUEUE_ETA_ERROR_BUCKETS,
        )?
        .install_recorder()
        .context("installing the metrics recorder")?;
    crate::metrics_help::describe();
    Ok(handle)
}

async fn run(config: Config, loaded: VenuesAndEvents, metrics: PrometheusHandle, privacy: Arc<Privacy>) -> Result<()> {
    let listener =
        TcpListener::bind(&config.listen).await.with_context(|| format!("listening on {}", config.listen))?;
    let metrics_listener = TcpListener::bind(&config.metrics_listen)
        .await
        .with_context(|| format!("listening for metrics on {}", config.metrics_listen))?;
    let (address, metrics_address) = (listener.local_addr()?, metrics_listener.local_addr()?);
    tokio::spawn(serve_metrics(metrics_listener, metrics));
    // Tests and scripts read the addresses from this line (ports may be 0 in the config).
    println!("hakken listening on http://{address} (metrics on http://{metrics_address}/metrics)");
    tracing::info!(%address, %metrics_address, "listening");

    // The PSP's webhooks come to this process's own listener (for `test`, from the
    // embedded PSP on loopback).
    let webhook_url = format!("http://{address}/v1/payments/webhooks/stripe");
    let payments = Gateway::start(&config.payments, webhook_url).await?;
    // Checked before recovery: a bad template or SMTP setting stops the server now.
    let relay = crate::notifications::configure(&config.notifications, &address.to_string())?;
    if relay.is_none() {
        tracing::info!("no [notifications.email] smtp_host nor [[notifications.webhooks]]: nothing is sent; the outbox keeps what is to tell");
    }
    let shared = shared_state(&config, payments, privacy);
    tokio::spawn(crate::http::report_readiness(shared.clone()));
    let cluster = match config.cluster.enabled {
        true => Some(join_cluster(&config, &loaded, address).await?),
        false => None,
    };
    let recovery = recover_in_background(config, loaded, shared.clone(), relay, cluster.clone());
    serve_until_stopped(listener, &shared).await?;
    recovery.abort();
    if let Some(node) = shared.cluster.get() {
        node.leave().await;
    }
    if let Some(app) = shared.ready_app().cloned() {
        tokio::task::spawn_blocking(move || app.shut_down()).await.context("stopping the engine")?;
    }
    println!("hakken stopped");
    tracing::info!("stopped; WAL flushed");
    Ok(())
}

/// Cluster mode's pieces from start-up to the end: the connection, the replicator
/// the store writes through, and (once the app is ready) the node's event tasks.
#[derive(Clone)]
struct Cluster {
    settings: crate::config::ClusterSettings,
    address: String,
    jetstream: hakken_cluster::jetstream::JetStream,
    replicator: Arc<LogReplicator>,
}

/// How long a starting node tries to reach JetStream before it gives up.
const JOIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Connects to JetStream (creating the lease bucket and the log if this is the first
/// node) before recovery, so a node that cannot reach NATS does not start.
async fn join_cluster(config: &Config, loaded: &VenuesAndEvents, address: SocketAddr) -> Result<Cluster> {
    let cluster_config = config.cluster.cluster_config()?;
    for event in &loaded.events {
        hakken_cluster::jetstream::subject_token(&event.id)?;
    }
    // A NATS cluster that has just started has no JetStream leader for a few seconds.
    let deadline = Instant::now() + JOIN_TIMEOUT;
    let jetstream = loop {
        match hakken_cluster::jetstream::JetStream::connect(&cluster_config).await {
            Ok(jetstream) => break jetstream,
            Err(error) if Instant::now() < deadline => {
                tracing::warn!(%error, "cluster: JetStream not ready; trying again");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(error) => return Err(error).context("joining the cluster (NATS JetStream)"),
        }
    };
    let address = match config.cluster.advertise.as_str() {
        "" => format!("http://{address}"),
        advertised => advertised.to_string(),
    };
    println!("hakken cluster node {} (advertised at {address})", config.cluster.node);
    Ok(Cluster {
        settings: config.cluster.clone(),
        address,
        jetstream,
        replicator: Arc::new(LogReplicator::new(tokio::runtime::Handle::current())),
    })
}

/// What every request can reach before recovery has finished: the bounds and tokens.
fn shared_state(config: &Config, payments: Option<Arc<Gateway>>, privacy: Arc<Privacy>) -> Arc<Shared> {
    if privacy.keyring().has_demo_key() {
        tracing::warn!(
            "buyers' data is sealed with the public demo key of config/hakken.toml: it protects nothing; \
             set HAKKEN_PRIVACY_KEYS and HAKKEN_PRIVACY_ACTIVE_KEY"
        );
    }
    let tokens = Tokens {
        admin: config.admin_token.clone(),
        gate: config.gate_token.clone(),
        sales: config.sales_token.clone(),
    };
    let shared = Arc::new(Shared::new(config.http.clone(), config.gates.clone(), tokens, payments, privacy));
    if shared.admin_token.is_empty() {
        tracing::warn!("no admin token configured (HAKKEN_ADMIN_TOKEN): admin endpoints are off");
    }
    if shared.gate_token.is_empty() {
        tracing::warn!("no gate token configured (HAKKEN_GATE_TOKEN): scanning endpoints are off");
    }
    match &shared.payments {
        None => tracing::warn!("payments.provider = \"external\": holds are confirmed on trust, without a sales token"),
        Some(_) if shared.sales_token.is_empty() => {
            tracing::info!("no sales token (HAKKEN_SALES_TOKEN): holds are sold only through payments")
        }
        Some(_) => {}
    }
    shared
}

/// Recovers the store on a blocking thread while the listener already answers (503
/// `starting` until then); a failed recovery ends the process.
fn recover_in_background(
    config: Config,
    loaded: VenuesAndEvents,
    shared: Arc<Shared>,
    relay: Option<(crate::notifications::RelayParts, crate::notifications::RelayHandle)>,
    cluster: Option<Cluster>,
) -> tokio::task::JoinHandle<()> {
    let recovery = tokio::task::spawn_blocking(move || -> Result<()> {
        let started = Instant::now();
        let replicator = cluster.as_ref().map(|cluster| cluster.replicator.clone());
        let registry = open_registry(&config, loaded, Clock::System, replicator)?;
        let owners = cluster.as_ref().map(|cluster| {
            let owners = Arc::new(Owners::new(registry.events().map(|entry| entry.event.id.as_str())));
            let keys = registry.events().map(|entry| {
                let first = entry.sections.first().map_or(0, |section| section.key.0);
                (entry.event.id.clone(), first, entry.sections.len() as u32)
            });
            cluster.replicator.set_events(owners.clone(), keys);
            owners
        });
        let app = Arc::new(App::new(registry, &config.http, owners.clone()).context("taking the events into service")?);
        let runtime = tokio::runtime::Handle::current();
        if let (Some(cluster), Some(owners)) = (&cluster, owners) {
            let node = Arc::new(Node::new(
                cluster.settings.node.clone(),
                cluster.address.clone(),
                Duration::from_millis(cluster.settings.lease_ttl_ms),
                cluster.jetstream.clone(),
                cluster.replicator.clone(),
                owners,
            ));
            let _guard = runtime.enter();
            node.spawn(&app);
            let _ = shared.cluster.set(node);
        }
        runtime.spawn(app.idempotency.clone().prune_forever(app.clock().clone()));
        shared.set_ready(app);
        runtime.spawn(crate::waiting_rooms::run(shared.clone()));
        if let Some(gateway) = shared.payments.clone() {
            runtime.spawn(gateway.sweep_forever(shared.clone()));
        }
        if let Some((relay, handle)) = relay {
            let _ = shared.notifications.set(handle);
            relay.spawn_background(shared.clone())?;
        }
        println!("hakken ready in {:.2} s", started.elapsed().as_secs_f64());
        tracing::info!(seconds = started.elapsed().as_secs_f64(), "recovered; ready");
        Ok(())
    });
    tokio::spawn(async move {
        match recovery.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::error!("recovery failed: {error:#}");
                eprintln!("hakken: recovery failed: {error:#}");
                std::process::exit(1);
            }
            Err(panic) => {
                eprintln!("hakken: recovery panicked: {panic}");
                std::process::exit(1);
            }
        }
    })
}

/// Serves the API until SIGTERM or SIGINT, then drains the requests in flight for at
/// most `shutdown_grace_ms`.
async fn serve_until_stopped(listener: TcpListener, shared: &Arc<Shared>) -> Result<()> {
    let stop = Arc::new(tokio::sync::Notify::new());
    let router = crate::http::router(shared.clone());
    // `tap_io` also gives the listener axum's `ConnectInfo<SocketAddr>`. Small answers
    // go out at once rather than wait for Nagle's timer (axum 0.8 leaves it on).
    let listener = BoundedListener::new(listener, &shared.http).tap_io(|stream| {
        if let Err(error) = stream.tcp().set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY on a connection");
        }
    });
    let server = axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown({
            let (shared, stop) = (shared.clone(), stop.clone());
            async move {
                shutdown_signal().await;
                shared.shutting_down.store(true, Ordering::Release);
                tracing::info!("shutting down: draining requests in flight");
                stop.notify_one();
            }
        });
    let grace = Duration::from_millis(shared.http.shutdown_grace_ms);
    tokio::select! {
        served = server => served.context("serving HTTP")?,
        () = async { stop.notified().await; tokio::time::sleep(grace).await } => {
            tracing::warn!(in_flight = shared.overload.in_flight(), "grace period over; stopping with requests in flight");
        }
    }
    Ok(())
}

/// Opens the store, recovers what it holds, then adds configured venues and events it
/// does not have yet. A stored event wins over the file of the same id (it may have
/// been changed through the admin API since). `clock` is the one clock of the process:
/// the section actors and the API read "now" from it (tests pass a manual one).
/// Blocking (it reads and syncs the store): call it off the async workers.
pub fn recover(config: &Config, loaded: VenuesAndEvents, clock: Clock) -> Result<Registry> {
    open_registry(config, loaded, clock, None)
}

/// [`recover`]; in cluster mode (`replicator`), the store writes through the event logs
/// and every event starts idle (the node's tasks take events over).
fn open_registry(
    config: &Config,
    loaded: VenuesAndEvents,
    clock: Clock,
    replicator: Option<Arc<LogReplicator>>,
) -> Result<Registry> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating the data dir {}", config.data_dir.display()))?;
    let mut registry = match replicator {
        None => {
            Registry::recover(config.engine.clone(), clock, Store::open(&config.data_dir, config.storage.clone())?)?
        }
        Some(replicator) => {
            let replicator: Arc<dyn hakken_engine::store::Replicator> = replicator;
            let store = Store::open_replicated(&config.data_dir, config.storage.clone(), Some(replicator))?;
            Registry::standby(config.engine.clone(), clock, store)?
        }
    };
    for venue in loaded.venues {
        if registry.venue(&venue.id).is_none() {
            registry.add_venue(venue)?;
        }
    }
    for event in loaded.events {
        if registry.event(&event.id).is_none() {
            tracing::info!(event = %event.id, "storing the configured event");
            registry.add_event(event)?;
        }
    }
    Ok(registry)
}

async fn serve_metrics(listener: TcpListener, handle: PrometheusHandle) {
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(METRICS_UPKEEP);
        loop {
            ticks.tick().await;
            upkeep.run_upkeep();
        }
    });
    let router = axum::Router::new().route("/metrics", get(move || async move { handle.render() }));
    if let Err(error) = axum::serve(listener, router).await {
        tracing::error!(%error, "the metrics listener failed");
    }
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(terminate) => terminate,
            Err(error) => {
                tracing::warn!(%error, "cannot watch SIGTERM; only SIGINT stops the server");
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
