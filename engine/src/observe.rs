//! What the engine reports through the `metrics` facade. The server installs the
//! Prometheus exporter (and its histogram buckets); without one, every handle here is
//! a no-op. Labels are bounded: event and section ids, never customers, seats or orders.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram};

use crate::actor::ShedReason;
use crate::inventory::{Availability, Inventory, OrderState};
use crate::wal::Record;

/// Seat changes made by a section, labels `event`, `section`, `operation` (hold, extend,
/// release, expire, confirm, cancel, reissue, admit).
pub const SECTION_OPERATIONS_TOTAL: &str = "hakken_section_operations_total";
/// Payment and buyer-data changes, per event (where the seats are is the section
/// counters' business), labels `event`, `operation` (checkout, payment_authorized,
/// capture, void_due, void, refund_due, refund, erase_buyer, reseal_buyer).
pub const EVENT_OPERATIONS_TOTAL: &str = "hakken_event_operations_total";
/// Seats (or GA units) of a section by `state`: available, held, sold.
pub const SECTION_SEATS: &str = "hakken_section_seats";
/// The same by price category too, labels `event`, `section`, `category`, `state`.
pub const CATEGORY_SEATS: &str = "hakken_category_seats";
/// Seats (or GA units) a section has.
pub const SECTION_CAPACITY: &str = "hakken_section_capacity_seats";
/// The oversell invariant: held + sold − capacity, from the counters the sale keeps
/// (not clamped as `available` is). Never above 0; above 0 a seat was sold twice.
pub const SECTION_OVERSOLD: &str = "hakken_section_oversold_seats";
/// Holds alive in a section (an expired one until the sweep retires it).
pub const SECTION_HOLDS_ACTIVE: &str = "hakken_section_holds_active";
/// Orders of a section not cancelled, and what they were sold for (minor units of the
/// event's currency), kept from the orders themselves so a restart does not reset them.
pub const SECTION_ORDERS: &str = "hakken_section_orders";
pub const SECTION_SALES_MINOR: &str = "hakken_section_sales_minor";
/// Calls waiting in a section actor's mailbox (sampled every sweep tick).
pub const SECTION_MAILBOX_DEPTH: &str = "hakken_section_mailbox_depth";
/// Time a call waited in a section's mailbox before the actor took it, label `event`.
/// The distributions are per event: a histogram is 19 series, and per section they
/// were most of a scrape (the per-section view is the mailbox depth and busy time).
pub const SECTION_QUEUE_SOJOURN_SECONDS: &str = "hakken_section_queue_sojourn_seconds";
/// Calls a section actor dropped unrun, labels `event`, `reason` (`caller_gone`,
/// `deadline`, `standing_queue`).
pub const SECTION_SHED_TOTAL: &str = "hakken_section_shed_total";
/// Time a section actor spends on one call, label `event`.
pub const SECTION_CALL_SECONDS: &str = "hakken_section_call_seconds";
/// Time a section's actor has spent on calls since the server started, labels `event`,
/// `section`: its rate is the share of a core the section takes. A gauge only because
/// the facade's counters count whole numbers; it never goes down.
pub const SECTION_BUSY_SECONDS: &str = "hakken_section_busy_seconds";
/// How wrong a waiting buyer's first ETA was when it was let in: |admitted - promised|
/// over the wait from when it was told; label `event`.
pub const QUEUE_ETA_ERROR_RATIO: &str = "hakken_queue_eta_error_ratio";
/// Its buckets: shares of the wait.
pub const QUEUE_ETA_ERROR_BUCKETS: [f64; 9] = [0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0];
/// Time a best-available hold spends choosing its seats (the search and the hold),
/// label `event`.
pub const BEST_AVAILABLE_SECONDS: &str = "hakken_best_available_search_seconds";
/// Its buckets: microseconds, finer than the request latencies'.
pub const BEST_AVAILABLE_BUCKETS_S: [f64; 12] = [
    0.000_001,
    0.000_002_5,
    0.000_005,
    0.000_01,
    0.000_025,
    0.000_05,
    0.000_1,
    0.000_25,
    0.000_5,
    0.001,
    0.002_5,
    0.01,
];
/// RocksDB's state, sampled every second: writes stopped (0/1), writes slowed down
/// (0/1), compaction debt, memtables, SST files, running compactions.
pub const STORE_WRITE_STOPPED: &str = "hakken_store_write_stopped";
pub const STORE_WRITE_DELAYED: &str = "hakken_store_write_delayed";
pub const STORE_PENDING_COMPACTION_BYTES: &str = "hakken_store_pending_compaction_bytes";
pub const STORE_MEMTABLE_BYTES: &str = "hakken_store_memtable_bytes";
pub const STORE_SST_BYTES: &str = "hakken_store_sst_bytes";
pub const STORE_RUNNING_COMPACTIONS: &str = "hakken_store_running_compactions";
/// The file system the store is on: what is left to write, and its size.
pub const STORE_DISK_FREE_BYTES: &str = "hakken_store_disk_free_bytes";
pub const STORE_DISK_SIZE_BYTES: &str = "hakken_store_disk_size_bytes";
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

const SECTION_OPERATIONS: [&str; 8] = ["hold", "extend", "release", "expire", "confirm", "cancel", "reissue", "admit"];
const EVENT_OPERATIONS: [&str; 9] = [
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
    /// The section's [`SECTION_OPERATIONS`], then its event's [`EVENT_OPERATIONS`]
    /// (handles shared with the event's other sections), in [`Record`] order.
    operations: [Counter; SECTION_OPERATIONS.len() + EVENT_OPERATIONS.len()],
    seats: [Gauge; 3],
    /// Per category index of the venue: its three gauges, for categories this section has.
    category_seats: Vec<Option<[Gauge; 3]>>,
    capacity: Gauge,
    oversold: Gauge,
    holds_active: Gauge,
    orders: Gauge,
    sales_minor: Gauge,
    /// What `orders` and `sales_minor` show, kept up to date by [`SectionMetrics::sold`].
    sold: Sold,
    call_seconds: Histogram,
    busy_seconds: Gauge,
    best_available_seconds: Histogram,
    queue_sojourn_seconds: Histogram,
    shed: [Counter; 3],
    mailbox_depth: Gauge,
    /// Calls sent and not yet taken by the actor; shared with the section's handles.
    queued: Arc<AtomicUsize>,
}

#[derive(Default)]
struct Sold {
    orders: u64,
    minor: u64,
}

impl SectionMetrics {
    /// `categories`: the venue's category ids, with whether this section has seats of each.
    pub fn new(event: &str, section: &str, categories: &[(&str, bool)]) -> SectionMetrics {
        let (event, section) = (event.to_string(), section.to_string());
        let gauge = |name: &'static str| metrics::gauge!(name, "event" => event.clone(), "section" => section.clone());
        SectionMetrics {
            category_seats: categories
                .iter()
                .map(|&(category, present)| {
                    present.then(|| {
                        STATES.map(|state| {
                            metrics::gauge!(CATEGORY_SEATS, "event" => event.clone(), "section" => section.clone(),
                                "category" => category.to_string(), "state" => state)
                        })
                    })
                })
                .collect(),
            capacity: gauge(SECTION_CAPACITY),
            oversold: gauge(SECTION_OVERSOLD),
            holds_active: gauge(SECTION_HOLDS_ACTIVE),
            orders: gauge(SECTION_ORDERS),
            sales_minor: gauge(SECTION_SALES_MINOR),
            sold: Sold::default(),
            operations: std::array::from_fn(|index| match SECTION_OPERATIONS.get(index) {
                Some(&operation) => metrics::counter!(SECTION_OPERATIONS_TOTAL,
                    "event" => event.clone(), "section" => section.clone(), "operation" => operation),
                None => metrics::counter!(EVENT_OPERATIONS_TOTAL,
                    "event" => event.clone(), "operation" => EVENT_OPERATIONS[index - SECTION_OPERATIONS.len()]),
            }),
            seats: STATES.map(|state| {
                metrics::gauge!(SECTION_SEATS, "event" => event.clone(), "section" => section.clone(), "state" => state)
            }),
            call_seconds: metrics::histogram!(SECTION_CALL_SECONDS, "event" => event.clone()),
            busy_seconds: gauge(SECTION_BUSY_SECONDS),
            best_available_seconds: metrics::histogram!(BEST_AVAILABLE_SECONDS, "event" => event.clone()),
            queue_sojourn_seconds: metrics::histogram!(SECTION_QUEUE_SOJOURN_SECONDS, "event" => event.clone()),
            shed: ShedReason::ALL.map(|reason| {
                metrics::counter!(SECTION_SHED_TOTAL, "event" => event.clone(), "reason" => reason.as_str())
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

    /// The section's seat counts, in all and per category, and its live holds.
    pub fn seats(&self, availability: &Availability, holds_active: usize) {
        let total = &availability.total;
        self.seats[0].set(total.available);
        self.seats[1].set(total.held);
        self.seats[2].set(total.sold);
        self.capacity.set(total.capacity);
        self.oversold.set(f64::from(total.held) + f64::from(total.sold) - f64::from(total.capacity));
        for (category, counts) in &availability.categories {
            if let Some(Some(gauges)) = self.category_seats.get(usize::from(category.0)) {
                gauges[0].set(counts.available);
                gauges[1].set(counts.held);
                gauges[2].set(counts.sold);
            }
        }
        self.holds_active.set(holds_active as f64);
    }

    /// Counts the orders sold and cancelled since the last call (all of them at the first).
    pub fn sold(&mut self, inventory: &Inventory, records: &[Record]) {
        let section = inventory.key();
        for record in records {
            let (order, sign) = match record {
                Record::OrderConfirmed { order, .. } => (*order, 1),
                Record::OrderCancelled { order, .. } => (*order, -1),
                _ => continue,
            };
            let id = crate::ids::OrderId { section, number: crate::ids::OrderNumber(order) };
            let Some(order) = inventory.order(id) else { continue };
            if sign > 0 {
                self.sold.orders += 1;
                self.sold.minor += order.total_minor;
            } else {
                self.sold.orders = self.sold.orders.saturating_sub(1);
                self.sold.minor = self.sold.minor.saturating_sub(order.total_minor);
            }
        }
        self.orders.set(self.sold.orders as f64);
        self.sales_minor.set(self.sold.minor as f64);
    }

    /// Starts `orders` and `sales_minor` from the inventory (after recovery).
    pub fn sold_from(&mut self, inventory: &Inventory) {
        self.sold = Sold::default();
        for order in inventory.orders().filter(|order| order.state == OrderState::Confirmed) {
            self.sold.orders += 1;
            self.sold.minor += order.total_minor;
        }
        self.orders.set(self.sold.orders as f64);
        self.sales_minor.set(self.sold.minor as f64);
    }

    pub fn call(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        self.call_seconds.record(seconds);
        self.busy_seconds.increment(seconds);
    }

    pub fn best_available(&self, elapsed: Duration) {
        self.best_available_seconds.record(elapsed.as_secs_f64());
    }
}

/// Sets the store's gauges from one reading.
pub fn store_health(health: &crate::store::StoreHealth) {
    let flag = |on: bool| if on { 1.0 } else { 0.0 };
    metrics::gauge!(STORE_WRITE_STOPPED).set(flag(health.write_stopped));
    metrics::gauge!(STORE_WRITE_DELAYED).set(flag(health.delayed_write_rate > 0));
    metrics::gauge!(STORE_PENDING_COMPACTION_BYTES).set(health.pending_compaction_bytes as f64);
    metrics::gauge!(STORE_MEMTABLE_BYTES).set(health.memtable_bytes as f64);
    metrics::gauge!(STORE_SST_BYTES).set(health.sst_bytes as f64);
    metrics::gauge!(STORE_RUNNING_COMPACTIONS).set(health.running_compactions as f64);
    if let Some(disk) = health.disk {
        metrics::gauge!(STORE_DISK_FREE_BYTES).set(disk.free_bytes as f64);
        metrics::gauge!(STORE_DISK_SIZE_BYTES).set(disk.size_bytes as f64);
    }
}
