//! A bounded pool of HTTP/1.1 keep-alive connections to one target.
//!
//! Why hand-rolled rather than hyper-util's `Client`: that client opens a new connection
//! whenever all pooled ones are busy, so it has no bound; a load driver must hold the
//! connection count fixed (`--connections`), and make arrivals wait for a free
//! connection instead. The wait is fair (a FIFO semaphore), and the driver measures it
//! as part of the latency, because the clock starts at the arrival's scheduled time.
//!
//! Connections are opened lazily (or up front by [`Pool::connect_all`]), reused LIFO, and
//! dropped after any error or timeout: a half-read HTTP/1.1 connection cannot be reused.
//! There are no retries: a failed POST might have taken effect, and the driver counts it.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HeaderName, HeaderValue, CONNECTION, CONTENT_TYPE, HOST, RETRY_AFTER};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

/// `Idempotency-Key`, sent on every POST with `--idempotency`.
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// Where the pool connects to: a plain `http://host[:port]` base URL, resolved once.
#[derive(Clone, Debug)]
pub struct Target {
    pub address: SocketAddr,
    /// The `Host` header of every request (`host[:port]` as given).
    pub host: HeaderValue,
    /// The base URL as given, for reports.
    pub url: String,
}

impl Target {
    /// Parses `http://host[:port]` (a trailing `/` is allowed; no path, no https) and
    /// resolves the host once, so name resolution never runs during a measurement.
    pub async fn resolve(url: &str) -> anyhow::Result<Target> {
        let uri: Uri = url.parse().with_context(|| format!("target {url:?} is not a URL"))?;
        if uri.scheme_str() != Some("http") {
            bail!("target {url:?}: only http:// is supported");
        }
        if uri.path() != "/" && !uri.path().is_empty() {
            bail!("target {url:?}: give the base URL only (no path)");
        }
        let authority = uri.authority().with_context(|| format!("target {url:?} has no host"))?;
        let port = authority.port_u16().unwrap_or(80);
        let address = tokio::net::lookup_host((authority.host(), port))
            .await
            .with_context(|| format!("cannot resolve {}", authority.host()))?
            .next()
            .with_context(|| format!("{} resolves to no address", authority.host()))?;
        let host = HeaderValue::from_str(authority.as_str()).context("target host is not a valid header")?;
        Ok(Target { address, host, url: url.trim_end_matches('/').to_string() })
    }
}

/// What came back: enough for the driver to classify the outcome and read the reply.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    /// `Retry-After` in whole seconds, when the server sent one (503 and 429 should).
    pub retry_after_seconds: Option<u64>,
    pub body: Bytes,
}

/// Why no reply came back.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connect: {0}")]
    Connect(std::io::Error),
    #[error("connect: timed out")]
    ConnectTimeout,
    #[error("handshake: {0}")]
    Handshake(hyper::Error),
    /// Sending the request or reading the response head or body failed (includes the
    /// server closing the connection).
    #[error("http: {0}")]
    Http(hyper::Error),
}

/// The pool's limits.
#[derive(Clone, Copy, Debug)]
pub struct PoolConfig {
    /// Open connections at most; requests beyond wait for one (FIFO).
    pub connections_max: usize,
    pub connect_timeout: Duration,
}

/// A fixed-size pool of HTTP/1.1 connections to one [`Target`]; see the module comment.
pub struct Pool {
    target: Target,
    config: PoolConfig,
    /// One permit per connection slot; holding one is the right to use (or open) a
    /// connection, so at most `connections_max` exist.
    permits: Semaphore,
    /// Idle connections, most recently used last. A std mutex: never held across `.await`.
    idle: Mutex<Vec<SendRequest<Full<Bytes>>>>,
}

impl Pool {
    pub fn new(target: Target, config: PoolConfig) -> Pool {
        assert!(config.connections_max > 0, "a pool needs at least one connection");
        Pool {
            target,
            config,
            permits: Semaphore::new(config.connections_max),
            idle: Mutex::new(Vec::with_capacity(config.connections_max)),
        }
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Opens every connection now, so the first measured requests do not pay for TCP
    /// handshakes. Fails if the target cannot be reached at all.
    pub async fn connect_all(&self) -> Result<(), ClientError> {
        let mut opened = Vec::with_capacity(self.config.connections_max);
        for _ in 0..self.config.connections_max {
            opened.push(self.connect().await?);
        }
        self.idle.lock().expect("pool lock poisoned").extend(opened);
        Ok(())
    }

    /// A request for `uri` (origin form: path and query) with the pool's `Host` header;
    /// a body makes it `Content-Type: application/json`.
    pub fn request(&self, method: Method, uri: Uri, body: Option<Bytes>) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(body.clone().unwrap_or_default()));
        *request.method_mut() = method;
        *request.uri_mut() = uri;
        let headers = request.headers_mut();
        headers.insert(HOST, self.target.host.clone());
        if body.is_some() {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        request
    }

    /// Sends `request` on a pooled connection, waiting for one if all are busy, and
    /// reads the whole response body. The caller bounds the time (dropping this future
    /// drops the connection it used, and frees its slot).
    pub async fn send(&self, request: Request<Full<Bytes>>) -> Result<Reply, ClientError> {
        let _permit = self.permits.acquire().await.expect("the pool never closes its semaphore");
        let mut sender = match self.take_idle() {
            Some(sender) => sender,
            None => self.connect().await?,
        };
        if sender.ready().await.is_err() {
            // The server closed this kept-alive connection while it was idle.
            sender = self.connect().await?;
        }
        let response = sender.send_request(request).await.map_err(ClientError::Http)?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.map_err(ClientError::Http)?.to_bytes();
        let closing =
            parts.headers.get(CONNECTION).is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"close"));
        if !closing {
            self.idle.lock().expect("pool lock poisoned").push(sender);
        }
        let retry_after_seconds = parts
            .headers
            .get(RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|text| text.trim().parse().ok());
        Ok(Reply { status: parts.status, retry_after_seconds, body })
    }

    fn take_idle(&self) -> Option<SendRequest<Full<Bytes>>> {
        let mut idle = self.idle.lock().expect("pool lock poisoned");
        while let Some(sender) = idle.pop() {
            if !sender.is_closed() {
                return Some(sender);
            }
        }
        None
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, ClientError> {
        let stream = tokio::time::timeout(self.config.connect_timeout, TcpStream::connect(self.target.address))
            .await
            .map_err(|_| ClientError::ConnectTimeout)?
            .map_err(ClientError::Connect)?;
        // Requests are small and answered one at a time; Nagle would only add delay.
        stream.set_nodelay(true).map_err(ClientError::Connect)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await.map_err(ClientError::Handshake)?;
        tokio::spawn(async move {
            // Errors surface to the request that was using the connection.
            let _ = connection.await;
        });
        Ok(sender)
    }
}

/// Attempts [`send_retrying`] makes at most.
pub const PATIENT_ATTEMPTS_MAX: u32 = 10;
/// The longest it waits between attempts, whatever `Retry-After` says.
pub const PATIENT_WAIT_MAX: Duration = Duration::from_secs(5);

/// Sends the request `make` builds until the server gives a definite answer, for
/// reading state back after a run (not for measuring): a 503 or 429, a 409 with
/// `Retry-After` (an idempotent request still running), a timeout or a broken
/// connection are retried after `Retry-After` (or a second), up to
/// [`PATIENT_ATTEMPTS_MAX`] attempts. `make` must build the same request each time;
/// a POST should carry an `Idempotency-Key`, so that a retry cannot act twice.
pub async fn send_retrying(
    pool: &Pool,
    make: impl Fn() -> Request<Full<Bytes>>,
    timeout: Duration,
) -> anyhow::Result<Reply> {
    let mut attempt = 1;
    loop {
        let wait = match tokio::time::timeout(timeout, pool.send(make())).await {
            Ok(Ok(reply)) => {
                let status = reply.status.as_u16();
                let retryable = matches!(status, 503 | 429) || (status == 409 && reply.retry_after_seconds.is_some());
                if !retryable || attempt >= PATIENT_ATTEMPTS_MAX {
                    return Ok(reply);
                }
                Duration::from_secs(reply.retry_after_seconds.unwrap_or(1))
            }
            Ok(Err(error)) if attempt >= PATIENT_ATTEMPTS_MAX => return Err(error.into()),
            Err(_) if attempt >= PATIENT_ATTEMPTS_MAX => bail!("no reply in {timeout:?}, {attempt} times"),
            Ok(Err(_)) | Err(_) => Duration::from_secs(1),
        };
        tokio::time::sleep(wait.min(PATIENT_WAIT_MAX)).await;
        attempt += 1;
    }
}

/// `text` made safe for a URL query value: unreserved characters as they are, every
/// other byte percent-encoded.
pub fn query_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            escaped.push(byte as char);
        } else {
            escaped.push_str(&format!("%{byte:02X}"));
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_escaped() {
        assert_eq!(query_escape("c-run1-b17"), "c-run1-b17");
        assert_eq!(query_escape("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }
}
