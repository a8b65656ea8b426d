//! One webhook delivery attempt: a signed POST of a payload to an endpoint, answered within a
//! bounded time, classified as a [`DeliveryOutcome`].
//!
//! Endpoints are checked when configured: an `http://` or `https://` URL (anything else is
//! a clear error at startup, not a failed delivery hours later), a `whsec_` secret, and the
//! event types it subscribes to. Each attempt is signed afresh (`webhook-timestamp` is the
//! attempt's time: receivers refuse timestamps older than a few minutes) under the entry's
//! stable `webhook-id`, so a receiver drops a retry it already has.
//!
//! Each attempt opens its own connection (`Connection: close`): webhook volume is one
//! request per change per endpoint, and the relay bounds concurrency per endpoint, so a
//! pool would save little and add state. A connection is given `connect_timeout`; the
//! whole attempt (connect, TLS, request, the status and up to [`RESPONSE_BYTES_MAX`] of
//! body) is given `timeout`: a receiver that hangs costs one timeout, then a retry.
//!
//! Redirects are not followed (a 3xx is `Rejected`: configure the final URL). `Retry-After`
//! is read in seconds; its HTTP-date form is not honoured (the backoff applies instead).

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1;
use hyper::header::{HeaderMap, HeaderValue, CONNECTION, CONTENT_TYPE, HOST, RETRY_AFTER, USER_AGENT};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::outcome::DeliveryOutcome;
use crate::tls;
use crate::webhook_payload::{UnknownEventKind, WebhookEvent, WebhookEventKind};
use crate::webhook_sign::{WebhookSecret, WebhookSecretError, WEBHOOK_ID, WEBHOOK_SIGNATURE, WEBHOOK_TIMESTAMP};

/// The receiver's answer body is read (and dropped) up to this size: enough for any error
/// page, bounded so a receiver cannot make hakken buffer megabytes.
pub const RESPONSE_BYTES_MAX: usize = 64 << 10;

/// Longest `webhook-id`: ids come from outbox entry ids (`msg_` + a number).
pub const MESSAGE_ID_CHARS_MAX: usize = 64;

/// Longest endpoint URL accepted in configuration.
pub const URL_CHARS_MAX: usize = 2048;

/// A `Retry-After` longer than this is read as this (the retry policy bounds it again).
const RETRY_AFTER_SECONDS_MAX: u64 = 24 * 60 * 60;

/// An endpoint as configured (`[[notifications.webhooks]]`). `Debug` hides the secret and
/// the URL's query (which may hold a receiver's token).
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookEndpointConfig {
    pub url: String,
    /// `whsec_<base64>`.
    pub secret: String,
    /// Event type names (`order.confirmed`, ...); at least one.
    pub events: Vec<String>,
}

impl fmt::Debug for WebhookEndpointConfig {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("WebhookEndpointConfig")
            .field("url", &url_without_query(&self.url))
            .field("secret", &"redacted")
            .field("events", &self.events)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookConfigError {
    #[error("webhook url {url:?}: {reason}")]
    Url { url: String, reason: &'static str },
    #[error("webhook {url:?}: {source}")]
    Secret { url: String, source: WebhookSecretError },
    #[error("webhook {url:?}: {source}")]
    Event { url: String, source: UnknownEventKind },
    #[error("webhook {url:?}: list the event types it receives in `events`")]
    NoEvents { url: String },
    #[error("webhook {url:?}: TLS setup failed: {detail}")]
    Tls { url: String, detail: String },
    #[error("webhook timeouts: {0}")]
    Timeout(&'static str),
}

/// A checked endpoint, ready to deliver to. Cheap to share behind an `Arc`.
pub struct WebhookEndpoint {
    /// Scheme, host, port and path (no query), for logs and the admin API.
    display_url: String,
    host: String,
    port: u16,
    host_header: HeaderValue,
    path_and_query: Uri,
    tls: Option<(tokio_rustls::TlsConnector, rustls::pki_types::ServerName<'static>)>,
    secret: WebhookSecret,
    events: BTreeSet<WebhookEventKind>,
}

impl fmt::Debug for WebhookEndpoint {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("WebhookEndpoint")
            .field("url", &self.display_url)
            .field("secret", &"redacted")
            .field("events", &self.events)
            .finish()
    }
}

impl WebhookEndpoint {
    /// Checks the configuration; https endpoints trust Mozilla's roots.
    pub fn new(config: &WebhookEndpointConfig) -> Result<WebhookEndpoint, WebhookConfigError> {
        WebhookEndpoint::trusting(config, tls::mozilla_roots())
    }

    /// As [`new`](Self::new) with other trusted roots (a private CA; tests).
    pub fn trusting(
        config: &WebhookEndpointConfig,
        roots: rustls::RootCertStore,
    ) -> Result<WebhookEndpoint, WebhookConfigError> {
        let display_url = url_without_query(&config.url);
        let secret = WebhookSecret::parse(&config.secret)
            .map_err(|source| WebhookConfigError::Secret { url: display_url.clone(), source })?;
        if config.events.is_empty() {
            return Err(WebhookConfigError::NoEvents { url: display_url });
        }
        let events = config
            .events
            .iter()
            .map(|name| name.parse::<WebhookEventKind>())
            .collect::<Result<BTreeSet<_>, _>>()
            .map_err(|source| WebhookConfigError::Event { url: display_url.clone(), source })?;
        let parsed = parse_url(&config.url)?;
        let tls = match parsed.https {
            false => None,
            true => {
                let refuse = |detail: String| WebhookConfigError::Tls { url: display_url.clone(), detail };
                let server_name = rustls::pki_types::ServerName::try_from(parsed.host.clone())
                    .map_err(|error| refuse(format!("{:?} is not a TLS server name: {error}", parsed.host)))?;
                Some((tls::connector(roots, &[b"http/1.1"]).map_err(|error| refuse(error.to_string()))?, server_name))
            }
        };
        Ok(WebhookEndpoint {
            display_url,
            host: parsed.host,
            port: parsed.port,
            host_header: parsed.host_header,
            path_and_query: parsed.path_and_query,
            tls,
            secret,
            events,
        })
    }

    /// Whether the endpoint subscribed to this event type.
    pub fn wants(&self, kind: WebhookEventKind) -> bool {
        self.events.contains(&kind)
    }

    /// The URL without its query, for logs.
    pub fn display_url(&self) -> &str {
        &self.display_url
    }
}

struct ParsedUrl {
    https: bool,
    host: String,
    port: u16,
    host_header: HeaderValue,
    path_and_query: Uri,
}

fn parse_url(url: &str) -> Result<ParsedUrl, WebhookConfigError> {
    let refuse = |reason| WebhookConfigError::Url { url: url_without_query(url), reason };
    if url.len() > URL_CHARS_MAX {
        return Err(refuse("longer than 2048 characters"));
    }
    // The scheme first, so `file:///…` or `ftp://…` get the rule, not a parse error.
    let scheme = url.split_once("://").map(|(scheme, _)| scheme.to_ascii_lowercase());
    let https = match scheme.as_deref() {
        Some("http") => false,
        Some("https") => true,
        _ => return Err(refuse("only http:// and https:// URLs are delivered to")),
    };
    let uri: Uri = url.parse().map_err(|_| refuse("not a URL"))?;
    let authority = uri.authority().ok_or_else(|| refuse("no host"))?;
    if authority.as_str().contains('@') {
        return Err(refuse("credentials in the URL are not sent; put a token in the path or query"));
    }
    let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_string();
    if host.is_empty() {
        return Err(refuse("no host"));
    }
    let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
    let host_header = HeaderValue::from_str(authority.as_str()).map_err(|_| refuse("the host is not valid"))?;
    let path_and_query: Uri =
        uri.path_and_query().map_or("/", |path| path.as_str()).parse().map_err(|_| refuse("the path is not valid"))?;
    Ok(ParsedUrl { https, host, port, host_header, path_and_query })
}

fn url_without_query(url: &str) -> String {
    url.split(['?', '#']).next().unwrap_or(url).to_string()
}

/// What to send for one outbox entry: its stable id and the payload's bytes. The same
/// message is sent on every attempt (only the signature's timestamp changes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookMessage {
    id: String,
    kind: WebhookEventKind,
    body: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("webhook-id {id:?}: give 1 to {MESSAGE_ID_CHARS_MAX} characters of A-Z, a-z, 0-9, `_` and `-`")]
pub struct WebhookMessageError {
    pub id: String,
}

impl WebhookMessage {
    /// `id` is the `webhook-id`, stable per outbox entry (e.g. `msg_` + the entry's number);
    /// `occurred_at_ms` is the change's time (the payload's `timestamp`).
    pub fn new(id: &str, event: &WebhookEvent, occurred_at_ms: u64) -> Result<WebhookMessage, WebhookMessageError> {
        let valid = !id.is_empty()
            && id.len() <= MESSAGE_ID_CHARS_MAX
            && id.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-');
        if !valid {
            return Err(WebhookMessageError { id: id.to_string() });
        }
        Ok(WebhookMessage { id: id.to_string(), kind: event.kind(), body: Bytes::from(event.payload(occurred_at_ms)) })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn kind(&self) -> WebhookEventKind {
        self.kind
    }

    pub fn body(&self) -> &[u8] {
        &self.body
    }
}

/// Time bounds of every attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebhookSenderConfig {
    /// To open the TCP connection.
    pub connect_timeout: Duration,
    /// For the whole attempt, connecting included.
    pub timeout: Duration,
}

impl Default for WebhookSenderConfig {
    /// 5 s to connect, 15 s in all (Standard Webhooks asks receivers to answer within
    /// seconds and to do their work after answering).
    fn default() -> WebhookSenderConfig {
        WebhookSenderConfig { connect_timeout: Duration::from_secs(5), timeout: Duration::from_secs(15) }
    }
}

/// Sends webhook attempts; holds only the time bounds (endpoints carry their TLS setup).
#[derive(Debug, Clone)]
pub struct WebhookSender {
    config: WebhookSenderConfig,
}

impl WebhookSender {
    pub fn new(config: WebhookSenderConfig) -> Result<WebhookSender, WebhookConfigError> {
        if config.connect_timeout.is_zero() || config.timeout.is_zero() {
            return Err(WebhookConfigError::Timeout("connect_timeout and timeout must be more than 0"));
        }
        if config.connect_timeout > config.timeout {
            return Err(WebhookConfigError::Timeout("connect_timeout must not exceed timeout"));
        }
        Ok(WebhookSender { config })
    }

    /// One attempt: `message` signed at `now_unix_s` and POSTed to `endpoint`, within the
    /// configured timeouts. Never panics and never retries by itself.
    pub async fn deliver(
        &self,
        endpoint: &WebhookEndpoint,
        message: &WebhookMessage,
        now_unix_s: i64,
    ) -> DeliveryOutcome {
        let request = match signed_request(endpoint, message, now_unix_s) {
            Ok(request) => request,
            Err(detail) => return DeliveryOutcome::Rejected { detail },
        };
        match tokio::time::timeout(self.config.timeout, self.exchange(endpoint, request)).await {
            Ok(Ok((status, headers))) => classify(status, &headers),
            Ok(Err(detail)) => DeliveryOutcome::Retry { after: None, detail },
            Err(_) => DeliveryOutcome::Retry {
                after: None,
                detail: format!("timeout: no answer within {} ms", self.config.timeout.as_millis()),
            },
        }
    }

    /// Connects, sends, reads the status and (bounded) body. Errors are retryable details.
    async fn exchange(
        &self,
        endpoint: &WebhookEndpoint,
        request: Request<Full<Bytes>>,
    ) -> Result<(StatusCode, HeaderMap), String> {
        let connect = TcpStream::connect((endpoint.host.as_str(), endpoint.port));
        let stream = tokio::time::timeout(self.config.connect_timeout, connect)
            .await
            .map_err(|_| format!("connect: no connection within {} ms", self.config.connect_timeout.as_millis()))?
            .map_err(|error| format!("connect: {}", error.kind()))?;
        // One small request: Nagle would only delay it.
        stream.set_nodelay(true).map_err(|error| format!("connect: {}", error.kind()))?;
        match &endpoint.tls {
            None => send(stream, request).await,
            Some((connector, server_name)) => {
                let stream =
                    connector.connect(server_name.clone(), stream).await.map_err(|error| format!("tls: {error}"))?;
                send(stream, request).await
            }
        }
    }
}

fn signed_request(
    endpoint: &WebhookEndpoint,
    message: &WebhookMessage,
    now_unix_s: i64,
) -> Result<Request<Full<Bytes>>, String> {
    let signed = endpoint.secret.sign(&message.id, now_unix_s, &message.body);
    let value =
        |text: String| HeaderValue::try_from(text).map_err(|_| "a signed header is not a header value".to_string());
    let mut request = Request::new(Full::new(message.body.clone()));
    *request.method_mut() = Method::POST;
    *request.uri_mut() = endpoint.path_and_query.clone();
    let headers = request.headers_mut();
    headers.insert(HOST, endpoint.host_header.clone());
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(USER_AGENT, HeaderValue::from_static(concat!("hakken/", env!("CARGO_PKG_VERSION"))));
    headers.insert(CONNECTION, HeaderValue::from_static("close"));
    headers.insert(WEBHOOK_ID, value(signed.id)?);
    headers.insert(WEBHOOK_TIMESTAMP, value(signed.timestamp)?);
    headers.insert(WEBHOOK_SIGNATURE, value(signed.signature)?);
    Ok(request)
}

async fn send<T>(stream: T, request: Request<Full<Bytes>>) -> Result<(StatusCode, HeaderMap), String>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (mut sender, connection) =
        http1::handshake(TokioIo::new(stream)).await.map_err(|error| format!("connection: {error}"))?;
    // The connection's task ends with this exchange, whichever way it ends: when the
    // attempt's timeout drops this future, the guard aborts the task and the socket closes
    // (hyper closes a connection whose request was dropped too; the guard does not rely on
    // it), so a receiver that never answers holds no connection beyond its timeout.
    let _driver = AbortOnDrop(tokio::spawn(connection));
    let response = sender.send_request(request).await.map_err(|error| format!("connection: {error}"))?;
    let (parts, body) = response.into_parts();
    // The status is the answer; the body is read (bounded) so the receiver's answer is
    // complete before the connection closes, and its errors do not change the outcome.
    let _ = Limited::new(body, RESPONSE_BYTES_MAX).collect().await;
    Ok((parts.status, parts.headers))
}

/// Aborts a spawned task when dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The outcome of an answer: see [`DeliveryOutcome`].
pub fn classify(status: StatusCode, headers: &HeaderMap) -> DeliveryOutcome {
    let detail = format!("http {}", status.as_u16());
    match status.as_u16() {
        200..=299 => DeliveryOutcome::Delivered,
        410 => DeliveryOutcome::Gone,
        408 | 429 | 500..=599 => DeliveryOutcome::Retry { after: retry_after(headers), detail },
        300..=399 => DeliveryOutcome::Rejected { detail: format!("{detail}: redirects are not followed") },
        _ => DeliveryOutcome::Rejected { detail },
    }
}

/// `Retry-After` in seconds (its HTTP-date form is ignored).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let seconds: u64 = headers.get(RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(seconds.min(RETRY_AFTER_SECONDS_MAX)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn config(url: &str) -> WebhookEndpointConfig {
        WebhookEndpointConfig { url: url.into(), secret: SECRET.into(), events: vec!["order.confirmed".into()] }
    }

    fn refusal(url: &str) -> String {
        match WebhookEndpoint::new(&config(url)) {
            Ok(_) => panic!("{url} was accepted"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn only_http_and_https_urls_are_accepted() {
        let endpoint = WebhookEndpoint::new(&config("https://hooks.example.com/hakken?token=abc")).expect("https");
        assert_eq!(endpoint.display_url(), "https://hooks.example.com/hakken");
        assert_eq!((endpoint.host.as_str(), endpoint.port), ("hooks.example.com", 443));
        assert_eq!(endpoint.path_and_query, "/hakken?token=abc");
        let plain = WebhookEndpoint::new(&config("http://127.0.0.1:9000")).expect("http");
        assert_eq!((plain.port, plain.path_and_query.to_string().as_str()), (9000, "/"));
        assert!(plain.tls.is_none() && endpoint.tls.is_some());
        assert!(WebhookEndpoint::new(&config("http://[::1]:9000/x")).is_ok());

        assert!(refusal("ftp://example.com/").contains("only http:// and https://"), "{}", refusal("ftp://x/"));
        assert!(refusal("file:///etc/passwd").contains("only http"));
        assert!(refusal("example.com/hook").contains("only http"));
        assert!(refusal("https://user:pw@example.com/").contains("credentials"));
        assert!(refusal("http://exa mple.com/").contains("not a URL"));
        assert!(refusal("not a url").contains("only http"));
    }

    #[test]
    fn secrets_and_events_are_checked_at_config_time() {
        let bad_secret = WebhookEndpointConfig { secret: "sekrit".into(), ..config("https://example.com/") };
        assert!(matches!(WebhookEndpoint::new(&bad_secret), Err(WebhookConfigError::Secret { .. })));
        let no_events = WebhookEndpointConfig { events: vec![], ..config("https://example.com/") };
        assert!(matches!(WebhookEndpoint::new(&no_events), Err(WebhookConfigError::NoEvents { .. })));
        let typo = WebhookEndpointConfig { events: vec!["order.confirm".into()], ..config("https://example.com/") };
        assert!(matches!(WebhookEndpoint::new(&typo), Err(WebhookConfigError::Event { .. })));
        let endpoint = WebhookEndpoint::new(&config("https://example.com/")).expect("valid");
        assert!(endpoint.wants(WebhookEventKind::OrderConfirmed));
        assert!(!endpoint.wants(WebhookEventKind::TicketCheckedIn));
        let shown = format!("{:?} {:?}", config("https://example.com/?token=abc"), endpoint);
        assert!(!shown.contains("MfKQ") && !shown.contains("abc"), "{shown}");
    }

    #[test]
    fn timeouts_are_checked() {
        let second = Duration::from_secs(1);
        assert!(WebhookSender::new(WebhookSenderConfig::default()).is_ok());
        assert!(WebhookSender::new(WebhookSenderConfig { connect_timeout: Duration::ZERO, timeout: second }).is_err());
        assert!(WebhookSender::new(WebhookSenderConfig { connect_timeout: second * 2, timeout: second }).is_err());
    }

    #[test]
    fn message_ids_are_checked() {
        let event = WebhookEvent::OrderRefunded { event: "e".into(), order: "o".into() };
        assert!(WebhookMessage::new("msg_00000042", &event, 0).is_ok());
        for bad in ["", "msg 1", "msg.1", &"m".repeat(MESSAGE_ID_CHARS_MAX + 1)] {
            assert!(WebhookMessage::new(bad, &event, 0).is_err(), "{bad:?}");
        }
    }

    fn check(status: u16, retry_after: Option<&str>, expected: DeliveryOutcome) {
        let mut headers = HeaderMap::new();
        if let Some(value) = retry_after {
            headers.insert(RETRY_AFTER, HeaderValue::from_str(value).expect("header"));
        }
        assert_eq!(classify(StatusCode::from_u16(status).expect("status"), &headers), expected, "{status}");
    }

    #[test]
    fn answers_are_classified() {
        let retry = |after: Option<u64>, status: u16| DeliveryOutcome::Retry {
            after: after.map(Duration::from_secs),
            detail: format!("http {status}"),
        };
        check(200, None, DeliveryOutcome::Delivered);
        check(204, None, DeliveryOutcome::Delivered);
        check(410, Some("5"), DeliveryOutcome::Gone);
        check(500, None, retry(None, 500));
        check(503, Some("7"), retry(Some(7), 503));
        check(429, Some(" 30 "), retry(Some(30), 429));
        check(429, Some("Wed, 21 Oct 2015 07:28:00 GMT"), retry(None, 429));
        check(503, Some("99999999"), retry(Some(RETRY_AFTER_SECONDS_MAX), 503));
        check(408, None, retry(None, 408));
        check(400, None, DeliveryOutcome::Rejected { detail: "http 400".into() });
        check(404, Some("5"), DeliveryOutcome::Rejected { detail: "http 404".into() });
        check(301, None, DeliveryOutcome::Rejected { detail: "http 301: redirects are not followed".into() });
    }
}
