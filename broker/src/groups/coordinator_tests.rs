//! Coordinator tests over a real `LogManager` in a temp dir and a hand-moved clock: durable
//! offsets across reopen, tombstones, per-partition errors, join/sync through the parked
//! answers, session expiry and offset retention.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;

use super::commits::{CommitEntry, Committer};
use super::coordinator::{GroupCoordinator, Reply};
use super::membership::SyncRequest;
use super::state::{GroupState, JoinRequest, MemberProtocol};
use super::{GroupConfig, ManualClock};
use crate::log::{LogManager, LogManagerConfig};

fn config() -> GroupConfig {
    GroupConfig {
        initial_rebalance_delay_ms: 0,
        offsets_topic_partitions: 4,
        ..GroupConfig::default()
    }
}

fn open(
    dir: &std::path::Path,
    clock: &Arc<ManualClock>,
) -> (Arc<LogManager>, Arc<GroupCoordinator>) {
    open_with(dir, clock, config())
}

fn open_with(
    dir: &std::path::Path,
    clock: &Arc<ManualClock>,
    config: GroupConfig,
) -> (Arc<LogManager>, Arc<GroupCoordinator>) {
    let logs = LogManager::open(LogManagerConfig::new(dir)).unwrap();
    if logs.topic("t").is_none() {
        logs.create_topic("t", 2, BTreeMap::new(), false).unwrap();
    }
    let coordinator = GroupCoordinator::open(logs.clone(), config, clock.clone()).unwrap();
    (logs, coordinator)
}

fn group_ids(coordinator: &GroupCoordinator) -> Vec<String> {
    coordinator
        .list_groups(None)
        .into_iter()
        .map(|g| g.group_id)
        .collect()
}

fn simple() -> Committer {
    Committer {
        member_id: String::new(),
        group_instance_id: None,
        generation_id: -1,
        retention_time_ms: -1,
    }
}

fn entry(topic: &str, partition: i32, offset: i64) -> CommitEntry {
    CommitEntry {
        topic: topic.into(),
        partition,
        offset,
        leader_epoch: -1,
        metadata: Some("m".into()),
    }
}

/// Commits all `entries` as group "both" and the first as group `only_first`.
async fn commit_both_and_first(
    coordinator: &GroupCoordinator,
    entries: &[CommitEntry],
    only_first: &str,
) {
    let errors = coordinator
        .commit_offsets("both", &simple(), entries)
        .wait()
        .await;
    assert_eq!(errors, vec![None; entries.len()]);
    let errors = coordinator
        .commit_offsets(only_first, &simple(), &entries[..1])
        .wait()
        .await;
    assert_eq!(errors, vec![None]);
}

fn committed(coordinator: &GroupCoordinator, group: &str, partition: i32) -> Option<i64> {
    let topics = [("t".to_owned(), vec![partition])];
    let fetched = coordinator.fetch_offsets(group, Some(&topics));
    fetched[0].1[0].1.as_ref().map(|v| v.offset)
}

fn join_request(member_id: &str) -> JoinRequest {
    JoinRequest {
        member_id: member_id.into(),
        group_instance_id: None,
        client_id: "c".into(),
        client_host: String::new(),
        session_timeout_ms: 6_000,
        rebalance_timeout_ms: 10_000,
        protocol_type: "consumer".into(),
        protocols: vec![MemberProtocol {
            name: "range".into(),
            metadata: Bytes::from_static(b"sub"),
        }],
        require_known_member_id: false,
        supports_skip_assignment: false,
    }
}

#[tokio::test]
async fn commits_survive_reopen_and_deletes_leave_tombstones() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_000);
    {
        let (logs, coordinator) = open(dir.path(), &clock);
        let errors = coordinator
            .commit_offsets("g1", &simple(), &[entry("t", 0, 5), entry("t", 1, 7)])
            .wait()
            .await;
        assert_eq!(errors, vec![None, None]);
        let errors = coordinator
            .commit_offsets("g1", &simple(), &[entry("t", 0, 6)])
            .wait()
            .await;
        assert_eq!(errors, vec![None]);
        coordinator
            .commit_offsets("g2", &simple(), &[entry("t", 0, 1)])
            .wait()
            .await;
        assert_eq!(
            coordinator.delete_groups(&["g2".into()]).wait().await,
            vec![None]
        );
        drop(coordinator);
        logs.shutdown().unwrap();
    }
    let (_logs, coordinator) = open(dir.path(), &clock);
    assert_eq!(committed(&coordinator, "g1", 0), Some(6));
    assert_eq!(committed(&coordinator, "g1", 1), Some(7));
    assert_eq!(committed(&coordinator, "g2", 0), None);
    let listed: Vec<String> = coordinator
        .list_groups(None)
        .into_iter()
        .map(|g| g.group_id)
        .collect();
    assert_eq!(listed, vec!["g1".to_owned()]);
    assert_eq!(
        coordinator.delete_groups(&["g2".into()]).wait().await,
        vec![Some(ResponseError::GroupIdNotFound)]
    );
}

#[tokio::test]
async fn unknown_partitions_fail_alone() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(0);
    let (_logs, coordinator) = open(dir.path(), &clock);
    let entries = [entry("t", 0, 1), entry("t", 9, 1), entry("nope", 0, 1)];
    let errors = coordinator
        .commit_offsets("g", &simple(), &entries)
        .wait()
        .await;
    let unknown = Some(ResponseError::UnknownTopicOrPartition);
    assert_eq!(errors, vec![None, unknown, unknown]);
    let stale = Committer {
        member_id: "m".into(),
        generation_id: 3,
        ..simple()
    };
    let errors = coordinator
        .commit_offsets("other", &stale, &entries[..1])
        .wait()
        .await;
    assert_eq!(errors, vec![Some(ResponseError::IllegalGeneration)]);
}

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

#[tokio::test]
async fn empty_group_offsets_expire_after_retention() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(0);
    let (logs, coordinator) = open(dir.path(), &clock);
    coordinator
        .commit_offsets("g", &simple(), &[entry("t", 0, 3)])
        .wait()
        .await;
    clock.advance(config().offsets_retention_ms - 1);
    assert_eq!(coordinator.expire_offsets(), 0);
    clock.advance(1);
    assert_eq!(coordinator.expire_offsets(), 1);
    assert!(coordinator.list_groups(None).is_empty());
    drop(coordinator);
    logs.shutdown().unwrap();
    drop(logs);
    let (_logs, coordinator) = open(dir.path(), &clock);
    assert_eq!(committed(&coordinator, "g", 0), None);
}

/// Group "g" made Stable at generation 1 by one "consumer" member subscribed to topic "t";
/// returns that member as a committer.
async fn stable_consumer_of_t(coordinator: &GroupCoordinator) -> Committer {
    use kafka_protocol::messages::ConsumerProtocolSubscription;
    use kafka_protocol::protocol::{Encodable, StrBytes};

    let mut metadata = bytes::BytesMut::new();
    bytes::BufMut::put_i16(&mut metadata, 0);
    let subscription =
        ConsumerProtocolSubscription::default().with_topics(vec![StrBytes::from_static_str("t")]);
    subscription.encode(&mut metadata, 0).unwrap();
    let mut join = join_request("");
    join.protocols[0].metadata = metadata.freeze();
    let joined = coordinator.join("g", join).wait().await;
    let sync = SyncRequest {
        member_id: joined.member_id.clone(),
        group_instance_id: None,
        generation_id: 1,
        protocol_type: None,
        protocol_name: None,
        assignments: BTreeMap::new(),
    };
    assert_eq!(coordinator.sync("g", sync).wait().await.error, None);
    Committer {
        member_id: joined.member_id.clone(),
        generation_id: 1,
        ..simple()
    }
}

/// Kafka's offset retention also covers Stable consumer groups: offsets of topics no member
/// subscribes to any more expire `offsets.retention.minutes` after their commit.
#[tokio::test]
async fn a_stable_groups_offsets_of_unsubscribed_topics_expire() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(0);
    let (logs, coordinator) = open(dir.path(), &clock);
    logs.create_topic("u", 1, BTreeMap::new(), false).unwrap();
    let member = stable_consumer_of_t(&coordinator).await;
    let errors = coordinator
        .commit_offsets("g", &member, &[entry("t", 0, 1), entry("u", 0, 2)])
        .wait()
        .await;
    assert_eq!(errors, vec![None, None]);
    clock.advance(config().offsets_retention_ms - 1);
    assert_eq!(coordinator.expire_offsets(), 0);
    clock.advance(1);
    assert_eq!(coordinator.expire_offsets(), 1);
    assert_eq!(committed(&coordinator, "g", 0), Some(1));
    let u = [("u".to_owned(), vec![0])];
    assert_eq!(coordinator.fetch_offsets("g", Some(&u))[0].1[0].1, None);
    assert_eq!(coordinator.describe_group("g").state, GroupState::Stable);
    drop(coordinator);
    logs.shutdown().unwrap();
    drop(logs);
    let (_logs, coordinator) = open(dir.path(), &clock);
    assert_eq!(committed(&coordinator, "g", 0), Some(1));
    assert_eq!(coordinator.fetch_offsets("g", Some(&u))[0].1[0].1, None);
}

#[tokio::test]
async fn offset_delete_refuses_topics_an_active_consumer_group_reads() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(0);
    let (logs, coordinator) = open(dir.path(), &clock);
    logs.create_topic("u", 1, BTreeMap::new(), false).unwrap();
    let member = stable_consumer_of_t(&coordinator).await;
    let errors = coordinator
        .commit_offsets("g", &member, &[entry("t", 0, 1), entry("u", 0, 2)])
        .wait()
        .await;
    assert_eq!(errors, vec![None, None]);
    let partitions = [("t".to_owned(), 0), ("u".to_owned(), 0)];
    let result = coordinator.delete_offsets("g", &partitions).wait().await;
    assert_eq!(
        result,
        Ok(vec![Some(ResponseError::GroupSubscribedToTopic), None])
    );
    assert_eq!(committed(&coordinator, "g", 0), Some(1));
    assert_eq!(
        coordinator.delete_offsets("nope", &partitions).wait().await,
        Err(ResponseError::GroupIdNotFound)
    );
}

/// Kafka: a non-empty "consumer" group whose subscriptions cannot be read is taken as
/// subscribed to every topic (GROUP_SUBSCRIBED_TO_TOPIC per partition); only groups of other
/// protocol types are NON_EMPTY_GROUP as a whole.
#[tokio::test]
async fn offset_delete_of_a_consumer_group_with_unreadable_subscriptions_is_refused_per_topic() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(0);
    let (_logs, coordinator) = open(dir.path(), &clock);
    // `join_request`'s metadata is not a ConsumerProtocolSubscription.
    let joined = coordinator.join("g", join_request("")).wait().await;
    let sync = SyncRequest {
        member_id: joined.member_id,
        group_instance_id: None,
        generation_id: 1,
        protocol_type: None,
        protocol_name: None,
        assignments: BTreeMap::new(),
    };
    assert_eq!(coordinator.sync("g", sync).wait().await.error, None);
    let partitions = [("t".to_owned(), 0)];
    assert_eq!(
        coordinator.delete_offsets("g", &partitions).wait().await,
        Ok(vec![Some(ResponseError::GroupSubscribedToTopic)])
    );
    let mut other = join_request("");
    other.protocol_type = "connect".into();
    coordinator.join("c", other).wait().await;
    assert_eq!(
        coordinator.delete_offsets("c", &partitions).wait().await,
        Err(ResponseError::NonEmptyGroup)
    );
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

#[tokio::test]
async fn a_commit_whose_fsync_fails_is_refused_and_undone() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(0);
    let (logs, coordinator) = open(dir.path(), &clock);
    let ok = coordinator
        .commit_offsets("g", &simple(), &[entry("t", 0, 5)])
        .wait()
        .await;
    assert_eq!(ok, vec![None]);
    logs.fail_fsyncs();
    let entries = [entry("t", 0, 9), entry("t", 1, 3), entry("t", 0, 10)];
    let failed = coordinator
        .commit_offsets("g", &simple(), &entries)
        .wait()
        .await;
    let unavailable = Some(ResponseError::CoordinatorNotAvailable);
    assert_eq!(failed, vec![unavailable; 3]);
    assert_eq!(
        committed(&coordinator, "g", 0),
        Some(5),
        "the acknowledged offset stays"
    );
    assert_eq!(committed(&coordinator, "g", 1), None);
}

/// `__consumer_offsets` is compacted by the log cleaner (issue 5): after many commits of the
/// same partitions and a cleaning pass, the partition is smaller and a reopened coordinator
/// replays the same latest offsets, with deleted groups still gone.
#[tokio::test]
async fn compacting_consumer_offsets_keeps_the_latest_commits() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_000);
    let commits = 300;
    {
        let (logs, coordinator) = open(dir.path(), &clock);
        coordinator
            .commit_offsets("g1", &simple(), &[entry("t", 0, 0)])
            .wait()
            .await;
        // Small segments so that most commits end up in sealed (cleanable) segments.
        let overrides = BTreeMap::from([
            ("cleanup.policy".to_owned(), "compact".to_owned()),
            ("segment.bytes".to_owned(), "4096".to_owned()),
            ("min.cleanable.dirty.ratio".to_owned(), "0.01".to_owned()),
        ]);
        logs.set_topic_overrides(super::OFFSETS_TOPIC, overrides, false)
            .unwrap();
        for offset in 1..=commits {
            let entries = [entry("t", 0, offset), entry("t", 1, offset * 2)];
            let errors = coordinator
                .commit_offsets("g1", &simple(), &entries)
                .wait()
                .await;
            assert_eq!(errors, vec![None, None]);
        }
        coordinator
            .commit_offsets("gone", &simple(), &[entry("t", 0, 1)])
            .wait()
            .await;
        coordinator.delete_groups(&["gone".into()]).wait().await;
        let partitions = logs.topic(super::OFFSETS_TOPIC).unwrap().partitions;
        let mut before = 0;
        let mut after = 0;
        for p in 0..partitions {
            let log = logs.partition(super::OFFSETS_TOPIC, p).unwrap();
            before += log.size_bytes();
            logs.clean_now(super::OFFSETS_TOPIC, p).unwrap();
            after += log.size_bytes();
        }
        assert!(
            after * 4 < before,
            "cleaning kept {after} of {before} bytes of __consumer_offsets"
        );
        assert_eq!(logs.cleaner_stats().errors_total, 0);
        drop(coordinator);
        logs.shutdown().unwrap();
    }
    let (_logs, coordinator) = open(dir.path(), &clock);
    assert_eq!(committed(&coordinator, "g1", 0), Some(commits));
    assert_eq!(committed(&coordinator, "g1", 1), Some(commits * 2));
    assert_eq!(committed(&coordinator, "gone", 0), None);
}

/// Deleting a topic removes its committed offsets from every group, durably (Kafka's
/// `onPartitionsDeleted`): a topic recreated under the same name is not read from the old
/// topic's offsets. Other topics' offsets stay; an Empty group left without any is removed.
#[tokio::test]
async fn a_deleted_topics_offsets_are_removed_from_every_group() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_000);
    {
        let (logs, coordinator) = open(dir.path(), &clock);
        logs.create_topic("u", 1, BTreeMap::new(), false).unwrap();
        let entries = [entry("t", 0, 500), entry("t", 1, 7), entry("u", 0, 3)];
        commit_both_and_first(&coordinator, &entries, "only-t").await;
        logs.delete_topic("t").unwrap();
        let (removed, durable) = coordinator.remove_offsets_of_deleted_topic("t");
        assert_eq!(removed, 3);
        durable.await.unwrap();
        logs.create_topic("t", 2, BTreeMap::new(), false).unwrap();
        assert_eq!(committed(&coordinator, "both", 0), None);
        assert_eq!(committed(&coordinator, "both", 1), None);
        assert_eq!(group_ids(&coordinator), vec!["both".to_owned()]);
        drop(coordinator);
        logs.shutdown().unwrap();
    }
    let (_logs, coordinator) = open(dir.path(), &clock);
    assert_eq!(committed(&coordinator, "both", 0), None);
    assert_eq!(committed(&coordinator, "only-t", 0), None);
    let topics = [("u".to_owned(), vec![0])];
    let kept = coordinator.fetch_offsets("both", Some(&topics));
    assert_eq!(kept[0].1[0].1.as_ref().map(|v| v.offset), Some(3));
    assert_eq!(group_ids(&coordinator), vec!["both".to_owned()]);
}

/// A crash after a topic's deletion was recorded but before its offset tombstones were
/// written (here: deleted through the log manager alone) must not bring the old offsets
/// back: reopening drops and tombstones offsets of topics that no longer exist, so a topic
/// re-created under the name starts without them, across later restarts too. Other topics'
/// offsets stay; an Empty group left without any is removed.
#[tokio::test]
async fn offsets_of_topics_deleted_before_their_tombstones_are_dropped_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_000);
    let offset_of = |coordinator: &GroupCoordinator, group: &str, topic: &str, partition| {
        let topics = [(topic.to_owned(), vec![partition])];
        let fetched = coordinator.fetch_offsets(group, Some(&topics));
        fetched[0].1[0].1.as_ref().map(|v| v.offset)
    };
    {
        let (logs, coordinator) = open(dir.path(), &clock);
        logs.create_topic("v", 2, BTreeMap::new(), false).unwrap();
        logs.create_topic("w", 1, BTreeMap::new(), false).unwrap();
        let entries = [entry("v", 0, 5), entry("v", 1, 7), entry("w", 0, 3)];
        commit_both_and_first(&coordinator, &entries, "only-v").await;
        // The crash window: the deletion is recorded, the tombstones never written.
        logs.delete_topic("v").unwrap();
        drop(coordinator);
        logs.shutdown().unwrap();
    }
    {
        let (logs, coordinator) = open(dir.path(), &clock);
        assert_eq!(offset_of(&coordinator, "both", "v", 0), None);
        assert_eq!(offset_of(&coordinator, "both", "v", 1), None);
        assert_eq!(offset_of(&coordinator, "both", "w", 0), Some(3));
        assert_eq!(group_ids(&coordinator), vec!["both".to_owned()]);
        logs.create_topic("v", 2, BTreeMap::new(), false).unwrap();
        assert_eq!(offset_of(&coordinator, "both", "v", 0), None);
        drop(coordinator);
        logs.shutdown().unwrap();
    }
    // The drop was durable: with "v" existing again, nothing of the old topic comes back.
    let (logs, coordinator) = open(dir.path(), &clock);
    assert!(logs.topic("v").is_some());
    assert_eq!(offset_of(&coordinator, "both", "v", 0), None);
    assert_eq!(offset_of(&coordinator, "both", "v", 1), None);
    assert_eq!(offset_of(&coordinator, "only-v", "v", 0), None);
    assert_eq!(offset_of(&coordinator, "both", "w", 0), Some(3));
    assert_eq!(group_ids(&coordinator), vec!["both".to_owned()]);
}

/// DeleteGroups and the retention sweep write a group's tombstones in as many batches as
/// `offsets_batch_bytes_max` needs: a group with more offsets than one batch holds must not
/// get INVALID_COMMIT_OFFSET_SIZE from DeleteGroups forever, nor outlive its retention.
#[tokio::test]
async fn groups_with_more_offsets_than_one_batch_holds_are_deleted_and_expired() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(0);
    // Each commit below (10 offsets) fits one batch; a group's 40 tombstones do not.
    let config = GroupConfig {
        offsets_batch_bytes_max: 4096,
        ..config()
    };
    let topic = "b".repeat(200);
    {
        let (logs, coordinator) = open_with(dir.path(), &clock, config.clone());
        logs.create_topic(&topic, 40, BTreeMap::new(), false)
            .unwrap();
        for group in ["deleted", "expired"] {
            for first in (0..40).step_by(10) {
                let entries: Vec<CommitEntry> =
                    (first..first + 10).map(|p| entry(&topic, p, 1)).collect();
                let errors = coordinator
                    .commit_offsets(group, &simple(), &entries)
                    .wait()
                    .await;
                assert!(errors.iter().all(Option::is_none), "{errors:?}");
            }
        }
        let deleted = coordinator.delete_groups(&["deleted".into()]).wait().await;
        assert_eq!(deleted, vec![None]);
        clock.advance(config.offsets_retention_ms);
        assert_eq!(coordinator.expire_offsets(), 40);
        assert!(group_ids(&coordinator).is_empty());
        drop(coordinator);
        logs.shutdown().unwrap();
    }
    let (_logs, coordinator) = open_with(dir.path(), &clock, config);
    assert!(
        group_ids(&coordinator).is_empty(),
        "every tombstone was written"
    );
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
