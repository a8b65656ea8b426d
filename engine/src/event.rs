//! Events: a show at a venue, its ticket types and prices, and its on-sale window.
//! Loaded from `config/events/*.toml`.

use crate::clock::Millis;
use crate::venue::{CategoryIndex, Venue};

mod load;

pub use load::EventError;

#[derive(Clone, Debug)]
pub struct Event {
    pub id: String,
    pub name: String,
    /// Id of the venue (`Venue::id`) the event is held at.
    pub venue_id: String,
    pub starts_at: Millis,
    pub on_sale: OnSaleWindow,
    /// ISO 4217 code, e.g. `EUR`; one currency per event.
    pub currency: String,
    pub ticket_types: Vec<TicketType>,
}

/// Holds are accepted from `opens_at` (inclusive) to `closes_at` (exclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OnSaleWindow {
    pub opens_at: Millis,
    pub closes_at: Millis,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TicketType {
    pub id: String,
    pub name: String,
    pub category: CategoryIndex,
    /// Price in the currency's minor unit (cents), taxes and fees included.
    pub price_minor: u64,
}

impl OnSaleWindow {
    pub fn contains(&self, now: Millis) -> bool {
        self.opens_at <= now && now < self.closes_at
    }
}

impl Event {
    /// The price of a seat in `category`: that of its first ticket type.
    /// Categories without a ticket type are not on sale for this event.
    pub fn price_minor(&self, category: CategoryIndex) -> Option<u64> {
        self.ticket_types.iter().find(|ticket_type| ticket_type.category == category).map(|t| t.price_minor)
    }

    /// Price per category index, `None` where the category has no ticket type.
    pub fn price_table(&self, venue: &Venue) -> Vec<Option<u64>> {
        (0..venue.categories.len()).map(|index| self.price_minor(CategoryIndex(index as u8))).collect()
    }
}
