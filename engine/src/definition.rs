//! Converts events and venues to and from their stored form ([`EventDefinition`]),
//! checking on the way back what the TOML loader checks on the way in.

use crate::clock::Millis;
use crate::event::{check_language, Event, OnSaleWindow, QueueSettings, TicketType};
use crate::venue::{
    check_time_zone_name, Category, CategoryIndex, Row, Seat, SeatFlags, SeatMap, Section, SectionKind, Venue,
};
use crate::wal::{
    EventDefinition, EventRecord, QueueSettingsRecord, SeatRecord, SectionKindRecord, SectionRecord, TicketTypeRecord,
    VenueRecord,
};

pub fn to_definition(first_section_key: u32, event: &Event, venue: &Venue) -> EventDefinition {
    EventDefinition {
        first_section_key,
        event: EventRecord {
            id: event.id.clone(),
            name: event.name.clone(),
            venue_id: event.venue_id.clone(),
            starts_at_ms: event.starts_at.0,
            on_sale_opens_at_ms: event.on_sale.opens_at.0,
            on_sale_closes_at_ms: event.on_sale.closes_at.0,
            currency: event.currency.clone(),
            ticket_types: event
                .ticket_types
                .iter()
                .map(|ticket_type| TicketTypeRecord {
                    id: ticket_type.id.clone(),
                    name: ticket_type.name.clone(),
                    category: ticket_type.category.0,
                    price_minor: ticket_type.price_minor,
                })
                .collect(),
            language: event.language.clone(),
            queue: event.queue.map(|queue| QueueSettingsRecord {
                opens_before_sale_s: queue.opens_before_sale_s,
                admit_per_s_min: queue.admit_per_s_min,
                admit_per_s_max: queue.admit_per_s_max,
                access_window_s: queue.access_window_s,
                places_max: queue.places_max,
            }),
        },
        venue: VenueRecord {
            id: venue.id.clone(),
            name: venue.name.clone(),
            categories: venue.categories.iter().map(|category| (category.id.clone(), category.name.clone())).collect(),
            sections: venue.sections.iter().map(section_record).collect(),
            time_zone: venue.time_zone.clone(),
        },
    }
}

fn section_record(section: &Section) -> SectionRecord {
    let kind = match &section.kind {
        SectionKind::Reserved(map) => SectionKindRecord::Reserved {
            rows: map.rows.iter().map(|row| (row.label.to_string(), row.seat_count)).collect(),
            seats: map
                .seats
                .iter()
                .map(|seat| SeatRecord {
                    number: seat.number,
                    category: seat.category.0,
                    flags: seat.flags.0,
                    quality: seat.quality,
                })
                .collect(),
        },
        SectionKind::GeneralAdmission { capacity, category } => {
            SectionKindRecord::GeneralAdmission { capacity: *capacity, category: category.0 }
        }
    };
    SectionRecord { id: section.id.clone(), name: section.name.clone(), kind }
}

/// Rebuilds the event and venue, refusing a definition that does not hold together.
pub fn from_definition(definition: &EventDefinition) -> Result<(Event, Venue), String> {
    let venue = venue_from_record(&definition.venue)?;
    let event = event_from_record(&definition.event, &venue)?;
    if event.venue_id != venue.id {
        return Err(format!("event {} names venue {}, stored with {}", event.id, event.venue_id, venue.id));
    }
    Ok((event, venue))
}

/// A category index, checked against the venue's categories.
fn category_of(index: u8, categories: usize) -> Result<CategoryIndex, String> {
    if usize::from(index) < categories {
        Ok(CategoryIndex(index))
    } else {
        Err(format!("category index {index} out of range"))
    }
}

fn venue_from_record(record: &VenueRecord) -> Result<Venue, String> {
    check_time_zone_name(&record.time_zone).map_err(|problem| format!("venue {}: {problem}", record.id))?;
    let categories = record.categories.len();
    let sections = record
        .sections
        .iter()
        .map(|section| {
            let kind = match &section.kind {
                SectionKindRecord::Reserved { rows, seats } => {
                    SectionKind::Reserved(seat_map_from_record(&section.id, rows, seats, categories)?)
                }
                SectionKindRecord::GeneralAdmission { capacity, category } => {
                    SectionKind::GeneralAdmission { capacity: *capacity, category: category_of(*category, categories)? }
                }
            };
            Ok(Section { id: section.id.clone(), name: section.name.clone(), kind })
        })
        .collect::<Result<_, String>>()?;
    Ok(Venue {
        id: record.id.clone(),
        name: record.name.clone(),
        time_zone: record.time_zone.clone(),
        categories: record
            .categories
            .iter()
            .map(|(id, name)| Category { id: id.clone(), name: name.clone() })
            .collect(),
        sections,
    })
}

/// A reserved section's rows and seats: each row covers the next `seat_count` seats,
/// numbered in ascending order, and the rows cover every seat.
fn seat_map_from_record(
    section: &str,
    rows: &[(String, u32)],
    seats: &[SeatRecord],
    categories: usize,
) -> Result<SeatMap, String> {
    let mut map = SeatMap { rows: Vec::with_capacity(rows.len()), seats: Vec::with_capacity(seats.len()) };
    for (row_index, (label, seat_count)) in rows.iter().enumerate() {
        let first_seat = map.seats.len() as u32;
        let row_seats = seats
            .get(first_seat as usize..(first_seat + seat_count) as usize)
            .ok_or_else(|| format!("section {section}: row {label} runs past the seats"))?;
        let mut previous = 0u16;
        for seat in row_seats {
            if seat.number <= previous {
                return Err(format!("section {section}: row {label}: seat numbers not ascending"));
            }
            previous = seat.number;
            map.seats.push(Seat {
                row: row_index as u16,
                number: seat.number,
                category: category_of(seat.category, categories)?,
                flags: SeatFlags(seat.flags),
                quality: seat.quality,
            });
        }
        map.rows.push(Row { label: label.clone().into_boxed_str(), first_seat, seat_count: *seat_count });
    }
    if map.seats.len() != seats.len() {
        return Err(format!("section {section}: seats not covered by rows"));
    }
    Ok(map)
}

fn event_from_record(record: &EventRecord, venue: &Venue) -> Result<Event, String> {
    check_language(&record.language).map_err(|problem| format!("event {}: {problem}", record.id))?;
    let queue = record.queue.map(|queue| QueueSettings {
        opens_before_sale_s: queue.opens_before_sale_s,
        admit_per_s_min: queue.admit_per_s_min,
        admit_per_s_max: queue.admit_per_s_max,
        access_window_s: queue.access_window_s,
        places_max: queue.places_max,
    });
    if let Some(queue) = &queue {
        queue.check().map_err(|problem| format!("event {}: {problem}", record.id))?;
    }
    let ticket_types = record
        .ticket_types
        .iter()
        .map(|ticket_type| {
            Ok(TicketType {
                id: ticket_type.id.clone(),
                name: ticket_type.name.clone(),
                category: category_of(ticket_type.category, venue.categories.len())?,
                price_minor: ticket_type.price_minor,
            })
        })
        .collect::<Result<_, String>>()?;
    Ok(Event {
        id: record.id.clone(),
        name: record.name.clone(),
        venue_id: record.venue_id.clone(),
        starts_at: Millis(record.starts_at_ms),
        on_sale: OnSaleWindow {
            opens_at: Millis(record.on_sale_opens_at_ms),
            closes_at: Millis(record.on_sale_closes_at_ms),
        },
        currency: record.currency.clone(),
        ticket_types,
        language: record.language.clone(),
        queue,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::{grid_venue, open_event, GridShape};

    #[test]
    fn definitions_round_trip() {
        let mut venue =
            grid_venue(GridShape { sections: 2, rows: 3, seats_per_row: 4, ga_sections: 1, ga_capacity: 9 });
        venue.time_zone = "Asia/Tokyo".into();
        let queue = QueueSettings { admit_per_s_max: 700, ..QueueSettings::default() };
        let event = Event { language: "ja".into(), queue: Some(queue), ..open_event(&venue) };
        let definition = to_definition(5, &event, &venue);
        let (event_back, venue_back) = from_definition(&definition).unwrap();
        assert_eq!(to_definition(5, &event_back, &venue_back), definition);
        assert_eq!(event_back.ticket_types, event.ticket_types);
        assert_eq!(event_back.queue, Some(queue));
        assert_eq!((venue_back.time_zone.as_str(), event_back.language.as_str()), ("Asia/Tokyo", "ja"));
    }

    #[test]
    fn inconsistent_definitions_are_refused() {
        let venue = grid_venue(GridShape { sections: 1, rows: 2, seats_per_row: 3, ga_sections: 0, ga_capacity: 0 });
        let event = open_event(&venue);
        let mut broken = to_definition(0, &event, &venue);
        if let SectionKindRecord::Reserved { rows, .. } = &mut broken.venue.sections[0].kind {
            rows[1].1 = 4;
        }
        assert!(from_definition(&broken).unwrap_err().contains("runs past the seats"));
        let mut broken = to_definition(0, &event, &venue);
        broken.event.ticket_types[0].category = 200;
        assert!(from_definition(&broken).unwrap_err().contains("category index 200"));
        let mut broken = to_definition(0, &event, &venue);
        broken.event.language = "fr".into();
        assert!(from_definition(&broken).unwrap_err().contains("event open: language \"fr\""));
        let mut broken = to_definition(0, &Event { queue: Some(QueueSettings::default()), ..event.clone() }, &venue);
        broken.event.queue.as_mut().unwrap().admit_per_s_min = 0;
        assert!(from_definition(&broken).unwrap_err().contains("event open: queue: need 1 <= admit_per_s_min"));
        let mut broken = to_definition(0, &event, &venue);
        broken.venue.time_zone = "Europe/ Berlin".into();
        assert!(from_definition(&broken).unwrap_err().contains("venue grid: time zone \"Europe/ Berlin\""));
    }
}
