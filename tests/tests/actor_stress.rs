//! Many concurrent buyers against real section actors on their arbiter threads.
//! `HAKKEN_STRESS_OPS` sets operations per buyer (default keeps CI short).

use std::collections::HashMap;
use std::sync::{mpsc, Arc, Mutex};

use hakken_engine::actor::{
    Confirm, HoldBest, HoldQuantity, HoldSeats, Release, SectionCall, Snapshot, Sweep, Unavailable,
};
use hakken_engine::best::BestRequest;
use hakken_engine::clock::{Clock, Millis};
use hakken_engine::config::EngineConfig;
use hakken_engine::ids::CustomerId;
use hakken_engine::inventory::Buyer;
use hakken_engine::inventory::{seat_code, Inventory, Stock, Units};
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
async fn call<C: SectionCall + Clone>(
    handle: &hakken_engine::actor::SectionHandle,
    call: C,
    busy: &std::sync::atomic::AtomicU64,
) -> C::Reply
where
    hakken_engine::actor::SectionActor: actix::Handler<hakken_engine::actor::Call<C>>,
{
    loop {
        match handle.call(call.clone()).await {
            Ok(reply) => return reply,
            Err(Unavailable::Busy) => {
                busy.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tokio::task::yield_now().await;
            }
            Err(error @ (Unavailable::Stopped | Unavailable::Storage(_))) => panic!("{error}"),
        }
    }
}

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
    let confirmed: Arc<Mutex<Vec<(usize, Units, hakken_engine::ids::OrderId)>>> = Arc::default();
    let busy = Arc::new(std::sync::atomic::AtomicU64::new(0));

    runtime.block_on(async {
        let mut buyers = Vec::new();
        for buyer in 0..BUYERS {
            let (registry, clock, confirmed, busy) = (registry.clone(), clock.clone(), confirmed.clone(), busy.clone());
            buyers.push(tokio::spawn(async move {
                let mut rng = SmallRng::seed_from_u64(buyer as u64);
                let event = registry.event("open").unwrap();
                for op in 0..ops_per_buyer {
                    let customer = CustomerId::new(&format!("b{buyer}-{op}"));
                    let section = rng.gen_range(0..event.sections.len());
                    let handle = &event.sections[section];
                    let granted = match section {
                        4 => {
                            call(
                                handle,
                                HoldQuantity { customer: customer.clone(), quantity: rng.gen_range(1..5) },
                                &busy,
                            )
                            .await
                        }
                        _ if rng.gen_bool(0.5) => {
                            let first = rng.gen_range(0..(SHAPE.rows * SHAPE.seats_per_row) as u32 - 1);
                            let seats = vec![first, first + 1];
                            call(handle, HoldSeats { customer: customer.clone(), seats }, &busy).await
                        }
                        _ => {
                            let request = BestRequest {
                                quantity: rng.gen_range(1..5),
                                category: None,
                                accessible: false,
                                adjacent: rng.gen_bool(0.7),
                            };
                            call(handle, HoldBest { customer: customer.clone(), request }, &busy).await
                        }
                    };
                    let Ok(granted) = granted else { continue };
                    let hold = granted.hold.id;
                    match rng.gen_range(0..10) {
                        0..=5 => {
                            if let Ok(order) =
                                call(handle, Confirm { hold, customer, buyer: Buyer::default() }, &busy).await
                            {
                                confirmed.lock().unwrap().push((section, order.units, order.id));
                            }
                        }
                        6..=7 => {
                            let _ = call(handle, Release { hold, customer }, &busy).await;
                        }
                        // Abandoned: the hold expires as time moves on.
                        _ => clock.advance(rng.gen_range(0..3_000)),
                    }
                }
            }));
        }
        for buyer in buyers {
            buyer.await.unwrap();
        }
        // Let every hold expire and be swept, then check the final state.
        clock.advance(60_000);
        let event = registry.event("open").unwrap();
        for handle in &event.sections {
            call(handle, Sweep {}, &busy).await;
        }
        let snapshots: Vec<_> = {
            let mut snapshots = Vec::new();
            for handle in &event.sections {
                snapshots.push(call(handle, Snapshot {}, &busy).await);
            }
            snapshots
        };

        let confirmed = confirmed.lock().unwrap();
        let mut owner: HashMap<(usize, u32), hakken_engine::ids::OrderId> = HashMap::new();
        let mut ga_sold = 0;
        for (section, units, order) in confirmed.iter() {
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
        for (section, handle) in event.sections.iter().enumerate() {
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
        assert!(!confirmed.is_empty());
        eprintln!("{} orders, {} busy retries", confirmed.len(), busy.load(std::sync::atomic::Ordering::Relaxed));
    });
    drop(runtime);
    Arc::try_unwrap(registry).ok().expect("registry still shared").shutdown();
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
