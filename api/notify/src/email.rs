//! The buyer emails: what the relay gives ([`EmailInput`], plain values read from the
//! order) and the MIME message made from it.
//!
//! Shape: `multipart/alternative` of a text part and the HTML; when the email carries
//! tickets, the HTML is in a `multipart/related` with each ticket's QR code as an inline
//! PNG (`Content-ID`, referenced as `cid:` by the HTML), so the codes show without loading
//! anything remote. `Message-ID` is derived from (order id, kind, occurrence): the relay
//! delivers at least once, and a resend carries the same id, so mail clients and the tests
//! can tell a duplicate. `Auto-Submitted: auto-generated` (RFC 3834) keeps vacation
//! responders from answering.

use std::fmt;
use std::time::SystemTime;

use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::{Address, Message};
use sha2::{Digest, Sha256};

use crate::datetime::{format_starts_at, VenueTimeZone};
use crate::language::Language;
use crate::place::{format_place, Place};
use crate::qr::{qr_png, QrError};
use crate::templates::{EmailContext, TemplateError, Templates, TicketContext};

/// Tickets in one email at most: an order's seats are bounded by the engine's seats per
/// hold; beyond this an email of QR codes is no longer something a person scrolls.
pub const TICKETS_PER_EMAIL_MAX: usize = 64;

/// Longest text field (names, ids, labels, URLs) accepted in an input.
pub const FIELD_CHARS_MAX: usize = 1024;

/// The buyer emails. Each has templates per language (see `templates`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EmailKind {
    /// The ticket email: every ticket with its QR code.
    OrderConfirmed,
    /// The order was cancelled and refunded (or its authorization voided); its tickets no
    /// longer admit.
    OrderRefunded,
    /// A ticket got a new code: the new QR; the old one no longer admits.
    TicketReissued,
    /// The payment came after the hold ended and the seats were gone (or the event voids
    /// late payments): the authorization was voided, no money taken.
    LatePaymentVoided,
    /// The payment came after the hold ended and the same seats were still free: the
    /// seats are confirmed, with the tickets.
    LatePaymentReacquired,
}

impl EmailKind {
    pub const ALL: [EmailKind; 5] = [
        EmailKind::OrderConfirmed,
        EmailKind::OrderRefunded,
        EmailKind::TicketReissued,
        EmailKind::LatePaymentVoided,
        EmailKind::LatePaymentReacquired,
    ];

    /// The templates' file name stem and the `Message-ID`'s kind; also a bounded metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            EmailKind::OrderConfirmed => "order_confirmed",
            EmailKind::OrderRefunded => "order_refunded",
            EmailKind::TicketReissued => "ticket_reissued",
            EmailKind::LatePaymentVoided => "late_payment_voided",
            EmailKind::LatePaymentReacquired => "late_payment_reacquired",
        }
    }

    /// Whether the email shows tickets with their QR codes (and so needs at least one).
    pub fn carries_tickets(self) -> bool {
        matches!(self, EmailKind::OrderConfirmed | EmailKind::TicketReissued | EmailKind::LatePaymentReacquired)
    }
}

/// One ticket as the email shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct TicketInput {
    pub id: String,
    pub place: Place,
    /// The ticket type's name (`Category 1`).
    pub ticket_type: String,
    /// The signed ticket code the QR encodes (`HK1.…`): what the gate scans.
    pub code: String,
    /// The printable page (`https://…/v1/tickets/{ticket}/ticket.html`).
    pub page_url: String,
}

impl fmt::Debug for TicketInput {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The code admits its holder: not for logs.
        formatter
            .debug_struct("TicketInput")
            .field("id", &self.id)
            .field("place", &self.place)
            .field("ticket_type", &self.ticket_type)
            .field("code", &"redacted")
            .finish_non_exhaustive()
    }
}

/// Everything one email needs, read from the order by the relay. `Debug` redacts the
/// holder's name, the address and the codes.
#[derive(Clone)]
pub struct EmailInput {
    pub kind: EmailKind,
    pub event_name: String,
    /// Milliseconds since the Unix epoch, UTC (the engine's `Millis`).
    pub starts_at_ms: u64,
    pub venue_name: String,
    pub venue_time_zone: VenueTimeZone,
    pub language: Language,
    pub holder_name: String,
    /// The buyer's address: the `To`.
    pub buyer_email: String,
    /// The order's id; for `LatePaymentVoided`, which has no order, the hold's id.
    pub order_id: String,
    /// What tells apart two emails of one kind for one order, so they get two Message-IDs:
    /// for `TicketReissued`, the ticket id and its code version (`t3-17-0.v2`); `None` for
    /// the kinds sent once per order.
    pub occurrence: Option<String>,
    /// The tickets shown; at least one for the kinds that carry tickets, none otherwise
    /// (any given are ignored).
    pub tickets: Vec<TicketInput>,
}

impl fmt::Debug for EmailInput {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("EmailInput")
            .field("kind", &self.kind)
            .field("event_name", &self.event_name)
            .field("starts_at_ms", &self.starts_at_ms)
            .field("venue_name", &self.venue_name)
            .field("venue_time_zone", &self.venue_time_zone.name())
            .field("language", &self.language)
            .field("holder_name", &"redacted")
            .field("buyer_email", &"redacted")
            .field("order_id", &self.order_id)
            .field("occurrence", &self.occurrence)
            .field("tickets", &self.tickets)
            .finish()
    }
}

/// Why an email could not be made. Never retryable: the same input fails the same way, so
/// the relay dead-letters it. Messages name fields, never their personal values.
#[derive(Debug, thiserror::Error)]
pub enum EmailError {
    #[error("email input: {field} {reason}")]
    Input { field: &'static str, reason: &'static str },
    #[error("email input: ticket {ticket}: {source}")]
    Qr { ticket: String, source: QrError },
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("email message: {0}")]
    Message(String),
}

/// The rendered texts of one email, before MIME (for previews and tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedEmail {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The stable `Message-ID` of an email: `<hakken.{kind}.{32 hex digits}@{domain}>`, the hex
/// a SHA-256 of the order id, kind and occurrence (ids are not spelled out in a header
/// every relay logs). `domain` is the sender's.
pub fn message_id(order_id: &str, kind: EmailKind, occurrence: Option<&str>, domain: &str) -> String {
    let mut hash = Sha256::new();
    for piece in [order_id, kind.as_str(), occurrence.unwrap_or("")] {
        // Length-prefixed, so ("ab", "c") and ("a", "bc") differ.
        hash.update((piece.len() as u64).to_be_bytes());
        hash.update(piece.as_bytes());
    }
    let digest = hash.finalize();
    let hex: String = digest[..16].iter().map(|byte| format!("{byte:02x}")).collect();
    format!("<hakken.{}.{hex}@{domain}>", kind.as_str())
}

/// The subject, text and HTML of an email.
pub fn render_email(templates: &Templates, input: &EmailInput) -> Result<RenderedEmail, EmailError> {
    check_input(input)?;
    let parts = templates.render(input.kind, input.language, &context(input, &content_ids(input, "hakken.invalid")))?;
    Ok(RenderedEmail { subject: parts.subject, text: parts.text, html: parts.html })
}

/// The MIME message of an email from `from` to the buyer, dated `date`.
pub fn build_message(
    templates: &Templates,
    input: &EmailInput,
    from: &Mailbox,
    date: SystemTime,
) -> Result<Message, EmailError> {
    check_input(input)?;
    let address: Address = input
        .buyer_email
        .trim()
        .parse()
        .map_err(|_| EmailError::Input { field: "buyer_email", reason: "is not an email address" })?;
    let to = Mailbox::new(Some(input.holder_name.clone()), address);
    let domain = from.email.domain();
    let cids = content_ids(input, domain);
    let parts = templates.render(input.kind, input.language, &context(input, &cids))?;
    let message_id = message_id(&input.order_id, input.kind, input.occurrence.as_deref(), domain);

    let text = SinglePart::plain(parts.text);
    let html = SinglePart::html(parts.html);
    let body = if input.kind.carries_tickets() {
        let mut related = MultiPart::related().singlepart(html);
        for (index, (ticket, cid)) in input.tickets.iter().zip(&cids).enumerate() {
            let png = qr_png(&ticket.code).map_err(|source| EmailError::Qr { ticket: ticket.id.clone(), source })?;
            let image = Attachment::new_inline_with_name(cid.clone(), format!("ticket-{}.png", index + 1))
                .body(png, ContentType::parse("image/png").map_err(|error| EmailError::Message(error.to_string()))?);
            related = related.singlepart(image);
        }
        MultiPart::alternative().singlepart(text).multipart(related)
    } else {
        MultiPart::alternative().singlepart(text).singlepart(html)
    };
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(parts.subject)
        .message_id(Some(message_id))
        .date(date)
        .raw_header(HeaderValue::new(HeaderName::new_from_ascii_str("Auto-Submitted"), "auto-generated".into()))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("Content-Language"),
            input.language.as_str().into(),
        ))
        .multipart(body)
        // lettre's error names the missing header or bad address kind, not its value.
        .map_err(|error| EmailError::Message(error.to_string()))
}

/// The Content-IDs of the tickets' QR images (without angle brackets, as `cid:` takes them).
fn content_ids(input: &EmailInput, domain: &str) -> Vec<String> {
    let id = message_id(&input.order_id, input.kind, input.occurrence.as_deref(), domain);
    // `<hakken.kind.hex@domain>` → `hakken.kind.hex`: unique per email, so per image with the index.
    let local = id.trim_start_matches('<').split('@').next().unwrap_or("hakken").to_string();
    (0..input.tickets.len()).map(|index| format!("qr{index}.{local}@{domain}")).collect()
}

fn context(input: &EmailInput, content_ids: &[String]) -> EmailContext {
    let tickets = if input.kind.carries_tickets() {
        input
            .tickets
            .iter()
            .zip(content_ids)
            .map(|(ticket, cid)| TicketContext {
                id: ticket.id.clone(),
                place: format_place(&ticket.place, input.language),
                ticket_type: ticket.ticket_type.clone(),
                page_url: ticket.page_url.clone(),
                qr_cid: cid.clone(),
            })
            .collect()
    } else {
        Vec::new()
    };
    EmailContext {
        event_name: input.event_name.clone(),
        starts_at: format_starts_at(input.starts_at_ms, &input.venue_time_zone, input.language),
        venue_name: input.venue_name.clone(),
        holder_name: input.holder_name.clone(),
        order_id: input.order_id.clone(),
        tickets,
    }
}

fn check_input(input: &EmailInput) -> Result<(), EmailError> {
    let input_error = |field, reason| Err(EmailError::Input { field, reason });
    let texts = [
        ("event_name", input.event_name.as_str()),
        ("venue_name", &input.venue_name),
        ("holder_name", &input.holder_name),
        ("order_id", &input.order_id),
        ("occurrence", input.occurrence.as_deref().unwrap_or("-")),
    ];
    for (field, text) in texts {
        check_text(field, text)?;
    }
    if input.kind.carries_tickets() {
        if input.tickets.is_empty() {
            return input_error("tickets", "is empty; this kind of email shows tickets");
        }
        if input.tickets.len() > TICKETS_PER_EMAIL_MAX {
            return input_error("tickets", "has more than 64 tickets");
        }
        for ticket in &input.tickets {
            check_text("ticket id", &ticket.id)?;
            check_text("ticket_type", &ticket.ticket_type)?;
            check_text("page_url", &ticket.page_url)?;
            if !(ticket.page_url.starts_with("https://") || ticket.page_url.starts_with("http://")) {
                return input_error("page_url", "is not an http(s) URL");
            }
            let labels = match &ticket.place {
                Place::Seat { section, row, number } => vec![section, row, number],
                Place::GeneralAdmission { section } => vec![section],
            };
            for label in labels {
                check_text("place", label)?;
            }
        }
    }
    Ok(())
}

/// Non-empty, bounded, no control characters (a newline in a name must not reach a header).
fn check_text(field: &'static str, text: &str) -> Result<(), EmailError> {
    if text.trim().is_empty() {
        return Err(EmailError::Input { field, reason: "is empty" });
    }
    if text.chars().count() > FIELD_CHARS_MAX {
        return Err(EmailError::Input { field, reason: "is longer than 1024 characters" });
    }
    if text.chars().any(char::is_control) {
        return Err(EmailError::Input { field, reason: "has a control character" });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::templates::tests::shipped;

    pub(crate) fn input(kind: EmailKind, language: Language) -> EmailInput {
        let ticket = |n: u32| TicketInput {
            id: format!("t3-17-{n}"),
            place: Place::Seat { section: "S101".into(), row: "B".into(), number: (16 + n).to_string() },
            ticket_type: "Category 1".into(),
            code: format!("HK1.code-of-ticket-{n}"),
            page_url: format!("https://tickets.example.com/v1/tickets/t3-17-{n}/ticket.html"),
        };
        EmailInput {
            kind,
            event_name: "Hakken Open Air 2027".into(),
            starts_at_ms: 1_815_208_200_000, // 2027-07-10T08:30:00Z, 17:30 in Tokyo
            venue_name: "Hakken Stadium".into(),
            venue_time_zone: VenueTimeZone::parse("Asia/Tokyo").expect("zone"),
            language,
            holder_name: "Hanako Yamada".into(),
            buyer_email: "hanako@example.com".into(),
            order_id: "o3-17".into(),
            occurrence: None,
            tickets: vec![ticket(0), ticket(1)],
        }
    }

    fn templates() -> Templates {
        Templates::load(&shipped()).expect("shipped templates")
    }

    #[test]
    fn every_kind_renders_in_both_languages() {
        let templates = templates();
        for kind in EmailKind::ALL {
            for language in Language::ALL {
                let email = render_email(&templates, &input(kind, language)).expect("render");
                assert!(email.text.contains("o3-17"), "{kind:?} {language}: {}", email.text);
                assert!(email.text.contains("Hakken Open Air 2027"), "{kind:?} {language}");
                if kind.carries_tickets() {
                    let place = format_place(&input(kind, language).tickets[0].place, language);
                    assert!(email.text.contains(&place), "{kind:?} {language}: {}", email.text);
                    assert!(email.html.contains("cid:qr0.hakken."), "{kind:?} {language}");
                }
            }
        }
        let ja = render_email(&templates, &input(EmailKind::OrderConfirmed, Language::Ja)).expect("ja");
        assert!(ja.text.contains("2027年7月10日(土) 17:30 開演"), "{}", ja.text);
        let en = render_email(&templates, &input(EmailKind::OrderConfirmed, Language::En)).expect("en");
        assert!(en.text.contains("Saturday 10 July 2027, 17:30 (JST)"), "{}", en.text);
        assert!(en.text.contains("Section S101, Row B, Seat 16"), "{}", en.text);
    }

    #[test]
    fn message_ids_are_stable_per_order_kind_and_occurrence() {
        let id = message_id("o3-17", EmailKind::OrderConfirmed, None, "tickets.example.com");
        assert_eq!(id, message_id("o3-17", EmailKind::OrderConfirmed, None, "tickets.example.com"));
        assert!(id.starts_with("<hakken.order_confirmed.") && id.ends_with("@tickets.example.com>"), "{id}");
        assert_ne!(id, message_id("o3-18", EmailKind::OrderConfirmed, None, "tickets.example.com"));
        assert_ne!(id, message_id("o3-17", EmailKind::OrderRefunded, None, "tickets.example.com"));
        let first = message_id("o3-17", EmailKind::TicketReissued, Some("t3-17-0.v2"), "x");
        assert_ne!(first, message_id("o3-17", EmailKind::TicketReissued, Some("t3-17-0.v3"), "x"));
    }

    #[test]
    fn inputs_are_checked_without_echoing_personal_data() {
        let templates = templates();
        let from: Mailbox = "Tickets <tickets@example.com>".parse().expect("from");
        let mut no_tickets = input(EmailKind::OrderConfirmed, Language::En);
        no_tickets.tickets.clear();
        assert!(matches!(render_email(&templates, &no_tickets), Err(EmailError::Input { field: "tickets", .. })));
        let mut refund = input(EmailKind::OrderRefunded, Language::En);
        refund.tickets.clear();
        assert!(render_email(&templates, &refund).is_ok());
        let mut bad_address = input(EmailKind::OrderRefunded, Language::En);
        bad_address.buyer_email = "hanako at example".into();
        let error = build_message(&templates, &bad_address, &from, SystemTime::UNIX_EPOCH).expect_err("bad address");
        assert!(!error.to_string().contains("hanako"), "{error}");
        let mut header_injection = input(EmailKind::OrderConfirmed, Language::En);
        header_injection.holder_name = "Eve\r\nBcc: victim@example.com".into();
        assert!(matches!(
            render_email(&templates, &header_injection),
            Err(EmailError::Input { field: "holder_name", .. })
        ));
        let mut script_url = input(EmailKind::OrderConfirmed, Language::En);
        script_url.tickets[0].page_url = "javascript:alert(1)".into();
        assert!(matches!(render_email(&templates, &script_url), Err(EmailError::Input { field: "page_url", .. })));
        let shown = format!("{:?}", input(EmailKind::OrderConfirmed, Language::En));
        assert!(!shown.contains("Hanako") && !shown.contains("hanako@") && !shown.contains("HK1."), "{shown}");
    }

    #[test]
    fn the_message_is_alternative_with_related_inline_qr_codes() {
        let from: Mailbox = "Tickets <tickets@example.com>".parse().expect("from");
        let message =
            build_message(&templates(), &input(EmailKind::OrderConfirmed, Language::Ja), &from, SystemTime::UNIX_EPOCH)
                .expect("message");
        let raw = String::from_utf8(message.formatted()).expect("ASCII message");
        let content_types: Vec<&str> =
            raw.lines().filter(|line| line.to_ascii_lowercase().starts_with("content-type:")).collect();
        assert!(content_types[0].contains("multipart/alternative"), "{content_types:?}");
        assert!(content_types.iter().any(|line| line.contains("multipart/related")), "{content_types:?}");
        assert_eq!(content_types.iter().filter(|line| line.contains("image/png")).count(), 2);
        assert!(raw.contains("Message-ID: <hakken.order_confirmed."), "{raw}");
        assert!(raw.contains("Auto-Submitted: auto-generated") && raw.contains("Content-Language: ja"));
        let refund =
            build_message(&templates(), &input(EmailKind::OrderRefunded, Language::En), &from, SystemTime::UNIX_EPOCH)
                .expect("refund");
        let raw = String::from_utf8(refund.formatted()).expect("ASCII message");
        assert!(!raw.contains("multipart/related") && !raw.contains("image/png"));
    }
}
