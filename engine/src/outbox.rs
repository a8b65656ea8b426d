//! The outbox: what hakken must tell outside itself (buyer emails, webhooks), decided from
//! the records of each change and written with them.
//!
//! A section actor turns the records of one call into outbox entries ([`describe`]) next to
//! its audit entries; the store's writer numbers them and writes them in the same
//! `WriteBatch` as the records (`store/writer.rs`). So a crash can neither lose the notice
//! of an acknowledged change nor leave one for a change that was never made durable. The
//! API's relay delivers them (`api/src/notifications/`), deleting each entry once every
//! destination has it and keeping those it gave up on as dead letters.
//!
//! Entries carry ids only; the relay reads the order, its tickets and its buyer when it
//! delivers, so an erasure in between is honoured and no personal data sits here.

use crate::inventory::Inventory;
use crate::lockfree::HoldNumber;
use crate::wal::{OutboxEntry, OutboxKindRecord, Record, VoidReasonRecord};

fn entry(section: u32, at_ms: u64, kind: OutboxKindRecord) -> OutboxEntry {
    OutboxEntry {
        seq: 0,
        at_ms,
        section,
        kind,
        hold: None,
        order: None,
        ticket: None,
        version: None,
        gate: String::new(),
    }
}

/// The entries telling what `records` (the journal of one call on `inventory`, already
/// applied to it) did; `seq` is 0 until the writer numbers them.
///
/// - An order is `OrderConfirmed`, unless a late payment re-acquired its seats under a
///   new hold (`PaymentOrdered` of another hold in the same call): `LatePaymentReacquired`.
/// - A cancelled order is `OrderRefunded` (the money goes back, or the authorization is voided).
/// - A payment voided because it came late is `LatePaymentVoided`; voids for other
///   reasons (an abandoned checkout, a cancelled order, a wrong amount) tell nobody more
///   than the change that caused them.
/// - A hold that ended (expired, or taken over once expired) while its payment was
///   still awaited, and not settled by the same call, is `HoldExpiredWhilePaying`.
/// - Reissues and a ticket's first admission are `TicketReissued` and `TicketCheckedIn`.
pub fn describe(section: u32, records: &[Record], inventory: &Inventory, out: &mut Vec<OutboxEntry>) {
    let expired_while_paying = |hold: u32| inventory.is_paying(HoldNumber(hold));
    for record in records {
        match record {
            Record::OrderConfirmed { order, hold, confirmed_at_ms, .. } => {
                let paid_by = records.iter().find_map(|other| match other {
                    Record::PaymentOrdered { hold: paying, order: sold, .. } if sold == order => Some(*paying),
                    _ => None,
                });
                let (kind, hold) = match paid_by {
                    Some(paying) if paying != *hold => (OutboxKindRecord::LatePaymentReacquired, paying),
                    _ => (OutboxKindRecord::OrderConfirmed, *hold),
                };
                let mut confirmed = entry(section, *confirmed_at_ms, kind);
                confirmed.order = Some(*order);
                confirmed.hold = Some(hold);
                out.push(confirmed);
            }
            Record::OrderCancelled { order, at_ms } => {
                let mut cancelled = entry(section, *at_ms, OutboxKindRecord::OrderRefunded);
                cancelled.order = Some(*order);
                out.push(cancelled);
            }
            Record::TicketReissued { order, index, version, at_ms } => {
                let mut reissued = entry(section, *at_ms, OutboxKindRecord::TicketReissued);
                reissued.order = Some(*order);
                reissued.ticket = Some(*index);
                reissued.version = Some(*version);
                out.push(reissued);
            }
            Record::TicketAdmitted { order, index, version, admission } => {
                let mut admitted = entry(section, admission.at_ms, OutboxKindRecord::TicketCheckedIn);
                admitted.order = Some(*order);
                admitted.ticket = Some(*index);
                admitted.version = Some(*version);
                admitted.gate = admission.gate.clone();
                out.push(admitted);
            }
            Record::PaymentVoidDue { hold, at_ms, reason: VoidReasonRecord::Late } => {
                let mut voided = entry(section, *at_ms, OutboxKindRecord::LatePaymentVoided);
                voided.hold = Some(*hold);
                out.push(voided);
            }
            Record::HoldExpired { hold, at_ms } if expired_while_paying(*hold) => {
                let mut expired = entry(section, *at_ms, OutboxKindRecord::HoldExpiredWhilePaying);
                expired.hold = Some(*hold);
                out.push(expired);
            }
            Record::HoldCreated { hold, reclaimed } => {
                for old in reclaimed.iter().filter(|old| expired_while_paying(**old)) {
                    let mut expired = entry(section, hold.created_at_ms, OutboxKindRecord::HoldExpiredWhilePaying);
                    expired.hold = Some(*old);
                    out.push(expired);
                }
            }
            _ => {}
        }
    }
}
