//! Webhook delivery: every event is POSTed to the webhook URL, signed, retried until a 2xx.
//!
//! Events enter a queue in the order they happened. One dispatcher task takes them out
//! (unless delivery is paused or no URL is set yet), applies the delivery faults (drop,
//! duplicate, hold back and reverse a batch) and starts one delivery task per copy. A
//! delivery waits `webhook_delay_ms`, then attempts up to `attempts_max` times with
//! exponential backoff from `retry_base_ms` (capped at `retry_max_ms`); each attempt is
//! signed anew with its own timestamp, as Stripe does. At most `concurrency` attempts are in
//! flight, over a small pool of kept-alive HTTP/1.1 connections; so, like Stripe's, deliveries
//! are not strictly ordered.
//!
//! The request is Stripe's: `POST`, `Content-Type: application/json; charset=utf-8`,
//! `User-Agent: Stripe/1.0 (+https://stripe.com/docs/webhooks)`, `Stripe-Signature`
//! (see [`crate::signing`]). Only `http://` URLs: the fake is for loopback tests.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HeaderValue, CONTENT_TYPE, HOST, USER_AGENT};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpStream;
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};

use crate::faults::Faults;
use crate::signing;

pub const USER_AGENT_VALUE: &str = "Stripe/1.0 (+https://stripe.com/docs/webhooks)";

/// How deliveries are retried and bounded. The defaults are fast, for tests.
#[derive(Clone, Debug)]
pub struct WebhookConfig {
    /// Attempts per delivery, the first included; then it is given up (counted).
    pub attempts_max: u32,
    /// The wait after the first failed attempt; doubled after each further one.
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    /// One attempt's time limit (connect, send, whole answer).
    pub timeout_ms: u64,
    /// Attempts in flight at most.
    pub concurrency: usize,
}

impl Default for WebhookConfig {
    fn default() -> WebhookConfig {
        WebhookConfig { attempts_max: 8, retry_base_ms: 50, retry_max_ms: 5_000, timeout_ms: 5_000, concurrency: 32 }
    }
}

/// Delivery counters, as `GET /_fake/stats` shows them.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct WebhookStats {
    /// Events handed to the sender.
    pub events: u64,
    /// Events waiting in the queue (paused, no URL yet, or held back for reordering).
    pub queued: u64,
    /// Events never delivered because of `webhook_drop_next`.
    pub dropped: u64,
    /// Deliveries started: one per event, plus duplicates.
    pub deliveries: u64,
    pub attempts: u64,
    /// Deliveries answered 2xx.
    pub delivered: u64,
    /// Attempts that failed (non-2xx, connection error or timeout).
    pub failed_attempts: u64,
    /// Deliveries given up after `attempts_max` attempts.
    pub gave_up: u64,
}

#[derive(Default)]
struct Counters {
    events: AtomicU64,
    dropped: AtomicU64,
    deliveries: AtomicU64,
    attempts: AtomicU64,
    delivered: AtomicU64,
    failed_attempts: AtomicU64,
    gave_up: AtomicU64,
}

/// Where webhooks go: `http://host:port/path`.
#[derive(Clone, Debug)]
struct Target {
    authority: String,
    path: String,
}

impl Target {
    fn parse(url: &str) -> Result<Target, String> {
        let uri: Uri = url.parse().map_err(|_| format!("webhook URL {url:?} is not a URL"))?;
        if uri.scheme_str() != Some("http") {
            return Err(format!("webhook URL {url:?}: only http:// is supported (the fake is for loopback tests)"));
        }
        let authority = uri.authority().ok_or_else(|| format!("webhook URL {url:?} has no host"))?;
        let authority = if authority.port().is_some() { authority.to_string() } else { format!("{authority}:80") };
        let path = uri.path_and_query().map(|path| path.as_str().to_string()).unwrap_or_else(|| "/".into());
        Ok(Target { authority, path })
    }
}

struct Queue {
    events: VecDeque<Bytes>,
    /// When the oldest event held back for reordering arrived.
    held_since: Option<Instant>,
    flush_requested: bool,
}

struct Inner {
    config: WebhookConfig,
    secrets: Vec<String>,
    faults: Arc<Mutex<Faults>>,
    target: Mutex<Option<Target>>,
    queue: Mutex<Queue>,
    wake: Notify,
    counters: Counters,
    /// One per attempt in flight (`concurrency`).
    permits: Arc<Semaphore>,
    /// Idle kept-alive connections, with the authority each was opened to.
    idle: Mutex<Vec<(String, SendRequest<Full<Bytes>>)>>,
    shutdown: watch::Receiver<bool>,
}

/// The sender; cheap to clone.
#[derive(Clone)]
pub struct Webhooks {
    inner: Arc<Inner>,
}

enum Next {
    Batch(Vec<Bytes>),
    Wait(Option<Duration>),
}

impl Webhooks {
    pub fn new(
        config: WebhookConfig,
        secrets: Vec<String>,
        url: Option<&str>,
        faults: Arc<Mutex<Faults>>,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Webhooks, String> {
        if config.concurrency == 0 || config.attempts_max == 0 {
            return Err("webhook concurrency and attempts must be at least 1".into());
        }
        let target = url.map(Target::parse).transpose()?;
        Ok(Webhooks {
            inner: Arc::new(Inner {
                permits: Arc::new(Semaphore::new(config.concurrency)),
                config,
                secrets,
                faults,
                target: Mutex::new(target),
                queue: Mutex::new(Queue { events: VecDeque::new(), held_since: None, flush_requested: false }),
                wake: Notify::new(),
                counters: Counters::default(),
                idle: Mutex::new(Vec::new()),
                shutdown,
            }),
        })
    }

    /// Queues the events' bodies for delivery, in order.
    pub fn enqueue(&self, bodies: Vec<Bytes>) {
        if bodies.is_empty() {
            return;
        }
        self.inner.counters.events.fetch_add(bodies.len() as u64, Ordering::Relaxed);
        lock(&self.inner.queue).events.extend(bodies);
        self.inner.wake.notify_one();
    }

    /// Sets (or clears) the webhook URL; queued events go out once one is set.
    pub fn set_url(&self, url: Option<&str>) -> Result<(), String> {
        let target = url.map(Target::parse).transpose()?;
        *lock(&self.inner.target) = target;
        lock(&self.inner.idle).clear();
        self.inner.wake.notify_one();
        Ok(())
    }

    /// Delivers events held back for reordering now (newest first).
    pub fn flush(&self) {
        lock(&self.inner.queue).flush_requested = true;
        self.inner.wake.notify_one();
    }

    /// Tells the dispatcher the faults changed (resume, a new reorder batch size).
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    pub fn stats(&self) -> WebhookStats {
        let counters = &self.inner.counters;
        WebhookStats {
            events: counters.events.load(Ordering::Relaxed),
            queued: lock(&self.inner.queue).events.len() as u64,
            dropped: counters.dropped.load(Ordering::Relaxed),
            deliveries: counters.deliveries.load(Ordering::Relaxed),
            attempts: counters.attempts.load(Ordering::Relaxed),
            delivered: counters.delivered.load(Ordering::Relaxed),
            failed_attempts: counters.failed_attempts.load(Ordering::Relaxed),
            gave_up: counters.gave_up.load(Ordering::Relaxed),
        }
    }

    /// The dispatcher: runs until shutdown.
    pub async fn run(self) {
        let mut shutdown = self.inner.shutdown.clone();
        loop {
            if *shutdown.borrow() {
                return;
            }
            match self.next() {
                Next::Batch(bodies) => self.dispatch(bodies).await,
                Next::Wait(timeout) => {
                    let sleep = async {
                        match timeout {
                            Some(timeout) => tokio::time::sleep(timeout).await,
                            None => std::future::pending().await,
                        }
                    };
                    tokio::select! {
                        _ = self.inner.wake.notified() => {}
                        _ = sleep => {}
                        _ = shutdown.changed() => {}
                    }
                }
            }
        }
    }

    /// What the dispatcher does now, given the queue and the faults.
    fn next(&self) -> Next {
        let faults = lock(&self.inner.faults).clone();
        if faults.webhooks_paused || lock(&self.inner.target).is_none() {
            return Next::Wait(None);
        }
        let mut queue = lock(&self.inner.queue);
        if queue.events.is_empty() {
            queue.held_since = None;
            queue.flush_requested = false;
            return Next::Wait(None);
        }
        let batch_size = faults.webhook_reorder_batch as usize;
        if batch_size <= 1 {
            return Next::Batch(queue.events.drain(..).collect());
        }
        let held_since = *queue.held_since.get_or_insert_with(Instant::now);
        let hold = Duration::from_millis(faults.webhook_reorder_hold_ms);
        let waited = held_since.elapsed();
        if queue.events.len() < batch_size && waited < hold && !queue.flush_requested {
            return Next::Wait(Some(hold - waited));
        }
        let take = queue.events.len().min(batch_size);
        let mut batch: Vec<Bytes> = queue.events.drain(..take).collect();
        batch.reverse();
        queue.held_since = None;
        queue.flush_requested = false;
        Next::Batch(batch)
    }

    /// Starts the deliveries of `bodies`. Without a delay, each first attempt's permit is
    /// taken here, in order, so first attempts start in queue order (strictly so with
    /// `concurrency` 1, which the reorder fault's tests rely on).
    async fn dispatch(&self, bodies: Vec<Bytes>) {
        for body in bodies {
            let (dropped, copies, delay_ms) = {
                let mut faults = lock(&self.inner.faults);
                (faults.take_drop(), 1 + faults.webhook_duplicates, faults.webhook_delay_ms)
            };
            if dropped {
                self.inner.counters.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            for _ in 0..copies {
                self.inner.counters.deliveries.fetch_add(1, Ordering::Relaxed);
                let permit = if delay_ms == 0 {
                    Some(self.inner.permits.clone().acquire_owned().await.expect("the semaphore is never closed"))
                } else {
                    None
                };
                tokio::spawn(self.clone().deliver(body.clone(), delay_ms, permit));
            }
        }
    }

    async fn deliver(self, body: Bytes, delay_ms: u64, permit: Option<OwnedSemaphorePermit>) {
        let mut shutdown = self.inner.shutdown.clone();
        tokio::select! {
            _ = self.attempts(body, delay_ms, permit) => {}
            _ = shutdown.changed() => {}
        }
    }

    async fn attempts(&self, body: Bytes, delay_ms: u64, mut first_permit: Option<OwnedSemaphorePermit>) {
        if delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        }
        let config = &self.inner.config;
        for attempt in 1..=config.attempts_max {
            let target = self.wait_until_deliverable().await;
            let delivered = {
                let _permit = match first_permit.take() {
                    Some(permit) => permit,
                    None => self.inner.permits.clone().acquire_owned().await.expect("the semaphore is never closed"),
                };
                self.inner.counters.attempts.fetch_add(1, Ordering::Relaxed);
                let timeout = Duration::from_millis(config.timeout_ms);
                matches!(tokio::time::timeout(timeout, self.post(&target, body.clone())).await, Ok(Ok(true)))
            };
            if delivered {
                self.inner.counters.delivered.fetch_add(1, Ordering::Relaxed);
                return;
            }
            self.inner.counters.failed_attempts.fetch_add(1, Ordering::Relaxed);
            if attempt < config.attempts_max {
                tokio::time::sleep(backoff(config, attempt)).await;
            }
        }
        self.inner.counters.gave_up.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(attempts = config.attempts_max, "webhook delivery given up");
    }

    /// Waits while delivery is paused or no URL is set; then the URL.
    async fn wait_until_deliverable(&self) -> Target {
        loop {
            let paused = lock(&self.inner.faults).webhooks_paused;
            if !paused {
                if let Some(target) = lock(&self.inner.target).clone() {
                    return target;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// One signed POST; `Ok(true)` on a 2xx.
    async fn post(&self, target: &Target, body: Bytes) -> Result<bool, String> {
        let mut sender = self.connection(&target.authority).await?;
        let timestamp = unix_seconds();
        let signature = signing::header(&self.inner.secrets, timestamp, &body);
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = target.path.parse().map_err(|_| "bad webhook path".to_string())?;
        let headers = request.headers_mut();
        headers.insert(HOST, HeaderValue::from_str(&target.authority).map_err(|_| "bad host".to_string())?);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
        headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
        headers.insert("stripe-signature", HeaderValue::from_str(&signature).expect("the header is ASCII"));
        let response = sender.send_request(request).await.map_err(|error| error.to_string())?;
        let success = response.status().is_success();
        // Read the whole answer so the connection can be reused.
        response.into_body().collect().await.map_err(|error| error.to_string())?;
        lock(&self.inner.idle).push((target.authority.clone(), sender));
        Ok(success)
    }

    async fn connection(&self, authority: &str) -> Result<SendRequest<Full<Bytes>>, String> {
        loop {
            let pooled = {
                let mut idle = lock(&self.inner.idle);
                let position = idle.iter().rposition(|(address, _)| address == authority);
                position.map(|position| idle.swap_remove(position).1)
            };
            let Some(mut sender) = pooled else { break };
            if sender.ready().await.is_ok() {
                return Ok(sender);
            }
        }
        let stream = TcpStream::connect(authority).await.map_err(|error| error.to_string())?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await.map_err(|error| error.to_string())?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(sender)
    }
}

fn backoff(config: &WebhookConfig, attempt: u32) -> Duration {
    let factor = 1u64 << (attempt - 1).min(20);
    Duration::from_millis(config.retry_base_ms.saturating_mul(factor).min(config.retry_max_ms))
}

pub(crate) fn unix_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs() as i64)
        .unwrap_or(0)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let config = WebhookConfig { retry_base_ms: 50, retry_max_ms: 300, ..WebhookConfig::default() };
        let waits: Vec<u128> = (1..=5).map(|attempt| backoff(&config, attempt).as_millis()).collect();
        assert_eq!(waits, [50, 100, 200, 300, 300]);
        assert_eq!(backoff(&config, 64).as_millis(), 300);
    }

    #[test]
    fn targets_are_http_with_a_port() {
        let target = Target::parse("http://127.0.0.1:9000/v1/payments/webhooks/stripe").unwrap();
        assert_eq!(
            (target.authority.as_str(), target.path.as_str()),
            ("127.0.0.1:9000", "/v1/payments/webhooks/stripe")
        );
        assert_eq!(Target::parse("http://localhost").unwrap().authority, "localhost:80");
        assert!(Target::parse("https://example.com/hook").is_err());
        assert!(Target::parse("not a url").is_err());
    }
}
