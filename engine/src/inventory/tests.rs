//! Data-driven tests of the seat logic: each case is a script of operations on a
//! 3-row x 6-seat reserved section (`R0`, rows 1-3, quality best at the centre of
//! row 1) and a 5-unit general-admission section (`GA0`), with the expected outcome
//! of every line. Time starts at T0 and moves only with `wait`.

use std::fmt::Write;
use std::sync::Arc;

use super::*;
use crate::best::BestRequest;
use crate::clock::Millis;
use crate::ids::{CustomerId, HoldNumber, OrderNumber, TicketId};
use crate::synthetic::{grid_venue, open_event, GridShape, PREMIUM};
use crate::tickets::{ReissueProof, ScanOutcome, Viewer};
use crate::venue::SeatIndex;

const T0: Millis = Millis(1_000_000_000);

struct Harness {
    reserved: Inventory,
    ga: Inventory,
    now: Millis,
}

impl Harness {
    fn new() -> Harness {
        let venue =
            Arc::new(grid_venue(GridShape { sections: 1, rows: 3, seats_per_row: 6, ga_sections: 1, ga_capacity: 5 }));
        let event = open_event(&venue);
        let config = EngineConfig {
            hold_ttl_ms: 10_000,
            hold_lifetime_max_ms: 25_000,
            customer_seats_max: 6,
            hold_seats_max: 4,
            ..EngineConfig::default()
        };
        let ledger = Arc::new(CustomerLedger::new(config.customer_seats_max));
        let inventory = |index: usize| {
            Inventory::new(InventoryParams {
                key: SectionKey(index as u32),
                venue: venue.clone(),
                section_index: index,
                event: &event,
                config: &config,
                ledger: ledger.clone(),
            })
        };
        Harness { reserved: inventory(0), ga: inventory(1), now: T0 }
    }

    fn seat_name(&self, seat: SeatIndex) -> String {
        let map = self.reserved.state().seat_map().unwrap();
        let seat = map.seats[seat as usize];
        format!("{}-{}", map.rows[usize::from(seat.row)].label, seat.number)
    }

    fn seat_names(&self, seats: &[SeatIndex]) -> String {
        seats.iter().map(|&seat| self.seat_name(seat)).collect::<Vec<_>>().join(",")
    }

    fn seat_index(&self, name: &str) -> SeatIndex {
        let (row, number) = name.split_once('-').unwrap();
        self.reserved.state().seat_map().unwrap().seat_index(row, number.parse().unwrap()).unwrap()
    }

    fn hold_id(&self, text: &str, ga: bool) -> HoldId {
        let number = HoldNumber(text.trim_start_matches('h').parse().unwrap());
        HoldId { section: SectionKey(u32::from(ga)), number }
    }

    fn granted(&self, result: Result<Granted, HoldRefused>) -> String {
        match result {
            Ok(granted) => {
                let hold = &granted.hold;
                let expires = u64::from(hold.expires_at_s) - T0.0 / 1000;
                let units = match &hold.units {
                    Units::Seats(seats) => self.seat_names(seats),
                    Units::Quantity(quantity) => format!("x{quantity}"),
                };
                let why = match granted.choice {
                    Some(choice) if choice.adjacent => format!(" together score {}", choice.score),
                    Some(choice) => format!(" split over {} rows", choice.rows),
                    None => String::new(),
                };
                format!("h{} {units} exp +{expires}s {}{why}", hold.id.number.0, hold.total_minor)
            }
            Err(HoldRefused::SeatsUnavailable { seats }) => format!("unavailable {}", self.seat_names(&seats)),
            Err(refused) => format!("refused: {refused}"),
        }
    }

    /// Runs one line of the test language: one arm per verb, so it grows with the
    /// language rather than being split across helpers a reader has to chase.
    fn run(&mut self, line: &str) -> String {
        let words: Vec<&str> = line.split_whitespace().collect();
        let customer = |index: usize| CustomerId::new(words[index]);
        let now = self.now;
        match words[0] {
            "hold" => {
                let seats: Vec<SeatIndex> = words[2..].iter().map(|name| self.seat_index(name)).collect();
                let result = self.reserved.hold_seats(&customer(1), &seats, now);
                self.granted(result)
            }
            "best" => {
                let request = BestRequest {
                    quantity: words[2].parse().unwrap(),
                    category: words.contains(&"premium").then_some(PREMIUM),
                    accessible: words.contains(&"accessible"),
                    adjacent: !words.contains(&"split"),
                };
                let result = self.reserved.hold_best(&customer(1), &request, now);
                self.granted(result)
            }
            "ga" => {
                let result = self.ga.hold_quantity(&customer(1), words[2].parse().unwrap(), now);
                self.granted(result)
            }
            "release" | "extend" | "confirm" => {
                let ga = words.get(3) == Some(&"ga");
                let id = self.hold_id(words[2], ga);
                let inventory = if ga { &mut self.ga } else { &mut self.reserved };
                let customer = customer(1);
                match words[0] {
                    "release" => inventory.release(id, &customer, now).map(|_| "released".to_string()),
                    "extend" => inventory
                        .extend(id, &customer, now)
                        .map(|hold| format!("exp +{}s", u64::from(hold.expires_at_s) - T0.0 / 1000)),
                    _ => inventory
                        .confirm(id, &customer, &Buyer::default(), now)
                        .map(|order| format!("o{}", order.id.number.0)),
                }
                .unwrap_or_else(|error| format!("error: {error}"))
            }
            "cancel" => {
                let ga = words.get(2) == Some(&"ga");
                let number = OrderNumber(words[1].trim_start_matches('o').parse().unwrap());
                let inventory = if ga { &mut self.ga } else { &mut self.reserved };
                let id = OrderId { section: inventory.key(), number };
                inventory
                    .cancel(id, now)
                    .map(|_| "cancelled".to_string())
                    .unwrap_or_else(|error| format!("error: {error}"))
            }
            "checkout" | "authorized" | "captured" | "canceled" | "refunded" | "payment" => {
                let ga = words.contains(&"ga");
                let id = self.hold_id(words[if words[0] == "checkout" { 2 } else { 1 }], ga);
                let inventory = if ga { &mut self.ga } else { &mut self.reserved };
                let psp_id = format!("pi_{}", id.number.0);
                let late = if words.contains(&"void") { LatePayment::Void } else { LatePayment::ReacquireSame };
                let amount = |inventory: &Inventory| match words.iter().position(|word| *word == "amount") {
                    Some(at) => words[at + 1].parse().unwrap(),
                    None => inventory.payment(id).map_or(0, |payment| payment.amount_minor),
                };
                let result = match words[0] {
                    "checkout" => {
                        let amount_minor = match inventory.hold(id) {
                            Ok(hold) => hold.total_minor,
                            Err(_) => 0,
                        };
                        let start = PaymentStart {
                            provider: "test".into(),
                            psp_id,
                            amount_minor: words
                                .iter()
                                .position(|word| *word == "amount")
                                .map_or(amount_minor, |at| words[at + 1].parse().unwrap()),
                            currency: "EUR".into(),
                            buyer: Buyer::default(),
                            window_ms: 12_000,
                        };
                        inventory.start_payment(id, &customer(1), &start, now).map(|checkout| checkout.payment)
                    }
                    "payment" => inventory.payment(id).cloned().ok_or(PaymentError::NotFound),
                    verb => {
                        let report = match verb {
                            "authorized" => PspReport::Authorized { amount_minor: amount(inventory) },
                            "captured" => PspReport::Captured { amount_minor: amount(inventory) },
                            "canceled" => PspReport::Canceled,
                            _ => PspReport::Refunded,
                        };
                        inventory.payment_reported(id, &psp_id, report, late, now)
                    }
                };
                match result {
                    Ok(payment) => {
                        let expires = inventory.hold(id).map_or(String::new(), |hold| {
                            format!(" exp +{}s", u64::from(hold.expires_at_s) - T0.0 / 1000)
                        });
                        format!("{:?} {:?}{expires}", payment.state, payment.step()).replace("OrderNumber", "o")
                    }
                    Err(error) => format!("error: {error}"),
                }
            }
            "wait" => {
                self.now = self.now.saturating_add(words[1].trim_end_matches('s').parse::<u64>().unwrap() * 1000);
                String::new()
            }
            "sweep" => {
                let swept = self.reserved.sweep(now).len() + self.ga.sweep(now).len();
                format!("swept {swept}")
            }
            "counts" => {
                let counts = |inventory: &Inventory| {
                    let total = inventory.state().availability().total;
                    format!("{}/{}/{}", total.available, total.held, total.sold)
                };
                format!("R0 {} GA0 {}", counts(&self.reserved), counts(&self.ga))
            }
            "map" => {
                let codes = self.reserved.state().seat_codes(now);
                codes
                    .chunks(6)
                    .map(|row| row.iter().map(|code| ".hs"[usize::from(*code)..][..1].to_string()).collect::<String>())
                    .collect::<Vec<_>>()
                    .join(" ")
            }
            other => panic!("unknown command {other}"),
        }
    }
}

/// Runs `script` (lines of `command => expected`); compares all outputs at once.
fn check(script: &str) {
    checked(script);
}

/// Runs `script` as [`check`] does and returns the harness it leaves.
fn checked(script: &str) -> Harness {
    let mut harness = Harness::new();
    let mut expected = String::new();
    let mut actual = String::new();
    for line in script.lines().map(str::trim).filter(|line| !line.is_empty()) {
        let (command, outcome) = line.split_once("=>").map_or((line, ""), |(c, o)| (c.trim(), o.trim()));
        let got = harness.run(command);
        writeln!(expected, "{command} => {outcome}").unwrap();
        writeln!(actual, "{command} => {got}").unwrap();
    }
    assert_eq!(actual, expected, "\n--- actual ---\n{actual}");
    harness
}

#[test]
fn specific_seats_are_all_or_nothing() {
    check(
        "
        hold alice 1-1 1-2      => h0 1-1,1-2 exp +10s 20000
        hold bob 1-2 1-3 1-4    => unavailable 1-2
        map                     => hh.... ...... ......
        counts                  => R0 16/2/0 GA0 5/0/0
        hold bob 1-3 1-4        => h1 1-3,1-4 exp +10s 20000
        hold carol 1-4 3-1      => unavailable 1-4
        hold carol 2-6 3-1      => h2 2-6,3-1 exp +10s 15000
        ",
    );
}

#[test]
fn bad_requests_are_refused() {
    check(
        "
        hold alice 1-1 1-1          => refused: a seat is requested twice
        hold alice 1-1 1-2 1-3 1-4 1-5 => refused: too many seats in one hold (at most 4)
        best alice 0                => refused: quantity must be at least 1
        ga alice 5                  => refused: too many seats in one hold (at most 4)
        counts                      => R0 18/0/0 GA0 5/0/0
        ",
    );
}

#[test]
fn only_the_owner_releases_extends_or_confirms() {
    check(
        "
        hold alice 1-1              => h0 1-1 exp +10s 10000
        release mallory h0          => error: the hold belongs to another customer
        confirm mallory h0          => error: the hold belongs to another customer
        extend mallory h0           => error: the hold belongs to another customer
        confirm alice h7            => error: no such hold
        release alice h0            => released
        release alice h0            => error: the hold has ended (expired, released or confirmed)
        hold bob 1-1                => h1 1-1 exp +10s 10000
        ",
    );
}

#[test]
fn expired_holds_are_reclaimed_without_a_sweep() {
    check(
        "
        hold alice 1-1 1-2          => h0 1-1,1-2 exp +10s 20000
        wait 9s
        hold bob 1-2                => unavailable 1-2
        wait 1s
        map                         => ...... ...... ......
        counts                      => R0 16/2/0 GA0 5/0/0
        hold bob 1-2                => h1 1-2 exp +20s 10000
        counts                      => R0 17/1/0 GA0 5/0/0
        confirm alice h0            => error: the hold has ended (expired, released or confirmed)
        confirm bob h1              => o0
        counts                      => R0 17/0/1 GA0 5/0/0
        ",
    );
}

#[test]
fn confirm_after_expiry_is_refused_and_frees_the_seats() {
    check(
        "
        hold alice 3-1 3-2          => h0 3-1,3-2 exp +10s 10000
        wait 10s
        confirm alice h0            => error: the hold has expired
        counts                      => R0 18/0/0 GA0 5/0/0
        hold bob 3-1                => h1 3-1 exp +20s 5000
        ",
    );
}

#[test]
fn extend_is_capped_by_lifetime() {
    check(
        "
        hold alice 1-1              => h0 1-1 exp +10s 10000
        wait 8s
        extend alice h0             => exp +18s
        wait 8s
        extend alice h0             => exp +25s
        wait 2s
        extend alice h0             => error: the hold has reached its maximum lifetime
        wait 7s
        extend alice h0             => error: the hold has expired
        ",
    );
}

#[test]
fn sold_seats_return_only_through_cancel() {
    check(
        "
        hold alice 3-1              => h0 3-1 exp +10s 5000
        confirm alice h0            => o0
        release alice h0            => error: the hold has ended (expired, released or confirmed)
        wait 60s
        sweep                       => swept 0
        hold bob 3-1                => unavailable 3-1
        cancel o0                   => cancelled
        cancel o0                   => error: the order is already cancelled
        cancel o9                   => error: no such order
        hold bob 3-1                => h1 3-1 exp +70s 5000
        ",
    );
}

#[test]
fn customer_limit_counts_held_and_bought_seats() {
    check(
        "
        hold alice 1-1 1-2 1-3 1-4  => h0 1-1,1-2,1-3,1-4 exp +10s 40000
        confirm alice h0            => o0
        ga alice 2                  => h0 x2 exp +10s 8000
        ga alice 1                  => refused: customer seat limit reached: 6 of 6
        best alice 1                => refused: customer seat limit reached: 6 of 6
        release alice h0 ga         => released
        cancel o0                   => cancelled
        best alice 4                => h1 1-1,1-2,1-3,1-4 exp +10s 40000 together score 39988
        ",
    );
}

#[test]
fn best_available_prefers_centre_and_avoids_orphans() {
    // Row 1 qualities by seat: 9994 9997 10000 9997 9994 9991; row 2 is 20 lower.
    check(
        "
        best alice 2                => h0 1-3,1-4 exp +10s 20000 together score 19997
        best bob 2                  => h1 1-1,1-2 exp +10s 20000 together score 19991
        best carol 3                => h2 2-1,2-2,2-3 exp +10s 30000 together score 29931
        hold dave 2-6               => h3 2-6 exp +10s 10000
        best erin 2 premium         => h4 1-5,1-6 exp +10s 20000 together score 19985
        best frank 1 premium        => h5 2-4 exp +10s 10000 together score 9977
        best gina 2                 => h6 3-3,3-4 exp +10s 10000 together score 19917
        ",
    );
}

#[test]
fn best_available_splits_only_when_allowed() {
    check(
        "
        hold a 1-2 1-5              => h0 1-2,1-5 exp +10s 20000
        hold b 2-2 2-5              => h1 2-2,2-5 exp +10s 20000
        hold c 3-2 3-4              => h2 3-2,3-4 exp +10s 10000
        best d 3                    => refused: not enough seats left that match the request
        best e 2 accessible         => refused: not enough seats left that match the request
        best e 1 accessible         => h3 1-1 exp +10s 10000 together score 9994
        best d 3 split              => h4 1-3,1-4,1-6 exp +10s 30000 split over 1 rows
        best f 4 split              => h5 2-1,2-3,2-4,2-6 exp +10s 40000 split over 1 rows
        best g 4 split              => h6 3-1,3-3,3-5,3-6 exp +10s 20000 split over 1 rows
        best h 1 split              => refused: not enough seats left that match the request
        ",
    );
}

#[test]
fn general_admission_never_oversells() {
    check(
        "
        ga alice 3                  => h0 x3 exp +10s 12000
        ga bob 3                    => refused: sold out: 2 left
        ga bob 2                    => h1 x2 exp +10s 8000
        confirm alice h0 ga         => o0
        counts                      => R0 18/0/0 GA0 0/2/3
        wait 10s
        ga carol 1                  => h2 x1 exp +20s 4000
        counts                      => R0 18/0/0 GA0 1/1/3
        cancel o0 ga                => cancelled
        counts                      => R0 18/0/0 GA0 4/1/0
        ",
    );
}

#[test]
fn sweep_frees_expired_holds() {
    check(
        "
        hold alice 1-1              => h0 1-1 exp +10s 10000
        ga bob 2                    => h0 x2 exp +10s 8000
        wait 10s
        counts                      => R0 17/1/0 GA0 3/2/0
        sweep                       => swept 2
        counts                      => R0 18/0/0 GA0 5/0/0
        hold carol 1-1              => h1 1-1 exp +20s 10000
        ",
    );
}

/// What the API would have sealed for ana@example.com (opaque to the engine).
const ANA_SEALED: &[u8] = b"sealed(ana@example.com)";

/// A confirmed order of alice's for seats 1-1 and 1-2, bought by ana@example.com.
fn sold_pair(harness: &mut Harness) -> OrderId {
    let alice = CustomerId::new("alice");
    let seats = [harness.seat_index("1-1"), harness.seat_index("1-2")];
    let hold = harness.reserved.hold_seats(&alice, &seats, harness.now).expect("free seats").hold;
    let buyer = Buyer { sealed: Arc::from(ANA_SEALED), ..Buyer::default() };
    harness.reserved.confirm(hold.id, &alice, &buyer, harness.now).expect("live hold").id
}

#[test]
fn tickets_are_seen_and_reissued_only_by_their_owner_or_an_admin() {
    let mut harness = Harness::new();
    let order = sold_pair(&mut harness);
    let ticket = TicketId { order, index: 1 };
    let alice = Viewer::Customer(CustomerId::new("alice"));
    let bob = Viewer::Customer(CustomerId::new("bob"));
    let seen = |viewer: &Viewer, ticket: TicketId| harness.reserved.ticket_order(ticket, viewer).is_some();
    assert_eq!((seen(&alice, ticket), seen(&Viewer::Admin, ticket), seen(&bob, ticket)), (true, true, false));
    assert!(!seen(&alice, TicketId { order, index: 2 }), "no third ticket");
    // The API found the email in `sealed` (or did not: `None`).
    let buyer = |order: Option<OrderId>, sealed: Option<&[u8]>| ReissueProof::Buyer {
        order,
        email_found_in: sealed.map(Arc::from),
    };
    let other_order = OrderId { section: order.section, number: OrderNumber(order.number.0 + 1) };
    let now = harness.now;
    let cases = [
        (ReissueProof::Missing, Err(TicketError::ProofMissing)),
        (buyer(Some(order), None), Err(TicketError::NotFound)),
        (buyer(None, Some(ANA_SEALED)), Err(TicketError::NotFound)),
        (buyer(Some(other_order), Some(ANA_SEALED)), Err(TicketError::NotFound)),
        (buyer(Some(order), Some(b"sealed(someone else)")), Err(TicketError::NotFound)),
        (buyer(Some(order), Some(ANA_SEALED)), Ok(1)),
        (ReissueProof::Admin, Ok(2)),
    ];
    for (proof, expected) in cases {
        let got = harness.reserved.reissue(ticket, &proof, now).map(|(_, version)| version);
        assert_eq!(got, expected, "{proof:?}");
    }
    let missing = TicketId { order: OrderId { section: order.section, number: OrderNumber(7) }, index: 0 };
    assert_eq!(harness.reserved.reissue(missing, &ReissueProof::Missing, now), Err(TicketError::NotFound));
}

#[test]
fn revocations_come_from_ticket_state_by_time_and_survive_a_snapshot() {
    let mut harness = Harness::new();
    let order = sold_pair(&mut harness);
    let admin = ReissueProof::Admin;
    harness.reserved.reissue(TicketId { order, index: 0 }, &admin, Millis(T0.0 + 10)).expect("reissued");
    harness.reserved.reissue(TicketId { order, index: 1 }, &admin, Millis(T0.0 + 20)).expect("reissued");
    assert_eq!(
        harness.reserved.scan(order.number, 1, 0, "north", "s1", Millis(T0.0 + 21)),
        ScanOutcome::Revoked { current_version: 1 }
    );
    let listed = |inventory: &mut Inventory, since: u64, max: usize| {
        let (revocations, more) = inventory.revocations(Millis(T0.0 + since), max);
        let names: Vec<String> = revocations
            .iter()
            .map(|revocation| {
                format!("+{} {:?} {}", revocation.at.0 - T0.0, revocation.ticket, revocation.reason.as_str())
            })
            .collect();
        (names.join(", "), more)
    };
    // The first listing builds the index from the orders; later changes keep it current.
    let reissues = "+10 Some(0) reissued, +20 Some(1) reissued".to_string();
    assert_eq!(listed(&mut harness.reserved, 0, 10), (reissues, false));
    harness.reserved.cancel(order, Millis(T0.0 + 30)).expect("cancelled");
    let all = "+10 Some(0) reissued, +20 Some(1) reissued, +30 None cancelled".to_string();
    assert_eq!(listed(&mut harness.reserved, 0, 10), (all.clone(), false));
    assert_eq!(listed(&mut harness.reserved, 20, 10), ("+20 Some(1) reissued, +30 None cancelled".to_string(), false));
    assert_eq!(listed(&mut harness.reserved, 0, 1), ("+10 Some(0) reissued".to_string(), true));
    assert_eq!(listed(&mut harness.reserved, 31, 10), (String::new(), false));

    let snapshot = harness.reserved.snapshot(1);
    let mut restored = Harness::new();
    restored.reserved.restore(&snapshot).expect("restores");
    assert_eq!(listed(&mut restored.reserved, 0, 10), (all, false));
    assert_eq!(restored.reserved.scan(order.number, 0, 1, "north", "s2", Millis(T0.0 + 40)), ScanOutcome::Cancelled);
}

#[test]
fn a_quantity_hold_reclaims_only_what_it_needs() {
    let mut harness = Harness::new();
    let now = harness.now;
    for customer in ["a", "b", "c", "d", "e"] {
        harness.ga.hold_quantity(&CustomerId::new(customer), 1, now).expect("room");
    }
    harness.now = harness.now.saturating_add(11_000);
    let granted = harness.ga.hold_quantity(&CustomerId::new("f"), 2, harness.now).expect("two expired holds reclaimed");
    assert_eq!(granted.hold.units, Units::Quantity(2));
    assert_eq!(harness.ga.holds().count(), 4, "three expired holds wait for the sweep");
    assert_eq!(harness.ga.sweep(harness.now).len(), 3);
}

#[test]
fn orders_are_seen_and_cancelled_only_by_their_customer_or_an_admin() {
    let mut harness = Harness::new();
    let order = sold_pair(&mut harness);
    let (alice, bob) = (Viewer::Customer(CustomerId::new("alice")), Viewer::Customer(CustomerId::new("bob")));
    assert!(harness.reserved.order_for(order, &alice).is_some());
    assert!(harness.reserved.order_for(order, &Viewer::Admin).is_some());
    assert!(harness.reserved.order_for(order, &bob).is_none());
    let now = harness.now;
    assert_eq!(harness.reserved.cancel_for(order, &bob, now), Err(OrderError::NotFound));
    assert_eq!(harness.reserved.cancel_for(order, &alice, now).map(|order| order.state), Ok(OrderState::Cancelled));
    assert_eq!(harness.reserved.cancel_for(order, &Viewer::Admin, now), Err(OrderError::AlreadyCancelled));
}

/// Replays everything `harness` journalled into a fresh inventory: it must end in the
/// same state (recovery makes the same payment decisions as the live calls).
fn assert_replays(harness: &mut Harness) {
    let (mut fresh, mut restored) = (Harness::new(), Harness::new());
    let sections = [
        (&mut harness.reserved, &mut fresh.reserved, &mut restored.reserved),
        (&mut harness.ga, &mut fresh.ga, &mut restored.ga),
    ];
    for (live, replayed, restored) in sections {
        for record in live.take_journal() {
            replayed.replay(&record).unwrap_or_else(|error| panic!("{record:?} did not replay: {error}"));
        }
        assert_eq!(replayed.snapshot(0), live.snapshot(0));
        restored.restore(&live.snapshot(0)).expect("snapshot restores");
        assert_eq!(restored.snapshot(0), live.snapshot(0));
    }
}

/// [`check`], then the script's records replayed and its snapshot restored must give
/// the same state.
fn check_payments(script: &str) {
    assert_replays(&mut checked(script));
}

#[test]
fn a_paid_hold_is_sold_once_and_captured_once_whatever_the_order_of_reports() {
    check_payments(
        "
        hold alice 1-1 1-2          => h0 1-1,1-2 exp +10s 20000
        checkout alice h0           => AwaitingPayment Nothing exp +12s
        checkout alice h0           => AwaitingPayment Nothing exp +12s
        checkout bob h0             => error: the hold belongs to another customer
        confirm alice h0            => error: the hold is being paid for; it is confirmed when the payment is authorized
        captured h0                 => Captured(o(0)) Nothing
        authorized h0               => Captured(o(0)) Nothing
        captured h0                 => Captured(o(0)) Nothing
        counts                      => R0 16/0/2 GA0 5/0/0
        hold bob 1-3                => h1 1-3 exp +10s 10000
        checkout bob h1             => AwaitingPayment Nothing exp +12s
        authorized h1               => Ordered(o(1)) Capture
        authorized h1               => Ordered(o(1)) Capture
        captured h1                 => Captured(o(1)) Nothing
        canceled h1                 => Captured(o(1)) Nothing
        cancel o1                   => cancelled
        payment h1                  => RefundDue(Some(o(1))) Refund
        refunded h1                 => Refunded(Some(o(1))) Nothing
        refunded h1                 => Refunded(Some(o(1))) Nothing
        counts                      => R0 16/0/2 GA0 5/0/0
        ",
    );
}

#[test]
fn checkout_extends_the_hold_once_within_its_lifetime_and_checks_the_amount() {
    check_payments(
        "
        hold alice 1-1              => h0 1-1 exp +10s 10000
        wait 8s
        checkout alice h0 amount 5  => error: the payment's amount is not the hold's (10000)
        checkout alice h0           => AwaitingPayment Nothing exp +20s
        wait 10s
        checkout alice h0           => AwaitingPayment Nothing exp +20s
        extend alice h0             => exp +25s
        hold bob 1-2                => h1 1-2 exp +28s 10000
        checkout bob h1             => AwaitingPayment Nothing exp +30s
        authorized h1 amount 7      => VoidDue { reason: AmountMismatch, order: None } Void exp +30s
        canceled h1                 => Voided { reason: AmountMismatch, order: None } Nothing exp +30s
        authorized h1               => Voided { reason: AmountMismatch, order: None } Nothing exp +30s
        checkout carol h9           => error: no such hold
        authorized h9               => error: the hold has no payment
        ",
    );
}

#[test]
fn a_late_payment_takes_the_same_seats_if_free_and_is_voided_if_not() {
    check_payments(
        "
        hold alice 1-1 1-2          => h0 1-1,1-2 exp +10s 20000
        checkout alice h0           => AwaitingPayment Nothing exp +12s
        hold bob 2-1                => h1 2-1 exp +10s 10000
        checkout bob h1             => AwaitingPayment Nothing exp +12s
        hold carol 3-1              => h2 3-1 exp +10s 5000
        checkout carol h2           => AwaitingPayment Nothing exp +12s
        wait 13s
        hold dave 2-1               => h3 2-1 exp +23s 10000
        authorized h0               => Ordered(o(0)) Capture
        map                         => ss.... h..... ......
        authorized h1               => VoidDue { reason: Late, order: None } Void
        authorized h2 void          => VoidDue { reason: Late, order: None } Void
        map                         => ss.... h..... ......
        canceled h1                 => Voided { reason: Late, order: None } Nothing
        captured h2                 => RefundDue(None) Refund
        captured h0                 => Captured(o(0)) Nothing
        counts                      => R0 15/1/2 GA0 5/0/0
        ",
    );
}

#[test]
fn a_late_general_admission_payment_reacquires_only_if_units_are_left() {
    check_payments(
        "
        ga alice 2                  => h0 x2 exp +10s 8000
        checkout alice h0 ga        => AwaitingPayment Nothing exp +12s
        ga bob 2                    => h1 x2 exp +10s 8000
        checkout bob h1 ga          => AwaitingPayment Nothing exp +12s
        wait 13s
        ga carol 3                  => h2 x3 exp +23s 12000
        authorized h0 ga            => Ordered(o(0)) Capture
        authorized h1 ga            => VoidDue { reason: Late, order: None } Void
        counts                      => R0 18/0/0 GA0 0/3/2
        cancel o0 ga                => cancelled
        payment h0 ga               => VoidDue { reason: OrderCancelled, order: Some(o(0)) } Void
        ",
    );
}

#[test]
fn payments_due_lists_what_the_psp_owes_or_must_be_asked() {
    let mut harness = Harness::new();
    for line in ["hold alice 1-1", "checkout alice h0", "hold bob 1-2", "checkout bob h1", "authorized h1"] {
        harness.run(line);
    }
    let due = |harness: &mut Harness, grace_ms: u64, abandon_ms: u64| {
        let now = harness.now;
        let listed = harness.reserved.payments_due(now, grace_ms, abandon_ms);
        listed.iter().map(|(payment, due)| format!("h{} {due:?}", payment.hold.number.0)).collect::<Vec<_>>().join(", ")
    };
    assert_eq!(due(&mut harness, 30_000, 60_000), "h1 Step(Capture)");
    assert_eq!(due(&mut harness, 0, 60_000), "h0 Check, h1 Step(Capture)");
    harness.run("wait 30s");
    assert_eq!(due(&mut harness, 1_000, 20_000), "h0 Abandon, h1 Step(Capture)");
    harness.run("canceled h0");
    harness.run("captured h1");
    assert_eq!(due(&mut harness, 0, 0), "");
    assert_replays(&mut harness);
}

#[test]
fn erasing_a_buyer_keeps_the_order_and_its_tickets_and_replays_the_same() {
    let mut harness = Harness::new();
    let order = sold_pair(&mut harness);
    let mut log = harness.reserved.take_journal();
    let later = Millis(T0.0 + 50);
    let erased = harness.reserved.erase_buyer(order, later).expect("an order");
    assert!(erased.buyer.is_erased() && erased.units.count() == 2 && erased.state == OrderState::Confirmed);
    let erasure = harness.reserved.take_journal();
    assert_eq!(erasure, vec![Record::BuyerErased { order: order.number.0, at_ms: later.0 }]);
    log.extend(erasure);
    // Again: the same answer, nothing recorded.
    assert_eq!(harness.reserved.erase_buyer(order, later), Ok(erased.clone()));
    assert!(harness.reserved.journal_is_empty(), "erasing twice records nothing");
    let missing = OrderId { section: order.section, number: OrderNumber(9) };
    assert_eq!(harness.reserved.erase_buyer(missing, later), Err(OrderError::NotFound));

    // The buyer's proof no longer works (the blob it was checked against is gone);
    // an admin's does, and the tickets still admit.
    let ticket = TicketId { order, index: 0 };
    let proof = ReissueProof::Buyer { order: Some(order), email_found_in: Some(Arc::from(ANA_SEALED)) };
    assert_eq!(harness.reserved.reissue(ticket, &proof, later), Err(TicketError::NotFound));
    assert!(matches!(harness.reserved.scan(order.number, 1, 0, "north", "s1", later), ScanOutcome::Admitted(_)));
    assert_eq!(harness.reserved.reissue(ticket, &ReissueProof::Admin, later).map(|(_, version)| version), Ok(1));
    log.extend(harness.reserved.take_journal());

    // Replay and snapshot both reproduce the erasure; a second erasure record does not apply.
    let mut replayed = Harness::new();
    for record in &log {
        replayed.reserved.replay(record).expect("replays");
    }
    assert_eq!(replayed.reserved.snapshot(1), harness.reserved.snapshot(1));
    let mut restored = Harness::new();
    restored.reserved.restore(&harness.reserved.snapshot(1)).expect("restores");
    assert!(restored.reserved.order(order).expect("kept").buyer.is_erased());
    assert!(replayed.reserved.replay(&Record::BuyerErased { order: order.number.0, at_ms: later.0 }).is_err());
    assert!(replayed.reserved.replay(&Record::BuyerErased { order: 9, at_ms: later.0 }).is_err());
}
