//! `hakken-fakepsp`: the command line of the fake PSP (see the library's docs for the API
//! it serves and its `/_fake/` control API). Prints `listening on <addr>` once bound, then
//! serves until Ctrl-C or SIGTERM.

use std::net::SocketAddr;

use anyhow::Context;
use clap::Parser;
use hakken_fakepsp::{Config, Faults, WebhookConfig, DEFAULT_PUBLISHABLE_KEY, DEFAULT_SECRET_KEY};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(name = "hakken-fakepsp", version, about = "A Stripe-compatible stateful test PSP with fault injection")]
struct Cli {
    /// Address to listen on; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Where webhooks are POSTed (http:// only); without it events wait until one is set
    /// with `POST /_fake/webhook_url`.
    #[arg(long)]
    webhook_url: Option<String>,
    /// The endpoint secret (`whsec_...`) webhooks are signed with; repeat it (or separate
    /// with commas) to send one signature per secret, as during a rotation.
    #[arg(long, required = true, value_delimiter = ',')]
    webhook_secret: Vec<String>,
    #[arg(long, default_value = DEFAULT_SECRET_KEY)]
    secret_key: String,
    #[arg(long, default_value = DEFAULT_PUBLISHABLE_KEY)]
    publishable_key: String,
    /// Stored PaymentIntents, charges, refunds and events at most.
    #[arg(long, default_value_t = 500_000)]
    objects_max: usize,
    /// Idempotency keys remembered at most (oldest forgotten first).
    #[arg(long, default_value_t = 200_000)]
    idempotency_keys_max: usize,
    /// Attempts per webhook delivery.
    #[arg(long, default_value_t = 8)]
    webhook_attempts_max: u32,
    /// First retry wait of a webhook; doubles per attempt.
    #[arg(long, default_value_t = 50)]
    webhook_retry_base_ms: u64,
    #[arg(long, default_value_t = 5_000)]
    webhook_retry_max_ms: u64,
    #[arg(long, default_value_t = 5_000)]
    webhook_timeout_ms: u64,
    /// Webhook attempts in flight at most.
    #[arg(long, default_value_t = 32)]
    webhook_concurrency: usize,
    /// Event types the endpoint subscribes to, comma-separated (Stripe's
    /// `enabled_events`); default: every type. Others are still listed by `GET /v1/events`.
    #[arg(long, value_delimiter = ',')]
    webhook_events: Option<Vec<String>>,
    /// Seed of ids and client secrets (default: from the clock).
    #[arg(long)]
    seed: Option<u64>,

    // Faults (also settable at runtime with POST /_fake/faults).
    /// Delay before each webhook delivery.
    #[arg(long, default_value_t = 0)]
    webhook_delay_ms: u64,
    /// Extra deliveries of every event.
    #[arg(long, default_value_t = 0)]
    webhook_duplicates: u32,
    /// Hold back events until this many wait, then deliver them newest first.
    #[arg(long, default_value_t = 0)]
    webhook_reorder_batch: u32,
    #[arg(long, default_value_t = 1_000)]
    webhook_reorder_hold_ms: u64,
    /// Never deliver the next N events.
    #[arg(long, default_value_t = 0)]
    webhook_drop_next: u64,
    /// Start with webhook delivery paused.
    #[arg(long)]
    webhooks_paused: bool,
    /// Answer the next N API calls with 500.
    #[arg(long, default_value_t = 0)]
    fail_next: u64,
    /// Do not store injected 500s under the call's Idempotency-Key.
    #[arg(long)]
    fail_not_stored: bool,
    /// Make the next N API calls hang, then close the connection.
    #[arg(long, default_value_t = 0)]
    timeout_next: u64,
    #[arg(long, default_value_t = 30_000)]
    timeout_hang_ms: u64,
    /// Timed-out calls execute before hanging (the answer is lost, not the effect).
    #[arg(long)]
    timeout_applies: bool,
    /// Only calls whose "METHOD /path" contains this text get --fail-next / --timeout-next.
    #[arg(long)]
    api_fault_match: Option<String>,
    /// Pay late: confirms answer `processing`, authorized this many ms later.
    #[arg(long, default_value_t = 0)]
    pay_late_ms: u64,
}

impl Cli {
    fn config(self) -> Config {
        let mut config = Config::new(self.listen, String::new());
        config.webhook_url = self.webhook_url;
        config.webhook_secrets = self.webhook_secret;
        config.enabled_events = self.webhook_events;
        config.secret_key = self.secret_key;
        config.publishable_key = self.publishable_key;
        config.objects_max = self.objects_max;
        config.idempotency_keys_max = self.idempotency_keys_max;
        config.seed = self.seed;
        config.webhook = WebhookConfig {
            attempts_max: self.webhook_attempts_max,
            retry_base_ms: self.webhook_retry_base_ms,
            retry_max_ms: self.webhook_retry_max_ms,
            timeout_ms: self.webhook_timeout_ms,
            concurrency: self.webhook_concurrency,
        };
        config.faults = Faults {
            webhook_delay_ms: self.webhook_delay_ms,
            webhook_duplicates: self.webhook_duplicates,
            webhook_reorder_batch: self.webhook_reorder_batch,
            webhook_reorder_hold_ms: self.webhook_reorder_hold_ms,
            webhook_drop_next: self.webhook_drop_next,
            webhooks_paused: self.webhooks_paused,
            fail_next: self.fail_next,
            fail_stores: !self.fail_not_stored,
            timeout_next: self.timeout_next,
            timeout_hang_ms: self.timeout_hang_ms,
            timeout_applies: self.timeout_applies,
            api_fault_match: self.api_fault_match,
            pay_late_ms: self.pay_late_ms,
        };
        config
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Cli::parse().config();
    let running = hakken_fakepsp::start(config).await.context("starting the fake PSP")?;
    println!("listening on {}", running.addr());
    shutdown_signal().await;
    running.stop().await;
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
