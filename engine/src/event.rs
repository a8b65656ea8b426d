//! Events: a show at a venue, its ticket types and prices, and its on-sale window.
//! Loaded from `config/events/*.toml`.

use crate::clock::Millis;
use crate::venue::{CategoryIndex, Venue};

mod load;

pub use load::{format_instant, parse_instant, EventError, EVENT_TICKET_TYPES_MAX};

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
    /// The language of the event's emails and printed tickets: one of [`LANGUAGES`].
    pub language: String,
    /// The event's waiting room, if it has one: then every hold needs an access from it.
    pub queue: Option<QueueSettings>,
}

/// An event's waiting room (`waiting_room.rs`): when it opens, how fast it lets buyers
/// in, how long an access lasts, how many may wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueSettings {
    /// The room opens this long before the sale; whoever joins before the sale opens is
    /// drawn into a random order at the opening.
    pub opens_before_sale_s: u64,
    /// Admissions per second when the server is overloaded, and when it is healthy.
    pub admit_per_s_min: u32,
    pub admit_per_s_max: u32,
    /// How long an admitted buyer has to make a hold with the access.
    pub access_window_s: u64,
    /// Buyers who may wait at most.
    pub places_max: u32,
}

impl Default for QueueSettings {
    fn default() -> Self {
        QueueSettings {
            opens_before_sale_s: 1_800,
            admit_per_s_min: 50,
            admit_per_s_max: 2_000,
            access_window_s: 600,
            places_max: 2_000_000,
        }
    }
}

/// The bounds [`QueueSettings::check`] holds settings to.
pub const QUEUE_OPENS_BEFORE_SALE_S_MAX: u64 = 7 * 86_400;
pub const QUEUE_ADMIT_PER_S_MAX: u32 = 100_000;
pub const QUEUE_ACCESS_WINDOW_S_RANGE: (u64, u64) = (10, 3_600);
pub const QUEUE_PLACES_MAX: u32 = 10_000_000;

impl QueueSettings {
    pub fn check(&self) -> Result<(), String> {
        if self.opens_before_sale_s > QUEUE_OPENS_BEFORE_SALE_S_MAX {
            return Err(format!("queue: opens_before_sale_s must be at most {QUEUE_OPENS_BEFORE_SALE_S_MAX} (7 days)"));
        }
        if self.admit_per_s_min == 0
            || self.admit_per_s_max < self.admit_per_s_min
            || self.admit_per_s_max > QUEUE_ADMIT_PER_S_MAX
        {
            return Err(format!("queue: need 1 <= admit_per_s_min <= admit_per_s_max <= {QUEUE_ADMIT_PER_S_MAX}"));
        }
        let (window_min, window_max) = QUEUE_ACCESS_WINDOW_S_RANGE;
        if !(window_min..=window_max).contains(&self.access_window_s) {
            return Err(format!("queue: access_window_s must be {window_min}-{window_max}"));
        }
        if self.places_max == 0 || self.places_max > QUEUE_PLACES_MAX {
            return Err(format!("queue: places_max must be 1-{QUEUE_PLACES_MAX}"));
        }
        Ok(())
    }
}

/// The languages an event's notifications and tickets can be written in (BCP 47 tags):
/// those `hakken-notify` ships words and templates for.
pub const LANGUAGES: [&str; 2] = ["ja", "en"];
/// The language of an event file without `language`.
pub const LANGUAGE_DEFAULT: &str = "en";

/// Whether `language` is one of [`LANGUAGES`].
pub fn check_language(language: &str) -> Result<(), String> {
    if LANGUAGES.contains(&language) {
        Ok(())
    } else {
        Err(format!("language {language:?} must be one of {LANGUAGES:?}"))
    }
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

impl Event {
    /// The checks an event file gets, for events built elsewhere (the admin API):
    /// a usable id, a three-letter currency, a known language, a window that closes
    /// after it opens, ticket types with unique ids, known categories and a sane count.
    pub fn check(&self, venue: &Venue) -> Result<(), String> {
        let id_ok = |id: &str| {
            !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        };
        if !id_ok(&self.id) {
            return Err(format!("event id {:?} must be 1-64 letters, digits, `-`, `_` or `.`", self.id));
        }
        if self.name.trim().is_empty() || self.name.len() > 200 {
            return Err("event name must be 1-200 bytes".into());
        }
        if self.venue_id != venue.id {
            return Err(format!("venue {:?} is not {:?}", self.venue_id, venue.id));
        }
        if self.currency.len() != 3 || !self.currency.bytes().all(|byte| byte.is_ascii_uppercase()) {
            return Err(format!("currency {:?} is not three uppercase letters", self.currency));
        }
        check_language(&self.language)?;
        if self.on_sale.closes_at <= self.on_sale.opens_at {
            return Err("the on-sale must close after it opens".into());
        }
        if let Some(queue) = &self.queue {
            queue.check()?;
        }
        if self.ticket_types.is_empty() || self.ticket_types.len() > EVENT_TICKET_TYPES_MAX {
            return Err(format!("an event needs 1-{EVENT_TICKET_TYPES_MAX} ticket types"));
        }
        for (index, ticket_type) in self.ticket_types.iter().enumerate() {
            if !id_ok(&ticket_type.id) {
                return Err(format!(
                    "ticket type id {:?} must be 1-64 letters, digits, `-`, `_` or `.`",
                    ticket_type.id
                ));
            }
            if self.ticket_types[..index].iter().any(|earlier| earlier.id == ticket_type.id) {
                return Err(format!("ticket type id {:?} is used twice", ticket_type.id));
            }
            if usize::from(ticket_type.category.0) >= venue.categories.len() {
                return Err(format!("ticket type {:?}: unknown category", ticket_type.id));
            }
        }
        Ok(())
    }
}
