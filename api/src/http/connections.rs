//! The bound on open connections: a listener for `axum::serve` that counts the
//! connections it hands out and refuses the ones beyond `http.connections_max`.
//!
//! The in-flight limit bounds requests, not connections: idle keep-alive connections
//! and clients that connect and never send still cost a descriptor and buffers each.
//! Beyond the limit a connection is still accepted (leaving it in the kernel's backlog
//! would only make the client wait for a timeout), answered at once with a fixed 503
//! `too_many_connections` in the API's error format, and closed. The answer is
//! written by a task of its own with a deadline, so a slow client never holds up the
//! accept loop; those tasks are bounded too.
//!
//! Accept errors never stop the server: a connection that failed before it was
//! accepted is skipped; a server out of descriptors or memory backs off a few
//! milliseconds (connections closing meanwhile free some) and tries again. Both are
//! logged at most once per [`ACCEPT_ERROR_LOG_INTERVAL`].

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::serve::Listener;
use metrics::{Counter, Gauge};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::config::HttpConfig;
use crate::http::error::{ErrorBody, ErrorDetail};

pub const CONNECTIONS_OPEN: &str = "hakken_http_connections_open";
pub const CONNECTIONS_REFUSED_TOTAL: &str = "hakken_http_connections_refused_total";
/// Label `kind`: `connection` (the client's connection failed before it was
/// accepted) or `server` (the server could not accept: descriptors, memory).
pub const ACCEPT_ERRORS_TOTAL: &str = "hakken_http_accept_errors_total";

/// Pause after an accept error of the server's own (EMFILE, ENFILE, ENOBUFS...):
/// long enough not to spin on a listener that stays readable, short enough that
/// the server resumes as soon as a descriptor is free.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(5);
/// At most one log line per this long for accept errors (with the count in between).
const ACCEPT_ERROR_LOG_INTERVAL: Duration = Duration::from_secs(1);
/// Time a refused client gets to take its answer before the connection is dropped.
const REFUSAL_DEADLINE: Duration = Duration::from_millis(500);
/// Refusals being answered at once; beyond that a refused connection is closed
/// without an answer (a flood must not turn into a flood of tasks).
const REFUSALS_ANSWERING_MAX: usize = 1024;
/// Bytes of a refused client's request read (and dropped) after the answer: closing
/// a socket with unread data resets it, and a reset can destroy the answer before
/// the client reads it.
const REFUSAL_DRAIN_BYTES_MAX: usize = 16 * 1024;

/// `TcpListener` with a bound on the connections it has handed out and not yet
/// seen closed.
pub struct BoundedListener {
    listener: TcpListener,
    connections_max: usize,
    open: Arc<OpenConnections>,
    /// Refusals being answered by their tasks now.
    refusals_answering: Arc<AtomicUsize>,
    /// The whole HTTP/1.1 503 answer of a refused connection, rendered once.
    refusal: Bytes,
    refused_total: Counter,
    accept_errors: AcceptErrorLog,
}

/// Descriptors the process needs besides its connections (RocksDB's files, the
/// metrics listener, logs), kept free when comparing with `connections_max`.
const DESCRIPTORS_RESERVED: u64 = 1024;

/// Warns when the process may open fewer files than `connections_max` needs: the
/// connections beyond the descriptor limit never get the clear 503 (there is no
/// descriptor to answer on), they wait in the kernel's backlog. Debian's default soft
/// limit is 1,024; `ulimit -n` (or systemd's `LimitNOFILE`) raises it.
fn warn_if_descriptors_run_out_first(connections_max: usize) {
    let Ok(limits) = std::fs::read_to_string("/proc/self/limits") else { return };
    let Some(soft) = open_files_soft_limit(&limits) else { return };
    let needed = connections_max as u64 + DESCRIPTORS_RESERVED;
    if soft < needed {
        tracing::warn!(
            open_files_limit = soft,
            connections_max,
            "the open-files limit is below http.connections_max plus {DESCRIPTORS_RESERVED} for the store: \
             raise it (ulimit -n {needed}) or lower connections_max, or connections beyond it wait unanswered"
        );
    }
}

/// The soft "Max open files" of a `/proc/<pid>/limits` text (`None` if unlimited or absent).
fn open_files_soft_limit(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|line| line.starts_with("Max open files"))?;
    line["Max open files".len()..].split_whitespace().next()?.parse().ok()
}

/// The count of open connections: the accept loop adds, each connection's
/// [`ConnectionGuard`] subtracts when the connection is dropped.
struct OpenConnections {
    count: AtomicUsize,
    gauge: Gauge,
}

impl BoundedListener {
    pub fn new(listener: TcpListener, http: &HttpConfig) -> BoundedListener {
        assert!(http.connections_max > 0, "config validation refuses connections_max = 0");
        warn_if_descriptors_run_out_first(http.connections_max);
        // Exported at 0 from the start, so the alert's `increase()` sees the first one.
        for kind in ["connection", "server"] {
            metrics::counter!(ACCEPT_ERRORS_TOTAL, "kind" => kind).increment(0);
        }
        BoundedListener {
            listener,
            connections_max: http.connections_max,
            open: Arc::new(OpenConnections { count: AtomicUsize::new(0), gauge: metrics::gauge!(CONNECTIONS_OPEN) }),
            refusals_answering: Arc::new(AtomicUsize::new(0)),
            refusal: refusal_response(http.retry_after_s),
            refused_total: metrics::counter!(CONNECTIONS_REFUSED_TOTAL),
            accept_errors: AcceptErrorLog::default(),
        }
    }

    /// Connections handed out and not yet closed.
    pub fn open_count(&self) -> usize {
        self.open.count.load(Ordering::Acquire)
    }

    /// Counts a connection in; the returned stream counts it out when dropped.
    fn admit(&self, stream: TcpStream) -> CountedStream {
        // Only this loop adds, so the check in `accept` and this add cannot race past
        // the limit; guards dropping meanwhile only make room.
        self.open.count.fetch_add(1, Ordering::AcqRel);
        self.open.gauge.increment(1.0);
        CountedStream { stream, _guard: ConnectionGuard(self.open.clone()) }
    }

    /// Answers 503 `too_many_connections` and closes, on a task of its own.
    fn refuse(&self, stream: TcpStream) {
        self.refused_total.increment(1);
        if self.refusals_answering.fetch_add(1, Ordering::AcqRel) >= REFUSALS_ANSWERING_MAX {
            self.refusals_answering.fetch_sub(1, Ordering::AcqRel);
            return; // Dropping the stream closes it.
        }
        let answering = RefusalGuard(self.refusals_answering.clone());
        let answer = self.refusal.clone();
        tokio::spawn(async move {
            let _answering = answering;
            // A client too slow to take the answer within the deadline is dropped.
            let _ = tokio::time::timeout(REFUSAL_DEADLINE, answer_and_close(stream, answer)).await;
        });
    }
}

impl Listener for BoundedListener {
    type Io = CountedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (CountedStream, SocketAddr) {
        loop {
            let (stream, address) = match self.listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    self.accept_failed(&error).await;
                    continue;
                }
            };
            if self.open_count() >= self.connections_max {
                self.refuse(stream);
                continue;
            }
            return (self.admit(stream), address);
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

impl BoundedListener {
    async fn accept_failed(&mut self, error: &io::Error) {
        let kind = if is_connection_error(error) { "connection" } else { "server" };
        metrics::counter!(ACCEPT_ERRORS_TOTAL, "kind" => kind).increment(1);
        self.accept_errors.record(error, Instant::now());
        if kind == "server" {
            tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
        }
    }
}

/// The peer's connection failed between the handshake and `accept`: nothing is wrong
/// with the server, the next connection may be fine.
fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionRefused
    )
}

/// Rate-limits the accept-error log: the first error, then at most one line per
/// interval with how many happened since the last line.
#[derive(Default)]
struct AcceptErrorLog {
    last_logged: Option<Instant>,
    unlogged: u64,
}

impl AcceptErrorLog {
    fn record(&mut self, error: &io::Error, now: Instant) {
        self.unlogged += 1;
        let due = self.last_logged.is_none_or(|last| now.duration_since(last) >= ACCEPT_ERROR_LOG_INTERVAL);
        if !due {
            return;
        }
        tracing::warn!(%error, errors = self.unlogged, "accepting connections failed; retrying");
        self.last_logged = Some(now);
        self.unlogged = 0;
    }
}

/// Writes the refusal, ends the sending side, then reads what the client sent (up to
/// a bound) until it closes, so the close is a clean FIN rather than a reset.
async fn answer_and_close(mut stream: TcpStream, answer: Bytes) -> io::Result<()> {
    stream.write_all(&answer).await?;
    stream.shutdown().await?;
    let mut sink = [0u8; 1024];
    let mut drained = 0;
    while drained < REFUSAL_DRAIN_BYTES_MAX {
        match stream.read(&mut sink).await? {
            0 => break,
            read => drained += read,
        }
    }
    Ok(())
}

/// The full HTTP/1.1 answer to a connection beyond the limit: the API's error body,
/// `Retry-After`, and `Connection: close`.
fn refusal_response(retry_after_s: u64) -> Bytes {
    let body = ErrorBody {
        error: ErrorDetail {
            code: "too_many_connections",
            message: "the server has as many connections open as it serves; retry after the given seconds".into(),
            details: None,
        },
    };
    let body = serde_json::to_string(&body).expect("the error body serializes");
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: {}\r\nconnection: close\r\n\r\n",
        body.len(),
        retry_after_s.max(1),
    );
    Bytes::from(head + &body)
}

/// Counts one open connection out when dropped (when hyper is done with it).
struct ConnectionGuard(Arc<OpenConnections>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.count.fetch_sub(1, Ordering::AcqRel);
        self.0.gauge.decrement(1.0);
    }
}

/// Counts one refusal out of [`BoundedListener::refusals_answering`] when its task ends.
struct RefusalGuard(Arc<AtomicUsize>);

impl Drop for RefusalGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An accepted connection that counts itself out of the open connections when dropped.
pub struct CountedStream {
    stream: TcpStream,
    _guard: ConnectionGuard,
}

impl CountedStream {
    pub fn tcp(&self) -> &TcpStream {
        &self.stream
    }
}

impl AsyncRead for CountedStream {
    fn poll_read(self: Pin<&mut Self>, context: &mut Context<'_>, buffer: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(context, buffer)
    }
}

impl AsyncWrite for CountedStream {
    fn poll_write(self: Pin<&mut Self>, context: &mut Context<'_>, buffer: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(context, buffer)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffers: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(context, buffers)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(context)
    }

    fn poll_shutdown(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_is_one_complete_http_answer_in_the_api_error_format() {
        let answer = refusal_response(3);
        let text = std::str::from_utf8(&answer).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{head}");
        assert!(head.contains("\r\nretry-after: 3") && head.contains("\r\nconnection: close"), "{head}");
        assert!(head.contains(&format!("\r\ncontent-length: {}", body.len())), "{head}");
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["error"]["code"], "too_many_connections");
        assert!(json["error"]["message"].as_str().is_some_and(|message| !message.is_empty()));
        assert!(text_of(refusal_response(0)).contains("retry-after: 1\r\n"), "never Retry-After: 0");
    }

    fn text_of(bytes: Bytes) -> String {
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[test]
    fn accept_errors_are_logged_once_per_interval_with_the_count_between() {
        let mut log = AcceptErrorLog::default();
        let error = io::Error::from_raw_os_error(24); // EMFILE
        let start = Instant::now();
        log.record(&error, start);
        assert_eq!((log.last_logged, log.unlogged), (Some(start), 0), "the first error is logged");
        for _ in 0..5 {
            log.record(&error, start + ACCEPT_ERROR_LOG_INTERVAL / 2);
        }
        assert_eq!((log.last_logged, log.unlogged), (Some(start), 5), "within the interval: counted, not logged");
        let later = start + ACCEPT_ERROR_LOG_INTERVAL;
        log.record(&error, later);
        assert_eq!((log.last_logged, log.unlogged), (Some(later), 0));
    }

    #[test]
    fn connection_errors_are_told_from_the_servers_own() {
        assert!(is_connection_error(&io::Error::from(io::ErrorKind::ConnectionAborted)));
        assert!(!is_connection_error(&io::Error::from_raw_os_error(24)), "EMFILE is the server's");
        assert!(!is_connection_error(&io::Error::from_raw_os_error(23)), "ENFILE is the server's");
    }

    /// The limit over real sockets: the second connection of a listener bounded to
    /// one is answered 503 and closed; once the first is dropped a new one is admitted.
    #[tokio::test]
    async fn beyond_the_limit_connections_are_answered_503_and_counted_out_on_drop() {
        let http = HttpConfig { connections_max: 1, ..HttpConfig::default() };
        let mut listener = BoundedListener::new(TcpListener::bind("127.0.0.1:0").await.unwrap(), &http);
        let address = listener.local_addr().unwrap();
        let _first_client = TcpStream::connect(address).await.unwrap();
        let (first, _) = listener.accept().await;
        assert_eq!(listener.open_count(), 1);

        let mut second_client = TcpStream::connect(address).await.unwrap();
        // This accept refuses the second, then waits for the third.
        let accepting = tokio::spawn(async move {
            let (third, _) = listener.accept().await;
            (listener, third)
        });
        let mut answer = Vec::new();
        second_client.read_to_end(&mut answer).await.unwrap();
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 503 ") && answer.contains("too_many_connections"), "{answer}");

        drop(first);
        let _third_client = TcpStream::connect(address).await.unwrap();
        let (listener, _third) = accepting.await.unwrap();
        assert_eq!(listener.open_count(), 1, "the first was counted out, the third in");
    }

    #[test]
    fn the_open_files_limit_is_read_from_proc_limits() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max processes             95541                95541                processes \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(open_files_soft_limit(limits), Some(1024));
        assert_eq!(
            open_files_soft_limit("Max open files            unlimited            unlimited            files"),
            None
        );
        assert_eq!(open_files_soft_limit(""), None);
    }
}
