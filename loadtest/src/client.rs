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
//!
//! A `307`/`308` is followed, with the same method, headers and body, at most
//! [`REDIRECTS_MAX`] times: a hakken cluster node answers so for an event owned by another
//! node. Each other origin gets a pool of its own, as bounded as this one, made on its
//! first redirect (at most [`REDIRECT_ORIGINS_MAX`] of them). The request's time limit
//! covers every hop, and the latency the driver measures includes them.
//!
//! Every request is sent with the time the caller will wait for it ([`Pool::send_within`]),
//! and says so in [`REQUEST_TIMEOUT_MS`], so an overloaded server can refuse at once the
//! work it could not finish in time instead of doing it for a client that has given up.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HeaderName, HeaderValue, CONNECTION, CONTENT_TYPE, HOST, LOCATION, RETRY_AFTER};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::error::Elapsed;
use tokio::time::Instant;

/// `Idempotency-Key`, sent on every POST with `--idempotency`.
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// `X-Request-Timeout-Ms: <ms>`, sent on every request: how long the client waits for
/// the reply, as given to [`Pool::send_within`]. The server takes the smaller of this and its
/// own request timeout as the request's deadline.
pub const REQUEST_TIMEOUT_MS: HeaderName = HeaderName::from_static("x-request-timeout-ms");

/// Redirects followed for one request at most (a cluster node to the owner is one).
pub const REDIRECTS_MAX: usize = 3;
/// Other origins one pool follows redirects to at most (a cluster's nodes).
pub const REDIRECT_ORIGINS_MAX: usize = 16;

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
    /// When the request went out on its connection (after waiting for one): refusals
    /// are timed from here, to see how cheap the server's "no" is.
    pub sent_at: Instant,
    /// `Retry-After` in whole seconds, when the server sent one (503 and 429 should).
    pub retry_after_seconds: Option<u64>,
    /// `Location` of a 307/308 that was not followed (too many hops).
    pub location: Option<HeaderValue>,
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
    /// A redirect to somewhere this pool will not go (not `http://`, unresolvable, or
    /// one origin too many).
    #[error("redirect: {0}")]
    Redirect(String),
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
    /// Pools of the origins redirects led to, by `host[:port]`.
    redirected: Mutex<Vec<Arc<Pool>>>,
    redirects_followed: AtomicU64,
}

impl Pool {
    pub fn new(target: Target, config: PoolConfig) -> Pool {
        assert!(config.connections_max > 0, "a pool needs at least one connection");
        Pool {
            target,
            config,
            permits: Semaphore::new(config.connections_max),
            idle: Mutex::new(Vec::with_capacity(config.connections_max)),
            redirected: Mutex::new(Vec::new()),
            redirects_followed: AtomicU64::new(0),
        }
    }

    /// Redirects this pool followed so far.
    pub fn redirects_followed(&self) -> u64 {
        self.redirects_followed.load(Ordering::Relaxed)
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
    /// reads the whole response body, all within `timeout` (`Err` past it, as
    /// [`tokio::time::timeout`] answers; the connection is dropped and its slot freed).
    /// The request says so in [`REQUEST_TIMEOUT_MS`]: the only way the tool sends, so
    /// that every request tells the server when its client gives up.
    pub async fn send_within(
        &self,
        mut request: Request<Full<Bytes>>,
        timeout: Duration,
    ) -> Result<Result<Reply, ClientError>, Elapsed> {
        request.headers_mut().insert(REQUEST_TIMEOUT_MS, timeout_header(timeout));
        tokio::time::timeout(timeout, self.send(request)).await
    }

    /// Sends `request` here, then wherever 307/308 answers send it.
    async fn send(&self, mut request: Request<Full<Bytes>>) -> Result<Reply, ClientError> {
        let mut via: Option<Arc<Pool>> = None;
        for _ in 0..REDIRECTS_MAX {
            let pool = via.as_deref().unwrap_or(self);
            let again = copy_of(&request);
            let reply = pool.send_here(request).await?;
            let Some(location) = &reply.location else { return Ok(reply) };
            let uri: Uri = location
                .to_str()
                .ok()
                .and_then(|text| text.parse().ok())
                .ok_or_else(|| ClientError::Redirect(format!("unreadable Location {location:?}")))?;
            if let Some(authority) = uri.authority() {
                if uri.scheme_str() != Some("http") {
                    return Err(ClientError::Redirect(format!("to {uri}: only http:// is followed")));
                }
                via = if self.target.host == authority.as_str() {
                    None
                } else {
                    Some(self.origin(authority.as_str()).await?)
                };
            }
            let pool = via.as_deref().unwrap_or(self);
            request = again;
            *request.uri_mut() = uri.path_and_query().map_or("/", |path| path.as_str()).parse().expect("a path");
            request.headers_mut().insert(HOST, pool.target.host.clone());
            self.redirects_followed.fetch_add(1, Ordering::Relaxed);
        }
        via.as_deref().unwrap_or(self).send_here(request).await
    }

    /// The pool of another origin, `host[:port]`.
    async fn origin(&self, authority: &str) -> Result<Arc<Pool>, ClientError> {
        let known = |pools: &[Arc<Pool>]| pools.iter().find(|pool| pool.target.host == authority).cloned();
        if let Some(pool) = known(&self.redirected.lock().expect("pool lock poisoned")) {
            return Ok(pool);
        }
        let target = Target::resolve(&format!("http://{authority}"))
            .await
            .map_err(|error| ClientError::Redirect(format!("{error:#}")))?;
        let mut pools = self.redirected.lock().expect("pool lock poisoned");
        if let Some(pool) = known(&pools) {
            return Ok(pool);
        }
        if pools.len() >= REDIRECT_ORIGINS_MAX {
            return Err(ClientError::Redirect(format!("to {authority}: {REDIRECT_ORIGINS_MAX} origins already")));
        }
        let pool = Arc::new(Pool::new(target, self.config));
        pools.push(pool.clone());
        Ok(pool)
    }

    /// Sends `request` on one of this pool's connections; a redirect is handed back.
    async fn send_here(&self, request: Request<Full<Bytes>>) -> Result<Reply, ClientError> {
        let _permit = self.permits.acquire().await.expect("the pool never closes its semaphore");
        let mut sender = match self.take_idle() {
            Some(sender) => sender,
            None => self.connect().await?,
        };
        if sender.ready().await.is_err() {
            // The server closed this kept-alive connection while it was idle.
            sender = self.connect().await?;
        }
        let sent_at = Instant::now();
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
        let redirect = matches!(parts.status, StatusCode::TEMPORARY_REDIRECT | StatusCode::PERMANENT_REDIRECT);
        let location = if redirect { parts.headers.get(LOCATION).cloned() } else { None };
        Ok(Reply { status: parts.status, sent_at, retry_after_seconds, location, body })
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

/// A copy of `request` to send again: hyper's requests are not `Clone`, their parts are.
fn copy_of(request: &Request<Full<Bytes>>) -> Request<Full<Bytes>> {
    let mut copy = Request::new(request.body().clone());
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.headers_mut() = request.headers().clone();
    copy
}

/// `timeout` in whole milliseconds, as [`REQUEST_TIMEOUT_MS`] carries it.
fn timeout_header(timeout: Duration) -> HeaderValue {
    HeaderValue::from(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX))
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
        let wait = match pool.send_within(make(), timeout).await {
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

    /// A server on 127.0.0.1 that answers 200 to everything and hands back each
    /// request's `X-Request-Timeout-Ms`.
    async fn header_echo_server() -> (Target, tokio::sync::mpsc::UnboundedReceiver<Option<String>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let target =
            Target::resolve(&format!("http://{}", listener.local_addr().expect("address"))).await.expect("target");
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.expect("accept");
            let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                let header = request.headers().get(REQUEST_TIMEOUT_MS).map(|value| value.to_str().map(String::from));
                let _ = sender.send(header.map(|text| text.expect("an ASCII header")));
                async { Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(Bytes::new()))) }
            });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
        (target, receiver)
    }

    #[tokio::test]
    async fn every_request_says_how_long_the_client_waits() {
        let (target, mut headers) = header_echo_server().await;
        let pool = Pool::new(target, PoolConfig { connections_max: 1, connect_timeout: Duration::from_secs(5) });
        let post = pool.request(Method::POST, Uri::from_static("/v1/events/e/holds"), Some(Bytes::from_static(b"{}")));
        let reply = pool.send_within(post, Duration::from_millis(2500)).await.expect("in time").expect("a reply");
        assert_eq!(reply.status, StatusCode::OK);
        assert!(reply.sent_at <= Instant::now());
        let get = || pool.request(Method::GET, Uri::from_static("/v1/events/e/availability"), None);
        send_retrying(&pool, get, Duration::from_secs(3)).await.expect("a reply");
        let mut seen = Vec::new();
        while let Ok(header) = headers.try_recv() {
            seen.push(header);
        }
        assert_eq!(seen, [Some("2500".to_string()), Some("3000".to_string())]);
        assert_eq!(REQUEST_TIMEOUT_MS.as_str(), "x-request-timeout-ms");
    }

    /// A server on 127.0.0.1 that answers every request with `answer(path, host, body)`.
    async fn server(answer: fn(&str, &str, &[u8]) -> hyper::Response<Full<Bytes>>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.expect("accept");
                let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| async move {
                    let path = request.uri().path().to_string();
                    let host = request.headers().get(HOST).map(|host| host.to_str().expect("ascii").to_string());
                    let body = request.into_body().collect().await?.to_bytes();
                    Ok::<_, hyper::Error>(answer(&path, &host.unwrap_or_default(), &body))
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        format!("127.0.0.1:{}", address.port())
    }

    fn redirect_to(location: &str) -> hyper::Response<Full<Bytes>> {
        let mut response = hyper::Response::new(Full::new(Bytes::new()));
        *response.status_mut() = StatusCode::TEMPORARY_REDIRECT;
        response.headers_mut().insert(LOCATION, HeaderValue::from_str(location).expect("a header"));
        response
    }

    #[tokio::test]
    async fn a_redirect_to_another_origin_is_followed_with_the_same_request() {
        static OWNER: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let owner = server(|path, host, body| {
            let echo = format!("{path} {host} {}", String::from_utf8_lossy(body));
            hyper::Response::new(Full::new(Bytes::from(echo)))
        })
        .await;
        OWNER.set(owner.clone()).expect("set once");
        let standby = server(|path, _, _| redirect_to(&format!("http://{}{path}", OWNER.get().expect("set"))));
        let standby = standby.await;
        let target = Target::resolve(&format!("http://{standby}")).await.expect("target");
        let pool = Pool::new(target, PoolConfig { connections_max: 1, connect_timeout: Duration::from_secs(5) });
        for _ in 0..2 {
            let post = pool.request(Method::POST, Uri::from_static("/v1/holds/h1/confirm"), Some("{}".into()));
            let reply = pool.send_within(post, Duration::from_secs(5)).await.expect("in time").expect("a reply");
            assert_eq!(reply.status, StatusCode::OK);
            assert_eq!(
                reply.body,
                format!("/v1/holds/h1/confirm {owner} {{}}"),
                "same path and body, the owner's Host"
            );
        }
        assert_eq!(pool.redirects_followed(), 2);
        assert_eq!(pool.redirected.lock().expect("lock").len(), 1, "one pool for the owner, reused");
    }

    #[tokio::test]
    async fn redirects_in_a_loop_end_after_the_last_hop_with_the_redirect() {
        let looping = server(|path, host, _| redirect_to(&format!("http://{host}{path}"))).await;
        let target = Target::resolve(&format!("http://{looping}")).await.expect("target");
        let pool = Pool::new(target, PoolConfig { connections_max: 1, connect_timeout: Duration::from_secs(5) });
        let get = pool.request(Method::GET, Uri::from_static("/v1/events/e/availability"), None);
        let reply = pool.send_within(get, Duration::from_secs(5)).await.expect("in time").expect("a reply");
        assert_eq!(reply.status, StatusCode::TEMPORARY_REDIRECT);
        assert!(reply.location.is_some());
        assert_eq!(pool.redirects_followed(), REDIRECTS_MAX as u64);
        assert!(pool.redirected.lock().expect("lock").is_empty(), "its own origin needs no other pool");
    }

    #[test]
    fn query_values_are_escaped() {
        assert_eq!(query_escape("c-run1-b17"), "c-run1-b17");
        assert_eq!(query_escape("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }
}
