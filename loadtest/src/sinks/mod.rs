//! Notification sinks: the load tool receives hakken's notifications itself (email over
//! SMTP, Standard Webhooks over HTTP) and measures how long after an order was
//! acknowledged its notice arrived.
//!
//! The tool knows every order it got acknowledged and when; hakken is pointed at the
//! sinks (`HAKKEN_NOTIFICATIONS_EMAIL_SMTP_HOST`/`_PORT`, `_TLS=none`; a
//! `[[notifications.webhooks]]` endpoint); each notice is matched to its order
//! ([`ledger`]): by the confirmation's `Message-ID`, or by the `order.confirmed` event's
//! `data.order`. After the load the run waits (at most `--notify-drain-timeout`) until
//! every acknowledged order was told of, and reports the lag (acknowledged → received),
//! duplicates, notices of orders it never saw acknowledged, orders never told of, and how
//! fast a backlog drained: after an SMTP outage (`--smtp-sink-outage`, the sink down, as
//! if the mail server were) and after the load.
//!
//! The sinks run as tasks on the tool's runtime and share its core with the driver, so
//! each notice costs little: the SMTP sink reads headers only up to the `Message-ID` and
//! keeps neither body nor address; the bookkeeping is a hash lookup under an uncontended
//! lock.
//!
//! - [`smtp`]: the SMTP server (a protocol state machine and its tokio shell).
//! - [`webhook`]: the webhook receiver.
//! - [`ledger`]: the bookkeeping, plain data.
//! - `report`: what the run reports of it.

pub mod ledger;
mod report;
pub mod smtp;
pub mod webhook;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use anyhow::Context;
use hakken_notify::WebhookSecret;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use self::ledger::Ledger;
pub use self::report::{ChannelReport, DrainReport, EmailReport, NotificationsReport, OutageReport, WebhookReport};
use self::smtp::{Limits, Message, SinkLog};
use self::webhook::Delivery;
use crate::cpu::CpuTime;

/// How often the drain checks whether every acknowledged order was told of.
const DRAIN_POLL_INTERVAL: Duration = Duration::from_millis(10);

/// When the SMTP sink is down, from the start of the measured window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outage {
    pub start: Duration,
    pub end: Duration,
}

/// The sink flags of `run`.
#[derive(Clone, Debug, Default)]
pub struct SinkConfig {
    /// Listen as an SMTP server here.
    pub smtp: Option<SocketAddr>,
    pub smtp_outage: Option<Outage>,
    /// Listen for webhooks here.
    pub webhook: Option<SocketAddr>,
    /// `whsec_...`: check each webhook's signature.
    pub webhook_secret: Option<String>,
    /// After the load (and the outage) ends, how long to wait for notices still to come.
    pub drain_timeout: Duration,
}

impl SinkConfig {
    pub fn enabled(&self) -> bool {
        self.smtp.is_some() || self.webhook.is_some()
    }
}

struct SmtpRunning {
    address: SocketAddr,
    log: Arc<SinkLog>,
    /// Up or down (an outage); the server stops when this is dropped.
    up: Arc<watch::Sender<bool>>,
    task: JoinHandle<()>,
}

struct WebhookRunning {
    address: SocketAddr,
    signatures_checked: bool,
    task: JoinHandle<()>,
}

/// The running sinks of a run: shared by its arrivals (which acknowledge orders) and
/// its end (which drains and reports).
pub struct Sinks {
    /// Time zero of the ledger's microseconds.
    epoch: Instant,
    /// The start of the measured window, which the outage is relative to.
    window_start: OnceLock<Instant>,
    ledger: Arc<Mutex<Ledger>>,
    smtp: Option<SmtpRunning>,
    webhook: Option<WebhookRunning>,
    outage: Option<Outage>,
    outage_task: Mutex<Option<JoinHandle<()>>>,
    drain_timeout: Duration,
}

impl Sinks {
    /// Opens the configured sinks; `None` if none is. Call inside a tokio runtime.
    pub fn start(config: &SinkConfig) -> anyhow::Result<Option<Arc<Sinks>>> {
        if !config.enabled() {
            return Ok(None);
        }
        if let Some(outage) = config.smtp_outage {
            anyhow::ensure!(config.smtp.is_some(), "--smtp-sink-outage needs --smtp-sink");
            anyhow::ensure!(outage.start < outage.end, "--smtp-sink-outage START..END: END must be after START");
        }
        let secret = config
            .webhook_secret
            .as_deref()
            .map(WebhookSecret::parse)
            .transpose()
            .context("--webhook-secret")?
            .map(Arc::new);
        let epoch = Instant::now();
        let ledger = Arc::new(Mutex::new(Ledger::new(config.smtp.is_some(), config.webhook.is_some())));
        let smtp = config.smtp.map(|address| start_smtp(address, &ledger, epoch)).transpose()?;
        let webhook = match config.webhook {
            Some(address) => Some(start_webhook(address, secret, &ledger, epoch)?),
            None => None,
        };
        Ok(Some(Arc::new(Sinks {
            epoch,
            window_start: OnceLock::new(),
            ledger,
            smtp,
            webhook,
            outage: config.smtp_outage,
            outage_task: Mutex::new(None),
            drain_timeout: config.drain_timeout,
        })))
    }

    /// Where the SMTP sink listens (its port, when 0 was asked for).
    pub fn smtp_address(&self) -> Option<SocketAddr> {
        self.smtp.as_ref().map(|smtp| smtp.address)
    }

    pub fn webhook_address(&self) -> Option<SocketAddr> {
        self.webhook.as_ref().map(|webhook| webhook.address)
    }

    fn ledger(&self) -> MutexGuard<'_, Ledger> {
        self.ledger.lock().expect("notification ledger lock poisoned")
    }

    /// The tool was told that `order_id` is confirmed, now.
    pub fn acknowledged(&self, order_id: &str) {
        let at_us = micros_since(self.epoch, Instant::now());
        self.ledger().acknowledge(order_id, at_us);
    }

    /// A confirm got no definite answer: the server may have sold without the tool knowing.
    pub fn in_doubt(&self) {
        self.ledger().confirms_in_doubt += 1;
    }

    /// The measured window starts at `window_start`: schedules the outage.
    pub fn begin(&self, window_start: Instant) {
        let _ = self.window_start.set(window_start);
        let (Some(outage), Some(smtp)) = (self.outage, &self.smtp) else { return };
        let up = smtp.up.clone();
        let task = tokio::spawn(async move {
            tokio::time::sleep_until(window_start + outage.start).await;
            up.send_replace(false);
            tokio::time::sleep_until(window_start + outage.end).await;
            up.send_replace(true);
        });
        *self.outage_task.lock().expect("outage task lock poisoned") = Some(task);
    }

    /// After the load stopped at `load_stopped`: waits until every acknowledged order was
    /// told of (and the outage is over), at most the drain timeout past both, or until
    /// `stop` completes; then stops the sinks and reports. `server_pid`: hakken's CPU
    /// over that wait, per email.
    pub async fn finish(
        &self,
        load_stopped: Instant,
        server_pid: Option<u32>,
        stop: impl Future<Output = ()>,
    ) -> anyhow::Result<NotificationsReport> {
        let window_start = *self.window_start.get_or_init(|| load_stopped);
        let outage_end = self.outage.filter(|_| self.smtp.is_some()).map(|outage| window_start + outage.end);
        let deadline = load_stopped.max(outage_end.unwrap_or(load_stopped)) + self.drain_timeout;
        let server_before = server_pid.map(CpuTime::of_pid).transpose()?;
        let tool_before = CpuTime::now()?;
        let wait = async {
            loop {
                let now = Instant::now();
                let outage_over = outage_end.is_none_or(|end| now >= end);
                if (outage_over && self.ledger().outstanding() == 0) || now >= deadline {
                    return;
                }
                tokio::time::sleep(DRAIN_POLL_INTERVAL).await;
            }
        };
        let interrupted = tokio::select! {
            () = wait => false,
            () = stop => true,
        };
        let drained_at = Instant::now();
        let tool_cpu = CpuTime::now()?.since(tool_before);
        let server_cpu = match (server_pid, server_before) {
            (Some(pid), Some(before)) => Some(CpuTime::of_pid(pid)?.since(before)),
            _ => None,
        };
        self.stop();
        let ledger = self.ledger();
        Ok(report::report(&report::Inputs {
            sinks: self,
            ledger: &ledger,
            window_start,
            load_stopped,
            drained_at,
            server_cpu,
            tool_cpu,
            interrupted,
        }))
    }

    /// Closes the sinks (also done by dropping the runtime).
    fn stop(&self) {
        if let Some(task) = self.outage_task.lock().expect("outage task lock poisoned").take() {
            task.abort();
        }
        if let Some(smtp) = &self.smtp {
            smtp.task.abort();
        }
        if let Some(webhook) = &self.webhook {
            webhook.task.abort();
        }
    }
}

impl Drop for Sinks {
    fn drop(&mut self) {
        self.stop();
    }
}

fn micros_since(epoch: Instant, at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(epoch).as_micros()).unwrap_or(u64::MAX)
}

fn start_smtp(address: SocketAddr, ledger: &Arc<Mutex<Ledger>>, epoch: Instant) -> anyhow::Result<SmtpRunning> {
    let listener = smtp::listen(address).with_context(|| format!("--smtp-sink: cannot listen on {address}"))?;
    let address = listener.local_addr()?;
    let log = Arc::new(SinkLog::default());
    let (up, receiver) = watch::channel(true);
    let ledger = ledger.clone();
    let handler = Arc::new(move |message: Message, at: Instant| {
        let at_us = micros_since(epoch, at);
        let mut ledger = ledger.lock().expect("notification ledger lock poisoned");
        if let Some(email) = &mut ledger.email {
            email.receive(message.message_id.as_deref(), message.bytes, at_us);
        }
    });
    let task = tokio::spawn(smtp::serve(listener, Limits::default(), handler, log.clone(), receiver));
    Ok(SmtpRunning { address, log, up: Arc::new(up), task })
}

fn start_webhook(
    address: SocketAddr,
    secret: Option<Arc<WebhookSecret>>,
    ledger: &Arc<Mutex<Ledger>>,
    epoch: Instant,
) -> anyhow::Result<WebhookRunning> {
    let listener = smtp::listen(address).with_context(|| format!("--webhook-sink: cannot listen on {address}"))?;
    let address = listener.local_addr()?;
    let ledger = ledger.clone();
    let handler = Arc::new(move |delivery: Delivery<'_>, at: Instant| {
        let at_us = micros_since(epoch, at);
        let mut ledger = ledger.lock().expect("notification ledger lock poisoned");
        let Some(book) = &mut ledger.webhook else { return };
        match delivery {
            Delivery::Event { id, notice } => {
                book.receive(id, notice, at_us);
            }
            Delivery::BadSignature => book.refused_signature(),
            Delivery::Malformed => book.refused_malformed(),
        }
    });
    let signatures_checked = secret.is_some();
    let task = tokio::spawn(webhook::serve(listener, secret, handler));
    Ok(WebhookRunning { address, signatures_checked, task })
}
