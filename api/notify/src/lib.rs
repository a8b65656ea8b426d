//! hakken's notifications, the parts that need no store: ticket emails (rendered from
//! templates a promoter can edit, sent over SMTP) and Standard Webhooks (thin payloads,
//! signed, sent over HTTP), each attempt classified for the relay that retries them.
//!
//! What is deliberately absent: the outbox itself, its cursor and the relay's loop. The
//! engine writes outbox entries in the same RocksDB batch as the change they tell, and the
//! API's relay reads them; this crate gets plain inputs (ids, names, times) from that relay
//! and gives back one [`DeliveryOutcome`] per attempt and, through [`RetryPolicy`], when to
//! try again. It has no clock of its own beyond what the caller passes (`now`), no
//! randomness beyond a caller's seed, and no dependency on `hakken-engine` or RocksDB.
//!
//! Personal data: buyers' names and email addresses go only into the email sent to the
//! SMTP server. Webhook payloads carry ids only, every `Debug` of an input or a config
//! redacts names, addresses, secrets and passwords, and outcome details carry SMTP status
//! codes and error kinds, never a server's reply text (which may quote the address).
//!
//! Modules, one purpose each:
//! - [`webhook_sign`]: Standard Webhooks signatures (sign, verify).
//! - [`webhook_payload`]: the event types and their thin JSON payloads.
//! - [`webhook_send`]: endpoint configuration and one signed POST per attempt.
//! - [`backoff`]: when to retry (exponential backoff, full jitter, Retry-After), when to give up.
//! - [`outcome`]: what one delivery attempt came to.
//! - [`language`], [`datetime`], [`place`]: the event's language, dates in the venue's time
//!   zone, places as a person reads them (also for the printable ticket page).
//! - [`qr`]: the inline QR PNG of a ticket code.
//! - [`templates`]: the email templates loaded from a directory, checked at startup.
//! - [`email`]: the input of an email and the MIME message built from it.
//! - [`smtp`]: SMTP configuration and sending.
//! - [`metrics`]: the names of the metrics the relay reports.

pub mod backoff;
pub mod datetime;
pub mod email;
pub mod language;
pub mod metrics;
pub mod outcome;
pub mod place;
pub mod qr;
pub mod smtp;
pub mod templates;
mod tls;
pub mod webhook_payload;
pub mod webhook_send;
pub mod webhook_sign;

pub use backoff::{NextAttempt, RetryPolicy, RetryPolicyError};
pub use datetime::{format_starts_at, TimeZoneError, VenueTimeZone};
pub use email::{
    build_message, message_id, render_email, EmailError, EmailInput, EmailKind, RenderedEmail, TicketInput,
};
pub use language::{Language, LanguageError};
pub use outcome::DeliveryOutcome;
pub use place::{format_place, Place};
pub use smtp::{EmailConfig, EmailConfigError, SmtpMailer, SmtpTls};
pub use templates::{TemplateError, Templates};
pub use webhook_payload::{WebhookEvent, WebhookEventKind};
pub use webhook_send::{
    WebhookConfigError, WebhookEndpoint, WebhookEndpointConfig, WebhookMessage, WebhookMessageError, WebhookSender,
    WebhookSenderConfig,
};
pub use webhook_sign::{SignatureError, SignedHeaders, WebhookSecret, WebhookSecretError};
