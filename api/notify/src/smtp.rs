//! Sending emails over SMTP with lettre (its tokio transport and connection pool; TLS by
//! rustls with Mozilla's roots, no OpenSSL), each send classified as a [`DeliveryOutcome`].
//!
//! Configuration is checked at startup: a `from` that is an address, credentials given
//! both or neither, a timeout above zero, and `tls = "none"` only to a loopback host (a
//! local relay such as a Postfix on the same machine, or a test server): buyers' addresses
//! and tickets never cross a network in the clear.
//!
//! Classification: SMTP 2xx is `Delivered`; a 4xx (transient: greylisting, a full queue)
//! and anything that kept the server from answering (connection refused or broken, TLS
//! failure, timeout) is `Retry`; a 5xx (permanent: no such mailbox, message refused) is
//! `Rejected`. Details carry the SMTP code or the error kind only, never the server's text,
//! which often quotes the recipient's address.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::outcome::DeliveryOutcome;

/// Open SMTP connections at most by default: a local relay takes a few parallel sessions
/// well; more would only queue at its end.
pub const CONNECTIONS_MAX_DEFAULT: u32 = 4;

/// How the connection to the SMTP server is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain SMTP: only to a loopback host.
    None,
    /// Plain connection upgraded with STARTTLS, which is required (port 587).
    StartTls,
    /// TLS from the first byte (SMTPS, port 465).
    Tls,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown SMTP TLS mode {given:?}: give \"none\", \"starttls\" or \"tls\"")]
pub struct SmtpTlsError {
    pub given: String,
}

impl FromStr for SmtpTls {
    type Err = SmtpTlsError;

    fn from_str(text: &str) -> Result<SmtpTls, SmtpTlsError> {
        match text {
            "none" => Ok(SmtpTls::None),
            "starttls" => Ok(SmtpTls::StartTls),
            "tls" => Ok(SmtpTls::Tls),
            _ => Err(SmtpTlsError { given: text.to_string() }),
        }
    }
}

/// `[notifications.email]`. `Debug` redacts the password and shows only the domain of
/// `from` and whether a username is set.
#[derive(Clone, PartialEq, Eq)]
pub struct EmailConfig {
    pub smtp_host: String,
    pub smtp_port: u16,
    /// `Name <address>` or `address`: the sender buyers see.
    pub from: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub tls: SmtpTls,
    /// For each SMTP command (connecting included).
    pub timeout: Duration,
    /// Open connections at most (the pool's size).
    pub connections_max: u32,
}

impl fmt::Debug for EmailConfig {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let from_domain = self.from.rsplit('@').next().map(|domain| domain.trim_end_matches('>'));
        formatter
            .debug_struct("EmailConfig")
            .field("smtp_host", &self.smtp_host)
            .field("smtp_port", &self.smtp_port)
            .field("from", &format_args!("…@{}", from_domain.unwrap_or("?")))
            .field("username", &self.username.as_ref().map(|_| "redacted"))
            .field("password", &self.password.as_ref().map(|_| "redacted"))
            .field("tls", &self.tls)
            .field("timeout", &self.timeout)
            .field("connections_max", &self.connections_max)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailConfigError {
    #[error("notifications.email.smtp_host is empty")]
    NoHost,
    #[error("notifications.email.smtp_port must not be 0")]
    NoPort,
    #[error(
        "notifications.email.tls = \"none\" sends mail in the clear: allowed only to a loopback host \
         (127.0.0.1, ::1, localhost), not {host:?}; use \"starttls\" or \"tls\""
    )]
    PlainToRemoteHost { host: String },
    #[error(
        "notifications.email.from is not an email address (\"Name <tickets@example.com>\" or \"tickets@example.com\")"
    )]
    From,
    #[error("notifications.email: give both username and password, or neither")]
    HalfCredentials,
    #[error("notifications.email.timeout must be more than 0")]
    NoTimeout,
    #[error("notifications.email.connections_max must be at least 1")]
    NoConnections,
    #[error("notifications.email: TLS setup for {host:?} failed: {detail}")]
    Tls { host: String, detail: String },
    /// lettre's pool starts a tokio task when built: a mailer needs a runtime.
    #[error("the SMTP mailer must be created inside a tokio runtime")]
    NoRuntime,
}

/// The SMTP client: a pool of at most `connections_max` connections, opened on first use.
/// Cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl fmt::Debug for SmtpMailer {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_struct("SmtpMailer").field("from_domain", &self.from.email.domain()).finish_non_exhaustive()
    }
}

/// Whether `host` is this machine: a loopback IP address or `localhost`.
fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|address| address.is_loopback())
}

impl SmtpMailer {
    /// Checks the configuration and sets the transport up; nothing connects until a send.
    /// Call it inside a tokio runtime (the pool spawns its idle-connection reaper).
    pub fn new(config: &EmailConfig) -> Result<SmtpMailer, EmailConfigError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(EmailConfigError::NoRuntime);
        }
        let host = config.smtp_host.trim();
        if host.is_empty() {
            return Err(EmailConfigError::NoHost);
        }
        if config.smtp_port == 0 {
            return Err(EmailConfigError::NoPort);
        }
        if config.tls == SmtpTls::None && !is_loopback(host) {
            return Err(EmailConfigError::PlainToRemoteHost { host: host.to_string() });
        }
        let from: Mailbox = config.from.trim().parse().map_err(|_| EmailConfigError::From)?;
        if config.timeout.is_zero() {
            return Err(EmailConfigError::NoTimeout);
        }
        if config.connections_max == 0 {
            return Err(EmailConfigError::NoConnections);
        }
        let tls_error = |error: lettre::transport::smtp::Error| EmailConfigError::Tls {
            host: host.to_string(),
            detail: error.to_string(),
        };
        let builder = match config.tls {
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
            SmtpTls::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host).map_err(tls_error)?,
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host).map_err(tls_error)?,
        };
        let builder = builder
            .port(config.smtp_port)
            .timeout(Some(config.timeout))
            .pool_config(PoolConfig::new().max_size(config.connections_max));
        let builder = match (&config.username, &config.password) {
            (Some(username), Some(password)) => {
                builder.credentials(Credentials::new(username.clone(), password.clone()))
            }
            (None, None) => builder,
            _ => return Err(EmailConfigError::HalfCredentials),
        };
        Ok(SmtpMailer { transport: builder.build(), from })
    }

    /// The configured sender, for [`build_message`](crate::email::build_message).
    pub fn from(&self) -> &Mailbox {
        &self.from
    }

    /// One send attempt of a built message.
    pub async fn send(&self, message: Message) -> DeliveryOutcome {
        match self.transport.send(message).await {
            Ok(response) if response.is_positive() => DeliveryOutcome::Delivered,
            // `send` reports negative replies as errors; a non-positive Ok is not expected.
            Ok(response) => DeliveryOutcome::Retry { after: None, detail: format!("smtp {}", response.code()) },
            Err(error) => classify(&error),
        }
    }
}

/// The outcome of a failed send (see the module comment).
pub fn classify(error: &lettre::transport::smtp::Error) -> DeliveryOutcome {
    let code = error.status().map(|code| code.to_string());
    if error.is_permanent() {
        return DeliveryOutcome::Rejected { detail: format!("smtp {}", code.as_deref().unwrap_or("5xx")) };
    }
    if error.is_transient() {
        return DeliveryOutcome::Retry { after: None, detail: format!("smtp {}", code.as_deref().unwrap_or("4xx")) };
    }
    let kind = if error.is_timeout() {
        "timeout"
    } else if error.is_tls() {
        "tls"
    } else if error.is_client() {
        // A message lettre could not send as given (e.g. an address the server's
        // extensions cannot carry): the same message fails the same way.
        return DeliveryOutcome::Rejected { detail: "smtp client error".into() };
    } else if error.is_response() {
        "unreadable reply"
    } else {
        "connection"
    };
    DeliveryOutcome::Retry { after: None, detail: format!("smtp {kind}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> EmailConfig {
        EmailConfig {
            smtp_host: "127.0.0.1".into(),
            smtp_port: 2525,
            from: "Hakken Tickets <tickets@example.com>".into(),
            username: None,
            password: None,
            tls: SmtpTls::None,
            timeout: Duration::from_secs(10),
            connections_max: CONNECTIONS_MAX_DEFAULT,
        }
    }

    fn check(config: EmailConfig, expected: Result<(), EmailConfigError>) {
        let shown = format!("{config:?}");
        assert_eq!(SmtpMailer::new(&config).map(|_| ()), expected, "{shown}");
    }

    #[tokio::test]
    async fn plain_smtp_only_to_loopback() {
        check(config(), Ok(()));
        check(EmailConfig { smtp_host: "localhost".into(), ..config() }, Ok(()));
        check(EmailConfig { smtp_host: "::1".into(), ..config() }, Ok(()));
        check(EmailConfig { smtp_host: "127.0.0.53".into(), ..config() }, Ok(()));
        let remote = EmailConfig { smtp_host: "smtp.example.com".into(), ..config() };
        check(remote.clone(), Err(EmailConfigError::PlainToRemoteHost { host: "smtp.example.com".into() }));
        check(
            EmailConfig { smtp_host: "10.0.0.5".into(), ..config() },
            Err(EmailConfigError::PlainToRemoteHost { host: "10.0.0.5".into() }),
        );
        check(EmailConfig { tls: SmtpTls::StartTls, ..remote.clone() }, Ok(()));
        check(EmailConfig { tls: SmtpTls::Tls, smtp_port: 465, ..remote }, Ok(()));
    }

    #[tokio::test]
    async fn other_settings_are_checked() {
        check(EmailConfig { smtp_host: " ".into(), ..config() }, Err(EmailConfigError::NoHost));
        check(EmailConfig { smtp_port: 0, ..config() }, Err(EmailConfigError::NoPort));
        check(EmailConfig { from: "tickets at example".into(), ..config() }, Err(EmailConfigError::From));
        check(EmailConfig { username: Some("u".into()), ..config() }, Err(EmailConfigError::HalfCredentials));
        check(EmailConfig { password: Some("p".into()), ..config() }, Err(EmailConfigError::HalfCredentials));
        check(EmailConfig { username: Some("u".into()), password: Some("p".into()), ..config() }, Ok(()));
        check(EmailConfig { timeout: Duration::ZERO, ..config() }, Err(EmailConfigError::NoTimeout));
        check(EmailConfig { connections_max: 0, ..config() }, Err(EmailConfigError::NoConnections));
        assert_eq!("starttls".parse::<SmtpTls>(), Ok(SmtpTls::StartTls));
        assert!("ssl".parse::<SmtpTls>().is_err());
    }

    #[test]
    fn outside_a_runtime_is_an_error_not_a_panic() {
        assert_eq!(SmtpMailer::new(&config()).map(|_| ()), Err(EmailConfigError::NoRuntime));
    }

    #[tokio::test]
    async fn debug_redacts_addresses_and_secrets() {
        let config = EmailConfig {
            username: Some("mailer-user".into()),
            password: Some("hunter2".into()),
            from: "tickets@example.com".into(),
            ..config()
        };
        let shown = format!("{config:?} {:?}", SmtpMailer::new(&config).expect("valid"));
        assert!(!shown.contains("hunter2") && !shown.contains("mailer-user") && !shown.contains("tickets@"), "{shown}");
        assert!(shown.contains("example.com"), "{shown}");
    }

    #[tokio::test]
    async fn a_closed_port_is_a_retry() {
        // A port nothing listens on: bind one, then free it.
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        let mailer = SmtpMailer::new(&EmailConfig { smtp_port: port, timeout: Duration::from_secs(2), ..config() })
            .expect("mailer");
        let message = Message::builder()
            .from(mailer.from().clone())
            .to("someone@example.com".parse().expect("to"))
            .subject("test")
            .body(String::from("test"))
            .expect("message");
        match mailer.send(message).await {
            DeliveryOutcome::Retry { after: None, detail } => assert_eq!(detail, "smtp connection"),
            other => panic!("expected a retry, got {other:?}"),
        }
    }
}
