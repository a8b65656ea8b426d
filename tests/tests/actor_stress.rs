//! Many concurrent buyers against real section actors on their arbiter threads.
//! `HAKKEN_STRESS_OPS` sets operations per buyer (default keeps CI short).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use hakken_engine::actor::{
    Confirm, HoldBest, HoldQuantity, HoldSeats, Release, SectionCall, SectionHandle, ShedReason, Snapshot, Sweep,
    Unavailable,
};
use hakken_engine::best::BestRequest;
use hakken_engine::clock::{Clock, Millis};
use hakken_engine::config::EngineConfig;
use hakken_engine::ids::{CustomerId, OrderId};
use hakken_engine::inventory::Buyer;
use hakken_engine::inventory::{seat_code, Availability, Granted, HoldRefused, Inventory, Stock, Units};
use hakken_engine::lockfree::SeatState;
use hakken_engine::registry::Registry;
use hakken_engine::synthetic::{grid_venue, open_event, GridShape};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const SHAPE: GridShape = GridShape { sections: 4, rows: 10, seats_per_row: 20, ga_sections: 1, ga_capacity: 300 };
const BUYERS: usize = 16;

fn registry(config: EngineConfig, clock: Clock) -> Registry {
    let mut registry = Registry::new(config, clock).unwrap();
    let venue = grid_venue(SHAPE);
    let event = open_event(&venue);
    registry.add_venue(venue).unwrap();
    registry.add_event(event).unwrap();
    registry
}

/// Retries while the section is busy, as a well-behaved client would.
async fn call<C: SectionCall + Clone>(handle: &SectionHandle, call: C, busy: &AtomicU64) -> C::Reply
where
    hakken_engine::actor::SectionActor: actix::Handler<hakken_engine::actor::Call<C>>,
{
    loop {
        match handle.call(call.clone()).await {
            Ok(reply) => return reply,
            // A full mailbox, or a new hold meeting a standing queue: both say "later".
            Err(Unavailable::Busy | Unavailable::Shed(ShedReason::StandingQueue)) => {
                busy.fetch_add(1, Ordering::Relaxed);
                tokio::task::yield_now().await;
            }
            Err(error) => panic!("{error}"),
        }
    }
}

/// What the buyers were told: (section index, units, order) per confirmed order.
type Confirmed = Arc<Mutex<Vec<(usize, Units, OrderId)>>>;

#[test]
fn concurrent_buyers_never_oversell() {
    let ops_per_buyer: usize = std::env::var("HAKKEN_STRESS_OPS").ok().and_then(|v| v.parse().ok()).unwrap_or(400);
    let clock = Clock::manual(Millis(1_000_000_000));
    let config = EngineConfig {
        hold_ttl_ms: 5_000,
        customer_seats_max: 0,
        mailbox_capacity: 8,
        sweep_interval_ms: 5,
        actor_threads: 2,
        ..EngineConfig::default()
    };
    let registry = Arc::new(registry(config, clock.clone()));
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let confirmed: Confirmed = Arc::default();
    let busy = Arc::new(AtomicU64::new(0));

    runtime.block_on(async {
        let buyers: Vec<_> = (0..BUYERS)
            .map(|buyer| {
                let (registry, clock, confirmed, busy) =
                    (registry.clone(), clock.clone(), confirmed.clone(), busy.clone());
                tokio::spawn(async move { buy(buyer, ops_per_buyer, &registry, &clock, &confirmed, &busy).await })
            })
            .collect();
        for buyer in buyers {
            buyer.await.unwrap();
        }
        // Let every hold expire and be swept, then check the final state.
        clock.advance(60_000);
        let event = registry.event("open").unwrap();
        let mut snapshots = Vec::new();
        for handle in &event.sections {
            call(handle, Sweep {}, &busy).await;
            snapshots.push(call(handle, Snapshot {}, &busy).await);
        }
        let confirmed = confirmed.lock().unwrap();
        check_final_state(&event.sections, &snapshots, &confirmed);
        assert!(!confirmed.is_empty());
        eprintln!("{} orders, {} busy retries", confirmed.len(), busy.load(Ordering::Relaxed));
    });
    drop(runtime);
    Arc::try_unwrap(registry).ok().expect("registry still shared").shutdown();
}

/// One buyer's random operations: a hold of some kind, then confirm, release or abandon.
async fn buy(buyer: usize, ops: usize, registry: &Registry, clock: &Clock, confirmed: &Confirmed, busy: &AtomicU64) {
    let mut rng = SmallRng::seed_from_u64(buyer as u64);
    let event = registry.event("open").unwrap();
    for op in 0..ops {
        let customer = CustomerId::new(&format!("b{buyer}-{op}"));
        let section = rng.gen_range(0..event.sections.len());
        let handle = &event.sections[section];
        let Ok(granted) = hold_something(handle, section, customer.clone(), &mut rng, busy).await else { continue };
        let hold = granted.hold.id;
        match rng.gen_range(0..10) {
            0..=5 => {
                if let Ok(order) = call(handle, Confirm { hold, customer, buyer: Buyer::default() }, busy).await {
                    confirmed.lock().unwrap().push((section, order.units, order.id));
                }
            }
            6..=7 => {
                let _ = call(handle, Release { hold, customer }, busy).await;
            }
            // Abandoned: the hold expires as time moves on.
            _ => clock.advance(rng.gen_range(0..3_000)),
        }
    }
}

/// A GA quantity in the standing section, else two given seats or a best-available choice.
async fn hold_something(
    handle: &SectionHandle,
    section: usize,
    customer: CustomerId,
    rng: &mut SmallRng,
    busy: &AtomicU64,
) -> Result<Granted, HoldRefused> {
    if section == 4 {
        return call(handle, HoldQuantity { customer, quantity: rng.gen_range(1..5) }, busy).await;
    }
    if rng.gen_bool(0.5) {
        let first = rng.gen_range(0..(SHAPE.rows * SHAPE.seats_per_row) as u32 - 1);
        return call(handle, HoldSeats { customer, seats: vec![first, first + 1] }, busy).await;
    }
    let request =
        BestRequest { quantity: rng.gen_range(1..5), category: None, accessible: false, adjacent: rng.gen_bool(0.7) };
    call(handle, HoldBest { customer, request }, busy).await
}

/// Every confirmed seat is sold to its one order, every other seat is free, and the
/// counts agree, in the seat words and in the snapshot's seat codes.
fn check_final_state(
    sections: &[SectionHandle],
    snapshots: &[(Availability, Vec<u8>)],
    confirmed: &[(usize, Units, OrderId)],
) {
    let mut owner: HashMap<(usize, u32), OrderId> = HashMap::new();
    let mut ga_sold = 0;
    for (section, units, order) in confirmed {
        match units {
            Units::Seats(seats) => {
                for &seat in seats {
                    assert!(
                        owner.insert((*section, seat), *order).is_none(),
                        "seat {seat} of section {section} sold twice"
                    );
                }
            }
            Units::Quantity(quantity) => ga_sold += quantity,
        }
    }
    for (section, handle) in sections.iter().enumerate() {
        let (availability, codes) = &snapshots[section];
        assert_eq!(availability.total.held, 0, "all holds expired");
        match &handle.state.stock {
            Stock::Seats(states) => {
                for seat in 0..states.len() as u32 {
                    let expected = owner.get(&(section, seat)).map(|order| SeatState::Sold { order: order.number });
                    assert_eq!(states.load(seat), expected.unwrap_or(SeatState::Free));
                    let code = if expected.is_some() { seat_code::SOLD } else { seat_code::FREE };
                    assert_eq!(codes[seat as usize], code);
                }
                let sold = owner.keys().filter(|(s, _)| *s == section).count() as u32;
                assert_eq!(availability.total.sold, sold);
            }
            Stock::GeneralAdmission(stock) => {
                assert_eq!(stock.counts().sold, ga_sold);
                assert!(ga_sold <= SHAPE.ga_capacity);
                assert_eq!(availability.total.sold, ga_sold);
            }
        }
    }
}

/// A call that parks the actor until the test lets it go.
struct Block {
    started: Mutex<mpsc::Sender<()>>,
    release: Mutex<mpsc::Receiver<()>>,
}

impl SectionCall for Block {
    type Reply = ();
    fn run(self, _: &mut Inventory, _: Millis) {
        self.started.lock().unwrap().send(()).unwrap();
        let _ = self.release.lock().unwrap().recv();
    }
}

#[test]
fn full_mailbox_is_busy_not_a_queue() {
    let capacity = 4;
    let config = EngineConfig { mailbox_capacity: capacity, actor_threads: 1, ..EngineConfig::default() };
    let registry = registry(config, Clock::System);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let handle = registry.event("open").unwrap().sections[0].clone();
    let (started, actor_parked) = mpsc::channel();
    let (release, parked) = mpsc::channel();
    let block = Block { started: Mutex::new(started), release: Mutex::new(parked) };
    let blocker = runtime.spawn({
        let handle = handle.clone();
        async move { handle.call(block).await }
    });
    runtime.block_on(tokio::task::yield_now());
    // The actor has taken the blocking call: its mailbox is empty and nothing drains it.
    actor_parked.recv().unwrap();
    let results: Vec<Result<_, Unavailable>> = runtime.block_on(async {
        let calls: Vec<_> = (0..32).map(|_| handle.call(Sweep {})).collect();
        let mut pending = Vec::new();
        let mut refused = Vec::new();
        for call in calls {
            // Polling once performs the `try_send`; then we keep the future to await later.
            let mut call = Box::pin(call);
            match futures_poll_once(&mut call).await {
                Some(result) => refused.push(result),
                None => pending.push(call),
            }
        }
        // The blocking call was taken; what waits is exactly what the mailbox accepted.
        assert_eq!(handle.queued(), pending.len());
        release.send(()).unwrap();
        let mut results = refused;
        for call in pending {
            results.push(call.await);
        }
        results
    });
    let accepted = results.iter().filter(|r| r.is_ok()).count();
    let busy = results.iter().filter(|r| **r == Err(Unavailable::Busy)).count();
    assert_eq!(accepted + busy, 32);
    assert_eq!((accepted, busy), (capacity, 32 - capacity));
    eprintln!("mailbox capacity {capacity}: accepted {accepted}, busy {busy}");
    assert!(accepted >= 1);
    runtime.block_on(blocker).unwrap().unwrap();
    assert_eq!(handle.queued(), 0);
    registry.shutdown();
}

/// Polls a future once: `Some(output)` if it finished, `None` if it is pending.
async fn futures_poll_once<F: std::future::Future + Unpin>(future: &mut F) -> Option<F::Output> {
    std::future::poll_fn(|cx| match std::pin::Pin::new(&mut *future).poll(cx) {
        std::task::Poll::Ready(output) => std::task::Poll::Ready(Some(output)),
        std::task::Poll::Pending => std::task::Poll::Ready(None),
    })
    .await
}
