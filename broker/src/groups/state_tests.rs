//! Unit tests of the group state machine, driven by a hand-set clock (no sleeps, no tokio).

use bytes::Bytes;
use kafka_protocol::error::ResponseError;

use super::membership::SyncRequest;
use super::state::{
    Effects, Group, GroupState, JoinRequest, JoinResponse, MemberProtocol, Outcome, SyncResponse,
};
use super::GroupConfig;

const SESSION_MS: i32 = 10_000;
const REBALANCE_MS: i32 = 30_000;

fn config() -> GroupConfig {
    GroupConfig {
        initial_rebalance_delay_ms: 0,
        ..GroupConfig::default()
    }
}

fn protocols(names: &[&str]) -> Vec<MemberProtocol> {
    names
        .iter()
        .map(|n| MemberProtocol {
            name: (*n).into(),
            metadata: Bytes::from(format!("meta-{n}")),
        })
        .collect()
}

fn request(member_id: &str, names: &[&str]) -> JoinRequest {
    JoinRequest {
        member_id: member_id.into(),
        group_instance_id: None,
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: SESSION_MS,
        rebalance_timeout_ms: REBALANCE_MS,
        protocol_type: "consumer".into(),
        protocols: protocols(names),
        require_known_member_id: false,
        supports_skip_assignment: false,
    }
}

fn join_answer(effects: &Effects, member_id: &str) -> JoinResponse {
    effects
        .joins
        .iter()
        .find(|(id, _)| id == member_id)
        .map(|(_, r)| r.clone())
        .expect("join answered")
}

fn sync_answer(effects: &Effects, member_id: &str) -> SyncResponse {
    effects
        .syncs
        .iter()
        .find(|(id, _)| id == member_id)
        .map(|(_, r)| r.clone())
        .expect("sync answered")
}

fn sync_request(member_id: &str, generation_id: i32, assignments: &[(&str, &str)]) -> SyncRequest {
    SyncRequest {
        member_id: member_id.into(),
        group_instance_id: None,
        generation_id,
        protocol_type: None,
        protocol_name: None,
        assignments: assignments
            .iter()
            .map(|(m, a)| ((*m).to_owned(), Bytes::from(a.to_string())))
            .collect(),
    }
}

/// Two dynamic members `a` (the leader) and `b` joined at generation 2, at time 0: the group
/// is CompletingRebalance.
fn completing_pair() -> Group {
    let cfg = config();
    let mut group = Group::new("g", 0);
    let (outcome, effects) = group.join(request("", &["range"]), "a".into(), 0, &cfg);
    assert_eq!(
        outcome,
        Outcome::Wait {
            member_id: "a".into()
        }
    );
    assert_eq!(join_answer(&effects, "a").generation_id, 1);
    let (outcome, _) = group.join(request("", &["range"]), "b".into(), 0, &cfg);
    assert_eq!(
        outcome,
        Outcome::Wait {
            member_id: "b".into()
        }
    );
    assert_eq!(group.state(), GroupState::PreparingRebalance);
    let (_, effects) = group.join(request("a", &["range"]), "unused".into(), 0, &cfg);
    let leader = join_answer(&effects, "a");
    assert_eq!(
        (
            leader.generation_id,
            leader.leader_id.as_str(),
            leader.members.len()
        ),
        (2, "a", 2)
    );
    assert!(join_answer(&effects, "b").members.is_empty());
    assert_eq!(group.state(), GroupState::CompletingRebalance);
    group
}

/// Two dynamic members `a` and `b` in a Stable group at generation 2, at time 0.
fn stable_pair() -> Group {
    let mut group = completing_pair();
    let (outcome, effects) = group.sync(sync_request("b", 2, &[]), 0);
    assert!(matches!(outcome, Outcome::Wait { .. }) && effects.syncs.is_empty());
    let (_, effects) = group.sync(sync_request("a", 2, &[("a", "A"), ("b", "B")]), 0);
    assert_eq!(effects.store_assignment, Some(2));
    assert!(
        effects.syncs.is_empty(),
        "nobody is answered before the write"
    );
    assert_eq!(group.state(), GroupState::CompletingRebalance);
    let effects = group.assignment_stored(2, Ok(()), 0, &config());
    assert_eq!(sync_answer(&effects, "b").assignment, Bytes::from("B"));
    assert_eq!(sync_answer(&effects, "a").assignment, Bytes::from("A"));
    assert_eq!(group.state(), GroupState::Stable);
    group
}

/// Kafka's doSyncGroup: when writing the leader's assignment fails, every parked SyncGroup
/// gets the error, the assignment is dropped and the group rebalances; a completion for a
/// generation the group has left changes nothing.
#[test]
fn a_failed_assignment_write_fails_parked_syncs_and_rebalances() {
    let cfg = config();
    let mut group = completing_pair();
    group.sync(sync_request("b", 2, &[]), 0);
    let (outcome, effects) = group.sync(sync_request("a", 2, &[("a", "A"), ("b", "B")]), 1);
    assert!(matches!(outcome, Outcome::Wait { .. }));
    assert_eq!(effects.store_assignment, Some(2));
    assert_eq!(group.heartbeat("b", None, 2, 1), Ok(()));
    let unavailable = Some(ResponseError::CoordinatorNotAvailable);
    let effects = group.assignment_stored(2, Err(ResponseError::CoordinatorNotAvailable), 2, &cfg);
    assert_eq!(sync_answer(&effects, "a").error, unavailable);
    assert_eq!(sync_answer(&effects, "b").error, unavailable);
    assert_eq!(effects.syncs.len(), 2);
    assert_eq!(group.state(), GroupState::PreparingRebalance);
    assert!(group.members().all(|m| m.assignment.is_empty()));
    assert_eq!(
        group.heartbeat("b", None, 2, 3),
        Err(ResponseError::RebalanceInProgress)
    );
    let late = group.assignment_stored(2, Ok(()), 4, &cfg);
    assert!(late.syncs.is_empty());
    assert_eq!(group.state(), GroupState::PreparingRebalance);
}

#[test]
fn member_id_required_round_then_join_completes() {
    let cfg = config();
    let mut group = Group::new("g", 0);
    let mut first = request("", &["range"]);
    first.require_known_member_id = true;
    let (outcome, effects) = group.join(first, "m-1".into(), 0, &cfg);
    let Outcome::Done(answer) = outcome else {
        panic!("expected an immediate answer")
    };
    assert_eq!(
        (answer.error, answer.member_id.as_str()),
        (Some(ResponseError::MemberIdRequired), "m-1")
    );
    assert!(effects.joins.is_empty());
    assert_eq!(group.state(), GroupState::Empty);
    let (outcome, effects) = group.join(request("m-1", &["range"]), "unused".into(), 10, &cfg);
    assert_eq!(
        outcome,
        Outcome::Wait {
            member_id: "m-1".into()
        }
    );
    let answer = join_answer(&effects, "m-1");
    assert_eq!(answer.error, None);
    assert_eq!(answer.protocol_name.as_deref(), Some("range"));
    assert_eq!(group.state(), GroupState::CompletingRebalance);
}

#[test]
fn unused_pending_member_id_expires_after_session_timeout() {
    let cfg = config();
    let mut group = Group::new("g", 0);
    let mut first = request("", &["range"]);
    first.require_known_member_id = true;
    group.join(first, "m-1".into(), 0, &cfg);
    group.tick(i64::from(SESSION_MS), &cfg);
    let (outcome, _) = group.join(request("m-1", &["range"]), "unused".into(), 20_000, &cfg);
    let Outcome::Done(answer) = outcome else {
        panic!("expected an error")
    };
    assert_eq!(answer.error, Some(ResponseError::UnknownMemberId));
}

#[test]
fn two_members_rebalance_and_sync() {
    let group = stable_pair();
    assert_eq!(group.generation_id(), 2);
    assert_eq!(
        group.member("b").map(|m| m.assignment.clone()),
        Some(Bytes::from("B"))
    );
}

#[test]
fn heartbeat_errors_follow_kafka() {
    let mut group = stable_pair();
    assert_eq!(group.heartbeat("a", None, 2, 1), Ok(()));
    assert_eq!(
        group.heartbeat("a", None, 1, 1),
        Err(ResponseError::IllegalGeneration)
    );
    assert_eq!(
        group.heartbeat("zz", None, 2, 1),
        Err(ResponseError::UnknownMemberId)
    );
    let mut effects = Effects::default();
    group.leave("b", None, 2, &config(), &mut effects).unwrap();
    assert_eq!(group.state(), GroupState::PreparingRebalance);
    assert_eq!(
        group.heartbeat("a", None, 2, 3),
        Err(ResponseError::RebalanceInProgress)
    );
    assert_eq!(
        group.sync(sync_request("a", 2, &[]), 3).0,
        Outcome::Done(SyncResponse::error(ResponseError::RebalanceInProgress))
    );
}

#[test]
fn session_timeout_removes_member_and_rebalances() {
    let cfg = config();
    let mut group = stable_pair();
    // `a` keeps heartbeating, `b` goes silent.
    assert_eq!(group.heartbeat("a", None, 2, 9_000), Ok(()));
    let effects = group.tick(i64::from(SESSION_MS) - 1, &cfg);
    assert!(effects.joins.is_empty() && group.member("b").is_some());
    group.tick(i64::from(SESSION_MS), &cfg);
    assert!(group.member("b").is_none());
    assert_eq!(group.state(), GroupState::PreparingRebalance);
    let (_, effects) = group.join(request("a", &["range"]), "unused".into(), 10_001, &cfg);
    let answer = join_answer(&effects, "a");
    assert_eq!((answer.generation_id, answer.members.len()), (3, 1));
}

#[test]
fn rebalance_timeout_drops_members_that_do_not_rejoin() {
    let cfg = config();
    let mut group = stable_pair();
    // `a` changes its protocols: a rebalance starts; `b` never rejoins but keeps heartbeating.
    let (outcome, effects) = group.join(
        request("a", &["range", "roundrobin"]),
        "unused".into(),
        100,
        &cfg,
    );
    assert!(matches!(outcome, Outcome::Wait { .. }) && effects.joins.is_empty());
    for at_ms in [5_000, 14_000, 23_000, 29_000] {
        assert_eq!(
            group.heartbeat("b", None, 2, at_ms),
            Err(ResponseError::RebalanceInProgress)
        );
        assert!(group.tick(at_ms, &cfg).joins.is_empty());
    }
    let effects = group.tick(100 + i64::from(REBALANCE_MS) - 1, &cfg);
    assert!(effects.joins.is_empty());
    let effects = group.tick(100 + i64::from(REBALANCE_MS), &cfg);
    let answer = join_answer(&effects, "a");
    assert_eq!((answer.generation_id, answer.members.len()), (3, 1));
    assert!(group.member("b").is_none());
}

#[test]
fn leader_rejoin_in_stable_triggers_rebalance_follower_does_not() {
    let cfg = config();
    let mut group = stable_pair();
    let (outcome, _) = group.join(request("b", &["range"]), "unused".into(), 5, &cfg);
    let Outcome::Done(answer) = outcome else {
        panic!("follower gets the current generation")
    };
    assert_eq!((answer.generation_id, answer.leader_id.as_str()), (2, "a"));
    assert_eq!(group.state(), GroupState::Stable);
    let (outcome, _) = group.join(request("a", &["range"]), "unused".into(), 5, &cfg);
    assert!(matches!(outcome, Outcome::Wait { .. }));
    assert_eq!(group.state(), GroupState::PreparingRebalance);
}

#[test]
fn leave_and_unknown_leave() {
    let cfg = config();
    let mut group = stable_pair();
    let mut effects = Effects::default();
    assert_eq!(
        group.leave("nobody", None, 1, &cfg, &mut effects),
        Err(ResponseError::UnknownMemberId)
    );
    assert_eq!(group.leave("a", None, 1, &cfg, &mut effects), Ok(()));
    assert_eq!(group.leader_id(), Some("b"));
    let mut effects = Effects::default();
    assert_eq!(group.leave("b", None, 2, &cfg, &mut effects), Ok(()));
    assert_eq!(group.state(), GroupState::Empty);
    assert!(effects.persist, "an emptied group writes its metadata");
    assert_eq!(group.generation_id(), 3);
}

#[test]
fn protocol_selection_and_inconsistent_protocols() {
    let cfg = config();
    let mut group = Group::new("g", 0);
    group.join(request("", &["range", "roundrobin"]), "a".into(), 0, &cfg);
    group.join(request("", &["roundrobin"]), "b".into(), 0, &cfg);
    let (_, effects) = group.join(request("a", &["range", "roundrobin"]), "x".into(), 0, &cfg);
    assert_eq!(
        join_answer(&effects, "a").protocol_name.as_deref(),
        Some("roundrobin")
    );
    let (outcome, _) = group.join(request("", &["sticky"]), "c".into(), 0, &cfg);
    let Outcome::Done(answer) = outcome else {
        panic!()
    };
    assert_eq!(answer.error, Some(ResponseError::InconsistentGroupProtocol));
    let mut other_type = request("", &["roundrobin"]);
    other_type.protocol_type = "connect".into();
    let (outcome, _) = group.join(other_type, "d".into(), 0, &cfg);
    let Outcome::Done(answer) = outcome else {
        panic!()
    };
    assert_eq!(answer.error, Some(ResponseError::InconsistentGroupProtocol));
    let (outcome, _) = Group::new("h", 0).join(request("", &[]), "e".into(), 0, &cfg);
    assert!(matches!(
        outcome,
        Outcome::Done(JoinResponse {
            error: Some(ResponseError::InconsistentGroupProtocol),
            ..
        })
    ));
}

#[test]
fn static_member_rejoin_keeps_assignment_and_fences_old_id() {
    let cfg = config();
    let mut group = Group::new("g", 0);
    let mut join = request("", &["range"]);
    join.group_instance_id = Some("inst-1".into());
    let (_, effects) = group.join(join.clone(), "s-1".into(), 0, &cfg);
    assert_eq!(join_answer(&effects, "s-1").generation_id, 1);
    let mut sync = sync_request("s-1", 1, &[("s-1", "P0")]);
    sync.group_instance_id = Some("inst-1".into());
    let (_, effects) = group.sync(sync, 0);
    group.assignment_stored(effects.store_assignment.unwrap(), Ok(()), 0, &cfg);
    assert_eq!(group.state(), GroupState::Stable);
    // Restarted with the same instance id and no member id: replaced, no rebalance; answered
    // once the group with the new id is written.
    let (outcome, effects) = group.join(join, "s-2".into(), 100, &cfg);
    assert_eq!(
        outcome,
        Outcome::Wait {
            member_id: "s-2".into()
        }
    );
    let answer = join_answer(&effects, "s-2");
    assert_eq!(
        (
            answer.member_id.as_str(),
            answer.generation_id,
            answer.leader_id.as_str()
        ),
        ("s-2", 1, "s-1")
    );
    assert!(effects.persist);
    assert_eq!(group.state(), GroupState::Stable);
    assert_eq!(
        group.member("s-2").map(|m| m.assignment.clone()),
        Some(Bytes::from("P0"))
    );
    assert_eq!(
        group.heartbeat("s-1", Some("inst-1"), 1, 200),
        Err(ResponseError::FencedInstanceId)
    );
    assert_eq!(group.heartbeat("s-2", Some("inst-1"), 1, 200), Ok(()));
    let mut effects = Effects::default();
    assert_eq!(
        group.leave("", Some("inst-1"), 300, &cfg, &mut effects),
        Ok(())
    );
    assert_eq!(group.state(), GroupState::Empty);
}

/// Static member "inst-1" (member id "s-1") alone in a Stable group at generation 1, then a
/// rebalance in progress since t = 100 that it has not rejoined (a dynamic member came and
/// left again).
fn static_member_not_rejoining() -> Group {
    let cfg = config();
    let mut group = Group::new("g", 0);
    let mut join = request("", &["range"]);
    join.group_instance_id = Some("inst-1".into());
    group.join(join, "s-1".into(), 0, &cfg);
    let mut sync = sync_request("s-1", 1, &[("s-1", "P0")]);
    sync.group_instance_id = Some("inst-1".into());
    let (_, effects) = group.sync(sync, 0);
    group.assignment_stored(effects.store_assignment.unwrap(), Ok(()), 0, &cfg);
    group.join(request("", &["range"]), "d".into(), 100, &cfg);
    let mut effects = Effects::default();
    assert_eq!(group.leave("d", None, 200, &cfg, &mut effects), Ok(()));
    assert_eq!(group.state(), GroupState::PreparingRebalance);
    group
}

/// Kafka (KIP-345): when the rebalance timeout passes and no member has rejoined, static
/// members are not dropped; the join phase waits another rebalance timeout, and they leave
/// only by their session timeout.
#[test]
fn static_members_outlive_a_rebalance_timeout_nobody_rejoined_in() {
    let cfg = config();
    let mut group = static_member_not_rejoining();
    assert_eq!(
        group.heartbeat("s-1", Some("inst-1"), 1, 25_000),
        Err(ResponseError::RebalanceInProgress)
    );
    let deadline_ms = 100 + i64::from(REBALANCE_MS);
    group.tick(deadline_ms, &cfg);
    assert_eq!(group.state(), GroupState::PreparingRebalance);
    assert!(group.member("s-1").is_some());
    let mut rejoin = request("s-1", &["range"]);
    rejoin.group_instance_id = Some("inst-1".into());
    let (_, effects) = group.join(rejoin, "unused".into(), deadline_ms + 1_000, &cfg);
    let answer = join_answer(&effects, "s-1");
    assert_eq!(
        (answer.generation_id, answer.leader_id.as_str()),
        (2, "s-1")
    );
    assert_eq!(group.state(), GroupState::CompletingRebalance);

    // Silent instead: its session ends it, and the group then empties.
    let mut group = static_member_not_rejoining();
    group.heartbeat("s-1", Some("inst-1"), 1, 25_000).ok();
    group.tick(deadline_ms, &cfg);
    assert!(group.member("s-1").is_some());
    group.tick(25_000 + i64::from(SESSION_MS), &cfg);
    assert_eq!(group.state(), GroupState::Empty);
}

#[test]
fn commit_validation() {
    let mut empty = Group::new("simple", 0);
    assert_eq!(empty.validate_commit("", None, -1, 0), Ok(()));
    assert_eq!(
        empty.validate_commit("m", None, 1, 0),
        Err(ResponseError::UnknownMemberId)
    );
    let mut group = stable_pair();
    assert_eq!(
        group.validate_commit("", None, -1, 1),
        Err(ResponseError::UnknownMemberId)
    );
    assert_eq!(
        group.validate_commit("a", None, 1, 1),
        Err(ResponseError::IllegalGeneration)
    );
    assert_eq!(
        group.validate_commit("zz", None, 2, 1),
        Err(ResponseError::UnknownMemberId)
    );
    assert_eq!(group.validate_commit("a", None, 2, 1), Ok(()));
    // After a join completes, commits wait for the new assignment.
    let cfg = config();
    group.join(request("a", &["range"]), "x".into(), 2, &cfg);
    group.join(request("b", &["range"]), "x".into(), 2, &cfg);
    assert_eq!(group.state(), GroupState::CompletingRebalance);
    assert_eq!(
        group.validate_commit("a", None, 3, 3),
        Err(ResponseError::RebalanceInProgress)
    );
}

/// Kafka accepts any commit with a negative generation to an Empty group, whatever member or
/// instance id it names: a client that left the group (its old member id still set) commits
/// its final offsets that way, e.g. on close.
#[test]
fn a_generationless_commit_to_an_empty_group_is_accepted_with_any_member_id() {
    let mut empty = Group::new("g", 0);
    assert_eq!(empty.validate_commit("left-already", None, -1, 0), Ok(()));
    assert_eq!(
        empty.validate_commit("left-already", Some("instance"), -1, 0),
        Ok(())
    );
    // Not so once the group has members: the id must be theirs.
    let mut group = stable_pair();
    assert_eq!(
        group.validate_commit("left-already", None, -1, 1),
        Err(ResponseError::UnknownMemberId)
    );
}

#[test]
fn initial_rebalance_delay_waits_for_more_members() {
    let cfg = GroupConfig {
        initial_rebalance_delay_ms: 3_000,
        ..GroupConfig::default()
    };
    let mut group = Group::new("g", 0);
    let (_, effects) = group.join(request("", &["range"]), "a".into(), 0, &cfg);
    assert!(effects.joins.is_empty());
    let (_, effects) = group.join(request("", &["range"]), "b".into(), 1_000, &cfg);
    assert!(effects.joins.is_empty());
    // The second member extended the delay to 6 s.
    assert!(group.tick(5_999, &cfg).joins.is_empty());
    let effects = group.tick(6_000, &cfg);
    assert_eq!(effects.joins.len(), 2);
    assert_eq!(join_answer(&effects, "a").generation_id, 1);
}

/// Kafka extends the initial delay once per delay window in which someone joined, not once
/// per member: many consumers starting together must not push the first rebalance out to
/// the rebalance timeout.
#[test]
fn initial_rebalance_delay_extends_once_per_window_not_per_member() {
    let cfg = GroupConfig {
        initial_rebalance_delay_ms: 3_000,
        ..GroupConfig::default()
    };
    let mut group = Group::new("g", 0);
    group.join(request("", &["range"]), "m00".into(), 0, &cfg);
    for i in 1..20 {
        let (_, effects) = group.join(request("", &["range"]), format!("m{i:02}"), 100, &cfg);
        assert!(effects.joins.is_empty());
    }
    // Joins during the first window [0, 3 s) extend it by one delay, to 6 s.
    assert!(group.tick(3_000, &cfg).joins.is_empty());
    assert!(group.tick(5_999, &cfg).joins.is_empty());
    let effects = group.tick(6_000, &cfg);
    assert_eq!(effects.joins.len(), 20);
    assert_eq!(group.state(), GroupState::CompletingRebalance);
}

#[test]
fn metadata_snapshot_restores_a_stable_group() {
    let group = stable_pair();
    let value = group.to_metadata();
    assert_eq!(value.members.len(), 2);
    let restored = Group::from_metadata("g", &value, 50_000);
    assert_eq!(restored.state(), GroupState::Stable);
    assert_eq!(restored.generation_id(), 2);
    assert_eq!(restored.leader_id(), Some("a"));
    assert_eq!(
        restored.member("b").map(|m| m.assignment.clone()),
        Some(Bytes::from("B"))
    );
    let mut restored = restored;
    assert_eq!(restored.heartbeat("b", None, 2, 50_001), Ok(()));
    let empty = Group::from_metadata("g", &super::records::GroupMetadataValue::default(), 1);
    assert_eq!(empty.state(), GroupState::Empty);
}

#[test]
fn members_that_never_sync_are_removed_after_the_rebalance_timeout() {
    let cfg = config();
    let mut group = Group::new("g", 0);
    group.join(request("", &["range"]), "a".into(), 0, &cfg);
    group.join(request("", &["range"]), "b".into(), 0, &cfg);
    let (_, effects) = group.join(request("a", &["range"]), "x".into(), 0, &cfg);
    assert_eq!(effects.joins.len(), 2);
    assert_eq!(group.state(), GroupState::CompletingRebalance);
    // The follower syncs and parks; the leader heartbeats but never sends its SyncGroup.
    let (outcome, _) = group.sync(sync_request("b", 2, &[]), 1);
    assert!(matches!(outcome, Outcome::Wait { .. }));
    for at_ms in [9_000, 18_000, 27_000] {
        assert_eq!(group.heartbeat("a", None, 2, at_ms), Ok(()));
        assert!(group.tick(at_ms, &cfg).syncs.is_empty());
    }
    assert!(group
        .tick(i64::from(REBALANCE_MS) - 1, &cfg)
        .syncs
        .is_empty());
    let effects = group.tick(i64::from(REBALANCE_MS), &cfg);
    assert_eq!(
        sync_answer(&effects, "b").error,
        Some(ResponseError::RebalanceInProgress)
    );
    assert!(group.member("a").is_none(), "the silent leader is gone");
    assert_eq!(group.state(), GroupState::PreparingRebalance);
    assert_eq!(group.leader_id(), Some("b"));
}
