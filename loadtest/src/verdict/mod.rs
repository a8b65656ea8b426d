//! The verdict: after a run, read the event's final state back from the server and
//! check it against what the run was told.
//!
//! The [`Ledger`] is the run's side: the event's counts before the first buyer
//! arrived, and every order the server acknowledged (a 2xx confirm, or an in-doubt
//! confirm resolved by retrying it with its `Idempotency-Key`). [`Observed`] is the
//! server's side, read after the run (in `observed`, the module's only I/O):
//! availability, each ledger order, and the seat maps of the sections that sold.
//! [`check`] compares them, as a pure function so that its rules are tested on
//! hand-made inconsistencies:
//!
//! - no seat and no ticket id is in two acknowledged orders, and no order id twice;
//! - every acknowledged order exists on the server, is confirmed, and has the tickets
//!   the buyer was given (an acknowledged sale is never lost or changed);
//! - per section, the server's sold count rose by exactly the seats of the run's
//!   orders (nothing sold that no buyer was told about, nothing missing);
//! - per section, available + held + sold = capacity, and sold <= capacity;
//! - per reserved section, the seat map agrees: as many `sold` seats as the count says,
//!   each seat of the run's orders `sold`, no seat id twice, capacity seats in all;
//! - the event's totals are the sum of its sections.
//!
//! The counts compare before and after, so the run must be the only buyer of the event
//! while it runs (what a rehearsal is); earlier sales are in the baseline.

mod observed;
pub mod payments;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use serde::{Deserialize, Serialize};

pub use self::observed::{Availability, Observed, SeatCounts, SeatState, SectionCounts, ServerOrder};
pub use self::payments::{PaymentCheck, PaymentSources, PaymentsObserved};

/// Violations printed at most; the rest are counted.
pub const VIOLATIONS_SHOWN_MAX: usize = 20;

/// What the run was told: the ledger of a run, written by `replay --ledger` and read
/// by `verify`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    pub event: String,
    pub run_id: String,
    /// The event's counts before the run.
    pub baseline: Availability,
    /// Every order acknowledged to a buyer of the run.
    pub orders: Vec<LedgerOrder>,
    /// Confirms whose outcome stayed unknown (no reply, even to the retries with the
    /// same `Idempotency-Key`): each is a violation, since the run cannot tell whether
    /// it sold.
    #[serde(default)]
    pub unresolved_confirms: Vec<String>,
    /// Every checkout of the run (buyers who paid at a PSP); empty when the run
    /// confirmed on trust.
    #[serde(default)]
    pub payments: Vec<LedgerPayment>,
}

/// A checkout of the run: a hold the buyer started paying for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerPayment {
    pub hold: String,
    pub customer: String,
    /// The PSP's id, if the checkout's reply came.
    #[serde(default)]
    pub payment: Option<String>,
    /// The PSP authorized it (the buyer paid).
    #[serde(default)]
    pub paid: bool,
    /// Paid after the hold's expiry, on purpose.
    #[serde(default)]
    pub late: bool,
    /// The order the buyer learned of.
    #[serde(default)]
    pub order: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerOrder {
    pub id: String,
    /// Who bought it (orders are readable by their customer).
    pub customer: String,
    pub section: String,
    pub tickets: Vec<Ticket>,
    /// The PSP payment that bought it; `None` for a trusted confirm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Ticket {
    pub id: String,
    /// `None` for general admission.
    pub seat: Option<String>,
}

/// The outcome of [`check`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub orders_checked: u64,
    pub seats_checked: u64,
    pub sections_checked: u64,
    pub seat_maps_checked: u64,
    /// The money's rules ([`payments`]), for a run that paid at a PSP.
    pub payments: Option<PaymentCheck>,
    /// Every inconsistency found, one sentence each; empty is a pass.
    pub violations: Vec<String>,
}

impl Verdict {
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let checked = format!(
            "{} acknowledged orders ({} seats) read back, {} sections and {} seat maps checked",
            self.orders_checked, self.seats_checked, self.sections_checked, self.seat_maps_checked
        );
        let money = self.payments.as_ref().map(|p| {
            let psp = p.psp_intents.map_or("the PSP not listed (no --psp-secret-key)".to_string(), |intents| {
                format!(
                    "{intents} PSP payments: {} captured, {} refunded, {} voided, {} unpaid, {} pending",
                    p.captured, p.refunded, p.voided, p.unpaid, p.pending
                )
            });
            let reconcile = match p.reconcile_ok {
                Some(true) => "reconcile ok",
                Some(false) => "reconcile NOT ok",
                None => "reconcile not read (no --admin-token)",
            };
            format!("; {} checkouts, {psp}, {reconcile}", p.checkouts)
        });
        let money = money.unwrap_or_default();
        if self.passed() {
            let paid = if self.payments.is_some() {
                ", every PSP payment is one order, void or refund and every order sold online is paid"
            } else {
                ""
            };
            return writeln!(
                f,
                "verdict: PASS: {checked}{money}; every sold seat is in exactly one confirmed order, the sold counts \
                 equal the confirmed orders, nothing sold twice or beyond capacity{paid}"
            );
        }
        writeln!(f, "verdict: FAIL: {} violation(s); {checked}{money}", self.violations.len())?;
        for violation in self.violations.iter().take(VIOLATIONS_SHOWN_MAX) {
            writeln!(f, "  FAIL {violation}")?;
        }
        if self.violations.len() > VIOLATIONS_SHOWN_MAX {
            writeln!(f, "  ... and {} more", self.violations.len() - VIOLATIONS_SHOWN_MAX)?;
        }
        Ok(())
    }
}

/// Compares the ledger with what the server shows; see the module comment for the rules.
pub fn check(ledger: &Ledger, observed: &Observed) -> Verdict {
    let mut verdict = Verdict::default();
    for hold in &ledger.unresolved_confirms {
        verdict.violations.push(format!("the confirm of hold {hold} never got a definite answer, even when retried"));
    }
    let sold_by_run = check_ledger(ledger, &mut verdict.violations);
    check_orders(ledger, observed, &mut verdict);
    check_counts(ledger, &observed.availability, &sold_by_run, &mut verdict);
    check_seat_maps(ledger, observed, &mut verdict);
    if let Some(paid) = &observed.payments {
        let orders = |id: &str| observed.orders.get(id).cloned().flatten();
        verdict.payments = Some(payments::check(ledger, paid, &orders, &mut verdict.violations));
    }
    verdict
}

/// The ledger on its own: each seat, ticket and order once. Returns the seats the
/// run's orders hold, by section.
fn check_ledger<'a>(ledger: &'a Ledger, violations: &mut Vec<String>) -> BTreeMap<&'a str, u64> {
    let mut seat_orders: HashMap<&str, &str> = HashMap::new();
    let mut ticket_orders: HashMap<&str, &str> = HashMap::new();
    let mut order_ids: BTreeSet<&str> = BTreeSet::new();
    let mut sold_by_run: BTreeMap<&str, u64> = BTreeMap::new();
    for order in &ledger.orders {
        if !order_ids.insert(&order.id) {
            violations.push(format!("order {} was acknowledged twice", order.id));
        }
        *sold_by_run.entry(&order.section).or_default() += order.tickets.len() as u64;
        for ticket in &order.tickets {
            if let Some(other) = ticket_orders.insert(&ticket.id, &order.id) {
                violations.push(format!("ticket {} is in two orders: {other} and {}", ticket.id, order.id));
            }
            if let Some(seat) = &ticket.seat {
                if let Some(other) = seat_orders.insert(seat, &order.id) {
                    violations.push(format!("seat {seat} was sold twice: orders {other} and {}", order.id));
                }
            }
        }
    }
    sold_by_run
}

/// Every acknowledged order is on the server, confirmed, as the buyer was told.
fn check_orders(ledger: &Ledger, observed: &Observed, verdict: &mut Verdict) {
    let violations = &mut verdict.violations;
    for order in &ledger.orders {
        verdict.orders_checked += 1;
        verdict.seats_checked += order.tickets.len() as u64;
        match observed.orders.get(&order.id) {
            None => violations.push(format!("order {} was not read back", order.id)),
            Some(None) => {
                violations.push(format!("order {} was acknowledged but the server does not know it", order.id))
            }
            Some(Some(server)) => {
                if server.state != "confirmed" {
                    violations.push(format!("order {} was acknowledged but is now {}", order.id, server.state));
                }
                let mut told = order.tickets.clone();
                let mut shown = server.tickets.clone();
                told.sort();
                shown.sort();
                if told != shown || server.section != order.section {
                    violations.push(format!(
                        "order {}: the buyer was given {} ticket(s) in {} but the server shows {} in {}",
                        order.id,
                        told.len(),
                        order.section,
                        shown.len(),
                        server.section
                    ));
                }
            }
        }
    }
}

/// Counts, section by section: each adds up to its capacity, and rose by the run's
/// seats; the event's totals are the sum of its sections.
fn check_counts(ledger: &Ledger, after: &Availability, sold_by_run: &BTreeMap<&str, u64>, verdict: &mut Verdict) {
    let violations = &mut verdict.violations;
    let mut total = SeatCounts::default();
    for (id, section) in &after.sections {
        verdict.sections_checked += 1;
        let counts = section.counts;
        total.capacity += counts.capacity;
        total.available += counts.available;
        total.held += counts.held;
        total.sold += counts.sold;
        let accounted = u64::from(counts.available) + u64::from(counts.held) + u64::from(counts.sold);
        if accounted != u64::from(counts.capacity) {
            violations.push(format!(
                "section {id}: available {} + held {} + sold {} = {accounted}, not its capacity {}",
                counts.available, counts.held, counts.sold, counts.capacity
            ));
        }
        if counts.sold > counts.capacity {
            violations.push(format!("section {id}: {} sold beyond its capacity {}", counts.sold, counts.capacity));
        }
        let before = ledger.baseline.sections.get(id).map_or(0, |before| before.counts.sold);
        let rose = i64::from(counts.sold) - i64::from(before);
        let by_run = sold_by_run.get(id.as_str()).copied().unwrap_or(0);
        if rose != by_run as i64 {
            violations.push(format!(
                "section {id}: the server's sold count went from {before} to {} (+{rose}) but the run's confirmed \
                 orders hold {by_run} seats there",
                counts.sold
            ));
        }
    }
    for id in sold_by_run.keys().filter(|id| !after.sections.contains_key(**id)) {
        violations.push(format!("section {id} of the run's orders is not in the event's availability"));
    }
    if total != after.total {
        violations.push(format!("the event's totals {:?} are not the sum of its sections {total:?}", after.total));
    }
}

/// Each seat map read back agrees with its section's counts and holds the run's seats
/// as sold.
fn check_seat_maps(ledger: &Ledger, observed: &Observed, verdict: &mut Verdict) {
    let after = &observed.availability;
    let violations = &mut verdict.violations;
    for (section, seats) in &observed.seat_maps {
        verdict.seat_maps_checked += 1;
        let mut states: HashMap<&str, &str> = HashMap::with_capacity(seats.len());
        for seat in seats {
            if states.insert(&seat.id, &seat.state).is_some() {
                violations.push(format!("section {section}: seat {} is twice on the seat map", seat.id));
            }
        }
        let sold = seats.iter().filter(|seat| seat.state == "sold").count() as u64;
        if let Some(counts) = after.sections.get(section).map(|section| section.counts) {
            if sold != u64::from(counts.sold) {
                violations.push(format!(
                    "section {section}: the seat map shows {sold} sold seats but the availability says {}",
                    counts.sold
                ));
            }
            if seats.len() as u64 != u64::from(counts.capacity) {
                violations.push(format!(
                    "section {section}: the seat map has {} seats for a capacity of {}",
                    seats.len(),
                    counts.capacity
                ));
            }
        }
        for order in ledger.orders.iter().filter(|order| order.section == *section) {
            for seat in order.tickets.iter().filter_map(|ticket| ticket.seat.as_deref()) {
                match states.get(seat) {
                    Some(&"sold") => {}
                    Some(state) => violations.push(format!("seat {seat} of order {} is {state}, not sold", order.id)),
                    None => violations.push(format!("seat {seat} of order {} is not on the seat map", order.id)),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(capacity: u32, available: u32, held: u32, sold: u32) -> SeatCounts {
        SeatCounts { capacity, available, held, sold }
    }

    fn availability(sections: &[(&str, &str, SeatCounts)]) -> Availability {
        let mut total = SeatCounts::default();
        for (_, _, counts) in sections {
            total.capacity += counts.capacity;
            total.available += counts.available;
            total.held += counts.held;
            total.sold += counts.sold;
        }
        let sections = sections
            .iter()
            .map(|(id, kind, counts)| {
                (id.to_string(), SectionCounts { kind: kind.to_string(), counts: *counts, categories: BTreeMap::new() })
            })
            .collect();
        Availability { total, sections }
    }

    fn ticket(id: &str, seat: Option<&str>) -> Ticket {
        Ticket { id: id.into(), seat: seat.map(String::from) }
    }

    fn order(id: &str, section: &str, tickets: Vec<Ticket>) -> LedgerOrder {
        LedgerOrder { id: id.into(), customer: format!("c-{id}"), section: section.into(), tickets, payment: None }
    }

    /// A consistent world: section A (reserved, 4 seats) had A-1 sold before the run,
    /// which sold A-2 and A-3 (order o1) and 2 GA places (order o2); A-4 is held.
    fn consistent() -> (Ledger, Observed) {
        let ledger = Ledger {
            event: "e".into(),
            run_id: "r".into(),
            baseline: availability(&[
                ("A", "reserved", counts(4, 3, 0, 1)),
                ("GA", "general_admission", counts(10, 10, 0, 0)),
            ]),
            orders: vec![
                order("o1", "A", vec![ticket("t1", Some("A-2")), ticket("t2", Some("A-3"))]),
                order("o2", "GA", vec![ticket("t3", None), ticket("t4", None)]),
            ],
            unresolved_confirms: Vec::new(),
            payments: Vec::new(),
        };
        let server_order = |order: &LedgerOrder| ServerOrder {
            id: order.id.clone(),
            section: order.section.clone(),
            state: "confirmed".into(),
            tickets: order.tickets.iter().rev().cloned().collect(),
            ..ServerOrder::default()
        };
        let seat = |id: &str, state: &str| SeatState { id: id.into(), state: state.into() };
        let observed = Observed {
            availability: availability(&[
                ("A", "reserved", counts(4, 0, 1, 3)),
                ("GA", "general_admission", counts(10, 8, 0, 2)),
            ]),
            orders: ledger.orders.iter().map(|order| (order.id.clone(), Some(server_order(order)))).collect(),
            seat_maps: BTreeMap::from([(
                "A".to_string(),
                vec![seat("A-1", "sold"), seat("A-2", "sold"), seat("A-3", "sold"), seat("A-4", "held")],
            )]),
            payments: None,
        };
        (ledger, observed)
    }

    fn violations(ledger: &Ledger, observed: &Observed) -> Vec<String> {
        check(ledger, observed).violations
    }

    fn assert_fails(ledger: &Ledger, observed: &Observed, expected: &str) {
        let found = violations(ledger, observed);
        assert!(found.iter().any(|violation| violation.contains(expected)), "{found:#?} should contain {expected:?}");
    }

    #[test]
    fn a_consistent_run_passes() {
        let (ledger, observed) = consistent();
        let verdict = check(&ledger, &observed);
        assert_eq!(verdict.violations, Vec::<String>::new());
        assert_eq!(
            (verdict.orders_checked, verdict.seats_checked, verdict.sections_checked, verdict.seat_maps_checked),
            (2, 4, 2, 1)
        );
        assert!(verdict.to_string().starts_with("verdict: PASS"));
    }

    #[test]
    fn a_seat_sold_twice_fails() {
        let (mut ledger, observed) = consistent();
        ledger.orders.push(order("o3", "A", vec![ticket("t9", Some("A-3"))]));
        assert_fails(&ledger, &observed, "seat A-3 was sold twice: orders o1 and o3");
        let (mut ledger, observed) = consistent();
        ledger.orders[1].tickets[1].id = "t1".into();
        assert_fails(&ledger, &observed, "ticket t1 is in two orders");
    }

    #[test]
    fn a_lost_or_changed_order_fails() {
        let (ledger, mut observed) = consistent();
        observed.orders.insert("o1".into(), None);
        assert_fails(&ledger, &observed, "order o1 was acknowledged but the server does not know it");
        let (ledger, mut observed) = consistent();
        observed.orders.remove("o2");
        assert_fails(&ledger, &observed, "order o2 was not read back");
        let (ledger, mut observed) = consistent();
        observed.orders.get_mut("o2").and_then(Option::as_mut).expect("o2").state = "cancelled".into();
        assert_fails(&ledger, &observed, "order o2 was acknowledged but is now cancelled");
        let (ledger, mut observed) = consistent();
        observed.orders.get_mut("o1").and_then(Option::as_mut).expect("o1").tickets[0].seat = Some("A-4".into());
        assert_fails(&ledger, &observed, "order o1: the buyer was given 2 ticket(s) in A");
    }

    #[test]
    fn sold_counts_must_equal_the_confirmed_orders() {
        // The server sold a seat no buyer was told about.
        let (ledger, mut observed) = consistent();
        observed.availability =
            availability(&[("A", "reserved", counts(4, 0, 0, 4)), ("GA", "general_admission", counts(10, 8, 0, 2))]);
        observed.seat_maps.get_mut("A").expect("A")[3].state = "sold".into();
        assert_eq!(
            violations(&ledger, &observed),
            ["section A: the server's sold count went from 1 to 4 (+3) but the run's confirmed orders hold 2 seats there"]
        );
        // An order the ledger has is missing from the counts.
        let (ledger, mut observed) = consistent();
        observed.availability =
            availability(&[("A", "reserved", counts(4, 0, 1, 3)), ("GA", "general_admission", counts(10, 9, 0, 1))]);
        assert_fails(&ledger, &observed, "section GA: the server's sold count went from 0 to 1 (+1)");
    }

    #[test]
    fn nothing_beyond_capacity() {
        let (mut ledger, mut observed) = consistent();
        ledger.orders.push(order("o3", "GA", (0..10).map(|n| ticket(&format!("g{n}"), None)).collect()));
        observed.orders.insert(
            "o3".into(),
            Some(ServerOrder {
                id: "o3".into(),
                section: "GA".into(),
                state: "confirmed".into(),
                tickets: ledger.orders[2].tickets.clone(),
                ..ServerOrder::default()
            }),
        );
        observed.availability =
            availability(&[("A", "reserved", counts(4, 0, 1, 3)), ("GA", "general_admission", counts(10, 0, 0, 12))]);
        let found = violations(&ledger, &observed);
        assert!(found.iter().any(|v| v.contains("section GA: 12 sold beyond its capacity 10")), "{found:#?}");
        assert!(found.iter().any(|v| v.contains("section GA: available 0 + held 0 + sold 12 = 12")), "{found:#?}");
    }

    #[test]
    fn the_seat_map_must_agree() {
        let (ledger, mut observed) = consistent();
        observed.seat_maps.get_mut("A").expect("A")[2].state = "free".into();
        let found = violations(&ledger, &observed);
        assert!(found.iter().any(|v| v == "seat A-3 of order o1 is free, not sold"), "{found:#?}");
        assert!(found.iter().any(|v| v.contains("the seat map shows 2 sold seats but the availability says 3")));
        let (ledger, mut observed) = consistent();
        observed.seat_maps.get_mut("A").expect("A")[3].id = "A-3".into();
        assert_fails(&ledger, &observed, "seat A-3 is twice on the seat map");
        let (ledger, mut observed) = consistent();
        observed.seat_maps.get_mut("A").expect("A").pop();
        assert_fails(&ledger, &observed, "the seat map has 3 seats for a capacity of 4");
    }

    #[test]
    fn totals_and_unresolved_confirms_are_checked() {
        let (ledger, mut observed) = consistent();
        observed.availability.total.sold += 1;
        assert_fails(&ledger, &observed, "the event's totals");
        let (mut ledger, observed) = consistent();
        ledger.unresolved_confirms.push("h7".into());
        assert_fails(&ledger, &observed, "the confirm of hold h7 never got a definite answer");
        let verdict = check(&ledger, &observed);
        assert!(verdict.to_string().starts_with("verdict: FAIL: 1 violation(s)"), "{verdict}");
    }

    #[test]
    fn the_availability_reply_parses() {
        let body = br#"{"event": "e", "at": "2026-01-01T00:00:00Z",
            "total": {"capacity": 14, "available": 8, "held": 1, "sold": 5},
            "sections": [
                {"id": "A", "kind": "reserved", "capacity": 4, "available": 0, "held": 1, "sold": 3,
                 "categories": [{"category": "CAT1", "capacity": 4, "available": 0, "held": 1, "sold": 3}]},
                {"id": "GA", "kind": "general_admission", "capacity": 10, "available": 8, "held": 0, "sold": 2,
                 "categories": []}]}"#;
        let parsed = Availability::parse(body).expect("parses");
        assert_eq!(parsed.total, counts(14, 8, 1, 5));
        assert_eq!(parsed.sections["A"].categories["CAT1"], counts(4, 0, 1, 3));
        assert_eq!(parsed.sections["GA"].kind, "general_admission");
    }
}
