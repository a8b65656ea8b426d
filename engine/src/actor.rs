//! The section actor: an actix actor that owns one [`Inventory`] and serves typed calls.
//!
//! Calls go in with `try_send` on a bounded mailbox and come back on a oneshot, so a
//! caller never queues without bound: a full mailbox is [`Unavailable::Busy`] at once
//! (the API answers 503 + Retry-After). The actor reads the clock once per call and
//! passes it to the deterministic core; a timer sweeps expired holds.
//!
//! A `Vec` of calls is itself a call, run in one actor turn: the batched drain.

use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr, AsyncContext, Context, Handler, Message};
use tokio::sync::oneshot;

use crate::best::BestRequest;
use crate::clock::{Clock, Millis};
use crate::ids::{CustomerId, HoldId, OrderId, SectionKey};
use crate::inventory::{
    Availability, Granted, Hold, HoldError, HoldRefused, Inventory, Order, OrderError, SectionState,
};
use crate::venue::SeatIndex;

pub struct SectionActor {
    inventory: Inventory,
    clock: Clock,
    sweep_interval: Duration,
}

impl SectionActor {
    pub fn new(inventory: Inventory, clock: Clock, sweep_interval: Duration) -> SectionActor {
        SectionActor { inventory, clock, sweep_interval }
    }
}

impl Actor for SectionActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.sweep_interval, |actor, _| {
            actor.inventory.sweep(actor.clock.now());
        });
    }
}

/// A typed request to a section actor, run against its inventory at the actor's `now`.
pub trait SectionCall: Send + 'static {
    type Reply: Send + 'static;
    fn run(self, inventory: &mut Inventory, now: Millis) -> Self::Reply;
}

/// Envelope carrying a call and where to send its reply.
pub struct Call<C: SectionCall> {
    call: C,
    reply: oneshot::Sender<C::Reply>,
}

impl<C: SectionCall> Message for Call<C> {
    type Result = ();
}

impl<C: SectionCall> Handler<Call<C>> for SectionActor {
    type Result = ();

    fn handle(&mut self, message: Call<C>, _: &mut Self::Context) {
        let reply = message.call.run(&mut self.inventory, self.clock.now());
        // The caller may have given up (timeout, disconnect); the outcome stands regardless.
        let _ = message.reply.send(reply);
    }
}

/// A batch of calls runs in one turn, in order.
impl<C: SectionCall> SectionCall for Vec<C> {
    type Reply = Vec<C::Reply>;

    fn run(self, inventory: &mut Inventory, now: Millis) -> Self::Reply {
        self.into_iter().map(|call| call.run(inventory, now)).collect()
    }
}

macro_rules! section_call {
    ($(#[$doc:meta])* $name:ident { $($field:ident: $type:ty),* $(,)? } -> $reply:ty,
     |$self_:ident, $inventory:ident, $now:ident| $body:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug)]
        pub struct $name { $(pub $field: $type),* }

        impl SectionCall for $name {
            type Reply = $reply;
            fn run($self_, $inventory: &mut Inventory, $now: Millis) -> $reply {
                $body
            }
        }
    };
}

section_call!(
    /// Hold exactly these seats.
    HoldSeats { customer: CustomerId, seats: Vec<SeatIndex> } -> Result<Granted, HoldRefused>,
    |self, inventory, now| inventory.hold_seats(&self.customer, &self.seats, now)
);
section_call!(
    /// Hold the best seats for a request.
    HoldBest { customer: CustomerId, request: BestRequest } -> Result<Granted, HoldRefused>,
    |self, inventory, now| inventory.hold_best(&self.customer, &self.request, now)
);
section_call!(
    /// Hold a general-admission quantity.
    HoldQuantity { customer: CustomerId, quantity: u32 } -> Result<Granted, HoldRefused>,
    |self, inventory, now| inventory.hold_quantity(&self.customer, self.quantity, now)
);
section_call!(
    Release { hold: HoldId, customer: CustomerId } -> Result<Hold, HoldError>,
    |self, inventory, now| inventory.release(self.hold, &self.customer, now)
);
section_call!(
    Extend { hold: HoldId, customer: CustomerId } -> Result<Hold, HoldError>,
    |self, inventory, now| inventory.extend(self.hold, &self.customer, now)
);
section_call!(
    /// Hold → sold; the order lists the seats to issue tickets for.
    Confirm { hold: HoldId, customer: CustomerId } -> Result<Order, HoldError>,
    |self, inventory, now| inventory.confirm(self.hold, &self.customer, now)
);
section_call!(
    /// Cancel (refund) an order; its seats return to sale.
    Cancel { order: OrderId } -> Result<Order, OrderError>,
    |self, inventory, _now| inventory.cancel(self.order)
);
section_call!(
    LookupHold { hold: HoldId } -> Result<Hold, HoldError>,
    |self, inventory, _now| inventory.hold(self.hold).cloned()
);
section_call!(
    LookupOrder { order: OrderId } -> Option<Order>,
    |self, inventory, _now| inventory.order(self.order).cloned()
);
section_call!(
    /// Counts per category and one seat code per seat, taken in one actor turn.
    Snapshot {} -> (Availability, Vec<u8>),
    |self, inventory, now| (inventory.state().availability(), inventory.state().seat_codes(now))
);
section_call!(
    /// Retire expired holds now (the timer does this every sweep interval).
    Sweep {} -> Vec<Hold>,
    |self, inventory, now| inventory.sweep(now)
);

/// The section actor could not take the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unavailable {
    #[error("section is busy (mailbox full); retry shortly")]
    Busy,
    #[error("section actor has stopped")]
    Stopped,
}

/// Everything callers need of one section: its actor, and its state for lock-free reads.
#[derive(Clone)]
pub struct SectionHandle {
    pub key: SectionKey,
    pub state: Arc<SectionState>,
    addr: Addr<SectionActor>,
}

impl SectionHandle {
    pub fn new(key: SectionKey, state: Arc<SectionState>, addr: Addr<SectionActor>) -> SectionHandle {
        SectionHandle { key, state, addr }
    }

    /// Sends `call` if the mailbox has room and waits for the reply.
    pub async fn call<C>(&self, call: C) -> Result<C::Reply, Unavailable>
    where
        C: SectionCall,
        SectionActor: Handler<Call<C>>,
    {
        let (reply, receiver) = oneshot::channel();
        self.addr.try_send(Call { call, reply }).map_err(|error| match error {
            actix::prelude::SendError::Full(_) => Unavailable::Busy,
            actix::prelude::SendError::Closed(_) => Unavailable::Stopped,
        })?;
        receiver.await.map_err(|_| Unavailable::Stopped)
    }
}
