//! Tickets at the section that sold them: scans (admit exactly once), reissues (a new
//! code version; older codes die), who may see or reissue a ticket, and the index of
//! revocations that gate bundles are made from. Live calls and applied records both
//! come through here.

use std::collections::BTreeMap;
use std::ops::Bound;

use crate::clock::Millis;
use crate::ids::{OrderId, TicketId};
use crate::lockfree::OrderNumber;
use crate::tickets::{ReissueProof, Revocation, RevocationReason, ScanOutcome, Viewer};
use crate::wal::{AdmissionRecord, Record, TicketRecord};

use super::{ApplyError, Inventory, Order, OrderState, TicketError};

/// A refused scan, as the audit log records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefusedScan {
    pub order: OrderNumber,
    pub index: u16,
    pub version: u16,
    pub gate: String,
    pub scan_id: String,
    /// What it found: never `Admitted`.
    pub outcome: ScanOutcome,
    pub at_ms: u64,
}

/// Where a revocation sits in [`RevocationIndex`]: by time, then order, then ticket
/// (`None`, the whole order, first).
type RevocationKey = (u64, OrderNumber, Option<u16>);

/// Every revocation of a section, by time: gate bundles are answered from it, never
/// from the audit log. It is derived from the orders' ticket state, so it is built from
/// them the first time a bundle asks (`None` until then) and kept up to date from then
/// on: a section that no gate polls (every section during the on-sale) pays nothing for
/// it on its refunds and reissues.
#[derive(Default)]
pub(super) struct RevocationIndex {
    entries: Option<BTreeMap<RevocationKey, RevocationReason>>,
}

impl RevocationIndex {
    fn insert(&mut self, at_ms: u64, order: OrderNumber, ticket: Option<u16>, reason: RevocationReason) {
        if let Some(entries) = &mut self.entries {
            entries.insert((at_ms, order, ticket), reason);
        }
    }
}

impl Inventory {
    /// A gate scanned ticket `index` of order `order` at code version `version` (the
    /// caller checked the code). The first scan of the current version of a ticket of a
    /// live order admits; every later one is refused, except a retry of the admitting
    /// scan (same `scan_id`), which gets the same answer. Refusals are kept for the audit.
    pub fn scan(
        &mut self,
        order: OrderNumber,
        index: u16,
        version: u16,
        gate: &str,
        scan_id: &str,
        now: Millis,
    ) -> ScanOutcome {
        match self.check_scan(order, index, version, scan_id) {
            Ok(Some(earlier)) => ScanOutcome::Admitted(earlier),
            Ok(None) => {
                let admission = AdmissionRecord { at_ms: now.0, gate: gate.to_string(), scan_id: scan_id.to_string() };
                self.commit(Record::TicketAdmitted { order: order.0, index, version, admission: admission.clone() });
                ScanOutcome::Admitted(admission)
            }
            Err(refused) => {
                debug_assert!(!matches!(refused, ScanOutcome::Admitted(_)), "a refusal is not an admission");
                self.refused_scans.push(RefusedScan {
                    order,
                    index,
                    version,
                    gate: gate.to_string(),
                    scan_id: scan_id.to_string(),
                    outcome: refused.clone(),
                    at_ms: now.0,
                });
                refused
            }
        }
    }

    /// `Ok(None)`: admit now; `Ok(Some(admission))`: this scan admitted it before;
    /// `Err(outcome)`: refused.
    fn check_scan(
        &self,
        order: OrderNumber,
        index: u16,
        version: u16,
        scan_id: &str,
    ) -> Result<Option<AdmissionRecord>, ScanOutcome> {
        let found = self.orders.get(order.0 as usize).ok_or(ScanOutcome::Invalid)?;
        if u32::from(index) >= found.units.count() {
            return Err(ScanOutcome::Invalid);
        }
        let ticket = found.ticket(index);
        if version > ticket.version {
            return Err(ScanOutcome::Invalid);
        }
        if found.state == OrderState::Cancelled {
            return Err(ScanOutcome::Cancelled);
        }
        if version < ticket.version {
            return Err(ScanOutcome::Revoked { current_version: ticket.version });
        }
        match ticket.admitted {
            Some(admission) if admission.scan_id == scan_id => Ok(Some(admission)),
            Some(admission) => Err(ScanOutcome::AlreadyAdmitted(admission)),
            None => Ok(None),
        }
    }

    /// The order of `ticket`, if this section sold it and `viewer` may see it.
    pub fn ticket_order(&self, ticket: TicketId, viewer: &Viewer) -> Option<&Order> {
        self.order_for(ticket.order, viewer).filter(|order| u32::from(ticket.index) < order.units.count())
    }

    /// Gives `ticket` a new code version if `proof` shows the right to: its older codes
    /// are dead. Returns the order and the new version.
    pub fn reissue(
        &mut self,
        ticket: TicketId,
        proof: &ReissueProof,
        now: Millis,
    ) -> Result<(Order, u16), TicketError> {
        let order = self.order(ticket.order).ok_or(TicketError::NotFound)?;
        if *proof == ReissueProof::Missing {
            return Err(TicketError::ProofMissing);
        }
        if !proof.proves(order) || u32::from(ticket.index) >= order.units.count() {
            return Err(TicketError::NotFound);
        }
        if order.state == OrderState::Cancelled {
            return Err(TicketError::Cancelled);
        }
        let current = order.ticket(ticket.index);
        if current.admitted.is_some() {
            return Err(TicketError::AlreadyAdmitted);
        }
        let version = current.version.checked_add(1).ok_or(TicketError::VersionsExhausted)?;
        let number = ticket.order.number;
        self.commit(Record::TicketReissued { order: number.0, index: ticket.index, version, at_ms: now.0 });
        Ok((self.orders[number.0 as usize].clone(), version))
    }

    /// Revocations at or after `since`, oldest first, at most `max`; and whether more
    /// wait after those.
    pub fn revocations(&mut self, since: Millis, max: usize) -> (Vec<Revocation>, bool) {
        if self.revocations.entries.is_none() {
            self.revocations.entries = Some(BTreeMap::new());
            for number in 0..self.orders.len() as u32 {
                self.index_revocations(OrderNumber(number));
            }
        }
        let entries = self.revocations.entries.as_ref().expect("built above");
        let mut found = entries.range((Bound::Included((since.0, OrderNumber(0), None)), Bound::Unbounded));
        let revocations: Vec<Revocation> = found
            .by_ref()
            .take(max)
            .map(|(&(at_ms, order, ticket), &reason)| Revocation {
                at: Millis(at_ms),
                order: OrderId { section: self.key, number: order },
                ticket,
                reason,
            })
            .collect();
        (revocations, found.next().is_some())
    }

    pub(super) fn apply_reissued(
        &mut self,
        number: OrderNumber,
        index: u16,
        version: u16,
        at_ms: u64,
    ) -> Result<(), ApplyError> {
        let what = || format!("order {} ticket {index} reissued as version {version}", number.0);
        let order = self.orders.get(number.0 as usize).ok_or_else(|| self.apply_error(&what(), "no such order"))?;
        if u32::from(index) >= order.units.count() || order.state == OrderState::Cancelled {
            return Err(self.apply_error(&what(), "no such live ticket"));
        }
        let ticket = order.ticket(index);
        if ticket.admitted.is_some() || ticket.version.checked_add(1) != Some(version) {
            return Err(self.apply_error(&what(), "ticket admitted or versions out of sequence"));
        }
        let ticket = self.orders[number.0 as usize].ticket_mut(index);
        ticket.version = version;
        ticket.reissued_at_ms = at_ms;
        self.revocations.insert(at_ms, number, Some(index), RevocationReason::Reissued { valid_version: version });
        Ok(())
    }

    pub(super) fn apply_admitted(
        &mut self,
        number: OrderNumber,
        index: u16,
        version: u16,
        admission: &AdmissionRecord,
    ) -> Result<(), ApplyError> {
        let what = || format!("order {} ticket {index} admitted", number.0);
        let order = self.orders.get(number.0 as usize).ok_or_else(|| self.apply_error(&what(), "no such order"))?;
        if u32::from(index) >= order.units.count() || order.state == OrderState::Cancelled {
            return Err(self.apply_error(&what(), "no such live ticket"));
        }
        let ticket = order.ticket(index);
        if ticket.admitted.is_some() || ticket.version != version {
            return Err(self.apply_error(&what(), "admitted twice or at a dead version"));
        }
        self.orders[number.0 as usize].ticket_mut(index).admitted = Some(admission.clone());
        debug_assert!(self.orders[number.0 as usize].ticket(index).admitted.is_some(), "admitted once, and kept");
        Ok(())
    }

    /// Indexes the revocations of an order restored from a snapshot (or just cancelled),
    /// once the index exists.
    pub(super) fn index_revocations(&mut self, number: OrderNumber) {
        if self.revocations.entries.is_none() {
            return;
        }
        let order = &self.orders[number.0 as usize];
        for ticket in order.tickets.iter().filter(|ticket| ticket.version > 0) {
            let reason = RevocationReason::Reissued { valid_version: ticket.version };
            self.revocations.insert(ticket.reissued_at_ms, number, Some(ticket.index), reason);
        }
        if let Some(at) = order.cancelled_at {
            self.revocations.insert(at.0, number, None, RevocationReason::Cancelled);
        }
    }
}

impl TicketRecord {
    /// A ticket at version 0, never admitted: what every ticket of a new order is.
    pub(super) fn unused(index: u16) -> TicketRecord {
        TicketRecord { index, version: 0, reissued_at_ms: 0, admitted: None }
    }
}
