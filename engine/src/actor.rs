//! The section actor: an actix actor that owns one [`Inventory`] and serves typed calls.
//!
//! Calls go in with `try_send` on a bounded mailbox and come back on a oneshot, so a
//! caller never queues without bound: a full mailbox is [`Unavailable::Busy`] at once
//! (the API answers 503 + Retry-After). The actor reads the clock once per call and
//! passes it to the deterministic core; a timer sweeps expired holds.
//!
//! A `Vec` of calls is itself a call, run in one actor turn: the batched drain.
//!
//! With a store, a call that changed anything is answered only when its WAL records
//! are durable (the store's writer completes the reply); a call that changed nothing
//! (a refusal, a lookup) is answered at once. A call may carry an [`AnswerSlot`]: the
//! answer to the request it serves is then written in the same batch as its records.
//! Every `snapshot_every_records` records, or `snapshot_interval_ms` after the first
//! unsnapshotted one, the actor snapshots its inventory, which lets the store delete
//! the older records.
//!
//! Dead work is dropped before it runs: a call carries the deadline of the request it
//! serves ([`crate::deadline`]) and the time it was queued. The actor refuses, without
//! touching the inventory or the WAL, a call whose caller has gone, whose deadline has
//! passed, or (holds only) that waited past the target in a standing queue
//! ([`StandingQueue`]); while the queue stands, new holds are refused before they queue.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, Addr, AsyncContext, Context, Handler, Message};
use tokio::sync::oneshot;

use crate::audit;
use crate::best::BestRequest;
use crate::clock::{Clock, Millis};
use crate::deadline;
use crate::event::Event;
use crate::ids::{CustomerId, HoldId, OrderId, SectionKey};
use crate::inventory::{
    Availability, Buyer, Checkout, Granted, Hold, HoldError, HoldRefused, Inventory, LatePayment, Order, OrderError,
    Payment, PaymentDue, PaymentError, PaymentStart, PspReport, SectionState,
};
use crate::observe::SectionMetrics;
use crate::outbox;
use crate::standing_queue::StandingQueue;
use crate::store::{Appended, Completion, FramedAnswer, StorageConfig, StorageError, WalHandle};
use crate::tickets::Viewer;
use crate::venue::SeatIndex;
use crate::wal::{self, PrincipalRecord};

pub struct SectionActor {
    inventory: Inventory,
    clock: Clock,
    sweep_interval: Duration,
    /// `None` runs in memory only (simulations, benches of the bare engine).
    wal: Option<SectionWal>,
    metrics: SectionMetrics,
    queue: StandingQueue,
    /// Whether `queue` stands, for the section's handles to refuse new holds at once.
    standing: Arc<AtomicBool>,
}

/// A section's place in the write-ahead log.
pub struct SectionWal {
    handle: WalHandle,
    /// Sequence number of the section's next record.
    next_seq: u64,
    records_since_snapshot: u64,
    first_unsnapshotted_at: Option<Instant>,
    snapshot_every_records: u64,
    snapshot_interval: Duration,
}

impl SectionWal {
    /// `last_seq` is the sequence number of the last record recovered (0 for none).
    pub fn new(handle: WalHandle, last_seq: u64, config: &StorageConfig) -> SectionWal {
        SectionWal {
            handle,
            next_seq: last_seq + 1,
            records_since_snapshot: 0,
            first_unsnapshotted_at: None,
            snapshot_every_records: config.snapshot_every_records.max(1),
            snapshot_interval: Duration::from_millis(config.snapshot_interval_ms),
        }
    }
}

impl SectionActor {
    pub fn new(
        inventory: Inventory,
        clock: Clock,
        sweep_interval: Duration,
        wal: Option<SectionWal>,
        metrics: SectionMetrics,
        queue: StandingQueue,
        standing: Arc<AtomicBool>,
    ) -> SectionActor {
        SectionActor { inventory, clock, sweep_interval, wal, metrics, queue, standing }
    }

    /// Why the call in `message`, taken from the mailbox after waiting `sojourn`, is
    /// not run, if it is not.
    fn shed_reason<C: SectionCall>(
        &mut self,
        message: &Call<C>,
        sojourn: Duration,
        now: Instant,
    ) -> Option<ShedReason> {
        self.queue.observe(sojourn, now);
        if self.metrics.queued_now() == 0 {
            self.queue.drained();
        }
        self.standing.store(self.queue.is_standing(now), Ordering::Relaxed);
        if message.reply.is_closed() {
            Some(ShedReason::CallerGone)
        } else if message.deadline.is_some_and(|deadline| now >= deadline) {
            Some(ShedReason::DeadlinePassed)
        } else if message.call.sheddable() && self.queue.sheds(sojourn, now) {
            Some(ShedReason::StandingQueue)
        } else {
            None
        }
    }

    /// Takes what the last call changed: its records and the audit entries describing
    /// them as done by `principal` (and the scans it refused).
    fn take_changes(&mut self, principal: &PrincipalRecord) -> Changes {
        let records = self.inventory.take_journal();
        let refused_scans = self.inventory.take_refused_scans();
        for record in &records {
            self.metrics.record(record);
        }
        self.metrics.sold(&self.inventory, &records);
        let section = self.inventory.key().0;
        let mut audit = Vec::with_capacity(records.len() + refused_scans.len());
        let mut outbox = Vec::new();
        if self.wal.is_some() {
            for record in &records {
                audit::describe(section, record, principal, &mut audit);
            }
            audit.extend(refused_scans.iter().map(|scan| audit::refused_scan(section, scan)));
            outbox::describe(section, &records, &self.inventory, &mut outbox);
        }
        Changes { records, audit, outbox }
    }

    /// Sends `changes` to the WAL with the stored answer of the request that made them;
    /// `done` runs when all of it is durable (at once if there is nothing to write).
    fn persist(&mut self, changes: Changes, answer: Option<FramedAnswer>, done: Completion) {
        let Changes { records, audit, outbox } = changes;
        let Some(wal) = &mut self.wal else { return done(Ok(())) };
        if records.is_empty() {
            assert!(answer.is_none(), "an answer goes with the records of the change it answers");
            assert!(outbox.is_empty(), "outbox entries tell of records");
            if audit.is_empty() {
                return done(Ok(()));
            }
            return wal.handle.audit_blocking(audit, done);
        }
        let section = self.inventory.key().0;
        let first_seq = wal.next_seq;
        wal.next_seq += records.len() as u64;
        // Precondition of the log: this section's records are numbered 1, 2, 3... with
        // no gap, in the order they were made (recovery refuses a gap).
        assert!(first_seq >= 1 && wal.next_seq == first_seq + records.len() as u64);
        wal.records_since_snapshot += records.len() as u64;
        wal.first_unsnapshotted_at.get_or_insert_with(Instant::now);
        let framed: Vec<Vec<u8>> = records.iter().map(wal::encode).collect();
        for (record, framed) in records.iter().zip(&framed) {
            wal::debug_assert_round_trip(record, framed);
        }
        wal.handle.append(section, first_seq, framed, Appended { audit, outbox, answer }, done);
        let erased = records.iter().any(|record| matches!(record, wal::Record::BuyerErased { .. }));
        if erased || wal.records_since_snapshot >= wal.snapshot_every_records {
            self.snapshot();
        }
        if erased {
            // The snapshot deleted the older records that carried the erased blob;
            // now the files that still hold their bytes are rewritten.
            if let Some(wal) = &self.wal {
                wal.handle.forget_deleted(section);
            }
        }
    }

    fn snapshot(&mut self) {
        let Some(wal) = &mut self.wal else { return };
        if wal.records_since_snapshot == 0 {
            return;
        }
        let last_seq = wal.next_seq - 1;
        let snapshot = wal::encode(&self.inventory.snapshot(last_seq));
        wal.handle.snapshot(self.inventory.key().0, last_seq, snapshot);
        wal.records_since_snapshot = 0;
        wal.first_unsnapshotted_at = None;
    }

    fn tick(&mut self) {
        if self.metrics.queued_now() == 0 {
            self.queue.drained();
            self.standing.store(false, Ordering::Relaxed);
        }
        self.inventory.sweep(self.clock.now());
        self.metrics.seats(&self.inventory.state().availability(), self.inventory.holds_live());
        self.metrics.mailbox();
        let section = self.inventory.key().0;
        let changes = self.take_changes(&PrincipalRecord::System);
        self.persist(
            changes,
            None,
            Box::new(move |durable| {
                if let Err(error) = durable {
                    tracing::warn!(section, %error, "expired holds not recorded");
                }
            }),
        );
        let due = self
            .wal
            .as_ref()
            .and_then(|wal| wal.first_unsnapshotted_at.map(|at| at.elapsed() >= wal.snapshot_interval));
        if due == Some(true) {
            self.snapshot();
        }
    }
}

impl Actor for SectionActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.metrics.sold_from(&self.inventory);
        // After recovery, holds that expired while the process was down go free at once.
        self.tick();
        ctx.run_interval(self.sweep_interval, |actor, _| actor.tick());
    }
}

/// Stops the actor after what is queued before it (cluster mode: the event moved to
/// another node, or this node takes it over with a rebuilt inventory).
pub struct Retire;

impl Message for Retire {
    type Result = ();
}

impl Handler<Retire> for SectionActor {
    type Result = ();

    fn handle(&mut self, _: Retire, context: &mut Self::Context) {
        actix::ActorContext::stop(context);
    }
}

/// A typed request to a section actor, run against its inventory at the actor's `now`.
pub trait SectionCall: Send + 'static {
    type Reply: Send + 'static;
    fn run(self, inventory: &mut Inventory, now: Millis) -> Self::Reply;

    /// Who the audit log names for the changes this call makes.
    fn principal(&self) -> PrincipalRecord {
        PrincipalRecord::System
    }

    /// [`SectionCall::principal`], for calls whose "who" the inventory knows (a buyer's
    /// reissue is audited as the order's customer's). Asked just before `run`.
    fn principal_in(&self, _inventory: &Inventory) -> PrincipalRecord {
        self.principal()
    }

    /// Whether the call starts new work (a hold) and may be shed from a standing queue;
    /// calls that finish work already started are served however long they waited
    /// (within their deadline).
    fn sheddable(&self) -> bool {
        false
    }

    /// Whether the call is a best-available search (its time is reported apart).
    fn searches(&self) -> bool {
        false
    }
}

/// What one call changed, on its way to the WAL.
struct Changes {
    records: Vec<wal::Record>,
    audit: Vec<wal::AuditRecord>,
    outbox: Vec<wal::OutboxEntry>,
}

/// The idempotency key of the request a call serves, for its answer to be stored in
/// the same batch as the records the call makes: a crash then loses both or neither,
/// so a retry never makes the change twice. The engine never reads the answer: the
/// caller's `render` makes it (status and body, opaque bytes here) from the reply,
/// and the caller sends the client the same rendering.
pub struct AnswerSlot<R> {
    pub key: Vec<u8>,
    /// Of the request, stored with the answer (a retry with another one is refused).
    pub fingerprint: u64,
    pub expires_at_ms: u64,
    pub render: RenderAnswer<R>,
}

/// The answer for a reply as (status, body), or `None` for one not to be stored (a
/// "try again").
pub type RenderAnswer<R> = Box<dyn FnOnce(&R) -> Option<(u16, Vec<u8>)> + Send>;

impl<R> AnswerSlot<R> {
    fn frame(self, reply: &R) -> Option<FramedAnswer> {
        let (status, body) = (self.render)(reply)?;
        let answer =
            wal::IdempotentAnswer { expires_at_ms: self.expires_at_ms, fingerprint: self.fingerprint, status, body };
        Some(FramedAnswer::new(self.key, &answer))
    }
}

/// A reply, and whether the call's answer went to disk with its records (through its
/// [`AnswerSlot`]); when not, the caller stores it if it wants to.
pub struct Answered<R> {
    pub reply: R,
    pub answer_stored: bool,
}

/// Envelope carrying a call and where to send its reply.
pub struct Call<C: SectionCall> {
    call: C,
    answer: Option<AnswerSlot<C::Reply>>,
    reply: oneshot::Sender<Result<Answered<C::Reply>, Unavailable>>,
    queued_at: Instant,
    /// The deadline of the request the call serves; past it the call is not run.
    deadline: Option<Instant>,
}

impl<C: SectionCall> Message for Call<C> {
    type Result = ();
}

impl<C: SectionCall> Handler<Call<C>> for SectionActor {
    type Result = ();

    fn handle(&mut self, message: Call<C>, _: &mut Self::Context) {
        let now = Instant::now();
        let sojourn = now.saturating_duration_since(message.queued_at);
        self.metrics.dequeued(sojourn);
        if let Some(reason) = self.shed_reason(&message, sojourn, now) {
            self.metrics.shed(reason);
            let _ = message.reply.send(Err(Unavailable::Shed(reason)));
            return;
        }
        // Precondition: every earlier call's changes went to the WAL with that call,
        // so what this one journals is its own.
        assert!(self.inventory.journal_is_empty(), "the journal is empty before a call");
        let started = Instant::now();
        let principal = message.call.principal_in(&self.inventory);
        let searches = message.call.searches();
        let reply = message.call.run(&mut self.inventory, self.clock.now());
        let elapsed = started.elapsed();
        self.metrics.call(elapsed);
        if searches {
            self.metrics.best_available(elapsed);
        }
        let changes = self.take_changes(&principal);
        let answer = match message.answer {
            Some(slot) if self.wal.is_some() && !changes.records.is_empty() => slot.frame(&reply),
            _ => None,
        };
        let answer_stored = answer.is_some();
        let sender = message.reply;
        self.persist(
            changes,
            answer,
            Box::new(move |durable| {
                // The caller may have given up (timeout, disconnect); the outcome stands regardless.
                let answered = durable.map(|()| Answered { reply, answer_stored });
                let _ = sender.send(answered.map_err(Unavailable::Storage));
            }),
        );
    }
}

/// A batch of calls runs in one turn, in order. Its changes are audited as made by
/// the first call's principal (batches come from one caller: benches, simulations).
impl<C: SectionCall> SectionCall for Vec<C> {
    type Reply = Vec<C::Reply>;

    fn run(self, inventory: &mut Inventory, now: Millis) -> Self::Reply {
        self.into_iter().map(|call| call.run(inventory, now)).collect()
    }

    fn principal(&self) -> PrincipalRecord {
        self.first().map_or(PrincipalRecord::System, SectionCall::principal)
    }

    fn principal_in(&self, inventory: &Inventory) -> PrincipalRecord {
        self.first().map_or(PrincipalRecord::System, |call| call.principal_in(inventory))
    }

    fn sheddable(&self) -> bool {
        self.first().is_some_and(SectionCall::sheddable)
    }

    fn searches(&self) -> bool {
        self.first().is_some_and(SectionCall::searches)
    }
}

macro_rules! section_call {
    ($(#[$doc:meta])* $name:ident { $($field:ident: $type:ty),* $(,)? } -> $reply:ty,
     |$self_:ident, $inventory:ident, $now:ident| $body:expr
     $(, principal: |$principal_self:ident| $principal:expr)?
     $(, sheddable: $sheddable:literal)?
     $(, searches: $searches:literal)?) => {
        $(#[$doc])*
        #[derive(Clone, Debug)]
        pub struct $name { $(pub $field: $type),* }

        impl SectionCall for $name {
            type Reply = $reply;
            fn run($self_, $inventory: &mut Inventory, $now: Millis) -> $reply {
                $body
            }
            $(fn principal(&$principal_self) -> PrincipalRecord {
                $principal
            })?
            $(fn sheddable(&self) -> bool {
                $sheddable
            })?
            $(fn searches(&self) -> bool {
                $searches
            })?
        }
    };
}

section_call!(
    /// Hold exactly these seats.
    HoldSeats { customer: CustomerId, seats: Vec<SeatIndex> } -> Result<Granted, HoldRefused>,
    |self, inventory, now| inventory.hold_seats(&self.customer, &self.seats, now),
    principal: |self| PrincipalRecord::Customer(self.customer.0.to_string()),
    sheddable: true
);
section_call!(
    /// Hold the best seats for a request.
    HoldBest { customer: CustomerId, request: BestRequest } -> Result<Granted, HoldRefused>,
    |self, inventory, now| inventory.hold_best(&self.customer, &self.request, now),
    principal: |self| PrincipalRecord::Customer(self.customer.0.to_string()),
    sheddable: true,
    searches: true
);
section_call!(
    /// Hold a general-admission quantity.
    HoldQuantity { customer: CustomerId, quantity: u32 } -> Result<Granted, HoldRefused>,
    |self, inventory, now| inventory.hold_quantity(&self.customer, self.quantity, now),
    principal: |self| PrincipalRecord::Customer(self.customer.0.to_string()),
    sheddable: true
);
section_call!(
    Release { hold: HoldId, customer: CustomerId } -> Result<Hold, HoldError>,
    |self, inventory, now| inventory.release(self.hold, &self.customer, now),
    principal: |self| PrincipalRecord::Customer(self.customer.0.to_string())
);
section_call!(
    Extend { hold: HoldId, customer: CustomerId } -> Result<Hold, HoldError>,
    |self, inventory, now| inventory.extend(self.hold, &self.customer, now),
    principal: |self| PrincipalRecord::Customer(self.customer.0.to_string())
);
section_call!(
    /// Hold → sold; the order lists the seats to issue tickets for.
    Confirm { hold: HoldId, customer: CustomerId, buyer: Buyer } -> Result<Order, HoldError>,
    |self, inventory, now| inventory.confirm(self.hold, &self.customer, &self.buyer, now),
    principal: |self| PrincipalRecord::Customer(self.customer.0.to_string())
);
section_call!(
    /// Cancel (refund) an order; its seats return to sale.
    Cancel { order: OrderId, by: PrincipalRecord } -> Result<Order, OrderError>,
    |self, inventory, now| inventory.cancel(self.order, now),
    principal: |self| self.by.clone()
);
section_call!(
    /// Cancel an order on behalf of its customer or an admin, ownership checked in the
    /// same turn (someone else's order is `NotFound`).
    CancelOrder { order: OrderId, viewer: Viewer } -> Result<Order, OrderError>,
    |self, inventory, now| inventory.cancel_for(self.order, &self.viewer, now),
    principal: |self| match &self.viewer {
        Viewer::Admin => PrincipalRecord::Admin,
        Viewer::Customer(customer) => PrincipalRecord::Customer(customer.0.to_string()),
    }
);
section_call!(
    /// Checkout: the hold starts paying with a payment the API made at the PSP.
    StartPayment { hold: HoldId, customer: CustomerId, start: PaymentStart } -> Result<Checkout, PaymentError>,
    |self, inventory, now| inventory.start_payment(self.hold, &self.customer, &self.start, now),
    principal: |self| PrincipalRecord::Customer(self.customer.0.to_string())
);
section_call!(
    /// A fact the PSP reported about the hold's payment (a webhook, or the sweep's read).
    ReportPayment { hold: HoldId, psp_id: String, report: PspReport, late: LatePayment } -> Result<Payment, PaymentError>,
    |self, inventory, now| inventory.payment_reported(self.hold, &self.psp_id, self.report, self.late, now)
);
section_call!(
    /// The hold's payment, if it was checked out.
    ReadPayment { hold: HoldId } -> Option<Payment>,
    |self, inventory, _now| inventory.payment(self.hold).cloned()
);
section_call!(
    /// The payment that bought an order, if one did.
    ReadOrderPayment { order: OrderId } -> Option<Payment>,
    |self, inventory, _now| inventory.payment_of_order(self.order).cloned()
);
section_call!(
    /// Payments the PSP must be asked about now (bounded, round robin).
    PaymentsDue { grace_ms: u64, abandon_after_ms: u64 } -> Vec<(Payment, PaymentDue)>,
    |self, inventory, now| inventory.payments_due(now, self.grace_ms, self.abandon_after_ms)
);
section_call!(
    /// Every payment of the section (reconciliation).
    ListPayments {} -> Vec<Payment>,
    |self, inventory, _now| inventory.payments().cloned().collect()
);
section_call!(
    /// Erase the personal data of an order's buyer (an admin's call; erasing twice is
    /// the same answer). The order, seats and tickets stay valid.
    EraseBuyer { order: OrderId } -> Result<Order, OrderError>,
    |self, inventory, now| inventory.erase_buyer(self.order, now),
    principal: |self| PrincipalRecord::Admin
);
section_call!(
    /// Replace orders' sealed buyer data by the caller's fresh seals (key rotation),
    /// where it is still what the caller read; returns how many were replaced.
    ResealBuyers { reseals: Vec<crate::inventory::Reseal> } -> usize,
    |self, inventory, now| inventory.reseal_buyers(&self.reseals, now),
    principal: |self| PrincipalRecord::Admin
);
section_call!(
    /// An order, if `viewer` may see it (its customer, or an admin).
    ReadOrder { order: OrderId, viewer: Viewer } -> Option<Order>,
    |self, inventory, _now| inventory.order_for(self.order, &self.viewer).cloned()
);
section_call!(
    /// New on-sale window and prices from an updated event definition.
    SetTerms { event: Arc<Event> } -> (),
    |self, inventory, _now| inventory.set_terms(&self.event)
);
section_call!(
    LookupHold { hold: HoldId } -> Result<Hold, HoldError>,
    |self, inventory, _now| inventory.hold(self.hold).cloned()
);
section_call!(
    /// Counts per category and one seat code per seat, taken in one actor turn.
    Snapshot {} -> (Availability, Vec<u8>),
    |self, inventory, now| (inventory.state().availability(), inventory.state().seat_codes(now))
);
section_call!(
    /// The inventory's whole state, as a snapshot would store it (for checks and tools).
    Export {} -> crate::wal::SectionSnapshot,
    |self, inventory, _now| inventory.snapshot(0)
);
section_call!(
    /// Retire expired holds now (the timer does this every sweep interval).
    Sweep {} -> Vec<Hold>,
    |self, inventory, now| inventory.sweep(now)
);

/// The section actor could not take the call, or could not make its outcome durable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unavailable {
    #[error("section is busy (mailbox full); retry shortly")]
    Busy,
    #[error("section actor has stopped")]
    Stopped,
    /// The change was made in memory but is not durable and was not acknowledged.
    #[error(transparent)]
    Storage(StorageError),
    /// The call was not run (nothing changed): see the reason.
    #[error("call shed: {}", .0.as_str())]
    Shed(ShedReason),
}

/// Why a call was dropped before it ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShedReason {
    /// Nobody waits for the reply any more (the request timed out or its client left).
    CallerGone,
    /// The request's deadline passed before the call could run.
    DeadlinePassed,
    /// A new hold met a standing queue.
    StandingQueue,
}

impl ShedReason {
    pub const ALL: [ShedReason; 3] = [ShedReason::CallerGone, ShedReason::DeadlinePassed, ShedReason::StandingQueue];

    pub fn as_str(self) -> &'static str {
        match self {
            ShedReason::CallerGone => "caller_gone",
            ShedReason::DeadlinePassed => "deadline",
            ShedReason::StandingQueue => "standing_queue",
        }
    }
}

/// Everything callers need of one section: its actor, and its state for lock-free reads.
#[derive(Clone)]
pub struct SectionHandle {
    pub key: SectionKey,
    pub state: Arc<SectionState>,
    addr: Addr<SectionActor>,
    /// Calls sent and not yet taken by the actor (its mailbox depth).
    queued: Arc<AtomicUsize>,
    /// Set by the actor while its queue stands: new holds are refused before they queue.
    standing: Arc<AtomicBool>,
}

impl SectionHandle {
    /// `queued` is the actor's counter ([`SectionMetrics::queued`]).
    pub fn new(
        key: SectionKey,
        state: Arc<SectionState>,
        addr: Addr<SectionActor>,
        queued: Arc<AtomicUsize>,
        standing: Arc<AtomicBool>,
    ) -> SectionHandle {
        SectionHandle { key, state, addr, queued, standing }
    }

    /// Stops the actor once what is queued before is done (see [`Retire`]). Not on the
    /// hot path: it waits for room in the mailbox rather than fail.
    pub fn retire(&self) {
        self.addr.do_send(Retire);
    }

    /// [`retire`](Self::retire), resolving once every call queued before it has run
    /// (and handed its writes to the store's writer).
    pub async fn retired(&self) {
        let _ = self.addr.send(Retire).await;
    }

    /// Calls waiting in the section's mailbox now.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Sends `call` if the mailbox has room and waits for the reply. A call that could
    /// not be useful is refused at once: the request's deadline has passed, or it is a
    /// new hold and the queue stands.
    pub async fn call<C>(&self, call: C) -> Result<C::Reply, Unavailable>
    where
        C: SectionCall,
        SectionActor: Handler<Call<C>>,
    {
        Ok(self.call_answering(call, None).await?.reply)
    }

    /// [`call`](Self::call), storing the answer in `slot` with the call's records if it
    /// makes any.
    pub async fn call_answering<C>(
        &self,
        call: C,
        answer: Option<AnswerSlot<C::Reply>>,
    ) -> Result<Answered<C::Reply>, Unavailable>
    where
        C: SectionCall,
        SectionActor: Handler<Call<C>>,
    {
        let queued_at = Instant::now();
        let deadline = deadline::current();
        if deadline.is_some_and(|deadline| queued_at >= deadline) {
            return Err(Unavailable::Shed(ShedReason::DeadlinePassed));
        }
        if call.sheddable() && self.standing.load(Ordering::Relaxed) {
            return Err(Unavailable::Shed(ShedReason::StandingQueue));
        }
        let (reply, receiver) = oneshot::channel();
        // Counted before the send so the actor never takes a call it was not told of.
        self.queued.fetch_add(1, Ordering::Relaxed);
        self.addr.try_send(Call { call, answer, reply, queued_at, deadline }).map_err(|error| {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            match error {
                actix::prelude::SendError::Full(_) => Unavailable::Busy,
                actix::prelude::SendError::Closed(_) => Unavailable::Stopped,
            }
        })?;
        receiver.await.map_err(|_| Unavailable::Stopped)?
    }
}
