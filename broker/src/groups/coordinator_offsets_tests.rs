//! Coordinator tests of committed offsets: durable across reopen, tombstones, per-partition
//! errors, OffsetDelete, failed fsyncs and compaction of `__consumer_offsets`.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;

use super::commits::Committer;
use super::coordinator_test_fixture::{
    committed, entry, join_request, open, simple, stable_consumer_of_t,
};
use super::membership::SyncRequest;
use super::ManualClock;

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
