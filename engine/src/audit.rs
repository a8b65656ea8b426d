//! The audit log: who did what, when, with what outcome; append-only and hash-chained.
//!
//! Entries are made from the WAL records of every change (a hold, its expiry, an order,
//! a refund, a reissue, an admission), from refused scans (which change nothing), and
//! from admin changes. The store's writer thread is the only appender: it numbers
//! entries (`seq` from 1, no gaps), links each to the previous one's hash and writes
//! them in the same RocksDB batch as the records they describe, so the log can never
//! disagree with the state.
//!
//! An entry's hash is SHA-256 over its bincode encoding, which includes the previous
//! hash: changing, inserting or deleting any entry breaks every later link, and
//! [`verify`] finds the first break. Someone able to rewrite the whole store can
//! rewrite the whole chain too; `hakken audit verify` prints the head hash so that
//! operators can keep it elsewhere and compare.

use sha2::{Digest, Sha256};

use crate::inventory::RefusedScan;
use crate::wal::{self, AuditRecord, AuditStored, PrincipalRecord, Record};

/// The hash before the first entry.
pub const GENESIS_HASH: [u8; 32] = [0; 32];

/// An entry not yet numbered nor chained (`seq` 0, `prev_hash` zeros).
fn draft(at_ms: u64, section: Option<u32>, principal: &PrincipalRecord, action: &str) -> AuditRecord {
    AuditRecord {
        seq: 0,
        at_ms,
        event: String::new(),
        section,
        principal: principal.clone(),
        action: action.to_string(),
        hold: None,
        order: None,
        ticket: None,
        outcome: "ok".to_string(),
        detail: String::new(),
        prev_hash: GENESIS_HASH,
    }
}

/// Entries describing `record`, a change of section `section` made on behalf of
/// `principal` (expiries are always the system's).
pub fn describe(section: u32, record: &Record, principal: &PrincipalRecord, out: &mut Vec<AuditRecord>) {
    let section = Some(section);
    match record {
        Record::HoldCreated { hold, reclaimed } => {
            for old in reclaimed {
                let mut entry = draft(hold.created_at_ms, section, &PrincipalRecord::System, "expire");
                entry.hold = Some(*old);
                entry.detail = format!("seats taken over by hold {}", hold.hold);
                out.push(entry);
            }
            let mut entry = draft(hold.created_at_ms, section, principal, "hold");
            entry.hold = Some(hold.hold);
            entry.detail = match &hold.units {
                wal::UnitsRecord::Seats(seats) => format!("seats {seats:?}, total {}", hold.total_minor),
                wal::UnitsRecord::Quantity(quantity) => format!("quantity {quantity}, total {}", hold.total_minor),
            };
            out.push(entry);
        }
        Record::HoldExtended { hold, expires_at_s, at_ms } => {
            let mut entry = draft(*at_ms, section, principal, "extend");
            entry.hold = Some(*hold);
            entry.detail = format!("expires at {expires_at_s} s");
            out.push(entry);
        }
        Record::HoldReleased { hold, at_ms } => {
            let mut entry = draft(*at_ms, section, principal, "release");
            entry.hold = Some(*hold);
            out.push(entry);
        }
        Record::HoldExpired { hold, at_ms } => {
            let mut entry = draft(*at_ms, section, &PrincipalRecord::System, "expire");
            entry.hold = Some(*hold);
            out.push(entry);
        }
        Record::OrderConfirmed { order, hold, confirmed_at_ms, buyer } => {
            let mut entry = draft(*confirmed_at_ms, section, principal, "confirm");
            entry.hold = Some(*hold);
            entry.order = Some(*order);
            entry.detail = format!("payment {}", buyer.payment_reference);
            out.push(entry);
        }
        Record::OrderCancelled { order, at_ms } => {
            let mut entry = draft(*at_ms, section, principal, "cancel");
            entry.order = Some(*order);
            entry.detail = "refund; seats returned to sale".to_string();
            out.push(entry);
        }
        Record::TicketReissued { order, index, version, at_ms } => {
            let mut entry = draft(*at_ms, section, principal, "reissue");
            entry.order = Some(*order);
            entry.ticket = Some(*index);
            entry.detail = format!("now version {version}; older codes refused");
            out.push(entry);
        }
        Record::TicketAdmitted { order, index, version, admission } => {
            let gate = PrincipalRecord::Gate(admission.gate.clone());
            let mut entry = draft(admission.at_ms, section, &gate, "scan");
            entry.order = Some(*order);
            entry.ticket = Some(*index);
            entry.outcome = "admitted".to_string();
            entry.detail = format!("version {version}, scan {}", admission.scan_id);
            out.push(entry);
        }
        Record::PaymentStarted { payment, expires_at_s } => {
            let mut entry = draft(payment.started_at_ms, section, principal, "checkout");
            entry.hold = Some(payment.hold);
            entry.detail = format!(
                "{} payment {}, {} {}; hold expires at {expires_at_s} s",
                payment.provider, payment.psp_id, payment.amount_minor, payment.currency
            );
            out.push(entry);
        }
        Record::PaymentOrdered { hold, order, at_ms } => {
            let mut entry = draft(*at_ms, section, principal, "payment_authorized");
            entry.hold = Some(*hold);
            entry.order = Some(*order);
            out.push(entry);
        }
        Record::PaymentCaptured { hold, at_ms } => {
            out.push(payment_entry(*at_ms, section, principal, "capture", *hold))
        }
        Record::PaymentVoidDue { hold, at_ms, reason } => {
            let mut entry = payment_entry(*at_ms, section, principal, "void_due", *hold);
            entry.detail = format!("{reason:?}");
            out.push(entry);
        }
        Record::PaymentVoided { hold, at_ms } => out.push(payment_entry(*at_ms, section, principal, "void", *hold)),
        Record::PaymentRefundDue { hold, at_ms } => {
            out.push(payment_entry(*at_ms, section, principal, "refund_due", *hold))
        }
        Record::PaymentRefunded { hold, at_ms } => out.push(payment_entry(*at_ms, section, principal, "refund", *hold)),
        Record::BuyerErased { order, at_ms } => {
            // Never the personal data itself: the entry says only that it is gone.
            let mut entry = draft(*at_ms, section, principal, "erase_buyer");
            entry.order = Some(*order);
            entry.detail = "buyer's name and email erased".to_string();
            out.push(entry);
        }
        Record::BuyerResealed { order, at_ms, .. } => {
            let mut entry = draft(*at_ms, section, principal, "reseal_buyer");
            entry.order = Some(*order);
            entry.detail = "buyer's data sealed under the active key".to_string();
            out.push(entry);
        }
    }
}

fn payment_entry(
    at_ms: u64,
    section: Option<u32>,
    principal: &PrincipalRecord,
    action: &str,
    hold: u32,
) -> AuditRecord {
    let mut entry = draft(at_ms, section, principal, action);
    entry.hold = Some(hold);
    entry
}

/// The entry of a scan refused at section `section`.
pub fn refused_scan(section: u32, scan: &RefusedScan) -> AuditRecord {
    let mut entry = draft(scan.at_ms, Some(section), &PrincipalRecord::Gate(scan.gate.clone()), "scan");
    entry.order = Some(scan.order.0);
    entry.ticket = Some(scan.index);
    entry.outcome = scan.outcome.as_str().to_string();
    entry.detail = format!("version {}, scan {}", scan.version, scan.scan_id);
    entry
}

/// An event-level entry: an admin change, or a scan refused before any section saw it
/// (bad signature, wrong event).
pub fn event_entry(
    event: &str,
    at_ms: u64,
    principal: &PrincipalRecord,
    action: &str,
    outcome: &str,
    detail: String,
) -> AuditRecord {
    let mut entry = draft(at_ms, None, principal, action);
    entry.event = event.to_string();
    entry.outcome = outcome.to_string();
    entry.detail = detail;
    entry
}

/// The hash of an entry (which contains the previous entry's hash).
pub fn hash(entry: &AuditRecord) -> [u8; 32] {
    Sha256::digest(wal::audit_hash_input(entry)).into()
}

/// Where the chain ends: the next sequence number and the last entry's hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainHead {
    pub next_seq: u64,
    pub last_hash: [u8; 32],
}

impl ChainHead {
    pub const EMPTY: ChainHead = ChainHead { next_seq: 1, last_hash: GENESIS_HASH };

    /// Numbers and links `entry` after this head; returns its key and stored value.
    pub fn append(&mut self, mut entry: AuditRecord) -> ([u8; 8], Vec<u8>) {
        entry.seq = self.next_seq;
        entry.prev_hash = self.last_hash;
        let hash = hash(&entry);
        self.next_seq += 1;
        self.last_hash = hash;
        (wal::audit_key(entry.seq), wal::encode(&AuditStored { entry, hash }))
    }
}

/// What [`verify`] checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub entries: u64,
    pub head: ChainHead,
}

/// The first place the chain is broken.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("audit entry {seq}: {problem}")]
pub struct ChainBreak {
    pub seq: u64,
    pub problem: String,
}

/// Walks stored entries (key, value) in key order and checks every link: keys and
/// sequence numbers contiguous from 1, each entry's `prev_hash` the previous hash, each
/// stored hash the hash of its entry, every value intact.
pub fn verify(entries: impl Iterator<Item = (Vec<u8>, Vec<u8>)>) -> Result<Verified, ChainBreak> {
    let mut head = ChainHead::EMPTY;
    for (key, value) in entries {
        let seq = head.next_seq;
        let broken = |problem: String| ChainBreak { seq, problem };
        if key.as_slice() != wal::audit_key(seq) {
            return Err(broken(format!(
                "found key {key:02x?} where entry {seq} belongs (an entry is missing or extra)"
            )));
        }
        let stored: AuditStored = wal::decode(&value).map_err(|error| broken(format!("unreadable: {error}")))?;
        if stored.entry.seq != seq {
            return Err(broken(format!("numbered {} instead", stored.entry.seq)));
        }
        if stored.entry.prev_hash != head.last_hash {
            return Err(broken("does not link to the previous entry's hash".to_string()));
        }
        let computed = hash(&stored.entry);
        if computed != stored.hash {
            return Err(broken("its contents do not match its hash (altered)".to_string()));
        }
        head = ChainHead { next_seq: seq + 1, last_hash: computed };
    }
    Ok(Verified { entries: head.next_seq - 1, head })
}

/// Hex of a hash, for people.
pub fn hex(hash: &[u8; 32]) -> String {
    hash.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(count: u64) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut head = ChainHead::EMPTY;
        (0..count)
            .map(|n| {
                let entry =
                    event_entry("e", 1000 + n, &PrincipalRecord::Admin, "event_update", "ok", format!("change {n}"));
                let (key, value) = head.append(entry);
                (key.to_vec(), value)
            })
            .collect()
    }

    fn stored(value: &[u8]) -> AuditStored {
        wal::decode(value).expect("decodes")
    }

    #[test]
    fn an_intact_chain_verifies() {
        let chain = entries(5);
        let verified = verify(chain.clone().into_iter()).expect("intact");
        assert_eq!(verified.entries, 5);
        assert_eq!(verified.head.last_hash, stored(&chain[4].1).hash);
        assert_eq!(verify(std::iter::empty()).expect("empty").entries, 0);
    }

    #[test]
    fn an_altered_entry_is_found() {
        let mut chain = entries(5);
        // Change the detail and re-frame it (the frame's checksum is not the defence).
        let mut altered = stored(&chain[2].1);
        altered.entry.detail = "nothing to see".into();
        chain[2].1 = wal::encode(&altered);
        let broken = verify(chain.into_iter()).expect_err("altered");
        assert_eq!(broken.seq, 3);
        assert!(broken.problem.contains("altered"), "{broken}");
    }

    #[test]
    fn an_altered_entry_with_a_recomputed_hash_breaks_the_next_link() {
        let mut chain = entries(5);
        let mut altered = stored(&chain[1].1);
        altered.entry.outcome = "refused".into();
        altered.hash = hash(&altered.entry);
        chain[1].1 = wal::encode(&altered);
        let broken = verify(chain.into_iter()).expect_err("altered");
        assert_eq!(broken.seq, 3, "{broken}");
        assert!(broken.problem.contains("link"), "{broken}");
    }

    #[test]
    fn removed_or_reordered_entries_are_found() {
        let mut chain = entries(5);
        chain.remove(3);
        assert_eq!(verify(chain.into_iter()).expect_err("missing").seq, 4);
        let mut chain = entries(5);
        chain.swap(1, 2);
        assert_eq!(verify(chain.into_iter()).expect_err("swapped").seq, 2);
        let mut chain = entries(3);
        chain[2].1[7] ^= 1;
        assert!(verify(chain.into_iter()).expect_err("flipped").problem.contains("unreadable"));
    }

    #[test]
    fn records_are_described_with_their_principal() {
        let customer = PrincipalRecord::Customer("alice".into());
        let mut out = Vec::new();
        let hold = wal::HoldRecord {
            hold: 4,
            customer: "alice".into(),
            units: wal::UnitsRecord::Seats(vec![1, 2]),
            created_at_ms: 5_000,
            expires_at_s: 600,
            total_minor: 200,
        };
        describe(7, &Record::HoldCreated { hold, reclaimed: vec![2] }, &customer, &mut out);
        describe(7, &Record::HoldExpired { hold: 4, at_ms: 9_000 }, &customer, &mut out);
        let actions: Vec<(&str, &PrincipalRecord, Option<u32>)> =
            out.iter().map(|entry| (entry.action.as_str(), &entry.principal, entry.hold)).collect();
        assert_eq!(
            actions,
            [
                ("expire", &PrincipalRecord::System, Some(2)),
                ("hold", &customer, Some(4)),
                ("expire", &PrincipalRecord::System, Some(4))
            ]
        );
        assert!(out.iter().all(|entry| entry.section == Some(7)));
        let mut reissue = Vec::new();
        let record = Record::TicketReissued { order: 1, index: 0, version: 3, at_ms: 1 };
        describe(7, &record, &customer, &mut reissue);
        let entry = &reissue[0];
        assert_eq!(
            (entry.action.as_str(), entry.order, entry.ticket, entry.detail.as_str()),
            ("reissue", Some(1), Some(0), "now version 3; older codes refused")
        );
    }
}
