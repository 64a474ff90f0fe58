//! Coordinator tests of offsets leaving: retention expiry, deleted topics' offsets (also
//! across a crash before their tombstones) and groups whose tombstones span batches.

use std::collections::BTreeMap;

use super::commits::CommitEntry;
use super::coordinator::GroupCoordinator;
use super::coordinator_test_fixture::{
    committed, config, entry, group_ids, open, open_with, simple, stable_consumer_of_t,
};
use super::state::GroupState;
use super::{GroupConfig, ManualClock};

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
