//! How SMTP answers are classified, against a scripted SMTP server on 127.0.0.1 that turns
//! the recipient down: `451` (transient: retry), `550` (permanent: rejected), and the
//! server's text (which quotes the address) never reaching the outcome's detail.

use std::time::{Duration, SystemTime};

use hakken_notify::smtp::CONNECTIONS_MAX_DEFAULT;
use hakken_notify::{DeliveryOutcome, EmailConfig, SmtpMailer, SmtpTls};
use lettre::Message;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// An SMTP server that accepts the session and answers `RCPT TO` with `rcpt_reply`.
async fn scripted_server(rcpt_reply: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (reader, mut writer) = stream.into_split();
                let mut lines = BufReader::new(reader).lines();
                let _ = writer.write_all(b"220 scripted ESMTP\r\n").await;
                while let Ok(Some(line)) = lines.next_line().await {
                    let command = line.to_ascii_uppercase();
                    let reply = if command.starts_with("EHLO") || command.starts_with("HELO") {
                        "250 scripted\r\n"
                    } else if command.starts_with("MAIL FROM")
                        || command.starts_with("RSET")
                        || command.starts_with("NOOP")
                    {
                        "250 ok\r\n"
                    } else if command.starts_with("RCPT TO") {
                        rcpt_reply
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
            });
        }
    });
    port
}

async fn send_to(port: u16) -> DeliveryOutcome {
    let mailer = SmtpMailer::new(&EmailConfig {
        smtp_host: "127.0.0.1".into(),
        smtp_port: port,
        from: "tickets@hakken.example".into(),
        username: None,
        password: None,
        tls: SmtpTls::None,
        timeout: Duration::from_secs(5),
        connections_max: CONNECTIONS_MAX_DEFAULT,
    })
    .expect("mailer");
    let message = Message::builder()
        .from(mailer.from().clone())
        .to("hanako@example.jp".parse().expect("to"))
        .subject("test")
        .date(SystemTime::UNIX_EPOCH)
        .body(String::from("test"))
        .expect("message");
    mailer.send(message).await
}

#[tokio::test]
async fn transient_is_retry_and_permanent_is_rejected_without_the_address() {
    let transient = send_to(scripted_server("451 4.7.1 <hanako@example.jp>: greylisted, try later\r\n").await).await;
    assert_eq!(transient, DeliveryOutcome::Retry { after: None, detail: "smtp 451".into() });
    let permanent = send_to(scripted_server("550 5.1.1 <hanako@example.jp>: no such user\r\n").await).await;
    assert_eq!(permanent, DeliveryOutcome::Rejected { detail: "smtp 550".into() });
}
