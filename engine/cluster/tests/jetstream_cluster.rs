//! The cluster primitives against a real 3-node JetStream cluster on loopback (R3):
//! leases pass on only when their holder stops renewing, a deposed owner cannot append
//! once the new one fenced it and loses nothing it was acknowledged, a retried append
//! is stored once (and an earlier id reused is refused), a hold kept again after it ran
//! out is a new term, and appends go on with a server killed.

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hakken_cluster::jetstream::ClusterError;
use hakken_cluster::leases::{Keeper, Leases, Role};
use hakken_cluster::log::{message_id, AppendError, EntryKind, EventLog, Follower, LogEntry};
use hakken_cluster::takeover::{fence, OwnerLog};
use support::NatsCluster;

const TTL: Duration = Duration::from_millis(1_500);

/// The follower's next message, within 20 s.
async fn next(follower: &mut Follower) -> Result<LogEntry, ClusterError> {
    let next = tokio::time::timeout(Duration::from_secs(20), follower.next());
    next.await.expect("the follower got no message within 20 s")
}

/// The keeper's role once a tick makes it the owner, within 3 ticks. A lease read may be
/// served by a replica that has not applied the latest write yet (direct get): the take
/// that follows fails its compare-and-set, and the next tick reads again.
async fn tick_until_owner(keeper: &mut Keeper) -> Role {
    let mut role = keeper.tick().await;
    for _ in 0..2 {
        if owner_epoch(&role).is_some() {
            break;
        }
        tokio::time::sleep(keeper.next_tick_in()).await;
        role = keeper.tick().await;
    }
    role
}

fn owner_epoch(role: &Role) -> Option<u64> {
    match role {
        Role::Owner { epoch, .. } => Some(*epoch),
        Role::Standby { .. } => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_passes_on_only_when_its_holder_stops_renewing() {
    let cluster = NatsCluster::start(3);
    let (a, b) = (cluster.connect("a").await, cluster.connect("b").await);
    let mut keeper_a = Keeper::new(Leases::new(&a), "a", "final", TTL);
    let mut keeper_b = Keeper::new(Leases::new(&b), "b", "final", TTL);

    let first = keeper_a.tick().await;
    assert!(matches!(first, Role::Owner { epoch: 1, took_over: true, .. }), "{first:?}");
    assert_eq!(keeper_b.tick().await, Role::Standby { holder: Some("a".into()), epoch: 1, address: None });

    // While a renews, b never takes over, however long it watches.
    let watch_until = Instant::now() + TTL * 3;
    while Instant::now() < watch_until {
        assert_eq!(owner_epoch(&keeper_a.tick().await), Some(1), "the holder keeps its lease");
        assert!(owner_epoch(&keeper_b.tick().await).is_none(), "no takeover while the holder renews");
        tokio::time::sleep(keeper_b.next_tick_in()).await;
    }

    // a stops renewing (paused): b takes over a whole ttl after the last renewal it saw.
    let paused_at = Instant::now();
    let taken = loop {
        let role = keeper_b.tick().await;
        if let Some(epoch) = owner_epoch(&role) {
            break epoch;
        }
        assert!(paused_at.elapsed() < TTL * 3, "b did not take over within 3 ttl");
        tokio::time::sleep(keeper_b.next_tick_in()).await;
    };
    let waited = paused_at.elapsed();
    assert_eq!(taken, 2, "a takeover begins the next epoch");
    assert!(waited >= TTL - TTL / 3, "b took over {waited:?} after a's last renewal: sooner than a ttl allows");
    // a's hold ran out before b could take over (the margin): it acts on nothing now.
    assert!(owner_epoch(&keeper_a.role()).is_none(), "a's hold lapsed before the takeover");
    // a resumes: its renewal names a stale revision, so it learns it lost the event.
    assert_eq!(keeper_a.tick().await, Role::Standby { holder: Some("b".into()), epoch: 2, address: None });

    // A release hands over at once: a takes the event at its next read, with epoch 3.
    keeper_b.release().await.expect("b releases");
    let handed = tick_until_owner(&mut keeper_a).await;
    assert!(matches!(handed, Role::Owner { epoch: 3, took_over: true, .. }), "{handed:?}");

    // a restarts: the bucket names it, but it lost what it knew, so it begins a new term.
    let mut restarted_a = Keeper::new(Leases::new(&a), "a", "final", TTL);
    let restarted = tick_until_owner(&mut restarted_a).await;
    assert!(matches!(restarted, Role::Owner { epoch: 4, took_over: true, .. }), "{restarted:?}");
    // The old incarnation's next renewal names a stale revision.
    assert!(owner_epoch(&keeper_a.tick().await).is_none(), "the old incarnation learns it lost");
}

/// The SIGSTOP case: the owner checked its lease, was paused before its append went
/// out, another node took over and fenced, and the paused owner resumed and sent it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposed_owner_cannot_append_once_fenced_and_loses_nothing_it_was_acknowledged() {
    let cluster = NatsCluster::start(3);
    let (a, b) = (cluster.connect("a").await, cluster.connect("b").await);
    let (log_a, log_b) = (EventLog::new(&a), EventLog::new(&b));
    let mut keeper_a = Keeper::new(Leases::new(&a), "a", "final", TTL);
    let mut keeper_b = Keeper::new(Leases::new(&b), "b", "final", TTL);

    let Role::Owner { epoch: 1, .. } = keeper_a.tick().await else { panic!("a takes the empty event") };
    let fenced_a = fence(&log_a, "final", "a", 1, 0).await.expect("a's takeover of an empty log");
    assert!(fenced_a.entries.is_empty());
    let mut owner_a = OwnerLog::after(&log_a, "final", 1, &fenced_a);
    let mut acknowledged = Vec::new();
    for number in 0..5 {
        assert!(matches!(keeper_a.role(), Role::Owner { .. }), "a checks its lease before each append");
        acknowledged.push(owner_a.append(Bytes::from(format!("a-{number}"))).await.expect("a appends"));
    }
    // a passes its check for the next append, and is paused before sending it.
    assert!(matches!(keeper_a.role(), Role::Owner { .. }));

    assert!(owner_epoch(&keeper_b.tick().await).is_none());
    let epoch_b = loop {
        tokio::time::sleep(keeper_b.next_tick_in()).await;
        if let Some(epoch) = owner_epoch(&keeper_b.tick().await) {
            break epoch;
        }
    };
    assert_eq!(epoch_b, 2);
    let fenced_b = fence(&log_b, "final", "b", epoch_b, 0).await.expect("b's takeover");
    let read_by_b: Vec<u64> = fenced_b.entries.iter().map(|entry| entry.sequence).collect();
    let mut expected = vec![fenced_a.marker];
    expected.extend(&acknowledged);
    assert_eq!(read_by_b, expected, "b caught up on everything a was acknowledged");
    let mut owner_b = OwnerLog::after(&log_b, "final", epoch_b, &fenced_b);
    let b_first = owner_b.append(Bytes::from_static(b"b-0")).await.expect("b appends after its marker");

    // a resumes and sends the append it had checked for: refused, nothing stored.
    let late = owner_a.append(Bytes::from_static(b"a-late")).await;
    assert!(matches!(late, Err(AppendError::Fenced)), "{late:?}");
    assert!(owner_epoch(&keeper_a.role()).is_none(), "a's hold had lapsed");
    assert_eq!(keeper_a.tick().await, Role::Standby { holder: Some("b".into()), epoch: 2, address: None });

    // The log is one chain: a's marker, a's acknowledged batches, b's marker, b's batch.
    let whole = log_b.read_after("final", 0).await.expect("the whole log");
    let sequences: Vec<u64> = whole.iter().map(|entry| entry.sequence).collect();
    expected.extend([fenced_b.marker, b_first]);
    assert_eq!(sequences, expected, "the log holds exactly what was acknowledged, in order");
    assert_eq!(whole[0].kind, EntryKind::Epoch);
    assert_eq!((whole[6].kind, whole[6].epoch), (EntryKind::Epoch, 2));
    assert!(whole.iter().all(|entry| entry.payload != Bytes::from_static(b"a-late")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_append_is_stored_once_and_a_stale_one_is_refused() {
    let cluster = NatsCluster::start(3);
    let jetstream = cluster.connect("a").await;
    let log = EventLog::new(&jetstream);
    let id = message_id("final", 1, 1);
    let first = log.append("final", 1, 0, &id, EntryKind::Batch, Bytes::from_static(b"x")).await.expect("append");
    // The same append again (its answer was lost): the same sequence, nothing stored twice.
    let again = log.append("final", 1, 0, &id, EntryKind::Batch, Bytes::from_static(b"x")).await.expect("retry");
    assert_eq!(again, first);
    assert_eq!(log.read_after("final", 0).await.expect("read").len(), 1);
    // Another append naming the old end is refused.
    let stale = log.append("final", 1, 0, &message_id("final", 1, 2), EntryKind::Batch, Bytes::new()).await;
    assert!(matches!(stale, Err(AppendError::Fenced)), "{stale:?}");
    // An earlier message's id on a new append (a term that reused an epoch) is refused,
    // not taken for a retry of that message: nothing would have been stored.
    let reused = log.append("final", 1, first, &id, EntryKind::Batch, Bytes::from_static(b"y")).await;
    assert!(matches!(reused, Err(AppendError::Fenced)), "{reused:?}");
    assert_eq!(log.read_after("final", 0).await.expect("read").len(), 1);
    // Each event's chain is its own.
    let other = log.append("other", 1, 0, &message_id("other", 1, 1), EntryKind::Batch, Bytes::new()).await;
    assert!(other.expect("another event's first append") > first);
    assert_eq!(log.last_sequence("final").await.expect("last"), first);

    // A hold kept again after it ran out is a new term (the epoch names the message ids).
    let mut keeper = Keeper::new(Leases::new(&jetstream), "a", "lapsed", TTL);
    assert!(matches!(keeper.tick().await, Role::Owner { epoch: 1, took_over: true, .. }));
    assert!(matches!(keeper.tick().await, Role::Owner { epoch: 1, took_over: false, .. }));
    // No renewal for a whole ttl (the bucket did not answer, say): the term ended, and
    // the node stepped down. Nobody else took the lease, so it keeps it, in a new term.
    tokio::time::sleep(TTL + Duration::from_millis(100)).await;
    assert!(matches!(keeper.role(), Role::Standby { .. }), "{:?}", keeper.role());
    let again = keeper.tick().await;
    assert!(matches!(again, Role::Owner { epoch: 2, took_over: true, .. }), "{again:?}");
    assert!(matches!(keeper.tick().await, Role::Owner { epoch: 2, took_over: false, .. }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_go_on_with_the_log_leader_killed_and_the_server_catches_up_when_back() {
    let mut cluster = NatsCluster::start(3);
    let jetstream = cluster.connect("a").await;
    let log = EventLog::new(&jetstream);
    let fenced = fence(&log, "final", "a", 1, 0).await.expect("takeover of an empty log");
    let mut owner = OwnerLog::after(&log, "final", 1, &fenced);
    let mut acknowledged = vec![fenced.marker];
    for number in 0..50 {
        acknowledged.push(owner.append(Bytes::from(format!("before-{number}"))).await.expect("append"));
    }

    let leader = log.leader().await.expect("the log's leader");
    cluster.kill(cluster.index_of(&leader));
    // A quorum of two remains: appends go on after a failover (retried while it runs).
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut unanswered = 0;
    while acknowledged.len() < 101 {
        match owner.append(Bytes::from(format!("after-{}", acknowledged.len()))).await {
            Ok(sequence) => acknowledged.push(sequence),
            Err(AppendError::Unavailable(_)) if Instant::now() < deadline => unanswered += 1,
            Err(error) => panic!("appends did not go on with a server down: {error}"),
        }
    }
    let whole = log.read_after("final", 0).await.expect("the log after the failover");
    let stored: Vec<u64> = whole.iter().map(|entry| entry.sequence).collect();
    let acknowledged_set: BTreeSet<u64> = acknowledged.iter().copied().collect();
    assert!(acknowledged_set.iter().all(|sequence| stored.contains(sequence)), "an acknowledged append was lost");
    // An append whose answer was lost may be stored, never twice, and only in a's term.
    assert!(stored.len() <= acknowledged.len() + unanswered, "an append was stored twice");
    assert!(whole.iter().all(|entry| entry.epoch == 1));

    // The killed server comes back and catches up on what it missed.
    cluster.restart(cluster.index_of(&leader));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !log.replicas_current().await.unwrap_or(false) {
        assert!(Instant::now() < deadline, "the restarted server did not catch up within 30 s");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_follows_the_log_through_a_leader_kill_so_a_takeover_reads_only_the_tail() {
    let mut cluster = NatsCluster::start(3);
    let (a, b) = (cluster.connect("a").await, cluster.connect("b").await);
    let (log_a, log_b) = (EventLog::new(&a), EventLog::new(&b));
    let fenced = fence(&log_a, "final", "a", 1, 0).await.expect("a's takeover of an empty log");
    let mut owner = OwnerLog::after(&log_a, "final", 1, &fenced);
    let mut follower = log_b.follow("final", 0).expect("b follows");

    let mut acknowledged = vec![fenced.marker];
    for number in 0..200 {
        acknowledged.push(owner.append(Bytes::from(format!("a-{number}"))).await.expect("append"));
    }
    let mut followed = Vec::new();
    while followed.len() < acknowledged.len() {
        followed.push(next(&mut follower).await.expect("a followed message").sequence);
    }
    assert_eq!(followed, acknowledged, "the standby saw every append, in order");

    let leader = log_a.leader().await.expect("the log's leader");
    cluster.kill(cluster.index_of(&leader));
    let deadline = Instant::now() + Duration::from_secs(20);
    while acknowledged.len() < 301 {
        match owner.append(Bytes::from(format!("after-{}", acknowledged.len()))).await {
            Ok(sequence) => acknowledged.push(sequence),
            Err(AppendError::Unavailable(_)) if Instant::now() < deadline => {}
            Err(error) => panic!("appends did not go on with a server down: {error}"),
        }
    }
    while follower.position() < *acknowledged.last().expect("appends") {
        match next(&mut follower).await {
            Ok(entry) => followed.push(entry.sequence),
            // The consumer is recreated from the position at the next call.
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    // An append whose answer was lost may be stored too (never acknowledged): the
    // follower sees each stored message once, every acknowledged one among them.
    let stored: Vec<u64> =
        log_b.read_after("final", 0).await.expect("the log").iter().map(|entry| entry.sequence).collect();
    assert_eq!(followed, stored, "the standby saw each stored message once, in order");
    assert!(acknowledged.iter().all(|sequence| followed.contains(sequence)));

    // b takes over from its followed position: the fence reads nothing more.
    let taken = fence(&log_b, "final", "b", 2, follower.position()).await.expect("b's takeover");
    assert!(taken.entries.is_empty(), "a caught-up standby reads no tail: {}", taken.entries.len());
    let late = owner.append(Bytes::from_static(b"a-late")).await;
    assert!(matches!(late, Err(AppendError::Fenced)), "{late:?}");
}
