//! Venue layouts: sections, rows and seats, as loaded from `config/venues/*.toml`.
//!
//! A layout is static for the life of the process. It is shared (`Arc`) by every
//! event on the venue; the per-event sale state lives in [`crate::inventory`].
//! Seats are stored densely (8 bytes each) in row order; seat ids such as
//! `S101-C-12` are derived, never stored, so a million-seat venue stays small.

use std::fmt;

mod load;

pub use load::VenueError;
// Shared with the event loader, whose files follow the same conventions.
pub(crate) use load::{line_number, read_config_file, toml_problem, write_location};

/// Index of a price category within its venue (`Venue::categories`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CategoryIndex(pub u8);

/// Index of a seat within its section's `SeatMap::seats`.
pub type SeatIndex = u32;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Category {
    pub id: String,
    pub name: String,
}

#[derive(Debug)]
pub struct Venue {
    pub id: String,
    pub name: String,
    /// IANA time zone name (`Europe/Berlin`): the zone tickets and emails print the
    /// event's times in. The engine checks its shape only ([`check_time_zone_name`]; it
    /// has no tz database); the API checks the name against one before serving.
    pub time_zone: String,
    pub categories: Vec<Category>,
    pub sections: Vec<Section>,
}

/// The time zone of a venue file without `time_zone`.
pub const TIME_ZONE_DEFAULT: &str = "UTC";
/// Bytes of a time zone name; the longest IANA names are about 30.
pub const TIME_ZONE_BYTES_MAX: usize = 64;

/// The shape of an IANA time zone name: non-empty, no whitespace, at most
/// [`TIME_ZONE_BYTES_MAX`] bytes. Whether the zone exists is for a tz database to say.
pub fn check_time_zone_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > TIME_ZONE_BYTES_MAX || name.chars().any(char::is_whitespace) {
        return Err(format!(
            "time zone {name:?} must be an IANA name such as \"Europe/Berlin\": 1-{TIME_ZONE_BYTES_MAX} bytes, no whitespace"
        ));
    }
    Ok(())
}

#[derive(Debug)]
pub struct Section {
    /// Stable id used in seat ids and URLs, e.g. `S101` or `FLOOR-A`.
    pub id: String,
    pub name: String,
    pub kind: SectionKind,
}

#[derive(Debug)]
pub enum SectionKind {
    Reserved(SeatMap),
    /// Standing or unnumbered area: a capacity and one price category, no seat ids.
    GeneralAdmission {
        capacity: u32,
        category: CategoryIndex,
    },
}

/// The reserved seats of one section, row by row.
#[derive(Debug, Default)]
pub struct SeatMap {
    pub rows: Vec<Row>,
    /// All seats, row after row, each row in ascending seat number.
    pub seats: Vec<Seat>,
}

#[derive(Debug)]
pub struct Row {
    /// Row label as printed on the ticket (`A`, `AA`, `12`); never contains `-`.
    pub label: Box<str>,
    /// Index in `SeatMap::seats` of the row's first (lowest-numbered) seat.
    pub first_seat: SeatIndex,
    pub seat_count: u32,
}

/// One reserved seat. Kept at 8 bytes: the venue may have a million of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seat {
    /// Index into `SeatMap::rows`.
    pub row: u16,
    pub number: u16,
    pub category: CategoryIndex,
    pub flags: SeatFlags,
    /// Higher is better (closer to the stage or focal point); drives best-available.
    pub quality: u16,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeatFlags(pub u8);

impl SeatFlags {
    pub const ACCESSIBLE: SeatFlags = SeatFlags(1);
    pub const AISLE: SeatFlags = SeatFlags(2);
    pub const OBSTRUCTED: SeatFlags = SeatFlags(4);

    pub fn contains(self, other: SeatFlags) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn with(self, other: SeatFlags) -> SeatFlags {
        SeatFlags(self.0 | other.0)
    }
}

impl Venue {
    pub fn section_index(&self, id: &str) -> Option<usize> {
        self.sections.iter().position(|section| section.id == id)
    }

    pub fn category_index(&self, id: &str) -> Option<CategoryIndex> {
        let index = self.categories.iter().position(|category| category.id == id)?;
        Some(CategoryIndex(index as u8))
    }

    /// Reserved seats plus general-admission capacity.
    pub fn capacity(&self) -> u64 {
        self.sections.iter().map(|section| u64::from(section.capacity())).sum()
    }
}

impl Section {
    pub fn capacity(&self) -> u32 {
        match &self.kind {
            SectionKind::Reserved(map) => map.seats.len() as u32,
            SectionKind::GeneralAdmission { capacity, .. } => *capacity,
        }
    }

    pub fn seat_map(&self) -> Option<&SeatMap> {
        match &self.kind {
            SectionKind::Reserved(map) => Some(map),
            SectionKind::GeneralAdmission { .. } => None,
        }
    }
}

impl SeatMap {
    pub fn row_seats(&self, row: &Row) -> std::ops::Range<SeatIndex> {
        row.first_seat..row.first_seat + row.seat_count
    }

    pub fn row_index(&self, label: &str) -> Option<usize> {
        self.rows.iter().position(|row| &*row.label == label)
    }

    /// Finds a seat by row label and number (rows may have gaps in numbering).
    pub fn seat_index(&self, row_label: &str, number: u16) -> Option<SeatIndex> {
        let row = &self.rows[self.row_index(row_label)?];
        let range = self.row_seats(row);
        let seats = &self.seats[range.start as usize..range.end as usize];
        let offset = seats.binary_search_by_key(&number, |seat| seat.number).ok()?;
        Some(range.start + offset as u32)
    }

    /// The public id of a seat, `{section}-{row}-{number}`.
    pub fn seat_id(&self, section_id: &str, seat: SeatIndex) -> SeatId {
        let seat = self.seats[seat as usize];
        SeatId(format!("{section_id}-{}-{}", self.rows[usize::from(seat.row)].label, seat.number))
    }

    /// Whether two seats sit next to each other: same row, consecutive numbers.
    pub fn adjacent(&self, left: SeatIndex, right: SeatIndex) -> bool {
        let (left, right) = (self.seats[left as usize], self.seats[right as usize]);
        left.row == right.row && left.number + 1 == right.number
    }
}

/// A seat id as the public sees it: `S101-C-12`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeatId(pub String);

/// The parts of a seat id: section id, row label, seat number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeatIdParts<'a> {
    pub section: &'a str,
    pub row: &'a str,
    pub number: u16,
}

impl SeatId {
    /// Splits `S101-C-12` from the right, so section ids may contain `-` (row labels may not).
    pub fn parse(id: &str) -> Option<SeatIdParts<'_>> {
        let (rest, number) = id.rsplit_once('-')?;
        let (section, row) = rest.rsplit_once('-')?;
        if section.is_empty() || row.is_empty() || number.starts_with('+') {
            return None;
        }
        Some(SeatIdParts { section, row, number: number.parse().ok()? })
    }
}

impl fmt::Display for SeatId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seat_is_eight_bytes() {
        assert_eq!(std::mem::size_of::<Seat>(), 8);
    }

    #[test]
    fn seat_id_parses_from_the_right() {
        let check = |id: &str, expected: Option<(&str, &str, u16)>| {
            let parsed = SeatId::parse(id).map(|p| (p.section, p.row, p.number));
            assert_eq!(parsed, expected, "{id}");
        };
        check("S101-C-12", Some(("S101", "C", 12)));
        check("UPPER-EAST-AA-3", Some(("UPPER-EAST", "AA", 3)));
        check("S101-C", None);
        check("S101-C-x", None);
        check("S101-C-+1", None);
        check("-C-1", None);
        check("S101--1", None);
        check("S101-C-70000", None);
    }
}
