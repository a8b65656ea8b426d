//! What an outbox entry tells, read from the engine when it is delivered: the webhook
//! event (ids only) and, for the kinds buyers are told of, the email's input (the buyer
//! opened from its sealed data, the tickets with their signed codes).
//!
//! Reading at delivery time rather than copying at write time keeps personal data out of
//! the outbox and honours what happened since: an erased buyer gets no email, a ticket
//! reissued again is sent only with its newest code (by the newer entry), a confirmation
//! whose order was cancelled since is not sent (the refund email is).

use hakken_engine::actor::{ReadOrder, ReadPayment, SectionHandle, Unavailable};
use hakken_engine::ids::{HoldId, OrderId, SectionKey, TicketId};
use hakken_engine::inventory::{Order, OrderState, Units};
use hakken_engine::lockfree::{HoldNumber, OrderNumber};
use hakken_engine::tickets::{self, Viewer};
use hakken_engine::venue::{Section, SectionKind};
use hakken_engine::wal::{OutboxEntry, OutboxKindRecord};
use hakken_notify::{EmailInput, EmailKind, Language, Place, TicketInput, VenueTimeZone, WebhookEvent};

use crate::http::app::{Catalogue, ServedEvent};
use crate::privacy::{Privacy, Shown};

/// What one entry tells.
pub struct Told {
    pub webhook: WebhookEvent,
    /// The `webhook-id`: derived from what the entry tells (each change it names happens
    /// once), so it is the same on every attempt and after any restart.
    pub webhook_id: String,
    /// `None` for the kinds no buyer is emailed about.
    pub email: Option<Result<EmailInput, NotSent>>,
}

/// Why a buyer is not emailed about an entry (the delivery is skipped, not failed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotSent(pub &'static str);

/// Why an entry cannot be told now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ComposeError {
    /// The section's actor is busy or the store poisoned: try again later.
    #[error("the section is unavailable: {0}")]
    Unavailable(String),
    /// The event is no longer served or the entry names nothing it has: never tellable.
    #[error("{0}")]
    Gone(&'static str),
}

impl From<Unavailable> for ComposeError {
    fn from(unavailable: Unavailable) -> ComposeError {
        ComposeError::Unavailable(unavailable.to_string())
    }
}

/// The email kind of an outbox kind, if buyers are emailed about it.
pub fn email_kind(kind: OutboxKindRecord) -> Option<EmailKind> {
    match kind {
        OutboxKindRecord::OrderConfirmed => Some(EmailKind::OrderConfirmed),
        OutboxKindRecord::OrderRefunded => Some(EmailKind::OrderRefunded),
        OutboxKindRecord::TicketReissued => Some(EmailKind::TicketReissued),
        OutboxKindRecord::LatePaymentVoided => Some(EmailKind::LatePaymentVoided),
        OutboxKindRecord::LatePaymentReacquired => Some(EmailKind::LatePaymentReacquired),
        OutboxKindRecord::HoldExpiredWhilePaying | OutboxKindRecord::TicketCheckedIn => None,
    }
}

pub fn webhook_kind(kind: OutboxKindRecord) -> hakken_notify::WebhookEventKind {
    use hakken_notify::WebhookEventKind as K;
    match kind {
        OutboxKindRecord::OrderConfirmed => K::OrderConfirmed,
        OutboxKindRecord::OrderRefunded => K::OrderRefunded,
        OutboxKindRecord::TicketReissued => K::TicketReissued,
        OutboxKindRecord::LatePaymentVoided => K::PaymentLateVoided,
        OutboxKindRecord::LatePaymentReacquired => K::PaymentLateReacquired,
        OutboxKindRecord::HoldExpiredWhilePaying => K::HoldExpiredWhilePaying,
        OutboxKindRecord::TicketCheckedIn => K::TicketCheckedIn,
    }
}

/// The bounded label of an outbox kind (metrics, the admin view).
pub fn kind_label(kind: OutboxKindRecord) -> &'static str {
    match kind {
        OutboxKindRecord::OrderConfirmed => "order_confirmed",
        OutboxKindRecord::OrderRefunded => "order_refunded",
        OutboxKindRecord::TicketReissued => "ticket_reissued",
        OutboxKindRecord::LatePaymentVoided => "late_payment_voided",
        OutboxKindRecord::LatePaymentReacquired => "late_payment_reacquired",
        OutboxKindRecord::HoldExpiredWhilePaying => "hold_expired_while_paying",
        OutboxKindRecord::TicketCheckedIn => "ticket_checked_in",
    }
}

/// Where composing reads from.
pub struct Sources<'a> {
    pub catalogue: &'a Catalogue,
    pub privacy: &'a Privacy,
    /// The API's public base URL (no trailing slash), for ticket page links.
    pub public_url: &'a str,
}

pub async fn compose(sources: &Sources<'_>, entry: &OutboxEntry) -> Result<Told, ComposeError> {
    let key = SectionKey(entry.section);
    let (served, index) = sources.catalogue.locate(key).ok_or(ComposeError::Gone("the event is no longer served"))?;
    let handle = &served.sections[index];
    let order_id = entry.order.map(|number| OrderId { section: key, number: OrderNumber(number) });
    let hold_id = entry.hold.map(|number| HoldId { section: key, number: HoldNumber(number) });
    let order = match order_id {
        Some(order) => Some(
            handle
                .call(ReadOrder { order, viewer: Viewer::Admin })
                .await?
                .ok_or(ComposeError::Gone("the entry names an order the section does not have"))?,
        ),
        None => None,
    };
    let event = served.event.id.clone();
    let ticket_id = |order: OrderId| TicketId { order, index: entry.ticket.unwrap_or(0) };
    let missing = ComposeError::Gone("the entry lacks an id its kind needs");
    let (webhook, webhook_id) = match entry.kind {
        OutboxKindRecord::OrderConfirmed => {
            let order = order.as_ref().ok_or(missing.clone())?;
            let tickets = (0..ticket_count(order)).map(|index| TicketId { order: order.id, index }.to_string());
            let webhook =
                WebhookEvent::OrderConfirmed { event, order: order.id.to_string(), tickets: tickets.collect() };
            (webhook, format!("order-confirmed_{}", order.id))
        }
        OutboxKindRecord::OrderRefunded => {
            let order = order_id.ok_or(missing.clone())?;
            (WebhookEvent::OrderRefunded { event, order: order.to_string() }, format!("order-refunded_{order}"))
        }
        OutboxKindRecord::TicketReissued => {
            let order = order_id.ok_or(missing.clone())?;
            let version = entry.version.ok_or(missing.clone())?;
            let ticket = ticket_id(order);
            let webhook = WebhookEvent::TicketReissued {
                event,
                order: order.to_string(),
                ticket: ticket.to_string(),
                code_version: u32::from(version),
            };
            (webhook, format!("ticket-reissued_{ticket}_v{version}"))
        }
        OutboxKindRecord::TicketCheckedIn => {
            let order = order_id.ok_or(missing.clone())?;
            let ticket = ticket_id(order);
            let webhook = WebhookEvent::TicketCheckedIn {
                event,
                order: order.to_string(),
                ticket: ticket.to_string(),
                gate: entry.gate.clone(),
            };
            (webhook, format!("ticket-checked-in_{ticket}"))
        }
        OutboxKindRecord::LatePaymentVoided
        | OutboxKindRecord::LatePaymentReacquired
        | OutboxKindRecord::HoldExpiredWhilePaying => {
            let hold = hold_id.ok_or(missing.clone())?;
            let payment = psp_id(handle, hold).await?;
            let webhook = match (entry.kind, order_id) {
                (OutboxKindRecord::LatePaymentVoided, _) => {
                    WebhookEvent::PaymentLateVoided { event, hold: hold.to_string(), payment }
                }
                (OutboxKindRecord::LatePaymentReacquired, Some(order)) => WebhookEvent::PaymentLateReacquired {
                    event,
                    hold: hold.to_string(),
                    payment,
                    order: order.to_string(),
                },
                (OutboxKindRecord::LatePaymentReacquired, None) => return Err(missing),
                _ => WebhookEvent::HoldExpiredWhilePaying { event, hold: hold.to_string(), payment },
            };
            let slug = kind_label(entry.kind).replace('_', "-");
            (webhook, format!("{slug}_{hold}"))
        }
    };
    let email = match email_kind(entry.kind) {
        None => None,
        Some(kind) => Some(email_input(sources, served, index, entry, kind, order.as_ref(), hold_id).await?),
    };
    Ok(Told { webhook, webhook_id, email })
}

async fn psp_id(handle: &SectionHandle, hold: HoldId) -> Result<String, ComposeError> {
    let payment = handle.call(ReadPayment { hold }).await?;
    Ok(payment.map(|payment| payment.psp_id).unwrap_or_default())
}

fn ticket_count(order: &Order) -> u16 {
    u16::try_from(order.units.count()).unwrap_or(u16::MAX)
}

async fn email_input(
    sources: &Sources<'_>,
    served: &ServedEvent,
    index: usize,
    entry: &OutboxEntry,
    kind: EmailKind,
    order: Option<&Order>,
    hold: Option<HoldId>,
) -> Result<Result<EmailInput, NotSent>, ComposeError> {
    let (buyer, order_id, customer) = match (kind, order) {
        (EmailKind::LatePaymentVoided, _) => {
            let hold = hold.ok_or(ComposeError::Gone("a voided late payment names its hold"))?;
            let payment = served.sections[index].call(ReadPayment { hold }).await?;
            let payment = payment.ok_or(ComposeError::Gone("the hold has no payment"))?;
            (payment.buyer, hold.to_string(), payment.customer)
        }
        (_, Some(order)) => (order.buyer.clone(), order.id.to_string(), order.customer.clone()),
        (_, None) => return Err(ComposeError::Gone("the entry names no order")),
    };
    let data = match sources.privacy.show(&buyer) {
        Shown::Readable(data) => data,
        Shown::Erased => return Ok(Err(NotSent("the buyer's data was erased"))),
        Shown::Unreadable => return Ok(Err(NotSent("no configured key opens the buyer's data"))),
    };
    if data.email.trim().is_empty() {
        return Ok(Err(NotSent("the buyer gave no email address")));
    }
    let section = &served.venue.sections[index];
    let mut occurrence = None;
    let mut tickets = Vec::new();
    if let Some(order) = order.filter(|_| kind.carries_tickets()) {
        if order.state == OrderState::Cancelled {
            return Ok(Err(NotSent("the order was cancelled since")));
        }
        let indices: Vec<u16> = match kind {
            EmailKind::TicketReissued => {
                let ticket = entry.ticket.unwrap_or(0);
                if Some(order.ticket(ticket).version) != entry.version {
                    return Ok(Err(NotSent("the ticket was reissued again since (a later email has its code)")));
                }
                let id = TicketId { order: order.id, index: ticket };
                occurrence = Some(format!("{id}.v{}", order.ticket(ticket).version));
                vec![ticket]
            }
            _ => (0..ticket_count(order)).collect(),
        };
        for ticket in indices {
            tickets.push(ticket_input(sources, served, section, order, ticket, &customer.0)?);
        }
    }
    let (time_zone, language) = locale(served);
    Ok(Ok(EmailInput {
        kind,
        event_name: served.event.name.clone(),
        starts_at_ms: served.event.starts_at.0,
        venue_name: served.venue.name.clone(),
        venue_time_zone: time_zone,
        language,
        holder_name: data.name,
        buyer_email: data.email,
        order_id,
        occurrence,
        tickets,
    }))
}

/// The venue's time zone and the event's language (checked when the event was served).
fn locale(served: &ServedEvent) -> (VenueTimeZone, Language) {
    (served.time_zone.clone(), served.language)
}

fn ticket_input(
    sources: &Sources<'_>,
    served: &ServedEvent,
    section: &Section,
    order: &Order,
    index: u16,
    customer: &str,
) -> Result<TicketInput, ComposeError> {
    let unsignable = ComposeError::Gone("the order has no such ticket");
    let version = order.ticket(index).version;
    let claim = tickets::claim(&served.event.id, section, order, index, version).ok_or(unsignable.clone())?;
    let code = served.signing.sign(&claim).map_err(|_| unsignable.clone())?;
    let (place, category) = readable_place(section, order, index).ok_or(unsignable)?;
    let ticket_type = served
        .event
        .ticket_types
        .iter()
        .find(|ticket_type| ticket_type.category == category)
        .map(|ticket_type| ticket_type.name.clone())
        .unwrap_or_default();
    let id = TicketId { order: order.id, index };
    let page_url = format!("{}/v1/tickets/{id}/ticket.html?customer={}", sources.public_url, query_escape(customer));
    Ok(TicketInput { id: id.to_string(), place, ticket_type, code, page_url })
}

/// Ticket `index` of `order` as a person reads it: the section's name, the row's label
/// and the seat's number (or the standing area's name), and its category.
pub fn readable_place(
    section: &Section,
    order: &Order,
    index: u16,
) -> Option<(Place, hakken_engine::venue::CategoryIndex)> {
    match (&section.kind, &order.units) {
        (SectionKind::Reserved(map), Units::Seats(seats)) => {
            let seat = map.seats.get(*seats.get(usize::from(index))? as usize)?;
            let row = map.rows.get(usize::from(seat.row))?;
            let place = Place::Seat {
                section: section.name.clone(),
                row: row.label.to_string(),
                number: seat.number.to_string(),
            };
            Some((place, seat.category))
        }
        (SectionKind::GeneralAdmission { category, .. }, Units::Quantity(quantity)) => (u32::from(index) < *quantity)
            .then(|| (Place::GeneralAdmission { section: section.name.clone() }, *category)),
        _ => None,
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn query_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            escaped.push(char::from(byte));
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
    fn customer_ids_are_escaped_in_links() {
        assert_eq!(query_escape("cust-42_a.b~"), "cust-42_a.b~");
        assert_eq!(query_escape("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }

    #[test]
    fn every_kind_has_a_webhook_type_and_the_buyer_kinds_an_email() {
        use OutboxKindRecord::*;
        let all = [
            OrderConfirmed,
            OrderRefunded,
            TicketReissued,
            LatePaymentVoided,
            LatePaymentReacquired,
            HoldExpiredWhilePaying,
            TicketCheckedIn,
        ];
        let types: std::collections::BTreeSet<_> = all.iter().map(|kind| webhook_kind(*kind)).collect();
        assert_eq!(types.len(), 7);
        let emailed: Vec<_> = all.iter().filter_map(|kind| email_kind(*kind)).collect();
        assert_eq!(emailed.len(), 5);
        assert!(all.iter().all(|kind| kind_label(*kind) == kind_label(*kind).to_lowercase()));
    }
}
