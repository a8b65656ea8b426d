//! Names of the metrics the outbox relay reports (the relay lives in the API, which emits
//! them through the `metrics` facade). Labels are bounded: `channel` is `email` or
//! `webhook`, `outcome` is [`DeliveryOutcome::label`](crate::DeliveryOutcome::label),
//! `kind` an [`EmailKind`](crate::EmailKind) or [`WebhookEventKind`](crate::WebhookEventKind)
//! name; never an order, ticket, address or endpoint URL.

/// Gauge: outbox entries not yet delivered (`state="pending"`) or given up on (`state="dead"`), as the store counts them.
pub const OUTBOX_ENTRIES: &str = "hakken_notification_outbox_entries";

/// Gauge: age of the oldest pending entry, by `channel`; the relay's lag.
pub const OUTBOX_OLDEST_AGE_SECONDS: &str = "hakken_notification_outbox_oldest_age_seconds";

/// Counter: delivery attempts, by `channel` and `outcome` (`delivered`, `retry`, `gone`, `rejected`).
pub const ATTEMPTS_TOTAL: &str = "hakken_notification_attempts_total";

/// Histogram: one attempt's duration (connect to answer), by `channel`.
pub const ATTEMPT_SECONDS: &str = "hakken_notification_attempt_seconds";

/// Histogram: from the outbox entry's write (the change acknowledged) to its delivery, by
/// `channel`: what a buyer waits for the ticket email.
pub const DELIVERY_LATENCY_SECONDS: &str = "hakken_notification_delivery_latency_seconds";

/// Counter: entries moved to dead letters, by `channel` and `kind`.
pub const DEAD_LETTERS_TOTAL: &str = "hakken_notification_dead_letters_total";

/// Counter: webhook endpoints disabled by a `410 Gone`.
pub const WEBHOOK_ENDPOINTS_DISABLED_TOTAL: &str = "hakken_webhook_endpoints_disabled_total";

/// Buckets of [`ATTEMPT_SECONDS`]: a loopback SMTP send takes milliseconds; the sender's
/// timeouts end the range (webhook 15 s by default).
pub const ATTEMPT_SECONDS_BUCKETS: &[f64] =
    &[0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0];

/// Buckets of [`DELIVERY_LATENCY_SECONDS`]: well under a second when all is well, minutes
/// to hours while a server is down and retries back off.
pub const DELIVERY_LATENCY_SECONDS_BUCKETS: &[f64] =
    &[0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0];
