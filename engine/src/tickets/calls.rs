//! Section actor calls for tickets. Each is one actor turn: who may see or reissue a
//! ticket is checked in the same turn that reads or changes it.

use crate::actor::SectionCall;
use crate::clock::Millis;
use crate::ids::{OrderId, TicketId};
use crate::inventory::{Inventory, Order, TicketError};
use crate::wal::PrincipalRecord;

use super::gate::{ScanOutcome, ScannedTicket};
use super::{ReissueProof, Revocation, Viewer};

/// A gate scanned a ticket whose code or barcode passed [`super::gate::check`]: admit
/// it once, or say why not. The order comes back for the gate's display.
#[derive(Clone, Debug)]
pub struct Scan {
    pub ticket: ScannedTicket,
    pub gate: String,
    pub scan_id: String,
    /// When an offline gate scanned it (`None`: now).
    pub scanned_at: Option<Millis>,
}

impl SectionCall for Scan {
    type Reply = (ScanOutcome, Option<Order>);

    fn run(self, inventory: &mut Inventory, now: Millis) -> Self::Reply {
        let at = self.scanned_at.unwrap_or(now);
        let ScannedTicket { order, index, version, .. } = self.ticket;
        let outcome = inventory.scan(order, index, version, &self.gate, &self.scan_id, at);
        let order = inventory.order(OrderId { section: inventory.key(), number: order }).cloned();
        (outcome, order)
    }

    fn principal(&self) -> PrincipalRecord {
        PrincipalRecord::Gate(self.gate.clone())
    }
}

/// The order of a ticket, if the ticket exists and `viewer` may see it.
#[derive(Clone, Debug)]
pub struct ReadTicket {
    pub ticket: TicketId,
    pub viewer: Viewer,
}

impl SectionCall for ReadTicket {
    type Reply = Option<Order>;

    fn run(self, inventory: &mut Inventory, _now: Millis) -> Self::Reply {
        inventory.ticket_order(self.ticket, &self.viewer).cloned()
    }
}

/// A new code version for one ticket, if `proof` shows the right to it; its older
/// codes die. Returns the order and the new version.
#[derive(Clone, Debug)]
pub struct Reissue {
    pub ticket: TicketId,
    pub proof: ReissueProof,
}

impl SectionCall for Reissue {
    type Reply = Result<(Order, u16), TicketError>;

    fn run(self, inventory: &mut Inventory, now: Millis) -> Self::Reply {
        inventory.reissue(self.ticket, &self.proof, now)
    }

    /// A buyer's reissue is audited as the order's customer's, known only here.
    fn principal_in(&self, inventory: &Inventory) -> PrincipalRecord {
        match self.proof {
            ReissueProof::Admin => PrincipalRecord::Admin,
            ReissueProof::Buyer { .. } | ReissueProof::Missing => inventory
                .order(self.ticket.order)
                .map_or(PrincipalRecord::System, |order| PrincipalRecord::Customer(order.customer.0.to_string())),
        }
    }
}

/// The section's revocations at or after `since`, oldest first, at most `max`.
#[derive(Clone, Debug)]
pub struct Revocations {
    pub since: Millis,
    pub max: usize,
}

/// One section's answer to [`Revocations`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SectionRevocations {
    pub revocations: Vec<Revocation>,
    /// More wait after the last one given.
    pub truncated: bool,
    /// The section's time when it answered: every later revocation is at or after it.
    pub answered_at: Millis,
}

impl SectionCall for Revocations {
    type Reply = SectionRevocations;

    fn run(self, inventory: &mut Inventory, now: Millis) -> Self::Reply {
        let (revocations, truncated) = inventory.revocations(self.since, self.max);
        SectionRevocations { revocations, truncated, answered_at: now }
    }
}
