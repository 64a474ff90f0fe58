//! Coordinator tests of membership: join/sync through the parked answers, session expiry,
//! static rejoins, failed assignment writes, the bound on groups, the group overview, and
//! (ignored, a measurement) what listing 10 000 groups costs.

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;

use super::coordinator::{GroupCoordinator, Reply};
use super::coordinator_test_fixture::{config, entry, join_request, open, open_with, simple};
use super::membership::SyncRequest;
use super::state::GroupState;
use super::{GroupConfig, ManualClock};
use crate::log::{LogManager, LogManagerConfig};

#[tokio::test]
async fn join_sync_and_session_expiry_through_the_coordinator() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(0);
    let (_logs, coordinator) = open(dir.path(), &clock);
    let first = coordinator.join("g", join_request("")).wait().await;
    assert_eq!((first.error, first.generation_id), (None, 1));
    // A second member parks until the first rejoins.
    let Reply::Pending(second) = coordinator.join("g", join_request("")) else {
        panic!("second join parks")
    };
    let rejoin = coordinator
        .join("g", join_request(&first.member_id))
        .wait()
        .await;
    let second = second.await;
    assert_eq!((rejoin.generation_id, second.generation_id), (2, 2));
    assert_eq!(rejoin.members.len(), 2);
    let follower_sync = |id: &str| SyncRequest {
        member_id: id.into(),
        group_instance_id: None,
        generation_id: 2,
        protocol_type: None,
        protocol_name: None,
        assignments: BTreeMap::new(),
    };
    let Reply::Pending(follower) = coordinator.sync("g", follower_sync(&second.member_id)) else {
        panic!("follower parks until the leader syncs")
    };
    let mut leader = follower_sync(&first.member_id);
    leader
        .assignments
        .insert(second.member_id.clone(), Bytes::from_static(b"A2"));
    let leader_answer = coordinator.sync("g", leader).wait().await;
    assert_eq!(
        (leader_answer.error, follower.await.assignment),
        (None, Bytes::from_static(b"A2"))
    );
    assert_eq!(coordinator.describe_group("g").state, GroupState::Stable);
    let overview = coordinator.overview();
    assert_eq!((overview.len(), overview[0].generation_id), (1, 2));
    assert_eq!(overview[0].members.len(), 2);
    // The follower goes silent; the leader heartbeats and learns of the rebalance.
    clock.advance(5_000);
    assert_eq!(
        coordinator.heartbeat("g", &first.member_id, None, 2),
        Ok(())
    );
    clock.advance(1_000);
    coordinator.tick();
    assert_eq!(
        coordinator.heartbeat("g", &second.member_id, None, 2),
        Err(ResponseError::UnknownMemberId)
    );
    assert_eq!(
        coordinator.heartbeat("g", &first.member_id, None, 2),
        Err(ResponseError::RebalanceInProgress)
    );
    let again = coordinator
        .join("g", join_request(&first.member_id))
        .wait()
        .await;
    assert_eq!((again.generation_id, again.members.len()), (3, 1));
}

/// A static member that comes back with a new member id into a Stable group is answered only
/// once the group naming that id is durable, as Kafka does: answered earlier, a broker crash
/// would bring back the old id and its next heartbeat would be fenced (fatal to the client).
#[tokio::test]
async fn a_static_rejoin_is_answered_only_once_the_new_member_id_is_durable() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(0);
    let (logs, coordinator) = open(dir.path(), &clock);
    let mut join = join_request("");
    join.group_instance_id = Some("inst".into());
    let joined = coordinator.join("g", join.clone()).wait().await;
    let sync = SyncRequest {
        member_id: joined.member_id.clone(),
        group_instance_id: Some("inst".into()),
        generation_id: 1,
        protocol_type: None,
        protocol_name: None,
        assignments: BTreeMap::new(),
    };
    assert_eq!(coordinator.sync("g", sync).wait().await.error, None);
    let rejoined = coordinator.join("g", join.clone()).wait().await;
    assert_eq!((rejoined.error, rejoined.generation_id), (None, 1));
    logs.fail_fsyncs();
    let failed = coordinator.join("g", join).wait().await;
    assert_eq!(failed.error, Some(ResponseError::CoordinatorNotAvailable));
}

#[tokio::test]
async fn the_number_of_groups_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(0);
    let logs = LogManager::open(LogManagerConfig::new(dir.path())).unwrap();
    logs.create_topic("t", 1, BTreeMap::new(), false).unwrap();
    let config = GroupConfig {
        groups_max: 1,
        ..config()
    };
    let coordinator = GroupCoordinator::open(logs, config, clock).unwrap();
    let ok = coordinator
        .commit_offsets("g1", &simple(), &[entry("t", 0, 1)])
        .wait()
        .await;
    assert_eq!(ok, vec![None]);
    let refused = coordinator
        .commit_offsets("g2", &simple(), &[entry("t", 0, 1)])
        .wait()
        .await;
    assert_eq!(refused, vec![Some(ResponseError::CoordinatorNotAvailable)]);
    let join = coordinator.join("g3", join_request("")).wait().await;
    assert_eq!(join.error, Some(ResponseError::CoordinatorNotAvailable));
}

/// Members `(leader, follower)` of group "g" joined at generation 2, the group
/// CompletingRebalance.
async fn completing_pair(coordinator: &GroupCoordinator) -> (String, String) {
    let first = coordinator.join("g", join_request("")).wait().await;
    let Reply::Pending(second) = coordinator.join("g", join_request("")) else {
        panic!("second join parks")
    };
    let leader = coordinator
        .join("g", join_request(&first.member_id))
        .wait()
        .await;
    let follower = second.await;
    assert_eq!((leader.generation_id, follower.generation_id), (2, 2));
    assert_eq!(leader.leader_id, leader.member_id);
    (leader.member_id, follower.member_id)
}

fn sync_request(member_id: &str, assignments: &[(&str, Bytes)]) -> SyncRequest {
    SyncRequest {
        member_id: member_id.into(),
        group_instance_id: None,
        generation_id: 2,
        protocol_type: None,
        protocol_name: None,
        assignments: assignments
            .iter()
            .map(|(id, bytes)| ((*id).to_owned(), bytes.clone()))
            .collect(),
    }
}

/// The follower parks in SyncGroup, then the leader syncs with `assignment` for it; returns
/// both answers' errors once the write of the assignment has settled.
async fn sync_pair(
    coordinator: &GroupCoordinator,
    (leader, follower): &(String, String),
    assignment: Bytes,
) -> (Option<ResponseError>, Option<ResponseError>) {
    let Reply::Pending(parked) = coordinator.sync("g", sync_request(follower, &[])) else {
        panic!("the follower parks until the leader syncs")
    };
    let request = sync_request(leader, &[(follower, assignment)]);
    let leader_answer = coordinator.sync("g", request).wait().await;
    (leader_answer.error, parked.await.error)
}

/// Kafka's doSyncGroup makes the group Stable only once the leader's assignment is stored;
/// when the fsync of that write fails, every parked SyncGroup gets the error and the group
/// rebalances, instead of staying Stable with an assignment a restart would not know.
#[tokio::test]
async fn a_failed_assignment_write_fails_every_sync_and_rebalances() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(0);
    let (logs, coordinator) = open(dir.path(), &clock);
    let pair = completing_pair(&coordinator).await;
    logs.fail_fsyncs();
    let errors = sync_pair(&coordinator, &pair, Bytes::from_static(b"A2")).await;
    let unavailable = Some(ResponseError::CoordinatorNotAvailable);
    assert_eq!(errors, (unavailable, unavailable));
    let described = coordinator.describe_group("g");
    assert_eq!(described.state, GroupState::PreparingRebalance);
    assert!(described.members.iter().all(|m| m.assignment.is_empty()));
    assert_eq!(
        coordinator.heartbeat("g", &pair.0, None, 2),
        Err(ResponseError::RebalanceInProgress)
    );
}

/// A group record too large for `offsets_batch_bytes_max` fails the SyncGroups with
/// UNKNOWN_SERVER_ERROR, as Kafka's storeGroup answers MESSAGE_TOO_LARGE (not the commit
/// error INVALID_COMMIT_OFFSET_SIZE), and the group rebalances.
#[tokio::test]
async fn an_oversized_assignment_is_an_unknown_server_error() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(0);
    let config = GroupConfig {
        offsets_batch_bytes_max: 1024,
        ..config()
    };
    let (_logs, coordinator) = open_with(dir.path(), &clock, config);
    let pair = completing_pair(&coordinator).await;
    let errors = sync_pair(&coordinator, &pair, Bytes::from(vec![7u8; 2048])).await;
    let unknown = Some(ResponseError::UnknownServerError);
    assert_eq!(errors, (unknown, unknown));
    assert_eq!(
        coordinator.describe_group("g").state,
        GroupState::PreparingRebalance
    );
}

/// One group's overview is that group's row of the full overview; unknown groups have none.
#[tokio::test]
async fn one_groups_overview_matches_its_row_of_all() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(0);
    let (_logs, coordinator) = open(dir.path(), &clock);
    for (group, offset) in [("a", 3), ("b", 5), ("", 7)] {
        let errors = coordinator
            .commit_offsets(group, &simple(), &[entry("t", 0, offset)])
            .wait()
            .await;
        assert_eq!(errors, vec![None]);
    }
    let all = coordinator.overview();
    for row in &all {
        assert_eq!(
            coordinator.group_overview(&row.group_id).as_ref(),
            Some(row)
        );
    }
    assert_eq!(all.len(), 3);
    assert_eq!(coordinator.group_overview("c"), None);
}

/// A measurement, not a check (run with `--ignored --nocapture`): what one `list_groups`
/// (each /metrics scrape, each /v1/groups page) costs with 10 000 groups, idle and while
/// another thread keeps committing to them (each commit holds its group's lock across the
/// `__consumer_offsets` append).
#[test]
#[ignore = "measurement; prints timings"]
fn list_groups_cost_with_ten_thousand_groups() {
    const GROUPS: usize = 10_000;
    const ROUNDS: usize = 50;
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_000);
    let (_logs, coordinator) = open(dir.path(), &clock);
    for i in 0..GROUPS {
        coordinator
            .slot_or_create(&format!("group-{i:05}"))
            .unwrap();
    }
    // The part of a listing a lock-free per-group summary would save: taking each lock.
    let locks_only = || {
        let slots = coordinator.all_slots();
        let stable = slots.iter().filter(|slot| {
            let slot = slot.lock();
            slot.group.state() == GroupState::Stable
        });
        assert_eq!(stable.count(), 0);
    };
    let listing = || assert_eq!(coordinator.list_groups(None).len(), GROUPS);
    let time_rounds = |label: &str| {
        for (what, run) in [
            ("list_groups", &listing as &dyn Fn()),
            ("slots + locks only", &locks_only),
        ] {
            let mut micros: Vec<u128> = (0..ROUNDS)
                .map(|_| {
                    let started = std::time::Instant::now();
                    run();
                    started.elapsed().as_micros()
                })
                .collect();
            micros.sort_unstable();
            println!(
                "{label}: {what} of {GROUPS}: median {} us, max {} us",
                micros[ROUNDS / 2],
                micros[ROUNDS - 1]
            );
        }
    };
    time_rounds("idle");
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut i = 0usize;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let group = format!("group-{:05}", i % GROUPS);
                let offset = i64::try_from(i).unwrap();
                drop(coordinator.commit_offsets(&group, &simple(), &[entry("t", 0, offset)]));
                i += 1;
            }
            println!("committer: {i} commits");
        });
        time_rounds("while committing");
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
}
