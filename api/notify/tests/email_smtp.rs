//! The ticket email through a real SMTP server: aiosmtpd on 127.0.0.1 (started and stopped
//! here, storing mail in a Maildir), then each stored email read back: its MIME parsed, the
//! inline QR PNGs decoded to the ticket codes, the text's human date and place checked, in
//! Japanese and English, and a resend found to carry the same Message-ID.
//!
//! Skips (with a message) only when `python3` is missing; with python3 present and aiosmtpd
//! missing it fails, naming the install line.

#[path = "support/smtp.rs"]
mod smtp;

use std::path::Path;
use std::time::{Duration, SystemTime};

use hakken_notify::email::build_message;
use hakken_notify::smtp::CONNECTIONS_MAX_DEFAULT;
use hakken_notify::{
    format_place, DeliveryOutcome, EmailConfig, EmailInput, EmailKind, Language, Place, SmtpMailer, SmtpTls, Templates,
    TicketInput, VenueTimeZone,
};
use smtp::{decode_qr_png, SmtpServer};

fn ticket_code(n: u32) -> String {
    // Shaped like a real code: `HK1.` + ~131 base64url characters.
    let filler: String = (0..131)
        .map(|index| {
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[(index * 7 + n as usize * 13) % 64]
                as char
        })
        .collect();
    format!("HK1.{filler}")
}

fn input(language: Language, order: &str, buyer: &str) -> EmailInput {
    let ticket = |n: u32| TicketInput {
        id: format!("{order}-t{n}"),
        place: Place::Seat { section: "S101".into(), row: "B".into(), number: (16 + n).to_string() },
        ticket_type: "Category 1".into(),
        code: ticket_code(n),
        page_url: format!("https://tickets.example.com/v1/tickets/{order}-t{n}/ticket.html"),
    };
    EmailInput {
        kind: EmailKind::OrderConfirmed,
        event_name: "Hakken Open Air 2027".into(),
        starts_at_ms: 1_815_208_200_000, // 2027-07-10T08:30:00Z: 17:30 in Tokyo
        venue_name: "Hakken Stadium".into(),
        venue_time_zone: VenueTimeZone::parse("Asia/Tokyo").expect("zone"),
        language,
        holder_name: "山田 花子".into(),
        buyer_email: buyer.into(),
        order_id: order.into(),
        occurrence: None,
        tickets: vec![ticket(0), ticket(1)],
    }
}

fn templates() -> Templates {
    Templates::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/notifications/templates"))
        .expect("templates")
}

/// One received email, taken apart.
struct Received {
    message_id: String,
    to: String,
    subject: String,
    text: String,
    html: String,
    /// (Content-ID without brackets, decoded QR text).
    qr_codes: Vec<(String, String)>,
    content_types: Vec<String>,
}

fn take_apart(raw: &[u8]) -> Received {
    let mail = mailparse::parse_mail(raw).expect("MIME");
    let header = |name: &str| {
        use mailparse::MailHeaderMap;
        mail.headers.get_first_value(name).unwrap_or_else(|| panic!("no {name} header"))
    };
    let mut received = Received {
        message_id: header("Message-ID"),
        to: header("To"),
        subject: header("Subject"),
        text: String::new(),
        html: String::new(),
        qr_codes: Vec::new(),
        content_types: Vec::new(),
    };
    collect_parts(&mail, &mut received);
    received
}

fn collect_parts(part: &mailparse::ParsedMail<'_>, received: &mut Received) {
    received.content_types.push(part.ctype.mimetype.clone());
    match part.ctype.mimetype.as_str() {
        "text/plain" => received.text = part.get_body().expect("text body"),
        // minijinja escapes `/` too (`&#x2f;`); undo the entities the checks meet.
        "text/html" => received.html = part.get_body().expect("html body").replace("&#x2f;", "/").replace("&amp;", "&"),
        "image/png" => {
            use mailparse::MailHeaderMap;
            let cid = part.headers.get_first_value("Content-ID").expect("Content-ID of an inline image");
            let png = part.get_body_raw().expect("png body");
            let codes = decode_qr_png(&png);
            assert_eq!(codes.len(), 1, "one QR symbol per image");
            received.qr_codes.push((cid.trim_start_matches('<').trim_end_matches('>').to_string(), codes[0].clone()));
        }
        _ => {}
    }
    for subpart in &part.subparts {
        collect_parts(subpart, received);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ticket_email_arrives_and_its_qr_codes_scan() {
    let Some(server) = SmtpServer::start() else {
        eprintln!("SKIPPED: python3 is not installed, so the SMTP test (aiosmtpd) did not run");
        return;
    };
    let mailer = SmtpMailer::new(&EmailConfig {
        smtp_host: "127.0.0.1".into(),
        smtp_port: server.port,
        from: "Hakken Tickets <tickets@hakken.example>".into(),
        username: None,
        password: None,
        tls: SmtpTls::None,
        timeout: Duration::from_secs(10),
        connections_max: CONNECTIONS_MAX_DEFAULT,
    })
    .expect("mailer");
    let templates = templates();
    let ja = input(Language::Ja, "o3-17", "hanako@example.jp");
    let en = input(Language::En, "o4-2", "alice@example.com");
    let sends = [&ja, &en, &ja]; // the last: a resend, as at-least-once delivery may make
    for email in sends {
        let message = build_message(&templates, email, mailer.from(), SystemTime::now()).expect("message");
        assert_eq!(mailer.send(message).await, DeliveryOutcome::Delivered);
    }

    let stored = server.emails();
    assert_eq!(stored.len(), 3, "three emails stored: {:?}", server.email_paths());
    let received: Vec<Received> = stored.iter().map(|raw| take_apart(raw)).collect();
    let by_order = |order: &str| received.iter().filter(|email| email.text.contains(order)).collect::<Vec<_>>();
    let (ja_copies, en_copies) = (by_order("o3-17"), by_order("o4-2"));
    assert_eq!((ja_copies.len(), en_copies.len()), (2, 1));

    // A resend is the same email to a receiver: the same Message-ID; another order, another.
    assert_eq!(ja_copies[0].message_id, ja_copies[1].message_id);
    assert_ne!(ja_copies[0].message_id, en_copies[0].message_id);
    assert!(
        ja_copies[0].message_id.starts_with("<hakken.order_confirmed.")
            && ja_copies[0].message_id.ends_with("@hakken.example>")
    );

    for (email, input, date) in
        [(ja_copies[0], &ja, "2027年7月10日(土) 17:30 開演"), (en_copies[0], &en, "Saturday 10 July 2027, 17:30 (JST)")]
    {
        let language = input.language;
        assert!(email.to.contains(&input.buyer_email), "To: {}", email.to);
        assert!(email.subject.contains("Hakken Open Air 2027"), "Subject: {}", email.subject);
        assert_eq!(email.content_types[..3], ["multipart/alternative", "text/plain", "multipart/related"]);
        assert!(email.text.contains(date), "{language}: {}", email.text);
        assert!(email.html.contains(date), "{language}: {}", email.html);
        assert!(email.text.contains(&input.holder_name) && email.text.contains(&input.order_id));
        for ticket in &input.tickets {
            let place = format_place(&ticket.place, language);
            assert!(email.text.contains(&place), "{language}: {place} not in {}", email.text);
            assert!(email.text.contains(&ticket.page_url));
            assert!(email.html.contains(&ticket.page_url));
        }
        // Each ticket's QR image decodes to its code, and the HTML shows it by Content-ID.
        let codes: Vec<&str> = email.qr_codes.iter().map(|(_, code)| code.as_str()).collect();
        assert_eq!(codes, input.tickets.iter().map(|ticket| ticket.code.as_str()).collect::<Vec<_>>());
        for (cid, _) in &email.qr_codes {
            assert!(email.html.contains(&format!("cid:{cid}")), "{language}: cid:{cid} not in the HTML");
        }
    }
    let ja_text = &ja_copies[0].text;
    assert!(ja_text.contains("S101ブロック B列 16番") && ja_text.contains("S101ブロック B列 17番"), "{ja_text}");
    assert!(en_copies[0].text.contains("Section S101, Row B, Seat 16"), "{}", en_copies[0].text);
}
