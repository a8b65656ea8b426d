//! What one ticket email costs the relay's CPU: drawing a ticket's QR code as the inline
//! PNG, and building the whole MIME message (templates rendered, two tickets' PNGs,
//! base64) and formatting it to the bytes sent over SMTP.
//!
//! `cargo bench -p hakken-benches --bench notify` (README, Benchmarks: Notifications).

use std::path::Path;
use std::time::{Duration, SystemTime};

use criterion::{criterion_group, criterion_main, Criterion};
use hakken_notify::{build_message, qr, EmailInput, EmailKind, Language, Place, Templates, TicketInput, VenueTimeZone};

/// Shaped like a real ticket code: `HK1.` + 131 base64url characters.
fn ticket_code(n: usize) -> String {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let filler: String = (0..131).map(|index| alphabet[(index * 7 + n * 13) % 64] as char).collect();
    format!("HK1.{filler}")
}

fn input() -> EmailInput {
    let ticket = |n: usize| TicketInput {
        id: format!("o3-7-t{n}"),
        place: Place::Seat { section: "S101".into(), row: "B".into(), number: (16 + n).to_string() },
        ticket_type: "Category 1".into(),
        code: ticket_code(n),
        page_url: format!("https://tickets.example.com/v1/tickets/o3-7-t{n}/ticket.html"),
    };
    EmailInput {
        kind: EmailKind::OrderConfirmed,
        event_name: "Hakken Open Air 2027".into(),
        starts_at_ms: 1_815_208_200_000,
        venue_name: "Hakken Stadium".into(),
        venue_time_zone: VenueTimeZone::parse("Europe/Berlin").expect("zone"),
        language: Language::En,
        holder_name: "Hanako Yamada".into(),
        buyer_email: "hanako@example.com".into(),
        order_id: "o3-7".into(),
        occurrence: None,
        tickets: vec![ticket(0), ticket(1)],
    }
}

fn notify(criterion: &mut Criterion) {
    let templates = Templates::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/notifications/templates"))
        .expect("the shipped templates");
    let from = "hakken <tickets@example.com>".parse().expect("from");
    let input = input();
    let mut group = criterion.benchmark_group("notify");
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("qr png of a ticket code", |bench| bench.iter(|| qr::qr_png(&input.tickets[0].code)));
    group.bench_function("ticket email, 2 tickets, built and formatted", |bench| {
        bench.iter(|| build_message(&templates, &input, &from, SystemTime::now()).expect("built").formatted())
    });
    group.finish();
}

criterion_group!(benches, notify);
criterion_main!(benches);
