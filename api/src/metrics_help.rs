//! The help text and unit of every metric the server exports, given to the recorder
//! once at start (`# HELP` lines: `promtool check metrics` refuses a metric without one,
//! and a dashboard's tooltip shows it). The names live beside the code that records them.

use hakken_engine::observe as engine;
use hakken_notify::metrics as notify;
use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};

use hakken_cluster::metrics as cluster;

use crate::cluster::node;
use crate::http::{
    availability_cache, connections, gates, overload, owner_redirect, payment_waiters, payments, route_metrics,
};
use crate::payments::{gateway, reconcile};
use crate::waiting_rooms;

pub fn describe() {
    // Requests.
    describe_counter!(route_metrics::REQUESTS_TOTAL, "HTTP requests answered, by method, route template and status");
    describe_histogram!(
        route_metrics::REQUEST_SECONDS,
        Unit::Seconds,
        "Time to answer an HTTP request, by method and route"
    );
    describe_gauge!(route_metrics::IN_FLIGHT, "Requests admitted and not yet answered");
    describe_counter!(route_metrics::REJECTIONS_TOTAL, "Requests refused, by reason (and class, for admission's)");
    describe_gauge!(overload::CONCURRENCY_LIMIT, "The adaptive in-flight limit now");
    describe_gauge!(overload::AWAITING_PSP, "Requests out of the in-flight count while they wait on the PSP");
    describe_gauge!(overload::BACKLOG_DRAIN_SECONDS, Unit::Seconds, "Time the admitted backlog takes to drain");
    describe_gauge!(connections::CONNECTIONS_OPEN, "Open client connections");
    describe_counter!(
        connections::CONNECTIONS_REFUSED_TOTAL,
        "Connections refused over connections_max (a canned 503)"
    );
    describe_counter!(
        connections::ACCEPT_ERRORS_TOTAL,
        "Failed accepts, by kind (connection: the peer's; server: descriptors, memory)"
    );
    describe_counter!(availability_cache::AVAILABILITY_CACHE_TOTAL, "Availability polls, by result (hit, miss)");
    describe_gauge!(crate::http::READY, "1 while /readyz answers 200 (recovered, storage working, not shutting down)");
    // Waiting rooms, per event.
    describe_gauge!(
        waiting_rooms::QUEUE_WAITING,
        "Buyers waiting in the event's waiting room, not counting those told sold out (0 once it closed)"
    );
    describe_counter!(waiting_rooms::QUEUE_ADMITTED_TOTAL, "Buyers let in from the waiting room");
    describe_gauge!(waiting_rooms::QUEUE_SHOPPING, "Buyers let in who made a hold and have not bought or given up yet");
    describe_gauge!(
        waiting_rooms::QUEUE_ADMITTED_PENDING,
        "Buyers let in who have not come to hold yet and are within the grace: counted as seats to come"
    );
    describe_gauge!(
        waiting_rooms::QUEUE_GRACE_SECONDS,
        "How long after being let in a buyer counts as about to come to hold (learned from those who came)"
    );
    describe_counter!(waiting_rooms::QUEUE_LAPSED_TOTAL, "Buyers let in whose access lapsed unused");
    describe_counter!(
        waiting_rooms::QUEUE_REFUSED_TOTAL,
        "Buyers let in whose first hold found nothing free that fit what they asked (they stop counting as seats to come)"
    );
    describe_gauge!(
        waiting_rooms::QUEUE_ADMISSION_RATE,
        "Admissions per second: the rate aimed at (rate=target) and achieved over 10 s (rate=measured)"
    );
    describe_gauge!(
        waiting_rooms::QUEUE_CLOSED_BEHIND,
        "Buyers told sold out by a partial close at the end of the sale, while those ahead wait for held seats to come back"
    );
    describe_gauge!(
        waiting_rooms::QUEUE_SOLD_OUT,
        "1 once the waiting room closed: nothing left to hold, everyone told"
    );
    describe_counter!(
        waiting_rooms::QUEUE_JOINS_TOTAL,
        "Joins of the waiting room, by outcome (ok, refused, unavailable)"
    );
    describe_counter!(waiting_rooms::QUEUE_POLLS_TOTAL, "Polls of waiting-room places");
    describe_gauge!(
        waiting_rooms::QUEUE_LONG_POLLS,
        "Long polls (GET /v1/queue/{token}?wait_ms=) held now, waiting for their buyer's turn or the room's close"
    );
    describe_counter!(
        waiting_rooms::QUEUE_LONG_POLLS_TOTAL,
        "Long polls by how they ended: woken (let in or closed on), timed_out (wait_ms passed), full (answered at once: the room held as many as it takes)"
    );
    describe_histogram!(
        engine::QUEUE_ETA_ERROR_RATIO,
        "How wrong a buyer's first ETA was when let in, as a share of its wait from then"
    );
    describe_counter!(
        waiting_rooms::QUEUE_ACCESS_TOTAL,
        "Access checks of holds on events with a waiting room, by outcome (ok, missing, invalid)"
    );
    // The sale, per section.
    describe_counter!(engine::SECTION_OPERATIONS_TOTAL, "Seat changes made by a section, by operation");
    describe_counter!(
        engine::EVENT_OPERATIONS_TOTAL,
        "Payment and buyer-data changes of an event's orders, by operation"
    );
    describe_gauge!(engine::SECTION_SEATS, "Seats (or GA units) of a section, by state (available, held, sold)");
    describe_gauge!(engine::CATEGORY_SEATS, "Seats of a section's price category, by state");
    describe_gauge!(engine::SECTION_CAPACITY, "Seats (or GA units) a section has");
    describe_gauge!(
        engine::SECTION_OVERSOLD,
        "held + sold - capacity of a section: never above 0 (above, a seat was sold twice)"
    );
    describe_gauge!(engine::SECTION_HOLDS_ACTIVE, "Holds alive in a section");
    describe_gauge!(engine::SECTION_ORDERS, "Orders of a section not cancelled");
    describe_gauge!(
        engine::SECTION_SALES_MINOR,
        "What a section's live orders were sold for, in the currency's minor units"
    );
    describe_gauge!(engine::SECTION_MAILBOX_DEPTH, "Calls waiting in a section actor's mailbox");
    describe_histogram!(
        engine::SECTION_QUEUE_SOJOURN_SECONDS,
        Unit::Seconds,
        "Time a call waited in a section's mailbox, over the event's sections"
    );
    describe_counter!(engine::SECTION_SHED_TOTAL, "Calls the event's section actors dropped unrun, by reason");
    describe_histogram!(
        engine::SECTION_CALL_SECONDS,
        Unit::Seconds,
        "Time a section actor spends on one call, over the event's sections"
    );
    describe_gauge!(
        engine::SECTION_BUSY_SECONDS,
        Unit::Seconds,
        "Time a section's actor has spent on calls since start (only grows: its rate is the core share it takes)"
    );
    describe_histogram!(
        engine::BEST_AVAILABLE_SECONDS,
        Unit::Seconds,
        "Time a best-available hold takes to choose and hold its seats"
    );
    describe_counter!(
        gates::GATE_SCANS_TOTAL,
        "Gate scans answered, by result (already_admitted: a ticket used twice)"
    );
    // Storage.
    describe_histogram!(engine::WAL_GROUP_RECORDS, "Records per WAL group commit");
    describe_histogram!(engine::WAL_WRITE_SECONDS, Unit::Seconds, "Time to write (and fsync) one WAL group");
    describe_counter!(engine::WAL_BYTES_TOTAL, Unit::Bytes, "Bytes of keys and values written to the WAL");
    describe_counter!(
        engine::WAL_WRITE_FAILURES_TOTAL,
        "Failed WAL group writes (the store is then poisoned until restart)"
    );
    describe_counter!(engine::WAL_QUEUE_FULL_TOTAL, "Writes refused because the WAL writer's queue was full");
    describe_gauge!(
        engine::STORE_WRITE_STOPPED,
        "1 while RocksDB has stopped writes (compaction behind): nothing is acknowledged"
    );
    describe_gauge!(engine::STORE_WRITE_DELAYED, "1 while RocksDB slows writes down (compaction falling behind)");
    describe_gauge!(engine::STORE_PENDING_COMPACTION_BYTES, Unit::Bytes, "RocksDB's compaction debt");
    describe_gauge!(engine::STORE_MEMTABLE_BYTES, Unit::Bytes, "RocksDB's memtables");
    describe_gauge!(engine::STORE_SST_BYTES, Unit::Bytes, "RocksDB's SST files");
    describe_gauge!(engine::STORE_RUNNING_COMPACTIONS, "RocksDB compactions running");
    describe_gauge!(
        engine::STORE_DISK_FREE_BYTES,
        Unit::Bytes,
        "Free space of the store's file system (for unprivileged writers)"
    );
    describe_gauge!(engine::STORE_DISK_SIZE_BYTES, Unit::Bytes, "Size of the store's file system");
    describe_gauge!(engine::RECOVERY_SECONDS, Unit::Seconds, "How long the last recovery took");
    // Payments.
    describe_counter!(payments::WEBHOOKS_TOTAL, "PSP webhooks received, by outcome");
    describe_histogram!(
        payments::WEBHOOK_LAG_SECONDS,
        Unit::Seconds,
        "From a PSP event's creation to hakken acting on it"
    );
    describe_gauge!(payment_waiters::PAYMENT_WAITERS, "Buyers long-polling their payment");
    describe_gauge!(
        gateway::PAYMENTS_DUE,
        "Payments the sweep found owing something, by due (capture, void, refund, check, abandon)"
    );
    describe_counter!(gateway::PAYMENTS_SWEEP_FAILURES_TOTAL, "Payments the sweep could not settle, by due");
    describe_gauge!(
        reconcile::RECONCILE_MISMATCHES,
        "Mismatches between the PSP's money and the orders at the last reconciliation"
    );
    describe_counter!("hakken_psp_requests_total", "Calls to the PSP, by operation and outcome");
    describe_histogram!("hakken_psp_request_seconds", Unit::Seconds, "Time of a call to the PSP, by operation");
    describe_counter!(crate::privacy::OPEN_FAILURES_TOTAL, "Sealed buyer data that could not be opened, by reason");
    // Notifications.
    describe_gauge!(notify::OUTBOX_ENTRIES, "Outbox entries, by state (pending, dead)");
    describe_gauge!(
        notify::OUTBOX_OLDEST_AGE_SECONDS,
        Unit::Seconds,
        "Age of the oldest pending notification, by channel"
    );
    describe_counter!(notify::ATTEMPTS_TOTAL, "Notification delivery attempts, by channel and outcome");
    describe_histogram!(notify::ATTEMPT_SECONDS, Unit::Seconds, "Time of one delivery attempt, by channel");
    describe_histogram!(
        notify::DELIVERY_LATENCY_SECONDS,
        Unit::Seconds,
        "From the change to its notification's delivery, by channel"
    );
    describe_counter!(notify::DEAD_LETTERS_TOTAL, "Notifications given up, by channel and kind");
    describe_counter!(
        notify::WEBHOOK_ENDPOINTS_DISABLED_TOTAL,
        "Webhook endpoints disabled after failing for too long"
    );
    // Cluster mode (exported only by a node with [cluster] enabled).
    describe_counter!(
        cluster::LEASE_WRITES_TOTAL,
        "Event lease writes, by outcome (taken, renewed, lost, released, error)"
    );
    describe_counter!(cluster::TAKEOVERS_TOTAL, "Events this node took over from an earlier holder");
    describe_counter!(
        cluster::APPENDS_TOTAL,
        "Appends to the events' cluster log, by outcome (ok, fenced, unavailable)"
    );
    describe_histogram!(
        cluster::APPEND_SECONDS,
        Unit::Seconds,
        "From an append to its quorum acknowledgement: the cluster's durability point"
    );
    describe_gauge!(node::OWNER, "1 while this node owns the event, 0 while it is a standby");
    describe_gauge!(
        node::STANDBY_LAG_MESSAGES,
        "How far this standby's store is behind the event's log, in stream sequence numbers (0: caught up)"
    );
    describe_histogram!(
        node::TAKEOVER_SECONDS,
        Unit::Seconds,
        "A takeover's fence, catch-up and rebuild, until the event is served here"
    );
    describe_counter!(
        node::STEP_DOWNS_TOTAL,
        "Times this node stopped serving an event, by reason (lease_lost, append_refused, stopping)"
    );
    describe_counter!(owner_redirect::REDIRECTS_TOTAL, "Requests redirected to the node that owns their event");
}
