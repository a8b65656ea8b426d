//! `[notifications]` of `hakken.toml`: where emails go, which webhook endpoints get
//! what, and the relay's bounds. Email is off while `email.smtp_host` is empty; with
//! neither email nor a webhook endpoint the relay does not run (entries still collect in
//! the outbox and go out once something is configured).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use hakken_notify::{EmailConfig, RetryPolicy, SmtpTls, WebhookEndpointConfig, WebhookSenderConfig};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotificationsConfig {
    /// The email templates (`{language}/{kind}.{subject.txt,txt,html}`), relative to the
    /// config file; a promoter edits them there.
    pub templates_dir: PathBuf,
    /// The API's public address, for the links in emails (printable ticket pages);
    /// empty: `http://{listen}`.
    pub public_url: String,
    pub email: EmailSettings,
    /// From the file only (an environment variable cannot hold a list of tables).
    pub webhooks: Vec<WebhookSettings>,
    pub relay: RelaySettings,
}

impl Default for NotificationsConfig {
    fn default() -> Self {
        NotificationsConfig {
            templates_dir: PathBuf::from("notifications/templates"),
            public_url: String::new(),
            email: EmailSettings::default(),
            webhooks: Vec::new(),
            relay: RelaySettings::default(),
        }
    }
}

#[derive(Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmailSettings {
    /// Empty turns email off.
    pub smtp_host: String,
    pub smtp_port: u16,
    /// `Name <address>` or `address`: the sender buyers see; its domain ends every Message-ID.
    pub from: String,
    /// Both empty: no authentication.
    pub username: String,
    /// Set it with HAKKEN_NOTIFICATIONS_EMAIL_PASSWORD rather than in the file.
    pub password: String,
    /// `starttls` (port 587), `tls` (465) or `none` (loopback only).
    pub tls: String,
    /// For each SMTP command, connecting included.
    pub timeout_ms: u64,
    /// SMTP connections at most: also how many emails are sent at once.
    pub connections_max: u32,
}

impl Default for EmailSettings {
    fn default() -> Self {
        EmailSettings {
            smtp_host: String::new(),
            smtp_port: 587,
            from: String::new(),
            username: String::new(),
            password: String::new(),
            tls: "starttls".into(),
            timeout_ms: 10_000,
            connections_max: 8,
        }
    }
}

impl std::fmt::Debug for EmailSettings {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("EmailSettings")
            .field("smtp_host", &self.smtp_host)
            .field("smtp_port", &self.smtp_port)
            .field("tls", &self.tls)
            .field("password", &if self.password.is_empty() { "" } else { "redacted" })
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// `http(s)://...`; receives a signed POST per event.
    pub url: String,
    /// `whsec_` + base64 (Standard Webhooks).
    pub secret: String,
    /// Event types (`order.confirmed`, `ticket.checked_in`, ...).
    pub events: Vec<String>,
}

impl std::fmt::Debug for WebhookSettings {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("WebhookSettings").field("events", &self.events).finish_non_exhaustive()
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RelaySettings {
    /// Webhook attempts in flight at once, per endpoint (email is bounded by
    /// `email.connections_max`).
    pub webhook_concurrency: usize,
    /// Entries the relay keeps in memory at once (the rest wait in the store, in order).
    pub entries_in_memory_max: usize,
    /// Retries: the first after up to this long, doubling (with full jitter) ...
    pub first_retry_ms: u64,
    /// ... up to this; a receiver's Retry-After is honoured up to an hour.
    pub retry_max_ms: u64,
    /// Attempts before a delivery becomes a dead letter (30: about 6 hours at the defaults).
    pub attempts_max: u32,
    /// One webhook attempt, connecting included.
    pub webhook_timeout_ms: u64,
}

impl Default for RelaySettings {
    fn default() -> Self {
        RelaySettings {
            webhook_concurrency: 4,
            entries_in_memory_max: 10_000,
            first_retry_ms: 1_000,
            retry_max_ms: 15 * 60 * 1000,
            attempts_max: 30,
            webhook_timeout_ms: 15_000,
        }
    }
}

impl NotificationsConfig {
    /// Whether anything is configured to receive notifications.
    pub fn enabled(&self) -> bool {
        self.email_enabled() || !self.webhooks.is_empty()
    }

    pub fn email_enabled(&self) -> bool {
        !self.email.smtp_host.trim().is_empty()
    }

    /// The SMTP configuration, checked (a bad one stops the server at startup).
    pub fn email_config(&self) -> Result<EmailConfig> {
        let settings = &self.email;
        let tls: SmtpTls = settings.tls.parse().context("notifications.email.tls")?;
        let optional = |text: &str| (!text.is_empty()).then(|| text.to_string());
        if settings.from.trim().is_empty() {
            bail!("notifications.email.from is empty: give the sender buyers see (`Tickets <tickets@example.com>`)");
        }
        if settings.timeout_ms == 0 || settings.connections_max == 0 {
            bail!("notifications.email.timeout_ms and notifications.email.connections_max must be positive");
        }
        Ok(EmailConfig {
            smtp_host: settings.smtp_host.trim().to_string(),
            smtp_port: settings.smtp_port,
            from: settings.from.clone(),
            username: optional(&settings.username),
            password: optional(&settings.password),
            tls,
            timeout: Duration::from_millis(settings.timeout_ms),
            connections_max: settings.connections_max,
        })
    }

    pub fn webhook_configs(&self) -> Vec<WebhookEndpointConfig> {
        self.webhooks
            .iter()
            .map(|webhook| WebhookEndpointConfig {
                url: webhook.url.clone(),
                secret: webhook.secret.clone(),
                events: webhook.events.clone(),
            })
            .collect()
    }

    pub fn retry_policy(&self) -> Result<RetryPolicy> {
        let relay = &self.relay;
        RetryPolicy::new(
            Duration::from_millis(relay.first_retry_ms),
            Duration::from_millis(relay.retry_max_ms),
            Duration::from_secs(3600),
            relay.attempts_max,
        )
        .context("notifications.relay")
    }

    pub fn sender_config(&self) -> Result<WebhookSenderConfig> {
        let timeout = Duration::from_millis(self.relay.webhook_timeout_ms);
        if timeout.is_zero() {
            bail!("notifications.relay.webhook_timeout_ms must be positive");
        }
        Ok(WebhookSenderConfig { connect_timeout: timeout.min(Duration::from_secs(5)), timeout })
    }

    /// Refuses bounds the relay cannot run with.
    pub fn validate(&self) -> Result<()> {
        if self.relay.webhook_concurrency == 0 || self.relay.entries_in_memory_max == 0 {
            bail!("notifications.relay.webhook_concurrency and entries_in_memory_max must be positive");
        }
        Ok(())
    }
}
