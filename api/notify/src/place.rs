//! A ticket's place as a person reads it: `S101ブロック B列 16番` or
//! `Section S101, Row B, Seat 16`, not the seat id `S101-B-16`. Used by the emails and,
//! through the API, by the printable ticket page.

use crate::language::Language;

/// Where a ticket admits its holder. The labels are the venue's own (section ids and row
/// names as printed at the venue).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum Place {
    /// A reserved seat.
    Seat { section: String, row: String, number: String },
    /// A general-admission (standing or unreserved) section: no row or seat.
    GeneralAdmission { section: String },
}

/// The place in the event's language.
pub fn format_place(place: &Place, language: Language) -> String {
    match (place, language) {
        (Place::Seat { section, row, number }, Language::Ja) => format!("{section}ブロック {row}列 {number}番"),
        (Place::Seat { section, row, number }, Language::En) => format!("Section {section}, Row {row}, Seat {number}"),
        (Place::GeneralAdmission { section }, Language::Ja) => format!("{section} 自由席"),
        (Place::GeneralAdmission { section }, Language::En) => format!("General admission, {section}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(place: Place, language: Language, expected: &str) {
        assert_eq!(format_place(&place, language), expected);
    }

    fn seat() -> Place {
        Place::Seat { section: "S101".into(), row: "B".into(), number: "16".into() }
    }

    #[test]
    fn places_read_as_printed() {
        check(seat(), Language::Ja, "S101ブロック B列 16番");
        check(seat(), Language::En, "Section S101, Row B, Seat 16");
        let floor = Place::GeneralAdmission { section: "FLOOR-A".into() };
        check(floor.clone(), Language::Ja, "FLOOR-A 自由席");
        check(floor, Language::En, "General admission, FLOOR-A");
    }
}
