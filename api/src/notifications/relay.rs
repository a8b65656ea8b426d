//! The relay: delivers outbox entries to their destinations (the buyer's email, each
//! webhook endpoint that takes the entry's type), off the sale path.
//!
//! One tokio task owns the relay's state; attempts run as tasks of their own and report
//! back over a channel. Entries are loaded from the store in `seq` order, at most
//! `entries_in_memory_max` at once, when the writer says it wrote new ones; each
//! destination of an entry is tried when due (now, or after a backoff with jitter, never
//! before a receiver's Retry-After), bounded per destination (the SMTP pool's size; a
//! webhook endpoint's concurrency). Progress is written through the WAL writer in one
//! batch per turn: an entry delivered everywhere is deleted, one with a destination that
//! gave up moves to the dead letters, others keep their attempts. A crash between a
//! delivery and its record sends it again: at-least-once, with stable ids (`Message-ID`,
//! `webhook-id`) that let receivers drop the repeat.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use hakken_engine::store::{OutboxChange, Shelf, StorageError, Store, WalHandle};
use hakken_engine::wal::{DeliveryRecord, DeliveryStateRecord, OutboxEntry, OutboxStored};
use hakken_notify::metrics as names;
use hakken_notify::{
    build_message, DeliveryOutcome, NextAttempt, RetryPolicy, SmtpMailer, Templates, WebhookEndpoint, WebhookMessage,
    WebhookSender,
};
use tokio::sync::{mpsc, oneshot, Semaphore};

use super::compose::{self, kind_label, ComposeError, Sources, Told};
use super::config::NotificationsConfig;
use crate::http::app::Shared;

/// The destination name of the buyer's email in an entry's deliveries.
pub const EMAIL: &str = "email";
/// How often the depth and age gauges are refreshed.
const GAUGES_EVERY: Duration = Duration::from_secs(5);
/// The longest the relay sleeps with nothing due (it also wakes on new entries).
const IDLE_WAKE: Duration = Duration::from_secs(1);
/// Queued admin commands at most.
const COMMANDS_MAX: usize = 64;

/// A way to reach the relay (the admin endpoints').
#[derive(Clone)]
pub struct RelayHandle {
    commands: mpsc::Sender<Command>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetryError {
    #[error("no dead letter {0}")]
    NotFound(u64),
    #[error("the relay is busy or stopped; retry shortly")]
    Unavailable,
    #[error("the store refused the change: {0}")]
    Storage(String),
}

enum Command {
    /// Move dead letter `seq` back to pending, its failed deliveries to be tried afresh.
    Retry { seq: u64, reply: oneshot::Sender<Result<OutboxStored, RetryError>> },
}

impl RelayHandle {
    pub async fn retry(&self, seq: u64) -> Result<OutboxStored, RetryError> {
        let (reply, answer) = oneshot::channel();
        self.commands.try_send(Command::Retry { seq, reply }).map_err(|_| RetryError::Unavailable)?;
        answer.await.unwrap_or(Err(RetryError::Unavailable))
    }
}

struct EmailChannel {
    mailer: SmtpMailer,
    templates: Templates,
    slots: Arc<Semaphore>,
}

struct WebhookChannel {
    endpoint: WebhookEndpoint,
    /// `webhook <url without its query>`: what deliveries and logs name it by.
    destination: String,
    slots: Arc<Semaphore>,
    /// A `410 Gone` turned it off until the next start (the config is the source of truth).
    disabled: AtomicBool,
}

/// The channels, shared with the attempt tasks.
struct Channels {
    email: Option<EmailChannel>,
    webhooks: Vec<WebhookChannel>,
    sender: WebhookSender,
}

impl Channels {
    fn destination(&self, channel: Channel) -> &str {
        match channel {
            Channel::Email => EMAIL,
            Channel::Webhook(index) => &self.webhooks[index].destination,
        }
    }

    /// Where `entry` goes under the current configuration.
    fn of(&self, entry: &OutboxEntry) -> Vec<Channel> {
        let mut channels = Vec::new();
        if self.email.is_some() && compose::email_kind(entry.kind).is_some() {
            channels.push(Channel::Email);
        }
        let kind = compose::webhook_kind(entry.kind);
        for (index, webhook) in self.webhooks.iter().enumerate() {
            if webhook.endpoint.wants(kind) {
                channels.push(Channel::Webhook(index));
            }
        }
        channels
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Channel {
    Email,
    Webhook(usize),
}

impl Channel {
    /// The bounded `channel` label.
    fn label(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Webhook(_) => "webhook",
        }
    }
}

/// An entry being delivered.
struct Tracked {
    stored: OutboxStored,
    /// Its destinations, each with the index of its delivery in `stored.deliveries`.
    channels: Vec<(Channel, usize)>,
    /// Deliveries with an attempt running, by index.
    in_flight: BTreeSet<usize>,
}

/// What an attempt task reports.
struct Attempted {
    seq: u64,
    delivery: usize,
    channel: Channel,
    result: AttemptResult,
    took: Duration,
}

enum AttemptResult {
    Outcome(DeliveryOutcome),
    /// Nothing to send (the buyer erased, the order cancelled since, ...).
    NotSent(&'static str),
    Compose(ComposeError),
}

pub struct Relay {
    shared: Arc<Shared>,
    store: Arc<Store>,
    wal: WalHandle,
    channels: Arc<Channels>,
    policy: RetryPolicy,
    public_url: Arc<str>,
    in_memory_max: usize,
    tracked: BTreeMap<u64, Tracked>,
    /// (due at, seq): entries with a delivery due then.
    schedule: BTreeSet<(u64, u64)>,
    /// The highest `seq` loaded from the store.
    loaded_up_to: u64,
    /// Whether the store may hold pending entries not loaded yet.
    unloaded: bool,
    /// Entries whose progress is not written yet, and changes of finished ones.
    dirty: BTreeSet<u64>,
    finished: Vec<OutboxChange>,
    commands: mpsc::Receiver<Command>,
    results: (mpsc::UnboundedSender<Attempted>, mpsc::UnboundedReceiver<Attempted>),
}

/// The relay of `config`, if anything is configured to receive notifications; checks
/// everything (templates, SMTP settings, endpoints) so that a bad setting stops the
/// server at startup. Call inside the tokio runtime (the SMTP pool needs it).
pub fn configure(config: &NotificationsConfig, listen: &str) -> Result<Option<(RelayParts, RelayHandle)>> {
    config.validate()?;
    if !config.enabled() {
        return Ok(None);
    }
    let email = if config.email_enabled() {
        let templates = Templates::load(&config.templates_dir)
            .with_context(|| format!("notifications.templates_dir {}", config.templates_dir.display()))?;
        let email_config = config.email_config()?;
        let mailer = SmtpMailer::new(&email_config).context("[notifications.email]")?;
        let slots = Arc::new(Semaphore::new(email_config.connections_max as usize));
        Some(EmailChannel { mailer, templates, slots })
    } else {
        None
    };
    let mut webhooks = Vec::new();
    for (index, endpoint) in config.webhook_configs().iter().enumerate() {
        let endpoint = WebhookEndpoint::new(endpoint)
            .with_context(|| format!("[[notifications.webhooks]] number {}", index + 1))?;
        let destination = format!("webhook {}", endpoint.display_url());
        let slots = Arc::new(Semaphore::new(config.relay.webhook_concurrency));
        webhooks.push(WebhookChannel { endpoint, destination, slots, disabled: AtomicBool::new(false) });
    }
    let sender = WebhookSender::new(config.sender_config()?).context("notifications.relay")?;
    let public_url = match config.public_url.trim_end_matches('/') {
        "" => format!("http://{listen}"),
        url => url.to_string(),
    };
    let (commands, receiver) = mpsc::channel(COMMANDS_MAX);
    let parts = RelayParts {
        channels: Arc::new(Channels { email, webhooks, sender }),
        policy: config.retry_policy()?,
        public_url: public_url.into(),
        in_memory_max: config.relay.entries_in_memory_max,
        commands: receiver,
    };
    Ok(Some((parts, RelayHandle { commands })))
}

/// A relay configured but not started (the store is not open yet at startup).
pub struct RelayParts {
    channels: Arc<Channels>,
    policy: RetryPolicy,
    public_url: Arc<str>,
    in_memory_max: usize,
    commands: mpsc::Receiver<Command>,
}

/// The niceness of the relay's thread: the lowest. When a sale keeps the CPU busy the
/// scheduler gives the relay about 1.5% of it (weight 15 against 1,024), so a flood of
/// emails to compose and QR codes to draw never slows a hold or a confirm; the backlog
/// waits in the outbox (its oldest age is a metric) and drains in the idle time.
const RELAY_NICE: i32 = 19;

impl RelayParts {
    /// Starts the relay on a thread of its own at the lowest CPU priority, with its own
    /// single-threaded runtime (the attempts it spawns run there too), once the store is
    /// recovered. The thread runs until the process ends.
    pub fn spawn_background(self, shared: Arc<Shared>) -> Result<()> {
        std::thread::Builder::new()
            .name("notify".into())
            .spawn(move || {
                lower_this_threads_priority(RELAY_NICE);
                let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        tracing::error!(%error, "notifications: the relay's runtime did not start; nothing is sent");
                        return;
                    }
                };
                runtime.block_on(self.run(shared));
            })
            .context("starting the notifications relay thread")?;
        Ok(())
    }

    /// Runs the relay until the process ends (spawn it once the store is recovered).
    pub async fn run(self, shared: Arc<Shared>) {
        let Some(app) = shared.ready_app().cloned() else { return };
        let store = app.store.clone();
        let relay = Relay {
            shared,
            wal: store.wal(),
            store,
            channels: self.channels,
            policy: self.policy,
            public_url: self.public_url,
            in_memory_max: self.in_memory_max,
            tracked: BTreeMap::new(),
            schedule: BTreeSet::new(),
            loaded_up_to: 0,
            unloaded: true,
            dirty: BTreeSet::new(),
            finished: Vec::new(),
            commands: self.commands,
            results: mpsc::unbounded_channel(),
        };
        relay.run().await;
    }
}

impl Relay {
    fn now_ms(&self) -> u64 {
        self.shared.ready_app().map_or(0, |app| app.now().0)
    }

    async fn run(mut self) {
        let written = self.store.outbox_written();
        let mut gauges_at = Instant::now();
        loop {
            if self.unloaded && self.tracked.len() < self.in_memory_max {
                self.load().await;
            }
            self.start_due();
            if gauges_at.elapsed() >= GAUGES_EVERY {
                self.refresh_gauges().await;
                gauges_at = Instant::now();
            }
            let wait = self.next_due_in().min(IDLE_WAKE);
            tokio::select! {
                result = self.results.1.recv() => {
                    let Some(result) = result else { return };
                    self.record(result);
                    while let Ok(result) = self.results.1.try_recv() {
                        self.record(result);
                    }
                }
                () = written.notified() => self.unloaded = true,
                command = self.commands.recv() => match command {
                    Some(command) => self.command(command).await,
                    None => return,
                },
                () = tokio::time::sleep(wait) => {}
            }
            self.flush().await;
        }
    }

    /// Loads pending entries after the last one loaded, as many as there is room for.
    async fn load(&mut self) {
        let room = self.in_memory_max.saturating_sub(self.tracked.len());
        let (store, after) = (self.store.clone(), self.loaded_up_to);
        let page = tokio::task::spawn_blocking(move || store.outbox_page(Shelf::Pending, after, room)).await;
        let page = match page {
            Ok(Ok(page)) => page,
            Ok(Err(error)) => return tracing::error!(%error, "reading the outbox failed; retrying"),
            Err(error) => return tracing::error!(%error, "reading the outbox panicked; retrying"),
        };
        self.unloaded = page.len() >= room;
        for stored in page {
            self.loaded_up_to = self.loaded_up_to.max(stored.entry.seq);
            if !self.tracked.contains_key(&stored.entry.seq) {
                self.track(stored);
            }
        }
    }

    /// Takes `stored` in: its deliveries matched to the configured destinations (a new
    /// destination starts pending; one no longer configured is skipped), scheduled now.
    fn track(&mut self, mut stored: OutboxStored) {
        let seq = stored.entry.seq;
        let mut channels = Vec::new();
        let wanted = self.channels.of(&stored.entry);
        for channel in &wanted {
            let destination = self.channels.destination(*channel);
            let index = match stored.deliveries.iter().position(|delivery| delivery.destination == destination) {
                Some(index) => index,
                None => {
                    stored.deliveries.push(DeliveryRecord {
                        destination: destination.to_string(),
                        state: DeliveryStateRecord::Pending,
                        attempts: 0,
                        last_outcome: String::new(),
                        next_attempt_at_ms: 0,
                    });
                    stored.deliveries.len() - 1
                }
            };
            channels.push((*channel, index));
        }
        let known: BTreeSet<usize> = channels.iter().map(|(_, index)| *index).collect();
        for (index, delivery) in stored.deliveries.iter_mut().enumerate() {
            if !known.contains(&index) && delivery.state == DeliveryStateRecord::Pending {
                delivery.state = DeliveryStateRecord::Skipped;
                delivery.last_outcome = "skipped: no longer configured".into();
            }
        }
        let due = stored
            .deliveries
            .iter()
            .filter(|delivery| delivery.state == DeliveryStateRecord::Pending)
            .map(|delivery| delivery.next_attempt_at_ms)
            .min();
        self.tracked.insert(seq, Tracked { stored, channels, in_flight: BTreeSet::new() });
        match due {
            Some(at) => {
                self.schedule.insert((at, seq));
            }
            // Nothing left to deliver (everything skipped): finish it.
            None => self.finish(seq),
        }
    }

    fn next_due_in(&self) -> Duration {
        let Some(&(at, _)) = self.schedule.first() else { return IDLE_WAKE };
        Duration::from_millis(at.saturating_sub(self.now_ms()))
    }

    /// Starts an attempt task for every entry with deliveries due now.
    fn start_due(&mut self) {
        let now = self.now_ms();
        while let Some(&(at, seq)) = self.schedule.first() {
            if at > now {
                break;
            }
            self.schedule.pop_first();
            let Some(tracked) = self.tracked.get_mut(&seq) else { continue };
            let mut due = Vec::new();
            for &(channel, index) in &tracked.channels {
                let delivery = &mut tracked.stored.deliveries[index];
                if delivery.state != DeliveryStateRecord::Pending
                    || delivery.next_attempt_at_ms > now
                    || tracked.in_flight.contains(&index)
                {
                    continue;
                }
                if let Channel::Webhook(endpoint) = channel {
                    if self.channels.webhooks[endpoint].disabled.load(Ordering::Relaxed) {
                        delivery.state = DeliveryStateRecord::Dead;
                        delivery.last_outcome = "gone: the endpoint was disabled by a 410".into();
                        // A dead letter like any other: the alert on dead letters sees it.
                        let kind = kind_label(tracked.stored.entry.kind);
                        metrics::counter!(names::DEAD_LETTERS_TOTAL, "channel" => channel.label(), "kind" => kind)
                            .increment(1);
                        continue;
                    }
                }
                due.push((channel, index));
            }
            for (_, index) in &due {
                tracked.in_flight.insert(*index);
            }
            let entry = tracked.stored.entry.clone();
            if due.is_empty() {
                self.after_change(seq);
                continue;
            }
            let sources = (self.shared.clone(), self.channels.clone(), self.public_url.clone());
            tokio::spawn(attempt(sources, entry, due, self.results.0.clone()));
        }
    }

    /// Takes an attempt's outcome into the entry's delivery.
    fn record(&mut self, attempted: Attempted) {
        let now = self.now_ms();
        let Attempted { seq, delivery: index, channel, result, took } = attempted;
        let Some(tracked) = self.tracked.get_mut(&seq) else { return };
        tracked.in_flight.remove(&index);
        let entry = &tracked.stored.entry;
        let kind = kind_label(entry.kind);
        let at_ms = entry.at_ms;
        let delivery = &mut tracked.stored.deliveries[index];
        let label = channel.label();
        let outcome = match result {
            AttemptResult::NotSent(reason) => {
                delivery.state = DeliveryStateRecord::Skipped;
                delivery.last_outcome = format!("skipped: {reason}");
                metrics::counter!(names::ATTEMPTS_TOTAL, "channel" => label, "outcome" => "skipped").increment(1);
                return self.after_change(seq);
            }
            AttemptResult::Compose(ComposeError::Gone(reason)) => DeliveryOutcome::Rejected { detail: reason.into() },
            AttemptResult::Compose(ComposeError::Unavailable(detail)) => DeliveryOutcome::Retry { after: None, detail },
            AttemptResult::Outcome(outcome) => outcome,
        };
        delivery.attempts += 1;
        metrics::counter!(names::ATTEMPTS_TOTAL, "channel" => label, "outcome" => outcome.label()).increment(1);
        metrics::histogram!(names::ATTEMPT_SECONDS, "channel" => label).record(took.as_secs_f64());
        let dead = |delivery: &mut DeliveryRecord, why: String| {
            delivery.state = DeliveryStateRecord::Dead;
            delivery.last_outcome = why;
            metrics::counter!(names::DEAD_LETTERS_TOTAL, "channel" => label, "kind" => kind).increment(1);
        };
        match outcome {
            DeliveryOutcome::Delivered => {
                delivery.state = DeliveryStateRecord::Delivered;
                delivery.last_outcome = "delivered".into();
                let latency = Duration::from_millis(now.saturating_sub(at_ms));
                metrics::histogram!(names::DELIVERY_LATENCY_SECONDS, "channel" => label).record(latency.as_secs_f64());
            }
            DeliveryOutcome::Retry { after, detail } => {
                let seed = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ index as u64;
                match self.policy.next(delivery.attempts, after, seed) {
                    NextAttempt::After(wait) => {
                        delivery.last_outcome = format!("retry: {detail}");
                        delivery.next_attempt_at_ms = now.saturating_add(wait.as_millis() as u64);
                    }
                    NextAttempt::DeadLetter => dead(delivery, format!("attempts exhausted; last: {detail}")),
                }
            }
            DeliveryOutcome::Gone => {
                if let Channel::Webhook(endpoint) = channel {
                    let webhook = &self.channels.webhooks[endpoint];
                    if !webhook.disabled.swap(true, Ordering::Relaxed) {
                        metrics::counter!(names::WEBHOOK_ENDPOINTS_DISABLED_TOTAL).increment(1);
                        tracing::warn!(
                            destination = %webhook.destination,
                            "the webhook endpoint answered 410 Gone: disabled until the next start (remove it from [[notifications.webhooks]])"
                        );
                    }
                }
                dead(delivery, "gone: the endpoint answered 410".into());
            }
            DeliveryOutcome::Rejected { detail } => dead(delivery, format!("rejected: {detail}")),
        }
        if delivery.state == DeliveryStateRecord::Dead {
            tracing::warn!(seq, kind, destination = %delivery.destination, outcome = %delivery.last_outcome, "notification given up (dead letter)");
        }
        self.after_change(seq);
    }

    /// After a delivery of `seq` changed: finished, or written and scheduled again.
    fn after_change(&mut self, seq: u64) {
        let Some(tracked) = self.tracked.get(&seq) else { return };
        let pending: Vec<u64> = tracked
            .stored
            .deliveries
            .iter()
            .enumerate()
            .filter(|(_, delivery)| delivery.state == DeliveryStateRecord::Pending)
            .map(
                |(index, delivery)| {
                    if tracked.in_flight.contains(&index) {
                        u64::MAX
                    } else {
                        delivery.next_attempt_at_ms
                    }
                },
            )
            .collect();
        if pending.is_empty() {
            return self.finish(seq);
        }
        self.dirty.insert(seq);
        if let Some(&at) = pending.iter().filter(|at| **at != u64::MAX).min() {
            self.schedule.insert((at, seq));
        }
    }

    /// Every destination is done with `seq`: deleted, or shelved as a dead letter.
    fn finish(&mut self, seq: u64) {
        let Some(tracked) = self.tracked.remove(&seq) else { return };
        self.dirty.remove(&seq);
        self.finished.push(OutboxChange::Remove { shelf: Shelf::Pending, seq });
        if tracked.stored.deliveries.iter().any(|delivery| delivery.state == DeliveryStateRecord::Dead) {
            self.finished.push(OutboxChange::Put { shelf: Shelf::Dead, stored: tracked.stored });
        }
    }

    /// Writes the turn's progress in one batch. When the writer's queue is full it is
    /// kept for the next turn; when the store failed it is dropped (nothing more is
    /// written until a restart, which delivers those entries again).
    async fn flush(&mut self) {
        if self.dirty.is_empty() && self.finished.is_empty() {
            return;
        }
        let mut changes = std::mem::take(&mut self.finished);
        for seq in &self.dirty {
            if let Some(tracked) = self.tracked.get(seq) {
                changes.push(OutboxChange::Put { shelf: Shelf::Pending, stored: tracked.stored.clone() });
            }
        }
        match self.wal.outbox_durable(changes.clone()).await {
            Ok(()) => self.dirty.clear(),
            Err(StorageError::Busy) => {
                self.finished = changes.into_iter().filter(|change| !is_pending_put(change)).collect();
            }
            Err(error) => {
                tracing::error!(%error, "recording notification progress failed; a restart delivers those entries again");
                self.dirty.clear();
            }
        }
    }

    async fn command(&mut self, command: Command) {
        match command {
            Command::Retry { seq, reply } => {
                let _ = reply.send(self.retry(seq).await);
            }
        }
    }

    async fn retry(&mut self, seq: u64) -> Result<OutboxStored, RetryError> {
        let store = self.store.clone();
        let found = tokio::task::spawn_blocking(move || store.outbox_entry(Shelf::Dead, seq))
            .await
            .map_err(|error| RetryError::Storage(error.to_string()))?
            .map_err(|error| RetryError::Storage(error.to_string()))?;
        let mut stored = found.ok_or(RetryError::NotFound(seq))?;
        for delivery in &mut stored.deliveries {
            if delivery.state == DeliveryStateRecord::Dead {
                delivery.state = DeliveryStateRecord::Pending;
                delivery.attempts = 0;
                delivery.next_attempt_at_ms = 0;
                delivery.last_outcome = "retried by an admin".into();
            }
        }
        for webhook in &self.channels.webhooks {
            // An admin's retry is also the way to try a disabled endpoint again.
            let retried = stored.deliveries.iter().any(|delivery| delivery.destination == webhook.destination);
            if retried {
                webhook.disabled.store(false, Ordering::Relaxed);
            }
        }
        let changes = vec![
            OutboxChange::Put { shelf: Shelf::Pending, stored: stored.clone() },
            OutboxChange::Remove { shelf: Shelf::Dead, seq },
        ];
        self.wal.outbox_durable(changes).await.map_err(|error| RetryError::Storage(error.to_string()))?;
        self.track(stored.clone());
        Ok(stored)
    }

    async fn refresh_gauges(&self) {
        let store = self.store.clone();
        let counted = tokio::task::spawn_blocking(move || {
            Ok::<_, hakken_engine::store::StoreError>((
                store.outbox_count(Shelf::Pending)?,
                store.outbox_count(Shelf::Dead)?,
            ))
        })
        .await;
        if let Ok(Ok((pending, dead))) = counted {
            metrics::gauge!(names::OUTBOX_ENTRIES, "state" => "pending").set(pending as f64);
            metrics::gauge!(names::OUTBOX_ENTRIES, "state" => "dead").set(dead as f64);
        }
        let now = self.now_ms();
        for channel in ["email", "webhook"] {
            // Entries are kept in `seq` order, so the first with a pending delivery on the
            // channel is the oldest one still waiting for it.
            let oldest = self.tracked.values().find(|tracked| {
                tracked.channels.iter().any(|(kind, index)| {
                    kind.label() == channel && tracked.stored.deliveries[*index].state == DeliveryStateRecord::Pending
                })
            });
            let age = oldest.map_or(0, |tracked| now.saturating_sub(tracked.stored.entry.at_ms));
            metrics::gauge!(names::OUTBOX_OLDEST_AGE_SECONDS, "channel" => channel).set(age as f64 / 1000.0);
        }
    }
}

fn is_pending_put(change: &OutboxChange) -> bool {
    matches!(change, OutboxChange::Put { shelf: Shelf::Pending, .. })
}

/// One entry's due deliveries: composed once, each destination sent under its own bound.
async fn attempt(
    (shared, channels, public_url): (Arc<Shared>, Arc<Channels>, Arc<str>),
    entry: OutboxEntry,
    due: Vec<(Channel, usize)>,
    results: mpsc::UnboundedSender<Attempted>,
) {
    let started = Instant::now();
    let report = |channel, delivery, result, took| {
        let _ = results.send(Attempted { seq: entry.seq, delivery, channel, result, took });
    };
    let Some(app) = shared.ready_app() else { return };
    let catalogue = app.catalogue();
    let sources = Sources { catalogue: &catalogue, privacy: &shared.privacy, public_url: &public_url };
    let told = match compose::compose(&sources, &entry).await {
        Ok(told) => Arc::new(told),
        Err(error) => {
            for (channel, delivery) in due {
                report(channel, delivery, AttemptResult::Compose(error.clone()), started.elapsed());
            }
            return;
        }
    };
    let now_unix_s = (app.now().0 / 1000) as i64;
    let entry = Arc::new(entry);
    for (channel, delivery) in due {
        let (told, channels, entry, results) = (told.clone(), channels.clone(), entry.clone(), results.clone());
        // Each destination on its own: a hanging endpoint does not hold the email back.
        tokio::spawn(async move {
            let started = Instant::now();
            let result = send(&channels, channel, &told, &entry, now_unix_s).await;
            let _ = results.send(Attempted { seq: entry.seq, delivery, channel, result, took: started.elapsed() });
        });
    }
}

async fn send(
    channels: &Channels,
    channel: Channel,
    told: &Told,
    entry: &OutboxEntry,
    now_unix_s: i64,
) -> AttemptResult {
    match channel {
        Channel::Email => {
            let Some(email) = &channels.email else { return AttemptResult::NotSent("email is off") };
            let input = match &told.email {
                None => return AttemptResult::NotSent("no email for this kind"),
                Some(Err(not_sent)) => return AttemptResult::NotSent(not_sent.0),
                Some(Ok(input)) => input,
            };
            let message = match build_message(&email.templates, input, email.mailer.from(), SystemTime::now()) {
                Ok(message) => message,
                Err(error) => {
                    let detail = format!("the email could not be made: {error}");
                    return AttemptResult::Outcome(DeliveryOutcome::Rejected { detail });
                }
            };
            let Ok(_slot) = email.slots.acquire().await else { return AttemptResult::NotSent("shutting down") };
            AttemptResult::Outcome(email.mailer.send(message).await)
        }
        Channel::Webhook(index) => {
            let webhook = &channels.webhooks[index];
            let message = match WebhookMessage::new(&told.webhook_id, &told.webhook, entry.at_ms) {
                Ok(message) => message,
                Err(error) => return AttemptResult::Outcome(DeliveryOutcome::Rejected { detail: error.to_string() }),
            };
            let Ok(_slot) = webhook.slots.acquire().await else { return AttemptResult::NotSent("shutting down") };
            AttemptResult::Outcome(channels.sender.deliver(&webhook.endpoint, &message, now_unix_s).await)
        }
    }
}

/// Sets the calling thread's niceness (Linux keeps one per thread; threads it starts,
/// such as its runtime's blocking pool, inherit it). A failure leaves the default
/// priority, which is correct, only less kind to the sale path.
#[allow(unsafe_code)] // Two syscalls libc offers only as `unsafe fn`s; nothing else here is unsafe.
fn lower_this_threads_priority(nice: i32) {
    // SAFETY: gettid and setpriority take plain integers and touch no memory of ours.
    let failed = unsafe {
        let thread = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, thread, nice) != 0
    };
    if failed {
        tracing::warn!(error = %std::io::Error::last_os_error(), "notifications: could not lower the relay's priority");
    }
}
