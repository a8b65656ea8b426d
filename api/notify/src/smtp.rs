//! Sending emails over SMTP with lettre's SMTP client (its connection speaks the
//! protocol: EHLO, STARTTLS, AUTH, MAIL, RCPT, DATA; TLS by rustls with Mozilla's roots, no
//! OpenSSL), each send classified as a [`DeliveryOutcome`].
//!
//! The connections and their pool are ours, not lettre's transport's: lettre writes a
//! message and its final `.` in two writes on a socket with Nagle's algorithm on, so each
//! email waited for the server's delayed ACK (~40 ms): 25 emails/s per connection. Ours
//! set `TCP_NODELAY`. The pool keeps at most `connections_max` connections, reuses an idle
//! one for [`IDLE_REUSE_MAX`], and sends once more on a new connection when a kept one
//! turns out closed by the server.
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
use std::pin::Pin;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use lettre::address::Envelope;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::response::Response;
use lettre::Message;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use crate::outcome::DeliveryOutcome;
use crate::tls;

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
}

/// An idle connection older than this is closed rather than reused: servers drop idle
/// sessions (RFC 5321 asks them to wait at least 5 minutes; many wait less).
pub const IDLE_REUSE_MAX: Duration = Duration::from_secs(30);

/// The SMTP client: a pool of at most `connections_max` connections, opened on first use.
/// Cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct SmtpMailer {
    pool: Arc<Pool>,
    from: Mailbox,
}

struct Pool {
    host: String,
    port: u16,
    /// STARTTLS's parameters (lettre's rustls connector), for `StartTls`.
    starttls: Option<TlsParameters>,
    /// The connector and server name of SMTPS, for `Tls`.
    implicit_tls: Option<(tokio_rustls::TlsConnector, rustls::pki_types::ServerName<'static>)>,
    credentials: Option<Credentials>,
    timeout: Duration,
    hello: ClientId,
    /// One permit per connection in use or being opened.
    slots: Semaphore,
    idle: Mutex<Vec<(AsyncSmtpConnection, Instant)>>,
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
    /// Checks the configuration and sets the client up; nothing connects until a send.
    pub fn new(config: &EmailConfig) -> Result<SmtpMailer, EmailConfigError> {
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
        let tls_error = |detail: String| EmailConfigError::Tls { host: host.to_string(), detail };
        let starttls = match config.tls {
            SmtpTls::StartTls => {
                Some(TlsParameters::new(host.to_string()).map_err(|error| tls_error(error.to_string()))?)
            }
            _ => None,
        };
        let implicit_tls = match config.tls {
            SmtpTls::Tls => {
                let tls = tls::connector(tls::mozilla_roots(), &[]).map_err(|error| tls_error(error.to_string()))?;
                let name = rustls::pki_types::ServerName::try_from(host.to_string())
                    .map_err(|_| tls_error("not a DNS name or IP address".into()))?;
                Some((tls, name))
            }
            _ => None,
        };
        let credentials = match (&config.username, &config.password) {
            (Some(username), Some(password)) => Some(Credentials::new(username.clone(), password.clone())),
            (None, None) => None,
            _ => return Err(EmailConfigError::HalfCredentials),
        };
        let slots = config.connections_max as usize;
        let pool = Pool {
            host: host.to_string(),
            port: config.smtp_port,
            starttls,
            implicit_tls,
            credentials,
            timeout: config.timeout,
            hello: ClientId::default(),
            slots: Semaphore::new(slots),
            idle: Mutex::new(Vec::with_capacity(slots)),
        };
        Ok(SmtpMailer { pool: Arc::new(pool), from })
    }

    /// The configured sender, for [`build_message`](crate::email::build_message).
    pub fn from(&self) -> &Mailbox {
        &self.from
    }

    /// One send attempt of a built message, within the configured timeout (waiting for a
    /// free connection included).
    pub async fn send(&self, message: Message) -> DeliveryOutcome {
        let envelope = message.envelope().clone();
        let bytes = message.formatted();
        let pool = &self.pool;
        let attempt = async {
            let _slot = pool.slots.acquire().await.expect("the pool never closes its semaphore");
            pool.deliver(&envelope, &bytes).await
        };
        match tokio::time::timeout(pool.timeout, attempt).await {
            Ok(outcome) => outcome,
            Err(_) => retry("smtp timeout"),
        }
    }
}

impl Pool {
    async fn deliver(&self, envelope: &Envelope, bytes: &[u8]) -> DeliveryOutcome {
        if let Some(mut connection) = self.take_idle() {
            match connection.send(envelope, bytes).await {
                Ok(response) => return self.answered(connection, &response),
                // Closed by the server while it idled (no SMTP reply came): the message
                // did not go, so it goes once more on a new connection.
                Err(error) if error.status().is_none() && !error.is_client() => {}
                Err(error) => return classify(&error),
            }
        }
        let mut connection = match self.connect().await {
            Ok(connection) => connection,
            Err(outcome) => return outcome,
        };
        match connection.send(envelope, bytes).await {
            Ok(response) => self.answered(connection, &response),
            Err(error) => classify(&error),
        }
    }

    /// The outcome of a reply to DATA; the connection goes back to the pool.
    fn answered(&self, connection: AsyncSmtpConnection, response: &Response) -> DeliveryOutcome {
        if !connection.has_broken() {
            self.idle.lock().unwrap_or_else(PoisonError::into_inner).push((connection, Instant::now()));
        }
        if response.is_positive() {
            DeliveryOutcome::Delivered
        } else {
            // lettre reports negative replies as errors; a non-positive Ok is not expected.
            retry(&format!("smtp {}", response.code()))
        }
    }

    /// A kept connection young enough to reuse; older ones are dropped (closing them).
    fn take_idle(&self) -> Option<AsyncSmtpConnection> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some((connection, since)) = idle.pop() {
            if since.elapsed() < IDLE_REUSE_MAX && !connection.has_broken() {
                return Some(connection);
            }
        }
        None
    }

    /// A new session: TCP (no Nagle), TLS for SMTPS, EHLO, STARTTLS, AUTH.
    async fn connect(&self) -> Result<AsyncSmtpConnection, DeliveryOutcome> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port)).await.map_err(|_| retry("smtp connection"))?;
        tcp.set_nodelay(true).map_err(|_| retry("smtp connection"))?;
        let stream: Box<dyn AsyncTokioStream> = match &self.implicit_tls {
            None => Box::new(tcp),
            Some((connector, name)) => {
                let tls = connector.connect(name.clone(), tcp).await.map_err(|_| retry("smtp tls"))?;
                Box::new(ImplicitTls(tls))
            }
        };
        let mut connection =
            AsyncSmtpConnection::connect_with_transport(stream, &self.hello).await.map_err(|error| classify(&error))?;
        if let Some(parameters) = &self.starttls {
            if !connection.can_starttls() {
                // Required, not opportunistic: the buyer's address never goes in the clear.
                connection.abort().await;
                return Err(retry("smtp starttls not offered"));
            }
            connection.starttls(parameters.clone(), &self.hello).await.map_err(|error| classify(&error))?;
        }
        if let Some(credentials) = &self.credentials {
            connection
                .auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                .await
                .map_err(|error| classify(&error))?;
        }
        Ok(connection)
    }
}

fn retry(detail: &str) -> DeliveryOutcome {
    DeliveryOutcome::Retry { after: None, detail: detail.to_string() }
}

/// An SMTPS stream, for lettre's connection (which takes any stream that names its peer).
#[derive(Debug)]
struct ImplicitTls(tokio_rustls::client::TlsStream<TcpStream>);

impl AsyncTokioStream for ImplicitTls {
    fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}

impl AsyncRead for ImplicitTls {
    fn poll_read(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(context, buffer)
    }
}

impl AsyncWrite for ImplicitTls {
    fn poll_write(mut self: Pin<&mut Self>, context: &mut Context<'_>, bytes: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(context, bytes)
    }

    fn poll_flush(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(context)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(context)
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
