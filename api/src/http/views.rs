//! Request and response bodies of the API, as the OpenAPI document describes them.
//!
//! Responses are built from engine values here and only here; handlers stay short.
//! Times are RFC 3339 strings in UTC (`expires_at`), with the same instant in
//! milliseconds since the epoch beside them (`expires_at_ms`) for programs.

use hakken_engine::event::{format_instant, Event};
use hakken_engine::ids::{HoldId, OrderId};
use hakken_engine::inventory::{Counts, Hold, Order, OrderState, Units};
use hakken_engine::venue::{CategoryIndex, Section, SectionKind, Venue};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::http::app::ServedEvent;
use crate::http::error::ErrorDetail;
use crate::http::payment_views::PaymentView;
use crate::privacy::{Privacy, Shown};

#[derive(Serialize, ToSchema)]
pub struct EventsResponse {
    pub events: Vec<EventSummary>,
}

#[derive(Serialize, ToSchema)]
pub struct EventSummary {
    pub id: String,
    pub name: String,
    pub venue: String,
    pub starts_at: String,
    pub on_sale: OnSale,
    /// ISO 4217.
    pub currency: String,
    pub capacity: u64,
    /// The event's waiting room (README, "Waiting room"), null without one: then holds
    /// need an access from it.
    pub queue: Option<QueueSummary>,
}

/// An event's waiting-room settings, as `[queue]` in an event file names them.
#[derive(Serialize, ToSchema)]
pub struct QueueSummary {
    /// Always true here: a room switched off is served as no room (`queue` null).
    pub enabled: bool,
    pub opens_before_sale_s: u64,
    pub admit_per_s_min: u32,
    pub admit_per_s_max: u32,
    pub access_window_s: u64,
    pub places_max: u32,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct OnSale {
    /// Holds are accepted from this instant (inclusive) ...
    pub opens_at: String,
    /// ... to this one (exclusive).
    pub closes_at: String,
    /// Whether the sale is open at the time of the answer (ignored in requests).
    #[serde(default)]
    pub open_now: bool,
}

#[derive(Serialize, ToSchema)]
pub struct EventResponse {
    pub event: EventDetail,
}

#[derive(Serialize, ToSchema)]
pub struct EventDetail {
    #[serde(flatten)]
    pub summary: EventSummary,
    pub sections: Vec<SectionSummary>,
    pub categories: Vec<CategoryView>,
    pub ticket_types: Vec<TicketTypeView>,
}

#[derive(Serialize, ToSchema)]
pub struct SectionSummary {
    pub id: String,
    pub name: String,
    /// `reserved` (rows and numbered seats) or `general_admission` (a capacity).
    pub kind: &'static str,
    pub capacity: u32,
    /// General admission only: the one price category of the area.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct CategoryView {
    pub id: String,
    pub name: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct TicketTypeView {
    /// 1-64 letters, digits, `-`, `_` or `.`; unique in the event.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$", example = "CAT1")]
    pub id: String,
    #[schema(example = "Category 1")]
    pub name: String,
    /// Category id of the venue.
    #[schema(example = "CAT1")]
    pub category: String,
    /// Minor units of the event's currency (cents), taxes and fees included.
    pub price_minor: u64,
}

#[derive(Serialize, ToSchema)]
pub struct AvailabilityResponse {
    pub event: String,
    /// When the counts were read.
    pub at: String,
    pub total: CountsView,
    pub sections: Vec<SectionAvailability>,
}

#[derive(Serialize, ToSchema)]
pub struct SectionAvailability {
    pub id: String,
    pub kind: &'static str,
    #[serde(flatten)]
    pub counts: CountsView,
    pub categories: Vec<CategoryAvailability>,
}

#[derive(Serialize, ToSchema)]
pub struct CategoryAvailability {
    pub category: String,
    #[serde(flatten)]
    pub counts: CountsView,
}

#[derive(Clone, Copy, Default, Serialize, ToSchema)]
pub struct CountsView {
    pub capacity: u32,
    pub available: u32,
    pub held: u32,
    pub sold: u32,
}

impl From<Counts> for CountsView {
    fn from(counts: Counts) -> CountsView {
        CountsView { capacity: counts.capacity, available: counts.available, held: counts.held, sold: counts.sold }
    }
}

impl CountsView {
    pub fn add(&mut self, other: CountsView) {
        self.capacity += other.capacity;
        self.available += other.available;
        self.held += other.held;
        self.sold += other.sold;
    }
}

#[derive(Serialize, ToSchema)]
pub struct SeatMapResponse {
    pub event: String,
    pub section: String,
    pub kind: &'static str,
    pub capacity: u32,
    /// Every seat in row order; empty for general admission.
    pub seats: Vec<SeatView>,
}

#[derive(Serialize, ToSchema)]
pub struct SeatView {
    /// `{section}-{row}-{number}`, e.g. `S101-C-12`.
    pub id: String,
    pub row: String,
    pub number: u16,
    pub category: String,
    /// `free`, `held` or `sold`.
    pub state: &'static str,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub accessible: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub aisle: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub obstructed: bool,
}

/// Hold specific seats (`seats`), the best seats of a reserved section (`section` +
/// `quantity`, optionally `adjacent`, `category`, `accessible`), or a quantity of a
/// general-admission section (`section` + `quantity`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HoldRequest {
    /// Who holds: the caller's account or session id (1-128 bytes, no control characters).
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$",
        example = "customer-42"
    )]
    pub customer: String,
    /// Specific seats, all of one section (at most the hold's seat limit).
    #[serde(default)]
    #[schema(min_items = 1, example = json!(["S101-A-1", "S101-A-2"]))]
    pub seats: Option<Vec<String>>,
    #[serde(default)]
    #[schema(example = "S101")]
    pub section: Option<String>,
    /// How many seats, with `section` (at most the hold's seat limit).
    #[serde(default)]
    #[schema(minimum = 1, example = 2)]
    pub quantity: Option<u32>,
    /// Best-available: seats must sit together in one row (default true). With
    /// false, together is still preferred and a split party is the fallback.
    #[serde(default)]
    pub adjacent: Option<bool>,
    /// Best-available: only seats of this category id.
    #[serde(default)]
    #[schema(example = "CAT1")]
    pub category: Option<String>,
    /// Best-available: only seats flagged accessible.
    #[serde(default)]
    pub accessible: Option<bool>,
    /// Check the hold out in the same request (hold, then checkout, one round trip
    /// fewer for the buyer): the answer then carries the payment too. Needs payments on.
    #[serde(default)]
    pub checkout: Option<HoldCheckout>,
}

/// The checkout part of a hold request: who pays (as `POST /v1/holds/{hold}/checkout`;
/// the customer is the hold's).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HoldCheckout {
    /// Who pays: kept encrypted with the order (see the README's buyer data).
    pub buyer: BuyerView,
}

/// The two forms of a [`HoldRequest`] as JSON Schema alternatives (`oneOf`), which the
/// derive cannot say: `seats` alone (not with `section`, `quantity`, `adjacent` or
/// `category`), or `section` with `quantity` (not with `seats`). As `holds::create_hold`
/// checks them.
pub fn hold_request_forms() -> serde_json::Value {
    let required = |field: &str| json!({ "required": [field] });
    json!([
        {
            "required": ["seats"],
            "not": { "anyOf": [required("section"), required("quantity"), required("adjacent"), required("category")] },
        },
        { "required": ["section", "quantity"], "not": required("seats") },
    ])
}

#[derive(Serialize, ToSchema)]
pub struct HoldResponse {
    pub hold: HoldView,
    /// With `checkout`: the hold's payment at the PSP. Absent if the checkout did not
    /// happen (see `checkout_error`), or if the server stopped between the hold and its
    /// checkout (a retry with the same `Idempotency-Key` then answers the hold alone):
    /// check the hold out with `POST /v1/holds/{hold}/checkout`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment: Option<PaymentView>,
    /// With `checkout`, when the hold was made but its checkout failed (the PSP refused
    /// or could not be reached): why, as an error body's `error`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkout_error: Option<ErrorDetail>,
}

impl HoldResponse {
    /// A hold's answer without a checkout.
    pub fn of(hold: HoldView) -> HoldResponse {
        HoldResponse { hold, payment: None, checkout_error: None }
    }
}

#[derive(Serialize, ToSchema)]
pub struct HoldView {
    pub id: String,
    pub event: String,
    pub section: String,
    /// Seat ids; empty for general admission.
    pub seats: Vec<String>,
    pub quantity: u32,
    pub expires_at: String,
    pub expires_at_ms: u64,
    pub total_minor: u64,
    pub currency: String,
    /// Best-available only: why these seats.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub choice: Option<ChoiceView>,
}

#[derive(Clone, Serialize, ToSchema)]
pub struct ChoiceView {
    /// All in one row at consecutive numbers.
    pub adjacent: bool,
    pub rows: u32,
    /// Sum of the seats' quality scores.
    pub score: u32,
    /// The choice leaves one lone free seat beside the party (only when nothing better fits).
    pub leaves_orphan: bool,
}

/// Who is asking, for calls on an existing hold or order.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerRequest {
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$",
        example = "customer-42"
    )]
    pub customer: String,
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct CustomerQuery {
    /// The customer the hold or order belongs to (an admin, with the admin token,
    /// may leave it out when reading an order).
    #[param(
        required = true,
        min_length = 1,
        max_length = 128,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$",
        example = "customer-42"
    )]
    pub customer: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmRequest {
    /// The customer who made the hold.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$",
        example = "customer-42"
    )]
    pub customer: String,
    /// The payment provider's reference of the captured payment (1-128 bytes, not blank).
    #[schema(min_length = 1, max_length = 128, pattern = "\\S", example = "pay-7f3a9")]
    pub payment_reference: String,
    pub buyer: BuyerView,
}

#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BuyerView {
    /// 1-200 bytes, not blank, no control characters.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^\\s*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u001F\\u007F-\\u009F]*\\s*$",
        example = "Ana Lima"
    )]
    pub name: String,
    /// One `@`, a `.` in the domain, no spaces or control characters; at most 254 bytes.
    #[schema(
        max_length = 254,
        pattern = "^\\s*[^\\s@\\u0000-\\u001F\\u007F-\\u009F]+@[^\\s@\\u0000-\\u001F\\u007F-\\u009F]*\\.[^\\s@\\u0000-\\u001F\\u007F-\\u009F]*\\s*$",
        example = "ana@example.com"
    )]
    pub email: String,
}

#[derive(Serialize, ToSchema)]
pub struct OrderResponse {
    pub order: OrderView,
}

#[derive(Serialize, ToSchema)]
pub struct OrderView {
    pub id: String,
    pub event: String,
    pub section: String,
    /// `confirmed` or `cancelled` (refunded; the seats went back on sale).
    pub state: &'static str,
    pub hold: String,
    pub tickets: Vec<TicketView>,
    pub quantity: u32,
    pub total_minor: u64,
    pub currency: String,
    pub confirmed_at: String,
    pub payment_reference: String,
    /// The buyer's name and email; null when erased (`buyer_erased`) or when no
    /// configured key opens them (`buyer_unreadable`: the key that sealed them was retired).
    pub buyer: Option<BuyerView>,
    /// An admin erased the buyer's personal data (the order and its tickets stay valid).
    pub buyer_erased: bool,
    /// The buyer's data is sealed under a key this server does not have.
    pub buyer_unreadable: bool,
    /// How it was sold: `online` (paid at the PSP), `box_office` (a sales channel's
    /// trusted confirm) or `external` (a server without payments).
    pub channel: String,
    /// The payment that bought it at the PSP (shown by `GET /v1/orders/{order}`), if one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment: Option<crate::http::payment_views::PaymentView>,
}

#[derive(Serialize, ToSchema)]
pub struct TicketView {
    /// Unique: `t{section key}-{order number}-{n}`.
    pub id: String,
    /// Seat id; null for general admission.
    pub seat: Option<String>,
    pub section: String,
    pub category: String,
}

/// A new event on a configured venue (admin).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEventRequest {
    /// 1-64 letters, digits, `-`, `_` or `.`.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$", example = "summer-2027")]
    pub id: String,
    /// 1-200 bytes, not blank.
    #[schema(min_length = 1, max_length = 200, pattern = "\\S", example = "Summer Nights 2027")]
    pub name: String,
    /// A configured venue's id.
    #[schema(example = "hakken-stadium")]
    pub venue: String,
    /// RFC 3339 with an offset, e.g. `2027-07-10T19:30:00+02:00`.
    #[schema(format = DateTime, example = "2027-08-20T20:00:00+02:00")]
    pub starts_at: String,
    /// Must close after it opens.
    pub on_sale: OnSaleRequest,
    /// ISO 4217: three uppercase letters.
    #[schema(pattern = "^[A-Z]{3}$", example = "EUR")]
    pub currency: String,
    /// 1-1024 ticket types with distinct ids, each on a category of the venue.
    #[schema(min_items = 1, max_items = 1024)]
    pub ticket_types: Vec<TicketTypeView>,
    /// The language of the event's emails and printed tickets: `ja` or `en` (the
    /// default). Times print in the venue's time zone (`[venue] time_zone` of its file).
    #[serde(default)]
    #[schema(pattern = "^(ja|en)$", example = "en")]
    pub language: Option<String>,
    /// A waiting room in front of the sale: then every hold needs an access from it
    /// (`Hakken-Access`). Keys left out take the defaults of `config/events/demo.toml`.
    #[serde(default)]
    pub queue: Option<QueueRequest>,
}

/// An event's waiting room (see `[queue]` in `config/events/demo.toml`).
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct QueueRequest {
    /// Joins are taken from this long before the sale opens (at most 7 days); whoever
    /// joined before the opening is drawn into a random order then. Default 1,800.
    #[schema(minimum = 0, maximum = 604_800)]
    pub opens_before_sale_s: Option<u64>,
    /// Admissions per second when the server is overloaded (default 50) ...
    #[schema(minimum = 1, maximum = 100_000)]
    pub admit_per_s_min: Option<u32>,
    /// ... and when it is healthy (default 2,000); at least `admit_per_s_min`.
    #[schema(minimum = 1, maximum = 100_000)]
    pub admit_per_s_max: Option<u32>,
    /// How long an admitted buyer has to make a hold (default 600).
    #[schema(minimum = 10, maximum = 3_600)]
    pub access_window_s: Option<u64>,
    /// Buyers who may wait at most (default 2,000,000).
    #[schema(minimum = 1, maximum = 10_000_000)]
    pub places_max: Option<u32>,
}

impl QueueRequest {
    /// The settings asked for, the defaults for keys left out.
    pub fn settings(&self) -> hakken_engine::event::QueueSettings {
        self.over(&hakken_engine::event::QueueSettings::default())
    }

    /// `current` with the keys given changed.
    pub fn over(&self, current: &hakken_engine::event::QueueSettings) -> hakken_engine::event::QueueSettings {
        hakken_engine::event::QueueSettings {
            opens_before_sale_s: self.opens_before_sale_s.unwrap_or(current.opens_before_sale_s),
            admit_per_s_min: self.admit_per_s_min.unwrap_or(current.admit_per_s_min),
            admit_per_s_max: self.admit_per_s_max.unwrap_or(current.admit_per_s_max),
            access_window_s: self.access_window_s.unwrap_or(current.access_window_s),
            places_max: self.places_max.unwrap_or(current.places_max),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OnSaleRequest {
    /// RFC 3339 with an offset.
    #[schema(format = DateTime, example = "2027-01-15T10:00:00+01:00")]
    pub opens_at: String,
    /// RFC 3339 with an offset; after `opens_at`.
    #[schema(format = DateTime, example = "2027-08-20T18:00:00+02:00")]
    pub closes_at: String,
}

/// Changes to an event (admin); absent fields stay as they are. Prices apply to holds
/// made after the change; existing holds and orders keep theirs.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateEventRequest {
    /// 1-200 bytes, not blank.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 200, pattern = "\\S", example = "Hakken Open Air 2027 (new date)")]
    pub name: Option<String>,
    #[serde(default)]
    pub on_sale: Option<OnSaleRequest>,
    /// Waiting-room settings to change (keys left out stay; on an event without a room,
    /// the defaults): admission bounds, access window and shopping time apply at once;
    /// the room's opening and the draw move only while the draw is to come;
    /// `places_max` applies at the next start. A room is not switched off here.
    #[serde(default)]
    pub queue: Option<QueueRequest>,
    /// New price per ticket type id.
    #[serde(default)]
    pub prices: Option<std::collections::BTreeMap<String, u64>>,
    /// The language of the event's emails and printed tickets: `ja` or `en`.
    #[serde(default)]
    #[schema(pattern = "^(ja|en)$", example = "ja")]
    pub language: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackupRequest {
    /// Directory to create on the server's machine; must not exist.
    #[schema(min_length = 1, example = "/var/backups/hakken/2027-07-01")]
    pub path: String,
}

#[derive(Serialize, ToSchema)]
pub struct BackupResponse {
    pub path: String,
    pub bytes: u64,
}

#[derive(Serialize, ToSchema)]
pub struct HealthResponse {
    /// `ok`, `starting`, `shutting_down` or `storage_failed`.
    pub status: &'static str,
}

pub fn kind_name(section: &Section) -> &'static str {
    match section.kind {
        SectionKind::Reserved(_) => "reserved",
        SectionKind::GeneralAdmission { .. } => "general_admission",
    }
}

pub fn category_id(venue: &Venue, category: CategoryIndex) -> String {
    venue.categories.get(usize::from(category.0)).map_or_else(String::new, |category| category.id.clone())
}

pub fn event_summary(event: &Event, venue: &Venue, now_ms: u64) -> EventSummary {
    EventSummary {
        id: event.id.clone(),
        name: event.name.clone(),
        venue: event.venue_id.clone(),
        starts_at: format_instant(event.starts_at),
        on_sale: OnSale {
            opens_at: format_instant(event.on_sale.opens_at),
            closes_at: format_instant(event.on_sale.closes_at),
            open_now: event.on_sale.contains(hakken_engine::clock::Millis(now_ms)),
        },
        currency: event.currency.clone(),
        capacity: venue.capacity(),
        queue: event.queue.as_ref().map(|queue| QueueSummary {
            enabled: true,
            opens_before_sale_s: queue.opens_before_sale_s,
            admit_per_s_min: queue.admit_per_s_min,
            admit_per_s_max: queue.admit_per_s_max,
            access_window_s: queue.access_window_s,
            places_max: queue.places_max,
        }),
    }
}

pub fn event_detail(served: &ServedEvent, now_ms: u64) -> EventDetail {
    let (event, venue) = (&served.event, &served.venue);
    EventDetail {
        summary: event_summary(event, venue, now_ms),
        sections: venue
            .sections
            .iter()
            .map(|section| SectionSummary {
                id: section.id.clone(),
                name: section.name.clone(),
                kind: kind_name(section),
                capacity: section.capacity(),
                category: match section.kind {
                    SectionKind::GeneralAdmission { category, .. } => Some(category_id(venue, category)),
                    SectionKind::Reserved(_) => None,
                },
            })
            .collect(),
        categories: venue
            .categories
            .iter()
            .map(|category| CategoryView { id: category.id.clone(), name: category.name.clone() })
            .collect(),
        ticket_types: event
            .ticket_types
            .iter()
            .map(|ticket_type| TicketTypeView {
                id: ticket_type.id.clone(),
                name: ticket_type.name.clone(),
                category: category_id(venue, ticket_type.category),
                price_minor: ticket_type.price_minor,
            })
            .collect(),
    }
}

fn seat_ids(served: &ServedEvent, section_index: usize, units: &Units) -> Vec<String> {
    let section = &served.venue.sections[section_index];
    match (units, section.seat_map()) {
        (Units::Seats(seats), Some(map)) => seats.iter().map(|&seat| map.seat_id(&section.id, seat).0).collect(),
        _ => Vec::new(),
    }
}

pub fn hold_view(served: &ServedEvent, section_index: usize, hold: &Hold) -> HoldView {
    HoldView {
        id: hold.id.to_string(),
        event: served.event.id.clone(),
        section: served.venue.sections[section_index].id.clone(),
        seats: seat_ids(served, section_index, &hold.units),
        quantity: hold.units.count(),
        expires_at: format_instant(hold.expires_at()),
        expires_at_ms: hold.expires_at().0,
        total_minor: hold.total_minor,
        currency: served.event.currency.clone(),
        choice: None,
    }
}

pub fn ticket_id(order: OrderId, n: usize) -> String {
    format!("t{:x}-{}-{n}", order.section.0, order.number)
}

/// An order as JSON; the buyer's data is opened with `privacy`'s keys.
pub fn order_view(served: &ServedEvent, section_index: usize, order: &Order, privacy: &Privacy) -> OrderView {
    let section = &served.venue.sections[section_index];
    let shown = privacy.show(&order.buyer);
    let tickets = match (&order.units, &section.kind) {
        (Units::Seats(seats), SectionKind::Reserved(map)) => seats
            .iter()
            .enumerate()
            .map(|(n, &seat)| TicketView {
                id: ticket_id(order.id, n),
                seat: Some(map.seat_id(&section.id, seat).0),
                section: section.id.clone(),
                category: category_id(&served.venue, map.seats[seat as usize].category),
            })
            .collect(),
        (units, SectionKind::GeneralAdmission { category, .. }) => (0..units.count() as usize)
            .map(|n| TicketView {
                id: ticket_id(order.id, n),
                seat: None,
                section: section.id.clone(),
                category: category_id(&served.venue, *category),
            })
            .collect(),
        _ => Vec::new(),
    };
    OrderView {
        id: order.id.to_string(),
        event: served.event.id.clone(),
        section: section.id.clone(),
        state: match order.state {
            OrderState::Confirmed => "confirmed",
            OrderState::Cancelled => "cancelled",
        },
        hold: HoldId::to_string(&order.hold),
        tickets,
        quantity: order.units.count(),
        total_minor: order.total_minor,
        currency: served.event.currency.clone(),
        confirmed_at: format_instant(order.confirmed_at),
        payment_reference: order.buyer.payment_reference.clone(),
        buyer_erased: shown == Shown::Erased,
        buyer_unreadable: shown == Shown::Unreadable,
        buyer: match shown {
            Shown::Readable(data) => Some(BuyerView { name: data.name, email: data.email }),
            Shown::Erased | Shown::Unreadable => None,
        },
        channel: order.buyer.channel.clone(),
        payment: None,
    }
}
