//! Event TOML loading: turns `config/events/*.toml` into an [`Event`] on a loaded [`Venue`].
//!
//! An event file names its venue, its on-sale window and one `[[ticket_type]]` per price.
//! Times are TOML datetimes with an explicit offset (`2027-07-10T19:30:00+02:00` or `...Z`):
//! a local time is refused because the engine cannot know which zone was meant.
//! `config/events/demo.toml` documents every key.

use std::fmt;
use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use toml::value::{Datetime, Offset};
use toml::Spanned;

use super::{check_language, Event, OnSaleWindow, QueueSettings, TicketType, LANGUAGE_DEFAULT};
use crate::clock::Millis;
use crate::venue::{line_number, read_config_file, toml_problem, write_location, Venue};

/// Ticket types per event; more is a config mistake, and each is scanned per price lookup.
pub const EVENT_TICKET_TYPES_MAX: usize = 1024;

/// Why an event file was refused, and where.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct EventError {
    /// The path given to [`Event::load`], or the name given to [`Event::parse`].
    pub file: String,
    /// 1-based; `None` only when the file could not be read at all.
    pub line: Option<usize>,
    /// Id of the ticket type the problem is in, if any.
    pub ticket_type: Option<String>,
    pub problem: String,
}

impl fmt::Display for EventError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_location(f, &self.file, self.line)?;
        if let Some(ticket_type) = &self.ticket_type {
            write!(f, "ticket type {ticket_type}: ")?;
        }
        f.write_str(&self.problem)
    }
}

impl Event {
    /// Reads and validates an event file against the venue it is held at.
    pub fn load(path: &Path, venue: &Venue) -> Result<Event, EventError> {
        let file = path.display().to_string();
        let text = read_config_file(path).map_err(|problem| EventError {
            file: file.clone(),
            line: None,
            ticket_type: None,
            problem,
        })?;
        Event::parse(&text, &file, venue)
    }

    /// Validates event TOML; `file` only names the source in error messages.
    pub fn parse(text: &str, file: &str, venue: &Venue) -> Result<Event, EventError> {
        Source { text, file }.event(venue)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventFile {
    event: Option<Spanned<EventTable>>,
    #[serde(default)]
    ticket_type: Vec<Spanned<TicketTypeTable>>,
    queue: Option<Spanned<QueueTable>>,
}

/// `[queue]`: the event's waiting room; each key defaults to [`QueueSettings::default`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QueueTable {
    /// `false` keeps the table but serves the event without a waiting room.
    #[serde(default = "enabled_default")]
    enabled: bool,
    opens_before_sale_s: Option<u64>,
    admit_per_s_min: Option<u32>,
    admit_per_s_max: Option<u32>,
    access_window_s: Option<u64>,
    places_max: Option<u32>,
}

fn enabled_default() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventTable {
    id: String,
    name: String,
    venue: Spanned<String>,
    starts_at: Spanned<Datetime>,
    on_sale_opens_at: Spanned<Datetime>,
    on_sale_closes_at: Spanned<Datetime>,
    currency: Spanned<String>,
    /// Optional: [`LANGUAGE_DEFAULT`] when absent.
    language: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TicketTypeTable {
    id: Spanned<String>,
    name: String,
    category: Spanned<String>,
    /// Optional here only so that a missing price gets a clearer message.
    price_minor: Option<Spanned<i64>>,
}

struct Source<'a> {
    text: &'a str,
    file: &'a str,
}

impl Source<'_> {
    fn error(&self, span: Range<usize>, problem: impl Into<String>) -> EventError {
        EventError {
            file: self.file.to_owned(),
            line: Some(line_number(self.text, span.start)),
            ticket_type: None,
            problem: problem.into(),
        }
    }

    fn event(&self, venue: &Venue) -> Result<Event, EventError> {
        let file: EventFile = toml::from_str(self.text)
            .map_err(|error| self.error(error.span().unwrap_or(0..0), toml_problem(&error)))?;
        let Some(header) = file.event else {
            return Err(self.error(0..0, "missing `[event]` table"));
        };
        let header_span = header.span();
        let header = header.into_inner();
        if *header.venue.get_ref() != venue.id {
            let problem = format!("venue `{}` is not the loaded venue `{}`", header.venue.get_ref(), venue.id);
            return Err(self.error(header.venue.span(), problem));
        }
        let currency = header.currency.get_ref();
        if currency.len() != 3 || !currency.bytes().all(|byte| byte.is_ascii_uppercase()) {
            let problem = format!("currency `{currency}` is not three uppercase letters");
            return Err(self.error(header.currency.span(), problem));
        }
        let language = match &header.language {
            None => LANGUAGE_DEFAULT.to_owned(),
            Some(language) => {
                check_language(language.get_ref()).map_err(|problem| self.error(language.span(), problem))?;
                language.get_ref().clone()
            }
        };
        let starts_at = self.millis(&header.starts_at, "starts_at")?;
        let opens_at = self.millis(&header.on_sale_opens_at, "on_sale_opens_at")?;
        let closes_at = self.millis(&header.on_sale_closes_at, "on_sale_closes_at")?;
        if closes_at <= opens_at {
            let problem = "`on_sale_closes_at` must be after `on_sale_opens_at`";
            return Err(self.error(header.on_sale_closes_at.span(), problem));
        }
        let ticket_types = self.ticket_types(header_span, file.ticket_type, venue)?;
        let queue = match file.queue {
            None => None,
            Some(table) => self.queue(table)?,
        };
        Ok(Event {
            id: header.id,
            name: header.name,
            venue_id: venue.id.clone(),
            starts_at,
            on_sale: OnSaleWindow { opens_at, closes_at },
            currency: currency.clone(),
            ticket_types,
            language,
            queue,
        })
    }

    fn queue(&self, table: Spanned<QueueTable>) -> Result<Option<QueueSettings>, EventError> {
        let span = table.span();
        let table = table.into_inner();
        if !table.enabled {
            return Ok(None);
        }
        let default = QueueSettings::default();
        let queue = QueueSettings {
            opens_before_sale_s: table.opens_before_sale_s.unwrap_or(default.opens_before_sale_s),
            admit_per_s_min: table.admit_per_s_min.unwrap_or(default.admit_per_s_min),
            admit_per_s_max: table.admit_per_s_max.unwrap_or(default.admit_per_s_max),
            access_window_s: table.access_window_s.unwrap_or(default.access_window_s),
            places_max: table.places_max.unwrap_or(default.places_max),
        };
        queue.check().map_err(|problem| self.error(span, problem))?;
        Ok(Some(queue))
    }

    fn millis(&self, datetime: &Spanned<Datetime>, key: &str) -> Result<Millis, EventError> {
        unix_millis(datetime.get_ref()).map_err(|problem| self.error(datetime.span(), format!("`{key}` {problem}")))
    }

    fn ticket_types(
        &self,
        header_span: Range<usize>,
        tables: Vec<Spanned<TicketTypeTable>>,
        venue: &Venue,
    ) -> Result<Vec<TicketType>, EventError> {
        if tables.is_empty() {
            return Err(self.error(header_span, "event has no `[[ticket_type]]`"));
        }
        if let Some(extra) = tables.get(EVENT_TICKET_TYPES_MAX) {
            let problem = format!("more than {EVENT_TICKET_TYPES_MAX} ticket types");
            return Err(self.error(extra.span(), problem));
        }
        let mut ticket_types: Vec<TicketType> = Vec::with_capacity(tables.len());
        for table in tables {
            let span = table.span();
            let table = table.into_inner();
            let id = table.id.get_ref().clone();
            let ticket_type = self
                .ticket_type(span, table, venue, &ticket_types)
                .map_err(|error| EventError { ticket_type: Some(id), ..error })?;
            ticket_types.push(ticket_type);
        }
        Ok(ticket_types)
    }

    fn ticket_type(
        &self,
        span: Range<usize>,
        table: TicketTypeTable,
        venue: &Venue,
        earlier: &[TicketType],
    ) -> Result<TicketType, EventError> {
        if earlier.iter().any(|ticket_type| ticket_type.id == *table.id.get_ref()) {
            return Err(self.error(table.id.span(), "ticket type id is used twice"));
        }
        let Some(category) = venue.category_index(table.category.get_ref()) else {
            let problem = format!("unknown category `{}`", table.category.get_ref());
            return Err(self.error(table.category.span(), problem));
        };
        let Some(price_minor) = table.price_minor else {
            return Err(self.error(span, "missing `price_minor`"));
        };
        let Ok(price) = u64::try_from(*price_minor.get_ref()) else {
            return Err(self.error(price_minor.span(), "`price_minor` must not be negative"));
        };
        Ok(TicketType { id: table.id.into_inner(), name: table.name, category, price_minor: price })
    }
}

/// Milliseconds since the Unix epoch of an RFC 3339 instant with an offset
/// (`2027-07-10T19:30:00+02:00`, `2027-07-10T17:30:00.250Z`), as the API takes them.
pub fn parse_instant(text: &str) -> Result<Millis, String> {
    let datetime: Datetime = text.parse().map_err(|_| format!("`{text}` is not an RFC 3339 date and time"))?;
    unix_millis(&datetime)
}

/// RFC 3339 in UTC with milliseconds, e.g. `2027-07-10T17:30:00.000Z`.
pub fn format_instant(at: Millis) -> String {
    let days = (at.0 / 86_400_000) as i64;
    let ms_of_day = at.0 % 86_400_000;
    let (year, month, day) = civil_from_days(days);
    let (hour, minute) = (ms_of_day / 3_600_000, ms_of_day / 60_000 % 60);
    let (second, milli) = (ms_of_day / 1000 % 60, ms_of_day % 1000);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{milli:03}Z")
}

/// The inverse of [`days_from_civil`] (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 { month_from_march + 3 } else { month_from_march - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Milliseconds since the Unix epoch of a TOML offset datetime. Local datetimes, dates and
/// times are refused: without an offset the instant is unknown.
fn unix_millis(datetime: &Datetime) -> Result<Millis, String> {
    let (Some(date), Some(time), Some(offset)) = (datetime.date, datetime.time, datetime.offset) else {
        return Err(format!("`{datetime}` needs a date, a time and an offset, e.g. 2027-07-10T19:30:00+02:00"));
    };
    let offset_minutes = match offset {
        Offset::Z => 0,
        Offset::Custom { minutes } => i64::from(minutes),
    };
    let days = days_from_civil(i64::from(date.year), date.month.into(), date.day.into());
    let seconds = days * 86_400 + i64::from(time.hour) * 3_600 + i64::from(time.minute) * 60 + i64::from(time.second)
        - offset_minutes * 60;
    let millis = seconds * 1_000 + i64::from(time.nanosecond / 1_000_000);
    u64::try_from(millis).map(Millis).map_err(|_| format!("`{datetime}` is before 1970"))
}

/// Days from 1970-01-01 to the given proleptic Gregorian date (negative before it).
///
/// Howard Hinnant's `days_from_civil`: shift the year to start in March, so the leap day
/// is the last day of the shifted year, then count 400-year eras of 146,097 days.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::venue::{CategoryIndex, SectionKind};

    /// Marks the line an error must point at.
    const MARK: &str = "# <-";

    const VENUE: &str = r#"
[venue]
id = "test-arena"
name = "Test Arena"
[[category]]
id = "CAT1"
name = "Category 1"
[[category]]
id = "FLOOR"
name = "Floor"
[[section]]
id = "GA"
name = "Floor"
kind = "general_admission"
category = "FLOOR"
capacity = 100
"#;

    /// `[event]` without its last key, so cases can add keys to it.
    const EVENT_KEYS: &str = r#"[event]
id = "show"
name = "The Show"
venue = "test-arena"
starts_at = 2027-07-10T19:30:00Z
on_sale_opens_at = 2026-01-01T10:00:00Z
on_sale_closes_at = 2027-07-10T19:00:00+02:00
"#;

    const TICKET_TYPE: &str = r#"
[[ticket_type]]
id = "CAT1-ADULT"
name = "Category 1"
category = "CAT1"
price_minor = 12900
"#;

    fn venue() -> Venue {
        Venue::parse(VENUE, "venue.toml").unwrap()
    }

    /// Parses `text` and checks the error names `test.toml`, the line marked with
    /// [`MARK`] and contains `expected`.
    fn check_error(text: &str, expected: &str) {
        let line = text.lines().position(|line| line.contains(MARK)).map(|index| index + 1);
        let line = line.unwrap_or_else(|| panic!("no `{MARK}` in:\n{text}"));
        let message = match Event::parse(text, "test.toml", &venue()) {
            Ok(_) => panic!("expected an error containing `{expected}` for:\n{text}"),
            Err(error) => error.to_string(),
        };
        let prefix = format!("test.toml:{line}: ");
        assert!(
            message.starts_with(&prefix) && message.contains(expected),
            "expected `{prefix}...{expected}...`, got `{message}` for:\n{text}"
        );
    }

    /// A valid event whose header gets `keys` and whose single ticket type gets `ticket_keys`.
    fn event(keys: &str, ticket_keys: &str) -> String {
        format!("{EVENT_KEYS}currency = \"EUR\"\n{keys}{TICKET_TYPE}{ticket_keys}")
    }

    #[test]
    fn a_queue_table_gives_the_event_a_waiting_room_with_defaults_for_what_it_omits() {
        let parse = |tail: &str| Event::parse(&event("", tail), "test.toml", &venue()).unwrap().queue;
        assert_eq!(parse(""), None);
        let queue = parse("[queue]\nadmit_per_s_max = 500\naccess_window_s = 120\n").unwrap();
        assert_eq!(queue, QueueSettings { admit_per_s_max: 500, access_window_s: 120, ..QueueSettings::default() });
        assert_eq!(parse("[queue]\nenabled = false\nadmit_per_s_max = 500\n"), None);
    }

    #[test]
    fn refusals() {
        let with_currency = |currency: &str| format!("{EVENT_KEYS}currency = \"{currency}\" # <-\n{TICKET_TYPE}");
        let with_window = |opens: &str, closes: &str| {
            let keys = EVENT_KEYS.lines().filter(|line| !line.starts_with("on_sale"));
            let keys: String = keys.map(|line| format!("{line}\n")).collect();
            format!(
                "{keys}on_sale_opens_at = {opens}\non_sale_closes_at = {closes} # <-\ncurrency = \"EUR\"\n{TICKET_TYPE}"
            )
        };
        let cases: &[(String, &str)] = &[
            (event("colour = red # <-\n", ""), "invalid string"),
            (event("colour = \"red\" # <-\n", ""), "unknown field `colour`"),
            (event("", "colour = \"red\" # <-\n"), "unknown field `colour`"),
            (event("", "price_minor = \"12\" # <-\n"), "duplicate key `price_minor`"),
            (format!("# <-\n{TICKET_TYPE}"), "missing `[event]` table"),
            (event("", "").replace("venue = \"test-arena\"", "venue = \"elsewhere\" # <-"), "venue `elsewhere` is not the loaded venue `test-arena`"),
            (with_currency("eur"), "currency `eur` is not three uppercase letters"),
            (with_currency("EURO"), "currency `EURO` is not three uppercase letters"),
            (with_currency("E1R"), "currency `E1R` is not three uppercase letters"),
            (event("language = \"fr\" # <-\n", ""), "language \"fr\" must be one of [\"ja\", \"en\"]"),
            (event("language = \"EN\" # <-\n", ""), "language \"EN\" must be one of"),
            (with_window("2026-01-01T10:00:00Z", "2026-01-01T10:00:00Z"), "`on_sale_closes_at` must be after `on_sale_opens_at`"),
            (with_window("2026-01-01T10:00:00Z", "2026-01-01T11:59:00+02:00"), "`on_sale_closes_at` must be after"),
            (with_window("2026-01-01T10:00:00Z", "2026-01-02T10:00:00"), "`on_sale_closes_at` `2026-01-02T10:00:00` needs a date, a time and an offset"),
            (with_window("2026-01-01T10:00:00Z", "2026-01-02"), "needs a date, a time and an offset"),
            (with_window("2026-01-01T10:00:00Z", "10:00:00"), "needs a date, a time and an offset"),
            (EVENT_KEYS.replace("starts_at = 2027-07-10T19:30:00Z", "starts_at = 1969-12-31T23:59:59Z # <-") + "currency = \"EUR\"\n", "`starts_at` `1969-12-31T23:59:59Z` is before 1970"),
            (format!("{}currency = \"EUR\"\n", EVENT_KEYS.replace("[event]", "[event] # <-")), "event has no `[[ticket_type]]`"),
            (event("", "[[ticket_type]]\nid = \"CAT1-ADULT\" # <-\nname = \"Again\"\ncategory = \"CAT1\"\nprice_minor = 1\n"), "ticket type CAT1-ADULT: ticket type id is used twice"),
            (event("", "[[ticket_type]]\nid = \"X\"\nname = \"X\"\ncategory = \"CAT9\" # <-\nprice_minor = 1\n"), "ticket type X: unknown category `CAT9`"),
            (event("", "[[ticket_type]] # <-\nid = \"X\"\nname = \"X\"\ncategory = \"CAT1\"\n"), "ticket type X: missing `price_minor`"),
            (event("", "[[ticket_type]]\nid = \"X\"\nname = \"X\"\ncategory = \"CAT1\"\nprice_minor = -1 # <-\n"), "ticket type X: `price_minor` must not be negative"),
            (event("", "[queue] # <-\nadmit_per_s_min = 10\nadmit_per_s_max = 5\n"), "admit_per_s_min <= admit_per_s_max"),
            (event("", "[queue] # <-\naccess_window_s = 1\n"), "access_window_s must be 10-3600"),
            (event("", "[queue]\nwindow = 1 # <-\n"), "unknown field `window`"),
        ];
        for (text, expected) in cases {
            check_error(text, expected);
        }
    }

    #[test]
    fn parses_an_event() {
        let japanese = event("language = \"ja\"\n", "");
        let text =
            event("", "[[ticket_type]]\nid = \"FLOOR\"\nname = \"Standing\"\ncategory = \"FLOOR\"\nprice_minor = 0\n");
        let event = Event::parse(&text, "test.toml", &venue()).unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(
            (event.id.as_str(), event.venue_id.as_str(), event.currency.as_str()),
            ("show", "test-arena", "EUR")
        );
        assert_eq!(event.starts_at, Millis(1_815_247_800_000));
        // 19:00 at +02:00 is 17:00Z.
        assert_eq!(event.on_sale.closes_at, Millis(1_815_247_800_000 - 150 * 60 * 1000));
        assert_eq!(event.ticket_types.len(), 2);
        assert_eq!(event.price_minor(CategoryIndex(0)), Some(12_900));
        assert_eq!(event.price_minor(CategoryIndex(1)), Some(0));
        assert_eq!(event.language, "en", "the default");
        let japanese = Event::parse(&japanese, "test.toml", &venue()).unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(japanese.language, "ja");
    }

    #[test]
    fn instants_round_trip_through_rfc3339() {
        for text in ["1970-01-01T00:00:00.000Z", "2000-02-29T23:59:59.999Z", "2027-07-10T17:30:00.250Z"] {
            assert_eq!(format_instant(parse_instant(text).unwrap()), text);
        }
        assert_eq!(parse_instant("2027-07-10T19:30:00+02:00"), parse_instant("2027-07-10T17:30:00Z"));
        assert!(parse_instant("2027-07-10T19:30:00").is_err(), "no offset");
        assert!(parse_instant("tomorrow").is_err());
    }

    #[test]
    fn datetimes_become_unix_millis() {
        let check = |text: &str, expected: u64| {
            let datetime: Datetime = text.parse().unwrap();
            assert_eq!(unix_millis(&datetime), Ok(Millis(expected)), "{text}");
        };
        check("1970-01-01T00:00:00Z", 0);
        check("1970-01-01T01:00:00.999+01:00", 999);
        check("2027-07-10T19:30:00Z", 1_815_247_800_000);
        check("2027-07-10T19:30:00.250+02:00", 1_815_240_600_250);
        check("2027-07-10T13:30:00-06:00", 1_815_247_800_000);
    }

    #[test]
    fn days_from_civil_matches_known_dates() {
        for (year, month, day, expected) in [
            (1970, 1, 1, 0),
            (1969, 12, 31, -1),
            (2000, 3, 1, 11_017),
            (2024, 2, 29, 19_782),
            (1600, 1, 1, -135_140),
            (9999, 12, 31, 2_932_896),
            (1, 1, 1, -719_162),
        ] {
            assert_eq!(days_from_civil(year, month, day), expected, "{year}-{month}-{day}");
        }
        // Consecutive days across leap and non-leap years differ by one.
        let mut previous = days_from_civil(1899, 12, 31);
        for year in 1900..=2100 {
            for month in 1..=12 {
                let days_in_month = match month {
                    2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
                    2 => 28,
                    4 | 6 | 9 | 11 => 30,
                    _ => 31,
                };
                for day in 1..=days_in_month {
                    let days = days_from_civil(year, month, day);
                    assert_eq!(days, previous + 1, "{year}-{month}-{day}");
                    previous = days;
                }
            }
        }
    }

    /// The demo files in `config/` load, and the stadium is the size the demo promises.
    #[test]
    fn demo_venue_and_event_load() {
        let venue_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/venues/hakken-stadium.toml");
        let event_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/events/demo.toml");
        let venue = Venue::load(Path::new(venue_path)).unwrap_or_else(|error| panic!("{error}"));
        let event = Event::load(Path::new(event_path), &venue).unwrap_or_else(|error| panic!("{error}"));

        let reserved: Vec<_> = venue.sections.iter().filter_map(|section| section.seat_map()).collect();
        let reserved_seats: usize = reserved.iter().map(|map| map.seats.len()).sum();
        let general_admission = venue
            .sections
            .iter()
            .filter(|section| matches!(section.kind, SectionKind::GeneralAdmission { .. }))
            .count();
        assert!(reserved.len() >= 40, "{} reserved sections", reserved.len());
        assert!(reserved_seats >= 50_000, "{reserved_seats} reserved seats");
        assert!(general_admission >= 2, "{general_admission} general-admission sections");
        assert!((5..=6).contains(&venue.categories.len()), "{} categories", venue.categories.len());
        let flagged =
            |flag| reserved.iter().flat_map(|map| &map.seats).filter(|seat| seat.flags.contains(flag)).count();
        assert!(flagged(crate::venue::SeatFlags::ACCESSIBLE) > 0);
        assert!(flagged(crate::venue::SeatFlags::OBSTRUCTED) > 0);

        assert_eq!(event.venue_id, venue.id);
        // The demo's times are written at +02:00: summer in Berlin.
        assert_eq!((venue.time_zone.as_str(), event.language.as_str()), ("Europe/Berlin", "en"));
        assert!(event.price_table(&venue).iter().all(Option::is_some), "every category has a price");
        assert!(event.on_sale.opens_at < event.on_sale.closes_at);
    }
}
