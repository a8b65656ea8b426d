//! The SMTP sink: a small RFC 5321 server that takes every message it is given and
//! keeps only what the lag needs (the `Message-ID`, the size, the time), so hakken's
//! relay can deliver to the load tool itself.
//!
//! [`Session`] is the protocol, a plain state machine of bytes in and replies out (no
//! socket, no clock), so it is tested on its own; [`serve`] is the tokio shell around
//! it, with the outage switch.
//!
//! What it speaks: the greeting, `EHLO` (advertising `8BITMIME`, `SIZE` and
//! `PIPELINING`) and `HELO`, `MAIL FROM` (with `SIZE=` and `BODY=7BIT|8BITMIME`),
//! `RCPT TO`, `DATA` (dot-unstuffed, ended by a line holding one dot), `RSET`, `NOOP`,
//! `VRFY` (252), `QUIT`; `502` for the commands it knows but does not do (`STARTTLS`,
//! `AUTH`, ...), `500` for the rest. Pipelining is free: each complete line is handled as
//! it comes, and the replies to one read go out in one write.
//!
//! Limits (RFC 5321 4.5.3.1): a command line of 512 bytes, a text line of 1000 (both with
//! the CRLF), [`MESSAGE_BYTES_MAX`] per message, [`RECIPIENTS_MAX`] per message. A longer
//! command line is answered `500` and dropped as it arrives (never buffered); a message
//! with a longer line or over the size is read to its end and refused (`554`, `552`).
//!
//! Personal data: the recipients are buyers' addresses. The sink counts them and forgets
//! them; it keeps no envelope address and no body (unless a test asks for the body).

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// RFC 5321 4.5.3.1.4: a command line is at most 512 bytes, CRLF included.
pub const COMMAND_LINE_BYTES_MAX: usize = 512;
/// RFC 5321 4.5.3.1.6: a line of text (the message) at most 1000, CRLF included.
pub const TEXT_LINE_BYTES_MAX: usize = 1000;
/// The largest message taken (advertised as `SIZE`): a ticket email with the most
/// tickets hakken puts in one (64 QR images) is a few hundred KiB.
pub const MESSAGE_BYTES_MAX: usize = 4 * 1024 * 1024;
/// RFC 5321 4.5.3.1.8: at least 100 recipients must be taken; more are refused (452).
pub const RECIPIENTS_MAX: usize = 100;
/// The longest `Message-ID` value kept (a header line's length); longer ones are cut.
const MESSAGE_ID_BYTES_MAX: usize = 998;
/// Connections at once at most; one beyond is answered 421 and closed. hakken's SMTP
/// pool opens `connections_max` (8 by default).
pub const CONNECTIONS_MAX: usize = 256;
/// A connection silent this long is answered 421 and closed (RFC 5321 4.5.3.2.7 asks a
/// server to wait 5 minutes for a command).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Bytes read from a connection at once.
const READ_BYTES: usize = 64 * 1024;
/// While the listener cannot be opened again (the port taken), how often to retry.
const REBIND_INTERVAL: Duration = Duration::from_millis(50);

/// The name the sink gives itself in its greeting and EHLO reply.
const NAME: &str = "hakken-loadtest";

/// A message the sink accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The `Message-ID` header's value (unfolded, trimmed), if it had one.
    pub message_id: Option<String>,
    /// Bytes after dot-unstuffing, CRLFs included.
    pub bytes: usize,
    pub recipients: usize,
    /// The message itself, dot-unstuffed, only when [`Limits::keep_messages`] (tests).
    pub content: Option<Vec<u8>>,
}

/// What a session takes.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub command_line_bytes_max: usize,
    pub text_line_bytes_max: usize,
    pub message_bytes_max: usize,
    pub recipients_max: usize,
    /// Keep each message's content in [`Message::content`] (tests only: the sink's job
    /// is to forget it).
    pub keep_messages: bool,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            command_line_bytes_max: COMMAND_LINE_BYTES_MAX,
            text_line_bytes_max: TEXT_LINE_BYTES_MAX,
            message_bytes_max: MESSAGE_BYTES_MAX,
            recipients_max: RECIPIENTS_MAX,
            keep_messages: false,
        }
    }
}

/// One SMTP session's state.
///
/// States: before `EHLO`/`HELO` only those, `RSET`, `NOOP`, `QUIT` and friends are
/// taken; greeted, `MAIL` opens a transaction; `RCPT` adds recipients to it; `DATA`
/// (with a recipient) switches to reading the message until the lone dot, which ends the
/// transaction either way; `QUIT` closes the session.
#[derive(Debug)]
pub struct Session {
    limits: Limits,
    greeted: bool,
    /// Recipients of the open transaction (after `MAIL`), if one is open.
    transaction: Option<usize>,
    data: Option<Data>,
    /// Inside a line longer than allowed: dropping its bytes up to its end.
    discarding: bool,
    closed: bool,
    accepted: u64,
}

/// A message being read.
#[derive(Debug)]
struct Data {
    recipients: usize,
    bytes: usize,
    in_headers: bool,
    /// Reading the `Message-ID` header (its continuation lines belong to it).
    in_message_id: bool,
    message_id: Option<Vec<u8>>,
    too_big: bool,
    long_line: bool,
    content: Option<Vec<u8>>,
}

impl Session {
    pub fn new(limits: Limits) -> Session {
        Session { limits, greeted: false, transaction: None, data: None, discarding: false, closed: false, accepted: 0 }
    }

    /// The 220 greeting, sent when the connection opens.
    pub fn greeting(out: &mut Vec<u8>) {
        reply(out, &format!("220 {NAME} ESMTP sink ready"));
    }

    /// Whether `QUIT` was answered: the connection is to be closed.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Handles every complete line at the front of `input` (and, of a line longer than
    /// allowed, what there is of it), appending replies to `out` and accepted messages
    /// to `messages`. Returns the bytes consumed; the rest is the start of a line, to be
    /// fed again with what follows.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>, messages: &mut Vec<Message>) -> usize {
        let mut consumed = 0;
        while !self.closed {
            let rest = &input[consumed..];
            let limit =
                if self.data.is_some() { self.limits.text_line_bytes_max } else { self.limits.command_line_bytes_max };
            let Some(end) = memchr::memchr(b'\n', rest) else {
                if self.discarding || rest.len() >= limit {
                    // Already too long without its end: drop it as it comes.
                    consumed += rest.len();
                    self.line_too_long_started();
                }
                break;
            };
            let line = &rest[..=end];
            consumed += line.len();
            if self.discarding {
                self.discarding = false;
                self.line_too_long_ended(out);
            } else if line.len() > limit {
                self.line_too_long_started();
                self.discarding = false;
                self.line_too_long_ended(out);
            } else {
                let line = line.strip_suffix(b"\n").unwrap_or(line);
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                if self.data.is_some() {
                    self.data_line(line, out, messages);
                } else {
                    self.command(line, out);
                }
            }
        }
        consumed
    }

    fn line_too_long_started(&mut self) {
        self.discarding = true;
        if let Some(data) = &mut self.data {
            data.long_line = true;
        }
    }

    /// The end of a line too long: a command is refused; a message is refused at its end.
    fn line_too_long_ended(&mut self, out: &mut Vec<u8>) {
        if self.data.is_none() {
            reply(out, "500 Line too long");
        }
    }

    fn data_line(&mut self, line: &[u8], out: &mut Vec<u8>, messages: &mut Vec<Message>) {
        let data = self.data.as_mut().expect("called while reading a message");
        if line == b"." {
            let data = self.data.take().expect("checked");
            self.transaction = None;
            self.end_of_data(data, out, messages);
            return;
        }
        // RFC 5321 4.5.2: a leading dot was doubled by the client.
        let line = line.strip_prefix(b".").unwrap_or(line);
        data.bytes += line.len() + 2;
        if data.bytes > self.limits.message_bytes_max {
            data.too_big = true;
            data.content = None;
        }
        if data.in_headers {
            data.header_line(line);
        }
        if let Some(content) = &mut data.content {
            content.extend_from_slice(line);
            content.extend_from_slice(b"\r\n");
        }
    }

    fn end_of_data(&mut self, data: Data, out: &mut Vec<u8>, messages: &mut Vec<Message>) {
        if data.too_big {
            return reply(out, "552 Message exceeds the maximum size");
        }
        if data.long_line {
            return reply(out, "554 Message has a line longer than 1000 bytes");
        }
        self.accepted += 1;
        let message_id = data.message_id.map(|value| String::from_utf8_lossy(&value).trim().to_string());
        messages.push(Message {
            message_id: message_id.filter(|id| !id.is_empty()),
            bytes: data.bytes,
            recipients: data.recipients,
            content: data.content,
        });
        reply(out, &format!("250 OK queued as {}", self.accepted));
    }

    fn command(&mut self, line: &[u8], out: &mut Vec<u8>) {
        let Ok(text) = std::str::from_utf8(line) else {
            return reply(out, "500 Syntax error: not UTF-8");
        };
        let (verb, argument) = text.split_once(' ').unwrap_or((text, ""));
        let argument = argument.trim();
        match verb.to_ascii_uppercase().as_str() {
            "EHLO" | "HELO" if argument.is_empty() => reply(out, "501 Syntax: EHLO domain"),
            "EHLO" => {
                self.greeted = true;
                self.transaction = None;
                let size = self.limits.message_bytes_max;
                out.extend_from_slice(format!("250-{NAME}\r\n250-8BITMIME\r\n250-SIZE {size}\r\n").as_bytes());
                reply(out, "250 PIPELINING");
            }
            "HELO" => {
                self.greeted = true;
                self.transaction = None;
                reply(out, &format!("250 {NAME}"));
            }
            "MAIL" => self.mail(argument, out),
            "RCPT" => self.recipient(argument, out),
            "DATA" => self.data(argument, out),
            "RSET" if !argument.is_empty() => reply(out, "501 Syntax: RSET"),
            "RSET" => {
                self.transaction = None;
                reply(out, "250 OK");
            }
            "NOOP" => reply(out, "250 OK"),
            "QUIT" => {
                self.closed = true;
                reply(out, "221 Bye");
            }
            "VRFY" => reply(out, "252 Cannot VRFY user, but will take a message"),
            "EXPN" | "HELP" | "STARTTLS" | "AUTH" | "BDAT" | "ETRN" | "TURN" | "ATRN" | "SEND" | "SOML" | "SAML" => {
                reply(out, "502 Command not implemented")
            }
            _ => reply(out, "500 Command unrecognized"),
        }
    }

    fn mail(&mut self, argument: &str, out: &mut Vec<u8>) {
        if !self.greeted {
            return reply(out, "503 Send EHLO or HELO first");
        }
        if self.transaction.is_some() {
            return reply(out, "503 Nested MAIL command");
        }
        let Some((_, parameters)) = path_after(argument, "FROM:") else {
            return reply(out, "501 Syntax: MAIL FROM:<address>");
        };
        for parameter in parameters.split_ascii_whitespace() {
            let (key, value) = parameter.split_once('=').unwrap_or((parameter, ""));
            match key.to_ascii_uppercase().as_str() {
                "SIZE" => match value.parse::<u64>() {
                    Ok(size) if size > self.limits.message_bytes_max as u64 => {
                        return reply(out, "552 Message size exceeds fixed maximum message size");
                    }
                    Ok(_) => {}
                    Err(_) => return reply(out, "501 Syntax: SIZE=<bytes>"),
                },
                "BODY" if value.eq_ignore_ascii_case("7BIT") || value.eq_ignore_ascii_case("8BITMIME") => {}
                "BODY" => return reply(out, "501 Syntax: BODY=7BIT or BODY=8BITMIME"),
                _ => return reply(out, "555 MAIL FROM parameter not recognized"),
            }
        }
        self.transaction = Some(0);
        reply(out, "250 OK");
    }

    fn recipient(&mut self, argument: &str, out: &mut Vec<u8>) {
        let Some(recipients) = self.transaction else {
            return reply(out, "503 Need MAIL before RCPT");
        };
        let Some((path, parameters)) = path_after(argument, "TO:") else {
            return reply(out, "501 Syntax: RCPT TO:<address>");
        };
        if path.is_empty() {
            return reply(out, "501 Syntax: RCPT TO:<address>");
        }
        if !parameters.trim().is_empty() {
            return reply(out, "555 RCPT TO parameter not recognized");
        }
        if recipients >= self.limits.recipients_max {
            return reply(out, "452 Too many recipients");
        }
        self.transaction = Some(recipients + 1);
        reply(out, "250 OK");
    }

    fn data(&mut self, argument: &str, out: &mut Vec<u8>) {
        if !argument.is_empty() {
            return reply(out, "501 Syntax: DATA");
        }
        match self.transaction {
            None => reply(out, "503 Need MAIL and RCPT before DATA"),
            Some(0) => reply(out, "554 No valid recipients"),
            Some(recipients) => {
                self.data = Some(Data {
                    recipients,
                    bytes: 0,
                    in_headers: true,
                    in_message_id: false,
                    message_id: None,
                    too_big: false,
                    long_line: false,
                    content: self.limits.keep_messages.then(Vec::new),
                });
                reply(out, "354 End data with <CR><LF>.<CR><LF>");
            }
        }
    }
}

impl Data {
    /// One header line (unstuffed, without its CRLF): keeps the `Message-ID` value.
    fn header_line(&mut self, line: &[u8]) {
        if line.is_empty() {
            self.in_headers = false;
            self.in_message_id = false;
            return;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            // A folded continuation of the header before.
            if self.in_message_id {
                let value = self.message_id.get_or_insert_with(Vec::new);
                let room = MESSAGE_ID_BYTES_MAX.saturating_sub(value.len());
                value.extend_from_slice(&line[..line.len().min(room)]);
            }
            return;
        }
        self.in_message_id = false;
        let Some(colon) = memchr::memchr(b':', line) else { return };
        if self.message_id.is_none() && line[..colon].trim_ascii().eq_ignore_ascii_case(b"message-id") {
            let value = &line[colon + 1..];
            self.message_id = Some(value[..value.len().min(MESSAGE_ID_BYTES_MAX)].to_vec());
            self.in_message_id = true;
        }
    }
}

/// `FROM:<path> parameters` → (path, parameters), the keyword matched case-insensitively
/// (a space after the colon is tolerated, as many clients send one).
fn path_after<'a>(argument: &'a str, keyword: &str) -> Option<(&'a str, &'a str)> {
    let head = argument.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = argument[keyword.len()..].trim_start().strip_prefix('<')?;
    let close = rest.find('>')?;
    Some((&rest[..close], &rest[close + 1..]))
}

fn reply(out: &mut Vec<u8>, line: &str) {
    out.extend_from_slice(line.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// What the sink does with each accepted message (called on the connection's task, as
/// the message ends, before its 250 goes out).
pub type MessageHandler = Arc<dyn Fn(Message, Instant) + Send + Sync>;

/// What the listener went through, for the report.
#[derive(Debug, Default)]
pub struct SinkLog {
    pub connections_accepted: AtomicU64,
    /// Closed by an outage, mid-session.
    pub connections_dropped: AtomicU64,
    /// Answered 421 because [`CONNECTIONS_MAX`] were open.
    pub connections_refused: AtomicU64,
    pub messages: AtomicU64,
    /// When the listener closed for an outage and listened again.
    pub outage: Mutex<Option<(Instant, Option<Instant>)>>,
}

/// Opens the listener (the address reusable, so an outage can open it again at once).
pub fn listen(address: SocketAddr) -> io::Result<TcpListener> {
    let socket = if address.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(1024)
}

/// Serves SMTP on `listener` until `up` is dropped. While `up` says false the sink is
/// down: the listener closed (connecting is refused) and every open connection dropped;
/// when it says true again the sink listens again on the same address.
pub async fn serve(
    listener: TcpListener,
    limits: Limits,
    handler: MessageHandler,
    log: Arc<SinkLog>,
    mut up: watch::Receiver<bool>,
) {
    let address = match listener.local_addr() {
        Ok(address) => address,
        Err(_) => return,
    };
    let mut listener = Some(listener);
    let mut connections = JoinSet::new();
    loop {
        let Some(open) = &listener else {
            // Down: wait to be told to come back, then listen on the same port.
            if up.changed().await.is_err() {
                return;
            }
            if *up.borrow_and_update() {
                listener = relisten(address, &mut up).await;
                if listener.is_some() {
                    if let Some((_, back)) = log.outage.lock().expect("sink log").as_mut() {
                        *back = Some(Instant::now());
                    }
                }
            }
            continue;
        };
        tokio::select! {
            accepted = open.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                if connections.len() >= CONNECTIONS_MAX {
                    log.connections_refused.fetch_add(1, Ordering::Relaxed);
                    tokio::spawn(refuse(stream));
                    continue;
                }
                log.connections_accepted.fetch_add(1, Ordering::Relaxed);
                connections.spawn(session(stream, limits, handler.clone(), log.clone()));
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            changed = up.changed() => {
                if changed.is_err() {
                    return;
                }
                if !*up.borrow_and_update() {
                    listener = None;
                    connections.abort_all();
                    while let Some(ended) = connections.join_next().await {
                        // Sessions that had ended by themselves are not dropped ones.
                        if ended.is_err_and(|error| error.is_cancelled()) {
                            log.connections_dropped.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    *log.outage.lock().expect("sink log") = Some((Instant::now(), None));
                }
            }
        }
    }
}

/// Opens the listener again on `address`, retrying while the port is taken, unless told
/// to stay down meanwhile.
async fn relisten(address: SocketAddr, up: &mut watch::Receiver<bool>) -> Option<TcpListener> {
    loop {
        if let Ok(listener) = listen(address) {
            return Some(listener);
        }
        tokio::select! {
            () = tokio::time::sleep(REBIND_INTERVAL) => {}
            changed = up.changed() => {
                if changed.is_err() || !*up.borrow_and_update() {
                    return None;
                }
            }
        }
    }
}

async fn refuse(mut stream: TcpStream) {
    let _ = stream.write_all(b"421 Too many connections, try again later\r\n").await;
}

/// One connection, from the greeting to `QUIT`, the client going away, or the idle timeout.
async fn session(mut stream: TcpStream, limits: Limits, handler: MessageHandler, log: Arc<SinkLog>) {
    // The peer going away mid-session is no concern of a sink: the message was not taken.
    let _ = converse(&mut stream, limits, &handler, &log).await;
}

async fn converse(stream: &mut TcpStream, limits: Limits, handler: &MessageHandler, log: &SinkLog) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut session = Session::new(limits);
    let mut input = BytesMut::with_capacity(READ_BYTES);
    let mut out = Vec::with_capacity(1024);
    let mut messages = Vec::new();
    Session::greeting(&mut out);
    stream.write_all(&out).await?;
    out.clear();
    loop {
        input.reserve(READ_BYTES);
        match tokio::time::timeout(IDLE_TIMEOUT, stream.read_buf(&mut input)).await {
            Err(_) => return stream.write_all(b"421 Idle too long, closing\r\n").await,
            Ok(Ok(0)) => return Ok(()),
            Ok(Ok(_)) => {}
            Ok(Err(error)) => return Err(error),
        }
        let consumed = session.feed(&input, &mut out, &mut messages);
        input.advance(consumed);
        if !messages.is_empty() {
            let now = Instant::now();
            for message in messages.drain(..) {
                log.messages.fetch_add(1, Ordering::Relaxed);
                handler(message, now);
            }
        }
        if !out.is_empty() {
            stream.write_all(&out).await?;
            out.clear();
        }
        if session.is_closed() {
            return stream.shutdown().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` to a fresh session in chunks of `chunk` bytes (as packets would come),
    /// returning every reply and every message.
    fn converse(limits: Limits, input: &str, chunk: usize) -> (String, Vec<Message>) {
        let mut session = Session::new(limits);
        let (mut out, mut messages, mut pending) = (Vec::new(), Vec::new(), Vec::new());
        for piece in input.as_bytes().chunks(chunk) {
            pending.extend_from_slice(piece);
            let consumed = session.feed(&pending, &mut out, &mut messages);
            pending.drain(..consumed);
        }
        (String::from_utf8(out).expect("replies are text"), messages)
    }

    /// The reply codes to `input`, one per reply line (the EHLO's counted once, by its last line).
    fn check(input: &str, expected: &[u16]) {
        for chunk in [1, 7, input.len().max(1)] {
            let (replies, _) = converse(Limits::default(), input, chunk);
            let codes: Vec<u16> = replies
                .lines()
                .filter(|line| line.as_bytes().get(3) == Some(&b' '))
                .map(|line| line[..3].parse().expect("a code"))
                .collect();
            assert_eq!(codes, expected, "{input:?} in chunks of {chunk}:\n{replies}");
        }
    }

    const MAIL: &str = "EHLO relay.example\r\nMAIL FROM:<t@x.example>\r\nRCPT TO:<b@y.example>\r\nDATA\r\n";

    #[test]
    fn commands_in_and_out_of_sequence() {
        check("EHLO relay.example\r\nNOOP\r\nQUIT\r\n", &[250, 250, 221]);
        check("HELO relay.example\r\nRSET\r\nQUIT\r\nNOOP\r\n", &[250, 250, 221]);
        check("MAIL FROM:<a@b>\r\n", &[503]);
        check("EHLO x\r\nRCPT TO:<a@b>\r\nDATA\r\n", &[250, 503, 503]);
        check("EHLO x\r\nMAIL FROM:<a@b>\r\nDATA\r\n", &[250, 250, 554]);
        check("EHLO x\r\nMAIL FROM:<a@b>\r\nMAIL FROM:<a@b>\r\n", &[250, 250, 503]);
        check("EHLO x\r\nMAIL FROM:<a@b>\r\nRSET\r\nMAIL FROM:<>\r\n", &[250, 250, 250, 250]);
        check("EHLO\r\nHELO \r\n", &[501, 501]);
        check("EHLO x\r\nMAIL FROM:a@b\r\nRCPT TO:<a@b>\r\n", &[250, 501, 503]);
        check("EHLO x\r\nmail from: <a@b> SIZE=100 BODY=8BITMIME\r\nrcpt to:<c@d>\r\n", &[250, 250, 250]);
        check("EHLO x\r\nMAIL FROM:<a@b> SIZE=99999999999\r\n", &[250, 552]);
        check("EHLO x\r\nMAIL FROM:<a@b> BODY=BINARYMIME\r\nMAIL FROM:<a@b> SMTPUTF8\r\n", &[250, 501, 555]);
        check("EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<>\r\nRCPT TO:<c@d> NOTIFY=NEVER\r\n", &[250, 250, 501, 555]);
        check("STARTTLS\r\nAUTH PLAIN\r\nVRFY b\r\nFROB\r\n\r\n", &[502, 502, 252, 500, 500]);
        check("EHLO x\r\nDATA now\r\nRSET now\r\n", &[250, 501, 501]);
    }

    #[test]
    fn ehlo_advertises_what_the_sink_does() {
        let (replies, _) = converse(Limits::default(), "EHLO relay.example\r\n", 1000);
        assert_eq!(
            replies,
            format!("250-{NAME}\r\n250-8BITMIME\r\n250-SIZE {MESSAGE_BYTES_MAX}\r\n250 PIPELINING\r\n")
        );
        let mut greeting = Vec::new();
        Session::greeting(&mut greeting);
        assert!(greeting.starts_with(b"220 "));
    }

    #[test]
    fn a_message_is_unstuffed_and_its_message_id_kept() {
        let input = format!(
            "{MAIL}From: t@x.example\r\nMessage-ID:\r\n <hakken.order_confirmed.00ff@x.example>\r\nSubject: hi\r\n\r\n\
             ..leading dot\r\n.\r\n"
        );
        for chunk in [1, 3, 64, input.len()] {
            let limits = Limits { keep_messages: true, ..Limits::default() };
            let (replies, messages) = converse(limits, &input, chunk);
            assert!(replies.ends_with("354 End data with <CR><LF>.<CR><LF>\r\n250 OK queued as 1\r\n"), "{replies}");
            let content = "From: t@x.example\r\nMessage-ID:\r\n <hakken.order_confirmed.00ff@x.example>\r\nSubject: hi\r\n\r\n.leading dot\r\n";
            assert_eq!(
                messages,
                [Message {
                    message_id: Some("<hakken.order_confirmed.00ff@x.example>".into()),
                    bytes: content.len(),
                    recipients: 1,
                    content: Some(content.as_bytes().to_vec()),
                }],
                "chunks of {chunk}"
            );
        }
    }

    #[test]
    fn pipelined_transactions_and_rset() {
        let input = format!(
            "{MAIL}Message-ID: <a@x>\r\n\r\nbody\r\n.\r\nRSET\r\nMAIL FROM:<t@x>\r\nRCPT TO:<a@y>\r\nRCPT TO:<b@y>\r\n\
             DATA\r\nmessage-id: <b@x>\r\n\r\n.\r\nMAIL FROM:<t@x>\r\nRSET\r\nQUIT\r\n"
        );
        check(&input, &[250, 250, 250, 354, 250, 250, 250, 250, 250, 354, 250, 250, 250, 221]);
        let (_, messages) = converse(Limits::default(), &input, input.len());
        let ids: Vec<_> = messages.iter().map(|m| (m.message_id.as_deref(), m.recipients)).collect();
        assert_eq!(ids, [(Some("<a@x>"), 1), (Some("<b@x>"), 2)]);
        assert_eq!(messages[0].content, None, "not kept unless asked");
    }

    #[test]
    fn only_a_header_is_a_message_id() {
        let input = format!("{MAIL}Subject: x\r\n\r\nMessage-ID: <in-the-body@x>\r\n.\r\n");
        let (_, messages) = converse(Limits::default(), &input, 5);
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].message_id, None);
    }

    #[test]
    fn lines_too_long_are_refused_without_being_kept() {
        let long = "X".repeat(COMMAND_LINE_BYTES_MAX * 3);
        check(&format!("NOOP {long}\r\nNOOP\r\n"), &[500, 250]);
        let limits = Limits { keep_messages: true, ..Limits::default() };
        let input = format!("NOOP {long}\r\n");
        let mut session = Session::new(limits);
        let (mut out, mut messages) = (Vec::new(), Vec::new());
        // Without its end, the line is dropped as it comes rather than buffered.
        assert_eq!(session.feed(&input.as_bytes()[..1000], &mut out, &mut messages), 1000);
        assert!(out.is_empty());
        assert_eq!(session.feed(&input.as_bytes()[1000..], &mut out, &mut messages), input.len() - 1000);
        assert_eq!(out, b"500 Line too long\r\n");

        let text_line = "Y".repeat(TEXT_LINE_BYTES_MAX);
        let input = format!("{MAIL}Subject: x\r\n\r\n{text_line}\r\n.\r\nNOOP\r\n");
        check(&input, &[250, 250, 250, 354, 554, 250]);
        let just_fits = "Y".repeat(TEXT_LINE_BYTES_MAX - 2);
        check(&format!("{MAIL}\r\n{just_fits}\r\n.\r\n"), &[250, 250, 250, 354, 250]);
    }

    #[test]
    fn messages_over_the_size_are_refused() {
        let limits = Limits { message_bytes_max: 100, ..Limits::default() };
        let line = "Z".repeat(60);
        let input = format!("{MAIL}\r\n{line}\r\n{line}\r\n.\r\n{MAIL}\r\n{line}\r\n.\r\n");
        let (replies, messages) = converse(limits, &input, 10);
        let codes: Vec<&str> = replies.lines().filter(|l| l.as_bytes()[3] == b' ').map(|l| &l[..3]).collect();
        assert_eq!(codes, ["250", "250", "250", "354", "552", "250", "250", "250", "354", "250"]);
        assert_eq!(messages.len(), 1);
    }

    #[test]
    fn bare_line_feeds_are_taken() {
        check(
            "EHLO x\nMAIL FROM:<a@b>\nRCPT TO:<c@d>\nDATA\nMessage-ID: <q@x>\n\n.\nQUIT\n",
            &[250, 250, 250, 354, 250, 221],
        );
    }
}
