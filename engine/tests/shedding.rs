//! Dead work is dropped before it runs: a call past its request's deadline is refused
//! before it reaches the actor and changes nothing; a flood of holds that each may wait
//! only a moment is served or refused, and what was refused left no trace.
#![cfg(not(loom))] // Under loom the engine is only its lock-free core.

use std::time::{Duration, Instant};

use hakken_engine::actor::{Confirm, HoldQuantity, SectionHandle, ShedReason, Unavailable};
use hakken_engine::clock::{Clock, Millis};
use hakken_engine::config::EngineConfig;
use hakken_engine::deadline;
use hakken_engine::ids::CustomerId;
use hakken_engine::inventory::Buyer;
use hakken_engine::registry::Registry;
use hakken_engine::store::{StorageConfig, Store};
use hakken_engine::synthetic::{grid_venue, open_event, GridShape};

fn ga_section(dir: &std::path::Path) -> (Registry, SectionHandle) {
    let store = Store::open(dir, StorageConfig::default()).unwrap();
    let config = EngineConfig { actor_threads: 1, customer_seats_max: 0, ..EngineConfig::default() };
    let mut registry = Registry::recover(config, Clock::manual(Millis(1_000_000_000)), store).unwrap();
    let venue = grid_venue(GridShape { sections: 0, rows: 0, seats_per_row: 0, ga_sections: 1, ga_capacity: 100_000 });
    let event = open_event(&venue);
    registry.add_venue(venue).unwrap();
    registry.add_event(event).unwrap();
    let section = registry.event("open").unwrap().sections[0].clone();
    (registry, section)
}

fn held(section: &SectionHandle) -> u64 {
    section.state.availability().total.held as u64
}

#[test]
fn a_call_past_its_deadline_is_refused_unrun_and_one_without_a_deadline_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, section) = ga_section(dir.path());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    runtime.block_on(async {
        let customer = CustomerId::new("late");
        let passed = Instant::now() - Duration::from_millis(1);
        let hold = HoldQuantity { customer: customer.clone(), quantity: 1 };
        let refused = deadline::serve_within(passed, section.call(hold.clone())).await;
        assert_eq!(refused.err(), Some(Unavailable::Shed(ShedReason::DeadlinePassed)));
        assert_eq!(held(&section), 0, "the refused hold changed nothing");

        let granted = section.call(hold.clone()).await.unwrap().unwrap();
        assert_eq!(held(&section), 1);
        // A confirm is never shed for a standing queue, but a passed deadline is final.
        let confirm = Confirm { hold: granted.hold.id, customer: customer.clone(), buyer: Buyer::default() };
        let refused = deadline::serve_within(passed, section.call(confirm.clone())).await;
        assert_eq!(refused.err(), Some(Unavailable::Shed(ShedReason::DeadlinePassed)));
        let within = Instant::now() + Duration::from_secs(60);
        deadline::serve_within(within, section.call(confirm)).await.unwrap().unwrap();
        assert_eq!((held(&section), section.state.availability().total.sold as u64), (0, 1));
    });
    drop(section);
    registry.shutdown();
}

/// 4,000 holds sent at once, each with 2 ms to live: whatever the machine's speed,
/// each is granted or shed, and the section holds exactly the granted ones.
#[test]
fn a_flood_of_short_lived_holds_is_served_or_shed_and_the_shed_leave_no_trace() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, section) = ga_section(dir.path());
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_time().build().unwrap();
    let (granted, shed) = runtime.block_on(async {
        let calls: Vec<_> = (0..4_000)
            .map(|n| {
                let section = section.clone();
                tokio::spawn(async move {
                    let hold = HoldQuantity { customer: CustomerId::new(&format!("c{n}")), quantity: 1 };
                    deadline::serve_within(Instant::now() + Duration::from_millis(2), section.call(hold)).await
                })
            })
            .collect();
        let (mut granted, mut shed) = (0u64, 0u64);
        for call in calls {
            match call.await.unwrap() {
                Ok(Ok(_)) => granted += 1,
                Ok(Err(refused)) => panic!("100,000 places cannot run out: {refused:?}"),
                Err(Unavailable::Shed(_) | Unavailable::Busy) => shed += 1,
                Err(other) => panic!("{other:?}"),
            }
        }
        (granted, shed)
    });
    assert_eq!(granted + shed, 4_000);
    assert_eq!(held(&section), granted, "{shed} shed calls left no hold");
    drop(section);
    registry.shutdown();
}
