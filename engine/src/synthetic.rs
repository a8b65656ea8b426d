//! Generated venues and events of any size, for tests, simulations and benchmarks
//! (the demo venue in `config/` is the realistic one).

use crate::clock::Millis;
use crate::event::{Event, OnSaleWindow, TicketType};
use crate::venue::{Category, CategoryIndex, Row, Seat, SeatFlags, SeatMap, Section, SectionKind, Venue};

/// Shape of a generated venue: `sections` reserved sections of `rows` x `seats_per_row`
/// (categories alternate by row halves: front half `PREMIUM`, back half `STANDARD`),
/// plus `ga_sections` general-admission sections of `ga_capacity` (`FLOOR`).
#[derive(Clone, Copy, Debug)]
pub struct GridShape {
    pub sections: usize,
    pub rows: u16,
    pub seats_per_row: u16,
    pub ga_sections: usize,
    pub ga_capacity: u32,
}

pub const PREMIUM: CategoryIndex = CategoryIndex(0);
pub const STANDARD: CategoryIndex = CategoryIndex(1);
pub const FLOOR: CategoryIndex = CategoryIndex(2);

/// Reserved sections are `R0`, `R1`, ...; rows are numbered `1..=rows`; GA sections are `GA0`, ...
/// The first two seats of row 1 are accessible; quality falls with row and distance from centre.
pub fn grid_venue(shape: GridShape) -> Venue {
    let categories = ["PREMIUM", "STANDARD", "FLOOR"]
        .iter()
        .map(|id| Category { id: id.to_string(), name: id.to_lowercase() })
        .collect();
    let mut sections: Vec<Section> = (0..shape.sections)
        .map(|index| Section {
            id: format!("R{index}"),
            name: format!("Reserved {index}"),
            kind: SectionKind::Reserved(grid_seat_map(shape.rows, shape.seats_per_row)),
        })
        .collect();
    sections.extend((0..shape.ga_sections).map(|index| Section {
        id: format!("GA{index}"),
        name: format!("Standing {index}"),
        kind: SectionKind::GeneralAdmission { capacity: shape.ga_capacity, category: FLOOR },
    }));
    Venue {
        id: "grid".into(),
        name: "Generated venue".into(),
        time_zone: crate::venue::TIME_ZONE_DEFAULT.into(),
        categories,
        sections,
    }
}

fn grid_seat_map(rows: u16, seats_per_row: u16) -> SeatMap {
    let mut map = SeatMap::default();
    let centre = i32::from(seats_per_row + 1) / 2;
    for row in 0..rows {
        map.rows.push(Row {
            label: (row + 1).to_string().into_boxed_str(),
            first_seat: map.seats.len() as u32,
            seat_count: u32::from(seats_per_row),
        });
        for number in 1..=seats_per_row {
            let distance = (i32::from(number) - centre).unsigned_abs() as u16;
            let mut flags = SeatFlags::default();
            if number == 1 || number == seats_per_row {
                flags = flags.with(SeatFlags::AISLE);
            }
            if row == 0 && number <= 2 {
                flags = flags.with(SeatFlags::ACCESSIBLE);
            }
            map.seats.push(Seat {
                row,
                number,
                category: if row < rows.div_ceil(2) { PREMIUM } else { STANDARD },
                flags,
                quality: 10_000u16.saturating_sub(row * 20).saturating_sub(distance * 3),
            });
        }
    }
    map.seats.shrink_to_fit();
    map.rows.shrink_to_fit();
    map
}

/// An event on `venue` that is on sale for all of time, EUR prices 100.00 / 50.00 / 40.00.
pub fn open_event(venue: &Venue) -> Event {
    let price = |id: &str, category: CategoryIndex, price_minor| TicketType {
        id: id.into(),
        name: id.into(),
        category,
        price_minor,
    };
    Event {
        id: "open".into(),
        name: "Always on sale".into(),
        venue_id: venue.id.clone(),
        starts_at: Millis(u64::MAX / 2),
        on_sale: OnSaleWindow { opens_at: Millis(0), closes_at: Millis(u64::MAX) },
        currency: "EUR".into(),
        ticket_types: vec![
            price("premium", PREMIUM, 10_000),
            price("standard", STANDARD, 5_000),
            price("floor", FLOOR, 4_000),
        ],
        language: crate::event::LANGUAGE_DEFAULT.into(),
        queue: None,
    }
}

/// A waiting room for tests: joins from `opens_at`, the draw at `sale_opens_at`, 100
/// admissions a second, a minute's access, ten minutes to buy, 10,000 places.
pub fn room_settings(opens_at: Millis, sale_opens_at: Millis) -> crate::waiting_room::RoomSettings {
    crate::waiting_room::RoomSettings {
        opens_at,
        sale_opens_at,
        admit_per_s_min: 100,
        admit_per_s_max: 100,
        access_window_ms: 60_000,
        shopping_ms_max: 600_000,
        places_max: 10_000,
    }
}
