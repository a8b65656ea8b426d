//! One node's part in each event's ownership: a task per event that keeps the lease,
//! follows the log while another node owns the event, and moves between the two.
//!
//! - **Standby**: the log's messages after the store's position are written into the
//!   local store as they come (`WalHandle::apply_replicated`), so a takeover only
//!   catches up the tail. Requests are redirected to the owner the lease names.
//! - **Take over** (the keeper took the lease): fence the log with this term's epoch
//!   marker and write what precedes it, begin the term in the replicator, then rebuild
//!   the event's sections from the store with the recovery code and start serving.
//! - **Step down** (the lease was lost, or an append of this term was not taken): stop
//!   serving first, end the term, then retire the sections for idle ones.
//! - **Stop** (SIGTERM): step down and release the lease, so another node takes the
//!   event at its next tick instead of a whole ttl later.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use hakken_cluster::jetstream::JetStream;
use hakken_cluster::leases::{Keeper, Leases, Role};
use hakken_cluster::log::{EntryKind, EventLog, Follower, LogEntry};
use hakken_cluster::positions::{PositionReport, Positions};
use hakken_cluster::takeover::{fence, OwnerLog};
use hakken_engine::store::StorageError;
use hakken_engine::wal::{self, LogBatch};

use super::replicator::LogReplicator;
use super::{Owners, Ownership};
use crate::http::app::App;
use crate::http::error::ApiError;

/// Whether this node owns each event (1) or not (0).
pub const OWNER: &str = "hakken_cluster_owner";
/// How far a standby's store is behind an event's log, in the stream's sequence
/// numbers (other events' messages count too; 0: caught up), as of its last tick.
pub const STANDBY_LAG_MESSAGES: &str = "hakken_cluster_standby_lag_messages";
/// A takeover's fence, catch-up and rebuild, until the event is served here.
pub const TAKEOVER_SECONDS: &str = "hakken_cluster_takeover_seconds";
/// Times this node stopped serving an event, by why: `lease_lost`, `append_refused`, `stopping`.
pub const STEP_DOWNS_TOTAL: &str = "hakken_cluster_step_downs_total";
pub const STEP_DOWN_REASONS: [&str; 3] = ["lease_lost", "append_refused", "stopping"];

/// How long a stopping node waits for its event tasks to release their leases.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a standby waits before following again after its follower failed.
const FOLLOW_RETRY: Duration = Duration::from_millis(200);
/// A standby reports its position in a log at most this often while it moves, and at
/// least this often while it stays (a report is one replicated write per event).
const POSITION_REPORT_MIN: Duration = Duration::from_secs(1);
const POSITION_REPORT_MAX: Duration = Duration::from_secs(10);

/// What every event's task shares.
pub struct Node {
    pub id: String,
    /// This node's base URL, written into the leases it holds.
    pub address: String,
    pub lease_ttl: Duration,
    pub jetstream: JetStream,
    pub replicator: Arc<LogReplicator>,
    pub owners: Arc<Owners>,
    stop: tokio::sync::watch::Sender<bool>,
    tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Node {
    pub fn new(
        id: String,
        address: String,
        lease_ttl: Duration,
        jetstream: JetStream,
        replicator: Arc<LogReplicator>,
        owners: Arc<Owners>,
    ) -> Node {
        let (stop, _) = tokio::sync::watch::channel(false);
        Node { id, address, lease_ttl, jetstream, replicator, owners, stop, tasks: Default::default() }
    }

    /// Starts each event's task (on the current runtime).
    pub fn spawn(self: &Arc<Node>, app: &Arc<App>) {
        metrics::counter!(crate::http::owner_redirect::REDIRECTS_TOTAL).increment(0);
        for reason in STEP_DOWN_REASONS {
            metrics::counter!(STEP_DOWNS_TOTAL, "reason" => reason).increment(0);
        }
        let tasks: Vec<_> = self
            .owners
            .events()
            .map(|(event, ownership)| {
                metrics::gauge!(OWNER, "event" => event.clone()).set(0.0);
                let task = EventTask {
                    node: self.clone(),
                    app: app.clone(),
                    event: event.clone(),
                    ownership: ownership.clone(),
                    log: EventLog::new(&self.jetstream),
                    position_reported: std::sync::Mutex::new(None),
                };
                tokio::spawn(task.run())
            })
            .collect();
        self.tasks.lock().expect("tasks lock").extend(tasks);
    }

    /// Every task steps down and releases its lease (a clean stop hands the events
    /// over at the others' next read instead of a ttl later); waits for them a while.
    pub async fn leave(&self) {
        self.stop.send_replace(true);
        let tasks = std::mem::take(&mut *self.tasks.lock().expect("tasks lock"));
        if tokio::time::timeout(LEAVE_TIMEOUT, futures_util::future::join_all(tasks)).await.is_err() {
            tracing::warn!("cluster: leases not all released in time; they lapse after their ttl");
        }
    }
}

struct EventTask {
    node: Arc<Node>,
    app: Arc<App>,
    event: String,
    ownership: Arc<Ownership>,
    log: EventLog,
    /// The position last reported, and when.
    position_reported: std::sync::Mutex<Option<(u64, Instant)>>,
}

/// What the event's task asks of its lease keeper.
enum LeaseCommand {
    /// Stop holding the lease without writing (the log refused this term); tick at once.
    StepDown,
    /// Give the lease up, then end.
    Release(tokio::sync::oneshot::Sender<()>),
}

/// Keeps one event's lease on its own task, so renewals go on while the event's task
/// is busy (a takeover rebuilding sections can take longer than a lease): each tick's
/// role is published on `roles`.
async fn keep_lease(
    mut keeper: Keeper,
    roles: tokio::sync::watch::Sender<Role>,
    mut commands: tokio::sync::mpsc::UnboundedReceiver<LeaseCommand>,
    event: String,
) {
    let mut next_tick = tokio::time::Instant::now();
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(next_tick) => {
                roles.send_replace(keeper.tick().await);
                next_tick = tokio::time::Instant::now() + keeper.next_tick_in();
            }
            command = commands.recv() => match command {
                Some(LeaseCommand::StepDown) => {
                    keeper.step_down();
                    next_tick = tokio::time::Instant::now();
                }
                Some(LeaseCommand::Release(done)) => {
                    if let Err(error) = keeper.release().await {
                        tracing::warn!(%event, %error, "cluster: releasing the lease failed; it lapses after its ttl");
                    }
                    let _ = done.send(());
                    return;
                }
                None => return,
            },
        }
    }
}

impl EventTask {
    async fn run(self) {
        let leases = Leases::new(&self.node.jetstream);
        let keeper =
            Keeper::new(leases, &self.node.id, &self.event, self.node.lease_ttl).advertising(&self.node.address);
        let (roles_sender, mut roles) =
            tokio::sync::watch::channel(Role::Standby { holder: None, epoch: 0, address: None });
        let (commands, commands_receiver) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(keep_lease(keeper, roles_sender, commands_receiver, self.event.clone()));
        let mut stop = self.node.stop.subscribe();
        let mut follower: Option<Follower> = None;
        let mut follow_after = Instant::now();
        // The epoch of the term this node serves the event in.
        let mut serving: Option<u64> = None;
        loop {
            if serving.is_none() && follower.is_none() && Instant::now() >= follow_after {
                match self.follow() {
                    Ok(following) => follower = Some(following),
                    Err(error) => {
                        tracing::warn!(event = %self.event, "cluster: cannot follow the log: {error:#}");
                        follow_after = Instant::now() + FOLLOW_RETRY;
                    }
                }
            }
            tokio::select! {
                changed = roles.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let role = roles.borrow_and_update().clone();
                    match role {
                        Role::Owner { epoch, .. } if serving != Some(epoch) => {
                            if serving.take().is_some() {
                                self.step_down(None, "lease_lost").await;
                            }
                            follower = None;
                            match self.take_over(epoch).await {
                                // The lease may have gone while the sections were rebuilt.
                                Ok(()) if matches!(*roles.borrow(), Role::Owner { epoch: now, .. } if now == epoch) => {
                                    self.serve();
                                    serving = Some(epoch);
                                }
                                Ok(()) => self.step_down(None, "lease_lost").await,
                                Err(error) => {
                                    tracing::warn!(event = %self.event, epoch, "cluster: the takeover failed: {error:#}");
                                    let _ = commands.send(LeaseCommand::StepDown);
                                    self.step_down(None, "lease_lost").await;
                                }
                            }
                        }
                        Role::Owner { .. } => {}
                        Role::Standby { address, .. } => {
                            if serving.take().is_some() {
                                self.step_down(address, "lease_lost").await;
                            } else {
                                self.ownership.set_elsewhere(address);
                            }
                            self.report_lag().await;
                        }
                    }
                }
                entry = next_entry(&mut follower) => {
                    let applied = match entry {
                        Ok(entry) => self.apply(&entry).await,
                        Err(error) => Err(anyhow!(error)),
                    };
                    if let Err(error) = applied {
                        tracing::warn!(event = %self.event, "cluster: following the log failed: {error:#}");
                        follower = None;
                        follow_after = Instant::now() + FOLLOW_RETRY;
                    }
                }
                () = self.ownership.lost.notified() => {
                    // The lease may still be this node's: the keeper takes it again with
                    // a new epoch, and the sections are rebuilt from the log.
                    let _ = commands.send(LeaseCommand::StepDown);
                    if serving.take().is_some() {
                        self.step_down(None, "append_refused").await;
                    }
                }
                _ = stop.changed() => {
                    if serving.take().is_some() {
                        self.step_down(None, "stopping").await;
                    }
                    let (done, released) = tokio::sync::oneshot::channel();
                    if commands.send(LeaseCommand::Release(done)).is_ok() {
                        let _ = released.await;
                    }
                    return;
                }
            }
        }
    }

    fn follow(&self) -> Result<Follower> {
        let position = self.app.store.cluster_position(&self.event)?;
        Ok(self.log.follow(&self.event, position)?)
    }

    /// Writes one message of the log into the local store (a marker only moves the position).
    async fn apply(&self, entry: &LogEntry) -> Result<()> {
        let batch = match entry.kind {
            EntryKind::Batch => Some(
                wal::decode::<LogBatch>(&entry.payload)
                    .with_context(|| format!("log message {} of {} is damaged", entry.sequence, self.event))?,
            ),
            EntryKind::Epoch => None,
        };
        let wal = self.app.store.wal();
        loop {
            match wal.apply_replicated(&self.event, entry.sequence, batch.clone()).await {
                Err(StorageError::Busy) => tokio::time::sleep(Duration::from_millis(5)).await,
                result => return result.map_err(|error| anyhow!(error)),
            }
        }
    }

    async fn take_over(&self, epoch: u64) -> Result<()> {
        let started = Instant::now();
        let position = self.app.store.cluster_position(&self.event)?;
        let fenced = fence(&self.log, &self.event, &self.node.id, epoch, position).await?;
        for entry in &fenced.entries {
            self.apply(entry).await?;
        }
        let marker = LogEntry { sequence: fenced.marker, epoch, kind: EntryKind::Epoch, payload: Default::default() };
        self.apply(&marker).await?;
        self.node.replicator.begin_term(&self.event, OwnerLog::after(&self.log, &self.event, epoch, &fenced));
        let (app, event) = (self.app.clone(), self.event.clone());
        let rebuilt = tokio::task::spawn_blocking(move || {
            app.change_registry(|registry| {
                registry.take_over_event(&event).map_err(|error| {
                    tracing::error!(%event, %error, "cluster: rebuilding the event from the store failed");
                    ApiError::unavailable("internal", "the event could not be rebuilt", 1)
                })
            })
        })
        .await;
        if !matches!(rebuilt, Ok(Ok(()))) {
            self.node.replicator.end_term(&self.event);
            return Err(anyhow!("rebuilding the sections failed"));
        }
        metrics::histogram!(TAKEOVER_SECONDS).record(started.elapsed().as_secs_f64());
        tracing::info!(
            event = %self.event,
            epoch,
            caught_up = fenced.entries.len(),
            seconds = started.elapsed().as_secs_f64(),
            "cluster: caught up and rebuilt the event"
        );
        Ok(())
    }

    /// Requests for the event are served here from now on.
    fn serve(&self) {
        self.ownership.set_here();
        metrics::gauge!(OWNER, "event" => self.event.clone()).set(1.0);
        metrics::gauge!(STANDBY_LAG_MESSAGES, "event" => self.event.clone()).set(0.0);
        tracing::info!(event = %self.event, "cluster: serving the event");
    }

    /// Stops serving (requests go to `address`, the new owner if known), ends the term
    /// and retires the sections.
    async fn step_down(&self, address: Option<String>, reason: &'static str) {
        let was_here = self.ownership.is_here();
        self.ownership.set_elsewhere(address);
        self.node.replicator.end_term(&self.event);
        metrics::gauge!(OWNER, "event" => self.event.clone()).set(0.0);
        if was_here {
            metrics::counter!(STEP_DOWNS_TOTAL, "reason" => reason).increment(1);
            tracing::warn!(event = %self.event, reason, "cluster: stepped down from the event");
        }
        let (app, event) = (self.app.clone(), self.event.clone());
        let idled = tokio::task::spawn_blocking(move || {
            app.change_registry(|registry| {
                registry.idle_event(&event).map_err(|error| ApiError::unavailable("internal", error.to_string(), 1))
            })
        })
        .await;
        match idled {
            // Their last writes reach the writer (and are refused: the term is over)
            // before anything of a later term can.
            Ok(Ok(retired)) => futures_util::future::join_all(retired.iter().map(|section| section.retired())).await,
            _ => {
                tracing::error!(event = %self.event, "cluster: retiring the event's sections failed");
                Vec::new()
            }
        };
    }

    async fn report_lag(&self) {
        let (Ok(last), Ok(position)) =
            (self.log.last_sequence(&self.event).await, self.app.store.cluster_position(&self.event))
        else {
            return;
        };
        metrics::gauge!(STANDBY_LAG_MESSAGES, "event" => self.event.clone()).set(last.saturating_sub(position) as f64);
        // For `hakken cluster status`, which sees every standby's lag at once.
        let due = match *self.position_reported.lock().expect("position lock") {
            Some((reported, at)) if reported == position => at.elapsed() >= POSITION_REPORT_MAX,
            Some((_, at)) => at.elapsed() >= POSITION_REPORT_MIN,
            None => true,
        };
        if !due {
            return;
        }
        *self.position_reported.lock().expect("position lock") = Some((position, Instant::now()));
        let report = PositionReport { position, at_ms: hakken_engine::clock::Clock::System.now().0 };
        if let Err(error) = Positions::new(&self.node.jetstream).report(&self.event, &self.node.id, &report).await {
            tracing::debug!(event = %self.event, "cluster: reporting the standby's position failed: {error}");
        }
    }
}

/// The follower's next message; never, without a follower.
async fn next_entry(follower: &mut Option<Follower>) -> Result<LogEntry, hakken_cluster::jetstream::ClusterError> {
    match follower {
        Some(follower) => follower.next().await,
        None => std::future::pending().await,
    }
}
