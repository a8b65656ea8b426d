//! What the engine reports through the `metrics` facade. The server installs the
//! Prometheus exporter (and its histogram buckets); without one, every handle here is
//! a no-op. Labels are bounded: event and section ids, never customers, seats or orders.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram};

use crate::actor::ShedReason;
use crate::inventory::Counts;
use crate::wal::Record;

/// Changes made by a section, labels `event`, `section`, `operation` (hold, extend,
/// release, expire, confirm, cancel, reissue, admit).
pub const SECTION_OPERATIONS_TOTAL: &str = "hakken_section_operations_total";
/// Seats (or GA units) of a section by `state`: available, held, sold.
pub const SECTION_SEATS: &str = "hakken_section_seats";
/// Calls waiting in a section actor's mailbox (sampled every sweep tick).
pub const SECTION_MAILBOX_DEPTH: &str = "hakken_section_mailbox_depth";
/// Time a call waited in a section's mailbox before the actor took it, labels `event`,
/// `section`.
pub const SECTION_QUEUE_SOJOURN_SECONDS: &str = "hakken_section_queue_sojourn_seconds";
/// Calls a section actor dropped unrun, labels `event`, `section`, `reason`
/// (`caller_gone`, `deadline`, `standing_queue`).
pub const SECTION_SHED_TOTAL: &str = "hakken_section_shed_total";
/// Time a section actor spends on one call, labels `event`, `section`.
pub const SECTION_CALL_SECONDS: &str = "hakken_section_call_seconds";
/// Records per group commit.
pub const WAL_GROUP_RECORDS: &str = "hakken_wal_group_records";
/// Time to write (and, with sync durability, fsync) one group.
pub const WAL_WRITE_SECONDS: &str = "hakken_wal_write_seconds";
/// Bytes of keys and values written to the WAL.
pub const WAL_BYTES_TOTAL: &str = "hakken_wal_bytes_total";
/// Failed group writes (after one, nothing more is acknowledged until restart).
pub const WAL_WRITE_FAILURES_TOTAL: &str = "hakken_wal_write_failures_total";
/// Writes refused at once because the writer's queue was full (async callers: audit
/// entries, stored answers), answered 503 + Retry-After.
pub const WAL_QUEUE_FULL_TOTAL: &str = "hakken_wal_queue_full_total";
/// How long the last recovery took.
pub const RECOVERY_SECONDS: &str = "hakken_recovery_seconds";

const OPERATIONS: [&str; 17] = [
    "hold",
    "extend",
    "release",
    "expire",
    "confirm",
    "cancel",
    "reissue",
    "admit",
    "checkout",
    "payment_authorized",
    "capture",
    "void_due",
    "void",
    "refund_due",
    "refund",
    "erase_buyer",
    "reseal_buyer",
];
const STATES: [&str; 3] = ["available", "held", "sold"];

/// One section's metric handles, registered once when its actor starts.
pub struct SectionMetrics {
    operations: [Counter; 17],
    seats: [Gauge; 3],
    call_seconds: Histogram,
    queue_sojourn_seconds: Histogram,
    shed: [Counter; 3],
    mailbox_depth: Gauge,
    /// Calls sent and not yet taken by the actor; shared with the section's handles.
    queued: Arc<AtomicUsize>,
}

impl SectionMetrics {
    pub fn new(event: &str, section: &str) -> SectionMetrics {
        let (event, section) = (event.to_string(), section.to_string());
        SectionMetrics {
            operations: OPERATIONS.map(|operation| {
                metrics::counter!(SECTION_OPERATIONS_TOTAL,
                    "event" => event.clone(), "section" => section.clone(), "operation" => operation)
            }),
            seats: STATES.map(|state| {
                metrics::gauge!(SECTION_SEATS, "event" => event.clone(), "section" => section.clone(), "state" => state)
            }),
            call_seconds: metrics::histogram!(SECTION_CALL_SECONDS, "event" => event.clone(), "section" => section.clone()),
            queue_sojourn_seconds: metrics::histogram!(SECTION_QUEUE_SOJOURN_SECONDS,
                "event" => event.clone(), "section" => section.clone()),
            shed: ShedReason::ALL.map(|reason| {
                metrics::counter!(SECTION_SHED_TOTAL,
                    "event" => event.clone(), "section" => section.clone(), "reason" => reason.as_str())
            }),
            mailbox_depth: metrics::gauge!(SECTION_MAILBOX_DEPTH, "event" => event, "section" => section),
            queued: Arc::default(),
        }
    }

    /// The counter of queued calls, for the section's handles to count sends in.
    pub fn queued(&self) -> Arc<AtomicUsize> {
        self.queued.clone()
    }

    /// The actor took a call out of its mailbox after it waited `sojourn` there.
    pub fn dequeued(&self, sojourn: Duration) {
        self.queued.fetch_sub(1, Ordering::Relaxed);
        self.queue_sojourn_seconds.record(sojourn.as_secs_f64());
    }

    /// Calls in the mailbox now.
    pub fn queued_now(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// The actor dropped a call unrun.
    pub fn shed(&self, reason: ShedReason) {
        self.shed[reason as usize].increment(1);
    }

    pub fn mailbox(&self) {
        self.mailbox_depth.set(self.queued.load(Ordering::Relaxed) as f64);
    }

    pub fn record(&self, record: &Record) {
        let operation = match record {
            Record::HoldCreated { .. } => 0,
            Record::HoldExtended { .. } => 1,
            Record::HoldReleased { .. } => 2,
            Record::HoldExpired { .. } => 3,
            Record::OrderConfirmed { .. } => 4,
            Record::OrderCancelled { .. } => 5,
            Record::TicketReissued { .. } => 6,
            Record::TicketAdmitted { .. } => 7,
            Record::PaymentStarted { .. } => 8,
            Record::PaymentOrdered { .. } => 9,
            Record::PaymentCaptured { .. } => 10,
            Record::PaymentVoidDue { .. } => 11,
            Record::PaymentVoided { .. } => 12,
            Record::PaymentRefundDue { .. } => 13,
            Record::PaymentRefunded { .. } => 14,
            Record::BuyerErased { .. } => 15,
            Record::BuyerResealed { .. } => 16,
        };
        self.operations[operation].increment(1);
    }

    pub fn seats(&self, counts: &Counts) {
        self.seats[0].set(counts.available);
        self.seats[1].set(counts.held);
        self.seats[2].set(counts.sold);
    }

    pub fn call(&self, elapsed: Duration) {
        self.call_seconds.record(elapsed.as_secs_f64());
    }
}
