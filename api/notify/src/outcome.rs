//! What one delivery attempt came to, for an email or a webhook alike, so the relay has one
//! rule: `Delivered` is done, `Retry` asks the [`RetryPolicy`](crate::RetryPolicy) when,
//! `Gone` disables a webhook endpoint, `Rejected` goes to dead letters at once.

use std::time::Duration;

/// One attempt's result. `detail` is for logs and dead letters: a status code or an error
/// kind, never a reply's text (an SMTP server may quote the buyer's address in it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// The receiver took it (2xx; SMTP 250).
    Delivered,
    /// Worth trying again: a 5xx, 408 or 429, a timeout, a refused or broken connection, an
    /// SMTP 4xx. `after` is the receiver's `Retry-After`, when it gave one.
    Retry { after: Option<Duration>, detail: String },
    /// HTTP 410: the receiver asks never to be called again; the endpoint is disabled.
    /// Never returned for email.
    Gone,
    /// Final: another 4xx (or a redirect, which is not followed), an SMTP 5xx, a message
    /// that cannot be made. Retrying would get the same answer.
    Rejected { detail: String },
}

impl DeliveryOutcome {
    /// The bounded `outcome` label of the attempt metrics.
    pub fn label(&self) -> &'static str {
        match self {
            DeliveryOutcome::Delivered => "delivered",
            DeliveryOutcome::Retry { .. } => "retry",
            DeliveryOutcome::Gone => "gone",
            DeliveryOutcome::Rejected { .. } => "rejected",
        }
    }
}
