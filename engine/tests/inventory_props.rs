//! Property test: random operation sequences from many customers against one reserved
//! and one general-admission inventory, checking after every step that
//! - every seat word agrees with the hold and order records (one owner per seat),
//! - no seat is in two confirmed orders, GA never goes over capacity,
//! - published counts equal counts recomputed from the seat words and records,
//! - each customer's ledger equals their live holds plus confirmed orders,
//! - a seat that was released, expired or cancelled can be held again at once,
//! - best-available refuses a together request only when no row has that many adjacent free seats.
#![cfg(not(loom))] // Under loom the engine is only its lock-free core.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use hakken_engine::best::BestRequest;
use hakken_engine::clock::Millis;
use hakken_engine::config::EngineConfig;
use hakken_engine::ids::SectionKey;
use hakken_engine::ids::{CustomerId, HoldId, HoldNumber, OrderId};
use hakken_engine::inventory::Buyer;
use hakken_engine::inventory::{HoldRefused, Inventory, InventoryParams, OrderState, Stock, Units};
use hakken_engine::ledger::CustomerLedger;
use hakken_engine::lockfree::SeatState;
use hakken_engine::synthetic::{grid_venue, open_event, GridShape};
use proptest::prelude::*;

const CUSTOMERS: u8 = 5;
const ROWS: u16 = 4;
const SEATS_PER_ROW: u16 = 5;
const SEATS: u32 = (ROWS * SEATS_PER_ROW) as u32;
const GA_CAPACITY: u32 = 7;

#[derive(Clone, Debug)]
enum Op {
    HoldSeats {
        customer: u8,
        seats: Vec<u32>,
    },
    HoldBest {
        customer: u8,
        quantity: u32,
        adjacent: bool,
    },
    HoldGa {
        customer: u8,
        quantity: u32,
    },
    /// `pick` chooses among the live holds of the customer (or a made-up one).
    Release {
        customer: u8,
        pick: usize,
    },
    Extend {
        customer: u8,
        pick: usize,
    },
    Confirm {
        customer: u8,
        pick: usize,
    },
    Cancel {
        pick: usize,
    },
    Sweep,
    Wait {
        secs: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let customer = 0..CUSTOMERS;
    prop_oneof![
        4 => (customer.clone(), prop::collection::vec(0..SEATS, 1..4)).prop_map(|(customer, mut seats)| {
            seats.sort_unstable();
            seats.dedup();
            Op::HoldSeats { customer, seats }
        }),
        3 => (customer.clone(), 1..5u32, any::<bool>())
            .prop_map(|(customer, quantity, adjacent)| Op::HoldBest { customer, quantity, adjacent }),
        2 => (customer.clone(), 1..4u32).prop_map(|(customer, quantity)| Op::HoldGa { customer, quantity }),
        2 => (customer.clone(), 0..4usize).prop_map(|(customer, pick)| Op::Release { customer, pick }),
        1 => (customer.clone(), 0..4usize).prop_map(|(customer, pick)| Op::Extend { customer, pick }),
        3 => (customer.clone(), 0..4usize).prop_map(|(customer, pick)| Op::Confirm { customer, pick }),
        1 => (0..8usize).prop_map(|pick| Op::Cancel { pick }),
        1 => Just(Op::Sweep),
        2 => (0..12u64).prop_map(|secs| Op::Wait { secs }),
    ]
}

struct World {
    reserved: Inventory,
    ga: Inventory,
    ledger: Arc<CustomerLedger>,
    now: Millis,
}

fn customer(index: u8) -> CustomerId {
    CustomerId::new(&format!("c{index}"))
}

impl World {
    fn new() -> World {
        let venue = Arc::new(grid_venue(GridShape {
            sections: 1,
            rows: ROWS,
            seats_per_row: SEATS_PER_ROW,
            ga_sections: 1,
            ga_capacity: GA_CAPACITY,
        }));
        let event = open_event(&venue);
        let config = EngineConfig {
            hold_ttl_ms: 10_000,
            hold_lifetime_max_ms: 20_000,
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
        World { reserved: inventory(0), ga: inventory(1), ledger, now: Millis(5_000_000) }
    }

    fn seat_state(&self, seat: u32) -> SeatState {
        match &self.reserved.state().stock {
            Stock::Seats(states) => states.load(seat),
            Stock::GeneralAdmission(_) => unreachable!(),
        }
    }

    fn pick_hold(&self, customer: &CustomerId, pick: usize) -> (bool, HoldId) {
        let mut holds: Vec<(bool, HoldId)> = self
            .reserved
            .holds()
            .map(|hold| (false, hold))
            .chain(self.ga.holds().map(|hold| (true, hold)))
            .filter(|(_, hold)| hold.customer == *customer)
            .map(|(ga, hold)| (ga, hold.id))
            .collect();
        holds.sort_by_key(|(ga, id)| (*ga, id.number));
        holds.get(pick).copied().unwrap_or((false, HoldId { section: SectionKey(0), number: HoldNumber(999) }))
    }

    fn apply(&mut self, op: &Op) {
        let now = self.now;
        match op {
            Op::HoldSeats { customer: c, seats } => self.hold_seats(*c, seats),
            Op::HoldBest { customer: c, quantity, adjacent } => self.hold_best(*c, *quantity, *adjacent),
            Op::HoldGa { customer: c, quantity } => match self.ga.hold_quantity(&customer(*c), *quantity, now) {
                Ok(_) | Err(HoldRefused::SoldOut { .. }) | Err(HoldRefused::CustomerLimit(_)) => {}
                Err(other) => panic!("unexpected refusal {other:?}"),
            },
            Op::Release { customer: c, pick } => {
                let (ga, id) = self.pick_hold(&customer(*c), *pick);
                let inventory = if ga { &mut self.ga } else { &mut self.reserved };
                if let Ok(hold) = inventory.release(id, &customer(*c), now) {
                    self.check_sellable_again(&hold.units, ga);
                }
            }
            Op::Extend { customer: c, pick } => {
                let (ga, id) = self.pick_hold(&customer(*c), *pick);
                let inventory = if ga { &mut self.ga } else { &mut self.reserved };
                if let Ok(hold) = inventory.extend(id, &customer(*c), now) {
                    assert!(hold.expires_at() > now);
                    assert!(hold.expires_at() <= hold.created_at.saturating_add(20_000));
                }
            }
            Op::Confirm { customer: c, pick } => {
                let (ga, id) = self.pick_hold(&customer(*c), *pick);
                let inventory = if ga { &mut self.ga } else { &mut self.reserved };
                if let Ok(order) = inventory.confirm(id, &customer(*c), &Buyer::default(), now) {
                    assert_eq!(order.hold, id);
                }
            }
            Op::Cancel { pick } => self.cancel(*pick),
            Op::Sweep => {
                for hold in self.reserved.sweep(now) {
                    self.check_sellable_again(&hold.units, false);
                }
                self.ga.sweep(now);
            }
            Op::Wait { secs } => self.now = self.now.saturating_add(secs * 1000),
        }
        self.check_invariants();
    }

    /// Holds the given seats: granted iff every one was takeable, else refused naming
    /// exactly the ones that were not (or for the customer's limit).
    fn hold_seats(&mut self, c: u8, seats: &[u32]) {
        let now = self.now;
        let takeable_before: Vec<bool> = seats.iter().map(|&s| self.seat_state(s).is_takeable(now.0)).collect();
        match self.reserved.hold_seats(&customer(c), seats, now) {
            Ok(granted) => {
                assert!(takeable_before.iter().all(|&t| t), "granted a seat that was not takeable");
                assert_eq!(granted.hold.units, Units::Seats(seats.to_vec()));
            }
            Err(HoldRefused::SeatsUnavailable { seats: unavailable }) => {
                let expected: Vec<u32> =
                    seats.iter().zip(&takeable_before).filter(|(_, &t)| !t).map(|(&s, _)| s).collect();
                assert_eq!(unavailable, expected);
            }
            Err(HoldRefused::CustomerLimit(limit)) => {
                assert!(limit.current + seats.len() as u32 > limit.limit);
            }
            Err(other) => panic!("unexpected refusal {other:?}"),
        }
    }

    /// Best available: what it grants was free (and adjacent when asked or claimed);
    /// it refuses only when no choice of that shape was free.
    fn hold_best(&mut self, c: u8, quantity: u32, adjacent: bool) {
        let now = self.now;
        let request = BestRequest { quantity, category: None, accessible: false, adjacent };
        let free: Vec<bool> = (0..SEATS).map(|s| self.seat_state(s).is_takeable(now.0)).collect();
        match self.reserved.hold_best(&customer(c), &request, now) {
            Ok(granted) => {
                let choice = granted.choice.expect("best-available says why");
                assert_eq!(choice.seats.len() as u32, quantity);
                assert!(choice.seats.iter().all(|&s| free[s as usize]));
                if adjacent {
                    assert!(choice.adjacent);
                }
                if choice.adjacent {
                    let row = choice.seats[0] / u32::from(SEATS_PER_ROW);
                    assert!(choice.seats.iter().all(|&s| s / u32::from(SEATS_PER_ROW) == row));
                    assert!(choice.seats.windows(2).all(|w| w[1] == w[0] + 1));
                }
            }
            Err(HoldRefused::NoSeatsMatch) => {
                let n = quantity as usize;
                let fits_together =
                    free.chunks(usize::from(SEATS_PER_ROW)).any(|row| row.windows(n).any(|w| w.iter().all(|&f| f)));
                assert!(!fits_together, "refused although {n} adjacent seats were free");
                if !adjacent {
                    assert!(free.iter().filter(|&&f| f).count() < n);
                }
            }
            Err(HoldRefused::CustomerLimit(_)) => {}
            Err(other) => panic!("unexpected refusal {other:?}"),
        }
    }

    /// Refunds the `pick`th order of either section; its seats are sellable again.
    fn cancel(&mut self, pick: usize) {
        let now = self.now;
        let mut orders: Vec<(bool, OrderId)> =
            self.reserved.orders().map(|o| (false, o.id)).chain(self.ga.orders().map(|o| (true, o.id))).collect();
        orders.sort_by_key(|(ga, id)| (*ga, id.number));
        if let Some(&(ga, id)) = orders.get(pick) {
            let inventory = if ga { &mut self.ga } else { &mut self.reserved };
            if let Ok(order) = inventory.cancel(id, now) {
                self.check_sellable_again(&order.units, ga);
            }
        }
    }

    /// Seats just returned to sale can be held at once by someone new (then let go again).
    fn check_sellable_again(&mut self, units: &Units, ga: bool) {
        if ga {
            return;
        }
        let Units::Seats(seats) = units else { return };
        let probe = CustomerId::new("probe");
        let seats: Vec<u32> = seats.iter().copied().filter(|&s| self.seat_state(s) == SeatState::Free).collect();
        if seats.is_empty() {
            return;
        }
        let granted = self.reserved.hold_seats(&probe, &seats, self.now).expect("freed seats are sellable again");
        self.reserved.release(granted.hold.id, &probe, self.now).unwrap();
    }

    fn check_invariants(&self) {
        // Seat words agree with the records.
        let mut expected: HashMap<u32, SeatState> = HashMap::new();
        for hold in self.reserved.holds() {
            let Units::Seats(seats) = &hold.units else { panic!("reserved hold without seats") };
            for &seat in seats {
                let state = SeatState::Held { hold: hold.id.number, expires_at_s: hold.expires_at_s };
                assert!(expected.insert(seat, state).is_none(), "seat {seat} in two live holds");
            }
        }
        let mut sold_once = HashSet::new();
        for order in self.reserved.orders().filter(|o| o.state == OrderState::Confirmed) {
            let Units::Seats(seats) = &order.units else { panic!("reserved order without seats") };
            for &seat in seats {
                assert!(sold_once.insert(seat), "seat {seat} sold twice");
                assert!(expected.insert(seat, SeatState::Sold { order: order.id.number }).is_none());
            }
        }
        let (mut held, mut sold) = (0, 0);
        for seat in 0..SEATS {
            let state = self.seat_state(seat);
            assert_eq!(state, expected.get(&seat).copied().unwrap_or(SeatState::Free), "seat {seat}");
            match state {
                SeatState::Held { .. } => held += 1,
                SeatState::Sold { .. } => sold += 1,
                SeatState::Free => {}
            }
        }
        let total = self.reserved.state().availability().total;
        assert_eq!((total.held, total.sold, total.available), (held, sold, SEATS - held - sold));

        // GA: counts equal the records and stay within capacity.
        let ga_held: u32 = self.ga.holds().map(|h| h.units.count()).sum();
        let ga_sold: u32 = self.ga.orders().filter(|o| o.state == OrderState::Confirmed).map(|o| o.units.count()).sum();
        let Stock::GeneralAdmission(stock) = &self.ga.state().stock else { unreachable!() };
        let counts = stock.counts();
        assert_eq!((counts.held, counts.sold), (ga_held, ga_sold));
        assert!(counts.held + counts.sold <= GA_CAPACITY);
        let ga_total = self.ga.state().availability().total;
        assert_eq!((ga_total.held, ga_total.sold), (ga_held, ga_sold));

        // Ledger: held + bought per customer.
        for index in 0..CUSTOMERS {
            let c = customer(index);
            let holds: u32 =
                self.reserved.holds().chain(self.ga.holds()).filter(|h| h.customer == c).map(|h| h.units.count()).sum();
            let bought: u32 = self
                .reserved
                .orders()
                .chain(self.ga.orders())
                .filter(|o| o.customer == c && o.state == OrderState::Confirmed)
                .map(|o| o.units.count())
                .sum();
            assert_eq!(self.ledger.seats(&c), holds + bought, "ledger of {c}");
            assert!(holds + bought <= 6);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_operations_keep_invariants(ops in prop::collection::vec(op(), 1..120)) {
        let mut world = World::new();
        for op in &ops {
            world.apply(op);
        }
    }
}
