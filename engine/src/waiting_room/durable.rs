//! A waiting room made durable: the core behind a lock, each change through the WAL.
//!
//! A change is decided, queued to the writer and applied under the lock, so the log's
//! order is the order of application; the caller waits for durability outside it. The
//! queueing never blocks: when the writer's queue is full the change is refused
//! ([`RoomError::Busy`]) and never happened. A write that fails afterwards stops the
//! whole store as everywhere else (nothing more is acknowledged; a restart recovers
//! from what is on disk, where the change is not).
//!
//! Polls never take the lock: they read the room's [`Board`].
//!
//! An access is claimed before the hold it allows is made and used once the hold is
//! durable ([`AccessClaim`]): two requests with one access cannot both hold, and a
//! hold refused (its seats taken) leaves the access usable, the room told
//! ([`AccessClaim::refused`]) so the buyer no longer counts as seats to come. A crash between the hold's
//! write and the access's leaves the access unused: the buyer may hold once more,
//! within the per-customer limits that bind every hold anyway.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};

use super::{
    AccessRefused, Board, Figures, Health, JoinRefused, PlaceNumber, RoomRecord, RoomSettings, Stock, WaitingRoom,
};
use crate::audit;
use crate::clock::Millis;
use crate::ids::CustomerId;
use crate::observe;
use crate::store::{StorageError, WalHandle};
use crate::wal::{self, AuditRecord, PrincipalRecord, RoomStored};

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RoomError {
    #[error(transparent)]
    Join(#[from] JoinRefused),
    #[error(transparent)]
    Access(#[from] AccessRefused),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

struct Inner {
    room: WaitingRoom,
    /// The sequence number of the room's next record (from 1).
    next_seq: u64,
    /// Places whose access a request is using right now.
    claimed: HashSet<PlaceNumber>,
}

pub struct DurableRoom {
    event: String,
    board: Arc<Board>,
    inner: Mutex<Inner>,
    wal: WalHandle,
}

impl DurableRoom {
    /// The room of `event` as its stored records left it (none for a new room).
    pub fn recover(event: &str, settings: RoomSettings, stored: &[RoomStored], wal: WalHandle) -> DurableRoom {
        let records: Vec<RoomRecord> = stored.iter().map(from_stored).collect();
        let room = WaitingRoom::replay(settings, &records);
        DurableRoom {
            event: event.to_string(),
            board: room.board(),
            inner: Mutex::new(Inner { room, next_seq: stored.len() as u64 + 1, claimed: HashSet::new() }),
            wal,
        }
    }

    pub fn event(&self) -> &str {
        &self.event
    }

    /// What polls read (lock-free).
    pub fn board(&self) -> &Arc<Board> {
        &self.board
    }

    pub fn settings(&self) -> RoomSettings {
        self.lock().room.settings().clone()
    }

    /// See [`WaitingRoom::reconfigure`]. Nothing to store: the settings are the event's,
    /// stored with it, and a restart builds the room from them.
    pub fn reconfigure(&self, settings: &RoomSettings) {
        self.lock().room.reconfigure(settings);
    }

    /// `customer`'s place, a new one made durable first.
    pub async fn join(&self, customer: &CustomerId, now: Millis) -> Result<PlaceNumber, RoomError> {
        let (place, durable) = {
            let mut inner = self.lock();
            let joined = inner.room.join(customer, now)?;
            let Some(record) = joined.record else { return Ok(joined.place) };
            (joined.place, self.commit(&mut inner, vec![record], Vec::new())?)
        };
        durable.await?;
        Ok(place)
    }

    pub fn place_of(&self, customer: &CustomerId) -> Option<PlaceNumber> {
        self.lock().room.place_of(customer)
    }

    pub fn customer_of(&self, place: PlaceNumber) -> Option<CustomerId> {
        self.lock().room.customer_of(place).cloned()
    }

    /// The opening draw when it is due (with `seed`, the caller's fresh randomness; its
    /// audit entry names the seed), then whatever the core decides at `now`.
    pub async fn tick(&self, now: Millis, health: Health, stock: Stock, seed: u64) -> Result<(), RoomError> {
        let durable = {
            let mut inner = self.lock();
            let mut records: Vec<RoomRecord> = inner.room.draw_due(now, seed).into_iter().collect();
            if records.is_empty() {
                records = inner.room.tick(now, health, stock);
            }
            if records.is_empty() {
                return Ok(());
            }
            let audit = records.iter().filter_map(|record| self.audit_entry(&inner.room, record)).collect();
            self.commit(&mut inner, records, audit)?
        };
        durable.await?;
        Ok(())
    }

    /// Claims `place`'s access for one hold at `now`; see the module comment.
    pub fn claim(&self, place: PlaceNumber, now: Millis) -> Result<AccessClaim<'_>, AccessRefused> {
        let mut inner = self.lock();
        inner.room.check_access(place, now)?;
        if !inner.claimed.insert(place) {
            return Err(AccessRefused::Used);
        }
        Ok(AccessClaim { room: self, place, done: false })
    }

    /// `customer`'s hold ended, bought or not: what the room learns its conversion from.
    /// Queued and not waited for (a lost one only makes the estimate a little older).
    pub fn resolved(&self, customer: &CustomerId, bought: bool) {
        let mut inner = self.lock();
        let Some(record) = inner.room.resolution(customer, bought) else { return };
        // Ignored when refused: nothing waits on it.
        let _ = self.commit(&mut inner, vec![record], Vec::new());
    }

    pub fn figures(&self, now: Millis) -> Figures {
        self.lock().room.figures(now)
    }

    /// The opening draw's seed and joiner count, once made.
    pub fn drawn(&self) -> Option<(u64, u32)> {
        self.lock().room.drawn()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().expect("waiting room lock poisoned")
    }

    /// Queues `records` (and `audit`) to the writer and applies them; the receiver
    /// tells when they are durable. Nothing is applied when the writer refuses them.
    fn commit(
        &self,
        inner: &mut Inner,
        records: Vec<RoomRecord>,
        audit: Vec<AuditRecord>,
    ) -> Result<impl std::future::Future<Output = Result<(), StorageError>>, StorageError> {
        let puts = records
            .iter()
            .enumerate()
            .map(|(offset, record)| {
                let stored = to_stored(record);
                let framed = wal::encode(&stored);
                wal::debug_assert_round_trip(&stored, &framed);
                (wal::room_key(&self.event, inner.next_seq + offset as u64), framed)
            })
            .collect();
        let (sender, mut receiver) = tokio::sync::oneshot::channel();
        self.wal.room(
            puts,
            audit,
            Box::new(move |result| {
                let _ = sender.send(result);
            }),
        );
        // A refusal (queue full, store closed) completes at once, before any write; a
        // group commit may also have made it durable already. A oneshot receiver that
        // answered `try_recv` must not be awaited again, so its answer is kept.
        let answered = match receiver.try_recv() {
            Ok(Ok(())) => true,
            Ok(Err(error)) => return Err(error),
            Err(tokio::sync::oneshot::error::TryRecvError::Empty) => false,
            Err(tokio::sync::oneshot::error::TryRecvError::Closed) => return Err(StorageError::Closed),
        };
        inner.next_seq += records.len() as u64;
        for record in &records {
            for error in inner.room.eta_errors(record) {
                metrics::histogram!(observe::QUEUE_ETA_ERROR_RATIO, "event" => self.event.clone()).record(error);
            }
            inner.room.apply(record);
        }
        Ok(async move {
            if answered {
                return Ok(());
            }
            receiver.await.unwrap_or(Err(StorageError::Closed))
        })
    }

    /// The audit entry of `record`, about to be applied to `room`.
    fn audit_entry(&self, room: &WaitingRoom, record: &RoomRecord) -> Option<AuditRecord> {
        let entry = |at: Millis, action: &str, detail: String| {
            audit::event_entry(&self.event, at.0, &PrincipalRecord::System, action, "ok", detail)
        };
        match *record {
            RoomRecord::Drawn { seed, joiners, at } => Some(entry(
                at,
                "queue_draw",
                format!("seed {seed}, {joiners} joiners shuffled (splitmix64, Fisher-Yates)"),
            )),
            RoomRecord::SoldOut { at } => Some(entry(at, "queue_sold_out", String::new())),
            RoomRecord::ClosedBehind { rank, at } => {
                let told = room.line_end() - rank as usize;
                Some(entry(
                    at,
                    "queue_closed_behind",
                    format!("{told} waiting from rank {rank} on told sold out; those ahead wait for held seats"),
                ))
            }
            _ => None,
        }
    }
}

/// A claimed access: [`used`](Self::used) once the hold is durable; dropped unused
/// (the hold was refused), the access can be used again.
pub struct AccessClaim<'a> {
    room: &'a DurableRoom,
    place: PlaceNumber,
    done: bool,
}

impl AccessClaim<'_> {
    pub fn place(&self) -> PlaceNumber {
        self.place
    }

    /// Records that the access made a hold of `seats` seats at `now`.
    pub async fn used(mut self, seats: u32, now: Millis) -> Result<(), RoomError> {
        let durable = {
            let mut inner = self.room.lock();
            inner.claimed.remove(&self.place);
            self.done = true;
            let record = RoomRecord::AccessUsed { place: self.place, seats, at: now };
            self.room.commit(&mut inner, vec![record], Vec::new())?
        };
        durable.await?;
        Ok(())
    }

    /// Records that the hold was refused because nothing free fit what it asked (the
    /// access stays usable). Queued and not waited for: the refusal acknowledges nothing
    /// to the buyer, and a lost record only keeps the buyer counted until its access lapses.
    pub fn refused(mut self, now: Millis) {
        let mut inner = self.room.lock();
        inner.claimed.remove(&self.place);
        self.done = true;
        let Some(record) = inner.room.refusal(self.place, now) else { return };
        // Ignored when refused: nothing waits on it.
        let _ = self.room.commit(&mut inner, vec![record], Vec::new());
    }
}

impl Drop for AccessClaim<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.room.lock().claimed.remove(&self.place);
        }
    }
}

fn to_stored(record: &RoomRecord) -> RoomStored {
    match *record {
        RoomRecord::Joined { ref customer, at } => RoomStored::Joined { customer: customer.0.to_string(), at_ms: at.0 },
        RoomRecord::Drawn { seed, joiners, at } => RoomStored::Drawn { seed, joiners, at_ms: at.0 },
        RoomRecord::Admitted { count, at, until } => RoomStored::Admitted { count, at_ms: at.0, until_ms: until.0 },
        RoomRecord::AccessUsed { place, seats, at } => RoomStored::AccessUsed { place, seats, at_ms: at.0 },
        RoomRecord::Resolved { place, bought } => RoomStored::Resolved { place, bought },
        RoomRecord::SoldOut { at } => RoomStored::SoldOut { at_ms: at.0 },
        RoomRecord::Refused { place, at } => RoomStored::Refused { place, at_ms: at.0 },
        RoomRecord::ClosedBehind { rank, at } => RoomStored::ClosedBehind { rank, at_ms: at.0 },
    }
}

fn from_stored(stored: &RoomStored) -> RoomRecord {
    match *stored {
        RoomStored::Joined { ref customer, at_ms } => {
            RoomRecord::Joined { customer: CustomerId::new(customer), at: Millis(at_ms) }
        }
        RoomStored::Drawn { seed, joiners, at_ms } => RoomRecord::Drawn { seed, joiners, at: Millis(at_ms) },
        RoomStored::Admitted { count, at_ms, until_ms } => {
            RoomRecord::Admitted { count, at: Millis(at_ms), until: Millis(until_ms) }
        }
        RoomStored::AccessUsed { place, seats, at_ms } => RoomRecord::AccessUsed { place, seats, at: Millis(at_ms) },
        RoomStored::Resolved { place, bought } => RoomRecord::Resolved { place, bought },
        RoomStored::SoldOut { at_ms } => RoomRecord::SoldOut { at: Millis(at_ms) },
        RoomStored::Refused { place, at_ms } => RoomRecord::Refused { place, at: Millis(at_ms) },
        RoomStored::ClosedBehind { rank, at_ms } => RoomRecord::ClosedBehind { rank, at: Millis(at_ms) },
    }
}
