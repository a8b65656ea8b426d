//! hakken's SMTP client against a scripted SMTP server on 127.0.0.1 that counts sessions.
//!
//! How answers are classified: the server turns the recipient down with `451` (transient:
//! retry) or `550` (permanent: rejected), and its text (which quotes the address) never
//! reaches the outcome's detail. The connection pool: a kept connection is reused, no more
//! than `connections_max` sessions are ever open, and a kept connection the server closed
//! meanwhile is replaced without failing the send.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hakken_notify::smtp::CONNECTIONS_MAX_DEFAULT;
use hakken_notify::{DeliveryOutcome, EmailConfig, SmtpMailer, SmtpTls};
use lettre::Message;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

#[derive(Default)]
struct Counts {
    sessions: AtomicUsize,
    open: AtomicUsize,
    open_peak: AtomicUsize,
    messages: AtomicUsize,
}

/// How the scripted server answers.
#[derive(Clone, Copy)]
struct Script {
    /// The reply to `RCPT TO`.
    rcpt_reply: &'static str,
    /// End each session after a message's reply, as a server dropping idle sessions does.
    close_after_message: bool,
}

const TAKES_ALL: Script = Script { rcpt_reply: "250 ok\r\n", close_after_message: false };

/// An SMTP server answering as `script` says, counting sessions and messages.
async fn counting_server(script: Script) -> (u16, Arc<Counts>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let counts = Arc::new(Counts::default());
    let shared = counts.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let counts = shared.clone();
            counts.sessions.fetch_add(1, Ordering::SeqCst);
            let open = counts.open.fetch_add(1, Ordering::SeqCst) + 1;
            counts.open_peak.fetch_max(open, Ordering::SeqCst);
            tokio::spawn(async move {
                serve(stream, &counts, script).await;
                counts.open.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    (port, counts)
}

async fn serve(stream: tokio::net::TcpStream, counts: &Counts, script: Script) {
    let (reader, mut writer) = stream.into_split();
    let mut lines = BufReader::new(reader).lines();
    let _ = writer.write_all(b"220 counting ESMTP\r\n").await;
    let mut in_data = false;
    while let Ok(Some(line)) = lines.next_line().await {
        if in_data {
            if line == "." {
                in_data = false;
                counts.messages.fetch_add(1, Ordering::SeqCst);
                // Slow enough that concurrent sends overlap.
                tokio::time::sleep(Duration::from_millis(5)).await;
                let _ = writer.write_all(b"250 queued\r\n").await;
                if script.close_after_message {
                    return;
                }
            }
            continue;
        }
        let command = line.to_ascii_uppercase();
        let reply = if command.starts_with("EHLO") || command.starts_with("HELO") {
            "250-counting\r\n250 8BITMIME\r\n"
        } else if command.starts_with("MAIL FROM") || command.starts_with("RSET") || command.starts_with("NOOP") {
            "250 ok\r\n"
        } else if command.starts_with("RCPT TO") {
            script.rcpt_reply
        } else if command.starts_with("DATA") {
            in_data = true;
            "354 go ahead\r\n"
        } else if command.starts_with("QUIT") {
            let _ = writer.write_all(b"221 bye\r\n").await;
            return;
        } else {
            "502 not scripted\r\n"
        };
        if writer.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}

fn mailer(port: u16, connections_max: u32) -> SmtpMailer {
    SmtpMailer::new(&EmailConfig {
        smtp_host: "127.0.0.1".into(),
        smtp_port: port,
        from: "tickets@hakken.example".into(),
        username: None,
        password: None,
        tls: SmtpTls::None,
        timeout: Duration::from_secs(10),
        connections_max,
    })
    .expect("mailer")
}

fn message(mailer: &SmtpMailer, n: usize) -> Message {
    Message::builder()
        .from(mailer.from().clone())
        .to(format!("buyer{n}@example.com").parse().expect("to"))
        .subject("Your tickets")
        .body(format!("order {n}"))
        .expect("message")
}

#[tokio::test]
async fn transient_is_retry_and_permanent_is_rejected_without_the_address() {
    for (rcpt_reply, expected) in [
        (
            "451 4.7.1 <hanako@example.jp>: greylisted, try later\r\n",
            DeliveryOutcome::Retry { after: None, detail: "smtp 451".into() },
        ),
        ("550 5.1.1 <hanako@example.jp>: no such user\r\n", DeliveryOutcome::Rejected { detail: "smtp 550".into() }),
    ] {
        let (port, counts) = counting_server(Script { rcpt_reply, ..TAKES_ALL }).await;
        let mailer = mailer(port, CONNECTIONS_MAX_DEFAULT);
        let message = Message::builder()
            .from(mailer.from().clone())
            .to("hanako@example.jp".parse().expect("to"))
            .subject("test")
            .date(SystemTime::UNIX_EPOCH)
            .body(String::from("test"))
            .expect("message");
        assert_eq!(mailer.send(message).await, expected);
        assert_eq!(counts.messages.load(Ordering::SeqCst), 0, "nothing was taken");
    }
}

#[tokio::test]
async fn a_kept_connection_is_reused() {
    let (port, counts) = counting_server(TAKES_ALL).await;
    let mailer = mailer(port, 4);
    for n in 0..20 {
        assert_eq!(mailer.send(message(&mailer, n)).await, DeliveryOutcome::Delivered);
    }
    assert_eq!(counts.messages.load(Ordering::SeqCst), 20);
    assert_eq!(counts.sessions.load(Ordering::SeqCst), 1, "one session carried every message");
}

#[tokio::test]
async fn no_more_sessions_than_connections_max_are_open() {
    let (port, counts) = counting_server(TAKES_ALL).await;
    let mailer = mailer(port, 3);
    let sends: Vec<_> = (0..30)
        .map(|n| {
            let mailer = mailer.clone();
            tokio::spawn(async move { mailer.send(message(&mailer, n)).await })
        })
        .collect();
    for send in sends {
        assert_eq!(send.await.expect("send task"), DeliveryOutcome::Delivered);
    }
    assert_eq!(counts.messages.load(Ordering::SeqCst), 30);
    let peak = counts.open_peak.load(Ordering::SeqCst);
    assert!((1..=3).contains(&peak), "{peak} sessions open at once, at most 3 allowed");
    assert!(counts.sessions.load(Ordering::SeqCst) <= 3, "connections were reused, not reopened");
}

#[tokio::test]
async fn a_kept_connection_the_server_closed_is_replaced_without_failing_the_send() {
    let (port, counts) = counting_server(Script { close_after_message: true, ..TAKES_ALL }).await;
    let mailer = mailer(port, 2);
    for n in 0..5 {
        // Let the server's close reach the client, so the next send finds the kept
        // connection dead.
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(mailer.send(message(&mailer, n)).await, DeliveryOutcome::Delivered, "send {n}");
    }
    assert_eq!(counts.messages.load(Ordering::SeqCst), 5, "each message once");
    assert_eq!(counts.sessions.load(Ordering::SeqCst), 5, "a new session after each close");
}
